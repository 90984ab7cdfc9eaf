package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/planqk/vault-plugin-secrets-planqk/bootstrap"
	"github.com/planqk/vault-plugin-secrets-planqk/scripts/vaultharness"
)

const (
	mount      = "planqk"
	org        = "acme"
	leaseRole  = "runtime"
	listedPATs = 1000 // PATs of the user whose list is measured

	// tokenRole is the token store role through which users create Vault
	// tokens in the "Vault tokens as PATs" references: it pins the policy
	// and the lifetime (the engine's default PAT TTL) as a platform would,
	// and is not orphan, so each token keeps its creator's identity entity
	// (what verify reports as user and organizations).
	tokenRole = "planqk-pat"

	// One policy for every bench token, so ACL evaluation costs the same
	// for the engine and for its references.
	benchPolicy = `
path "planqk/*"                       { capabilities = ["create", "read", "update", "delete", "list"] }
path "planqk-near-empty/*"            { capabilities = ["create", "read", "update", "delete", "list"] }
path "kv/*"                           { capabilities = ["create", "read", "update", "delete", "list"] }
path "noop/*"                         { capabilities = ["read", "update"] }
path "auth/token/lookup"              { capabilities = ["update"] }
path "auth/token/create/planqk-pat"   { capabilities = ["update"] }
`
	// The policy of the Vault tokens issued as PATs.
	patPolicy = `path "noop/noop" { capabilities = ["read"] }`

	orgProviderKey  = "ionq-bench-org-key-0000"
	userProviderKey = "ionq-bench-user-key-0000"
	kvValue         = "kv-bench-value-0000"
	kvMaxVersions   = 10 // KV v2's default

	// The organization's AWS role and the base key allowed to assume it
	// (moto accepts any).
	benchRoleARN   = "arn:aws:iam::123456789012:role/planqk-braket"
	benchBaseKeyID = "AKIABENCHBASE0000000"
)

// benchUser is a userpass user with an identity entity, a member of the
// organization, with PATs and Vault tokens of their own.
type benchUser struct {
	name        string
	token       string   // their userpass login token: carries the entity
	entityID    string   // when known without asking
	pats        []string // named PATs
	vaultTokens []string // Vault tokens created through the token role
}

// fixtures is the server and what the operations need.
type fixtures struct {
	server       *vaultharness.Server
	root         *api.Client
	boot         *bootstrap.Bootstrapper
	vaultVersion string

	verifier string // a service token without entity: what the PlanQK API verifies with
	users    []*benchUser
	lister   *benchUser // owns listedPATs PATs

	// Every user's PATs and Vault tokens, flattened for random picks.
	pats        []string
	garbled     []string // pats with a wrong checksum character
	vaultTokens []string

	// The engine's configuration as found, restored between operations.
	engineDefaults map[string]interface{}

	// pluginVersion is the engine's registered version, for more mounts.
	pluginVersion string

	// moto is moto_server, STS for the organization's derivable aws-braket
	// token; nil without MOTO_SERVER_BIN.
	moto *vaultharness.Moto
}

