package sandbox

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/http"
	"net/mail"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	gmail "google.golang.org/api/gmail/v1"

	"github.com/algapsa/alga-google/services/googlesandbox/internal/api"
)

type user struct {
	email, name, id string
	projects        []string
	mb              *mailbox
	calendars       []*calendar // primary first
}

type mailbox struct {
	historyID    uint64
	historyFloor uint64 // start ids below this are gone (404)
	messages     map[string]*message
	order        []*message
	labels       map[string]*api.Label
	labelSeq     int
	history      []*historyRecord
	watch        *gmailWatch
	lastNotify   time.Time
	watchCalls   int
	stopCalls    int
	msgSeq       uint64
}

type message struct {
	id, threadID string
	labelIDs     []string
	raw          []byte
	internalDate time.Time
	historyID    uint64
}

type historyRecord struct {
	id       uint64
	at       time.Time
	msg      *message
	labelIDs []string
}

type gmailWatch struct {
	topic      string
	labelIDs   []string
	behavior   string
	expiration time.Time
	historyID  uint64
	clientID   string
}

var systemLabels = []string{"INBOX", "SENT", "DRAFT", "UNREAD", "STARRED", "IMPORTANT", "SPAM", "TRASH", "CHAT",
	"CATEGORY_PERSONAL", "CATEGORY_SOCIAL", "CATEGORY_PROMOTIONS", "CATEGORY_UPDATES", "CATEGORY_FORUMS"}

func newMailbox(seed uint64) *mailbox {
	mb := &mailbox{historyID: seed, historyFloor: seed, messages: map[string]*message{}, labels: map[string]*api.Label{}}
	for _, l := range systemLabels {
		mb.labels[l] = &api.Label{ID: l, Name: l, Type: "system"}
	}
	return mb
}

func (mb *mailbox) labelByName(name string) *api.Label {
	for _, l := range mb.labels {
		if strings.EqualFold(l.Name, name) {
			return l
		}
	}
	return nil
}

func (mb *mailbox) createLabel(name string) *api.Label {
	if l := mb.labelByName(name); l != nil {
		return l
	}
	mb.labelSeq++
	l := &api.Label{ID: "Label_" + strconv.Itoa(mb.labelSeq), Name: name, Type: "user"}
	mb.labels[l.ID] = l
	return l
}

// prune drops history older than the retention window (sandbox clock). Caller holds s.mu.
func (s *Server) pruneHistory(mb *mailbox) {
	cut := s.now().Add(-HistoryRetention)
	i := 0
	for i < len(mb.history) && mb.history[i].at.Before(cut) {
		if mb.history[i].id > mb.historyFloor {
			mb.historyFloor = mb.history[i].id
		}
		i++
	}
	if i > 0 {
		mb.history = slices.Clone(mb.history[i:])
	}
	// With no retained records older than the cut, anything before the last change before the cut is gone.
	if len(mb.history) == 0 && mb.historyFloor < mb.historyID && s.lastChange(mb).Before(cut) {
		mb.historyFloor = mb.historyID
	}
}

func (s *Server) lastChange(mb *mailbox) time.Time {
	if len(mb.order) == 0 {
		return time.Time{}
	}
	return mb.order[len(mb.order)-1].internalDate
}

// ---- delivery (admin) ----

func buildRaw(e api.Email, date time.Time, msgID string) []byte {
	var b bytes.Buffer
	from := e.From
	if from == "" {
		from = "sender@example.com"
	}
	fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <%s@sandbox.google>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n",
		from, e.To, mime.QEncoding.Encode("utf-8", e.Subject), date.Format(time.RFC1123Z), msgID)
	body := strings.ReplaceAll(e.Body, "\r\n", "\n")
	b.WriteString(strings.ReplaceAll(body, "\n", "\r\n"))
	return b.Bytes()
}

