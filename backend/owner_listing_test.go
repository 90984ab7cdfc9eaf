package backend

import (
	"context"
	"fmt"
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
		if ctx.Err() != nil {
			// As a gRPC storage call would fail.
			return nil, ctx.Err()
		}
	}
	return keys, err
}

// pagesWait gives pages started in the background time to reach the
// listing and wait for it.
const pagesWait = 100 * time.Millisecond

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
	time.Sleep(pagesWait)
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
	time.Sleep(pagesWait)
	close(held.release)

	<-first
	require.Len(t, <-second, 2, "bob's token was written before the page asked")
}

// A page whose request goes away returns at once, and the listing it was
// waiting for, shared with others, goes on without its context.
func TestOwnerListing_aCancelledPageLeavesTheOthersTheirListing(t *testing.T) {
	env := newTestEnv(t)
	env.createToken("alice", env.addUser("alice"), "laptop", nil)
	held := holdOwnerListings(env)

	first := inventoryPage(env)
	<-held.started // the first listing, held
	ctx, cancel := context.WithCancel(context.Background())
	cancelled := make(chan error, 1)
	go func() {
		_, err := env.b.ownerListing.list(ctx, env.storage)
		cancelled <- err
	}()
	other := inventoryPage(env)
	time.Sleep(pagesWait) // both wait for the next listing
	cancel()
	require.ErrorIs(t, <-cancelled, context.Canceled, "the cancelled page returns while the listings are held")
	close(held.release)

	require.Len(t, <-first, 1)
	require.Len(t, <-other, 1, "the next listing ran without the cancelled page's context")
	require.EqualValues(t, 2, held.listings.Load())
}
