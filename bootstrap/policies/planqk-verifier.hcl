# planqk-verifier: the PlanQK API and the gateways in front of it, which
# check the PATs their callers present. Nothing else: it can neither issue
# nor read tokens.

# verify: POST with the token in the body (update), or GET with the token
# in the X-Auth-Token header (read).
path "[[.Mount]]/verify" {
  capabilities = ["read", "update"]
}

# RFC 7662 token introspection, for API gateways.
path "[[.Mount]]/introspect" {
  capabilities = ["update"]
}
