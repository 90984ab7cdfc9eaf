//go:build portal

package main

import (
	"bytes"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"
)

// visitor is a browser without JavaScript: a cookie jar and the last page.
type visitor struct {
	t      *testing.T
	portal *testPortal
	client *http.Client
	last   *page
}

// page is one response.
type page struct {
	status int
	header http.Header
	body   string
	doc    *html.Node
}

func newVisitor(t *testing.T, tp *testPortal) *visitor {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &visitor{t: t, portal: tp, client: &http.Client{
		Jar:     jar,
		Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}}
}

func (v *visitor) do(req *http.Request) *page {
	v.t.Helper()
	resp, err := v.client.Do(req)
	if err != nil {
		v.t.Fatal(err)
	}
	defer resp.Body.Close()
	var body bytes.Buffer
	if _, err := body.ReadFrom(resp.Body); err != nil {
		v.t.Fatal(err)
	}
	p := &page{status: resp.StatusCode, header: resp.Header, body: body.String()}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		if p.doc, err = html.Parse(strings.NewReader(p.body)); err != nil {
			v.t.Fatal(err)
		}
		v.last = p
	}
	return p
}

// get fetches path without following redirects.
func (v *visitor) get(path string) *page {
	v.t.Helper()
	req, err := http.NewRequest(http.MethodGet, v.portal.url+path, nil)
	if err != nil {
		v.t.Fatal(err)
	}
	return v.do(req)
}

// post sends a form without following redirects.
func (v *visitor) post(path string, form url.Values) *page {
	v.t.Helper()
	req, err := http.NewRequest(http.MethodPost, v.portal.url+path, strings.NewReader(form.Encode()))
	if err != nil {
		v.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return v.do(req)
}

// follow fetches the redirect target of p, and asserts p was a 303.
func (v *visitor) follow(p *page) *page {
	v.t.Helper()
	if p.status != http.StatusSeeOther {
		v.t.Fatalf("status %d, want 303; page says: %s", p.status, p.text())
	}
	return v.get(p.header.Get("Location"))
}

// csrf returns the CSRF token of the last HTML page.
func (v *visitor) csrf() string {
	v.t.Helper()
	if v.last == nil {
		v.t.Fatal("no page yet")
	}
	token := v.last.inputValue("csrf")
	if token == "" {
		v.t.Fatalf("no csrf field on the page: %s", v.last.text())
	}
	return token
}

// submit posts form with the last page's CSRF token.
func (v *visitor) submit(path string, form url.Values) *page {
	v.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	form.Set("csrf", v.csrf())
	return v.post(path, form)
}

// signIn signs user in with their password and returns the first page.
func (v *visitor) signIn(user string) *page {
	v.t.Helper()
	v.get("/signin")
	p := v.follow(v.submit("/signin", url.Values{"username": {user}, "password": {suite.passwords[user]}}))
	if p.status != http.StatusOK || !strings.Contains(p.text(), "Signed in as "+user) {
		v.t.Fatalf("signing in %s: status %d: %s", user, p.status, p.text())
	}
	return p
}

// sessionCookie returns the visitor's session cookie value.
func (v *visitor) sessionCookie() string {
	u, _ := url.Parse(v.portal.url)
	for _, c := range v.client.Jar.Cookies(u) {
		if c.Name == sessionCookie {
			return c.Value
		}
	}
	return ""
}

// text returns the page's visible text, whitespace collapsed.
func (p *page) text() string {
	if p.doc == nil {
		return p.body
	}
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && (n.Data == "script" || n.Data == "style" || n.Data == "head") {
			return
		}
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
			b.WriteString(" ")
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(p.doc)
	return strings.Join(strings.Fields(b.String()), " ")
}

// elements returns the elements for which match is true.
func (p *page) elements(match func(*html.Node) bool) []*html.Node {
	var out []*html.Node
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && match(n) {
			out = append(out, n)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	if p.doc != nil {
		walk(p.doc)
	}
	return out
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func hasAttr(n *html.Node, key string) bool {
	for _, a := range n.Attr {
		if a.Key == key {
			return true
		}
	}
	return false
}

// inputValue returns the value of the first input named name.
func (p *page) inputValue(name string) string {
	for _, n := range p.elements(func(n *html.Node) bool { return n.Data == "input" && attr(n, "name") == name }) {
		return attr(n, "value")
	}
	return ""
}

// forms returns the actions of the page's POST forms.
func (p *page) forms() []string {
	var actions []string
	for _, n := range p.elements(func(n *html.Node) bool { return n.Data == "form" && strings.EqualFold(attr(n, "method"), "post") }) {
		actions = append(actions, attr(n, "action"))
	}
	return actions
}

// verify introspects a PAT as the PlanQK API does.
func verify(t *testing.T, token string) map[string]interface{} {
	t.Helper()
	secret, err := vaultClient(suite.verifier).Logical().Write("planqk/verify", map[string]interface{}{"token": token})
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	return secret.Data
}
