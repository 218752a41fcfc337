package service

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	calendarv1 "github.com/algapsa/alga-google/gen/alga/calendar/v1"
	maintenancev1 "github.com/algapsa/alga-google/gen/alga/maintenance/v1"
	oauthv1 "github.com/algapsa/alga-google/gen/alga/oauth/v1"
	"github.com/algapsa/alga-google/services/calendar/internal/store"
	"github.com/algapsa/alga-google/services/platform/auth"
)

const runID = "0b6f1c6e-3c1a-4c41-9d35-6a1f0f1e2a01"

var (
	statusOK      = maintenancev1.OutcomeStatus_OUTCOME_STATUS_OK
	statusNotDue  = maintenancev1.OutcomeStatus_OUTCOME_STATUS_NOT_DUE
	statusSkipped = maintenancev1.OutcomeStatus_OUTCOME_STATUS_SKIPPED
	statusFailed  = maintenancev1.OutcomeStatus_OUTCOME_STATUS_FAILED

	actionRenew    = maintenancev1.ChannelAction_CHANNEL_ACTION_RENEW
	actionRecreate = maintenancev1.ChannelAction_CHANNEL_ACTION_RECREATE
	actionNone     = maintenancev1.ChannelAction_CHANNEL_ACTION_NONE

	stateConnected = maintenancev1.ProviderState_PROVIDER_STATE_CONNECTED
	stateError     = maintenancev1.ProviderState_PROVIDER_STATE_ERROR
)

func otherTenantService() context.Context {
	return auth.WithIdentity(context.Background(), auth.Identity{Service: "maintenance", Tenant: "tenant-2"})
}

func (b *testBundle) upkeep() maintenancev1.CalendarUpkeepServiceServer { return b.svc.UpkeepServer() }

// maintain calls MaintainCalendarProvider as the maintenance service, after checking the request is
// one the validation interceptor lets through.
func (b *testBundle) maintain(t *testing.T, req *maintenancev1.MaintainCalendarProviderRequest) *maintenancev1.MaintainCalendarProviderResponse {
	t.Helper()
	if req.RunId == "" {
		req.RunId = runID
	}
	require.NoError(t, req.Validate())
	res, err := b.upkeep().MaintainCalendarProvider(serviceCtx("maintenance"), req)
	require.NoError(t, err)
	return res
}

func (b *testBundle) provider(t *testing.T, id string) *store.Provider {
	t.Helper()
	p, err := store.GetProvider(b.ctx, b.pool, tenant, id)
	require.NoError(t, err)
	return p
}

func (b *testBundle) steps(t *testing.T, id string) map[string]store.Step {
	t.Helper()
	list, err := store.ListSteps(b.ctx, b.pool, tenant, id)
	require.NoError(t, err)
	out := map[string]store.Step{}
	for _, s := range list {
		out[s.Name] = s
	}
	return out
}

// timelineTypes returns the provider's timeline event types, oldest first.
func (b *testBundle) timelineTypes(t *testing.T, id string) []string {
	t.Helper()
	list, err := store.ListTimeline(b.ctx, b.pool, tenant, id, 100)
	require.NoError(t, err)
	var out []string
	for i := len(list) - 1; i >= 0; i-- {
		out = append(out, list[i].Type)
	}
	return out
}

func (b *testBundle) lastTimeline(t *testing.T, id string) store.TimelineEvent {
	t.Helper()
	list, err := store.ListTimeline(b.ctx, b.pool, tenant, id, 1)
	require.NoError(t, err)
	require.NotEmpty(t, list)
	return list[0]
}

func requireOutcome(t *testing.T, o *maintenancev1.Outcome, st maintenancev1.OutcomeStatus, calls int32) {
	t.Helper()
	require.Equal(t, st.String(), o.GetStatus().String(), "outcome: %v", o)
	require.Equal(t, calls, o.GetGoogleCalls(), "google calls of %v", o)
}

