package sandbox

import (
	"testing"
)

func FuzzParseMIME(f *testing.F) {
	f.Add([]byte("Subject: x\r\n\r\nbody"))
	f.Add([]byte("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b--\r\n"))
	f.Add([]byte("Content-Type: multipart/alternative; boundary=\"a\"\r\n\r\n--a\r\nContent-Type: multipart/mixed; boundary=c\r\n\r\n--c\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!\r\n--c--\r\n--a--"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		p, _ := parseMIME(raw)
		if p == nil {
			t.Fatal("nil payload")
		}
	})
}

func FuzzCursors(f *testing.F) {
	f.Add("eyJhIjoxfQ")
	f.Add("CPeyJjIjoiYSJ9")
	f.Fuzz(func(t *testing.T, s string) {
		_, _ = decodeCursor(s)
		_, _ = decodeSync(s)
		_, _ = parseQueryTime(s)
		_, _ = parseRelative(s)
	})
}
