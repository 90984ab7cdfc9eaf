package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestRelativeTimes(t *testing.T) {
	now := time.Date(2027, 1, 1, 12, 0, 0, 0, time.UTC)
	cases := map[time.Duration]string{
		30 * time.Second:           "just now",
		-5 * time.Minute:           "5 minutes ago",
		time.Hour:                  "in 1 hour",
		47 * time.Hour:             "in 47 hours",
		-72 * time.Hour:            "3 days ago",
		90*24*time.Hour - 1:        "in 89 days",
		365 * 24 * time.Hour:       "in 365 days",
		-(24*time.Hour + 1):        "24 hours ago",
		2*24*time.Hour + time.Hour: "in 2 days",
	}
	for d, want := range cases {
		if got := relative(now.Add(d), now); got != want {
			t.Errorf("%s: %q, want %q", d, got, want)
		}
	}
}

// The engine's newer fields (scopes, last_used_at) are shown when it
// reports them, and their columns left out when it does not.
func TestPATViewsShowWhatTheEngineReports(t *testing.T) {
	now := time.Date(2027, 1, 1, 12, 0, 0, 0, time.UTC)
	used := viewPAT("laptop", map[string]interface{}{
		"description": "CLI", "scopes": []interface{}{"api"}, "created_at": "2026-12-01T12:00:00Z",
		"expires_at": "2027-01-05T12:00:00Z", "last_used_at": "2026-12-31T12:00:00Z",
	}, now)
	if !used.ExpiresSoon || used.Expired || used.LastUsed == nil || used.LastUsed.Relative != "24 hours ago" || strings.Join(used.Scopes, ",") != "api" {
		t.Fatalf("%+v", used)
	}
	never := viewPAT("ci", map[string]interface{}{"expires_at": "2026-12-31T12:00:00Z", "last_used_at": ""}, now)
	if !never.Expired || never.ExpiresSoon || never.LastUsed == nil || never.LastUsed.Text != "never" {
		t.Fatalf("%+v", never)
	}
	old := viewPAT("old", map[string]interface{}{"expires_at": "2027-06-01T00:00:00Z"}, now)
	if old.LastUsed != nil || old.Scopes != nil || old.ExpiresSoon {
		t.Fatalf("%+v", old)
	}

	pages, err := loadPages()
	if err != nil {
		t.Fatal(err)
	}
	render := func(tokens ...patView) string {
		view := patsView{Tokens: tokens}
		for _, tok := range tokens {
			view.ShowScopes = view.ShowScopes || tok.Scopes != nil
			view.ShowLastUsed = view.ShowLastUsed || tok.LastUsed != nil
		}
		var out bytes.Buffer
		if err := pages.byName["tokens"].Execute(&out, pageData{Title: "Personal Access Tokens", User: "mia", Content: view}); err != nil {
			t.Fatal(err)
		}
		return out.String()
	}
	withAll := render(used, never)
	for _, want := range []string{">Scopes<", ">Last used<", ">api<", "never", "24 hours ago", "expires soon", "expired"} {
		if !strings.Contains(withAll, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	plain := render(old)
	for _, unwanted := range []string{">Scopes<", ">Last used<"} {
		if strings.Contains(plain, unwanted) {
			t.Errorf("a column the engine did not report: %q", unwanted)
		}
	}
}

func TestFieldLabels(t *testing.T) {
	cases := map[string]string{
		"token": "Token", "api_key": "API key", "secret_access_key": "Secret access key",
		"tenant_id": "Tenant ID", "service_crn": "Service CRN",
	}
	for name, want := range cases {
		if got := fieldLabel(name); got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
}