func TestListCalendarUpkeepShowsEveryProviderWithItsLiveChannel(t *testing.T) {
	t.Parallel()
	b := setup(t)
	pa := b.connect(t, "alice")
	pb := b.create(t, "bob")
	ch := b.activeChannel(t, pa.GetId())
	require.Equal(t, int32(200), b.notify(t, b.google.notification(ch.ChannelID, "sync")))
	before := b.google.total()

	res, err := b.upkeep().ListCalendarUpkeep(serviceCtx("maintenance"), &maintenancev1.ListCalendarUpkeepRequest{})
	require.NoError(t, err)
	require.Equal(t, before, b.google.total(), "listing calls nothing")
	require.Len(t, res.GetProviders(), 2, "every user's provider")
	byID := map[string]*maintenancev1.CalendarUpkeep{}
	for _, p := range res.GetProviders() {
		byID[p.GetProviderId()] = p
	}

	a := byID[pa.GetId()]
	require.Equal(t, "alice", a.GetUserId())
	require.Equal(t, "alice@example.com", a.GetName())
	require.Equal(t, stateConnected, a.GetState())
	require.NotNil(t, a.GetConnectTime())
	require.NotNil(t, a.GetLastSyncTime(), "the initial sync")
	require.Equal(t, ch.ChannelID, a.GetChannel().GetChannelId())
	require.WithinDuration(t, b.google.channel(ch.ChannelID).Expire, a.GetChannel().GetExpireTime().AsTime(), 0, "the expiration Google returned")
	require.WithinDuration(t, ch.CreateTime, a.GetChannel().GetCreateTime().AsTime(), 0)
	require.NotNil(t, a.GetChannel().GetLastNotificationTime())

	bob := byID[pb.GetId()]
	require.Equal(t, "bob's calendar", bob.GetName(), "the display name when no account is connected")
	require.Equal(t, maintenancev1.ProviderState_PROVIDER_STATE_DISCONNECTED, bob.GetState())
	require.Nil(t, bob.GetChannel())
	require.Nil(t, bob.GetConnectTime())

	// After a renewal the newest channel is the live one; a stopped channel is never listed.
	r := b.maintain(t, &maintenancev1.MaintainCalendarProviderRequest{ProviderId: pa.GetId(), ChannelAction: actionRenew, ChannelId: ch.ChannelID})
	requireOutcome(t, r.GetChannel(), statusOK, 2)
	res, err = b.upkeep().ListCalendarUpkeep(serviceCtx("maintenance"), &maintenancev1.ListCalendarUpkeepRequest{})
	require.NoError(t, err)
	for _, p := range res.GetProviders() {
		if p.GetProviderId() == pa.GetId() {
			require.Equal(t, r.GetChannelId(), p.GetChannel().GetChannelId())
			require.Nil(t, p.GetChannel().GetLastNotificationTime(), "the new channel has had none yet")
		}
	}

	// The tenant is the service token's: another tenant's service sees nothing; users are refused.
	other, err := b.upkeep().ListCalendarUpkeep(otherTenantService(), &maintenancev1.ListCalendarUpkeepRequest{})
	require.NoError(t, err)
	require.Empty(t, other.GetProviders())
	_, err = b.upkeep().ListCalendarUpkeep(userCtx("alice", "system_settings:update"), &maintenancev1.ListCalendarUpkeepRequest{})
	require.Equal(t, codes.PermissionDenied, code(err))
	_, err = b.upkeep().MaintainCalendarProvider(userCtx("alice", "system_settings:update"), &maintenancev1.MaintainCalendarProviderRequest{ProviderId: pa.GetId(), DeltaSync: true})
	require.Equal(t, codes.PermissionDenied, code(err))
}

func TestRenewCreatesTheNewChannelFirstThenStopsTheOldOne(t *testing.T) {
	t.Parallel()
	b := setup(t)
	p := b.connect(t, "alice")
	old := b.activeChannel(t, p.GetId())
	from := len(b.google.sequence(0))

	res := b.maintain(t, &maintenancev1.MaintainCalendarProviderRequest{ProviderId: p.GetId(), ChannelAction: actionRenew, ChannelId: old.ChannelID})
	requireOutcome(t, res.GetChannel(), statusOK, 2)
	requireOutcome(t, res.GetDeltaSync(), statusNotDue, 0)
	requireOutcome(t, res.GetTokenFailure(), statusNotDue, 0)
	require.Equal(t, []string{"watch", "stop"}, b.google.sequence(from), "create first, then stop: overlap, no gap")
	require.NotEqual(t, old.ChannelID, res.GetChannelId())
	require.True(t, b.google.channel(old.ChannelID).Stopped)
	gnew := b.google.channel(res.GetChannelId())
	require.False(t, gnew.Stopped)
	require.WithinDuration(t, gnew.Expire, res.GetChannelExpireTime().AsTime(), 0, "the expiration Google returned")
	require.Equal(t, stateConnected, res.GetState())

	live := b.activeChannel(t, p.GetId())
	require.Equal(t, res.GetChannelId(), live.ChannelID)
	for _, c := range b.channels(t, p.GetId()) {
		if c.ChannelID == old.ChannelID {
			require.Equal(t, store.ChannelStopped, c.State)
		}
	}
	st := b.steps(t, p.GetId())[stepChannel]
	require.True(t, st.OK)
	require.Equal(t, runID, st.RunID)
	ev := b.lastTimeline(t, p.GetId())
	require.Equal(t, "channel_renew_ok", ev.Type)
	require.Equal(t, runID, ev.RunID)
	require.Contains(t, ev.Message, res.GetChannelId())

	// The decision was made on the old channel: it is no longer the live one, so the step is SKIPPED
	// and nothing is called (neither Google nor the oauth service).
	calls, asks := b.google.total(), b.oauth.asks()
	again := b.maintain(t, &maintenancev1.MaintainCalendarProviderRequest{ProviderId: p.GetId(), ChannelAction: actionRenew, ChannelId: old.ChannelID})
	requireOutcome(t, again.GetChannel(), statusSkipped, 0)
	require.Contains(t, again.GetChannel().GetMessage(), "no longer the provider's live channel")
	require.Equal(t, calls, b.google.total())
	require.Equal(t, asks, b.oauth.asks())
	require.Equal(t, res.GetChannelId(), again.GetChannelId())
	require.Equal(t, "channel_renew_skipped", b.lastTimeline(t, p.GetId()).Type)
}

