package auth

import (
	"errors"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
)

// Signer mints HS256 tokens: service tokens for calls between our services, and user tokens for
// development and tests (`alga-google token`).
type Signer struct {
	key      []byte
	issuer   string
	audience string
	now      func() time.Time
}

// NewSigner returns a Signer. key must be at least 32 bytes.
func NewSigner(key []byte, issuer, audience string) (*Signer, error) {
	if len(key) < 32 {
		return nil, errors.New("auth: signing key must be at least 32 bytes")
	}
	return &Signer{key: key, issuer: issuer, audience: audience, now: time.Now}, nil
}

// UserToken describes a user token to mint.
type UserToken struct {
	Subject     string
	Tenant      string
	Permissions []string
	UserType    string
	TTL         time.Duration
}

// MintUser signs a user token.
func (s *Signer) MintUser(u UserToken) (string, error) {
	if u.UserType == "" {
		u.UserType = UserTypeInternal
	}
	if u.TTL == 0 {
		u.TTL = time.Hour
	}
	return s.sign(Claims{
		RegisteredClaims: s.registered(u.Subject, u.TTL),
		Tenant:           u.Tenant,
		Permissions:      u.Permissions,
		UserType:         u.UserType,
	})
}

// MintService signs a short-lived service token for service, acting for the given tenant and user
// (both may be empty, e.g. for the gateway's webhook calls, where the callee derives the tenant itself).
func (s *Signer) MintService(service, tenant, actingSubject string, permissions []string) (string, error) {
	if service == "" {
		return "", errors.New("auth: service name required")
	}
	return s.sign(Claims{
		RegisteredClaims: s.registered(actingSubject, 5*time.Minute),
		Tenant:           tenant,
		Permissions:      permissions,
		Service:          service,
	})
}

func (s *Signer) registered(sub string, ttl time.Duration) jwt.RegisteredClaims {
	now := s.now()
	return jwt.RegisteredClaims{
		Issuer:    s.issuer,
		Subject:   sub,
		Audience:  jwt.ClaimStrings{s.audience},
		IssuedAt:  jwt.NewNumericDate(now),
		NotBefore: jwt.NewNumericDate(now.Add(-time.Minute)),
		ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		ID:        uuid.NewString(),
	}
}

func (s *Signer) sign(c Claims) (string, error) {
	return jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(s.key)
}
