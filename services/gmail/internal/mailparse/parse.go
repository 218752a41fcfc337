// Package mailparse turns a raw RFC 5322 message (Gmail's format=raw) into the fields the platform needs:
// headers, text and HTML bodies, attachment metadata and the threading headers. It wraps enmime, a real
// MIME parser, and never panics on hostile input.
package mailparse

import (
	"bytes"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jhillyerd/enmime/v2"
)

// MaxRawSize is the largest raw message accepted (Gmail's own limit is 25 MB for received mail, plus encoding).
const MaxRawSize = 48 << 20

// maxBody caps each stored body (text, HTML); longer bodies are truncated at a rune boundary.
const maxBody = 4 << 20

// Attachment is the metadata of one attachment or inline part (content is not kept).
type Attachment struct {
	Filename    string `json:"filename"`
	ContentType string `json:"content_type"`
	Size        int64  `json:"size"`
	ContentID   string `json:"content_id,omitempty"`
	Inline      bool   `json:"inline,omitempty"`
}

// Message is a parsed email.
type Message struct {
	MessageID   string
	InReplyTo   string
	References  []string
	From        string
	To          []string
	Cc          []string
	Subject     string
	Date        time.Time
	TextBody    string
	HTMLBody    string
	Attachments []Attachment
}

// ErrTooLarge is returned for messages over MaxRawSize.
var ErrTooLarge = errors.New("message too large")

var parser = enmime.NewParser(
	enmime.SkipMalformedParts(true),
	enmime.MaxStoredPartErrors(20),
	enmime.SetReadPartErrorPolicy(enmime.AllowCorruptTextPartErrorPolicy),
)

// Parse parses raw. Malformed parts are skipped rather than failing the whole message; only input that
// has no parseable header block at all is an error.
func Parse(raw []byte) (msg *Message, err error) {
	if len(raw) > MaxRawSize {
		return nil, ErrTooLarge
	}
	defer func() {
		// A parser bug must never take the sync worker down with it.
		if r := recover(); r != nil {
			msg, err = nil, fmt.Errorf("parsing MIME: %v", r)
		}
	}()
	env, err := parser.ReadEnvelope(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("parsing MIME: %w", err)
	}
	m := &Message{
		MessageID:  cleanID(env.GetHeader("Message-ID")),
		InReplyTo:  firstID(env.GetHeader("In-Reply-To")),
		References: ids(env.GetHeader("References")),
		From:       addressOrRaw(env, "From"),
		To:         addressList(env, "To"),
		Cc:         addressList(env, "Cc"),
		Subject:    clean(env.GetHeader("Subject")),
		TextBody:   truncate(env.Text),
		HTMLBody:   truncate(env.HTML),
	}
	if d, err := env.Date(); err == nil {
		m.Date = d.UTC()
	}
	for _, p := range env.Attachments {
		m.Attachments = append(m.Attachments, attachment(p, false))
	}
	for _, p := range env.Inlines {
		m.Attachments = append(m.Attachments, attachment(p, true))
	}
	for _, p := range env.OtherParts {
		if p.FileName != "" {
			m.Attachments = append(m.Attachments, attachment(p, p.Disposition == "inline"))
		}
	}
	return m, nil
}

func attachment(p *enmime.Part, inline bool) Attachment {
	return Attachment{
		Filename:    clean(p.FileName),
		ContentType: clean(p.ContentType),
		Size:        int64(len(p.Content)),
		ContentID:   cleanID(p.ContentID),
		Inline:      inline,
	}
}

func addressOrRaw(env *enmime.Envelope, key string) string {
	list, err := env.AddressList(key)
	if err == nil && len(list) > 0 {
		return formatAddress(list[0])
	}
	return clean(env.GetHeader(key))
}

func addressList(env *enmime.Envelope, key string) []string {
	list, err := env.AddressList(key)
	if err != nil {
		if raw := clean(env.GetHeader(key)); raw != "" {
			return []string{raw}
		}
		return nil
	}
	out := make([]string, 0, len(list))
	for _, a := range list {
		out = append(out, formatAddress(a))
	}
	return out
}

func formatAddress(a *mail.Address) string {
	if a.Name == "" {
		return clean(a.Address)
	}
	return clean((&mail.Address{Name: a.Name, Address: a.Address}).String())
}

// ids extracts every <id> of a References-style header, in order, without duplicates.
func ids(h string) []string {
	var out []string
	seen := map[string]bool{}
	for {
		i := strings.IndexByte(h, '<')
		if i < 0 {
			break
		}
		j := strings.IndexByte(h[i:], '>')
		if j < 0 {
			break
		}
		id := clean(h[i : i+j+1])
		h = h[i+j+1:]
		if len(id) > 2 && !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	if len(out) == 0 {
		for _, f := range strings.Fields(h) {
			if f = clean(f); f != "" && !seen[f] {
				seen[f] = true
				out = append(out, f)
			}
		}
	}
	return out
}

func firstID(h string) string {
	if l := ids(h); len(l) > 0 {
		return l[0]
	}
	return ""
}

func cleanID(h string) string {
	if id := firstID(h); id != "" {
		return id
	}
	return clean(h)
}

// clean makes a header value safe to store: valid UTF-8, no NULs, trimmed, bounded.
func clean(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.ReplaceAll(s, "\x00", "")
	s = strings.TrimSpace(s)
	if len(s) > 8192 {
		s = cut(s, 8192)
	}
	return s
}

func truncate(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.ReplaceAll(s, "\x00", "")
	if len(s) > maxBody {
		s = cut(s, maxBody)
	}
	return s
}

func cut(s string, n int) string {
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
