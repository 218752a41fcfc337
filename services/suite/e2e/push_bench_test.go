package e2e_test

import (
	"bytes"
	"context"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/algapsa/alga-google/services/platform/googleapi"
	"github.com/algapsa/alga-google/services/platform/pg"
)

// BenchmarkPushIngest measures Gmail push ingest as Google pushes: HTTP POSTs with a real OIDC token
// (signed by the sandbox's Pub/Sub for the tenant's service account and the canonical audience, captured
// from a real delivery) to the gateway's webhook — the product's whole path: gateway → gRPC → verify →
// route → store + durable enqueue → 204 — beside its baseline, a bare net/http handler that does only
// what a correct handler must: verify the same token against the same JWKS with the same checks
// (signature, issuer, audience, expiry, email_verified, the service account's email), parse the
// envelope, and one idempotent INSERT on the same database (its own table, in the same run).
//
// Two shapes, on one arranged world (1 tenant × 100 connected Gmail mailboxes):
//
//   - mailboxes=1: a Pub/Sub backlog after an outage for one mailbox: 32 pushes at once, all for the
//     same mailbox, every fourth a redelivery of the one before (same Pub/Sub message id);
//   - mailboxes=100: the same mix spread over 100 mailboxes, 32 at once.
//
// Each iteration runs rounds of ALGA_BENCH_PUSHES pushes (default 2,000) per side, alternating which side
// goes first; after each product round the syncs it caused are waited for (not timed), so neither side
// runs beside the other's leftovers. Reported: pushes/s, p50 and p99 (ms) of each side and
// product/bare (pushes/s); then open-loop runs at half the bare handler's rate (paced_rate), three 4 s
// runs per side alternating, each side's median p99 (latency from the scheduled send time). The third sub-benchmark,
// rss, pushes ALGA_BENCH_RSS_PUSHES (default 100,000) through the product over the 100 mailboxes and
// reports the process's RSS before and after (the whole test process: suite, sandbox and load; each
// read after a GC that returns freed memory to the OS).
func BenchmarkPushIngest(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Hour)
	defer cancel()
	pw := newPushWorld(b, ctx, 100)
	perRound := benchEnvInt(b, "ALGA_BENCH_PUSHES", 2000)
	for _, shape := range []pushShape{{mailboxes: 1, concurrency: 32}, {mailboxes: 100, concurrency: 32}} {
		b.Run(fmt.Sprintf("mailboxes=%d", shape.mailboxes), func(b *testing.B) {
			var bare, product pushStats
			for i := range b.N {
				for r := range 3 {
					first, second := pw.bareRound, pw.productRound
					if (i+r)%2 == 1 {
						first, second = second, first
					}
					for _, round := range []func(context.Context, pushShape, int) (pushStats, error){first, second} {
						st, err := round(ctx, shape, perRound)
						if err != nil {
							b.Fatal(err)
						}
						if st.product {
							product = product.add(st)
						} else {
							bare = bare.add(st)
						}
					}
				}
			}
			rate := bare.rate() / 2
			// Three paced pairs, alternating which side goes first; each side's p99 is the median of its
			// three (all three are logged): one 4 s window's p99 is its ~60 slowest pushes, so one stall of
			// this shared machine — a checkpoint, a neighbour — decides it for whichever side it hits.
			var pacedBare, pacedProduct []float64
			for k := range 3 {
				sides := []string{pw.bareURL, pw.productURL}
				if k%2 == 1 {
					sides[0], sides[1] = sides[1], sides[0]
				}
				for _, url := range sides {
					st, err := pw.paced(ctx, url, shape, rate, 4*time.Second)
					if err != nil {
						b.Fatal(err)
					}
					if url == pw.bareURL {
						pacedBare = append(pacedBare, st.pct(99))
					} else {
						pacedProduct = append(pacedProduct, st.pct(99))
					}
				}
			}
			if err := pw.drain(ctx); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(bare.rate(), "bare_pushes/s")
			b.ReportMetric(product.rate(), "product_pushes/s")
			b.ReportMetric(product.rate()/bare.rate(), "product/bare")
			b.ReportMetric(bare.pct(50), "bare_p50_ms")
			b.ReportMetric(bare.pct(99), "bare_p99_ms")
			b.ReportMetric(product.pct(50), "product_p50_ms")
			b.ReportMetric(product.pct(99), "product_p99_ms")
			b.ReportMetric(rate, "paced_rate")
			b.ReportMetric(median(pacedBare), "paced_bare_p99_ms")
			b.ReportMetric(median(pacedProduct), "paced_product_p99_ms")
			b.Logf("%d mailbox(es), %d at once, %d pushes a round: bare %.0f/s (p50 %.1f ms, p99 %.1f ms) | product %.0f/s (p50 %.1f ms, p99 %.1f ms) | product/bare %.2f× | "+
				"paced at %.0f/s, p99 of three alternating 4 s runs: bare %.1f ms %v, product %.1f ms %v",
				shape.mailboxes, shape.concurrency, perRound, bare.rate(), bare.pct(50), bare.pct(99), product.rate(), product.pct(50), product.pct(99),
				product.rate()/bare.rate(), rate, median(pacedBare), pacedBare, median(pacedProduct), pacedProduct)
		})
	}
	b.Run("rss", func(b *testing.B) {
		total := benchEnvInt(b, "ALGA_BENCH_RSS_PUSHES", 100000)
		shape := pushShape{mailboxes: 100, concurrency: 32}
		for range b.N {
			debug.FreeOSMemory()
			before := rssMB(b)
			st, err := pw.productRound(ctx, shape, total)
			if err != nil {
				b.Fatal(err)
			}
			debug.FreeOSMemory()
			after := rssMB(b)
			b.ReportMetric(before, "rss_before_MB")
			b.ReportMetric(after, "rss_after_MB")
			b.ReportMetric(st.rate(), "product_pushes/s")
			b.Logf("%d pushes through the product at %.0f/s (p99 %.1f ms): RSS %.0f MB before, %.0f MB after", total, st.rate(), st.pct(99), before, after)
		}
	})
}

