package service

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	maintenancev1 "github.com/algapsa/alga-google/gen/alga/maintenance/v1"
	"github.com/algapsa/alga-google/services/calendar/internal/gcal"
	"github.com/algapsa/alga-google/services/calendar/internal/store"
)

// UpkeepServer implements maintenancev1.CalendarUpkeepService: the calendar side of scheduled
// maintenance. The maintenance service decides what is due from ListCalendarUpkeep; this server
// executes exactly the steps a MaintainCalendarProvider request names — no more Google calls than
// they need — records each outcome on the provider (status, error code, message and remedy; a
// diagnostics step; a timeline event) and reports it with the Google calls it made. Service
// identities only; the tenant is the one the service token acts for.
type UpkeepServer struct {
	maintenancev1.UnimplementedCalendarUpkeepServiceServer
	s *Service
}

// UpkeepServer returns the CalendarUpkeepService implementation.
func (s *Service) UpkeepServer() maintenancev1.CalendarUpkeepServiceServer { return s.upkeep }

// Names of the upkeep steps in the provider's diagnostics (one row each) and timeline: the channel
// (renewed or recreated), the delta sync and the token (a refresh failure maintenance recorded).
const (
	stepChannel   = "channel"
	stepDeltaSync = "delta_sync"
	stepToken     = "token"
	// Timeline names of the channel actions.
	stepChannelRenew    = "channel_renew"
	stepChannelRecreate = "channel_recreate"
)

func upkeepState(state string) maintenancev1.ProviderState {
	switch state {
	case store.StateConnected:
		return maintenancev1.ProviderState_PROVIDER_STATE_CONNECTED
	case store.StateError:
		return maintenancev1.ProviderState_PROVIDER_STATE_ERROR
	case store.StateConnecting:
		return maintenancev1.ProviderState_PROVIDER_STATE_CONNECTING
	case store.StateDisconnected:
		return maintenancev1.ProviderState_PROVIDER_STATE_DISCONNECTED
	}
	return maintenancev1.ProviderState_PROVIDER_STATE_UNSPECIFIED
}

// ListCalendarUpkeep lists every Calendar provider of the tenant (all users) with its live channel:
// the newest active channel Google confirmed, with the expiration Google returned for it.
func (u *UpkeepServer) ListCalendarUpkeep(ctx context.Context, _ *maintenancev1.ListCalendarUpkeepRequest) (*maintenancev1.ListCalendarUpkeepResponse, error) {
	id, err := serviceCaller(ctx)
	if err != nil {
		return nil, err
	}
	list, err := store.ListUpkeep(ctx, u.s.deps.Pool, id.Tenant)
	if err != nil {
		return nil, err
	}
	out := &maintenancev1.ListCalendarUpkeepResponse{Providers: make([]*maintenancev1.CalendarUpkeep, 0, len(list))}
	for _, p := range list {
		name := p.AccountEmail
		if name == "" {
			name = p.DisplayName
		}
		c := &maintenancev1.CalendarUpkeep{
			ProviderId: p.ID, UserId: p.UserID, Name: name, State: upkeepState(p.State), ErrorCode: p.ErrorCode,
			ConnectTime: ts(p.ConnectTime), LastSyncTime: ts(p.LastSyncTime),
		}
		if p.ChannelID != nil {
			c.Channel = &maintenancev1.CalendarChannelUpkeep{
				ChannelId: *p.ChannelID, ExpireTime: ts(p.ChannelExpireTime), CreateTime: ts(p.ChannelCreateTime),
				LastNotificationTime: ts(p.ChannelLastNotificationTime),
			}
		}
		out.Providers = append(out.Providers, c)
	}
	return out, nil
}

func outcomeNotDue() *maintenancev1.Outcome {
	return &maintenancev1.Outcome{Status: maintenancev1.OutcomeStatus_OUTCOME_STATUS_NOT_DUE}
}

func outcomeSkipped(why string) *maintenancev1.Outcome {
	return &maintenancev1.Outcome{Status: maintenancev1.OutcomeStatus_OUTCOME_STATUS_SKIPPED, Message: why}
}

func outcomeOK(message string, calls int32) *maintenancev1.Outcome {
	return &maintenancev1.Outcome{Status: maintenancev1.OutcomeStatus_OUTCOME_STATUS_OK, Message: message, GoogleCalls: calls}
}

func outcomeFailed(pe providerError, calls int32) *maintenancev1.Outcome {
	return &maintenancev1.Outcome{Status: maintenancev1.OutcomeStatus_OUTCOME_STATUS_FAILED, FailureClass: pe.class,
		ErrorCode: pe.code, Message: pe.message, Remedy: pe.remedy, GoogleCalls: calls}
}

