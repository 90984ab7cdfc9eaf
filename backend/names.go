package backend

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/hashicorp/vault/sdk/framework"
)

// Name rules. Every name the engine takes from a path or a body, and every
// name the bootstrap tool renders into an ACL policy or a group name, must
// pass them: they admit no character that means something to HCL, to ACL
// path matching ('+', '*', '"', '{', '}', '/') or to Vault's storage ('..').
const (
	// MaxNameLength bounds user, token, role and organization names.
	MaxNameLength = 128
	// maxDescriptionBytes bounds descriptions, which sit in per-user indexes
	// of up to maxTokensPerUser entries: bytes, not characters, so that an
	// index stays far below the storage backends' entry limits (1 MiB for
	// raft) whatever the script.
	maxDescriptionBytes = 256
)

var (
	// nameRegex is framework.GenericNameRegex's alphabet.
	nameRegex = regexp.MustCompile(`^\w(?:[\w.-]*\w)?$`)
	// userNameRegex adds '@' so that e-mail addresses, the usual entity
	// names of OIDC users, can be user names.
	userNameRegex = regexp.MustCompile(`^\w(?:[\w.@-]*\w)?$`)

	errNameRules     = errors.New("use 1-128 letters, digits, '_', '-' and '.', starting and ending with a letter, digit or '_', without '..'")
	errOrgNameRules  = errors.New("use 1-128 lower-case letters, digits, '_', '-' and '.', starting and ending with a letter, digit or '_', without '..': Vault compares group and policy names without regard to case, so an organization has one spelling, in lower case")
	errUserNameRules = errors.New("use 1-128 letters, digits, '_', '-', '.' and '@', starting and ending with a letter, digit or '_', without '..'")
)

// userNameField is the user segment of users/<user>/... paths.
func userNameField() *framework.FieldSchema {
	return &framework.FieldSchema{
		Type:        framework.TypeString,
		Description: "Name of the user: the Vault identity entity's current name.",
		Required:    true,
	}
}

// leaseRoleField is the role segment of the paths that issue leased PATs.
func leaseRoleField() *framework.FieldSchema {
	return &framework.FieldSchema{
		Type:        framework.TypeString,
		Description: "Name of the role that sets the lease.",
		Required:    true,
	}
}

// pathSegment captures one path segment for a handler to validate, so that
// a name breaking the rules gets a 400 naming the rule rather than the
// framework's "unsupported path".
func pathSegment(field string) string {
	return `(?P<` + field + `>[^/]+)`
}

// CheckUserName returns nil if name may be a user's (an identity entity's)
// name in the engine's paths.
func CheckUserName(name string) error {
	return checkAgainst(name, userNameRegex, errUserNameRules)
}

// CheckName returns nil if name may name a token or a role (the bootstrap
// holds mount names to it too). Organizations have CheckOrgName.
func CheckName(name string) error {
	return checkAgainst(name, nameRegex, errNameRules)
}

// CheckOrgName returns nil if name may name an organization: CheckName's
// rules in lower case only. Vault's identity store and ACL policy names
// compare names without regard to case (group "planqk-ACME-owners" is
// group "planqk-acme-owners"), while ACL paths and storage keys do not, so
// "ACME" and "acme" would be one organization to Vault and two to the
// engine; with one spelling they are one everywhere.
func CheckOrgName(name string) error {
	if strings.ToLower(name) != name {
		return errOrgNameRules
	}
	if err := checkAgainst(name, nameRegex, errNameRules); err != nil {
		return errOrgNameRules
	}
	return nil
}

func checkAgainst(name string, rules *regexp.Regexp, errRules error) error {
	if len(name) > MaxNameLength || strings.Contains(name, "..") || !rules.MatchString(name) {
		return errRules
	}
	return nil
}

// checkNames returns a message naming the first field whose value breaks
// its rule, or "". The value itself is never repeated: a caller who pasted
// a secret into a path must not see it echoed into logs.
func checkNames(fields ...namedValue) string {
	for _, f := range fields {
		if err := f.check(f.value); err != nil {
			return fmt.Sprintf("%s is not a valid name: %v", f.field, err)
		}
	}
	return ""
}

type namedValue struct {
	field string
	value string
	check func(string) error
}

func userName(v string) namedValue { return namedValue{"user", v, CheckUserName} }
func orgName(v string) namedValue  { return namedValue{"org", v, CheckOrgName} }
func resourceName(field, v string) namedValue {
	return namedValue{field, v, CheckName}
}

// checkDescription returns a message when a description is too long or not UTF-8.
func checkDescription(description string) string {
	switch {
	case !utf8.ValidString(description):
		return "description must be valid UTF-8"
	case len(description) > maxDescriptionBytes:
		return fmt.Sprintf("description must be at most %d bytes of UTF-8", maxDescriptionBytes)
	}
	return ""
}
