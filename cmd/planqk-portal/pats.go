package main

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"
)

// expiresSoon is how close to its expiry a token is marked "expires soon".
const expiresSoon = 7 * 24 * time.Hour

// expiryChoices are the lifetimes offered for a new token. The engine caps
// them at its max_ttl (default 8760h) and answers a 400 above it, which
// the page shows.
var expiryChoices = []struct{ TTL, Label string }{
	{"168h", "7 days"},
	{"720h", "30 days"},
	{"2160h", "90 days"},
	{"8760h", "1 year"},
}

const defaultExpiry = "720h"

type patView struct {
	Name        string
	Description string
	Scopes      []string
	Created     *timeView
	Expires     *timeView
	LastUsed    *timeView
	ExpiresSoon bool
	Expired     bool
}

type choiceView struct {
	ID, Value, Label string
	Selected         bool
}

type patsView struct {
	Tokens []patView
	// Leaked are the person's tokens the engine revoked because they
	// leaked, with where (users/<user>/leaks).
	Leaked []leakedView
	// ShowScopes and ShowLastUsed are true when the engine reports them.
	ShowScopes   bool
	ShowLastUsed bool
	Expiries     []choiceView
	Scopes       []choiceView // offered when the engine takes scopes
	Name         string
	Description  string
}

// patForm is what the create form sent, shown again after a refusal.
type patForm struct {
	name, description, expiry string
	scopes                    []string
}

func (p *portal) patsPage(w http.ResponseWriter, r *http.Request, sess *session) {
	p.renderPATs(w, r, sess, http.StatusOK, nil, patForm{expiry: defaultExpiry})
}

func (p *portal) renderPATs(w http.ResponseWriter, r *http.Request, sess *session, status int, prob *problem, form patForm) {
	data := pageData{Title: "Personal Access Tokens", Section: "tokens", Problem: prob}
	tokens, err := p.listPATs(r.Context(), sess)
	if err != nil {
		if prob == nil {
			data.Problem = p.vaultProblem(r, sess, err, action{"Vault did not list your tokens", refusalOwnTokens})
			status = data.Problem.Status
		}
	}
	view := patsView{Tokens: tokens, Leaked: p.listLeaked(r.Context(), sess), Name: form.name, Description: form.description}
	for _, t := range tokens {
		view.ShowScopes = view.ShowScopes || t.Scopes != nil
		view.ShowLastUsed = view.ShowLastUsed || t.LastUsed != nil
	}
	for i, c := range expiryChoices {
		view.Expiries = append(view.Expiries, choiceView{ID: fmt.Sprintf("expiry-%d", i), Value: c.TTL, Label: c.Label, Selected: c.TTL == form.expiry})
	}
	if p.engineTakesScopes(r.Context(), sess) {
		for i, scope := range p.cfg.PATScopes {
			checked := form.scopes == nil || slices.Contains(form.scopes, scope)
			view.Scopes = append(view.Scopes, choiceView{ID: fmt.Sprintf("scope-%d", i), Value: scope, Label: scope, Selected: checked})
		}
	}
	data.Content = view
	p.render(w, r, sess, status, "tokens", data)
}

// engineTakesScopes reports whether the engine documents a scopes field
// for creating a PAT.
func (p *portal) engineTakesScopes(ctx context.Context, sess *session) bool {
	if len(p.cfg.PATScopes) == 0 {
		return false
	}
	return p.engineFields(ctx, sess, p.enginePath("users", sess.user, "tokens", "new"), "pat-create")["scopes"]
}

// listPATs lists the person's tokens with their metadata. The list's
// key_info may lack the description; each such token is then read.
func (p *portal) listPATs(ctx context.Context, sess *session) ([]patView, error) {
	client := p.as(sess)
	secret, err := client.Logical().ListWithContext(ctx, p.enginePath("users", sess.user, "tokens"))
	if err != nil {
		return nil, err
	}
	names, info := listKeys(secret)
	var missing []string
	for _, name := range names {
		if _, ok := info[name]["description"]; !ok && validSegment(name) {
			missing = append(missing, name)
		}
	}
	if err := p.readPATs(ctx, client, sess.user, missing, info); err != nil {
		return nil, err
	}
	now := time.Now()
	views := make([]patView, 0, len(names))
	for _, name := range names {
		views = append(views, viewPAT(name, info[name], now))
	}
	return views, nil
}

// leakedView is a token revoked because it leaked.
type leakedView struct {
	Name, Kind, Source string
	URL                string // shown as a link only when it is https
	Link               bool
	Revoked            *timeView
}

