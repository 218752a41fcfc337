// Package text makes strings that come from outside (Google's APIs, mail, request fields) safe to store
// in PostgreSQL text columns: PostgreSQL refuses a NUL byte and invalid UTF-8 in text, so one such value
// would fail its whole transaction — and a sync that stores it would fail again on every retry.
// Every path that stores outside text passes it through Clean (or Cut, when it is also bounded).
package text

import (
	"strings"
	"unicode/utf8"
)

// Clean returns s without NUL bytes and with every invalid UTF-8 sequence replaced by U+FFFD. A valid
// string without NULs is returned as is (no allocation).
func Clean(s string) string {
	if utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "")
}

// CleanAll returns a copy of list with every element cleaned (nil for nil).
func CleanAll(list []string) []string {
	if list == nil {
		return nil
	}
	out := make([]string, len(list))
	for i, s := range list {
		out[i] = Clean(s)
	}
	return out
}

// Cut returns the longest prefix of s of at most n bytes that ends on a UTF-8 character boundary, and
// whether anything was cut off.
func Cut(s string, n int) (string, bool) {
	if len(s) <= n {
		return s, false
	}
	if n < 0 {
		n = 0
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n], true
}

// CleanCut is Clean then Cut: the stored form of a bounded outside value.
func CleanCut(s string, n int) (string, bool) {
	return Cut(Clean(s), n)
}
