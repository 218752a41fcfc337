package workflow

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"
	"google.golang.org/grpc"

	m "github.com/algapsa/alga-google/gen/alga/maintenance/v1"

	"github.com/algapsa/alga-google/services/maintenance/internal/activities"
	"github.com/algapsa/alga-google/services/maintenance/internal/upkeep"
)

var a *activities.Activities

type testBundle struct {
	env *testsuite.TestWorkflowEnvironment
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(TenantMaintenance, workflowOptions())
	env.RegisterActivityWithOptions(&activities.Activities{}, activity.RegisterOptions{SkipInvalidStructFunctions: true})
	return &testBundle{env: env}
}

func task(kind, provider, step string) upkeep.Task {
	return upkeep.Task{Tenant: "t1", RunID: "default-test-run-id", Kind: kind, ProviderID: provider, Step: step, Reason: "due"}
}

func gmailItem(provider string, steps ...string) upkeep.Item {
	tok := task(upkeep.KindGmail, provider, upkeep.StepTokenRefresh)
	tok.ConnectionID = "k-" + provider
	it := upkeep.Item{Kind: upkeep.KindGmail, ProviderID: provider, Name: provider + "@acme.test", Token: &tok}
	for _, s := range steps {
		it.Steps = append(it.Steps, task(upkeep.KindGmail, provider, s))
	}
	return it
}

func plan(opts upkeep.Options, items ...upkeep.Item) upkeep.Plan {
	return upkeep.Plan{Tenant: "t1", RunID: "default-test-run-id", Options: opts, Items: items}
}

var fast = upkeep.Options{Concurrency: 2, StepTimeout: 10 * time.Second, HeartbeatTimeout: 5 * time.Second, MaxAttempts: 3, InitialInterval: time.Second}

func ok(step string, calls int) upkeep.StepResult {
	return upkeep.StepResult{Step: step, Status: upkeep.StatusOK, GoogleCalls: calls}
}

func (b *testBundle) result(t *testing.T) upkeep.Run {
	t.Helper()
	require.True(t, b.env.IsWorkflowCompleted())
	require.NoError(t, b.env.GetWorkflowError())
	var run upkeep.Run
	require.NoError(t, b.env.GetWorkflowResult(&run))
	return run
}

func TestWorkflowMaintainsEveryDueStepAndRecordsTheRun(t *testing.T) {
	t.Parallel()
	b := setup(t)
	p := plan(fast,
		gmailItem("p1", upkeep.StepWatchRenew, upkeep.StepReconcile),
		upkeep.Item{Kind: upkeep.KindCalendar, ProviderID: "c1", Name: "tech", Steps: []upkeep.Task{task(upkeep.KindCalendar, "c1", upkeep.StepChannelRenew)}},
		upkeep.Item{Kind: upkeep.KindGmail, ProviderID: "p2", Notes: []upkeep.StepResult{{Step: upkeep.StepWatchRenew, Status: upkeep.StatusNotDue, Reason: "fresh"}}},
	)
	b.env.OnActivity(a.Plan, mock.Anything, activities.PlanInput{Tenant: "t1", RunID: "default-test-run-id"}).Return(p, nil).Once()
	b.env.OnActivity(a.RefreshConnection, mock.Anything, mock.Anything).Return(ok(upkeep.StepTokenRefresh, 1), nil).Once()
	b.env.OnActivity(a.MaintainGmail, mock.Anything, mock.MatchedBy(func(t upkeep.Task) bool { return t.Step == upkeep.StepWatchRenew })).
		Return(ok(upkeep.StepWatchRenew, 1), nil).Once()
	b.env.OnActivity(a.MaintainGmail, mock.Anything, mock.MatchedBy(func(t upkeep.Task) bool { return t.Step == upkeep.StepReconcile })).
		Return(ok(upkeep.StepReconcile, 1), nil).Once()
	b.env.OnActivity(a.MaintainCalendar, mock.Anything, mock.Anything).Return(ok(upkeep.StepChannelRenew, 2), nil).Once()
	var recorded upkeep.Run
	b.env.OnActivity(a.RecordRun, mock.Anything, mock.Anything).Return(func(_ context.Context, r upkeep.Run) error {
		recorded = r
		return nil
	}).Once()

	b.env.ExecuteWorkflow(TenantMaintenance, upkeep.Input{Tenant: "t1", Trigger: upkeep.TriggerManual})
	run := b.result(t)
	b.env.AssertExpectations(t)
	require.Equal(t, upkeep.RunSucceeded, run.Status())
	require.Equal(t, upkeep.RunnerTemporal, run.Runner)
	require.Equal(t, upkeep.TriggerManual, run.Trigger)
	require.Len(t, run.Providers, 3)
	due, failed, calls := run.Counts()
	require.Equal(t, []int{2, 0, 5}, []int{due, failed, calls})
	require.Equal(t, upkeep.StatusNotDue, run.Providers[2].Status())
	require.Equal(t, run.RunID, recorded.RunID, "the recorded run is the returned one")
	require.Len(t, recorded.Providers, 3)
}

