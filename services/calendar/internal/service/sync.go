package service

import (
	"context"
	"errors"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	calendar "google.golang.org/api/calendar/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/algapsa/alga-google/services/calendar/internal/gcal"
	"github.com/algapsa/alga-google/services/calendar/internal/store"
	"github.com/algapsa/alga-google/services/platform/errs"
	"github.com/algapsa/alga-google/services/platform/feed"
	"github.com/algapsa/alga-google/services/platform/jobs"
)

// SyncArgs is the River job of one provider's delta sync, unique per provider (coalesced).
type SyncArgs struct {
	Tenant     string `json:"tenant" river:"unique"`
	ProviderID string `json:"provider_id" river:"unique"`
}

// Kind implements river.JobArgs.
func (SyncArgs) Kind() string { return "calendar_sync" }

// SyncWorker runs delta syncs.
type SyncWorker struct {
	river.WorkerDefaults[SyncArgs]
	s *Service
}

// sweepInterval is how often providers with uncovered notifications get a sync enqueued.
const sweepInterval = 2 * time.Second

// AddWorkers adds the service's River workers to workers — the sync worker and the sweeper — and
// returns the periodic jobs for jobs.Options.
func (s *Service) AddWorkers(workers *river.Workers) []*river.PeriodicJob {
	river.AddWorker(workers, &SyncWorker{s: s})
	return []*river.PeriodicJob{jobs.AddSweeper(workers, sweepInterval, s.sweep)}
}

// Timeout bounds one sync run (a full sync of a big calendar may take minutes). River's rescue waits at
// least this long, so a crashed replica's job is recovered earlier by the sweeper, from its lapsed sync
// lease (see sweep).
func (w *SyncWorker) Timeout(*river.Job[SyncArgs]) time.Duration { return 10 * time.Minute }

// syncLeaseTTL is how long a sync job's lease outlives its last renewal: the job renews it every TTL/3
// while it runs (lease.Table.HoldForJob), so a live job never loses it and a dead replica's lapses within 20 s.
const syncLeaseTTL = 20 * time.Second

// Work waits for a burst of notifications to settle, then syncs until no notification is left that
// arrived during the run, and completes itself only once that is certain (see finishIfIdle). It holds
// the provider's sync lease throughout, so the sweeper can tell a live job from a dead replica's.
func (w *SyncWorker) Work(ctx context.Context, job *river.Job[SyncArgs]) error {
	// A lease held by another holder is another run of this provider (one ended as abandoned that turned
	// out alive): the job snoozes and looks again shortly.
	ctx, release, err := store.SyncLeases.HoldForJob(ctx, w.s.deps.Pool, w.s.log, job.Args.Tenant, job.Args.ProviderID, job.ID, syncLeaseTTL)
	if release == nil {
		return err
	}
	defer release()
	if err := w.s.settle(ctx, job.Args.Tenant, job.Args.ProviderID); err != nil {
		return err
	}
	for range maxPasses {
		err := w.s.SyncProvider(ctx, job.Args.Tenant, job.Args.ProviderID)
		switch {
		case errors.Is(err, errMoreWork):
			return river.JobSnooze(time.Second)
		case isPermanent(err):
			// Recorded on the provider (status + remedy); retrying cannot help until the user acts.
			return river.JobCancel(err)
		case err != nil:
			return jobs.SnoozeLater(err) // a tenant's Google cool-down: run again when it ends
		}
		idle, err := w.s.finishIfIdle(ctx, job)
		if err != nil || idle {
			return err
		}
	}
	return river.JobSnooze(time.Second)
}

// finishIfIdle completes the job unless a notification is still uncovered, in one transaction holding
// the provider's row lock — the lock a notification's BumpNotify takes before it enqueues: either this
// look sees that notification, or its enqueue finds the job completed and inserts a new one.
func (s *Service) finishIfIdle(ctx context.Context, job *river.Job[SyncArgs]) (bool, error) {
	return jobs.FinishIfIdle(ctx, s.deps.Pool, job, func(ctx context.Context, tx pgx.Tx) (bool, error) {
		p, err := store.GetProviderForUpdate(ctx, tx, job.Args.Tenant, job.Args.ProviderID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return false, err
		}
		behind := err == nil && p.NotifySeq > p.SyncedSeq && (p.State == store.StateConnected || p.State == store.StateConnecting)
		return !behind, nil
	})
}