// listLeaked lists the person's tokens revoked because they leaked. It is
// best effort: an engine or policy without users/<user>/leaks shows none.
func (p *portal) listLeaked(ctx context.Context, sess *session) []leakedView {
	secret, err := p.as(sess).Logical().ListWithContext(ctx, p.enginePath("users", sess.user, "leaks"))
	if err != nil {
		return nil
	}
	ids, info := listKeys(secret)
	now := time.Now()
	views := make([]leakedView, 0, len(ids))
	for _, id := range ids {
		data := info[id]
		url := stringOf(data, "leak_url")
		views = append(views, leakedView{
			Name: stringOf(data, "name"), Kind: stringOf(data, "kind"), Source: stringOf(data, "leak_source"),
			URL: url, Link: strings.HasPrefix(url, "https://"),
			Revoked: viewTime(parseTime(stringOf(data, "revoked_at")), now),
		})
	}
	return views
}

// readPATs reads the named tokens, a few at a time, into info.
func (p *portal) readPATs(ctx context.Context, client *api.Client, user string, names []string, info map[string]map[string]interface{}) error {
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
		slots    = make(chan struct{}, 8)
	)
	for _, name := range names {
		wg.Add(1)
		slots <- struct{}{}
		go func() {
			defer func() { <-slots; wg.Done() }()
			secret, err := client.Logical().ReadWithContext(ctx, p.enginePath("users", user, "tokens", name))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil && firstErr == nil:
				firstErr = err
			case secret != nil:
				merged := info[name]
				if merged == nil {
					merged = map[string]interface{}{}
				}
				for k, v := range secret.Data {
					merged[k] = v
				}
				info[name] = merged
			}
		}()
	}
	wg.Wait()
	return firstErr
}

func viewPAT(name string, data map[string]interface{}, now time.Time) patView {
	v := patView{Name: name, Description: stringOf(data, "description")}
	v.Created = viewTime(parseTime(stringOf(data, "created_at")), now)
	expires := parseTime(stringOf(data, "expires_at"))
	v.Expires = viewTime(expires, now)
	if !expires.IsZero() {
		v.Expired = !now.Before(expires)
		v.ExpiresSoon = !v.Expired && expires.Sub(now) < expiresSoon
	}
	if scopes, ok := stringsOf(data, "scopes"); ok {
		v.Scopes = append([]string{}, scopes...)
	}
	if _, ok := data["last_used_at"]; ok {
		// Reported but never used: an empty time, shown as "never".
		v.LastUsed = viewTime(parseTime(stringOf(data, "last_used_at")), now)
		if v.LastUsed == nil {
			v.LastUsed = &timeView{Text: "never"}
		}
	}
	return v
}

// patCreate creates a token and keeps its secret in the session for one
// display: the secret never travels in a URL.
func (p *portal) patCreate(w http.ResponseWriter, r *http.Request, sess *session) {
	form := patForm{
		name:        strings.TrimSpace(r.PostFormValue("name")),
		description: strings.TrimSpace(r.PostFormValue("description")),
		expiry:      r.PostFormValue("expiry"),
		scopes:      r.PostForm["scope"],
	}
	if form.scopes == nil {
		form.scopes = []string{}
	}
	refuse := func(message string) {
		p.renderPATs(w, r, sess, http.StatusBadRequest, &problem{Status: http.StatusBadRequest, Message: message}, form)
	}
	if form.name == "" {
		refuse("Give the token a name.")
		return
	}
	if !validSegment(form.name) {
		refuse("A token name uses letters, digits, '_', '-' and '.' (at most 128), without '..'.")
		return
	}
	if !slices.ContainsFunc(expiryChoices, func(c struct{ TTL, Label string }) bool { return c.TTL == form.expiry }) {
		refuse("Choose one of the offered expiry periods.")
		return
	}
	body := map[string]interface{}{"ttl": form.expiry, "description": form.description}
	if p.engineTakesScopes(r.Context(), sess) {
		if len(form.scopes) == 0 {
			refuse("Choose at least one scope.")
			return
		}
		body["scopes"] = strings.Join(form.scopes, ",")
	}
	secret, err := p.as(sess).Logical().WriteWithContext(r.Context(), p.enginePath("users", sess.user, "tokens", form.name), body)
	if err != nil || secret == nil || stringOf(secret.Data, "token") == "" {
		prob := &problem{Status: http.StatusBadGateway, Message: "Vault created no token. Try again."}
		if err != nil {
			prob = p.vaultProblem(r, sess, err, action{"Vault did not create the token", refusalOwnTokens})
		}
		p.renderPATs(w, r, sess, prob.Status, prob, form)
		return
	}
	p.reveal(w, r, sess, form.name, secret, false)
}

