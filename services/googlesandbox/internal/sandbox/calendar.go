package sandbox

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	gcal "google.golang.org/api/calendar/v3"

	"github.com/algapsa/alga-google/services/googlesandbox/internal/api"
)

type calendar struct {
	id, summary, timeZone string
	primary               bool
	owner                 *user
	events                map[string]*calEvent
	seq                   uint64 // change counter: every change gets the next value
	generation            int    // bumped to invalidate every sync token
	resourceID            string
	deleted               bool
}

type calEvent struct {
	ev  *gcal.Event
	seq uint64
}

type channel struct {
	id, resourceID, resourceURI, token, address string
	expiration                                  time.Time
	clientID, projectID                         string
	cal                                         *calendar
	msgNum                                      int64
	stopped                                     bool
}

func newCalendar(u *user, id, summary string, primary bool) *calendar {
	return &calendar{id: id, summary: summary, timeZone: "UTC", primary: primary, owner: u,
		events: map[string]*calEvent{}, resourceID: randString(lowerAlnum+"ABCDEFGHIJKLMNOPQRSTUVWXYZ_-", 27)}
}

func (u *user) calendar(id string) *calendar {
	for _, c := range u.calendars {
		if !c.deleted && (c.id == id || (id == "primary" && c.primary)) {
			return c
		}
	}
	return nil
}