// sweep enqueues a sync for each provider with accepted notifications that no completed sync covered —
// a safety net (e.g. a job cancelled or discarded after its notifications were stored, a lost enqueue,
// a crash); the normal path needs none (see finishIfIdle). It runs as River's periodic sweep job, on one
// replica at a time. Providers whose sync lease is held have a live job on them and are not listed; a
// sync job still "running" for one of the others since before the lease's TTL is a dead replica's (a
// live job holds the lease from its first moment): it is ended (jobs.EndAbandoned) — it would block the
// coalescing key until River's rescue, 10 minutes later — in the transaction that enqueues anew.
func (s *Service) sweep(ctx context.Context) error {
	behind, err := store.ProvidersBehind(ctx, s.deps.Pool, 500)
	if err != nil || len(behind) == 0 {
		return err
	}
	params := make([]river.InsertManyParams, 0, len(behind))
	ids := make([]string, 0, len(behind))
	for _, p := range behind {
		params = append(params, river.InsertManyParams{Args: SyncArgs{Tenant: p.Tenant, ProviderID: p.ID}, InsertOpts: jobs.Coalesce()})
		ids = append(ids, p.ID)
	}
	return pgx.BeginFunc(ctx, s.deps.Pool, func(tx pgx.Tx) error {
		ended, err := jobs.EndAbandoned(ctx, tx, s.jobs, SyncArgs{}.Kind(), time.Now().Add(-syncLeaseTTL),
			"args->>'provider_id' = ANY(@provider_ids)", river.NamedArgs{"provider_ids": ids})
		if err != nil {
			return err
		}
		if ended > 0 {
			s.log.WarnContext(ctx, "calendar sync: ended dead replicas' sync jobs (their leases lapsed)", "jobs", ended)
		}
		_, err = s.jobs.InsertManyTx(ctx, tx, params)
		return err
	})
}

// settle waits (briefly, at most MaxSettle) until the provider's newest notification is Settle old, so
// the notifications of a burst are all covered by one pass instead of one pass each.
func (s *Service) settle(ctx context.Context, tenant, providerID string) error {
	return jobs.Settle(ctx, s.deps.Settle, s.deps.MaxSettle, func(ctx context.Context) (time.Duration, bool, error) {
		return store.NotificationQuiet(ctx, s.deps.Pool, tenant, providerID)
	})
}

// errMoreWork means notifications keep arriving: the job is snoozed briefly and runs again.
var errMoreWork = errors.New("more notifications arrived during the sync")

// maxPasses bounds the sync passes of one run.
const maxPasses = 5

func isPermanent(err error) bool {
	if err == nil {
		return false
	}
	var de *errs.Error
	if errors.As(err, &de) {
		return de.Code == codes.FailedPrecondition
	}
	return status.Code(err) == codes.FailedPrecondition
}

