package e2e_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	gcal "google.golang.org/api/calendar/v3"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/algapsa/alga-google/services/googlesandbox"
	"github.com/algapsa/alga-google/services/platform/logging"
	"github.com/algapsa/alga-google/services/platform/pgtest"
	"github.com/algapsa/alga-google/services/suite/harness"
)

// Fault tests (issue #13): recovery after a crash of the suite and after a PostgreSQL outage, end to end —
// the suite (as a separate OS process where it is killed), real PostgreSQL and the sandbox, whose
// Pub/Sub pushes by itself when mail arrives and redelivers what is not acknowledged.

// TestFaultSuiteProcess is the suite process the fault tests start, kill and restart (harness.StartProcess
// re-executes this test binary with it); run directly, it skips.
func TestFaultSuiteProcess(t *testing.T) { harness.RunProcess(t) }

// faultSandbox is a sandbox whose Pub/Sub keeps redelivering for longer than the outages the tests cause
// (real Pub/Sub retries for days; the default test sandbox gives up after ~11 s).
func faultSandbox(t *testing.T) *googlesandbox.Sandbox {
	t.Helper()
	sb, err := googlesandbox.Start(context.Background(), googlesandbox.Options{Addr: "127.0.0.1:0", PubSubAddr: "127.0.0.1:0",
		Logger: logging.Discard(), PushMinBackoff: 200 * time.Millisecond, PushMaxBackoff: 2 * time.Second, PushMaxAttempts: 60})
	require.NoError(t, err)
	t.Cleanup(func() { _ = sb.Close() })
	return sb
}

// storedOnce asserts that every delivered Gmail message is stored for the provider exactly once (by Gmail
// message id), and that nothing else is.
func storedOnce(t *testing.T, pool *pgxpool.Pool, providerID string, delivered []string, extra int) {
	t.Helper()
	rows, err := pool.Query(context.Background(), "SELECT gmail_message_id, count(*) FROM gmail.messages WHERE provider_id = $1 GROUP BY 1", providerID)
	require.NoError(t, err)
	got := map[string]int{}
	for rows.Next() {
		var id string
		var n int
		require.NoError(t, rows.Scan(&id, &n))
		got[id] = n
	}
	require.NoError(t, rows.Err())
	for _, id := range delivered {
		require.Equal(t, 1, got[id], "message %s stored once", id)
	}
	require.Len(t, got, len(delivered)+extra, "no other message stored")
}

// waitStored waits (at most within) until every id is stored for the provider and reports how long it took.
func waitStored(t *testing.T, pool *pgxpool.Pool, providerID string, ids []string, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	require.Eventually(t, func() bool {
		var n int
		err := pool.QueryRow(context.Background(), "SELECT count(DISTINCT gmail_message_id) FROM gmail.messages WHERE provider_id = $1 AND gmail_message_id = ANY($2)",
			providerID, ids).Scan(&n)
		return err == nil && n == len(ids)
	}, within, 200*time.Millisecond, "every mail stored within %s", within)
	return time.Since(start)
}

