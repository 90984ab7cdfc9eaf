// Command typedclient uses the engine through a client that oapi-codegen
// generated from Vault's live OpenAPI document (client.gen.go, written
// beside this file by TestTypedClient): typed requests, typed responses and
// generated enums. It defines a provider as an operator, creates a PAT as a
// user, verifies and introspects it as the verifier, stores provider tokens
// and resolves them, revokes the PAT, and exits non-zero on any mismatch.
// It prints no secret.
//
// It is built only by that test: the generated code it needs exists only
// there, which is why it lives under testdata.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"
)

// vaultResponse is Vault's envelope. Vault's OpenAPI document describes an
// operation's data alone, as for every engine: HashiCorp's own generated
// client (vault-client-go) wraps it in its Response[T] the same way.
type vaultResponse[T any] struct {
	RequestID     string   `json:"request_id"`
	LeaseID       string   `json:"lease_id"`
	LeaseDuration int      `json:"lease_duration"`
	Renewable     bool     `json:"renewable"`
	Warnings      []string `json:"warnings"`
	Data          T        `json:"data"`
}

// call checks an HTTP answer's status and decodes its body into T:
// call[T](what, status)(client.Operation(...)).
func call[T any](what string, status int) func(*http.Response, error) T {
	return func(resp *http.Response, err error) T { return decode[T](what, status, resp, err) }
}

// data is call for an answer with data in Vault's envelope.
func data[T any](what string) func(*http.Response, error) T {
	return func(resp *http.Response, err error) T {
		return decode[vaultResponse[T]](what, http.StatusOK, resp, err).Data
	}
}

func decode[T any](what string, status int, resp *http.Response, err error) T {
	var out T
	if err != nil {
		fail("%s: %v", what, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		fail("%s: reading the answer: %v", what, err)
	}
	if resp.StatusCode != status {
		fail("%s: status %d, want %d: %s", what, resp.StatusCode, status, body)
	}
	if status == http.StatusNoContent {
		return out
	}
	if err := json.Unmarshal(body, &out); err != nil {
		fail("%s: the answer does not decode into the generated type: %v", what, err)
	}
	return out
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "typedclient: "+format+"\n", args...)
	os.Exit(1)
}

func check(ok bool, format string, args ...interface{}) {
	if !ok {
		fail(format, args...)
	}
}

func env(name string) string {
	value := os.Getenv(name)
	if value == "" {
		fail("%s is not set", name)
	}
	return value
}

// as authenticates a request with a Vault token.
func as(token string) RequestEditorFn {
	return func(_ context.Context, req *http.Request) error {
		req.Header.Set("X-Vault-Token", token)
		return nil
	}
}

