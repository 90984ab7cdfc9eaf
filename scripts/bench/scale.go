package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"
	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/planqk/vault-plugin-secrets-planqk/scripts/vaultharness"
)

const inventoryPageSize = 100

// The names under which the inventory may return its next cursor.
var inventoryCursorFields = []string{"next", "next_cursor", "next_after", "cursor", "after"}

// scaleReport holds the engine's figures with many PATs stored.
type scaleReport struct {
	Users         int               `json:"users"`
	Rounds        int               `json:"rounds"`
	Concurrency   int               `json:"concurrency"`
	Settle        string            `json:"settle"`
	Duration      string            `json:"duration"`
	PATs          int               `json:"pats"`
	Expired       int               `json:"expired"`
	CreateSeconds float64           `json:"create_seconds"`
	VerifyBefore  spread            `json:"verify_ops_per_sec_before"`
	Operations    []operationReport `json:"operations"`
	DeepPage      int               `json:"inventory_deep_page,omitempty"`
	CursorField   string            `json:"inventory_cursor_field,omitempty"`
	TidySeconds   float64           `json:"tidy_seconds"`
	TidyRemoved   string            `json:"tidy_expired_removed"`
	TidyScanned   string            `json:"tidy_entities_scanned"`
	PeakMemory    string            `json:"plugin_peak_memory"`

	// The fill, through the API.
	UsersSeconds   float64 `json:"users_seconds"`
	ProviderTokens int     `json:"provider_tokens"`
	OrgMembers     int     `json:"org_members"`
	Orgs           int     `json:"orgs"`
	// Sweeps after the rounds: the expired tenth, nothing due, dueCount due.
	Sweeps []sweepReport `json:"sweeps"`
	// Resident memory after everything (VmRSS, VmHWM) of the plugin and Vault.
	PluginMemory map[string]string `json:"plugin_memory"`
	VaultMemory  map[string]string `json:"vault_memory"`
	// A full recount (inventory refresh=true), waited for.
	RecountSeconds float64 `json:"recount_seconds"`
	// From a plugin reload to the first verify answered active.
	RestartToVerifySeconds float64 `json:"restart_to_first_verify_seconds"`
	// Medians before (the main table, before the fill) and at scale:
	// measured apart, not interleaved.
	Ratios []scaleRatio `json:"ratios"`
	// SideBySide are each operation at scale over the same request on the
	// near-empty mount, round by round: the targets' ratios, from the
	// pairs, and for information the same requests measured apart.
	SideBySide []comparisonReport `json:"side_by_side"`
	// PluginPeaks is the plugin's peak resident memory in each phase.
	PluginPeaks []phasePeak `json:"plugin_peaks"`
}

// phasePeak is the plugin's peak resident memory (VmHWM, kB) during one
// phase: the peak is reset when a phase begins.
type phasePeak struct {
	Phase  string `json:"phase"`
	PeakKB int    `json:"peak_kb"`
}

// sweepReport is one tidy: what it found due and what it cost.
type sweepReport struct {
	Name          string  `json:"name"`
	Seconds       float64 `json:"seconds"`
	Removed       string  `json:"expired_removed"`
	Scanned       string  `json:"entities_scanned"`
	BucketsRead   string  `json:"due_buckets_read"`
	OwnersChecked string  `json:"owners_checked"`
}

// scaleRatio is an operation's median at scale over the same operation's
// median in the main table, on the same server.
type scaleRatio struct {
	Operation string  `json:"operation"`
	Before    float64 `json:"before_ops_per_sec"`
	AtScale   float64 `json:"at_scale_ops_per_sec"`
	Target    float64 `json:"target"`
}

// Scale operation names.
const (
	opVerifyAtScale   = "verify (POST), at scale"
	opInventoryFirst  = "inventory/tokens, first page of 100"
	opInventoryDeep   = "inventory/tokens, page of 100 deep in the listing"
	opListAtScaleName = opList + ", at scale"
	opVerifyHot       = "verify (POST), hot: 1,000 PATs"
	opVerifyColdScale = "verify (POST), cold: any PAT"
	opCreateAtScale   = opCreate + ", at scale"
	opLeaseAtScale    = opLease + ", at scale"
	opResolveAtScale  = opResolve + ", at scale"
	opExchangeAtScale = opExchange + ", at scale"
	opCounts          = "inventory counts"
	opVerifyNearEmpty = "verify (POST), near-empty mount: 1,000 PATs"
	opCreateNearEmpty = opCreate + ", near-empty mount"
	opLeaseNearEmpty  = opLease + ", near-empty mount"
	// The same three, each measured at the same time as its counterpart on
	// the other mount, half the clients each (see operation.pair).
	opVerifyHotPaired       = opVerifyHot + ", paired"
	opVerifyNearEmptyPaired = opVerifyNearEmpty + ", paired"
	opCreateAtScalePaired   = opCreateAtScale + ", paired"
	opCreateNearEmptyPaired = opCreateNearEmpty + ", paired"
	opLeaseAtScalePaired    = opLeaseAtScale + ", paired"
	opLeaseNearEmptyPaired  = opLeaseNearEmpty + ", paired"
	// dueCount is how many tokens come due for the last sweep.
	dueCount = 10_000

	// hotPATs is how many PATs the hot verify picks among: one of each of
	// the first hotPATs scale users.
	hotPATs = 1000
	// nearEmptyMount is a second mount of the engine on the same server -
	// and, the plugin being multiplexed, in the same plugin process -
	// holding one PAT of each of the hot PATs' owners and nothing else.
	// The scale rounds measure verify, create and lease on it beside the
	// same requests on the full mount, both at the same time (pairOf):
	// the targets' ratios are round by round, side by side, not a run
	// before the fill against one after it.
	nearEmptyMount = "planqk-near-empty"
)

