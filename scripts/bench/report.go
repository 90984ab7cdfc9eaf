package main

import (
	"encoding/json"
	"fmt"
	"html"
	"math"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"
)

// report is what `make bench` prints and writes.
type report struct {
	Date string `json:"date"`
	// Commit is `git describe --always --dirty` of the tree the engine
	// was built from: the results describe that code, nothing later.
	Commit       string             `json:"commit"`
	Machine      machineFacts       `json:"machine"`
	Vault        string             `json:"vault"`
	Storage      string             `json:"storage"`
	Method       methodFacts        `json:"method"`
	Operations   []operationReport  `json:"operations"`
	Comparisons  []comparisonReport `json:"comparisons"`
	PluginMemory map[string]string  `json:"plugin_memory,omitempty"`
	Scale        *scaleReport       `json:"scale,omitempty"`
}

type machineFacts struct {
	CPU       string  `json:"cpu"`
	Cores     int     `json:"cores"`
	MemoryGiB float64 `json:"memory_gib"`
	OS        string  `json:"os"`
	Go        string  `json:"go"`
}

type methodFacts struct {
	Concurrency int    `json:"concurrency"`
	Duration    string `json:"duration_per_round"`
	Settle      string `json:"unrecorded_before_each"`
	Warmup      string `json:"warmup"`
	Rounds      int    `json:"rounds"`
	Seed        uint64 `json:"seed"`
	Users       int    `json:"users"`
	PATsPerUser int    `json:"pats_per_user"`
}

type operationReport struct {
	Name         string   `json:"name"`
	Caller       string   `json:"caller"`
	Request      string   `json:"request"`
	Reference    bool     `json:"reference"`
	Unavailable  string   `json:"unavailable,omitempty"`
	OpsPerSec    spread   `json:"ops_per_sec"`
	PerRound     floats   `json:"ops_per_sec_per_round"`
	Requests     uint64   `json:"requests"`
	Successes    uint64   `json:"right_answers"`
	Failed       uint64   `json:"failed"`
	Wrong        uint64   `json:"wrong_answers"`
	P50Millis    float64  `json:"p50_ms"`
	P99Millis    float64  `json:"p99_ms"`
	Failures     []string `json:"failures,omitempty"`
	WrongAnswers []string `json:"wrong_answer_reasons,omitempty"`
}

type comparisonReport struct {
	Operation   string  `json:"operation"`
	Reference   string  `json:"reference"`
	Ratio       spread  `json:"ratio"`
	PerRound    floats  `json:"ratio_per_round"`
	Target      float64 `json:"target,omitempty"`
	Source      string  `json:"target_source,omitempty"`
	Verdict     verdict `json:"verdict,omitempty"`
	Unavailable string  `json:"unavailable,omitempty"`
}

func buildReport(o options, f *fixtures, r *runner) *report {
	rep := &report{
		Date:    time.Now().UTC().Format(time.RFC3339),
		Commit:  commitDescription(),
		Machine: machine(),
		Vault:   f.vaultVersion,
		Storage: storageKind(o),
		Method: methodFacts{
			Concurrency: o.concurrency, Duration: o.duration.String(), Settle: o.settle.String(), Warmup: o.warmup.String(),
			Rounds: o.rounds, Seed: o.seed, Users: o.users, PATsPerUser: o.patsPerUser,
		},
	}
	rep.Operations = operationReports(r)
	rep.Comparisons = comparisonReports(r, comparisons())
	return rep
}

// commitDescription is `git describe --always --dirty` of the working
// tree ("-dirty" when it has uncommitted changes), or why there is none.
func commitDescription() string {
	out, err := exec.Command("git", "describe", "--always", "--dirty").Output()
	if err != nil {
		return "unknown (git describe failed: " + err.Error() + ")"
	}
	return strings.TrimSpace(string(out))
}

func operationReports(r *runner) []operationReport {
	var out []operationReport
	for _, op := range r.ops {
		if len(op.pair) > 0 {
			continue // its members have the figures
		}
		entry := operationReport{Name: op.name, Caller: op.caller, Request: op.request, Reference: op.reference, Unavailable: op.unavailable}
		if op.unavailable == "" {
			perRound := r.opsPerRound(op.name)
			entry.OpsPerSec, entry.PerRound = summarize(perRound), perRound
			var latencies []time.Duration
			failures, wrongs := map[string]int{}, map[string]int{}
			for _, round := range r.figures[op.name] {
				entry.Requests += round.requests
				entry.Successes += round.successes
				entry.Failed += round.failed
				entry.Wrong += round.wrong
				latencies = append(latencies, round.latencies...)
				for k, v := range round.failures {
					failures[k] += v
				}
				for k, v := range round.wrongs {
					wrongs[k] += v
				}
			}
			entry.P50Millis = millis(percentile(latencies, 0.50))
			entry.P99Millis = millis(percentile(latencies, 0.99))
			entry.Failures, entry.WrongAnswers = topCounts(failures, 5), topCounts(wrongs, 5)
		}
		out = append(out, entry)
	}
	return out
}

