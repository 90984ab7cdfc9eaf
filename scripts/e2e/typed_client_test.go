//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode"
)

// TestTypedClient generates a Go client from the OpenAPI document this
// Vault serves, with oapi-codegen (a tool of go.mod) configured by
// testdata/typedclient/oapi-codegen.yaml, and runs
// testdata/typedclient against the server through it: create, verify,
// introspect and resolve with the generated methods and response types.
// The program exits non-zero on any mismatch.
func TestTypedClient(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	dir := t.TempDir()

	document := fetchOpenAPIDocument(t, ctx)
	engine, err := engineDocument(document, mount)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "planqk-openapi.json"), engine)
	config, err := filepath.Abs(filepath.Join("testdata", "typedclient", "oapi-codegen.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// The generator at the version go.mod pins, run in the repository: the
	// README's command.
	goCommand(t, ctx, repoFile(t, ""), "tool", "oapi-codegen", "-config", config, "-package", "main",
		"-o", filepath.Join(dir, "client.gen.go"), filepath.Join(dir, "planqk-openapi.json"))
	generated := time.Now()

	// The program builds as a module of its own with the repository's
	// requirements, so the generated client's runtime comes at the version
	// go.mod pins, from the module cache.
	mod, err := os.ReadFile(repoFile(t, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	mod = regexp.MustCompile(`(?m)^module .*$`).ReplaceAll(mod, []byte("module typedclient"))
	writeFile(t, filepath.Join(dir, "go.mod"), mod)
	copyFile(t, repoFile(t, "go.sum"), filepath.Join(dir, "go.sum"))
	copyFile(t, filepath.Join("testdata", "typedclient", "main.go"), filepath.Join(dir, "main.go"))
	goCommand(t, ctx, dir, "build", "-o", "typedclient", ".")
	built := time.Now()

	orgSecret, ownSecret := "typed-org-"+randomHex(t), "typed-own-"+randomHex(t)
	s.remember(orgSecret, "the typed client's organization provider token")
	s.remember(ownSecret, "the typed client's own provider token")
	run := exec.CommandContext(ctx, filepath.Join(dir, "typedclient"))
	run.Env = append(os.Environ(),
		"VAULT_ADDR="+s.srv.Addr,
		"PLANQK_USER=nina", "PLANQK_ORG=globex", "PLANQK_PROVIDER=typed-client",
		"PLANQK_USER_TOKEN="+tokenOf("nina"),
		"PLANQK_VERIFIER_TOKEN="+tokenOf("verifier"),
		"PLANQK_OPERATOR_TOKEN="+tokenOf("operator"),
		"PLANQK_ORG_SECRET="+orgSecret,
		"PLANQK_OWN_SECRET="+ownSecret,
	)
	out, err := run.CombinedOutput()
	if err != nil {
		t.Fatalf("the typed client failed: %v\n%s", err, out)
	}
	t.Logf("%s(generated in %s, built in %s, ran in %s)", out,
		generated.Sub(start).Round(time.Millisecond), built.Sub(generated).Round(time.Millisecond), time.Since(built).Round(time.Millisecond))
}

// TestOpenAPIDeclaresEveryResponse reads the live document: every operation
// of the engine must answer a typed body or declare that it answers none.
func TestOpenAPIDeclaresEveryResponse(t *testing.T) {
	engine, err := engineDocument(fetchOpenAPIDocument(t, context.Background()), mount)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths      map[string]map[string]json.RawMessage `json:"paths"`
		Components struct {
			Schemas map[string]json.RawMessage `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(engine, &doc); err != nil {
		t.Fatal(err)
	}
	operations := 0
	for path, item := range doc.Paths {
		for method, raw := range item {
			if !isOperation(method) {
				continue
			}
			var op struct {
				OperationID string `json:"operationId"`
				Responses   map[string]struct {
					Content map[string]struct {
						Schema map[string]interface{} `json:"schema"`
					} `json:"content"`
				} `json:"responses"`
			}
			if err := json.Unmarshal(raw, &op); err != nil {
				t.Fatalf("%s %s: %v", method, path, err)
			}
			operations++
			if ok, found := op.Responses["200"]; found {
				ref, _ := ok.Content["application/json"].Schema["$ref"].(string)
				if doc.Components.Schemas[strings.TrimPrefix(ref, "#/components/schemas/")] == nil {
					t.Errorf("%s %s (%s): the 200 has no schema", method, path, op.OperationID)
				}
				continue
			}
			_, noContent := op.Responses["204"]
			_, accepted := op.Responses["202"]
			if !noContent && !accepted {
				t.Errorf("%s %s (%s): neither a typed 200 nor a declared empty answer", method, path, op.OperationID)
			}
		}
	}
	if operations < 30 {
		t.Fatalf("only %d operations under /%s/: the check proves little", operations, mount)
	}
}

// fetchOpenAPIDocument returns the OpenAPI document Vault serves, as root.
func fetchOpenAPIDocument(t *testing.T, ctx context.Context) []byte {
	t.Helper()
	root := s.srv.Root()
	resp, err := root.RawRequestWithContext(ctx, root.NewRequest("GET", "/v1/sys/internal/specs/openapi"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// engineDocument returns the part of Vault's OpenAPI document that covers
// the engine mounted at mount, with the one repair Vault's document needs.
// Vault builds its document from each plugin's through mapstructure, which
// drops every "$ref" of an external plugin (hashicorp/vault#30714): a
// request or response schema arrives as {} while the schema it referred to
// is still among the components, under the name the framework gives it,
// <Operation>Request or <Operation>Response. The repair points each empty
// schema back at that component; nothing else is touched.
func engineDocument(document []byte, mount string) ([]byte, error) {
	var doc map[string]interface{}
	if err := json.Unmarshal(document, &doc); err != nil {
		return nil, fmt.Errorf("decoding the OpenAPI document: %w", err)
	}
	paths, _ := doc["paths"].(map[string]interface{})
	components, _ := doc["components"].(map[string]interface{})
	schemas, _ := components["schemas"].(map[string]interface{})
	engine := make(map[string]interface{})
	for path, item := range paths {
		if !strings.HasPrefix(path, "/"+mount+"/") {
			continue
		}
		engine[path] = item
		operations, _ := item.(map[string]interface{})
		for method, raw := range operations {
			op, _ := raw.(map[string]interface{})
			if !isOperation(method) || op == nil {
				continue
			}
			base := titleCase(fmt.Sprint(op["operationId"]))
			if body, ok := op["requestBody"].(map[string]interface{}); ok {
				restoreRef(body, schemas, base+"Request")
			}
			responses, _ := op["responses"].(map[string]interface{})
			for _, response := range responses {
				if r, ok := response.(map[string]interface{}); ok {
					restoreRef(r, schemas, base+"Response")
				}
			}
		}
	}
	if len(engine) == 0 {
		return nil, fmt.Errorf("the OpenAPI document has no path under /%s/", mount)
	}
	doc["paths"] = engine
	return json.MarshalIndent(doc, "", "  ")
}

// restoreRef points an empty JSON schema of a request body or response at
// the component of that name, if there is one.
func restoreRef(holder map[string]interface{}, schemas map[string]interface{}, name string) {
	content, _ := holder["content"].(map[string]interface{})
	media, _ := content["application/json"].(map[string]interface{})
	schema, isObject := media["schema"].(map[string]interface{})
	if media == nil || !isObject || len(schema) != 0 || schemas[name] == nil {
		return
	}
	media["schema"] = map[string]interface{}{"$ref": "#/components/schemas/" + name}
}

// titleCase is the framework's name for an operation's schemas: each
// hyphen-separated word of the operation id with its first letter upper.
func titleCase(operationID string) string {
	var b strings.Builder
	for _, word := range strings.Split(operationID, "-") {
		runes := []rune(word)
		if len(runes) > 0 {
			runes[0] = unicode.ToUpper(runes[0])
		}
		b.WriteString(string(runes))
	}
	return b.String()
}

func isOperation(method string) bool {
	switch method {
	case "get", "post", "put", "patch", "delete":
		return true
	}
	return false
}

// repoFile returns the path of a file at the repository's root.
func repoFile(t *testing.T, name string) string {
	t.Helper()
	path, err := filepath.Abs(filepath.Join("..", "..", name))
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// goCommand runs the go command in dir, offline-safe: it uses the module
// cache and the build cache, and never a workspace.
func goCommand(t *testing.T, ctx context.Context, dir string, args ...string) {
	t.Helper()
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off")
	var output bytes.Buffer
	cmd.Stdout, cmd.Stderr = &output, &output
	if err := cmd.Run(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, output.String())
	}
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, to, data)
}

// randomHex returns 16 random hex digits, for secrets no other test uses.
func randomHex(t *testing.T) string {
	t.Helper()
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
