package lease_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/algapsa/alga-google/services/platform/lease"
	"github.com/algapsa/alga-google/services/platform/pgtest"
)

var errGone = errors.New("provider not found")

type testBundle struct {
	ctx      context.Context
	pool     *pgxpool.Pool
	table    *lease.Table
	provider string
}

// setup makes a database with a providers table and its lease table, shaped as the services' are.
func setup(t *testing.T) *testBundle {
	t.Helper()
	pool, _ := pgtest.NewPool(t)
	ctx := context.Background()
	_, err := pool.Exec(ctx, `CREATE SCHEMA svc;
CREATE TABLE svc.providers (id uuid PRIMARY KEY);
CREATE TABLE svc.sync_leases (
    provider_id  uuid PRIMARY KEY REFERENCES svc.providers (id) ON DELETE CASCADE,
    tenant       text NOT NULL,
    holder       text NOT NULL,
    expire_time  timestamptz NOT NULL
);
INSERT INTO svc.providers VALUES ('00000000-0000-0000-0000-000000000001');`)
	require.NoError(t, err)
	return &testBundle{ctx: ctx, pool: pool, table: lease.New("svc.sync_leases", errGone), provider: "00000000-0000-0000-0000-000000000001"}
}

// requireHeld checks whether the tenant's provider has a live lease.
func (b *testBundle) requireHeld(t *testing.T, tenant string, want bool, msg string) {
	t.Helper()
	held, err := b.table.Held(b.ctx, b.pool, tenant, b.provider)
	require.NoError(t, err)
	require.Equal(t, want, held, msg)
}

// acquire takes the provider's lease of tenant t1 for holder for an hour, reporting whether it got it.
func (b *testBundle) acquire(t *testing.T, holder string) bool {
	t.Helper()
	ok, err := b.table.Acquire(b.ctx, b.pool, "t1", b.provider, holder, time.Hour)
	require.NoError(t, err)
	return ok
}

// expire makes every lease of the table lapse, as a dead holder's would.
func (b *testBundle) expire(t *testing.T) {
	t.Helper()
	_, err := b.pool.Exec(b.ctx, "UPDATE svc.sync_leases SET expire_time = now() - interval '1 second'")
	require.NoError(t, err)
}

func TestNewRefusesAnUnqualifiedName(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"sync_leases", "svc.sync_leases; DROP TABLE x", "Svc.Leases", ""} {
		require.Panics(t, func() { lease.New(bad, errGone) }, bad)
	}
	q := lease.New("gmail.sync_leases", errGone).Queries()
	require.Len(t, q, 3)
	for _, sql := range q {
		require.Contains(t, sql, "gmail.sync_leases")
		require.NotContains(t, sql, "{table}")
	}
}

func TestAcquireRenewRelease(t *testing.T) {
	t.Parallel()
	b := setup(t)
	l, p := b.table, b.provider

	b.requireHeld(t, "t1", false, "")

	require.True(t, b.acquire(t, "a"))
	require.True(t, b.acquire(t, "a"), "a holder takes its own lease again")
	require.False(t, b.acquire(t, "b"), "another holder's unexpired lease")

	b.requireHeld(t, "t1", true, "")
	b.requireHeld(t, "t2", false, "another tenant sees no lease")

	require.NoError(t, l.Release(b.ctx, b.pool, "t1", p, "b"))
	b.requireHeld(t, "t1", true, "only the holder releases")

	b.expire(t)
	b.requireHeld(t, "t1", false, "a lapsed lease is nobody's")
	require.True(t, b.acquire(t, "b"), "a lapsed lease is taken over")
	ok, err := l.Renew(b.ctx, b.pool, "t1", p, "a", time.Hour)
	require.NoError(t, err)
	require.False(t, ok, "the old holder has lost it")

	require.NoError(t, l.Release(b.ctx, b.pool, "t1", p, "b"))
	b.requireHeld(t, "t1", false, "")
}

func TestAcquireWhenTheProviderIsGone(t *testing.T) {
	t.Parallel()
	b := setup(t)
	gone := "00000000-0000-0000-0000-0000000000ff"
	_, err := b.table.Acquire(b.ctx, b.pool, "t1", gone, "a", time.Hour)
	require.ErrorIs(t, err, errGone)
	ok, err := b.table.Renew(b.ctx, b.pool, "t1", gone, "a", time.Hour)
	require.NoError(t, err)
	require.False(t, ok, "a renewal of a deleted provider's lease reports it lost")
	_, release, err := b.table.HoldForJob(b.ctx, b.pool, slog.New(slog.DiscardHandler), "t1", gone, 7, time.Hour)
	require.NoError(t, err, "a job of a deleted provider has nothing to do")
	require.Nil(t, release)
}

func TestHoldForJob(t *testing.T) {
	t.Parallel()
	b := setup(t)
	log := slog.New(slog.DiscardHandler)
	const ttl = 600 * time.Millisecond

	ctx, release, err := b.table.HoldForJob(b.ctx, b.pool, log, "t1", b.provider, 42, ttl)
	require.NoError(t, err)
	require.NotNil(t, release)

	// The heartbeat keeps it past several TTLs: another job cannot take it and snoozes.
	time.Sleep(3 * ttl)
	require.NoError(t, ctx.Err())
	_, other, err := b.table.HoldForJob(b.ctx, b.pool, log, "t1", b.provider, 43, ttl)
	require.Nil(t, other)
	var snooze *river.JobSnoozeError
	require.ErrorAs(t, err, &snooze)
	ok, err := b.table.Acquire(b.ctx, b.pool, "t1", b.provider, "job:42", ttl)
	require.NoError(t, err)
	require.True(t, ok, "the holder is job:<id>")

	release()
	b.requireHeld(t, "t1", false, "release gives the lease back")
}

func TestKeepEndsWhenTheLeaseIsTakenOver(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const ttl = 600 * time.Millisecond
	ok, err := b.table.Acquire(b.ctx, b.pool, "t1", b.provider, "a", ttl)
	require.NoError(t, err)
	require.True(t, ok)
	ctx, release := b.table.Keep(b.ctx, b.pool, slog.New(slog.DiscardHandler), "t1", b.provider, "a", ttl)
	defer release()
	_, err = b.pool.Exec(b.ctx, "UPDATE svc.sync_leases SET holder = 'b', expire_time = now() + interval '1 hour'")
	require.NoError(t, err)
	select {
	case <-ctx.Done():
	case <-time.After(5 * ttl):
		t.Fatal("the holder's context did not end when its lease was taken")
	}
	release()
	b.requireHeld(t, "t1", true, "release never frees another holder's lease")
}