func TestTransientFailuresAreRetried(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.env.OnActivity(a.Plan, mock.Anything, mock.Anything).Return(plan(fast, gmailItem("p1", upkeep.StepWatchRenew)), nil)
	b.env.OnActivity(a.RefreshConnection, mock.Anything, mock.Anything).Return(ok(upkeep.StepTokenRefresh, 1), nil)
	var attempts atomic.Int32
	b.env.OnActivity(a.MaintainGmail, mock.Anything, mock.Anything).Return(func(ctx context.Context, tk upkeep.Task) (upkeep.StepResult, error) {
		if attempts.Add(1) < 3 {
			r := upkeep.Failure(tk.Step, upkeep.ClassTransient, "google_unavailable", "503", "")
			return r, activities.StepError(r)
		}
		return ok(tk.Step, 1), nil
	})
	b.env.OnActivity(a.RecordRun, mock.Anything, mock.Anything).Return(nil)
	b.env.ExecuteWorkflow(TenantMaintenance, upkeep.Input{Tenant: "t1"})
	run := b.result(t)
	require.EqualValues(t, 3, attempts.Load(), "two transient failures, then success")
	require.Equal(t, upkeep.RunSucceeded, run.Status())
	require.Equal(t, upkeep.TriggerSchedule, run.Trigger)
}

func TestTransientFailureAfterTheLastAttemptIsRecorded(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.env.OnActivity(a.Plan, mock.Anything, mock.Anything).Return(plan(fast, gmailItem("p1", upkeep.StepWatchRenew, upkeep.StepReconcile)), nil)
	b.env.OnActivity(a.RefreshConnection, mock.Anything, mock.Anything).Return(ok(upkeep.StepTokenRefresh, 1), nil)
	var watch, reconcile atomic.Int32
	b.env.OnActivity(a.MaintainGmail, mock.Anything, mock.Anything).Return(func(ctx context.Context, tk upkeep.Task) (upkeep.StepResult, error) {
		if tk.Step == upkeep.StepReconcile {
			reconcile.Add(1)
			return ok(tk.Step, 1), nil
		}
		watch.Add(1)
		r := upkeep.Failure(tk.Step, upkeep.ClassTransient, "google_unavailable", "Google answered 503", "")
		return r, activities.StepError(r)
	})
	b.env.OnActivity(a.RecordRun, mock.Anything, mock.Anything).Return(nil)
	b.env.ExecuteWorkflow(TenantMaintenance, upkeep.Input{Tenant: "t1"})
	run := b.result(t)
	require.EqualValues(t, fast.MaxAttempts, watch.Load())
	require.EqualValues(t, 1, reconcile.Load(), "a transient failure does not stop the next step")
	f, ok := run.Providers[0].FirstFailure()
	require.True(t, ok)
	require.Equal(t, "google_unavailable", f.ErrorCode, "the last attempt's outcome travels in the error details")
	require.Equal(t, upkeep.ClassTransient, f.FailureClass)
	require.Equal(t, upkeep.RunPartial, run.Status())
}

