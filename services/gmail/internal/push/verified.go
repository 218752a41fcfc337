package push

import (
	"crypto/sha256"
	"sync"
	"time"
)

// Pub/Sub signs a push token once and sends it with every push to the endpoint for a while (until it
// nears its expiry), so a backlog redelivered after an outage — thousands of pushes a second — carries a
// handful of distinct tokens. Verifying each from scratch (RS256 against the JWKS, then the claims) is
// most of a push's CPU. verifiedTokens remembers the claims of tokens that passed, keyed by the token's
// SHA-256, and serves a token seen before while it has not expired — the technique of API gateways'
// JWT caches (Envoy's jwt_authn cache, for one). It is as strict as verifying again: the bytes are the
// same, so the signature and every claim but time are the same; time is checked on every use, with the
// same leeway. Only tokens that passed are remembered (a forged token is verified, and refused, every
// time), so the cache cannot be filled with garbage; it is bounded anyway.
type verifiedTokens struct {
	mu     sync.Mutex
	claims map[[sha256.Size]byte]*Claims
}

// maxVerifiedTokens bounds the cache: far more than the live tokens of every subscription pushing to
// one replica. When full, expired entries go; if none has, it starts over.
const maxVerifiedTokens = 4096

// get returns the claims of token if it passed before and is still within its expiry (plus leeway) at
// now. The claims are shared: callers must not modify them.
func (c *verifiedTokens) get(token string, now time.Time, leeway time.Duration) (*Claims, bool) {
	key := sha256.Sum256([]byte(token))
	c.mu.Lock()
	defer c.mu.Unlock()
	cl, ok := c.claims[key]
	if !ok {
		return nil, false
	}
	if !live(cl, now, leeway) {
		delete(c.claims, key)
		return nil, false
	}
	return cl, true
}

// put remembers a token that passed verification.
func (c *verifiedTokens) put(token string, cl *Claims, now time.Time, leeway time.Duration) {
	key := sha256.Sum256([]byte(token))
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.claims == nil {
		c.claims = map[[sha256.Size]byte]*Claims{}
	}
	if len(c.claims) >= maxVerifiedTokens {
		for k, old := range c.claims {
			if !live(old, now, leeway) {
				delete(c.claims, k)
			}
		}
		if len(c.claims) >= maxVerifiedTokens {
			clear(c.claims)
		}
	}
	c.claims[key] = cl
}

// live is the JWT library's expiry rule (exp + leeway not passed); a verified token always has exp.
func live(cl *Claims, now time.Time, leeway time.Duration) bool {
	return cl.ExpiresAt != nil && !now.After(cl.ExpiresAt.Add(leeway))
}
