// Package mailparse turns a raw RFC 5322 message (Gmail's format=raw) into the fields the platform needs:
// headers, text and HTML bodies, attachment metadata and the threading headers. It wraps enmime, a real
// MIME parser, and never panics on hostile input.
package mailparse

import (
	"bytes"
	"fmt"
	"net/mail"
	"slices"
	"strings"
	"time"

	"github.com/jhillyerd/enmime/v2"

	"github.com/algapsa/alga-google/services/platform/text"
)

// DefaultMaxBody is the default cap of each stored body (text, HTML) in bytes; longer bodies are cut on
// a UTF-8 boundary and the message is marked truncated.
const DefaultMaxBody = 1 << 20

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
	// Truncated is set when a body was cut to the cap, a list to its share of MaxListBytes, or (by the
	// caller) the raw message.
	Truncated bool
}

var parser = enmime.NewParser(
	enmime.SkipMalformedParts(true),
	enmime.MaxStoredPartErrors(20),
	enmime.SetReadPartErrorPolicy(enmime.AllowCorruptTextPartErrorPolicy),
)

// Parse parses raw, keeping at most maxBody bytes of each body (DefaultMaxBody when maxBody <= 0).
// Malformed parts are skipped rather than failing the whole message (so a raw message the caller cut
// short still yields its headers and first parts); only input that has no parseable header block at all
// is an error. The caller bounds len(raw): the parser holds the decoded parts of all of it.
func Parse(raw []byte, maxBody int) (msg *Message, err error) {
	if maxBody <= 0 {
		maxBody = DefaultMaxBody
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
	}
	var cutText, cutHTML bool
	m.TextBody, cutText = text.CleanCut(env.Text, maxBody)
	m.HTMLBody, cutHTML = text.CleanCut(env.HTML, maxBody)
	m.Truncated = cutText || cutHTML
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
	if m.boundLists() {
		m.Truncated = true
	}
	return m, nil
}

// MaxListBytes bounds what a message stores in its lists — To, Cc, References and the attachment
// metadata, together — so that any mail's row fits the inbound feed's row bound beside two full bodies
// (the gmail target's header allowance). Each value is already bounded (MaxHeaderBytes), but their number is
// not: one To header of a hundred thousand addresses, or a message of as many tiny parts, would make a
// row no consumer could receive — a row that blocks its tenant's feed. Each list has its share (one
// list's flood never costs another its items); past it the list is cut and the message marked truncated.
const MaxListBytes = toBytes + ccBytes + referencesBytes + attachmentsBytes

const (
	toBytes          = 48 << 10
	ccBytes          = 32 << 10
	referencesBytes  = 16 << 10
	attachmentsBytes = 32 << 10
	// listItemOverhead is what a list item costs beyond its text (quotes, separators, JSON names).
	listItemOverhead = 16
	// attachmentOverhead is what an attachment's metadata costs beyond its strings (size, flags, names).
	attachmentOverhead = 64
)

// boundLists cuts To, Cc, References and Attachments to their shares of MaxListBytes and reports
// whether anything was cut. References keep their first id (the thread's root) and then as many of the
// most recent (the parent's end of the chain) as fit.
func (m *Message) boundLists() bool {
	cut := false
	prefix := func(n int, size func(i int) int, budget int) int {
		for i := range n {
			if budget -= size(i) + listItemOverhead; budget < 0 {
				cut = true
				return i
			}
		}
		return n
	}
	m.To = m.To[:prefix(len(m.To), func(i int) int { return len(m.To[i]) }, toBytes)]
	m.Cc = m.Cc[:prefix(len(m.Cc), func(i int) int { return len(m.Cc[i]) }, ccBytes)]
	if refs := m.References; len(refs) > 1 {
		// The root, then the newest backwards: count from the end with the root's cost taken first.
		rest := slices.Clone(refs[1:])
		slices.Reverse(rest)
		n := prefix(len(rest), func(i int) int { return len(rest[i]) }, referencesBytes-len(refs[0])-listItemOverhead)
		recent := rest[:n]
		slices.Reverse(recent)
		m.References = append([]string{refs[0]}, recent...)
	}
	m.Attachments = m.Attachments[:prefix(len(m.Attachments), func(i int) int {
		a := m.Attachments[i]
		return len(a.Filename) + len(a.ContentType) + len(a.ContentID) + attachmentOverhead
	}, attachmentsBytes)]
	return cut
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

// MaxHeaderBytes bounds each stored header value (and each list item).
const MaxHeaderBytes = 8192

// clean makes a header value safe to store: valid UTF-8, no NULs, trimmed, bounded.
func clean(s string) string {
	s, _ = text.CleanCut(strings.TrimSpace(s), MaxHeaderBytes)
	return strings.TrimSpace(s)
}
