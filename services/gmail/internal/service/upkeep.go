package service

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/api/googleapi"
	"google.golang.org/protobuf/types/known/timestamppb"

	maintenancev1 "github.com/algapsa/alga-google/gen/alga/maintenance/v1"
	"github.com/algapsa/alga-google/services/gmail/internal/store"
)

// Upkeep implements maintenancev1.GmailUpkeepService, the contract the maintenance service's activities
// call (service identities only; the tenant is the one the service token acts for). Maintenance decides
// what is due; Upkeep executes exactly the steps it is asked — with the same code as activation, Refresh
// and the push-triggered sync — records every outcome on the provider (status, error code, message,
// remedy, diagnostics step, timeline event) and reports the Google calls each step made.
type Upkeep struct {
	maintenancev1.UnimplementedGmailUpkeepServiceServer
	s *Service
}

// The upkeep steps, as the timeline names them.
const (
	upkeepVerify       = "provisioning_verify"
	upkeepWatch        = "watch_renew"
	upkeepReconcile    = "reconcile"
	upkeepTokenFailure = "record_token_failure"
	// stepHistory is the diagnostics step of a reconcile's history sync.
	stepHistory = "history"
)

// clearedBy lists, per upkeep step, the diagnostics steps whose error its success disproves: a
// provider in ERROR because of one of them is CONNECTED again. (A working users.watch proves the token,
// the labels and the watch; a working history.list the token and the history; a verified provisioning
// the service account, topic, grant and subscription.)
var clearedBy = map[string][]string{
	upkeepVerify:    {stepServiceAccount, stepTopic, stepPublisherGrant, stepSubscription},
	upkeepWatch:     {stepToken, stepLabels, stepWatch},
	upkeepReconcile: {stepToken, stepHistory},
}

func stateOf(p *store.Provider) maintenancev1.ProviderState {
	if !p.Active {
		return maintenancev1.ProviderState_PROVIDER_STATE_PAUSED
	}
	switch p.State {
	case store.StateConnected:
		return maintenancev1.ProviderState_PROVIDER_STATE_CONNECTED
	case store.StateError:
		return maintenancev1.ProviderState_PROVIDER_STATE_ERROR
	case store.StateConnecting:
		return maintenancev1.ProviderState_PROVIDER_STATE_CONNECTING
	}
	return maintenancev1.ProviderState_PROVIDER_STATE_DISCONNECTED
}

func tsOf(t *time.Time) *timestamppb.Timestamp {
	if t == nil {
		return nil
	}
	return timestamppb.New(*t)
}

// ListGmailUpkeep lists every Gmail provider of the tenant with the state maintenance decides on.
func (u *Upkeep) ListGmailUpkeep(ctx context.Context, _ *maintenancev1.ListGmailUpkeepRequest) (*maintenancev1.ListGmailUpkeepResponse, error) {
	tenant, err := serviceTenant(ctx)
	if err != nil {
		return nil, err
	}
	list, err := store.ListUpkeep(ctx, u.s.pool, tenant)
	if err != nil {
		return nil, err
	}
	resp := &maintenancev1.ListGmailUpkeepResponse{}
	for _, p := range list {
		g := &maintenancev1.GmailUpkeep{
			ProviderId: p.ID, Mailbox: p.Mailbox, State: stateOf(&p.Provider),
			ConnectTime: tsOf(p.ConnectTime), WatchExpireTime: tsOf(p.WatchExpireTime), LastWatchTime: tsOf(p.LastWatchTime),
			LastPushTime: tsOf(p.LastPushTime), LastSyncTime: tsOf(p.LastSyncTime),
			LastProvisioningCheckTime: tsOf(p.LastProvisioningCheckTime),
			PushEndpoint:              p.PushEndpoint, PushAudience: p.PushAudience,
		}
		if p.State == store.StateError {
			g.ErrorCode = p.ErrorCode
		}
		resp.Providers = append(resp.Providers, g)
	}
	return resp, nil
}