func comparisonReports(r *runner, list []comparison) []comparisonReport {
	unavailable := map[string]string{}
	for _, op := range r.ops {
		unavailable[op.name] = op.unavailable
	}
	var out []comparisonReport
	for _, c := range list {
		entry := comparisonReport{Operation: c.operation, Reference: c.reference, Target: c.target, Source: c.source}
		if why := unavailable[c.operation] + unavailable[c.reference]; why != "" {
			entry.Unavailable = strings.TrimSpace(unavailable[c.operation] + " " + unavailable[c.reference])
			entry.Ratio = summarize(nil)
		} else {
			entry.PerRound = perRoundRatios(r.opsPerRound(c.operation), r.opsPerRound(c.reference))
			entry.Ratio = summarize(entry.PerRound)
		}
		entry.Verdict = judge(entry.Ratio, c.target)
		out = append(out, entry)
	}
	return out
}

func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func machine() machineFacts {
	m := machineFacts{CPU: "unknown CPU", Cores: runtime.NumCPU(), OS: runtime.GOOS + "/" + runtime.GOARCH, Go: runtime.Version()}
	if cpuinfo, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(cpuinfo), "\n") {
			if strings.HasPrefix(line, "model name") {
				m.CPU = strings.TrimSpace(strings.SplitN(line, ":", 2)[1])
				break
			}
		}
	}
	if meminfo, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int
		fmt.Sscanf(strings.SplitN(string(meminfo), "\n", 2)[0], "MemTotal: %d kB", &kb)
		m.MemoryGiB = math.Round(float64(kb)/1024/1024*10) / 10
	}
	return m
}

func (m machineFacts) String() string {
	return fmt.Sprintf("%d cores (%s), %.0f GiB, %s, %s", m.Cores, m.CPU, m.MemoryGiB, m.OS, m.Go)
}

// formatSpread renders a median with its range over the rounds.
func formatSpread(s spread, format string) string {
	if !s.known() {
		return "–"
	}
	return fmt.Sprintf(format+" ["+format+"–"+format+"]", s.Median, s.Min, s.Max)
}

func (r *report) markdown() string {
	var b strings.Builder
	m := r.Method
	fmt.Fprintf(&b, "\nBenchmark of %s at commit %s on %s; Vault %s, %s storage.\n", r.Date, r.Commit, r.Machine, r.Vault, r.Storage)
	fmt.Fprintf(&b, "%d concurrent clients; %d rounds, each running every operation once in a random order (seed %d), "+
		"%s measured after %s unrecorded; verify picks at random among %d PATs of %d users.\n",
		m.Concurrency, m.Rounds, m.Seed, m.Duration, m.Settle, m.Users*m.PATsPerUser, m.Users)
	b.WriteString("The engine runs with its default configuration (identity cache, last-use recording) unless a row says otherwise. " +
		"Ops/s count right answers only (median [min–max] over rounds); ratios are computed round by round, " +
		"then their median [min–max]; a verdict is \"met\" when every round's ratio (the range's lower end) reaches the target, " +
		"\"met (median)\" when only the median does, else \"missed\".\n\n")

	b.WriteString("| operation | against | ratio | target | verdict |\n|---|---|---:|---:|---|\n")
	for _, c := range r.Comparisons {
		if c.Target > 0 {
			b.WriteString(c.markdownRow())
		}
	}
	b.WriteString("\nFor information (no target):\n\n| operation | against | ratio |\n|---|---|---:|\n")
	for _, c := range r.Comparisons {
		if c.Target == 0 {
			fmt.Fprintf(&b, "| %s | %s | %s |\n", c.Operation, c.Reference, firstNonEmpty(c.Unavailable, formatSpread(c.Ratio, "%.2f")))
		}
	}

	b.WriteString("\n| operation | caller | request | ops/s | p50 ms | p99 ms | failed | wrong |\n|---|---|---|---:|---:|---:|---:|---:|\n")
	for _, op := range r.Operations {
		name := op.Name
		if op.Reference {
			name = "_" + name + "_"
		}
		if op.Unavailable != "" {
			fmt.Fprintf(&b, "| %s | %s | `%s` | %s | | | | |\n", name, op.Caller, op.Request, op.Unavailable)
			continue
		}
		fmt.Fprintf(&b, "| %s | %s | `%s` | %s | %.2f | %.2f | %d | %d |\n", name, op.Caller, op.Request,
			formatSpread(op.OpsPerSec, "%.0f"), op.P50Millis, op.P99Millis, op.Failed, op.Wrong)
	}
	if len(r.PluginMemory) > 0 {
		fmt.Fprintf(&b, "\nEngine plugin process memory: peak %s, now %s.\n", r.PluginMemory["VmHWM"], r.PluginMemory["VmRSS"])
	}
	if r.Scale != nil {
		b.WriteString(r.Scale.markdown())
	}
	for _, op := range r.Operations {
		for _, msg := range op.Failures {
			fmt.Fprintf(&b, "\n%s failed: %s", op.Name, msg)
		}
		for _, msg := range op.WrongAnswers {
			fmt.Fprintf(&b, "\n%s wrong answer: %s", op.Name, msg)
		}
	}
	b.WriteString("\n")
	return b.String()
}