// TestGmailPushIngestUnderLoad runs the benchmark's code path at a small scale (3 mailboxes, 200 pushes
// a side, 16 at once) so `make test` keeps it working, and checks what it must not trade for speed:
// every push answered 204, each Pub/Sub message stored once (redeliveries counted as duplicates), the
// bare table holding the same, and every mailbox's pushes synced (no notification left pending).
func TestGmailPushIngestUnderLoad(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	pw := newPushWorld(t, ctx, 3)
	pool := pw.w.main.App.Deps().Pool
	count := func(sql string, args ...any) int {
		var n int
		require.NoError(t, pool.QueryRow(ctx, sql, args...).Scan(&n))
		return n
	}
	notifications := count("SELECT count(*) FROM gmail.notifications")
	for _, shape := range []pushShape{{mailboxes: 1, concurrency: 16}, {mailboxes: 3, concurrency: 16}} {
		st, err := pw.productRound(ctx, shape, 200)
		require.NoError(t, err)
		require.Equal(t, 200, len(st.latencies))
		distinct := 200 - 200/4
		notifications += distinct
		require.Equal(t, notifications, count("SELECT count(*) FROM gmail.notifications"), "each Pub/Sub message stored once")
		bare, err := pw.bareRound(ctx, shape, 200)
		require.NoError(t, err)
		require.Equal(t, 200, len(bare.latencies))
		require.Equal(t, distinct, count("SELECT count(*) FROM public.bench_push_bare WHERE message_id LIKE $1", bare.prefix+"%"))
	}
	require.Equal(t, 0, count("SELECT count(*) FROM gmail.notifications WHERE process_time IS NULL"), "every push synced")
	metrics := pw.w.main.HTTP("").Do(t, http.MethodGet, pw.w.main.MetricsURL+"/metrics", nil).String()
	require.Contains(t, metrics, `alga_gmail_push_requests_total{result="duplicate"} 100`)
}

