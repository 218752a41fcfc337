package maintenance_test

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	m "github.com/algapsa/alga-google/gen/alga/maintenance/v1"
	"github.com/algapsa/alga-google/services/maintenance"
	"github.com/algapsa/alga-google/services/maintenance/internal/fakes"
	"github.com/algapsa/alga-google/services/maintenance/internal/runner"
	"github.com/algapsa/alga-google/services/maintenance/internal/testenv"
	"github.com/algapsa/alga-google/services/platform/auth"
)

// clock is a movable clock shared by the worker's due decisions and the fakes.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type testBundle struct {
	ctx   context.Context
	clock *clock
	fake  *fakes.Fake
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	clk := &clock{t: time.Now()}
	fake := fakes.New()
	fake.Now = clk.Now
	fake.PushEndpoint = "https://alga.test/api/email/webhooks/google"
	return &testBundle{ctx: ctx, clock: clk, fake: fake}
}

// start starts the worker target on the bundle's fake and clock.
func (b *testBundle) start(t *testing.T, runnerName, temporalAddr string, configure func(c *maintenance.Config)) *testenv.Env {
	t.Helper()
	return testenv.Start(t, testenv.Options{Runner: runnerName, TemporalAddress: temporalAddr, Fake: b.fake,
		Configure: func(c *maintenance.Config) {
			c.Now = b.clock.Now
			c.ReconcileEvery = 300 * time.Millisecond
			if configure != nil {
				configure(c)
			}
		}})
}

func (b *testBundle) admin(t *testing.T, env *testenv.Env, tenant string) (m.MaintenanceServiceClient, context.Context) {
	return env.Client(t, b.ctx, tenant, auth.PermSystemSettingsUpdate)
}

// waitRuns polls the tenant's history until it holds n runs.
func waitRuns(t *testing.T, ctx context.Context, c m.MaintenanceServiceClient, n int) []*m.MaintenanceRun {
	t.Helper()
	var runs []*m.MaintenanceRun
	require.Eventually(t, func() bool {
		r, err := c.GetGoogleMaintenance(ctx, &m.GetGoogleMaintenanceRequest{})
		require.NoError(t, err)
		runs = r.GetRuns()
		return len(runs) >= n
	}, time.Minute, 50*time.Millisecond, "waiting for %d recorded runs", n)
	return runs
}

func provider(t *testing.T, run *m.MaintenanceRun, id string) *m.ProviderOutcome {
	t.Helper()
	for _, p := range run.GetProviders() {
		if p.GetProviderId() == id {
			return p
		}
	}
	t.Fatalf("run %s has no provider %s", run.GetRunId(), id)
	return nil
}

func stepsByName(p *m.ProviderOutcome) map[m.Step]*m.StepOutcome {
	out := map[m.Step]*m.StepOutcome{}
	for _, s := range p.GetSteps() {
		out[s.GetStep()] = s
	}
	return out
}

