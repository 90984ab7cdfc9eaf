package backend

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"
)

// heldOwnerListing holds every listing of the owner entities, once it has
// read storage, until released, and counts them.
type heldOwnerListing struct {
	logical.Storage
	listings atomic.Int64
	started  chan struct{} // one value per listing that began
	release  chan struct{} // closed: listings go on
}

func (s *heldOwnerListing) List(ctx context.Context, prefix string) ([]string, error) {
	keys, err := s.Storage.List(ctx, prefix)
	if prefix == entityPrefix {
		s.listings.Add(1)
		s.started <- struct{}{}
		<-s.release
	}
	return keys, err
}

func holdOwnerListings(env *testEnv) *heldOwnerListing {
	held := &heldOwnerListing{Storage: env.storage.Storage, started: make(chan struct{}, 100), release: make(chan struct{})}
	env.storage.Storage = held
	return held
}

// inventoryPage lists the first page of the inventory in the background.
func inventoryPage(env *testEnv) <-chan []interface{} {
	page := make(chan []interface{}, 1)
	go func() {
		resp, err := env.do(logical.ListOperation, "inventory/tokens/", "", map[string]interface{}{"limit": 1000})
		if err != nil || resp.IsError() {
			page <- nil
			return
		}
		keys, _ := resp.Data["keys"].([]string)
		listed := make([]interface{}, len(keys))
		for i, key := range keys {
			listed[i] = key
		}
		page <- listed
	}()
	return page
}

// Sixteen dashboards paging at once share listings of every owner instead
// of each holding its own: one runs, the pages that came meanwhile share
// the next.
func TestOwnerListing_concurrentPagesShareTheListing(t *testing.T) {
	env := newTestEnv(t)
	for u := range 5 {
		user := fmt.Sprintf("u%d", u)
		env.createToken(user, env.addUser(user), "laptop", nil)
	}
	held := holdOwnerListings(env)

	first := inventoryPage(env)
	<-held.started
	var pages []<-chan []interface{}
	for range 15 {
		pages = append(pages, inventoryPage(env))
	}
	// The fifteen are waiting for the next listing, none has started one.
	time.Sleep(50 * time.Millisecond)
	require.EqualValues(t, 1, held.listings.Load())
	close(held.release)

	require.Len(t, <-first, 5)
	for _, page := range pages {
		require.Len(t, <-page, 5)
	}
	require.EqualValues(t, 2, held.listings.Load(), "the first page's listing, and one for the fifteen")
}

// A page that arrives while a listing runs does not take that listing's
// answer: it sees an owner whose first token was written before it asked.
func TestOwnerListing_aPageSeesOwnersWrittenBeforeItAsked(t *testing.T) {
	env := newTestEnv(t)
	env.createToken("alice", env.addUser("alice"), "laptop", nil)
	held := holdOwnerListings(env)

	first := inventoryPage(env)
	<-held.started // alice alone was listed; the answer is held
	bob := env.addUser("bob")
	env.createToken("bob", bob, "laptop", nil)
	second := inventoryPage(env)
	time.Sleep(20 * time.Millisecond)
	close(held.release)

	<-first
	require.Len(t, <-second, 2, "bob's token was written before the page asked")
}

// A page whose request goes away does not fail the pages sharing its
// listing.
func TestOwnerListing_aCancelledPageLeavesTheOthersTheirListing(t *testing.T) {
	env := newTestEnv(t)
	env.createToken("alice", env.addUser("alice"), "laptop", nil)
	held := holdOwnerListings(env)

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, err := env.b.ownerListing.list(ctx, env.storage)
		require.ErrorIs(t, err, context.Canceled)
	}()
	<-held.started
	other := inventoryPage(env)
	cancel()
	wg.Wait()
	close(held.release)
	require.Len(t, <-other, 1)
}
