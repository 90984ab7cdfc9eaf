# planqk-auditor: security and compliance reviewers. They see what exists
# and how the engine is set up, and nothing that can return a secret: no
# resolve, no creds, no users/* (a user's own paths), no orgs/* (not even
# provider-token metadata: the auditor's view is the inventory). Nothing
# here can create, change or delete anything.

# The token inventory: which PATs and provider tokens exist, whose, until
# when: records and metadata, never a PAT or a provider token itself.
path "[[.Mount]]/inventory" {
  capabilities = ["read", "list"]
}
path "[[.Mount]]/inventory/*" {
  capabilities = ["read", "list"]
}

# The engine's settings (prefix, TTLs, intervals): no secret is read back
# from config.
path "[[.Mount]]/config" {
  capabilities = ["read"]
}

# Whether tidy and the expiry notifications run and what they last did.
path "[[.Mount]]/tidy/status" {
  capabilities = ["read"]
}
path "[[.Mount]]/notifications/status" {
  capabilities = ["read"]
}

# The provider catalogue and the roles: what may be issued, and for how long.
path "[[.Mount]]/providers/*" {
  capabilities = ["read", "list"]
}
path "[[.Mount]]/roles/*" {
  capabilities = ["read", "list"]
}
