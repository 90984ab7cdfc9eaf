package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

const inventoryPageSize = 100

// The names under which the inventory may return its next cursor.
var inventoryCursorFields = []string{"next", "next_cursor", "next_after", "cursor", "after"}

// scaleReport holds the engine's figures with many PATs stored.
type scaleReport struct {
	Users         int               `json:"users"`
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
}

// Scale operation names.
const (
	opVerifyAtScale   = "verify (POST), at scale"
	opInventoryFirst  = "inventory/tokens, first page of 100"
	opInventoryDeep   = "inventory/tokens, page of 100 deep in the listing"
	opListAtScaleName = opList + ", at scale"
)

func (s *scaleReport) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "\nAt scale: %d PATs across %d users (%d of them expired), created in %.0f s; the same rounds as above.\n\n",
		s.PATs, s.Users, s.Expired, s.CreateSeconds)
	b.WriteString("| operation | caller | request | ops/s | p50 ms | p99 ms | failed | wrong |\n|---|---|---|---:|---:|---:|---:|---:|\n")
	for _, op := range s.Operations {
		if op.Unavailable != "" {
			fmt.Fprintf(&b, "| %s | %s | `%s` | %s | | | | |\n", op.Name, op.Caller, op.Request, op.Unavailable)
			continue
		}
		fmt.Fprintf(&b, "| %s | %s | `%s` | %s | %.2f | %.2f | %d | %d |\n", op.Name, op.Caller, op.Request,
			formatSpread(op.OpsPerSec, "%.0f"), op.P50Millis, op.P99Millis, op.Failed, op.Wrong)
	}
	for _, op := range s.Operations {
		if op.Name == opVerifyAtScale && op.OpsPerSec.known() && s.VerifyBefore.known() {
			fmt.Fprintf(&b, "\nVerify before → at scale (medians, measured apart, not interleaved): %.0f → %.0f ops/s (%.2f×).\n",
				s.VerifyBefore.Median, op.OpsPerSec.Median, op.OpsPerSec.Median/s.VerifyBefore.Median)
		}
	}
	if s.DeepPage > 0 {
		fmt.Fprintf(&b, "The deep inventory page is page %d of %d (cursor field %q).\n", s.DeepPage, (s.PATs+inventoryPageSize-1)/inventoryPageSize, s.CursorField)
	}
	fmt.Fprintf(&b, "Tidy: %s expired removed, %s entities scanned in %.1f s (%.0f µs a removed token). Engine plugin process peak memory: %s.\n",
		s.TidyRemoved, s.TidyScanned, s.TidySeconds, s.TidySeconds*1e6/float64(max(s.Expired, 1)), s.PeakMemory)
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

// measureScale stores users x perUser PATs - a tenth with a 1s TTL - and
// measures verify, list and inventory paging in interleaved rounds, then tidy.
func measureScale(ctx context.Context, o options, f *fixtures, main *report) (*scaleReport, error) {
	s := &scaleReport{Users: o.scaleUsers, PATs: o.scaleUsers * o.scalePerUser}
	for _, op := range main.Operations {
		if op.Name == opVerify {
			s.VerifyBefore = op.OpsPerSec
		}
	}

	names := make([]string, o.scaleUsers)
	for i := range names {
		names[i] = fmt.Sprintf("scale-%04d", i)
	}
	progress("scale: creating %d users", len(names))
	users, err := f.createUsers(ctx, names)
	if err != nil {
		return nil, err
	}

	start := time.Now()
	const expireEvery = 10
	pats := make([]string, s.PATs)
	err = parallel(16, s.PATs, func(i int) error {
		user, n := i%o.scaleUsers, i/o.scaleUsers
		if i%5000 == 0 {
			progress("scale: %d of %d PATs", i, s.PATs)
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
	var active []string
	for _, pat := range pats {
		if pat != "" {
			active = append(active, pat)
		}
	}

	ops := scaleOperations(f, users, active, o.scalePerUser, s)
	r := newRunner(o, f, ops)
	if err := r.probe(ctx); err != nil {
		return nil, err
	}
	if err := r.run(ctx, "scale"); err != nil {
		return nil, err
	}
	s.Operations = operationReports(r)

	progress("scale: tidy")
	time.Sleep(1100 * time.Millisecond) // the last 1s tokens expire
	if err := f.tidy(ctx, s); err != nil {
		return nil, err
	}
	s.PeakMemory = pluginMemory(f.server)["VmHWM"]
	return s, nil
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
func scaleOperations(f *fixtures, users []*benchUser, active []string, perUser int, s *scaleReport) []*operation {
	base := f.server.Addr + "/v1/"
	verifierHeader := http.Header{"X-Vault-Token": {f.verifier}}
	rootHeader := http.Header{"X-Vault-Token": {f.root.Token()}}
	verifyBodies := mapStrings(active, func(pat string) []byte { return []byte(`{"token":"` + pat + `"}`) })
	inventory := base + mount + "/inventory/tokens"
	var deepCursor string

	var byName = map[string]*operation{}
	for _, op := range operations(f) {
		byName[op.name] = op
	}
	list1000 := *byName[opList]
	list1000.name = opListAtScaleName

	return []*operation{
		{name: opVerifyAtScale, caller: asVerifier, request: "POST planqk/verify {token}", status: 200,
			targeter: func() vegeta.Targeter {
				return func(t *vegeta.Target) error {
					t.Method, t.URL, t.Header, t.Body = "POST", base+mount+"/verify", verifierHeader, verifyBodies[rand.IntN(len(verifyBodies))]
					return nil
				}
			},
			check: checkActive(true, "data")},
		{name: fmt.Sprintf("PAT list (one user's %d)", perUser), caller: asUser, request: "LIST planqk/users/<user>/tokens", status: 200,
			targeter: func() vegeta.Targeter {
				return func(t *vegeta.Target) error {
					u := users[rand.IntN(len(users))]
					t.Method, t.URL, t.Header, t.Body = "LIST", base+mount+"/users/"+u.name+"/tokens", http.Header{"X-Vault-Token": {u.token}}, nil
					return nil
				}
			},
			check: checkListed(perUser)},
		&list1000,
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
