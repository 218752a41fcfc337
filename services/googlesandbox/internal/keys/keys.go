// Package keys holds the sandbox's RSA keys: a small process-wide pool of generated 2048-bit keys (generation
// is slow, so keys are reused across sandboxes and service accounts of one process), RS256 JWT signing and
// verification, and JWKS rendering.
package keys

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"sync"
)

// Bits is the size of every key the sandbox issues.
const Bits = 2048

// PoolSize is how many distinct keys one process generates before reusing them.
const PoolSize = 4

var (
	poolMu sync.Mutex
	pool   []*rsa.PrivateKey
	next   int
)

// Get returns an RSA key from the process-wide pool, generating one while the pool is not full.
func Get() (*rsa.PrivateKey, error) {
	poolMu.Lock()
	defer poolMu.Unlock()
	if len(pool) < PoolSize {
		k, err := rsa.GenerateKey(rand.Reader, Bits)
		if err != nil {
			return nil, err
		}
		pool = append(pool, k)
		return k, nil
	}
	k := pool[next%len(pool)]
	next++
	return k, nil
}

// PEMPKCS8 encodes a private key as a "PRIVATE KEY" PEM block, like Google's service-account keys.
func PEMPKCS8(k *rsa.PrivateKey) (string, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return "", err
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})), nil
}

// JWK is one RSA public key in JWKS form.
type JWK struct {
	Kty string `json:"kty"`
	Alg string `json:"alg"`
	Use string `json:"use"`
	Kid string `json:"kid"`
	N   string `json:"n"`
	E   string `json:"e"`
}

// PublicJWK renders a public key.
func PublicJWK(kid string, pub *rsa.PublicKey) JWK {
	return JWK{
		Kty: "RSA", Alg: "RS256", Use: "sig", Kid: kid,
		N: base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
		E: base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
	}
}

// Sign returns a compact RS256 JWS of claims with the given key id.
func Sign(k *rsa.PrivateKey, kid string, claims any) (string, error) {
	hdr, err := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT", "kid": kid})
	if err != nil {
		return "", err
	}
	body, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	signing := base64.RawURLEncoding.EncodeToString(hdr) + "." + base64.RawURLEncoding.EncodeToString(body)
	sum := sha256.Sum256([]byte(signing))
	sig, err := rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, sum[:])
	if err != nil {
		return "", err
	}
	return signing + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

// Header is the part of a JWS header the sandbox looks at.
type Header struct {
	Alg string `json:"alg"`
	Kid string `json:"kid"`
	Typ string `json:"typ"`
}

// ErrMalformed is returned for anything that is not a compact JWS.
var ErrMalformed = errors.New("malformed JWT")

// Parse splits a compact JWS without verifying it and decodes its header and claims.
func Parse(token string) (Header, map[string]any, error) {
	var h Header
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return h, nil, ErrMalformed
	}
	hb, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return h, nil, fmt.Errorf("%w: header: %v", ErrMalformed, err)
	}
	if err := json.Unmarshal(hb, &h); err != nil {
		return h, nil, fmt.Errorf("%w: header: %v", ErrMalformed, err)
	}
	cb, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return h, nil, fmt.Errorf("%w: claims: %v", ErrMalformed, err)
	}
	claims := map[string]any{}
	if err := json.Unmarshal(cb, &claims); err != nil {
		return h, nil, fmt.Errorf("%w: claims: %v", ErrMalformed, err)
	}
	if _, err := base64.RawURLEncoding.DecodeString(parts[2]); err != nil {
		return h, nil, fmt.Errorf("%w: signature: %v", ErrMalformed, err)
	}
	return h, claims, nil
}

// Verify checks an RS256 signature of a compact JWS with pub.
func Verify(token string, pub *rsa.PublicKey) error {
	i := strings.LastIndexByte(token, '.')
	if i < 0 || pub == nil {
		return ErrMalformed
	}
	sig, err := base64.RawURLEncoding.DecodeString(token[i+1:])
	if err != nil {
		return ErrMalformed
	}
	sum := sha256.Sum256([]byte(token[:i]))
	return rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig)
}
