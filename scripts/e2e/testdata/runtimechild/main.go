// Command runtimechild is the job the end-to-end suite has Vault Agent
// start in process-supervisor mode. It checks its own environment, as a
// quantum SDK would find it, and exits 0 only if everything is there:
//
//   - every variable named in the -expect file (lines NAME=SHA256) holds a
//     value with that digest: the test passes digests, in a file rather
//     than on the command line, which the Agent logs;
//   - PLANQK_ORGANIZATION_ID is -org;
//   - PLANQK_PERSONAL_ACCESS_TOKEN is a PAT that verifies, for -user, with
//     -role, in -org: the child asks the engine's verify itself, with the
//     verifier token in E2E_VERIFIER_TOKEN.
//
// It prints variable names and its verdict, never a value.
package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"
)

func main() {
	expectFile := flag.String("expect", "", "file of NAME=SHA256 lines, one per variable")
	addr := flag.String("vault-addr", "", "Vault's address")
	mount := flag.String("mount", "planqk", "the engine's mount")
	user := flag.String("user", "", "the user the PAT must belong to")
	role := flag.String("role", "", "the role of the leased PAT")
	org := flag.String("org", "", "the organization the job runs for")
	flag.Parse()

	data, err := os.ReadFile(*expectFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "runtimechild: FAIL:", err)
		os.Exit(2)
	}
	expect := strings.Fields(string(data))
	var failures []string
	for _, e := range expect {
		name, digest, _ := strings.Cut(e, "=")
		value, ok := os.LookupEnv(name)
		switch {
		case !ok:
			failures = append(failures, name+" is not set")
		case sha256Hex(value) != digest:
			failures = append(failures, name+" has the wrong value")
		}
	}
	if got := os.Getenv("PLANQK_ORGANIZATION_ID"); got != *org {
		failures = append(failures, "PLANQK_ORGANIZATION_ID is not the organization")
	}
	if problem := verify(*addr, *mount, os.Getenv("PLANQK_PERSONAL_ACCESS_TOKEN"), *user, *role, *org); problem != "" {
		failures = append(failures, "PLANQK_PERSONAL_ACCESS_TOKEN: "+problem)
	}

	if len(failures) > 0 {
		fmt.Fprintln(os.Stderr, "runtimechild: FAIL:", strings.Join(failures, "; "))
		os.Exit(3)
	}
	fmt.Printf("runtimechild: OK: %d variables and a PAT that verifies\n", len(expect))
}

func sha256Hex(value string) string {
	sum := sha256.Sum256([]byte(value))
	return hex.EncodeToString(sum[:])
}

// verify asks the engine whether pat is active and whose it is; it returns
// what is wrong, or "".
func verify(addr, mount, pat, user, role, org string) string {
	if !strings.HasPrefix(pat, "plqk_") {
		return "not a PAT"
	}
	body, err := json.Marshal(map[string]string{"token": pat})
	if err != nil {
		return err.Error()
	}
	req, err := http.NewRequest(http.MethodPost, addr+"/v1/"+mount+"/verify", bytes.NewReader(body))
	if err != nil {
		return err.Error()
	}
	req.Header.Set("X-Vault-Token", os.Getenv("E2E_VERIFIER_TOKEN"))
	req.Header.Set("Content-Type", "application/json")
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return "verify: " + err.Error()
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Sprintf("verify answered %d", resp.StatusCode)
	}
	var verified struct {
		Data struct {
			Active        bool   `json:"active"`
			User          string `json:"user"`
			Role          string `json:"role"`
			Organizations []struct {
				Name string `json:"name"`
			} `json:"organizations"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&verified); err != nil {
		return "verify: " + err.Error()
	}
	switch d := verified.Data; {
	case !d.Active:
		return "does not verify"
	case d.User != user:
		return "belongs to another user"
	case d.Role != role:
		return "is not a PAT of the role"
	default:
		for _, o := range d.Organizations {
			if o.Name == org {
				return ""
			}
		}
		return "its owner is not in the organization"
	}
}
