package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"
)

// segmentRegex is the alphabet of the names the portal puts into a Vault
// path (user, token, organization and provider names, mounts): the
// engine's own name alphabet plus '@', which user names may hold. Anything
// else could change which path a request addresses.
var segmentRegex = regexp.MustCompile(`^[\w@-][\w.@-]*$`)

func validSegment(s string) bool {
	return len(s) <= 128 && segmentRegex.MatchString(s) && !strings.Contains(s, "..")
}

// errBadName is answered for a name outside the path alphabet, before
// anything is sent to Vault.
var errBadName = errors.New("names use letters, digits, '_', '-', '.' and '@' (at most 128), without '..'")

// enginePath joins segments under the engine's mount. Each segment must be
// a validSegment; callers check names taken from a request first.
func (p *portal) enginePath(segments ...string) string {
	return p.cfg.Mount + "/" + strings.Join(segments, "/")
}

// as returns a Vault client acting with the session's token.
func (p *portal) as(sess *session) *api.Client {
	client, err := p.vault.Clone()
	if err != nil {
		// Clone fails only when the base client has no configuration,
		// which newPortal guarantees.
		panic(err)
	}
	client.SetToken(sess.vaultToken)
	return client
}

// anonymous returns a Vault client without a token, for sign-in.
func (p *portal) anonymous() *api.Client {
	client, err := p.vault.Clone()
	if err != nil {
		panic(err)
	}
	client.ClearToken()
	return client
}

// revokeToken revokes a Vault token with itself (auth/token/revoke-self,
// which the default policy grants).
func (p *portal) revokeToken(ctx context.Context, token string) error {
	client := p.anonymous()
	client.SetToken(token)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err := client.Auth().Token().RevokeSelfWithContext(ctx, "")
	if statusOf(err) == 403 {
		return nil // expired or revoked already: gone is what we want
	}
	return err
}

// tokenValid reports whether the session's Vault token still works; a 403
// from Vault means either "not allowed" or "no such token", and this tells
// the two apart.
func (p *portal) tokenValid(ctx context.Context, sess *session) bool {
	_, err := p.as(sess).Auth().Token().LookupSelfWithContext(ctx)
	return statusOf(err) != 403
}

// statusOf returns the HTTP status of a Vault error: 200 for none, 0 when
// Vault was not reached.
func statusOf(err error) int {
	if err == nil {
		return 200
	}
	var respErr *api.ResponseError
	if errors.As(err, &respErr) {
		return respErr.StatusCode
	}
	return 0
}

// vaultMessages returns Vault's error messages without the formatting of
// its multi-error lists ("1 error occurred:\n\t* permission denied\n\n").
func vaultMessages(err error) []string {
	var respErr *api.ResponseError
	if !errors.As(err, &respErr) {
		return nil
	}
	var out []string
	for _, e := range respErr.Errors {
		for _, line := range strings.Split(e, "\n") {
			line = strings.TrimSpace(line)
			if strings.HasSuffix(line, "error occurred:") || strings.HasSuffix(line, "errors occurred:") || line == "" {
				continue
			}
			out = append(out, strings.TrimPrefix(line, "* "))
		}
	}
	return out
}

// vaultErrorForLog describes a Vault error for the portal's log: status and
// messages, never the request URL (the OIDC callback's query holds an
// authorization code) or a body.
func vaultErrorForLog(err error) string {
	var respErr *api.ResponseError
	if errors.As(err, &respErr) {
		return fmt.Sprintf("status %d: %s", respErr.StatusCode, strings.Join(vaultMessages(err), "; "))
	}
	// A transport failure's text quotes the whole request URL.
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		return urlErr.Op + ": " + urlErr.Err.Error()
	}
	return err.Error()
}

// stringOf returns data[key] as a string, "" if absent or not a string.
func stringOf(data map[string]interface{}, key string) string {
	s, _ := data[key].(string)
	return s
}

// stringsOf returns data[key] as a list of strings: a JSON list, or a
// comma-separated string.
func stringsOf(data map[string]interface{}, key string) ([]string, bool) {
	switch v := data[key].(type) {
	case []interface{}:
		out := make([]string, 0, len(v))
		for _, item := range v {
			if s, ok := item.(string); ok {
				out = append(out, s)
			}
		}
		return out, true
	case []string:
		return v, true
	case string:
		return splitList(v), true
	}
	return nil, false
}

// intOf returns data[key] as an int (Vault's client decodes numbers as json.Number).
func intOf(data map[string]interface{}, key string) int {
	switch v := data[key].(type) {
	case json.Number:
		n, _ := v.Int64()
		return int(n)
	case float64:
		return int(v)
	case int:
		return v
	}
	return 0
}

// listKeys returns a LIST response's keys and key_info; a 404 (nothing
// stored) is an empty list.
func listKeys(secret *api.Secret) ([]string, map[string]map[string]interface{}) {
	info := map[string]map[string]interface{}{}
	if secret == nil || secret.Data == nil {
		return nil, info
	}
	keys, _ := stringsOf(secret.Data, "keys")
	if raw, ok := secret.Data["key_info"].(map[string]interface{}); ok {
		for k, v := range raw {
			if m, ok := v.(map[string]interface{}); ok {
				info[k] = m
			}
		}
	}
	return keys, info
}

// engineFields returns the body fields the engine documents for writes to
// path, from Vault's help (OpenAPI), cached for a few minutes under
// cacheKey; it is how the portal learns whether the engine takes newer
// fields (scopes, expires_at) before offering them.
func (p *portal) engineFields(ctx context.Context, sess *session, path, cacheKey string) map[string]bool {
	p.featuresMu.Lock()
	cached, ok := p.features[cacheKey]
	p.featuresMu.Unlock()
	if ok && time.Since(cached.fetched) < engineFieldsTTL {
		return cached.fields
	}
	help, err := p.as(sess).HelpWithContext(ctx, path)
	if err != nil {
		p.log.Debug("reading the engine's help", "path", path, "error", vaultErrorForLog(err))
		return map[string]bool{}
	}
	fields := openAPIRequestFields(help.OpenAPI)
	p.featuresMu.Lock()
	p.features[cacheKey] = engineFieldSet{fields: fields, fetched: time.Now()}
	p.featuresMu.Unlock()
	return fields
}

// engineFieldsTTL is how long the portal trusts what it learned of the
// engine's fields: an upgraded engine shows within it.
const engineFieldsTTL = 5 * time.Minute

type engineFieldSet struct {
	fields  map[string]bool
	fetched time.Time
}

// openAPIRequestFields returns the property names of the POST request body
// schemas in a path's OpenAPI document.
func openAPIRequestFields(doc map[string]interface{}) map[string]bool {
	fields := map[string]bool{}
	object := func(v interface{}, key string) map[string]interface{} {
		m, _ := v.(map[string]interface{})
		if m == nil {
			return nil
		}
		out, _ := m[key].(map[string]interface{})
		return out
	}
	schemas := object(object(doc, "components"), "schemas")
	paths, _ := doc["paths"].(map[string]interface{})
	for _, item := range paths {
		schema := object(object(object(object(object(item, "post"), "requestBody"), "content"), "application/json"), "schema")
		if ref, _ := schema["$ref"].(string); ref != "" {
			schema, _ = schemas[strings.TrimPrefix(ref, "#/components/schemas/")].(map[string]interface{})
		}
		for name := range object(schema, "properties") {
			fields[name] = true
		}
	}
	return fields
}
