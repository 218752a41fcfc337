package service

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"
	"google.golang.org/api/option"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	calendarv1 "github.com/algapsa/alga-google/gen/alga/calendar/v1"
	"github.com/algapsa/alga-google/services/calendar/internal/channel"
	"github.com/algapsa/alga-google/services/calendar/internal/store"
	"github.com/algapsa/alga-google/services/platform/auth"
	"github.com/algapsa/alga-google/services/platform/errs"
	"github.com/algapsa/alga-google/services/platform/googleretry"
	"github.com/algapsa/alga-google/services/platform/jobs"
	"github.com/algapsa/alga-google/services/platform/pgtest"
)

const (
	tenant  = "tenant-1"
	webhook = "https://helpdesk.example.com/api/calendar/webhooks/google"
)

type testBundle struct {
	ctx    context.Context
	pool   *pgxpool.Pool
	svc    *Service
	google *fakeCalendar
	oauth  *fakeOAuth
	keys   *channel.Keyring
	reg    *prometheus.Registry
	now    time.Time
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	pool, _ := pgtest.NewPool(t)
	ctx := context.Background()
	require.NoError(t, store.Migrations().Apply(ctx, pool))
	g := newFakeCalendar(t)
	o := newFakeOAuth(g)
	keys, err := channel.NewKeyring("", []byte("0123456789abcdef0123456789abcdef"))
	require.NoError(t, err)
	b := &testBundle{ctx: ctx, pool: pool, google: g, oauth: o, keys: keys, reg: prometheus.NewRegistry(), now: time.Now()}
	svc := New()
	metrics, err := NewMetrics(b.reg)
	require.NoError(t, err)
	changes, err := NewFeed(b.reg)
	require.NoError(t, err)
	workers := river.NewWorkers()
	periodic := svc.AddWorkers(workers)
	client, err := jobs.New(ctx, pool, jobs.Options{Schema: store.Schema, Workers: workers, PeriodicJobs: periodic, TestOnly: true})
	require.NoError(t, err)
	svc.Connect(Deps{
		Pool: pool, OAuth: o, Keys: keys, WebhookAddress: webhook, BaseURL: "https://helpdesk.example.com",
		Google: []option.ClientOption{option.WithEndpoint(g.root() + "/calendar/v3/")},
		Retry:  googleretry.Must(googleretry.Options{Service: "calendar", Policy: googleretry.Policy{Attempts: 3, Base: time.Millisecond}}),
		Jobs:   client, Feed: changes, Metrics: metrics,
		Now: func() time.Time { return b.now },
	})
	b.svc = svc
	return b
}

func userCtx(user string, perms ...string) context.Context {
	return auth.WithIdentity(context.Background(), auth.Identity{Subject: user, Tenant: tenant, Permissions: perms, UserType: auth.UserTypeInternal})
}

func serviceCtx(svc string) context.Context {
	return auth.WithIdentity(context.Background(), auth.Identity{Service: svc, Tenant: tenant})
}

// gatewayCtx is the webhook caller: a service identity without a tenant.
func gatewayCtx() context.Context {
	return auth.WithIdentity(context.Background(), auth.Identity{Service: "alga-google"})
}

func code(err error) codes.Code {
	if err == nil {
		return codes.OK
	}
	return status.Code(errs.Rewrite(context.Background(), nil, err))
}

func (b *testBundle) create(t *testing.T, user string) *calendarv1.CalendarProvider {
	t.Helper()
	res, err := b.svc.CreateCalendarProvider(userCtx(user), &calendarv1.CreateCalendarProviderRequest{DisplayName: user + "'s calendar"})
	require.NoError(t, err)
	return res.GetProvider()
}

// connect creates and activates a provider with some events in its calendar.
func (b *testBundle) connect(t *testing.T, user string) *calendarv1.CalendarProvider {
	t.Helper()
	p := b.create(t, user)
	res, err := b.svc.ActivateCalendarProvider(serviceCtx("oauth"), &calendarv1.ActivateCalendarProviderRequest{Id: p.GetId(), AccountEmail: user + "@example.com"})
	require.NoError(t, err)
	require.Equal(t, calendarv1.ProviderStatus_PROVIDER_STATUS_CONNECTED, res.GetProvider().GetStatus())
	return res.GetProvider()
}

func (b *testBundle) changes(t *testing.T, providerID string) []*calendarv1.CalendarChange {
	t.Helper()
	res, err := b.svc.ChangeServer().ListCalendarChanges(serviceCtx("platform"), &calendarv1.ListCalendarChangesRequest{ProviderId: providerID, PageSize: 500, IncludeAcknowledged: true})
	require.NoError(t, err)
	return res.GetChanges()
}

func (b *testBundle) channels(t *testing.T, providerID string) []*store.Channel {
	t.Helper()
	list, err := store.ListChannels(b.ctx, b.pool, tenant, providerID)
	require.NoError(t, err)
	return list
}

