package push

import (
	"context"
	"crypto/rsa"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"
)

// countedKeys counts key lookups: one per full verification.
type countedKeys struct {
	staticKeys
	n atomic.Int32
}

func (c *countedKeys) Key(ctx context.Context, kid string) (*rsa.PublicKey, error) {
	c.n.Add(1)
	return c.staticKeys.Key(ctx, kid)
}

func TestVerifiedTokenIsServedFromCacheUntilItExpires(t *testing.T) {
	t.Parallel()
	keys := &countedKeys{staticKeys: staticKeys{"k1": &googleKey.PublicKey}}
	now := time.Now()
	v := &Verifier{Audience: aud, Keys: keys, Now: func() time.Time { return now }}
	ctx := context.Background()
	tok := mint(t, googleKey, "k1", func(c jwt.MapClaims) { c["exp"] = now.Add(10 * time.Minute).Unix() })

	first, err := v.Verify(ctx, tok)
	require.NoError(t, err)
	for range 5 {
		again, err := v.Verify(ctx, tok)
		require.NoError(t, err)
		require.Same(t, first, again)
	}
	require.EqualValues(t, 1, keys.n.Load(), "a token seen before is not verified again")

	// The same token with one signature byte changed is another token: verified, and refused.
	i := strings.LastIndexByte(tok, '.') + 5
	other := "A"
	if tok[i] == 'A' {
		other = "B"
	}
	forged := tok[:i] + other + tok[i+1:]
	for range 3 {
		_, err = v.Verify(ctx, forged)
		require.ErrorIs(t, err, ErrUnauthenticated)
	}
	require.EqualValues(t, 4, keys.n.Load(), "refused tokens are verified every time (never cached)")

	// Within the leeway after expiry it still passes, as the library's own check would; past it, the
	// cached entry is dropped and the full verification refuses it.
	now = now.Add(10*time.Minute + 20*time.Second)
	_, err = v.Verify(ctx, tok)
	require.NoError(t, err)
	now = now.Add(11 * time.Second)
	_, err = v.Verify(ctx, tok)
	require.ErrorIs(t, err, ErrUnauthenticated)
	require.EqualValues(t, 5, keys.n.Load())
}

func TestVerifiedTokensStayBounded(t *testing.T) {
	t.Parallel()
	var c verifiedTokens
	now := time.Now()
	expiring := &Claims{RegisteredClaims: jwt.RegisteredClaims{ExpiresAt: jwt.NewNumericDate(now.Add(time.Minute))}}
	lasting := &Claims{RegisteredClaims: jwt.RegisteredClaims{ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour))}}
	for i := range maxVerifiedTokens {
		cl := lasting
		if i%2 == 0 {
			cl = expiring
		}
		c.put(fmt.Sprint("tok-", i), cl, now, leeway)
	}
	require.Len(t, c.claims, maxVerifiedTokens)
	later := now.Add(5 * time.Minute)
	c.put("new", lasting, later, leeway)
	require.Len(t, c.claims, maxVerifiedTokens/2+1, "expired entries make room")
	_, ok := c.get("new", later, leeway)
	require.True(t, ok)

	for i := range maxVerifiedTokens {
		c.put(fmt.Sprint("more-", i), lasting, later, leeway)
	}
	require.LessOrEqual(t, len(c.claims), maxVerifiedTokens, "never beyond the bound")
}

// BenchmarkVerify: a push token verified from scratch (first: a new verifier each time) beside one
// seen before (repeat), the case of nearly every push.
func BenchmarkVerify(b *testing.B) {
	keys := staticKeys{"k1": &googleKey.PublicKey}
	tok := mint(b, googleKey, "k1", nil)
	ctx := context.Background()
	b.Run("first", func(b *testing.B) {
		for range b.N {
			v := &Verifier{Audience: aud, Keys: keys}
			if _, err := v.Verify(ctx, tok); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("repeat", func(b *testing.B) {
		v := &Verifier{Audience: aud, Keys: keys}
		for range b.N {
			if _, err := v.Verify(ctx, tok); err != nil {
				b.Fatal(err)
			}
		}
	})
}