func (c comparisonReport) markdownRow() string {
	target := fmt.Sprintf("≥ %.2f (%s)", c.Target, c.Source)
	if c.Unavailable != "" {
		return fmt.Sprintf("| %s | %s | %s | %s | n/a |\n", c.Operation, c.Reference, c.Unavailable, target)
	}
	v := string(c.Verdict)
	if c.Verdict == verdictMissed {
		v = "**missed**"
	}
	if c.Verdict == verdictMetMedian {
		v = "_met (median)_"
	}
	return fmt.Sprintf("| %s | %s | %s | %s | %s |\n", c.Operation, c.Reference, formatSpread(c.Ratio, "%.2f"), target, v)
}

func (r *report) writeJSON(path string) error {
	out, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(out, '\n'), 0o644)
}

// writeSVG draws every comparison as a bar at its median ratio with a
// whisker over its range across rounds and the target marked: first those
// with a target, then those shown for information.
func (r *report) writeSVG(path string) error {
	const width, left, right, barHeight, gap, top = 1120, 560, 40, 18, 10, 62
	type line struct {
		heading string
		c       comparisonReport
	}
	var lines []line
	for _, withTarget := range []bool{true, false} {
		lines = append(lines, line{heading: map[bool]string{true: "With a target", false: "For information"}[withTarget]})
		for _, c := range r.Comparisons {
			if (c.Target > 0) == withTarget {
				lines = append(lines, line{c: c})
			}
		}
	}
	axisMax := 1.25
	for _, c := range r.Comparisons {
		if c.Ratio.known() && c.Ratio.Max*1.05 > axisMax {
			axisMax = math.Min(math.Ceil(c.Ratio.Max*1.05*4)/4, 4)
		}
	}
	step := 0.25
	if axisMax > 2 {
		step = 0.5
	}
	height := top + len(lines)*(barHeight+gap) + 40
	x := func(ratio float64) float64 {
		return float64(left) + float64(width-left-right)*math.Min(ratio, axisMax)/axisMax
	}

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", width, height)
	b.WriteString(`<rect width="100%" height="100%" fill="white"/>` + "\n")
	fmt.Fprintf(&b, `<text x="10" y="20" font-size="15" font-weight="bold">Engine throughput ÷ reference: median of the per-round ratios; whisker: range over %d rounds</text>`+"\n", r.Method.Rounds)
	fmt.Fprintf(&b, `<text x="10" y="38" fill="#555">%s; Vault %s, %s; %d clients. Black tick: target. Blue: met, light blue: met (median), red: missed, grey: no target. Commit %s.</text>`+"\n",
		html.EscapeString(r.Machine.String()), html.EscapeString(r.Vault), html.EscapeString(r.Storage), r.Method.Concurrency, html.EscapeString(r.Commit))
	for mark := 0.0; mark <= axisMax+1e-9; mark += step {
		stroke := "#ddd"
		if mark == 1 {
			stroke = "#999"
		}
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s"/>`+"\n", x(mark), top-6, x(mark), height-30, stroke)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle" fill="#777">%.2g×</text>`+"\n", x(mark), height-14, mark)
	}
	for i, l := range lines {
		y := top + i*(barHeight+gap)
		if l.heading != "" {
			fmt.Fprintf(&b, `<text x="10" y="%d" font-weight="bold">%s</text>`+"\n", y+13, html.EscapeString(l.heading))
			continue
		}
		c := l.c
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end">%s</text>`+"\n", left-8, y+13, html.EscapeString(c.Operation+" ÷ "+c.Reference))
		if !c.Ratio.known() {
			fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#777">%s</text>`+"\n", left+4, y+13, html.EscapeString(firstNonEmpty(c.Unavailable, "n/a")))
			continue
		}
		if c.Target > 0 {
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="black" stroke-width="3"/>`+"\n", x(c.Target), y-3, x(c.Target), y+barHeight+3)
		}
		colour := "#9aa5b1"
		switch c.Verdict {
		case verdictMet:
			colour = "#4a7bd0"
		case verdictMetMedian:
			colour = "#9bb8e8"
		case verdictMissed:
			colour = "#d0694a"
		}
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>`+"\n", left, y, x(c.Ratio.Median)-float64(left), barHeight, colour)
		mid := y + barHeight/2
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="black"/>`+"\n", x(c.Ratio.Min), mid, x(c.Ratio.Max), mid)
		for _, end := range []float64{c.Ratio.Min, c.Ratio.Max} {
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="black"/>`+"\n", x(end), mid-4, x(end), mid+4)
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%d">%.2f</text>`+"\n", math.Max(x(c.Ratio.Max), x(c.Target))+6, y+13, c.Ratio.Median)
	}
	b.WriteString("</svg>\n")
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

func firstNonEmpty(values ...string) string {
	for _, v := range values {
		if v != "" {
			return v
		}
	}
	return ""
}