func setUp(ctx context.Context, o options, env map[string]string, dir string) (*fixtures, error) {
	f := &fixtures{pluginVersion: env["PLANQK_PLUGIN_VERSION"]}
	_, sha, err := vaultharness.InstallPlugin(env["PLANQK_PLUGIN_BIN"], dir)
	if err != nil {
		return nil, err
	}
	noopSHA, err := vaultharness.CopyPlugin(env["NOOP_PLUGIN_BIN"], filepath.Join(dir, "plugins", "noop"))
	if err != nil {
		return nil, err
	}
	if o.raft {
		f.server, err = startRaft(ctx, env["VAULT_BIN"], dir)
	} else {
		f.server, err = vaultharness.StartDev(ctx, env["VAULT_BIN"], dir)
	}
	if err != nil {
		return nil, err
	}
	f.root = f.server.Root()
	if health, err := f.root.Sys().HealthWithContext(ctx); err == nil {
		f.vaultVersion = health.Version
	}
	if err := f.mountAll(ctx, env, sha, noopSHA); err != nil {
		return f, err
	}

	f.boot = &bootstrap.Bootstrapper{Client: f.root, Mount: mount, AuthMount: "userpass"}
	if err := f.boot.Init(ctx); err != nil {
		return f, err
	}
	if err := f.boot.Org(ctx, org); err != nil {
		return f, err
	}
	service, err := f.root.Auth().Token().CreateWithContext(ctx, &api.TokenCreateRequest{Policies: []string{"bench"}, NoDefaultPolicy: true, TTL: "8h"})
	if err != nil {
		return f, err
	}
	f.verifier = service.Auth.ClientToken

	progress("creating %d users with %d PATs and %d Vault tokens each", o.users, o.patsPerUser, o.patsPerUser)
	names := make([]string, o.users)
	for i := range names {
		names[i] = fmt.Sprintf("bench-%04d", i)
	}
	if f.users, err = f.createUsers(ctx, append(names, "lister")); err != nil {
		return f, err
	}
	f.users, f.lister = f.users[:o.users], f.users[o.users]
	if err := f.joinOrg(ctx, f.users); err != nil {
		return f, err
	}
	if _, err := f.root.Logical().WriteWithContext(ctx, mount+"/orgs/"+org+"/provider-tokens/ionq", map[string]interface{}{"api_key": orgProviderKey}); err != nil {
		return f, err
	}
	if _, err := f.root.Logical().WriteWithContext(ctx, mount+"/roles/"+leaseRole, map[string]interface{}{"ttl": "30m", "max_ttl": "1h"}); err != nil {
		return f, err
	}
	if env["MOTO_SERVER_BIN"] != "" {
		if err := f.deriveThroughMoto(ctx, env["MOTO_SERVER_BIN"], dir); err != nil {
			return f, err
		}
	}
	err = parallel(8, len(f.users), func(i int) error { return f.equipUser(ctx, f.users[i], o.patsPerUser) })
	if err != nil {
		return f, err
	}
	for _, u := range f.users {
		f.pats = append(f.pats, u.pats...)
		f.vaultTokens = append(f.vaultTokens, u.vaultTokens...)
	}
	for _, pat := range f.pats {
		f.garbled = append(f.garbled, garble(pat))
	}

	progress("creating the %d PATs of the listed user", listedPATs)
	err = parallel(8, listedPATs, func(i int) error {
		_, err := f.as(f.lister.token).Logical().WriteWithContext(ctx, fmt.Sprintf("%s/users/lister/tokens/t%04d", mount, i), nil)
		return err
	})
	if err != nil {
		return f, err
	}

	config, err := f.root.Logical().ReadWithContext(ctx, mount+"/config")
	if err != nil {
		return f, err
	}
	f.engineDefaults = map[string]interface{}{}
	for _, field := range []string{"identity_cache_ttl", "last_used_granularity"} {
		if v, ok := config.Data[field]; ok {
			f.engineDefaults[field] = v
		}
	}
	return f, nil
}

// deriveThroughMoto starts moto_server and stores the organization's
// aws-braket token as a derivation whose STS is moto: each exchange of it
// is one AssumeRole there.
func (f *fixtures) deriveThroughMoto(ctx context.Context, bin, dir string) error {
	progress("starting moto_server for the derived-credentials rows")
	moto, err := vaultharness.StartMoto(ctx, bin, dir)
	if err != nil {
		return err
	}
	f.moto = moto
	// A token's own endpoint must be the provider's, or one the operator
	// allows.
	if _, err := f.root.Logical().WriteWithContext(ctx, mount+"/config", map[string]interface{}{"allowed_endpoints": moto.URL}); err != nil {
		return err
	}
	_, err = f.root.Logical().WriteWithContext(ctx, mount+"/orgs/"+org+"/provider-tokens/aws-braket", map[string]interface{}{
		"derivation":             "aws_assume_role",
		"role_arn":               benchRoleARN,
		"base_access_key_id":     benchBaseKeyID,
		"base_secret_access_key": "bench-base-secret-0000",
		"sts_endpoint":           moto.URL,
		"region":                 "us-east-1",
	})
	return err
}

