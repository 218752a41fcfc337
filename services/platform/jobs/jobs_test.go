package jobs_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/algapsa/alga-google/services/platform/googleretry"
	"github.com/algapsa/alga-google/services/platform/jobs"
	"github.com/algapsa/alga-google/services/platform/logging"
	"github.com/algapsa/alga-google/services/platform/pgtest"
)

// schemaPool is a test database with an empty schema for River's tables.
func schemaPool(t *testing.T, schema string) *pgxpool.Pool {
	t.Helper()
	pool, _ := pgtest.NewPool(t)
	_, err := pool.Exec(context.Background(), "CREATE SCHEMA "+schema)
	require.NoError(t, err)
	return pool
}

type blockArgs struct{}

func (blockArgs) Kind() string { return "block" }

type blockWorker struct {
	river.WorkerDefaults[blockArgs]
	started chan struct{}
}

func (w *blockWorker) Work(ctx context.Context, _ *river.Job[blockArgs]) error {
	close(w.started)
	<-ctx.Done()
	return ctx.Err()
}

// A client stopped by its context records its running job (as retryable) before Stop returns, so closing
// the pool afterwards never leaves the job "running" (which would block its coalescing key until River
// rescues it).
func TestStopWaitsUntilRunningJobsAreRecorded(t *testing.T) {
	t.Parallel()
	pool := schemaPool(t, "jobs_test")
	ctx := context.Background()
	w := &blockWorker{started: make(chan struct{})}
	workers := river.NewWorkers()
	river.AddWorker(workers, w)
	client, err := jobs.New(ctx, pool, jobs.Options{Schema: "jobs_test", Workers: workers, Logger: logging.Discard(), TestOnly: true})
	require.NoError(t, err)

	runCtx, cancel := context.WithCancel(ctx)
	require.NoError(t, client.Start(runCtx))
	_, err = client.Insert(ctx, blockArgs{}, jobs.Coalesce())
	require.NoError(t, err)
	select {
	case <-w.started:
	case <-time.After(20 * time.Second):
		t.Fatal("job never started")
	}

	cancel()
	wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
	defer wcancel()
	require.NoError(t, jobs.Stop(wctx, client), "the client stopped in time")
	var state string
	require.NoError(t, pool.QueryRow(ctx, "SELECT state FROM jobs_test.river_job WHERE kind = 'block'").Scan(&state))
	require.Contains(t, []string{"retryable", "available"}, state, "recorded as failed, to be retried")
}

type keyedArgs struct {
	Key string `json:"key" river:"unique"`
}

func (keyedArgs) Kind() string { return "keyed" }

type keyedWorker struct {
	river.WorkerDefaults[keyedArgs]
	ran chan int64
}

func (w *keyedWorker) Work(_ context.Context, job *river.Job[keyedArgs]) error {
	w.ran <- job.ID
	return nil
}

// A job a dead replica left "running" blocks its coalescing key (the next insert is skipped) until
// River rescues it; a sweep that knows the worker is gone ends it with EndAbandoned and enqueues anew in
// the same transaction, and the work runs at once. A job running since after the cut-off is left alone.
func TestEndAbandonedUnblocksTheCoalescingKey(t *testing.T) {
	t.Parallel()
	pool := schemaPool(t, "jobs_abandon")
	ctx := context.Background()
	w := &keyedWorker{ran: make(chan int64, 10)}
	workers := river.NewWorkers()
	river.AddWorker(workers, w)
	var client *jobs.Client
	swept := make(chan int, 10)
	sweeper := jobs.AddSweeper(workers, time.Hour, func(ctx context.Context) error {
		return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			n, err := jobs.EndAbandoned(ctx, tx, client, keyedArgs{}.Kind(), time.Now().Add(-30*time.Second),
				"args->>'key' = ANY(@keys)", river.NamedArgs{"keys": []string{"dead", "alive"}})
			if err != nil {
				return err
			}
			swept <- n
			_, err = client.InsertTx(ctx, tx, keyedArgs{Key: "dead"}, jobs.Coalesce())
			return err
		})
	})
	client, err := jobs.New(ctx, pool, jobs.Options{Schema: "jobs_abandon", Workers: workers, Logger: logging.Discard(),
		TestOnly: true, PeriodicJobs: []*river.PeriodicJob{sweeper}})
	require.NoError(t, err)

	// Two jobs a crashed replica was running: one for a minute, one just now.
	dead, err := client.Insert(ctx, keyedArgs{Key: "dead"}, jobs.Coalesce())
	require.NoError(t, err)
	alive, err := client.Insert(ctx, keyedArgs{Key: "alive"}, jobs.Coalesce())
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `UPDATE jobs_abandon.river_job SET state = 'running', attempt = 1, attempted_by = '{gone}',
		attempted_at = CASE WHEN id = $1 THEN now() - interval '1 minute' ELSE now() END WHERE id IN ($1, $2)`, dead.Job.ID, alive.Job.ID)
	require.NoError(t, err)
	again, err := client.Insert(ctx, keyedArgs{Key: "dead"}, jobs.Coalesce())
	require.NoError(t, err)
	require.True(t, again.UniqueSkippedAsDuplicate, "the dead job blocks its key")

	require.NoError(t, client.Start(t.Context()))
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = client.Stop(sctx)
	})
	select {
	case n := <-swept:
		require.Equal(t, 1, n, "only the job running since before the cut-off")
	case <-time.After(30 * time.Second):
		t.Fatal("no sweep")
	}
	select {
	case id := <-w.ran:
		require.NotEqual(t, dead.Job.ID, id, "a new job did the work")
	case <-time.After(30 * time.Second):
		t.Fatal("the work never ran")
	}
	var deadState, aliveState string
	require.NoError(t, pool.QueryRow(ctx, "SELECT state FROM jobs_abandon.river_job WHERE id = $1", dead.Job.ID).Scan(&deadState))
	require.NoError(t, pool.QueryRow(ctx, "SELECT state FROM jobs_abandon.river_job WHERE id = $1", alive.Job.ID).Scan(&aliveState))
	require.Equal(t, "completed", deadState)
	require.Equal(t, "running", aliveState)
}

