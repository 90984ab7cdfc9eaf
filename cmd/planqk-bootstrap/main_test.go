package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/planqk/vault-plugin-secrets-planqk/bootstrap"
)

func TestRun_printsPolicies(t *testing.T) {
	b := &bootstrap.Bootstrapper{Mount: "quantum", AuthMount: "userpass"}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"policy", "planqk-auditor"}, `path "quantum/inventory/*"`},
		{[]string{"policy", "planqk-user"}, `path "quantum/users/{{identity.entity.name}}" {`},
		{[]string{"policy", "org-owner", "acme"}, `path "quantum/orgs/acme/provider-tokens/*"`},
	} {
		var stdout bytes.Buffer
		if err := run(context.Background(), b, c.args, strings.NewReader(""), &stdout, &bytes.Buffer{}); err != nil {
			t.Fatalf("%q: %v", c.args, err)
		}
		if !strings.Contains(stdout.String(), c.want) {
			t.Errorf("%q printed no %s:\n%s", c.args, c.want, stdout.String())
		}
	}
}

func TestRun_refuses(t *testing.T) {
	b := &bootstrap.Bootstrapper{Mount: "quantum", AuthMount: "userpass"}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"policy", "org-owner", "*"}, "platform admin role"},
		{[]string{"policy", "org-owner", "acme+"}, "invalid organization name"},
		{[]string{"policy", "planqk-user", "acme"}, "takes no organization"},
		{[]string{"org", "*"}, "platform admin role"},
		{[]string{"org", `acme"`}, "invalid organization name"},
		{[]string{"member", "add", "*", "mia", "member"}, "platform admin role"},
		{[]string{"member", "add", "acme", "mia", "admin"}, "platform-wide"},
		{[]string{"member", "remove", "acme", "mia*"}, "invalid user name"},
		{[]string{"frobnicate"}, errUsage.Error()},
		{[]string{}, errUsage.Error()},
	} {
		var stdout bytes.Buffer
		err := run(context.Background(), b, c.args, strings.NewReader(""), &stdout, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: err = %v, want %q", c.args, err, c.want)
		}
		if stdout.Len() > 0 {
			t.Errorf("%q printed %q", c.args, stdout.String())
		}
	}
	if err := run(context.Background(), b, []string{"init", "extra"}, nil, nil, nil); !errors.Is(err, errUsage) {
		t.Errorf("init with an argument: %v", err)
	}
}