func rfc3339(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// ---- admin: event changes ----

func (s *Server) calendarOf(owner, calID string) (*calendar, error) {
	u := s.users[strings.ToLower(owner)]
	if u == nil {
		return nil, fmt.Errorf("no such user %q", owner)
	}
	c := u.calendar(calID)
	if c == nil {
		return nil, fmt.Errorf("no such calendar %q for %s", calID, owner)
	}
	return c, nil
}

func (s *Server) touch(c *calendar, ev *gcal.Event) {
	c.seq++
	now := s.now()
	ev.Updated = rfc3339(now)
	ev.Etag = fmt.Sprintf(`"%d"`, now.UnixMicro()*10+int64(c.seq%10))
	ce := c.events[ev.Id]
	if ce == nil {
		ce = &calEvent{}
		c.events[ev.Id] = ce
	}
	ce.ev, ce.seq = ev, c.seq
	s.notifyChannels(c, "exists")
}

var eventIDRE = regexp.MustCompile(`^[a-v0-9]{5,1000}$`)

func (s *Server) createEvent(owner, calID string, ev *gcal.Event) (*gcal.Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.calendarOf(owner, calID)
	if err != nil {
		return nil, err
	}
	if ev == nil {
		ev = &gcal.Event{}
	}
	if ev.Id == "" {
		ev.Id = randString("abcdefghijklmnopqrstuv0123456789", 26)
	} else if !eventIDRE.MatchString(ev.Id) {
		return nil, fmt.Errorf("invalid event id %q (base32hex: a-v, 0-9, 5-1024 chars)", ev.Id)
	}
	if ce := c.events[ev.Id]; ce != nil && ce.ev.Status != "cancelled" {
		return nil, fmt.Errorf("event %q already exists", ev.Id)
	}
	if ev.Start == nil || ev.End == nil {
		now := s.now().Truncate(time.Hour).Add(time.Hour)
		ev.Start = &gcal.EventDateTime{DateTime: now.UTC().Format(time.RFC3339)}
		ev.End = &gcal.EventDateTime{DateTime: now.Add(time.Hour).UTC().Format(time.RFC3339)}
	}
	ev.Kind = "calendar#event"
	if ev.Status == "" {
		ev.Status = "confirmed"
	}
	ev.Created = rfc3339(s.now())
	ev.ICalUID = ev.Id + "@google.com"
	ev.HtmlLink = "https://www.google.com/calendar/event?eid=" + base64.RawURLEncoding.EncodeToString([]byte(ev.Id+" "+c.id))
	ev.Creator = &gcal.EventCreator{Email: c.owner.email, Self: true}
	ev.Organizer = &gcal.EventOrganizer{Email: c.id, Self: true}
	if ev.EventType == "" {
		ev.EventType = "default"
	}
	s.touch(c, ev)
	return cloneEvent(ev), nil
}

func (s *Server) updateEvent(owner, calID string, ev *gcal.Event) (*gcal.Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.calendarOf(owner, calID)
	if err != nil {
		return nil, err
	}
	if ev == nil || c.events[ev.Id] == nil || c.events[ev.Id].ev.Status == "cancelled" {
		return nil, fmt.Errorf("no such event")
	}
	old := c.events[ev.Id].ev
	ev.Kind, ev.Created, ev.ICalUID, ev.HtmlLink, ev.Creator, ev.Organizer = old.Kind, old.Created, old.ICalUID, old.HtmlLink, old.Creator, old.Organizer
	ev.Sequence = old.Sequence + 1
	if ev.Status == "" {
		ev.Status = old.Status
	}
	if ev.Start == nil {
		ev.Start = old.Start
	}
	if ev.End == nil {
		ev.End = old.End
	}
	if ev.EventType == "" {
		ev.EventType = old.EventType
	}
	s.touch(c, ev)
	return cloneEvent(ev), nil
}

func (s *Server) deleteEvent(owner, calID, eventID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.calendarOf(owner, calID)
	if err != nil {
		return err
	}
	ce := c.events[eventID]
	if ce == nil || ce.ev.Status == "cancelled" {
		return fmt.Errorf("no such event")
	}
	ev := cloneEvent(ce.ev)
	ev.Status = "cancelled"
	ev.Sequence++
	s.touch(c, ev)
	return nil
}

func cloneEvent(ev *gcal.Event) *gcal.Event {
	b, _ := json.Marshal(ev)
	var out gcal.Event
	_ = json.Unmarshal(b, &out)
	return &out
}

// ---- Calendar API ----

func (s *Server) calUser(w http.ResponseWriter, c *apiCall) *user {
	if c.tok.user == nil {
		apiError(w, 404, "notFound", "Not Found")
		return nil
	}
	u := s.users[c.tok.user.email]
	if u == nil {
		apiError(w, 404, "notFound", "Not Found")
	}
	return u
}

func (s *Server) calendarList(w http.ResponseWriter, r *http.Request) {
	c := s.beginAPI(w, r, "calendar.calendarList.list", calendarScopes)
	if c == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.calUser(w, c)
	if u == nil {
		return
	}
	out := &gcal.CalendarList{Kind: "calendar#calendarList", Etag: fmt.Sprintf(`"p%d"`, len(u.calendars))}
	for _, cal := range u.calendars {
		if cal.deleted {
			continue
		}
		out.Items = append(out.Items, &gcal.CalendarListEntry{Kind: "calendar#calendarListEntry", Id: cal.id, Summary: cal.summary,
			Primary: cal.primary, AccessRole: "owner", TimeZone: cal.timeZone, Selected: true, Etag: `"0"`})
	}
	out.NextSyncToken = "sbx-cl-" + strconv.Itoa(len(u.calendars))
	writeJSON(w, 200, out)
}

type syncCursor struct {
	Cal string `json:"c"`
	Seq uint64 `json:"s"`
	Gen int    `json:"g"`
	At  int64  `json:"t"` // sandbox unix seconds when issued
}

func encodeSync(c syncCursor) string {
	b, _ := json.Marshal(c)
	return "CP" + base64.RawURLEncoding.EncodeToString(b)
}

func decodeSync(s string) (syncCursor, bool) {
	var c syncCursor
	rest, ok := strings.CutPrefix(s, "CP")
	if !ok {
		return c, false
	}
	b, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil || json.Unmarshal(b, &c) != nil {
		return c, false
	}
	return c, true
}

type eventsPage struct {
	Offset int    `json:"o"`
	Snap   uint64 `json:"s"`
}

func (s *Server) eventsList(w http.ResponseWriter, r *http.Request) {
	c := s.beginAPI(w, r, "calendar.events.list", calendarScopes)
	if c == nil {
		return
	}
	q := r.URL.Query()
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.calUser(w, c)
	if u == nil {
		return
	}
	cal := u.calendar(r.PathValue("calendarId"))
	if cal == nil {
		apiError(w, 404, "notFound", "Not Found")
		return
	}
	syncTok := q.Get("syncToken")
	if syncTok != "" {
		for _, p := range []string{"iCalUID", "orderBy", "privateExtendedProperty", "q", "sharedExtendedProperty", "timeMin", "timeMax", "updatedMin"} {
			if q.Has(p) {
				apiError(w, 400, "invalid", "Invalid parameter combination: "+p+" cannot be used together with syncToken.")
				return
			}
		}
	}
	singleEvents := q.Get("singleEvents") == "true"
	orderBy := q.Get("orderBy")
	if orderBy != "" && orderBy != "startTime" && orderBy != "updated" {
		apiError(w, 400, "invalid", "Invalid value for orderBy: "+orderBy)
		return
	}
	if orderBy == "startTime" && !singleEvents {
		apiError(w, 400, "invalid", "The requested ordering is not available for the particular query.")
		return
	}
	limit, ok := maxResults(r, 250, 2500)
	if !ok {
		apiError(w, 400, "invalid", "Invalid value for maxResults")
		return
	}
	var timeMin, timeMax, updatedMin time.Time
	for name, dst := range map[string]*time.Time{"timeMin": &timeMin, "timeMax": &timeMax, "updatedMin": &updatedMin} {
		if v := q.Get(name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				apiError(w, 400, "invalid", "Bad Request: invalid "+name)
				return
			}
			*dst = t
		}
	}
	if !timeMin.IsZero() && !timeMax.IsZero() && !timeMax.After(timeMin) {
		apiError(w, 400, "timeRangeEmpty", "The specified time range is empty.")
		return
	}
	var base uint64
	incremental := false
	if syncTok != "" {
		sc, ok := decodeSync(syncTok)
		if !ok {
			apiError(w, 400, "invalid", "Invalid sync token value.")
			return
		}
		if sc.Cal != cal.id || sc.Gen != cal.generation || sc.Seq > cal.seq || s.now().Sub(time.Unix(sc.At, 0)) > SyncTokenTTL {
			apiError(w, 410, "fullSyncRequired", "Sync token is no longer valid, a full sync is required.")
			return
		}
		base, incremental = sc.Seq, true
	}
	snap, offset := cal.seq, 0
	if pt := q.Get("pageToken"); pt != "" {
		var pg eventsPage
		b, err := base64.RawURLEncoding.DecodeString(pt)
		if err != nil || json.Unmarshal(b, &pg) != nil || pg.Offset < 0 || pg.Snap > cal.seq {
			apiError(w, 400, "invalid", "Invalid page token value.")
			return
		}
		snap, offset = pg.Snap, pg.Offset
	}
	showDeleted := q.Get("showDeleted") == "true"
	words := strings.Fields(strings.ToLower(q.Get("q")))
	var hits []*calEvent
	for _, ce := range cal.events {
		if ce.seq > snap {
			continue
		}
		ev := ce.ev
		if incremental {
			if ce.seq <= base {
				continue
			}
		} else {
			if ev.Status == "cancelled" && !showDeleted {
				continue
			}
			st, en := eventTimes(ev)
			if !timeMin.IsZero() && !en.After(timeMin) {
				continue
			}
			if !timeMax.IsZero() && !st.Before(timeMax) {
				continue
			}
			if !updatedMin.IsZero() {
				if up, _ := time.Parse(time.RFC3339, ev.Updated); up.Before(updatedMin) {
					continue
				}
			}
			if len(words) > 0 {
				text := strings.ToLower(ev.Summary + " " + ev.Description + " " + ev.Location)
				if !allIn(text, words) {
					continue
				}
			}
		}
		hits = append(hits, ce)
	}
	sort.Slice(hits, func(i, j int) bool {
		switch {
		case incremental || orderBy == "updated":
			return hits[i].seq < hits[j].seq
		case orderBy == "startTime":
			a, _ := eventTimes(hits[i].ev)
			b, _ := eventTimes(hits[j].ev)
			if !a.Equal(b) {
				return a.Before(b)
			}
		}
		return hits[i].ev.Id < hits[j].ev.Id
	})
	out := &gcal.Events{Kind: "calendar#events", Etag: fmt.Sprintf(`"%d"`, snap), Summary: cal.summary, TimeZone: cal.timeZone,
		AccessRole: "owner", Updated: rfc3339(s.now()), DefaultReminders: []*gcal.EventReminder{}}
	if offset > len(hits) {
		offset = len(hits)
	}
	end := min(offset+limit, len(hits))
	for _, ce := range hits[offset:end] {
		out.Items = append(out.Items, cloneEvent(ce.ev))
	}
	if out.Items == nil {
		out.Items = []*gcal.Event{}
	}
	if end < len(hits) {
		b, _ := json.Marshal(eventsPage{Offset: end, Snap: snap})
		out.NextPageToken = base64.RawURLEncoding.EncodeToString(b)
	} else {
		out.NextSyncToken = encodeSync(syncCursor{Cal: cal.id, Seq: snap, Gen: cal.generation, At: s.now().Unix()})
	}
	writeJSON(w, 200, out)
}

