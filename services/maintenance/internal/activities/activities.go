// Package activities holds the maintenance activities: methods on a struct that holds the clients of
// the services that own the providers (temporalio/samples-go style). The Temporal workflow runs them
// as activities; the River runner calls the same code directly (Direct), with the same retries.
//
// Each step activity asks the owning service for exactly one step — the one the plan found due — so
// a retry repeats only what failed, and the Google calls made equal the calls due.
package activities

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	m "github.com/algapsa/alga-google/gen/alga/maintenance/v1"
	"github.com/algapsa/alga-google/services/maintenance/internal/store"
	"github.com/algapsa/alga-google/services/maintenance/internal/upkeep"
	"github.com/algapsa/alga-google/services/platform/auth"
	"github.com/algapsa/alga-google/services/platform/errs"
	"github.com/algapsa/alga-google/services/platform/grpcclient"
)

// ServiceName is the identity maintenance calls the other services as (the worker target's peer
// connections sign as it: target.Identity).
const ServiceName = auth.SvcMaintenance

// Activities are the maintenance activities. Every field is set before the first call.
type Activities struct {
	Gmail    m.GmailUpkeepServiceClient
	Calendar m.CalendarUpkeepServiceClient
	Tokens   m.TokenUpkeepServiceClient
	Tenants  m.TenantDirectoryServiceClient
	Store    *store.Store
	Limiter  *Limiter
	Settings upkeep.Settings
	Options  upkeep.Options
	Logger   *slog.Logger
	// Now is the clock the due decisions use (tests move it).
	Now func() time.Time
}

// PlanInput names the tenant and run to plan.
type PlanInput struct {
	Tenant string `json:"tenant"`
	RunID  string `json:"run_id"`
}

// Plan lists the tenant's providers and connections from the owning services and decides what is due.
func (a *Activities) Plan(ctx context.Context, in PlanInput) (upkeep.Plan, error) {
	ctx = grpcclient.ActFor(ctx, ServiceName, in.Tenant, "")
	var snap upkeep.Snapshot
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		r, err := a.Gmail.ListGmailUpkeep(gctx, &m.ListGmailUpkeepRequest{})
		snap.Gmail = r.GetProviders()
		return wrapRPC("gmail", err)
	})
	g.Go(func() error {
		r, err := a.Calendar.ListCalendarUpkeep(gctx, &m.ListCalendarUpkeepRequest{})
		snap.Calendar = r.GetProviders()
		return wrapRPC("calendar", err)
	})
	g.Go(func() error {
		r, err := a.Tokens.ListTokenUpkeep(gctx, &m.ListTokenUpkeepRequest{})
		snap.Tokens = r.GetConnections()
		return wrapRPC("oauth", err)
	})
	if err := g.Wait(); err != nil {
		return upkeep.Plan{}, err
	}
	return upkeep.BuildPlan(a.Settings, a.now(), in.Tenant, in.RunID, a.Options, snap), nil
}

// ListTenants lists the tenants with a saved Google setup (each has a maintenance schedule).
func (a *Activities) ListTenants(ctx context.Context) ([]string, error) {
	ctx = grpcclient.ActFor(ctx, ServiceName, "", "")
	r, err := a.Tenants.ListConfiguredTenants(ctx, &m.ListConfiguredTenantsRequest{})
	if err != nil {
		return nil, wrapRPC("oauth", err)
	}
	out := make([]string, 0, len(r.GetTenants()))
	for _, t := range r.GetTenants() {
		if t.GetTenant() != "" {
			out = append(out, t.GetTenant())
		}
	}
	return out, nil
}

// RefreshConnection refreshes one connection's token (the oauth service classifies a failure).
func (a *Activities) RefreshConnection(ctx context.Context, t upkeep.Task) (upkeep.StepResult, error) {
	r := a.Execute(ctx, t)
	return r, StepError(r)
}

// MaintainGmail runs one step of a Gmail provider.
func (a *Activities) MaintainGmail(ctx context.Context, t upkeep.Task) (upkeep.StepResult, error) {
	r := a.Execute(ctx, t)
	return r, StepError(r)
}

// MaintainCalendar runs one step of a Calendar provider.
func (a *Activities) MaintainCalendar(ctx context.Context, t upkeep.Task) (upkeep.StepResult, error) {
	r := a.Execute(ctx, t)
	return r, StepError(r)
}

// RecordRun stores a run in the history (idempotent: a retry records nothing twice).
func (a *Activities) RecordRun(ctx context.Context, run upkeep.Run) error {
	if err := a.Store.RecordRun(ctx, run); err != nil {
		return fmt.Errorf("recording the run: %w", err)
	}
	return nil
}

func (a *Activities) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// googleCalls is how many Google calls a step is expected to make (the rate limiter's cost).
var googleCalls = map[string]int{
	upkeep.StepTokenRefresh: 1, upkeep.StepProvisioningVerify: 3, upkeep.StepWatchRenew: 1, upkeep.StepReconcile: 1,
	upkeep.StepChannelRenew: 2, upkeep.StepChannelRecreate: 1, upkeep.StepDeltaSync: 1, upkeep.StepRecordTokenFailure: 0,
}

