package backend

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

const secretPATType = "planqk_personal_access_token"

// leaseInternalData is everything Renew and Revoke need, carried by the
// lease itself so that they work without any other state.
type leaseInternalData struct {
	Hash     string
	EntityID string // absent from leases issued by v0.1.0
	Role     string
}

func (l leaseInternalData) toMap() map[string]interface{} {
	return map[string]interface{}{
		"token_hash": l.Hash,
		"entity_id":  l.EntityID,
		"role":       l.Role,
	}
}

var errBadLeaseData = errors.New("lease internal data is missing or malformed")

func parseLeaseInternalData(secret *logical.Secret) (leaseInternalData, error) {
	var l leaseInternalData
	if secret == nil {
		return l, errBadLeaseData
	}
	// Leases of v0.1.0 and of earlier v0.2 builds also carry token_id,
	// which nothing needs: it is not required, so that no lease can become
	// impossible to revoke over it.
	fields := map[string]*string{"token_hash": &l.Hash, "role": &l.Role}
	for key, dst := range fields {
		v, ok := secret.InternalData[key].(string)
		if !ok {
			return l, fmt.Errorf("%w: %s", errBadLeaseData, key)
		}
		*dst = v
	}
	if !validTokenHash(l.Hash) {
		return l, fmt.Errorf("%w: token_hash", errBadLeaseData)
	}
	if raw, present := secret.InternalData["entity_id"]; present {
		entityID, ok := raw.(string)
		if !ok || !validEntityID(entityID) {
			return l, fmt.Errorf("%w: entity_id", errBadLeaseData)
		}
		l.EntityID = entityID
	}
	return l, nil
}

// leaseOwner returns the entity of the lease's token: from the lease, or
// for a v0.1.0 lease from the token's record; "" when the record is gone.
func leaseOwner(ctx context.Context, s logical.Storage, lease leaseInternalData) (string, error) {
	if lease.EntityID != "" {
		return lease.EntityID, nil
	}
	record, err := getTokenRecord(ctx, s, lease.Hash)
	if err != nil || record == nil {
		return "", err
	}
	return record.EntityID, nil
}

func secretPAT(b *backend) *framework.Secret {
	return &framework.Secret{
		Type: secretPATType,
		Fields: map[string]*framework.FieldSchema{
			"token": {
				Type:        framework.TypeString,
				Description: "The personal access token.",
			},
		},
		Renew:  b.secretPATRenew,
		Revoke: b.secretPATRevoke,
	}
}

func (b *backend) secretPATRenew(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	lease, err := parseLeaseInternalData(req.Secret)
	if err != nil {
		return nil, err
	}
	role, err := b.getRole(ctx, req.Storage, lease.Role)
	if err != nil {
		return nil, err
	}
	if role == nil {
		return logical.ErrorResponse(fmt.Sprintf("role %q no longer exists; the lease cannot be renewed", lease.Role)), nil
	}
	cfg, err := b.getConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	mount := b.mountLeaseTTLs()
	maxTTL := leaseMaxTTL(mount, role, cfg)
	// A runtime read's lease ends with the first credential derived for it.
	derived, err := parseDerivedLease(req.Secret.InternalData)
	if err != nil {
		return nil, err
	}
	if expiry := derivedLeaseExpiry(derived); !expiry.IsZero() {
		maxTTL = min(maxTTL, expiry.Sub(req.Secret.IssueTime))
	}
	for _, d := range derived {
		if method, _ := d["method"].(string); method == derivationIBMServiceIDKey {
			if resp, err := ibmKeyGoneRefusal(ctx, req.Storage, d); resp != nil || err != nil {
				return resp, err
			}
		}
	}
	entityID, err := leaseOwner(ctx, req.Storage, lease)
	if err != nil {
		return nil, err
	}
	if entityID == "" {
		return logical.ErrorResponse("the token of this lease was revoked; it cannot be renewed"), nil
	}

	// Under the entity's lock, so that a revocation cannot interleave and
	// have the record written back after it is gone.
	lock := b.lockFor(entityLockKey(entityID))
	lock.Lock()
	defer lock.Unlock()

	record, err := getTokenRecord(ctx, req.Storage, lease.Hash)
	if err != nil {
		return nil, err
	}
	if record == nil {
		return logical.ErrorResponse("the token of this lease was revoked; it cannot be renewed"), nil
	}

	ttl, warnings, err := framework.CalculateTTL(mount, req.Secret.Increment, role.TTL, 0, maxTTL, 0, req.Secret.IssueTime)
	if err != nil {
		return nil, err
	}
	record.ExpiresAt = time.Now().UTC().Add(ttl).Truncate(time.Second)
	if err := putTokenRecord(ctx, req.Storage, record); err != nil {
		return nil, err
	}
	b.records.set(record.Hash, record)
	marker, err := getLeaseMarker(ctx, req.Storage, entityID, record.Hash)
	if err != nil {
		return nil, err
	}
	if marker == nil {
		// Lost to a crash: list the lease again.
		err = b.putLeaseMarker(ctx, req.Storage, record)
	} else {
		marker.ExpiresAt = record.ExpiresAt
		err = putLeaseMarkerEntry(ctx, req.Storage, entityID, record.Hash, marker)
	}
	if err != nil {
		return nil, err
	}

	resp := &logical.Response{Secret: req.Secret}
	resp.Secret.TTL = ttl
	resp.Secret.MaxTTL = maxTTL
	for _, warning := range warnings {
		resp.AddWarning(warning)
	}
	return resp, nil
}

// secretPATRevoke deletes the token's record and marker, and ends what was
// derived for a runtime read's job. The PAT goes first, so that a provider
// that cannot be reached (an IBM job key not yet deleted) never keeps it
// alive; Vault retries the revocation until the derived credentials are
// gone too, and a token that is already gone counts as revoked.
func (b *backend) secretPATRevoke(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	derived, err := parseDerivedLease(req.Secret.InternalData)
	if err != nil {
		return nil, err
	}
	resp, err := b.revokePATLease(ctx, req)
	if err != nil {
		return resp, err
	}
	return resp, b.revokeAllDerived(ctx, req.Storage, derived)
}

// revokePATLease deletes a leased token's record and marker.
func (b *backend) revokePATLease(ctx context.Context, req *logical.Request) (*logical.Response, error) {
	lease, err := parseLeaseInternalData(req.Secret)
	if err != nil {
		return nil, err
	}
	entityID, err := leaseOwner(ctx, req.Storage, lease)
	if err != nil || entityID == "" {
		return nil, err
	}
	// For the event; asked of Vault before the lock, which other requests
	// of every entity on the stripe wait for.
	ownerName := b.liveNameOf(ctx, req.Storage, entityID)
	lock := b.lockFor(entityLockKey(entityID))
	lock.Lock()
	defer lock.Unlock()
	record, err := getTokenRecord(ctx, req.Storage, lease.Hash)
	if err != nil {
		return nil, err
	}
	leases, counted := b.leaseCounts.get(entityID)
	if err := b.revokeLease(ctx, req.Storage, entityID, lease.Hash); err != nil {
		return nil, err
	}
	if record != nil && counted && leases > 0 {
		// Jobs take a lease each and end it: keep the count exact rather
		// than have the owner's next creds list up to 1,000 markers again
		// (under the lock, so no issue or revoke of the entity interleaves).
		b.leaseCounts.set(entityID, leases-1)
	}
	if record != nil {
		event := patEvent(eventLeaseRevoked, entityID, ownerName, record)
		event.Details["reason"] = "lease ended"
		b.notify(ctx, req.Storage, event)
	}
	return nil, nil
}
