package push

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"
)

const aud = "https://helpdesk.example.com/api/email/webhooks/google"

func envelope(sub, id, data string) []byte {
	b, _ := json.Marshal(map[string]any{
		"message":      map[string]any{"data": data, "messageId": id, "publishTime": "2026-01-02T03:04:05.123Z"},
		"subscription": sub,
	})
	return b
}

func data(email string, hid any) string {
	b, _ := json.Marshal(map[string]any{"emailAddress": email, "historyId": hid})
	return base64.StdEncoding.EncodeToString(b)
}

func TestParseEnvelope(t *testing.T) {
	t.Parallel()
	env, err := ParseEnvelope(envelope("projects/acme-prod/subscriptions/alga-gmail-1", "m-1", data("Support@Acme.test", 12345)))
	require.NoError(t, err)
	require.Equal(t, &Envelope{Subscription: "projects/acme-prod/subscriptions/alga-gmail-1", MessageID: "m-1",
		EmailAddress: "support@acme.test", HistoryID: 12345, PublishTime: time.Date(2026, 1, 2, 3, 4, 5, 123e6, time.UTC)}, env)

	env, err = ParseEnvelope(envelope("projects/acme-prod/subscriptions/alga-gmail-1", "m-1", data("a@b.test", "99")))
	require.NoError(t, err)
	require.EqualValues(t, 99, env.HistoryID)

	for name, body := range map[string][]byte{
		"empty":         nil,
		"not json":      []byte("{"),
		"no message":    []byte(`{"subscription":"projects/acme-prod/subscriptions/s1x"}`),
		"bad sub":       envelope("nope", "m-1", data("a@b.test", 1)),
		"no id":         envelope("projects/acme-prod/subscriptions/s1x", "", data("a@b.test", 1)),
		"bad base64":    envelope("projects/acme-prod/subscriptions/s1x", "m", "!!!"),
		"data not json": envelope("projects/acme-prod/subscriptions/s1x", "m", base64.StdEncoding.EncodeToString([]byte("x"))),
		"bad email":     envelope("projects/acme-prod/subscriptions/s1x", "m", data("Bob <a@b.test>", 1)),
		"zero history":  envelope("projects/acme-prod/subscriptions/s1x", "m", data("a@b.test", 0)),
		"neg history":   envelope("projects/acme-prod/subscriptions/s1x", "m", data("a@b.test", -3)),
	} {
		_, err := ParseEnvelope(body)
		require.ErrorIs(t, err, ErrMalformed, name)
	}
}

