//go:build tools

package e2e

// The typed-client test (typed_client_test.go) builds a client that
// oapi-codegen generates from Vault's live OpenAPI document, and that
// client imports oapi-codegen's runtime. This import, never compiled,
// keeps the runtime in go.mod, so that `go mod download` puts it in the
// module cache and the test builds offline. The generator itself is a
// `tool` of go.mod.
import _ "github.com/oapi-codegen/runtime"
