package backend

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
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
					Description: "Also remove what an interrupted write left behind: index entries and lease markers without their token record, and records no index or marker lists. Reads every token record.",
				},
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.UpdateOperation: &framework.PathOperation{
					Callback:                    b.pathTidy,
					ForwardPerformanceStandby:   true,
					ForwardPerformanceSecondary: true,
					Responses: responses{http.StatusAccepted: {{Description: "The sweep started in the background; no data, a warning pointing to tidy/status."}}}.
						or(http.StatusConflict, `A sweep is already running. Body: {"errors": ["<reason>"]}.`),
				},
			},
			HelpSynopsis:    pathTidyHelpSynopsis,
			HelpDescription: pathTidyHelpDescription,
		},
		{
			Pattern: "tidy/status$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefixPlanqk,
				OperationVerb:   "read",
				OperationSuffix: "tidy-status",
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{
					Callback:  b.pathTidyStatus,
					Responses: okResponse("The running or last sweep on this node.", tidyStatusFields),
					// The sweep runs on the node that may write, and its
					// status lives in that node's memory.
					ForwardPerformanceStandby:   true,
					ForwardPerformanceSecondary: true,
				},
			},
			HelpSynopsis:    pathTidyStatusHelpSynopsis,
			HelpDescription: pathTidyStatusHelpDescription,
		},
	}
}

// tidyResult counts what a sweep did.
type tidyResult struct {
	EntitiesScanned    int `json:"entities_scanned"`
	DueBucketsRead     int `json:"due_buckets_read"`
	OwnersChecked      int `json:"owners_checked"`
	ExpiredRemoved     int `json:"expired_removed"`
	NoticesSent        int `json:"notices_sent"`
	EntitiesOffboarded int `json:"entities_offboarded"`
	RecordsScanned     int `json:"records_scanned"`
	OrphansRemoved     int `json:"orphans_removed"`
	DanglingRemoved    int `json:"dangling_removed"`
	LeakedPruned       int `json:"leaked_pruned"`
}

// add adds what another part of the sweep did.
func (r *tidyResult) add(o *tidyResult) {
	r.EntitiesScanned += o.EntitiesScanned
	r.DueBucketsRead += o.DueBucketsRead
	r.OwnersChecked += o.OwnersChecked
	r.ExpiredRemoved += o.ExpiredRemoved
	r.NoticesSent += o.NoticesSent
	r.EntitiesOffboarded += o.EntitiesOffboarded
	r.RecordsScanned += o.RecordsScanned
	r.OrphansRemoved += o.OrphansRemoved
	r.DanglingRemoved += o.DanglingRemoved
	r.LeakedPruned += o.LeakedPruned
}

// tidyState is the one sweep that may run at a time on this node, and what
// the last one did.
type tidyState struct {
	mu         sync.Mutex
	running    bool
	trigger    string // "request" or "periodic"
	repair     bool
	startedAt  time.Time
	finishedAt time.Time
	lastErr    error
	result     tidyResult
}

// start claims the sweep; false if one is running.
func (t *tidyState) start(trigger string, repair bool) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.running {
		return false
	}
	t.running, t.trigger, t.repair = true, trigger, repair
	t.startedAt, t.finishedAt, t.lastErr, t.result = time.Now().UTC(), time.Time{}, nil, tidyResult{}
	return true
}

func (t *tidyState) finish(result *tidyResult, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.running, t.finishedAt, t.lastErr = false, time.Now().UTC(), err
	if result != nil {
		t.result = *result
	}
}

// lastStart returns when the last sweep started; zero if none ran.
func (t *tidyState) lastStart() time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.startedAt
}

