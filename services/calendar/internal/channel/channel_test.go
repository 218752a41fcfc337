package channel

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestTokenBindsTenantProviderChannel(t *testing.T) {
	t.Parallel()
	k, err := NewKeyring("", []byte("0123456789abcdef0123456789abcdef"))
	require.NoError(t, err)
	tok := k.Token("t1", "p1", "c1")
	require.True(t, strings.HasPrefix(tok, "v1."))
	require.LessOrEqual(t, len(tok), MaxToken)
	require.True(t, k.Verify("t1", "p1", "c1", tok))
	require.False(t, k.Verify("t2", "p1", "c1", tok))
	require.False(t, k.Verify("t1", "p2", "c1", tok))
	require.False(t, k.Verify("t1", "p1", "c2", tok))
	require.False(t, k.Verify("t1", "p1", "c1", ""))
	require.False(t, k.Verify("t1", "p1", "c1", tok[:len(tok)-1]))
	// Field boundaries matter: ("t1p", "1") is not ("t1", "p1").
	require.NotEqual(t, k.Token("t1p", "1", "c1"), k.Token("t1", "p1", "c1"))

	other, err := NewKeyring("another-channel-key-0123456789abcdef", nil)
	require.NoError(t, err)
	require.False(t, other.Verify("t1", "p1", "c1", tok))
	_, err = NewKeyring("short", nil)
	require.Error(t, err)
	_, err = NewKeyring("", []byte("short"))
	require.Error(t, err)
}

func TestParse(t *testing.T) {
	t.Parallel()
	ok := Headers{ChannelID: "c1", Token: "v1.x", ResourceID: "r1", ResourceState: "exists", MessageNumber: "7",
		ChannelExpiration: "Tue, 19 Nov 2013 01:13:52 GMT"}
	n, err := Parse(ok)
	require.NoError(t, err)
	require.Equal(t, int64(7), n.MessageNumber)
	require.Equal(t, 2013, n.Expiration.Year())

	for name, mut := range map[string]func(*Headers){
		"no channel":   func(h *Headers) { h.ChannelID = "" },
		"long channel": func(h *Headers) { h.ChannelID = strings.Repeat("a", 65) },
		"no resource":  func(h *Headers) { h.ResourceID = "" },
		"bad state":    func(h *Headers) { h.ResourceState = "deleted" },
		"no number":    func(h *Headers) { h.MessageNumber = "" },
		"negative":     func(h *Headers) { h.MessageNumber = "-1" },
		"zero":         func(h *Headers) { h.MessageNumber = "0" },
		"hex":          func(h *Headers) { h.MessageNumber = "0x10" },
		"overflow":     func(h *Headers) { h.MessageNumber = "99999999999999999999" },
		"plus":         func(h *Headers) { h.MessageNumber = "+5" },
		"control char": func(h *Headers) { h.Token = "v1.\n" },
	} {
		h := ok
		mut(&h)
		_, err := Parse(h)
		require.ErrorIs(t, err, ErrMalformed, name)
	}
	h := ok
	h.Token = ""
	_, err = Parse(h)
	require.NoError(t, err, "a missing token is refused later, with 401, once the channel is known")
}

// FuzzParse feeds arbitrary header values to the parser: it never panics, and whatever it accepts is
// within the documented limits.
func FuzzParse(f *testing.F) {
	f.Add("c1", "v1.abc", "r1", "exists", "7", "", "Tue, 19 Nov 2013 01:13:52 GMT")
	f.Add("c1", "", "r1", "sync", "1", "https://www.googleapis.com/calendar/v3/calendars/primary/events", "")
	f.Add("", "", "", "", "", "", "")
	f.Add("c\x00", "v1.\xff", "r", "not_exists", "9223372036854775807", "", "garbage")
	f.Add("c", "t", "r", "exists", "9223372036854775808", "", "")
	f.Add(" c ", "t", " r ", " exists ", " 01 ", "", "")
	f.Fuzz(func(t *testing.T, id, tok, rid, state, num, uri, exp string) {
		n, err := Parse(Headers{id, tok, rid, state, uri, num, exp})
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error not marked malformed: %v", err)
			}
			return
		}
		if n.ChannelID == "" || len(n.ChannelID) > MaxChannelID || n.ResourceID == "" || n.MessageNumber < 1 {
			t.Fatalf("accepted invalid notification %+v", n)
		}
		if n.ResourceState != StateSync && n.ResourceState != StateExists && n.ResourceState != StateNotExists {
			t.Fatalf("accepted state %q", n.ResourceState)
		}
		k, _ := NewKeyring("", []byte("0123456789abcdef0123456789abcdef"))
		_ = k.Verify("t", "p", n.ChannelID, n.Token)
	})
}
