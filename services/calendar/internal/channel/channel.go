// Package channel holds the security-relevant parts of Calendar push channels: the channel token (an
// HMAC over tenant, provider and channel id with a server key, compared in constant time) and the parsing
// and validation of the X-Goog-* headers of a notification.
package channel

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// tokenPrefix versions the token format so the key or the construction can change later.
const tokenPrefix = "v1."

// keyLabel derives the channel key from the service key when no dedicated key is configured.
const keyLabel = "alga-google/calendar/channel-token/v1"

// Keyring computes and checks channel tokens.
type Keyring struct{ key []byte }

// NewKeyring returns a keyring for the configured channel key, or (when empty) for a key derived from the
// service key with HMAC-SHA256 under a fixed label. Keys shorter than 32 bytes are refused.
func NewKeyring(channelKey string, serviceKey []byte) (*Keyring, error) {
	if channelKey != "" {
		if len(channelKey) < 32 {
			return nil, errors.New("ALGA_CALENDAR_CHANNEL_KEY must be at least 32 bytes")
		}
		return &Keyring{key: []byte(channelKey)}, nil
	}
	if len(serviceKey) < 32 {
		return nil, errors.New("calendar: no channel key: set ALGA_CALENDAR_CHANNEL_KEY or a service token key of at least 32 bytes")
	}
	m := hmac.New(sha256.New, serviceKey)
	m.Write([]byte(keyLabel))
	return &Keyring{key: m.Sum(nil)}, nil
}

func (k *Keyring) mac(tenant, providerID, channelID string) []byte {
	m := hmac.New(sha256.New, k.key)
	// Length-prefixed fields: no two different triples share an input.
	for _, f := range []string{tenant, providerID, channelID} {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(f)))
		m.Write(n[:])
		m.Write([]byte(f))
	}
	return m.Sum(nil)
}

// Token returns the channel token Google echoes in X-Goog-Channel-Token.
func (k *Keyring) Token(tenant, providerID, channelID string) string {
	return tokenPrefix + base64.RawURLEncoding.EncodeToString(k.mac(tenant, providerID, channelID))
}

// Verify reports whether token is the token of (tenant, provider, channel), in constant time.
func (k *Keyring) Verify(tenant, providerID, channelID, token string) bool {
	raw, ok := strings.CutPrefix(token, tokenPrefix)
	if !ok {
		return false
	}
	// Strict: the one spelling Token produces. Lenient decoding ignores the last character's unused
	// bits, so a second spelling of the same MAC would verify too.
	got, err := base64.RawURLEncoding.Strict().DecodeString(raw)
	if err != nil {
		return false
	}
	return hmac.Equal(got, k.mac(tenant, providerID, channelID))
}

// Resource states Google sends.
const (
	StateSync      = "sync"
	StateExists    = "exists"
	StateNotExists = "not_exists"
)

// Limits of header values (Google's channel ids and tokens are at most 64 and 256 characters).
const (
	MaxChannelID  = 64
	MaxToken      = 256
	MaxResourceID = 256
	MaxHeader     = 2048
)

// Headers are the X-Goog-* headers of one notification as received.
type Headers struct {
	ChannelID, Token, ResourceID, ResourceState, ResourceURI, MessageNumber, ChannelExpiration string
}

// Notification is a validated notification.
type Notification struct {
	ChannelID     string
	Token         string // may be empty: a missing token is refused after the channel is found
	ResourceID    string
	ResourceState string
	ResourceURI   string
	MessageNumber int64
	// Expiration is zero when the header is absent or unparsable (it is informational only).
	Expiration time.Time
}

// ErrMalformed wraps every parse failure (the webhook answers 400).
var ErrMalformed = errors.New("malformed notification")

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// Parse validates the headers of a notification.
func Parse(h Headers) (Notification, error) {
	var n Notification
	id := strings.TrimSpace(h.ChannelID)
	switch {
	case id == "":
		return n, malformed("X-Goog-Channel-ID is missing")
	case len(id) > MaxChannelID || !printable(id):
		return n, malformed("X-Goog-Channel-ID is invalid")
	}
	if len(h.Token) > MaxToken || !printable(h.Token) {
		return n, malformed("X-Goog-Channel-Token is invalid")
	}
	rid := strings.TrimSpace(h.ResourceID)
	if rid == "" {
		return n, malformed("X-Goog-Resource-ID is missing")
	}
	if len(rid) > MaxResourceID || !printable(rid) {
		return n, malformed("X-Goog-Resource-ID is invalid")
	}
	state := strings.TrimSpace(h.ResourceState)
	switch state {
	case StateSync, StateExists, StateNotExists:
	case "":
		return n, malformed("X-Goog-Resource-State is missing")
	default:
		return n, malformed("X-Goog-Resource-State %q is not sync, exists or not_exists", truncate(state))
	}
	num := strings.TrimSpace(h.MessageNumber)
	if num == "" {
		return n, malformed("X-Goog-Message-Number is missing")
	}
	if len(num) > 19 {
		return n, malformed("X-Goog-Message-Number is out of range")
	}
	for i := 0; i < len(num); i++ {
		if num[i] < '0' || num[i] > '9' {
			return n, malformed("X-Goog-Message-Number is not a number")
		}
	}
	mn, err := strconv.ParseInt(num, 10, 64)
	if err != nil || mn < 1 {
		return n, malformed("X-Goog-Message-Number is out of range")
	}
	if len(h.ResourceURI) > MaxHeader || !printable(h.ResourceURI) {
		return n, malformed("X-Goog-Resource-URI is invalid")
	}
	n = Notification{ChannelID: id, Token: h.Token, ResourceID: rid, ResourceState: state,
		ResourceURI: h.ResourceURI, MessageNumber: mn}
	if exp := strings.TrimSpace(h.ChannelExpiration); exp != "" && len(exp) <= 64 {
		// Google sends RFC 1123 with a zone name, e.g. "Tue, 19 Nov 2013 01:13:52 GMT".
		if t, err := time.Parse(time.RFC1123, exp); err == nil {
			n.Expiration = t
		}
	}
	return n, nil
}

func truncate(s string) string {
	if len(s) > 32 {
		return s[:32] + "…"
	}
	return s
}
