package main

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// HSTS follows the address browsers use: a portal behind a proxy that
// ends TLS still tells browsers to stay on https.
func TestHSTSFollowsThePublicURL(t *testing.T) {
	cases := []struct {
		args []string
		hsts bool
	}{
		{[]string{"-listen", "127.0.0.1:8210"}, false},
		{[]string{"-listen", "127.0.0.1:8210", "-public-url", "https://tokens.example.com"}, true},
		{[]string{"-listen", "127.0.0.1:8210", "-public-url", "http://127.0.0.1:8210"}, false},
	}
	for _, c := range cases {
		cfg, err := parseConfig(c.args, func(string) string { return "" })
		if err != nil {
			t.Fatalf("%v: %v", c.args, err)
		}
		w := httptest.NewRecorder()
		securityHeaders(servedOverHTTPS(cfg), http.NotFoundHandler()).ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
		if got := w.Header().Get("Strict-Transport-Security") != ""; got != c.hsts {
			t.Errorf("%v: HSTS sent %v, want %v", c.args, got, c.hsts)
		}
	}
}
