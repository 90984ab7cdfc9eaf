package main

import (
	"context"
	"fmt"
	"net/http"
	"sort"
)

// Roles in an organization, weakest first.
var orgRoles = []string{"member", "maintainer", "owner"}

func roleRank(role string) int {
	for i, r := range orgRoles {
		if r == role {
			return i + 1
		}
	}
	return 0
}

// membership is the person's role in one organization.
type membership struct {
	Name string
	Role string
}

// profile is who the person is to the engine.
type profile struct {
	Admin         bool
	Organizations []membership
}

// loadProfile reads the person's organizations and roles from the
// engine's profile path (users/<user>), live from Vault's identity store.
func (p *portal) loadProfile(ctx context.Context, sess *session) (*profile, error) {
	secret, err := p.as(sess).Logical().ReadWithContext(ctx, p.enginePath("users", sess.user))
	if err != nil {
		return nil, err
	}
	prof := &profile{}
	if secret == nil {
		return prof, nil
	}
	prof.Admin, _ = secret.Data["admin"].(bool)
	orgs, _ := secret.Data["organizations"].([]interface{})
	for _, o := range orgs {
		m, ok := o.(map[string]interface{})
		if !ok {
			continue
		}
		// The platform admin role comes as organization "*", which the
		// admin flag already tells.
		if name, role := stringOf(m, "name"), stringOf(m, "role"); name != "" && name != "*" {
			prof.Organizations = append(prof.Organizations, membership{Name: name, Role: role})
		}
	}
	sortMemberships(prof.Organizations)
	return prof, nil
}

func sortMemberships(ms []membership) {
	sort.Slice(ms, func(i, j int) bool { return ms[i].Name < ms[j].Name })
}

// roleIn returns the person's role in org, "" if none.
func (prof *profile) roleIn(org string) string {
	for _, m := range prof.Organizations {
		if m.Name == org {
			return m.Role
		}
	}
	return ""
}

// mayEdit reports whether the profile's role lets the person change org's
// provider tokens. It only decides what the page offers: the engine
// decides what happens.
func (prof *profile) mayEdit(org string) bool {
	return prof.Admin || roleRank(prof.roleIn(org)) >= roleRank("maintainer")
}

var profileAction = action{"Vault did not tell your organizations", "Vault refused to tell your organizations. Ask your operator."}

type orgView struct {
	Name     string
	Role     string
	CanEdit  bool
	PagePath string
}

type orgsView struct {
	Admin         bool
	Organizations []orgView
}

func (p *portal) organizationsPage(w http.ResponseWriter, r *http.Request, sess *session) {
	data := pageData{Title: "Organizations", Section: "orgs"}
	prof, err := p.loadProfile(r.Context(), sess)
	if err != nil {
		data.Problem = p.vaultProblem(r, sess, err, profileAction)
		p.render(w, r, sess, data.Problem.Status, "orgs", data)
		return
	}
	view := orgsView{Admin: prof.Admin}
	for _, m := range prof.Organizations {
		if !validSegment(m.Name) {
			continue
		}
		view.Organizations = append(view.Organizations, orgView{Name: m.Name, Role: m.Role, CanEdit: prof.mayEdit(m.Name), PagePath: "/orgs/" + m.Name})
	}
	data.Content = view
	p.render(w, r, sess, http.StatusOK, "orgs", data)
}

func (p *portal) orgProviderTokensPage(w http.ResponseWriter, r *http.Request, sess *session) {
	org, ok := p.pathName(w, r, sess, "org")
	if !ok {
		return
	}
	p.renderOrgProviderTokens(w, r, sess, org, providerPageState{})
}

func (p *portal) renderOrgProviderTokens(w http.ResponseWriter, r *http.Request, sess *session, org string, state providerPageState) {
	data := pageData{Title: org + ": Provider Access Tokens", Section: "orgs"}
	prof, err := p.loadProfile(r.Context(), sess)
	if err != nil {
		data.Problem = p.vaultProblem(r, sess, err, profileAction)
		p.render(w, r, sess, data.Problem.Status, "org", data)
		return
	}
	state.owner = tokenOwner{org: org}
	state.editable = prof.mayEdit(org)
	status := http.StatusOK
	cards, err := p.providerCards(r.Context(), sess, state)
	if err != nil {
		data.Problem = p.vaultProblem(r, sess, err, state.owner.reading())
		status = data.Problem.Status
	}
	if state.problem != nil {
		status = state.problem.Status
		if data.Problem == nil && !cardShowsProblem(cards, state.failed) {
			data.Problem = state.problem
		}
	}
	role := prof.roleIn(org)
	if role == "" && prof.Admin {
		role = "platform admin"
	}
	view := providerTokensView{Org: org, Role: role, Editable: state.editable, Cards: cards}
	if data.Problem == nil || state.settingsProblem {
		view.Settings = p.orgSettings(r.Context(), sess, org, prof.Admin || role == "owner")
	}
	data.Content = view
	p.render(w, r, sess, status, "org", data)
}

