// Package push parses and authenticates Gmail Pub/Sub push deliveries: the JSON envelope Pub/Sub POSTs,
// the Gmail notification inside it, and the Google-signed OIDC token in its Authorization header.
package push

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/mail"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// MaxBody is the largest envelope accepted.
const MaxBody = 256 << 10

// Envelope is one Pub/Sub push delivery carrying a Gmail notification.
type Envelope struct {
	Subscription string
	MessageID    string
	PublishTime  time.Time
	// EmailAddress is the mailbox the notification is for, lowercased.
	EmailAddress string
	HistoryID    uint64
}

// ErrMalformed marks an envelope that cannot be processed (answered 400).
var ErrMalformed = errors.New("malformed push envelope")

type rawEnvelope struct {
	Message *struct {
		Data         string `json:"data"`
		MessageID    string `json:"messageId"`
		MessageIDAlt string `json:"message_id"`
		PublishTime  string `json:"publishTime"`
	} `json:"message"`
	Subscription string `json:"subscription"`
}

type rawNotification struct {
	EmailAddress string          `json:"emailAddress"`
	HistoryID    json.RawMessage `json:"historyId"`
}

var subscriptionName = regexp.MustCompile(`^projects/[a-z][a-z0-9-]{4,28}[a-z0-9]/subscriptions/[A-Za-z][A-Za-z0-9._~+%-]{2,254}$`)

// ParseEnvelope parses and validates a push body.
func ParseEnvelope(body []byte) (*Envelope, error) {
	if len(body) == 0 || len(body) > MaxBody {
		return nil, fmt.Errorf("%w: empty or too large", ErrMalformed)
	}
	var raw rawEnvelope
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if raw.Message == nil {
		return nil, fmt.Errorf("%w: no message", ErrMalformed)
	}
	if !subscriptionName.MatchString(raw.Subscription) {
		return nil, fmt.Errorf("%w: bad subscription name", ErrMalformed)
	}
	id := raw.Message.MessageID
	if id == "" {
		id = raw.Message.MessageIDAlt
	}
	if id == "" || len(id) > 128 || strings.ContainsFunc(id, func(r rune) bool { return r < 0x21 || r > 0x7e }) {
		return nil, fmt.Errorf("%w: bad messageId", ErrMalformed)
	}
	data, err := base64.StdEncoding.DecodeString(raw.Message.Data)
	if err != nil {
		if data, err = base64.URLEncoding.DecodeString(raw.Message.Data); err != nil {
			return nil, fmt.Errorf("%w: message.data is not base64", ErrMalformed)
		}
	}
	var n rawNotification
	if err := json.Unmarshal(data, &n); err != nil {
		return nil, fmt.Errorf("%w: message.data is not a Gmail notification", ErrMalformed)
	}
	addr, err := mail.ParseAddress(n.EmailAddress)
	if err != nil || addr.Name != "" || addr.Address != strings.TrimSpace(n.EmailAddress) || len(addr.Address) > 254 {
		return nil, fmt.Errorf("%w: bad emailAddress", ErrMalformed)
	}
	hid, err := parseHistoryID(n.HistoryID)
	if err != nil {
		return nil, fmt.Errorf("%w: bad historyId", ErrMalformed)
	}
	env := &Envelope{
		Subscription: raw.Subscription,
		MessageID:    id,
		EmailAddress: strings.ToLower(addr.Address),
		HistoryID:    hid,
	}
	if raw.Message.PublishTime != "" {
		if t, err := time.Parse(time.RFC3339Nano, raw.Message.PublishTime); err == nil {
			env.PublishTime = t.UTC()
		}
	}
	return env, nil
}

// parseHistoryID accepts a JSON number or string (Gmail sends a number; some tools send strings).
func parseHistoryID(raw json.RawMessage) (uint64, error) {
	s := strings.Trim(strings.TrimSpace(string(raw)), `"`)
	v, err := strconv.ParseUint(s, 10, 63)
	if err != nil || v == 0 {
		return 0, errors.New("historyId must be a positive integer")
	}
	return v, nil
}
