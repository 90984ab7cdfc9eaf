package backend

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// Derived credentials: a job gets short-lived credentials made for it from
// what a provider token stores, never the stored key itself.
//
// Design, for whoever adds a provider:
//
//   - Declaring. A built-in provider lists its derivation methods in the
//     catalogue (providerEntry.Derivations): each a name and the fields a
//     token stores for it (secret ones write-only: reads show hints). A
//     token write names the method (derivation=<method>) with its fields;
//     they are validated against the method's fields and kept apart from the
//     static fields, in providerTokenEntry.Derivation, so that no answer that
//     hands out a token's values can ever hand out a derivation's. With a
//     derivation the static key becomes optional ("instead of or beside").
//     Operators cannot define methods; overriding a built-in provider keeps
//     its methods.
//   - Deciding. A derivable token answers with derived credentials unless
//     the request asks credentials=stored, which only an owner whose rule
//     allows stored keys grants: per organization orgs/<org>/settings
//     derived_only (default true), per user users/<user>/settings.
//   - Deriving. jobCredentials is the one place resolve, the runtime read
//     and the exchange (both forms) ask "is this token derivable, and may
//     its stored key be given": it calls derive, which switches on the
//     method (each method belongs to one built-in provider) to that
//     provider's deriver: func(ctx, s, *usableToken, deriveRequest)
//     (*derivedCredentials, *logical.Response, error). A deriver talks to
//     the provider, returns the credential under the provider's static
//     field names (so env is built by the catalogue as for stored keys),
//     its expiry, whether its lease may be renewed, and what revoking needs
//     (lease data: no secret). A provider's refusal is a response (502 with
//     the provider's error code), never the stored secret or the raw error.
//   - Leasing. An answer with derived credentials is leased (secret type
//     planqk_derived_credentials; the runtime read adds them to its PAT's
//     lease) with TTL = the credential's own life. Renew and Revoke switch
//     on the method too (revokeDerived, renewDerived): AWS STS credentials
//     are not renewable and revoking them is a no-op, as in Vault's AWS
//     engine; a method whose credential must be deleted deletes it there.
//     A multi-provider answer that fails part way revokes what it derived.
const (
	secretDerivedType = "planqk_derived_credentials"

	// credentialsDerived (the default) and credentialsStored are what a
	// request may ask of a derivable token.
	credentialsDerived = "derived"
	credentialsStored  = "stored"

	maxJobIDLength = 64
)

// derivationMethod is a way to derive short-lived credentials from what a
// token of its provider stores for it.
type derivationMethod struct {
	Name        string          `json:"name"`
	Description string          `json:"description"`
	Fields      []providerField `json:"fields"`
}

func (m *derivationMethod) field(name string) (providerField, bool) {
	for _, f := range m.Fields {
		if f.Name == name {
			return f, true
		}
	}
	return providerField{}, false
}

func (m *derivationMethod) toResponseData() map[string]interface{} {
	fields := make([]map[string]interface{}, 0, len(m.Fields))
	for _, f := range m.Fields {
		fields = append(fields, map[string]interface{}{"name": f.Name, "required": f.Required, "secret": f.Secret})
	}
	return map[string]interface{}{"name": m.Name, "description": m.Description, "fields": fields}
}

// derivation returns the provider's method of that name, or nil.
func (p *providerEntry) derivation(name string) *derivationMethod {
	for _, m := range p.Derivations {
		if m.Name == name {
			return m
		}
	}
	return nil
}

// derivationEntry is what a stored token keeps for deriving: apart from
// its static values, which answers hand out.
type derivationEntry struct {
	Method string            `json:"method"`
	Values map[string]string `json:"values"`
	// SecretFields are the method's secret fields when it was written.
	SecretFields []string `json:"secret_fields"`
}

