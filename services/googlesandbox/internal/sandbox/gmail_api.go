package sandbox

// Gmail API (gmail/v1): users.getProfile, labels.list, watch, stop, history.list, messages.list (with the
// supported subset of search, messageQuery), messages.get and messages.attachments.get.
//
// Every call is authenticated by beginAPI (oauth_bearer.go) and acts only on the token's own mailbox ("me" or
// its address). Page tokens are opaque base64 JSON cursors (pageCursor). A startHistoryId older than the
// retained history is 404, as with Google, which tells a client to resync fully. messages.get and
// attachments.get parse the MIME after releasing s.mu.

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	gmail "google.golang.org/api/gmail/v1"

	"github.com/algapsa/alga-google/services/googlesandbox/internal/api"
)

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