func (s *Server) deliver(email string, e api.Email) (api.DeliveredMessage, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.users[strings.ToLower(email)]
	if u == nil {
		return api.DeliveredMessage{}, fmt.Errorf("no such mailbox %q", email)
	}
	mb := u.mb
	labels := e.LabelIDs
	if len(labels) == 0 {
		labels = []string{"INBOX", "UNREAD"}
	}
	for _, l := range labels {
		if mb.labels[l] == nil {
			return api.DeliveredMessage{}, fmt.Errorf("unknown label id %q", l)
		}
	}
	labels = slices.Clone(labels)
	for _, n := range e.LabelNames {
		l := mb.createLabel(n)
		if !slices.Contains(labels, l.ID) {
			labels = append(labels, l.ID)
		}
	}
	now := s.now()
	date := e.Date
	if date.IsZero() {
		date = now
	}
	mb.msgSeq++
	id := fmt.Sprintf("%016x", uint64(0x18f0000000000000)+uint64(date.Unix()&0xffffffff)<<12+mb.msgSeq)
	raw := e.Raw
	if len(raw) == 0 {
		if e.To == "" {
			e.To = u.email
		}
		raw = buildRaw(e, date, id)
	} else if m, err := mail.ReadMessage(bytes.NewReader(raw)); err != nil {
		return api.DeliveredMessage{}, fmt.Errorf("raw is not an RFC 822 message: %v", err)
	} else if e.Date.IsZero() {
		// internalDate is the time Gmail received the message (sandbox clock), not the Date header.
		_ = m
	}
	thread := e.ThreadID
	if thread == "" || mb.messages[thread] == nil && !s.threadExists(mb, thread) {
		thread = id
	}
	mb.historyID++
	m := &message{id: id, threadID: thread, labelIDs: labels, raw: raw, internalDate: date, historyID: mb.historyID}
	mb.messages[id] = m
	mb.order = append(mb.order, m)
	mb.history = append(mb.history, &historyRecord{id: mb.historyID, at: now, msg: m, labelIDs: slices.Clone(labels)})
	notified := s.notifyMailbox(u, m)
	return api.DeliveredMessage{ID: id, ThreadID: thread, HistoryID: mb.historyID, Notified: notified}, nil
}

func (s *Server) threadExists(mb *mailbox, thread string) bool {
	for _, m := range mb.order {
		if m.threadID == thread {
			return true
		}
	}
	return false
}

// notifyMailbox publishes a Gmail push notification for a new message if a live watch covers it, at most
// one per second per mailbox (sandbox clock). Caller holds s.mu.
func (s *Server) notifyMailbox(u *user, m *message) bool {
	mb := u.mb
	w := mb.watch
	now := s.now()
	if w == nil || !now.Before(w.expiration) {
		return false
	}
	if len(w.labelIDs) > 0 {
		hit := false
		for _, l := range w.labelIDs {
			if slices.Contains(m.labelIDs, l) {
				hit = true
			}
		}
		if (w.behavior == "exclude") == hit {
			return false
		}
	}
	s.count("gmail.notification", u.email)
	if d := s.decide(w.clientID, "gmail.notification"); d.Drop {
		s.count("gmail.notification.dropped", u.email)
		return false
	}
	if !mb.lastNotify.IsZero() && now.Sub(mb.lastNotify) < NotificationInterval {
		s.count("gmail.notification.dropped", u.email)
		return false
	}
	if !s.publisherAllowed(w.topic, GmailPushAccount) {
		s.count("gmail.notification.denied", u.email)
		return false
	}
	data, _ := json.Marshal(map[string]any{"emailAddress": u.email, "historyId": mb.historyID})
	if s.pst == nil {
		return false
	}
	_, err := s.pst.GServer.Publish(context.Background(), &pubsubpb.PublishRequest{Topic: w.topic, Messages: []*pubsubpb.PubsubMessage{{Data: data}}})
	if err != nil {
		s.count("gmail.notification.failed", u.email)
		s.log.Warn("gmail notification publish failed", "topic", w.topic, "err", err)
		return false
	}
	mb.lastNotify = now
	return true
}

// ---- Gmail API ----

// gmailUser resolves the userId path segment against the token. Writes the error itself.
func (s *Server) gmailUser(w http.ResponseWriter, r *http.Request, c *apiCall) *user {
	if c.tok.user == nil {
		apiError(w, 400, "failedPrecondition", "Precondition check failed.")
		return nil
	}
	uid := r.PathValue("userId")
	if uid != "me" && !strings.EqualFold(uid, c.tok.user.email) {
		apiError(w, 403, "forbidden", "Delegation denied for "+c.tok.user.email)
		return nil
	}
	u := s.users[c.tok.user.email]
	if u == nil {
		apiError(w, 404, "notFound", "Requested entity was not found.")
		return nil
	}
	s.pruneHistory(u.mb)
	return u
}

