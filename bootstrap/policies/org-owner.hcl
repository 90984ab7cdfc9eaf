# Owners of organization [[.Org]]: the maintainers' rights, and managing who
# is a maintainer or a member. allowed_parameters restricts group updates to
# member_entity_ids, so an owner can never attach policies, change the
# groups' metadata, or touch the owners group: no escalation.
path "[[.Mount]]/orgs/[[.Org]]/provider-tokens/*" {
  capabilities = ["create", "read", "update", "delete", "list"]
}

# The organization's settings: which members may have its provider tokens
# used for them (the engine lets only owners change them).
path "[[.Mount]]/orgs/[[.Org]]/settings" {
  capabilities = ["read", "update"]
}

path "identity/group/name/planqk-[[.Org]]-maintainers" {
  capabilities = ["read", "update"]
  allowed_parameters = {
    "member_entity_ids" = []
  }
}

path "identity/group/name/planqk-[[.Org]]-members" {
  capabilities = ["read", "update"]
  allowed_parameters = {
    "member_entity_ids" = []
  }
}