func (b *testBundle) activeChannel(t *testing.T, providerID string) *store.Channel {
	t.Helper()
	c := latestActive(b.channels(t, providerID))
	require.NotNil(t, c)
	return c
}

func (b *testBundle) count(t *testing.T, sql string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, b.pool.QueryRow(b.ctx, sql, args...).Scan(&n))
	return n
}

func (b *testBundle) jobCount(t *testing.T) int {
	return b.count(t, "SELECT count(*) FROM calendar.river_job WHERE kind = 'calendar_sync' AND state IN ('available','scheduled','retryable','pending','running')")
}

func (b *testBundle) notify(t *testing.T, req *calendarv1.HandleCalendarNotificationRequest) int32 {
	t.Helper()
	res, err := b.svc.HandleCalendarNotification(gatewayCtx(), req)
	require.NoError(t, err)
	return res.GetHttpStatus()
}

// drain runs the queued sync jobs the way the worker would.
func (b *testBundle) drain(t *testing.T) {
	t.Helper()
	rows, err := b.pool.Query(b.ctx, "SELECT args->>'tenant', args->>'provider_id' FROM calendar.river_job WHERE kind = 'calendar_sync' AND state = 'available'")
	require.NoError(t, err)
	type key struct{ tenant, provider string }
	var keys []key
	for rows.Next() {
		var k key
		require.NoError(t, rows.Scan(&k.tenant, &k.provider))
		keys = append(keys, k)
	}
	require.NoError(t, rows.Err())
	_, err = b.pool.Exec(b.ctx, "UPDATE calendar.river_job SET state = 'completed', finalized_at = now() WHERE kind = 'calendar_sync' AND state = 'available'")
	require.NoError(t, err)
	for _, k := range keys {
		require.NoError(t, b.svc.SyncProvider(b.ctx, k.tenant, k.provider))
	}
}

func types(list []*calendarv1.CalendarChange) []string {
	var out []string
	for _, c := range list {
		out = append(out, c.GetType().String()[len("CHANGE_TYPE_"):]+":"+c.GetEventId())
	}
	return out
}

func TestProvidersBelongToTheirUser(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a := b.create(t, "alice")
	require.Equal(t, "primary", a.GetCalendarId())
	require.Equal(t, "alice", a.GetUserId())
	require.Equal(t, "shared", a.GetGoogleConfig())
	require.Equal(t, calendarv1.ProviderStatus_PROVIDER_STATUS_DISCONNECTED, a.GetStatus())

	_, err := b.svc.CreateCalendarProvider(userCtx("alice"), &calendarv1.CreateCalendarProviderRequest{})
	require.Equal(t, codes.AlreadyExists, code(err), "one provider per technician")

	bob := userCtx("bob")
	_, err = b.svc.GetCalendarProvider(bob, &calendarv1.GetCalendarProviderRequest{Id: a.GetId()})
	require.Equal(t, codes.NotFound, code(err))
	_, err = b.svc.ConnectCalendarProvider(bob, &calendarv1.ConnectCalendarProviderRequest{Id: a.GetId()})
	require.Equal(t, codes.NotFound, code(err))
	_, err = b.svc.DeleteCalendarProvider(bob, &calendarv1.DeleteCalendarProviderRequest{Id: a.GetId()})
	require.Equal(t, codes.NotFound, code(err))
	_, err = b.svc.DisconnectCalendarProvider(bob, &calendarv1.DisconnectCalendarProviderRequest{Id: a.GetId()})
	require.Equal(t, codes.NotFound, code(err))
	_, err = b.svc.GetCalendarProviderDiagnostics(bob, &calendarv1.GetCalendarProviderDiagnosticsRequest{Id: a.GetId()})
	require.Equal(t, codes.NotFound, code(err))
	name := "mine now"
	_, err = b.svc.UpdateCalendarProvider(bob, &calendarv1.UpdateCalendarProviderRequest{Id: a.GetId(), DisplayName: &name})
	require.Equal(t, codes.NotFound, code(err))
	list, err := b.svc.ListCalendarProviders(bob, &calendarv1.ListCalendarProvidersRequest{})
	require.NoError(t, err)
	require.Empty(t, list.GetProviders())
	_, err = b.svc.ListCalendarProviders(bob, &calendarv1.ListCalendarProvidersRequest{AllUsers: true})
	require.Equal(t, codes.PermissionDenied, code(err))

	// Another tenant's user with the same id sees nothing either.
	other := auth.WithIdentity(context.Background(), auth.Identity{Subject: "alice", Tenant: "tenant-2"})
	_, err = b.svc.GetCalendarProvider(other, &calendarv1.GetCalendarProviderRequest{Id: a.GetId()})
	require.Equal(t, codes.NotFound, code(err))

	admin := userCtx("root", auth.PermSystemSettingsUpdate)
	all, err := b.svc.ListCalendarProviders(admin, &calendarv1.ListCalendarProvidersRequest{AllUsers: true})
	require.NoError(t, err)
	require.Len(t, all.GetProviders(), 1)
	_, err = b.svc.ConnectCalendarProvider(admin, &calendarv1.ConnectCalendarProviderRequest{Id: a.GetId()})
	require.Equal(t, codes.NotFound, code(err), "admins do not connect someone else's calendar")
	d, err := b.svc.DisconnectCalendarProvider(admin, &calendarv1.DisconnectCalendarProviderRequest{Id: a.GetId()})
	require.NoError(t, err)
	require.Equal(t, calendarv1.ProviderStatus_PROVIDER_STATUS_DISCONNECTED, d.GetProvider().GetStatus())
	_, err = b.svc.DeleteCalendarProvider(admin, &calendarv1.DeleteCalendarProviderRequest{Id: a.GetId()})
	require.NoError(t, err)
	_, err = b.svc.GetCalendarProvider(userCtx("alice"), &calendarv1.GetCalendarProviderRequest{Id: a.GetId()})
	require.Equal(t, codes.NotFound, code(err))

	// Internal methods refuse users even when called directly.
	_, err = b.svc.ActivateCalendarProvider(userCtx("alice"), &calendarv1.ActivateCalendarProviderRequest{Id: a.GetId()})
	require.Equal(t, codes.PermissionDenied, code(err))
}

