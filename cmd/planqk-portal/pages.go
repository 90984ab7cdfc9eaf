package main

import (
	"bytes"
	"fmt"
	"html/template"
	"net/http"
	"time"
)

// pageNames are the templates in templates/, each rendered inside layout.html.
var pageNames = []string{"signin", "oidc-done", "tokens", "secret", "confirm", "provider-tokens", "orgs", "org", "problem"}

// pages holds the parsed templates.
type pages struct {
	byName map[string]*template.Template
}

func loadPages() (*pages, error) {
	ps := &pages{byName: map[string]*template.Template{}}
	for _, name := range pageNames {
		t, err := template.New("layout.html").Funcs(templateFuncs).ParseFS(assets,
			"templates/layout.html", "templates/provider-card.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("parsing template %s: %w", name, err)
		}
		ps.byName[name] = t
	}
	return ps, nil
}

var templateFuncs = template.FuncMap{
	// cardWith hands a provider card and the page's CSRF token to the
	// provider-card template.
	"cardWith": func(csrf string, card providerCard) cardData { return cardData{CSRF: csrf, Card: card} },
}

type cardData struct {
	CSRF string
	Card providerCard
}

// pageData is what every page gets; Content is the page's own.
type pageData struct {
	Title   string
	Section string // highlighted in the navigation: tokens, providers, orgs
	User    string
	CSRF    string
	Notice  string
	Problem *problem
	Content any
}

// render writes the page with status. It renders into a buffer first, so
// that a template error never sends half a page.
func (p *portal) render(w http.ResponseWriter, r *http.Request, sess *session, status int, name string, data pageData) {
	if data.Problem != nil && data.Problem.sessionEnded {
		p.sessionEndedRedirect(w, r)
		return
	}
	if sess != nil {
		data.User = sess.user
		data.CSRF = sess.csrfToken
		if data.Notice == "" {
			data.Notice = p.sessions.takeNotice(sess.id)
		}
	}
	var buf bytes.Buffer
	if err := p.pages.byName[name].Execute(&buf, data); err != nil {
		p.log.Error("rendering a page", "page", name, "error", err)
		status = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Error · PlanQK Access Tokens</title></head><body><p>The portal could not show this page. Try again; if it keeps happening, tell your operator.</p></body></html>")
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = buf.WriteTo(w)
}

// renderProblem shows a page that says only what went wrong.
func (p *portal) renderProblem(w http.ResponseWriter, r *http.Request, sess *session, prob *problem) {
	title := http.StatusText(prob.Status)
	if title == "" {
		title = "Problem"
	}
	p.render(w, r, sess, prob.Status, "problem", pageData{Title: title, Problem: prob})
}

// sessionEndedRedirect sends the person to sign in again after their
// Vault token expired or was revoked elsewhere.
func (p *portal) sessionEndedRedirect(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, cookie(sessionCookie, "", http.SameSiteStrictMode, -1))
	http.SetCookie(w, cookie(sessionEndCookie, "", http.SameSiteLaxMode, -1))
	http.Redirect(w, r, "/signin?ended=1", http.StatusSeeOther)
}

// confirmView is a confirmation page's content.
type confirmView struct {
	Question    string
	Consequence string
	Action      string
	Button      string
	Cancel      string
	Danger      bool
}

// pathName returns the path value key if it is a name the portal may
// put into a Vault path, or answers 404.
func (p *portal) pathName(w http.ResponseWriter, r *http.Request, sess *session, key string) (string, bool) {
	name := r.PathValue(key)
	if !validSegment(name) {
		p.renderProblem(w, r, sess, &problem{Status: http.StatusNotFound, Message: "There is no such page."})
		return "", false
	}
	return name, true
}

// timeView is a moment as the pages show it.
type timeView struct {
	Date     string // "3 Feb 2027"
	Text     string // "3 Feb 2027, 14:05 UTC"
	ISO      string // for <time datetime>
	Relative string // "in 29 days", "2 hours ago"
}

// parseTime reads an RFC 3339 time from the engine; zero if empty or bad.
func parseTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}
	}
	return t
}

func viewTime(t, now time.Time) *timeView {
	if t.IsZero() {
		return nil
	}
	return &timeView{
		Date:     t.UTC().Format("2 Jan 2006"),
		Text:     t.UTC().Format("2 Jan 2006, 15:04 UTC"),
		ISO:      t.UTC().Format(time.RFC3339),
		Relative: relative(t, now),
	}
}

// relative says how far t is from now in the largest fitting unit.
func relative(t, now time.Time) string {
	d := t.Sub(now)
	future := d >= 0
	if !future {
		d = -d
	}
	var amount string
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		amount = plural(int(d/time.Minute), "minute")
	case d < 48*time.Hour:
		amount = plural(int(d/time.Hour), "hour")
	default:
		amount = plural(int(d/(24*time.Hour)), "day")
	}
	if future {
		return "in " + amount
	}
	return amount + " ago"
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}
