package upkeep

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	m "github.com/algapsa/alga-google/gen/alga/maintenance/v1"
)

var now = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

func settings() Settings {
	return Settings{
		Interval: time.Hour, RenewAhead: 24 * time.Hour, TokenMargin: 15 * time.Minute, Silence: 6 * time.Hour,
		PushEndpoint: "https://alga.test/api/email/webhooks/google", PushAudience: "https://alga.test/api/email/webhooks/google",
	}
}

func ago(d time.Duration) *timestamppb.Timestamp { return timestamppb.New(now.Add(-d)) }
func in(d time.Duration) *timestamppb.Timestamp  { return timestamppb.New(now.Add(d)) }

// healthyGmail is a provider for which nothing is due.
func healthyGmail() *m.GmailUpkeep {
	s := settings()
	return &m.GmailUpkeep{
		ProviderId: "p1", Mailbox: "support@acme.test", State: m.ProviderState_PROVIDER_STATE_CONNECTED,
		ConnectTime: ago(72 * time.Hour), WatchExpireTime: in(6 * 24 * time.Hour), LastWatchTime: ago(2 * time.Hour),
		LastPushTime: ago(time.Hour), LastSyncTime: ago(time.Hour), LastProvisioningCheckTime: ago(2 * time.Hour),
		PushEndpoint: s.PushEndpoint, PushAudience: s.PushAudience,
	}
}

func TestDecideGmail(t *testing.T) {
	t.Parallel()
	s := settings()
	cases := []struct {
		name                           string
		mut                            func(p *m.GmailUpkeep)
		provisioning, watch, reconcile bool
		skip                           bool
	}{
		{name: "healthy: nothing due", mut: func(*m.GmailUpkeep) {}},
		{name: "watch expires within 24h", mut: func(p *m.GmailUpkeep) { p.WatchExpireTime = in(23 * time.Hour) }, watch: true},
		{name: "watch expires in 25h, renewed 2h ago: not due", mut: func(p *m.GmailUpkeep) { p.WatchExpireTime = in(25 * time.Hour) }},
		{name: "no watch: renew and reconcile", mut: func(p *m.GmailUpkeep) { p.WatchExpireTime = nil }, watch: true, reconcile: true},
		{name: "expired watch: renew and reconcile", mut: func(p *m.GmailUpkeep) { p.WatchExpireTime = ago(time.Minute) }, watch: true, reconcile: true},
		{name: "daily renewal at 23h31m", mut: func(p *m.GmailUpkeep) { p.LastWatchTime = ago(23*time.Hour + 31*time.Minute) }, watch: true},
		{name: "no daily renewal at 23h29m", mut: func(p *m.GmailUpkeep) { p.LastWatchTime = ago(23*time.Hour + 29*time.Minute) }},
		{name: "never renewed", mut: func(p *m.GmailUpkeep) { p.LastWatchTime = nil }, watch: true},
		{name: "silent for 6h: reconcile", mut: func(p *m.GmailUpkeep) { p.LastPushTime, p.LastSyncTime = ago(6*time.Hour), ago(7*time.Hour) }, reconcile: true},
		{name: "quiet pushes but recent sync: not due", mut: func(p *m.GmailUpkeep) { p.LastPushTime, p.LastSyncTime = ago(30*time.Hour), ago(time.Hour) }},
		{name: "base URL changed: provisioning", mut: func(p *m.GmailUpkeep) { p.PushEndpoint = "https://old.test/api/email/webhooks/google" }, provisioning: true},
		{name: "audience drift: provisioning", mut: func(p *m.GmailUpkeep) { p.PushAudience = "https://old.test/x" }, provisioning: true},
		{name: "daily provisioning check", mut: func(p *m.GmailUpkeep) { p.LastProvisioningCheckTime = ago(24 * time.Hour) }, provisioning: true},
		{name: "provisioning never checked", mut: func(p *m.GmailUpkeep) { p.LastProvisioningCheckTime = nil }, provisioning: true},
		{name: "error: full repair", mut: func(p *m.GmailUpkeep) {
			p.State, p.ErrorCode = m.ProviderState_PROVIDER_STATE_ERROR, "watch_failed"
		}, provisioning: true, watch: true, reconcile: true},
		{name: "paused: skipped", mut: func(p *m.GmailUpkeep) { p.State = m.ProviderState_PROVIDER_STATE_PAUSED; p.WatchExpireTime = nil }, skip: true},
		{name: "disconnected: skipped", mut: func(p *m.GmailUpkeep) { p.State = m.ProviderState_PROVIDER_STATE_DISCONNECTED }, skip: true},
		{name: "connecting: skipped", mut: func(p *m.GmailUpkeep) { p.State = m.ProviderState_PROVIDER_STATE_CONNECTING }, skip: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := healthyGmail()
			tc.mut(p)
			d := DecideGmail(s, now, p)
			require.Equal(t, tc.skip, d.Skip != "", "skip: %q", d.Skip)
			require.Equal(t, tc.provisioning, d.VerifyProvisioning != "", "provisioning: %q", d.VerifyProvisioning)
			require.Equal(t, tc.watch, d.RenewWatch != "", "watch: %q", d.RenewWatch)
			require.Equal(t, tc.reconcile, d.Reconcile != "", "reconcile: %q", d.Reconcile)
		})
	}
	// The drift comparison is off when no base URL is configured.
	p := healthyGmail()
	p.PushEndpoint = "https://old.test/x"
	require.Empty(t, DecideGmail(Settings{Interval: time.Hour, RenewAhead: 24 * time.Hour, Silence: 6 * time.Hour}, now, p).VerifyProvisioning)
}

