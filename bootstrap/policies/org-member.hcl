# Members of organization [[.Org]]: see which provider tokens the
# organization has (metadata only, never a secret) and run jobs with them
# through resolve/<provider>?org=[[.Org]] (granted by planqk-user).
path "[[.Mount]]/orgs/[[.Org]]/provider-tokens/*" {
  capabilities = ["read", "list"]
}

# The organization's settings, read only: whether its provider tokens are
# used for a member's jobs.
path "[[.Mount]]/orgs/[[.Org]]/settings" {
  capabilities = ["read"]
}