func isFailed(o *maintenancev1.Outcome) bool {
	return o.GetStatus() == maintenancev1.OutcomeStatus_OUTCOME_STATUS_FAILED
}

func isPermanentOutcome(o *maintenancev1.Outcome) bool {
	return isFailed(o) && o.GetFailureClass() != classTransient
}

// skipState says why a provider in this state is not maintained ("" when it is).
func skipState(p *store.Provider) string {
	switch p.State {
	case store.StateConnected, store.StateError:
		return ""
	case store.StateConnecting:
		return "the provider is being connected"
	}
	return "the provider is not connected"
}

// MaintainCalendarProvider performs the requested channel action, then the delta sync, or records a
// token failure (then nothing else). A step not requested is NOT_DUE; a step the provider's state no
// longer allows is SKIPPED without any call; a channel action that fails permanently leaves the delta
// sync SKIPPED. When no step failed and one succeeded, an earlier error of the provider is cleared.
func (u *UpkeepServer) MaintainCalendarProvider(ctx context.Context, req *maintenancev1.MaintainCalendarProviderRequest) (*maintenancev1.MaintainCalendarProviderResponse, error) {
	id, err := serviceCaller(ctx)
	if err != nil {
		return nil, err
	}
	s := u.s
	action := req.GetChannelAction()
	channelDue := action == maintenancev1.ChannelAction_CHANNEL_ACTION_RENEW || action == maintenancev1.ChannelAction_CHANNEL_ACTION_RECREATE
	res := &maintenancev1.MaintainCalendarProviderResponse{Channel: outcomeNotDue(), DeltaSync: outcomeNotDue(), TokenFailure: outcomeNotDue()}
	skipAll := func(why string) {
		if req.TokenFailure != nil {
			res.TokenFailure = outcomeSkipped(why)
			return
		}
		if channelDue {
			res.Channel = outcomeSkipped(why)
		}
		if req.GetDeltaSync() {
			res.DeltaSync = outcomeSkipped(why)
		}
	}
	p, err := store.GetProvider(ctx, s.deps.Pool, id.Tenant, req.GetProviderId())
	if errors.Is(err, store.ErrNotFound) {
		skipAll("the provider no longer exists")
		res.State = maintenancev1.ProviderState_PROVIDER_STATE_DISCONNECTED
		return res, nil
	}
	if err != nil {
		return nil, err
	}
	run := req.GetRunId()
	switch why := skipState(p); {
	case why != "":
		skipAll(why)
	case req.TokenFailure != nil:
		res.TokenFailure = s.recordTokenFailure(ctx, p, run, req.GetTokenFailure())
	default:
		if channelDue {
			res.Channel = s.upkeepChannel(ctx, p, run, action, req.GetChannelId())
		}
		if req.GetDeltaSync() {
			if isPermanentOutcome(res.Channel) {
				res.DeltaSync = outcomeSkipped("an earlier step failed (" + res.Channel.GetErrorCode() + ")")
			} else {
				res.DeltaSync = s.upkeepSync(ctx, p, run)
			}
		}
		s.clearIfRecovered(ctx, p, run, res.Channel, res.DeltaSync)
	}
	return s.upkeepAnswer(ctx, p, res)
}

// upkeepAnswer completes res with the provider's state and live channel after the call.
func (s *Service) upkeepAnswer(ctx context.Context, p *store.Provider, res *maintenancev1.MaintainCalendarProviderResponse) (*maintenancev1.MaintainCalendarProviderResponse, error) {
	cur, err := store.GetProvider(ctx, s.deps.Pool, p.Tenant, p.ID)
	if errors.Is(err, store.ErrNotFound) {
		res.State = maintenancev1.ProviderState_PROVIDER_STATE_DISCONNECTED
		return res, nil
	}
	if err != nil {
		return nil, err
	}
	res.State = upkeepState(cur.State)
	chans, err := store.ListChannels(ctx, s.deps.Pool, p.Tenant, p.ID)
	if err != nil {
		return nil, err
	}
	if c := latestActive(chans); c != nil {
		res.ChannelId, res.ChannelExpireTime = c.ChannelID, ts(c.ExpireTime)
	}
	return res, nil
}

