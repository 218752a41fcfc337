package service

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/algapsa/alga-google/services/platform/jobs"
)

// A sync job a crashed replica left "running" (kill -9: River never recorded it) blocks the provider's
// coalescing key; once its sync lease has lapsed the sweeper ends it and enqueues a new sync, so the
// notification is synced in seconds — not after River's rescue (the job's 10-minute timeout). While the
// lease is held, by a live holder, the sweeper leaves the job alone.
func TestCrashedSyncIsRecoveredFromItsLapsedLease(t *testing.T) {
	t.Parallel()
	b := setup(t)
	p := b.connect(t, "alice")
	ch := b.activeChannel(t, p.GetId())
	require.Equal(t, int32(200), b.notify(t, b.google.notification(ch.ChannelID, "exists")))
	var jobID int64
	require.NoError(t, b.pool.QueryRow(b.ctx, `UPDATE calendar.river_job SET state = 'running', attempt = 1, attempted_by = '{dead}',
		attempted_at = now() - interval '1 minute' WHERE kind = 'calendar_sync' AND state = 'available' RETURNING id`).Scan(&jobID))
	holder := "job:" + strconv.FormatInt(jobID, 10)
	_, err := b.pool.Exec(b.ctx, "INSERT INTO calendar.sync_leases (provider_id, tenant, holder, expire_time) VALUES ($1, $2, $3, now() + interval '1 hour')",
		p.GetId(), tenant, holder)
	require.NoError(t, err)
	behind := func() int {
		return b.count(t, "SELECT count(*) FROM calendar.providers WHERE id = $1 AND notify_seq > synced_seq", p.GetId())
	}
	require.Equal(t, 1, behind())

	// The workers of a new process (the sweeper runs every 2 s).
	runCtx, cancel := context.WithCancel(b.ctx)
	require.NoError(t, b.svc.jobs.Start(runCtx))
	t.Cleanup(func() {
		cancel()
		sctx, c := context.WithTimeout(context.Background(), 10*time.Second)
		defer c()
		require.NoError(t, jobs.Stop(sctx, b.svc.jobs))
	})
	time.Sleep(5 * time.Second)
	require.Equal(t, 1, behind(), "a held lease: the sweeper leaves the job to its holder")
	require.Equal(t, 1, b.count(t, "SELECT count(*) FROM calendar.river_job WHERE id = $1 AND state = 'running'", jobID))

	// The holder is dead: its lease lapses (it is never renewed).
	_, err = b.pool.Exec(b.ctx, "UPDATE calendar.sync_leases SET expire_time = now() - interval '1 second' WHERE holder = $1", holder)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return behind() == 0 }, 10*time.Second, 50*time.Millisecond, "synced by a new job")
	require.Equal(t, 1, b.count(t, "SELECT count(*) FROM calendar.river_job WHERE id = $1 AND state = 'completed'", jobID), "ended by the sweeper")
}