// checkSixAndAHalfDays jumps the clock 6.5 days past a fresh connect and runs now: every watch,
// channel and token must be renewed, with exactly the calls that were due.
func checkSixAndAHalfDays(t *testing.T, b *testBundle, env *testenv.Env, wantRunner m.Runner) *m.MaintenanceRun {
	t.Helper()
	gid, gconn := b.fake.AddGmail("t1", "support@acme.test")
	cid, cconn := b.fake.AddCalendar("t1", "tech@acme.test")
	adminC, actx := b.admin(t, env, "t1")
	before := len(b.fake.Calls("t1"))

	b.clock.Advance(6*24*time.Hour + 12*time.Hour)
	resp, err := adminC.RunGoogleMaintenance(actx, &m.RunGoogleMaintenanceRequest{})
	require.NoError(t, err)
	run := resp.GetRun()
	require.Equal(t, wantRunner, run.GetRunner())
	require.Equal(t, m.Trigger_TRIGGER_MANUAL, run.GetTrigger())
	require.Equal(t, m.RunStatus_RUN_STATUS_SUCCEEDED, run.GetStatus(), "%v", run)
	require.EqualValues(t, 2, run.GetProviderCount())
	require.EqualValues(t, 2, run.GetDueCount())

	g := provider(t, run, gid)
	require.Equal(t, m.OutcomeStatus_OUTCOME_STATUS_OK, g.GetStatus())
	gs := stepsByName(g)
	for _, st := range []m.Step{m.Step_STEP_TOKEN_REFRESH, m.Step_STEP_PROVISIONING_VERIFY, m.Step_STEP_WATCH_RENEW, m.Step_STEP_RECONCILE} {
		require.Equal(t, m.OutcomeStatus_OUTCOME_STATUS_OK, gs[st].GetOutcome().GetStatus(), "%s", st)
		require.NotEmpty(t, gs[st].GetReason())
	}
	c := provider(t, run, cid)
	cs := stepsByName(c)
	for _, st := range []m.Step{m.Step_STEP_TOKEN_REFRESH, m.Step_STEP_CHANNEL_RENEW, m.Step_STEP_DELTA_SYNC} {
		require.Equal(t, m.OutcomeStatus_OUTCOME_STATUS_OK, cs[st].GetOutcome().GetStatus(), "%s", st)
	}

	// The owners' state moved: a new watch and channel a week out, fresh tokens.
	now := b.clock.Now()
	require.WithinDuration(t, now.Add(7*24*time.Hour), b.fake.Gmail("t1", gid).GetWatchExpireTime().AsTime(), time.Second)
	require.WithinDuration(t, now.Add(7*24*time.Hour), b.fake.Calendar("t1", cid).GetChannel().GetExpireTime().AsTime(), time.Second)
	require.WithinDuration(t, now, b.fake.Token("t1", gconn).GetLastRefreshTime().AsTime(), time.Second)
	require.WithinDuration(t, now, b.fake.Token("t1", cconn).GetLastRefreshTime().AsTime(), time.Second)

	// Calls made == calls due: one request per due step, and the Google calls they reported.
	calls := b.fake.Calls("t1")[before:]
	require.Len(t, calls, 7, "%v", calls)
	require.EqualValues(t, 1+3+1+1+1+2+1, run.GetGoogleCalls())

	// Right after, nothing is due: a second run makes no call at all.
	resp, err = adminC.RunGoogleMaintenance(actx, &m.RunGoogleMaintenanceRequest{})
	require.NoError(t, err)
	require.EqualValues(t, 0, resp.GetRun().GetDueCount())
	require.EqualValues(t, 0, resp.GetRun().GetGoogleCalls())
	require.Len(t, b.fake.Calls("t1"), before+7)
	for _, s := range provider(t, resp.GetRun(), gid).GetSteps() {
		require.Equal(t, m.OutcomeStatus_OUTCOME_STATUS_NOT_DUE, s.GetOutcome().GetStatus(), "%s: %s", s.GetStep(), s.GetReason())
	}

	// Permissions: running needs system_settings:update; reading, any internal user.
	plain, pctx := env.Client(t, b.ctx, "t1")
	_, err = plain.RunGoogleMaintenance(pctx, &m.RunGoogleMaintenanceRequest{})
	require.Equal(t, codes.PermissionDenied, status.Code(err))
	got, err := plain.GetGoogleMaintenance(pctx, &m.GetGoogleMaintenanceRequest{})
	require.NoError(t, err)
	require.Equal(t, wantRunner, got.GetRunner())
	require.Equal(t, run.GetRunId(), got.GetRuns()[1].GetRunId(), "most recent first")
	require.EqualValues(t, time.Hour.Seconds(), got.GetInterval().GetSeconds())
	_, err = plain.GetGoogleMaintenance(pctx, &m.GetGoogleMaintenanceRequest{PageSize: 1000})
	require.Equal(t, codes.InvalidArgument, status.Code(err))

	// Another tenant sees none of it.
	other, octx := b.admin(t, env, "t2")
	got, err = other.GetGoogleMaintenance(octx, &m.GetGoogleMaintenanceRequest{})
	require.NoError(t, err)
	require.Empty(t, got.GetRuns())
	return run
}

