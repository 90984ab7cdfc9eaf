package main

import (
	"encoding/json"
	"fmt"
	"html"
	"os"
	"runtime"
	"strings"
	"time"
)

// report is what `make bench` prints and writes.
type report struct {
	Date         string            `json:"date"`
	Machine      string            `json:"machine"`
	Vault        string            `json:"vault"`
	Storage      string            `json:"storage"`
	Concurrency  int               `json:"concurrency"`
	Duration     string            `json:"duration_per_round"`
	Rounds       int               `json:"rounds"`
	Operations   []operationReport `json:"operations"`
	PluginMemory map[string]string `json:"plugin_memory,omitempty"`
	Scale        *scaleReport      `json:"scale,omitempty"`
}

type operationReport struct {
	Name      string             `json:"name"`
	Reference bool               `json:"reference"`
	Requests  uint64             `json:"requests"`
	Failures  uint64             `json:"failures"`
	OpsPerSec float64            `json:"ops_per_sec"`
	P50Millis float64            `json:"p50_ms"`
	P99Millis float64            `json:"p99_ms"`
	Ratios    map[string]float64 `json:"ratios,omitempty"` // to each reference
	Primary   string             `json:"primary_reference,omitempty"`
	Compared  []string           `json:"compared_to,omitempty"`
	Target    float64            `json:"target,omitempty"`
	Met       *bool              `json:"target_met,omitempty"`
	Errors    map[string]int     `json:"errors,omitempty"`
}

func buildReport(o options, f *fixtures, ops []operation, results map[string]*opResult) *report {
	r := &report{
		Date:        time.Now().UTC().Format(time.RFC3339),
		Machine:     machine(),
		Vault:       f.vaultVersion,
		Storage:     storageKind(o),
		Concurrency: o.concurrency,
		Duration:    o.duration.String(),
		Rounds:      o.rounds,
	}
	for _, op := range ops {
		res := results[op.name]
		res.metrics.Close()
		entry := operationReport{
			Name:      op.name,
			Reference: op.reference,
			Requests:  res.metrics.Requests,
			Failures:  res.failures,
			OpsPerSec: res.opsPerSecond(),
			P50Millis: float64(res.metrics.Latencies.P50) / float64(time.Millisecond),
			P99Millis: float64(res.metrics.Latencies.P99) / float64(time.Millisecond),
		}
		if len(res.errors) > 0 {
			entry.Errors = res.errors
		}
		if len(op.comparedTo) > 0 {
			entry.Ratios = map[string]float64{}
			for _, ref := range op.comparedTo {
				if refOps := results[ref].opsPerSecond(); refOps > 0 {
					entry.Ratios[ref] = entry.OpsPerSec / refOps
				}
			}
			entry.Primary, entry.Compared = op.comparedTo[0], op.comparedTo
			if op.target > 0 {
				met := entry.Ratios[entry.Primary] >= op.target
				entry.Target, entry.Met = op.target, &met
			}
		}
		r.Operations = append(r.Operations, entry)
	}
	return r
}

func machine() string {
	model := "unknown CPU"
	if cpuinfo, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(cpuinfo), "\n") {
			if strings.HasPrefix(line, "model name") {
				model = strings.TrimSpace(strings.SplitN(line, ":", 2)[1])
				break
			}
		}
	}
	memory := ""
	if meminfo, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int
		fmt.Sscanf(strings.SplitN(string(meminfo), "\n", 2)[0], "MemTotal: %d kB", &kb)
		memory = fmt.Sprintf(", %.0f GiB", float64(kb)/1024/1024)
	}
	return fmt.Sprintf("%d cores (%s)%s, %s/%s, %s", runtime.NumCPU(), model, memory, runtime.GOOS, runtime.GOARCH, runtime.Version())
}

