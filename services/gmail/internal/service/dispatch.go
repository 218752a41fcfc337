package service

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/algapsa/alga-google/services/gmail/internal/store"
	"github.com/algapsa/alga-google/services/platform/jobs"
)

// The push path stores a notification in one statement, with no lock on its provider: the stored row
// is the durable enqueue. The dispatcher then turns fresh notifications into their mailboxes' coalesced
// sync jobs. Pushes that arrive while a dispatch runs wait together for the next one (a group commit:
// one transaction for every mailbox pushed to meanwhile), so a burst costs one dispatch transaction per
// batch, not per push, and pushes never queue behind each other on a provider row as they did when
// each push took it.
//
// Why no notification can be missed (the argument enqueueSync and finishIfIdle rely on, restated for
// the dispatcher): a push joins a batch only after its INSERT committed, and the batch's transaction
// begins only after that, so it runs after the notification is visible. It first locks the providers'
// rows (store.TouchLastPushes: FOR NO KEY UPDATE, which conflicts with finishIfIdle's FOR UPDATE), then
// inserts the coalesced jobs. For each provider, either a running sync's finishIfIdle took the lock first
// — and its look for pending notifications saw ours (another round), or it completed the job and our
// insert, a later statement, sees it completed and inserts a new one — or we took it first, our insert
// was skipped for the running job, and finishIfIdle's look, after our commit, sees our notification. A
// crash or a failed dispatch leaves the notification pending: the dispatcher retries (dispatchRetries, a
// second apart), then the sweeper (SweepAge) enqueues it.

// dispatchRetries is how often a failed dispatch is retried before the sweeper is left to it.
const dispatchRetries = 5

type providerKey struct{ tenant, id string }

// dispatchBatch is the providers pushed to since the last dispatch began, and the pushes waiting for it.
type dispatchBatch struct {
	keys  map[providerKey]int // the retry count of each provider's dispatch (0: a fresh push)
	done  chan struct{}
	err   error
}

func newBatch() *dispatchBatch {
	return &dispatchBatch{keys: map[providerKey]int{}, done: make(chan struct{})}
}

// dispatcher runs one dispatch at a time; the providers pushed to meanwhile form the next batch.
type dispatcher struct {
	// ctx bounds every dispatch (the service's Start context): a push that stops waiting does not cancel
	// the dispatch its batch shares.
	ctx     context.Context
	enqueue func(ctx context.Context, providers []providerKey) error
	wg      *sync.WaitGroup

	mu      sync.Mutex
	next    *dispatchBatch
	running bool
}

func newDispatcher(ctx context.Context, wg *sync.WaitGroup, enqueue func(ctx context.Context, providers []providerKey) error) *dispatcher {
	return &dispatcher{ctx: ctx, enqueue: enqueue, wg: wg}
}

// dispatch asks for a dispatch of the provider after now (call it after the notification committed)
// and waits for it, bounded by ctx.
func (d *dispatcher) dispatch(ctx context.Context, tenant, provider string) error {
	b := d.join(providerKey{tenant, provider}, 0)
	select {
	case <-b.done:
		return b.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// join adds the provider to the next batch and starts the dispatch loop unless it runs.
func (d *dispatcher) join(key providerKey, retry int) *dispatchBatch {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.ctx.Err(); err != nil {
		// Stopping: nothing new starts (the sweeper enqueues the notification after a restart).
		b := newBatch()
		b.err = err
		close(b.done)
		return b
	}
	if d.next == nil {
		d.next = newBatch()
	}
	b := d.next
	if r, ok := b.keys[key]; !ok || retry < r {
		b.keys[key] = retry
	}
	if !d.running {
		d.running = true
		d.wg.Add(1)
		go d.run()
	}
	return b
}

// run dispatches batches until none is left.
func (d *dispatcher) run() {
	defer d.wg.Done()
	for {
		d.mu.Lock()
		b := d.next
		d.next = nil
		if b == nil || d.ctx.Err() != nil {
			d.running = false
			d.mu.Unlock()
			if b != nil {
				b.err = d.ctx.Err()
				close(b.done)
			}
			return
		}
		d.mu.Unlock()
		keys := make([]providerKey, 0, len(b.keys))
		for k := range b.keys {
			keys = append(keys, k)
		}
		b.err = d.enqueue(d.ctx, keys)
		close(b.done)
		if b.err != nil && d.ctx.Err() == nil {
			for k, r := range b.keys {
				if r < dispatchRetries {
					d.retryLater(k, r+1)
				}
			}
		}
	}
}

func (d *dispatcher) retryLater(key providerKey, retry int) {
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		select {
		case <-d.ctx.Done():
		case <-time.After(time.Second):
			d.join(key, retry)
		}
	}()
}

// dispatchSyncs is the dispatcher's transaction: the providers' rows locked and their last_push_time
// set, then their coalesced sync jobs (see the top of this file). A provider deleted meanwhile needs
// nothing.
func (s *Service) dispatchSyncs(ctx context.Context, providers []providerKey) error {
	if s.river == nil {
		return errors.New("job queue not started")
	}
	tenants, ids := make([]string, len(providers)), make([]string, len(providers))
	for i, p := range providers {
		tenants[i], ids[i] = p.tenant, p.id
	}
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		live, err := store.TouchLastPushes(ctx, tx, tenants, ids)
		if err != nil || len(live) == 0 {
			return err
		}
		// In id order, as locked: the jobs' unique rows are then written in one order by every replica.
		slices.SortFunc(live, func(a, b store.TenantProvider) int { return cmp.Compare(a.ProviderID, b.ProviderID) })
		params := make([]river.InsertManyParams, len(live))
		for i, p := range live {
			params[i] = river.InsertManyParams{Args: SyncArgs{ProviderID: p.ProviderID, Tenant: p.Tenant}, InsertOpts: jobs.Coalesce()}
		}
		_, err = s.river.InsertManyTx(ctx, tx, params)
		return err
	})
}