func TestDailyCadenceFollowsTheInterval(t *testing.T) {
	t.Parallel()
	// With a daily schedule every run does the daily work; with an hourly one, at most 24h apart.
	s := settings()
	s.Interval = 24 * time.Hour
	p := healthyGmail()
	p.LastWatchTime = ago(13 * time.Hour)
	require.NotEmpty(t, DecideGmail(s, now, p).RenewWatch)
	s.Interval = time.Hour
	require.Empty(t, DecideGmail(s, now, p).RenewWatch)
}

func healthyCalendar() *m.CalendarUpkeep {
	return &m.CalendarUpkeep{
		ProviderId: "c1", UserId: "u1", Name: "tech@acme.test", State: m.ProviderState_PROVIDER_STATE_CONNECTED,
		ConnectTime: ago(72 * time.Hour), LastSyncTime: ago(time.Hour),
		Channel: &m.CalendarChannelUpkeep{ChannelId: "ch1", ExpireTime: in(5 * 24 * time.Hour), CreateTime: ago(48 * time.Hour), LastNotificationTime: ago(2 * time.Hour)},
	}
}

func TestDecideCalendar(t *testing.T) {
	t.Parallel()
	s := settings()
	cases := []struct {
		name      string
		mut       func(p *m.CalendarUpkeep)
		step      string
		channelID string
		delta     bool
		skip      bool
	}{
		{name: "healthy: nothing due", mut: func(*m.CalendarUpkeep) {}},
		{name: "expires within 24h: renew that channel", mut: func(p *m.CalendarUpkeep) { p.Channel.ExpireTime = in(20 * time.Hour) }, step: StepChannelRenew, channelID: "ch1"},
		{name: "expires in 25h: not due", mut: func(p *m.CalendarUpkeep) { p.Channel.ExpireTime = in(25 * time.Hour) }},
		{name: "missing: recreate and delta sync", mut: func(p *m.CalendarUpkeep) { p.Channel = nil }, step: StepChannelRecreate, delta: true},
		{name: "expired: recreate (retire it) and delta sync", mut: func(p *m.CalendarUpkeep) { p.Channel.ExpireTime = ago(time.Minute) }, step: StepChannelRecreate, channelID: "ch1", delta: true},
		{name: "silent: delta sync", mut: func(p *m.CalendarUpkeep) {
			p.Channel.LastNotificationTime, p.LastSyncTime = ago(7*time.Hour), ago(8*time.Hour)
		}, delta: true},
		{name: "error: fresh channel and sync", mut: func(p *m.CalendarUpkeep) {
			p.State, p.ErrorCode = m.ProviderState_PROVIDER_STATE_ERROR, "channel_failed"
		}, step: StepChannelRenew, channelID: "ch1", delta: true},
		{name: "paused: skipped", mut: func(p *m.CalendarUpkeep) { p.State = m.ProviderState_PROVIDER_STATE_PAUSED; p.Channel = nil }, skip: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := healthyCalendar()
			tc.mut(p)
			d := DecideCalendar(s, now, p)
			require.Equal(t, tc.skip, d.Skip != "")
			require.Equal(t, tc.step, d.ChannelStep, d.ChannelReason)
			require.Equal(t, tc.channelID, d.ChannelID)
			require.Equal(t, tc.delta, d.DeltaSync != "", d.DeltaSync)
		})
	}
}

