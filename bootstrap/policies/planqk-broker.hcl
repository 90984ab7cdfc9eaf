# planqk-broker: the platform service that runs a user's job on a quantum
# provider with the provider token the user's PAT may have used for it
# (the PAT with the scope quantum_tokens, and its owner's organization).
# Nothing else: it can neither issue, list nor verify tokens, and it gets a
# provider token only for a PAT it holds.

# exchange/<provider>: GET with the PAT in the X-Auth-Token header (read),
# or POST with it in the body (update).
path "[[.Mount]]/exchange/*" {
  capabilities = ["read", "update"]
}

# exchange: every usable provider token as a job's environment.
path "[[.Mount]]/exchange" {
  capabilities = ["read", "update"]
}