// Execute runs one task and reports its outcome (never an error: a failure is a FAILED result). It
// is the code both runners share; the activity methods wrap it for Temporal.
func (a *Activities) Execute(ctx context.Context, t upkeep.Task) upkeep.StepResult {
	stop := heartbeat(ctx)
	defer stop()
	if err := a.Limiter.Wait(ctx, t.Tenant, googleCalls[t.Step]); err != nil {
		return upkeep.Failure(t.Step, upkeep.ClassTransient, "rate_limited", "the step did not get its turn under the tenant's Google rate limit in time", "")
	}
	ctx = grpcclient.ActFor(ctx, ServiceName, t.Tenant, "")
	switch t.Step {
	case upkeep.StepTokenRefresh:
		req := &m.RefreshConnectionRequest{ConnectionId: t.ConnectionID, RunId: t.RunID}
		if t.SeenRefreshTime != nil {
			req.SeenRefreshTime = timestamppb.New(*t.SeenRefreshTime)
		}
		resp, err := a.Tokens.RefreshConnection(ctx, req)
		if err != nil {
			return rpcFailure(t.Step, "oauth", err)
		}
		r := upkeep.FromOutcome(t.Step, resp.GetOutcome())
		r.ExpireTime = tsPtr(resp.GetAccessTokenExpireTime())
		return r
	case upkeep.StepProvisioningVerify, upkeep.StepWatchRenew, upkeep.StepReconcile:
		return a.gmailStep(ctx, t)
	case upkeep.StepChannelRenew, upkeep.StepChannelRecreate, upkeep.StepDeltaSync:
		return a.calendarStep(ctx, t)
	case upkeep.StepRecordTokenFailure:
		if t.Kind == upkeep.KindCalendar {
			return a.calendarStep(ctx, t)
		}
		return a.gmailStep(ctx, t)
	}
	return upkeep.Failure(t.Step, upkeep.ClassPermanent, "unknown_step", "unknown maintenance step "+t.Step, "")
}

func (a *Activities) gmailStep(ctx context.Context, t upkeep.Task) upkeep.StepResult {
	req := &m.MaintainGmailProviderRequest{ProviderId: t.ProviderID, RunId: t.RunID}
	switch t.Step {
	case upkeep.StepProvisioningVerify:
		req.VerifyProvisioning = true
	case upkeep.StepWatchRenew:
		req.RenewWatch = true
	case upkeep.StepReconcile:
		req.Reconcile = true
	case upkeep.StepRecordTokenFailure:
		req.TokenFailure = upkeep.ToOutcome(*t.TokenFailure)
	}
	resp, err := a.Gmail.MaintainGmailProvider(ctx, req)
	if err != nil {
		return rpcFailure(t.Step, "gmail", err)
	}
	switch t.Step {
	case upkeep.StepProvisioningVerify:
		return upkeep.FromOutcome(t.Step, resp.GetProvisioning())
	case upkeep.StepWatchRenew:
		r := upkeep.FromOutcome(t.Step, resp.GetWatch())
		r.ExpireTime = tsPtr(resp.GetWatchExpireTime())
		return r
	case upkeep.StepReconcile:
		return upkeep.FromOutcome(t.Step, resp.GetReconcile())
	}
	return upkeep.FromOutcome(t.Step, resp.GetTokenFailure())
}

func (a *Activities) calendarStep(ctx context.Context, t upkeep.Task) upkeep.StepResult {
	req := &m.MaintainCalendarProviderRequest{ProviderId: t.ProviderID, RunId: t.RunID, ChannelAction: m.ChannelAction_CHANNEL_ACTION_NONE}
	switch t.Step {
	case upkeep.StepChannelRenew:
		req.ChannelAction, req.ChannelId = m.ChannelAction_CHANNEL_ACTION_RENEW, t.ChannelID
	case upkeep.StepChannelRecreate:
		req.ChannelAction, req.ChannelId = m.ChannelAction_CHANNEL_ACTION_RECREATE, t.ChannelID
	case upkeep.StepDeltaSync:
		req.DeltaSync = true
	case upkeep.StepRecordTokenFailure:
		req.TokenFailure = upkeep.ToOutcome(*t.TokenFailure)
	}
	resp, err := a.Calendar.MaintainCalendarProvider(ctx, req)
	if err != nil {
		return rpcFailure(t.Step, "calendar", err)
	}
	switch t.Step {
	case upkeep.StepChannelRenew, upkeep.StepChannelRecreate:
		r := upkeep.FromOutcome(t.Step, resp.GetChannel())
		r.ExpireTime = tsPtr(resp.GetChannelExpireTime())
		return r
	case upkeep.StepDeltaSync:
		return upkeep.FromOutcome(t.Step, resp.GetDeltaSync())
	}
	return upkeep.FromOutcome(t.Step, resp.GetTokenFailure())
}