func TestConnectStartsOAuthOrFailsFast(t *testing.T) {
	t.Parallel()
	b := setup(t)
	p := b.create(t, "alice")
	res, err := b.svc.ConnectCalendarProvider(userCtx("alice"), &calendarv1.ConnectCalendarProviderRequest{Id: p.GetId()})
	require.NoError(t, err)
	require.Contains(t, res.GetAuthorizationUrl(), "https://accounts.example/")
	require.Equal(t, []string{p.GetId()}, b.oauth.began)
	got, err := b.svc.GetCalendarProvider(userCtx("alice"), &calendarv1.GetCalendarProviderRequest{Id: p.GetId()})
	require.NoError(t, err)
	require.Equal(t, calendarv1.ProviderStatus_PROVIDER_STATUS_CONNECTING, got.GetProvider().GetStatus())

	b.oauth.cfg = GoogleConfig{CalendarReady: false, Missing: []string{"Calendar OAuth client secret"}}
	_, err = b.svc.ConnectCalendarProvider(userCtx("alice"), &calendarv1.ConnectCalendarProviderRequest{Id: p.GetId()})
	require.Equal(t, codes.FailedPrecondition, code(err))
	st := status.Convert(errs.Rewrite(context.Background(), nil, err))
	require.Equal(t, "GOOGLE_NOT_CONFIGURED", errs.ReasonOf(st.Err()))
	require.Contains(t, st.Message(), "Calendar OAuth client secret")
	require.Len(t, b.oauth.began, 1, "no flow started without credentials")

	b.oauth.cfg = GoogleConfig{CalendarReady: true, UseSameApp: false}
	got, err = b.svc.GetCalendarProvider(userCtx("alice"), &calendarv1.GetCalendarProviderRequest{Id: p.GetId()})
	require.NoError(t, err)
	require.Equal(t, "calendar", got.GetProvider().GetGoogleConfig())
}

