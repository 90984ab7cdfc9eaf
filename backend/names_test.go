package backend

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestNames_rules(t *testing.T) {
	cases := []struct {
		name      string
		user, org bool
	}{
		{"alice", true, true},
		{"a", true, true},
		{"acme-labs.eu", true, true},
		{"team_42", true, true},
		{"alice@example.com", true, false},
		{"Alice.Smith@uni-stuttgart.de", true, false},
		{strings.Repeat("x", MaxNameLength), true, true},
		{strings.Repeat("x", MaxNameLength+1), false, false},
		{"", false, false},
		{"a..b", false, false},
		{"acme+", false, false},
		{"+", false, false},
		{"acme*", false, false},
		{"*", false, false},
		{"-acme", false, false},
		{"acme.", false, false},
		{".acme", false, false},
		{"@alice", false, false},
		{"alice+tag@example.com", false, false},
		{"a b", false, false},
		{"a/b", false, false},
		{"ac\"me", false, false},
		{"acme\"\n}\npath \"sys/*\" {", false, false},
		{"acme{{identity.entity.name}}", false, false},
		{"äcme", false, false},
		{"acme%2f", false, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			require.Equal(t, c.user, CheckUserName(c.name) == nil, "user name")
			require.Equal(t, c.org, CheckName(c.name) == nil, "token or role name")
			require.Equal(t, c.org && strings.ToLower(c.name) == c.name, CheckOrgName(c.name) == nil, "organization name")
		})
	}
	// Vault compares group names without regard to case: an organization
	// has one spelling.
	require.NoError(t, CheckOrgName("acme"))
	for _, name := range []string{"ACME", "Acme", "acmE", "team_42X"} {
		require.Error(t, CheckOrgName(name), name)
		require.NoError(t, CheckName(name), name)
	}
}

func TestNames_messagesNameTheFieldNotTheValue(t *testing.T) {
	msg := checkNames(userName("alice"), resourceName("name", "plqk_secret..value"))
	require.Contains(t, msg, "name is not a valid name")
	require.NotContains(t, msg, "plqk_secret")
	require.Empty(t, checkNames(userName("alice@example.com"), orgName("acme")))
}
