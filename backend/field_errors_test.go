package backend

import (
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"
)

// A value of the wrong type is refused naming the field and what it takes,
// never repeating the value: for verify's token that would be the secret.
func TestFieldErrors_nameTheFieldWithoutTheValue(t *testing.T) {
	env := newTestEnv(t)
	const secret = "plqk_ThisIsTheSecretThatMustNotBeEchoed0"
	cases := []struct {
		path, field string
		value       interface{}
		want        string
	}{
		{"verify", "token", []interface{}{secret}, `field "token" must be a string`},
		{"verify", "token", map[string]interface{}{"t": secret}, `field "token" must be a string`},
		{"users/a/tokens/x", "ttl", secret, `field "ttl" must be a duration`},
		{"users/a/tokens/x", "description", []interface{}{secret}, `field "description" must be a string`},
		{"tidy", "repair", secret, `field "repair" must be a boolean`},
		{"providers/rigetti", "required_fields", map[string]interface{}{"a": secret}, `field "required_fields" must be a list of strings`},
	}
	for _, c := range cases {
		msg := env.userError(logical.UpdateOperation, c.path, "", map[string]interface{}{c.field: c.value})
		require.Contains(t, msg, c.want)
		require.False(t, strings.Contains(msg, secret), "%s: the error repeats the value: %s", c.path, msg)
	}
}