func TestConcurrentRenewalsOfOneChannelCreateOneChannel(t *testing.T) {
	t.Parallel()
	b := setup(t)
	p := b.connect(t, "alice")
	old := b.activeChannel(t, p.GetId())
	watches := b.google.counts()["watch"]
	b.google.watchDelay.Store(int64(300 * time.Millisecond)) // every renewal reads the channels while the first one waits for Google

	var wg sync.WaitGroup
	results := make([]*maintenancev1.MaintainCalendarProviderResponse, 4)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := b.upkeep().MaintainCalendarProvider(serviceCtx("maintenance"), &maintenancev1.MaintainCalendarProviderRequest{
				ProviderId: p.GetId(), ChannelAction: actionRenew, ChannelId: old.ChannelID})
			if err == nil {
				results[i] = res
			}
		}()
	}
	wg.Wait()
	oks := 0
	for _, r := range results {
		require.NotNil(t, r)
		switch r.GetChannel().GetStatus() {
		case statusOK:
			oks++
		case statusSkipped:
			require.Equal(t, int32(0), r.GetChannel().GetGoogleCalls())
		default:
			t.Fatalf("unexpected outcome %v", r.GetChannel())
		}
	}
	require.Equal(t, 1, oks, "one renewal; the others see it and skip")
	require.Equal(t, watches+1, b.google.counts()["watch"])
	active := 0
	for _, c := range b.channels(t, p.GetId()) {
		if c.State == store.ChannelActive {
			active++
		}
	}
	require.Equal(t, 1, active)
}

func TestRecreateCreatesAChannelWhereNoneIsLiveAndRetiresAnExpiredOne(t *testing.T) {
	t.Parallel()
	b := setup(t)
	p := b.connect(t, "alice")
	old := b.activeChannel(t, p.GetId())

	// A live channel: nothing to recreate.
	calls := b.google.total()
	res := b.maintain(t, &maintenancev1.MaintainCalendarProviderRequest{ProviderId: p.GetId(), ChannelAction: actionRecreate})
	requireOutcome(t, res.GetChannel(), statusSkipped, 0)
	require.Equal(t, calls, b.google.total())

	// The channel expired (as Google said it would): a new one is created with one call, and the
	// expired one is retired without a stop call.
	b.now = old.ExpireTime.Add(time.Minute)
	stops := b.google.counts()["stop"]
	res = b.maintain(t, &maintenancev1.MaintainCalendarProviderRequest{ProviderId: p.GetId(), ChannelAction: actionRecreate, ChannelId: old.ChannelID})
	requireOutcome(t, res.GetChannel(), statusOK, 1)
	require.Equal(t, stops, b.google.counts()["stop"], "no stop call for an expired channel")
	require.NotEqual(t, old.ChannelID, res.GetChannelId())
	require.WithinDuration(t, b.google.channel(res.GetChannelId()).Expire, res.GetChannelExpireTime().AsTime(), 0)
	for _, c := range b.channels(t, p.GetId()) {
		if c.ChannelID == old.ChannelID {
			require.Equal(t, store.ChannelStopped, c.State)
			require.Equal(t, int32(0), c.StopAttempts)
		}
	}
	require.Equal(t, "channel_recreate_ok", b.lastTimeline(t, p.GetId()).Type)

	// No live channel at all (e.g. stopped at Google and marked so): recreated.
	b.now = time.Now()
	for _, c := range b.channels(t, p.GetId()) {
		_, err := store.SetChannelState(b.ctx, b.pool, tenant, c.ChannelID, store.ChannelStopped, "", false)
		require.NoError(t, err)
	}
	res = b.maintain(t, &maintenancev1.MaintainCalendarProviderRequest{ProviderId: p.GetId(), ChannelAction: actionRecreate})
	requireOutcome(t, res.GetChannel(), statusOK, 1)
	require.Equal(t, res.GetChannelId(), b.activeChannel(t, p.GetId()).ChannelID)

	// The decision named an expired channel, but another one is live now: SKIPPED, nothing called.
	calls = b.google.total()
	res2 := b.maintain(t, &maintenancev1.MaintainCalendarProviderRequest{ProviderId: p.GetId(), ChannelAction: actionRecreate, ChannelId: old.ChannelID})
	requireOutcome(t, res2.GetChannel(), statusSkipped, 0)
	require.Equal(t, calls, b.google.total())
	require.Equal(t, res.GetChannelId(), res2.GetChannelId())

	// The live channel has expired although the decision saw none: recreated, and the expired one is
	// retired too (without a call) rather than left active.
	b.now = b.activeChannel(t, p.GetId()).ExpireTime.Add(time.Second)
	res3 := b.maintain(t, &maintenancev1.MaintainCalendarProviderRequest{ProviderId: p.GetId(), ChannelAction: actionRecreate})
	requireOutcome(t, res3.GetChannel(), statusOK, 1)
	for _, c := range b.channels(t, p.GetId()) {
		if c.ChannelID != res3.GetChannelId() {
			require.NotEqual(t, store.ChannelActive, c.State, c.ChannelID)
		}
	}
}