// upkeepChannel renews or recreates the provider's channel through replaceChannel, counting the Google
// calls it makes, and records the outcome.
//   - RENEW: channelID must still be the live channel (else SKIPPED, nothing called); the new channel
//     is created first, then channelID is stopped.
//   - RECREATE: creates a channel where none is live (SKIPPED when one is live again), or where
//     channelID has expired: that one is retired without a stop call.
func (s *Service) upkeepChannel(ctx context.Context, p *store.Provider, run string, action maintenancev1.ChannelAction, channelID string) *maintenancev1.Outcome {
	renew := action == maintenancev1.ChannelAction_CHANNEL_ACTION_RENEW
	verb, event := "recreated", stepChannelRecreate
	if renew {
		verb, event = "renewed", stepChannelRenew
	}
	gctx, calls := gcal.CountCalls(ctx)
	r, err := s.replaceChannel(gctx, p, func(p *store.Provider, chans []*store.Channel) channelPlan {
		if why := skipState(p); why != "" {
			return channelPlan{skip: why}
		}
		live := latestActive(chans)
		if renew {
			if live == nil || live.ChannelID != channelID {
				return channelPlan{skip: "channel " + channelID + " is no longer the provider's live channel (it was renewed or stopped meanwhile)"}
			}
			return channelPlan{stop: []*store.Channel{live}}
		}
		if live != nil && live.ChannelID != channelID && !s.expired(live) {
			return channelPlan{skip: "the provider has a live channel again (" + live.ChannelID + ")"}
		}
		// The expired channel named, and any other active one that has expired, are retired (no call).
		var plan channelPlan
		for _, c := range chans {
			live := c.State == store.ChannelActive || c.State == store.ChannelStopping
			if live && (c.ChannelID == channelID || (c.State == store.ChannelActive && s.expired(c))) {
				plan.retire = append(plan.retire, c)
			}
		}
		return plan
	})
	var out *maintenancev1.Outcome
	switch {
	case errors.Is(err, store.ErrNotFound):
		return outcomeSkipped("the provider no longer exists")
	case errors.Is(err, errChannelBusy):
		out = outcomeSkipped("another change of this provider's push channel is in progress")
	case err != nil:
		out = outcomeFailed(classified(err), calls.Calls())
	case r.skip != "":
		out = outcomeSkipped(r.skip)
	default:
		msg := fmt.Sprintf("Push channel %s %s (expiration as Google returned it: %s).", r.channel.ChannelID, verb, expiry(r.channel))
		if renew {
			msg += " Channel " + channelID + " was stopped after it."
		} else if channelID != "" {
			msg += " Expired channel " + channelID + " was retired."
		}
		if len(r.warnings) > 0 {
			msg += " " + strings.Join(r.warnings, "; ") + "."
		}
		out = outcomeOK(msg, calls.Calls())
	}
	s.recordOutcome(ctx, p, run, stepChannel, event, out)
	return out
}

// expired reports whether a channel's expiration (as Google returned it) has passed.
func (s *Service) expired(c *store.Channel) bool {
	return c.ExpireTime != nil && !c.ExpireTime.After(s.deps.Now())
}

// upkeepSync runs the provider's delta sync on the one sync path (SyncProvider: the stored sync token,
// 410 → full resync, overlapping passes detected at write), counting its Google calls.
func (s *Service) upkeepSync(ctx context.Context, p *store.Provider, run string) *maintenancev1.Outcome {
	gctx, calls := gcal.CountCalls(ctx)
	err := s.SyncProvider(gctx, p.Tenant, p.ID)
	var out *maintenancev1.Outcome
	switch {
	case err == nil, errors.Is(err, errMoreWork):
		// errMoreWork: notifications keep arriving; the sync jobs they enqueued follow up.
		out = outcomeOK("Delta sync completed.", calls.Calls())
	default:
		out = outcomeFailed(classified(err), calls.Calls())
	}
	s.recordOutcome(ctx, p, run, stepDeltaSync, stepDeltaSync, out)
	return out
}

// recordTokenFailure records a permanent token failure maintenance saw on the provider's connection:
// ERROR with its code, message and remedy, the diagnostics step and a timeline event. No Google call.
func (s *Service) recordTokenFailure(ctx context.Context, p *store.Provider, run string, f *maintenancev1.Outcome) *maintenancev1.Outcome {
	pe := providerError{code: f.GetErrorCode(), message: f.GetMessage(), remedy: f.GetRemedy(), class: f.GetFailureClass()}
	err := pgx.BeginFunc(ctx, s.deps.Pool, func(tx pgx.Tx) error {
		if _, err := store.SetState(ctx, tx, p.Tenant, p.ID, store.StateError, pe.code, pe.message, pe.remedy); err != nil {
			return err
		}
		if err := store.UpsertStep(ctx, tx, p.Tenant, p.ID, store.Step{Name: stepToken, OK: false, ErrorCode: pe.code, Detail: pe.message, RunID: run}); err != nil {
			return err
		}
		return store.AddTimeline(ctx, tx, p.Tenant, p.ID, store.TimelineEvent{Type: "token_failure", Step: stepToken,
			ErrorCode: pe.code, Message: pe.message, RunID: run})
	})
	if err != nil {
		s.log.ErrorContext(ctx, "recording a token failure", "provider", p.ID, "err", err)
		return outcomeFailed(errInternal, 0)
	}
	return outcomeOK("Token failure "+pe.code+" recorded on the provider.", 0)
}

