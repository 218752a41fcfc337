package push

import (
	"context"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Claims are the claims of a Pub/Sub push OIDC token.
type Claims struct {
	jwt.RegisteredClaims
	Email         string `json:"email"`
	EmailVerified any    `json:"email_verified"`
}

// ErrUnauthenticated marks a push whose token is missing or fails verification (answered 401).
var ErrUnauthenticated = errors.New("push token rejected")

// Issuers accepted for Google-signed OIDC tokens.
var Issuers = []string{"https://accounts.google.com", "accounts.google.com"}

// Verifier checks push OIDC tokens: RS256 signature against Google's JWKS, issuer, audience, expiry and
// a verified email. Which email is expected depends on the subscription, so CheckEmail is separate.
type Verifier struct {
	Audience string
	Keys     KeySource
	// Now is the clock (tests); nil means time.Now.
	Now func() time.Time

	verified verifiedTokens
}

// leeway is the clock skew allowed on a token's times (expiry, issued-at).
const leeway = 30 * time.Second

// KeySource finds a verification key by key id.
type KeySource interface {
	Key(ctx context.Context, kid string) (*rsa.PublicKey, error)
}

// BearerToken extracts the token of an Authorization header value.
func BearerToken(header string) (string, error) {
	h := strings.TrimSpace(header)
	if len(h) < 7 || !strings.EqualFold(h[:7], "bearer ") {
		return "", fmt.Errorf("%w: no bearer token", ErrUnauthenticated)
	}
	tok := strings.TrimSpace(h[7:])
	if tok == "" || len(tok) > 16<<10 {
		return "", fmt.Errorf("%w: no bearer token", ErrUnauthenticated)
	}
	return tok, nil
}

// Verify checks token and returns its claims (shared with other calls for the same token: read only). A
// token that passed before is served from the verified-token cache while it has not expired (see
// verifiedTokens).
func (v *Verifier) Verify(ctx context.Context, token string) (*Claims, error) {
	if v.Audience == "" {
		return nil, fmt.Errorf("%w: no audience configured", ErrUnauthenticated)
	}
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	if c, ok := v.verified.get(token, now(), leeway); ok {
		return c, nil
	}
	claims := &Claims{}
	parser := jwt.NewParser(
		jwt.WithValidMethods([]string{"RS256"}),
		jwt.WithAudience(v.Audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(leeway),
		jwt.WithTimeFunc(now),
	)
	_, err := parser.ParseWithClaims(token, claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		if kid == "" {
			return nil, errors.New("token has no kid")
		}
		return v.Keys.Key(ctx, kid)
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnauthenticated, err)
	}
	if err := CheckClaims(claims, v.Audience); err != nil {
		return nil, err
	}
	v.verified.put(token, claims, now(), leeway)
	return claims, nil
}

// CheckClaims checks what the JWT library does not: the issuer and a verified email. (Audience and
// expiry are checked again, so the function is safe on its own.)
func CheckClaims(c *Claims, audience string) error {
	okIss := false
	for _, iss := range Issuers {
		if c.Issuer == iss {
			okIss = true
		}
	}
	if !okIss {
		return fmt.Errorf("%w: issuer %q", ErrUnauthenticated, c.Issuer)
	}
	okAud := false
	for _, a := range c.Audience {
		if a == audience && audience != "" {
			okAud = true
		}
	}
	if !okAud {
		return fmt.Errorf("%w: audience", ErrUnauthenticated)
	}
	if c.ExpiresAt == nil {
		return fmt.Errorf("%w: no expiry", ErrUnauthenticated)
	}
	if c.Email == "" || !emailVerified(c.EmailVerified) {
		return fmt.Errorf("%w: email missing or not verified", ErrUnauthenticated)
	}
	return nil
}

// CheckEmail compares the token's email with the service account recorded for the subscription.
func CheckEmail(c *Claims, want string) error {
	if want == "" || !strings.EqualFold(c.Email, want) {
		return fmt.Errorf("%w: email is not the subscription's service account", ErrUnauthenticated)
	}
	return nil
}

func emailVerified(v any) bool {
	switch x := v.(type) {
	case bool:
		return x
	case string:
		return x == "true"
	}
	return false
}

// JWKS is a cached HTTP key source (Google's certs URL). Keys are cached for the max-age Google sends
// (one hour when absent); an unknown kid refetches at most once per MinRefresh.
type JWKS struct {
	URL        string
	Client     *http.Client
	MinRefresh time.Duration

	mu        sync.Mutex
	keys      map[string]*rsa.PublicKey
	expires   time.Time
	lastFetch time.Time
}

// Key returns the key named kid.
func (j *JWKS) Key(ctx context.Context, kid string) (*rsa.PublicKey, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	now := time.Now()
	if k, ok := j.keys[kid]; ok && now.Before(j.expires) {
		return k, nil
	}
	minRefresh := j.MinRefresh
	if minRefresh == 0 {
		minRefresh = 10 * time.Second
	}
	if j.keys == nil || now.After(j.expires) || now.Sub(j.lastFetch) >= minRefresh {
		if err := j.fetch(ctx, now); err != nil && j.keys == nil {
			return nil, err
		}
	}
	if k, ok := j.keys[kid]; ok {
		return k, nil
	}
	return nil, fmt.Errorf("unknown key id %q", kid)
}

func (j *JWKS) fetch(ctx context.Context, now time.Time) error {
	j.lastFetch = now
	client := j.Client
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, j.URL, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("fetching Google certs: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fetching Google certs: HTTP %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	keys, err := ParseJWKS(body)
	if err != nil {
		return err
	}
	j.keys = keys
	j.expires = now.Add(maxAge(resp.Header.Get("Cache-Control")))
	return nil
}

func maxAge(cc string) time.Duration {
	for _, part := range strings.Split(cc, ",") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(part), "max-age="); ok {
			if n, err := strconv.Atoi(v); err == nil && n > 0 {
				return min(time.Duration(n)*time.Second, 24*time.Hour)
			}
		}
	}
	return time.Hour
}

// ParseJWKS parses the RSA signing keys of a JWKS document.
func ParseJWKS(body []byte) (map[string]*rsa.PublicKey, error) {
	var doc struct {
		Keys []struct {
			Kty, Kid, N, E, Alg, Use string
		} `json:"keys"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("parsing JWKS: %w", err)
	}
	keys := map[string]*rsa.PublicKey{}
	for _, k := range doc.Keys {
		if k.Kty != "RSA" || k.Kid == "" || (k.Use != "" && k.Use != "sig") {
			continue
		}
		n, err1 := base64.RawURLEncoding.DecodeString(strings.TrimRight(k.N, "="))
		e, err2 := base64.RawURLEncoding.DecodeString(strings.TrimRight(k.E, "="))
		if err1 != nil || err2 != nil || len(n) < 256 || len(e) == 0 || len(e) > 4 {
			continue
		}
		exp := 0
		for _, b := range e {
			exp = exp<<8 | int(b)
		}
		if exp < 3 {
			continue
		}
		keys[k.Kid] = &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: exp}
	}
	if len(keys) == 0 {
		return nil, errors.New("JWKS has no usable RSA keys")
	}
	return keys, nil
}
