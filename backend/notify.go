package backend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-uuid"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
	"google.golang.org/protobuf/types/known/structpb"
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
	eventPATLeaked             = "pat-leaked"
	eventProviderTokenWritten  = "provider-token-written"
	eventProviderTokenDeleted  = "provider-token-deleted"
	eventProviderTokenExpiring = "provider-token-expiring"
	eventUserOffboarded        = "user-offboarded"
	// eventProviderTokenUsed (provider_token_use.go) is sent at most once
	// per organization token, member and last_used_granularity.
	// eventNotificationsSuppressed stands in the webhook outbox for an
	// owner's events that found no place there (a flood): how many of
	// each type, first and last. Webhooks only: Vault's event bus got
	// each event.
	eventNotificationsSuppressed = "notifications-suppressed"
)

// securityEventTypes are the events a security team must see even while
// someone floods the outbox: only they (and suppression summaries) may take
// the outbox's reserved places. Add new security-relevant types here. An
// organization's provider-token writes count too (securityRelevant).
var securityEventTypes = map[string]bool{
	eventPATLeaked:               true,
	eventPATRevoked:              true,
	eventLeaseRevoked:            true,
	eventProviderTokenDeleted:    true,
	eventUserOffboarded:          true,
	eventNotificationsSuppressed: true,
}

// securityRelevant tells the events that may take the outbox's reserved
// places: the securityEventTypes, and every write of an organization's
// provider token (one key shared by all its members).
func (event *lifecycleEvent) securityRelevant() bool {
	return securityEventTypes[event.Type] || (event.Org != "" && event.Type == eventProviderTokenWritten)
}

// outboxOwner is whose share of the webhook outbox the event takes: the
// entity it is about, or "org.<id>" for an organization's provider tokens.
// Keyed by id as the organization's data is: an organization created anew
// under a deleted one's name starts with a share of its own.
func (event *lifecycleEvent) outboxOwner() string {
	switch {
	case event.OrgID != "":
		return "org." + event.OrgID
	case event.Org != "":
		return "org." + event.Org
	}
	return event.EntityID
}

// lifecycleEvent is one notification.
type lifecycleEvent struct {
	Type     string
	EntityID string
	User     string // the entity's name when the event happened
	Org      string // for an organization's provider tokens
	OrgID    string // that organization's id (also in Details as org_id)
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
	return &tokenRecord{TokenID: summary.TokenID, Name: name, Scopes: summary.Scopes, Scoped: summary.Scoped, CreatedAt: summary.CreatedAt, ExpiresAt: summary.ExpiresAt}
}

// notify hands the event to the notification channels: a Vault event at
// once, and a webhook through the outbox when a webhook_url is configured.
// It never fails the operation that caused it: a notification that cannot
// be recorded is logged instead.
//
// Cost on the request path: on Vault Enterprise one gRPC call to Vault's
// event bus (none on Community Edition, which cannot deliver events), and
// with a webhook_url one storage write (the outbox entry; none for an
// event past its owner's share, which is only counted); without one, no
// storage round trip (the configuration is cached).
func (b *backend) notify(ctx context.Context, s logical.Storage, event *lifecycleEvent) {
	if event.At.IsZero() {
		event.At = time.Now().UTC()
	}
	// One id for both channels, so that a Vault event and its webhook
	// (webhook-id msg_<id>) can be matched.
	id, err := uuid.GenerateUUID()
	if err != nil {
		b.Logger().Error("notification lost: generating its id failed", "type", event.Type, "error", err)
		return
	}
	b.sendVaultEvent(ctx, id, event)
	b.enqueueWebhook(ctx, s, id, event)
}

// vaultEventTypePrefix is the namespace of the engine's Vault event types,
// as in `vault events subscribe planqk/*`.
const vaultEventTypePrefix = "planqk/"

// webhookTypePrefix is the namespace of the webhook payloads' type, dotted
// as Standard Webhooks recommends: planqk.pat-created.
const webhookTypePrefix = "planqk."

