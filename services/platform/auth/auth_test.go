package auth_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"

	"github.com/algapsa/alga-google/services/platform/auth"
)

const (
	userKey    = "user-key-0123456789abcdef-0123456789"
	serviceKey = "service-key-0123456789abcdef-012345"
)

type testBundle struct {
	verifier *auth.Verifier
	users    *auth.Signer
	services *auth.Signer
}

func setup(t *testing.T, jwksPath string) testBundle {
	t.Helper()
	v, err := auth.NewVerifier(auth.VerifierConfig{
		HS256Key: []byte(userKey), ServiceKey: []byte(serviceKey), JWKS: jwksPath,
		Issuer: "alga-psa", Audience: "alga-google", ServiceIssuer: "alga-google",
	})
	require.NoError(t, err)
	users, err := auth.NewSigner([]byte(userKey), "alga-psa", "alga-google")
	require.NoError(t, err)
	services, err := auth.NewSigner([]byte(serviceKey), "alga-google", "alga-google")
	require.NoError(t, err)
	return testBundle{verifier: v, users: users, services: services}
}

func TestVerifyUserAndServiceTokens(t *testing.T) {
	t.Parallel()
	b := setup(t, "")
	ctx := context.Background()

	tok, err := b.users.MintUser(auth.UserToken{Subject: "u1", Tenant: "t1", Permissions: []string{auth.PermSystemSettingsUpdate}})
	require.NoError(t, err)
	id, err := b.verifier.Verify(ctx, tok)
	require.NoError(t, err)
	require.Equal(t, "t1", id.Tenant)
	require.Equal(t, "u1", id.Subject)
	require.False(t, id.IsService())
	require.True(t, id.Has(auth.PermSystemSettingsUpdate))

	svc, err := b.services.MintService("gmail", "t1", "u1", nil)
	require.NoError(t, err)
	id, err = b.verifier.Verify(ctx, svc)
	require.NoError(t, err)
	require.True(t, id.IsService())
	require.Equal(t, "gmail", id.Service)
	require.Equal(t, "t1", id.Tenant)
}

func TestVerifyRejects(t *testing.T) {
	t.Parallel()
	b := setup(t, "")
	ctx := context.Background()

	client, err := b.users.MintUser(auth.UserToken{Subject: "u1", Tenant: "t1", UserType: auth.UserTypeClient})
	require.NoError(t, err)
	_, err = b.verifier.Verify(ctx, client)
	require.ErrorIs(t, err, auth.ErrForbiddenUserType)

	// A service claim signed with the user key is a forgery.
	forged, err := b.users.MintService("secrets", "t2", "", nil)
	require.NoError(t, err)
	_, err = b.verifier.Verify(ctx, forged)
	require.ErrorIs(t, err, auth.ErrUnauthenticated)

	expired := jwt.NewWithClaims(jwt.SigningMethodHS256, auth.Claims{
		RegisteredClaims: jwt.RegisteredClaims{Issuer: "alga-psa", Subject: "u", Audience: jwt.ClaimStrings{"alga-google"},
			IssuedAt: jwt.NewNumericDate(time.Now().Add(-2 * time.Hour)), ExpiresAt: jwt.NewNumericDate(time.Now().Add(-time.Hour))},
		Tenant: "t1", UserType: auth.UserTypeInternal,
	})
	raw, err := expired.SignedString([]byte(userKey))
	require.NoError(t, err)
	_, err = b.verifier.Verify(ctx, raw)
	require.ErrorIs(t, err, auth.ErrUnauthenticated)

	otherIssuer, err := auth.NewSigner([]byte(userKey), "someone-else", "alga-google")
	require.NoError(t, err)
	raw, err = otherIssuer.MintUser(auth.UserToken{Subject: "u", Tenant: "t"})
	require.NoError(t, err)
	_, err = b.verifier.Verify(ctx, raw)
	require.ErrorIs(t, err, auth.ErrUnauthenticated)

	noTenant, err := b.users.MintUser(auth.UserToken{Subject: "u"})
	require.NoError(t, err)
	_, err = b.verifier.Verify(ctx, noTenant)
	require.ErrorIs(t, err, auth.ErrUnauthenticated)

	for _, garbage := range []string{"", "x", "a.b.c", "eyJhbGciOiJub25lIn0.e30."} {
		_, err = b.verifier.Verify(ctx, garbage)
		require.ErrorIs(t, err, auth.ErrUnauthenticated, garbage)
	}
}

// The service key is its own: missing, short or equal to the user key, the verifier refuses to exist,
// so the user key can never mint a service token.
func TestServiceKeyIsSeparate(t *testing.T) {
	t.Parallel()
	for name, cfg := range map[string]auth.VerifierConfig{
		"missing":      {HS256Key: []byte(userKey)},
		"short":        {HS256Key: []byte(userKey), ServiceKey: []byte("short")},
		"the user key": {HS256Key: []byte(userKey), ServiceKey: []byte(userKey)},
	} {
		_, err := auth.NewVerifier(cfg)
		require.Error(t, err, name)
	}
	_, err := auth.NewVerifier(auth.VerifierConfig{HS256Key: []byte(userKey), ServiceKey: []byte(serviceKey)})
	require.NoError(t, err)
}

func TestVerifyJWKS(t *testing.T) {
	t.Parallel()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: "k1", Algorithm: "RS256", Use: "sig"}}}
	buf, err := json.Marshal(set)
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "jwks.json")
	require.NoError(t, os.WriteFile(path, buf, 0o600))
	b := setup(t, path)

	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, auth.Claims{
		RegisteredClaims: jwt.RegisteredClaims{Issuer: "alga-psa", Subject: "u9", Audience: jwt.ClaimStrings{"alga-google"},
			IssuedAt: jwt.NewNumericDate(time.Now()), ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))},
		Tenant: "t9", UserType: auth.UserTypeInternal,
	})
	tok.Header["kid"] = "k1"
	raw, err := tok.SignedString(key)
	require.NoError(t, err)
	id, err := b.verifier.Verify(context.Background(), raw)
	require.NoError(t, err)
	require.Equal(t, "t9", id.Tenant)

	other, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	raw, err = tok.SignedString(other)
	require.NoError(t, err)
	_, err = b.verifier.Verify(context.Background(), raw)
	require.ErrorIs(t, err, auth.ErrUnauthenticated)
}

func FuzzVerify(f *testing.F) {
	v, err := auth.NewVerifier(auth.VerifierConfig{HS256Key: []byte(userKey), ServiceKey: []byte(serviceKey), Issuer: "alga-psa", Audience: "alga-google"})
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{"", "a.b.c", "eyJhbGciOiJIUzI1NiJ9.e30.x", "Bearer x"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		_, _ = v.Verify(context.Background(), raw) // must never panic
	})
}
