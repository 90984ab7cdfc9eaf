# planqk-scanner: secret scanners and incident responders, such as
# cmd/planqk-leak-receiver for GitHub's secret scanning. It can revoke a
# token whose value it holds, and learn only whether the value was an
# active PAT: never whose, and it can neither issue nor read tokens.
path "[[.Mount]]/leaks/revoke" {
  capabilities = ["update"]
}