// mountAll mounts the engine, the no-op plugin and KV v2, lets the
// X-Auth-Token header through to the engine and the no-op plugin, writes
// the bench policies and the token role.
func (f *fixtures) mountAll(ctx context.Context, env map[string]string, sha, noopSHA string) error {
	headers := api.MountConfigInput{PassthroughRequestHeaders: []string{"X-Auth-Token", "X-OrganizationId"}}
	steps := []func() error{
		func() error { return f.server.RegisterPlugin(ctx, sha, env["PLANQK_PLUGIN_VERSION"]) },
		func() error { return f.server.Mount(ctx, mount, env["PLANQK_PLUGIN_VERSION"]) },
		func() error { return f.root.Sys().TuneMountWithContext(ctx, mount, headers) },
		func() error {
			return f.root.Sys().RegisterPluginWithContext(ctx, &api.RegisterPluginInput{Name: "noop", Type: api.PluginTypeSecrets, Command: "noop", SHA256: noopSHA})
		},
		func() error {
			return f.root.Sys().MountWithContext(ctx, "noop", &api.MountInput{Type: "noop", Config: headers})
		},
		func() error {
			return f.root.Sys().MountWithContext(ctx, "kv", &api.MountInput{Type: "kv", Options: map[string]string{"version": "2"}})
		},
		func() error { return f.root.Sys().PutPolicyWithContext(ctx, "bench", benchPolicy) },
		func() error { return f.root.Sys().PutPolicyWithContext(ctx, "bench-pat", patPolicy) },
		func() error {
			_, err := f.root.Logical().WriteWithContext(ctx, "auth/token/roles/"+tokenRole, map[string]interface{}{
				"allowed_policies": "bench-pat",
				"orphan":           false,
				"renewable":        false,
				"token_type":       "service",
				"token_ttl":        "720h",
			})
			return err
		},
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

// createUsers creates userpass users with entities, logs them in and
// returns them. Their tokens carry the bench policy only.
func (f *fixtures) createUsers(ctx context.Context, names []string) ([]*benchUser, error) {
	users := make([]*benchUser, len(names))
	err := parallel(8, len(names), func(i int) error {
		password := "bench-password-" + names[i]
		if _, err := f.boot.User(ctx, names[i], password); err != nil {
			return err
		}
		if _, err := f.root.Logical().WriteWithContext(ctx, "auth/userpass/users/"+names[i], map[string]interface{}{"token_policies": "bench"}); err != nil {
			return err
		}
		token, err := f.server.Login(ctx, "userpass", names[i], password)
		users[i] = &benchUser{name: names[i], token: token}
		return err
	})
	return users, err
}

// scaleUserRole issues the scale users' tokens, each bound to its entity
// through an alias on the token store: no password hashing, three writes a
// user (entity, alias, token) where a userpass login costs a bcrypt each.
const scaleUserRole = "scale-user"

// createScaleUsers creates entities named names and a token of each (the
// bench policy), in parallel.
func (f *fixtures) createScaleUsers(ctx context.Context, names []string, progressEvery int) ([]*benchUser, error) {
	if _, err := f.root.Logical().WriteWithContext(ctx, "auth/token/roles/"+scaleUserRole, map[string]interface{}{
		"allowed_policies": "bench", "allowed_entity_aliases": "*", "orphan": true, "token_ttl": "12h",
	}); err != nil {
		return nil, err
	}
	auths, err := f.root.Sys().ListAuthWithContext(ctx)
	if err != nil {
		return nil, err
	}
	accessor := auths["token/"].Accessor
	users := make([]*benchUser, len(names))
	start := time.Now()
	err = parallel(16, len(names), func(i int) error {
		if i%progressEvery == 0 {
			progress("scale: %d of %d users (%.0f/s)", i, len(names), float64(i)/time.Since(start).Seconds())
		}
		entity, err := f.root.Logical().WriteWithContext(ctx, "identity/entity", map[string]interface{}{"name": names[i]})
		if err != nil {
			return err
		}
		if _, err := f.root.Logical().WriteWithContext(ctx, "identity/entity-alias", map[string]interface{}{
			"name": names[i], "canonical_id": entity.Data["id"], "mount_accessor": accessor,
		}); err != nil {
			return err
		}
		token, err := f.root.Logical().WriteWithContext(ctx, "auth/token/create/"+scaleUserRole, map[string]interface{}{"entity_alias": names[i]})
		if err != nil {
			return err
		}
		users[i] = &benchUser{name: names[i], token: token.Auth.ClientToken, entityID: fmt.Sprint(entity.Data["id"])}
		return nil
	})
	return users, err
}

// joinOrg makes the users members of the organization in one group write
// (adding them one by one rewrites the group once per user).
func (f *fixtures) joinOrg(ctx context.Context, users []*benchUser) error {
	return f.joinOrgNamed(ctx, org, users)
}

// joinOrgNamed makes the users the members of the named organization.
func (f *fixtures) joinOrgNamed(ctx context.Context, org string, users []*benchUser) error {
	ids := make([]string, len(users))
	err := parallel(8, len(users), func(i int) error {
		if users[i].entityID != "" {
			ids[i] = users[i].entityID
			return nil
		}
		id, err := f.boot.EntityID(ctx, users[i].name)
		ids[i] = id
		return err
	})
	if err != nil {
		return err
	}
	_, err = f.root.Logical().WriteWithContext(ctx, "identity/group/name/planqk-"+org+"-members", map[string]interface{}{"member_entity_ids": ids})
	return err
}

// equipUser gives the user n PATs and n Vault tokens, a provider token of
// their own, and a KV v2 secret at its steady-state version count.
func (f *fixtures) equipUser(ctx context.Context, u *benchUser, n int) error {
	client := f.as(u.token)
	for i := 0; i < n; i++ {
		created, err := client.Logical().WriteWithContext(ctx, fmt.Sprintf("%s/users/%s/tokens/v%d", mount, u.name, i), nil)
		if err != nil {
			return err
		}
		u.pats = append(u.pats, created.Data["token"].(string))
		vaultToken, err := client.Logical().WriteWithContext(ctx, "auth/token/create/"+tokenRole, nil)
		if err != nil {
			return err
		}
		u.vaultTokens = append(u.vaultTokens, vaultToken.Auth.ClientToken)
	}
	if _, err := client.Logical().WriteWithContext(ctx, fmt.Sprintf("%s/users/%s/provider-tokens/ionq", mount, u.name),
		map[string]interface{}{"api_key": userProviderKey}); err != nil {
		return err
	}
	// KV v2 keeps kvMaxVersions versions: from then on each write adds one
	// and drops the oldest, so the measured writes meet a constant state.
	for v := 0; v < kvMaxVersions; v++ {
		if _, err := client.Logical().WriteWithContext(ctx, kvPath(u.name), map[string]interface{}{"data": map[string]interface{}{"value": kvValue}}); err != nil {
			return err
		}
	}
	return nil
}

func kvPath(user string) string { return "kv/data/pats/" + user }

// garble replaces a PAT's last character, part of its checksum.
func garble(pat string) string {
	last := pat[len(pat)-1]
	replacement := "A"
	if last == 'A' {
		replacement = "B"
	}
	return pat[:len(pat)-1] + replacement
}

// setEngineConfig writes the engine's configuration fields.
func (f *fixtures) setEngineConfig(ctx context.Context, fields map[string]interface{}) error {
	_, err := f.root.Logical().WriteWithContext(ctx, mount+"/config", fields)
	return err
}

func (f *fixtures) as(token string) *api.Client {
	client, err := f.server.Client(token)
	if err != nil {
		panic(err)
	}
	return client
}

// listPath is an API path with query parameters, for LIST requests.
func listPath(path string, query url.Values) string {
	if len(query) == 0 {
		return path
	}
	return path + "?" + query.Encode()
}

// vaultErrors returns the error messages of a Vault error body, for the
// report (Vault and the engine never echo secrets in them).
func vaultErrors(body []byte) string {
	var parsed struct {
		Errors []string `json:"errors"`
	}
	if json.Unmarshal(body, &parsed) != nil || len(parsed.Errors) == 0 {
		return ""
	}
	msg := strings.Join(parsed.Errors, "; ")
	if len(msg) > 160 {
		msg = msg[:160] + "…"
	}
	return msg
}

func startRaft(ctx context.Context, vaultBin, dir string) (*vaultharness.Server, error) {
	port, err := vaultharness.FreePort()
	if err != nil {
		return nil, err
	}
	clusterPort, err := vaultharness.FreePort()
	if err != nil {
		return nil, err
	}
	config := vaultharness.NodeConfig(dir, port, clusterPort, vaultharness.RaftStorage(dir, "bench", nil))
	server, err := vaultharness.StartConfigured(ctx, vaultBin, dir, port, config)
	if err != nil {
		return nil, err
	}
	if _, _, err := server.Initialize(ctx); err != nil {
		server.Stop()
		return nil, err
	}
	single := &vaultharness.Cluster{Nodes: []*vaultharness.Server{server}}
	if _, err := single.WaitLeader(ctx, time.Minute); err != nil {
		server.Stop()
		return nil, err
	}
	return server, nil
}

// parallel runs do(0..n-1) on workers goroutines and returns the first error.
func parallel(workers, n int, do func(i int) error) error {
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		next     = make(chan int)
	)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := do(i); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	return firstErr
}

// pluginMemory reads the engine's plugin process's peak and current
// resident memory from /proc.
func pluginMemory(server *vaultharness.Server) map[string]string {
	pids, err := server.PluginPIDs()
	if err != nil || len(pids) == 0 {
		return nil
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pids[0]))
	if err != nil {
		return nil
	}
	memory := map[string]string{}
	for _, line := range strings.Split(string(status), "\n") {
		for _, key := range []string{"VmHWM", "VmRSS"} {
			if strings.HasPrefix(line, key+":") {
				memory[key] = strings.TrimSpace(strings.TrimPrefix(line, key+":"))
			}
		}
	}
	return memory
}
