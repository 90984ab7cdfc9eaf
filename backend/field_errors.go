package backend

import (
	"fmt"
	"strings"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// conversionFailurePrefix starts the framework's message for a field whose
// value cannot be converted to the field's type; the message goes on to
// repeat the value.
const conversionFailurePrefix = `Field validation failed: error converting input for field "`

// withoutEchoedValues replaces the framework's message for a field whose
// value has the wrong type with one that names the field without repeating
// the value: for verify's token the framework's message would echo the
// secret back in an error string.
func (b *backend) withoutEchoedValues(req *logical.Request, resp *logical.Response) *logical.Response {
	if resp == nil || !resp.IsError() {
		return resp
	}
	msg := resp.Error().Error()
	if !strings.HasPrefix(msg, conversionFailurePrefix) {
		return resp
	}
	field, _, _ := strings.Cut(strings.TrimPrefix(msg, conversionFailurePrefix), `"`)
	return logical.ErrorResponse(fmt.Sprintf("field %q must be %s", field, b.expectedInput(req.Path, field)))
}

// expectedInput describes what the field of the path takes.
func (b *backend) expectedInput(path, field string) string {
	var schema *framework.FieldSchema
	if p := b.Route(path); p != nil {
		schema = p.Fields[field]
	}
	if schema == nil {
		return "of another type"
	}
	switch schema.Type {
	case framework.TypeDurationSecond:
		return "a duration such as 90s, 15m or 24h, or a number of seconds"
	case framework.TypeBool:
		return "a boolean"
	case framework.TypeCommaStringSlice:
		return "a list of strings or a comma-separated string"
	case framework.TypeString:
		return "a string"
	}
	return "a " + schema.Type.String()
}
