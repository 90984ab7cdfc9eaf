package main

import (
	"context"
	"encoding/json"
	"net/http"
	"time"
)

// health answers whether the portal can serve: it is up and Vault is
// reachable, initialized and unsealed (a standby counts: it forwards).
func (p *portal) health(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	answer := map[string]string{"portal": "ok"}
	status := http.StatusOK
	health, err := p.anonymous().Sys().HealthWithContext(ctx)
	switch {
	case err != nil:
		answer["vault"] = "unreachable"
		status = http.StatusServiceUnavailable
	case !health.Initialized:
		answer["vault"] = "not initialized"
		status = http.StatusServiceUnavailable
	case health.Sealed:
		answer["vault"] = "sealed"
		status = http.StatusServiceUnavailable
	default:
		answer["vault"] = "ok"
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(answer)
}
