// Package jobs sets up River (Postgres-backed durable jobs) inside a service's own schema, so a webhook
// can store its notification and enqueue the follow-up work in one transaction.
package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"
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

// RunUntilDone starts client and stops it when ctx ends. Cancelling ctx cancels the running jobs (River
// records them as failed, to be retried); when ctx carries a tracker from TrackStops, the tracker's wait
// returns only after the client has stopped and recorded them, so the caller may then close the pool.
// Closing the pool first would leave a job "running" in the database — blocking its coalescing key until
// River rescues it, 10 minutes later.
func RunUntilDone(ctx context.Context, client *Client, log *slog.Logger) error {
	if err := client.Start(ctx); err != nil {
		return err
	}
	wg, _ := ctx.Value(stopsKey{}).(*sync.WaitGroup)
	if wg != nil {
		wg.Add(1)
	}
	go func() {
		if wg != nil {
			defer wg.Done()
		}
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := client.Stop(sctx); err != nil {
			log.Warn("river stop", "err", err)
		}
	}()
	return nil
}

type stopsKey struct{}

// TrackStops returns a context under which RunUntilDone tracks its clients, and a function that waits
// (at most until its ctx ends) until every client started under it has stopped.
func TrackStops(ctx context.Context) (context.Context, func(context.Context)) {
	wg := &sync.WaitGroup{}
	return context.WithValue(ctx, stopsKey{}, wg), func(wctx context.Context) {
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-wctx.Done():
		}
	}
}