func TestActivationSyncsThenChangesFlowThroughTheWebhook(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, id := range []string{"ev1", "ev2", "ev3", "ev4", "ev5"} {
		b.google.put("primary", id, "Meeting "+id)
	}
	p := b.connect(t, "alice")
	require.Equal(t, "alice@example.com", p.GetAccountEmail())
	require.NotNil(t, p.GetChannelExpireTime())

	initial := b.changes(t, p.GetId())
	require.Equal(t, []string{"CREATED:ev1", "CREATED:ev2", "CREATED:ev3", "CREATED:ev4", "CREATED:ev5"}, types(initial), "every page of the initial sync")
	require.Equal(t, "Meeting ev1", initial[0].GetSummary())
	require.Equal(t, "ev1@google.com", initial[0].GetIcalUid())
	require.Equal(t, time.Date(2030, 1, 2, 9, 0, 0, 0, time.UTC), initial[0].GetStartTime().AsTime())
	require.Equal(t, "alice", initial[0].GetUserId())

	ch := b.activeChannel(t, p.GetId())
	gch := b.google.channel(ch.ChannelID)
	require.Equal(t, webhook, gch.Address, "the canonical address")
	require.Equal(t, b.keys.Token(tenant, p.GetId(), ch.ChannelID), gch.Token)
	require.Equal(t, gch.ResourceID, ch.ResourceID)
	require.Equal(t, "client-1.apps.googleusercontent.com", ch.ClientID)
	require.WithinDuration(t, gch.Expire, *ch.ExpireTime, time.Millisecond, "the expiration Google returned")

	require.Equal(t, int32(http.StatusOK), b.notify(t, b.google.notification(ch.ChannelID, "sync")))
	require.Equal(t, 0, b.jobCount(t), "sync messages only acknowledge")

	b.google.put("primary", "ev2", "Moved meeting")
	b.google.put("primary", "ev9", "New meeting")
	b.google.remove("primary", "ev3")
	require.Equal(t, int32(http.StatusOK), b.notify(t, b.google.notification(ch.ChannelID, "exists")))
	require.Equal(t, 1, b.jobCount(t))
	require.Equal(t, 1, b.count(t, "SELECT count(*) FROM calendar.notifications WHERE resource_state = 'exists'"))
	b.drain(t)
	all := b.changes(t, p.GetId())
	require.Equal(t, []string{"UPDATED:ev2", "CANCELLED:ev3", "CREATED:ev9"}, types(all[5:]))
	require.Equal(t, "Moved meeting", all[5].GetSummary())

	// The same sync again records nothing.
	require.NoError(t, b.svc.SyncProvider(b.ctx, tenant, p.GetId()))
	require.Len(t, b.changes(t, p.GetId()), 8)

	// Acknowledge, then list only unacknowledged.
	ack, err := b.svc.ChangeServer().AcknowledgeCalendarChanges(serviceCtx("platform"), &calendarv1.AcknowledgeCalendarChangesRequest{ChangeIds: []string{all[0].GetId(), all[1].GetId()}})
	require.NoError(t, err)
	require.Equal(t, int32(2), ack.GetAcknowledged())
	res, err := b.svc.ChangeServer().ListCalendarChanges(serviceCtx("platform"), &calendarv1.ListCalendarChangesRequest{AfterCursor: all[0].GetCursor()})
	require.NoError(t, err)
	require.Len(t, res.GetChanges(), 6)
	other, err := b.svc.ChangeServer().ListCalendarChanges(auth.WithIdentity(context.Background(), auth.Identity{Service: "platform", Tenant: "tenant-2"}), &calendarv1.ListCalendarChangesRequest{})
	require.NoError(t, err)
	require.Empty(t, other.GetChanges(), "changes stay in their tenant")
}

func TestRefusedNotificationsStoreAndEnqueueNothing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.google.put("primary", "ev1", "x")
	pa := b.connect(t, "alice")
	pb := b.connect(t, "bob")
	cha := b.activeChannel(t, pa.GetId())
	chb := b.activeChannel(t, pb.GetId())

	good := b.google.notification(cha.ChannelID, "exists")
	// Each refusal names the header at fault (the gateway's error body), never the token.
	cases := map[string]struct {
		mut    func(*calendarv1.HandleCalendarNotificationRequest)
		want   int32
		reason string
	}{
		"missing token": {func(r *calendarv1.HandleCalendarNotificationRequest) { r.ChannelToken = "" }, 401, "X-Goog-Channel-Token: missing"},
		"wrong token":   {func(r *calendarv1.HandleCalendarNotificationRequest) { r.ChannelToken = "v1.AAAA" }, 403, "X-Goog-Channel-Token: does not match the channel"},
		"garbage token": {func(r *calendarv1.HandleCalendarNotificationRequest) { r.ChannelToken = "secret" }, 403, "X-Goog-Channel-Token: does not match the channel"},
		"token of another channel": {func(r *calendarv1.HandleCalendarNotificationRequest) {
			r.ChannelToken = b.keys.Token(tenant, pb.GetId(), chb.ChannelID)
		}, 403, "X-Goog-Channel-Token: does not match the channel"},
		"token for another tenant": {func(r *calendarv1.HandleCalendarNotificationRequest) {
			r.ChannelToken = b.keys.Token("tenant-2", pa.GetId(), cha.ChannelID)
		}, 403, "X-Goog-Channel-Token: does not match the channel"},
		"wrong resource id":        {func(r *calendarv1.HandleCalendarNotificationRequest) { r.ResourceId = chb.ResourceID + "x" }, 403, "X-Goog-Resource-ID: does not match the channel"},
		"malformed message number": {func(r *calendarv1.HandleCalendarNotificationRequest) { r.MessageNumber = "12abc" }, 400, "X-Goog-Message-Number is not a number"},
		"missing message number":   {func(r *calendarv1.HandleCalendarNotificationRequest) { r.MessageNumber = "" }, 400, "X-Goog-Message-Number is missing"},
		"unknown resource state":   {func(r *calendarv1.HandleCalendarNotificationRequest) { r.ResourceState = "deleted" }, 400, "X-Goog-Resource-State"},
		"missing channel id":       {func(r *calendarv1.HandleCalendarNotificationRequest) { r.ChannelId = "" }, 400, "X-Goog-Channel-ID is missing"},
	}
	for name, tc := range cases {
		req := proto.Clone(good).(*calendarv1.HandleCalendarNotificationRequest)
		tc.mut(req)
		res, err := b.svc.HandleCalendarNotification(gatewayCtx(), req)
		require.NoError(t, err, name)
		require.Equal(t, tc.want, res.GetHttpStatus(), name)
		require.Contains(t, res.GetReason(), tc.reason, name)
		if req.ChannelToken != "" {
			require.NotContains(t, res.GetReason(), req.ChannelToken, name)
		}
	}
	// An unknown channel is acknowledged (so Google stops) and counted, nothing more.
	unknown := proto.Clone(good).(*calendarv1.HandleCalendarNotificationRequest)
	unknown.ChannelId = "3f1c0c3e-0000-4000-8000-000000000000"
	require.Equal(t, int32(200), b.notify(t, unknown))
	require.Equal(t, 1.0, testutil.ToFloat64(b.svc.metrics.notifications.WithLabelValues("unknown_channel")))

	require.Equal(t, 0, b.jobCount(t))
	require.Equal(t, 0, b.count(t, "SELECT count(*) FROM calendar.notifications"))
	require.Equal(t, 0, b.count(t, "SELECT count(*) FROM calendar.channels WHERE last_message_number > 0"))

	// The genuine one still goes through afterwards.
	require.Equal(t, int32(200), b.notify(t, good))
	require.Equal(t, 1, b.jobCount(t))
}