// toResponseData shows the derivation as reads do: settings, and hints of
// its secrets.
func (d *derivationEntry) toResponseData(method *derivationMethod) map[string]interface{} {
	secret := make(map[string]bool, len(d.SecretFields))
	for _, name := range d.SecretFields {
		secret[name] = true
	}
	fields := make([]string, 0, len(d.Values))
	hints := map[string]interface{}{}
	settings := map[string]interface{}{}
	for name, value := range d.Values {
		fields = append(fields, name)
		f, known := providerField{}, false
		if method != nil {
			f, known = method.field(name)
		}
		if secret[name] || !known || f.Secret {
			hints[name] = secretHint(value)
		} else {
			settings[name] = value
		}
	}
	sort.Strings(fields)
	return map[string]interface{}{"method": d.Method, "fields": fields, "secret_hints": hints, "settings": settings}
}

// takeDerivation removes derivation=<method> and the method's fields from
// a write's body and validates them; nil without a derivation. Messages
// name fields, never values.
func takeDerivation(name string, provider *providerEntry, body map[string]interface{}) (*derivationEntry, string) {
	raw, ok := body["derivation"]
	if !ok {
		return nil, ""
	}
	delete(body, "derivation")
	methodName, ok := raw.(string)
	if !ok {
		return nil, "derivation must be a string naming a method"
	}
	if methodName == "" {
		return nil, ""
	}
	method := provider.derivation(methodName)
	if method == nil {
		if len(provider.Derivations) == 0 {
			return nil, fmt.Sprintf("provider %q offers no derivation: its tokens are static keys", name)
		}
		names := make([]string, 0, len(provider.Derivations))
		for _, m := range provider.Derivations {
			names = append(names, m.Name)
		}
		return nil, fmt.Sprintf("unknown derivation %q for provider %q (methods: %s)", truncateForMessage(methodName), name, strings.Join(names, ", "))
	}
	entry := &derivationEntry{Method: method.Name, Values: map[string]string{}}
	for _, f := range method.Fields {
		raw, present := body[f.Name]
		if !present {
			if f.Required {
				return nil, fmt.Sprintf("missing required field %q for derivation %q", f.Name, method.Name)
			}
			continue
		}
		delete(body, f.Name)
		value, ok := raw.(string)
		switch {
		case !ok:
			return nil, fmt.Sprintf("field %q must be a string", f.Name)
		case !utf8.ValidString(value) || strings.ContainsRune(value, utf8.RuneError):
			return nil, fmt.Sprintf("field %q must be valid UTF-8", f.Name)
		case strings.IndexByte(value, 0) >= 0:
			return nil, fmt.Sprintf("field %q must not contain NUL", f.Name)
		case len(value) > maxProviderValueLength:
			return nil, fmt.Sprintf("field %q must be at most %d bytes", f.Name, maxProviderValueLength)
		case value == "" && f.Required:
			return nil, fmt.Sprintf("missing required field %q for derivation %q", f.Name, method.Name)
		case value == "":
			continue
		}
		entry.Values[f.Name] = value
		if f.Secret {
			entry.SecretFields = append(entry.SecretFields, f.Name)
		}
	}
	if msg := checkDerivation(method.Name, entry.Values); msg != "" {
		return nil, msg
	}
	return entry, ""
}

// checkDerivation applies a method's own rules to the values a write gives
// it (formats the provider will insist on), switching on the method.
func checkDerivation(method string, values map[string]string) string {
	switch method {
	case derivationAWSAssumeRole:
		return checkAWSAssumeRole(values)
	case derivationAWSFederationToken:
		return checkAWSFederationToken(values)
	case derivationIBMServiceIDKey:
		return checkIBMServiceIDKey(values)
	}
	return ""
}

// deriveRequest is what a derivation is for.
type deriveRequest struct {
	// orgID and org are the organization whose token it is; "" for a
	// user's own.
	orgID, org string
	// entityID and member are the entity the job runs for and its name.
	entityID, member string
	// jobID is the caller's name for the job, if it gave one.
	jobID string
	// ttl is the life asked for; 0 is the method's default.
	ttl time.Duration
}

