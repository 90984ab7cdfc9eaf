package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/hashicorp/vault/api"
)

// engineBatch is the most values leaks/revoke takes in one request.
const engineBatch = 100

// engineRevoker calls the engine's leaks/revoke with the receiver's own
// Vault token (policy planqk-scanner).
type engineRevoker struct {
	client    *api.Client
	mount     string
	tokenFile string // read at each batch, so that a renewed token is used
}

// revoke sends the alerts in batches of engineBatch and returns the
// engine's labels in order. Sending a batch again is harmless: the engine
// answers inactive for what it already revoked.
func (e *engineRevoker) revoke(ctx context.Context, alerts []alert) ([]string, error) {
	client := e.client
	if e.tokenFile != "" {
		raw, err := os.ReadFile(e.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("reading the Vault token file: %w", err)
		}
		client, err = e.client.Clone()
		if err != nil {
			return nil, err
		}
		client.SetToken(strings.TrimSpace(string(raw)))
	}
	labels := make([]string, 0, len(alerts))
	for start := 0; start < len(alerts); start += engineBatch {
		end := min(start+engineBatch, len(alerts))
		leaks := make([]interface{}, 0, end-start)
		for _, a := range alerts[start:end] {
			leaks = append(leaks, map[string]interface{}{"token": a.Token, "type": a.Type, "url": a.URL, "source": a.Source})
		}
		secret, err := client.Logical().WriteWithContext(ctx, e.mount+"/leaks/revoke", map[string]interface{}{"leaks": leaks})
		if err != nil {
			return nil, fmt.Errorf("leaks/revoke: %w", err)
		}
		if secret == nil {
			return nil, fmt.Errorf("leaks/revoke answered nothing")
		}
		got, ok := secret.Data["labels"].([]interface{})
		if !ok || len(got) != end-start {
			return nil, fmt.Errorf("leaks/revoke answered %d labels for %d values", len(got), end-start)
		}
		for _, label := range got {
			text, ok := label.(string)
			if !ok {
				return nil, fmt.Errorf("leaks/revoke answered a label that is not a string")
			}
			labels = append(labels, text)
		}
	}
	return labels, nil
}
