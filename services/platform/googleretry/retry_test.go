package googleretry_test

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"
	"google.golang.org/api/googleapi"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/algapsa/alga-google/services/platform/googleretry"
)

// fakeClock is the injected clock: sleeping advances it and records the wait; no wall time passes.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	sleeps []time.Duration
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sleeps = append(c.sleeps, d)
	c.now = c.now.Add(d)
	return nil
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func (c *fakeClock) waits() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.sleeps...)
}

type bundle struct {
	clock *fakeClock
	reg   *prometheus.Registry
	r     *googleretry.Retrier
}

// setup returns a Retrier on a fake clock whose jitter draws rnd(n) (nil: the largest value, n-1).
func setup(t *testing.T, p googleretry.Policy, rnd func(int64) int64) *bundle {
	t.Helper()
	if rnd == nil {
		rnd = func(n int64) int64 { return n - 1 }
	}
	b := &bundle{clock: &fakeClock{now: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}, reg: prometheus.NewRegistry()}
	r, err := googleretry.New(googleretry.Options{Service: "gmail", Policy: p, Registerer: b.reg, Now: b.clock.Now, Sleep: b.clock.Sleep, Rand: rnd})
	require.NoError(t, err)
	b.r = r
	return b
}

func apiErr(code int, retryAfter string) error {
	h := http.Header{}
	if retryAfter != "" {
		h.Set("Retry-After", retryAfter)
	}
	return &googleapi.Error{Code: code, Message: http.StatusText(code), Header: h}
}

// failing returns fn that fails with errs in turn, then succeeds, and a count of its calls.
func failing(errs ...error) (func() error, *int) {
	n := 0
	return func() error {
		n++
		if n <= len(errs) {
			return errs[n-1]
		}
		return nil
	}, &n
}

func TestRetryAfterHonoured(t *testing.T) {
	t.Parallel()
	b := setup(t, googleretry.Policy{MaxWait: time.Minute}, func(int64) int64 { return 0 })
	date := b.clock.Now().Add(7 * time.Second).Format(http.TimeFormat)
	fn, calls := failing(apiErr(429, "3"), apiErr(503, date))
	require.NoError(t, b.r.Do(context.Background(), googleretry.Call{Tenant: "t1", Endpoint: "history.list"}, fn))
	require.Equal(t, 3, *calls)
	// Jitter draws 0 here: each wait is exactly what Google asked for — 3 s, then until the HTTP date
	// (7 s after the start, so 4 s after the first wait).
	require.Equal(t, []time.Duration{3 * time.Second, 4 * time.Second}, b.clock.waits())
	require.Equal(t, 2.0, b.counter(t, "alga_google_api_retries_total", map[string]string{"service": "gmail", "endpoint": "history.list"}))

	// The same from the token endpoint's answer.
	tokErr := &oauth2.RetrieveError{Response: &http.Response{StatusCode: 429, Header: http.Header{"Retry-After": {"2"}}}}
	b2 := setup(t, googleretry.Policy{MaxWait: time.Minute}, func(int64) int64 { return 0 })
	fn, _ = failing(tokErr)
	require.NoError(t, b2.r.Do(context.Background(), googleretry.Call{Tenant: "t1", Endpoint: "token"}, fn))
	require.Equal(t, []time.Duration{2 * time.Second}, b2.clock.waits())

	// And a gRPC RetryInfo (Pub/Sub).
	st, err := status.New(codes.ResourceExhausted, "quota").WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(1500 * time.Millisecond)})
	require.NoError(t, err)
	b3 := setup(t, googleretry.Policy{MaxWait: time.Minute}, func(int64) int64 { return 0 })
	fn, _ = failing(st.Err())
	require.NoError(t, b3.r.Do(context.Background(), googleretry.Call{Tenant: "t1"}, fn))
	require.Equal(t, []time.Duration{1500 * time.Millisecond}, b3.clock.waits())
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"120": 2 * time.Minute, " 5 ": 5 * time.Second, "0": 0, "-3": 0, "soon": 0, "": 0,
		now.Add(90 * time.Second).Format(http.TimeFormat): 90 * time.Second,
		now.Add(-time.Minute).Format(http.TimeFormat):     0,
		"99999999999": 24 * time.Hour,
	} {
		require.Equal(t, want, googleretry.ParseRetryAfter(v, now), v)
	}
}