func TestMessageNumbersAndBurstsCauseOneSync(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.google.put("primary", "ev1", "x")
	p := b.connect(t, "alice")
	ch := b.activeChannel(t, p.GetId())
	base := b.google.calls()

	var reqs []*calendarv1.HandleCalendarNotificationRequest
	for range 10 {
		reqs = append(reqs, b.google.notification(ch.ChannelID, "exists"))
	}
	// A burst, out of order and with repeats.
	for _, i := range []int{4, 2, 4, 9, 0, 9, 5, 1, 8} {
		require.Equal(t, int32(200), b.notify(t, reqs[i]))
	}
	require.Equal(t, 1, b.jobCount(t), "coalesced into one job")
	require.Equal(t, 2, b.count(t, "SELECT count(*) FROM calendar.notifications"), "only 5 and 10 were newer than the last seen")
	var last int64
	require.NoError(t, b.pool.QueryRow(b.ctx, "SELECT last_message_number FROM calendar.channels WHERE channel_id = $1", ch.ChannelID).Scan(&last))
	require.Equal(t, int64(10), last)
	b.google.put("primary", "ev1", "y")
	b.drain(t)
	require.Equal(t, 1, b.google.calls()-base, "one events.list for the whole burst")

	// Older and repeated numbers after the sync cause nothing.
	for _, i := range []int{3, 9} {
		require.Equal(t, int32(200), b.notify(t, reqs[i]))
	}
	require.Equal(t, 0, b.jobCount(t))
	require.Equal(t, []string{"CREATED:ev1", "UPDATED:ev1"}, types(b.changes(t, p.GetId())))
}

func TestNotificationDuringSyncRunsAnotherPass(t *testing.T) {
	t.Parallel()
	b := setup(t)
	p := b.connect(t, "alice")
	ch := b.activeChannel(t, p.GetId())
	require.Equal(t, int32(200), b.notify(t, b.google.notification(ch.ChannelID, "exists")))
	// Simulate a notification that arrived while the first pass was listing: the provider's notify_seq
	// moves past what the pass started from.
	_, err := store.BumpNotify(b.ctx, b.pool, tenant, p.GetId())
	require.NoError(t, err)
	prov, err := store.GetProvider(b.ctx, b.pool, tenant, p.GetId())
	require.NoError(t, err)
	cl, err := b.svc.client(b.ctx, tenant, mustToken(t, b, p.GetId()))
	require.NoError(t, err)
	_, err = store.BumpNotify(b.ctx, b.pool, tenant, p.GetId())
	require.NoError(t, err)
	more, err := b.svc.syncOnce(b.ctx, tenant, p.GetId(), cl)
	require.NoError(t, err)
	require.False(t, more && prov.NotifySeq == 0)
	require.NoError(t, b.svc.SyncProvider(b.ctx, tenant, p.GetId()))
	after, err := store.GetProvider(b.ctx, b.pool, tenant, p.GetId())
	require.NoError(t, err)
	require.Equal(t, after.NotifySeq, after.SyncedSeq)
}

func mustToken(t *testing.T, b *testBundle, providerID string) Token {
	tok, err := b.oauth.AccessToken(b.ctx, tenant, providerID)
	require.NoError(t, err)
	return tok
}

