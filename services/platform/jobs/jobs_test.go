package jobs_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/algapsa/alga-google/services/platform/googleretry"
	"github.com/algapsa/alga-google/services/platform/jobs"
	"github.com/algapsa/alga-google/services/platform/logging"
	"github.com/algapsa/alga-google/services/platform/pgtest"
)

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
	pool, _ := pgtest.NewPool(t)
	ctx := context.Background()
	_, err := pool.Exec(ctx, "CREATE SCHEMA jobs_test")
	require.NoError(t, err)
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
