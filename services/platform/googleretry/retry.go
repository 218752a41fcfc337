// Package googleretry is the one way the services retry calls to Google: exponential backoff with full
// jitter and a cap, Retry-After honoured, transient failures only (429, 5xx, network errors and
// timeouts — never another 4xx, never the caller's cancellation), and a per-tenant budget shared by
// every call of a tenant in the process.
//
// The budget is a cool-down: each transient failure of a tenant's call pushes the tenant's "no calls
// before T" further out (the backoff grows with the tenant's consecutive failures, whatever call they
// came from; a success resets it). Every call of that tenant waits for T before asking Google, so a
// storm makes the tenant's calls back off together instead of each hot-looping on its own. A call waits
// in-call only briefly (Policy.MaxWait): a longer cool-down ends it at once with a *RetryLater carrying
// T, so the caller's job queue (River snooze, Temporal retry) runs it again then and no worker slot is
// held while waiting. No lock or slot is shared between tenants: another tenant's calls never wait.
package googleretry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/oauth2"
	"google.golang.org/api/googleapi"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/algapsa/alga-google/services/platform/metrics"
)

// Policy tunes the retries. Zero fields take the defaults.
type Policy struct {
	// Attempts bounds the requests one call makes, the first included (default 4).
	Attempts int
	// Base is the backoff ceiling after a tenant's first failure (default 200 ms); it doubles with each
	// consecutive failure of the tenant, up to Cap (default 10 s). The wait is uniform in [0, ceiling)
	// ("full jitter"), or Google's Retry-After when that is longer.
	Base, Cap time.Duration
	// MaxWait bounds how long one call waits in-call, in all, for its tenant's cool-down (default 1 s).
	// A longer wait ends the call with *RetryLater instead.
	MaxWait time.Duration
	// Transient classifies a failure as worth retrying (default Transient).
	Transient func(error) bool
}

func (p Policy) withDefaults() Policy {
	if p.Attempts < 1 {
		p.Attempts = 4
	}
	if p.Base <= 0 {
		p.Base = 200 * time.Millisecond
	}
	if p.Cap <= 0 {
		p.Cap = 10 * time.Second
	}
	if p.Cap < p.Base {
		p.Cap = p.Base
	}
	if p.MaxWait <= 0 {
		p.MaxWait = time.Second
	}
	if p.Transient == nil {
		p.Transient = Transient
	}
	return p
}

// Options configure a Retrier.
type Options struct {
	// Service labels the metrics ("gmail", "calendar", "oauth").
	Service string
	Policy  Policy
	// Registerer receives the metrics (nil: not registered).
	Registerer prometheus.Registerer

	// Test seams: the clock, the wait (returns ctx's error when ctx ends first) and the jitter source
	// (uniform in [0, n)). Defaults: time.Now, a timer, math/rand/v2.
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
	Rand  func(n int64) int64
}

// Retrier runs calls to Google with retries and keeps the per-tenant budgets of one service.
type Retrier struct {
	service string
	policy  Policy
	now     func() time.Time
	sleep   func(ctx context.Context, d time.Duration) error
	rand    func(n int64) int64

	retries *prometheus.CounterVec
	waits   *prometheus.CounterVec

	mu      sync.Mutex // guards tenants only; never held while waiting or calling
	tenants map[string]*budget
}

// budget is one tenant's cool-down.
type budget struct {
	until   time.Time // no call of the tenant before this
	strikes int       // consecutive transient failures
}

// New returns a Retrier; an error only when its metrics cannot be registered.
func New(o Options) (*Retrier, error) {
	r := &Retrier{service: o.Service, policy: o.Policy.withDefaults(), now: o.Now, sleep: o.Sleep, rand: o.Rand,
		tenants: map[string]*budget{}}
	if r.now == nil {
		r.now = time.Now
	}
	if r.sleep == nil {
		r.sleep = sleep
	}
	if r.rand == nil {
		r.rand = rand.Int64N
	}
	reg := metrics.NewRegistrar(o.Registerer)
	r.retries = metrics.Use(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "alga_google_api_retries_total",
		Help: "Requests to Google repeated after a transient failure (429, 5xx, network), by service and endpoint class.",
	}, []string{"service", "endpoint"}))
	r.waits = metrics.Use(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "alga_google_api_budget_waits_total",
		Help: "Calls held by their tenant's Google cool-down, by service, endpoint class and outcome (waited in-call, or deferred: ended with a retry-later error).",
	}, []string{"service", "endpoint", "outcome"}))
	return r, reg.Err()
}

// Must is New for tests and defaults that register no metrics.
func Must(o Options) *Retrier {
	r, err := New(o)
	if err != nil {
		panic(err)
	}
	return r
}

// Call names one call for the budget and the metrics.
type Call struct {
	// Tenant whose budget the call draws on (from the verified identity or trusted data).
	Tenant string
	// Endpoint is the metrics label: a small fixed set per service ("history.list", "token", …).
	Endpoint string
	// Attempts overrides Policy.Attempts for this call (0: the policy's).
	Attempts int
}

// RetryLater ends a call its tenant's budget does not allow now: retry it (the job) at Until. Err is
// the last failure from Google, nil when the call was held before asking (unwrap it to classify).
type RetryLater struct {
	Until time.Time
	Err   error
}

func (e *RetryLater) Error() string {
	if e.Err == nil {
		return "google: the tenant's calls are backing off after transient failures; retry after " + e.Until.UTC().Format(time.RFC3339)
	}
	return fmt.Sprintf("google: retry after %s: %v", e.Until.UTC().Format(time.RFC3339), e.Err)
}

func (e *RetryLater) Unwrap() error { return e.Err }

