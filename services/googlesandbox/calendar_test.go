package googlesandbox_test

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	calendar "google.golang.org/api/calendar/v3"

	"github.com/algapsa/alga-google/services/googlesandbox"
)

func event(summary string, start time.Time) *calendar.Event {
	return &calendar.Event{Summary: summary,
		Start: &calendar.EventDateTime{DateTime: start.UTC().Format(time.RFC3339)},
		End:   &calendar.EventDateTime{DateTime: start.Add(time.Hour).UTC().Format(time.RFC3339)}}
}

// fullSync lists every page and returns the items and the final sync token.
func fullSync(t *testing.T, call func(pageToken string) (*calendar.Events, error)) ([]*calendar.Event, string) {
	t.Helper()
	var items []*calendar.Event
	pt := ""
	for {
		evs, err := call(pt)
		require.NoError(t, err)
		items = append(items, evs.Items...)
		if evs.NextPageToken == "" {
			require.NotEmpty(t, evs.NextSyncToken, "the last page carries nextSyncToken")
			return items, evs.NextSyncToken
		}
		require.Empty(t, evs.NextSyncToken, "only the last page carries nextSyncToken")
		pt = evs.NextPageToken
	}
}

func TestCalendarSyncTokens(t *testing.T) {
	t.Parallel()
	b := setup(t)
	tn := b.tenant(t, "cal-tenant", "production")
	u, err := b.admin.CreateUser(b.ctx, googlesandbox.CreateTestUserRequest{Email: "tech@acme.test", SecondCalendar: true})
	require.NoError(t, err)
	require.Len(t, u.Calendars, 2)
	svc := b.calendar(t, tn.cfg, b.connect(t, tn.cfg, "tech@acme.test"))

	cl, err := svc.CalendarList.List().Do()
	require.NoError(t, err)
	require.Len(t, cl.Items, 2)
	require.True(t, cl.Items[0].Primary)
	require.Equal(t, "tech@acme.test", cl.Items[0].Id)

	base := time.Now().Add(24 * time.Hour).Truncate(time.Hour)
	var ids []string
	for i := range 3 {
		ev, err := b.admin.CreateEvent(b.ctx, "tech@acme.test", "primary", event("meeting "+strconv.Itoa(i), base.Add(time.Duration(i)*time.Hour)))
		require.NoError(t, err)
		ids = append(ids, ev.Id)
	}
	_, err = b.admin.CreateEvent(b.ctx, "tech@acme.test", u.Calendars[1].ID, event("team", base))
	require.NoError(t, err)

	items, syncTok := fullSync(t, func(pt string) (*calendar.Events, error) {
		return svc.Events.List("primary").SingleEvents(true).MaxResults(2).PageToken(pt).Do()
	})
	require.Len(t, items, 3)

	// Nothing changed: an empty incremental page with a new token.
	inc, err := svc.Events.List("primary").SyncToken(syncTok).Do()
	require.NoError(t, err)
	require.Empty(t, inc.Items)
	require.NotEmpty(t, inc.NextSyncToken)

	// A change and a deletion show up incrementally; the deletion as status "cancelled".
	ch := event("meeting 0 (moved)", base.Add(5*time.Hour))
	ch.Id = ids[0]
	_, err = b.admin.UpdateEvent(b.ctx, "tech@acme.test", "primary", ch)
	require.NoError(t, err)
	require.NoError(t, b.admin.DeleteEvent(b.ctx, "tech@acme.test", "primary", ids[1]))
	items, syncTok2 := fullSync(t, func(pt string) (*calendar.Events, error) {
		return svc.Events.List("primary").SyncToken(inc.NextSyncToken).MaxResults(1).PageToken(pt).Do()
	})
	require.Len(t, items, 2)
	require.Equal(t, ids[0], items[0].Id)
	require.Equal(t, "meeting 0 (moved)", items[0].Summary)
	require.Equal(t, ids[1], items[1].Id)
	require.Equal(t, "cancelled", items[1].Status)

	// Deleted events are hidden from a full list unless showDeleted.
	full, err := svc.Events.List("primary").Do()
	require.NoError(t, err)
	require.Len(t, full.Items, 2)
	full, err = svc.Events.List("primary").ShowDeleted(true).Do()
	require.NoError(t, err)
	require.Len(t, full.Items, 3)
	// timeMin/timeMax filter and orderBy=startTime.
	win, err := svc.Events.List("primary").SingleEvents(true).OrderBy("startTime").
		TimeMin(base.Add(90 * time.Minute).Format(time.RFC3339)).TimeMax(base.Add(10 * time.Hour).Format(time.RFC3339)).Do()
	require.NoError(t, err)
	require.Len(t, win.Items, 2)
	require.Equal(t, ids[2], win.Items[0].Id)

	// Parameters Google forbids together with a sync token.
	_, err = svc.Events.List("primary").SyncToken(syncTok2).TimeMin(base.Format(time.RFC3339)).Do()
	requireAPIStatus(t, err, 400)
	_, err = svc.Events.List("primary").SyncToken(syncTok2).Q("x").Do()
	requireAPIStatus(t, err, 400)

	// Invalidated, then expired sync tokens: 410 fullSyncRequired.
	require.NoError(t, b.admin.InvalidateSyncTokens(b.ctx, "tech@acme.test", "primary"))
	_, err = svc.Events.List("primary").SyncToken(syncTok2).Do()
	ge := requireAPIStatus(t, err, 410)
	require.Equal(t, "fullSyncRequired", ge.Errors[0].Reason)
	_, fresh := fullSync(t, func(pt string) (*calendar.Events, error) {
		return svc.Events.List("primary").PageToken(pt).Do()
	})
	err = b.admin.AdvanceClock(b.ctx, 8*24*time.Hour)
	require.NoError(t, err)
	svc = b.calendar(t, tn.cfg, b.connect(t, tn.cfg, "tech@acme.test"))
	_, err = svc.Events.List("primary").SyncToken(fresh).Do()
	requireAPIStatus(t, err, 410)
}

