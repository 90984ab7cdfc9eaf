package main

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"
)

// fieldPrefix prefixes a provider field's name in the forms, so that no
// field of the catalogue can collide with the portal's own (csrf).
const fieldPrefix = "field_"

// tokenOwner addresses whose provider tokens a page shows: the signed-in
// person's own, or an organization's.
type tokenOwner struct {
	user string
	org  string
}

func (o tokenOwner) vaultPath(p *portal, provider string) string {
	segments := []string{"users", o.user, "provider-tokens"}
	if o.org != "" {
		segments = []string{"orgs", o.org, "provider-tokens"}
	}
	if provider != "" {
		segments = append(segments, provider)
	}
	return p.enginePath(segments...)
}

// pagePath is the portal page listing the owner's provider tokens.
func (o tokenOwner) pagePath() string {
	if o.org != "" {
		return "/orgs/" + o.org
	}
	return "/provider-tokens"
}

func (o tokenOwner) formPath(provider string) string {
	if o.org != "" {
		return "/orgs/" + o.org + "/provider-tokens/" + provider
	}
	return "/provider-tokens/" + provider
}

// reading is the action of reading the owner's provider tokens.
func (o tokenOwner) reading() action {
	if o.org != "" {
		return action{"Vault did not show " + o.org + "'s provider access tokens", refusalOrgRead(o.org)}
	}
	return action{"Vault did not show your provider access tokens", refusalOwnProviderTokens}
}

// changing is the action of writing or deleting the owner's token for a provider.
func (o tokenOwner) changing(verb, provider string) action {
	failed := fmt.Sprintf("Vault did not %s the %s token", verb, provider)
	if o.org != "" {
		return action{failed, refusalOrgWrite(o.org)}
	}
	return action{failed, refusalOwnProviderTokens}
}

// derivePrefix prefixes a derivation field's name in the forms, apart from
// the provider's own fields.
const derivePrefix = "derive_"

// catalogueProvider is one provider of the engine's catalogue.
type catalogueProvider struct {
	Name        string
	Description string
	Fields      []catalogueField
	// Derivations are the ways the engine can make short-lived
	// credentials per job from a token of this provider.
	Derivations []catalogueDerivation
}

// catalogueDerivation is a derivation method and the fields it stores.
type catalogueDerivation struct {
	Name        string
	Description string
	Fields      []catalogueField
}

func (c *catalogueProvider) derivation(name string) *catalogueDerivation {
	for i := range c.Derivations {
		if c.Derivations[i].Name == name {
			return &c.Derivations[i]
		}
	}
	return nil
}

// catalogueFields reads a list of {"name", "required", "secret"} objects.
func catalogueFields(raw interface{}) []catalogueField {
	list, _ := raw.([]interface{})
	var fields []catalogueField
	for _, f := range list {
		m, ok := f.(map[string]interface{})
		if !ok || stringOf(m, "name") == "" {
			continue
		}
		required, _ := m["required"].(bool)
		isSecret, _ := m["secret"].(bool)
		fields = append(fields, catalogueField{Name: stringOf(m, "name"), Required: required, Secret: isSecret})
	}
	return fields
}

type catalogueField struct {
	Name     string
	Required bool
	Secret   bool
}

// catalogue reads the provider catalogue as the person.
func (p *portal) catalogue(ctx context.Context, client *api.Client) ([]catalogueProvider, error) {
	list, err := client.Logical().ListWithContext(ctx, p.enginePath("providers"))
	if err != nil {
		return nil, err
	}
	names, _ := listKeys(list)
	providers := make([]catalogueProvider, 0, len(names))
	for _, name := range names {
		if !validSegment(name) {
			continue
		}
		provider, err := p.catalogueEntry(ctx, client, name)
		if err != nil {
			return nil, err
		}
		if provider != nil {
			providers = append(providers, *provider)
		}
	}
	return providers, nil
}