// reveal keeps a new secret in the session and sends the browser to the
// page that shows it once.
func (p *portal) reveal(w http.ResponseWriter, r *http.Request, sess *session, name string, secret *api.Secret, rotated bool) {
	revealed := &revealedSecret{Name: name, Secret: stringOf(secret.Data, "token"), Rotated: rotated}
	if t := viewTime(parseTime(stringOf(secret.Data, "expires_at")), time.Now()); t != nil {
		revealed.ExpiresAt = t.Text
	}
	p.sessions.update(sess.id, func(s *session) { s.revealed = revealed })
	http.Redirect(w, r, "/tokens/secret", http.StatusSeeOther)
}

// patSecretPage shows a new secret, once.
func (p *portal) patSecretPage(w http.ResponseWriter, r *http.Request, sess *session) {
	revealed := p.sessions.takeRevealed(sess.id)
	if revealed == nil {
		p.render(w, r, sess, http.StatusGone, "secret", pageData{Title: "Secret no longer shown", Section: "tokens"})
		return
	}
	markSecretShown(w, time.Now())
	title := "Your new personal access token"
	if revealed.Rotated {
		title = "Your rotated personal access token"
	}
	p.render(w, r, sess, http.StatusOK, "secret", pageData{Title: title, Section: "tokens", Content: revealed})
}

func (p *portal) patRotateConfirm(w http.ResponseWriter, r *http.Request, sess *session) {
	name, ok := p.pathName(w, r, sess, "name")
	if !ok {
		return
	}
	p.render(w, r, sess, http.StatusOK, "confirm", pageData{Title: "Rotate " + name, Section: "tokens", Content: confirmView{
		Question:    fmt.Sprintf("Rotate the token %s?", name),
		Consequence: "You get a new secret under the same name. The current secret stops working at once: update every place that uses it.",
		Action:      "/tokens/" + name + "/rotate",
		Button:      "Rotate token",
		Cancel:      "/tokens",
	}})
}

func (p *portal) patRotate(w http.ResponseWriter, r *http.Request, sess *session) {
	name, ok := p.pathName(w, r, sess, "name")
	if !ok {
		return
	}
	secret, err := p.as(sess).Logical().WriteWithContext(r.Context(), p.enginePath("users", sess.user, "tokens", name, "rotate"), map[string]interface{}{})
	if err != nil || secret == nil || stringOf(secret.Data, "token") == "" {
		prob := &problem{Status: http.StatusBadGateway, Message: "Vault returned no new secret. Try again."}
		if err != nil {
			prob = p.vaultProblem(r, sess, err, action{"Vault did not rotate the token " + name, refusalOwnTokens})
		}
		p.renderPATs(w, r, sess, prob.Status, prob, patForm{expiry: defaultExpiry})
		return
	}
	p.reveal(w, r, sess, name, secret, true)
}

func (p *portal) patRevokeConfirm(w http.ResponseWriter, r *http.Request, sess *session) {
	name, ok := p.pathName(w, r, sess, "name")
	if !ok {
		return
	}
	p.render(w, r, sess, http.StatusOK, "confirm", pageData{Title: "Revoke " + name, Section: "tokens", Content: confirmView{
		Question:    fmt.Sprintf("Revoke the token %s?", name),
		Consequence: "It stops working at once, everywhere it is used. This cannot be undone.",
		Action:      "/tokens/" + name + "/revoke",
		Button:      "Revoke token",
		Cancel:      "/tokens",
		Danger:      true,
	}})
}

func (p *portal) patRevoke(w http.ResponseWriter, r *http.Request, sess *session) {
	name, ok := p.pathName(w, r, sess, "name")
	if !ok {
		return
	}
	if _, err := p.as(sess).Logical().DeleteWithContext(r.Context(), p.enginePath("users", sess.user, "tokens", name)); err != nil {
		prob := p.vaultProblem(r, sess, err, action{"Vault did not revoke the token " + name, refusalOwnTokens})
		p.renderPATs(w, r, sess, prob.Status, prob, patForm{expiry: defaultExpiry})
		return
	}
	p.sessions.update(sess.id, func(s *session) { s.notice = fmt.Sprintf("The token %s is revoked: it no longer works.", name) })
	http.Redirect(w, r, "/tokens", http.StatusSeeOther)
}
