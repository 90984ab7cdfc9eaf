package backend

import (
	"encoding/json"
	"net/http"

	"github.com/hashicorp/vault/sdk/framework"
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

// Response declarations. Vault publishes every operation's responses in the
// OpenAPI document it serves at sys/internal/specs/openapi, from which
// typed clients are generated. A declared 200's fields are the keys of the
// response's "data" (Vault wraps them in its envelope with request_id,
// lease_id, warnings...); TestResponses_* hold every handler to them.
//
// Only the success status of an operation declares fields: the framework
// names every status's schema after the operation alone, so fields on a
// second status would overwrite the first's. Other statuses are declared
// with a description of their body.

// fieldSet is the fields of a response's data.
type fieldSet map[string]*framework.FieldSchema

// with returns a new set holding the fields of s and of others.
func (s fieldSet) with(others ...fieldSet) fieldSet {
	merged := make(fieldSet, len(s))
	for _, set := range append([]fieldSet{s}, others...) {
		for name, field := range set {
			merged[name] = field
		}
	}
	return merged
}

// responses is an operation's declared responses by HTTP status.
type responses map[int][]framework.Response

// okResponse declares a 200 whose data holds fields.
func okResponse(description string, fields fieldSet) responses {
	return responses{http.StatusOK: {{Description: description, Fields: fields}}}
}

// noContentResponse declares a 204: the operation answers no body.
func noContentResponse(description string) responses {
	return responses{http.StatusNoContent: {{Description: description}}}
}

// or declares another status the operation may answer with.
func (r responses) or(status int, description string) responses {
	r[status] = []framework.Response{{Description: description}}
	return r
}

// Descriptions of the refusals the engine answers with their own status
// (respondError) and of Vault's own 404 for a read that finds nothing.
const (
	forbiddenDescription = `The engine's own check refused the caller: an entity that is not the user or a platform admin, lacks the role in the organization, or is disabled. Body: {"errors": ["<reason>"]}.`
	emptyListDescription = "Nothing to list: Vault answers a list without keys with 404."
)
