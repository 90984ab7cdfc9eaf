package backend

import (
	"context"
	"testing"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"
)

func TestIBMAPIKeyWAL(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		// setUp prepares the stand-in; lostAnswer makes IAM create the key
		// and drop its answer, as a crash after the creation would.
		lostAnswer, refused bool
		// wantWAL is whether an entry stays after the creation.
		wantWAL bool
		// wantKeysBefore and wantKeysAfter count the service ID's keys
		// before and after the rollback.
		wantKeysBefore, wantKeysAfter int
	}{
		{name: "created and handed out", wantWAL: false, wantKeysBefore: 1, wantKeysAfter: 1},
		{name: "answer lost after IAM created the key", lostAnswer: true, wantWAL: true, wantKeysBefore: 1, wantKeysAfter: 0},
		{name: "IAM refused", refused: true, wantWAL: false, wantKeysBefore: 0, wantKeysAfter: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newIBMFixture(t)
			s := &logical.InmemStorage{}
			c := f.client(t, newIBMBearers())
			w := ibmAPIKeyWAL{TokenKey: "provider-tokens/organizations/o1/ibm-quantum", Endpoint: f.srv.URL, AccountID: f.iam.AccountID, IAMID: f.iamID, Name: "planqk acme/member-1/job-7 x1"}
			if tc.lostAnswer {
				f.iam.FailCreates(1)
			}
			if tc.refused {
				_, w.IAMID = f.iam.AddServiceID("not-managed")
			}
			key, walID, err := createIBMAPIKeyLogged(ctx, s, c, w, "job-7")
			if err == nil {
				// The caller hands the key out, then deletes the entry.
				require.NotEmpty(t, key.Value)
				require.NoError(t, framework.DeleteWAL(ctx, s, walID))
			}
			require.Equal(t, tc.lostAnswer || tc.refused, err != nil)
			ids, err := framework.ListWAL(ctx, s)
			require.NoError(t, err)
			require.Equal(t, tc.wantWAL, len(ids) == 1, "WAL entries: %v", ids)
			require.Len(t, f.iam.Keys(w.IAMID), tc.wantKeysBefore)

			for _, id := range ids {
				entry, err := framework.GetWAL(ctx, s, id)
				require.NoError(t, err)
				require.Equal(t, walKindIBMAPIKey, entry.Kind)
				// The entry holds no key value, only how to find the key.
				for _, k := range f.iam.Keys(w.IAMID) {
					raw, _ := s.Get(ctx, framework.WALPrefix+id)
					require.NotContains(t, string(raw.Value), f.iam.KeyValue(k.ID))
				}
				parsed, err := parseIBMAPIKeyWAL(entry.Data)
				require.NoError(t, err)
				require.Equal(t, w, parsed)
				require.NoError(t, rollbackIBMAPIKey(ctx, c, parsed))
			}
			require.Len(t, f.iam.Keys(w.IAMID), tc.wantKeysAfter)
		})
	}
}

// TestIBMAPIKeyRollbackDeletesOnlyItsKey: a rollback deletes the key of
// its name and no other key of the service ID, and finding none is fine.
func TestIBMAPIKeyRollbackDeletesOnlyItsKey(t *testing.T) {
	ctx := context.Background()
	f := newIBMFixture(t)
	c := f.client(t, newIBMBearers())
	for _, name := range []string{"job-a", "job-b", "job-a-2"} {
		_, err := c.createAPIKey(ctx, ibmAPIKeyRequest{Name: name, IAMID: f.iamID, AccountID: f.iam.AccountID})
		require.NoError(t, err)
	}
	w := ibmAPIKeyWAL{AccountID: f.iam.AccountID, IAMID: f.iamID, Name: "job-a"}
	require.NoError(t, rollbackIBMAPIKey(ctx, c, w))
	var names []string
	for _, k := range f.iam.Keys(f.iamID) {
		names = append(names, k.Name)
	}
	require.ElementsMatch(t, []string{"job-b", "job-a-2"}, names)
	require.NoError(t, rollbackIBMAPIKey(ctx, c, w), "nothing left to delete")

	_, err := parseIBMAPIKeyWAL(map[string]interface{}{"name": "x"})
	require.ErrorContains(t, err, "malformed")
	_, err = parseIBMAPIKeyWAL("not a map")
	require.ErrorContains(t, err, "malformed")
}
