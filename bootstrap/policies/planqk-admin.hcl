# planqk-admin: operators of the PlanQK secrets engine.
# Everything under the mount: configuration, roles, the provider catalogue,
# tidy, and every user's and organization's tokens (to revoke them).
path "[[.Mount]]/*" {
  capabilities = ["create", "read", "update", "delete", "list"]
}

# The same on the patterns planqk-user names. Vault applies the most
# specific matching pattern among all of a token's policies and unites
# capabilities only for identical patterns: without these, a platform admin
# or an operator who logs in as a user (and so also has planqk-user) would
# get planqk-user's read-only access to roles and providers.
path "[[.Mount]]/roles/*" {
  capabilities = ["create", "read", "update", "delete", "list"]
}
path "[[.Mount]]/providers/*" {
  capabilities = ["create", "read", "update", "delete", "list"]
}
path "[[.Mount]]/resolve/*" {
  capabilities = ["create", "read", "update", "delete", "list"]
}
path "[[.Mount]]/orgs/" {
  capabilities = ["create", "read", "update", "delete", "list"]
}
