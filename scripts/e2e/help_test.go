//go:build e2e

package e2e

import (
	"context"
	"sort"
	"strings"
	"testing"
)

// The engine's API, as OpenAPI names its paths: the contract tools outside
// this repository depend on.
var apiPaths = map[string]string{
	"/config":                                  "config",
	"/users/{user}/tokens/":                    "users/mia/tokens/",
	"/users/{user}/tokens/{name}":              "users/mia/tokens/laptop",
	"/users/{user}/tokens/{name}/rotate":       "users/mia/tokens/laptop/rotate",
	"/roles/":                                  "roles/",
	"/roles/{role}":                            "roles/runtime",
	"/users/{user}/creds/{role}":               "users/mia/creds/runtime",
	"/verify":                                  "verify",
	"/providers/":                              "providers/",
	"/providers/{provider}":                    "providers/ibm-quantum",
	"/users/{user}/provider-tokens/":           "users/mia/provider-tokens/",
	"/users/{user}/provider-tokens/{provider}": "users/mia/provider-tokens/ibm-quantum",
	"/users/{user}/runtime/{role}":             "users/mia/runtime/runtime",
	"/orgs/":                                   "orgs/",
	"/orgs/{org}/provider-tokens/":             "orgs/acme/provider-tokens/",
	"/orgs/{org}/provider-tokens/{provider}":   "orgs/acme/provider-tokens/ionq",
	"/resolve/{provider}":                      "resolve/ibm-quantum",
	"/tidy":                                    "tidy",
	"/tidy/status":                             "tidy/status",
	"/users/{user}":                            "users/mia",
	"/users/{user}/revoke-all":                 "users/mia/revoke-all",
	"/notifications/webhook-secret":            "notifications/webhook-secret",
	"/notifications/status":                    "notifications/status",
	"/leaks/revoke":                            "leaks/revoke",
	"/users/{user}/leaks/":                     "users/mia/leaks/",
}

// TestPathHelpOnEveryPath runs `vault path-help` on a path of every route.
func TestPathHelpOnEveryPath(t *testing.T) {
	ctx := context.Background()
	for _, path := range apiPaths {
		out, err := s.srv.CLI(ctx, s.srv.RootToken, "path-help", mount+"/"+path)
		if err != nil {
			t.Errorf("path-help %s: %v", path, err)
			continue
		}
		if !strings.Contains(out, "## DESCRIPTION") || len(out) < 200 {
			t.Errorf("path-help %s is not useful:\n%s", path, out)
		}
	}
}

// TestOpenAPIIncludesEveryPath reads Vault's OpenAPI document.
func TestOpenAPIIncludesEveryPath(t *testing.T) {
	secret, err := as(t, "root").Logical().Read("sys/internal/specs/openapi")
	if err != nil {
		t.Fatal(err)
	}
	paths, _ := secret.Data["paths"].(map[string]interface{})
	var ours []string
	for p := range paths {
		if strings.HasPrefix(p, "/"+mount+"/") {
			ours = append(ours, strings.TrimPrefix(p, "/"+mount))
		}
	}
	sort.Strings(ours)
	for want := range apiPaths {
		found := false
		for _, p := range ours {
			if p == want {
				found = true
			}
		}
		if !found {
			t.Errorf("OpenAPI lacks %s; it has %v", want, ours)
		}
	}
	for _, p := range ours {
		item := paths["/"+mount+p].(map[string]interface{})
		if item["description"] == "" || item["description"] == nil {
			t.Errorf("OpenAPI path %s has no description", p)
		}
	}
}
