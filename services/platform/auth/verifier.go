package auth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// ErrUnauthenticated is returned for a missing, malformed, expired or wrongly signed token.
var ErrUnauthenticated = errors.New("unauthenticated")

// VerifierConfig configures token verification.
type VerifierConfig struct {
	// HS256Key verifies user tokens signed with a shared key (development and simple installs).
	HS256Key []byte
	// JWKS is a file path or http(s) URL of a JSON Web Key Set verifying asymmetric user tokens.
	JWKS string
	// ServiceKey verifies service tokens (claim svc). Required, and never the user key: whoever can
	// mint user tokens must not be able to mint service tokens.
	ServiceKey []byte
	Issuer     string
	Audience   string
	// ServiceIssuer is the iss of service tokens.
	ServiceIssuer string
	HTTPClient    *http.Client
	// JWKSMaxAge bounds how long a fetched key set is trusted (a shorter Cache-Control max-age wins);
	// then it is fetched again, and a key it no longer lists stops verifying. Default 1h.
	JWKSMaxAge time.Duration
	// JWKSMinInterval is the least time between two fetches of the key set (an unknown kid or an
	// expired set asks for one). Default 1m.
	JWKSMinInterval time.Duration
	// JWKSFetchTimeout bounds one fetch. Default 10s.
	JWKSFetchTimeout time.Duration
}

// Verifier checks bearer tokens.
type Verifier struct {
	cfg      VerifierConfig
	jwks     *jwksCache
	verified verifiedTokens
	now      func() time.Time
}

// NewVerifier validates cfg and returns a Verifier.
func NewVerifier(cfg VerifierConfig) (*Verifier, error) {
	if len(cfg.HS256Key) == 0 && cfg.JWKS == "" {
		return nil, errors.New("auth: configure ALGA_AUTH_HS256_KEY or ALGA_AUTH_JWKS")
	}
	if len(cfg.ServiceKey) < 32 {
		return nil, errors.New("auth: the service token key (ALGA_SERVICE_TOKEN_KEY) must be at least 32 bytes")
	}
	if len(cfg.HS256Key) > 0 && hmac.Equal(cfg.ServiceKey, cfg.HS256Key) {
		return nil, errors.New("auth: the service token key (ALGA_SERVICE_TOKEN_KEY) must differ from the user token key (ALGA_AUTH_HS256_KEY)")
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	v := &Verifier{cfg: cfg, now: time.Now}
	if cfg.JWKS != "" {
		v.jwks = newJWKSCache(cfg)
	}
	return v, nil
}

// Verify parses and checks a raw JWT and returns the identity it carries.
// Service tokens must be signed with the service key; user tokens with the HS256 key or a JWKS key.
// Client users (user_type=client) are refused everywhere.
// A service token verified once is answered from a cache until its exp (see verifiedTokens).
func (v *Verifier) Verify(ctx context.Context, raw string) (Identity, error) {
	sum := sha256.Sum256([]byte(raw))
	if id, ok := v.verified.get(sum, v.now()); ok {
		return id.clone(), nil
	}
	var claims Claims
	parser := jwt.NewParser(
		jwt.WithValidMethods([]string{"HS256", "RS256", "ES256", "EdDSA"}),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(30*time.Second),
		jwt.WithTimeFunc(v.now),
	)
	tok, err := parser.ParseWithClaims(raw, &claims, func(t *jwt.Token) (any, error) {
		c := t.Claims.(*Claims)
		if c.Service != "" {
			if t.Method.Alg() != "HS256" {
				return nil, errors.New("service tokens must be HS256")
			}
			return v.cfg.ServiceKey, nil
		}
		if t.Method.Alg() == "HS256" {
			if len(v.cfg.HS256Key) == 0 {
				return nil, errors.New("HS256 user tokens are not accepted")
			}
			return v.cfg.HS256Key, nil
		}
		if v.jwks == nil {
			return nil, errors.New("asymmetric tokens need ALGA_AUTH_JWKS")
		}
		kid, _ := t.Header["kid"].(string)
		return v.jwks.key(ctx, kid)
	})
	if err != nil || !tok.Valid {
		return Identity{}, fmt.Errorf("%w: %v", ErrUnauthenticated, err)
	}
	wantIss := v.cfg.Issuer
	if claims.Service != "" {
		wantIss = v.cfg.ServiceIssuer
	}
	if wantIss != "" && claims.Issuer != wantIss {
		return Identity{}, fmt.Errorf("%w: issuer %q not accepted", ErrUnauthenticated, claims.Issuer)
	}
	if v.cfg.Audience != "" && !slicesContains(claims.Audience, v.cfg.Audience) {
		return Identity{}, fmt.Errorf("%w: audience not accepted", ErrUnauthenticated)
	}
	if claims.Service == "" {
		if claims.Subject == "" || claims.Tenant == "" {
			return Identity{}, fmt.Errorf("%w: user tokens need sub and tenant", ErrUnauthenticated)
		}
		if claims.UserType != UserTypeInternal {
			return Identity{}, fmt.Errorf("%w: user_type %q is not allowed", ErrForbiddenUserType, claims.UserType)
		}
	}
	id := Identity{
		Subject:     claims.Subject,
		Tenant:      claims.Tenant,
		Permissions: claims.Permissions,
		UserType:    claims.UserType,
		Service:     claims.Service,
	}
	if claims.Service != "" {
		// Kept until exp exactly (no leeway), a copy, so a caller editing its Identity cannot
		// change what the next call with this token is granted.
		v.verified.put(sum, id.clone(), claims.ExpiresAt.Time, v.now())
	}
	return id, nil
}

// ErrForbiddenUserType is returned for client users, who may not use this suite.
var ErrForbiddenUserType = errors.New("forbidden user type")

func slicesContains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