func (r *report) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "\nBenchmark of %s, %s\n", r.Date, r.Machine)
	fmt.Fprintf(&b, "Vault %s, %s storage; %d concurrent clients, %s per operation per round, %d interleaved rounds.\n\n",
		r.Vault, r.Storage, r.Concurrency, r.Duration, r.Rounds)
	b.WriteString("| operation | ops/s | p50 ms | p99 ms | failed | ratio to reference | target |\n")
	b.WriteString("|---|---:|---:|---:|---:|---|---|\n")
	for _, op := range r.Operations {
		ratio, target := "", ""
		if op.Primary != "" {
			var parts []string
			for i, ref := range op.Compared {
				format := "%.2f × %s"
				if i == 0 {
					format = "**%.2f** × %s"
				}
				parts = append(parts, fmt.Sprintf(format, op.Ratios[ref], ref))
			}
			ratio = strings.Join(parts, "; ")
		}
		if op.Met != nil {
			target = fmt.Sprintf("≥ %.2f: %s", op.Target, map[bool]string{true: "met", false: "**missed**"}[*op.Met])
		}
		name := op.Name
		if op.Reference {
			name = "_" + name + "_"
		}
		fmt.Fprintf(&b, "| %s | %.0f | %.2f | %.2f | %d | %s | %s |\n", name, op.OpsPerSec, op.P50Millis, op.P99Millis, op.Failures, ratio, target)
	}
	if len(r.PluginMemory) > 0 {
		fmt.Fprintf(&b, "\nEngine plugin process memory: peak %s, now %s.\n", r.PluginMemory["VmHWM"], r.PluginMemory["VmRSS"])
	}
	if r.Scale != nil {
		b.WriteString(r.Scale.markdown())
	}
	for _, op := range r.Operations {
		for e, n := range op.Errors {
			fmt.Fprintf(&b, "\n%s: %d × %s", op.Name, n, e)
		}
	}
	b.WriteString("\n")
	return b.String()
}

func (r *report) writeJSON(path string) error {
	out, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(out, '\n'), 0o644)
}

// writeSVG draws each engine operation's ratio to its primary reference as
// a horizontal bar, with its target marked.
func (r *report) writeSVG(path string) error {
	const width, left, barHeight, gap, top = 900, 330, 26, 12, 50
	var engine []operationReport
	for _, op := range r.Operations {
		if !op.Reference {
			engine = append(engine, op)
		}
	}
	height := top + len(engine)*(barHeight+gap) + 40
	scale := func(ratio float64) float64 { return float64(width-left-40) * ratio / 1.25 }

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="13">`+"\n", width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="10" y="22" font-size="15" font-weight="bold">Engine throughput relative to its reference (%s, %d clients)</text>`+"\n", html.EscapeString(r.Storage), r.Concurrency)
	fmt.Fprintf(&b, `<text x="10" y="40" fill="#555">%s</text>`+"\n", html.EscapeString(r.Machine))
	for _, mark := range []float64{0.5, 1.0} {
		x := float64(left) + scale(mark)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#bbb" stroke-dasharray="3,3"/>`+"\n", x, top-4, x, height-30)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle" fill="#777">%.1f×</text>`+"\n", x, height-14, mark)
	}
	for i, op := range engine {
		y := top + i*(barHeight+gap)
		ratio := op.Ratios[op.Primary]
		colour := "#4a7bd0"
		if op.Met != nil && !*op.Met {
			colour = "#d0694a"
		}
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end">%s</text>`+"\n", left-8, y+17, html.EscapeString(op.Name))
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>`+"\n", left, y, scale(ratio), barHeight, colour)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d">%.2f × %s</text>`+"\n", float64(left)+scale(ratio)+6, y+17, ratio, html.EscapeString(shortName(op.Primary)))
		if op.Target > 0 {
			x := float64(left) + scale(op.Target)
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="black" stroke-width="2"/>`+"\n", x, y-3, x, y+barHeight+3)
		}
	}
	b.WriteString("</svg>\n")
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

func shortName(ref string) string {
	return strings.NewReplacer(" (service token)", "", " (user token)", "", "plugin ", "").Replace(ref)
}