// TestFaultKillBetweenPushAndSync: pushes acknowledged (the notifications stored), the mailbox's sync in
// flight (Gmail's history.list slowed down), the suite process is killed with SIGKILL — River records
// nothing, the sync job stays "running" and the mailbox's sync lease held. Restarted on the same database,
// every mail arrives within 60 s, none twice, and the feed offers each once.
func TestFaultKillBetweenPushAndSync(t *testing.T) {
	sb := faultSandbox(t)
	db := pgtest.NewDatabase(t)
	pool, err := pgxpool.New(context.Background(), db)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	proc := harness.StartProcess(t, harness.ProcessOptionsFor(sb, "TestFaultSuiteProcess", db))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	e := &env{s: proc.Suite(t, sb), admin: sb.Admin(), ctx: ctx}
	ts := e.setupTenant(t, "tenant-kill", "acme-kill-1", setupOpts{})
	p := e.connectGmail(t, ts, "help@kill.test")
	idle := func() bool {
		var n int
		err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM gmail.river_job WHERE kind = 'gmail_history_sync' AND state NOT IN ('completed','cancelled','discarded'))
			+ (SELECT count(*) FROM gmail.notifications WHERE process_time IS NULL)`).Scan(&n)
		return err == nil && n == 0
	}
	require.Eventually(t, idle, 30*time.Second, 100*time.Millisecond, "the activation's sync finished")

	// Google answers history.list slowly: the sync started by the pushes is still in flight when the
	// process dies.
	history := e.counter(t, "gmail.users.history.list")
	require.NoError(t, e.admin.SetFault(ctx, googlesandbox.Fault{Endpoint: "gmail.users.history.list", Latency: time.Minute}))
	var ids []string
	for i := range 4 {
		d := e.deliver(t, "help@kill.test", plainEmail("help@kill.test", fmt.Sprintf("Before the crash %d", i)))
		require.True(t, d.Notified)
		ids = append(ids, d.ID)
	}
	require.Eventually(t, func() bool {
		var stored, running int
		_ = pool.QueryRow(ctx, "SELECT count(*) FROM gmail.notifications WHERE provider_id = $1 AND process_time IS NULL", p.ID).Scan(&stored)
		_ = pool.QueryRow(ctx, "SELECT count(*) FROM gmail.river_job WHERE kind = 'gmail_history_sync' AND state = 'running'").Scan(&running)
		return stored >= 1 && running == 1 && e.counter(t, "gmail.users.history.list") > history
	}, 30*time.Second, 50*time.Millisecond, "pushes acknowledged and stored, the sync in flight")
	acked := e.counter(t, "pubsub.push.acked")
	require.Positive(t, acked)

	proc.Kill()
	require.NoError(t, e.admin.ClearFaults(ctx))
	var n int
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM gmail.river_job WHERE kind = 'gmail_history_sync' AND state = 'running'").Scan(&n))
	require.Equal(t, 1, n, "the dead process's sync job is left running")
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM gmail.messages WHERE provider_id = $1 AND gmail_message_id = ANY($2)", p.ID, ids).Scan(&n))
	require.Zero(t, n, "killed before the sync stored anything")

	restart := time.Now()
	proc = proc.Restart(t)
	ready := time.Since(restart)
	// A mail that arrives after the restart is synced too (the push path works in the new process).
	e.s = proc.Suite(t, sb)
	after := e.deliver(t, "help@kill.test", plainEmail("help@kill.test", "After the restart"))
	took := waitStored(t, pool, p.ID, append(ids, after.ID), 60*time.Second-ready)
	t.Logf("restart: ready after %s, every mail stored %s after the restart", ready.Round(time.Millisecond), (ready + took).Round(time.Millisecond))
	require.Eventually(t, idle, 30*time.Second, 100*time.Millisecond)
	storedOnce(t, pool, p.ID, append(ids, after.ID), 0)

	// The feed offers each mail once.
	seen := map[string]int{}
	for _, m := range e.inbound(t, ts.tenant, p.ID) {
		seen[m.GetGmailMessageId()]++
	}
	for _, id := range append(ids, after.ID) {
		require.Equal(t, 1, seen[id], "message %s in the feed once", id)
	}
}

// TestFaultPostgresOutageUnderPushLoad: mail and calendar events arrive steadily (the sandbox pushes each
// by itself: Pub/Sub pushes, Calendar channel notifications) while the suite's PostgreSQL — a cluster of
// this test's own — is stopped for 10 s and started again on the same port. While it is down /readyz
// answers 503 and gRPC health NOT_SERVING; every push is either stored and acknowledged (2xx) or refused
// with 503 (so Pub/Sub and Calendar redeliver it) — no other status, no 2xx without a stored
// notification; the suite reconnects by itself (pool, River, feed) and every mail and event arrives
// exactly once.
func TestFaultPostgresOutageUnderPushLoad(t *testing.T) {
	pg := harness.StartPostgres(t)
	sb := faultSandbox(t)
	e := newEnv(t, harness.Options{DatabaseURL: pg.URL(), Sandbox: sb})
	ts := e.setupTenant(t, calendarTenant, "acme-pg-1", setupOpts{})
	p := e.connectGmail(t, ts, "help@outage.test")
	ce := &calendarEnv{s: e.s, admin: e.admin, project: ts.project, ctx: e.ctx}
	_, cp := ce.calendarConnected(t, "tech-1", "tech-1@outage.test")
	ch := ce.calendarLiveChannel(t, "tech-1@outage.test")
	e.waitSyncIdle(t)
	pool, err := pgxpool.New(context.Background(), pg.URL())
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	before := len(e.inbound(t, ts.tenant, p.ID))
	pushes0, channel0 := len(deliveriesOf(t, e, "pubsub")), len(deliveriesOf(t, e, "calendar"))

	// Readiness, watched from outside every 250 ms: the gateway's /readyz and the gmail target's health.
	health := healthpb.NewHealthClient(e.s.Conn(t))
	type probe struct {
		at     time.Time
		readyz int
		gmail  healthpb.HealthCheckResponse_ServingStatus
	}
	var (
		mu     sync.Mutex
		probes []probe
	)
	watchCtx, stopWatch := context.WithCancel(e.ctx)
	var watching sync.WaitGroup
	watching.Add(1)
	go func() {
		defer watching.Done()
		c := http.Client{Timeout: 2 * time.Second}
		for watchCtx.Err() == nil {
			pr := probe{at: time.Now()}
			if resp, err := c.Get(e.s.BaseURL + "/readyz"); err == nil {
				pr.readyz = resp.StatusCode
				_ = resp.Body.Close()
			}
			hctx, cancel := context.WithTimeout(watchCtx, 2*time.Second)
			if res, err := health.Check(hctx, &healthpb.HealthCheckRequest{Service: "gmail"}); err == nil {
				pr.gmail = res.GetStatus()
			}
			cancel()
			mu.Lock()
			probes = append(probes, pr)
			mu.Unlock()
			time.Sleep(250 * time.Millisecond)
		}
	}()

	// Steady load for 3 s before, the 10 s of the outage and 4 s after: a mail every 300 ms (each a Pub/Sub
	// push), and every other round an event in the technician's calendar (each a channel notification).
	var ids, events []string
	var loadErr error
	loadDone := make(chan struct{})
	go func() {
		defer close(loadDone)
		start := time.Date(2031, 3, 4, 10, 0, 0, 0, time.UTC)
		for end := time.Now().Add(17 * time.Second); time.Now().Before(end); time.Sleep(300 * time.Millisecond) {
			if err := e.admin.AdvanceClock(e.ctx, time.Second); err != nil {
				loadErr = err
				return
			}
			d, err := e.admin.Deliver(e.ctx, "help@outage.test", plainEmail("help@outage.test", fmt.Sprintf("Load %d", len(ids))))
			if err != nil {
				loadErr = err
				return
			}
			ids = append(ids, d.ID)
			if len(ids)%2 == 0 {
				summary := fmt.Sprintf("Visit %d", len(events))
				if _, err := e.admin.CreateEvent(e.ctx, "tech-1@outage.test", "primary", &gcal.Event{Summary: summary,
					Start: &gcal.EventDateTime{DateTime: start.Format(time.RFC3339)},
					End:   &gcal.EventDateTime{DateTime: start.Add(time.Hour).Format(time.RFC3339)}}); err != nil {
					loadErr = err
					return
				}
				events = append(events, summary)
			}
		}
	}()
	time.Sleep(3 * time.Second)
	pg.Stop()
	down := time.Now()
	time.Sleep(10 * time.Second)
	pg.Start()
	up := time.Now()
	<-loadDone
	require.NoError(t, loadErr)

	took := waitStored(t, pool, p.ID, ids, 60*time.Second)
	t.Logf("outage %s; %d mails; all stored %s after the load ended, %s after PostgreSQL came back",
		up.Sub(down).Round(time.Millisecond), len(ids), took.Round(time.Millisecond), time.Since(up).Round(time.Millisecond))
	// Readiness comes back by itself.
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		last := probes[len(probes)-1]
		return last.at.After(up) && last.readyz == http.StatusOK && last.gmail == healthpb.HealthCheckResponse_SERVING
	}, 20*time.Second, 100*time.Millisecond, "ready and SERVING again after the outage")
	stopWatch()
	watching.Wait()
	var sawDown, sawNotServing bool
	for _, pr := range probes {
		if pr.at.After(down) && pr.at.Before(up) {
			sawDown = sawDown || pr.readyz == http.StatusServiceUnavailable
			sawNotServing = sawNotServing || pr.gmail == healthpb.HealthCheckResponse_NOT_SERVING
		}
	}
	require.True(t, sawDown, "/readyz answered 503 while PostgreSQL was down")
	require.True(t, sawNotServing, "gRPC health said NOT_SERVING while PostgreSQL was down")

	e.waitSyncIdle(t)
	storedOnce(t, pool, p.ID, ids, before)
	// River came back whole: its leader runs the periodic sweeps again (gmail every 10 s, calendar 2 s).
	for _, schema := range []string{"gmail", "calendar"} {
		require.Eventually(t, func() bool {
			var n int
			err := pool.QueryRow(e.ctx, "SELECT count(*) FROM "+schema+".river_job WHERE kind = 'sweep' AND state = 'completed' AND finalized_at > $1", up).Scan(&n)
			return err == nil && n > 0
		}, 30*time.Second, 200*time.Millisecond, "%s sweeps run again after the outage", schema)
	}

	// Every push the sandbox made: stored and acknowledged, or refused with 503 — nothing else.
	stored := map[string]bool{}
	rows, err := pool.Query(e.ctx, "SELECT pubsub_message_id FROM gmail.notifications WHERE provider_id = $1", p.ID)
	require.NoError(t, err)
	for rows.Next() {
		var id string
		require.NoError(t, rows.Scan(&id))
		stored[id] = true
	}
	require.NoError(t, rows.Err())
	all := deliveriesOf(t, e, "pubsub")[pushes0:]
	refused, ackedIDs := 0, map[string]bool{}
	for _, d := range all {
		switch {
		case d.Status >= 200 && d.Status < 300:
			require.True(t, stored[d.ID], "push %s acknowledged (%d) with its notification stored", d.ID, d.Status)
			ackedIDs[d.ID] = true
		case d.Status == http.StatusServiceUnavailable:
			refused++
		default:
			t.Fatalf("push %s attempt %d answered %d (%s): only 2xx or 503 may be", d.ID, d.Attempt, d.Status, d.Error)
		}
	}
	require.Positive(t, refused, "pushes during the outage were refused with 503")
	for _, d := range all {
		require.True(t, ackedIDs[d.ID], "push %s was eventually stored", d.ID)
	}
	t.Logf("%d push attempts: %d acknowledged messages, %d refused with 503", len(all), len(ackedIDs), refused)

	// Calendar: every event created during the load is a change, once; every channel notification was
	// stored and answered 2xx — or is covered by a later stored one (Calendar's older message numbers are
	// acknowledged without a row: the later notification's delta sync read their change) — or refused
	// with 503.
	require.Eventually(t, func() bool {
		return len(ce.calendarChanges(t, cp.ID)) >= len(events)
	}, 30*time.Second, 200*time.Millisecond, "every event synced")
	seen := map[string]int{}
	for _, c := range ce.calendarChanges(t, cp.ID) {
		seen[c.GetSummary()]++
	}
	for _, ev := range events {
		require.Equal(t, 1, seen[ev], "event %q a change once", ev)
	}
	var maxStored int64
	require.NoError(t, pool.QueryRow(e.ctx, "SELECT coalesce(max(message_number), 0) FROM calendar.notifications WHERE channel_id = $1", ch.ID).Scan(&maxStored))
	calRefused, calAcked := 0, 0
	for _, d := range deliveriesOf(t, e, "calendar")[channel0:] {
		if d.Target != ch.ID {
			continue
		}
		switch {
		case d.Status >= 200 && d.Status < 300:
			var n int64
			_, _ = fmt.Sscan(d.ID, &n)
			require.LessOrEqual(t, n, maxStored, "notification %d acknowledged and stored (or covered by a later one)", n)
			calAcked++
		case d.Status == http.StatusServiceUnavailable:
			calRefused++
		default:
			t.Fatalf("channel notification %s attempt %d answered %d (%s): only 2xx or 503 may be", d.ID, d.Attempt, d.Status, d.Error)
		}
	}
	require.Positive(t, calRefused, "channel notifications during the outage were refused with 503")
	t.Logf("calendar: %d events, %d notifications acknowledged, %d refused with 503", len(events), calAcked, calRefused)
}

// deliveriesOf lists the sandbox's recorded push attempts of kind (oldest first; the sandbox keeps 1000).
func deliveriesOf(t *testing.T, e *env, kind string) []googlesandbox.Delivery {
	t.Helper()
	all, err := e.admin.Deliveries(e.ctx)
	require.NoError(t, err)
	var out []googlesandbox.Delivery
	for _, d := range all {
		if d.Kind == kind {
			out = append(out, d)
		}
	}
	return out
}