// sideBySide are the scale targets (issue 19), taken on the pairs: the
// full and the near-empty mount measured at the same time. For
// information, the same requests measured one after the other in the
// same round - there a pause of the whole server falls on whichever
// operation is measuring - and the cold verify of any PAT against the
// near-empty mount's verify.
func sideBySide() []comparison {
	return []comparison{
		{opVerifyHotPaired, opVerifyNearEmptyPaired, 0.9, "issue 19"},
		{opCreateAtScalePaired, opCreateNearEmptyPaired, 0.9, "issue 19"},
		{opLeaseAtScalePaired, opLeaseNearEmptyPaired, 0.9, "issue 19"},
		{opVerifyHot, opVerifyNearEmpty, 0, ""},
		{opCreateAtScale, opCreateNearEmpty, 0, ""},
		{opLeaseAtScale, opLeaseNearEmpty, 0, ""},
		{opVerifyColdScale, opVerifyNearEmpty, 0, ""},
	}
}

func (s *scaleReport) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "\nAt scale: %d PATs across %d users (%d of them expired), created in %.0f s; %d rounds interleaved as above, each operation measured for %s after %s of settling load.\n\n",
		s.PATs, s.Users, s.Expired, s.CreateSeconds, s.Rounds, s.Duration, s.Settle)
	b.WriteString("| operation | caller | request | ops/s | p50 ms | p99 ms | failed | wrong |\n|---|---|---|---:|---:|---:|---:|---:|\n")
	for _, op := range s.Operations {
		if op.Unavailable != "" {
			fmt.Fprintf(&b, "| %s | %s | `%s` | %s | | | | |\n", op.Name, op.Caller, op.Request, op.Unavailable)
			continue
		}
		fmt.Fprintf(&b, "| %s | %s | `%s` | %s | %.2f | %.2f | %d | %d |\n", op.Name, op.Caller, op.Request,
			formatSpread(op.OpsPerSec, "%.0f"), op.P50Millis, op.P99Millis, op.Failed, op.Wrong)
	}
	if len(s.SideBySide) > 0 {
		fmt.Fprintf(&b, "\nAt scale against the near-empty mount (`%s`: one PAT of each owner of the hot PATs, nothing else) on the same server, ratios round by round. "+
			"The targets are taken on the pairs (\"paired\"): the request on each mount measured at the same time, the %d clients shared out between them, so that a pause of the whole server falls on both. "+
			"The rows without a target measured each mount with all %d clients, at different times in the same round, for information:\n\n", nearEmptyMount, s.Concurrency, s.Concurrency)
		b.WriteString("| operation | against | ratio | target | verdict |\n|---|---|---:|---:|---|\n")
		for _, c := range s.SideBySide {
			if c.Target == 0 {
				fmt.Fprintf(&b, "| %s | %s | %s | | |\n", c.Operation, c.Reference, formatSpread(c.Ratio, "%.2f"))
				continue
			}
			b.WriteString(c.markdownRow())
		}
	}
	if s.DeepPage > 0 {
		fmt.Fprintf(&b, "\nThe deep inventory page is page %d of %d (cursor field %q).\n", s.DeepPage, (s.PATs+inventoryPageSize-1)/inventoryPageSize, s.CursorField)
	}
	fmt.Fprintf(&b, "\nFill through the API: %d users in %.0f s, then %d PATs in %.0f s (%.0f PATs/s), %d users with a provider token (expires_at in 30 days), %d organizations of %d members.\n",
		s.Users, s.UsersSeconds, s.PATs, s.CreateSeconds, float64(s.PATs)/max(s.CreateSeconds, 1e-9), s.ProviderTokens, s.Orgs, s.OrgMembers)
	if len(s.Ratios) > 0 {
		b.WriteString("\nAgainst the main table above, measured on the same server before the fill (medians, measured apart, not interleaved; for information):\n\n")
		b.WriteString("| operation | before (ops/s) | at scale (ops/s) | ratio |\n|---|---:|---:|---:|\n")
		for _, r := range s.Ratios {
			fmt.Fprintf(&b, "| %s | %.0f | %.0f | %.2f× |\n", r.Operation, r.Before, r.AtScale, r.AtScale/max(r.Before, 1e-9))
		}
	}
	if len(s.Sweeps) > 0 {
		b.WriteString("\n| sweep | seconds | expired removed | subjects looked at | due buckets read | owners asked (offboarding) |\n|---|---:|---:|---:|---:|---:|\n")
		for _, sw := range s.Sweeps {
			fmt.Fprintf(&b, "| %s | %.2f | %s | %s | %s | %s |\n", sw.Name, sw.Seconds, sw.Removed, sw.Scanned, sw.BucketsRead, sw.OwnersChecked)
		}
	}
	fmt.Fprintf(&b, "\nA full recount of the inventory (refresh=true, in the background) took %.1f s; the counts are then answered from the kept counters.\n", s.RecountSeconds)
	fmt.Fprintf(&b, "\nResident memory at the end: plugin %s (the highest of its phases' peaks: %s), Vault %s (peak %s). Plugin reload to the first verify answered: %.2f s.\n",
		s.PluginMemory["VmRSS"], s.PeakMemory, s.VaultMemory["VmRSS"], s.VaultMemory["VmHWM"], s.RestartToVerifySeconds)
	if len(s.PluginPeaks) > 0 {
		b.WriteString("\nThe plugin's peak resident memory by phase (VmHWM, reset as each phase begins; in the rounds, the highest of an operation's rounds):\n\n")
		b.WriteString("| phase | peak MiB |\n|---|---:|\n")
		for _, p := range s.PluginPeaks {
			fmt.Fprintf(&b, "| %s | %.0f |\n", p.Phase, float64(p.PeakKB)/1024)
		}
	}
	for _, op := range s.Operations {
		for _, msg := range op.Failures {
			fmt.Fprintf(&b, "\n%s failed: %s", op.Name, msg)
		}
		for _, msg := range op.WrongAnswers {
			fmt.Fprintf(&b, "\n%s wrong answer: %s", op.Name, msg)
		}
	}
	return b.String()
}

