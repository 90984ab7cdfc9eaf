package backend

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

func pathNotifications(b *backend) []*framework.Path {
	return []*framework.Path{
		{
			Pattern: "notifications/webhook-secret$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefixPlanqk,
				OperationSuffix: "webhook-secret",
			},
			Fields: map[string]*framework.FieldSchema{
				"previous_secret_ttl": {
					Type:        framework.TypeDurationSecond,
					Description: "On rotation, how long deliveries are also signed with the secret being replaced, so that the receiver can switch without rejecting anything; 0 stops signing with it at once (a leaked secret).",
					Default:     int(defaultPreviousSecretTTL.Seconds()),
				},
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.UpdateOperation: &framework.PathOperation{
					Callback:                    b.pathWebhookSecretRotate,
					ForwardPerformanceStandby:   true,
					ForwardPerformanceSecondary: true,
					DisplayAttrs:                &framework.DisplayAttributes{OperationVerb: "rotate"},
					Responses: okResponse("The new signing secret, shown this once, with a warning saying so.", fieldSet{
						"secret":                     {Type: framework.TypeString, Description: "The signing secret, whsec_<base64>. Shown this once: nothing reads it back.", DisplayAttrs: &framework.DisplayAttributes{Sensitive: true}},
						"created_at":                 {Type: framework.TypeTime, Description: "When the secret was generated (RFC 3339)."},
						"previous_secret_expires_at": {Type: framework.TypeString, Description: "Until when deliveries are also signed with the replaced secret (RFC 3339); empty when none is."},
					}),
				},
				logical.DeleteOperation: &framework.PathOperation{
					Callback:                    b.pathWebhookSecretDelete,
					ForwardPerformanceStandby:   true,
					ForwardPerformanceSecondary: true,
					DisplayAttrs:                &framework.DisplayAttributes{OperationVerb: "delete"},
					Responses:                   noContentResponse("The secret is deleted, or there was none: deliveries pause, events keep queueing."),
				},
			},
			HelpSynopsis:    pathWebhookSecretHelpSynopsis,
			HelpDescription: pathWebhookSecretHelpDescription,
		},
		{
			Pattern: "notifications/status$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefixPlanqk,
				OperationVerb:   "read",
				OperationSuffix: "notifications-status",
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{
					Callback: b.pathNotificationsStatus,
					// Deliveries run on the node that may write, and the
					// next retry lives in its memory.
					ForwardPerformanceStandby:   true,
					ForwardPerformanceSecondary: true,
					Responses:                   okResponse("Webhook delivery on the node that may write; never the secret or the webhook URL.", notificationsStatusFields),
				},
			},
			HelpSynopsis:    pathNotificationsStatusHelpSynopsis,
			HelpDescription: pathNotificationsStatusHelpDescription,
		},
	}
}

// notificationsStatusFields describe pathNotificationsStatus's answer.
var notificationsStatusFields = fieldSet{
	"webhook_configured":         {Type: framework.TypeBool, Description: "Whether config has a webhook_url."},
	"secret_configured":          {Type: framework.TypeBool, Description: "Whether a signing secret exists."},
	"secret_created_at":          {Type: framework.TypeString, Description: "When the signing secret was generated (RFC 3339); empty without one."},
	"previous_secret_expires_at": {Type: framework.TypeString, Description: "Until when deliveries are also signed with the replaced secret (RFC 3339); empty when none is."},
	"pending":                    {Type: framework.TypeInt, Description: "Events waiting in the outbox."},
	"outbox_limit":               {Type: framework.TypeInt, Description: "Most events the outbox holds; past it new events are dropped (counted and summarised)."},
	"outbox_reserved":            {Type: framework.TypeInt, Description: "Places at the top of the outbox that only security-relevant events and summaries of suppressed ones may take."},
	"owner_share":                {Type: framework.TypeInt, Description: "Most events of one owner (an entity, or an organization's provider tokens) the outbox holds; past it the owner's events are coalesced into one notifications-suppressed event."},
	"owner_reserved":             {Type: framework.TypeInt, Description: "Places at the top of each owner's share that only its security-relevant events may take: its routine events stop at owner_share - owner_reserved."},
	"next_attempt_at":            {Type: framework.TypeString, Description: "When a failed delivery is retried (RFC 3339); empty when none waits."},
	"delivered":                  {Type: framework.TypeInt64, Description: "Events delivered."},
	"failed":                     {Type: framework.TypeInt64, Description: "Events given up after 50 attempts or 72 hours."},
	"dropped":                    {Type: framework.TypeInt64, Description: "Events not queued because their owner's share or the outbox was full; each is counted in a notifications-suppressed event for its owner."},
	"dropped_by_owner":           {Type: framework.TypeMap, Description: "dropped by owner (an entity id, or org.<name>; at most 100 owners by name: a new one takes the place of the one with the fewest drops, whose counts move to \"other\") and event type."},
	"dropped_by_type":            {Type: framework.TypeMap, Description: "dropped by event type."},
	"last_delivery_at":           {Type: framework.TypeString, Description: "When an event was last delivered (RFC 3339); empty if never."},
	"last_error":                 {Type: framework.TypeString, Description: "Why the last failed attempt failed; empty if none did."},
	"last_error_at":              {Type: framework.TypeString, Description: "When the last attempt failed (RFC 3339); empty if none did."},
}