// pushShape is how pushes are spread: over how many mailboxes, and how many at once.
type pushShape struct{ mailboxes, concurrency int }

// pushWorld is the arranged world (benchWorld: one tenant, its Gmail mailboxes connected), a real push
// token for its subscription, and the bare handler on the same database.
type pushWorld struct {
	tb           testing.TB
	w            *benchWorld
	t            *benchTenant
	auth         string // "Bearer <token>" as the sandbox's Pub/Sub sent it
	productURL   string
	bareURL      string
	client       *http.Client
	rounds       atomic.Int64
	barePool     *pgxpool.Pool
	serviceEmail string
}

func newPushWorld(tb testing.TB, ctx context.Context, mailboxes int) *pushWorld {
	tb.Helper()
	w := newBenchWorld(tb, ctx, benchScale{tenants: 1, gmail: mailboxes})
	t := w.tenants[0]
	sub, err := w.admin.Subscription(ctx, t.subscription)
	require.NoError(tb, err)
	// A real token: a second push subscription on the tenant's topic, configured like ours, captures the
	// push Pub/Sub sends for a real delivery (the token does not cover the body, so every benchmark push
	// reuses it, as Google reuses a push token for a while).
	e := &env{s: w.main, admin: w.admin, ctx: ctx}
	capture := e.capturePushes(tb, t.topic, sub.ServiceAccountEmail)
	require.NoError(tb, w.admin.AdvanceClock(ctx, time.Second))
	_, err = w.admin.Deliver(ctx, t.gmail[0].email, plainEmail(t.gmail[0].email, "token capture"))
	require.NoError(tb, err)
	got := capture.wait(tb, 1)
	require.True(tb, strings.HasPrefix(got.Authorization, "Bearer "), "the captured push carries a token")

	barePool, err := pg.Connect(ctx, w.db)
	require.NoError(tb, err)
	tb.Cleanup(barePool.Close)
	_, err = barePool.Exec(ctx, `CREATE TABLE IF NOT EXISTS public.bench_push_bare (
		id bigserial PRIMARY KEY, subscription text NOT NULL, message_id text NOT NULL, email_address text NOT NULL,
		history_id bigint NOT NULL, publish_time timestamptz, receive_time timestamptz NOT NULL DEFAULT now(),
		UNIQUE (subscription, message_id))`)
	require.NoError(tb, err)
	keys, err := fetchJWKS(ctx, googleapi.Endpoints{Root: w.sb.URL()}.CertsURL())
	require.NoError(tb, err)
	bare := httptest.NewServer(&bareHandler{pool: barePool, keys: keys, audience: sub.Audience, email: sub.ServiceAccountEmail})
	tb.Cleanup(bare.Close)

	pw := &pushWorld{tb: tb, w: w, t: t, auth: got.Authorization, productURL: w.main.BaseURL + "/api/email/webhooks/google",
		bareURL: bare.URL, barePool: barePool, serviceEmail: sub.ServiceAccountEmail,
		client: &http.Client{Transport: &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256, IdleConnTimeout: time.Minute}}}
	tb.Cleanup(pw.client.CloseIdleConnections)
	require.NoError(tb, pw.drain(ctx))
	return pw
}

// bodies builds n push envelopes of a round: every fourth repeats the message id of the one before (a
// redelivery); mailbox i%mailboxes. The history id is the mailbox's current one, as a redelivered
// notification after an outage mostly is.
func (pw *pushWorld) bodies(prefix string, shape pushShape, n int) [][]byte {
	out := make([][]byte, n)
	for i := range n {
		id := i
		if i%4 == 3 {
			id = i - 1
		}
		mb := pw.t.gmail[i%shape.mailboxes].email
		out[i] = envelope(pw.t.subscription, fmt.Sprintf("%s-%d", prefix, id), mb, 1)
	}
	return out
}

