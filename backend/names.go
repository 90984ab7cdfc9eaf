package backend

import (
	"fmt"
	"regexp"
	"unicode/utf8"

	"github.com/hashicorp/vault/sdk/framework"
)

const (
	// maxNameLength bounds user, token, role, organization and provider names.
	maxNameLength = 128
	// maxDescriptionLength bounds descriptions, which sit in per-user indexes.
	maxDescriptionLength = 256
)

func mustCompileAnchored(pattern string) *regexp.Regexp {
	return regexp.MustCompile("^" + pattern + "$")
}

// checkName returns a message naming field when value is too long for it;
// the path patterns already restrict the characters.
func checkName(field, value string) string {
	if len(value) > maxNameLength {
		return fmt.Sprintf("%s must be at most %d characters", field, maxNameLength)
	}
	return ""
}

// checkDescription returns a message when a description is too long or not UTF-8.
func checkDescription(description string) string {
	switch {
	case !utf8.ValidString(description):
		return "description must be valid UTF-8"
	case utf8.RuneCountInString(description) > maxDescriptionLength:
		return fmt.Sprintf("description must be at most %d characters", maxDescriptionLength)
	}
	return ""
}

// validOrgName accepts the organization names that path segments accept.
func validOrgName(org string) bool {
	return org != "" && len(org) <= maxNameLength && genericNameRegex.MatchString(org)
}

var genericNameRegex = mustCompileAnchored(framework.GenericNameRegex("name"))