func TestExpiredSyncTokenRecoversByFullResync(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, id := range []string{"a", "b", "c", "d"} {
		b.google.put("primary", id, "event "+id)
	}
	p := b.connect(t, "alice")
	require.Len(t, b.changes(t, p.GetId()), 4)

	// While the token is dead: a changed, c deleted, e added; b and d untouched.
	b.google.put("primary", "a", "event a (moved)")
	b.google.remove("primary", "c")
	b.google.put("primary", "e", "event e")
	// Google forgets the stored token (410); the full resync is a listing without a token.
	b.google.mu.Lock()
	prov, err := store.GetProvider(b.ctx, b.pool, tenant, p.GetId())
	require.NoError(t, err)
	b.google.expired[prov.SyncToken] = true
	b.google.mu.Unlock()

	require.NoError(t, b.svc.SyncProvider(b.ctx, tenant, p.GetId()))
	got := types(b.changes(t, p.GetId())[4:])
	require.Equal(t, []string{"RESYNC:", "UPDATED:a", "CREATED:e", "CANCELLED:c"}, got, "no loss, no duplicates: b and d are unchanged")
	require.Equal(t, 1.0, testutil.ToFloat64(b.svc.metrics.syncs.WithLabelValues("resync", "ok")))

	prov2, err := store.GetProvider(b.ctx, b.pool, tenant, p.GetId())
	require.NoError(t, err)
	require.NotEqual(t, prov.SyncToken, prov2.SyncToken)
	require.NoError(t, b.svc.SyncProvider(b.ctx, tenant, p.GetId()))
	require.Len(t, b.changes(t, p.GetId()), 8, "the next delta sync records nothing new")
}

func TestTransientGoogleFailuresAreRetried(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.google.put("primary", "a", "x")
	b.google.mu.Lock()
	b.google.fail["list"] = 2
	b.google.fail["watch"] = 1
	b.google.mu.Unlock()
	p := b.connect(t, "alice")
	require.Len(t, b.changes(t, p.GetId()), 1)
}

func TestRenewalOverlapsAndStopsTheOldChannel(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.google.put("primary", "a", "x")
	p := b.connect(t, "alice")
	old := b.activeChannel(t, p.GetId())

	// A change whose notification reaches only the old channel while the new one is being created.
	b.google.put("primary", "a", "y")
	oldMsg := b.google.notification(old.ChannelID, "exists")

	res, err := b.svc.RenewCalendarChannel(serviceCtx("maintenance"), &calendarv1.RenewCalendarChannelRequest{ProviderId: p.GetId()})
	require.NoError(t, err)
	newID := res.GetChannel().GetChannelId()
	require.NotEqual(t, old.ChannelID, newID)
	require.Equal(t, "active", res.GetChannel().GetState())
	require.True(t, b.google.channel(old.ChannelID).Stopped, "the old channel is stopped at Google")
	require.False(t, b.google.channel(newID).Stopped)

	// Both channels' notifications for the same change are accepted; the change is recorded once.
	require.Equal(t, int32(200), b.notify(t, oldMsg))
	require.Equal(t, int32(200), b.notify(t, b.google.notification(newID, "exists")))
	b.drain(t)
	require.Equal(t, int32(200), b.notify(t, b.google.notification(newID, "exists")))
	b.drain(t)
	require.Equal(t, []string{"CREATED:a", "UPDATED:a"}, types(b.changes(t, p.GetId())))

	states := map[string]string{}
	for _, c := range b.channels(t, p.GetId()) {
		states[c.ChannelID] = c.State
	}
	require.Equal(t, map[string]string{old.ChannelID: "stopped", newID: "active"}, states)

	v, err := b.svc.VerifyCalendarChannel(serviceCtx("maintenance"), &calendarv1.VerifyCalendarChannelRequest{ProviderId: p.GetId()})
	require.NoError(t, err)
	require.True(t, v.GetHealthy(), v.GetReason())
}

func TestRenewalWithAReplacedClientLeavesTheOldChannelToExpire(t *testing.T) {
	t.Parallel()
	b := setup(t)
	p := b.connect(t, "alice")
	old := b.activeChannel(t, p.GetId())
	b.oauth.mu.Lock()
	b.oauth.client[p.GetId()] = "client-2.apps.googleusercontent.com"
	b.oauth.mu.Unlock()

	res, err := b.svc.RenewCalendarChannel(serviceCtx("maintenance"), &calendarv1.RenewCalendarChannelRequest{ProviderId: p.GetId()})
	require.NoError(t, err)
	require.False(t, b.google.channel(old.ChannelID).Stopped, "another client cannot stop it")
	for _, c := range b.channels(t, p.GetId()) {
		switch c.ChannelID {
		case old.ChannelID:
			require.Equal(t, store.ChannelUnstoppable, c.State)
			require.Equal(t, int32(0), c.StopAttempts, "not even attempted")
		case res.GetChannel().GetChannelId():
			require.Equal(t, "client-2.apps.googleusercontent.com", c.ClientID)
		}
	}
	// A later renewal does not retry the unstoppable channel.
	_, err = b.svc.RenewCalendarChannel(serviceCtx("maintenance"), &calendarv1.RenewCalendarChannelRequest{ProviderId: p.GetId()})
	require.NoError(t, err)
	for _, c := range b.channels(t, p.GetId()) {
		if c.ChannelID == old.ChannelID {
			require.Equal(t, store.ChannelUnstoppable, c.State)
		}
	}
	// Its notifications are still accepted until it expires (they are genuine).
	require.Equal(t, int32(200), b.notify(t, b.google.notification(old.ChannelID, "exists")))
}