// pushStats are the latencies of one or more rounds and their wall time.
type pushStats struct {
	product   bool
	prefix    string
	latencies []time.Duration
	wall      time.Duration
}

func (s pushStats) add(o pushStats) pushStats {
	s.latencies = append(s.latencies, o.latencies...)
	s.wall += o.wall
	return s
}

func (s pushStats) rate() float64 { return float64(len(s.latencies)) / s.wall.Seconds() }

// pct is the p-th percentile latency in milliseconds.
func (s pushStats) pct(p int) float64 {
	if len(s.latencies) == 0 {
		return 0
	}
	l := slices.Clone(s.latencies)
	slices.Sort(l)
	return float64(l[min(len(l)-1, len(l)*p/100)]) / float64(time.Millisecond)
}

func (pw *pushWorld) productRound(ctx context.Context, shape pushShape, n int) (pushStats, error) {
	st, err := pw.round(ctx, pw.productURL, shape, n)
	st.product = true
	if err != nil {
		return st, err
	}
	// The syncs the round caused run before the next round (untimed), so no round runs beside them.
	return st, pw.drain(ctx)
}

func (pw *pushWorld) bareRound(ctx context.Context, shape pushShape, n int) (pushStats, error) {
	return pw.round(ctx, pw.bareURL, shape, n)
}

// round posts n pushes to url, shape.concurrency at once, and times each.
func (pw *pushWorld) round(ctx context.Context, url string, shape pushShape, n int) (pushStats, error) {
	prefix := fmt.Sprintf("bench-%d", pw.rounds.Add(1))
	bodies := pw.bodies(prefix, shape, n)
	st := pushStats{prefix: prefix, latencies: make([]time.Duration, n)}
	var next atomic.Int64
	var failed atomic.Value
	var wg sync.WaitGroup
	began := time.Now()
	for range shape.concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || failed.Load() != nil {
					return
				}
				start := time.Now()
				if err := pw.post(ctx, url, bodies[i]); err != nil {
					failed.Store(err)
					return
				}
				st.latencies[i] = time.Since(start)
			}
		}()
	}
	wg.Wait()
	st.wall = time.Since(began)
	if err, _ := failed.Load().(error); err != nil {
		return st, err
	}
	return st, nil
}

// paced posts pushes at rate per second for d (open loop: each at its scheduled time, whatever the
// answers before it), latency measured from the scheduled time.
func (pw *pushWorld) paced(ctx context.Context, url string, shape pushShape, rate float64, d time.Duration) (pushStats, error) {
	n := int(rate * d.Seconds())
	prefix := fmt.Sprintf("paced-%d", pw.rounds.Add(1))
	bodies := pw.bodies(prefix, shape, n)
	st := pushStats{prefix: prefix, latencies: make([]time.Duration, n)}
	var failed atomic.Value
	var wg sync.WaitGroup
	began := time.Now()
	for i := range n {
		at := began.Add(time.Duration(float64(i) / rate * float64(time.Second)))
		time.Sleep(time.Until(at))
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := pw.post(ctx, url, bodies[i]); err != nil {
				failed.Store(err)
			}
			st.latencies[i] = time.Since(at)
		}()
	}
	wg.Wait()
	st.wall = time.Since(began)
	if err, _ := failed.Load().(error); err != nil {
		return st, err
	}
	if url == pw.productURL {
		return st, pw.drain(ctx)
	}
	return st, nil
}

func (pw *pushWorld) post(ctx context.Context, url string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", pw.auth)
	resp, err := pw.client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("push to %s answered %d", url, resp.StatusCode)
	}
	return nil
}