func allIn(text string, words []string) bool {
	for _, w := range words {
		if !strings.Contains(text, w) {
			return false
		}
	}
	return true
}

func eventTimes(ev *gcal.Event) (time.Time, time.Time) {
	parse := func(d *gcal.EventDateTime) time.Time {
		if d == nil {
			return time.Time{}
		}
		if d.DateTime != "" {
			t, _ := time.Parse(time.RFC3339, d.DateTime)
			return t
		}
		t, _ := time.Parse("2006-01-02", d.Date)
		return t
	}
	return parse(ev.Start), parse(ev.End)
}

var channelIDRE = regexp.MustCompile(`^[A-Za-z0-9\-_+/=]{1,64}$`)

func (s *Server) eventsWatch(w http.ResponseWriter, r *http.Request) {
	c := s.beginAPI(w, r, "calendar.events.watch", calendarScopes)
	if c == nil {
		return
	}
	var req gcal.Channel
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
		apiError(w, 400, "parseError", "Parse Error")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.calUser(w, c)
	if u == nil {
		return
	}
	cal := u.calendar(r.PathValue("calendarId"))
	if cal == nil {
		apiError(w, 404, "notFound", "Not Found")
		return
	}
	if req.Id == "" || !channelIDRE.MatchString(req.Id) {
		apiError(w, 400, "invalid", "Invalid channel id.")
		return
	}
	if req.Type != "web_hook" && req.Type != "webhook" {
		apiError(w, 400, "invalid", "Invalid value for type: "+req.Type)
		return
	}
	au, err := url.Parse(req.Address)
	if err != nil || (au.Scheme != "https" && au.Scheme != "http") || au.Host == "" {
		apiError(w, 400, "push.webhookUrlNotHttps", "WebHook callback must be HTTPS: "+req.Address)
		return
	}
	if old := s.channels[req.Id]; old != nil && !old.stopped && s.now().Before(old.expiration) {
		apiError(w, 400, "channelIdNotUnique", "Channel id "+req.Id+" not unique")
		return
	}
	ttl := ChannelDefaultTTL
	if v, ok := req.Params["ttl"]; ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			apiError(w, 400, "invalid", "Invalid ttl value: "+v)
			return
		}
		ttl = time.Duration(n) * time.Second
	}
	if ttl > ChannelMaxTTL {
		ttl = ChannelMaxTTL
	}
	now := s.now()
	exp := now.Add(ttl)
	if req.Expiration > 0 {
		if t := time.UnixMilli(req.Expiration); t.Before(exp) && t.After(now) {
			exp = t
		}
	}
	pid := ""
	if cl := s.clients[c.tok.clientID]; cl != nil {
		pid = cl.projectID
	}
	ch := &channel{id: req.Id, resourceID: cal.resourceID, token: req.Token, address: req.Address,
		resourceURI: s.root() + "/calendar/v3/calendars/" + url.PathEscape(cal.id) + "/events?alt=json",
		expiration:  exp.Truncate(time.Millisecond), clientID: c.tok.clientID, projectID: pid, cal: cal}
	s.channels[ch.id] = ch
	s.sendChannelMessage(ch, "sync")
	writeJSON(w, 200, &gcal.Channel{Kind: "api#channel", Id: ch.id, ResourceId: ch.resourceID, ResourceUri: ch.resourceURI,
		Token: ch.token, Expiration: ch.expiration.UnixMilli()})
}

