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
// rows (store.TouchLastPushes: FOR NO KEY UPDATE, which conflicts with finishIfIdle's LockProvider), then
// inserts the coalesced jobs of the providers that have none waiting or running (jobs.Coalescing: those
// River would skip anyway). For each provider, either a running sync's finishIfIdle took the lock first
// — and its look for pending notifications saw ours (another round), or it completed the job and our
// insert, a later statement, sees it completed and inserts a new one — or we took it first, our insert
// was skipped for the running job, and finishIfIdle's look, after our commit, sees our notification. A
// crash or a failed dispatch leaves the notification pending: the dispatcher retries (dispatchRetries, a
// second apart), then the sweeper (SweepAge) enqueues it.

// dispatchLinger is how long the dispatcher collects pushes before each dispatch: under a burst, a few
// dispatch transactions a second for every mailbox pushed to meanwhile, instead of one after another as
// fast as they commit (each locking its providers and writing their jobs). A sync waits for its
// mailbox's burst to settle (Options.Settle) anyway, so the linger adds nothing a user could see.
const dispatchLinger = 50 * time.Millisecond

// dispatchRetries is how often a failed dispatch is retried (a second apart) before the sweeper is
// left to it.
const dispatchRetries = 5

type providerKey struct{ tenant, id string }

// groupCommit runs fn over the items submitted while its earlier runs were in flight — at most writers
// runs at once, each over at most max items — and hands each submitter its item's result. Under load
// the batches grow by themselves: one statement or transaction (and one commit) serves many requests.
// With a linger, a run first waits that long for more items (a batch a linger, at most).
type groupCommit[T, R any] struct {
	// ctx bounds every run (the service's Start context): a submitter that stops waiting does not cancel
	// the run its item shares.
	ctx          context.Context
	wg           *sync.WaitGroup
	fn           func(ctx context.Context, items []T) ([]R, error)
	writers, max int
	linger       time.Duration

	mu     sync.Mutex
	queue  []*groupCall[T, R]
	active int
}

type groupCall[T, R any] struct {
	item T
	res  R
	err  error
	done chan struct{}
	// onDone, when set, is called with the outcome instead of anyone waiting (submit).
	onDone func(error)
}

func newGroupCommit[T, R any](ctx context.Context, wg *sync.WaitGroup, writers, max int, linger time.Duration, fn func(context.Context, []T) ([]R, error)) *groupCommit[T, R] {
	return &groupCommit[T, R]{ctx: ctx, wg: wg, fn: fn, writers: writers, max: max, linger: linger}
}

// do submits item to a run that starts after now and waits for its result, bounded by ctx.
func (g *groupCommit[T, R]) do(ctx context.Context, item T) (R, error) {
	c := &groupCall[T, R]{item: item, done: make(chan struct{})}
	if err := g.enqueue(c); err != nil {
		var zero R
		return zero, err
	}
	select {
	case <-c.done:
		return c.res, c.err
	case <-ctx.Done():
		var zero R
		return zero, ctx.Err()
	}
}

// submit is do without waiting: onDone gets the outcome (it is not called when stopping).
func (g *groupCommit[T, R]) submit(item T, onDone func(error)) {
	_ = g.enqueue(&groupCall[T, R]{item: item, done: make(chan struct{}), onDone: onDone})
}

func (g *groupCommit[T, R]) enqueue(c *groupCall[T, R]) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.ctx.Err(); err != nil {
		return err // stopping: nothing new starts
	}
	g.queue = append(g.queue, c)
	if g.active < g.writers {
		g.active++
		g.wg.Add(1)
		go g.loop()
	}
	return nil
}

func (g *groupCommit[T, R]) loop() {
	defer g.wg.Done()
	for {
		if g.linger > 0 {
			select {
			case <-g.ctx.Done():
			case <-time.After(g.linger):
			}
		}
		g.mu.Lock()
		if len(g.queue) == 0 || g.ctx.Err() != nil {
			left := g.queue
			g.queue = nil
			g.active--
			g.mu.Unlock()
			for _, c := range left {
				c.err = g.ctx.Err()
				close(c.done)
			}
			return
		}
		n := min(len(g.queue), g.max)
		calls := slices.Clone(g.queue[:n])
		g.queue = slices.Delete(g.queue, 0, n)
		g.mu.Unlock()
		items := make([]T, n)
		for i, c := range calls {
			items[i] = c.item
		}
		res, err := g.fn(g.ctx, items)
		if err == nil && len(res) != n {
			err = errors.New("group commit: a result per item expected")
		}
		for i, c := range calls {
			if err == nil {
				c.res = res[i]
			}
			c.err = err
			close(c.done)
			if c.onDone != nil {
				c.onDone(err)
			}
		}
	}
}

// dispatcher runs one dispatch transaction at a time, each dispatchLinger after the previous one ended
// (or after the first push), over the providers pushed to meanwhile.
type dispatcher struct {
	g *groupCommit[providerKey, struct{}]
}

func newDispatcher(ctx context.Context, wg *sync.WaitGroup, enqueue func(ctx context.Context, providers []providerKey) error) *dispatcher {
	return &dispatcher{g: newGroupCommit(ctx, wg, 1, 1000, dispatchLinger, func(ctx context.Context, keys []providerKey) ([]struct{}, error) {
		// Each provider once per transaction, whatever the number of pushes for it.
		seen := make(map[providerKey]bool, len(keys))
		set := make([]providerKey, 0, len(keys))
		for _, k := range keys {
			if !seen[k] {
				seen[k] = true
				set = append(set, k)
			}
		}
		return make([]struct{}, len(keys)), enqueue(ctx, set)
	})}
}

// dispatch has the provider's sync enqueued by a dispatch transaction that begins after now (call it
// once the notification committed), without waiting for it. A failure is retried a second later, up to
// dispatchRetries times; then the sweeper enqueues the notification.
func (d *dispatcher) dispatch(tenant, provider string) {
	d.submit(providerKey{tenant, provider}, 0)
}

func (d *dispatcher) submit(key providerKey, attempt int) {
	d.g.submit(key, func(err error) {
		if err == nil || attempt >= dispatchRetries {
			return
		}
		d.g.wg.Add(1)
		go func() {
			defer d.g.wg.Done()
			select {
			case <-d.g.ctx.Done():
			case <-time.After(time.Second):
				d.submit(key, attempt+1)
			}
		}()
	})
}

// dispatchSyncs is the dispatcher's transaction: the providers' rows locked (and last_push_time, which a
// push skips while the row is locked), then their coalesced sync jobs (see the top of this file). A
// provider deleted meanwhile needs nothing.
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
		ids := make([]string, len(live))
		for i, p := range live {
			ids[i] = p.ProviderID
		}
		queued, err := jobs.Coalescing(ctx, tx, s.river, SyncArgs{}.Kind(), "provider_id", ids)
		if err != nil {
			return err
		}
		// In id order, as locked: the jobs' unique rows are then written in one order by every replica.
		slices.SortFunc(live, func(a, b store.TenantProvider) int { return cmp.Compare(a.ProviderID, b.ProviderID) })
		params := make([]river.InsertManyParams, 0, len(live))
		for _, p := range live {
			if !queued[p.ProviderID] {
				params = append(params, river.InsertManyParams{Args: SyncArgs{ProviderID: p.ProviderID, Tenant: p.Tenant}, InsertOpts: jobs.Coalesce()})
			}
		}
		if len(params) == 0 {
			return nil
		}
		_, err = s.river.InsertManyTx(ctx, tx, params)
		return err
	})
}
