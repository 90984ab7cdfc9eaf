//go:build e2e

package e2e

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/planqk/vault-plugin-secrets-planqk/backend"
)

// githubSigner plays GitHub's secret scanning: a P-256 key under an id,
// published in GitHub's meta/public_keys/secret_scanning format.
type githubSigner struct {
	id  string
	key *ecdsa.PrivateKey
}

func newGitHubSigner(t *testing.T, id string) githubSigner {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return githubSigner{id: id, key: key}
}

func (g githubSigner) sign(t *testing.T, body []byte) string {
	t.Helper()
	digest := sha256.Sum256(body)
	der, err := ecdsa.SignASN1(rand.Reader, g.key, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(der)
}

// githubKeySet serves the signers' public keys as GitHub does.
func githubKeySet(t *testing.T, signers ...githubSigner) *httptest.Server {
	t.Helper()
	type entry struct {
		KeyIdentifier string `json:"key_identifier"`
		Key           string `json:"key"`
		IsCurrent     bool   `json:"is_current"`
	}
	var doc struct {
		PublicKeys []entry `json:"public_keys"`
	}
	for _, g := range signers {
		der, err := x509.MarshalPKIXPublicKey(&g.key.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		doc.PublicKeys = append(doc.PublicKeys, entry{g.id, string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), true})
	}
	body, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// goBuild builds a command of this module into dir.
func goBuild(t *testing.T, dir, command string) string {
	t.Helper()
	out := filepath.Join(dir, filepath.Base(command))
	cmd := exec.Command("go", "build", "-o", out, "github.com/planqk/vault-plugin-secrets-planqk/"+command)
	if output, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", command, err, output)
	}
	return out
}

var listeningAddr = regexp.MustCompile(`addr=(127\.0\.0\.1:\d+)`)

// startLeakReceiver runs cmd/planqk-leak-receiver with the scanner's Vault
// token and the key set at keysURL; its log goes beside Vault's, where the
// leak check reads it. It returns the endpoint's URL.
func startLeakReceiver(t *testing.T, keysURL string) string {
	t.Helper()
	bin := goBuild(t, t.TempDir(), "cmd/planqk-leak-receiver")
	logPath := filepath.Join(s.srv.Dir, uniqueName("leak-receiver")+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	s.expectLog(logPath)
	cmd := exec.Command(bin, "-listen", "127.0.0.1:0", "-path", "/github/secret-scanning", "-mount", mount,
		"-keys", keysURL, "-keys-min-interval", "1s")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "VAULT_ADDR=" + s.srv.Addr, "VAULT_TOKEN=" + tokenOf("scanner")}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		logFile.Close()
	})
	var addr string
	eventually(t, 20*time.Second, "the leak receiver listens", func() (bool, string) {
		raw, _ := os.ReadFile(logPath)
		if m := listeningAddr.FindSubmatch(raw); m != nil {
			addr = string(m[1])
			return true, ""
		}
		return false, string(raw)
	})
	return "http://" + addr + "/github/secret-scanning"
}

// postAlerts sends body to the receiver as GitHub would, with the headers.
func postAlerts(t *testing.T, url string, body []byte, keyID, signature string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Github-Public-Key-Identifier", keyID)
	req.Header.Set("Github-Public-Key-Signature", signature)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, answer
}

// scanWithGitleaks commits files to a scratch repository, runs the real
// gitleaks (go tool gitleaks) with the shipped rule, keeps what
// planqk-leakcheck keeps, and returns the raw findings' secrets and the
// kept ones.
func scanWithGitleaks(t *testing.T, files map[string]string) (found, kept []string) {
	t.Helper()
	repo, work := t.TempDir(), t.TempDir()
	git := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-c", "user.name=e2e", "-c", "user.email=e2e@example.com", "-c", "commit.gpgsign=false"}, args...)...)
		cmd.Dir = repo
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	git("init", "-q")
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(repo, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	git("add", ".")
	git("commit", "-q", "-m", "oops")

	rules, err := filepath.Abs("../../cmd/planqk-leakcheck/gitleaks.toml")
	if err != nil {
		t.Fatal(err)
	}
	report := filepath.Join(work, "gitleaks.json")
	cmd := exec.Command("go", "tool", "gitleaks", "git", repo, "--config", rules,
		"--report-format", "json", "--report-path", report, "--exit-code", "0", "--no-banner", "--log-level", "error")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gitleaks: %v\n%s", err, out)
	}
	secrets := func(raw []byte) []string {
		var findings []struct{ Secret string }
		if err := json.Unmarshal(raw, &findings); err != nil {
			t.Fatalf("a gitleaks report: %v", err)
		}
		var out []string
		for _, f := range findings {
			out = append(out, f.Secret)
		}
		slices.Sort(out)
		return out
	}
	raw, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	leakcheck := exec.Command(goBuild(t, work, "cmd/planqk-leakcheck"), report)
	filtered, err := leakcheck.Output()
	if exit, ok := err.(*exec.ExitError); err != nil && (!ok || exit.ExitCode() != 1) {
		t.Fatalf("planqk-leakcheck: %v", err)
	}
	return secrets(raw), secrets(filtered)
}

