package backend

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// The variables the PlanQK SDK (PlanQK/planqk-quantum) reads:
// planqk/credentials.py, EnvironmentCredential takes the access token from
// PLANQK_PERSONAL_ACCESS_TOKEN (after PLANQK_SERVICE_EXECUTION_TOKEN, which
// a managed service sets) and sends it as the x-auth-token header;
// planqk/context.py, Context.get_organization_id reads
// PLANQK_ORGANIZATION_ID and sends it as x-organizationid.
const (
	envPlanqkPAT   = "PLANQK_PERSONAL_ACCESS_TOKEN"
	envPlanqkOrgID = "PLANQK_ORGANIZATION_ID"
)

const (
	sourceOrganization = "organization"
	sourceUser         = "user"
)

func pathRuntime(b *backend) []*framework.Path {
	operation := func(displayAttrs *framework.DisplayAttributes) *framework.PathOperation {
		return &framework.PathOperation{
			Callback: b.pathRuntimeRead,
			// A leased PAT is stored, like creds', by the primary's active node.
			ForwardPerformanceStandby:   true,
			ForwardPerformanceSecondary: true,
			DisplayAttrs:                displayAttrs,
			Responses: okResponse(leasedTokenDescription+" Its data also holds the job's environment.", runtimeFields).
				or(http.StatusForbidden, forbiddenDescription),
		}
	}
	return []*framework.Path{
		{
			Pattern: "users/" + pathSegment("user") + "/runtime/" + pathSegment("role") + "$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefixPlanqk,
				OperationVerb:   "generate",
				OperationSuffix: "runtime-environment",
			},
			Fields: withDeriveFields(map[string]*framework.FieldSchema{
				"user": userNameField(),
				"role": leaseRoleField(),
				"org": {
					Type:        framework.TypeString,
					Description: "Organization the job runs for; the caller must be a member. Its provider tokens are preferred to the caller's own.",
					Query:       true,
				},
			}),
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: operation(nil),
				// The same with org in the body, for clients that send
				// parameters only that way (the Vault Secrets Operator);
				// an operation id of its own, as OpenAPI needs them unique.
				logical.UpdateOperation: operation(&framework.DisplayAttributes{OperationSuffix: "runtime-environment-with-body"}),
			},
			HelpSynopsis:    pathRuntimeHelpSynopsis,
			HelpDescription: pathRuntimeHelpDescription,
		},
	}
}

// runtimeFields describe the runtime read's answer: the leased PAT's
// fields and the environment.
var runtimeFields = leasedTokenFields.with(fieldSet{
	"org":       {Type: framework.TypeString, Description: "The organization the job runs for; empty when none was given."},
	"env":       {Type: framework.TypeMap, Description: "The job's environment, variable -> value (strings): PLANQK_PERSONAL_ACCESS_TOKEN, PLANQK_ORGANIZATION_ID with an org, and every usable provider token under the variables its SDK reads.", DisplayAttrs: &framework.DisplayAttributes{Sensitive: true}},
	"dotenv":    {Type: framework.TypeString, Description: "The same environment as lines NAME='value' for a POSIX shell (set -a; . ./file).", DisplayAttrs: &framework.DisplayAttributes{Sensitive: true}},
	"providers": {Type: framework.TypeMap, Description: `Each provider whose token is in env, with where its token came from: "organization" or "user".`},
})