func TestDeltaSyncUsesTheStoredSyncTokenAndResyncsOn410(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.google.put("primary", "a", "x")
	p := b.connect(t, "alice")
	require.Len(t, b.changes(t, p.GetId()), 1)

	b.google.put("primary", "b", "new")
	b.google.put("primary", "c", "new too")
	b.google.put("primary", "d", "and another")
	lists := b.google.calls()
	res := b.maintain(t, &maintenancev1.MaintainCalendarProviderRequest{ProviderId: p.GetId(), DeltaSync: true})
	requireOutcome(t, res.GetDeltaSync(), statusOK, int32(b.google.calls()-lists))
	require.Equal(t, int32(2), res.GetDeltaSync().GetGoogleCalls(), "three changes, pages of two")
	requireOutcome(t, res.GetChannel(), statusNotDue, 0)
	require.Equal(t, []string{"CREATED:a", "CREATED:b", "CREATED:c", "CREATED:d"}, types(b.changes(t, p.GetId())))
	require.True(t, b.steps(t, p.GetId())[stepDeltaSync].OK)
	require.Equal(t, "delta_sync_ok", b.lastTimeline(t, p.GetId()).Type)

	// Nothing changed: one call, nothing recorded.
	res = b.maintain(t, &maintenancev1.MaintainCalendarProviderRequest{ProviderId: p.GetId(), ChannelAction: actionNone, DeltaSync: true})
	requireOutcome(t, res.GetDeltaSync(), statusOK, 1)
	requireOutcome(t, res.GetChannel(), statusNotDue, 0)
	require.Len(t, b.changes(t, p.GetId()), 4)

	// 410: a full resync, as the push path does (the 410, then every page of the full listing).
	b.google.mu.Lock()
	b.google.expireAll = true
	b.google.mu.Unlock()
	b.google.remove("primary", "b")
	res = b.maintain(t, &maintenancev1.MaintainCalendarProviderRequest{ProviderId: p.GetId(), DeltaSync: true})
	requireOutcome(t, res.GetDeltaSync(), statusOK, 1+2)
	require.Equal(t, []string{"RESYNC:", "CANCELLED:b"}, types(b.changes(t, p.GetId()))[4:])
}

func TestDeltaSyncSharesThePushPathsBookkeeping(t *testing.T) {
	t.Parallel()
	b := setup(t)
	p := b.connect(t, "alice")
	ch := b.activeChannel(t, p.GetId())
	b.google.put("primary", "a", "x")
	require.Equal(t, int32(200), b.notify(t, b.google.notification(ch.ChannelID, "exists")))
	require.Equal(t, 1, b.jobCount(t))

	res := b.maintain(t, &maintenancev1.MaintainCalendarProviderRequest{ProviderId: p.GetId(), DeltaSync: true})
	requireOutcome(t, res.GetDeltaSync(), statusOK, 1)
	cur := b.provider(t, p.GetId())
	require.Equal(t, cur.NotifySeq, cur.SyncedSeq, "the upkeep sync covered the notification")
	// The notification's coalesced job then finds nothing new: the change is recorded once.
	b.drain(t)
	require.Equal(t, []string{"CREATED:a"}, types(b.changes(t, p.GetId())))
	require.NoError(t, b.svc.sweep(b.ctx))
	require.Equal(t, 0, b.jobCount(t), "nothing left behind for the sweeper")
}

