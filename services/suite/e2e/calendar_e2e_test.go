package e2e_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	gcal "google.golang.org/api/calendar/v3"

	calendarv1 "github.com/algapsa/alga-google/gen/alga/calendar/v1"
	"github.com/algapsa/alga-google/services/googlesandbox"
	"github.com/algapsa/alga-google/services/platform/auth"
	"github.com/algapsa/alga-google/services/platform/target"
	"github.com/algapsa/alga-google/services/suite/app"
	"github.com/algapsa/alga-google/services/suite/harness"
)

// The Calendar end-to-end tests: the whole suite (gateway, oauth, secrets, calendar) against the Google
// sandbox, which creates the channels, sends the push notifications to the gateway's webhook and answers
// the delta syncs. Helpers are calendar-prefixed (other e2e files have their own).

const calendarTenant = "tenant-cal"

type calendarEnv struct {
	s       *harness.Suite
	admin   *googlesandbox.AdminClient
	project googlesandbox.Project
	ctx     context.Context
}

func calendarSuite(t *testing.T) *calendarEnv {
	t.Helper()
	for _, name := range []string{target.OAuth, target.Calendar, target.Secrets, target.Gateway} {
		if app.Registry[name] == nil {
			t.Skipf("the %s target is not wired into app.Registry yet", name)
		}
	}
	s := harness.Start(t, harness.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	admin := s.Sandbox.Admin()
	redirects := []string{s.BaseURL + "/api/auth/google/callback", s.BaseURL + "/api/auth/google/calendar/callback"}
	proj, err := admin.CreateProject(ctx, googlesandbox.CreateProjectRequest{ProjectID: "acme-cal-e2e", PublishingStatus: googlesandbox.PublishingProduction, RedirectURIs: redirects})
	require.NoError(t, err)
	key, _, err := admin.CreateServiceAccount(ctx, proj.ProjectID, "alga-pubsub")
	require.NoError(t, err)
	cfg := s.HTTP(s.UserToken(calendarTenant, "admin-1", auth.PermSystemSettingsUpdate))
	resp := cfg.Do(t, http.MethodPut, "/api/v1/google/config", map[string]any{
		"gmail_client_id": proj.ClientID, "gmail_client_secret": proj.ClientSecret,
		"project_id": proj.ProjectID, "service_account_key_json": string(key),
	})
	require.Equal(t, http.StatusOK, resp.Status, resp.Errorf())
	return &calendarEnv{s: s, admin: admin, project: proj, ctx: ctx}
}

type calendarProviderJSON struct {
	ID           string `json:"id"`
	UserID       string `json:"user_id"`
	CalendarID   string `json:"calendar_id"`
	Status       string `json:"status"`
	GoogleConfig string `json:"google_config"`
	AccountEmail string `json:"account_email"`
}

// calendarCreate creates the user's provider over HTTP.
func (e *calendarEnv) calendarCreate(t *testing.T, c *harness.HTTPClient) calendarProviderJSON {
	t.Helper()
	resp := c.Do(t, http.MethodPost, "/api/v1/calendar/providers", map[string]any{"display_name": "My calendar"})
	require.Equal(t, http.StatusOK, resp.Status, resp.Errorf())
	var out struct {
		Provider calendarProviderJSON `json:"provider"`
	}
	require.NoError(t, resp.JSON(&out))
	return out.Provider
}

// calendarConnect runs the whole consent: :connect over HTTP (the browser-binding cookie lands in the
// client's jar), approval on the sandbox's consent page, the callback through the gateway.
func (e *calendarEnv) calendarConnect(t *testing.T, c *harness.HTTPClient, providerID, account string) {
	t.Helper()
	resp := c.Do(t, http.MethodPost, "/api/v1/calendar/providers/"+providerID+":connect", map[string]any{})
	require.Equal(t, http.StatusOK, resp.Status, resp.Errorf())
	var out struct {
		AuthorizationURL string `json:"authorization_url"`
	}
	require.NoError(t, resp.JSON(&out))
	require.NotEmpty(t, out.AuthorizationURL)
	callback, err := e.admin.Consent(e.ctx, out.AuthorizationURL, account, true)
	require.NoError(t, err)
	cb := c.Do(t, http.MethodGet, callback.String(), nil)
	require.Equal(t, http.StatusFound, cb.Status, cb.Errorf())
	loc, err := url.Parse(cb.Header.Get("Location"))
	require.NoError(t, err)
	require.Equal(t, "connected", loc.Query().Get("google_oauth"), cb.Header.Get("Location"))
}

func (e *calendarEnv) calendarChanges(t *testing.T, providerID string) []*calendarv1.CalendarChange {
	t.Helper()
	ctx := harness.WithToken(e.ctx, e.s.ServiceToken("platform", calendarTenant))
	res, err := calendarv1.NewCalendarChangeServiceClient(e.s.Conn(t)).ListCalendarChanges(ctx, &calendarv1.ListCalendarChangesRequest{
		ProviderId: providerID, PageSize: 500, IncludeAcknowledged: true})
	require.NoError(t, err)
	return res.GetChanges()
}

// calendarWaitChanges waits until the provider has n changes, then checks no more arrive for a moment.
func (e *calendarEnv) calendarWaitChanges(t *testing.T, providerID string, n int) []*calendarv1.CalendarChange {
	t.Helper()
	var got []*calendarv1.CalendarChange
	require.Eventually(t, func() bool {
		got = e.calendarChanges(t, providerID)
		return len(got) >= n
	}, 30*time.Second, 100*time.Millisecond, "waiting for %d changes", n)
	time.Sleep(500 * time.Millisecond)
	got = e.calendarChanges(t, providerID)
	require.Len(t, got, n, "%v", calendarTypes(got))
	return got
}

func calendarTypes(list []*calendarv1.CalendarChange) []string {
	var out []string
	for _, c := range list {
		out = append(out, c.GetType().String()[len("CHANGE_TYPE_"):]+":"+c.GetSummary())
	}
	return out
}

func (e *calendarEnv) calendarChannels(t *testing.T, owner string) []googlesandbox.Channel {
	t.Helper()
	all, err := e.admin.Channels(e.ctx)
	require.NoError(t, err)
	var out []googlesandbox.Channel
	for _, c := range all {
		if c.Owner == owner {
			out = append(out, c)
		}
	}
	return out
}

func (e *calendarEnv) calendarLiveChannel(t *testing.T, owner string) googlesandbox.Channel {
	t.Helper()
	var live []googlesandbox.Channel
	for _, c := range e.calendarChannels(t, owner) {
		if !c.Stopped && !c.Expired {
			live = append(live, c)
		}
	}
	require.Len(t, live, 1)
	return live[0]
}

func (e *calendarEnv) calendarEvent(t *testing.T, owner, summary string) *gcal.Event {
	t.Helper()
	start := time.Date(2031, 3, 4, 10, 0, 0, 0, time.UTC)
	ev, err := e.admin.CreateEvent(e.ctx, owner, "primary", &gcal.Event{Summary: summary,
		Start: &gcal.EventDateTime{DateTime: start.Format(time.RFC3339)},
		End:   &gcal.EventDateTime{DateTime: start.Add(time.Hour).Format(time.RFC3339)}})
	require.NoError(t, err)
	return ev
}

// calendarPost sends a channel notification to the webhook as Google would.
func (e *calendarEnv) calendarPost(t *testing.T, ch googlesandbox.Channel, token, resourceID, state, number string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.s.BaseURL+"/api/calendar/webhooks/google", nil)
	require.NoError(t, err)
	req.Header.Set("X-Goog-Channel-ID", ch.ID)
	if token != "" {
		req.Header.Set("X-Goog-Channel-Token", token)
	}
	req.Header.Set("X-Goog-Resource-ID", resourceID)
	req.Header.Set("X-Goog-Resource-URI", ch.ResourceURI)
	req.Header.Set("X-Goog-Resource-State", state)
	req.Header.Set("X-Goog-Message-Number", number)
	req.Header.Set("X-Goog-Channel-Expiration", ch.Expiration.UTC().Format(http.TimeFormat))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode
}

