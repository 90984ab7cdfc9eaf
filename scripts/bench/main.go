// Command bench measures the engine inside a freshly started Vault server,
// side by side with what a user would pick instead, in the same run:
//
//   - the cheapest operations any external plugin can serve (scripts/bench/noop),
//     read and write, with the same body or header the engine receives;
//   - Vault's own token store ("why not Vault tokens as PATs?"):
//     auth/token/lookup for verify, auth/token/create for issuing;
//   - KV v2 read and write by the user ("why not keep the tokens in KV?").
//
// Each pair is sent with the same kind of token: a token with an identity
// entity costs Vault itself about twice one without. Every operation runs
// once per round, in a random order drawn per round, with the same clients
// and duration; a response counts only when it is the right answer.
// Ratios are computed round by round and summarised by their median and
// range, and each target of issues 10, 11 and 13 gets a verdict. Results:
// a markdown table (stdout and bench.md), bench.json and bench.svg.
//
// Load comes from vegeta. `make bench` builds what it needs and runs it.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"time"
)

type options struct {
	raft               bool
	duration           time.Duration
	settle             time.Duration
	warmup             time.Duration
	rounds             int
	concurrency        int
	seed               uint64
	users              int
	patsPerUser        int
	timeout            time.Duration
	out                string
	scale              bool
	scaleUsers         int
	scalePerUser       int
	scaleProviderEvery int
	scaleOrgMembers    int
	scaleRounds        int            // 0: rounds
	scaleDuration      time.Duration  // 0: duration
	only               *regexp.Regexp // nil: every operation
}

var stderr io.Writer = os.Stderr

func main() {
	var o options
	flag.BoolVar(&o.raft, "raft", false, "run against a single-node integrated-storage (raft) server instead of a dev server with in-memory storage")
	flag.DurationVar(&o.duration, "duration", 3*time.Second, "measured time of each operation in each round")
	flag.DurationVar(&o.settle, "settle", 500*time.Millisecond, "unrecorded load right before each measurement (connections open, caches in their steady state)")
	flag.DurationVar(&o.warmup, "warmup", time.Second, "unrecorded load per operation before the first round")
	flag.IntVar(&o.rounds, "rounds", 5, "rounds; each runs every operation once, in a random order")
	flag.IntVar(&o.concurrency, "concurrency", 16, "concurrent clients for every operation")
	flag.Uint64Var(&o.seed, "seed", 0, "seed of the rounds' order (0: drawn from the clock, printed with the results)")
	flag.IntVar(&o.users, "users", 300, "users, each a member of the organization, with their own PATs and Vault tokens")
	flag.IntVar(&o.patsPerUser, "pats-per-user", 3, "PATs (and Vault tokens) per user: verify and lookup pick among all of them at random")
	flag.DurationVar(&o.timeout, "timeout", 90*time.Minute, "the whole run, setup included, stops after this")
	flag.StringVar(&o.out, "out", "scripts/bench/results", "directory for bench.json, bench.md and bench.svg")
	flag.BoolVar(&o.scale, "scale", false, "also measure at scale: PATs across many users; verify, list, inventory paging and tidy")
	flag.IntVar(&o.scaleUsers, "scale-users", 1000, "users in the scale measurement")
	flag.IntVar(&o.scalePerUser, "scale-per-user", 100, "PATs per user in the scale measurement (a tenth of them expire)")
	flag.IntVar(&o.scaleProviderEvery, "scale-provider-every", 10, "every n-th scale user also stores a provider token with expires_at")
	flag.IntVar(&o.scaleOrgMembers, "scale-org-members", 1000, "members of each of the two scale organizations")
	flag.IntVar(&o.scaleRounds, "scale-rounds", 0, "rounds of the scale measurement (0: -rounds)")
	flag.DurationVar(&o.scaleDuration, "scale-duration", 0, "measured time of each scale operation in each round (0: -duration)")
	only := flag.String("ops", "", "regular expression: measure only the operations whose name matches it, e.g. 'exchange|resolve|KV v2 read' (the others, and the ratios they take part in, read n/a)")
	flag.Parse()
	if *only != "" {
		re, err := regexp.Compile(*only)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench: -ops:", err)
			os.Exit(2)
		}
		o.only = re
	}
	if o.seed == 0 {
		o.seed = uint64(time.Now().UnixNano())
	}
	if o.scaleUsers < 1 || o.scalePerUser < 1 || o.scaleProviderEvery < 1 || o.scaleOrgMembers < 1 {
		fmt.Fprintln(os.Stderr, "bench: -scale-users, -scale-per-user, -scale-provider-every and -scale-org-members must be positive")
		os.Exit(2)
	}
	if o.scale && o.concurrency < 2 {
		fmt.Fprintln(os.Stderr, "bench: -scale measures pairs of operations at the same time: -concurrency must be at least 2")
		os.Exit(2)
	}
	if o.scaleRounds < 0 || o.scaleDuration < 0 {
		fmt.Fprintln(os.Stderr, "bench: -scale-rounds and -scale-duration must not be negative")
		os.Exit(2)
	}
	if o.rounds < 1 || o.users < 1 || o.patsPerUser < 1 || o.concurrency < 1 || o.duration <= 0 {
		fmt.Fprintln(os.Stderr, "bench: -rounds, -users, -pats-per-user, -concurrency and -duration must be positive")
		os.Exit(2)
	}

	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "\nbench:", err)
		os.Exit(1)
	}
}