// MaintainGmailProvider performs the requested steps on one provider, in the order provisioning →
// watch → reconcile: a step not requested is NOT_DUE (no call); a step after a permanent failure, or
// on a provider that is paused, disconnected or being connected, is SKIPPED (no call). A token_failure
// is recorded on the provider with no Google call.
func (u *Upkeep) MaintainGmailProvider(ctx context.Context, req *maintenancev1.MaintainGmailProviderRequest) (*maintenancev1.MaintainGmailProviderResponse, error) {
	tenant, err := serviceTenant(ctx)
	if err != nil {
		return nil, err
	}
	resp := &maintenancev1.MaintainGmailProviderResponse{Provisioning: notDue(), Watch: notDue(), Reconcile: notDue(), TokenFailure: notDue()}
	skipAll := func(why string) {
		if req.GetVerifyProvisioning() {
			resp.Provisioning = skipped(why)
		}
		if req.GetRenewWatch() {
			resp.Watch = skipped(why)
		}
		if req.GetReconcile() {
			resp.Reconcile = skipped(why)
		}
		if req.TokenFailure != nil {
			resp.TokenFailure = skipped(why)
		}
	}
	p, err := store.GetProvider(ctx, u.s.pool, tenant, strings.ToLower(req.GetProviderId()))
	if errors.Is(err, store.ErrNotFound) {
		// Deleted since maintenance listed it.
		skipAll("the provider no longer exists")
		resp.State = maintenancev1.ProviderState_PROVIDER_STATE_DISCONNECTED
		return resp, nil
	}
	if err != nil {
		return nil, err
	}
	s := u.s
	runID := req.GetRunId()
	switch {
	case req.TokenFailure != nil:
		if p.State == store.StateDisconnected || p.State == store.StateConnecting {
			skipAll(notMaintained(p))
			break
		}
		if p, err = s.recordTokenFailure(ctx, p, req.GetTokenFailure(), runID); err != nil {
			return nil, err
		}
		resp.TokenFailure = &maintenancev1.Outcome{Status: maintenancev1.OutcomeStatus_OUTCOME_STATUS_OK}
	case notMaintained(p) != "":
		skipAll(notMaintained(p))
	default:
		stop := ""
		if req.GetVerifyProvisioning() {
			if resp.Provisioning, resp.Repaired, p, err = s.upkeepVerify(ctx, p, runID); err != nil {
				return nil, err
			}
			stop = stopReason(resp.Provisioning)
		}
		if req.GetRenewWatch() {
			if stop != "" {
				resp.Watch = skipped(stop)
			} else {
				if resp.Watch, p, err = s.upkeepWatch(ctx, p, runID); err != nil {
					return nil, err
				}
				stop = stopReason(resp.Watch)
			}
		}
		if req.GetReconcile() {
			if stop != "" {
				resp.Reconcile = skipped(stop)
			} else if resp.Reconcile, p, err = s.upkeepReconcile(ctx, p, runID); err != nil {
				return nil, err
			}
		}
	}
	for step, o := range map[string]*maintenancev1.Outcome{upkeepVerify: resp.Provisioning, upkeepWatch: resp.Watch,
		upkeepReconcile: resp.Reconcile, upkeepTokenFailure: resp.TokenFailure} {
		s.metrics.upkeep.WithLabelValues(step, strings.TrimPrefix(strings.ToLower(o.GetStatus().String()), "outcome_status_")).Inc()
	}
	resp.State = stateOf(p)
	resp.WatchExpireTime = tsOf(p.WatchExpireTime)
	return resp, nil
}

// notMaintained says why a provider is left alone ("" when it is maintained): paused, not connected or
// being connected. A provider in ERROR is maintained — repairing is the only way its error clears.
func notMaintained(p *store.Provider) string {
	switch {
	case !p.Active:
		return "the provider is paused"
	case p.State == store.StateDisconnected:
		return "the provider is not connected"
	case p.State == store.StateConnecting:
		return "the provider is being connected"
	}
	return ""
}

func notDue() *maintenancev1.Outcome {
	return &maintenancev1.Outcome{Status: maintenancev1.OutcomeStatus_OUTCOME_STATUS_NOT_DUE}
}

func skipped(why string) *maintenancev1.Outcome {
	return &maintenancev1.Outcome{Status: maintenancev1.OutcomeStatus_OUTCOME_STATUS_SKIPPED, Message: "Not attempted: " + why + "."}
}

// outcome is a step's result: OK, or FAILED with f's class, code, message and remedy.
func outcome(f *failure, calls *callCounter) *maintenancev1.Outcome {
	if f == nil {
		return &maintenancev1.Outcome{Status: maintenancev1.OutcomeStatus_OUTCOME_STATUS_OK, GoogleCalls: calls.count()}
	}
	return &maintenancev1.Outcome{Status: maintenancev1.OutcomeStatus_OUTCOME_STATUS_FAILED, FailureClass: f.failureClass(),
		ErrorCode: f.code, Message: f.message, Remedy: f.remedy, GoogleCalls: calls.count()}
}

// stopReason is why the steps after o are skipped ("" when they run): o failed permanently.
func stopReason(o *maintenancev1.Outcome) string {
	if o.GetStatus() == maintenancev1.OutcomeStatus_OUTCOME_STATUS_FAILED && o.GetFailureClass() != maintenancev1.FailureClass_FAILURE_CLASS_TRANSIENT {
		return "an earlier step failed (" + o.GetErrorCode() + ")"
	}
	return ""
}

