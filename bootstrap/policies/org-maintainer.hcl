# Maintainers of organization [[.Org]]: also store, replace and delete the
# organization's provider tokens.
path "[[.Mount]]/orgs/[[.Org]]/provider-tokens/*" {
  capabilities = ["create", "read", "update", "delete", "list"]
}