func (s *Server) gmailProfile(w http.ResponseWriter, r *http.Request) {
	c := s.beginAPI(w, r, "gmail.users.getProfile", gmailScopes)
	if c == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.gmailUser(w, r, c)
	if u == nil {
		return
	}
	threads := map[string]bool{}
	for _, m := range u.mb.order {
		threads[m.threadID] = true
	}
	writeJSON(w, 200, &gmail.Profile{EmailAddress: u.email, HistoryId: u.mb.historyID, MessagesTotal: int64(len(u.mb.order)),
		ThreadsTotal: int64(len(threads)), ForceSendFields: []string{"MessagesTotal", "ThreadsTotal"}})
}

func (s *Server) gmailLabels(w http.ResponseWriter, r *http.Request) {
	c := s.beginAPI(w, r, "gmail.users.labels.list", gmailScopes)
	if c == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.gmailUser(w, r, c)
	if u == nil {
		return
	}
	var out []*gmail.Label
	for _, id := range systemLabels {
		out = append(out, &gmail.Label{Id: id, Name: id, Type: "system"})
	}
	var user []*api.Label
	for _, l := range u.mb.labels {
		if l.Type == "user" {
			user = append(user, l)
		}
	}
	sort.Slice(user, func(i, j int) bool { return labelNum(user[i].ID) < labelNum(user[j].ID) })
	for _, l := range user {
		out = append(out, &gmail.Label{Id: l.ID, Name: l.Name, Type: "user", LabelListVisibility: "labelShow", MessageListVisibility: "show"})
	}
	writeJSON(w, 200, &gmail.ListLabelsResponse{Labels: out})
}

func labelNum(id string) int {
	n, _ := strconv.Atoi(strings.TrimPrefix(id, "Label_"))
	return n
}

var topicRE = regexp.MustCompile(`^projects/([^/]+)/topics/([^/]+)$`)

func (s *Server) gmailWatch(w http.ResponseWriter, r *http.Request) {
	c := s.beginAPI(w, r, "gmail.users.watch", gmailScopes)
	if c == nil {
		return
	}
	var req gmail.WatchRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
		apiError(w, 400, "invalid", "Invalid JSON payload received. "+err.Error())
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.gmailUser(w, r, c)
	if u == nil {
		return
	}
	u.mb.watchCalls++
	cl := s.clients[c.tok.clientID]
	clientProject := ""
	if cl != nil {
		clientProject = cl.projectID
	}
	mt := topicRE.FindStringSubmatch(req.TopicName)
	if req.TopicName == "" {
		apiError(w, 400, "invalidArgument", "Invalid topicName does not match projects/"+clientProject+"/topics/*")
		return
	}
	if mt == nil || mt[1] != clientProject {
		apiError(w, 400, "invalidArgument", "Invalid topicName does not match projects/"+clientProject+"/topics/*")
		return
	}
	if !s.topicExists(req.TopicName) {
		apiError(w, 404, "notFound", "Resource not found (resource="+mt[2]+").")
		return
	}
	if !s.publisherAllowed(req.TopicName, GmailPushAccount) {
		apiError(w, 403, "forbidden", "Error sending test message to Cloud PubSub "+req.TopicName+" : User not authorized to perform this action.")
		return
	}
	for _, l := range req.LabelIds {
		if u.mb.labels[l] == nil {
			apiError(w, 400, "invalidArgument", "Invalid label: "+l)
			return
		}
	}
	behavior := strings.ToLower(req.LabelFilterBehavior)
	if behavior == "" {
		behavior = strings.ToLower(req.LabelFilterAction)
	}
	if behavior == "" {
		behavior = "include"
	}
	if behavior != "include" && behavior != "exclude" {
		apiError(w, 400, "invalidArgument", "Invalid labelFilterBehavior: "+behavior)
		return
	}
	exp := s.now().Add(GmailWatchTTL)
	u.mb.watch = &gmailWatch{topic: req.TopicName, labelIDs: slices.Clone(req.LabelIds), behavior: behavior,
		expiration: exp, historyID: u.mb.historyID, clientID: c.tok.clientID}
	writeJSON(w, 200, &gmail.WatchResponse{HistoryId: u.mb.historyID, Expiration: exp.UnixMilli()})
}

