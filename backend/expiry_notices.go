package backend

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// Expiry reminders. Each sweep (tidy_interval, or tidy on request) finds the
// named PATs and the provider tokens with an expiry that crossed one of the
// expiry_notices thresholds and notifies their owner once per token and
// threshold: the thresholds already notified are stored with the token, in
// the same write that follows the notification, so that a restart or a
// failover repeats a reminder only if it struck between the two. A token
// that crossed several thresholds since the last sweep (one created with a
// short lifetime, say) gets one reminder, for the nearest.
//
// Leased PATs get no reminders: they live minutes or hours and their
// runtime renews or replaces them.

// dueNotice returns the threshold to remind of now - the smallest one the
// expiry has crossed that was not yet notified - and the thresholds to
// mark as notified; "" when nothing is due.
func dueNotice(expiresAt, now time.Time, thresholds []time.Duration, sent []string) (string, []string) {
	if expiresAt.IsZero() || !now.Before(expiresAt) {
		return "", nil
	}
	left := expiresAt.Sub(now)
	due, marked := "", slices.Clone(sent)
	for _, threshold := range thresholds { // longest first
		name := threshold.String()
		if left > threshold || slices.Contains(sent, name) {
			continue
		}
		due = name
		marked = append(marked, name)
	}
	if due == "" {
		return "", nil
	}
	return due, marked
}

// remindNamedTokens notifies the due reminders of an entity's named tokens
// and records them in the index; the caller holds the entity's lock and
// writes the index when changed is true.
func (b *backend) remindNamedTokens(ctx context.Context, s logical.Storage, cfg *configEntry, entityID, user string, index *tokenIndex, now time.Time) (sent int, changed bool) {
	for name, summary := range index.Tokens {
		due, marked := dueNotice(summary.ExpiresAt, now, cfg.ExpiryNotices, summary.NoticesSent)
		if due == "" {
			continue
		}
		event := patEvent(eventPATExpiring, entityID, user, summaryRecord(name, summary))
		event.Details["threshold"] = due
		b.notify(ctx, s, event)
		summary.NoticesSent = marked
		sent++
		changed = true
	}
	return sent, changed
}

// remindProviderTokens notifies the due reminders of the provider tokens
// stored under the owner and records them in each token, and returns when
// the owner's next reminder is due (zero: none); the caller holds the
// owner's lock.
func (b *backend) remindProviderTokens(ctx context.Context, s logical.Storage, cfg *configEntry, owner *providerTokenOwner, now time.Time) (int, time.Time, error) {
	var next time.Time
	if len(cfg.ExpiryNotices) == 0 {
		return 0, next, nil
	}
	providers, err := s.List(ctx, owner.storagePrefix())
	if err != nil {
		return 0, next, fmt.Errorf("listing provider tokens: %w", err)
	}
	sent := 0
	for _, provider := range providers {
		entry, err := getProviderToken(ctx, s, owner.storagePrefix(), provider)
		if err != nil {
			return sent, next, err
		}
		if entry == nil {
			continue
		}
		due, marked := dueNotice(entry.ExpiresAt, now, cfg.ExpiryNotices, entry.NoticesSent)
		if due != "" {
			event := owner.providerTokenEvent(eventProviderTokenExpiring, entry)
			event.Details["threshold"] = due
			b.notify(ctx, s, event)
			entry.NoticesSent = marked
			if err := b.putProviderToken(ctx, s, owner.storagePrefix(), entry); err != nil {
				return sent, next, err
			}
			sent++
		}
		if at := providerTokenDue(entry, cfg.ExpiryNotices); !at.IsZero() && now.Before(entry.ExpiresAt) {
			next = earlier(next, at)
		}
	}
	return sent, next, nil
}

// remindOrganizations sends the due reminders of every organization's
// provider tokens, one organization at a time under its lock, and writes
// each one's next due entry. Only the sweep of a mount whose due index is
// being built reads every organization.
func (b *backend) remindOrganizations(ctx context.Context, s logical.Storage, cfg *configEntry, now time.Time) (int, error) {
	if len(cfg.ExpiryNotices) == 0 {
		return 0, nil
	}
	orgs, err := listProviderTokenOrgs(ctx, s)
	if err != nil {
		return 0, err
	}
	sent := 0
	for _, orgID := range orgs {
		if err := ctx.Err(); err != nil {
			return sent, err
		}
		name, err := b.orgNameOf(ctx, s, orgID)
		if err != nil {
			return sent, err
		}
		owner := &providerTokenOwner{org: &orgTarget{name: name, id: orgID}}
		n, err := func() (int, error) {
			lock := b.lockFor(owner.lockKey())
			lock.Lock()
			defer lock.Unlock()
			n, next, err := b.remindProviderTokens(ctx, s, cfg, owner, now)
			if err != nil {
				return n, err
			}
			_, err = b.reschedule(ctx, s, orgSubject(orgID), 0, next)
			return n, err
		}()
		sent += n
		if err != nil {
			return sent, err
		}
	}
	return sent, nil
}
