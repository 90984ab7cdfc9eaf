package backend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	ststypes "github.com/aws/aws-sdk-go-v2/service/sts/types"
	"github.com/aws/smithy-go"
	"github.com/hashicorp/go-secure-stdlib/parseutil"
	"github.com/hashicorp/vault/sdk/logical"
)

// AWS Braket through STS AssumeRole: the token stores base credentials
// allowed to assume one role (sts:AssumeRole and sts:TagSession on it); each
// job gets the role's temporary credentials, narrowed by a session policy to
// Braket and its results bucket, tagged with the organization, the member's
// entity id and the job id. botocore's EnvProvider reads the session token
// from AWS_SESSION_TOKEN, which the aws-braket provider's session_token
// field feeds.
const (
	derivationAWSAssumeRole      = "aws_assume_role"
	derivationAWSFederationToken = "aws_federation_token"

	// awsMinSessionTTL is STS's minimum DurationSeconds; awsMaxRoleTTL the
	// longest a role's MaxSessionDuration may be.
	awsMinSessionTTL     = 900 * time.Second
	awsDefaultSessionTTL = time.Hour
	awsMaxRoleTTL        = 12 * time.Hour
	// A federation token of an IAM user's key lives up to 36 h; 12 h
	// unless the token says otherwise.
	awsMaxFederationTTL        = 36 * time.Hour
	awsDefaultFederationMaxTTL = 12 * time.Hour
	// awsDefaultRegion signs requests to STS's global endpoint.
	awsDefaultRegion = "us-east-1"
	// awsDefaultResultsBucket matches the buckets the Braket SDK creates
	// for results: amazon-braket-<region>-<account> (AwsSession.default_bucket).
	awsDefaultResultsBucket = "amazon-braket-*"
	// awsMaxSessionPolicy is STS's limit on an inline session policy's
	// plain text.
	awsMaxSessionPolicy = 2048
	// awsSTSTimeout bounds one AssumeRole, retries included.
	awsSTSTimeout = 15 * time.Second

	awsTagOrg      = "planqk:org"
	awsTagOrgID    = "planqk:org-id"
	awsTagEntityID = "planqk:entity-id"
	awsTagMember   = "planqk:member"
	awsTagJobID    = "planqk:job-id"
)

var awsAssumeRoleMethod = &derivationMethod{
	Name:        derivationAWSAssumeRole,
	Description: "STS AssumeRole per job: base credentials allowed sts:AssumeRole and sts:TagSession on role_arn; jobs get the role's temporary credentials, narrowed to Braket and its results bucket.",
	Fields: []providerField{
		{Name: "role_arn", Required: true},
		{Name: "external_id"},
		{Name: "base_access_key_id", Required: true, Secret: true},
		{Name: "base_secret_access_key", Required: true, Secret: true},
		{Name: "role_max_ttl"},
		{Name: "results_bucket"},
		{Name: "session_policy"},
		{Name: "sts_endpoint"},
	},
}

var awsFederationTokenMethod = &derivationMethod{
	Name:        derivationAWSFederationToken,
	Description: "STS GetFederationToken per job: an IAM user's key (allowed sts:GetFederationToken and sts:TagSession, and Braket); jobs get a federated user's temporary credentials, narrowed by the session policy to Braket and its results bucket.",
	Fields: []providerField{
		{Name: "base_access_key_id", Required: true, Secret: true},
		{Name: "base_secret_access_key", Required: true, Secret: true},
		{Name: "max_session_ttl"},
		{Name: "results_bucket"},
		{Name: "session_policy"},
		{Name: "sts_endpoint"},
	},
}

var (
	awsRoleARNRegex    = regexp.MustCompile(`^arn:aws[a-z-]*:iam::[0-9]{12}:role/[\w+=,.@/-]{1,512}$`)
	awsExternalIDRegex = regexp.MustCompile(`^[\w+=,.@:/-]+$`)
	awsAccessKeyRegex  = regexp.MustCompile(`^[A-Z0-9]{16,128}$`)
	awsBucketRegex     = regexp.MustCompile(`^[a-z0-9*][a-z0-9.*-]{1,62}$`)
	// awsSessionNameInvalid are the characters a role session name may not
	// hold; awsTagValueInvalid those a session tag's value may not.
	awsSessionNameInvalid = regexp.MustCompile(`[^\w+=,.@-]`)
	awsTagValueInvalid    = regexp.MustCompile(`[^\p{L}\p{Z}\p{N}_.:/=+@-]`)
)

