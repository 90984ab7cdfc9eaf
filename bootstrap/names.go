package bootstrap

import (
	"errors"
	"fmt"
	"strings"

	"github.com/planqk/vault-plugin-secrets-planqk/backend"
)

// The bootstrap renders organization and mount names into ACL policies and
// writes user, organization and mount names into API paths, group names and
// group metadata. A quote or a newline there would let a name write its own
// HCL (a policy granting sudo on sys/*), a '+' or '*' would become an ACL
// wildcard, a '/' or '..' would reach another path. So every name passes the
// engine's own rules, in the backend package, before anything is rendered
// or sent to Vault. Errors never repeat the value: it may hold control
// characters, or be a secret pasted into the wrong place.

// checkUser returns an error unless user may be a user's (an identity
// entity's) name for the engine.
func checkUser(user string) error {
	if err := backend.CheckUserName(user); err != nil {
		return fmt.Errorf("invalid user name: %w", err)
	}
	return nil
}

// CheckLoginName returns an error unless name may be a user's name with a
// userpass login, as User creates. Vault's userpass method takes the
// engine's user names except those with '@' (its paths use
// framework.GenericNameRegex): users named by e-mail address log in through
// another method, such as OIDC, whose entities the membership steps take.
func CheckLoginName(name string) error {
	if err := checkUser(name); err != nil {
		return err
	}
	if strings.ToLower(name) != name {
		// Vault's userpass keeps user names in lower case: "Mia" would
		// log in, and be written, as the existing "mia".
		return errors.New("invalid user name for a userpass login: use lower case; Vault's userpass method " +
			"compares user names without regard to case, so \"Mia\" would be the existing \"mia\"")
	}
	if strings.Contains(name, "@") {
		return errors.New("invalid user name for a userpass login: Vault's userpass method takes no '@'; " +
			"a user named by e-mail address logs in through another auth method (OIDC), " +
			"and member add/remove take their entities")
	}
	return nil
}

// checkOrg returns an error unless org may be an organization's name. The
// platform admins' pseudo-organization "*" is refused: it names no
// organization, only the admin role (see checkMemberOrg).
func checkOrg(org string) error {
	if org == adminOrg {
		return fmt.Errorf("%q is not an organization: it only holds the platform admin role (member add '*' <user> admin)", adminOrg)
	}
	if err := backend.CheckOrgName(org); err != nil {
		return fmt.Errorf("invalid organization name: %w", err)
	}
	return nil
}

// checkMemberOrg is checkOrg for membership changes, which also take the
// platform admins' "*".
func checkMemberOrg(org string) error {
	if org == adminOrg {
		return nil
	}
	return checkOrg(org)
}

// checkMount returns an error unless mount may be the engine's or the
// userpass mount path. It is rendered into ACL paths and written into API
// paths, so it must be one plain path segment; the engine's name alphabet
// (framework.GenericNameRegex's, without "..") is that, so organization
// names' rule serves for mounts too.
func checkMount(field, mount string) error {
	if err := backend.CheckName(mount); err != nil {
		return fmt.Errorf("invalid %s: it must be one path segment: %w", field, err)
	}
	return nil
}

// The mount fields, as error messages name them.
const (
	mountField     = "engine mount path"
	authMountField = "userpass mount path"
)

// checkMounts checks both mount paths of the bootstrapper.
func (b *Bootstrapper) checkMounts() error {
	if err := checkMount(mountField, b.Mount); err != nil {
		return err
	}
	return checkMount(authMountField, b.AuthMount)
}