func TestRiverRunNowRenewsWhatIsDue(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.fake.Tenant("t1")
	env := b.start(t, "river", "", nil)
	adminC, actx := b.admin(t, env, "t1")
	// The periodic job runs at start (River's leader): one scheduled run, nothing due yet.
	runs := waitRuns(t, actx, adminC, 1)
	require.Equal(t, m.Trigger_TRIGGER_SCHEDULE, runs[0].GetTrigger())
	require.Equal(t, m.Runner_RUNNER_RIVER, runs[0].GetRunner())

	checkSixAndAHalfDays(t, b, env, m.Runner_RUNNER_RIVER)

	got, err := adminC.GetGoogleMaintenance(actx, &m.GetGoogleMaintenanceRequest{})
	require.NoError(t, err)
	require.NotNil(t, got.GetNextRunTime(), "the next run follows the last scheduled one")

	// Under River there are no per-tenant schedules to sync.
	sc, sctx := env.ScheduleClient(t, b.ctx, "t1")
	sr, err := sc.SyncGoogleMaintenanceSchedule(sctx, &m.SyncGoogleMaintenanceScheduleRequest{Configured: true})
	require.NoError(t, err)
	require.False(t, sr.GetScheduled())
	// Users (even admins) cannot call it.
	_, uctx := b.admin(t, env, "t1")
	_, err = m.NewMaintenanceScheduleServiceClient(env.Conn()).SyncGoogleMaintenanceSchedule(uctx, &m.SyncGoogleMaintenanceScheduleRequest{Configured: true})
	require.Equal(t, codes.PermissionDenied, status.Code(err))
}

// TestRiverTenantsAreIsolated: tenant A's Google is slow and one of its grants is revoked; tenant B's
// scheduled run, started at the same time, completes in its normal time.
func TestRiverTenantsAreIsolated(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var revoked string
	var aProviders []string
	for _, mb := range []string{"a1@a.test", "a2@a.test", "a3@a.test"} {
		id, conn := b.fake.AddGmail("A", mb)
		aProviders = append(aProviders, id)
		if revoked == "" {
			revoked = conn
		}
	}
	bID, _ := b.fake.AddGmail("B", "b1@b.test")
	b.fake.Do(func(tenant func(string) *fakes.Tenant) {
		a, bt := tenant("A"), tenant("B")
		a.Delay = 700 * time.Millisecond
		a.Revoked[revoked] = true
		for _, p := range a.Gmail {
			p.WatchExpireTime = timestamppb.New(b.clock.Now().Add(time.Hour))
		}
		for _, c := range a.Tokens {
			c.LastRefreshTime = timestamppb.New(b.clock.Now().Add(-25 * time.Hour))
			c.ConnectTime = c.LastRefreshTime
		}
		for _, p := range bt.Gmail {
			p.WatchExpireTime = timestamppb.New(b.clock.Now().Add(time.Hour))
		}
	})
	env := b.start(t, "river", "", func(c *maintenance.Config) { c.TenantConcurrency = 1; c.Concurrency = 2 })

	ac, actx := b.admin(t, env, "A")
	bc, bctx := b.admin(t, env, "B")
	bRun := waitRuns(t, bctx, bc, 1)[0]
	aRun := waitRuns(t, actx, ac, 1)[0]
	require.Equal(t, m.Trigger_TRIGGER_SCHEDULE, bRun.GetTrigger())
	require.Equal(t, m.RunStatus_RUN_STATUS_SUCCEEDED, bRun.GetStatus())
	require.Equal(t, m.OutcomeStatus_OUTCOME_STATUS_OK, stepsByName(provider(t, bRun, bID))[m.Step_STEP_WATCH_RENEW].GetOutcome().GetStatus())

	// A: 3 refreshes + 2 watches + 1 recorded failure, one at a time, 700 ms each.
	for _, p := range aRun.GetProviders() {
		t.Logf("A %s %s: %v", p.GetName(), p.GetStatus(), p.GetSteps())
	}
	require.GreaterOrEqual(t, aRun.GetDuration().AsDuration(), 6*700*time.Millisecond)
	requireNotHeldBehind(t, bRun, aRun)

	// A's revoked grant: ERROR on the provider with the revoked-grant remedy, its watch not touched.
	require.Equal(t, m.RunStatus_RUN_STATUS_PARTIAL, aRun.GetStatus())
	require.EqualValues(t, 1, aRun.GetFailedCount())
	var failed *m.ProviderOutcome
	for _, p := range aRun.GetProviders() {
		if p.GetStatus() == m.OutcomeStatus_OUTCOME_STATUS_FAILED {
			failed = p
		}
	}
	require.NotNil(t, failed)
	require.Equal(t, "token_revoked", failed.GetErrorCode())
	require.Contains(t, failed.GetRemedy(), "Reconnect")
	fs := stepsByName(failed)
	require.Equal(t, m.FailureClass_FAILURE_CLASS_REVOKED, fs[m.Step_STEP_TOKEN_REFRESH].GetOutcome().GetFailureClass())
	require.Equal(t, m.OutcomeStatus_OUTCOME_STATUS_OK, fs[m.Step_STEP_RECORD_TOKEN_FAILURE].GetOutcome().GetStatus())
	require.Equal(t, m.OutcomeStatus_OUTCOME_STATUS_SKIPPED, fs[m.Step_STEP_WATCH_RENEW].GetOutcome().GetStatus())
	gp := b.fake.Gmail("A", failed.GetProviderId())
	require.Equal(t, m.ProviderState_PROVIDER_STATE_ERROR, gp.GetState())
	require.Equal(t, "token_revoked", gp.GetErrorCode())

	// The next run leaves the revoked connection alone (only the user can mend it): no call for it.
	before := len(b.fake.Calls("A"))
	r, err := ac.RunGoogleMaintenance(actx, &m.RunGoogleMaintenanceRequest{})
	require.NoError(t, err)
	require.Len(t, b.fake.Calls("A"), before, "nothing else was due")
	require.Equal(t, m.OutcomeStatus_OUTCOME_STATUS_SKIPPED, provider(t, r.GetRun(), failed.GetProviderId()).GetStatus())
	_ = aProviders
}

