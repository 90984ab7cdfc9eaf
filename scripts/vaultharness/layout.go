package vaultharness

import (
	"encoding/json"
	"fmt"
	"strings"
)

// StoredToken is what the engine stores about one PAT, as far as tests
// look at it.
type StoredToken struct {
	Key      string // the storage key
	TokenID  string
	EntityID string // the owner: records name their owner by entity id only
	Name     string // a named token's name; a leased token's role
	Role     string // set for leased tokens
}

// StoredTokens returns the PAT records in a snapshot of the engine's
// storage (see StorageSnapshot). It is the one place outside the engine
// that knows how PATs are laid out in storage: when the layout changes,
// this function changes, and the tests that use it do not.
func StoredTokens(snapshot map[string]string) ([]StoredToken, error) {
	var tokens []StoredToken
	for key, value := range snapshot {
		if !strings.HasPrefix(key, "tokens/") {
			continue
		}
		var record struct {
			TokenID  string `json:"token_id"`
			EntityID string `json:"entity_id"`
			Name     string `json:"name"`
			Role     string `json:"role"`
		}
		if err := json.Unmarshal([]byte(value), &record); err != nil {
			return nil, fmt.Errorf("decoding the PAT record at %s: %w", key, err)
		}
		tokens = append(tokens, StoredToken{Key: key, TokenID: record.TokenID, EntityID: record.EntityID, Name: record.Name, Role: record.Role})
	}
	return tokens, nil
}