func (b *backend) pathRuntimeRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	org := d.Get("org").(string)
	if org != "" {
		if msg := checkNames(orgName(org)); msg != "" {
			return logical.ErrorResponse(msg), nil
		}
	}
	params, msg := parseDeriveParams(d)
	if msg != "" {
		return logical.ErrorResponse(msg), nil
	}
	lease, errResp, err := b.prepareLease(ctx, req, d.Get("user").(string), d.Get("role").(string))
	if errResp != nil || err != nil {
		return errResp, err
	}
	target, denied, err := b.memberOrg(ctx, req.Storage, lease.owner, org)
	if denied != nil || err != nil {
		return denied, err
	}
	// The provider tokens are read, credentials derived, and their
	// environment checked, before the PAT is issued, so that a failure
	// leaves no lease behind.
	runtime, denied, err := b.runtimeEnvironment(ctx, req.Storage, lease.owner, target, params)
	if denied != nil || err != nil {
		return denied, err
	}
	if _, err := renderDotenv(runtime.env); err != nil {
		// The catalogue and the writes admit nothing renderDotenv refuses.
		b.undoDerived(ctx, req.Storage, runtime.derived)
		return nil, fmt.Errorf("rendering the environment: %w", err)
	}
	// Derived credentials live no longer than the PAT's lease, which ends
	// them (revoking what needs it) and ends with the first of them.
	if len(runtime.derived) > 0 {
		life := time.Until(earliestExpiry(runtime.derived)).Truncate(time.Second)
		lease.ttl, lease.maxTTL = min(lease.ttl, life), min(lease.maxTTL, life)
	}

	resp, err := b.issueLease(ctx, req, lease)
	if err != nil || resp.IsError() {
		b.undoDerived(ctx, req.Storage, runtime.derived)
		return resp, err
	}
	if len(runtime.derived) > 0 {
		resp.Secret.InternalData[derivedLeaseKey] = derivedLeaseData(runtime.derived)
	}
	runtime.env[envPlanqkPAT] = resp.Data["token"].(string)
	// Cannot fail: checked above, and the PAT and org are base62 and a
	// checked name.
	data, err := runtime.responseData(org)
	if err != nil {
		return nil, err
	}
	for key, value := range data {
		resp.Data[key] = value
	}
	b.noteUses(ctx, req.Storage, runtime, lease.owner)
	for _, warning := range runtime.warnings {
		resp.AddWarning(warning)
	}
	return resp, nil
}

// responseData is the environment as the runtime read and the exchange
// answer it: with org, PLANQK_ORGANIZATION_ID is added; env, dotenv (the
// same as a POSIX shell file), providers and org.
func (r *runtimeEnv) responseData(org string) (map[string]interface{}, error) {
	if org != "" {
		r.env[envPlanqkOrgID] = org
	}
	dotenv, err := renderDotenv(r.env)
	if err != nil {
		return nil, fmt.Errorf("rendering the environment: %w", err)
	}
	return map[string]interface{}{
		"org":       org,
		"env":       r.env,
		"dotenv":    dotenv,
		"providers": r.providers,
	}, nil
}

// runtimeEnv is everything provider tokens put into a job's environment.
type runtimeEnv struct {
	env map[string]string
	// providers names the providers whose tokens are in env, each with
	// where its token came from.
	providers map[string]string
	warnings  []string
	// used are the tokens in env: not those left out.
	used []usableToken
	// derived are the credentials derived for the job that env holds.
	derived []*derivedCredentials
}

// noteUses notes that caller's job used the tokens in the environment,
// once it is handed out. The configuration it reads is cached; should it
// fail, the uses go unrecorded rather than fail the answer (the runtime
// read has issued its PAT by then).
func (b *backend) noteUses(ctx context.Context, s logical.Storage, r *runtimeEnv, caller *identity) {
	for i := range r.used {
		if err := b.noteProviderTokenUse(ctx, s, &r.used[i], caller); err != nil {
			b.Logger().Warn("noting provider-token use failed; this use is not recorded", "error", err)
			return
		}
	}
}

// usableToken is a provider token the caller may use in the context.
type usableToken struct {
	provider string
	source   string
	owner    *providerTokenOwner
	entry    *providerTokenEntry
	// derived, when set, are the credentials derived for the job that
	// entry's values hold in place of the stored key.
	derived *derivedCredentials
}

// runtimeEnvironment collects, for every provider of the catalogue, the
// token the caller may use (usableProviderToken, as resolve), or the
// credentials derived from it (jobCredentials). Once the provider-token
// cache holds the owners' tokens and their absence, this costs no storage
// round trip; each derivation costs a round trip to its provider. A
// refusal is returned as a response, and what was derived until then is
// revoked. It notes no use: noteUses does, once the environment is handed
// out.
func (b *backend) runtimeEnvironment(ctx context.Context, s logical.Storage, caller *identity, org *orgTarget, p deriveParams) (*runtimeEnv, *logical.Response, error) {
	catalogue, err := b.catalogue(ctx, s)
	if err != nil {
		return nil, nil, err
	}
	var tokens []usableToken
	var derived []*derivedCredentials
	for _, name := range sortedKeys(catalogue) {
		usable, err := b.usableProviderToken(ctx, s, caller, org, name)
		if err == nil && usable != nil {
			var denied *logical.Response
			usable, _, denied, err = b.jobCredentials(ctx, s, usable, caller, p)
			if denied != nil {
				b.undoDerived(ctx, s, derived)
				return nil, denied, nil
			}
		}
		if err != nil {
			b.undoDerived(ctx, s, derived)
			return nil, nil, err
		}
		if usable != nil {
			tokens = append(tokens, *usable)
			if usable.derived != nil {
				derived = append(derived, usable.derived)
			}
		}
	}
	runtime := composeEnvironment(catalogue, tokens)
	var unused []*derivedCredentials
	for _, creds := range derived {
		if _, used := runtime.providers[creds.provider]; used {
			runtime.derived = append(runtime.derived, creds)
		} else {
			unused = append(unused, creds)
		}
	}
	b.undoDerived(ctx, s, unused)
	return runtime, nil, nil
}