func TestTemporalRunnerEndToEnd(t *testing.T) {
	t.Parallel()
	b := setup(t)
	addr, tc := testenv.StartTemporal(t)
	b.fake.Tenant("t1")
	env := b.start(t, "temporal", addr, nil)

	// The reconciler creates one schedule per configured tenant, overlap SKIP.
	var desc *client.ScheduleDescription
	require.Eventually(t, func() bool {
		d, err := tc.ScheduleClient().GetHandle(b.ctx, runner.ScheduleID("t1")).Describe(b.ctx)
		desc = d
		return err == nil
	}, 30*time.Second, 100*time.Millisecond)
	require.Equal(t, enumspb.SCHEDULE_OVERLAP_POLICY_SKIP, desc.Schedule.Policy.Overlap)
	require.Equal(t, time.Hour, desc.Schedule.Spec.Intervals[0].Every)

	run := checkSixAndAHalfDays(t, b, env, m.Runner_RUNNER_TEMPORAL)

	adminC, actx := b.admin(t, env, "t1")
	got, err := adminC.GetGoogleMaintenance(actx, &m.GetGoogleMaintenanceRequest{})
	require.NoError(t, err)
	require.NotNil(t, got.GetNextRunTime(), "the schedule's next action")
	require.WithinDuration(t, time.Now().Add(time.Hour), got.GetNextRunTime().AsTime(), time.Hour+time.Minute)

	if os.Getenv("ALGA_UPDATE_TESTDATA") != "" {
		writeHistory(t, b.ctx, tc, runner.ScheduleID("t1")+"/manual", run.GetRunId())
	}

	// A tenant whose setup is removed loses its schedule: at once through the sync call …
	b.fake.Do(func(tenant func(string) *fakes.Tenant) { tenant("t1").Configured = false })
	sc, sctx := env.ScheduleClient(t, b.ctx, "t1")
	sr, err := sc.SyncGoogleMaintenanceSchedule(sctx, &m.SyncGoogleMaintenanceScheduleRequest{Configured: false})
	require.NoError(t, err)
	require.False(t, sr.GetScheduled())
	_, err = tc.ScheduleClient().GetHandle(b.ctx, runner.ScheduleID("t1")).Describe(b.ctx)
	require.Error(t, err)
	// … and a newly configured tenant gets one, a removed one loses it, through the periodic reconcile.
	b.fake.Tenant("t2")
	require.Eventually(t, func() bool {
		_, err := tc.ScheduleClient().GetHandle(b.ctx, runner.ScheduleID("t2")).Describe(b.ctx)
		return err == nil
	}, 30*time.Second, 100*time.Millisecond)
	b.fake.Do(func(tenant func(string) *fakes.Tenant) { tenant("t2").Configured = false })
	require.Eventually(t, func() bool {
		_, err := tc.ScheduleClient().GetHandle(b.ctx, runner.ScheduleID("t2")).Describe(b.ctx)
		return err != nil
	}, 30*time.Second, 100*time.Millisecond)
}

