package activities

import (
	"context"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limiter is a rate limit toward Google per tenant: one tenant's thousand mailboxes never use up the
// Google quota (or the worker's time) another tenant's run needs, and a tenant's own project is not
// hammered into 429s. Limits are per worker process.
type Limiter struct {
	mu      sync.Mutex
	perSec  float64
	burst   int
	tenants map[string]*entry
}

type entry struct {
	lim  *rate.Limiter
	used time.Time
}

// NewLimiter allows perSecond calls a second per tenant with the given burst; perSecond <= 0 means
// unlimited.
func NewLimiter(perSecond float64, burst int) *Limiter {
	if burst < 1 {
		burst = 1
	}
	return &Limiter{perSec: perSecond, burst: burst, tenants: map[string]*entry{}}
}

// Wait blocks until the tenant may make n more Google calls (n is capped at the burst).
func (l *Limiter) Wait(ctx context.Context, tenant string, n int) error {
	if l == nil || l.perSec <= 0 || n <= 0 {
		return nil
	}
	if n > l.burst {
		n = l.burst
	}
	l.mu.Lock()
	e, ok := l.tenants[tenant]
	if !ok {
		e = &entry{lim: rate.NewLimiter(rate.Limit(l.perSec), l.burst)}
		l.tenants[tenant] = e
	}
	e.used = time.Now()
	// Forget tenants idle for an hour, so the map does not grow with every tenant ever seen.
	if len(l.tenants) > 64 {
		for k, v := range l.tenants {
			if time.Since(v.used) > time.Hour {
				delete(l.tenants, k)
			}
		}
	}
	l.mu.Unlock()
	return e.lim.WaitN(ctx, n)
}
