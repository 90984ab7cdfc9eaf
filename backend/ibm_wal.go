package backend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// Per-job IBM Cloud API keys and Vault's write-ahead log, as Vault's AWS
// engine does for IAM users: before a key is created, a WAL entry records
// how to find it again (its service ID and its unique name - never its
// value, which does not exist yet); once the key is created and handed
// out, the entry is deleted. If the plugin dies in between, or IAM created
// the key but its answer was lost, the entry stays, and Vault's rollback
// of the mount (framework.Backend.WALRollback, for entries older than
// WALRollbackMinAge) deletes the key by name.

// walKindIBMAPIKey is the kind of the WAL entries of IBM API keys.
const walKindIBMAPIKey = "ibm_apikey"

// ibmAPIKeyWAL is what finds a created key again: where (endpoint,
// account, service ID), which (name, unique per key), and the storage key
// of the provider token whose management key may delete it. No secret.
type ibmAPIKeyWAL struct {
	TokenKey  string `json:"token_key"`
	Endpoint  string `json:"iam_endpoint"`
	AccountID string `json:"account_id"`
	IAMID     string `json:"iam_id"`
	Name      string `json:"name"`
}

// createIBMAPIKeyLogged creates an API key of the WAL entry's service ID
// under the entry's name, with a WAL entry written first. It returns the
// key and the WAL entry's id, which the caller deletes once the key is
// handed out (the lease holds what revoking needs from then on). On an
// error the entry stays when the key may exist: a rollback finds it.
func createIBMAPIKeyLogged(ctx context.Context, s logical.Storage, c *ibmIAM, w ibmAPIKeyWAL, description string) (*ibmAPIKey, string, error) {
	if w.Name == "" || w.IAMID == "" || w.AccountID == "" {
		return nil, "", errors.New("an IBM API key needs a name, a service ID and an account")
	}
	walID, err := framework.PutWAL(ctx, s, walKindIBMAPIKey, &w)
	if err != nil {
		return nil, "", fmt.Errorf("writing the write-ahead log entry of an IBM API key: %w", err)
	}
	key, err := c.createAPIKey(ctx, ibmAPIKeyRequest{Name: w.Name, Description: description, IAMID: w.IAMID, AccountID: w.AccountID})
	if err != nil {
		var status ibmStatusError
		if errors.As(err, &status) && status.code >= 400 && status.code < 500 {
			// IAM refused: no key was made, nothing to roll back.
			if derr := framework.DeleteWAL(ctx, s, walID); derr != nil {
				return nil, "", errors.Join(err, derr)
			}
		}
		return nil, "", err
	}
	return key, walID, nil
}

// parseIBMAPIKeyWAL reads a WAL entry's data (a map after JSON).
func parseIBMAPIKeyWAL(data interface{}) (ibmAPIKeyWAL, error) {
	var w ibmAPIKeyWAL
	raw, err := json.Marshal(data)
	if err == nil {
		err = json.Unmarshal(raw, &w)
	}
	if err != nil {
		return w, fmt.Errorf("malformed %s write-ahead log entry", walKindIBMAPIKey)
	}
	if w.Name == "" || w.IAMID == "" || w.AccountID == "" {
		return w, fmt.Errorf("malformed %s write-ahead log entry: name, iam_id or account_id missing", walKindIBMAPIKey)
	}
	return w, nil
}

// rollbackIBMAPIKey deletes every key of the entry's service ID with the
// entry's name (normally one, or none if the creation never reached IAM).
// Deleting none is success: the entry can go.
func rollbackIBMAPIKey(ctx context.Context, c *ibmIAM, w ibmAPIKeyWAL) error {
	keys, err := c.apiKeysNamed(ctx, w.AccountID, w.IAMID, w.Name)
	if err != nil {
		return err
	}
	var errs []error
	for _, key := range keys {
		if err := c.deleteAPIKey(ctx, key.ID); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