// recordOutcome lands a performed step's outcome on the provider, in one transaction: the diagnostics
// step, a timeline event, and for a failure the provider's ERROR with code, message and remedy.
// A SKIPPED step only gets its timeline event; NOT_DUE nothing.
func (s *Service) recordOutcome(ctx context.Context, p *store.Provider, run, step, event string, o *maintenancev1.Outcome) {
	ev := store.TimelineEvent{Step: event, ErrorCode: o.GetErrorCode(), Message: o.GetMessage(), RunID: run}
	switch o.GetStatus() {
	case maintenancev1.OutcomeStatus_OUTCOME_STATUS_OK:
		ev.Type = event + "_ok"
	case maintenancev1.OutcomeStatus_OUTCOME_STATUS_FAILED:
		ev.Type, ev.Step = event+"_failed", step
	case maintenancev1.OutcomeStatus_OUTCOME_STATUS_SKIPPED:
		ev.Type = event + "_skipped"
	default:
		return
	}
	err := pgx.BeginFunc(context.WithoutCancel(ctx), s.deps.Pool, func(tx pgx.Tx) error {
		ctx := context.WithoutCancel(ctx)
		if o.GetStatus() != maintenancev1.OutcomeStatus_OUTCOME_STATUS_SKIPPED {
			st := store.Step{Name: step, OK: !isFailed(o), ErrorCode: o.GetErrorCode(), Detail: o.GetMessage(), RunID: run}
			if err := store.UpsertStep(ctx, tx, p.Tenant, p.ID, st); err != nil {
				return err
			}
		}
		if isFailed(o) {
			if _, err := store.SetState(ctx, tx, p.Tenant, p.ID, store.StateError, o.GetErrorCode(), o.GetMessage(), o.GetRemedy()); err != nil {
				return err
			}
		}
		return store.AddTimeline(ctx, tx, p.Tenant, p.ID, ev)
	})
	if err != nil {
		s.log.ErrorContext(ctx, "recording an upkeep outcome", "provider", p.ID, "step", step, "err", err)
	}
}

// clearIfRecovered clears the provider's error when the steps of this call all succeeded (none failed,
// one at least was performed): a later success clears an earlier error.
func (s *Service) clearIfRecovered(ctx context.Context, p *store.Provider, run string, outcomes ...*maintenancev1.Outcome) {
	okCount := 0
	for _, o := range outcomes {
		if isFailed(o) {
			return
		}
		if o.GetStatus() == maintenancev1.OutcomeStatus_OUTCOME_STATUS_OK {
			okCount++
		}
	}
	if okCount == 0 {
		return
	}
	err := pgx.BeginFunc(context.WithoutCancel(ctx), s.deps.Pool, func(tx pgx.Tx) error {
		ctx := context.WithoutCancel(ctx)
		cur, err := store.GetProviderForUpdate(ctx, tx, p.Tenant, p.ID)
		if err != nil || cur.State != store.StateError {
			return err
		}
		if _, err := store.SetState(ctx, tx, p.Tenant, p.ID, store.StateConnected, "", "", ""); err != nil {
			return err
		}
		if err := store.MendStep(ctx, tx, p.Tenant, p.ID, stepToken, tokenWorks); err != nil {
			return err
		}
		return store.AddTimeline(ctx, tx, p.Tenant, p.ID, store.TimelineEvent{Type: "recovered", ErrorCode: cur.ErrorCode,
			Message: "Maintenance succeeded: the earlier error " + cur.ErrorCode + " is cleared.", RunID: run})
	})
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		s.log.ErrorContext(ctx, "clearing a recovered provider's error", "provider", p.ID, "err", err)
	}
}

// tokenWorks is the detail of a token step a later success mended.
const tokenWorks = "Google accepts the calendar's authorization again."

// timeline appends an event to the provider's timeline, best effort.
func (s *Service) timeline(ctx context.Context, p *store.Provider, e store.TimelineEvent) {
	if err := store.AddTimeline(context.WithoutCancel(ctx), s.deps.Pool, p.Tenant, p.ID, e); err != nil {
		s.log.ErrorContext(ctx, "recording a timeline event", "provider", p.ID, "err", err)
	}
}
