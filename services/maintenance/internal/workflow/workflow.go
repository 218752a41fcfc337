// Package workflow is the Temporal side of maintenance: the per-tenant workflow that one Temporal
// Schedule per tenant starts (google-maintenance/<tenant>), and the defaults of its activity options.
package workflow

import (
	"errors"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/algapsa/alga-google/services/maintenance/internal/activities"
	"github.com/algapsa/alga-google/services/maintenance/internal/upkeep"
)

// Name is the registered workflow type.
const Name = "GoogleTenantMaintenance"

// Defaults fill the options a plan leaves unset.
var Defaults = upkeep.Options{
	Concurrency: 4, StepTimeout: 2 * time.Minute, HeartbeatTimeout: 30 * time.Second,
	MaxAttempts: 3, InitialInterval: time.Second,
}

// WithDefaults fills unset options.
func WithDefaults(o upkeep.Options) upkeep.Options {
	if o.Concurrency <= 0 {
		o.Concurrency = Defaults.Concurrency
	}
	if o.StepTimeout <= 0 {
		o.StepTimeout = Defaults.StepTimeout
	}
	if o.HeartbeatTimeout <= 0 {
		o.HeartbeatTimeout = Defaults.HeartbeatTimeout
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = Defaults.MaxAttempts
	}
	if o.InitialInterval <= 0 {
		o.InitialInterval = Defaults.InitialInterval
	}
	return o
}

// StepRetryPolicy is the retry policy of every step activity: transient failures are retried with
// exponential backoff; permanent ones (maintenance.permanent, raised with
// temporal.NewNonRetryableApplicationError) never are.
func StepRetryPolicy(o upkeep.Options) *temporal.RetryPolicy {
	return &temporal.RetryPolicy{
		InitialInterval: o.InitialInterval, BackoffCoefficient: 2, MaximumInterval: time.Minute,
		MaximumAttempts: int32(o.MaxAttempts), NonRetryableErrorTypes: []string{activities.ErrTypePermanent},
	}
}

// TenantMaintenance is one run of a tenant's maintenance: plan (list the providers, decide what is
// due), maintain every provider with a due step — at most Concurrency at once, each step an activity
// with an explicit StartToCloseTimeout, a heartbeat timeout and a retry policy — and record the run.
// Its input, output and history carry provider ids, step names and outcomes: never a secret.
func TenantMaintenance(ctx workflow.Context, in upkeep.Input) (upkeep.Run, error) {
	info := workflow.GetInfo(ctx)
	run := upkeep.Run{
		RunID: info.WorkflowExecution.RunID, Tenant: in.Tenant, Runner: upkeep.RunnerTemporal,
		Trigger: in.Trigger, StartTime: workflow.Now(ctx),
	}
	if run.Trigger == "" {
		run.Trigger = upkeep.TriggerSchedule
	}
	var a *activities.Activities

	planCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 30 * time.Second, MaximumAttempts: 3,
		},
	})
	var plan upkeep.Plan
	if err := workflow.ExecuteActivity(planCtx, a.Plan, activities.PlanInput{Tenant: in.Tenant, RunID: run.RunID}).Get(ctx, &plan); err != nil {
		run.ErrorCode, run.Message = "plan_failed", failureMessage(err)
	} else {
		run.Providers = maintainAll(ctx, plan)
	}
	run.EndTime = workflow.Now(ctx)

	recordCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 30 * time.Second, MaximumAttempts: 10,
		},
	})
	if err := workflow.ExecuteActivity(recordCtx, a.RecordRun, run).Get(ctx, nil); err != nil {
		return run, err
	}
	return run, nil
}

// failureMessage is the user-safe message of a failed activity (our own application errors).
func failureMessage(err error) string {
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		return app.Message()
	}
	var timeout *temporal.TimeoutError
	if errors.As(err, &timeout) {
		return "listing the providers timed out"
	}
	return "listing the providers failed"
}

// maintainAll fans out over the plan's items, at most Concurrency providers at once.
func maintainAll(ctx workflow.Context, plan upkeep.Plan) []upkeep.ProviderResult {
	opts := WithDefaults(plan.Options)
	stepCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: opts.StepTimeout,
		HeartbeatTimeout:    opts.HeartbeatTimeout,
		RetryPolicy:         StepRetryPolicy(opts),
	})
	results := make([]upkeep.ProviderResult, len(plan.Items))
	sem := workflow.NewSemaphore(ctx, int64(opts.Concurrency))
	wg := workflow.NewWaitGroup(ctx)
	for i, it := range plan.Items {
		if !it.Due() {
			results[i] = upkeep.Maintain(nil, it)
			continue
		}
		if err := sem.Acquire(ctx, 1); err != nil {
			// The workflow is being canceled: the providers not started are not maintained.
			for j := i; j < len(plan.Items); j++ {
				results[j] = canceled(plan.Items[j])
			}
			break
		}
		wg.Add(1)
		workflow.Go(ctx, func(gctx workflow.Context) {
			defer wg.Done()
			defer sem.Release(1)
			results[i] = upkeep.Maintain(&executor{ctx: workflow.WithActivityOptions(gctx, workflow.GetActivityOptions(stepCtx))}, it)
		})
	}
	wg.Wait(ctx)
	return results
}

func canceled(it upkeep.Item) upkeep.ProviderResult {
	res := upkeep.ProviderResult{Kind: it.Kind, ProviderID: it.ProviderID, Name: it.Name, Due: it.Due(), Steps: it.Notes}
	if it.Token != nil {
		res.Steps = append(res.Steps, upkeep.StepResult{Step: it.Token.Step, Status: upkeep.StatusSkipped, Reason: "the run was canceled"})
	}
	for _, t := range it.Steps {
		res.Steps = append(res.Steps, upkeep.StepResult{Step: t.Step, Status: upkeep.StatusSkipped, Reason: "the run was canceled"})
	}
	return res
}

// executor runs each task as its activity and recovers the outcome of a failed one.
type executor struct{ ctx workflow.Context }

func (e *executor) Execute(t upkeep.Task) upkeep.StepResult {
	var a *activities.Activities
	var fn any
	switch {
	case t.Step == upkeep.StepTokenRefresh:
		fn = a.RefreshConnection
	case t.Kind == upkeep.KindCalendar:
		fn = a.MaintainCalendar
	default:
		fn = a.MaintainGmail
	}
	var r upkeep.StepResult
	if err := workflow.ExecuteActivity(e.ctx, fn, t).Get(e.ctx, &r); err != nil {
		return activities.ResultFromError(t.Step, err)
	}
	return r
}
