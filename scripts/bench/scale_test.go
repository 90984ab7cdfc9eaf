package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/hashicorp/vault/api"
	"github.com/stretchr/testify/require"
)

// fakeInventory serves pages of a listing of total tokens under the cursor
// field named field ("" serves no cursor), or status when it is not 200.
func fakeInventory(t *testing.T, total int, field string, status int) (*httptest.Server, *[]string) {
	var asked []string
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked = append(asked, r.Method+" "+r.URL.RequestURI()+" "+r.Header.Get("X-Vault-Token"))
		if status != http.StatusOK {
			w.WriteHeader(status)
			return
		}
		start := 0
		if after := r.URL.Query().Get("after"); after != "" {
			start, _ = strconv.Atoi(after)
		}
		data := map[string]interface{}{}
		var keys []string
		info := map[string]interface{}{}
		for i := start; i < start+inventoryPageSize && i < total; i++ {
			key := fmt.Sprintf("token-%06d", i)
			keys = append(keys, key)
			info[key] = map[string]interface{}{"user": "u", "token_id": key}
		}
		data["keys"], data["key_info"] = keys, info
		if field != "" && start+inventoryPageSize < total {
			data[field] = strconv.Itoa(start + inventoryPageSize)
		}
		_ = json.NewEncoder(w).Encode(map[string]interface{}{"data": data})
	}))
	t.Cleanup(server.Close)
	return server, &asked
}

func rootFixtures(t *testing.T) *fixtures {
	client, err := api.NewClient(api.DefaultConfig())
	require.NoError(t, err)
	client.SetToken("root-token")
	return &fixtures{root: client}
}

func TestProbeInventory_followsTheCursorHalfwayThrough(t *testing.T) {
	server, asked := fakeInventory(t, 10_000, "next", http.StatusOK)
	s := &scaleReport{PATs: 10_000}
	var deep string
	op := &operation{request: "LIST planqk/inventory/tokens"}
	reason, err := rootFixtures(t).probeInventory(server.URL+"/v1/planqk/inventory/tokens", s, &deep)(context.Background(), op)
	require.NoError(t, err)
	require.Empty(t, reason)
	require.Equal(t, "5000", deep, "50 pages of 100 in a listing of 100 pages: the cursor past page 50")
	require.Equal(t, 51, s.DeepPage)
	require.Equal(t, "next", s.CursorField)
	require.Len(t, *asked, 50)
	require.Equal(t, "LIST /v1/planqk/inventory/tokens?limit=100 root-token", (*asked)[0])
	require.Equal(t, "LIST /v1/planqk/inventory/tokens?after=100&limit=100 root-token", (*asked)[1])
}

func TestProbeInventory_unavailableWhileNotServedOrWithoutCursor(t *testing.T) {
	op := &operation{request: "LIST planqk/inventory/tokens?limit=100"}
	for _, status := range []int{http.StatusNotFound, http.StatusMethodNotAllowed} {
		server, _ := fakeInventory(t, 1000, "next", status)
		reason, err := rootFixtures(t).probeInventory(server.URL+"/v1/planqk/inventory/tokens", &scaleReport{PATs: 1000}, nil)(context.Background(), op)
		require.NoError(t, err)
		require.Equal(t, fmt.Sprintf("n/a: the engine does not serve LIST planqk/inventory/tokens?limit=100 (%d)", status), reason)
	}

	server, _ := fakeInventory(t, 1000, "", http.StatusOK)
	reason, err := rootFixtures(t).probeInventory(server.URL+"/v1/planqk/inventory/tokens", &scaleReport{PATs: 1000}, nil)(context.Background(), op)
	require.NoError(t, err)
	require.Contains(t, reason, "n/a: the inventory page carries no next cursor")

	server, _ = fakeInventory(t, 1000, "next", http.StatusInternalServerError)
	_, err = rootFixtures(t).probeInventory(server.URL+"/v1/planqk/inventory/tokens", &scaleReport{PATs: 1000}, nil)(context.Background(), op)
	require.Error(t, err, "a broken inventory fails the run")
}

func TestCheckInventoryPage(t *testing.T) {
	page := func(keys int, withInfo bool, cursor bool) []byte {
		data := map[string]interface{}{}
		var names []string
		info := map[string]interface{}{}
		for i := 0; i < keys; i++ {
			names = append(names, fmt.Sprint(i))
			info[fmt.Sprint(i)] = map[string]interface{}{"user": "u"}
		}
		data["keys"] = names
		if withInfo {
			data["key_info"] = info
		}
		if cursor {
			data["next_cursor"] = "c"
		}
		body, _ := json.Marshal(map[string]interface{}{"data": data})
		return body
	}
	require.Empty(t, checkInventoryPage(page(100, true, true)))
	require.Equal(t, "data.keys does not hold 100 entries", checkInventoryPage(page(99, true, true)))
	require.Equal(t, "data.key_info does not describe every key", checkInventoryPage(page(100, false, true)))
	require.Equal(t, "no next cursor", checkInventoryPage(page(100, true, false)))
}
