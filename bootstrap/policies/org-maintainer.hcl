# Maintainers of organization [[.Org]]: also store, replace and delete the
# organization's provider tokens.
path "[[.Mount]]/orgs/[[.Org]]/provider-tokens/*" {
  capabilities = ["create", "read", "update", "delete", "list"]
}

# The organization's settings, read only (owners change them).
path "[[.Mount]]/orgs/[[.Org]]/settings" {
  capabilities = ["read"]
}
