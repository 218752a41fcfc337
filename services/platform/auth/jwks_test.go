package auth_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"

	"github.com/algapsa/alga-google/services/platform/auth"
)

// idp is an identity provider's JWKS endpoint whose keys, Cache-Control and health a test changes.
type idp struct {
	mu           sync.Mutex
	keys         map[string]*rsa.PrivateKey
	cacheControl string
	status       int           // 0 = 200
	hang         chan struct{} // non-nil: requests block until it is closed
	hits         atomic.Int32
	srv          *httptest.Server
}

func newIDP(t *testing.T, kids ...string) *idp {
	t.Helper()
	p := &idp{keys: map[string]*rsa.PrivateKey{}}
	for _, kid := range kids {
		p.add(t, kid)
	}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.hits.Add(1)
		p.mu.Lock()
		hang, status, cc := p.hang, p.status, p.cacheControl
		set := jose.JSONWebKeySet{}
		for kid, k := range p.keys {
			set.Keys = append(set.Keys, jose.JSONWebKey{Key: k.Public(), KeyID: kid, Algorithm: "RS256", Use: "sig"})
		}
		p.mu.Unlock()
		if hang != nil {
			select {
			case <-hang:
			case <-r.Context().Done():
			}
			return
		}
		if status != 0 {
			w.WriteHeader(status)
			return
		}
		if cc != "" {
			w.Header().Set("Cache-Control", cc)
		}
		_ = json.NewEncoder(w).Encode(set)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *idp) add(t *testing.T, kid string) {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.keys[kid] = k
}

func (p *idp) remove(kid string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.keys, kid)
}

func (p *idp) set(f func(p *idp)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f(p)
}

// token signs a user token with the key kid (a key the idp no longer lists keeps its private half here).
func (p *idp) token(t *testing.T, kid string, key *rsa.PrivateKey) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, auth.Claims{
		RegisteredClaims: jwt.RegisteredClaims{Issuer: "alga-psa", Subject: "u1", Audience: jwt.ClaimStrings{"alga-google"},
			IssuedAt: jwt.NewNumericDate(time.Now()), ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))},
		Tenant: "t1", UserType: auth.UserTypeInternal,
	})
	tok.Header["kid"] = kid
	raw, err := tok.SignedString(key)
	require.NoError(t, err)
	return raw
}

func (p *idp) keyOf(kid string) *rsa.PrivateKey {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.keys[kid]
}

func jwksVerifier(t *testing.T, url string, maxAge, minInterval time.Duration) *auth.Verifier {
	t.Helper()
	v, err := auth.NewVerifier(auth.VerifierConfig{JWKS: url, ServiceKey: []byte(serviceKey), Issuer: "alga-psa", Audience: "alga-google",
		JWKSMaxAge: maxAge, JWKSMinInterval: minInterval, JWKSFetchTimeout: 5 * time.Second})
	require.NoError(t, err)
	return v
}

// A key the identity provider removed stops verifying once the cached set has lived its lifetime: the
// response's Cache-Control max-age, or the configured maximum age when that is shorter (or absent).
func TestJWKSRemovedKeyRefusedAfterCacheLifetime(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		cacheControl string
		maxAge       time.Duration
	}{
		"cache-control max-age": {cacheControl: "public, max-age=1", maxAge: time.Hour},
		"maximum age":           {cacheControl: "public, max-age=86400", maxAge: time.Second},
		"no cache-control":      {maxAge: time.Second},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p := newIDP(t, "k1", "k2")
			p.set(func(p *idp) { p.cacheControl = tc.cacheControl })
			v := jwksVerifier(t, p.srv.URL, tc.maxAge, 100*time.Millisecond)
			ctx := context.Background()
			k2 := p.keyOf("k2")
			old := p.token(t, "k2", k2)
			_, err := v.Verify(ctx, old)
			require.NoError(t, err)

			p.remove("k2")
			_, err = v.Verify(ctx, old)
			require.NoError(t, err, "within the lifetime the cached set still holds k2")

			time.Sleep(1100 * time.Millisecond)
			_, err = v.Verify(ctx, old)
			require.ErrorIs(t, err, auth.ErrUnauthenticated, "after the lifetime a removed key is refused")
			_, err = v.Verify(ctx, p.token(t, "k1", p.keyOf("k1")))
			require.NoError(t, err, "the keys still listed keep verifying")
		})
	}
}

// A JWKS outage — a fetch that hangs, or one that fails — stalls no verification with a known key:
// fetches run outside the lock, one at a time, at most once per interval, and the last good set keeps
// verifying after its lifetime while the source is down.
func TestJWKSOutageDoesNotStallKnownKeys(t *testing.T) {
	t.Parallel()
	p := newIDP(t, "k1")
	p.set(func(p *idp) { p.cacheControl = "max-age=2" })
	stranger, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	v := jwksVerifier(t, p.srv.URL, time.Hour, 200*time.Millisecond)
	ctx := context.Background()
	known := p.token(t, "k1", p.keyOf("k1"))
	unknown := p.token(t, "k9", stranger)
	_, err = v.Verify(ctx, known)
	require.NoError(t, err)
	require.EqualValues(t, 1, p.hits.Load())

	// The source hangs; a token with an unknown kid (past the minimum interval) starts a fetch that will
	// not return.
	time.Sleep(250 * time.Millisecond)
	hang := make(chan struct{})
	p.set(func(p *idp) { p.hang = hang })
	go func() {
		uctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		_, _ = v.Verify(uctx, unknown)
	}()
	require.Eventually(t, func() bool { return p.hits.Load() == 2 }, 2*time.Second, 5*time.Millisecond)

	start := time.Now()
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := v.Verify(ctx, known)
			require.NoError(t, err)
		}()
	}
	wg.Wait()
	require.Less(t, time.Since(start), time.Second, "known keys do not wait for the hanging fetch (it hangs for seconds)")

	// More unknown kids while the fetch hangs join it: no second request.
	for range 10 {
		uctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		_, err := v.Verify(uctx, unknown)
		cancel()
		require.ErrorIs(t, err, auth.ErrUnauthenticated)
	}
	require.EqualValues(t, 2, p.hits.Load(), "one fetch at a time")

	// The hanging fetch ends badly, the source now fails fast, and the cached set outlives its lifetime:
	// the known key keeps verifying, without waiting, with at most one fetch per interval.
	p.set(func(p *idp) { p.hang, p.status = nil, http.StatusBadGateway })
	close(hang)
	time.Sleep(2100 * time.Millisecond)
	before := p.hits.Load()
	start = time.Now()
	for range 20 {
		began := time.Now()
		_, err := v.Verify(ctx, known)
		require.NoError(t, err, "the last good set verifies during an outage")
		require.Less(t, time.Since(began), 500*time.Millisecond, "without waiting for the failing source")
		time.Sleep(10 * time.Millisecond)
	}
	intervals := int32(time.Since(start)/(200*time.Millisecond)) + 1
	require.LessOrEqual(t, p.hits.Load()-before, intervals, "at most one fetch per interval during the outage")
}