func (s *Server) gmailStop(w http.ResponseWriter, r *http.Request) {
	c := s.beginAPI(w, r, "gmail.users.stop", gmailScopes)
	if c == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.gmailUser(w, r, c)
	if u == nil {
		return
	}
	u.mb.stopCalls++
	u.mb.watch = nil
	w.WriteHeader(http.StatusNoContent)
}

type pageCursor struct {
	After  uint64 `json:"a,omitempty"`
	Offset int    `json:"o,omitempty"`
	Seq    uint64 `json:"s,omitempty"`
}

func encodeCursor(c pageCursor) string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(s string) (pageCursor, bool) {
	var c pageCursor
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || json.Unmarshal(b, &c) != nil || c.Offset < 0 {
		return c, false
	}
	return c, true
}

func maxResults(r *http.Request, def, max int) (int, bool) {
	v := r.URL.Query().Get("maxResults")
	if v == "" {
		return def, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, false
	}
	if n == 0 {
		return def, true
	}
	if n > max {
		n = max
	}
	return n, true
}

func (s *Server) gmailHistory(w http.ResponseWriter, r *http.Request) {
	c := s.beginAPI(w, r, "gmail.users.history.list", gmailScopes)
	if c == nil {
		return
	}
	q := r.URL.Query()
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.gmailUser(w, r, c)
	if u == nil {
		return
	}
	mb := u.mb
	sv := q.Get("startHistoryId")
	if sv == "" {
		apiError(w, 400, "invalidArgument", "Missing required parameter: startHistoryId")
		return
	}
	start, err := strconv.ParseUint(sv, 10, 64)
	if err != nil {
		apiError(w, 400, "invalidArgument", "Invalid startHistoryId: "+sv)
		return
	}
	if start < mb.historyFloor {
		apiError(w, 404, "notFound", "Requested entity was not found.")
		return
	}
	limit, ok := maxResults(r, 100, 500)
	if !ok {
		apiError(w, 400, "invalidArgument", "Invalid maxResults")
		return
	}
	after := start
	if pt := q.Get("pageToken"); pt != "" {
		cur, ok := decodeCursor(pt)
		if !ok || cur.After < start {
			apiError(w, 400, "invalidArgument", "Invalid pageToken")
			return
		}
		after = cur.After
	}
	types := q["historyTypes"]
	for _, t := range types {
		switch t {
		case "messageAdded", "messageDeleted", "labelAdded", "labelRemoved":
		default:
			apiError(w, 400, "invalidArgument", "Invalid value for historyTypes: "+t)
			return
		}
	}
	labelID := q.Get("labelId")
	resp := &gmail.ListHistoryResponse{HistoryId: mb.historyID}
	for _, h := range mb.history {
		if h.id <= after {
			continue
		}
		if len(types) > 0 && !slices.Contains(types, "messageAdded") {
			continue
		}
		if labelID != "" && !slices.Contains(h.labelIDs, labelID) {
			continue
		}
		if len(resp.History) == limit {
			resp.NextPageToken = encodeCursor(pageCursor{After: resp.History[len(resp.History)-1].Id})
			break
		}
		ref := &gmail.Message{Id: h.msg.id, ThreadId: h.msg.threadID}
		resp.History = append(resp.History, &gmail.History{Id: h.id, Messages: []*gmail.Message{ref},
			MessagesAdded: []*gmail.HistoryMessageAdded{{Message: &gmail.Message{Id: h.msg.id, ThreadId: h.msg.threadID, LabelIds: h.labelIDs}}}})
	}
	writeJSON(w, 200, resp)
}

// messageQuery is the supported subset of Gmail search: after:/before: (epoch seconds or YYYY/MM/DD),
// newer_than:/older_than: (Nd, Nh), label:, in:, is:unread|read|starred, and free words matched in the raw
// message.
type messageQuery struct {
	after, before time.Time
	labels        []string
	notLabels     []string
	words         []string
}

