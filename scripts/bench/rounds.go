package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// roundFigures is what one measured attack of one operation gave.
type roundFigures struct {
	elapsed   time.Duration
	requests  uint64
	successes uint64 // right status and right answer
	failed    uint64 // transport error or wrong status
	wrong     uint64 // right status, wrong answer
	latencies []time.Duration
	failures  map[string]int // "<status> <message>" -> count
	wrongs    map[string]int // reason -> count
}

func (r roundFigures) opsPerSecond() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.successes) / r.elapsed.Seconds()
}

// evaluate sorts an attack's responses into right answers, wrong answers
// and failures; only right answers count towards ops/s and latencies.
func evaluate(op *operation, results []*vegeta.Result, elapsed time.Duration) roundFigures {
	r := roundFigures{elapsed: elapsed, requests: uint64(len(results)), failures: map[string]int{}, wrongs: map[string]int{}}
	for _, res := range results {
		if int(res.Code) != op.status {
			r.failed++
			key := res.Error // the status line, or the transport error
			if key == "" {
				key = fmt.Sprintf("status %d", res.Code)
			}
			if msg := vaultErrors(res.Body); msg != "" {
				key += ": " + msg
			}
			r.failures[key]++
			continue
		}
		if op.check != nil {
			if reason := op.check(res.Body); reason != "" {
				r.wrong++
				r.wrongs[reason]++
				continue
			}
		}
		r.successes++
		r.latencies = append(r.latencies, res.Latency)
	}
	return r
}

// attack runs op with c concurrent clients, each sending its next request
// as soon as the last one is answered, for d. Bodies are kept and checked
// after the attack, so checking costs no time inside the measured window.
// The client's connections outlive the attack: the measured attack reuses
// those its settling load opened.
func attack(op *operation, d time.Duration, c int, client *http.Client) ([]*vegeta.Result, time.Duration) {
	attacker := vegeta.NewAttacker(vegeta.Workers(uint64(c)), vegeta.MaxWorkers(uint64(c)), vegeta.Client(client))
	var results []*vegeta.Result
	start := time.Now()
	for res := range attacker.Attack(op.targeter(), vegeta.Rate{Freq: 0}, d, op.name) {
		results = append(results, res)
	}
	return results, time.Since(start)
}

// members returns what measuring op runs: op itself, or its pair.
func (op *operation) members() []*operation {
	if len(op.pair) > 0 {
		return op.pair
	}
	return []*operation{op}
}

// attackMembers attacks op's members at the same time for d, the c
// clients shared out among them, and returns each member's results and
// elapsed time.
func attackMembers(op *operation, d time.Duration, c int, client *http.Client) ([][]*vegeta.Result, []time.Duration) {
	members := op.members()
	results := make([][]*vegeta.Result, len(members))
	elapsed := make([]time.Duration, len(members))
	var wg sync.WaitGroup
	for i, member := range members {
		clients := c / len(members) // the first c%len(members) get one more
		if i < c%len(members) {
			clients++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], elapsed[i] = attack(member, d, max(1, clients), client)
		}()
	}
	wg.Wait()
	return results, elapsed
}

// membersAvailable says whether each of op's members is measured.
func (op *operation) membersAvailable() bool {
	for _, member := range op.pair {
		if member.unavailable != "" {
			return false
		}
	}
	return true
}

// loadClient is the HTTP client of c concurrent clients with keep-alive.
func loadClient(c int) *http.Client {
	dialer := &net.Dialer{KeepAlive: 30 * time.Second}
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			DialContext:         dialer.DialContext,
			MaxIdleConnsPerHost: c,
			MaxConnsPerHost:     c,
			IdleConnTimeout:     5 * time.Minute,
		},
	}
}

// runner measures operations in interleaved rounds.
type runner struct {
	o       options
	f       *fixtures
	ops     []*operation
	config  map[string]interface{} // the engine configuration in force
	rng     *rand.Rand
	client  *http.Client
	figures map[string][]roundFigures // per operation, one entry per round
	// observe, when set, is called after each warm-up and measurement of
	// an operation, its cleanup included.
	observe func(op *operation)
}

func newRunner(o options, f *fixtures, ops []*operation) *runner {
	config := map[string]interface{}{}
	for k, v := range f.engineDefaults {
		config[k] = v
	}
	return &runner{o: o, f: f, ops: ops, config: config,
		rng:    rand.New(rand.NewPCG(o.seed, o.seed^0x9e3779b97f4a7c15)),
		client: loadClient(o.concurrency), figures: map[string][]roundFigures{}}
}

// available returns the operations that are scheduled: measured, and not
// only as a member of a pair.
func (r *runner) available() []*operation {
	var ops []*operation
	for _, op := range r.ops {
		if op.unavailable == "" && !op.paired && op.membersAvailable() {
			ops = append(ops, op)
		}
	}
	return ops
}

// selectOperations leaves the operations whose name only matches (every
// one when only is nil) to be measured and marks the others unavailable.
func selectOperations(ops []*operation, only *regexp.Regexp) []*operation {
	for _, op := range ops {
		if only != nil && !only.MatchString(op.name) {
			op.unavailable = "n/a: not selected (-ops " + only.String() + ")"
		}
	}
	return ops
}

