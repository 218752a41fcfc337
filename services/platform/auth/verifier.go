package auth

import (
	"context"
	"crypto"
	"crypto/hmac"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
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
}

// Verifier checks bearer tokens.
type Verifier struct {
	cfg  VerifierConfig
	jwks *jwksCache
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
	v := &Verifier{cfg: cfg}
	if cfg.JWKS != "" {
		v.jwks = &jwksCache{source: cfg.JWKS, client: cfg.HTTPClient}
	}
	return v, nil
}

// Verify parses and checks a raw JWT and returns the identity it carries.
// Service tokens must be signed with the service key; user tokens with the HS256 key or a JWKS key.
// Client users (user_type=client) are refused everywhere.
func (v *Verifier) Verify(ctx context.Context, raw string) (Identity, error) {
	var claims Claims
	parser := jwt.NewParser(
		jwt.WithValidMethods([]string{"HS256", "RS256", "ES256", "EdDSA"}),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(30*time.Second),
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
	return Identity{
		Subject:     claims.Subject,
		Tenant:      claims.Tenant,
		Permissions: claims.Permissions,
		UserType:    claims.UserType,
		Service:     claims.Service,
	}, nil
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

// jwksCache holds a key set loaded from a file or URL, reloaded (at most once a minute) on an unknown kid.
type jwksCache struct {
	source string
	client *http.Client

	mu       sync.Mutex
	set      jose.JSONWebKeySet
	loadedAt time.Time
}

func (c *jwksCache) key(ctx context.Context, kid string) (crypto.PublicKey, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if k := c.lookup(kid); k != nil {
		return k, nil
	}
	if time.Since(c.loadedAt) < time.Minute && !c.loadedAt.IsZero() {
		return nil, fmt.Errorf("unknown key id %q", kid)
	}
	if err := c.load(ctx); err != nil {
		return nil, err
	}
	if k := c.lookup(kid); k != nil {
		return k, nil
	}
	return nil, fmt.Errorf("unknown key id %q", kid)
}

func (c *jwksCache) lookup(kid string) crypto.PublicKey {
	for _, k := range c.set.Keys {
		if (kid == "" || k.KeyID == kid) && k.Valid() {
			return k.Public().Key
		}
	}
	return nil
}

func (c *jwksCache) load(ctx context.Context) error {
	var body []byte
	var err error
	if strings.HasPrefix(c.source, "http://") || strings.HasPrefix(c.source, "https://") {
		req, rerr := http.NewRequestWithContext(ctx, http.MethodGet, c.source, nil)
		if rerr != nil {
			return rerr
		}
		resp, rerr := c.client.Do(req)
		if rerr != nil {
			return fmt.Errorf("fetching JWKS: %w", rerr)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("fetching JWKS: status %d", resp.StatusCode)
		}
		body, err = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	} else {
		body, err = os.ReadFile(c.source)
	}
	if err != nil {
		return fmt.Errorf("reading JWKS: %w", err)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(body, &set); err != nil {
		return fmt.Errorf("parsing JWKS: %w", err)
	}
	c.set = set
	c.loadedAt = time.Now()
	return nil
}