// derivedCredentials are credentials made for one job.
type derivedCredentials struct {
	provider string
	// values are the credential under the provider's static field names.
	values    map[string]string
	expiresAt time.Time
	renewable bool
	// renewableUntil is how long renewals may keep a renewable credential
	// (its lease's max TTL); zero: until expiresAt.
	renewableUntil time.Time
	// lease is what revoking and renewing need: never a secret.
	lease map[string]interface{}
}

// derive makes credentials from the token's derivation; the method picks
// the provider's deriver. The response is a refusal to pass on.
func (b *backend) derive(ctx context.Context, s logical.Storage, usable *usableToken, r deriveRequest) (*derivedCredentials, *logical.Response, error) {
	switch usable.entry.Derivation.Method {
	case derivationAWSAssumeRole:
		return b.deriveAWSAssumeRole(ctx, s, usable, r)
	case derivationAWSFederationToken:
		return b.deriveAWSFederationToken(ctx, s, usable, r)
	case derivationIBMServiceIDKey:
		return b.deriveIBMServiceIDKey(ctx, s, usable, r)
	}
	return nil, nil, fmt.Errorf("unknown derivation method %q of a stored %q token", usable.entry.Derivation.Method, usable.provider)
}

// revokeDerived ends credentials derived earlier, given their lease data.
func (b *backend) revokeDerived(ctx context.Context, s logical.Storage, lease map[string]interface{}) error {
	method, _ := lease["method"].(string)
	switch method {
	case derivationAWSAssumeRole, derivationAWSFederationToken:
		// STS credentials cannot be revoked one by one: they expire, as
		// with Vault's AWS engine.
		return nil
	case derivationIBMServiceIDKey:
		return b.revokeIBMServiceIDKey(ctx, s, lease)
	}
	return fmt.Errorf("%w: unknown derivation method %q", errBadLeaseData, method)
}

// renewDerived says whether the credentials of lease may live until
// (another) until; a response refuses.
func (b *backend) renewDerived(ctx context.Context, s logical.Storage, lease map[string]interface{}, _ time.Time) (*logical.Response, error) {
	method, _ := lease["method"].(string)
	switch method {
	case derivationAWSAssumeRole, derivationAWSFederationToken:
		return logical.ErrorResponse("AWS STS credentials cannot be renewed: ask for new ones"), nil
	case derivationIBMServiceIDKey:
		// The key lives until its lease ends, unless something deleted
		// it first; the lease's max TTL bounds renewals.
		return ibmKeyGoneRefusal(ctx, s, lease)
	}
	return nil, fmt.Errorf("%w: unknown derivation method %q", errBadLeaseData, method)
}

// deriveParams are what a request asks of derivable tokens.
type deriveParams struct {
	credentials string
	jobID       string
	ttl         time.Duration
}

// deriveFields are the request fields of the paths that answer with
// provider credentials.
func deriveFields() map[string]*framework.FieldSchema {
	return map[string]*framework.FieldSchema{
		"credentials": {
			Type:          framework.TypeString,
			Description:   `For a token with a derivation: "derived" (default), credentials made for this job; "stored", the stored key, which only an owner's rule allows (derived_only=false). Tokens without a derivation always answer with their stored key.`,
			AllowedValues: []interface{}{credentialsDerived, credentialsStored},
			Query:         true,
		},
		"job_id": {
			Type:        framework.TypeString,
			Description: "The job the credentials are for (letters, digits, '-', '_', '.', at most 64): tagged on derived credentials where the provider can.",
			Query:       true,
		},
		"ttl": {
			Type:        framework.TypeDurationSecond,
			Description: "How long derived credentials should live; the provider's bounds apply (AWS: 900 s to the role's maximum, default 1 h).",
			Query:       true,
		},
	}
}

// withDeriveFields returns fields with deriveFields added.
func withDeriveFields(fields map[string]*framework.FieldSchema) map[string]*framework.FieldSchema {
	for name, field := range deriveFields() {
		fields[name] = field
	}
	return fields
}