// measureScale fills the mount through the API - users x perUser PATs (a
// tenth with a 1s TTL: expired, awaiting tidy), a provider token for every
// scaleProviderEvery-th user, two organizations of scaleOrgMembers members
// - then measures verify hot and cold, create, lease, resolve, inventory
// pages and counts in interleaved rounds, then three sweeps (the expired
// tenth, nothing due, dueCount due), memory, and a plugin reload to the
// first verify.
func measureScale(ctx context.Context, o options, f *fixtures, main *report) (*scaleReport, error) {
	so := o.forScale()
	s := &scaleReport{Users: o.scaleUsers, PATs: o.scaleUsers * o.scalePerUser, Rounds: so.rounds, Duration: so.duration.String(), Concurrency: so.concurrency, Settle: so.settle.String()}
	for _, op := range main.Operations {
		if op.Name == opVerify {
			s.VerifyBefore = op.OpsPerSec
		}
	}

	peaks := &peakMeter{server: f.server}
	peaks.begin()

	// The measured sweeps are the only ones: no periodic sweep removes the
	// expired tenth while the rounds run.
	if err := f.setEngineConfig(ctx, map[string]interface{}{"tidy_interval": 0}); err != nil {
		return nil, err
	}
	if err := f.mountNearEmpty(ctx); err != nil {
		return nil, err
	}
	names := make([]string, o.scaleUsers)
	for i := range names {
		names[i] = fmt.Sprintf("scale-%06d", i)
	}
	progress("scale: creating %d users", len(names))
	start := time.Now()
	users, err := f.createScaleUsers(ctx, names, max(1, len(names)/100))
	if err != nil {
		return nil, err
	}
	s.UsersSeconds = time.Since(start).Seconds()
	peaks.end("fill: users and organizations (Vault's identity store; the plugin idle)")
	nearEmpty, err := f.fillNearEmpty(ctx, users[:min(hotPATs, len(users))])
	if err != nil {
		return nil, err
	}
	s.OrgMembers = min(o.scaleOrgMembers, len(users))
	for i, name := range []string{"scale-org-a", "scale-org-b"} {
		members := users[(i*s.OrgMembers)%len(users):]
		members = members[:min(s.OrgMembers, len(members))]
		if err := f.boot.Org(ctx, name); err != nil {
			return nil, err
		}
		if err := f.joinOrgNamed(ctx, name, members); err != nil {
			return nil, err
		}
		s.Orgs++
	}

	start = time.Now()
	const expireEvery = 10
	pats := make([]string, s.PATs)
	err = parallel(16, s.PATs, func(i int) error {
		user, n := i%o.scaleUsers, i/o.scaleUsers
		if i%5000 == 0 {
			progress("scale: %d of %d PATs (%.0f/s)", i, s.PATs, float64(i)/time.Since(start).Seconds())
		}
		var data map[string]interface{}
		if n%expireEvery == 0 {
			data = map[string]interface{}{"ttl": "1s"}
		}
		created, err := f.as(users[user].token).Logical().WriteWithContext(ctx, fmt.Sprintf("%s/users/%s/tokens/s%d", mount, names[user], n), data)
		if err == nil && n%expireEvery != 0 {
			pats[i] = created.Data["token"].(string)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	s.CreateSeconds = time.Since(start).Seconds()
	s.Expired = o.scaleUsers * ((o.scalePerUser + expireEvery - 1) / expireEvery)
	expiresAt := time.Now().Add(30 * 24 * time.Hour).UTC().Format(time.RFC3339)
	withProvider := (len(users) + o.scaleProviderEvery - 1) / o.scaleProviderEvery
	err = parallel(16, withProvider, func(i int) error {
		u := users[i*o.scaleProviderEvery]
		_, err := f.as(u.token).Logical().WriteWithContext(ctx, fmt.Sprintf("%s/users/%s/provider-tokens/dwave", mount, u.name),
			map[string]interface{}{"token": "dwave-scale-token-0000", "expires_at": expiresAt})
		return err
	})
	if err != nil {
		return nil, err
	}
	s.ProviderTokens = withProvider
	peaks.end("fill: PATs and provider tokens, 16 writers")
	var active []string
	for _, pat := range pats {
		if pat != "" {
			active = append(active, pat)
		}
	}

	ops := scaleOperations(f, users, active, nearEmpty, o.scalePerUser, s)
	r := newRunner(so, f, ops)
	if err := r.probe(ctx); err != nil {
		return nil, err
	}
	peaks.end("probes: a full recount, waited for; the inventory cursor walked halfway")
	r.observe = func(op *operation) { peaks.end("rounds: " + op.name) }
	if err := r.run(ctx, "scale"); err != nil {
		return nil, err
	}
	s.Operations = operationReports(r)
	s.Ratios = scaleRatios(main.Operations, s.Operations)
	s.SideBySide = comparisonReports(r, sideBySide())

	progress("scale: sweeps")
	if err := f.sweep(ctx, s, fmt.Sprintf("the expired tenth (%d tokens of %d owners)", s.Expired, s.Users)); err != nil {
		return nil, err
	}
	first := s.Sweeps[0]
	s.TidySeconds, s.TidyRemoved, s.TidyScanned = first.Seconds, first.Removed, first.Scanned
	peaks.end("sweep: " + first.Name)
	if err := f.sweep(ctx, s, "nothing due"); err != nil {
		return nil, err
	}
	peaks.end("sweep: nothing due")
	due := min(dueCount, len(users))
	err = parallel(16, due, func(i int) error {
		u := users[i]
		_, err := f.as(u.token).Logical().WriteWithContext(ctx, fmt.Sprintf("%s/users/%s/tokens/due", mount, u.name), map[string]interface{}{"ttl": "1s"})
		return err
	})
	if err != nil {
		return nil, err
	}
	time.Sleep(1100 * time.Millisecond)
	if err := f.sweep(ctx, s, fmt.Sprintf("%d due (one token each of %d owners)", due, due)); err != nil {
		return nil, err
	}
	peaks.end(fmt.Sprintf("sweep: %d due, with their creation", due))
	s.PluginMemory = pluginMemory(f.server)
	s.VaultMemory = processMemory(f.server.PID())
	if s.RestartToVerifySeconds, err = f.restartToVerify(ctx, active[0]); err != nil {
		return nil, err
	}
	s.PluginPeaks = peaks.peaks
	s.PeakMemory = fmt.Sprintf("%d kB", peaks.highest())
	return s, nil
}

// peakMeter reads the plugin's peak resident memory phase by phase: Linux
// resets a process's VmHWM when "5" is written to its clear_refs.
type peakMeter struct {
	server *vaultharness.Server
	peaks  []phasePeak
}

func (m *peakMeter) pid() int {
	pids, err := m.server.PluginPIDs()
	if err != nil || len(pids) == 0 {
		return 0
	}
	return pids[0] // one process: the plugin is multiplexed
}

// begin resets the peak.
func (m *peakMeter) begin() {
	if pid := m.pid(); pid != 0 {
		_ = os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
	}
}

// end records the peak since begin under phase - the higher one when the
// phase was seen before - and begins the next phase.
func (m *peakMeter) end(phase string) {
	kB := 0
	if pid := m.pid(); pid != 0 {
		fmt.Sscanf(processMemory(pid)["VmHWM"], "%d", &kB)
	}
	m.begin()
	for i := range m.peaks {
		if m.peaks[i].Phase == phase {
			m.peaks[i].PeakKB = max(m.peaks[i].PeakKB, kB)
			return
		}
	}
	m.peaks = append(m.peaks, phasePeak{Phase: phase, PeakKB: kB})
}

func (m *peakMeter) highest() int {
	highest := 0
	for _, p := range m.peaks {
		highest = max(highest, p.PeakKB)
	}
	return highest
}

// mountNearEmpty mounts the engine a second time at nearEmptyMount,
// configured as the main mount is.
func (f *fixtures) mountNearEmpty(ctx context.Context) error {
	progress("scale: the near-empty mount %s", nearEmptyMount)
	if err := f.server.Mount(ctx, nearEmptyMount, f.pluginVersion); err != nil {
		return err
	}
	config, err := f.root.Logical().ReadWithContext(ctx, mount+"/config")
	if err != nil {
		return err
	}
	same := map[string]interface{}{}
	for _, field := range []string{"admin_groups", "org_group_name_template", "tidy_interval"} {
		same[field] = config.Data[field]
	}
	if _, err := f.root.Logical().WriteWithContext(ctx, nearEmptyMount+"/config", same); err != nil {
		return err
	}
	_, err = f.root.Logical().WriteWithContext(ctx, nearEmptyMount+"/roles/"+leaseRole, map[string]interface{}{"ttl": "30m", "max_ttl": "1h"})
	return err
}

// fillNearEmpty creates one PAT on the near-empty mount for each of users
// - the owners of the full mount's hot PATs, so that both verify the same
// number of PATs of the same owners - and returns them.
func (f *fixtures) fillNearEmpty(ctx context.Context, users []*benchUser) ([]string, error) {
	pats := make([]string, len(users))
	err := parallel(16, len(users), func(i int) error {
		created, err := f.as(users[i].token).Logical().WriteWithContext(ctx, fmt.Sprintf("%s/users/%s/tokens/near", nearEmptyMount, users[i].name), nil)
		if err == nil {
			pats[i] = created.Data["token"].(string)
		}
		return err
	})
	return pats, err
}

// onMount is op with its requests sent to another mount of the engine.
func onMount(op *operation, name, path string) *operation {
	moved := *op
	moved.name = name
	moved.request = strings.Replace(op.request, mount+"/", path+"/", 1)
	moved.targeter = func() vegeta.Targeter {
		targeter := op.targeter()
		return func(t *vegeta.Target) error {
			if err := targeter(t); err != nil {
				return err
			}
			t.URL = strings.Replace(t.URL, "/v1/"+mount+"/", "/v1/"+path+"/", 1)
			return nil
		}
	}
	return &moved
}

// scaleRatios pairs the operations measured at scale with the same
// requests in the main table.
func scaleRatios(before, atScale []operationReport) []scaleRatio {
	pairs := []struct {
		before, atScale string
		target          float64
	}{
		{opVerify, opVerifyHot, 0.9},
		{opVerify, opVerifyColdScale, 0},
		{opCreate, opCreateAtScale, 0.9},
		{opLease, opLeaseAtScale, 0.9},
		{opResolve, opResolveAtScale, 0},
		{opExchange, opExchangeAtScale, 0},
	}
	median := func(ops []operationReport, name string) float64 {
		for _, op := range ops {
			if op.Name == name && op.OpsPerSec.known() {
				return op.OpsPerSec.Median
			}
		}
		return 0
	}
	var ratios []scaleRatio
	for _, p := range pairs {
		b, a := median(before, p.before), median(atScale, p.atScale)
		if b > 0 && a > 0 {
			ratios = append(ratios, scaleRatio{Operation: p.atScale, Before: b, AtScale: a, Target: p.target})
		}
	}
	return ratios
}

// probeRecount asks for a recount (refresh=true) and waits for it, so that
// the counts are measured as a dashboard meets them, and records how long
// the full recount took.
func (f *fixtures) probeRecount(s *scaleReport) func(context.Context, *operation) (string, error) {
	return func(ctx context.Context, op *operation) (string, error) {
		progress("scale: a full recount of the inventory")
		start := time.Now()
		if _, err := f.root.Logical().ReadWithDataWithContext(ctx, mount+"/inventory", map[string][]string{"refresh": {"true"}}); err != nil {
			return "", err
		}
		for time.Since(start) < 20*time.Minute {
			resp, err := f.root.Logical().ReadWithContext(ctx, mount+"/inventory")
			if err != nil {
				return "", err
			}
			recount, _ := resp.Data["recount"].(map[string]interface{})
			switch recount["state"] {
			case "finished":
				s.RecountSeconds = time.Since(start).Seconds()
				return "", nil
			case "error":
				return "", fmt.Errorf("the recount failed: %v", recount["error"])
			}
			time.Sleep(500 * time.Millisecond)
		}
		return "", fmt.Errorf("the recount did not finish in 20 minutes")
	}
}

// sweep runs a tidy and records it under name.
func (f *fixtures) sweep(ctx context.Context, s *scaleReport, name string) error {
	progress("scale: sweep, %s", name)
	t := &scaleReport{}
	if err := f.tidy(ctx, t); err != nil {
		return err
	}
	status, err := f.root.Logical().ReadWithContext(ctx, mount+"/tidy/status")
	if err != nil {
		return err
	}
	s.Sweeps = append(s.Sweeps, sweepReport{Name: name, Seconds: t.TidySeconds, Removed: t.TidyRemoved, Scanned: t.TidyScanned,
		BucketsRead: fmt.Sprint(status.Data["due_buckets_read"]), OwnersChecked: fmt.Sprint(status.Data["owners_checked"])})
	return nil
}

// restartToVerify reloads the engine's plugin and returns the time until a
// verify of pat is answered active.
func (f *fixtures) restartToVerify(ctx context.Context, pat string) (float64, error) {
	progress("scale: plugin reload to the first verify")
	verifier := f.as(f.verifier)
	start := time.Now()
	if _, err := f.root.Sys().ReloadPluginWithContext(ctx, &api.ReloadPluginInput{Plugin: vaultharness.PluginName}); err != nil {
		return 0, err
	}
	for time.Since(start) < time.Minute {
		resp, err := verifier.Logical().WriteWithContext(ctx, mount+"/verify", map[string]interface{}{"token": pat})
		if err == nil && resp != nil && resp.Data["active"] == true {
			return time.Since(start).Seconds(), nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	return 0, fmt.Errorf("no verify answered within a minute of the plugin reload")
}

// processMemory reads a process's current and peak resident memory.
func processMemory(pid int) map[string]string {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil
	}
	memory := map[string]string{}
	for _, line := range strings.Split(string(status), "\n") {
		for _, key := range []string{"VmHWM", "VmRSS"} {
			if strings.HasPrefix(line, key+":") {
				memory[key] = strings.TrimSpace(strings.TrimPrefix(line, key+":"))
			}
		}
	}
	return memory
}

// tidy starts a sweep and waits for tidy/status to report it finished; its
// duration is the engine's own (started_at to finished_at).
func (f *fixtures) tidy(ctx context.Context, s *scaleReport) error {
	if _, err := f.root.Logical().WriteWithContext(ctx, mount+"/tidy", nil); err != nil {
		return err
	}
	deadline := time.Now().Add(10 * time.Minute)
	for {
		status, err := f.root.Logical().ReadWithContext(ctx, mount+"/tidy/status")
		if err != nil {
			return err
		}
		switch status.Data["state"] {
		case "finished":
			started, err1 := time.Parse(time.RFC3339Nano, fmt.Sprint(status.Data["started_at"]))
			finished, err2 := time.Parse(time.RFC3339Nano, fmt.Sprint(status.Data["finished_at"]))
			if err1 != nil || err2 != nil {
				return fmt.Errorf("tidy/status has no start and finish times")
			}
			s.TidySeconds = finished.Sub(started).Seconds()
			s.TidyRemoved = fmt.Sprint(status.Data["expired_removed"])
			s.TidyScanned = fmt.Sprint(status.Data["entities_scanned"])
			return nil
		case "error":
			return fmt.Errorf("tidy failed: %v", status.Data["error"])
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("tidy still %v after 10 minutes", status.Data["state"])
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// scaleOperations are measured with the scale PATs stored.
func scaleOperations(f *fixtures, users []*benchUser, active, nearEmpty []string, perUser int, s *scaleReport) []*operation {
	base := f.server.Addr + "/v1/"
	verifierHeader := http.Header{"X-Vault-Token": {f.verifier}}
	rootHeader := http.Header{"X-Vault-Token": {f.root.Token()}}
	verifyBodies := mapStrings(active, func(pat string) []byte { return []byte(`{"token":"` + pat + `"}`) })
	inventory := base + mount + "/inventory/tokens"
	var deepCursor string

	byName := map[string]*operation{}
	for _, op := range operations(f) {
		byName[op.name] = op
	}

	// The active PATs begin with the second PAT of each scale user in
	// turn: the first hotPATs are one of each of the first hotPATs users.
	hot := verifyBodies[:min(len(nearEmpty), len(verifyBodies))]
	nearEmptyBodies := mapStrings(nearEmpty, func(pat string) []byte { return []byte(`{"token":"` + pat + `"}`) })
	clone := func(name, renamed string) *operation {
		op := *byName[name]
		op.name = renamed
		return &op
	}
	verifyFrom := func(path string, bodies [][]byte) func() vegeta.Targeter {
		return func() vegeta.Targeter {
			return func(t *vegeta.Target) error {
				t.Method, t.URL, t.Header, t.Body = "POST", base+path+"/verify", verifierHeader, bodies[rand.IntN(len(bodies))]
				return nil
			}
		}
	}

	verifyHot := &operation{name: opVerifyHot, caller: asVerifier, request: "POST planqk/verify {token}, 1,000 PATs", status: 200,
		targeter: verifyFrom(mount, hot), check: checkActive(true, "data")}
	verifyNearEmpty := &operation{name: opVerifyNearEmpty, caller: asVerifier, request: fmt.Sprintf("POST %s/verify {token}, 1,000 PATs", nearEmptyMount), status: 200,
		targeter: verifyFrom(nearEmptyMount, nearEmptyBodies), check: checkActive(true, "data")}
	createAtScale := clone(opCreate, opCreateAtScale)
	createNearEmpty := onMount(withCleanup(byName[opCreate], f.deleteCreatedPATsOn(nearEmptyMount, 0)), opCreateNearEmpty, nearEmptyMount)
	leaseAtScale := clone(opLease, opLeaseAtScale)
	leaseNearEmpty := onMount(withCleanup(byName[opLease], f.revokeLeasesOn(nearEmptyMount)), opLeaseNearEmpty, nearEmptyMount)
	verifyPair := pairOf("verify (POST), both mounts at once", verifyHot, opVerifyHotPaired, verifyNearEmpty, opVerifyNearEmptyPaired)
	createPair := pairOf("PAT create (named), both mounts at once", createAtScale, opCreateAtScalePaired, createNearEmpty, opCreateNearEmptyPaired)
	leasePair := pairOf("PAT lease (creds), both mounts at once", leaseAtScale, opLeaseAtScalePaired, leaseNearEmpty, opLeaseNearEmptyPaired)

	return []*operation{
		verifyPair.pair[0], verifyPair.pair[1], verifyPair,
		createPair.pair[0], createPair.pair[1], createPair,
		leasePair.pair[0], leasePair.pair[1], leasePair,
		verifyHot,
		verifyNearEmpty,
		{name: opVerifyColdScale, caller: asVerifier, request: "POST planqk/verify {token}, any PAT", status: 200,
			targeter: verifyFrom(mount, verifyBodies), check: checkActive(true, "data")},
		createAtScale,
		createNearEmpty,
		leaseAtScale,
		leaseNearEmpty,
		clone(opResolve, opResolveAtScale),
		clone(opExchange, opExchangeAtScale),
		{name: opCounts, caller: asRoot, request: "GET planqk/inventory", status: 200,
			probe: f.probeRecount(s),
			targeter: func() vegeta.Targeter {
				return func(t *vegeta.Target) error {
					t.Method, t.URL, t.Header, t.Body = "GET", base+mount+"/inventory", rootHeader, nil
					return nil
				}
			},
			check: func(body []byte) string {
				if _, ok := lookup(body, "data", "stored", "named_tokens"); !ok {
					return "no data.stored.named_tokens"
				}
				return ""
			}},
		{name: fmt.Sprintf("PAT list (one user's %d)", perUser), caller: asUser, request: "LIST planqk/users/<user>/tokens", status: 200,
			targeter: func() vegeta.Targeter {
				return func(t *vegeta.Target) error {
					u := users[rand.IntN(len(users))]
					t.Method, t.URL, t.Header, t.Body = "LIST", base+mount+"/users/"+u.name+"/tokens", http.Header{"X-Vault-Token": {u.token}}, nil
					return nil
				}
			},
			check: checkListed(perUser)},
		{name: opInventoryFirst, caller: asRoot, request: fmt.Sprintf("LIST planqk/inventory/tokens?limit=%d", inventoryPageSize), status: 200,
			probe: f.probeInventory(inventory, s, nil),
			targeter: func() vegeta.Targeter {
				return func(t *vegeta.Target) error {
					t.Method, t.URL, t.Header, t.Body = "LIST", listPath(inventory, url.Values{"limit": {fmt.Sprint(inventoryPageSize)}}), rootHeader, nil
					return nil
				}
			},
			check: checkInventoryPage},
		{name: opInventoryDeep, caller: asRoot, request: fmt.Sprintf("LIST planqk/inventory/tokens?after=<cursor>&limit=%d", inventoryPageSize), status: 200,
			probe: f.probeInventory(inventory, s, &deepCursor),
			targeter: func() vegeta.Targeter {
				return func(t *vegeta.Target) error {
					t.Method, t.Header, t.Body = "LIST", rootHeader, nil
					t.URL = listPath(inventory, url.Values{"limit": {fmt.Sprint(inventoryPageSize)}, "after": {deepCursor}})
					return nil
				}
			},
			check: checkInventoryPage},
	}
}

// pairOf is the schedule entry name that measures copies of a and b, named
// aName and bName, at the same time, half the clients each.
// The pair entry runs with no engine configuration and no probe of its
// own: members that need either are a mistake in the bench.
func pairOf(name string, a *operation, aName string, b *operation, bName string) *operation {
	member := func(op *operation, name string) *operation {
		if op.config != nil || op.probe != nil {
			panic("bench: " + op.name + " needs configuration or a probe and cannot be paired")
		}
		copied := *op
		copied.name, copied.paired = name, true
		copied.request += ", half the clients, at once with the other mount"
		return &copied
	}
	return &operation{name: name, pair: []*operation{member(a, aName), member(b, bName)}}
}

// probeInventory asks for the first inventory page: a 404 or 405, or a
// page without a next cursor, makes the operation unavailable. With deep
// set, it follows the cursors halfway through the listing and keeps the
// cursor found there.
func (f *fixtures) probeInventory(inventory string, s *scaleReport, deep *string) func(context.Context, *operation) (string, error) {
	return func(ctx context.Context, op *operation) (string, error) {
		page := func(after string) (int, map[string]interface{}, error) {
			query := url.Values{"limit": {fmt.Sprint(inventoryPageSize)}}
			if after != "" {
				query.Set("after", after)
			}
			req, err := http.NewRequestWithContext(ctx, "LIST", listPath(inventory, query), nil)
			if err != nil {
				return 0, nil, err
			}
			req.Header.Set("X-Vault-Token", f.root.Token())
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return 0, nil, err
			}
			defer resp.Body.Close()
			var body struct {
				Data map[string]interface{} `json:"data"`
			}
			if resp.StatusCode == http.StatusOK {
				if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
					return 0, nil, err
				}
			}
			return resp.StatusCode, body.Data, nil
		}
		status, data, err := page("")
		switch {
		case err != nil:
			return "", err
		case status == http.StatusNotFound || status == http.StatusMethodNotAllowed:
			return fmt.Sprintf("n/a: the engine does not serve %s (%d)", op.request, status), nil
		case status != http.StatusOK:
			return "", fmt.Errorf("%s answered %d", op.request, status)
		}
		cursor, field := inventoryCursor(data)
		if cursor == "" {
			return "n/a: the inventory page carries no next cursor (looked for " + strings.Join(inventoryCursorFields, ", ") + ")", nil
		}
		s.CursorField = field
		if deep == nil {
			return "", nil
		}
		target := s.PATs / inventoryPageSize / 2
		s.DeepPage = 2
		for n := 2; n <= target; n++ {
			progress("scale: paging the inventory to page %d of about %d", n, 2*target)
			status, data, err = page(cursor)
			if err != nil {
				return "", err
			}
			if status != http.StatusOK {
				return "", fmt.Errorf("inventory page %d answered %d", n, status)
			}
			next, _ := inventoryCursor(data)
			if next == "" {
				return fmt.Sprintf("n/a: the inventory ended at page %d, before page %d", n, target), nil
			}
			cursor = next
			s.DeepPage = n + 1
		}
		*deep = cursor
		return "", nil
	}
}

// inventoryCursor returns the page's next cursor and the field holding it.
func inventoryCursor(data map[string]interface{}) (string, string) {
	for _, field := range inventoryCursorFields {
		if v, ok := data[field].(string); ok && v != "" {
			return v, field
		}
	}
	return "", ""
}

// checkInventoryPage wants a full page: keys, key_info for each, a next cursor.
func checkInventoryPage(body []byte) string {
	keys, _ := lookup(body, "data", "keys")
	list, ok := keys.([]interface{})
	if !ok || len(list) != inventoryPageSize {
		return fmt.Sprintf("data.keys does not hold %d entries", inventoryPageSize)
	}
	info, _ := lookup(body, "data", "key_info")
	infos, ok := info.(map[string]interface{})
	if !ok || len(infos) != len(list) {
		return "data.key_info does not describe every key"
	}
	data, _ := lookup(body, "data")
	if object, _ := data.(map[string]interface{}); object == nil {
		return "no data"
	} else if cursor, _ := inventoryCursor(object); cursor == "" {
		return "no next cursor"
	}
	return ""
}