func (e *calendarEnv) calendarCount(t *testing.T, sql string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, e.s.App.Deps().Pool.QueryRow(e.ctx, sql, args...).Scan(&n))
	return n
}

func (e *calendarEnv) calendarListCalls(t *testing.T) int64 {
	t.Helper()
	c, err := e.admin.Counters(e.ctx)
	require.NoError(t, err)
	return c["calendar.events.list"]
}

// calendarConnected creates a Google account with events, and a connected provider for it.
func (e *calendarEnv) calendarConnected(t *testing.T, user, account string, events ...string) (*harness.HTTPClient, calendarProviderJSON) {
	t.Helper()
	require.NoError(t, e.admin.CreateTestUser(e.ctx, account))
	for _, s := range events {
		e.calendarEvent(t, account, s)
	}
	c := e.s.HTTP(e.s.UserToken(calendarTenant, user))
	p := e.calendarCreate(t, c)
	e.calendarConnect(t, c, p.ID, account)
	resp := c.Do(t, http.MethodGet, "/api/v1/calendar/providers/"+p.ID, nil)
	require.Equal(t, http.StatusOK, resp.Status, resp.Errorf())
	var out struct {
		Provider calendarProviderJSON `json:"provider"`
	}
	require.NoError(t, resp.JSON(&out))
	require.Equal(t, "PROVIDER_STATUS_CONNECTED", out.Provider.Status)
	require.Equal(t, account, out.Provider.AccountEmail)
	require.Equal(t, "shared", out.Provider.GoogleConfig)
	return c, out.Provider
}