// stepRecord is what an upkeep step stores on its provider.
type stepRecord struct {
	step  string
	runID string
	// steps are the diagnostics steps it re-ran (they replace the recorded ones).
	steps []store.Step
	// f is the failure, nil on success.
	f *failure
	// noError: a failure that is not the provider's (a busy mailbox): timeline only, no ERROR.
	noError bool
	// event is the timeline message of a success.
	event string
	// apply stores what a success produced.
	apply func(tx pgx.Tx) error
}

// record stores an upkeep step's outcome on the provider in one transaction — its diagnostics steps;
// on failure the ERROR (code, message, remedy, the step that failed); on success what it produced and
// the clearing of an error it disproves; a timeline event either way — and returns the provider as
// stored.
func (s *Service) record(ctx context.Context, p *store.Provider, r stepRecord) (*store.Provider, error) {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := store.LockProvider(ctx, tx, p.Tenant, p.ID); err != nil {
			return err
		}
		if err := store.UpsertSteps(ctx, tx, p.Tenant, p.ID, r.steps); err != nil {
			return err
		}
		if r.f != nil {
			if !r.noError {
				_, err := store.SetError(ctx, tx, p.Tenant, p.ID, r.f.step, r.f.code, r.f.message, r.f.remedy)
				if errors.Is(err, store.ErrNotFound) {
					return nil // disconnected (reset) while the step ran: nothing to record
				}
				if err != nil {
					return err
				}
			}
			typ := r.step + "_failed"
			if r.step == upkeepTokenFailure {
				typ = "token_failure"
			}
			return store.InsertEvent(ctx, tx, p.Tenant, p.ID, store.Event{Type: typ, Step: r.f.step,
				ErrorCode: r.f.code, Message: r.f.message, RunID: r.runID})
		}
		if r.apply != nil {
			if err := r.apply(tx); err != nil {
				return err
			}
		}
		if err := store.InsertEvent(ctx, tx, p.Tenant, p.ID, store.Event{Type: r.step + "_ok", Step: r.step, Message: r.event, RunID: r.runID}); err != nil {
			return err
		}
		cleared, err := store.ClearError(ctx, tx, p.Tenant, p.ID, clearedBy[r.step])
		if err != nil || !cleared {
			return err
		}
		return store.InsertEvent(ctx, tx, p.Tenant, p.ID, store.Event{Type: "recovered", Step: r.step, ErrorCode: p.ErrorCode,
			Message: "The error " + p.ErrorCode + " is cleared: " + r.step + " succeeded.", RunID: r.runID})
	})
	if err != nil {
		return nil, notFound(err)
	}
	saved, err := store.GetProvider(ctx, s.pool, p.Tenant, p.ID)
	return saved, notFound(err)
}

// upkeepVerify re-reads the Pub/Sub provisioning with the tenant's service account and repairs drift
// (the activation's provisionPubSub): the subscription is moved to the canonical endpoint and audience
// of the current base URL.
func (s *Service) upkeepVerify(ctx context.Context, p *store.Provider, runID string) (*maintenancev1.Outcome, []string, *store.Provider, error) {
	cctx, calls := countCalls(ctx)
	pr := &provisioning{}
	_, f, err := s.provisionPubSub(cctx, p, pr)
	if err != nil {
		return nil, nil, nil, err
	}
	if ctx.Err() != nil {
		return nil, nil, nil, ctx.Err() // cut short: nothing is recorded, the runner retries
	}
	msg := "Pub/Sub provisioning verified: push to " + s.base.GmailPushEndpoint() + "."
	if len(pr.repaired) > 0 {
		msg = "Pub/Sub provisioning repaired (" + strings.Join(pr.repaired, ", ") + "): push to " + s.base.GmailPushEndpoint() + "."
	}
	saved, err := s.record(ctx, p, stepRecord{step: upkeepVerify, runID: runID, steps: pr.steps, f: f, event: msg,
		apply: func(tx pgx.Tx) error {
			_, err := store.RecordProvisioningCheck(ctx, tx, p.Tenant, p.ID, pr.out.Topic, pr.out.Subscription)
			return err
		}})
	if err != nil {
		return nil, nil, nil, err
	}
	return outcome(f, calls), pr.repaired, saved, nil
}

