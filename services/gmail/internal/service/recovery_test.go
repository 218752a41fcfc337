package service

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	gmailv1 "github.com/algapsa/alga-google/gen/alga/gmail/v1"
	"github.com/algapsa/alga-google/services/gmail/internal/store"
	"github.com/algapsa/alga-google/services/platform/auth"
)

// A sync job a crashed replica left "running" (kill -9: River never recorded it) blocks the mailbox's
// coalescing key; once its sync lease has lapsed the sweeper ends it and enqueues a new sync, so the
// mail arrives in seconds — not after River's rescue (the job's 10-minute timeout). While the lease is
// held, by a live holder, the sweeper leaves the job alone.
func TestCrashedSyncIsRecoveredFromItsLapsedLease(t *testing.T) {
	t.Parallel()
	b := setup(t)
	// The process "dies" with a sync running: its job stays running, its lease is held (as a live
	// holder's would be) by the job.
	p := b.connectThenStopWorkers(t, "support@acme.test")
	b.gm.deliver("support@acme.test", "Survives a kill")
	require.EqualValues(t, 204, b.notify(t, "t1", "support@acme.test", "kill-1"))
	// The push is answered before its sync is enqueued (the dispatcher does it right after): wait for it.
	var jobID int64
	require.Eventually(t, func() bool {
		err := b.pool.QueryRow(b.ctx, `UPDATE gmail.river_job SET state = 'running', attempt = 1, attempted_by = '{dead}',
		attempted_at = now() - interval '1 minute' WHERE kind = 'gmail_history_sync' AND state = 'available' RETURNING id`).Scan(&jobID)
		if errors.Is(err, pgx.ErrNoRows) {
			return false
		}
		require.NoError(t, err)
		return true
	}, 10*time.Second, 20*time.Millisecond)
	holder := "job:" + strconv.FormatInt(jobID, 10)
	ok, err := store.SyncLeases.Acquire(b.ctx, b.pool, "t1", p.GetId(), holder, time.Hour)
	require.NoError(t, err)
	require.True(t, ok)
	b.cancel()

	b.startService(t)
	time.Sleep(3 * time.Second) // three sweeps (every second in tests)
	require.Zero(t, b.count(t, "SELECT count(*) FROM gmail.messages"), "a held lease: the sweeper leaves the job to its holder")
	require.Equal(t, 1, b.count(t, "SELECT count(*) FROM gmail.river_job WHERE id = $1 AND state = 'running'", jobID))

	// The holder is dead: its lease lapses (it is never renewed).
	_, err = b.pool.Exec(b.ctx, "UPDATE gmail.sync_leases SET expire_time = now() - interval '1 second' WHERE holder = $1", holder)
	require.NoError(t, err)
	start := time.Now()
	got := b.waitMessages(t, "t1", p.GetId(), 1)
	require.Equal(t, "Survives a kill", got[0].GetSubject())
	require.Less(t, time.Since(start), 10*time.Second)
	require.Equal(t, 1, b.count(t, "SELECT count(*) FROM gmail.river_job WHERE id = $1 AND state = 'completed'", jobID), "ended by the sweeper")
	time.Sleep(time.Second)
	require.Len(t, b.waitMessages(t, "t1", p.GetId(), 1), 1, "stored once")
}

// A holder keeps its lease as long as it works, past many TTLs (the heartbeat renews it), and gives it
// back when done; one that dies without releasing it loses it within the TTL.
func TestSyncLeaseHeartbeat(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.configureTenant("t1")
	p := b.connect(t, "t1", "support@acme.test")
	const ttl = 600 * time.Millisecond
	// Only the test's holders may take the lease: stop the workers (after the activation's sync ran),
	// else a sync job snoozed while worker-a held the lease can take it between release and worker-b.
	require.Eventually(t, func() bool { return b.gm.snapshot("support@acme.test").historyCalls >= 1 }, 10*time.Second, 20*time.Millisecond)
	sctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	require.NoError(t, b.svc.river.Stop(sctx))
	// The activation's sync held the lease while it ran.
	require.Eventually(t, func() bool {
		ok, err := store.SyncLeases.Acquire(b.ctx, b.pool, "t1", p.GetId(), "worker-a", ttl)
		require.NoError(t, err)
		return ok
	}, 10*time.Second, 20*time.Millisecond)
	hctx, release := store.SyncLeases.Keep(b.ctx, b.pool, b.svc.log, "t1", p.GetId(), "worker-a", ttl)
	time.Sleep(5 * ttl)
	require.NoError(t, hctx.Err(), "still held")
	ok, err := store.SyncLeases.Acquire(b.ctx, b.pool, "t1", p.GetId(), "worker-b", ttl)
	require.NoError(t, err)
	require.False(t, ok, "a live holder's lease never lapses")
	release()
	ok, err = store.SyncLeases.Acquire(b.ctx, b.pool, "t1", p.GetId(), "worker-b", ttl)
	require.NoError(t, err)
	require.True(t, ok, "given back")

	// worker-b dies (no heartbeat, no release): within the TTL the lease is free again.
	time.Sleep(ttl + 100*time.Millisecond)
	held, err := store.SyncLeases.Held(b.ctx, b.pool, "t1", p.GetId())
	require.NoError(t, err)
	require.False(t, held)
}

// A notification stored whose sync was never enqueued (an enqueue lost with its process) is found by the
// sweeper from the notifications table alone: recovery never depends on the push path's enqueue.
func TestStoredNotificationWithoutAJobIsSynced(t *testing.T) {
	t.Parallel()
	b := setup(t)
	p := b.connectThenStopWorkers(t, "support@acme.test")
	b.gm.deliver("support@acme.test", "Enqueue lost")
	require.EqualValues(t, 204, b.notify(t, "t1", "support@acme.test", "lost-1"))
	_, err := b.pool.Exec(b.ctx, "DELETE FROM gmail.river_job WHERE kind = 'gmail_history_sync' AND state <> 'completed'")
	require.NoError(t, err)
	b.cancel()

	b.startService(t)
	got := b.waitMessages(t, "t1", p.GetId(), 1)
	require.Equal(t, "Enqueue lost", got[0].GetSubject())
}

// A sync (or upkeep step) still in flight when its mailbox is reset finds the connection gone; what it
// records must not turn the reset provider into ERROR (TestDeleteAndResetStopWatches once saw ERROR after a reset).
func TestFailureFoundAfterResetLeavesProviderDisconnected(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.configureTenant("t1")
	p := b.connect(t, "t1", "support@acme.test")
	stale, err := store.GetProvider(b.ctx, b.pool, "t1", p.GetId())
	require.NoError(t, err)
	resp, err := b.providers().ResetGmailProviders(b.service(auth.SvcOAuth, "t1"), &gmailv1.ResetGmailProvidersRequest{})
	require.NoError(t, err)
	require.EqualValues(t, 1, resp.GetProvidersReset())

	require.NoError(t, b.svc.recordSyncTokenProblem(b.ctx, stale, &tokenProblem{code: "token_missing", message: "no token", remedy: "Reconnect"}))
	got, err := store.GetProvider(b.ctx, b.pool, "t1", p.GetId())
	require.NoError(t, err)
	require.Equal(t, store.StateDisconnected, got.State)
	require.Empty(t, got.ErrorCode)
}
