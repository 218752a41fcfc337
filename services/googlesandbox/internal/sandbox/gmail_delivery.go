package sandbox

// Mail delivery for the admin API: stores a message in a mailbox (building a plain-text RFC 822 message when no
// raw one is given), records it in the history and publishes the Gmail push notification to the watch's
// Pub/Sub topic.
//
// As with Google, a notification needs a live watch whose label filter matches, goes out at most once per
// NotificationInterval per mailbox (later messages are left to the history a client fetches), and requires
// GmailPushAccount to be allowed to publish on the topic.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"mime"
	"net/mail"
	"slices"
	"strings"
	"time"

	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"

	"github.com/algapsa/alga-google/services/googlesandbox/internal/api"
)

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
