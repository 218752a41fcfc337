package service

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// Only the encoded characters the cap needs are decoded, padded or not, URL or standard alphabet.
func TestRawPrefix(t *testing.T) {
	t.Parallel()
	raw := []byte(strings.Repeat("0123456789?>~", 100)) // 1300 bytes; '?' '>' '~' differ between the alphabets
	for _, enc := range []*base64.Encoding{base64.URLEncoding, base64.RawURLEncoding, base64.StdEncoding} {
		s := enc.EncodeToString(raw)
		for _, max := range []int{1, 2, 3, 4, 100, 1299, 1300, 5000} {
			got, cut, err := rawPrefix(s, max)
			require.NoError(t, err)
			n := min(max, len(raw))
			require.Equal(t, raw[:n], got, "max %d", max)
			require.Equal(t, max < len(raw), cut, "max %d", max)
		}
	}
	_, _, err := rawPrefix("not base64 at all!", 100)
	require.Error(t, err)
}
