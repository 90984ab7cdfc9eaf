// Command bench measures the engine inside a freshly started Vault server,
// side by side with the references a user would compare it to - KV v2
// writes and reads on the same server, and a no-op read served by a trivial
// external plugin - with the same concurrency and duration for every
// operation, interleaved over rounds so that the machine's drift hits all of
// them alike. It prints a table of ops/s, p50, p99 and each operation's
// ratio to its reference, and writes the same as JSON and an SVG chart.
//
// Load comes from vegeta. `make bench` builds what it needs and runs it.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

type options struct {
	raft         bool
	duration     time.Duration
	warmup       time.Duration
	rounds       int
	concurrency  int
	out          string
	scale        bool
	scaleUsers   int
	scalePerUser int
}

func main() {
	var o options
	flag.BoolVar(&o.raft, "raft", false, "run against a single-node integrated-storage (raft) server instead of a dev server with in-memory storage")
	flag.DurationVar(&o.duration, "duration", 3*time.Second, "how long each operation runs in each round")
	flag.DurationVar(&o.warmup, "warmup", time.Second, "unrecorded load per operation before the first round")
	flag.IntVar(&o.rounds, "rounds", 3, "rounds; each runs every operation once, in a rotated order")
	flag.IntVar(&o.concurrency, "concurrency", 16, "concurrent clients for every operation")
	flag.StringVar(&o.out, "out", "scripts/bench/results", "directory for bench.json, bench.md and bench.svg")
	flag.BoolVar(&o.scale, "scale", false, "also measure at scale: PATs across many users, list, verify and tidy")
	flag.IntVar(&o.scaleUsers, "scale-users", 1000, "users in the scale measurement")
	flag.IntVar(&o.scalePerUser, "scale-per-user", 100, "PATs per user in the scale measurement (a tenth of them expire)")
	flag.Parse()

	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	env := map[string]string{}
	for _, name := range []string{"VAULT_BIN", "PLANQK_PLUGIN_BIN", "PLANQK_PLUGIN_VERSION", "NOOP_PLUGIN_BIN"} {
		if env[name] = os.Getenv(name); env[name] == "" {
			return fmt.Errorf("%s is not set: run `make bench`", name)
		}
	}
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "planqk-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	progress("starting Vault (%s) and setting up the fixtures", storageKind(o))
	f, err := setUp(ctx, o, env, dir)
	if err != nil {
		return err
	}
	defer f.server.Stop()

	ops := operations(f)
	progress("warming up: %d operations for %s each", len(ops), o.warmup)
	for _, op := range ops {
		attack(op, o.warmup, o.concurrency)
	}

	results := make(map[string]*opResult, len(ops))
	for _, op := range ops {
		results[op.name] = &opResult{op: op, metrics: &vegeta.Metrics{}}
	}
	for round := 0; round < o.rounds; round++ {
		for i := range ops {
			op := ops[(i+round)%len(ops)]
			progress("round %d/%d: %-36s", round+1, o.rounds, op.name)
			results[op.name].add(attack(op, o.duration, o.concurrency))
		}
	}
	fmt.Fprintln(os.Stderr)

	report := buildReport(o, f, ops, results)
	if o.scale {
		progress("scale: %d users x %d PATs", o.scaleUsers, o.scalePerUser)
		scale, err := measureScale(ctx, o, f)
		if err != nil {
			return err
		}
		report.Scale = scale
	}
	report.PluginMemory = pluginMemory(f.server)

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
	fmt.Fprintf(os.Stderr, "\r\033[K[bench] "+format, args...)
}