// sendVaultEvent publishes the event on Vault's event bus. Vault prepends
// the mount path to the path and data_path metadata, so subscribers see
// planqk/users/alice/... and need the subscribe capability there.
func (b *backend) sendVaultEvent(ctx context.Context, id string, event *lifecycleEvent) {
	if !b.vaultEvents.haveSubscribers(b.System()) {
		return
	}
	metadata := event.metadata()
	fields := make(map[string]*structpb.Value, len(metadata))
	for key, value := range metadata {
		fields[key] = structpb.NewStringValue(value)
	}
	data := &logical.EventData{
		Id:       id,
		Metadata: &structpb.Struct{Fields: fields},
		Note:     event.Type + " " + event.Path,
	}
	for _, related := range []string{event.EntityID, event.TokenID} {
		if related != "" {
			data.EntityIds = append(data.EntityIds, related)
		}
	}
	err := b.SendEvent(ctx, logical.EventType(vaultEventTypePrefix+event.Type), data)
	if err != nil && !errors.Is(err, framework.ErrNoEvents) {
		b.Logger().Warn("sending a Vault event failed", "type", event.Type, "error", err)
	}
}

// vaultEventAudience remembers whether this Vault lets anyone subscribe to
// events. Since Vault 1.16 only Enterprise does: Community Edition accepts
// a plugin's events and drops them, so there the engine spares every
// lifecycle change that gRPC round trip to Vault. Vault reports its edition
// in the plugin environment ("ent..." version metadata for Enterprise); an
// unknown environment counts as Enterprise, so events are never lost to a
// wrong guess.
type vaultEventAudience struct {
	once sync.Once
	none bool
}

func (a *vaultEventAudience) haveSubscribers(sys logical.SystemView) bool {
	a.once.Do(func() {
		env, err := sys.PluginEnv(context.Background())
		a.none = err == nil && env != nil && env.VaultVersion != "" && !strings.HasPrefix(env.VaultVersionMetadata, "ent")
	})
	return !a.none
}

// metadata is the event as flat, non-secret strings for Vault's event bus:
// path, against which Vault checks a subscriber's subscribe capability;
// data_path and operation (the event type), which subscription filters
// can test; modified for changes (not reminders); the event's fields and
// its details (which never override a field).
func (event *lifecycleEvent) metadata() map[string]string {
	metadata := map[string]string{}
	for key, value := range event.Details {
		metadata[key] = value
	}
	for key, value := range map[string]string{
		logical.EventMetadataPath:      event.Path,
		logical.EventMetadataDataPath:  event.Path,
		logical.EventMetadataOperation: event.Type,
		"entity_id":                    event.EntityID,
		"user":                         event.User,
		"org":                          event.Org,
		"token_id":                     event.TokenID,
		"name":                         event.Name,
		"at":                           event.At.UTC().Format(time.RFC3339Nano),
	} {
		metadata[key] = value
	}
	// Reminders and uses change nothing.
	if event.Type != eventPATExpiring && event.Type != eventProviderTokenExpiring && event.Type != eventProviderTokenUsed {
		metadata[logical.EventMetadataModified] = "true"
	}
	return metadata
}

// webhookPayload is a webhook's body, shaped as Standard Webhooks
// recommends. Every type has the same fields; those that do not apply are
// empty strings.
type webhookPayload struct {
	Type      string           `json:"type"`
	Timestamp string           `json:"timestamp"`
	Data      webhookEventData `json:"data"`
}

type webhookEventData struct {
	EntityID string `json:"entity_id"`
	User     string `json:"user"`
	Org      string `json:"org"`
	TokenID  string `json:"token_id"`
	Name     string `json:"name"`
	// Path is relative to the engine's mount, e.g. users/alice/tokens/ci.
	Path    string            `json:"path"`
	At      string            `json:"at"`
	Details map[string]string `json:"details"`
}

func (event *lifecycleEvent) webhookPayload() webhookPayload {
	at := event.At.UTC().Format(time.RFC3339Nano)
	details := event.Details
	if details == nil {
		details = map[string]string{}
	}
	return webhookPayload{
		Type:      webhookTypePrefix + event.Type,
		Timestamp: at,
		Data: webhookEventData{
			EntityID: event.EntityID, User: event.User, Org: event.Org, TokenID: event.TokenID,
			Name: event.Name, Path: event.Path, At: at, Details: details,
		},
	}
}

