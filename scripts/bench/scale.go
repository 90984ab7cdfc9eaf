package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// scaleReport holds the engine's figures with many PATs stored.
type scaleReport struct {
	Users          int     `json:"users"`
	PATs           int     `json:"pats"`
	Expired        int     `json:"expired"`
	CreateSeconds  float64 `json:"create_seconds"`
	VerifyOpsSmall float64 `json:"verify_ops_per_sec_before"`
	VerifyOpsLarge float64 `json:"verify_ops_per_sec_at_scale"`
	ListOps        float64 `json:"list_100_ops_per_sec"`
	ListP50Millis  float64 `json:"list_100_p50_ms"`
	List1000Ops    float64 `json:"list_1000_ops_per_sec"`
	TidySeconds    float64 `json:"tidy_seconds"`
	TidyRemoved    string  `json:"tidy_removed"`
	TidyUsers      string  `json:"tidy_users_scanned"`
	PeakMemory     string  `json:"plugin_peak_memory"`
}

func (s *scaleReport) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "\nAt scale: %d PATs across %d users (%d of them expired), created in %.0f s.\n\n", s.PATs, s.Users, s.Expired, s.CreateSeconds)
	b.WriteString("| measurement | figure |\n|---|---|\n")
	fmt.Fprintf(&b, "| PAT verify, before → at scale | %.0f → %.0f ops/s (%.2f×) |\n", s.VerifyOpsSmall, s.VerifyOpsLarge, s.VerifyOpsLarge/s.VerifyOpsSmall)
	fmt.Fprintf(&b, "| list one user's 100 PATs | %.0f ops/s, p50 %.2f ms |\n", s.ListOps, s.ListP50Millis)
	fmt.Fprintf(&b, "| list one user's 1,000 PATs | %.0f ops/s |\n", s.List1000Ops)
	fmt.Fprintf(&b, "| tidy: %s expired removed, %s users scanned | %.1f s (%.0f µs a removed token) |\n", s.TidyRemoved, s.TidyUsers, s.TidySeconds, s.TidySeconds*1e6/float64(s.Expired))
	fmt.Fprintf(&b, "| engine plugin process peak memory | %s |\n", s.PeakMemory)
	return b.String()
}

// measureScale stores users x perUser PATs - a tenth with a 1s TTL - and
// measures verify, list and tidy with them in storage.
func measureScale(ctx context.Context, o options, f *fixtures) (*scaleReport, error) {
	s := &scaleReport{Users: o.scaleUsers, PATs: o.scaleUsers * o.scalePerUser}
	s.VerifyOpsSmall = measure(operations(f), "PAT verify (valid)", o).opsPerSecond()

	names := make([]string, o.scaleUsers)
	for i := range names {
		names[i] = fmt.Sprintf("scale-%04d", i)
	}
	progress("scale: creating %d users", len(names))
	tokens, err := f.users(ctx, names)
	if err != nil {
		return nil, err
	}

	start := time.Now()
	expireEvery := 10
	err = parallel(16, s.PATs, func(i int) error {
		user, n := i%o.scaleUsers, i/o.scaleUsers
		if i%5000 == 0 {
			progress("scale: %d of %d PATs", i, s.PATs)
		}
		var data map[string]interface{}
		if n%expireEvery == 0 {
			data = map[string]interface{}{"ttl": "1s"}
		}
		_, err := f.as(tokens[user]).Logical().WriteWithContext(ctx, fmt.Sprintf("%s/users/%s/tokens/s%d", mount, names[user], n), data)
		return err
	})
	if err != nil {
		return nil, err
	}
	s.CreateSeconds = time.Since(start).Seconds()
	s.Expired = o.scaleUsers * ((o.scalePerUser + expireEvery - 1) / expireEvery)

	progress("scale: verify and list with %d PATs stored", s.PATs)
	s.VerifyOpsLarge = measure(operations(f), "PAT verify (valid)", o).opsPerSecond()
	list := attack(operation{name: "list 100", okStatus: 200,
		targeter: func(t *vegeta.Target) error {
			t.Method, t.URL = "LIST", f.server.Addr+"/v1/"+mount+"/users/"+names[7]+"/tokens"
			t.Header = map[string][]string{"X-Vault-Token": {tokens[7]}}
			return nil
		}}, 2*time.Second, o.concurrency)
	listResult := &opResult{op: operation{okStatus: 200}, metrics: &vegeta.Metrics{}}
	listResult.add(list)
	listResult.metrics.Close()
	s.ListOps = listResult.opsPerSecond()
	s.ListP50Millis = float64(listResult.metrics.Latencies.P50) / float64(time.Millisecond)
	s.List1000Ops = measure(operations(f), "PAT list (1,000 tokens)", o).opsPerSecond()

	progress("scale: tidy")
	time.Sleep(1100 * time.Millisecond) // the last 1s tokens expire
	start = time.Now()
	tidy, err := f.root.Logical().WriteWithContext(ctx, mount+"/tidy", nil)
	if err != nil {
		return nil, err
	}
	s.TidySeconds = time.Since(start).Seconds()
	s.TidyRemoved = fmt.Sprint(tidy.Data["expired_removed"])
	s.TidyUsers = fmt.Sprint(tidy.Data["users_scanned"])
	s.PeakMemory = pluginMemory(f.server)["VmHWM"]
	return s, nil
}

// measure runs the named operation for 2 seconds.
func measure(ops []operation, name string, o options) *opResult {
	for _, op := range ops {
		if op.name == name {
			r := &opResult{op: op, metrics: &vegeta.Metrics{}}
			r.add(attack(op, 2*time.Second, o.concurrency))
			return r
		}
	}
	panic("no operation " + name)
}