// Full jitter: each wait is drawn uniformly in [0, ceiling) where the ceiling doubles from Base with the
// tenant's consecutive failures, up to Cap.
func TestJitterBounds(t *testing.T) {
	t.Parallel()
	var asked []int64
	b := setup(t, googleretry.Policy{Attempts: 7, Base: 100 * time.Millisecond, Cap: 1 * time.Second, MaxWait: time.Hour},
		func(n int64) int64 { asked = append(asked, n); return n - 1 })
	e := apiErr(500, "")
	fn, calls := failing(e, e, e, e, e, e)
	require.NoError(t, b.r.Do(context.Background(), googleretry.Call{Tenant: "t1"}, fn))
	require.Equal(t, 7, *calls)
	ceilings := []time.Duration{100, 200, 400, 800, 1000, 1000}
	require.Len(t, asked, len(ceilings))
	for i, c := range ceilings {
		require.Equal(t, int64(c*time.Millisecond), asked[i], "ceiling after %d failures", i+1)
		require.Equal(t, c*time.Millisecond-1, b.clock.waits()[i], "the largest draw stays below the ceiling")
	}

	// With a real source the waits stay within [0, ceiling).
	r := googleretry.Must(googleretry.Options{Policy: googleretry.Policy{Attempts: 6, Base: 100 * time.Millisecond, Cap: time.Second, MaxWait: time.Hour},
		Now: b.clock.Now, Sleep: b.clock.Sleep})
	before := len(b.clock.waits())
	fn, _ = failing(e, e, e, e, e)
	require.NoError(t, r.Do(context.Background(), googleretry.Call{Tenant: "t2"}, fn))
	for i, w := range b.clock.waits()[before:] {
		require.GreaterOrEqual(t, w, time.Duration(0))
		require.Less(t, w, ceilings[i]*time.Millisecond)
	}
}

func TestOnlyTransientFailuresAreRetried(t *testing.T) {
	t.Parallel()
	for _, e := range []error{apiErr(400, ""), apiErr(401, ""), apiErr(403, ""), apiErr(404, ""), apiErr(410, ""),
		&oauth2.RetrieveError{Response: &http.Response{StatusCode: 400}, ErrorCode: "invalid_grant"},
		status.Error(codes.PermissionDenied, "no"), errors.New("malformed answer")} {
		b := setup(t, googleretry.Policy{}, nil)
		fn, calls := failing(e, e)
		require.Equal(t, e, b.r.Do(context.Background(), googleretry.Call{Tenant: "t1"}, fn), "returned as is")
		require.Equal(t, 1, *calls, "%v is not retried", e)
		// ...and it does not draw on the tenant's budget.
		fn, calls = failing()
		require.NoError(t, b.r.Do(context.Background(), googleretry.Call{Tenant: "t1"}, fn))
		require.Equal(t, 1, *calls)
		require.Empty(t, b.clock.waits())
	}
	for _, e := range []error{apiErr(429, ""), apiErr(500, ""), apiErr(502, ""), apiErr(503, ""),
		&oauth2.RetrieveError{Response: &http.Response{StatusCode: 503}}, status.Error(codes.Unavailable, "x"),
		&netError{}} {
		require.True(t, googleretry.Transient(e), "%v", e)
	}
	require.False(t, googleretry.Transient(context.Canceled))
	require.False(t, googleretry.Transient(nil))
}

type netError struct{}

func (*netError) Error() string   { return "connection reset" }
func (*netError) Timeout() bool   { return false }
func (*netError) Temporary() bool { return true }

