package bootstrap

import (
	"bytes"
	"context"
	"embed"
	"fmt"
	"slices"
	"strings"
	"text/template"
)

//go:embed policies/*.hcl
var policyFiles embed.FS

// The policies in policies/: platform-wide ones, written by Init under their
// own names, and per-organization ones, written by Org for each
// organization.
var (
	platformPolicies = []string{"planqk-admin", "planqk-user", "planqk-verifier", "planqk-auditor", "planqk-scanner", "planqk-broker"}
	orgPolicies      = []string{"org-owner", "org-maintainer", "org-member"}
)

// Policy renders the named policy file for the mount and, for the org-*
// policies, the organization; the platform policies take no organization.
//
// Policy is the only way to render a policy and it checks the names itself,
// whoever calls it: a name is copied into HCL as it is, where a quote, a
// newline or an ACL wildcard would change what the policy grants.
func (b *Bootstrapper) Policy(file, org string) (string, error) {
	if err := checkMount(mountField, b.Mount); err != nil {
		return "", err
	}
	values := map[string]string{"Mount": b.Mount}
	switch {
	case slices.Contains(platformPolicies, file):
		if org != "" {
			return "", fmt.Errorf("policy %s is platform-wide: it takes no organization", file)
		}
	case slices.Contains(orgPolicies, file):
		if org == "" {
			return "", fmt.Errorf("policy %s needs an organization", file)
		}
		if err := checkOrg(org); err != nil {
			return "", err
		}
		values["Org"] = org
	default:
		return "", fmt.Errorf("unknown policy %q: use one of %s", file,
			strings.Join(slices.Concat(platformPolicies, orgPolicies), ", "))
	}

	raw, err := policyFiles.ReadFile("policies/" + file + ".hcl")
	if err != nil {
		return "", err
	}
	// missingkey=error: a platform policy that mentions [[.Org]] fails
	// rather than rendering an empty organization.
	tmpl, err := template.New(file).Delims("[[", "]]").Option("missingkey=error").Parse(string(raw))
	if err != nil {
		return "", err
	}
	var out bytes.Buffer
	if err := tmpl.Execute(&out, values); err != nil {
		return "", err
	}
	return out.String(), nil
}

func (b *Bootstrapper) putPolicy(ctx context.Context, name, file, org string) error {
	policy, err := b.Policy(file, org)
	if err != nil {
		return err
	}
	if err := b.Client.Sys().PutPolicyWithContext(ctx, name, policy); err != nil {
		return fmt.Errorf("writing policy %s: %w", name, err)
	}
	return nil
}