func TestSnoozeLater(t *testing.T) {
	t.Parallel()
	var snooze *river.JobSnoozeError
	err := jobs.SnoozeLater(fmt.Errorf("sync: %w", &googleretry.RetryLater{Until: time.Now().Add(5 * time.Second)}))
	require.ErrorAs(t, err, &snooze)
	require.InDelta(t, 5*time.Second, snooze.Duration, float64(time.Second))
	err = jobs.SnoozeLater(&googleretry.RetryLater{Until: time.Now().Add(-time.Minute)})
	require.ErrorAs(t, err, &snooze)
	require.Equal(t, time.Second, snooze.Duration, "at least a second: no hot loop")
	plain := errors.New("boom")
	require.Equal(t, plain, jobs.SnoozeLater(plain))
	require.NoError(t, jobs.SnoozeLater(nil))
}

// Coalescing names exactly the keys a Coalesce insert would skip: those with a job waiting, scheduled,
// retrying or running — not a completed or cancelled one, nor another kind's.
func TestCoalescingNamesTheKeysRiverWouldSkip(t *testing.T) {
	t.Parallel()
	pool := schemaPool(t, "jobs_coalescing")
	ctx := context.Background()
	workers := river.NewWorkers()
	river.AddWorker(workers, &keyedWorker{ran: make(chan int64, 10)})
	client, err := jobs.New(ctx, pool, jobs.Options{Schema: "jobs_coalescing", Workers: workers, Logger: logging.Discard(), TestOnly: true})
	require.NoError(t, err)

	states := map[string]string{"waiting": "available", "later": "scheduled", "retrying": "retryable", "running": "running",
		"done": "completed", "cancelled": "cancelled"}
	for key, state := range states {
		res, err := client.Insert(ctx, keyedArgs{Key: key}, jobs.Coalesce())
		require.NoError(t, err)
		_, err = pool.Exec(ctx, `UPDATE jobs_coalescing.river_job SET state = $2::text::jobs_coalescing.river_job_state,
			finalized_at = CASE WHEN $2::text IN ('completed', 'cancelled') THEN now() END WHERE id = $1`, res.Job.ID, state)
		require.NoError(t, err)
	}
	keys := []string{"waiting", "later", "retrying", "running", "done", "cancelled", "never"}
	var queued map[string]bool
	require.NoError(t, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		queued, err = jobs.Coalescing(ctx, tx, client, keyedArgs{}.Kind(), "key", keys)
		return err
	}))
	require.Equal(t, map[string]bool{"waiting": true, "later": true, "retrying": true, "running": true}, queued)
	for _, key := range keys {
		res, err := client.Insert(ctx, keyedArgs{Key: key}, jobs.Coalesce())
		require.NoError(t, err)
		require.Equal(t, queued[key], res.UniqueSkippedAsDuplicate, "River agrees about %q", key)
	}
	none, err := func() (map[string]bool, error) {
		tx, err := pool.Begin(ctx)
		if err != nil {
			return nil, err
		}
		defer tx.Rollback(ctx) //nolint:errcheck
		return jobs.Coalescing(ctx, tx, client, "another_kind", "key", keys)
	}()
	require.NoError(t, err)
	require.Empty(t, none)
}
