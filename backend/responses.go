package backend

import (
	"encoding/json"
	"net/http"

	"github.com/hashicorp/vault/sdk/logical"
)

// respondError answers with status and Vault's usual error body. Vault's
// HTTP layer maps a plugin's errors to 400 or 500, and a 403 only for a bare
// logical.ErrPermissionDenied, which would hide the reason from the caller.
func respondError(status int, msg string) *logical.Response {
	body, err := json.Marshal(map[string][]string{"errors": {msg}})
	if err != nil {
		// Marshalling a map of strings cannot fail.
		panic(err)
	}
	return &logical.Response{Data: map[string]interface{}{
		logical.HTTPContentType: "application/json",
		logical.HTTPStatusCode:  status,
		logical.HTTPRawBody:     body,
	}}
}

func forbidden(msg string) *logical.Response { return respondError(http.StatusForbidden, msg) }
func notFound(msg string) *logical.Response  { return respondError(http.StatusNotFound, msg) }
