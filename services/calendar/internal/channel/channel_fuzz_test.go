package channel

import (
	"strings"
	"testing"
)

// FuzzToken: the channel token Google echoes back is outside input. The token of (tenant, provider,
// channel) verifies for exactly that triple; any other presented token (fuzzed) or another triple does
// not, whatever the bytes.
func FuzzToken(f *testing.F) {
	k, err := NewKeyring("", []byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		f.Fatal(err)
	}
	good := k.Token("t", "p", "c")
	// The same MAC spelled differently: the last character's two unused bits flipped.
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	sibling := good[:len(good)-1] + string(alphabet[strings.IndexByte(alphabet, good[len(good)-1])^1])
	f.Add("t", "p", "c", sibling)
	for _, s := range []string{good, good[:len(good)-1], good + "A", "v1.", "", "v1.\xff", "V1." + good[3:], good + "="} {
		f.Add("t", "p", "c", s)
	}
	f.Add("t", "pc", "", good)
	f.Add("tp", "", "c", good)
	f.Fuzz(func(t *testing.T, tenant, provider, channel, presented string) {
		want := k.Token(tenant, provider, channel)
		if !k.Verify(tenant, provider, channel, want) {
			t.Fatal("the triple's own token does not verify")
		}
		if presented != want && k.Verify(tenant, provider, channel, presented) {
			t.Fatalf("a different token %q verified for (%q, %q, %q)", presented, tenant, provider, channel)
		}
		if (tenant != "t" || provider != "p" || channel != "c") && k.Verify(tenant, provider, channel, good) {
			t.Fatalf("another triple's token verified for (%q, %q, %q)", tenant, provider, channel)
		}
	})
}