// parseDeriveParams reads deriveFields; the message says what is wrong.
func parseDeriveParams(d *framework.FieldData) (deriveParams, string) {
	p := deriveParams{credentials: credentialsDerived}
	if raw, ok := d.GetOk("credentials"); ok {
		p.credentials = raw.(string)
	}
	if p.credentials != credentialsDerived && p.credentials != credentialsStored {
		return p, fmt.Sprintf("credentials must be %q or %q", credentialsDerived, credentialsStored)
	}
	p.jobID = d.Get("job_id").(string)
	if !validJobID(p.jobID) {
		return p, fmt.Sprintf("job_id must be at most %d letters, digits, '-', '_' or '.'", maxJobIDLength)
	}
	ttl := d.Get("ttl").(int)
	if ttl < 0 {
		return p, "ttl must not be negative"
	}
	p.ttl = time.Duration(ttl) * time.Second
	return p, ""
}

func validJobID(id string) bool {
	if len(id) > maxJobIDLength {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

// storedKeyAllowed reports whether the owner's rule lets jobs have the
// stored key of a derivable token: per organization its settings, per user
// theirs; derived only by default.
func (b *backend) storedKeyAllowed(ctx context.Context, s logical.Storage, owner *providerTokenOwner) (bool, error) {
	if owner.org != nil {
		if owner.org.id == "" {
			return false, nil
		}
		settings, err := b.cachedOrgSettings(ctx, s, owner.org.id)
		if err != nil {
			return false, err
		}
		return settings.StoredKeysAllowed, nil
	}
	settings, err := b.cachedUserSettings(ctx, s, owner.user.entityID())
	if err != nil {
		return false, err
	}
	return settings.StoredKeysAllowed, nil
}

// jobCredentials is where resolve, the runtime read and the exchange turn
// the token a caller may use into what a job gets: a token without a
// derivation as stored; a derivable one as credentials derived for the
// job, or, asked for and allowed by the owner's rule, as stored. The
// token answered with holds derived values in place of the stored ones
// (and the stored token's settings, never its secrets).
func (b *backend) jobCredentials(ctx context.Context, s logical.Storage, usable *usableToken, caller *identity, p deriveParams) (*usableToken, *derivedCredentials, *logical.Response, error) {
	if usable.entry.Derivation == nil {
		return usable, nil, nil, nil
	}
	if p.credentials == credentialsStored {
		allowed, err := b.storedKeyAllowed(ctx, s, usable.owner)
		if err != nil {
			return nil, nil, nil, err
		}
		if !allowed {
			return nil, nil, forbidden(fmt.Sprintf("the %s token of %s may be used only through derived credentials (derived_only in %s): ask without credentials=stored", usable.provider, usable.owner.describe(), usable.owner.settingsPath())), nil
		}
		if !usable.entry.hasStaticKey() {
			return nil, nil, notFound(fmt.Sprintf("the %s token of %s stores no key, only a derivation", usable.provider, usable.owner.describe())), nil
		}
		return usable, nil, nil, nil
	}
	r := deriveRequest{entityID: caller.entityID, member: caller.name, jobID: p.jobID, ttl: p.ttl}
	if usable.owner.org != nil {
		r.orgID, r.org = usable.owner.org.id, usable.owner.org.name
	}
	creds, denied, err := b.derive(ctx, s, usable, r)
	if denied != nil || err != nil {
		return nil, nil, denied, err
	}
	creds.provider = usable.provider
	creds.lease["method"] = usable.entry.Derivation.Method
	creds.lease["provider"] = usable.provider
	// The hard end: what the runtime read's PAT lease may be renewed to.
	creds.lease["expires_at"] = formatTime(creds.end())

	entry := *usable.entry
	entry.Values = make(map[string]string, len(creds.values)+len(usable.entry.Values))
	for name, value := range usable.entry.Values {
		if !slices.Contains(usable.entry.SecretFields, name) {
			entry.Values[name] = value
		}
	}
	for name, value := range creds.values {
		entry.Values[name] = value
	}
	entry.Derivation = nil
	derived := *usable
	derived.entry = &entry
	derived.derived = creds
	return &derived, creds, nil, nil
}

// hasStaticKey reports whether the token stores a value of a field that
// was secret when written: a key, not only settings.
func (e *providerTokenEntry) hasStaticKey() bool {
	for _, name := range e.SecretFields {
		if e.Values[name] != "" {
			return true
		}
	}
	return false
}

// describe names the owner in messages.
func (o *providerTokenOwner) describe() string {
	if o.org != nil {
		return fmt.Sprintf("organization %q", o.org.name)
	}
	return fmt.Sprintf("user %q", o.user.name)
}

// settingsPath is where the owner's rule is set.
func (o *providerTokenOwner) settingsPath() string {
	if o.org != nil {
		return "orgs/" + o.org.name + "/settings"
	}
	return "users/" + o.user.name + "/settings"
}

// derivedLease is the lease data of derived credentials: each one's
// lease data, under "derived" (the runtime read's PAT lease carries it
// too).
const derivedLeaseKey = "derived"

func derivedLeaseData(creds []*derivedCredentials) []interface{} {
	list := make([]interface{}, 0, len(creds))
	for _, c := range creds {
		list = append(list, c.lease)
	}
	return list
}

// parseDerivedLease returns the derived credentials' lease data of a
// lease; none when it carries none.
func parseDerivedLease(internal map[string]interface{}) ([]map[string]interface{}, error) {
	raw, present := internal[derivedLeaseKey]
	if !present {
		return nil, nil
	}
	list, ok := raw.([]interface{})
	if !ok {
		return nil, fmt.Errorf("%w: %s", errBadLeaseData, derivedLeaseKey)
	}
	leases := make([]map[string]interface{}, 0, len(list))
	for _, item := range list {
		lease, ok := item.(map[string]interface{})
		if !ok {
			return nil, fmt.Errorf("%w: %s", errBadLeaseData, derivedLeaseKey)
		}
		if _, ok := lease["method"].(string); !ok {
			return nil, fmt.Errorf("%w: %s method", errBadLeaseData, derivedLeaseKey)
		}
		leases = append(leases, lease)
	}
	return leases, nil
}

// revokeAllDerived revokes each; the first error is returned after all
// were tried.
func (b *backend) revokeAllDerived(ctx context.Context, s logical.Storage, leases []map[string]interface{}) error {
	var errs []error
	for _, lease := range leases {
		if err := b.revokeDerived(ctx, s, lease); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// undoDerived revokes credentials derived for an answer that then failed.
func (b *backend) undoDerived(ctx context.Context, s logical.Storage, creds []*derivedCredentials) {
	if len(creds) == 0 {
		return
	}
	leases := make([]map[string]interface{}, 0, len(creds))
	for _, c := range creds {
		leases = append(leases, c.lease)
	}
	if err := b.revokeAllDerived(ctx, s, leases); err != nil {
		b.Logger().Error("could not revoke credentials derived for an answer that failed", "error", err)
	}
}

// earliestExpiry is when the first of creds expires; zero for none.
func earliestExpiry(creds []*derivedCredentials) time.Time {
	var first time.Time
	for _, c := range creds {
		if first.IsZero() || c.expiresAt.Before(first) {
			first = c.expiresAt
		}
	}
	return first
}

// end is when renewals can keep the credentials no longer.
func (c *derivedCredentials) end() time.Time {
	if c.renewable && c.renewableUntil.After(c.expiresAt) {
		return c.renewableUntil
	}
	return c.expiresAt
}

// leaseDerived puts derived credentials under a lease of their own, whose
// TTL is their life and whose max TTL the first end of them: renewable
// only when all of them are.
func (b *backend) leaseDerived(resp *logical.Response, creds []*derivedCredentials) *logical.Response {
	if len(creds) == 0 {
		return resp
	}
	leased := b.Secret(secretDerivedType).Response(resp.Data, map[string]interface{}{derivedLeaseKey: derivedLeaseData(creds)})
	leased.Warnings = resp.Warnings
	leased.Secret.TTL = time.Until(earliestExpiry(creds)).Truncate(time.Second)
	var end time.Time
	leased.Secret.Renewable = true
	for _, c := range creds {
		leased.Secret.Renewable = leased.Secret.Renewable && c.renewable
		if end.IsZero() || c.end().Before(end) {
			end = c.end()
		}
	}
	leased.Secret.MaxTTL = time.Until(end).Truncate(time.Second)
	return leased
}

func secretDerived(b *backend) *framework.Secret {
	return &framework.Secret{
		Type: secretDerivedType,
		Fields: map[string]*framework.FieldSchema{
			"env": {Type: framework.TypeMap, Description: "The credentials under the environment variables the provider's SDK reads."},
		},
		Renew:  b.secretDerivedRenew,
		Revoke: b.secretDerivedRevoke,
	}
}

func (b *backend) secretDerivedRenew(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	if req.Secret == nil {
		return nil, errBadLeaseData
	}
	leases, err := parseDerivedLease(req.Secret.InternalData)
	if err != nil {
		return nil, err
	}
	increment := req.Secret.Increment
	if increment <= 0 {
		increment = req.Secret.TTL
	}
	until := time.Now().Add(increment)
	for _, lease := range leases {
		if resp, err := b.renewDerived(ctx, req.Storage, lease, until); resp != nil || err != nil {
			return resp, err
		}
	}
	// Never past the first credential's end.
	secret := *req.Secret
	if end := derivedLeaseExpiry(leases); !end.IsZero() {
		secret.TTL = min(increment, time.Until(end).Truncate(time.Second))
		secret.MaxTTL = end.Sub(req.Secret.IssueTime)
	}
	return &logical.Response{Secret: &secret}, nil
}

func (b *backend) secretDerivedRevoke(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	if req.Secret == nil {
		return nil, errBadLeaseData
	}
	leases, err := parseDerivedLease(req.Secret.InternalData)
	if err != nil {
		return nil, err
	}
	return nil, b.revokeAllDerived(ctx, req.Storage, leases)
}

// derivedResponseFields describe what an answer with derived credentials
// adds; an answer with a stored key has neither, as before derivations
// existed.
var derivedResponseFields = fieldSet{
	"credentials": {Type: framework.TypeString, Description: `"derived": credentials made for this job, expiring at expires_at, under the answer's lease. Absent when the answer is the stored key.`, AllowedValues: []interface{}{credentialsDerived}},
	"expires_at":  {Type: framework.TypeString, Description: "When the derived credentials expire (RFC 3339), the end of the answer's lease. Absent when the answer is the stored key."},
}

// derivedResponseData is what an answer with derived credentials says
// about them; nothing for a stored key.
func derivedResponseData(usable *usableToken) map[string]interface{} {
	if usable.derived == nil {
		return nil
	}
	return map[string]interface{}{"credentials": credentialsDerived, "expires_at": formatTime(usable.derived.expiresAt)}
}

// derivationStatus is a 502 naming what the provider said, never a secret.
func derivationFailed(provider, what string) *logical.Response {
	return respondError(http.StatusBadGateway, fmt.Sprintf("deriving %s credentials failed: %s", provider, what))
}

// derivationMethodOf returns the built-in method of that name, or nil.
func derivationMethodOf(name string) *derivationMethod {
	for _, p := range builtinProviders {
		if m := p.derivation(name); m != nil {
			return m
		}
	}
	return nil
}

// derivedLeaseExpiry is when the first of the leases' credentials
// expires; zero when none says.
func derivedLeaseExpiry(leases []map[string]interface{}) time.Time {
	var first time.Time
	for _, lease := range leases {
		text, _ := lease["expires_at"].(string)
		expiry, err := time.Parse(time.RFC3339, text)
		if err != nil {
			continue
		}
		if first.IsZero() || expiry.Before(first) {
			first = expiry
		}
	}
	return first
}
