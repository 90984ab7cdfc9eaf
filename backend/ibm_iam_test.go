package backend

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/planqk/vault-plugin-secrets-planqk/internal/ibmiam"
	"github.com/stretchr/testify/require"
)

// ibmFixture is the IAM stand-in with one service ID and a management key
// for it.
type ibmFixture struct {
	iam       *ibmiam.Server
	srv       *httptest.Server
	serviceID string
	iamID     string
	mgmtKey   string
}

func newIBMFixture(t *testing.T) *ibmFixture {
	t.Helper()
	f := &ibmFixture{iam: ibmiam.New("acct-0123456789")}
	f.serviceID, f.iamID = f.iam.AddServiceID("planqk-jobs")
	f.mgmtKey = f.iam.AddManagementKey(f.serviceID)
	f.srv = httptest.NewServer(f.iam)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *ibmFixture) client(t *testing.T, bearers *ibmBearers) *ibmIAM {
	t.Helper()
	c, err := newIBMIAM(f.srv.URL, f.mgmtKey, bearers)
	require.NoError(t, err)
	return c
}

func TestCheckIAMEndpoint(t *testing.T) {
	for _, tc := range []struct {
		url string
		ok  bool
	}{
		{"https://iam.cloud.ibm.com", true},
		{"https://private.iam.cloud.ibm.com/", true},
		{"http://127.0.0.1:8080", true},
		{"http://[::1]:8080", true},
		{"http://localhost:9", true},
		{"http://iam.cloud.ibm.com", false},
		{"http://10.0.0.1", false},
		{"ftp://iam.cloud.ibm.com", false},
		{"https://user:pw@iam.cloud.ibm.com", false},
		{"https://iam.cloud.ibm.com?x=1", false},
		{"iam.cloud.ibm.com", false},
		{"", false},
	} {
		require.Equal(t, tc.ok, checkIAMEndpoint(tc.url) == "", tc.url)
	}
}

func TestIBMIAMCreateListDelete(t *testing.T) {
	f := newIBMFixture(t)
	c := f.client(t, newIBMBearers())
	ctx := context.Background()

	key, err := c.createAPIKey(ctx, ibmAPIKeyRequest{Name: "planqk job-1", IAMID: f.iamID, AccountID: f.iam.AccountID})
	require.NoError(t, err)
	require.NotEmpty(t, key.Value)
	require.Equal(t, f.iamID, key.IAMID)
	require.Equal(t, []string{key.ID}, keyIDs(f.iam.Keys(f.iamID)))

	// Found again by name, with a listing of several pages.
	for i := range ibmListPageSize + 5 {
		_, err := c.createAPIKey(ctx, ibmAPIKeyRequest{Name: fmt.Sprintf("other-%d", i), IAMID: f.iamID, AccountID: f.iam.AccountID})
		require.NoError(t, err)
	}
	found, err := c.apiKeysNamed(ctx, f.iam.AccountID, f.iamID, "planqk job-1")
	require.NoError(t, err)
	require.Equal(t, []string{key.ID}, keyIDs(found))
	require.GreaterOrEqual(t, f.iam.Calls()["GET /v1/apikeys"], 2, "the listing took more than one page")
	require.Empty(t, found[0].Value, "a listing shows no key value")

	require.NoError(t, c.deleteAPIKey(ctx, key.ID))
	require.NotContains(t, keyIDs(f.iam.Keys(f.iamID)), key.ID)
	// Deleting a key that is gone already succeeds.
	require.NoError(t, c.deleteAPIKey(ctx, key.ID))

	// One token exchange served every call.
	require.Equal(t, 1, f.iam.Calls()["POST /identity/token"])

	sid, err := c.serviceID(ctx, f.serviceID)
	require.NoError(t, err)
	require.Equal(t, f.iamID, sid.IAMID)
	_, err = c.serviceID(ctx, "ServiceId-unknown")
	require.ErrorContains(t, err, "not found")
}

func keyIDs[K ibmiam.Key | ibmAPIKey](keys []K) []string {
	var ids []string
	for _, k := range keys {
		switch k := any(k).(type) {
		case ibmiam.Key:
			ids = append(ids, k.ID)
		case ibmAPIKey:
			ids = append(ids, k.ID)
		}
	}
	return ids
}