// A storm for one tenant makes its calls wait and then defer; another tenant's calls go straight
// through, without a wait.
func TestBudgetIsolatesTenants(t *testing.T) {
	t.Parallel()
	b := setup(t, googleretry.Policy{Attempts: 3, Base: time.Second, Cap: 8 * time.Second, MaxWait: 3 * time.Second}, nil)
	storm := apiErr(429, "")
	fn, calls := failing(storm, storm, storm, storm, storm, storm)
	err := b.r.Do(context.Background(), googleretry.Call{Tenant: "a", Endpoint: "messages.get"}, fn)
	until, ok := googleretry.Later(err)
	require.True(t, ok, "%v", err)
	require.ErrorIs(t, err, storm, "the last failure is wrapped for classification")
	require.True(t, googleretry.Transient(err))
	require.Equal(t, 3, *calls)
	// Waits: ~1 s, ~2 s in-call (3 s in all, within MaxWait); the third failure ends the call's attempts
	// with the tenant cooling down for ~4 s.
	require.Equal(t, []time.Duration{time.Second - 1, 2*time.Second - 1}, b.clock.waits())
	require.Equal(t, b.clock.Now().Add(4*time.Second-1), until)

	// Tenant A's next call is held without asking Google: its cool-down is longer than MaxWait.
	fn, calls = failing()
	err = b.r.Do(context.Background(), googleretry.Call{Tenant: "a", Endpoint: "history.list"}, fn)
	_, ok = googleretry.Later(err)
	require.True(t, ok)
	require.Zero(t, *calls)
	require.Equal(t, 1.0, b.counter(t, "alga_google_api_budget_waits_total", map[string]string{"service": "gmail", "endpoint": "history.list", "outcome": "deferred"}))

	// Tenant B is not held at all.
	sleepsBefore := len(b.clock.waits())
	fn, calls = failing()
	require.NoError(t, b.r.Do(context.Background(), googleretry.Call{Tenant: "b", Endpoint: "history.list"}, fn))
	require.Equal(t, 1, *calls)
	require.Len(t, b.clock.waits(), sleepsBefore, "tenant B never waits for tenant A's cool-down")

	// Once A's cool-down has passed, its call goes through; the success resets the strikes, so the next
	// failure backs off from Base again.
	b.clock.advance(4 * time.Second)
	fn, calls = failing()
	require.NoError(t, b.r.Do(context.Background(), googleretry.Call{Tenant: "a"}, fn))
	require.Equal(t, 1, *calls)
	fn, calls = failing(storm)
	require.NoError(t, b.r.Do(context.Background(), googleretry.Call{Tenant: "a"}, fn))
	require.Equal(t, 2, *calls)
	require.Equal(t, time.Second-1, b.clock.waits()[len(b.clock.waits())-1])
}

// Many concurrent calls of a stormed tenant share one cool-down (a shared budget), and none of them
// holds anything another tenant's call needs.
func TestBudgetSharedByConcurrentCalls(t *testing.T) {
	t.Parallel()
	b := setup(t, googleretry.Policy{Attempts: 2, Base: 10 * time.Second, Cap: 10 * time.Second, MaxWait: time.Second}, nil)
	var mu sync.Mutex
	googleCalls := 0
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			err := b.r.Do(context.Background(), googleretry.Call{Tenant: "a"}, func() error {
				mu.Lock()
				defer mu.Unlock()
				googleCalls++
				return apiErr(503, "")
			})
			_, ok := googleretry.Later(err)
			require.True(t, ok)
		})
	}
	wg.Wait()
	// The first failure cools the tenant down for ~10 s: calls that start after it do not ask Google.
	require.Less(t, googleCalls, 20*2, "a storm does not multiply into every call's own retries")
	require.Empty(t, b.clock.waits(), "a 10 s cool-down is longer than MaxWait: nobody waits in-call")
}

func TestCancellationIsNeverRetried(t *testing.T) {
	t.Parallel()
	b := setup(t, googleretry.Policy{MaxWait: time.Minute}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	err := b.r.Do(ctx, googleretry.Call{Tenant: "a"}, func() error {
		calls++
		cancel()
		return apiErr(503, "") // failed because the caller went away
	})
	require.Equal(t, 1, calls)
	require.Error(t, err)
	require.Empty(t, b.clock.waits())

	// A wait for the tenant's cool-down ends with the caller's context, without asking Google again.
	b2 := setup(t, googleretry.Policy{Attempts: 1, MaxWait: time.Minute}, nil)
	fn, calls2 := failing(apiErr(503, "5"))
	_, ok := googleretry.Later(b2.r.Do(context.Background(), googleretry.Call{Tenant: "a"}, fn))
	require.True(t, ok)
	done, cancel2 := context.WithCancel(context.Background())
	cancel2()
	err = b2.r.Do(done, googleretry.Call{Tenant: "a"}, fn)
	require.ErrorIs(t, err, context.Canceled)
	require.Equal(t, 1, *calls2)
	require.Empty(t, b2.clock.waits())
}

// counter reads a counter of the Retrier's registry by its label values (0 when absent).
func (b *bundle) counter(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := b.reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if want, ok := labels[lp.GetName()]; ok && want != lp.GetValue() {
					continue next
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}
