package service

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	calendarv1 "github.com/algapsa/alga-google/gen/alga/calendar/v1"
	oauthv1 "github.com/algapsa/alga-google/gen/alga/oauth/v1"
	"github.com/algapsa/alga-google/services/platform/errs"
)

// fakeCalendar is a small Google Calendar stand-in for service-level tests (the end-to-end tests use the
// suite's Google sandbox): events with etags and a modification sequence, sync tokens (410 on demand),
// small pages, events.watch, and channels.stop restricted to the creating OAuth client.
type fakeCalendar struct {
	t   *testing.T
	srv *httptest.Server

	mu        sync.Mutex
	seq       int64
	events    map[string]map[string]*fakeEvent // calendar → id → event
	tokens    map[string]string                // access token → client id
	channels  map[string]*fakeChannel
	expired   map[string]bool // sync tokens answered with 410
	expireAll bool
	listCalls int
	requests  map[string]int  // request kind ("watch", "stop", "list", "calendarList", "unauthorized") → count
	order     []string        // request kinds in arrival order
	refused   map[string]bool // OAuth clients whose every token Google refuses (401)
	// watchDelay (a time.Duration) delays every events.watch answer.
	watchDelay atomic.Int64
	fail       map[string]int // path kind → remaining 503 answers
	pageSize   int
	lifetime   time.Duration
}

type fakeEvent struct {
	ID, Summary, Status, Etag string
	Description, Location     string
	Seq                       int64
	Updated                   time.Time
	Start, End                time.Time
	AllDay                    bool
}

type fakeChannel struct {
	ID, ResourceID, Token, Address, Client, Calendar string
	Stopped                                          bool
	Expire                                           time.Time
	msg                                              int64
}

func newFakeCalendar(t *testing.T) *fakeCalendar {
	f := &fakeCalendar{t: t, events: map[string]map[string]*fakeEvent{"primary": {}, "team@group.calendar.google.com": {}},
		tokens: map[string]string{}, channels: map[string]*fakeChannel{}, expired: map[string]bool{},
		fail: map[string]int{}, requests: map[string]int{}, refused: map[string]bool{}, pageSize: 2, lifetime: 7 * 24 * time.Hour}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeCalendar) root() string { return f.srv.URL }