// checkAWSAssumeRole validates a write's aws_assume_role values.
func checkAWSAssumeRole(values map[string]string) string {
	if !awsRoleARNRegex.MatchString(values["role_arn"]) {
		return "role_arn must be an IAM role ARN such as arn:aws:iam::123456789012:role/planqk-braket"
	}
	if id, ok := values["external_id"]; ok && (len(id) < 2 || len(id) > 1224 || !awsExternalIDRegex.MatchString(id)) {
		return "external_id must be 2 to 1224 letters, digits or +=,.@:/-_"
	}
	if !awsAccessKeyRegex.MatchString(values["base_access_key_id"]) {
		return "base_access_key_id must be an AWS access key id (upper-case letters and digits)"
	}
	if raw, ok := values["role_max_ttl"]; ok {
		if _, msg := parseRoleMaxTTL(raw); msg != "" {
			return msg
		}
	}
	return checkAWSCommon(values)
}

// checkAWSCommon validates what both AWS methods take: the results
// bucket, a session policy, the STS endpoint.
func checkAWSCommon(values map[string]string) string {
	if bucket, ok := values["results_bucket"]; ok && !awsBucketRegex.MatchString(bucket) {
		return "results_bucket must be an S3 bucket name (lower-case letters, digits, '.', '-'; '*' matches any)"
	}
	if policy, ok := values["session_policy"]; ok {
		if msg := checkSessionPolicy(policy); msg != "" {
			return msg
		}
	}
	if endpoint, ok := values["sts_endpoint"]; ok {
		if msg := checkOutboundURL("sts_endpoint", endpoint, true); msg != "" {
			return msg
		}
	}
	return ""
}

// parseRoleMaxTTL reads role_max_ttl: the role's MaxSessionDuration.
func parseRoleMaxTTL(raw string) (time.Duration, string) {
	ttl, err := parseutil.ParseDurationSecond(raw)
	if err != nil || ttl < awsMinSessionTTL || ttl > awsMaxRoleTTL {
		return 0, "role_max_ttl must be the role's maximum session duration, from 900s to 12h"
	}
	return ttl, ""
}

func checkSessionPolicy(policy string) string {
	var doc map[string]interface{}
	if err := json.Unmarshal([]byte(policy), &doc); err != nil {
		return "session_policy must be an IAM policy document in JSON"
	}
	if _, ok := doc["Statement"]; !ok {
		return "session_policy must be an IAM policy document with a Statement"
	}
	if len(compactJSON(policy)) > awsMaxSessionPolicy {
		return fmt.Sprintf("session_policy must be at most %d characters without white space (STS's limit)", awsMaxSessionPolicy)
	}
	return ""
}

func compactJSON(doc string) string {
	var v interface{}
	if err := json.Unmarshal([]byte(doc), &v); err != nil {
		return doc
	}
	out, err := json.Marshal(v)
	if err != nil {
		return doc
	}
	return string(out)
}

// awsSessionPolicy is the inline session policy a job's session gets: the
// token's own, or Braket and its results bucket.
func awsSessionPolicy(values map[string]string) string {
	if policy, ok := values["session_policy"]; ok {
		return compactJSON(policy)
	}
	bucket := values["results_bucket"]
	if bucket == "" {
		bucket = awsDefaultResultsBucket
	}
	doc := map[string]interface{}{
		"Version": "2012-10-17",
		"Statement": []interface{}{
			map[string]interface{}{
				"Sid": "Braket", "Effect": "Allow", "Action": "braket:*", "Resource": "*",
			},
			map[string]interface{}{
				"Sid": "BraketResults", "Effect": "Allow",
				"Action":   []string{"s3:GetObject", "s3:PutObject", "s3:ListBucket", "s3:GetBucketLocation", "s3:CreateBucket", "s3:PutBucketPolicy"},
				"Resource": []string{"arn:aws:s3:::" + bucket, "arn:aws:s3:::" + bucket + "/*"},
			},
		},
	}
	out, err := json.Marshal(doc)
	if err != nil {
		// A map of strings always marshals.
		panic(err)
	}
	return string(out)
}

