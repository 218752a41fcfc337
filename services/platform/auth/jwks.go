package auth

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// JWKS cache defaults (VerifierConfig.JWKSMaxAge, JWKSMinInterval, JWKSFetchTimeout).
const (
	DefaultJWKSMaxAge       = time.Hour
	DefaultJWKSMinInterval  = time.Minute
	DefaultJWKSFetchTimeout = 10 * time.Second
)

// staleWait bounds how long a verification with a known key of an expired set waits for the fetch
// that may remove that key, while the source answered its last fetch; during an outage it never waits.
const staleWait = 2 * time.Second

// jwksCache holds the key set of a file or URL for its lifetime: the response's Cache-Control max-age,
// at most maxAge (and at least minInterval); files live maxAge. A fetched set replaces the previous one
// whole, so a key the source removed stops verifying once the set it was in has expired.
//
// Fetches run one at a time (single flight), in their own goroutine and never under the lock, at most
// once per minInterval (an unknown kid or an expired set asks for one): verifications with a known key
// never wait for a failing source — during an outage the last good set keeps verifying.
type jwksCache struct {
	source      string
	client      *http.Client
	maxAge      time.Duration
	minInterval time.Duration
	timeout     time.Duration
	now         func() time.Time

	mu       sync.Mutex
	set      jose.JSONWebKeySet
	loaded   bool
	expires  time.Time     // the set is fresh until then
	lastTry  time.Time     // start of the last fetch
	lastErr  error         // outcome of the last finished fetch
	inflight chan struct{} // closed when the running fetch finishes; nil when none runs
}

func newJWKSCache(cfg VerifierConfig) *jwksCache {
	c := &jwksCache{source: cfg.JWKS, client: cfg.HTTPClient, maxAge: cfg.JWKSMaxAge, minInterval: cfg.JWKSMinInterval,
		timeout: cfg.JWKSFetchTimeout, now: time.Now}
	if c.maxAge <= 0 {
		c.maxAge = DefaultJWKSMaxAge
	}
	if c.minInterval <= 0 {
		c.minInterval = DefaultJWKSMinInterval
	}
	if c.minInterval > c.maxAge {
		c.minInterval = c.maxAge
	}
	if c.timeout <= 0 {
		c.timeout = DefaultJWKSFetchTimeout
	}
	return c
}

func (c *jwksCache) key(ctx context.Context, kid string) (crypto.PublicKey, error) {
	c.mu.Lock()
	k := c.lookup(kid)
	if k != nil && c.now().Before(c.expires) {
		c.mu.Unlock()
		return k, nil
	}
	// An expired set or an unknown kid: ask for a fetch (joins the running one; none within minInterval
	// of the last).
	done := c.fetchLocked()
	// A stale known key waits for the fetch only while the source answered its last fetch, and only
	// until staleWait after the fetch began: a hanging source delays verifications once, not each.
	waitUntil := c.lastTry.Add(staleWait)
	healthy := c.lastErr == nil && c.now().Before(waitUntil)
	c.mu.Unlock()

	switch {
	case k != nil && (done == nil || !healthy):
		// Stale, and no fetch to wait for, or the source is failing: keep verifying with the last good set.
		return k, nil
	case k != nil:
		wctx, cancel := context.WithDeadline(ctx, waitUntil)
		defer cancel()
		wait(wctx, done)
	case done == nil:
		return nil, fmt.Errorf("unknown key id %q", kid)
	default:
		wait(ctx, done)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if k := c.lookup(kid); k != nil {
		return k, nil
	}
	if c.lastErr != nil && !c.loaded {
		return nil, c.lastErr
	}
	return nil, fmt.Errorf("unknown key id %q", kid)
}

func wait(ctx context.Context, done <-chan struct{}) {
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// fetchLocked returns the channel of the running fetch, starting one when none ran within
// minInterval; nil when none runs. c.mu is held.
func (c *jwksCache) fetchLocked() <-chan struct{} {
	if c.inflight != nil {
		return c.inflight
	}
	now := c.now()
	if !c.lastTry.IsZero() && now.Sub(c.lastTry) < c.minInterval {
		return nil
	}
	c.lastTry = now
	done := make(chan struct{})
	c.inflight = done
	go func() {
		// Its own context: a caller giving up does not abort the fetch every caller shares.
		ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
		defer cancel()
		set, ttl, err := c.load(ctx)
		c.mu.Lock()
		defer c.mu.Unlock()
		if err == nil {
			c.set, c.loaded, c.expires = set, true, c.now().Add(ttl)
		}
		c.lastErr = err
		c.inflight = nil
		close(done)
	}()
	return done
}

func (c *jwksCache) lookup(kid string) crypto.PublicKey {
	for _, k := range c.set.Keys {
		if (kid == "" || k.KeyID == kid) && k.Valid() && (k.Use == "" || k.Use == "sig") {
			return k.Public().Key
		}
	}
	return nil
}

// load reads the key set and how long it may be trusted.
func (c *jwksCache) load(ctx context.Context) (jose.JSONWebKeySet, time.Duration, error) {
	var set jose.JSONWebKeySet
	ttl := c.maxAge
	var body []byte
	var err error
	if strings.HasPrefix(c.source, "http://") || strings.HasPrefix(c.source, "https://") {
		req, rerr := http.NewRequestWithContext(ctx, http.MethodGet, c.source, nil)
		if rerr != nil {
			return set, 0, rerr
		}
		resp, rerr := c.client.Do(req)
		if rerr != nil {
			return set, 0, fmt.Errorf("fetching JWKS: %w", rerr)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return set, 0, fmt.Errorf("fetching JWKS: status %d", resp.StatusCode)
		}
		if maxAge, ok := cacheMaxAge(resp.Header.Get("Cache-Control")); ok && maxAge < ttl {
			ttl = maxAge
		}
		body, err = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	} else {
		body, err = os.ReadFile(c.source)
	}
	if err != nil {
		return set, 0, fmt.Errorf("reading JWKS: %w", err)
	}
	if err := json.Unmarshal(body, &set); err != nil {
		return set, 0, fmt.Errorf("parsing JWKS: %w", err)
	}
	if len(set.Keys) == 0 {
		return set, 0, errors.New("parsing JWKS: the key set is empty")
	}
	return set, max(ttl, c.minInterval), nil
}

// cacheMaxAge reads max-age from a Cache-Control header (no-store and no-cache mean 0).
func cacheMaxAge(header string) (time.Duration, bool) {
	for _, d := range strings.Split(header, ",") {
		d = strings.ToLower(strings.TrimSpace(d))
		switch {
		case d == "no-store" || d == "no-cache":
			return 0, true
		case strings.HasPrefix(d, "max-age="):
			n, err := strconv.Atoi(strings.Trim(strings.TrimPrefix(d, "max-age="), `"`))
			if err == nil && n >= 0 {
				return time.Duration(n) * time.Second, true
			}
		}
	}
	return 0, false
}
