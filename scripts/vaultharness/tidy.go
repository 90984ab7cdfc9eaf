package vaultharness

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/vault/api"
)

// Tidy starts the engine's tidy at mount and waits, up to timeout, for its
// result: tidy runs in the background and reports at tidy/status. It
// returns the finished status (the sweep's counts).
func Tidy(ctx context.Context, root *api.Client, mount string, repair bool, timeout time.Duration) (map[string]interface{}, error) {
	if _, err := root.Logical().WriteWithContext(ctx, mount+"/tidy", map[string]interface{}{"repair": repair}); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(timeout)
	for {
		status, err := root.Logical().ReadWithContext(ctx, mount+"/tidy/status")
		if err != nil {
			return nil, err
		}
		switch status.Data["state"] {
		case "finished":
			return status.Data, nil
		case "error":
			return nil, fmt.Errorf("tidy failed: %v", status.Data["error"])
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("tidy still %v after %s", status.Data["state"], timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