func TestIBMIAMBearerCache(t *testing.T) {
	f := newIBMFixture(t)
	bearers := newIBMBearers()
	now := time.Now()
	bearers.now = func() time.Time { return now }
	ctx := context.Background()
	create := func() {
		t.Helper()
		// A new client each time, as each request makes one: the cache is
		// the backend's.
		_, err := f.client(t, bearers).createAPIKey(ctx, ibmAPIKeyRequest{Name: "k", IAMID: f.iamID, AccountID: f.iam.AccountID})
		require.NoError(t, err)
	}
	create()
	create()
	require.Equal(t, 1, f.iam.Calls()["POST /identity/token"], "the bearer is reused")

	// Shortly before the hour is up, a new bearer is fetched.
	now = now.Add(time.Hour - ibmBearerMargin + time.Second)
	create()
	require.Equal(t, 2, f.iam.Calls()["POST /identity/token"])

	// A bearer IAM no longer accepts is replaced once, transparently.
	f.iam.ExpireBearers()
	create()
	require.Equal(t, 3, f.iam.Calls()["POST /identity/token"])

	// Another management key gets its own bearer.
	other, err := newIBMIAM(f.srv.URL, f.iam.AddManagementKey(f.serviceID), bearers)
	require.NoError(t, err)
	_, err = other.createAPIKey(ctx, ibmAPIKeyRequest{Name: "k", IAMID: f.iamID, AccountID: f.iam.AccountID})
	require.NoError(t, err)
	require.Equal(t, 4, f.iam.Calls()["POST /identity/token"])
}

// TestIBMIAMErrorsHoldNoKeys: every failure names what failed, never a key.
func TestIBMIAMErrorsHoldNoKeys(t *testing.T) {
	f := newIBMFixture(t)
	ctx := context.Background()
	otherID, otherIAMID := f.iam.AddServiceID("not-ours")
	_ = otherID

	// An IAM that echoes what it was sent in its error bodies.
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `{"errorCode":"BXNIM0415E","errorMessage":"key %s rejected"}`, r.PostForm.Get("apikey"))
	}))
	t.Cleanup(echo.Close)
	// An IAM that redirects, to where a bearer must not go.
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://127.0.0.1:1/steal", http.StatusTemporaryRedirect)
	}))
	t.Cleanup(redirect.Close)

	for _, tc := range []struct {
		name     string
		endpoint string
		key      string
		do       func(c *ibmIAM) error
		want     string
	}{
		{"unknown management key", f.srv.URL, "mgmt-not-a-real-key-123", func(c *ibmIAM) error {
			_, err := c.createAPIKey(ctx, ibmAPIKeyRequest{Name: "k", IAMID: f.iamID, AccountID: f.iam.AccountID})
			return err
		}, "answered 400 (BXNIM0415E)"},
		{"echoing IAM", echo.URL, "mgmt-echoed-secret-456", func(c *ibmIAM) error {
			_, err := c.bearer(ctx)
			return err
		}, "answered 400 (BXNIM0415E)"},
		{"service ID not managed", f.srv.URL, f.mgmtKey, func(c *ibmIAM) error {
			_, err := c.createAPIKey(ctx, ibmAPIKeyRequest{Name: "k", IAMID: otherIAMID, AccountID: f.iam.AccountID})
			return err
		}, "answered 403 (BXNIM0513E)"},
		{"redirect", redirect.URL, "mgmt-redirected-789", func(c *ibmIAM) error {
			_, err := c.bearer(ctx)
			return err
		}, "answered 307"},
		{"nothing listening", "http://127.0.0.1:1", "mgmt-unreachable-000", func(c *ibmIAM) error {
			return c.deleteAPIKey(ctx, "ApiKey-x")
		}, "/identity/token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := newIBMIAM(tc.endpoint, tc.key, newIBMBearers())
			require.NoError(t, err)
			err = tc.do(c)
			require.ErrorContains(t, err, tc.want)
			require.NotContains(t, err.Error(), tc.key)
			require.NotContains(t, err.Error(), "mgmt-")
			require.NotContains(t, err.Error(), "bearer-")
		})
	}

	// A creation whose answer never arrives reports an error without the
	// key it may have created.
	f.iam.FailCreates(1)
	_, err := f.client(t, newIBMBearers()).createAPIKey(ctx, ibmAPIKeyRequest{Name: "lost", IAMID: f.iamID, AccountID: f.iam.AccountID})
	require.Error(t, err)
	require.Len(t, f.iam.Keys(f.iamID), 1, "the stand-in created the key it did not answer with")
	require.NotContains(t, err.Error(), f.iam.KeyValue(f.iam.Keys(f.iamID)[0].ID))

	_, err = newIBMIAM("http://iam.example.com", f.mgmtKey, newIBMBearers())
	require.ErrorContains(t, err, "https")
	require.False(t, strings.Contains(err.Error(), f.mgmtKey))
}