func TestCalendarConnectSyncChannelAndChanges(t *testing.T) {
	t.Parallel()
	e := calendarSuite(t)
	_, p := e.calendarConnected(t, "tech-1", "tech1@acme.test", "Standup", "Customer visit")

	initial := e.calendarWaitChanges(t, p.ID, 2)
	require.ElementsMatch(t, []string{"CREATED:Standup", "CREATED:Customer visit"}, calendarTypes(initial))
	ch := e.calendarLiveChannel(t, "tech1@acme.test")
	require.Equal(t, e.s.BaseURL+"/api/calendar/webhooks/google", ch.Address, "the canonical address")
	require.NotEmpty(t, ch.Token)

	// A live stream: backlog first, then what happens next.
	ctx, cancel := context.WithCancel(harness.WithToken(e.ctx, e.s.ServiceToken("platform", calendarTenant)))
	defer cancel()
	stream, err := calendarv1.NewCalendarChangeServiceClient(e.s.Conn(t)).StreamCalendarChanges(ctx, &calendarv1.StreamCalendarChangesRequest{ProviderId: p.ID})
	require.NoError(t, err)
	for range 2 {
		m, err := stream.Recv()
		require.NoError(t, err)
		require.Equal(t, calendarv1.ChangeType_CHANGE_TYPE_CREATED, m.GetChange().GetType())
	}

	// Google notifies the channel; the gateway forwards; the worker syncs; the change is offered.
	ev := e.calendarEvent(t, "tech1@acme.test", "Emergency repair")
	m, err := stream.Recv()
	require.NoError(t, err)
	require.Equal(t, "Emergency repair", m.GetChange().GetSummary())
	require.Equal(t, ev.Id, m.GetChange().GetEventId())
	require.Equal(t, calendarv1.ChangeType_CHANGE_TYPE_CREATED, m.GetChange().GetType())

	ev.Summary = "Emergency repair (rescheduled)"
	_, err = e.admin.UpdateEvent(e.ctx, "tech1@acme.test", "primary", ev)
	require.NoError(t, err)
	m, err = stream.Recv()
	require.NoError(t, err)
	require.Equal(t, calendarv1.ChangeType_CHANGE_TYPE_UPDATED, m.GetChange().GetType())
	require.Equal(t, "Emergency repair (rescheduled)", m.GetChange().GetSummary())

	require.NoError(t, e.admin.DeleteEvent(e.ctx, "tech1@acme.test", "primary", ev.Id))
	m, err = stream.Recv()
	require.NoError(t, err)
	require.Equal(t, calendarv1.ChangeType_CHANGE_TYPE_CANCELLED, m.GetChange().GetType())
	require.Len(t, e.calendarChanges(t, p.ID), 5)

	// Users cannot read the change feed.
	_, err = calendarv1.NewCalendarChangeServiceClient(e.s.Conn(t)).ListCalendarChanges(
		harness.WithToken(e.ctx, e.s.UserToken(calendarTenant, "tech-1", auth.PermSystemSettingsUpdate)), &calendarv1.ListCalendarChangesRequest{})
	require.Error(t, err)
}

