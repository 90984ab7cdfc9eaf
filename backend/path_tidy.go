package backend

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

func pathTidy(b *backend) []*framework.Path {
	return []*framework.Path{
		{
			Pattern: "tidy$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefixPlanqk,
				OperationVerb:   "tidy",
			},
			Fields: map[string]*framework.FieldSchema{
				"repair": {
					Type:        framework.TypeBool,
					Description: "Also remove what an interrupted write left behind: index entries without their token record and records of named tokens missing from their index. Reads every token record.",
				},
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.UpdateOperation: &framework.PathOperation{
					Callback:                  b.pathTidy,
					ForwardPerformanceStandby: true,
				},
			},
			HelpSynopsis:    pathTidyHelpSynopsis,
			HelpDescription: pathTidyHelpDescription,
		},
	}
}

// tidyResult counts what a sweep did.
type tidyResult struct {
	UsersScanned    int `json:"users_scanned"`
	ExpiredRemoved  int `json:"expired_removed"`
	RecordsScanned  int `json:"records_scanned"`
	OrphansRemoved  int `json:"orphans_removed"`
	DanglingRemoved int `json:"dangling_removed"`
}

func (r *tidyResult) toResponseData() map[string]interface{} {
	return map[string]interface{}{
		"users_scanned":    r.UsersScanned,
		"expired_removed":  r.ExpiredRemoved,
		"records_scanned":  r.RecordsScanned,
		"orphans_removed":  r.OrphansRemoved,
		"dangling_removed": r.DanglingRemoved,
	}
}

func (b *backend) pathTidy(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	if !b.tidyRunning.CompareAndSwap(false, true) {
		return respondError(http.StatusConflict, "a tidy is already running"), nil
	}
	defer b.tidyRunning.Store(false)

	result, err := b.tidyExpired(ctx, req.Storage, time.Now())
	if err != nil {
		return nil, err
	}
	if d.Get("repair").(bool) {
		if err := b.repairTokens(ctx, req.Storage, result); err != nil {
			return nil, err
		}
	}
	b.lastTidyUnix.Store(time.Now().Unix())
	return &logical.Response{Data: result.toResponseData()}, nil
}

// periodicTidy runs the expiry sweep every tidy_interval on the node that
// may write; elsewhere it does nothing.
func (b *backend) periodicTidy(ctx context.Context, req *logical.Request) error {
	cfg, err := b.getConfig(ctx, req.Storage)
	if err != nil {
		return err
	}
	if cfg.TidyInterval == 0 || time.Since(time.Unix(b.lastTidyUnix.Load(), 0)) < cfg.TidyInterval {
		return nil
	}
	if !b.WriteSafeReplicationState() {
		return nil
	}
	if !b.tidyRunning.CompareAndSwap(false, true) {
		return nil
	}
	defer b.tidyRunning.Store(false)

	result, err := b.tidyExpired(ctx, req.Storage, time.Now())
	if err != nil {
		return err
	}
	b.lastTidyUnix.Store(time.Now().Unix())
	if result.ExpiredRemoved > 0 {
		b.Logger().Info("removed expired personal access tokens", "count", result.ExpiredRemoved, "users_scanned", result.UsersScanned)
	}
	return nil
}

// tidyExpired removes every user's expired named tokens, record and index
// entry. It reads one index per user and touches only the expired tokens;
// leased tokens are removed by Vault when their lease ends.
func (b *backend) tidyExpired(ctx context.Context, s logical.Storage, now time.Time) (*tidyResult, error) {
	users, err := s.List(ctx, tokenIndexPrefix)
	if err != nil {
		return nil, fmt.Errorf("listing token indexes: %w", err)
	}
	result := &tidyResult{}
	for _, user := range users {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		removed, err := b.tidyUser(ctx, s, user, func(t *tokenSummary) (bool, error) { return !now.Before(t.ExpiresAt), nil })
		if err != nil {
			return nil, err
		}
		result.UsersScanned++
		result.ExpiredRemoved += removed
	}
	return result, nil
}