// tidyStatusFields describe tidyState.toResponseData.
var tidyStatusFields = fieldSet{
	"state":               {Type: framework.TypeString, Description: "State of the sweep.", AllowedValues: []interface{}{"idle", "running", "finished", "error"}},
	"trigger":             {Type: framework.TypeString, Description: `What started the sweep: "request" or "periodic"; empty if none ran.`},
	"repair":              {Type: framework.TypeBool, Description: "Whether the sweep also repairs what interrupted writes left behind."},
	"started_at":          {Type: framework.TypeString, Description: "When the sweep started (RFC 3339 with fractional seconds); empty if none ran."},
	"finished_at":         {Type: framework.TypeString, Description: "When the sweep ended (RFC 3339 with fractional seconds); empty while it runs or if none ran."},
	"error":               {Type: framework.TypeString, Description: "Why the sweep failed; empty if it did not."},
	"entities_scanned":    {Type: framework.TypeInt, Description: "Subjects (owner entities and organizations) looked at because something of theirs came due; every owner while an upgraded mount's due index is being built."},
	"due_buckets_read":    {Type: framework.TypeInt, Description: "Hour buckets of the due index listed."},
	"owners_checked":      {Type: framework.TypeInt, Description: "Owners the offboarding scan asked Vault about (at most 1,000 a sweep, resuming where the last sweep stopped)."},
	"expired_removed":     {Type: framework.TypeInt, Description: "Expired tokens removed."},
	"notices_sent":        {Type: framework.TypeInt, Description: "Expiry reminders sent."},
	"entities_offboarded": {Type: framework.TypeInt, Description: "Deleted entities whose tokens and provider tokens were removed after offboarding_grace."},
	"records_scanned":     {Type: framework.TypeInt, Description: "Token records read by a repair."},
	"orphans_removed":     {Type: framework.TypeInt, Description: "Token records no index or lease marker listed, removed by a repair."},
	"dangling_removed":    {Type: framework.TypeInt, Description: "Index entries and lease markers without their token record, removed by a repair."},
	"leaked_pruned":       {Type: framework.TypeInt, Description: "Records of where a revoked token leaked, removed after their 90 days."},
}

func (t *tidyState) toResponseData() map[string]interface{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	state := "idle"
	switch {
	case t.running:
		state = "running"
	case t.lastErr != nil:
		state = "error"
	case !t.finishedAt.IsZero():
		state = "finished"
	}
	data := map[string]interface{}{
		"state":               state,
		"trigger":             t.trigger,
		"repair":              t.repair,
		"started_at":          "",
		"finished_at":         "",
		"error":               "",
		"entities_scanned":    t.result.EntitiesScanned,
		"due_buckets_read":    t.result.DueBucketsRead,
		"owners_checked":      t.result.OwnersChecked,
		"expired_removed":     t.result.ExpiredRemoved,
		"notices_sent":        t.result.NoticesSent,
		"entities_offboarded": t.result.EntitiesOffboarded,
		"records_scanned":     t.result.RecordsScanned,
		"orphans_removed":     t.result.OrphansRemoved,
		"dangling_removed":    t.result.DanglingRemoved,
		"leaked_pruned":       t.result.LeakedPruned,
	}
	if !t.startedAt.IsZero() {
		data["started_at"] = t.startedAt.Format(time.RFC3339Nano)
	}
	if !t.finishedAt.IsZero() {
		data["finished_at"] = t.finishedAt.Format(time.RFC3339Nano)
	}
	if t.lastErr != nil {
		data["error"] = t.lastErr.Error()
	}
	return data
}

// pathTidy starts a sweep in the background, as Vault's own tidy
// endpoints do: a repair reads every token record and can outlast
// max_request_duration.
func (b *backend) pathTidy(_ context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	repair := d.Get("repair").(bool)
	if !b.tidy.start("request", repair) {
		return respondError(http.StatusConflict, "a tidy is already running: see tidy/status"), nil
	}
	storage := req.Storage
	go func() {
		// The request's context ends with the request; the sweep runs on.
		result, err := b.runTidy(context.Background(), storage, repair)
		b.tidy.finish(result, err)
		if err != nil {
			b.Logger().Error("tidy failed", "error", err)
		}
	}()
	resp := &logical.Response{}
	resp.AddWarning("tidy started in the background: read tidy/status for its progress and result")
	return logical.RespondWithStatusCode(resp, req, http.StatusAccepted)
}

func (b *backend) pathTidyStatus(_ context.Context, _ *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	return &logical.Response{Data: b.tidy.toResponseData()}, nil
}

// periodicTidy runs the expiry sweep every tidy_interval; the caller has
// checked that this node may write.
func (b *backend) periodicTidy(ctx context.Context, req *logical.Request) error {
	cfg, err := b.getConfig(ctx, req.Storage)
	if err != nil {
		return err
	}
	if cfg.TidyInterval == 0 || time.Since(b.tidy.lastStart()) < cfg.TidyInterval {
		return nil
	}
	if !b.tidy.start("periodic", false) {
		return nil
	}
	result, err := b.runTidy(ctx, req.Storage, false)
	b.tidy.finish(result, err)
	if err != nil {
		return err
	}
	if result.ExpiredRemoved > 0 {
		b.Logger().Info("removed expired personal access tokens", "count", result.ExpiredRemoved, "entities_scanned", result.EntitiesScanned)
	}
	return nil
}