// TestLeakedPATsRevokeThemselves plays GitHub's secret scanning against
// cmd/planqk-leak-receiver and the engine: requests GitHub's key did not
// sign revoke nothing; a signed batch revokes exactly the active PATs in
// it, named and leased, which gitleaks with the shipped rule finds too;
// the owner gets a pat-leaked webhook per token and sees where it leaked.
func TestLeakedPATsRevokeThemselves(t *testing.T) {
	hooks, hookSecret := useWebhooks(t)
	owner := newUser(t, "leaky", "", "")
	tokenName := uniqueName("ci")
	named := createPAT(t, owner, tokenName, nil)
	namedToken := named["token"].(string)
	lease, err := as(t, owner).Logical().Read(mount + "/users/" + owner + "/creds/runtime")
	if err != nil {
		t.Fatal(err)
	}
	leasedToken, _ := lease.Data["token"].(string)
	s.remember(leasedToken, owner+"'s leased PAT")
	// One character of the random part changed: same shape, bad checksum.
	swap := byte('A')
	if namedToken[10] == swap {
		swap = 'B'
	}
	garbled := namedToken[:10] + string(swap) + namedToken[11:]
	if garbled == namedToken || backend.WellFormedToken(garbled, "plqk_") {
		t.Fatal("the garbled copy must keep the shape and fail the checksum")
	}
	otherPrefix, err := backend.GenerateToken("ghp_", rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s.remember(garbled, "a garbled PAT")
	s.remember(otherPrefix, "another vendor's token")

	// gitleaks with the shipped rule finds both PATs and the garbled copy
	// (a regular expression cannot check a CRC32), not the other prefix;
	// planqk-leakcheck keeps only the two real ones.
	found, kept := scanWithGitleaks(t, map[string]string{
		"settings.py":   "PLANQK_TOKEN = '" + namedToken + "'\n",
		"job.log":       "auth with " + leasedToken + "\nretry with " + garbled + "\n",
		"vendor.env":    "GITHUB_TOKEN=" + otherPrefix + "\n",
		"notebook.json": `{"cells": ["token = 'plqq_` + namedToken[5:] + `'"]}` + "\n",
	})
	want := []string{namedToken, leasedToken}
	slices.Sort(want)
	wantFound := append([]string{garbled}, want...)
	slices.Sort(wantFound)
	if !slices.Equal(found, wantFound) || !slices.Equal(kept, want) {
		t.Fatalf("gitleaks found %d values, planqk-leakcheck kept %d; want the 2 PATs (+ the garbled copy before the check)", len(found), len(kept))
	}

	github, stranger := newGitHubSigner(t, "github-current"), newGitHubSigner(t, "github-other")
	keys := githubKeySet(t, github, stranger)
	endpoint := startLeakReceiver(t, keys.URL)

	type alert struct {
		Token  string `json:"token"`
		Type   string `json:"type"`
		URL    string `json:"url"`
		Source string `json:"source"`
	}
	repoURL := "https://github.com/acme/" + uniqueName("notebooks") + "/blob/0123abc/"
	alerts := []alert{
		{namedToken, "planqk_personal_access_token", repoURL + "settings.py", "content"},
		{leasedToken, "planqk_personal_access_token", repoURL + "job.log", "content"},
		{garbled, "planqk_personal_access_token", repoURL + "job.log", "content"},
		{otherPrefix, "planqk_personal_access_token", repoURL + "vendor.env", "commit"},
	}
	body, err := json.Marshal(alerts)
	if err != nil {
		t.Fatal(err)
	}
	stillActive := func(when string) {
		t.Helper()
		for _, token := range []string{namedToken, leasedToken} {
			if verify(t, token)["active"] != true {
				t.Fatalf("%s: a token was revoked", when)
			}
		}
	}

	// Forged: signed by a key GitHub does not hold, under GitHub's key id.
	if status, _ := postAlerts(t, endpoint, body, github.id, newGitHubSigner(t, github.id).sign(t, body)); status != http.StatusUnauthorized {
		t.Fatalf("a forged signature: status %d", status)
	}
	// Replayed: GitHub's signature, sent under another key's id.
	signature := github.sign(t, body)
	if status, _ := postAlerts(t, endpoint, body, stranger.id, signature); status != http.StatusUnauthorized {
		t.Fatalf("a replay under another key id: status %d", status)
	}
	// Unsigned, and an unknown key id.
	if status, _ := postAlerts(t, endpoint, body, "", ""); status != http.StatusUnauthorized {
		t.Fatalf("unsigned: status %d", status)
	}
	if status, _ := postAlerts(t, endpoint, body, "no-such-key", signature); status != http.StatusUnauthorized {
		t.Fatalf("an unknown key id: status %d", status)
	}
	stillActive("after the refused requests")

	// GitHub's own request.
	status, answer := postAlerts(t, endpoint, body, github.id, signature)
	if status != http.StatusOK {
		t.Fatalf("the signed batch: status %d: %s", status, answer)
	}
	var feedback []map[string]string
	if err := json.Unmarshal(answer, &feedback); err != nil {
		t.Fatal(err)
	}
	wantLabels := []string{"true_positive", "true_positive", "false_positive", "false_positive"}
	for i, f := range feedback {
		if f["token_raw"] != alerts[i].Token || f["token_type"] != alerts[i].Type || f["label"] != wantLabels[i] || len(f) != 3 {
			t.Fatalf("feedback[%d] is %v; want label %s", i, f["label"], wantLabels[i])
		}
	}
	if len(feedback) != len(alerts) {
		t.Fatalf("%d feedback entries", len(feedback))
	}
	for _, token := range []string{namedToken, leasedToken} {
		if verify(t, token)["active"] != false {
			t.Fatal("a leaked token still verifies")
		}
	}

	// The owner is told: two pat-leaked webhooks, verified with the
	// Standard Webhooks library, naming the token and where it leaked.
	ownPrefix := "users/" + owner + "/"
	leakedHooks := func(got []webhookDelivery) []webhookDelivery {
		var out []webhookDelivery
		for _, d := range mine(got, ownPrefix) {
			if d.Payload.Type == "planqk.pat-leaked" {
				out = append(out, d)
			}
		}
		return out
	}
	delivered := leakedHooks(hooks.waitFor("two pat-leaked webhooks", 20*time.Second, func(got []webhookDelivery) bool {
		return len(leakedHooks(got)) >= 2
	}))
	hooks.requireNoneRejected()
	requireNoSecrets(t, delivered, namedToken, leasedToken, garbled, hookSecret)
	byKind := map[string]webhookDelivery{}
	for _, d := range delivered {
		if err := d.verifiesWith(hookSecret); err != nil {
			t.Fatal(err)
		}
		byKind[d.Payload.Data.Details["kind"]] = d
	}
	namedHook, leasedHook := byKind["named"], byKind["lease"]
	if namedHook.Payload.Data.TokenID != named["token_id"] || namedHook.Payload.Data.Name != tokenName ||
		namedHook.Payload.Data.User != owner || namedHook.Payload.Data.EntityID == "" ||
		namedHook.Payload.Data.Details["url"] != repoURL+"settings.py" || namedHook.Payload.Data.Details["source"] != "content" {
		t.Fatalf("the named token's pat-leaked: %+v", namedHook.Payload.Data)
	}
	if leasedHook.Payload.Data.Name != "runtime" || leasedHook.Payload.Data.Details["url"] != repoURL+"job.log" || leasedHook.Payload.Data.TokenID == "" {
		t.Fatalf("the leased token's pat-leaked: %+v", leasedHook.Payload.Data)
	}

	// The owner sees where they leaked.
	listed := call(t, owner, "LIST", mount+"/users/"+owner+"/leaks/", nil)
	info, _ := listed.data["key_info"].(map[string]interface{})
	entry, _ := info[named["token_id"].(string)].(map[string]interface{})
	if listed.status != 200 || len(info) != 2 || entry["leak_url"] != repoURL+"settings.py" || entry["revoked_reason"] != "leaked" || entry["name"] != tokenName {
		t.Fatalf("the owner's leaks: %s %v", listed, listed.data)
	}

	// The security team finds them in the inventory (the auditor policy).
	inventory, err := as(t, "auditor").Logical().ReadWithData(mount+"/inventory/tokens", map[string][]string{
		"list": {"true"}, "revoked_reason": {"leaked"}, "user": {owner},
	})
	if err != nil || inventory == nil {
		t.Fatalf("the inventory of leaked tokens: %v", err)
	}
	if keys, _ := inventory.Data["keys"].([]interface{}); len(keys) != 2 {
		t.Fatalf("the inventory lists %d leaked tokens of %s", len(keys), owner)
	}

	// GitHub delivering the same batch again revokes nothing more and
	// tells no one again; the tokens were real, so still true positives.
	status, answer = postAlerts(t, endpoint, body, github.id, signature)
	if status != http.StatusOK || !strings.Contains(string(answer), `"label":"true_positive"`) {
		t.Fatalf("the batch again: %d", status)
	}
	time.Sleep(time.Second)
	if n := len(leakedHooks(hooks.deliveries())); n != 2 {
		t.Fatalf("%d pat-leaked webhooks after the batch came again", n)
	}
}