// drain waits until the product has synced every stored push: no notification pending, no history sync
// queued or running.
func (pw *pushWorld) drain(ctx context.Context) error {
	pool := pw.w.main.App.Deps().Pool
	deadline := time.Now().Add(5 * time.Minute)
	for {
		var pending int
		if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM gmail.notifications WHERE process_time IS NULL) +
			(SELECT count(*) FROM gmail.river_job WHERE kind = 'gmail_history_sync' AND state NOT IN ('completed','cancelled','discarded'))`).Scan(&pending); err != nil {
			return err
		}
		if pending == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d notifications or syncs still pending", pending)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// bareHandler is the baseline: what a correct push handler must do and nothing else — verify the token
// (RS256 against the JWKS, issuer, audience, expiry, issued-at, verified email equal to the service
// account), parse the envelope, store it with one idempotent INSERT, answer 204.
type bareHandler struct {
	pool            *pgxpool.Pool
	keys            map[string]*rsa.PublicKey // the JWKS, fetched once (the product caches it too)
	audience, email string
}

type bareClaims struct {
	jwt.RegisteredClaims
	Email         string `json:"email"`
	EmailVerified bool   `json:"email_verified"`
}

func (h *bareHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 256<<10))
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var claims bareClaims
	_, err = jwt.NewParser(jwt.WithValidMethods([]string{"RS256"}), jwt.WithAudience(h.audience), jwt.WithIssuer(googleapi.Issuer),
		jwt.WithExpirationRequired(), jwt.WithIssuedAt(), jwt.WithLeeway(30*time.Second)).
		ParseWithClaims(tok, &claims, func(t *jwt.Token) (any, error) {
			kid, _ := t.Header["kid"].(string)
			if k, ok := h.keys[kid]; ok {
				return k, nil
			}
			return nil, fmt.Errorf("unknown kid %q", kid)
		})
	if err != nil || !claims.EmailVerified || !strings.EqualFold(claims.Email, h.email) {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var env struct {
		Subscription string `json:"subscription"`
		Message      struct {
			Data        []byte    `json:"data"`
			MessageID   string    `json:"messageId"`
			PublishTime time.Time `json:"publishTime"`
		} `json:"message"`
	}
	var data struct {
		EmailAddress string `json:"emailAddress"`
		HistoryID    uint64 `json:"historyId"`
	}
	if json.Unmarshal(body, &env) != nil || json.Unmarshal(env.Message.Data, &data) != nil || env.Subscription == "" ||
		env.Message.MessageID == "" || data.EmailAddress == "" {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if _, err := h.pool.Exec(r.Context(), `INSERT INTO public.bench_push_bare (subscription, message_id, email_address, history_id, publish_time)
		VALUES ($1, $2, $3, $4, $5) ON CONFLICT (subscription, message_id) DO NOTHING`,
		env.Subscription, env.Message.MessageID, strings.ToLower(data.EmailAddress), int64(data.HistoryID), env.Message.PublishTime); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// fetchJWKS reads the RSA keys of a JWKS document.
func fetchJWKS(ctx context.Context, url string) (map[string]*rsa.PublicKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var doc struct {
		Keys []struct{ Kid, N, E string } `json:"keys"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		return nil, err
	}
	keys := map[string]*rsa.PublicKey{}
	for _, k := range doc.Keys {
		n, err1 := base64.RawURLEncoding.DecodeString(k.N)
		e, err2 := base64.RawURLEncoding.DecodeString(k.E)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("key %s: bad n or e", k.Kid)
		}
		keys[k.Kid] = &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
	}
	return keys, nil
}

// benchEnvInt reads a positive integer from the environment, with a default.
func benchEnvInt(tb testing.TB, name string, def int) int {
	tb.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		tb.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// rssMB is this process's resident set size (Linux /proc), in MiB.
func rssMB(tb testing.TB) float64 {
	tb.Helper()
	status, err := os.ReadFile("/proc/self/status")
	require.NoError(tb, err)
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			require.NoError(tb, err)
			return float64(kb) / 1024
		}
	}
	tb.Fatal("no VmRSS in /proc/self/status")
	return 0
}