func TestStepsNotRequestedAreNotDueAndCallNothing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	p := b.connect(t, "alice")
	ch := b.activeChannel(t, p.GetId())
	timeline := b.timelineTypes(t, p.GetId())

	// Validation refuses a request that names no step (the interceptor runs it).
	require.Error(t, (&maintenancev1.MaintainCalendarProviderRequest{ProviderId: p.GetId(), ChannelAction: actionNone}).Validate())

	calls, asks := b.google.total(), b.oauth.asks()
	res, err := b.upkeep().MaintainCalendarProvider(serviceCtx("maintenance"), &maintenancev1.MaintainCalendarProviderRequest{ProviderId: p.GetId(), ChannelAction: actionNone})
	require.NoError(t, err)
	requireOutcome(t, res.GetChannel(), statusNotDue, 0)
	requireOutcome(t, res.GetDeltaSync(), statusNotDue, 0)
	requireOutcome(t, res.GetTokenFailure(), statusNotDue, 0)
	require.Equal(t, calls, b.google.total())
	require.Equal(t, asks, b.oauth.asks())
	require.Equal(t, ch.ChannelID, res.GetChannelId(), "the live channel is still reported")
	require.Equal(t, timeline, b.timelineTypes(t, p.GetId()), "nothing recorded")
	require.Empty(t, b.steps(t, p.GetId()))
}

func TestProvidersThatAreNotConnectedAreSkipped(t *testing.T) {
	t.Parallel()
	b := setup(t)
	off := b.create(t, "bob")
	connecting := b.create(t, "carol")
	_, err := b.svc.ConnectCalendarProvider(userCtx("carol"), &calendarv1.ConnectCalendarProviderRequest{Id: connecting.GetId()})
	require.NoError(t, err)
	calls, asks := b.google.total(), b.oauth.asks()
	for _, id := range []string{off.GetId(), connecting.GetId(), "3a0c1c3e-0000-4000-8000-000000000000"} {
		res := b.maintain(t, &maintenancev1.MaintainCalendarProviderRequest{ProviderId: id, ChannelAction: actionRecreate, DeltaSync: true})
		requireOutcome(t, res.GetChannel(), statusSkipped, 0)
		requireOutcome(t, res.GetDeltaSync(), statusSkipped, 0)
		requireOutcome(t, res.GetTokenFailure(), statusNotDue, 0)
		tf := b.maintain(t, &maintenancev1.MaintainCalendarProviderRequest{ProviderId: id, TokenFailure: &maintenancev1.Outcome{
			Status: statusFailed, FailureClass: classRevoked, ErrorCode: "token_revoked", Message: "revoked", Remedy: "reconnect"}})
		requireOutcome(t, tf.GetTokenFailure(), statusSkipped, 0)
	}
	require.Equal(t, calls, b.google.total())
	require.Equal(t, asks, b.oauth.asks())
	require.Equal(t, store.StateDisconnected, b.provider(t, off.GetId()).State, "nothing recorded")
	require.Equal(t, store.StateConnecting, b.provider(t, connecting.GetId()).State)
}