// awsSessionName names the session after the member and the job, within
// STS's 64 characters: tags carry them exactly.
func awsSessionName(member, jobID string) string {
	name := "planqk-" + awsSessionNameInvalid.ReplaceAllString(member, "_")
	if jobID != "" {
		suffix := "-" + jobID
		if len(name)+len(suffix) > 64 {
			name = name[:64-len(suffix)]
		}
		name += suffix
	}
	if len(name) > 64 {
		name = name[:64]
	}
	return name
}

// awsSessionTags name the organization, the member's entity id and the
// job.
func awsSessionTags(r deriveRequest) []ststypes.Tag {
	tag := func(key, value string) ststypes.Tag {
		value = awsTagValueInvalid.ReplaceAllString(value, "_")
		if len(value) > 256 {
			value = value[:256]
		}
		return ststypes.Tag{Key: aws.String(key), Value: aws.String(value)}
	}
	var tags []ststypes.Tag
	if r.orgID != "" {
		tags = append(tags, tag(awsTagOrg, r.org), tag(awsTagOrgID, r.orgID))
	}
	tags = append(tags, tag(awsTagEntityID, r.entityID), tag(awsTagMember, r.member))
	if r.jobID != "" {
		tags = append(tags, tag(awsTagJobID, r.jobID))
	}
	return tags
}

// awsSessionTTL is the session's life: asked for, or an hour, within 900 s
// and longest (the role's or the federation's maximum, named by what, and
// the mount's max lease TTL); a response refuses a life outside them.
func awsSessionTTL(longest time.Duration, what string, asked, mountMax time.Duration) (time.Duration, *logical.Response) {
	if mountMax > 0 && mountMax < longest {
		longest = mountMax
	}
	ttl := asked
	switch {
	case ttl == 0:
		ttl = min(awsDefaultSessionTTL, longest)
	case ttl < awsMinSessionTTL:
		return 0, logical.ErrorResponse(fmt.Sprintf("ttl must be at least %ds for AWS STS credentials", int(awsMinSessionTTL.Seconds())))
	case ttl > longest:
		return 0, logical.ErrorResponse(fmt.Sprintf("ttl must be at most %ds, %s or the mount's max lease TTL", int(longest.Seconds()), what))
	}
	if ttl < awsMinSessionTTL {
		return 0, logical.ErrorResponse(fmt.Sprintf("the mount's max lease TTL is below the %ds AWS STS credentials live at least", int(awsMinSessionTTL.Seconds())))
	}
	return ttl, nil
}

// awsRoleMaxTTL is the role's maximum session duration as the token says,
// else AWS's default for a role (1 h).
func awsRoleMaxTTL(values map[string]string) time.Duration {
	if raw, ok := values["role_max_ttl"]; ok {
		if ttl, msg := parseRoleMaxTTL(raw); msg == "" {
			return ttl
		}
	}
	return awsDefaultSessionTTL
}

// awsAssumeRoleInput is the request a job's credentials are asked with.
func awsAssumeRoleInput(values map[string]string, r deriveRequest, ttl time.Duration) *sts.AssumeRoleInput {
	input := &sts.AssumeRoleInput{
		RoleArn:         aws.String(values["role_arn"]),
		RoleSessionName: aws.String(awsSessionName(r.member, r.jobID)),
		DurationSeconds: aws.Int32(int32(ttl.Seconds())),
		Policy:          aws.String(awsSessionPolicy(values)),
		Tags:            awsSessionTags(r),
	}
	if id, ok := values["external_id"]; ok {
		input.ExternalId = aws.String(id)
	}
	return input
}

// awsSTSClient is an STS client signing with the base credentials, at the
// token's endpoint, else the engine's, else AWS's.
func awsSTSClient(values map[string]string, region, configEndpoint string) *sts.Client {
	options := sts.Options{
		Region:      region,
		Credentials: credentials.NewStaticCredentialsProvider(values["base_access_key_id"], values["base_secret_access_key"], ""),
		HTTPClient:  &http.Client{Timeout: awsSTSTimeout},
		// Two tries: a job waits for its answer.
		RetryMaxAttempts: 2,
	}
	endpoint := values["sts_endpoint"]
	if endpoint == "" {
		endpoint = configEndpoint
	}
	if endpoint != "" {
		options.BaseEndpoint = aws.String(endpoint)
	}
	return sts.New(options)
}