// composeEnvironment merges the tokens' variables. Two providers may feed
// one variable (ibm-quantum and ibm-cloud both feed QISKIT_IBM_TOKEN, with
// different channels); mixing their values would hand an SDK a token of one
// and a channel of the other, so a provider whose variables overlap one
// already taken is left out whole, with a warning. Organization tokens come
// first, then the caller's own, each in provider name order: the job runs
// for the organization, and the order never depends on chance.
func composeEnvironment(catalogue map[string]*providerEntry, tokens []usableToken) *runtimeEnv {
	sort.Slice(tokens, func(i, j int) bool {
		if tokens[i].source != tokens[j].source {
			return tokens[i].source == sourceOrganization
		}
		return tokens[i].provider < tokens[j].provider
	})
	result := &runtimeEnv{env: map[string]string{}, providers: map[string]string{}}
	takenBy := map[string]string{} // variable -> provider
	for _, token := range tokens {
		env, warnings := catalogue[token.provider].environment(token.provider, token.entry.Values)
		result.warnings = append(result.warnings, warnings...)
		if len(env) == 0 {
			result.warnings = append(result.warnings, fmt.Sprintf("provider %q: the catalogue names no environment variable for the fields of its %s token, which is left out", token.provider, token.source))
			continue
		}
		clashes := map[string][]string{} // provider already taken -> variables
		for name := range env {
			if other, taken := takenBy[name]; taken {
				clashes[other] = append(clashes[other], name)
			}
		}
		if len(clashes) > 0 {
			for _, other := range sortedKeys(clashes) {
				sort.Strings(clashes[other])
				result.warnings = append(result.warnings, fmt.Sprintf(
					"providers %q and %q both set %s: the %s token of %q is used, the %s token of %q is left out",
					other, token.provider, strings.Join(clashes[other], ", "),
					result.providers[other], other, token.source, token.provider))
			}
			continue
		}
		for name, value := range env {
			result.env[name] = value
			takenBy[name] = token.provider
		}
		result.providers[token.provider] = token.source
		result.used = append(result.used, token)
	}
	return result
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

const pathRuntimeHelpSynopsis = `Issue a leased PAT with every provider credential a job needs, as environment variables.`

const pathRuntimeHelpDescription = `
One read gives a job runtime everything for one organization context:

  - a short-lived PAT issued as a Vault lease exactly as creds/<role> issues
    it (the role's TTLs and scopes, the same caps, at most 1000 leases per
    user; renewing or revoking the lease renews or revokes the PAT), as
    PLANQK_PERSONAL_ACCESS_TOKEN, the variable the PlanQK SDK reads;
  - with org, PLANQK_ORGANIZATION_ID=<org> (the organization's name, as
    the PlanQK platform addresses it); the caller must be a member of org;
  - for every provider of the catalogue, the token the caller may use: the
    organization's if it has one, else the caller's own, under the
    environment variables the provider's SDK reads (see providers/).

They come as env (variable -> value) and as dotenv, the same as lines
NAME='value' for a POSIX shell: set -a; . ./file. providers names each
provider used with the source of its token ("organization" or "user").

Two providers may feed one variable (ibm-quantum and ibm-cloud both feed
QISKIT_IBM_TOKEN). Then organization tokens win over the caller's own, and
among tokens of one source the provider first in name order wins; the other
provider is left out whole, never mixed, and a warning names both.

Only the user's own entity may read it. GET with ?org=, or PUT/POST with
org in the body.

Note: Vault keeps a leased response's data in the lease's entry in its own
storage (sys/expire, encrypted by the barrier but not seal-wrapped) until
the lease ends. This read therefore puts the provider credentials it
returns there as well, not only the PAT. Where that is not wanted, use
creds/<role> for the PAT and resolve/<provider>, whose responses are not
leased, for each provider token.

  vault read planqk/users/alice/runtime/jobs org=acme
`