func FuzzParseEnvelope(f *testing.F) {
	f.Add(envelope("projects/acme-prod/subscriptions/alga-gmail-1", "m-1", data("a@b.test", 5)))
	f.Add([]byte(`{"message":{"data":"e30=","messageId":"1"},"subscription":"projects/p12345/subscriptions/abc"}`))
	f.Add([]byte(`{"message":null}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		env, err := ParseEnvelope(body)
		if err != nil {
			require.ErrorIs(t, err, ErrMalformed)
			return
		}
		require.NotEmpty(t, env.MessageID)
		require.NotZero(t, env.HistoryID)
		require.NotEmpty(t, env.EmailAddress)
	})
}

// staticKeys is a KeySource for tests.
type staticKeys map[string]*rsa.PublicKey

func (s staticKeys) Key(_ context.Context, kid string) (*rsa.PublicKey, error) {
	if k, ok := s[kid]; ok {
		return k, nil
	}
	return nil, fmt.Errorf("unknown kid %q", kid)
}

var (
	googleKey = mustKey()
	otherKey  = mustKey()
)

func mustKey() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
}

func mint(t testing.TB, key *rsa.PrivateKey, kid string, mod func(jwt.MapClaims)) string {
	t.Helper()
	c := jwt.MapClaims{
		"iss": "https://accounts.google.com", "aud": aud, "email": "sa@acme-prod.iam.gserviceaccount.com",
		"email_verified": true, "sub": "1234", "iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix(),
	}
	if mod != nil {
		mod(c)
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, c)
	tok.Header["kid"] = kid
	s, err := tok.SignedString(key)
	require.NoError(t, err)
	return s
}

func TestVerify(t *testing.T) {
	t.Parallel()
	v := &Verifier{Audience: aud, Keys: staticKeys{"k1": &googleKey.PublicKey}}
	ctx := context.Background()
	c, err := v.Verify(ctx, mint(t, googleKey, "k1", nil))
	require.NoError(t, err)
	require.NoError(t, CheckEmail(c, "SA@acme-prod.iam.gserviceaccount.com"))
	require.ErrorIs(t, CheckEmail(c, "other@acme-prod.iam.gserviceaccount.com"), ErrUnauthenticated)
	require.ErrorIs(t, CheckEmail(c, ""), ErrUnauthenticated)

	_, err = v.Verify(ctx, mint(t, googleKey, "k1", func(c jwt.MapClaims) { c["iss"] = "accounts.google.com" }))
	require.NoError(t, err)

	hs := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"iss": "https://accounts.google.com", "aud": aud,
		"email": "x@y", "email_verified": true, "exp": time.Now().Add(time.Hour).Unix()})
	hs.Header["kid"] = "k1"
	hsTok, _ := hs.SignedString([]byte("secret"))

	for name, tok := range map[string]string{
		"wrong audience":     mint(t, googleKey, "k1", func(c jwt.MapClaims) { c["aud"] = "https://evil.example.com/api/email/webhooks/google" }),
		"wrong issuer":       mint(t, googleKey, "k1", func(c jwt.MapClaims) { c["iss"] = "https://evil.example.com" }),
		"expired":            mint(t, googleKey, "k1", func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Hour).Unix() }),
		"no expiry":          mint(t, googleKey, "k1", func(c jwt.MapClaims) { delete(c, "exp") }),
		"unverified email":   mint(t, googleKey, "k1", func(c jwt.MapClaims) { c["email_verified"] = false }),
		"no email":           mint(t, googleKey, "k1", func(c jwt.MapClaims) { delete(c, "email") }),
		"other key":          mint(t, otherKey, "k1", nil),
		"other key, new kid": mint(t, otherKey, "k2", nil),
		"hs256":              hsTok,
		"garbage":            "a.b.c",
	} {
		_, err := v.Verify(ctx, tok)
		require.ErrorIs(t, err, ErrUnauthenticated, name)
	}
}

func TestBearerToken(t *testing.T) {
	t.Parallel()
	tok, err := BearerToken("Bearer abc")
	require.NoError(t, err)
	require.Equal(t, "abc", tok)
	tok, err = BearerToken("bearer  abc ")
	require.NoError(t, err)
	require.Equal(t, "abc", tok)
	for _, h := range []string{"", "Bearer", "Bearer ", "Basic abc", "abc"} {
		_, err := BearerToken(h)
		require.ErrorIs(t, err, ErrUnauthenticated, h)
	}
}

func FuzzVerify(f *testing.F) {
	v := &Verifier{Audience: aud, Keys: staticKeys{"k1": &googleKey.PublicKey}}
	f.Add(mint(f, googleKey, "k1", nil))
	f.Add(mint(f, otherKey, "k1", nil))
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add("Bearer x.y.z")
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := v.Verify(context.Background(), tok)
		if err != nil {
			require.True(t, errors.Is(err, ErrUnauthenticated))
			return
		}
		// Anything accepted must satisfy every claim rule.
		require.NoError(t, CheckClaims(c, aud))
	})
}

func FuzzCheckClaims(f *testing.F) {
	f.Add("https://accounts.google.com", aud, "sa@x", true, int64(1))
	f.Add("accounts.google.com", "other", "", false, int64(0))
	f.Fuzz(func(t *testing.T, iss, audience, email string, verified bool, exp int64) {
		c := &Claims{RegisteredClaims: jwt.RegisteredClaims{Issuer: iss, Audience: jwt.ClaimStrings{audience}}, Email: email, EmailVerified: verified}
		if exp != 0 {
			c.ExpiresAt = jwt.NewNumericDate(time.Unix(exp, 0))
		}
		err := CheckClaims(c, aud)
		if err == nil {
			require.Contains(t, Issuers, iss)
			require.Equal(t, aud, audience)
			require.True(t, verified)
			require.NotEmpty(t, email)
		}
	})
}

func TestJWKSCache(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Cache-Control", "public, max-age=600")
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": []map[string]string{jwk("k1", &googleKey.PublicKey)}})
	}))
	defer srv.Close()
	j := &JWKS{URL: srv.URL, MinRefresh: time.Hour}
	v := &Verifier{Audience: aud, Keys: j}
	for range 5 {
		_, err := v.Verify(context.Background(), mint(t, googleKey, "k1", nil))
		require.NoError(t, err)
	}
	require.EqualValues(t, 1, hits.Load())
	_, err := v.Verify(context.Background(), mint(t, otherKey, "zz", nil))
	require.ErrorIs(t, err, ErrUnauthenticated)
	require.EqualValues(t, 1, hits.Load(), "unknown kids are not refetched more than once per MinRefresh")
}

func jwk(kid string, k *rsa.PublicKey) map[string]string {
	return map[string]string{"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig",
		"n": base64.RawURLEncoding.EncodeToString(k.N.Bytes()),
		"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(k.E)).Bytes())}
}