func (b *backend) runTidy(ctx context.Context, s logical.Storage, repair bool) (*tidyResult, error) {
	result := &tidyResult{}
	// Uses noted since the last periodic run are written first, so that a
	// tidy on request leaves last use up to date.
	if err := b.flushLastUse(ctx, s); err != nil {
		return result, err
	}
	if err := b.flushProviderTokenUse(ctx, s); err != nil {
		return result, err
	}
	if err := b.sweep(ctx, s, time.Now(), result); err != nil {
		return result, err
	}
	pruned, err := pruneLeaked(ctx, s, time.Now())
	result.LeakedPruned = pruned
	if err != nil {
		return result, err
	}
	if repair {
		if err := b.repairTokens(ctx, s, result); err != nil {
			return result, err
		}
		// The due index and the counters, rebuilt from what the repair left.
		if err := b.recountNow(s, true); err != nil {
			return result, err
		}
	}
	return result, nil
}

// listOwnerEntities returns the ids of the entities that own something.
func listOwnerEntities(ctx context.Context, s logical.Storage) ([]string, error) {
	keys, err := s.List(ctx, entityPrefix)
	if err != nil {
		return nil, fmt.Errorf("listing owner entities: %w", err)
	}
	ids := make([]string, 0, len(keys))
	for _, key := range keys {
		if id := strings.TrimSuffix(key, "/"); validEntityID(id) {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// sweep brings what came due up to date - offboarding, expired tokens,
// expiry reminders - one subject at a time under its lock (see the due
// index). Until an upgraded mount's due index is built it reads every
// owner and organization, as before the index.
func (b *backend) sweep(ctx context.Context, s logical.Storage, now time.Time, result *tidyResult) error {
	cfg, err := b.getConfig(ctx, s)
	if err != nil {
		return err
	}
	built, err := b.dueIndexBuilt(ctx, s)
	if err != nil {
		return err
	}
	if built {
		return b.sweepDue(ctx, s, cfg, now, result)
	}
	entities, err := listOwnerEntities(ctx, s)
	if err != nil {
		return err
	}
	for _, entityID := range entities {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := b.sweepEntity(ctx, s, cfg, entityID, 0, now, result); err != nil {
			return err
		}
		result.EntitiesScanned++
	}
	sent, err := b.remindOrganizations(ctx, s, cfg, now)
	result.NoticesSent += sent
	return err
}

// sweepEntity offboards the entity if it has been gone or disabled for the
// grace, or else removes its expired tokens and sends its due reminders;
// then it writes the entity's next due entry and deletes the one in the
// bucket of hour (0: it was not listed in one).
func (b *backend) sweepEntity(ctx context.Context, s logical.Storage, cfg *configEntry, entityID string, hour int64, now time.Time, result *tidyResult) error {
	// Asked before taking the lock: it is a call to Vault. Only a definite
	// answer offboards; an error stops the sweep.
	id, err := b.lookupIdentity(ctx, s, entityID)
	if err != nil {
		return err
	}

	lock := b.lockFor(entityLockKey(entityID))
	lock.Lock()
	defer lock.Unlock()
	subject := entitySubject(entityID)

	owner, err := getOwner(ctx, s, entityID)
	if err != nil {
		return err
	}
	if owner == nil && hour != 0 && (id == nil || id.disabled) {
		// An entry left by an offboarded entity (its other due entries are
		// dropped as they come due): nothing to remember it by.
		return b.unmarkDue(ctx, s, subject, hour)
	}
	if id == nil || id.disabled {
		// Where the named tokens' earliest entry is, to delete it with them.
		index, err := getTokenIndex(ctx, s, entityID)
		if err != nil {
			return err
		}
		offboarded, err := b.offboardIfInactive(ctx, s, cfg, entityID, owner, id != nil, now, result)
		if err != nil {
			return err
		}
		if offboarded {
			// Nothing of the entity is left to be due: its entries in the
			// current hour and at the index's earliest go too; others
			// (leases' expiries) are dropped as they come due.
			for _, h := range []int64{dueHour(now), index.DueHour} {
				if h != 0 && h != hour {
					if err := b.unmarkDue(ctx, s, subject, h); err != nil {
						return err
					}
				}
			}
		}
		var next time.Time
		if !offboarded {
			// Looked at again by the next sweep, until it is offboarded
			// or active again: the sweeps' cost grows with the inactive
			// owners, not with all of them.
			next = now
		}
		_, err = b.reschedule(ctx, s, subject, hour, next)
		return err
	}
	if err := reactivate(ctx, s, owner); err != nil {
		return err
	}

	// Leased tokens whose revocation by Vault never arrived.
	var next time.Time
	hashes, err := listLeaseHashes(ctx, s, entityID)
	if err != nil {
		return err
	}
	for _, hash := range hashes {
		marker, err := getLeaseMarker(ctx, s, entityID, hash)
		if err != nil {
			return err
		}
		if marker == nil {
			continue
		}
		if now.Before(marker.ExpiresAt) {
			next = earlier(next, marker.ExpiresAt)
			continue
		}
		if err := b.revokeLease(ctx, s, entityID, hash); err != nil {
			return err
		}
		result.ExpiredRemoved++
	}

	sent, providerNext, err := b.remindProviderTokens(ctx, s, cfg, userProviderTokenOwner(entityID, id.name), now)
	result.NoticesSent += sent
	if err != nil {
		return err
	}
	next = earlier(next, providerNext)

	index, err := getTokenIndex(ctx, s, entityID)
	if err != nil {
		return err
	}
	indexChanged := false
	for name, summary := range index.Tokens {
		if now.Before(summary.ExpiresAt) {
			continue
		}
		if err := deleteTokenRecord(ctx, s, summary.Hash); err != nil {
			return err
		}
		b.records.remove(summary.Hash)
		delete(index.Tokens, name)
		indexChanged = true
		result.ExpiredRemoved++
		b.notify(ctx, s, patEvent(eventPATExpired, entityID, id.name, summaryRecord(name, summary)))
	}
	sent, reminded := b.remindNamedTokens(ctx, s, cfg, entityID, id.name, index, now)
	result.NoticesSent += sent
	next = earlier(next, index.nextDue(cfg.ExpiryNotices))

	// The next entry first, then the index that records it, then the
	// entry processed: an interruption leaves an entry too many.
	nextHour := int64(0)
	if !next.IsZero() {
		if nextHour, err = b.markDue(ctx, s, subject, next); err != nil {
			return err
		}
	}
	if len(index.Tokens) > 0 && index.DueHour != nextHour {
		index.DueHour = nextHour
		indexChanged = true
	}
	if indexChanged || reminded {
		if err := b.putTokenIndex(ctx, s, entityID, index); err != nil {
			return err
		}
	}
	if hour != 0 && hour != nextHour {
		return b.unmarkDue(ctx, s, subject, hour)
	}
	return nil
}

// tokenRef is one of an entity's tokens as its index entry or lease marker
// describes it.
type tokenRef struct {
	hash      string
	expiresAt time.Time
}

// tidyEntity removes the entity's tokens that match, records first, under
// the entity's lock, and returns how many it removed.
func (b *backend) tidyEntity(ctx context.Context, s logical.Storage, entityID string, remove func(tokenRef) (bool, error)) (int, error) {
	lock := b.lockFor(entityLockKey(entityID))
	lock.Lock()
	defer lock.Unlock()

	removed := 0
	index, err := getTokenIndex(ctx, s, entityID)
	if err != nil {
		return 0, err
	}
	indexChanged := false
	for name, summary := range index.Tokens {
		matches, err := remove(tokenRef{hash: summary.Hash, expiresAt: summary.ExpiresAt})
		if err != nil {
			return removed, err
		}
		if !matches {
			continue
		}
		if err := deleteTokenRecord(ctx, s, summary.Hash); err != nil {
			return removed, err
		}
		b.records.remove(summary.Hash)
		delete(index.Tokens, name)
		indexChanged = true
		removed++
	}
	if indexChanged {
		if err := b.putTokenIndex(ctx, s, entityID, index); err != nil {
			return removed, err
		}
	}

	hashes, err := listLeaseHashes(ctx, s, entityID)
	if err != nil {
		return removed, err
	}
	for _, hash := range hashes {
		marker, err := getLeaseMarker(ctx, s, entityID, hash)
		if err != nil {
			return removed, err
		}
		if marker == nil {
			continue
		}
		matches, err := remove(tokenRef{hash: hash, expiresAt: marker.ExpiresAt})
		if err != nil {
			return removed, err
		}
		if !matches {
			continue
		}
		if err := b.revokeLease(ctx, s, entityID, hash); err != nil {
			return removed, err
		}
		removed++
	}
	return removed, nil
}

// repairTokens restores the invariant that every token has both its record
// and its index entry or lease marker, which an interrupted write (a crash
// between two storage writes) can break. It reads every record.
func (b *backend) repairTokens(ctx context.Context, s logical.Storage, result *tidyResult) error {
	// Index entries and markers whose record is missing: the token never
	// verifies again.
	entities, err := listOwnerEntities(ctx, s)
	if err != nil {
		return err
	}
	for _, entityID := range entities {
		removed, err := b.tidyEntity(ctx, s, entityID, func(r tokenRef) (bool, error) {
			record, err := getTokenRecord(ctx, s, r.hash)
			return record == nil, err
		})
		if err != nil {
			return err
		}
		result.DanglingRemoved += removed
	}

	// Records that no index entry or marker lists: their secret was never
	// handed out.
	hashes, err := s.List(ctx, tokenRecordPrefix)
	if err != nil {
		return fmt.Errorf("listing token records: %w", err)
	}
	for _, hash := range hashes {
		if err := ctx.Err(); err != nil {
			return err
		}
		result.RecordsScanned++
		removed, err := b.removeIfOrphan(ctx, s, hash)
		if err != nil {
			return err
		}
		if removed {
			result.OrphansRemoved++
		}
	}
	return nil
}

// removeIfOrphan deletes the record if nothing lists it, deciding under the
// owner's lock so that a write in progress is never mistaken for an orphan.
func (b *backend) removeIfOrphan(ctx context.Context, s logical.Storage, hash string) (bool, error) {
	record, err := getTokenRecord(ctx, s, hash)
	if err != nil || record == nil {
		return false, err
	}
	lock := b.lockFor(entityLockKey(record.EntityID))
	lock.Lock()
	defer lock.Unlock()
	if record, err = getTokenRecord(ctx, s, hash); err != nil || record == nil {
		return false, err
	}

	listed := false
	if record.Role != "" {
		marker, err := getLeaseMarker(ctx, s, record.EntityID, hash)
		if err != nil {
			return false, err
		}
		listed = marker != nil
	} else {
		index, err := getTokenIndex(ctx, s, record.EntityID)
		if err != nil {
			return false, err
		}
		summary, ok := index.Tokens[record.Name]
		listed = ok && summary.Hash == hash
	}
	if listed {
		return false, nil
	}
	if err := deleteTokenRecord(ctx, s, hash); err != nil {
		return false, err
	}
	b.records.remove(hash)
	return true, nil
}

const pathTidyHelpSynopsis = `Remove expired personal access tokens, in the background.`

const pathTidyHelpDescription = `
Starts a sweep in the background and answers 202 at once (409 while one is
running); read tidy/status for its progress and result. The sweep writes
the last uses noted since the engine's last periodic run, offboards users
whose entity has been deleted for offboarding_grace or disabled for
disabled_grace (0: never), sends the
expiry reminders that are due, and removes every expired PAT: named tokens with their entry in the owner's index, and
leased tokens whose revocation by Vault never arrived. Expired tokens
already stop verifying at their expiry instant; tidy reclaims their
storage. The same sweep runs every tidy_interval from the engine's periodic
function on the active node.

With repair=true it also removes what an interrupted write can leave behind
(index entries and lease markers without a record, records that no index
entry or marker lists), reading every token record.

  vault write -f planqk/tidy
  vault write planqk/tidy repair=true
  vault read planqk/tidy/status
`

const pathTidyStatusHelpSynopsis = `Report the last or current tidy.`

const pathTidyStatusHelpDescription = `
state is idle (none ran since the engine started on this node), running,
finished or error; trigger is request or periodic; the counts are those of
the sweep: entities_scanned, expired_removed, and with repair
dangling_removed, records_scanned and orphans_removed.

  vault read planqk/tidy/status
`
