# planqk-verifier: the PlanQK API, which introspects the PATs its callers
# present. Nothing else: it can neither issue nor read tokens.
path "[[.Mount]]/verify" {
  capabilities = ["update"]
}