func TestCalendarWebhookRefusesForgedNotifications(t *testing.T) {
	t.Parallel()
	e := calendarSuite(t)
	_, pa := e.calendarConnected(t, "tech-a", "a@acme.test", "A1")
	_, _ = e.calendarConnected(t, "tech-b", "b@acme.test", "B1")
	e.calendarWaitChanges(t, pa.ID, 1)
	cha := e.calendarLiveChannel(t, "a@acme.test")
	chb := e.calendarLiveChannel(t, "b@acme.test")
	time.Sleep(500 * time.Millisecond) // the channels' initial sync messages are in
	notifications := e.calendarCount(t, "SELECT count(*) FROM calendar.notifications")
	jobs := e.calendarCount(t, "SELECT count(*) FROM calendar.river_job WHERE kind = 'calendar_sync'")

	next := strconv.FormatInt(cha.MessageNumber+100, 10)
	require.Equal(t, http.StatusUnauthorized, e.calendarPost(t, cha, "", cha.ResourceID, "exists", next), "missing token")
	require.Equal(t, http.StatusForbidden, e.calendarPost(t, cha, "v1.forged", cha.ResourceID, "exists", next), "wrong token")
	require.Equal(t, http.StatusForbidden, e.calendarPost(t, cha, chb.Token, cha.ResourceID, "exists", next), "another channel's token")
	require.Equal(t, http.StatusForbidden, e.calendarPost(t, cha, cha.Token, chb.ResourceID, "exists", next), "wrong resource id")
	require.Equal(t, http.StatusBadRequest, e.calendarPost(t, cha, cha.Token, cha.ResourceID, "exists", "1e9"), "malformed message number")
	unknown := cha
	unknown.ID = "00000000-0000-4000-8000-000000000000"
	require.Equal(t, http.StatusOK, e.calendarPost(t, unknown, cha.Token, cha.ResourceID, "exists", next), "unknown channel: acknowledged")

	require.Equal(t, notifications, e.calendarCount(t, "SELECT count(*) FROM calendar.notifications"), "nothing stored")
	require.Equal(t, jobs, e.calendarCount(t, "SELECT count(*) FROM calendar.river_job WHERE kind = 'calendar_sync'"), "nothing enqueued")

	metrics := e.s.HTTP("").Do(t, http.MethodGet, e.s.MetricsURL+"/metrics", nil)
	require.Contains(t, metrics.String(), `alga_calendar_notifications_total{result="unknown_channel"} 1`)
	require.Contains(t, metrics.String(), `alga_calendar_notifications_total{result="bad_token"} 2`)
}

func TestCalendarMessageNumbersAndBursts(t *testing.T) {
	t.Parallel()
	e := calendarSuite(t)
	_, p := e.calendarConnected(t, "tech-1", "tech1@acme.test", "First")
	e.calendarWaitChanges(t, p.ID, 1)
	ch := e.calendarLiveChannel(t, "tech1@acme.test")
	require.Eventually(t, func() bool {
		return e.calendarCount(t, "SELECT count(*) FROM calendar.river_job WHERE kind = 'calendar_sync' AND state NOT IN ('completed','cancelled','discarded')") == 0
	}, 10*time.Second, 50*time.Millisecond)
	base := e.calendarListCalls(t)

	// A burst of 20 notifications (as a busy calendar or a retrying Google would send).
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			require.Equal(t, http.StatusOK, e.calendarPost(t, ch, ch.Token, ch.ResourceID, "exists", strconv.FormatInt(ch.MessageNumber+1+int64(i), 10)))
		})
	}
	wg.Wait()
	// Quiet means no sync job pending and no accepted notification left uncovered (else the service's
	// sweeper rightly enqueues one more sync a moment later).
	require.Eventually(t, func() bool {
		return e.calendarCount(t, "SELECT count(*) FROM calendar.river_job WHERE kind = 'calendar_sync' AND state NOT IN ('completed','cancelled','discarded')") == 0 &&
			e.calendarCount(t, "SELECT count(*) FROM calendar.providers WHERE notify_seq > synced_seq") == 0
	}, 15*time.Second, 50*time.Millisecond)
	syncs := e.calendarListCalls(t) - base
	// Coalesced and settled: the burst costs one sync.
	require.Equal(t, int64(1), syncs, "a burst of 20 caused %d syncs", syncs)

	// Repeated and older message numbers: acknowledged, no sync.
	base = e.calendarListCalls(t)
	for _, n := range []int64{ch.MessageNumber + 20, ch.MessageNumber + 3, ch.MessageNumber + 1, ch.MessageNumber + 20} {
		require.Equal(t, http.StatusOK, e.calendarPost(t, ch, ch.Token, ch.ResourceID, "exists", strconv.FormatInt(n, 10)))
	}
	time.Sleep(1500 * time.Millisecond)
	require.Equal(t, base, e.calendarListCalls(t), "no extra sync")
	require.Len(t, e.calendarChanges(t, p.ID), 1, "and no extra changes")
}

