package oauthv1

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/algapsa/alga-google/gen/validation"
)

// FuzzClientID feeds pasted OAuth client ids to the cleaner and validator: cleaning is idempotent, an
// accepted id has Google's shape (checked here by hand, not with the validator's own regexp) and only
// ASCII, and a refused one is a FieldError naming the field — never a panic, never another error type.
func FuzzClientID(f *testing.F) {
	for _, s := range []string{
		"1234567890-abc123def456.apps.googleusercontent.com",
		"  1234567890-abc_DEF-9.apps.googleusercontent.com\n",
		"\u200b1234567890-abc.apps.googleusercontent.com\ufeff",
		"1234567890-abc.apps.googleusercontent.com.evil.test",
		"-abc.apps.googleusercontent.com", "1234567890-.apps.googleusercontent.com",
		"1234567890-abc.apps.googleusercontent.co", "1234567890-ab c.apps.googleusercontent.com",
		"１２３-abc.apps.googleusercontent.com", "1234567890-abc.apps.googleusercontent.com\x00",
		"", " ", "\xff", strings.Repeat("1", 300) + "-a.apps.googleusercontent.com",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		c := CleanClientID(raw)
		if CleanClientID(c) != c {
			t.Fatalf("cleaning is not idempotent: %q → %q → %q", raw, c, CleanClientID(c))
		}
		err := validateClientID("gmail_client_id", &raw)
		if err == nil {
			if !googleShape(c) {
				t.Fatalf("accepted %q (cleaned %q), which is not NUMBER-ID.apps.googleusercontent.com", raw, c)
			}
			return
		}
		var fe *validation.FieldError
		if !errors.As(err, &fe) || fe.Field != "gmail_client_id" {
			t.Fatalf("refusal is not a FieldError naming the field: %#v", err)
		}
		if !utf8.ValidString(fe.Error()) {
			t.Fatalf("the message is not valid UTF-8: %q", fe.Error())
		}
		if googleShape(c) && len(c) <= maxClientID {
			t.Fatalf("refused a well-formed id %q", c)
		}
	})
}

// googleShape is NUMBER-ID.apps.googleusercontent.com: ASCII digits, '-', then [A-Za-z0-9_-]+.
func googleShape(s string) bool {
	rest, ok := strings.CutSuffix(s, ".apps.googleusercontent.com")
	if !ok {
		return false
	}
	num, id, ok := strings.Cut(rest, "-")
	if !ok || num == "" || id == "" {
		return false
	}
	for i := 0; i < len(num); i++ {
		if num[i] < '0' || num[i] > '9' {
			return false
		}
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
