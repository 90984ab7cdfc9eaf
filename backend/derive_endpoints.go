package backend

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
)

// Where a provider token may send the engine. A token's own sts_endpoint or
// iam_endpoint is written by an organization's owners (or a user), not by
// an operator: left open, it would let them make Vault's host send signed
// requests - and, for IBM, a management key - to any internal or loopback
// service. So a token's endpoint must be one of the provider's own (https,
// on AWS's STS or IBM Cloud's IAM domains), or one the operator listed in
// config allowed_endpoints (a sovereign cloud, a private endpoint, a test
// stand-in on loopback). The endpoints in config itself are the operator's.

var (
	// awsSTSHostRegex: sts.amazonaws.com, sts.<region>.amazonaws.com,
	// sts-fips.<region>.amazonaws.com, and the China partition's .com.cn.
	awsSTSHostRegex = regexp.MustCompile(`^sts(-fips)?(\.[a-z0-9-]+)?\.amazonaws\.com(\.cn)?$`)
	// ibmIAMHostRegex: iam.cloud.ibm.com, private.iam.cloud.ibm.com,
	// private.<region>.iam.cloud.ibm.com, iam.test.cloud.ibm.com.
	ibmIAMHostRegex = regexp.MustCompile(`^([a-z0-9-]+\.)*iam\.(test\.)?cloud\.ibm\.com$`)
)

// tokenEndpointFields are the derivation fields that name an endpoint,
// with the provider hosts each admits without the operator's list.
var tokenEndpointFields = map[string]*regexp.Regexp{
	"sts_endpoint": awsSTSHostRegex,
	"iam_endpoint": ibmIAMHostRegex,
}

// normalizedEndpoint is an endpoint as compared with the list: without a
// trailing slash.
func normalizedEndpoint(raw string) string { return strings.TrimSuffix(strings.TrimSpace(raw), "/") }

// tokenEndpointAllowed says why a token's endpoint field may not be used
// ("" when it may): a provider's own https endpoint, or one in the
// operator's allowed_endpoints. Messages name the field, not the value.
func (c *configEntry) tokenEndpointAllowed(field, raw string) string {
	if raw == "" {
		return ""
	}
	if slices.Contains(c.AllowedEndpoints, normalizedEndpoint(raw)) {
		return ""
	}
	u, err := url.Parse(raw)
	if err == nil && u.Scheme == "https" && u.User == nil && u.RawQuery == "" && u.Fragment == "" && u.Port() == "" &&
		tokenEndpointFields[field] != nil && tokenEndpointFields[field].MatchString(u.Hostname()) {
		return ""
	}
	return fmt.Sprintf("%s must be the provider's own https endpoint, or one the operator lists in config allowed_endpoints", field)
}

// checkDerivationEndpoints applies tokenEndpointAllowed to a derivation's
// endpoint fields.
func (c *configEntry) checkDerivationEndpoints(d *derivationEntry) string {
	if d == nil {
		return ""
	}
	for field := range tokenEndpointFields {
		if msg := c.tokenEndpointAllowed(field, d.Values[field]); msg != "" {
			return msg
		}
	}
	return ""
}