func (b *backend) deriveAWSAssumeRole(ctx context.Context, s logical.Storage, usable *usableToken, r deriveRequest) (*derivedCredentials, *logical.Response, error) {
	values := usable.entry.Derivation.Values
	ttl, denied := awsSessionTTL(awsRoleMaxTTL(values), "the role's maximum session duration (role_max_ttl)", r.ttl, b.mountLeaseTTLs().MaxLeaseTTL())
	if denied != nil {
		return nil, denied, nil
	}
	client, denied, err := b.awsSTSClientFor(ctx, s, usable)
	if denied != nil || err != nil {
		return nil, denied, err
	}
	ctx, cancel := context.WithTimeout(ctx, awsSTSTimeout)
	defer cancel()
	out, err := client.AssumeRole(ctx, awsAssumeRoleInput(values, r, ttl))
	if err != nil {
		return nil, b.awsRefusal(usable.provider, "AssumeRole", err, values), nil
	}
	var arn *string
	if out.AssumedRoleUser != nil {
		arn = out.AssumedRoleUser.Arn
	}
	return awsDerived(usable.provider, "AssumeRole", out.Credentials, "assumed_role_arn", arn)
}

// awsSTSClientFor is an STS client for the token's derivation, in its
// region (the token's static region field, else STS's global one).
func (b *backend) awsSTSClientFor(ctx context.Context, s logical.Storage, usable *usableToken) (*sts.Client, *logical.Response, error) {
	cfg, err := b.getConfig(ctx, s)
	if err != nil {
		return nil, nil, err
	}
	// Checked again at use: the operator may have withdrawn it.
	if msg := cfg.checkDerivationEndpoints(usable.entry.Derivation); msg != "" {
		return nil, forbidden(fmt.Sprintf("the %s token of %s cannot be used: %s", usable.provider, usable.owner.describe(), msg)), nil
	}
	region := usable.entry.Values["region"]
	if region == "" {
		region = awsDefaultRegion
	}
	return awsSTSClient(usable.entry.Derivation.Values, region, cfg.STSEndpoint), nil, nil
}

// awsDerived turns STS's temporary credentials into a job's, under
// aws-braket's field names; the lease keeps the temporary key id and the
// principal's ARN (under arnKey) to say whose they were, never a secret.
func awsDerived(provider, operation string, c *ststypes.Credentials, arnKey string, arn *string) (*derivedCredentials, *logical.Response, error) {
	if c == nil || c.AccessKeyId == nil || c.SecretAccessKey == nil || c.SessionToken == nil || c.Expiration == nil {
		return nil, derivationFailed(provider, "STS answered "+operation+" without credentials"), nil
	}
	lease := map[string]interface{}{"access_key_id": *c.AccessKeyId}
	if arn != nil {
		lease[arnKey] = *arn
	}
	return &derivedCredentials{
		values: map[string]string{
			"access_key_id":     *c.AccessKeyId,
			"secret_access_key": *c.SecretAccessKey,
			"session_token":     *c.SessionToken,
		},
		expiresAt: c.Expiration.UTC(),
		lease:     lease,
	}, nil, nil
}

// deriveAWSFederationToken asks STS GetFederationToken with an IAM user's
// key: the federated user gets what both the user's policies and the
// session policy allow (without a session policy, nothing).
func (b *backend) deriveAWSFederationToken(ctx context.Context, s logical.Storage, usable *usableToken, r deriveRequest) (*derivedCredentials, *logical.Response, error) {
	values := usable.entry.Derivation.Values
	ttl, denied := awsSessionTTL(awsFederationMaxTTL(values), "the federation's maximum (max_session_ttl)", r.ttl, b.mountLeaseTTLs().MaxLeaseTTL())
	if denied != nil {
		return nil, denied, nil
	}
	client, denied, err := b.awsSTSClientFor(ctx, s, usable)
	if denied != nil || err != nil {
		return nil, denied, err
	}
	ctx, cancel := context.WithTimeout(ctx, awsSTSTimeout)
	defer cancel()
	out, err := client.GetFederationToken(ctx, awsFederationTokenInput(values, r, ttl))
	if err != nil {
		return nil, b.awsRefusal(usable.provider, "GetFederationToken", err, values), nil
	}
	var arn *string
	if out.FederatedUser != nil {
		arn = out.FederatedUser.Arn
	}
	return awsDerived(usable.provider, "GetFederationToken", out.Credentials, "federated_user_arn", arn)
}