func (s *Server) parseQuery(mb *mailbox, q string) (messageQuery, error) {
	var mq messageQuery
	for _, tok := range strings.Fields(q) {
		k, v, ok := strings.Cut(tok, ":")
		if !ok {
			mq.words = append(mq.words, strings.ToLower(tok))
			continue
		}
		switch strings.ToLower(k) {
		case "after", "before":
			t, err := parseQueryTime(v)
			if err != nil {
				return mq, err
			}
			if strings.ToLower(k) == "after" {
				mq.after = t
			} else {
				mq.before = t
			}
		case "newer_than", "older_than":
			d, err := parseRelative(v)
			if err != nil {
				return mq, err
			}
			if strings.ToLower(k) == "newer_than" {
				mq.after = s.now().Add(-d)
			} else {
				mq.before = s.now().Add(-d)
			}
		case "label", "in":
			id := strings.ToUpper(v)
			if l := mb.labelByName(v); l != nil {
				id = l.ID
			}
			mq.labels = append(mq.labels, id)
		case "is":
			switch strings.ToLower(v) {
			case "unread":
				mq.labels = append(mq.labels, "UNREAD")
			case "read":
				mq.notLabels = append(mq.notLabels, "UNREAD")
			case "starred":
				mq.labels = append(mq.labels, "STARRED")
			case "important":
				mq.labels = append(mq.labels, "IMPORTANT")
			}
		default:
			mq.words = append(mq.words, strings.ToLower(tok))
		}
	}
	return mq, nil
}

func parseQueryTime(v string) (time.Time, error) {
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		return time.Unix(n, 0), nil
	}
	for _, layout := range []string{"2006/01/02", "2006/1/2", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, v, time.UTC); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("invalid date %q", v)
}

func parseRelative(v string) (time.Duration, error) {
	if len(v) < 2 {
		return 0, fmt.Errorf("invalid period %q", v)
	}
	n, err := strconv.Atoi(v[:len(v)-1])
	if err != nil || n < 0 {
		return 0, fmt.Errorf("invalid period %q", v)
	}
	switch v[len(v)-1] {
	case 'd':
		return time.Duration(n) * 24 * time.Hour, nil
	case 'h':
		return time.Duration(n) * time.Hour, nil
	case 'm':
		return time.Duration(n) * 30 * 24 * time.Hour, nil
	case 'y':
		return time.Duration(n) * 365 * 24 * time.Hour, nil
	}
	return 0, fmt.Errorf("invalid period %q", v)
}

func (mq messageQuery) match(m *message) bool {
	// after: is inclusive of the given second, so a backfill from the last processed time loses nothing.
	if !mq.after.IsZero() && m.internalDate.Unix() < mq.after.Unix() {
		return false
	}
	if !mq.before.IsZero() && m.internalDate.Unix() >= mq.before.Unix() {
		return false
	}
	for _, l := range mq.labels {
		if !slices.Contains(m.labelIDs, l) {
			return false
		}
	}
	for _, l := range mq.notLabels {
		if slices.Contains(m.labelIDs, l) {
			return false
		}
	}
	if len(mq.words) > 0 {
		low := strings.ToLower(string(m.raw))
		for _, w := range mq.words {
			if !strings.Contains(low, w) {
				return false
			}
		}
	}
	return true
}

func (s *Server) gmailMessages(w http.ResponseWriter, r *http.Request) {
	c := s.beginAPI(w, r, "gmail.users.messages.list", gmailScopes)
	if c == nil {
		return
	}
	qv := r.URL.Query()
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.gmailUser(w, r, c)
	if u == nil {
		return
	}
	mq, err := s.parseQuery(u.mb, qv.Get("q"))
	if err != nil {
		apiError(w, 400, "invalidArgument", "Invalid query: "+err.Error())
		return
	}
	limit, ok := maxResults(r, 100, 500)
	if !ok {
		apiError(w, 400, "invalidArgument", "Invalid maxResults")
		return
	}
	offset := 0
	if pt := qv.Get("pageToken"); pt != "" {
		cur, ok := decodeCursor(pt)
		if !ok {
			apiError(w, 400, "invalidArgument", "Invalid pageToken")
			return
		}
		offset = cur.Offset
	}
	labelIDs := qv["labelIds"]
	spam := qv.Get("includeSpamTrash") == "true"
	var hits []*message
	for i := len(u.mb.order) - 1; i >= 0; i-- {
		m := u.mb.order[i]
		if !spam && (slices.Contains(m.labelIDs, "SPAM") || slices.Contains(m.labelIDs, "TRASH")) {
			continue
		}
		okLabels := true
		for _, l := range labelIDs {
			if !slices.Contains(m.labelIDs, l) {
				okLabels = false
			}
		}
		if okLabels && mq.match(m) {
			hits = append(hits, m)
		}
	}
	sort.SliceStable(hits, func(i, j int) bool { return hits[i].internalDate.After(hits[j].internalDate) })
	resp := &gmail.ListMessagesResponse{ResultSizeEstimate: int64(len(hits)), ForceSendFields: []string{"ResultSizeEstimate"}}
	if offset > len(hits) {
		offset = len(hits)
	}
	end := min(offset+limit, len(hits))
	for _, m := range hits[offset:end] {
		resp.Messages = append(resp.Messages, &gmail.Message{Id: m.id, ThreadId: m.threadID})
	}
	if end < len(hits) {
		resp.NextPageToken = encodeCursor(pageCursor{Offset: end})
	}
	writeJSON(w, 200, resp)
}