func (s *Server) channelsStop(w http.ResponseWriter, r *http.Request) {
	c := s.beginAPI(w, r, "calendar.channels.stop", calendarScopes)
	if c == nil {
		return
	}
	var req gcal.Channel
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
		apiError(w, 400, "parseError", "Parse Error")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	pid, pnum := "", ""
	if cl := s.clients[c.tok.clientID]; cl != nil {
		pid = cl.projectID
		if p := s.projects[pid]; p != nil {
			pnum = p.number
		}
	}
	ch := s.channels[req.Id]
	if ch == nil || ch.stopped || ch.resourceID != req.ResourceId || ch.projectID != pid {
		apiError(w, 404, "notFound", fmt.Sprintf("Channel '%s' not found for project '%s'", req.Id, pnum))
		return
	}
	if ch.clientID != c.tok.clientID {
		apiError(w, 403, "forbidden", fmt.Sprintf("Channel '%s' was not created by this OAuth client.", req.Id))
		return
	}
	ch.stopped = true
	w.WriteHeader(http.StatusNoContent)
}

// notifyChannels queues a notification on every live channel of a calendar. Caller holds s.mu.
func (s *Server) notifyChannels(c *calendar, state string) {
	for _, id := range sortedKeys(s.channels) {
		ch := s.channels[id]
		if ch.cal == c && !ch.stopped && s.now().Before(ch.expiration) {
			s.sendChannelMessage(ch, state)
		}
	}
}

