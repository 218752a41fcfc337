package sandbox

// Gmail mailbox model: users, mailboxes, messages, labels and the history log with its retention window
// (HistoryRetention on the sandbox clock). Delivery is gmail_delivery.go, the Gmail API gmail_api.go and MIME
// parsing gmail_mime.go.

import (
	"slices"
	"strconv"
	"strings"
	"time"

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