// probe asks once about each operation the engine may not serve yet.
func (r *runner) probe(ctx context.Context) error {
	for _, op := range r.ops {
		if op.probe == nil || op.unavailable != "" {
			continue
		}
		reason, err := op.probe(ctx, op)
		if err != nil {
			return fmt.Errorf("probing %s: %w", op.name, err)
		}
		if op.unavailable = reason; reason != "" {
			fmt.Fprintf(stderr, "\r\033[K[bench] %s: %s\n", op.name, reason)
		}
	}
	return nil
}

// sendOnce sends one of op's requests and returns the status.
func sendOnce(ctx context.Context, op *operation) (int, error) {
	var target vegeta.Target
	if err := op.targeter()(&target); err != nil {
		return 0, err
	}
	req, err := target.Request()
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, err
}

// useConfig puts the engine configuration op needs in force: the defaults
// as found, with op's fields on top. It writes only what changes.
func (r *runner) useConfig(ctx context.Context, op *operation) error {
	want := map[string]interface{}{}
	for k, v := range r.f.engineDefaults {
		want[k] = v
	}
	for k, v := range op.config {
		want[k] = v
	}
	changes := map[string]interface{}{}
	for k, v := range want {
		if fmt.Sprint(r.config[k]) != fmt.Sprint(v) {
			changes[k] = v
		}
	}
	if len(changes) == 0 {
		return nil
	}
	if err := r.f.setEngineConfig(ctx, changes); err != nil {
		return fmt.Errorf("configuring the engine for %s: %w", op.name, err)
	}
	for k, v := range changes {
		r.config[k] = v
	}
	return nil
}

// unrecorded runs load that is not measured (warm-up, settling), then the
// operation's cleanup.
func (r *runner) unrecorded(ctx context.Context, op *operation, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	results, _ := attackMembers(op, d, r.o.concurrency, r.client)
	return r.cleanup(ctx, op, results)
}

// cleanup runs the cleanup of each of op's members on its results.
func (r *runner) cleanup(ctx context.Context, op *operation, results [][]*vegeta.Result) error {
	for i, member := range op.members() {
		if member.cleanup == nil {
			continue
		}
		if err := member.cleanup(ctx, results[i]); err != nil {
			return fmt.Errorf("cleaning up after %s: %w", member.name, err)
		}
	}
	return nil
}

// measure runs op once in a round: its configuration, unrecorded settling
// load (connections open, caches in their steady state), the measured
// attack, then its cleanup. A pair's members settle and are measured at
// the same time.
func (r *runner) measure(ctx context.Context, op *operation) error {
	if err := r.useConfig(ctx, op); err != nil {
		return err
	}
	if err := r.unrecorded(ctx, op, r.o.settle); err != nil {
		return err
	}
	results, elapsed := attackMembers(op, r.o.duration, r.o.concurrency, r.client)
	for i, member := range op.members() {
		r.figures[member.name] = append(r.figures[member.name], evaluate(member, results[i], elapsed[i]))
	}
	err := r.cleanup(ctx, op, results)
	r.observed(op)
	return err
}

func (r *runner) observed(op *operation) {
	if r.observe != nil {
		r.observe(op)
	}
}

// run warms every operation up, then runs the rounds: each round runs
// every operation once, in an order drawn at random for that round.
func (r *runner) run(ctx context.Context, label string) error {
	ops := r.available()
	if r.o.warmup > 0 {
		for i, op := range ops {
			progress("%s: warming up %d/%d: %s", label, i+1, len(ops), op.name)
			if err := r.useConfig(ctx, op); err != nil {
				return err
			}
			if err := r.unrecorded(ctx, op, r.o.warmup); err != nil {
				return err
			}
			r.observed(op)
		}
	}
	for round := 0; round < r.o.rounds; round++ {
		for i, n := range r.rng.Perm(len(ops)) {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("out of time (-timeout %s): %w", r.o.timeout, err)
			}
			op := ops[n]
			progress("%s: round %d/%d, %d/%d: %s", label, round+1, r.o.rounds, i+1, len(ops), op.name)
			if err := r.measure(ctx, op); err != nil {
				return err
			}
		}
	}
	return r.restoreConfig(ctx)
}

func (r *runner) restoreConfig(ctx context.Context) error {
	return r.useConfig(ctx, &operation{name: "the defaults"})
}

// opsPerRound returns op's ops/s round by round (NaN where unmeasured).
func (r *runner) opsPerRound(name string) []float64 {
	figures := r.figures[name]
	values := make([]float64, r.o.rounds)
	for i := range values {
		if i < len(figures) {
			values[i] = figures[i].opsPerSecond()
		} else {
			values[i] = nan()
		}
	}
	return values
}

// topCounts renders the most frequent messages of a count map.
func topCounts(counts map[string]int, n int) []string {
	type entry struct {
		msg   string
		count int
	}
	var entries []entry
	for msg, count := range counts {
		entries = append(entries, entry{msg, count})
	}
	sort.Slice(entries, func(i, j int) bool {
		if entries[i].count != entries[j].count {
			return entries[i].count > entries[j].count
		}
		return entries[i].msg < entries[j].msg
	})
	var out []string
	for i, e := range entries {
		if i == n {
			break
		}
		out = append(out, fmt.Sprintf("%d × %s", e.count, strings.TrimSpace(e.msg)))
	}
	return out
}