// sendChannelMessage numbers a channel message and queues its delivery. Caller holds s.mu.
func (s *Server) sendChannelMessage(ch *channel, state string) {
	ch.msgNum++
	num := ch.msgNum
	s.count("calendar.push", ch.id)
	if d := s.decide(ch.clientID, "calendar.push"); d.Drop {
		s.count("calendar.push.dropped", ch.id)
		s.recordDelivery(api.Delivery{Kind: "calendar", Target: ch.id, Address: ch.address, ID: strconv.FormatInt(num, 10), Outcome: "dropped", At: time.Now()})
		return
	}
	hdr := http.Header{}
	hdr.Set("X-Goog-Channel-ID", ch.id)
	if ch.token != "" {
		hdr.Set("X-Goog-Channel-Token", ch.token)
	}
	hdr.Set("X-Goog-Channel-Expiration", ch.expiration.UTC().Format(http.TimeFormat))
	hdr.Set("X-Goog-Resource-ID", ch.resourceID)
	hdr.Set("X-Goog-Resource-URI", ch.resourceURI)
	hdr.Set("X-Goog-Resource-State", state)
	hdr.Set("X-Goog-Message-Number", strconv.FormatInt(num, 10))
	addr, id := ch.address, ch.id
	s.queues.push("channel:"+id, func(ctx context.Context) { s.deliverChannel(ctx, id, addr, num, hdr) })
}

func (s *Server) deliverChannel(ctx context.Context, id, addr string, num int64, hdr http.Header) {
	backoff := s.cfg.PushMinBackoff
	for attempt := 1; attempt <= s.cfg.PushMaxAttempts; attempt++ {
		start := time.Now()
		status, err := s.post(ctx, addr, hdr, nil, defaultPushAckTimeout)
		d := api.Delivery{Kind: "calendar", Target: id, Address: addr, ID: strconv.FormatInt(num, 10), Attempt: attempt,
			Status: status, At: start, Duration: time.Since(start).String()}
		if err != nil {
			d.Error = err.Error()
		}
		retry := err != nil || status == 429 || status >= 500
		switch {
		case !retry && status >= 200 && status < 300:
			d.Outcome = "delivered"
		case !retry:
			d.Outcome = "failed"
		case attempt == s.cfg.PushMaxAttempts:
			d.Outcome = "gave_up"
		default:
			d.Outcome = "retry"
		}
		s.mu.Lock()
		s.recordDelivery(d)
		s.mu.Unlock()
		if !retry || !sleep(ctx, backoff) {
			return
		}
		backoff = min(backoff*2, s.cfg.PushMaxBackoff)
	}
}

// post sends one push and returns the status code.
func (s *Server) post(ctx context.Context, addr string, hdr http.Header, body []byte, timeout time.Duration) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var rd io.Reader = http.NoBody
	if body != nil {
		rd = strings.NewReader(string(body))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, addr, rd)
	if err != nil {
		return 0, err
	}
	maps := hdr.Clone()
	req.Header = maps
	req.Header.Set("User-Agent", "APIs-Google; (+https://developers.google.com/webmasters/APIs-Google.html)")
	resp, err := s.cfg.HTTPClient.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}

// recordDelivery keeps the last 1000 push attempts. Caller holds s.mu.
func (s *Server) recordDelivery(d api.Delivery) {
	s.deliveries = append(s.deliveries, d)
	if len(s.deliveries) > 1000 {
		s.deliveries = slices.Clone(s.deliveries[len(s.deliveries)-1000:])
	}
}
