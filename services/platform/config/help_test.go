package config

import (
	"bytes"
	"flag"
	"testing"
)

// A string setting's environment value (a key, a URL with a password) is used but never shown by --help.
func TestHelpNeverShowsAStringSettingsEnvironmentValue(t *testing.T) {
	t.Setenv("ALGA_TEST_SECRET_SETTING", "s3cret-value")
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	b := NewBinder(fs)
	var v string
	b.String(&v, "test-secret", "ALGA_TEST_SECRET_SETTING", "declared", "a secret setting")
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if v != "s3cret-value" {
		t.Fatalf("value = %q, want the environment's", v)
	}
	var help bytes.Buffer
	fs.SetOutput(&help)
	fs.PrintDefaults()
	if bytes.Contains(help.Bytes(), []byte("s3cret-value")) {
		t.Fatalf("--help shows the environment value:\n%s", help.String())
	}
	if !bytes.Contains(help.Bytes(), []byte(`"declared"`)) {
		t.Fatalf("--help does not show the declared default:\n%s", help.String())
	}
	// A flag still wins over the environment.
	if err := fs.Parse([]string{"-test-secret", "from-flag"}); err != nil || v != "from-flag" {
		t.Fatalf("flag: %q, %v", v, err)
	}
}
