// Command planqk-bootstrap maps PlanQK users, organizations and roles onto a
// Vault server: policies, identity entities and groups. It talks to the
// Vault at VAULT_ADDR with VAULT_TOKEN, like the vault CLI, and every
// command can be run again without changing anything.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/hashicorp/vault/api"

	"github.com/planqk/vault-plugin-secrets-planqk/bootstrap"
)

const usage = `usage: planqk-bootstrap [-mount planqk] [-auth-mount userpass] <command> [args]

commands:
  init                          write the planqk-admin, planqk-user, planqk-verifier,
                                planqk-auditor, planqk-scanner and planqk-broker
                                policies, enable userpass, create the planqk-admins
                                group, pass X-Auth-Token and X-OrganizationId through
  org <org>                     write the organization's policies and its owners,
                                maintainers and members groups (lower-case name), and
                                register its stable id (planqk_org_id, made the first
                                time) with the engine
  user [-password-file PATH] [-reset-password | -existing-entity] <name>
                                create the user: entity, userpass login (policy
                                planqk-user) and alias; prints the entity id. The
                                password is read from PATH, else from standard input
                                (one line; prompted for without echo on a terminal).
                                An existing login is never changed: give an empty
                                password to keep it, or -reset-password to replace
                                its password. An existing entity without a login
                                (a departed user's, an OIDC user's) is never given
                                one unless -existing-entity is given, and a login
                                name whose alias is bound to another entity is
                                refused. Names are lower case (Vault compares
                                user names without regard to case); userpass takes
                                no '@' in a name.
  member add <org> <user> <role>
                                give the user role owner, maintainer or member in org
                                (replacing another role there); "member add '*' <user> admin"
                                makes a platform admin
  member remove <org> <user>    take the user's roles in org away ('*': the admin role)
  policy <name> [org]           print a rendered policy (planqk-admin, planqk-user,
                                planqk-verifier, planqk-auditor, planqk-scanner,
                                planqk-broker; org-owner,
                                org-maintainer, org-member with an org)
`

// errUsage asks main to print the usage and exit with status 2.
var errUsage = errors.New("usage")

// steps is what the commands do to Vault: bootstrap.Bootstrapper.
type steps interface {
	Init(ctx context.Context) error
	Org(ctx context.Context, org string) error
	User(ctx context.Context, name, password string) (string, error)
	ResetPassword(ctx context.Context, name, password string) (string, error)
	AdoptEntity(ctx context.Context, name, password string) (string, error)
	SetMember(ctx context.Context, org, user, role string) error
	RemoveMember(ctx context.Context, org, user string) error
	Policy(file, org string) (string, error)
}

func main() {
	flags := flag.NewFlagSet("planqk-bootstrap", flag.ExitOnError)
	flags.Usage = func() { fmt.Fprint(os.Stderr, usage) }
	mount := flags.String("mount", "planqk", "mount path of the PlanQK secrets engine")
	authMount := flags.String("auth-mount", "userpass", "mount path of the userpass auth method")
	_ = flags.Parse(os.Args[1:])

	client, err := api.NewClient(api.DefaultConfig())
	if err != nil {
		fail(err)
	}
	b := &bootstrap.Bootstrapper{Client: client, Mount: *mount, AuthMount: *authMount}
	err = run(context.Background(), b, flags.Args(), os.Stdin, os.Stdout, os.Stderr)
	if errors.Is(err, errUsage) {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	if err != nil {
		fail(err)
	}
}

// run carries out the command in args. stdin is where user reads the
// password from; prompts go to stderr.
func run(ctx context.Context, b steps, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	arg := func(i int) string {
		if i < len(args) {
			return args[i]
		}
		return ""
	}
	switch {
	case arg(0) == "init" && len(args) == 1:
		return b.Init(ctx)
	case arg(0) == "org" && len(args) == 2:
		return b.Org(ctx, arg(1))
	case arg(0) == "user":
		return runUser(ctx, b, args[1:], stdin, stdout, stderr)
	case arg(0) == "member" && arg(1) == "add" && len(args) == 5:
		return b.SetMember(ctx, arg(2), arg(3), arg(4))
	case arg(0) == "member" && arg(1) == "remove" && len(args) == 4:
		return b.RemoveMember(ctx, arg(2), arg(3))
	case arg(0) == "policy" && (len(args) == 2 || len(args) == 3):
		policy, err := b.Policy(arg(1), arg(2))
		if err == nil {
			fmt.Fprint(stdout, policy)
		}
		return err
	}
	return errUsage
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "planqk-bootstrap:", err)
	os.Exit(1)
}
