package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"

	"github.com/algapsa/alga-google/services/maintenance/internal/activities"
	"github.com/algapsa/alga-google/services/maintenance/internal/upkeep"
	"github.com/algapsa/alga-google/services/maintenance/internal/workflow"
)

// Temporal is the production runner: one Temporal Schedule per configured tenant (id
// google-maintenance/<tenant>, overlap SKIP) starts the TenantMaintenance workflow every Interval on
// TaskQueue; this process runs a Temporal worker for the workflow and its activities, and the
// reconciler that keeps the schedules in line with the configured tenants.
type Temporal struct {
	Client     client.Client
	TaskQueue  string
	Interval   time.Duration
	Activities *activities.Activities
	// MaxActivities bounds the activities this worker runs at once (tenants × per-tenant concurrency).
	MaxActivities int
	Logger        *slog.Logger

	worker worker.Worker
}

// Name implements Runner.
func (*Temporal) Name() string { return upkeep.RunnerTemporal }

// Register registers the workflow and the activities on w.
func Register(w worker.Registry, a *activities.Activities) {
	w.RegisterWorkflowWithOptions(workflow.TenantMaintenance, workflow.RegisterOptions())
	w.RegisterActivityWithOptions(a, activity.RegisterOptions{SkipInvalidStructFunctions: true})
}

// StartWorker starts the Temporal worker (it polls until StopWorker).
func (t *Temporal) StartWorker() error {
	w := worker.New(t.Client, t.TaskQueue, worker.Options{MaxConcurrentActivityExecutionSize: max(t.MaxActivities, 1)})
	Register(w, t.Activities)
	if err := w.Start(); err != nil {
		return fmt.Errorf("starting the Temporal worker: %w", err)
	}
	t.worker = w
	return nil
}

// StopWorker stops the worker (waiting for its running activities up to the worker's stop timeout).
func (t *Temporal) StopWorker() {
	if t.worker != nil {
		t.worker.Stop()
	}
}

func (t *Temporal) workflowTimeout() time.Duration { return max(t.Interval, 10*time.Minute) }

func (t *Temporal) scheduleOptions(tenant string) client.ScheduleOptions {
	return client.ScheduleOptions{
		ID:      ScheduleID(tenant),
		Spec:    client.ScheduleSpec{Intervals: []client.ScheduleIntervalSpec{{Every: t.Interval}}},
		Overlap: enumspb.SCHEDULE_OVERLAP_POLICY_SKIP,
		Action: &client.ScheduleWorkflowAction{
			ID:                       ScheduleID(tenant) + "/scheduled",
			Workflow:                 workflow.Name,
			Args:                     []any{upkeep.Input{Tenant: tenant, Trigger: upkeep.TriggerSchedule}},
			TaskQueue:                t.TaskQueue,
			WorkflowExecutionTimeout: t.workflowTimeout(),
		},
	}
}

// Reconcile makes the schedules match the configured tenants: it creates the missing ones, updates
// those whose interval or task queue changed, and deletes those of tenants no longer configured. It
// runs at worker start and every few minutes; the oauth service may also trigger it after a setup
// change (SyncGoogleMaintenanceSchedule).
func (t *Temporal) Reconcile(ctx context.Context) error {
	tenants, err := t.Activities.ListTenants(ctx)
	if err != nil {
		return fmt.Errorf("listing configured tenants: %w", err)
	}
	want := map[string]bool{}
	for _, tn := range tenants {
		want[ScheduleID(tn)] = true
	}
	existing := map[string]*client.ScheduleListEntry{}
	it, err := t.Client.ScheduleClient().List(ctx, client.ScheduleListOptions{PageSize: 500})
	if err != nil {
		return fmt.Errorf("listing schedules: %w", err)
	}
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			return fmt.Errorf("listing schedules: %w", err)
		}
		if strings.HasPrefix(e.ID, ScheduleID("")) {
			existing[e.ID] = e
		}
	}
	var errs []error
	for _, tn := range tenants {
		e, ok := existing[ScheduleID(tn)]
		switch {
		case !ok:
			errs = append(errs, t.Ensure(ctx, tn))
		case !t.specMatches(e):
			errs = append(errs, t.update(ctx, tn))
		}
	}
	for id := range existing {
		if !want[id] {
			errs = append(errs, t.Remove(ctx, strings.TrimPrefix(id, ScheduleID(""))))
		}
	}
	return errors.Join(errs...)
}

