package mailparse

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

const multipart = "From: \"Alice Example\" <alice@example.com>\r\n" +
	"To: support@acme.test, \"Bob\" <bob@acme.test>\r\n" +
	"Cc: carol@example.com\r\n" +
	"Subject: =?UTF-8?B?SGVsbG8g4pyT?=\r\n" +
	"Date: Mon, 02 Jan 2006 15:04:05 -0700\r\n" +
	"Message-ID: <msg-2@example.com>\r\n" +
	"In-Reply-To: <msg-1@example.com>\r\n" +
	"References: <msg-0@example.com> <msg-1@example.com>\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: multipart/mixed; boundary=\"outer\"\r\n" +
	"\r\n" +
	"--outer\r\n" +
	"Content-Type: multipart/alternative; boundary=\"inner\"\r\n" +
	"\r\n" +
	"--inner\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n" +
	"\r\n" +
	"Plain body\r\n" +
	"--inner\r\n" +
	"Content-Type: text/html; charset=utf-8\r\n" +
	"\r\n" +
	"<p>HTML body</p>\r\n" +
	"--inner--\r\n" +
	"--outer\r\n" +
	"Content-Type: application/pdf; name=\"report.pdf\"\r\n" +
	"Content-Disposition: attachment; filename=\"report.pdf\"\r\n" +
	"Content-Transfer-Encoding: base64\r\n" +
	"\r\n" +
	"JVBERi0xLjQK\r\n" +
	"--outer--\r\n"

func TestParseMultipart(t *testing.T) {
	t.Parallel()
	m, err := Parse([]byte(multipart), 0)
	require.NoError(t, err)
	require.Equal(t, "<msg-2@example.com>", m.MessageID)
	require.Equal(t, "<msg-1@example.com>", m.InReplyTo)
	require.Equal(t, []string{"<msg-0@example.com>", "<msg-1@example.com>"}, m.References)
	require.Equal(t, `"Alice Example" <alice@example.com>`, m.From)
	require.Equal(t, []string{"support@acme.test", `"Bob" <bob@acme.test>`}, m.To)
	require.Equal(t, []string{"carol@example.com"}, m.Cc)
	require.Equal(t, "Hello ✓", m.Subject)
	require.Equal(t, "Plain body", strings.TrimSpace(m.TextBody))
	require.Contains(t, m.HTMLBody, "<p>HTML body</p>")
	require.Len(t, m.Attachments, 1)
	require.Equal(t, Attachment{Filename: "report.pdf", ContentType: "application/pdf", Size: 9}, m.Attachments[0])
	require.Equal(t, 2006, m.Date.Year())
}

func TestParseTextOnlyAndGarbage(t *testing.T) {
	t.Parallel()
	m, err := Parse([]byte("Subject: hi\r\n\r\nbody\r\n"), 0)
	require.NoError(t, err)
	require.Equal(t, "hi", m.Subject)
	require.Equal(t, "body", strings.TrimSpace(m.TextBody))
	require.False(t, m.Truncated)
}

// Bodies over the cap are cut on a UTF-8 boundary and the message is marked truncated; NULs and invalid
// UTF-8 never reach the stored bodies.
func TestBodiesAreCappedAndCleaned(t *testing.T) {
	t.Parallel()
	body := strings.Repeat("é", 100) // 200 bytes
	raw := "Subject: big\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n" +
		"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + body + "\r\n" +
		"--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>a\x00b</p>\r\n--b--\r\n"
	m, err := Parse([]byte(raw), 51)
	require.NoError(t, err)
	require.True(t, m.Truncated)
	require.Equal(t, strings.Repeat("é", 25), m.TextBody, "cut at 50 bytes, not inside a rune")
	require.Equal(t, "<p>ab</p>", strings.TrimSpace(m.HTMLBody))

	m, err = Parse([]byte(raw), 1<<20)
	require.NoError(t, err)
	require.False(t, m.Truncated)
	require.Equal(t, body, strings.TrimSpace(m.TextBody))
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(multipart))
	f.Add([]byte("Subject: hi\r\n\r\nbody"))
	f.Add([]byte("Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: text/plain\r\n\r\na\r\n--x"))
	f.Add([]byte("References: <a> <a> b\r\nIn-Reply-To: junk\r\n\r\n"))
	f.Add([]byte("\x00\xff\xfe"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, err := Parse(raw, 64)
		if err != nil {
			return
		}
		for _, s := range append([]string{m.MessageID, m.InReplyTo, m.From, m.Subject, m.TextBody, m.HTMLBody}, m.References...) {
			if !utf8.ValidString(s) || strings.ContainsRune(s, 0) || (len(s) > 64 && (s == m.TextBody || s == m.HTMLBody)) {
				t.Fatalf("unsafe string %q", s)
			}
		}
	})
}

// listBytes is what a message's lists store (as boundLists counts it).
func listBytes(m *Message) int {
	n := 0
	for _, l := range [][]string{m.To, m.Cc, m.References} {
		for _, s := range l {
			n += len(s) + listItemOverhead
		}
	}
	for _, a := range m.Attachments {
		n += len(a.Filename) + len(a.ContentType) + len(a.ContentID) + attachmentOverhead + listItemOverhead
	}
	return n
}

// A To header of 50,000 addresses and a References header of 20,000 ids — anyone can send one — would
// make a row larger than the inbound feed can deliver; they are cut to MaxListBytes together, the
// thread's root and most recent references kept, and the message marked truncated.
func TestHugeHeaderListsAreBounded(t *testing.T) {
	t.Parallel()
	var to, refs strings.Builder
	for i := range 50000 {
		if i > 0 {
			to.WriteString(", ")
		}
		fmt.Fprintf(&to, "user%d@example.com", i)
	}
	for i := range 20000 {
		fmt.Fprintf(&refs, " <ref-%d@example.com>", i)
	}
	raw := "From: a@example.com\r\nTo: " + to.String() + "\r\nCc: c@example.com\r\nReferences:" + refs.String() +
		"\r\nSubject: big\r\nMessage-ID: <m@example.com>\r\n\r\nbody\r\n"
	m, err := Parse([]byte(raw), 0)
	require.NoError(t, err)
	require.True(t, m.Truncated)
	require.LessOrEqual(t, listBytes(m), MaxListBytes)
	require.Greater(t, len(m.To), 1000, "as many as fit are kept")
	require.Equal(t, "user0@example.com", m.To[0])
	require.Equal(t, []string{"c@example.com"}, m.Cc, "a flood of To costs Cc nothing")
	require.Equal(t, "<ref-0@example.com>", m.References[0], "the thread's root")
	require.Equal(t, "body", strings.TrimSpace(m.TextBody))

	raw = "From: a@example.com\r\nTo: b@example.com\r\nReferences:" + refs.String() + "\r\nSubject: refs\r\n\r\nbody\r\n"
	m, err = Parse([]byte(raw), 0)
	require.NoError(t, err)
	require.True(t, m.Truncated)
	require.LessOrEqual(t, listBytes(m), MaxListBytes)
	require.Equal(t, "<ref-0@example.com>", m.References[0], "the thread's root")
	require.Equal(t, "<ref-19999@example.com>", m.References[len(m.References)-1], "the most recent")
	require.Less(t, len(m.References), 20000)

	m, err = Parse([]byte(multipart), 0)
	require.NoError(t, err)
	require.False(t, m.Truncated, "an ordinary message is not cut")
	require.Len(t, m.References, 2)
}
