# planqk-admin: operators of the PlanQK secrets engine.
# Everything under the mount: configuration, roles, the provider catalogue,
# tidy, and every user's and organization's tokens (to revoke them).
path "[[.Mount]]/*" {
  capabilities = ["create", "read", "update", "delete", "list"]
}
