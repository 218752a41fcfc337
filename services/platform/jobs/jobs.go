// Package jobs sets up River (Postgres-backed durable jobs) inside a service's own schema, so a webhook
// can store its notification and enqueue the follow-up work in one transaction.
package jobs

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
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
	// JobTimeout bounds a job whose worker sets no Timeout of its own (0 = 5 minutes). RescueAfter is
	// how long a job may stay "running" before River's rescuer retries it — a crashed replica's job
	// blocks its coalescing key until then — and must exceed JobTimeout (0 = JobTimeout + 5 minutes).
	// River's rescuer looks every 30 s, so a dead job is retried RescueAfter to RescueAfter + 30 s
	// after it started. A service whose jobs are short keeps both short; one with long jobs keeps them
	// long and proves liveness another way (a lease with a heartbeat, see EndAbandoned).
	JobTimeout  time.Duration
	RescueAfter time.Duration
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
	timeout := cmp.Or(opts.JobTimeout, DefaultJobTimeout)
	rescue := cmp.Or(opts.RescueAfter, timeout+defaultRescueSlack)
	if rescue <= timeout {
		return nil, fmt.Errorf("jobs: RescueAfter (%s) must exceed JobTimeout (%s)", rescue, timeout)
	}
	return river.NewClient(riverpgxv5.New(pool), &river.Config{
		Schema:       opts.Schema,
		Queues:       queues,
		Workers:      opts.Workers,
		PeriodicJobs: opts.PeriodicJobs,
		Logger:       opts.Logger,
		TestOnly:     opts.TestOnly,
		JobTimeout:   timeout,
		// A job left "running" by a crashed replica blocks its coalescing key until rescued; RescueAfter is
		// past any live run of a job bounded by JobTimeout (a worker's longer Timeout is honoured too:
		// River rescues no job before its own timeout).
		RescueStuckJobsAfter: rescue,
	})
}

// Default timeouts of a River client (Options.JobTimeout, Options.RescueAfter).
const (
	DefaultJobTimeout  = 5 * time.Minute
	defaultRescueSlack = 5 * time.Minute
)

// Coalesce returns insert options that keep at most one not-yet-finished job per unique args, so ten
// notifications for one mailbox enqueue one sync. Completed jobs do not block a new one (River's default
// ByState would, for 24 hours). A job inserted while one is running is skipped, so a worker must re-check
// for work that arrived during its run — and, to leave no gap between that last check and River marking
// the job completed, do both in one transaction with CompleteTx, under a lock the enqueuers take too
// (e.g. the provider's row, FOR NO KEY UPDATE) before InsertTx.
func Coalesce() *river.InsertOpts {
	return &river.InsertOpts{UniqueOpts: river.UniqueOpts{
		ByArgs: true,
		ByState: []rivertype.JobState{
			rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRunning,
			rivertype.JobStateScheduled, rivertype.JobStateRetryable,
		},
	}}
}

// Coalescing returns which of values — of the job argument arg (e.g. "provider_id") — already have a job
// of kind that Coalesce would make a new insert skip (waiting, scheduled, retrying or running). An
// enqueuer holding the lock of Coalesce's contract leaves those out of its InsertManyTx: the outcome is
// the same — River would skip them — but River's unique insert is an upsert that writes the existing
// job's row again, and under a push burst those rewrites were most of a dispatch's writes.
func Coalescing(ctx context.Context, tx pgx.Tx, client *Client, kind, arg string, values []string) (map[string]bool, error) {
	if len(values) == 0 {
		return nil, nil
	}
	// At most one job per value is in these states (the unique key), so the first page is all of them.
	params := river.NewJobListParams().Kinds(kind).States(Coalesce().UniqueOpts.ByState...).First(len(values)+1).
		Where("args->>@coalesce_arg = ANY(@coalesce_values::text[])", river.NamedArgs{"coalesce_arg": arg, "coalesce_values": values})
	res, err := client.JobListTx(ctx, tx, params)
	if err != nil {
		return nil, fmt.Errorf("listing queued %s jobs: %w", kind, err)
	}
	queued := make(map[string]bool, len(res.Jobs))
	for _, row := range res.Jobs {
		var args map[string]any
		if err := json.Unmarshal(row.EncodedArgs, &args); err != nil {
			return nil, fmt.Errorf("job %d: %w", row.ID, err)
		}
		if v, ok := args[arg].(string); ok {
			queued[v] = true
		}
	}
	return queued, nil
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
// would leave a job "running" in the database — blocking its coalescing key until River rescues it
// (Options.RescueAfter) or a sweeper ends it (EndAbandoned). A nil client (never started) is stopped.
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
		return sweepArgs{}, sweepOpts(every)
	}, &river.PeriodicJobOpts{RunOnStart: true})
}

// sweepOpts keep one sweep per period, so a running one never blocks the next for long: a sweep that
// died with its replica (kill -9) stays "running" until River rescues it, and sweeps are what recovers
// from such a crash, so they must go on meanwhile. (River's uniqueness always counts running jobs, so a
// key per period is the way to let the next one in.) Two sweeps at once only enqueue coalesced jobs twice.
func sweepOpts(every time.Duration) *river.InsertOpts {
	return &river.InsertOpts{UniqueOpts: river.UniqueOpts{ByArgs: true, ByPeriod: every}}
}

// abandoned stands for the arguments of any job EndAbandoned ends (it never reads them).
type abandoned struct{}

func (abandoned) Kind() string { return "" }

// EndAbandoned marks completed, in tx, the jobs of kind still "running" that started before `before` and
// match where (SQL over River's job row with @named args, e.g. "args->>'provider_id' = @provider_id"):
// jobs whose worker the caller knows is gone — typically because the lease the worker renews while it
// runs has lapsed — so that their coalescing key no longer blocks a new job, which the caller inserts in
// the same tx. River's own rescue would retry them only after RescueAfter. If such a worker was alive
// after all, its own completion or failure finds the job no longer running and changes nothing (River
// finalizes only running jobs). Call it from inside a River worker (a sweep): it needs the client in ctx.
func EndAbandoned(ctx context.Context, tx pgx.Tx, client *Client, kind string, before time.Time, where string, args river.NamedArgs) (int, error) {
	params := river.NewJobListParams().Kinds(kind).States(rivertype.JobStateRunning).First(100).
		Where("attempted_at < @abandoned_before AND ("+where+")", args, river.NamedArgs{"abandoned_before": before})
	res, err := client.JobListTx(ctx, tx, params)
	if err != nil {
		return 0, fmt.Errorf("listing abandoned %s jobs: %w", kind, err)
	}
	n := 0
	for _, row := range res.Jobs {
		_, err := river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, &river.Job[abandoned]{JobRow: row})
		switch {
		case errors.Is(err, rivertype.ErrNotFound):
			continue // finished meanwhile
		case err != nil:
			return n, fmt.Errorf("ending abandoned job %d: %w", row.ID, err)
		}
		n++
	}
	return n, nil
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
// idle — which takes the lock every enqueuer takes before InsertTx (e.g. the provider row, FOR NO KEY UPDATE)
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
