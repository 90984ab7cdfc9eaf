# planqk-user: every PlanQK user. Templated on the caller's identity entity,
# so a user reaches only their own users/<user>/ paths. The engine checks
# the entity again itself.

# Own profile: the entity id (the key the platform must store users by,
# since names can change) and the organizations the caller belongs to.
# Exactly this path: the wildcard paths below grant the rest of users/<user>/.
path "[[.Mount]]/users/{{identity.entity.name}}" {
  capabilities = ["read"]
}

# Own personal access tokens: list, create, read, rotate, revoke.
path "[[.Mount]]/users/{{identity.entity.name}}/tokens/*" {
  capabilities = ["read", "update", "delete", "list"]
}

# Short-lived PATs issued as leases, for runtimes.
path "[[.Mount]]/users/{{identity.entity.name}}/creds/*" {
  capabilities = ["read"]
}

# A job runtime's whole environment: a leased PAT with the provider tokens
# of an organization context. update is the same read with org in the body
# (the Vault Secrets Operator sends parameters that way).
path "[[.Mount]]/users/{{identity.entity.name}}/runtime/*" {
  capabilities = ["read", "update"]
}

# Own provider access tokens ("bring your own token").
path "[[.Mount]]/users/{{identity.entity.name}}/provider-tokens/*" {
  capabilities = ["read", "update", "delete", "list"]
}

# Own settings: whether jobs may receive the stored key of a provider
# token that derives short-lived credentials (derived_only).
path "[[.Mount]]/users/{{identity.entity.name}}/settings" {
  capabilities = ["read", "update"]
}

# The effective provider token for a job; the engine checks membership
# when an organization is asked for.
path "[[.Mount]]/resolve/*" {
  capabilities = ["read"]
}

# The provider catalogue and the roles, to know what can be asked for.
path "[[.Mount]]/providers/*" {
  capabilities = ["read", "list"]
}
path "[[.Mount]]/roles/*" {
  capabilities = ["read", "list"]
}

# The organizations with provider tokens; the engine shows only the caller's.
path "[[.Mount]]/orgs/" {
  capabilities = ["list"]
}

# Own tokens revoked because they leaked, with where they leaked.
path "[[.Mount]]/users/{{identity.entity.name}}/leaks/" {
  capabilities = ["list"]
}