// storedKeysNotice says what the derived_only setting now means.
func storedKeysNotice(whose string, derivedOnly bool) string {
	if derivedOnly {
		return "Saved: " + whose + " get only credentials made for each job from tokens that can derive them, never the stored key."
	}
	return "Saved: " + whose + " may ask for the stored key of a token that can derive credentials."
}

// The organization's setting provider_tokens_for, as the page words it.
var providerTokensForChoices = []settingChoice{
	{"member", "every member"},
	{"maintainer", "maintainers and owners"},
	{"owner", "owners only"},
	{"none", "nobody: every member uses their own tokens"},
}

type settingChoice struct {
	Value string
	Label string
}

// orgSettingsView is the organization's settings section: what is set,
// and for owners the form to change it.
type orgSettingsView struct {
	ProviderTokensFor string
	Label             string
	CanChange         bool
	Action            string
	Choices           []settingChoice
	// DerivedOnly: jobs get only credentials derived for them from tokens
	// that can derive, never the stored key.
	DerivedOnly bool
}

// orgSettings reads the organization's settings; nil when Vault would not
// tell them (the page then shows the tokens without the section). Whether
// the form is offered follows the role; the engine decides.
func (p *portal) orgSettings(ctx context.Context, sess *session, org string, canChange bool) *orgSettingsView {
	secret, err := p.as(sess).Logical().ReadWithContext(ctx, p.enginePath("orgs", org, "settings"))
	if err != nil || secret == nil {
		return nil
	}
	view := &orgSettingsView{
		ProviderTokensFor: stringOf(secret.Data, "provider_tokens_for"),
		CanChange:         canChange,
		Action:            "/orgs/" + org + "/settings",
		Choices:           providerTokensForChoices,
		DerivedOnly:       secret.Data["derived_only"] != false,
	}
	for _, choice := range providerTokensForChoices {
		if choice.Value == view.ProviderTokensFor {
			view.Label = choice.Label
		}
	}
	return view
}

// orgSettingsWrite changes the organization's settings as the person.
func (p *portal) orgSettingsWrite(w http.ResponseWriter, r *http.Request, sess *session) {
	org, ok := p.pathName(w, r, sess, "org")
	if !ok {
		return
	}
	value := r.PostFormValue("provider_tokens_for")
	body := map[string]interface{}{"provider_tokens_for": value}
	// The stored-keys form sends its own setting alone.
	storedKeys := r.PostFormValue("setting") == "stored_keys"
	if storedKeys {
		body = map[string]interface{}{"derived_only": r.PostFormValue("stored_keys_allowed") != "on"}
	}
	act := action{"Vault did not change the settings of " + org, fmt.Sprintf("You need to be owner of %s to change its settings.", org)}
	if _, err := p.as(sess).Logical().WriteWithContext(r.Context(), p.enginePath("orgs", org, "settings"), body); err != nil {
		p.renderOrgProviderTokens(w, r, sess, org, providerPageState{problem: p.vaultProblem(r, sess, err, act), settingsProblem: true})
		return
	}
	if storedKeys {
		p.sessions.update(sess.id, func(s *session) { s.notice = storedKeysNotice(org+"'s jobs", body["derived_only"] == true) })
		http.Redirect(w, r, "/orgs/"+org+"#stored-keys", http.StatusSeeOther)
		return
	}
	label := value
	for _, choice := range providerTokensForChoices {
		if choice.Value == value {
			label = choice.Label
		}
	}
	p.sessions.update(sess.id, func(s *session) {
		s.notice = fmt.Sprintf("Saved: %s's provider tokens are now used for the jobs of %s.", org, label)
	})
	http.Redirect(w, r, "/orgs/"+org+"#settings", http.StatusSeeOther)
}

func (p *portal) orgProviderTokenWrite(w http.ResponseWriter, r *http.Request, sess *session) {
	org, ok := p.pathName(w, r, sess, "org")
	if !ok {
		return
	}
	p.providerTokenWrite(w, r, sess, tokenOwner{org: org}, func(state providerPageState) {
		p.renderOrgProviderTokens(w, r, sess, org, state)
	})
}

func (p *portal) orgProviderTokenDeleteConfirm(w http.ResponseWriter, r *http.Request, sess *session) {
	org, ok := p.pathName(w, r, sess, "org")
	if !ok {
		return
	}
	p.providerTokenDeleteConfirm(w, r, sess, tokenOwner{org: org}, "orgs")
}

func (p *portal) orgProviderTokenDelete(w http.ResponseWriter, r *http.Request, sess *session) {
	org, ok := p.pathName(w, r, sess, "org")
	if !ok {
		return
	}
	p.providerTokenDelete(w, r, sess, tokenOwner{org: org}, func(state providerPageState) {
		p.renderOrgProviderTokens(w, r, sess, org, state)
	})
}