func TestCalendarExpiredSyncTokenFullResync(t *testing.T) {
	t.Parallel()
	e := calendarSuite(t)
	_, p := e.calendarConnected(t, "tech-1", "tech1@acme.test", "Keep 1", "Keep 2", "Change me")
	initial := e.calendarWaitChanges(t, p.ID, 3)
	var changeMe string
	for _, c := range initial {
		if c.GetSummary() == "Change me" {
			changeMe = c.GetEventId()
		}
	}
	require.NoError(t, e.admin.InvalidateSyncTokens(e.ctx, "tech1@acme.test", "primary"))
	// The next notification's delta sync meets 410: full resync, RESYNC marker, only what differs.
	_, err := e.admin.UpdateEvent(e.ctx, "tech1@acme.test", "primary", &gcal.Event{Id: changeMe, Summary: "Changed",
		Start: &gcal.EventDateTime{DateTime: "2031-03-04T12:00:00Z"}, End: &gcal.EventDateTime{DateTime: "2031-03-04T13:00:00Z"}})
	require.NoError(t, err)
	got := e.calendarWaitChanges(t, p.ID, 5)
	require.Equal(t, []string{"RESYNC:", "UPDATED:Changed"}, calendarTypes(got[3:]), "no loss, no duplicates")

	// Sync tokens work again afterwards.
	e.calendarEvent(t, "tech1@acme.test", "After")
	got = e.calendarWaitChanges(t, p.ID, 6)
	require.Equal(t, "CREATED:After", calendarTypes(got)[5])
}

func TestCalendarRenewalOverlapNoGapNoDuplicates(t *testing.T) {
	t.Parallel()
	e := calendarSuite(t)
	_, p := e.calendarConnected(t, "tech-1", "tech1@acme.test", "Before")
	e.calendarWaitChanges(t, p.ID, 1)
	old := e.calendarLiveChannel(t, "tech1@acme.test")
	renew := func() *calendarv1.RenewCalendarChannelResponse {
		ctx := harness.WithToken(e.ctx, e.s.ServiceToken("maintenance", calendarTenant))
		res, err := calendarv1.NewCalendarProviderServiceClient(e.s.Conn(t)).RenewCalendarChannel(ctx, &calendarv1.RenewCalendarChannelRequest{ProviderId: p.ID})
		require.NoError(t, err)
		return res
	}

	// Overlap: Google refuses to stop the old channel for a moment, so both channels are live and both
	// notify about the next change.
	require.NoError(t, e.admin.SetFault(e.ctx, googlesandbox.Fault{Endpoint: "calendar.channels.stop", Rate5xx: 1}))
	res := renew()
	require.NotEqual(t, old.ID, res.GetChannel().GetChannelId())
	live := 0
	for _, c := range e.calendarChannels(t, "tech1@acme.test") {
		if !c.Stopped {
			live++
		}
	}
	require.Equal(t, 2, live, "old and new channel overlap")
	e.calendarEvent(t, "tech1@acme.test", "During overlap")
	got := e.calendarWaitChanges(t, p.ID, 2)
	require.Equal(t, "CREATED:During overlap", calendarTypes(got)[1], "no gap, and recorded once although both channels notified")
	require.Eventually(t, func() bool {
		n := 0
		for _, c := range e.calendarChannels(t, "tech1@acme.test") {
			if c.MessageNumber >= 2 {
				n++
			}
		}
		return n == 2
	}, 10*time.Second, 50*time.Millisecond, "both channels sent the change")
	require.Equal(t, 2, e.calendarCount(t, "SELECT count(DISTINCT channel_id) FROM calendar.notifications WHERE resource_state = 'exists'"))

	// Google accepts stops again: the next renewal stops every older channel with the same client.
	require.NoError(t, e.admin.ClearFaults(e.ctx))
	res = renew()
	for _, c := range e.calendarChannels(t, "tech1@acme.test") {
		require.Equal(t, c.ID != res.GetChannel().GetChannelId(), c.Stopped, "channel %s", c.ID)
	}
	e.calendarEvent(t, "tech1@acme.test", "After renewal")
	got = e.calendarWaitChanges(t, p.ID, 3)
	require.Equal(t, "CREATED:After renewal", calendarTypes(got)[2])

	v, err := calendarv1.NewCalendarProviderServiceClient(e.s.Conn(t)).VerifyCalendarChannel(
		harness.WithToken(e.ctx, e.s.ServiceToken("maintenance", calendarTenant)), &calendarv1.VerifyCalendarChannelRequest{ProviderId: p.ID})
	require.NoError(t, err)
	require.True(t, v.GetHealthy(), v.GetReason())
}

