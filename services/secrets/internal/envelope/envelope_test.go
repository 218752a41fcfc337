package envelope

import (
	"bytes"
	"crypto/rand"
	"testing"

	"github.com/stretchr/testify/require"
)

func key(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, KeySize)
	_, err := rand.Read(k)
	require.NoError(t, err)
	return k
}

func TestDataKeyIsBoundToTenantAndKEKID(t *testing.T) {
	t.Parallel()
	kek := key(t)
	ring, err := NewKeyring("k1", kek, nil)
	require.NoError(t, err)
	dek, wrapped, id, err := ring.NewDataKey("t1")
	require.NoError(t, err)
	require.Equal(t, "k1", id)
	require.False(t, bytes.Contains(wrapped, dek))

	got, err := ring.Unwrap("t1", "k1", wrapped)
	require.NoError(t, err)
	require.Equal(t, dek, got)

	_, err = ring.Unwrap("t2", "k1", wrapped)
	require.ErrorIs(t, err, ErrOpen, "another tenant")
	_, err = UnwrapDataKey(kek, "k0", "t1", wrapped)
	require.ErrorIs(t, err, ErrOpen, "another key id")
	_, err = ring.Unwrap("t1", "k9", wrapped)
	require.ErrorIs(t, err, ErrUnknownKEK)
	_, err = ring.Unwrap("t1", "k1", wrapped[:10])
	require.ErrorIs(t, err, ErrOpen)
}

func TestValueIsBoundToTenantNameVersion(t *testing.T) {
	t.Parallel()
	dek := key(t)
	nonce, ct, err := SealValue(dek, "t1", "name", 3, []byte("plaintext"))
	require.NoError(t, err)
	pt, err := OpenValue(dek, "t1", "name", 3, nonce, ct)
	require.NoError(t, err)
	require.Equal(t, "plaintext", string(pt))

	for _, c := range []struct {
		tenant, name string
		version      int64
		dek          []byte
	}{
		{"t2", "name", 3, dek}, {"t1", "other", 3, dek}, {"t1", "name", 4, dek}, {"t1", "name", 3, key(t)},
		// Length prefixes keep ("t1n", "ame") apart from ("t1", "name").
		{"t1n", "ame", 3, dek},
	} {
		_, err := OpenValue(c.dek, c.tenant, c.name, c.version, nonce, ct)
		require.ErrorIs(t, err, ErrOpen, "%+v", c)
	}
	// Fresh nonce each time.
	nonce2, ct2, err := SealValue(dek, "t1", "name", 3, []byte("plaintext"))
	require.NoError(t, err)
	require.NotEqual(t, nonce, nonce2)
	require.NotEqual(t, ct, ct2)
}

func TestKeyring(t *testing.T) {
	t.Parallel()
	_, err := NewKeyring("", key(t), nil)
	require.Error(t, err)
	_, err = NewKeyring("k1", []byte("short"), nil)
	require.Error(t, err)
	_, err = NewKeyring("k1", key(t), map[string][]byte{"k1": key(t)})
	require.Error(t, err)
	_, err = NewKeyring("k1", key(t), map[string][]byte{"k0": []byte("short")})
	require.Error(t, err)

	old := key(t)
	prev, err := NewKeyring("k0", old, nil)
	require.NoError(t, err)
	_, wrapped, _, err := prev.NewDataKey("t1")
	require.NoError(t, err)
	ring, err := NewKeyring("k1", key(t), map[string][]byte{"k0": old})
	require.NoError(t, err)
	require.Equal(t, []string{"k0", "k1"}, ring.IDs())
	_, err = ring.Unwrap("t1", "k0", wrapped)
	require.NoError(t, err, "a previous KEK still unwraps during a rotation")
}