// upkeepWatch calls users.watch again (the activation's watchMailbox: token, label names resolved,
// watch) and stores the expiration Google returns, whatever it is.
func (s *Service) upkeepWatch(ctx context.Context, p *store.Provider, runID string) (*maintenancev1.Outcome, *store.Provider, error) {
	cctx, calls := countCalls(ctx)
	pr := &provisioning{}
	var f *failure
	if p.Topic == "" {
		f = pr.fail(stepWatch, &failure{code: "not_provisioned", message: "The mailbox's Pub/Sub topic is not provisioned yet.",
			remedy: "Refresh this mailbox (or let maintenance verify its provisioning first)."})
	} else {
		var err error
		if f, err = s.watchMailbox(cctx, p, p.Topic, pr); err != nil {
			return nil, nil, err
		}
	}
	if ctx.Err() != nil {
		return nil, nil, ctx.Err()
	}
	var msg string
	if f == nil {
		msg = fmt.Sprintf("users.watch renewed: watching %s until %s.", strings.Join(pr.out.LabelIDs, ", "), pr.out.WatchExpire.Format(time.RFC3339))
	}
	saved, err := s.record(ctx, p, stepRecord{step: upkeepWatch, runID: runID, steps: pr.steps, f: f, event: msg,
		apply: func(tx pgx.Tx) error {
			_, err := store.RecordWatch(ctx, tx, p.Tenant, p.ID, pr.out.LabelIDs, *pr.out.WatchExpire, *pr.out.HistoryBaseline)
			return err
		}})
	if err != nil {
		return nil, nil, err
	}
	return outcome(f, calls), saved, nil
}

// reconcileLeased runs syncLeased while holding the lease holder took (renewed, then given back).
func (s *Service) reconcileLeased(ctx context.Context, p *store.Provider, holder string) error {
	ctx, release := store.SyncLeases.Keep(ctx, s.pool, s.log, p.Tenant, p.ID, holder, s.opts.SyncLeaseTTL)
	defer release()
	return s.syncLeased(ctx, p)
}

// upkeepReconcile runs the history sync a push would (syncOnce), under the mailbox's sync lease so it
// never reads the same history as a push-triggered sync at once: each message is stored once (as
// always, by its unique key and the history id only moving forward) and no Google call is made twice.
func (s *Service) upkeepReconcile(ctx context.Context, p *store.Provider, runID string) (*maintenancev1.Outcome, *store.Provider, error) {
	if p.HistoryID == nil {
		return skipped("the mailbox has no history id yet (no watch has succeeded)"), p, nil
	}
	cctx, calls := countCalls(ctx)
	holder := "reconcile:" + randomID()
	leased, err := s.leaseSync(cctx, p, holder, s.opts.ReconcileWait)
	if err != nil {
		return nil, nil, notFound(err)
	}
	r := stepRecord{step: upkeepReconcile, runID: runID}
	from := *p.HistoryID
	if !leased {
		r.f = &failure{code: "sync_busy", class: maintenancev1.FailureClass_FAILURE_CLASS_TRANSIENT,
			message: fmt.Sprintf("A sync of this mailbox has been running for more than %s.", s.opts.ReconcileWait),
			remedy:  "No action needed: the reconcile is retried."}
		r.noError = true
	} else if err := s.reconcileLeased(cctx, p, holder); err != nil {
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		if !googleError(err) {
			return nil, nil, notFound(err) // ours (database), or the provider deleted meanwhile
		}
		r.f = googleFailure(err, "history_failed", "Reading the mailbox history failed",
			"No action needed if it is transient (the next run reconciles again); otherwise Refresh the mailbox or reconnect it.")
		r.steps = []store.Step{{Name: stepHistory, OK: false, Detail: r.f.message, CheckTime: time.Now()}}
		if r.f.step == "" {
			r.f.step = stepHistory
		}
	} else {
		to := from
		if p.HistoryID != nil {
			to = *p.HistoryID
		}
		r.event = fmt.Sprintf("History read from %d up to %d.", from, to)
		r.steps = []store.Step{{Name: stepHistory, OK: true, Detail: r.event, CheckTime: time.Now()}}
	}
	saved, err := s.record(ctx, p, r)
	if err != nil {
		return nil, nil, err
	}
	return outcome(r.f, calls), saved, nil
}

// googleError reports a failure at Google (or toward it, or of the mailbox's token) rather than ours.
func googleError(err error) bool {
	var gerr *googleapi.Error
	var tp *tokenProblem
	var nerr net.Error
	return errors.As(err, &gerr) || errors.As(err, &tp) || errors.As(err, &nerr)
}

// recordTokenFailure records a connection's permanent refresh failure (found by maintenance's token
// refresh) on the provider: ERROR with its code, message and remedy, the token's diagnostics step and a
// timeline event. No Google call.
func (s *Service) recordTokenFailure(ctx context.Context, p *store.Provider, o *maintenancev1.Outcome, runID string) (*store.Provider, error) {
	f := &failure{code: o.GetErrorCode(), message: o.GetMessage(), remedy: o.GetRemedy(), class: o.GetFailureClass(), step: stepToken}
	return s.record(ctx, p, stepRecord{step: upkeepTokenFailure, runID: runID, f: f,
		steps: []store.Step{{Name: stepToken, OK: false, Detail: f.message, CheckTime: time.Now()}}})
}

func randomID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