func TestTokenFailureIsRecordedWithoutGoogleAndALaterSuccessClearsIt(t *testing.T) {
	t.Parallel()
	b := setup(t)
	p := b.connect(t, "alice")
	ch := b.activeChannel(t, p.GetId())
	calls, asks := b.google.total(), b.oauth.asks()

	res := b.maintain(t, &maintenancev1.MaintainCalendarProviderRequest{ProviderId: p.GetId(), TokenFailure: &maintenancev1.Outcome{
		Status: statusFailed, FailureClass: classTestingExpiry, ErrorCode: "token_expired_testing",
		Message: "The grant expired 7 days after consent.", Remedy: "Publish the consent screen, then reconnect."}})
	requireOutcome(t, res.GetTokenFailure(), statusOK, 0)
	requireOutcome(t, res.GetChannel(), statusNotDue, 0)
	requireOutcome(t, res.GetDeltaSync(), statusNotDue, 0)
	require.Equal(t, stateError, res.GetState())
	require.Equal(t, calls, b.google.total(), "no Google call")
	require.Equal(t, asks, b.oauth.asks(), "no token asked for")

	got, err := b.svc.GetCalendarProvider(userCtx("alice"), &calendarv1.GetCalendarProviderRequest{Id: p.GetId()})
	require.NoError(t, err)
	require.Equal(t, calendarv1.ProviderStatus_PROVIDER_STATUS_ERROR, got.GetProvider().GetStatus())
	require.Equal(t, "token_expired_testing", got.GetProvider().GetError().GetCode())
	require.Equal(t, "The grant expired 7 days after consent.", got.GetProvider().GetError().GetMessage())
	require.Equal(t, "Publish the consent screen, then reconnect.", got.GetProvider().GetError().GetRemedy())
	st := b.steps(t, p.GetId())[stepToken]
	require.False(t, st.OK)
	require.Equal(t, "token_expired_testing", st.ErrorCode)
	ev := b.lastTimeline(t, p.GetId())
	require.Equal(t, "token_failure", ev.Type)
	require.Equal(t, "token_expired_testing", ev.ErrorCode)
	require.Equal(t, stepToken, ev.Step)
	require.Equal(t, runID, ev.RunID)

	list, err := b.upkeep().ListCalendarUpkeep(serviceCtx("maintenance"), &maintenancev1.ListCalendarUpkeepRequest{})
	require.NoError(t, err)
	require.Equal(t, stateError, list.GetProviders()[0].GetState())
	require.Equal(t, "token_expired_testing", list.GetProviders()[0].GetErrorCode())

	// The user fixed it (the grant works again): the next run's repair succeeds and clears the error.
	res = b.maintain(t, &maintenancev1.MaintainCalendarProviderRequest{ProviderId: p.GetId(), ChannelAction: actionRenew, ChannelId: ch.ChannelID, DeltaSync: true})
	requireOutcome(t, res.GetChannel(), statusOK, 2)
	requireOutcome(t, res.GetDeltaSync(), statusOK, 1)
	require.Equal(t, stateConnected, res.GetState())
	cur := b.provider(t, p.GetId())
	require.Equal(t, store.StateConnected, cur.State)
	require.Empty(t, cur.ErrorCode)
	require.Empty(t, cur.ErrorRemedy)
	tl := b.timelineTypes(t, p.GetId())
	require.Equal(t, []string{"token_failure", "channel_renew_ok", "delta_sync_ok", "recovered"}, tl[len(tl)-4:])

	// The admin sees the steps and the timeline in the provider's diagnostics.
	diag, err := b.svc.GetCalendarProviderDiagnostics(userCtx("root", "system_settings:update"), &calendarv1.GetCalendarProviderDiagnosticsRequest{Id: p.GetId()})
	require.NoError(t, err)
	d := diag.GetDiagnostics()
	require.Nil(t, d.GetLastError(), "cleared")
	names := map[string]bool{}
	for _, st := range d.GetSteps() {
		names[st.GetName()] = st.GetOk()
		require.Equal(t, runID, st.GetRunId())
	}
	require.Equal(t, map[string]bool{stepChannel: true, stepDeltaSync: true, stepToken: true}, names, "the token step is mended too")
	require.Equal(t, "recovered", d.GetEvents()[0].GetType(), "newest first")
	require.Equal(t, "token_expired_testing", d.GetEvents()[0].GetErrorCode())
	require.Equal(t, "activated", d.GetEvents()[len(d.GetEvents())-1].GetType())
}

func TestA401ForcesOneRefreshAndRetriesOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.google.put("primary", "a", "x")
	p := b.connect(t, "alice")
	old := b.activeChannel(t, p.GetId())
	cached := b.oauth.current(p.GetId())
	b.google.revoke(cached) // revoked at Google while the oauth service still caches it
	from := len(b.google.sequence(0))

	res := b.maintain(t, &maintenancev1.MaintainCalendarProviderRequest{ProviderId: p.GetId(), ChannelAction: actionRenew, ChannelId: old.ChannelID, DeltaSync: true})
	requireOutcome(t, res.GetChannel(), statusOK, 3)
	requireOutcome(t, res.GetDeltaSync(), statusOK, 1)
	require.Equal(t, []string{"unauthorized", "watch", "stop", "list"}, b.google.sequence(from))
	require.Equal(t, 1, b.oauth.forced[p.GetId()], "one forced refresh; the sync uses the refreshed token")
	require.NotEqual(t, cached, b.oauth.current(p.GetId()))
	require.True(t, b.google.channel(old.ChannelID).Stopped)

	// The push path's sync does the same.
	b.google.revoke(b.oauth.current(p.GetId()))
	b.google.put("primary", "b", "y")
	require.NoError(t, b.svc.SyncProvider(b.ctx, tenant, p.GetId()))
	require.Equal(t, 2, b.oauth.forced[p.GetId()])
	require.Equal(t, []string{"CREATED:a", "CREATED:b"}, types(b.changes(t, p.GetId())))
}

