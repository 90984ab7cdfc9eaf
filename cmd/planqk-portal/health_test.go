//go:build portal

package main

import (
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"
)

func TestHealth(t *testing.T) {
	tp := startPortal(t, nil)
	p := newVisitor(t, tp).get("/healthz")
	var answer map[string]string
	if err := json.Unmarshal([]byte(p.body), &answer); err != nil {
		t.Fatal(err)
	}
	if p.status != http.StatusOK || answer["portal"] != "ok" || answer["vault"] != "ok" {
		t.Fatalf("status %d: %v", p.status, answer)
	}

	// A portal whose Vault is gone is up, but not healthy.
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := closed.Addr().String()
	closed.Close()
	orphan := startPortal(t, func(c *config) { c.VaultAddr = "http://" + addr })
	p = newVisitor(t, orphan).get("/healthz")
	if err := json.Unmarshal([]byte(p.body), &answer); err != nil {
		t.Fatal(err)
	}
	if p.status != http.StatusServiceUnavailable || answer["vault"] != "unreachable" {
		t.Fatalf("without Vault: status %d: %v", p.status, answer)
	}
	// And says so in words when someone tries to sign in.
	v := newVisitor(t, orphan)
	v.get("/signin")
	signIn := v.submit("/signin", map[string][]string{"username": {"hana"}, "password": {"x"}})
	if signIn.status != http.StatusBadGateway || !strings.Contains(signIn.text(), "Vault could not be reached.") {
		t.Fatalf("sign-in without Vault: status %d: %s", signIn.status, signIn.text())
	}
}