func (t *Temporal) specMatches(e *client.ScheduleListEntry) bool {
	return e.Spec != nil && len(e.Spec.Intervals) == 1 && e.Spec.Intervals[0].Every == t.Interval
}

// Ensure creates the tenant's schedule (an existing one is left as it is).
func (t *Temporal) Ensure(ctx context.Context, tenant string) error {
	_, err := t.Client.ScheduleClient().Create(ctx, t.scheduleOptions(tenant))
	if err != nil && !errors.Is(err, temporal.ErrScheduleAlreadyRunning) {
		return fmt.Errorf("creating schedule %s: %w", ScheduleID(tenant), err)
	}
	if err == nil {
		t.Logger.InfoContext(ctx, "maintenance schedule created", "tenant", tenant, "schedule", ScheduleID(tenant))
	}
	return nil
}

func (t *Temporal) update(ctx context.Context, tenant string) error {
	h := t.Client.ScheduleClient().GetHandle(ctx, ScheduleID(tenant))
	opts := t.scheduleOptions(tenant)
	return h.Update(ctx, client.ScheduleUpdateOptions{DoUpdate: func(in client.ScheduleUpdateInput) (*client.ScheduleUpdate, error) {
		s := in.Description.Schedule
		s.Spec = &opts.Spec
		s.Action = opts.Action
		if s.Policy == nil {
			s.Policy = &client.SchedulePolicies{}
		}
		s.Policy.Overlap = enumspb.SCHEDULE_OVERLAP_POLICY_SKIP
		return &client.ScheduleUpdate{Schedule: &s}, nil
	}})
}

// Remove deletes the tenant's schedule (a missing one is fine).
func (t *Temporal) Remove(ctx context.Context, tenant string) error {
	err := t.Client.ScheduleClient().GetHandle(ctx, ScheduleID(tenant)).Delete(ctx)
	var nf *serviceerror.NotFound
	if err != nil && !errors.As(err, &nf) {
		return fmt.Errorf("deleting schedule %s: %w", ScheduleID(tenant), err)
	}
	if err == nil {
		t.Logger.InfoContext(ctx, "maintenance schedule deleted", "tenant", tenant, "schedule", ScheduleID(tenant))
	}
	return nil
}

// RunReconciler reconciles now and then every `every`, until ctx ends.
func (t *Temporal) RunReconciler(ctx context.Context, every time.Duration) {
	for {
		if err := t.Reconcile(ctx); err != nil && ctx.Err() == nil {
			t.Logger.WarnContext(ctx, "reconciling maintenance schedules", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
	}
}

// RunNow implements Runner: it starts the tenant's workflow now (a second request while one runs
// joins it) and waits for its result.
func (t *Temporal) RunNow(ctx context.Context, tenant string) (upkeep.Run, error) {
	wr, err := t.Client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                       ScheduleID(tenant) + "/manual",
		TaskQueue:                t.TaskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		WorkflowExecutionTimeout: t.workflowTimeout(),
	}, workflow.Name, upkeep.Input{Tenant: tenant, Trigger: upkeep.TriggerManual})
	if err != nil {
		return upkeep.Run{}, fmt.Errorf("starting the maintenance workflow: %w", err)
	}
	var run upkeep.Run
	if err := wr.Get(ctx, &run); err != nil {
		return upkeep.Run{}, fmt.Errorf("maintenance workflow %s: %w", wr.GetRunID(), err)
	}
	return run, nil
}

// NextRun implements Runner: the schedule's next action time.
func (t *Temporal) NextRun(ctx context.Context, tenant string) (time.Time, bool, error) {
	d, err := t.Client.ScheduleClient().GetHandle(ctx, ScheduleID(tenant)).Describe(ctx)
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, err
	}
	if len(d.Info.NextActionTimes) == 0 {
		return time.Time{}, false, nil
	}
	return d.Info.NextActionTimes[0], true, nil
}