// enqueueWebhook stores the event in the outbox, with one storage write,
// when a webhook_url is configured, and wakes the delivery worker. An
// event that finds no place (its owner's share is used up, or the outbox
// is full for its class) costs no storage write: it is counted, reported
// in the status per type and owner, and summarised in a
// notifications-suppressed event that the worker queues for its owner.
func (b *backend) enqueueWebhook(ctx context.Context, s logical.Storage, id string, event *lifecycleEvent) {
	cfg, err := b.getConfig(ctx, s)
	if err != nil {
		b.Logger().Error("webhook notification lost: reading the configuration failed", "type", event.Type, "error", err)
		return
	}
	if cfg.WebhookURL == "" {
		return
	}
	body, err := json.Marshal(event.webhookPayload())
	if err != nil {
		b.Logger().Error("webhook notification lost: encoding failed", "type", event.Type, "error", err)
		return
	}
	entry := &outboxEntry{
		ID: "msg_" + id, Type: webhookTypePrefix + event.Type, Body: string(body), EnqueuedAt: event.At.UTC(),
		Owner: event.outboxOwner(), Security: event.securityRelevant(),
		subject: suppressionSubject{EntityID: event.EntityID, User: event.User, Org: event.Org},
	}
	outbox := b.webhooks.outbox
	first, err := outbox.enqueue(ctx, s, entry, time.Now())
	switch {
	case errors.Is(err, errOutboxFull):
		b.webhooks.recordDrop(entry.Owner, entry.Type)
		if first {
			msg := fmt.Sprintf("the webhook outbox (limit %d, %d per owner, %d kept for security events) has no place for %s of %s: "+
				"its events are counted and summarised in a %s event", outbox.limit, outbox.share, outbox.reserved, entry.Type, entry.Owner, eventNotificationsSuppressed)
			b.Logger().Warn("webhook notifications suppressed", "owner", entry.Owner, "type", entry.Type, "reason", err)
			b.webhooks.recordError(msg)
		}
	case err != nil:
		b.Logger().Error("webhook notification lost", "webhook_id", entry.ID, "type", entry.Type, "error", err)
		return
	}
	b.webhooks.signal()
}

// label names the subject for people: the user's name, or the
// organization, or the owner key when neither is known.
func (subject suppressionSubject) label(owner string) string {
	switch {
	case subject.Org != "":
		return "organization " + subject.Org
	case subject.User != "":
		return subject.User
	}
	return owner
}

// queueSuppressionSummaries queues a notifications-suppressed event for
// every owner whose suppressed events now have a place for their summary.
func (b *backend) queueSuppressionSummaries(ctx context.Context, s logical.Storage) {
	for owner, sup := range b.webhooks.outbox.takeSuppressed() {
		if err := b.queueSuppressionSummary(ctx, s, owner, sup); err != nil {
			b.webhooks.outbox.restoreSuppressed(owner, sup)
			b.webhooks.recordError(err.Error())
		}
	}
}

func (b *backend) queueSuppressionSummary(ctx context.Context, s logical.Storage, owner string, sup *suppression) error {
	id, err := uuid.GenerateUUID()
	if err != nil {
		return fmt.Errorf("generating an event id: %w", err)
	}
	details := map[string]string{
		"suppressed": fmt.Sprint(sup.total),
		"first_at":   formatTime(sup.first),
		"last_at":    formatTime(sup.last),
		"owner":      owner,
	}
	for eventType, n := range sup.counts {
		details["suppressed."+strings.TrimPrefix(eventType, webhookTypePrefix)] = fmt.Sprint(n)
	}
	event := &lifecycleEvent{
		Type: eventNotificationsSuppressed, EntityID: sup.subject.EntityID, User: sup.subject.User, Org: sup.subject.Org,
		Name: fmt.Sprintf("%d events suppressed for %s", sup.total, sup.subject.label(owner)), Path: "notifications/status",
		At: time.Now().UTC(), Details: details,
	}
	body, err := json.Marshal(event.webhookPayload())
	if err != nil {
		return fmt.Errorf("encoding a suppression summary: %w", err)
	}
	entry := &outboxEntry{
		ID: "msg_" + id, Type: webhookTypePrefix + event.Type, Body: string(body), EnqueuedAt: event.At,
		Owner: owner, Security: sup.security, summary: true,
	}
	if _, err := b.webhooks.outbox.enqueue(ctx, s, entry, time.Now()); err != nil {
		return fmt.Errorf("queueing the summary of %d suppressed events of %s: %w", sup.total, owner, err)
	}
	b.Logger().Warn("webhook notifications were suppressed; a summary is queued", "owner", owner, "suppressed", sup.total)
	return nil
}