// SyncProvider runs sync passes for a provider until no notification arrived during the last one. One
// pass at a time per provider: passes that overlap anyway (e.g. an activation and a job, or an upkeep
// delta sync and a job) are detected when they write (the sync token must still be the one they
// started from) and the loser starts over. A 401 forces one token refresh and one retry (withGoogle).
// It is the one sync path: River's sync job and scheduled upkeep's delta sync both run it.
func (s *Service) SyncProvider(ctx context.Context, tenant, providerID string) error {
	p, err := store.GetProvider(ctx, s.deps.Pool, tenant, providerID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if p.State == store.StateDisconnected {
		return nil
	}
	err = s.withGoogle(ctx, p, func(_ Token, cl *gcal.Client) error {
		return s.syncPasses(ctx, tenant, providerID, cl)
	})
	if err == nil || errors.Is(err, errMoreWork) {
		return err
	}
	return s.googleError(ctx, p, "events.list", err)
}

// syncPasses runs passes with cl until none is needed (errMoreWork after maxPasses).
func (s *Service) syncPasses(ctx context.Context, tenant, providerID string, cl *gcal.Client) error {
	for range maxPasses {
		more, err := s.syncOnce(ctx, tenant, providerID, cl)
		if errors.Is(err, errRaced) {
			continue
		}
		if err != nil || !more {
			return err
		}
	}
	return errMoreWork
}

// syncWith runs passes with a given client until the provider's state is written (activation).
func (s *Service) syncWith(ctx context.Context, tenant, providerID string, cl *gcal.Client) error {
	for range maxPasses {
		if _, err := s.syncOnce(ctx, tenant, providerID, cl); !errors.Is(err, errRaced) {
			return err
		}
	}
	return errRaced
}

// errRaced means another pass wrote first; the pass is discarded and redone.
var errRaced = errors.New("a concurrent sync wrote first")

// syncOnce runs one pass: lists what changed since the stored sync token (everything when there is none,
// or when Google answers 410), then in one transaction records the changes and the new token. It reports
// whether another pass is needed (notifications arrived meanwhile, or a concurrent pass won).
func (s *Service) syncOnce(ctx context.Context, tenant, providerID string, cl *gcal.Client) (more bool, err error) {
	p, err := store.GetProvider(ctx, s.deps.Pool, tenant, providerID)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil // deleted meanwhile: nothing to sync
	}
	if err != nil {
		return false, fromStore(err)
	}
	if p.State == store.StateDisconnected {
		return false, nil
	}
	startSeq, gen, oldToken := p.NotifySeq, p.Generation, p.SyncToken
	kind := "delta"
	if oldToken == "" {
		kind = "full"
	}
	events, next, err := cl.ListEvents(ctx, p.CalendarID, oldToken)
	resync := false
	if errors.Is(err, gcal.ErrSyncTokenGone) {
		s.log.InfoContext(ctx, "calendar sync token expired: full resync", "provider", p.ID)
		resync, kind = true, "resync"
		events, next, err = cl.ListEvents(ctx, p.CalendarID, "")
	}
	if err != nil {
		s.metrics.syncs.WithLabelValues(kind, "error").Inc()
		return false, err
	}
	full := oldToken == "" || resync

	raced, recorded := false, 0
	err = s.withTx(ctx, func(tx pgx.Tx) error {
		cur, err := store.GetProviderForUpdate(ctx, tx, tenant, providerID)
		if err != nil {
			return err
		}
		if cur.Generation != gen || cur.SyncToken != oldToken || cur.CalendarID != p.CalendarID || cur.State == store.StateDisconnected {
			raced = true
			return nil
		}
		known, err := store.ListEvents(ctx, tx, tenant, providerID)
		if err != nil {
			return err
		}
		had := false
		if full {
			if had, err = store.HasChanges(ctx, tx, tenant, providerID); err != nil {
				return err
			}
		}
		// Changes are appended through the feed's appender: its first insert takes the tenant's append
		// lock (held to commit, so cursors become visible in order), and it wakes the change streams of
		// every replica once this transaction commits. Everything slow (events.list) happened before.
		app := s.feed.Appender(tx, tenant)
		if full {
			if resync || had {
				// Consumers reconcile: what follows is the full picture relative to what they have.
				if _, err := store.InsertChange(ctx, app, store.Change{Tenant: tenant, ProviderID: providerID,
					UserID: cur.UserID, CalendarID: cur.CalendarID, Type: store.ChangeResync}); err != nil {
					return err
				}
				recorded++
			}
		}
		seen := make(map[string]bool, len(events))
		for _, e := range events {
			if e == nil || e.Id == "" || seen[e.Id] {
				continue
			}
			seen[e.Id] = true
			ok, err := recordEvent(ctx, tx, app, cur, known, e)
			if err != nil {
				return err
			}
			if ok {
				recorded++
			}
		}
		if full {
			// A full listing omits deleted events: whatever we knew that is gone was cancelled meanwhile.
			ids := make([]string, 0, len(known))
			for id := range known {
				ids = append(ids, id)
			}
			sort.Strings(ids)
			for _, id := range ids {
				st := known[id]
				if seen[id] || st.Status == "cancelled" {
					continue
				}
				if _, err := store.InsertChange(ctx, app, store.Change{Tenant: tenant, ProviderID: providerID,
					UserID: cur.UserID, CalendarID: cur.CalendarID, Type: store.ChangeCancelled, EventID: id,
					EventStatus: "cancelled", ETag: st.ETag}); err != nil {
					return err
				}
				if err := store.UpsertEvent(ctx, tx, tenant, providerID, id, st.ETag, "cancelled", nil); err != nil {
					return err
				}
				recorded++
			}
		}
		return store.SaveSync(ctx, tx, tenant, providerID, next, startSeq)
	})
	if err != nil {
		// Everything in the transaction is ours: Google answered before it began.
		return false, fromStore(err)
	}
	if raced {
		s.metrics.syncs.WithLabelValues(kind, "raced").Inc()
		return true, errRaced
	}
	s.metrics.syncs.WithLabelValues(kind, "ok").Inc()
	s.log.InfoContext(ctx, "calendar synced", "provider", providerID, "kind", kind, "events", len(events), "changes", recorded)
	cur, err := store.GetProvider(ctx, s.deps.Pool, tenant, providerID)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fromStore(err)
	}
	return cur.NotifySeq > startSeq, nil
}