// catalogueEntry reads one provider; nil if there is none of that name.
func (p *portal) catalogueEntry(ctx context.Context, client *api.Client, name string) (*catalogueProvider, error) {
	secret, err := client.Logical().ReadWithContext(ctx, p.enginePath("providers", name))
	if err != nil || secret == nil {
		return nil, err
	}
	provider := &catalogueProvider{Name: name, Description: stringOf(secret.Data, "description"), Fields: catalogueFields(secret.Data["fields"])}
	methods, _ := secret.Data["derivations"].([]interface{})
	for _, raw := range methods {
		m, ok := raw.(map[string]interface{})
		if !ok || !validSegment(stringOf(m, "name")) {
			continue
		}
		provider.Derivations = append(provider.Derivations, catalogueDerivation{
			Name: stringOf(m, "name"), Description: stringOf(m, "description"), Fields: catalogueFields(m["fields"]),
		})
	}
	return provider, nil
}

// storedTokens reads the owner's stored provider tokens' metadata.
func (p *portal) storedTokens(ctx context.Context, client *api.Client, owner tokenOwner) (map[string]map[string]interface{}, error) {
	list, err := client.Logical().ListWithContext(ctx, owner.vaultPath(p, ""))
	if err != nil {
		return nil, err
	}
	names, _ := listKeys(list)
	stored := make(map[string]map[string]interface{}, len(names))
	for _, name := range names {
		if !validSegment(name) {
			continue
		}
		secret, err := client.Logical().ReadWithContext(ctx, owner.vaultPath(p, name))
		if err != nil {
			return nil, err
		}
		if secret != nil {
			stored[name] = secret.Data
		}
	}
	return stored, nil
}

type fieldView struct {
	ID       string
	Name     string
	Label    string
	Required bool
	Secret   bool
	// Value pre-fills a non-secret field; secret fields are never pre-filled.
	Value string
}

type pairView struct{ Key, Value string }

type storedView struct {
	Version      int
	Created      *timeView
	Updated      *timeView
	UpdatedByYou bool
	Hints        []pairView
	Settings     []pairView
	Expires      *timeView
	ExpiresSoon  bool
	Expired      bool
	// LastUsed is when a job last used the token (resolve, a runtime read
	// or the platform's exchange), LastUsedBy for whom: the member's live
	// name, or their entity id when the name is gone.
	LastUsed   *timeView
	LastUsedBy string
	// Derivation is the method jobs get credentials made by, "" for a
	// static key only; with its settings and hints of its secrets.
	Derivation         string
	DerivationSettings []pairView
	DerivationHints    []pairView
}

// providerCard is one provider's card: what is stored, and the form.
type providerCard struct {
	Provider    string
	Description string
	Fields      []fieldView
	Stored      *storedView
	Editable    bool
	// MinExpiry is the earliest expiry date the form offers (tomorrow):
	// the engine refuses an expiry in the past.
	MinExpiry string
	Action    string
	DeleteURL string
	Problem   *problem
	// Derivations are the forms that store a derivation instead of a key.
	Derivations []derivationForm
}

// derivationForm stores a derivation: the method's fields and the
// provider's non-secret ones.
type derivationForm struct {
	Method      string
	Description string
	Fields      []fieldView
	// Open when the token stores this method.
	Current bool
}

// providerPageState is what a provider-token page needs to draw its cards.
type providerPageState struct {
	owner    tokenOwner
	editable bool
	// failed is the provider whose form was refused, with what it sent
	// (non-secret values only are shown again).
	failed     string
	failedForm map[string]string
	problem    *problem
	// settingsProblem says problem is about the organization's settings,
	// which the page then still shows.
	settingsProblem bool
}