func TestVerifyReportsChannelProblems(t *testing.T) {
	t.Parallel()
	b := setup(t)
	p := b.create(t, "alice")
	verify := func() string {
		res, err := b.svc.VerifyCalendarChannel(serviceCtx("maintenance"), &calendarv1.VerifyCalendarChannelRequest{ProviderId: p.GetId()})
		require.NoError(t, err)
		if res.GetHealthy() {
			return "healthy"
		}
		return res.GetReason()
	}
	require.Equal(t, "missing", verify())
	_, err := b.svc.ActivateCalendarProvider(serviceCtx("oauth"), &calendarv1.ActivateCalendarProviderRequest{Id: p.GetId()})
	require.NoError(t, err)
	ch := b.activeChannel(t, p.GetId())
	require.Equal(t, "healthy", verify())
	b.now = time.Now().Add(20 * time.Minute)
	require.Equal(t, "silent", verify(), "not even the initial sync message arrived")
	require.Equal(t, int32(200), b.notify(t, b.google.notification(ch.ChannelID, "sync")))
	require.Equal(t, "healthy", verify())
	b.now = ch.ExpireTime.Add(-time.Hour)
	require.Equal(t, "expiring", verify())
	b.now = time.Now()
	_, err = b.svc.DisconnectCalendarProvider(userCtx("alice"), &calendarv1.DisconnectCalendarProviderRequest{Id: p.GetId()})
	require.NoError(t, err)
	require.Equal(t, "stopped", verify())
}

func TestDisconnectResetAndDeleteStopChannelsAndClearTokens(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.google.put("primary", "a", "x")
	pa := b.connect(t, "alice")
	pb := b.connect(t, "bob")
	cha := b.activeChannel(t, pa.GetId())
	chb := b.activeChannel(t, pb.GetId())

	d, err := b.svc.DisconnectCalendarProvider(userCtx("alice"), &calendarv1.DisconnectCalendarProviderRequest{Id: pa.GetId()})
	require.NoError(t, err)
	require.Equal(t, calendarv1.ProviderStatus_PROVIDER_STATUS_DISCONNECTED, d.GetProvider().GetStatus())
	require.True(t, b.google.channel(cha.ChannelID).Stopped)
	require.Contains(t, b.oauth.deleted, pa.GetId())
	diag, err := b.svc.GetCalendarProviderDiagnostics(userCtx("alice"), &calendarv1.GetCalendarProviderDiagnosticsRequest{Id: pa.GetId()})
	require.NoError(t, err)
	require.False(t, diag.GetDiagnostics().GetHasSyncToken())
	require.Equal(t, webhook, diag.GetDiagnostics().GetWebhookAddress())
	require.Equal(t, "stopped", diag.GetDiagnostics().GetChannels()[0].GetState())
	// A late notification of the stopped channel is acknowledged and ignored.
	require.Equal(t, int32(200), b.notify(t, b.google.notification(cha.ChannelID, "exists")))
	require.Equal(t, 0, b.jobCount(t))

	// Reset: every provider of the tenant, with counts; Bob's channel stopped too.
	r, err := b.svc.ResetCalendarProviders(serviceCtx("oauth"), &calendarv1.ResetCalendarProvidersRequest{})
	require.NoError(t, err)
	require.Equal(t, int32(2), r.GetProvidersReset())
	require.Empty(t, r.GetWarnings())
	require.True(t, b.google.channel(chb.ChannelID).Stopped)
	require.Contains(t, b.oauth.deleted, pb.GetId())
	require.Equal(t, 0, b.count(t, "SELECT count(*) FROM calendar.events"))
	require.Equal(t, 0, b.count(t, "SELECT count(*) FROM calendar.providers WHERE state <> 'disconnected' OR sync_token <> ''"))

	// Reconnect, then delete: the channel is stopped before the provider goes.
	_, err = b.svc.ActivateCalendarProvider(serviceCtx("oauth"), &calendarv1.ActivateCalendarProviderRequest{Id: pb.GetId()})
	require.NoError(t, err)
	require.Equal(t, "RESYNC:", types(b.changes(t, pb.GetId()))[1], "a reconnect tells consumers to reconcile")
	chb2 := b.activeChannel(t, pb.GetId())
	_, err = b.svc.DeleteCalendarProvider(userCtx("bob"), &calendarv1.DeleteCalendarProviderRequest{Id: pb.GetId()})
	require.NoError(t, err)
	require.True(t, b.google.channel(chb2.ChannelID).Stopped)
	require.Equal(t, 0, b.count(t, "SELECT count(*) FROM calendar.channels WHERE provider_id = $1", pb.GetId()))
}