// awsFederationTokenInput is the request a job's federated credentials are
// asked with: the federated user is named after the member (STS allows
// 32 characters); the job id is in the tags.
func awsFederationTokenInput(values map[string]string, r deriveRequest, ttl time.Duration) *sts.GetFederationTokenInput {
	return &sts.GetFederationTokenInput{
		Name:            aws.String(awsFederatedUserName(r.member)),
		DurationSeconds: aws.Int32(int32(ttl.Seconds())),
		Policy:          aws.String(awsSessionPolicy(values)),
		Tags:            awsSessionTags(r),
	}
}

// awsFederatedUserName is "planqk-<member>", within STS's 2 to 32
// characters of [\w+=,.@-].
func awsFederatedUserName(member string) string {
	name := "planqk-" + awsSessionNameInvalid.ReplaceAllString(member, "_")
	if len(name) > 32 {
		name = name[:32]
	}
	return name
}

// awsFederationMaxTTL is the longest a federation token may live as the
// token says, else 12 h (STS allows up to 36 h for an IAM user's key).
func awsFederationMaxTTL(values map[string]string) time.Duration {
	if raw, ok := values["max_session_ttl"]; ok {
		if ttl, msg := parseFederationMaxTTL(raw); msg == "" {
			return ttl
		}
	}
	return awsDefaultFederationMaxTTL
}

// parseFederationMaxTTL reads max_session_ttl.
func parseFederationMaxTTL(raw string) (time.Duration, string) {
	ttl, err := parseutil.ParseDurationSecond(raw)
	if err != nil || ttl < awsMinSessionTTL || ttl > awsMaxFederationTTL {
		return 0, "max_session_ttl must be from 900s to 36h"
	}
	return ttl, ""
}

// checkAWSFederationToken validates a write's aws_federation_token values.
func checkAWSFederationToken(values map[string]string) string {
	if !awsAccessKeyRegex.MatchString(values["base_access_key_id"]) {
		return "base_access_key_id must be an AWS access key id (upper-case letters and digits)"
	}
	if raw, ok := values["max_session_ttl"]; ok {
		if _, msg := parseFederationMaxTTL(raw); msg != "" {
			return msg
		}
	}
	return checkAWSCommon(values)
}

// awsRefusal is the 502 a job gets when STS refuses or cannot be reached:
// STS's error code only - its message can name the organization's IAM user
// and account, which members need not see - while the operator's log gets
// the message, with the base key struck out should STS ever repeat it.
func (b *backend) awsRefusal(provider, operation string, err error, values map[string]string) *logical.Response {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		message := apiErr.ErrorMessage()
		for _, field := range []string{"base_access_key_id", "base_secret_access_key"} {
			if v := values[field]; v != "" {
				message = strings.ReplaceAll(message, v, "****")
			}
		}
		code := apiErr.ErrorCode()
		if !ibmErrorCodeRegex.MatchString(code) && !awsErrorCodeRegex.MatchString(code) {
			code = "an error"
		}
		b.Logger().Warn("STS refused a derivation", "provider", provider, "operation", operation, "code", code, "message", truncateForMessage(message))
		return derivationFailed(provider, fmt.Sprintf("STS refused %s: %s (the operator's log has STS's message)", operation, code))
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return derivationFailed(provider, "STS did not answer in time")
	}
	return derivationFailed(provider, "STS could not be reached")
}

// awsErrorCodeRegex is what an AWS error code looks like (AccessDenied,
// InvalidClientTokenId); anything else is not repeated.
var awsErrorCodeRegex = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9.]{0,63}$`)
