package auth

import (
	"crypto/sha256"
	"strconv"
	"strings"
	"sync"
	"time"
)

// maxCachedTokens bounds both token caches below: beyond it, expired entries are dropped first and,
// if that frees nothing, the whole cache is (a cache miss only costs a mint or a verification).
const maxCachedTokens = 4096

// serviceTokenTTL is the lifetime of a service token; serviceTokenReuse is how long a minted one is
// handed out again, so a reused token still has a minute (plus the verifier's leeway) to reach its
// callee and be checked there.
const (
	serviceTokenTTL   = 5 * time.Minute
	serviceTokenReuse = serviceTokenTTL - time.Minute
)

// mintedTokens remembers the service tokens a Signer minted, by the identity they carry, so that a
// busy caller (the gateway forwarding every push to gmail) signs one token per identity every few
// minutes rather than one per call.
type mintedTokens struct {
	mu      sync.Mutex
	entries map[string]mintedToken
}

type mintedToken struct {
	raw      string
	reuseEnd time.Time
}

// mintedKey encodes a service token's identity unambiguously (every part length-prefixed, so no
// two identities share a key whatever bytes they hold).
func mintedKey(service, tenant, subject string, permissions []string) string {
	var b strings.Builder
	for _, s := range append([]string{service, tenant, subject}, permissions...) {
		b.WriteString(strconv.Itoa(len(s)))
		b.WriteByte(':')
		b.WriteString(s)
	}
	return b.String()
}

func (m *mintedTokens) get(key string, now time.Time) (string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.entries[key]
	if !ok || !now.Before(e.reuseEnd) {
		return "", false
	}
	return e.raw, true
}

func (m *mintedTokens) put(key, raw string, reuseEnd, now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.entries == nil {
		m.entries = map[string]mintedToken{}
	}
	if _, ok := m.entries[key]; !ok && len(m.entries) >= maxCachedTokens {
		for k, e := range m.entries {
			if !now.Before(e.reuseEnd) {
				delete(m.entries, k)
			}
		}
		if len(m.entries) >= maxCachedTokens {
			clear(m.entries)
		}
	}
	m.entries[key] = mintedToken{raw: raw, reuseEnd: reuseEnd}
}

// verifiedTokens remembers service tokens that passed verification, by the SHA-256 of the raw token,
// until their exp: a token seen again is the same signed bytes, so checking it again could only
// repeat the same answer. Only service tokens are kept — they are signed with the fixed service key —
// never user tokens, whose JWKS keys may be removed (a removed key must stop verifying), and never a
// refused token.
type verifiedTokens struct {
	mu      sync.Mutex
	entries map[[sha256.Size]byte]verifiedToken
}

type verifiedToken struct {
	id  Identity
	exp time.Time
}

func (v *verifiedTokens) get(sum [sha256.Size]byte, now time.Time) (Identity, bool) {
	v.mu.Lock()
	e, ok := v.entries[sum]
	v.mu.Unlock()
	if !ok || !now.Before(e.exp) {
		return Identity{}, false
	}
	return e.id, true
}

func (v *verifiedTokens) put(sum [sha256.Size]byte, id Identity, exp, now time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.entries == nil {
		v.entries = map[[sha256.Size]byte]verifiedToken{}
	}
	if len(v.entries) >= maxCachedTokens {
		for k, e := range v.entries {
			if !now.Before(e.exp) {
				delete(v.entries, k)
			}
		}
		if len(v.entries) >= maxCachedTokens {
			clear(v.entries)
		}
	}
	v.entries[sum] = verifiedToken{id: id, exp: exp}
}
