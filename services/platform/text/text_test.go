package text_test

import (
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/algapsa/alga-google/services/platform/text"
)

func TestClean(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"":                     "",
		"plain":                "plain",
		"a\x00b":               "ab",
		"\x00\x00":             "",
		"caf\xe9":              "caf\uFFFD", // Latin-1 é is not UTF-8
		"ok \xff\xfe\x00 end":  "ok \uFFFD end",
		"ünïcødé ✓":            "ünïcødé ✓",
		"half \xe2\x82 rune":   "half \uFFFD rune",
		"nul\x00 and \xc3\x28": "nul and \uFFFD(",
	} {
		got := text.Clean(in)
		require.Equal(t, want, got, "%q", in)
		require.True(t, utf8.ValidString(got))
		require.NotContains(t, got, "\x00")
	}
	require.Equal(t, []string{"ab", "\uFFFD"}, text.CleanAll([]string{"a\x00b", "\xff"}))
}

func TestCut(t *testing.T) {
	t.Parallel()
	s := "aé✓" // 1 + 2 + 3 bytes
	for n, want := range map[int]string{0: "", 1: "a", 2: "a", 3: "aé", 4: "aé", 5: "aé", 6: "aé✓", 100: "aé✓", -1: ""} {
		got, cut := text.Cut(s, n)
		require.Equal(t, want, got, "n=%d", n)
		require.Equal(t, n < len(s), cut, "n=%d", n)
	}
	got, cut := text.CleanCut("a\x00\xffbc", 4) // cleaned: "a\uFFFDbc" (6 bytes)
	require.Equal(t, "a\uFFFD", got)
	require.True(t, cut)
}

func FuzzClean(f *testing.F) {
	f.Add("a\x00\xff")
	f.Fuzz(func(t *testing.T, s string) {
		got := text.Clean(s)
		if !utf8.ValidString(got) {
			t.Fatalf("invalid UTF-8 from %q", s)
		}
		for i := 0; i < len(got); i++ {
			if got[i] == 0 {
				t.Fatalf("NUL kept from %q", s)
			}
		}
		if c, _ := text.Cut(got, len(got)/2); !utf8.ValidString(c) {
			t.Fatalf("cut split a rune of %q", got)
		}
	})
}