// Later returns when a failed call may be tried again, if err is (or wraps) a *RetryLater.
func Later(err error) (time.Time, bool) {
	var rl *RetryLater
	if errors.As(err, &rl) {
		return rl.Until, true
	}
	return time.Time{}, false
}

// Do runs fn until it succeeds, fails for good, or the call's attempts or its in-call wait are used
// up. A non-transient error is returned as fn returned it; after the caller's context ended, its error
// (or fn's). Transient failures that outlast the call end it with a *RetryLater wrapping the last one.
func (r *Retrier) Do(ctx context.Context, c Call, fn func() error) error {
	attempts := c.Attempts
	if attempts < 1 {
		attempts = r.policy.Attempts
	}
	var waited time.Duration
	var last error
	for made := 0; ; {
		if wait, until := r.coolDown(c.Tenant); wait > 0 {
			if waited+wait > r.policy.MaxWait {
				r.waits.WithLabelValues(r.service, c.Endpoint, "deferred").Inc()
				return &RetryLater{Until: until, Err: last}
			}
			r.waits.WithLabelValues(r.service, c.Endpoint, "waited").Inc()
			if err := r.sleep(ctx, wait); err != nil {
				return err
			}
			waited += wait
			continue // another call of the tenant may have pushed the cool-down further
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if made > 0 {
			r.retries.WithLabelValues(r.service, c.Endpoint).Inc()
		}
		made++
		err := fn()
		if err == nil {
			r.succeeded(c.Tenant)
			return nil
		}
		if ctx.Err() != nil {
			return err // cancelled or out of time: never retried
		}
		if !r.policy.Transient(err) {
			return err // a refusal says nothing about Google's load: the budget is untouched
		}
		last = err
		until := r.failed(c.Tenant, retryAfter(err, r.now()))
		if made >= attempts {
			return &RetryLater{Until: until, Err: last}
		}
	}
}

// coolDown is how long the tenant's calls must still wait, and until when.
func (r *Retrier) coolDown(tenant string) (time.Duration, time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	b := r.tenants[tenant]
	if b == nil {
		return 0, time.Time{}
	}
	return b.until.Sub(r.now()), b.until
}

// failed records a transient failure of the tenant: one more strike, and the cool-down pushed to at
// least now + the jittered backoff (or Google's Retry-After when longer). It returns the cool-down's end.
func (r *Retrier) failed(tenant string, after time.Duration) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	b := r.tenants[tenant]
	if b == nil {
		b = &budget{}
		r.tenants[tenant] = b
	}
	b.strikes++
	wait := r.jitter(r.ceiling(b.strikes))
	if after > wait {
		wait = after
	}
	if until := r.now().Add(wait); until.After(b.until) {
		b.until = until
	}
	return b.until
}

// succeeded clears the tenant's strikes; a tenant with nothing left to wait for is forgotten (the map
// holds only tenants in trouble).
func (r *Retrier) succeeded(tenant string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if b := r.tenants[tenant]; b != nil {
		b.strikes = 0
		if !b.until.After(r.now()) {
			delete(r.tenants, tenant)
		}
	}
}

// ceiling is the backoff ceiling after n consecutive failures: Base·2^(n-1), capped.
func (r *Retrier) ceiling(n int) time.Duration {
	d := r.policy.Base
	for i := 1; i < n && d < r.policy.Cap; i++ {
		d *= 2
	}
	return min(d, r.policy.Cap)
}

// jitter is uniform in [0, d): full jitter spreads the retries of many calls over the whole window.
func (r *Retrier) jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return time.Duration(r.rand(int64(d)))
}

// Transient reports a failure worth retrying: HTTP 429 or 5xx from a Google API or the token endpoint,
// the gRPC codes of an overloaded or unreachable service, network errors and request timeouts, a cut
// answer, and a *RetryLater. A cancelled context never is.
func Transient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var rl *RetryLater
	if errors.As(err, &rl) {
		return true
	}
	var ge *googleapi.Error
	if errors.As(err, &ge) {
		return transientHTTP(ge.Code)
	}
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		return re.Response != nil && transientHTTP(re.Response.StatusCode)
	}
	if st, ok := status.FromError(err); ok {
		switch st.Code() {
		case codes.Unavailable, codes.ResourceExhausted, codes.Internal, codes.DeadlineExceeded, codes.Aborted:
			return true
		}
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.ErrUnexpectedEOF)
}

func transientHTTP(code int) bool {
	return code == http.StatusTooManyRequests || code >= 500
}

// retryAfter is the wait Google asked for: the Retry-After header (seconds or an HTTP date) of an API
// error or a token-endpoint answer, or a gRPC RetryInfo; 0 when none.
func retryAfter(err error, now time.Time) time.Duration {
	var h http.Header
	var ge *googleapi.Error
	var re *oauth2.RetrieveError
	switch {
	case errors.As(err, &ge):
		h = ge.Header
	case errors.As(err, &re) && re.Response != nil:
		h = re.Response.Header
	default:
		if st, ok := status.FromError(err); ok {
			for _, d := range st.Details() {
				if info, ok := d.(*errdetails.RetryInfo); ok && info.GetRetryDelay() != nil {
					return max(info.GetRetryDelay().AsDuration(), 0)
				}
			}
		}
		return 0
	}
	return ParseRetryAfter(h.Get("Retry-After"), now)
}

// ParseRetryAfter reads a Retry-After value: delay-seconds or an HTTP date (RFC 9110 §10.2.3). Bad or
// past values are 0.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		return time.Duration(min(n, int64(24*time.Hour/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// sleep waits d, or until ctx ends (its error).
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
