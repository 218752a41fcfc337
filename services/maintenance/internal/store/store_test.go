package store

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/algapsa/alga-google/services/maintenance/internal/upkeep"
	"github.com/algapsa/alga-google/services/platform/pgtest"
)

type testBundle struct {
	ctx   context.Context
	pool  *pgxpool.Pool
	store *Store
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	pool, _ := pgtest.NewPool(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	require.NoError(t, Migrations().Apply(ctx, pool))
	return &testBundle{ctx: ctx, pool: pool, store: New(pool)}
}

// TestEveryQueryPrepares prepares every statement of queries.sql against the migrated schema.
func TestEveryQueryPrepares(t *testing.T) {
	t.Parallel()
	pgtest.CheckQueries(t, Migrations())
}

func sampleRun(tenant string, start time.Time) upkeep.Run {
	exp := start.Add(7 * 24 * time.Hour).UTC().Truncate(time.Microsecond)
	return upkeep.Run{
		RunID: uuid.NewString(), Tenant: tenant, Runner: upkeep.RunnerRiver, Trigger: upkeep.TriggerSchedule,
		StartTime: start, EndTime: start.Add(1500 * time.Millisecond),
		Providers: []upkeep.ProviderResult{
			{Kind: upkeep.KindGmail, ProviderID: uuid.NewString(), Name: "support@acme.test", Due: true, Steps: []upkeep.StepResult{
				{Step: upkeep.StepTokenRefresh, Status: upkeep.StatusOK, GoogleCalls: 1, Reason: "daily refresh"},
				{Step: upkeep.StepWatchRenew, Status: upkeep.StatusOK, GoogleCalls: 1, ExpireTime: &exp},
				{Step: upkeep.StepReconcile, Status: upkeep.StatusNotDue, Reason: "last push 1h ago"},
			}},
			{Kind: upkeep.KindCalendar, ProviderID: uuid.NewString(), Name: "tech@acme.test", Due: true, Steps: []upkeep.StepResult{
				upkeep.Failure(upkeep.StepTokenRefresh, upkeep.ClassRevoked, "token_revoked", "The grant was revoked.", "Reconnect the calendar."),
				{Step: upkeep.StepChannelRenew, Status: upkeep.StatusSkipped, Reason: "the token refresh failed"},
			}},
		},
	}
}

func TestRecordAndReadRuns(t *testing.T) {
	t.Parallel()
	b := setup(t)
	start := time.Now().UTC().Truncate(time.Millisecond)
	older := sampleRun("t1", start.Add(-time.Hour))
	newer := sampleRun("t1", start)
	other := sampleRun("t2", start)
	for _, r := range []upkeep.Run{older, newer, other} {
		require.NoError(t, b.store.RecordRun(b.ctx, r))
	}
	// Recording again (a retried activity) changes nothing.
	require.NoError(t, b.store.RecordRun(b.ctx, newer))

	runs, err := b.store.ListRuns(b.ctx, "t1", 10)
	require.NoError(t, err)
	require.Len(t, runs, 2)
	require.Equal(t, newer.RunID, runs[0].RunID, "most recent first")
	require.Equal(t, older.RunID, runs[1].RunID)

	got := runs[0]
	require.Equal(t, upkeep.RunPartial, got.Status())
	require.Equal(t, 1500*time.Millisecond, got.Duration())
	require.Len(t, got.Providers, 2)
	require.Equal(t, newer.Providers[0].ProviderID, got.Providers[0].ProviderID)
	require.Len(t, got.Providers[0].Steps, 3)
	require.Equal(t, newer.Providers[0].Steps[1].ExpireTime.UTC(), got.Providers[0].Steps[1].ExpireTime.UTC())
	f, ok := got.Providers[1].FirstFailure()
	require.True(t, ok)
	require.Equal(t, "token_revoked", f.ErrorCode)
	require.Equal(t, upkeep.ClassRevoked, f.FailureClass)
	require.Equal(t, "Reconnect the calendar.", f.Remedy)
	due, failed, calls := got.Counts()
	require.Equal(t, []int{2, 1, 2}, []int{due, failed, calls})

	// Scoped by tenant.
	_, err = b.store.GetRun(b.ctx, "t2", newer.RunID)
	require.ErrorIs(t, err, ErrNotFound)
	one, err := b.store.GetRun(b.ctx, "t2", other.RunID)
	require.NoError(t, err)
	require.Len(t, one.Providers, 2)

	last, ok, err := b.store.LastScheduledRunStart(b.ctx, "t1")
	require.NoError(t, err)
	require.True(t, ok)
	require.WithinDuration(t, start, last, time.Millisecond)
	_, ok, err = b.store.LastScheduledRunStart(b.ctx, "nobody")
	require.NoError(t, err)
	require.False(t, ok)
}

func TestHistoryIsPruned(t *testing.T) {
	t.Parallel()
	b := setup(t)
	start := time.Now().Add(-time.Duration(Keep+5) * time.Minute)
	var first string
	for i := 0; i < Keep+5; i++ {
		r := upkeep.Run{RunID: uuid.NewString(), Tenant: "t1", Runner: upkeep.RunnerTemporal, Trigger: upkeep.TriggerManual,
			StartTime: start.Add(time.Duration(i) * time.Minute), EndTime: start.Add(time.Duration(i)*time.Minute + time.Second)}
		if i == 0 {
			first = r.RunID
		}
		require.NoError(t, b.store.RecordRun(b.ctx, r))
	}
	require.NoError(t, b.store.RecordRun(b.ctx, sampleRun("t2", start)))
	var n int
	require.NoError(t, b.pool.QueryRow(b.ctx, "SELECT count(*) FROM maintenance.runs WHERE tenant = 't1'").Scan(&n))
	require.Equal(t, Keep, n)
	_, err := b.store.GetRun(b.ctx, "t1", first)
	require.ErrorIs(t, err, ErrNotFound, "the oldest run is pruned")
	runs, err := b.store.ListRuns(b.ctx, "t2", 10)
	require.NoError(t, err)
	require.Len(t, runs, 1, "another tenant's history is untouched")
}

func TestTenantLockSerializesRuns(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var inside, maxInside atomic.Int32
	run := func(tenant string) <-chan error {
		done := make(chan error, 1)
		go func() {
			done <- b.store.WithTenantLock(b.ctx, tenant, time.Minute, func(context.Context) error {
				n := inside.Add(1)
				for {
					m := maxInside.Load()
					if n <= m || maxInside.CompareAndSwap(m, n) {
						break
					}
				}
				time.Sleep(150 * time.Millisecond)
				inside.Add(-1)
				return nil
			})
		}()
		return done
	}
	a1, a2 := run("t1"), run("t1")
	require.NoError(t, <-a1)
	require.NoError(t, <-a2)
	require.Equal(t, int32(1), maxInside.Load(), "one tenant's runs never overlap")

	// Different tenants do not wait for each other.
	maxInside.Store(0)
	c1, c2 := run("t1"), run("t2")
	require.NoError(t, <-c1)
	require.NoError(t, <-c2)
	require.Equal(t, int32(2), maxInside.Load())

	// A caller whose context ends while waiting gives up.
	hold := make(chan struct{})
	held := make(chan struct{})
	go func() {
		_ = b.store.WithTenantLock(b.ctx, "t3", time.Minute, func(context.Context) error { close(held); <-hold; return nil })
	}()
	<-held
	ctx, cancel := context.WithTimeout(b.ctx, 200*time.Millisecond)
	defer cancel()
	err := b.store.WithTenantLock(ctx, "t3", time.Minute, func(context.Context) error { t.Error("ran without the lock"); return nil })
	require.Error(t, err)
	close(hold)

	// An expired lease (its holder crashed) is taken over.
	_, err = b.pool.Exec(b.ctx, "INSERT INTO maintenance.tenant_leases VALUES ('t4', gen_random_uuid(), now() - interval '1 second')")
	require.NoError(t, err)
	ran := false
	require.NoError(t, b.store.WithTenantLock(b.ctx, "t4", time.Minute, func(context.Context) error { ran = true; return nil }))
	require.True(t, ran)
}