// recordEvent records a change for e unless it is the state already seen (same etag).
func recordEvent(ctx context.Context, tx pgx.Tx, app *feed.Appender, p *store.Provider, known map[string]store.EventState, e *calendar.Event) (bool, error) {
	prev, ok := known[e.Id]
	if ok && prev.ETag == e.Etag {
		return false, nil
	}
	cancelled := e.Status == "cancelled"
	updated := parseTime(e.Updated)
	if ok && cancelled && prev.Status == "cancelled" {
		known[e.Id] = store.EventState{EventID: e.Id, ETag: e.Etag, Status: e.Status}
		return false, store.UpsertEvent(ctx, tx, p.Tenant, p.ID, e.Id, e.Etag, e.Status, updated)
	}
	typ := int16(store.ChangeUpdated)
	switch {
	case cancelled:
		typ = store.ChangeCancelled
	case !ok || prev.Status == "cancelled":
		typ = store.ChangeCreated
	}
	c := store.Change{
		Tenant: p.Tenant, ProviderID: p.ID, UserID: p.UserID, CalendarID: p.CalendarID, Type: typ,
		EventID: e.Id, ICalUID: e.ICalUID, Summary: e.Summary, Description: e.Description, Location: e.Location,
		EventStatus: e.Status, ETag: e.Etag, EventUpdateTime: updated,
	}
	if e.Start != nil {
		if e.Start.DateTime != "" {
			c.StartTime = parseTime(e.Start.DateTime)
		} else if e.Start.Date != "" {
			c.AllDay, c.StartDate = true, e.Start.Date
		}
	}
	if e.End != nil {
		if e.End.DateTime != "" {
			c.EndTime = parseTime(e.End.DateTime)
		} else if e.End.Date != "" {
			c.EndDate = e.End.Date
		}
	}
	if _, err := store.InsertChange(ctx, app, c); err != nil {
		return false, err
	}
	known[e.Id] = store.EventState{EventID: e.Id, ETag: e.Etag, Status: e.Status}
	return true, store.UpsertEvent(ctx, tx, p.Tenant, p.ID, e.Id, e.Etag, e.Status, updated)
}

func parseTime(s string) *time.Time {
	if s == "" {
		return nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return nil
	}
	t = t.UTC()
	return &t
}