// providerCards builds the cards: with editing, one per catalogue provider;
// without, one per stored token.
func (p *portal) providerCards(ctx context.Context, sess *session, state providerPageState) ([]providerCard, error) {
	client := p.as(sess)
	providers, err := p.catalogue(ctx, client)
	if err != nil {
		return nil, err
	}
	stored, err := p.storedTokens(ctx, client, state.owner)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tomorrow := now.UTC().AddDate(0, 0, 1).Format(time.DateOnly)
	known := map[string]bool{}
	var cards []providerCard
	for _, provider := range providers {
		known[provider.Name] = true
		data, isStored := stored[provider.Name]
		if !state.editable && !isStored {
			continue
		}
		card := providerCard{
			Provider:    provider.Name,
			Description: provider.Description,
			Editable:    state.editable,
			MinExpiry:   tomorrow,
			Action:      state.owner.formPath(provider.Name),
			DeleteURL:   state.owner.formPath(provider.Name) + "/delete",
		}
		if isStored {
			card.Stored = viewStored(data, sess.entityID, now)
		}
		for _, f := range provider.Fields {
			field := fieldView{
				ID:       "f-" + provider.Name + "-" + f.Name,
				Name:     fieldPrefix + f.Name,
				Label:    fieldLabel(f.Name),
				Required: f.Required,
				Secret:   f.Secret,
			}
			if !f.Secret {
				if provider.Name == state.failed {
					field.Value = state.failedForm[f.Name]
				} else if isStored {
					field.Value = settingOf(data, f.Name)
				}
			}
			card.Fields = append(card.Fields, field)
		}
		for _, method := range provider.Derivations {
			form := derivationForm{Method: method.Name, Description: method.Description, Current: isStored && card.Stored.Derivation == method.Name}
			for _, f := range method.Fields {
				field := fieldView{
					ID:       "d-" + provider.Name + "-" + method.Name + "-" + f.Name,
					Name:     derivePrefix + f.Name,
					Label:    fieldLabel(f.Name),
					Required: f.Required,
					Secret:   f.Secret,
				}
				if !f.Secret && form.Current {
					derivation, _ := data["derivation"].(map[string]interface{})
					settings, _ := derivation["settings"].(map[string]interface{})
					field.Value = stringOf(settings, f.Name)
				}
				form.Fields = append(form.Fields, field)
			}
			for _, f := range card.Fields {
				if !f.Secret {
					f.ID = "d-" + provider.Name + "-" + method.Name + "-" + strings.TrimPrefix(f.Name, fieldPrefix)
					f.Required = false
					form.Fields = append(form.Fields, f)
				}
			}
			card.Derivations = append(card.Derivations, form)
		}
		if provider.Name == state.failed {
			card.Problem = state.problem
		}
		cards = append(cards, card)
	}
	// A token whose provider left the catalogue is still shown, and can be deleted.
	var orphans []string
	for name := range stored {
		if !known[name] {
			orphans = append(orphans, name)
		}
	}
	sort.Strings(orphans)
	for _, name := range orphans {
		cards = append(cards, providerCard{
			Provider:    name,
			Description: "No longer in the provider catalogue.",
			Stored:      viewStored(stored[name], sess.entityID, now),
			Editable:    state.editable,
			DeleteURL:   state.owner.formPath(name) + "/delete",
		})
	}
	return cards, nil
}

func settingOf(data map[string]interface{}, field string) string {
	settings, _ := data["settings"].(map[string]interface{})
	return stringOf(settings, field)
}

func viewStored(data map[string]interface{}, entityID string, now time.Time) *storedView {
	v := &storedView{
		Version:      intOf(data, "version"),
		Created:      viewTime(parseTime(stringOf(data, "created_at")), now),
		Updated:      viewTime(parseTime(stringOf(data, "updated_at")), now),
		UpdatedByYou: entityID != "" && stringOf(data, "updated_by") == entityID,
		Hints:        pairs(data, "secret_hints"),
		Settings:     pairs(data, "settings"),
	}
	if derivation, ok := data["derivation"].(map[string]interface{}); ok {
		v.Derivation = stringOf(derivation, "method")
		v.DerivationSettings = pairs(derivation, "settings")
		v.DerivationHints = pairs(derivation, "secret_hints")
	}
	if used := parseTime(stringOf(data, "last_used_at")); !used.IsZero() {
		v.LastUsed = viewTime(used, now)
		v.LastUsedBy = stringOf(data, "last_used_by_name")
		if v.LastUsedBy == "" {
			v.LastUsedBy = stringOf(data, "last_used_by")
		}
	}
	if expires := parseTime(stringOf(data, "expires_at")); !expires.IsZero() {
		v.Expires = viewTime(expires, now)
		v.Expired = !now.Before(expires)
		v.ExpiresSoon = !v.Expired && expires.Sub(now) < expiresSoon
	}
	return v
}