func deref[T any](what string, p *T) T {
	if p == nil {
		fail("%s is missing", what)
	}
	return *p
}

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var (
		user, org     = env("PLANQK_USER"), env("PLANQK_ORG")
		provider      = env("PLANQK_PROVIDER")
		userToken     = as(env("PLANQK_USER_TOKEN"))
		verifierToken = as(env("PLANQK_VERIFIER_TOKEN"))
		operatorToken = as(env("PLANQK_OPERATOR_TOKEN"))
		orgSecret     = env("PLANQK_ORG_SECRET")
		ownSecret     = env("PLANQK_OWN_SECRET")
		variable      = "TYPED_CLIENT_API_KEY"
	)
	client, err := NewClient(env("VAULT_ADDR") + "/v1")
	if err != nil {
		fail("client: %v", err)
	}

	// An operator defines a provider.
	defined := data[PlanqkWriteProviderResponse]("write provider")(client.PlanqkWriteProvider(ctx, provider, PlanqkWriteProviderRequest{
		Description: ptr("typed client check"), RequiredFields: &[]string{"api_key"}, SecretFields: &[]string{"api_key"},
		Env: &[]string{"api_key:" + variable},
	}, operatorToken))
	check(deref("name", defined.Name) == provider && deref("overridden", defined.Overridden) && !deref("built_in", defined.BuiltIn), "provider: %s", show(defined))

	// The user creates a PAT.
	created := data[PlanqkCreatePersonalAccessTokenResponse]("create")(client.PlanqkCreatePersonalAccessToken(ctx, user, "typed-client", PlanqkCreatePersonalAccessTokenRequest{
		Description: ptr("typed client check"), Ttl: ptr("2h"), Scopes: &[]string{"api"},
	}, userToken))
	token := deref("token", created.Token)
	check(strings.HasPrefix(token, "plqk_"), "the token lacks the prefix")
	check(deref("user", created.User) == user && deref("name", created.Name) == "typed-client", "create: user %q, name %q", *created.User, *created.Name)
	check(slices.Equal(deref("scopes", created.Scopes), []string{"api"}), "create: scopes %v", *created.Scopes)
	lifetime := deref("expires_at", created.ExpiresAt).Sub(deref("created_at", created.CreatedAt))
	check(lifetime == 2*time.Hour, "create: lifetime %s, want 2h", lifetime)
	check(deref("last_used_at", created.LastUsedAt) == "", "create: a new token was used at %s", *created.LastUsedAt)

	// The verifier verifies it, and introspects it as a gateway would.
	verified := data[PlanqkVerifyPersonalAccessTokenResponse]("verify")(client.PlanqkVerifyPersonalAccessToken(ctx, PlanqkVerifyPersonalAccessTokenRequest{Token: token}, verifierToken))
	check(deref("active", verified.Active), "verify: not active")
	check(deref("kind", verified.Kind) == PlanqkVerifyPersonalAccessTokenResponseKindNamed, "verify: kind %s", *verified.Kind)
	check(deref("token_id", verified.TokenId) == deref("token_id", created.TokenId), "verify: another token id")
	check(deref("entity_id", verified.EntityId) == deref("entity_id", created.EntityId), "verify: another entity")
	check(deref("user", verified.User) == user, "verify: user %q", *verified.User)
	check(deref("expires_at", verified.ExpiresAt).Equal(*created.ExpiresAt), "verify: expires_at %s", *verified.ExpiresAt)
	inOrg := false
	for _, o := range deref("organizations", verified.Organizations) {
		inOrg = inOrg || o["name"] == org
	}
	check(inOrg, "verify: organizations %v lack %s", *verified.Organizations, org)

	introspected := call[PlanqkIntrospectPersonalAccessTokenResponse]("introspect", http.StatusOK)(client.PlanqkIntrospectPersonalAccessToken(ctx, PlanqkIntrospectPersonalAccessTokenRequest{Token: token}, verifierToken))
	check(deref("active", introspected.Active) && deref("jti", introspected.Jti) == *created.TokenId, "introspect: %s", show(introspected))
	check(deref("exp", introspected.Exp) == created.ExpiresAt.Unix() && deref("scope", introspected.Scope) == "api", "introspect: exp %d scope %q", *introspected.Exp, *introspected.Scope)

	// Provider tokens: the organization's and the user's own; resolve
	// prefers the organization's when asked for it.
	stored := data[PlanqkWriteOrganizationProviderTokenResponse]("write organization token")(client.PlanqkWriteOrganizationProviderToken(ctx, org, provider,
		PlanqkWriteOrganizationProviderTokenJSONRequestBody{"api_key": orgSecret}, userToken))
	check(deref("org", stored.Org) == org && deref("version", stored.Version) == 1 && slices.Equal(deref("fields", stored.Fields), []string{"api_key"}), "organization token: %s", show(stored))
	data[PlanqkWriteUserProviderTokenResponse]("write own token")(client.PlanqkWriteUserProviderToken(ctx, user, provider,
		PlanqkWriteUserProviderTokenJSONRequestBody{"api_key": ownSecret}, userToken))

	fromOrg := data[PlanqkResolveProviderTokenResponse]("resolve for the organization")(client.PlanqkResolveProviderToken(ctx, provider, &PlanqkResolveProviderTokenParams{Org: &org}, userToken))
	check(deref("source", fromOrg.Source) == PlanqkResolveProviderTokenResponseSourceOrganization, "resolve: source %s", *fromOrg.Source)
	check(deref("org", fromOrg.Org) == org && deref("provider", fromOrg.Provider) == provider && deref("version", fromOrg.Version) == 1, "resolve: provider %q org %q version %d", *fromOrg.Provider, *fromOrg.Org, *fromOrg.Version)
	check(fromOrg.User == nil && fromOrg.EntityId == nil, "resolve: an organization's token names a user")
	check(deref("env", fromOrg.Env)[variable] == orgSecret, "resolve: env lacks the organization's token under %s", variable)
	own := data[PlanqkResolveProviderTokenResponse]("resolve own")(client.PlanqkResolveProviderToken(ctx, provider, nil, userToken))
	check(deref("source", own.Source) == PlanqkResolveProviderTokenResponseSourceUser, "resolve own: source %s", *own.Source)
	check(deref("user", own.User) == user && deref("entity_id", own.EntityId) == *created.EntityId && deref("org", own.Org) == "", "resolve own: user %q entity %q org %q", *own.User, *own.EntityId, *own.Org)
	check(deref("env", own.Env)[variable] == ownSecret && len(*own.Env) == 1, "resolve own: env lacks the user's token under %s, or holds more", variable)

	// Revoked, the PAT no longer verifies; the provider tokens go too.
	call[struct{}]("revoke", http.StatusNoContent)(client.PlanqkRevokePersonalAccessToken(ctx, user, "typed-client", userToken))
	revoked := data[PlanqkVerifyPersonalAccessTokenResponse]("verify revoked")(client.PlanqkVerifyPersonalAccessToken(ctx, PlanqkVerifyPersonalAccessTokenRequest{Token: token}, verifierToken))
	check(!deref("active", revoked.Active) && revoked.TokenId == nil, "verify revoked: %s", show(revoked))
	call[struct{}]("delete own token", http.StatusNoContent)(client.PlanqkDeleteUserProviderToken(ctx, user, provider, userToken))
	call[struct{}]("delete organization token", http.StatusNoContent)(client.PlanqkDeleteOrganizationProviderToken(ctx, org, provider, userToken))
	call[struct{}]("delete provider", http.StatusNoContent)(client.PlanqkDeleteProvider(ctx, provider, operatorToken))

	fmt.Printf("typedclient: created %s, verified, introspected, resolved from the organization and the user, revoked\n", *created.TokenId)
}

func ptr[T any](v T) *T { return &v }

// show renders a response for a message; the types it is given hold no
// secret.
func show(v interface{}) string {
	encoded, err := json.Marshal(v)
	if err != nil {
		return err.Error()
	}
	return string(encoded)
}
