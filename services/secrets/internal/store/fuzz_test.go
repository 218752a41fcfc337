package store_test

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	secretsv1 "github.com/algapsa/alga-google/gen/alga/secrets/v1"
)

var namePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,127}$`)

// FuzzValidateName checks the hand-written name validator against the documented pattern and that
// nothing path-like or unprintable ever passes (names become file names in the filesystem backend).
func FuzzValidateName(f *testing.F) {
	for _, seed := range []string{
		"google_client_secret", "google_service_account_key", "a", "0", "a-b_c", strings.Repeat("a", 128),
		strings.Repeat("a", 129), "", "-a", "_a", "A", "a/b", "../x", "..", ".", "a\\b", "a\x00b", "a b",
		"ü", "a\n", "/etc/passwd", "a..b", "%2e%2e", "a:b",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, name string) {
		err := secretsv1.ValidateName("names[0]", name)
		if want := namePattern.MatchString(name); want != (err == nil) {
			t.Fatalf("ValidateName(%q) = %v, pattern match = %v", name, err, want)
		}
		if err != nil {
			var fe *secretsv1.FieldError
			if !errors.As(err, &fe) || fe.Field != "names[0]" || fe.GRPCStatus().Code() != 3 {
				t.Fatalf("ValidateName(%q) = %#v: want an InvalidArgument FieldError naming names[0]", name, err)
			}
			return
		}
		if strings.ContainsAny(name, "/\\.\x00") || name != strings.TrimSpace(name) {
			t.Fatalf("path-like name %q passed", name)
		}
	})
}