func TestDecideToken(t *testing.T) {
	t.Parallel()
	s := settings()
	base := func() *m.TokenUpkeep {
		return &m.TokenUpkeep{ConnectionId: "k1", Kind: m.ProviderKind_PROVIDER_KIND_GMAIL, ProviderId: "p1",
			State: m.ConnectionState_CONNECTION_STATE_CONNECTED, ConnectTime: ago(72 * time.Hour),
			LastRefreshTime: ago(2 * time.Hour), AccessTokenExpireTime: ago(time.Hour)}
	}
	cases := []struct {
		name    string
		mut     func(c *m.TokenUpkeep)
		refresh bool
		reauth  bool
	}{
		{name: "refreshed 2h ago, token expired: not due (refreshed on demand)", mut: func(*m.TokenUpkeep) {}},
		{name: "live token within the margin", mut: func(c *m.TokenUpkeep) { c.AccessTokenExpireTime = in(10 * time.Minute) }, refresh: true},
		{name: "live token outside the margin", mut: func(c *m.TokenUpkeep) { c.AccessTokenExpireTime = in(40 * time.Minute) }},
		{name: "daily", mut: func(c *m.TokenUpkeep) { c.LastRefreshTime = ago(24 * time.Hour) }, refresh: true},
		{name: "connected recently counts as a refresh", mut: func(c *m.TokenUpkeep) { c.LastRefreshTime = nil; c.ConnectTime = ago(time.Hour) }},
		{name: "never refreshed", mut: func(c *m.TokenUpkeep) { c.LastRefreshTime, c.ConnectTime = nil, nil }, refresh: true},
		{name: "transient error: retried", mut: func(c *m.TokenUpkeep) { c.State = m.ConnectionState_CONNECTION_STATE_TRANSIENT_ERROR }, refresh: true},
		{name: "revoked: left alone", mut: func(c *m.TokenUpkeep) {
			c.State = m.ConnectionState_CONNECTION_STATE_REVOKED
			c.LastRefreshTime = ago(48 * time.Hour)
		}, reauth: true},
		{name: "testing expiry", mut: func(c *m.TokenUpkeep) { c.State = m.ConnectionState_CONNECTION_STATE_TESTING_EXPIRY }, reauth: true},
		{name: "invalid_rapt", mut: func(c *m.TokenUpkeep) { c.State = m.ConnectionState_CONNECTION_STATE_INVALID_RAPT }, reauth: true},
		{name: "client replaced", mut: func(c *m.TokenUpkeep) { c.State = m.ConnectionState_CONNECTION_STATE_CLIENT_REPLACED }, reauth: true},
		{name: "disconnected", mut: func(c *m.TokenUpkeep) {
			c.State = m.ConnectionState_CONNECTION_STATE_DISCONNECTED
			c.LastRefreshTime = ago(48 * time.Hour)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := base()
			tc.mut(c)
			d := DecideToken(s, now, c)
			require.Equal(t, tc.refresh, d.Refresh, d.Reason)
			require.Equal(t, tc.reauth, d.NeedsReauth, d.Reason)
			require.NotEmpty(t, d.Reason)
		})
	}
}

func TestBuildPlan(t *testing.T) {
	t.Parallel()
	s := settings()
	g := healthyGmail()
	g.WatchExpireTime = in(time.Hour) // renew due
	revoked := healthyGmail()
	revoked.ProviderId, revoked.Mailbox, revoked.WatchExpireTime = "p2", "sales@acme.test", nil
	cal := healthyCalendar()
	cal.Channel.ExpireTime = in(time.Hour)
	snap := Snapshot{
		Gmail:    []*m.GmailUpkeep{revoked, g},
		Calendar: []*m.CalendarUpkeep{cal},
		Tokens: []*m.TokenUpkeep{
			{ConnectionId: "k1", Kind: m.ProviderKind_PROVIDER_KIND_GMAIL, ProviderId: "p1", State: m.ConnectionState_CONNECTION_STATE_CONNECTED, LastRefreshTime: ago(25 * time.Hour)},
			{ConnectionId: "k2", Kind: m.ProviderKind_PROVIDER_KIND_GMAIL, ProviderId: "p2", State: m.ConnectionState_CONNECTION_STATE_REVOKED},
			{ConnectionId: "k3", Kind: m.ProviderKind_PROVIDER_KIND_CALENDAR, ProviderId: "c1", State: m.ConnectionState_CONNECTION_STATE_CONNECTED, LastRefreshTime: ago(time.Hour)},
			{ConnectionId: "k4", Kind: m.ProviderKind_PROVIDER_KIND_CALENDAR, ProviderId: "gone", State: m.ConnectionState_CONNECTION_STATE_CONNECTED, LastRefreshTime: ago(30 * time.Hour)},
		},
	}
	plan := BuildPlan(s, now, "t1", "run-1", Options{Concurrency: 2}, snap)
	require.Len(t, plan.Items, 4)
	byID := map[string]Item{}
	for _, it := range plan.Items {
		byID[it.ProviderID] = it
	}
	p1 := byID["p1"]
	require.NotNil(t, p1.Token)
	require.Equal(t, "k1", p1.Token.ConnectionID)
	require.Equal(t, "t1", p1.Token.Tenant)
	require.Len(t, p1.Steps, 1)
	require.Equal(t, StepWatchRenew, p1.Steps[0].Step)

	p2 := byID["p2"]
	require.False(t, p2.Due(), "a revoked connection is left alone until the user reconnects")
	for _, n := range p2.Notes {
		require.Equal(t, StatusSkipped, n.Status)
	}

	c1 := byID["c1"]
	require.Nil(t, c1.Token)
	require.Len(t, c1.Steps, 1)
	require.Equal(t, StepChannelRenew, c1.Steps[0].Step)
	require.Equal(t, "ch1", c1.Steps[0].ChannelID)

	orphan := byID["gone"]
	require.True(t, orphan.Orphan)
	require.NotNil(t, orphan.Token, "an orphan connection is still refreshed daily")
	require.Empty(t, orphan.Steps)

	require.Equal(t, 4, plan.DueCalls(), "k1 refresh, p1 watch, c1 renew, k4 refresh")

	// A provider without a connection is skipped rather than failing at Google.
	plan = BuildPlan(s, now, "t1", "run-2", Options{}, Snapshot{Gmail: []*m.GmailUpkeep{g}})
	require.False(t, plan.Items[0].Due())
}