func TestAFailedForcedRefreshIsClassifiedAndRecorded(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		err    error
		class  maintenancev1.FailureClass
		code   string
		remedy string
	}{
		{"revoked", oauthRefusal(oauthv1.ConnectionStatus_CONNECTION_STATUS_REVOKED), classRevoked, "token_revoked", "Reconnect the calendar"},
		{"testing", oauthRefusal(oauthv1.ConnectionStatus_CONNECTION_STATUS_EXPIRED_TESTING), classTestingExpiry, "token_expired_testing", "publish the app to Production"},
		{"rapt", oauthRefusal(oauthv1.ConnectionStatus_CONNECTION_STATUS_REAUTH_REQUIRED), classInvalidRapt, "token_reauth_required", "Reconnect the calendar"},
		{"client", oauthRefusal(oauthv1.ConnectionStatus_CONNECTION_STATUS_CLIENT_INVALID), classClientReplaced, "token_client_invalid", "Calendar OAuth client"},
		{"oauth's class wins", oauthRefusalClass(oauthv1.ConnectionStatus_CONNECTION_STATUS_REAUTH_REQUIRED, "FAILURE_CLASS_PERMANENT"), classPermanent, "token_reauth_required", "Reconnect the calendar"},
		{"unclassified", errReauthRequired, classRevoked, "reauthorization_required", "Reconnect the calendar"},
		{"transient", oauthUnavailable, classTransient, "token_unavailable", "retried automatically"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			p := b.connect(t, "alice")
			old := b.activeChannel(t, p.GetId())
			b.google.revoke(b.oauth.current(p.GetId()))
			b.oauth.mu.Lock()
			b.oauth.refusal[p.GetId()] = c.err
			b.oauth.mu.Unlock()

			res := b.maintain(t, &maintenancev1.MaintainCalendarProviderRequest{ProviderId: p.GetId(), ChannelAction: actionRenew, ChannelId: old.ChannelID, DeltaSync: true})
			ch := res.GetChannel()
			requireOutcome(t, ch, statusFailed, 1)
			require.Equal(t, c.class, ch.GetFailureClass())
			require.Equal(t, c.code, ch.GetErrorCode())
			require.Contains(t, ch.GetRemedy(), c.remedy)
			require.NotEmpty(t, ch.GetMessage())
			if c.class == classTransient {
				// A transient failure does not stop the next step (which meets the same 401).
				requireOutcome(t, res.GetDeltaSync(), statusFailed, 1)
				require.Equal(t, 2, b.oauth.forced[p.GetId()])
			} else {
				requireOutcome(t, res.GetDeltaSync(), statusSkipped, 0)
				require.Equal(t, 1, b.oauth.forced[p.GetId()])
			}
			require.Equal(t, stateError, res.GetState())
			require.Equal(t, old.ChannelID, res.GetChannelId(), "the old channel is still the live one")

			cur := b.provider(t, p.GetId())
			require.Equal(t, store.StateError, cur.State)
			require.Equal(t, c.code, cur.ErrorCode)
			require.Equal(t, ch.GetRemedy(), cur.ErrorRemedy)
			st := b.steps(t, p.GetId())[stepChannel]
			require.False(t, st.OK)
			require.Equal(t, c.code, st.ErrorCode)
			require.Contains(t, b.timelineTypes(t, p.GetId()), "channel_renew_failed")
			require.Len(t, b.channels(t, p.GetId()), 1, "no channel row left behind")
		})
	}
}

func TestGoogleStillRefusingAfterARefreshIsPermanent(t *testing.T) {
	t.Parallel()
	b := setup(t)
	p := b.connect(t, "alice")
	b.google.mu.Lock()
	b.google.refused["client-1.apps.googleusercontent.com"] = true
	b.google.mu.Unlock()

	res := b.maintain(t, &maintenancev1.MaintainCalendarProviderRequest{ProviderId: p.GetId(), DeltaSync: true})
	requireOutcome(t, res.GetDeltaSync(), statusFailed, 2)
	require.Equal(t, classPermanent, res.GetDeltaSync().GetFailureClass())
	require.Equal(t, "reauthorization_required", res.GetDeltaSync().GetErrorCode())
	require.Equal(t, 1, b.oauth.forced[p.GetId()], "refreshed once, retried once")
	require.Equal(t, "reauthorization_required", b.provider(t, p.GetId()).ErrorCode)
}