// pairs returns data[key]'s string values, sorted by key.
func pairs(data map[string]interface{}, key string) []pairView {
	m, _ := data[key].(map[string]interface{})
	out := make([]pairView, 0, len(m))
	for k, v := range m {
		if s, ok := v.(string); ok {
			out = append(out, pairView{Key: fieldLabel(k), Value: s})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// fieldLabel turns a field name into a label: "secret_access_key" ->
// "Secret access key".
func fieldLabel(name string) string {
	label := strings.ReplaceAll(name, "_", " ")
	for _, acronym := range []string{"api", "id", "crn", "url"} {
		label = replaceWord(label, acronym, strings.ToUpper(acronym))
	}
	if label == "" {
		return name
	}
	return strings.ToUpper(label[:1]) + label[1:]
}

func replaceWord(s, word, with string) string {
	words := strings.Fields(s)
	for i, w := range words {
		if w == word {
			words[i] = with
		}
	}
	return strings.Join(words, " ")
}

// providerTokenWrite stores the form's values as the owner's token for the
// provider. The engine decides whether the person may: the portal offers
// the form only to those who may, and shows the engine's refusal to anyone
// who sends it anyway.
func (p *portal) providerTokenWrite(w http.ResponseWriter, r *http.Request, sess *session, owner tokenOwner, rerender func(providerPageState)) {
	provider, ok := p.pathName(w, r, sess, "provider")
	if !ok {
		return
	}
	ctx := r.Context()
	client := p.as(sess)
	entry, err := p.catalogueEntry(ctx, client, provider)
	if err != nil || entry == nil {
		prob := &problem{Status: http.StatusNotFound, Message: fmt.Sprintf("The provider %s is not in the catalogue.", provider)}
		if err != nil {
			prob = p.vaultProblem(r, sess, err, owner.reading())
		}
		p.renderProblem(w, r, sess, prob)
		return
	}
	body := map[string]interface{}{}
	sent := map[string]string{}
	if method := r.PostFormValue("derivation"); method != "" {
		derivation := entry.derivation(method)
		if derivation == nil {
			rerender(providerPageState{failed: provider, problem: &problem{Status: http.StatusBadRequest, Message: fmt.Sprintf("The provider %s offers no derivation %q.", provider, method)}})
			return
		}
		body["derivation"] = derivation.Name
		for _, f := range derivation.Fields {
			value := r.PostFormValue(derivePrefix + f.Name)
			if !f.Secret {
				value = strings.TrimSpace(value)
			}
			if value != "" {
				body[f.Name] = value
			}
		}
	}
	for _, f := range entry.Fields {
		value := r.PostFormValue(fieldPrefix + f.Name)
		if !f.Secret {
			value = strings.TrimSpace(value)
			sent[f.Name] = value
		}
		if value != "" {
			body[f.Name] = value
		}
	}
	if date := strings.TrimSpace(r.PostFormValue("expires_at")); date != "" {
		expires, err := time.Parse(time.DateOnly, date)
		if err != nil {
			rerender(providerPageState{failed: provider, failedForm: sent, problem: &problem{Status: http.StatusBadRequest, Message: "Give the expiry as a date (YYYY-MM-DD)."}})
			return
		}
		body["expires_at"] = expires.UTC().Format(time.RFC3339)
	}
	secret, err := client.Logical().WriteWithContext(ctx, owner.vaultPath(p, provider), body)
	if err != nil {
		rerender(providerPageState{failed: provider, failedForm: sent, problem: p.vaultProblem(r, sess, err, owner.changing("save", provider))})
		return
	}
	notice := fmt.Sprintf("Saved the %s token.", provider)
	if secret != nil && intOf(secret.Data, "version") > 0 {
		notice = fmt.Sprintf("Saved the %s token (version %d).", provider, intOf(secret.Data, "version"))
	}
	p.sessions.update(sess.id, func(s *session) { s.notice = notice })
	http.Redirect(w, r, owner.pagePath()+"#provider-"+provider, http.StatusSeeOther)
}

func (p *portal) providerTokenDeleteConfirm(w http.ResponseWriter, r *http.Request, sess *session, owner tokenOwner, section string) {
	provider, ok := p.pathName(w, r, sess, "provider")
	if !ok {
		return
	}
	whose := "your"
	if owner.org != "" {
		whose = owner.org + "'s"
	}
	p.render(w, r, sess, http.StatusOK, "confirm", pageData{Title: "Delete " + provider + " token", Section: section, Content: confirmView{
		Question:    fmt.Sprintf("Delete %s %s token?", whose, provider),
		Consequence: "Jobs that use it can no longer reach " + provider + " with it. This cannot be undone.",
		Action:      owner.formPath(provider) + "/delete",
		Button:      "Delete token",
		Cancel:      owner.pagePath(),
		Danger:      true,
	}})
}

func (p *portal) providerTokenDelete(w http.ResponseWriter, r *http.Request, sess *session, owner tokenOwner, rerender func(providerPageState)) {
	provider, ok := p.pathName(w, r, sess, "provider")
	if !ok {
		return
	}
	if _, err := p.as(sess).Logical().DeleteWithContext(r.Context(), owner.vaultPath(p, provider)); err != nil {
		rerender(providerPageState{failed: provider, problem: p.vaultProblem(r, sess, err, owner.changing("delete", provider))})
		return
	}
	p.sessions.update(sess.id, func(s *session) { s.notice = fmt.Sprintf("Deleted the %s token.", provider) })
	http.Redirect(w, r, owner.pagePath(), http.StatusSeeOther)
}

// The signed-in person's own provider tokens.

type providerTokensView struct {
	Org      string
	Role     string
	Editable bool
	Cards    []providerCard
	// Settings are the organization's settings; nil on a user's page or
	// when Vault would not tell them.
	Settings *orgSettingsView
	// Own are the person's own settings, on their page; nil when Vault
	// would not tell them.
	Own *userSettingsView
}

// userSettingsView is the person's own setting for their derivable tokens.
type userSettingsView struct {
	DerivedOnly bool
	Action      string
}

// userSettings reads the person's settings; nil when Vault would not tell
// them (an engine without users/<user>/settings).
func (p *portal) userSettings(ctx context.Context, sess *session) *userSettingsView {
	secret, err := p.as(sess).Logical().ReadWithContext(ctx, p.enginePath("users", sess.user, "settings"))
	if err != nil || secret == nil {
		return nil
	}
	return &userSettingsView{DerivedOnly: secret.Data["derived_only"] != false, Action: "/provider-tokens/settings"}
}

// userSettingsWrite changes the person's own derived_only setting.
func (p *portal) userSettingsWrite(w http.ResponseWriter, r *http.Request, sess *session) {
	derivedOnly := r.PostFormValue("stored_keys_allowed") != "on"
	act := action{"Vault did not change your settings", refusalOwnProviderTokens}
	if _, err := p.as(sess).Logical().WriteWithContext(r.Context(), p.enginePath("users", sess.user, "settings"), map[string]interface{}{"derived_only": derivedOnly}); err != nil {
		p.renderUserProviderTokens(w, r, sess, providerPageState{problem: p.vaultProblem(r, sess, err, act)})
		return
	}
	p.sessions.update(sess.id, func(s *session) { s.notice = storedKeysNotice("your jobs", derivedOnly) })
	http.Redirect(w, r, "/provider-tokens#stored-keys", http.StatusSeeOther)
}

func (p *portal) userProviderTokensPage(w http.ResponseWriter, r *http.Request, sess *session) {
	p.renderUserProviderTokens(w, r, sess, providerPageState{})
}

func (p *portal) renderUserProviderTokens(w http.ResponseWriter, r *http.Request, sess *session, state providerPageState) {
	state.owner = tokenOwner{user: sess.user}
	state.editable = true
	data := pageData{Title: "Provider Access Tokens", Section: "providers"}
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
	data.Content = providerTokensView{Editable: true, Cards: cards, Own: p.userSettings(r.Context(), sess)}
	p.render(w, r, sess, status, "provider-tokens", data)
}

// cardShowsProblem reports whether a card shows the problem of provider,
// so that the page need not show it again at the top.
func cardShowsProblem(cards []providerCard, provider string) bool {
	for _, c := range cards {
		if c.Provider == provider && c.Problem != nil {
			return true
		}
	}
	return false
}

func (p *portal) userProviderTokenWrite(w http.ResponseWriter, r *http.Request, sess *session) {
	p.providerTokenWrite(w, r, sess, tokenOwner{user: sess.user}, func(state providerPageState) {
		p.renderUserProviderTokens(w, r, sess, state)
	})
}

func (p *portal) userProviderTokenDeleteConfirm(w http.ResponseWriter, r *http.Request, sess *session) {
	p.providerTokenDeleteConfirm(w, r, sess, tokenOwner{user: sess.user}, "providers")
}

func (p *portal) userProviderTokenDelete(w http.ResponseWriter, r *http.Request, sess *session) {
	p.providerTokenDelete(w, r, sess, tokenOwner{user: sess.user}, func(state providerPageState) {
		p.renderUserProviderTokens(w, r, sess, state)
	})
}