func TestCalendarChannels(t *testing.T) {
	t.Parallel()
	b := setup(t)
	tn := b.tenant(t, "chan-tenant", "production")
	b.user(t, "lee@acme.test")
	tok := b.connect(t, tn.cfg, "lee@acme.test")
	svc := b.calendar(t, tn.cfg, tok)
	rc := b.receiver(t, "")

	res, err := svc.Events.Watch("primary", &calendar.Channel{Id: "chan-1", Type: "web_hook", Address: rc.URL + "/api/calendar/webhooks/google",
		Token: "tok-abc", Params: map[string]string{"ttl": "3600"}}).Do()
	require.NoError(t, err)
	require.NotEmpty(t, res.ResourceId)
	require.Contains(t, res.ResourceUri, "/calendar/v3/calendars/lee@acme.test/events")
	now, _ := b.admin.Now(b.ctx)
	require.WithinDuration(t, now.Add(time.Hour), time.UnixMilli(res.Expiration), 5*time.Second)

	// Channel ids are unique.
	_, err = svc.Events.Watch("primary", &calendar.Channel{Id: "chan-1", Type: "web_hook", Address: rc.URL}).Do()
	requireAPIStatus(t, err, 400)

	reqs := rc.waitFor(t, 1)
	h := reqs[0].Header
	require.Equal(t, "sync", h.Get("X-Goog-Resource-State"))
	require.Equal(t, "1", h.Get("X-Goog-Message-Number"))
	require.Equal(t, "chan-1", h.Get("X-Goog-Channel-ID"))
	require.Equal(t, "tok-abc", h.Get("X-Goog-Channel-Token"))
	require.Equal(t, res.ResourceId, h.Get("X-Goog-Resource-ID"))
	require.Equal(t, res.ResourceUri, h.Get("X-Goog-Resource-URI"))
	exp, err := time.Parse(time.RFC1123, h.Get("X-Goog-Channel-Expiration"))
	require.NoError(t, err)
	require.WithinDuration(t, time.UnixMilli(res.Expiration), exp, time.Second)
	require.Empty(t, reqs[0].Body)

	ev, err := b.admin.CreateEvent(b.ctx, "lee@acme.test", "primary", event("standup", time.Now().Add(time.Hour)))
	require.NoError(t, err)
	require.NoError(t, b.admin.DeleteEvent(b.ctx, "lee@acme.test", "primary", ev.Id))
	reqs = rc.waitFor(t, 3)
	for i, r := range reqs[1:] {
		require.Equal(t, "exists", r.Header.Get("X-Goog-Resource-State"))
		require.Equal(t, strconv.Itoa(i+2), r.Header.Get("X-Goog-Message-Number"))
	}

	// Another OAuth client (another tenant's app) cannot stop the channel.
	other := b.tenant(t, "other-tenant", "production")
	otherSvc := b.calendar(t, other.cfg, b.connect(t, other.cfg, "lee@acme.test"))
	err = otherSvc.Channels.Stop(&calendar.Channel{Id: "chan-1", ResourceId: res.ResourceId}).Do()
	requireAPIStatus(t, err, 404)
	// Nor can a second client of the same project.
	second, err := b.admin.CreateOAuthClient(b.ctx, tn.project.ProjectID, []string{redirectURI})
	require.NoError(t, err)
	secCfg := b.oauthConfig(second.ClientID, second.ClientSecret)
	secSvc := b.calendar(t, secCfg, b.connect(t, secCfg, "lee@acme.test"))
	err = secSvc.Channels.Stop(&calendar.Channel{Id: "chan-1", ResourceId: res.ResourceId}).Do()
	requireAPIStatus(t, err, 403)
	// A wrong resource id is not found.
	err = svc.Channels.Stop(&calendar.Channel{Id: "chan-1", ResourceId: "nope"}).Do()
	requireAPIStatus(t, err, 404)

	require.NoError(t, svc.Channels.Stop(&calendar.Channel{Id: "chan-1", ResourceId: res.ResourceId}).Do())
	_, err = b.admin.CreateEvent(b.ctx, "lee@acme.test", "primary", event("after stop", time.Now().Add(2*time.Hour)))
	require.NoError(t, err)
	time.Sleep(100 * time.Millisecond)
	require.Len(t, rc.requests(), 3)
	chans, err := b.admin.Channels(b.ctx)
	require.NoError(t, err)
	require.Len(t, chans, 1)
	require.True(t, chans[0].Stopped)
	require.Equal(t, tn.project.ClientID, chans[0].ClientID)

	// Channels expire with the sandbox clock; a failing receiver is retried on 5xx.
	rc2 := b.receiver(t, "", http.StatusOK, http.StatusServiceUnavailable)
	_, err = svc.Events.Watch("primary", &calendar.Channel{Id: "chan-2", Type: "web_hook", Address: rc2.URL}).Do()
	require.NoError(t, err)
	rc2.waitFor(t, 1)
	_, err = b.admin.CreateEvent(b.ctx, "lee@acme.test", "primary", event("retried", time.Now().Add(3*time.Hour)))
	require.NoError(t, err)
	reqs = rc2.waitFor(t, 3)
	require.Equal(t, "2", reqs[1].Header.Get("X-Goog-Message-Number"))
	require.Equal(t, "2", reqs[2].Header.Get("X-Goog-Message-Number"))
	err = b.admin.AdvanceClock(b.ctx, 7*24*time.Hour+time.Minute)
	require.NoError(t, err)
	_, err = b.admin.CreateEvent(b.ctx, "lee@acme.test", "primary", event("expired", time.Now().Add(4*time.Hour)))
	require.NoError(t, err)
	time.Sleep(100 * time.Millisecond)
	require.Len(t, rc2.requests(), 3)
}