// tidyUser removes the user's tokens that match, records first, under the
// user's lock, and returns how many it removed.
func (b *backend) tidyUser(ctx context.Context, s logical.Storage, user string, remove func(t *tokenSummary) (bool, error)) (int, error) {
	lock := b.lockFor(userLockKey(user))
	lock.Lock()
	defer lock.Unlock()

	index, err := getTokenIndex(ctx, s, user)
	if err != nil {
		return 0, err
	}
	removed := 0
	for name, summary := range index.Tokens {
		matches, err := remove(summary)
		if err != nil {
			return removed, err
		}
		if !matches {
			continue
		}
		if err := deleteTokenRecord(ctx, s, summary.Hash); err != nil {
			return removed, err
		}
		delete(index.Tokens, name)
		removed++
	}
	if removed > 0 {
		if err := putTokenIndex(ctx, s, user, index); err != nil {
			return removed, err
		}
	}
	return removed, nil
}

// repairTokens restores the invariant that every named token has both its
// index entry and its record, which an interrupted write (a crash between
// two storage writes) can break. It reads every record, so it runs only on
// request.
func (b *backend) repairTokens(ctx context.Context, s logical.Storage, result *tidyResult) error {
	// Index entries whose record is missing: the token never verifies again.
	users, err := s.List(ctx, tokenIndexPrefix)
	if err != nil {
		return fmt.Errorf("listing token indexes: %w", err)
	}
	for _, user := range users {
		removed, err := b.tidyUser(ctx, s, user, func(t *tokenSummary) (bool, error) {
			record, err := getTokenRecord(ctx, s, t.Hash)
			return record == nil, err
		})
		if err != nil {
			return err
		}
		result.DanglingRemoved += removed
	}

	// Records of named tokens that no index lists: their secret was never
	// handed out. Leased tokens have no index entry and stay until their
	// lease ends, unless they are past their expiry.
	hashes, err := s.List(ctx, tokenRecordPrefix)
	if err != nil {
		return fmt.Errorf("listing token records: %w", err)
	}
	now := time.Now()
	for _, hash := range hashes {
		if err := ctx.Err(); err != nil {
			return err
		}
		result.RecordsScanned++
		removed, err := b.removeIfOrphan(ctx, s, hash, now)
		if err != nil {
			return err
		}
		if removed {
			result.OrphansRemoved++
		}
	}
	return nil
}

// removeIfOrphan deletes the record if it is an orphan, deciding under the
// owner's lock so that a create in progress is never mistaken for one.
func (b *backend) removeIfOrphan(ctx context.Context, s logical.Storage, hash string, now time.Time) (bool, error) {
	record, err := getTokenRecord(ctx, s, hash)
	if err != nil || record == nil {
		return false, err
	}
	if record.Role != "" {
		if !record.expired(now) {
			return false, nil
		}
		// A renewal holds this lock while it extends the record.
		lock := b.lockFor(tokenRecordPath(hash))
		lock.Lock()
		defer lock.Unlock()
		if record, err = getTokenRecord(ctx, s, hash); err != nil || record == nil || !record.expired(now) {
			return false, err
		}
		return true, deleteTokenRecord(ctx, s, hash)
	}

	lock := b.lockFor(userLockKey(record.User))
	lock.Lock()
	defer lock.Unlock()
	index, err := getTokenIndex(ctx, s, record.User)
	if err != nil {
		return false, err
	}
	if listed, ok := index.Tokens[record.Name]; ok && listed.Hash == hash {
		return false, nil
	}
	return true, deleteTokenRecord(ctx, s, hash)
}

const pathTidyHelpSynopsis = `Remove expired personal access tokens and their index entries.`

const pathTidyHelpDescription = `
Removes every expired named PAT: its record and its entry in the owner's
index. Expired tokens already stop verifying at their expiry instant; tidy
reclaims their storage. The same sweep runs every tidy_interval from the
engine's periodic function on the active node.

With repair=true it also removes what an interrupted write can leave behind
(index entries without a record, records of named tokens missing from their
index, expired records of leased tokens), reading every token record.

  vault write -f planqk/tidy
  vault write planqk/tidy repair=true
`
