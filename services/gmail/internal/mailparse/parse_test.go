package mailparse

import (
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