func TestTransientGoogleFailureIsRecordedAndClearedByTheNextSuccess(t *testing.T) {
	t.Parallel()
	b := setup(t)
	p := b.connect(t, "alice")
	old := b.activeChannel(t, p.GetId())
	b.google.mu.Lock()
	b.google.fail["watch"] = 3 // every attempt of one call (the test retry makes 3)
	b.google.mu.Unlock()

	res := b.maintain(t, &maintenancev1.MaintainCalendarProviderRequest{ProviderId: p.GetId(), ChannelAction: actionRenew, ChannelId: old.ChannelID, DeltaSync: true})
	requireOutcome(t, res.GetChannel(), statusFailed, 3)
	require.Equal(t, classTransient, res.GetChannel().GetFailureClass())
	require.Equal(t, "channel_failed", res.GetChannel().GetErrorCode())
	requireOutcome(t, res.GetDeltaSync(), statusOK, 1) // a transient failure does not skip the next step
	require.Equal(t, stateError, res.GetState(), "the failure is on the provider")
	require.Equal(t, old.ChannelID, res.GetChannelId())
	require.False(t, b.google.channel(old.ChannelID).Stopped, "the old channel keeps running")
	require.Equal(t, "channel_failed", b.provider(t, p.GetId()).ErrorCode)

	res = b.maintain(t, &maintenancev1.MaintainCalendarProviderRequest{ProviderId: p.GetId(), ChannelAction: actionRenew, ChannelId: old.ChannelID, DeltaSync: true})
	requireOutcome(t, res.GetChannel(), statusOK, 2)
	require.Equal(t, stateConnected, res.GetState())
	cur := b.provider(t, p.GetId())
	require.Equal(t, store.StateConnected, cur.State)
	require.Empty(t, cur.ErrorCode)
	require.True(t, b.steps(t, p.GetId())[stepChannel].OK)
	require.Equal(t, "recovered", b.lastTimeline(t, p.GetId()).Type)
}

func TestARemovedCalendarFailsTheSyncPermanently(t *testing.T) {
	t.Parallel()
	b := setup(t)
	team := "team@group.calendar.google.com"
	p := b.connect(t, "alice")
	_, err := b.svc.UpdateCalendarProvider(userCtx("alice"), &calendarv1.UpdateCalendarProviderRequest{Id: p.GetId(), CalendarId: &team})
	require.NoError(t, err)
	b.google.mu.Lock()
	delete(b.google.events, team)
	b.google.mu.Unlock()

	res := b.maintain(t, &maintenancev1.MaintainCalendarProviderRequest{ProviderId: p.GetId(), DeltaSync: true})
	requireOutcome(t, res.GetDeltaSync(), statusFailed, 1)
	require.Equal(t, classPermanent, res.GetDeltaSync().GetFailureClass())
	require.Equal(t, "calendar_not_found", res.GetDeltaSync().GetErrorCode())
	require.Equal(t, "calendar_not_found", b.provider(t, p.GetId()).ErrorCode)
}

// No token, channel token or secret in any answer or stored upkeep row.
func TestUpkeepCarriesNoTokens(t *testing.T) {
	t.Parallel()
	b := setup(t)
	p := b.connect(t, "alice")
	old := b.activeChannel(t, p.GetId())
	b.google.revoke(b.oauth.current(p.GetId()))
	var answers []proto.Message
	answers = append(answers, b.maintain(t, &maintenancev1.MaintainCalendarProviderRequest{ProviderId: p.GetId(), ChannelAction: actionRenew, ChannelId: old.ChannelID, DeltaSync: true}))
	b.oauth.mu.Lock()
	b.oauth.refusal[p.GetId()] = oauthRefusal(oauthv1.ConnectionStatus_CONNECTION_STATUS_REVOKED)
	b.oauth.mu.Unlock()
	b.google.revoke(b.oauth.current(p.GetId()))
	answers = append(answers, b.maintain(t, &maintenancev1.MaintainCalendarProviderRequest{ProviderId: p.GetId(), DeltaSync: true}))
	list, err := b.upkeep().ListCalendarUpkeep(serviceCtx("maintenance"), &maintenancev1.ListCalendarUpkeepRequest{})
	require.NoError(t, err)
	answers = append(answers, list)

	var text strings.Builder
	for _, a := range answers {
		text.WriteString(prototext.Format(a))
	}
	rows, err := b.pool.Query(b.ctx, "SELECT detail || ' ' || error_code FROM calendar.provider_steps UNION ALL SELECT message FROM calendar.provider_timeline UNION ALL SELECT error_message || ' ' || error_remedy FROM calendar.providers")
	require.NoError(t, err)
	for rows.Next() {
		var s string
		require.NoError(t, rows.Scan(&s))
		text.WriteString(s + "\n")
	}
	require.NoError(t, rows.Err())
	all := text.String()
	require.NotContains(t, all, "at-"+p.GetId(), "no access token")
	for _, c := range b.channels(t, p.GetId()) {
		require.NotContains(t, all, b.keys.Token(tenant, p.GetId(), c.ChannelID), "no channel token")
	}
}