// forScale returns the options of the scale rounds: -scale-rounds and
// -scale-duration where given.
func (o options) forScale() options {
	if o.scaleRounds > 0 {
		o.rounds = o.scaleRounds
	}
	if o.scaleDuration > 0 {
		o.duration = o.scaleDuration
	}
	return o
}

func run(o options) error {
	env := map[string]string{}
	for _, name := range []string{"VAULT_BIN", "PLANQK_PLUGIN_BIN", "PLANQK_PLUGIN_VERSION", "NOOP_PLUGIN_BIN"} {
		if env[name] = os.Getenv(name); env[name] == "" {
			return fmt.Errorf("%s is not set: run `make bench`", name)
		}
	}
	// Optional: without moto_server the derived-credentials rows read n/a.
	env["MOTO_SERVER_BIN"] = os.Getenv("MOTO_SERVER_BIN")
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	dir, err := os.MkdirTemp("", "planqk-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	progress("starting Vault (%s) and setting up the fixtures", storageKind(o))
	f, err := setUp(ctx, o, env, dir)
	if f != nil && f.server != nil {
		defer f.server.Stop()
	}
	if f != nil {
		defer f.moto.Stop()
	}
	if err != nil {
		return err
	}

	r := newRunner(o, f, selectOperations(operations(f), o.only))
	if err := r.probe(ctx); err != nil {
		return err
	}
	if err := r.run(ctx, "bench"); err != nil {
		return err
	}
	report := buildReport(o, f, r)
	report.PluginMemory = pluginMemory(f.server)
	if o.scale {
		scale, err := measureScale(ctx, o, f, report)
		if err != nil {
			return err
		}
		report.Scale = scale
	}
	fmt.Fprintln(stderr)

	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	markdown := report.markdown()
	fmt.Print(markdown)
	for name, write := range map[string]func(string) error{
		"bench.json": report.writeJSON,
		"bench.svg":  report.writeSVG,
	} {
		if err := write(filepath.Join(o.out, name)); err != nil {
			return err
		}
	}
	return os.WriteFile(filepath.Join(o.out, "bench.md"), []byte(markdown), 0o644)
}

func storageKind(o options) string {
	if o.raft {
		return "single-node raft"
	}
	return "dev, in-memory"
}

func progress(format string, args ...interface{}) {
	fmt.Fprintf(stderr, "\r\033[K[bench] "+format, args...)
}