func TestCalendarProvidersAreEachUsersOwn(t *testing.T) {
	t.Parallel()
	e := calendarSuite(t)
	a, pa := e.calendarConnected(t, "tech-a", "a@acme.test", "A's meeting")
	b := e.s.HTTP(e.s.UserToken(calendarTenant, "tech-b"))
	path := "/api/v1/calendar/providers/" + pa.ID

	require.Equal(t, http.StatusNotFound, b.Do(t, http.MethodGet, path, nil).Status)
	require.Equal(t, http.StatusNotFound, b.Do(t, http.MethodGet, path+"/diagnostics", nil).Status)
	require.Equal(t, http.StatusNotFound, b.Do(t, http.MethodPost, path+":connect", map[string]any{}).Status)
	require.Equal(t, http.StatusNotFound, b.Do(t, http.MethodPost, path+":disconnect", map[string]any{}).Status)
	require.Equal(t, http.StatusNotFound, b.Do(t, http.MethodDelete, path, nil).Status)
	require.Equal(t, http.StatusNotFound, b.Do(t, http.MethodPatch, path, map[string]any{"display_name": "mine"}).Status)
	list := b.Do(t, http.MethodGet, "/api/v1/calendar/providers", nil)
	require.Equal(t, http.StatusOK, list.Status)
	require.NotContains(t, list.String(), pa.ID)
	require.Equal(t, http.StatusForbidden, b.Do(t, http.MethodGet, "/api/v1/calendar/providers?all_users=true", nil).Status)
	require.Equal(t, http.StatusBadRequest, a.Do(t, http.MethodGet, "/api/v1/calendar/providers/p1:connect", nil).Status, "ids are validated")
	require.Equal(t, http.StatusForbidden, e.s.HTTP(e.s.ClientUserToken(calendarTenant, "tech-a")).Do(t, http.MethodGet, path, nil).Status)

	// An admin lists everyone's providers and disconnects A's: the channel stops at Google.
	admin := e.s.HTTP(e.s.UserToken(calendarTenant, "admin-1", auth.PermSystemSettingsUpdate))
	all := admin.Do(t, http.MethodGet, "/api/v1/calendar/providers?all_users=true", nil)
	require.Equal(t, http.StatusOK, all.Status, all.Errorf())
	require.Contains(t, all.String(), pa.ID)
	ch := e.calendarLiveChannel(t, "a@acme.test")
	d := admin.Do(t, http.MethodPost, path+":disconnect", map[string]any{})
	require.Equal(t, http.StatusOK, d.Status, d.Errorf())
	require.Contains(t, d.String(), "PROVIDER_STATUS_DISCONNECTED")
	for _, c := range e.calendarChannels(t, "a@acme.test") {
		require.True(t, c.Stopped, "channel %s stopped", c.ID)
	}
	require.Equal(t, http.StatusOK, e.calendarPost(t, ch, ch.Token, ch.ResourceID, "exists", fmt.Sprint(ch.MessageNumber+50)), "late notification acknowledged")
	require.Equal(t, 0, e.calendarCount(t, "SELECT count(*) FROM calendar.river_job WHERE kind = 'calendar_sync' AND state = 'available'"))

	// A's own view: disconnected, no sync token; A can delete it.
	diag := a.Do(t, http.MethodGet, path+"/diagnostics", nil)
	require.Equal(t, http.StatusOK, diag.Status, diag.Errorf())
	require.NotContains(t, diag.String(), `"has_sync_token":true`)
	require.Equal(t, http.StatusOK, a.Do(t, http.MethodDelete, path, nil).Status)
	require.Equal(t, http.StatusNotFound, a.Do(t, http.MethodGet, path, nil).Status)
}