func tsPtr(t *timestamppb.Timestamp) *time.Time {
	if t == nil {
		return nil
	}
	v := t.AsTime()
	return &v
}

// rpcFailure classifies a failed call to an owning service. The status message of our own services
// is user-safe (errs.Rewrite answers internal failures generically), so it may be shown.
func rpcFailure(step, service string, err error) upkeep.StepResult {
	st := status.Convert(err)
	msg := fmt.Sprintf("the %s service answered %s: %s", service, st.Code(), st.Message())
	switch st.Code() {
	case codes.NotFound:
		return upkeep.StepResult{Step: step, Status: upkeep.StatusSkipped, Reason: "the provider no longer exists"}
	case codes.FailedPrecondition:
		if errs.ReasonOf(err) == "GOOGLE_NOT_CONFIGURED" {
			return upkeep.Failure(step, upkeep.ClassNotConfigured, "google_not_configured", st.Message(),
				"Complete the Google setup in Settings → Integrations → Communication → Google.")
		}
		return upkeep.Failure(step, upkeep.ClassPermanent, "precondition_failed", msg, "")
	case codes.InvalidArgument, codes.PermissionDenied, codes.Unauthenticated, codes.Unimplemented, codes.OutOfRange:
		return upkeep.Failure(step, upkeep.ClassPermanent, service+"_refused", msg, "")
	}
	return upkeep.Failure(step, upkeep.ClassTransient, service+"_unavailable", msg, "")
}

// wrapRPC turns a failed List call into an activity error: retryable unless the answer is final.
func wrapRPC(service string, err error) error {
	if err == nil {
		return nil
	}
	r := rpcFailure("plan", service, err)
	if r.Status == upkeep.StatusSkipped || r.Permanent() {
		code := r.ErrorCode
		if code == "" {
			code = service + "_refused"
		}
		return temporal.NewNonRetryableApplicationError(r.Message, code, nil)
	}
	return temporal.NewApplicationError(r.Message, r.ErrorCode)
}

// Error types of failed steps.
const (
	ErrTypeTransient = "maintenance.transient"
	ErrTypePermanent = "maintenance.permanent"
)

// StepError is the activity error for a failed step: retryable for a transient failure,
// temporal.NewNonRetryableApplicationError for a permanent one (a 4xx-class answer, a revoked grant).
// The result travels as the error's details, so the workflow records the last attempt's outcome.
func StepError(r upkeep.StepResult) error {
	if !r.Failed() {
		return nil
	}
	msg := r.Step + " failed: " + r.ErrorCode
	if r.Permanent() {
		return temporal.NewNonRetryableApplicationError(msg, ErrTypePermanent, nil, r)
	}
	return temporal.NewApplicationError(msg, ErrTypeTransient, r)
}

// ResultFromError recovers a step's outcome from the error its activity ended with.
func ResultFromError(step string, err error) upkeep.StepResult {
	var app *temporal.ApplicationError
	if errors.As(err, &app) && app.HasDetails() {
		var r upkeep.StepResult
		if app.Details(&r) == nil && r.Status != "" {
			return r
		}
	}
	var timeout *temporal.TimeoutError
	if errors.As(err, &timeout) {
		return upkeep.Failure(step, upkeep.ClassTransient, "step_timed_out",
			fmt.Sprintf("the step did not finish in time (%s timeout)", timeoutName(timeout)), "")
	}
	var canceled *temporal.CanceledError
	if errors.As(err, &canceled) || errors.Is(err, context.Canceled) {
		return upkeep.Failure(step, upkeep.ClassTransient, "step_canceled", "the run was canceled before the step finished", "")
	}
	if errors.As(err, &app) {
		class := upkeep.ClassTransient
		if app.NonRetryable() {
			class = upkeep.ClassPermanent
		}
		return upkeep.Failure(step, class, "step_failed", app.Message(), "")
	}
	return upkeep.Failure(step, upkeep.ClassTransient, "step_failed", "the step failed", "")
}

func timeoutName(t *temporal.TimeoutError) string {
	switch t.TimeoutType().String() {
	case "Heartbeat":
		return "heartbeat"
	case "StartToClose":
		return "start-to-close"
	case "ScheduleToClose":
		return "schedule-to-close"
	case "ScheduleToStart":
		return "schedule-to-start"
	}
	return t.TimeoutType().String()
}

// heartbeat records activity heartbeats while a step is in flight (an owning service's reconcile or
// delta sync, or a wait under the rate limit, may take a while), so a dead worker is noticed after
// the heartbeat timeout rather than the whole start-to-close timeout. Outside an activity (the River
// runner) it does nothing.
func heartbeat(ctx context.Context) (stop func()) {
	if !activity.IsActivity(ctx) {
		return func() {}
	}
	every := activity.GetInfo(ctx).HeartbeatTimeout / 3
	if every <= 0 {
		return func() {}
	}
	activity.RecordHeartbeat(ctx)
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				activity.RecordHeartbeat(ctx)
			}
		}
	}()
	return func() { close(done) }
}
