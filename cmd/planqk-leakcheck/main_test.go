package main

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/planqk/vault-plugin-secrets-planqk/backend"
)

func newToken(t *testing.T, prefix string) string {
	t.Helper()
	token, err := backend.GenerateToken(prefix, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return token
}

// garbled changes one character of the random part: same shape, wrong
// checksum.
func garbled(token string) string {
	i := len(defaultPrefix) + 4
	c := byte('Q')
	if token[i] == c {
		c = 'R'
	}
	return token[:i] + string(c) + token[i+1:]
}

// The shipped file is the rule rendered for the default prefix, and its
// regular expression is the engine's TokenPattern.
func TestRules_shippedFileIsTheEnginesPattern(t *testing.T) {
	rendered, err := gitleaksRules(defaultPrefix)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(rendered, "regex = '''"+backend.TokenPattern(defaultPrefix)+"'''\n") {
		t.Fatalf("gitleaks.toml's regex is not backend.TokenPattern(%q) = %s", defaultPrefix, backend.TokenPattern(defaultPrefix))
	}
	other, err := gitleaksRules("acme_")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(other, "plqk_") || !strings.Contains(other, "regex = '''"+backend.TokenPattern("acme_")+"'''") {
		t.Fatalf("rules for acme_:\n%s", other)
	}
	for _, bad := range []string{"", "a'''b", "x\ny"} {
		if _, err := gitleaksRules(bad); err == nil {
			t.Errorf("prefix %q accepted", bad)
		}
	}
}

func TestLines_keepsOnlyWellFormedTokens(t *testing.T) {
	good := newToken(t, defaultPrefix)
	in := strings.Join([]string{good, garbled(good), newToken(t, "ghp_"), "  " + good + "  ", "plqk_short"}, "\n")
	var out, errOut bytes.Buffer
	if status := run([]string{"-format", "lines"}, strings.NewReader(in), &out, &errOut); status != 1 {
		t.Fatalf("status %d: %s", status, errOut.String())
	}
	if out.String() != good+"\n"+good+"\n" {
		t.Fatalf("kept %q", out.String())
	}
	if strings.Contains(errOut.String(), good) {
		t.Fatal("a value reached standard error")
	}
	out.Reset()
	if status := run([]string{"-format", "lines"}, strings.NewReader(garbled(good)), &out, &errOut); status != 0 || out.Len() != 0 {
		t.Fatalf("a garbled token alone: status %d, out %q", status, out.String())
	}
}

// TestGitleaks_findsPlantedPATsAndLeakcheckDropsLookalikes runs the real
// gitleaks (go tool gitleaks, pinned in go.mod) with the shipped rule over
// a scratch git repository: it reports the planted PAT and the garbled
// copy (a regular expression cannot compute a CRC32) and not the token of
// another prefix; planqk-leakcheck then drops the garbled copy.
func TestGitleaks_findsPlantedPATsAndLeakcheckDropsLookalikes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs gitleaks")
	}
	good := newToken(t, defaultPrefix)
	bad := garbled(good)
	other := newToken(t, "ghp_")
	wrongPrefix := "plqq_" + good[len(defaultPrefix):]

	repo := t.TempDir()
	git := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false"}, args...)...)
		cmd.Dir = repo
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	git("init", "-q")
	files := map[string]string{
		"config.py":    "PLANQK_TOKEN = \"" + good + "\"\n",
		"notebook.txt": "token: " + bad + "\nother: " + other + "\n",
		"ci.log":       "export PLANQK_TOKEN=" + wrongPrefix + "\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(repo, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	git("add", ".")
	git("commit", "-q", "-m", "leak")

	report := filepath.Join(t.TempDir(), "report.json")
	cmd := exec.Command("go", "tool", "gitleaks", "git", repo, "--config", "gitleaks.toml",
		"--report-format", "json", "--report-path", report, "--exit-code", "0", "--no-banner", "--log-level", "error")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gitleaks: %v\n%s", err, out)
	}
	raw, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	var findings []struct{ Secret, File, RuleID string }
	if err := json.Unmarshal(raw, &findings); err != nil {
		t.Fatalf("gitleaks report: %v", err)
	}
	found := map[string]string{}
	for _, f := range findings {
		if f.RuleID != "planqk-personal-access-token" {
			t.Errorf("finding of rule %s", f.RuleID)
		}
		found[f.Secret] = f.File
	}
	if found[good] != "config.py" || found[bad] != "notebook.txt" || len(found) != 2 {
		t.Fatalf("gitleaks found %v; want the PAT in config.py and its garbled copy in notebook.txt only", found)
	}

	var out, errOut bytes.Buffer
	if status := run([]string{report}, nil, &out, &errOut); status != 1 {
		t.Fatalf("planqk-leakcheck: status %d: %s", status, errOut.String())
	}
	var kept []map[string]json.RawMessage
	if err := json.Unmarshal(out.Bytes(), &kept); err != nil {
		t.Fatal(err)
	}
	if len(kept) != 1 || !regexp.MustCompile(`"`+good+`"`).Match(kept[0]["Secret"]) || string(kept[0]["File"]) != `"config.py"` {
		t.Fatalf("planqk-leakcheck kept %s", out.String())
	}
}