func TestPermanentFailuresAreNotRetried(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.env.OnActivity(a.Plan, mock.Anything, mock.Anything).Return(plan(fast, gmailItem("p1", upkeep.StepWatchRenew, upkeep.StepReconcile)), nil)
	var refreshes, gmailCalls atomic.Int32
	b.env.OnActivity(a.RefreshConnection, mock.Anything, mock.Anything).Return(func(ctx context.Context, tk upkeep.Task) (upkeep.StepResult, error) {
		refreshes.Add(1)
		r := upkeep.Failure(tk.Step, upkeep.ClassRevoked, "token_revoked", "The grant was revoked.", "Reconnect the mailbox.")
		return r, activities.StepError(r)
	})
	var recordedFailure *upkeep.StepResult
	b.env.OnActivity(a.MaintainGmail, mock.Anything, mock.Anything).Return(func(ctx context.Context, tk upkeep.Task) (upkeep.StepResult, error) {
		gmailCalls.Add(1)
		recordedFailure = tk.TokenFailure
		return ok(tk.Step, 0), nil
	})
	b.env.OnActivity(a.RecordRun, mock.Anything, mock.Anything).Return(nil)
	b.env.ExecuteWorkflow(TenantMaintenance, upkeep.Input{Tenant: "t1"})
	run := b.result(t)
	require.EqualValues(t, 1, refreshes.Load(), "non-retryable: one attempt")
	require.EqualValues(t, 1, gmailCalls.Load(), "only the failure is recorded on the provider; no watch call")
	require.NotNil(t, recordedFailure)
	require.Equal(t, "token_revoked", recordedFailure.ErrorCode)
	f, _ := run.Providers[0].FirstFailure()
	require.Equal(t, "Reconnect the mailbox.", f.Remedy)
	require.Equal(t, upkeep.ClassRevoked, f.FailureClass)
}

func TestHeartbeatTimeout(t *testing.T) {
	t.Parallel()
	b := setup(t)
	opts := fast
	opts.HeartbeatTimeout, opts.MaxAttempts, opts.InitialInterval = 300*time.Millisecond, 2, 10*time.Millisecond
	b.env.OnActivity(a.Plan, mock.Anything, mock.Anything).Return(plan(opts, gmailItem("p1", upkeep.StepReconcile)), nil)
	b.env.OnActivity(a.RefreshConnection, mock.Anything, mock.Anything).Return(ok(upkeep.StepTokenRefresh, 1), nil)
	// A step that hangs without heartbeating (a worker stuck on a dead connection).
	var attempts atomic.Int32
	b.env.OnActivity(a.MaintainGmail, mock.Anything, mock.Anything).Return(func(ctx context.Context, tk upkeep.Task) (upkeep.StepResult, error) {
		attempts.Add(1)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
		return upkeep.StepResult{}, errors.New("hung")
	})
	b.env.OnActivity(a.RecordRun, mock.Anything, mock.Anything).Return(nil)
	b.env.SetTestTimeout(30 * time.Second)
	b.env.ExecuteWorkflow(TenantMaintenance, upkeep.Input{Tenant: "t1"})
	run := b.result(t)
	require.EqualValues(t, 2, attempts.Load(), "the heartbeat timeout is retried")
	f, ok := run.Providers[0].FirstFailure()
	require.True(t, ok)
	require.Equal(t, "step_timed_out", f.ErrorCode)
	require.Contains(t, f.Message, "heartbeat")
}

func TestPlanFailureIsRecorded(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.env.OnActivity(a.Plan, mock.Anything, mock.Anything).Return(upkeep.Plan{}, errors.New("the gmail service answered Unavailable: restarting"))
	var recorded upkeep.Run
	b.env.OnActivity(a.RecordRun, mock.Anything, mock.Anything).Return(func(_ context.Context, r upkeep.Run) error {
		recorded = r
		return nil
	})
	b.env.ExecuteWorkflow(TenantMaintenance, upkeep.Input{Tenant: "t1"})
	run := b.result(t)
	require.Equal(t, upkeep.RunFailed, run.Status())
	require.Equal(t, "plan_failed", recorded.ErrorCode)
	require.Contains(t, recorded.Message, "Unavailable")
}

