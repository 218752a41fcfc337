package secrets_test

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	secretsv1 "github.com/algapsa/alga-google/gen/alga/secrets/v1"
	"github.com/algapsa/alga-google/services/platform/logging"
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

func TestBackendConfig(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, bad := range []string{"vault", "nosuch", "postgres,postgres"} {
		_, err := b.tryServe(t, secrets.Options{Backend: bad, KEK: b.kek})
		require.Error(t, err, bad)
	}
	_, err := b.tryServe(t, secrets.Options{Backend: "filesystem"})
	require.ErrorContains(t, err, "ALGA_SECRETS_FS_BASE")
}

func TestRotateKEKFromSeveralOldKeys(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := ctxTimeout(t)
	b.put(t, "t1", "a", "value-1")
	// t2's data key is created by a replica already on kek-2.
	k2 := newKey(t)
	c2 := b.serve(t, secrets.Options{KEK: k2, KEKID: "kek-2", PreviousKEKs: map[string][]byte{"kek-1": b.kek}, Backend: "postgres"})
	_, err := c2.PutSecrets(b.admin(t, "t2"), &secretsv1.PutSecretsRequest{Writes: []*secretsv1.SecretWrite{{Name: "a", Value: "value-2"}}})
	require.NoError(t, err)
	usage, err := secrets.KEKUsage(ctx, b.pool)
	require.NoError(t, err)
	require.Equal(t, map[string]int64{"kek-1": 1, "kek-2": 1}, usage)

	// Missing the old key of one tenant: that tenant is reported, nothing is lost.
	k3 := newKey(t)
	_, err = secrets.RotateKEKFrom(ctx, b.pool, map[string][]byte{"kek-2": k2}, k3, "kek-3", logging.Discard())
	require.ErrorContains(t, err, `"kek-1"`)

	n, err := secrets.RotateKEKFrom(ctx, b.pool, map[string][]byte{"kek-1": b.kek, "kek-2": k2}, k3, "kek-3", logging.Discard())
	require.NoError(t, err)
	require.Equal(t, 2, n)
	c3 := b.serve(t, secrets.Options{KEK: k3, KEKID: "kek-3", Backend: "postgres"})
	require.Equal(t, "value-1", b.get(t, c3, "t1", "a")["a"])
	require.Equal(t, "value-2", b.get(t, c3, "t2", "a")["a"])
}
