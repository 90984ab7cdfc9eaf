// Command planqk-leakcheck drops look-alikes from secret scanners'
// findings offline: it keeps only candidates with the prefix, length,
// alphabet and CRC32 checksum of a PlanQK personal access token, using the
// engine's own token format (backend.WellFormedToken). It also prints the
// gitleaks rule for a prefix.
//
//	gitleaks git --config gitleaks.toml --report-format json --report-path - | planqk-leakcheck
//	planqk-leakcheck -format lines candidates.txt
//	planqk-leakcheck rules -prefix plqk_ > gitleaks.toml
//
// It exits 1 when a well-formed token remains, 0 when none does, 2 on an
// error, as gitleaks does. A token's value is never written to standard
// error.
package main

import (
	"bufio"
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/planqk/vault-plugin-secrets-planqk/backend"
)

//go:embed gitleaks.toml
var defaultRules string

const defaultPrefix = "plqk_"

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run is the command; it returns the exit status.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "rules" {
		flags := flag.NewFlagSet("rules", flag.ContinueOnError)
		flags.SetOutput(stderr)
		prefix := flags.String("prefix", defaultPrefix, "the engine's token_prefix")
		if err := flags.Parse(args[1:]); err != nil {
			return 2
		}
		rules, err := gitleaksRules(*prefix)
		if err != nil {
			fmt.Fprintln(stderr, "planqk-leakcheck:", err)
			return 2
		}
		fmt.Fprint(stdout, rules)
		return 0
	}
	flags := flag.NewFlagSet("planqk-leakcheck", flag.ContinueOnError)
	flags.SetOutput(stderr)
	prefix := flags.String("prefix", defaultPrefix, "the engine's token_prefix")
	format := flags.String("format", "gitleaks", `input and output: "gitleaks" (a gitleaks JSON report; findings kept whole) or "lines" (one candidate a line)`)
	if err := flags.Parse(args); err != nil {
		return 2
	}
	in := stdin
	if flags.NArg() > 1 {
		fmt.Fprintln(stderr, "planqk-leakcheck: at most one input file")
		return 2
	}
	if flags.NArg() == 1 {
		f, err := os.Open(flags.Arg(0))
		if err != nil {
			fmt.Fprintln(stderr, "planqk-leakcheck:", err)
			return 2
		}
		defer f.Close()
		in = f
	}
	var kept int
	var err error
	switch *format {
	case "gitleaks":
		kept, err = filterReport(in, stdout, *prefix)
	case "lines":
		kept, err = filterLines(in, stdout, *prefix)
	default:
		err = fmt.Errorf("unknown format %q: gitleaks or lines", *format)
	}
	if err != nil {
		fmt.Fprintln(stderr, "planqk-leakcheck:", err)
		return 2
	}
	if kept > 0 {
		fmt.Fprintf(stderr, "planqk-leakcheck: %d well-formed PlanQK token(s) found\n", kept)
		return 1
	}
	return 0
}

// filterReport keeps the findings of a gitleaks JSON report whose Secret is
// a well-formed token, each finding as gitleaks wrote it.
func filterReport(in io.Reader, out io.Writer, prefix string) (int, error) {
	var findings []map[string]json.RawMessage
	if err := json.NewDecoder(in).Decode(&findings); err != nil {
		return 0, errors.New("the input is not a gitleaks JSON report (a list of findings)")
	}
	kept := make([]map[string]json.RawMessage, 0, len(findings))
	for _, finding := range findings {
		var secret string
		if raw, ok := finding["Secret"]; ok && json.Unmarshal(raw, &secret) == nil && backend.WellFormedToken(secret, prefix) {
			kept = append(kept, finding)
		}
	}
	encoded, err := json.MarshalIndent(kept, "", " ")
	if err != nil {
		return 0, err
	}
	_, err = out.Write(append(encoded, '\n'))
	return len(kept), err
}

// filterLines keeps the lines that are well-formed tokens, trimmed.
func filterLines(in io.Reader, out io.Writer, prefix string) (int, error) {
	scanner := bufio.NewScanner(in)
	kept := 0
	for scanner.Scan() {
		candidate := strings.TrimSpace(scanner.Text())
		if backend.WellFormedToken(candidate, prefix) {
			if _, err := fmt.Fprintln(out, candidate); err != nil {
				return kept, err
			}
			kept++
		}
	}
	return kept, scanner.Err()
}

// gitleaksRules renders the shipped rule for another prefix.
func gitleaksRules(prefix string) (string, error) {
	if prefix == "" || strings.ContainsAny(prefix, "'\n\"\\") {
		return "", fmt.Errorf("prefix %q cannot be put in a rule", prefix)
	}
	if prefix == defaultPrefix {
		return defaultRules, nil
	}
	var out bytes.Buffer
	for _, line := range strings.SplitAfter(defaultRules, "\n") {
		switch {
		case strings.HasPrefix(line, "regex = "):
			line = "regex = '''" + backend.TokenPattern(prefix) + "'''\n"
		case strings.HasPrefix(line, "keywords = "):
			line = `keywords = ["` + strings.ToLower(prefix) + "\"]\n"
		default:
			line = strings.ReplaceAll(line, defaultPrefix, prefix)
		}
		out.WriteString(line)
	}
	return out.String(), nil
}