func apiErr(w http.ResponseWriter, code int, reason, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"code": code, "message": msg,
		"errors": []map[string]string{{"reason": reason, "message": msg}}}})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func (f *fakeCalendar) serve(w http.ResponseWriter, r *http.Request) {
	if d := time.Duration(f.watchDelay.Load()); d > 0 && strings.HasSuffix(r.URL.Path, "/events/watch") {
		time.Sleep(d)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	client, ok := f.tokens[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
	if !ok || f.refused[client] {
		f.order = append(f.order, "unauthorized")
		f.requests["unauthorized"]++
		apiErr(w, 401, "authError", "Invalid Credentials")
		return
	}
	p := strings.TrimPrefix(r.URL.Path, "/calendar/v3")
	kind := ""
	switch {
	case r.Method == "GET" && p == "/users/me/calendarList":
		kind = "calendarList"
	case r.Method == "POST" && p == "/channels/stop":
		kind = "stop"
	case r.Method == "GET" && strings.HasSuffix(p, "/events"):
		kind = "list"
	case r.Method == "POST" && strings.HasSuffix(p, "/events/watch"):
		kind = "watch"
	default:
		apiErr(w, 404, "notFound", "no route "+r.Method+" "+p)
		return
	}
	f.requests[kind]++
	f.order = append(f.order, kind)
	if f.fail[kind] > 0 {
		f.fail[kind]--
		apiErr(w, 503, "backendError", "try again")
		return
	}
	cal := ""
	if strings.HasPrefix(p, "/calendars/") {
		rest := strings.TrimPrefix(p, "/calendars/")
		cal = rest[:strings.Index(rest, "/")]
		if _, ok := f.events[cal]; !ok {
			apiErr(w, 404, "notFound", "Not Found")
			return
		}
	}
	switch kind {
	case "calendarList":
		writeJSON(w, map[string]any{"items": []map[string]string{{"id": "primary"}, {"id": "team@group.calendar.google.com"}}})
	case "list":
		f.list(w, r, cal)
	case "watch":
		var body struct{ ID, Token, Address, Type string }
		_ = json.NewDecoder(r.Body).Decode(&body)
		if body.ID == "" || body.Address == "" || body.Type != "web_hook" {
			apiErr(w, 400, "invalid", "bad channel")
			return
		}
		ch := &fakeChannel{ID: body.ID, ResourceID: "res-" + cal, Token: body.Token, Address: body.Address,
			Client: client, Calendar: cal, Expire: time.Now().Add(f.lifetime).Truncate(time.Millisecond)}
		f.channels[ch.ID] = ch
		writeJSON(w, map[string]any{"kind": "api#channel", "id": ch.ID, "resourceId": ch.ResourceID,
			"resourceUri": f.srv.URL + "/calendar/v3/calendars/" + cal + "/events", "expiration": strconv.FormatInt(ch.Expire.UnixMilli(), 10)})
	case "stop":
		var body struct{ ID, ResourceID string }
		_ = json.NewDecoder(r.Body).Decode(&body)
		ch := f.channels[body.ID]
		if ch == nil || ch.ResourceID != body.ResourceID || ch.Client != client || ch.Stopped {
			apiErr(w, 404, "notFound", "Channel not found for project")
			return
		}
		ch.Stopped = true
		w.WriteHeader(204)
	}
}

func (f *fakeCalendar) list(w http.ResponseWriter, r *http.Request, cal string) {
	f.listCalls++
	q := r.URL.Query()
	var after int64 = -1
	if tok := q.Get("syncToken"); tok != "" {
		n, err := strconv.ParseInt(strings.TrimPrefix(tok, "s"), 10, 64)
		if err != nil || f.expired[tok] || f.expireAll {
			apiErr(w, 410, "fullSyncRequired", "Sync token is no longer valid, a full sync is required.")
			return
		}
		after = n
	}
	var items []*fakeEvent
	for _, e := range f.events[cal] {
		if after < 0 && e.Status == "cancelled" {
			continue
		}
		if e.Seq > after {
			items = append(items, e)
		}
	}
	sort.Slice(items, func(i, j int) bool { return items[i].ID < items[j].ID })
	off, _ := strconv.Atoi(q.Get("pageToken"))
	end := min(off+f.pageSize, len(items))
	out := map[string]any{"kind": "calendar#events"}
	var list []map[string]any
	for _, e := range items[off:end] {
		m := map[string]any{"id": e.ID, "etag": e.Etag, "status": e.Status, "updated": e.Updated.Format(time.RFC3339Nano)}
		if e.Status != "cancelled" {
			m["summary"] = e.Summary
			if e.Description != "" {
				m["description"] = e.Description
			}
			if e.Location != "" {
				m["location"] = e.Location
			}
			m["iCalUID"] = e.ID + "@google.com"
			if e.AllDay {
				m["start"] = map[string]string{"date": e.Start.Format("2006-01-02")}
				m["end"] = map[string]string{"date": e.End.Format("2006-01-02")}
			} else {
				m["start"] = map[string]string{"dateTime": e.Start.Format(time.RFC3339)}
				m["end"] = map[string]string{"dateTime": e.End.Format(time.RFC3339)}
			}
		}
		list = append(list, m)
	}
	out["items"] = list
	if end < len(items) {
		out["nextPageToken"] = strconv.Itoa(end)
	} else {
		out["nextSyncToken"] = "s" + strconv.FormatInt(f.seq, 10)
	}
	writeJSON(w, out)
}

// put creates or changes an event.
func (f *fakeCalendar) put(cal, id, summary string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seq++
	e := f.events[cal][id]
	if e == nil {
		start := time.Date(2030, 1, 2, 9, 0, 0, 0, time.UTC)
		e = &fakeEvent{ID: id, Start: start, End: start.Add(time.Hour)}
		f.events[cal][id] = e
	}
	e.Summary, e.Status, e.Seq, e.Updated = summary, "confirmed", f.seq, time.Now().UTC()
	e.Etag = fmt.Sprintf(`"%d"`, f.seq)
}

// describe sets an existing event's description and location (a change, like put).
func (f *fakeCalendar) describe(cal, id, description, location string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seq++
	e := f.events[cal][id]
	e.Description, e.Location, e.Seq, e.Updated = description, location, f.seq, time.Now().UTC()
	e.Etag = fmt.Sprintf(`"%d"`, f.seq)
}

func (f *fakeCalendar) remove(cal, id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seq++
	e := f.events[cal][id]
	e.Status, e.Seq, e.Updated, e.Etag = "cancelled", f.seq, time.Now().UTC(), fmt.Sprintf(`"%d"`, f.seq)
}

func (f *fakeCalendar) grant(token, client string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tokens[token] = client
}

// revoke makes Google refuse an access token (401) from now on.
func (f *fakeCalendar) revoke(token string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.tokens, token)
}

// sequence returns the request kinds received since the n-th request.
func (f *fakeCalendar) sequence(from int) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string{}, f.order[from:]...)
}

// total returns how many requests Google received (every kind, refused ones included).
func (f *fakeCalendar) total() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.requests {
		n += c
	}
	return n
}

// counts returns the requests Google received by kind.
func (f *fakeCalendar) counts() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]int{}
	for k, c := range f.requests {
		out[k] = c
	}
	return out
}

func (f *fakeCalendar) calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.listCalls
}

func (f *fakeCalendar) channel(id string) fakeChannel {
	f.mu.Lock()
	defer f.mu.Unlock()
	return *f.channels[id]
}