func TestRevokedGrantBecomesAProviderError(t *testing.T) {
	t.Parallel()
	b := setup(t)
	p := b.connect(t, "alice")
	ch := b.activeChannel(t, p.GetId())
	b.oauth.mu.Lock()
	b.oauth.failed[p.GetId()] = errReauthRequired
	b.oauth.mu.Unlock()
	require.Equal(t, int32(200), b.notify(t, b.google.notification(ch.ChannelID, "exists")))
	err := b.svc.SyncProvider(b.ctx, tenant, p.GetId())
	require.True(t, isPermanent(err), "not retried forever: %v", err)
	got, err := b.svc.GetCalendarProvider(userCtx("alice"), &calendarv1.GetCalendarProviderRequest{Id: p.GetId()})
	require.NoError(t, err)
	require.Equal(t, calendarv1.ProviderStatus_PROVIDER_STATUS_ERROR, got.GetProvider().GetStatus())
	require.Equal(t, "reauthorization_required", got.GetProvider().GetError().GetCode())
	require.NotEmpty(t, got.GetProvider().GetError().GetRemedy())
}

func TestCalendarSelection(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.google.put("team@group.calendar.google.com", "t1", "team event")
	p := b.connect(t, "alice")
	diag, err := b.svc.GetCalendarProviderDiagnostics(userCtx("alice"), &calendarv1.GetCalendarProviderDiagnosticsRequest{Id: p.GetId()})
	require.NoError(t, err)
	require.Equal(t, []string{"primary", "team@group.calendar.google.com"}, diag.GetDiagnostics().GetAvailableCalendars())
	bad := "nope@group.calendar.google.com"
	_, err = b.svc.UpdateCalendarProvider(userCtx("alice"), &calendarv1.UpdateCalendarProviderRequest{Id: p.GetId(), CalendarId: &bad})
	require.Equal(t, codes.InvalidArgument, code(err))
	team := "team@group.calendar.google.com"
	old := b.activeChannel(t, p.GetId())
	u, err := b.svc.UpdateCalendarProvider(userCtx("alice"), &calendarv1.UpdateCalendarProviderRequest{Id: p.GetId(), CalendarId: &team})
	require.NoError(t, err)
	require.Equal(t, team, u.GetProvider().GetCalendarId())
	require.Equal(t, calendarv1.ProviderStatus_PROVIDER_STATUS_CONNECTED, u.GetProvider().GetStatus())
	require.True(t, b.google.channel(old.ChannelID).Stopped)
	require.Equal(t, "res-"+team, b.activeChannel(t, p.GetId()).ResourceID)
	list := b.changes(t, p.GetId())
	require.Contains(t, types(list), "CREATED:t1")
}

func TestSweeperEnqueuesNotificationsNoSyncCovered(t *testing.T) {
	t.Parallel()
	b := setup(t)
	p := b.connect(t, "alice")
	ch := b.activeChannel(t, p.GetId())
	require.NoError(t, b.svc.sweep(b.ctx))
	require.Equal(t, 0, b.jobCount(t), "nothing behind after activation")

	// The notification's job is skipped as a duplicate of a running job that already looked for new
	// notifications; River then marks that job completed. The sweeper enqueues the sync.
	require.Equal(t, int32(200), b.notify(t, b.google.notification(ch.ChannelID, "exists")))
	_, err := b.pool.Exec(b.ctx, "UPDATE calendar.river_job SET state = 'completed', finalized_at = now() WHERE kind = 'calendar_sync'")
	require.NoError(t, err)
	require.Equal(t, 0, b.jobCount(t))
	require.NoError(t, b.svc.sweep(b.ctx))
	require.Equal(t, 1, b.jobCount(t))
	require.NoError(t, b.svc.sweep(b.ctx))
	require.Equal(t, 1, b.jobCount(t), "coalesced")
	b.drain(t)
	require.NoError(t, b.svc.sweep(b.ctx))
	require.Equal(t, 0, b.jobCount(t), "covered")
}

// Event text from Google with NUL bytes (which PostgreSQL refuses in text) and invalid UTF-8 is stored
// cleaned: the sync succeeds instead of failing on every retry.
func TestEventTextWithNULAndInvalidUTF8IsStoredCleaned(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.google.put("primary", "ev1", "Stand\x00up \xff\xfe")
	b.google.describe("primary", "ev1", "line one\x00line two", "Room\x00 4")
	p := b.connect(t, "alice")
	got := b.changes(t, p.GetId())
	require.Len(t, got, 1)
	require.Equal(t, "Standup \uFFFD\uFFFD", got[0].GetSummary(), "the NUL removed (JSON carried each invalid byte as U+FFFD)")
	require.Equal(t, "line oneline two", got[0].GetDescription())
	require.Equal(t, "Room 4", got[0].GetLocation())
}