// TestTemporalTenantsAreIsolated: both tenants' schedules fire at once; A is slow with a revoked
// grant, B completes in its normal time.
func TestTemporalTenantsAreIsolated(t *testing.T) {
	t.Parallel()
	b := setup(t)
	addr, tc := testenv.StartTemporal(t)
	aID, aConn := b.fake.AddGmail("A", "a1@a.test")
	b.fake.AddGmail("A", "a2@a.test")
	bID, _ := b.fake.AddGmail("B", "b1@b.test")
	b.fake.Do(func(tenant func(string) *fakes.Tenant) {
		tenant("A").Delay = 700 * time.Millisecond
		tenant("A").Revoked[aConn] = true
		for _, tn := range []string{"A", "B"} {
			for _, p := range tenant(tn).Gmail {
				p.WatchExpireTime = timestamppb.New(b.clock.Now().Add(time.Hour))
			}
			for _, c := range tenant(tn).Tokens {
				c.LastRefreshTime = timestamppb.New(b.clock.Now().Add(-25 * time.Hour))
				c.ConnectTime = c.LastRefreshTime
			}
		}
	})
	env := b.start(t, "temporal", addr, func(c *maintenance.Config) { c.TenantConcurrency = 1 })
	for _, tn := range []string{"A", "B"} {
		require.Eventually(t, func() bool {
			_, err := tc.ScheduleClient().GetHandle(b.ctx, runner.ScheduleID(tn)).Describe(b.ctx)
			return err == nil
		}, 30*time.Second, 100*time.Millisecond)
	}
	for _, tn := range []string{"A", "B"} {
		require.NoError(t, tc.ScheduleClient().GetHandle(b.ctx, runner.ScheduleID(tn)).Trigger(b.ctx, client.ScheduleTriggerOptions{}))
	}
	ac, actx := b.admin(t, env, "A")
	bc, bctx := b.admin(t, env, "B")
	bRun := waitRuns(t, bctx, bc, 1)[0]
	aRun := waitRuns(t, actx, ac, 1)[0]
	require.Equal(t, m.Trigger_TRIGGER_SCHEDULE, bRun.GetTrigger())
	require.Equal(t, m.RunStatus_RUN_STATUS_SUCCEEDED, bRun.GetStatus())
	require.Equal(t, m.OutcomeStatus_OUTCOME_STATUS_OK, provider(t, bRun, bID).GetStatus())
	require.GreaterOrEqual(t, aRun.GetDuration().AsDuration(), 4*700*time.Millisecond)
	requireNotHeldBehind(t, bRun, aRun)

	f := provider(t, aRun, aID)
	require.Equal(t, m.OutcomeStatus_OUTCOME_STATUS_FAILED, f.GetStatus())
	require.Equal(t, "token_revoked", f.GetErrorCode())
	require.Contains(t, f.GetRemedy(), "Reconnect")
	require.Equal(t, m.ProviderState_PROVIDER_STATE_ERROR, b.fake.Gmail("A", aID).GetState())
	// The revoked refresh was not retried (non-retryable): exactly one refresh call for it.
	n := 0
	for _, c := range b.fake.Calls("A") {
		if c.ID == aConn {
			n++
		}
	}
	require.Equal(t, 1, n)
}

// writeHistory stores a workflow's history as the replay test's testdata.
func writeHistory(t *testing.T, ctx context.Context, c client.Client, workflowID, runID string) {
	t.Helper()
	it := c.GetWorkflowHistory(ctx, workflowID, runID, false, 0)
	h := &historypb.History{}
	for it.HasNext() {
		e, err := it.Next()
		require.NoError(t, err)
		h.Events = append(h.Events, e)
	}
	js, err := protojson.MarshalOptions{Indent: "  "}.Marshal(h)
	require.NoError(t, err)
	path := filepath.Join("internal", "workflow", "testdata", "tenant_maintenance_history.json")
	require.NoError(t, os.WriteFile(path, append(js, '\n'), 0o644))
	t.Logf("wrote %s (%d events)", path, len(h.Events))
}

// requireNotHeldBehind asserts that B's run, started with A's, took its normal time rather than A's:
// it finished first, in well under half of A's time. The bound is relative to A's run in the same test
// because absolute durations stretch on a loaded machine (a shared CI runner) while the ratio does not.
func requireNotHeldBehind(t *testing.T, bRun, aRun *m.MaintenanceRun) {
	t.Helper()
	require.True(t, bRun.GetEndTime().AsTime().Before(aRun.GetEndTime().AsTime()), "B finished before slow A")
	require.Less(t, bRun.GetDuration().AsDuration(), aRun.GetDuration().AsDuration()/2,
		"B's run took its normal time (B %s, A %s)", bRun.GetDuration().AsDuration(), aRun.GetDuration().AsDuration())
}