func (s *Server) gmailMessage(w http.ResponseWriter, r *http.Request) {
	c := s.beginAPI(w, r, "gmail.users.messages.get", gmailScopes)
	if c == nil {
		return
	}
	qv := r.URL.Query()
	s.mu.Lock()
	u := s.gmailUser(w, r, c)
	if u == nil {
		s.mu.Unlock()
		return
	}
	m := u.mb.messages[r.PathValue("id")]
	var mc message
	if m != nil {
		mc = *m
		mc.labelIDs = slices.Clone(m.labelIDs)
	}
	s.mu.Unlock()
	if m == nil {
		apiError(w, 404, "notFound", "Requested entity was not found.")
		return
	}
	format := qv.Get("format")
	if format == "" {
		format = "full"
	}
	out := &gmail.Message{Id: mc.id, ThreadId: mc.threadID, LabelIds: mc.labelIDs, HistoryId: mc.historyID,
		InternalDate: mc.internalDate.UnixMilli(), SizeEstimate: int64(len(mc.raw))}
	payload, snippet := parseMIME(mc.raw)
	out.Snippet = snippet
	switch format {
	case "raw":
		out.Raw = base64.URLEncoding.EncodeToString(mc.raw)
	case "full":
		out.Payload = payload
	case "metadata":
		want := qv["metadataHeaders"]
		p := &gmail.MessagePart{MimeType: payload.MimeType}
		for _, h := range payload.Headers {
			if len(want) == 0 || slices.ContainsFunc(want, func(x string) bool { return strings.EqualFold(x, h.Name) }) {
				p.Headers = append(p.Headers, h)
			}
		}
		out.Payload = p
	case "minimal":
	default:
		apiError(w, 400, "invalidArgument", "Invalid format: "+format)
		return
	}
	writeJSON(w, 200, out)
}

func (s *Server) gmailAttachment(w http.ResponseWriter, r *http.Request) {
	c := s.beginAPI(w, r, "gmail.users.messages.attachments.get", gmailScopes)
	if c == nil {
		return
	}
	s.mu.Lock()
	u := s.gmailUser(w, r, c)
	if u == nil {
		s.mu.Unlock()
		return
	}
	m := u.mb.messages[r.PathValue("id")]
	var raw []byte
	if m != nil {
		raw = m.raw
	}
	s.mu.Unlock()
	if m == nil {
		apiError(w, 404, "notFound", "Requested entity was not found.")
		return
	}
	_, res := parseMIMEFull(raw)
	if data, ok := res.attachments[r.PathValue("attachmentId")]; ok {
		writeJSON(w, 200, &gmail.MessagePartBody{AttachmentId: r.PathValue("attachmentId"), Data: base64.URLEncoding.EncodeToString(data), Size: int64(len(data))})
		return
	}
	apiError(w, 404, "notFound", "Requested entity was not found.")
}

// ---- MIME ----

type headerField struct{ name, value string }

// splitMessage splits raw into ordered, unfolded header fields and the body.
func splitMessage(raw []byte) ([]headerField, []byte) {
	var fields []headerField
	rest := raw
	for len(rest) > 0 {
		i := bytes.IndexByte(rest, '\n')
		var line []byte
		if i < 0 {
			line, rest = rest, nil
		} else {
			line, rest = rest[:i], rest[i+1:]
		}
		line = bytes.TrimRight(line, "\r")
		if len(line) == 0 {
			return fields, rest
		}
		if (line[0] == ' ' || line[0] == '\t') && len(fields) > 0 {
			fields[len(fields)-1].value += " " + strings.TrimSpace(string(line))
			continue
		}
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			// Not a header: treat everything from here as body.
			return fields, append(line, append([]byte("\n"), rest...)...)
		}
		fields = append(fields, headerField{strings.TrimSpace(string(k)), strings.TrimSpace(string(v))})
	}
	return fields, nil
}

