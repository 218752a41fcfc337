package auth

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const (
	testUserKey    = "user-key-0123456789abcdef-0123456789"
	testServiceKey = "service-key-0123456789abcdef-012345"
)

// clock is a settable time shared by a Signer and a Verifier under test.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func cacheSetup(t *testing.T) (*Signer, *Verifier, *clock) {
	t.Helper()
	c := &clock{t: time.Now()}
	s, err := NewSigner([]byte(testServiceKey), "alga-google", "alga-google")
	require.NoError(t, err)
	s.now = c.now
	v, err := NewVerifier(VerifierConfig{HS256Key: []byte(testUserKey), ServiceKey: []byte(testServiceKey),
		Issuer: "alga-psa", Audience: "alga-google", ServiceIssuer: "alga-google"})
	require.NoError(t, err)
	v.now = c.now
	return s, v, c
}

func TestServiceTokenReusedUntilShortlyBeforeExpiry(t *testing.T) {
	t.Parallel()
	s, v, c := cacheSetup(t)
	first, err := s.ServiceToken(SvcGateway, "t1", "", nil)
	require.NoError(t, err)
	again, err := s.ServiceToken(SvcGateway, "t1", "", nil)
	require.NoError(t, err)
	require.Equal(t, first, again, "the same identity reuses its token")

	for _, other := range [][]string{{SvcGmail, "t1", ""}, {SvcGateway, "t2", ""}, {SvcGateway, "t1", "u1"}} {
		tok, err := s.ServiceToken(other[0], other[1], other[2], nil)
		require.NoError(t, err)
		require.NotEqual(t, first, tok, "another identity gets its own token: %v", other)
	}
	withPerm, err := s.ServiceToken(SvcGateway, "t1", "", []string{"a:b"})
	require.NoError(t, err)
	require.NotEqual(t, first, withPerm, "other permissions get their own token")
	joined, err := s.ServiceToken(SvcGateway, "t1", "", []string{"a", ":b"})
	require.NoError(t, err)
	require.NotEqual(t, withPerm, joined, "permission lists never collide in the key")

	c.advance(serviceTokenReuse - time.Second)
	tok, err := s.ServiceToken(SvcGateway, "t1", "", nil)
	require.NoError(t, err)
	require.Equal(t, first, tok, "still reused shortly before the reuse window ends")
	id, err := v.Verify(context.Background(), tok)
	require.NoError(t, err, "a reused token is still valid at its callee")
	require.Equal(t, "t1", id.Tenant)

	c.advance(time.Second)
	fresh, err := s.ServiceToken(SvcGateway, "t1", "", nil)
	require.NoError(t, err)
	require.NotEqual(t, first, fresh, "a token within a minute of its expiry is replaced")
}

func TestVerifiedServiceTokenCachedUntilExp(t *testing.T) {
	t.Parallel()
	s, v, c := cacheSetup(t)
	ctx := context.Background()
	tok, err := s.MintService(SvcGateway, "t1", "", []string{"x:y"})
	require.NoError(t, err)
	id, err := v.Verify(ctx, tok)
	require.NoError(t, err)
	require.Len(t, v.verified.entries, 1, "a verified service token is cached")
	id.Permissions[0] = "tampered"
	again, err := v.Verify(ctx, tok)
	require.NoError(t, err)
	require.Equal(t, []string{"x:y"}, again.Permissions, "a caller's edit never reaches the cache")

	// Past exp (and the verifier's 30 s leeway for clock skew) the cached entry no longer answers.
	c.advance(serviceTokenTTL + 31*time.Second)
	_, err = v.Verify(ctx, tok)
	require.ErrorIs(t, err, ErrUnauthenticated, "expired: refused although it was cached")
}

func TestRefusedAndUserTokensNotCached(t *testing.T) {
	t.Parallel()
	s, v, _ := cacheSetup(t)
	ctx := context.Background()
	wrong, err := NewSigner([]byte("another-service-key-0123456789abcdef"), "alga-google", "alga-google")
	require.NoError(t, err)
	bad, err := wrong.MintService(SvcGateway, "t1", "", nil)
	require.NoError(t, err)
	for range 2 {
		_, err = v.Verify(ctx, bad)
		require.ErrorIs(t, err, ErrUnauthenticated)
	}
	users, err := NewSigner([]byte(testUserKey), "alga-psa", "alga-google")
	require.NoError(t, err)
	user, err := users.MintUser(UserToken{Subject: "u1", Tenant: "t1"})
	require.NoError(t, err)
	_, err = v.Verify(ctx, user)
	require.NoError(t, err)
	require.Empty(t, v.verified.entries, "neither a refused token nor a user token is cached")
	_ = s
}

func TestTokenCachesBounded(t *testing.T) {
	t.Parallel()
	s, v, _ := cacheSetup(t)
	ctx := context.Background()
	for i := range maxCachedTokens + 10 {
		tok, err := s.ServiceToken(SvcGateway, "t"+strconv.Itoa(i), "", nil)
		require.NoError(t, err)
		_, err = v.Verify(ctx, tok)
		require.NoError(t, err)
	}
	require.LessOrEqual(t, len(s.minted.entries), maxCachedTokens)
	require.LessOrEqual(t, len(v.verified.entries), maxCachedTokens)
}