// pathWebhookSecretRotate generates a signing secret, replacing any
// previous one, and returns it this once.
func (b *backend) pathWebhookSecretRotate(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	keep := time.Duration(d.Get("previous_secret_ttl").(int)) * time.Second
	if keep < 0 || keep > maxPreviousSecretTTL {
		return logical.ErrorResponse(fmt.Sprintf("previous_secret_ttl must be between 0 and %s", maxPreviousSecretTTL)), nil
	}

	lock := b.lockFor(webhookSecretPath)
	lock.Lock()
	defer lock.Unlock()

	old, err := b.getWebhookSecret(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	secret, err := newWebhookSecret(b.GetRandomReader(), now)
	if err != nil {
		return nil, err
	}
	secret.rotatedFrom(old, now, keep)
	entry, err := logical.StorageEntryJSON(webhookSecretPath, secret)
	if err != nil {
		return nil, fmt.Errorf("encoding the webhook signing secret: %w", err)
	}
	if err := req.Storage.Put(ctx, entry); err != nil {
		return nil, fmt.Errorf("storing the webhook signing secret: %w", err)
	}
	b.webhookSecret.set(webhookSecretPath, secret)
	// Events waiting for a secret can go now.
	b.webhooks.signal()

	data := map[string]interface{}{
		"secret":                     secret.serialized(),
		"created_at":                 secret.CreatedAt.Format(time.RFC3339),
		"previous_secret_expires_at": "",
	}
	if secret.previousValidAt(now) {
		data["previous_secret_expires_at"] = secret.PreviousExpiresAt.Format(time.RFC3339)
	}
	resp := &logical.Response{Data: data}
	resp.AddWarning("the secret is shown this once: configure it in the webhook receiver now; a write here rotates it")
	return resp, nil
}

func (b *backend) pathWebhookSecretDelete(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	lock := b.lockFor(webhookSecretPath)
	lock.Lock()
	defer lock.Unlock()
	if err := req.Storage.Delete(ctx, webhookSecretPath); err != nil {
		return nil, fmt.Errorf("deleting the webhook signing secret: %w", err)
	}
	b.webhookSecret.remove(webhookSecretPath)
	return nil, nil
}

func (b *backend) pathNotificationsStatus(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	cfg, err := b.getConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	secret, err := b.getWebhookSecret(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	if err := b.webhooks.outbox.ensureLoaded(ctx, req.Storage); err != nil {
		return nil, err
	}
	if err := b.webhooks.loadStats(ctx, req.Storage); err != nil {
		return nil, err
	}
	stats, retryAt := b.webhooks.snapshot()
	data := map[string]interface{}{
		"webhook_configured":         cfg.WebhookURL != "",
		"secret_configured":          secret != nil,
		"secret_created_at":          "",
		"previous_secret_expires_at": "",
		"pending":                    b.webhooks.outbox.pendingCount(),
		"outbox_limit":               b.webhooks.outbox.limit,
		"next_attempt_at":            formatOptionalTime(retryAt),
		"delivered":                  stats.Delivered,
		"failed":                     stats.Failed,
		"dropped":                    stats.Dropped,
		"dropped_by_owner":           stats.DroppedBy,
		"dropped_by_type":            droppedByType(stats.DroppedBy),
		"outbox_reserved":            b.webhooks.outbox.reserved,
		"owner_share":                b.webhooks.outbox.share,
		"owner_reserved":             b.webhooks.outbox.ownerReserved(),
		"last_delivery_at":           formatOptionalTime(stats.LastDeliveryAt),
		"last_error":                 stats.LastError,
		"last_error_at":              formatOptionalTime(stats.LastErrorAt),
	}
	if secret != nil {
		data["secret_created_at"] = formatOptionalTime(secret.CreatedAt)
		if secret.previousValidAt(time.Now()) {
			data["previous_secret_expires_at"] = formatOptionalTime(secret.PreviousExpiresAt)
		}
	}
	return &logical.Response{Data: data}, nil
}

// droppedByType sums the dropped counts over owners.
func droppedByType(byOwner map[string]map[string]uint64) map[string]uint64 {
	byType := make(map[string]uint64)
	for _, types := range byOwner {
		for eventType, n := range types {
			byType[eventType] += n
		}
	}
	return byType
}

const pathWebhookSecretHelpSynopsis = `Generate or rotate the secret that signs webhooks; shown once.`

const pathWebhookSecretHelpDescription = `
Lifecycle notifications are sent to config's webhook_url as Standard Webhooks
(standardwebhooks.com): each POST carries webhook-id (the same on every
retry: receivers drop duplicates by it), webhook-timestamp and
webhook-signature "v1,<base64 HMAC-SHA256 of id.timestamp.body>".

A write generates a new secret (32 random bytes, serialised as
whsec_<base64>) and returns it this once; nothing reads it back, and config
never shows it. Until a secret exists, events wait in the outbox.

Rotation: after a write, deliveries are signed with the new secret and, for
previous_secret_ttl (default 24h), also with the old one - both signatures
in the header, as Standard Webhooks allows - so the receiver can switch at
any time in that window. A delivery already in flight when the secret
changes carries only the old signature; if the receiver has switched and
rejects it, the retry carries both. previous_secret_ttl=0 (a leaked secret)
stops the old signature at once: deliveries fail and are retried until the
receiver has the new secret.

A delete removes the secret: deliveries pause, events keep queueing.

  vault write -f planqk/notifications/webhook-secret
  vault write planqk/notifications/webhook-secret previous_secret_ttl=0
`

const pathNotificationsStatusHelpSynopsis = `Report webhook delivery: pending, delivered, failed and the last error.`

const pathNotificationsStatusHelpDescription = `
  webhook_configured   whether config has a webhook_url
  secret_configured    whether a signing secret exists (secret_created_at,
                       previous_secret_expires_at during a rotation)
  pending              events in the outbox (at most outbox_limit)
  owner_share          most events of one owner (an entity, or an
                       organization's provider tokens) in the outbox
  owner_reserved       places of each owner's share only its
                       security-relevant events take
  outbox_reserved      places only security-relevant events take: leaked
                       and revoked PATs, revoked leases, deleted provider
                       tokens, offboarded users, organization provider-token
                       writes, summaries of suppressed ones. Such an event
                       is queued even while its owner's routine events are
                       being suppressed
  dropped              events not queued: their owner's share or the
                       outbox was full. Counted per owner and type in
                       dropped_by_owner and dropped_by_type, and sent as one
                       planqk.notifications-suppressed event per owner
                       ("N events suppressed for X") once there is room
  next_attempt_at      when the earliest failed delivery is retried; the
                       same owner's later events wait behind it so that
                       they arrive in order, other owners' do not
  delivered, failed    events delivered, and given up after 50 attempts or
                       72 hours; stored, so they survive restarts (a crash
                       may lose the counts of the batch in progress)
  last_delivery_at, last_error, last_error_at

Deliveries run on the node that may write; reads on other nodes are
forwarded to it. No field holds the secret or the webhook URL.

  vault read planqk/notifications/status
`
