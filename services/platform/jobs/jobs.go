// Package jobs sets up River (Postgres-backed durable jobs) inside a service's own schema, so a webhook
// can store its notification and enqueue the follow-up work in one transaction.
package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"

	"github.com/algapsa/alga-google/services/platform/googleretry"
)

// Migrate installs or upgrades River's tables in schema (which must exist: the service's own
// migrations create it).
func Migrate(ctx context.Context, pool *pgxpool.Pool, schema string, log *slog.Logger) error {
	m, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{Schema: schema, Logger: log})
	if err != nil {
		return err
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("river migrations in schema %s: %w", schema, err)
	}
	return nil
}

// Options configure a River client.
type Options struct {
	Schema  string
	Workers *river.Workers
	// Queues default to {"default": 4 workers}.
	Queues       map[string]river.QueueConfig
	PeriodicJobs []*river.PeriodicJob
	Logger       *slog.Logger
	// TestOnly speeds River up for tests (periodic jobs start sooner, etc.).
	TestOnly bool
}

// Client is a River client on pgx transactions.
type Client = river.Client[pgx.Tx]

// New migrates River's tables and returns a client (call Start to work jobs, Stop on shutdown).
func New(ctx context.Context, pool *pgxpool.Pool, opts Options) (*Client, error) {
	if err := Migrate(ctx, pool, opts.Schema, opts.Logger); err != nil {
		return nil, err
	}
	queues := opts.Queues
	if queues == nil {
		queues = map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 4}}
	}
	return river.NewClient(riverpgxv5.New(pool), &river.Config{
		Schema:       opts.Schema,
		Queues:       queues,
		Workers:      opts.Workers,
		PeriodicJobs: opts.PeriodicJobs,
		Logger:       opts.Logger,
		TestOnly:     opts.TestOnly,
		JobTimeout:   5 * time.Minute,
		// A job left "running" by a crashed replica blocks its coalescing key until rescued; jobs time out
		// after 5 minutes, so 10 minutes is safely past any live run.
		RescueStuckJobsAfter: 10 * time.Minute,
	})
}

// Coalesce returns insert options that keep at most one not-yet-finished job per unique args, so ten
// notifications for one mailbox enqueue one sync. Completed jobs do not block a new one (River's default
// ByState would, for 24 hours). A job inserted while one is running is skipped, so a worker must re-check
// for work that arrived during its run — and, to leave no gap between that last check and River marking
// the job completed, do both in one transaction with CompleteTx, under a lock the enqueuers take too
// (e.g. the provider's row, FOR UPDATE) before InsertTx.
func Coalesce() *river.InsertOpts {
	return &river.InsertOpts{UniqueOpts: river.UniqueOpts{
		ByArgs: true,
		ByState: []rivertype.JobState{
			rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRunning,
			rivertype.JobStateScheduled, rivertype.JobStateRetryable,
		},
	}}
}

// CompleteTx marks a running job completed inside tx (see Coalesce for why a worker does this itself):
// if tx rolls back, so does the completion; when Work then returns nil, River leaves the job as it is.
func CompleteTx[T river.JobArgs](ctx context.Context, tx pgx.Tx, job *river.Job[T]) error {
	_, err := river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, job)
	return err
}

// SnoozeLater is what a worker returns for err: when err asks to be retried at a given time — a
// *googleretry.RetryLater, the tenant's Google cool-down — a snooze until then (at least a second), so
// the job runs again when Google may be asked, without using up one of its attempts (River never
// discards a snoozed job) and without holding a worker meanwhile; any other error as it is.
func SnoozeLater(err error) error {
	if until, ok := googleretry.Later(err); ok {
		return river.JobSnooze(max(time.Until(until), time.Second))
	}
	return err
}

// Stop waits until client has stopped, bounded by ctx. The client stops by itself once the context its
// Start was given ends (River then cancels the running jobs and records them as failed, to be retried);
// a target's Stop calls this so that the binary closes the pool only afterwards. Closing the pool first
// would leave a job "running" in the database — blocking its coalescing key until River rescues it, 10
// minutes later. A nil client (never started) is stopped.
func Stop(ctx context.Context, client *Client) error {
	if client == nil {
		return nil
	}
	select {
	case <-client.Stopped():
		return nil
	case <-ctx.Done():
		return fmt.Errorf("river client did not stop in time: %w", ctx.Err())
	}
}

// sweepArgs is the periodic sweep of one River schema (each service has its own, so one kind suffices).
type sweepArgs struct{}

func (sweepArgs) Kind() string { return "sweep" }

// AddSweeper adds a periodic job that calls sweep every interval, on one replica at a time (River runs
// periodic jobs on its leader), and returns it for Options.PeriodicJobs. A sweep re-enqueues work a
// coalesced job could have missed; it must be cheap when there is nothing to do.
func AddSweeper(workers *river.Workers, every time.Duration, sweep func(context.Context) error) *river.PeriodicJob {
	river.AddWorker(workers, river.WorkFunc(func(ctx context.Context, _ *river.Job[sweepArgs]) error {
		return sweep(ctx)
	}))
	return river.NewPeriodicJob(river.PeriodicInterval(every), func() (river.JobArgs, *river.InsertOpts) {
		return sweepArgs{}, Coalesce()
	}, &river.PeriodicJobOpts{RunOnStart: true})
}

// Settle waits briefly until a burst of notifications has stopped, so a burst causes one run. latest
// reports how long ago the newest pending notification arrived, or ok=false when none is pending. Settle
// returns when none is pending, the newest is `quiet` old, or `limit` has passed.
func Settle(ctx context.Context, quiet, limit time.Duration, latest func(context.Context) (age time.Duration, ok bool, err error)) error {
	deadline := time.Now().Add(limit)
	for {
		age, ok, err := latest(ctx)
		if err != nil || !ok || age >= quiet || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(quiet - age):
		}
	}
}

// FinishIfIdle completes a coalesced job unless work arrived during its run. In one transaction it calls
// idle — which takes the lock every enqueuer takes before InsertTx (e.g. the provider row, FOR UPDATE)
// and looks for work left — and, when idle, marks the job completed (CompleteTx). Either that look sees
// an enqueuer's work, or the enqueuer's insert sees the job completed and inserts a new one: no gap.
func FinishIfIdle[T river.JobArgs](ctx context.Context, pool *pgxpool.Pool, job *river.Job[T], idle func(context.Context, pgx.Tx) (bool, error)) (bool, error) {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return false, err
	}
	defer tx.Rollback(ctx) //nolint:errcheck // after Commit it is a no-op
	ok, err := idle(ctx, tx)
	if err != nil || !ok {
		return false, err
	}
	if err := CompleteTx(ctx, tx, job); err != nil {
		return false, err
	}
	return true, tx.Commit(ctx)
}
