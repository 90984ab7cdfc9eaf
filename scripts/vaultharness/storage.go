package vaultharness

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/hashicorp/vault/api"
)

// StorageSnapshot returns every key and value the engine mounted at mount
// has stored, read through sys/raw (the server needs raw_storage_endpoint).
func StorageSnapshot(ctx context.Context, root *api.Client, mount string) (map[string]string, error) {
	mounts, err := root.Sys().ListMountsWithContext(ctx)
	if err != nil {
		return nil, err
	}
	m, ok := mounts[strings.Trim(mount, "/")+"/"]
	if !ok {
		return nil, fmt.Errorf("no mount %s", mount)
	}
	prefix := "logical/" + m.UUID + "/"
	snapshot := make(map[string]string)
	var walk func(dir string) error
	walk = func(dir string) error {
		list, err := root.Logical().ListWithContext(ctx, "sys/raw/"+prefix+dir)
		if err != nil {
			return err
		}
		if list == nil {
			return nil
		}
		keys, _ := list.Data["keys"].([]interface{})
		for _, k := range keys {
			key, _ := k.(string)
			if strings.HasSuffix(key, "/") {
				if err := walk(dir + key); err != nil {
					return err
				}
				continue
			}
			// compressed=false: sys/raw otherwise tries to decompress any
			// value whose first byte looks like a compression canary.
			entry, err := root.Logical().ReadWithDataWithContext(ctx, "sys/raw/"+prefix+dir+key, map[string][]string{"compressed": {"false"}})
			if err != nil {
				return err
			}
			if entry == nil {
				continue // deleted while walking
			}
			value, _ := entry.Data["value"].(string)
			if decoded, err := base64.StdEncoding.DecodeString(value); err == nil && entry.Data["encoding"] == "base64" {
				value = string(decoded)
			}
			snapshot[dir+key] = value
		}
		return nil
	}
	return snapshot, walk("")
}