func TestConcurrencyIsBoundedPerTenant(t *testing.T) {
	t.Parallel()
	b := setup(t)
	opts := fast
	opts.Concurrency = 3
	var items []upkeep.Item
	for _, p := range []string{"p1", "p2", "p3", "p4", "p5", "p6", "p7", "p8"} {
		it := gmailItem(p, upkeep.StepWatchRenew)
		it.Token = nil
		items = append(items, it)
	}
	b.env.OnActivity(a.Plan, mock.Anything, mock.Anything).Return(plan(opts, items...), nil)
	var inFlight, peak atomic.Int32
	b.env.OnActivity(a.MaintainGmail, mock.Anything, mock.Anything).Return(func(ctx context.Context, tk upkeep.Task) (upkeep.StepResult, error) {
		n := inFlight.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(50 * time.Millisecond)
		inFlight.Add(-1)
		return ok(tk.Step, 1), nil
	})
	b.env.OnActivity(a.RecordRun, mock.Anything, mock.Anything).Return(nil)
	b.env.ExecuteWorkflow(TenantMaintenance, upkeep.Input{Tenant: "t1"})
	run := b.result(t)
	require.Equal(t, int32(3), peak.Load())
	require.Len(t, run.Providers, 8)
	for i, p := range run.Providers {
		require.Equal(t, items[i].ProviderID, p.ProviderID, "results keep the plan's order")
	}
}

// TestReplay replays a history recorded from a real dev-server run (regenerate with
// ALGA_UPDATE_TESTDATA=1 go test -run TestTemporalRunnerEndToEnd .): a change to the workflow that
// would break running workflows fails here.
func TestReplay(t *testing.T) {
	t.Parallel()
	r := worker.NewWorkflowReplayer()
	r.RegisterWorkflowWithOptions(TenantMaintenance, workflowOptions())
	require.NoError(t, r.ReplayWorkflowHistoryFromJSONFile(nil, "testdata/tenant_maintenance_history.json"))
}

// slowGmail answers MaintainGmailProvider after delay (a long reconcile at the owning service).
type slowGmail struct {
	m.GmailUpkeepServiceClient
	delay time.Duration
	calls atomic.Int32
}

func (s *slowGmail) MaintainGmailProvider(ctx context.Context, r *m.MaintainGmailProviderRequest, _ ...grpc.CallOption) (*m.MaintainGmailProviderResponse, error) {
	s.calls.Add(1)
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(s.delay):
	}
	return &m.MaintainGmailProviderResponse{Reconcile: &m.Outcome{Status: m.OutcomeStatus_OUTCOME_STATUS_OK, GoogleCalls: 1}}, nil
}

// TestHeartbeatsKeepASlowStepAlive runs the real activity: a step slower than the heartbeat timeout
// succeeds at the first attempt because the activity heartbeats while the owning service works.
func TestHeartbeatsKeepASlowStepAlive(t *testing.T) {
	t.Parallel()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(TenantMaintenance, workflowOptions())
	gmail := &slowGmail{delay: time.Second}
	env.RegisterActivityWithOptions(&activities.Activities{Gmail: gmail, Limiter: activities.NewLimiter(0, 1)},
		activity.RegisterOptions{SkipInvalidStructFunctions: true})
	opts := fast
	opts.HeartbeatTimeout = 300 * time.Millisecond
	it := gmailItem("p1", upkeep.StepReconcile)
	it.Token = nil
	env.OnActivity(a.Plan, mock.Anything, mock.Anything).Return(plan(opts, it), nil)
	env.OnActivity(a.RecordRun, mock.Anything, mock.Anything).Return(nil)
	env.SetTestTimeout(30 * time.Second)
	env.ExecuteWorkflow(TenantMaintenance, upkeep.Input{Tenant: "t1"})
	require.NoError(t, env.GetWorkflowError())
	var run upkeep.Run
	require.NoError(t, env.GetWorkflowResult(&run))
	require.Equal(t, upkeep.StatusOK, run.Providers[0].Status(), "%+v", run.Providers[0].Steps)
	require.EqualValues(t, 1, gmail.calls.Load())
}