func headerValue(fields []headerField, name string) string {
	for _, f := range fields {
		if strings.EqualFold(f.name, name) {
			return f.value
		}
	}
	return ""
}

func decodeBody(enc string, body []byte) []byte {
	switch strings.ToLower(strings.TrimSpace(enc)) {
	case "base64":
		clean := bytes.Map(func(r rune) rune {
			if r == '\r' || r == '\n' || r == ' ' || r == '\t' {
				return -1
			}
			return r
		}, body)
		out, err := base64.StdEncoding.DecodeString(string(clean))
		if err != nil {
			out, err = base64.RawStdEncoding.DecodeString(strings.TrimRight(string(clean), "="))
			if err != nil {
				return body
			}
		}
		return out
	case "quoted-printable":
		out, err := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(body)))
		if err != nil {
			return body
		}
		return out
	}
	return body
}

const maxMIMEDepth = 20

type mimeResult struct {
	snippet     string
	attachments map[string][]byte
}

// parseMIME renders a raw message as Gmail's payload part tree and returns a snippet.
func parseMIME(raw []byte) (*gmail.MessagePart, string) {
	p, res := parseMIMEFull(raw)
	return p, res.snippet
}

func parseMIMEFull(raw []byte) (*gmail.MessagePart, *mimeResult) {
	res := &mimeResult{attachments: map[string][]byte{}}
	p := buildPart("", raw, 0, res)
	return p, res
}

func buildPart(partID string, raw []byte, depth int, res *mimeResult) *gmail.MessagePart {
	fields, body := splitMessage(raw)
	p := &gmail.MessagePart{PartId: partID, Body: &gmail.MessagePartBody{}}
	for _, f := range fields {
		p.Headers = append(p.Headers, &gmail.MessagePartHeader{Name: f.name, Value: f.value})
	}
	ct := headerValue(fields, "Content-Type")
	if ct == "" {
		ct = "text/plain"
	}
	mediaType, params, err := mime.ParseMediaType(ct)
	if err != nil {
		mediaType, params = "text/plain", nil
	}
	p.MimeType = mediaType
	if cd := headerValue(fields, "Content-Disposition"); cd != "" {
		if _, dp, err := mime.ParseMediaType(cd); err == nil {
			p.Filename = dp["filename"]
		}
	}
	if p.Filename == "" && params["name"] != "" && !strings.HasPrefix(mediaType, "text/") {
		p.Filename = params["name"]
	}
	if strings.HasPrefix(mediaType, "multipart/") && params["boundary"] != "" && depth < maxMIMEDepth {
		mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
		for i := 0; ; i++ {
			part, err := mr.NextRawPart()
			if err != nil {
				break
			}
			var hb bytes.Buffer
			for _, k := range sortedKeys(part.Header) {
				for _, v := range part.Header[k] {
					fmt.Fprintf(&hb, "%s: %s\r\n", k, v)
				}
			}
			hb.WriteString("\r\n")
			data, _ := io.ReadAll(io.LimitReader(part, 50<<20))
			hb.Write(data)
			childID := strconv.Itoa(i)
			if partID != "" {
				childID = partID + "." + childID
			}
			p.Parts = append(p.Parts, buildPart(childID, hb.Bytes(), depth+1, res))
		}
		p.Body.ForceSendFields = []string{"Size"}
		return p
	}
	data := decodeBody(headerValue(fields, "Content-Transfer-Encoding"), body)
	p.Body.Size = int64(len(data))
	if p.Filename != "" {
		p.Body.AttachmentId = attachmentID(partID)
		res.attachments[p.Body.AttachmentId] = data
	} else {
		p.Body.Data = base64.URLEncoding.EncodeToString(data)
	}
	if res.snippet == "" && mediaType == "text/plain" && p.Filename == "" {
		res.snippet = makeSnippet(string(data))
	}
	return p
}

func attachmentID(partID string) string {
	return "ANGjdJ" + base64.RawURLEncoding.EncodeToString([]byte("part:"+partID))
}

func makeSnippet(text string) string {
	t := strings.Join(strings.Fields(text), " ")
	if r := []rune(t); len(r) > 100 {
		t = string(r[:100])
	}
	return t
}
