package secrets_test

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/algapsa/alga-google/services/secrets"
)

func TestParseKEKList(t *testing.T) {
	t.Parallel()
	k := strings.Repeat("k", 32)
	got, err := secrets.ParseKEKList("old-1:" + base64.StdEncoding.EncodeToString([]byte(k)) + ", old-0:" + base64.StdEncoding.EncodeToString([]byte(strings.Repeat("j", 32))))
	require.NoError(t, err)
	require.Len(t, got, 2)
	require.Equal(t, []byte(k), got["old-1"])
	got, err = secrets.ParseKEKList("")
	require.NoError(t, err)
	require.Empty(t, got)
	for _, bad := range []string{"nokey", ":" + base64.StdEncoding.EncodeToString([]byte(k)), "a:short", "a:!!!"} {
		_, err := secrets.ParseKEKList(bad)
		require.Error(t, err, bad)
	}
}
