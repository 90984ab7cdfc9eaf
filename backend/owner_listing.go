package backend

import (
	"context"
	"sort"
	"sync"

	"github.com/hashicorp/vault/sdk/logical"
)

// ownerListing shares the listing of every owner entity among the
// inventory pages that ask for it at the same time. Storage has no paged
// List, so a page lists every owner to find where it starts: at 100,000
// owners that is a few megabytes in the plugin, and sixteen dashboards
// paging at once held sixteen of them (bench-scale's plugin peaked at
// 613 MiB). Here at most one listing runs and the pages that arrive
// meanwhile wait for the next one, which they then share: the listings in
// memory are the one running and those the pages still reading their
// owners (at most 100 each) took, not one per page.
//
// A page never uses a listing that started before it arrived: it sees
// every owner whose first token was written before its request, as a
// listing of its own would.
type ownerListing struct {
	mu      sync.Mutex
	running bool
	// next is the listing the pages that arrived while one runs wait for;
	// it starts when the running one ends.
	next *ownerListingRun
}

// ownerListingRun is one listing; ids is sorted and shared, never
// modified once done is closed.
type ownerListingRun struct {
	done chan struct{}
	ids  []string
	err  error
}

// list returns the sorted ids of every owner entity, from a listing that
// started after the call. The slice is shared: callers must not modify it.
func (l *ownerListing) list(ctx context.Context, s logical.Storage) ([]string, error) {
	l.mu.Lock()
	if l.next == nil {
		l.next = &ownerListingRun{done: make(chan struct{})}
	}
	run := l.next
	if !l.running {
		l.start(s)
	}
	l.mu.Unlock()
	select {
	case <-run.done:
		return run.ids, run.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// start runs the next listing; l.mu is held. The listing takes no page's
// context: the pages sharing it must not fail because one of them went
// away. It uses the storage of the page that started the first listing,
// which is every page's: Vault gives a backend one storage view.
func (l *ownerListing) start(s logical.Storage) {
	run := l.next
	l.next, l.running = nil, true
	go func() {
		run.ids, run.err = listOwnerEntities(context.Background(), s)
		if run.err == nil {
			sort.Strings(run.ids)
		}
		close(run.done)
		l.mu.Lock()
		defer l.mu.Unlock()
		l.running = false
		if l.next != nil {
			l.start(s)
		}
	}()
}