// notification builds the request the gateway forwards for Google's next message on a channel.
func (f *fakeCalendar) notification(id, state string) *calendarv1.HandleCalendarNotificationRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	ch := f.channels[id]
	ch.msg++
	return &calendarv1.HandleCalendarNotificationRequest{
		ChannelId: ch.ID, ChannelToken: ch.Token, ResourceId: ch.ResourceID, ResourceState: state,
		ResourceUri: f.srv.URL + "/calendar/v3/calendars/" + ch.Calendar + "/events", MessageNumber: strconv.FormatInt(ch.msg, 10),
		ChannelExpiration: ch.Expire.UTC().Format(time.RFC1123),
	}
}

// fakeOAuth stands in for the oauth service. Like it, it caches each connection's access token until a
// forced refresh replaces it (so a token revoked at Google stays cached until then).
type fakeOAuth struct {
	google   *fakeCalendar
	mu       sync.Mutex
	client   map[string]string // provider → OAuth client id of its grant
	failed   map[string]error  // provider → error of every GetAccessToken
	refusal  map[string]error  // provider → error of a forced refresh
	cached   map[string]string // provider + client → cached access token
	forced   map[string]int    // provider → forced refreshes
	issued   int
	cfg      GoogleConfig
	began    []string
	deleted  []string
	tokenAsk int
}

func newFakeOAuth(g *fakeCalendar) *fakeOAuth {
	return &fakeOAuth{google: g, client: map[string]string{}, failed: map[string]error{}, refusal: map[string]error{},
		cached: map[string]string{}, forced: map[string]int{}, cfg: GoogleConfig{CalendarReady: true, UseSameApp: true}}
}

func (o *fakeOAuth) AccessToken(_ context.Context, _, providerID string) (Token, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.token(providerID, false)
}

func (o *fakeOAuth) RefreshAccessToken(_ context.Context, _, providerID string) (Token, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.forced[providerID]++
	if err := o.refusal[providerID]; err != nil {
		return Token{}, err
	}
	return o.token(providerID, true)
}

func (o *fakeOAuth) token(providerID string, refresh bool) (Token, error) {
	o.tokenAsk++
	if err := o.failed[providerID]; err != nil {
		return Token{}, err
	}
	client := o.client[providerID]
	if client == "" {
		client = "client-1.apps.googleusercontent.com"
	}
	key := providerID + "/" + client
	tok := o.cached[key]
	if tok == "" || refresh {
		o.issued++
		tok = fmt.Sprintf("at-%s-%s-%d", providerID, client, o.issued)
		o.cached[key] = tok
		o.google.grant(tok, client)
	}
	return Token{AccessToken: tok, ClientID: client, AccountEmail: "tech@example.com"}, nil
}

// current returns the provider's cached access token.
func (o *fakeOAuth) current(providerID string) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	client := o.client[providerID]
	if client == "" {
		client = "client-1.apps.googleusercontent.com"
	}
	return o.cached[providerID+"/"+client]
}

func (o *fakeOAuth) asks() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.tokenAsk
}

func (o *fakeOAuth) ConnectionStatus(context.Context, string, string) (string, error) {
	return "CONNECTION_STATUS_CONNECTED", nil
}

func (o *fakeOAuth) DeleteConnection(_ context.Context, _, providerID string, _ bool) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.deleted = append(o.deleted, providerID)
	return nil
}

func (o *fakeOAuth) BeginAuthorization(_ context.Context, providerID, _ string) (string, string, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.began = append(o.began, providerID)
	return "https://accounts.example/o/oauth2/v2/auth?state=x", "binding-" + uuid.NewString(), nil
}

func (o *fakeOAuth) GoogleConfig(context.Context) (GoogleConfig, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.cfg, nil
}

var errReauthRequired = errs.Rewrite(context.Background(), slog.New(slog.DiscardHandler), errs.FailedPrecondition("REAUTHORIZATION_REQUIRED", "reconnect"))

// oauthRefusal is the error the oauth service answers when a connection needs a new consent: the
// reason REAUTHORIZATION_REQUIRED with the connection's status (as oauth's reauthError builds it).
func oauthRefusal(st oauthv1.ConnectionStatus) error {
	return errs.Rewrite(context.Background(), slog.New(slog.DiscardHandler),
		errs.FailedPrecondition("REAUTHORIZATION_REQUIRED", "The grant was revoked. Reconnect.").With("status", st.String()))
}

// oauthRefusalClass is oauthRefusal with the maintenance failure class the oauth service reports.
func oauthRefusalClass(st oauthv1.ConnectionStatus, class string) error {
	return errs.Rewrite(context.Background(), slog.New(slog.DiscardHandler),
		errs.FailedPrecondition("REAUTHORIZATION_REQUIRED", "The grant was revoked. Reconnect.").With("status", st.String()).With("failure_class", class))
}

// oauthUnavailable is oauth's answer when Google's token endpoint does not answer.
var oauthUnavailable = errs.Rewrite(context.Background(), slog.New(slog.DiscardHandler),
	errs.Unavailable("GOOGLE_UNAVAILABLE", "Google's token endpoint is unavailable; retry later").With("status", oauthv1.ConnectionStatus_CONNECTION_STATUS_TRANSIENT_ERROR.String()))
