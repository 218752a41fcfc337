// Package feed is the one implementation of "rows a platform service consumes after a cursor": Gmail's
// inbound messages and Calendar's changes. A service keeps the rows in its own table with a position
// (seq) and an acknowledge time; this package gives every such feed the same cursor format, the same
// list/stream semantics, the same wake-ups and the same metrics.
//
// # Commit order
//
// A reader keeps the position of the last row it saw and asks for the rows after it, so a row must never
// become visible after a row with a higher position of the same consumer: positions come from a
// sequence (bigserial), taken when a row is inserted, but transactions commit in any order. Without
// more, two writers of one tenant (two Gmail mailboxes syncing in parallel) interleave as: A takes 104,
// B takes 105 and commits, a reader sees 105 and moves its cursor past it, A commits 104 — never seen.
//
// Rows are therefore only appended through an Appender (Feed.Appender), whose Insert first takes the
// feed's per-tenant append lock — pg_advisory_xact_lock on a hash of the feed's name and the tenant —
// and only then runs the INSERT that draws the position. The lock is held until the transaction ends, so
// the appends of one tenant are serialized from their first INSERT to their commit: a transaction that
// draws a position after another one's has to wait until that one has committed (or rolled back), and
// positions become visible in order. Readers are tenant-scoped, so tenants do not wait for each other.
//
// Why this technique. The alternatives were positions assigned at commit (a reader that only reads below
// the oldest running transaction's horizon — pg_snapshot_xmin of xid8 columns — or a second "commit
// order" stamp written by a single post-commit step) and a single feed writer (every service's rows
// queued to one process that inserts them). Both change every reader or add a moving part (a writer
// process, a stamping pass) that must be kept alive and that delays every row; the first also stalls all
// readers behind any long transaction of the database. The lock keeps the table, the cursor and the
// readers as they are and costs only this: the appends of one tenant serialize. So nothing slow — no
// Google call, no parsing, no large read — may happen in a transaction after its first Insert: fetch and
// parse first, then open the transaction, insert, commit.
//
// Wake-ups: the first row an Appender inserts also sends the feed's NOTIFY in the same transaction, so
// PostgreSQL delivers it on commit — to every replica, through Run's LISTEN. Streams also poll, so a
// lost notification only delays them.
package feed

import (
	"context"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/algapsa/alga-google/services/platform/errs"
	"github.com/algapsa/alga-google/services/platform/metrics"
	"github.com/algapsa/alga-google/services/platform/pg"
)

// Page sizes of List: DefaultPage when the caller gives none, at most MaxPage.
const (
	DefaultPage = 100
	MaxPage     = 500
	// streamBatch is how many rows a stream reads per query; a full batch is followed at once by the next.
	streamBatch = 200
)

// cursorPrefix versions the cursor format; the cursor is opaque to callers.
const cursorPrefix = "f1:"

// Cursor encodes a position as the opaque cursor every feed hands out.
func Cursor(seq int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(cursorPrefix + strconv.FormatInt(seq, 10)))
}

// ParseCursor decodes a cursor from field; "" is the beginning of the feed.
func ParseCursor(field, c string) (int64, error) {
	if c == "" {
		return 0, nil
	}
	if b, err := base64.RawURLEncoding.DecodeString(c); err == nil {
		if v, ok := strings.CutPrefix(string(b), cursorPrefix); ok {
			if seq, err := strconv.ParseInt(v, 10, 64); err == nil && seq >= 0 {
				return seq, nil
			}
		}
	}
	return 0, errs.InvalidField(field, "is not a cursor returned by this API")
}

// PageSize turns a requested page size into the one used (DefaultPage for 0, at most MaxPage).
func PageSize(requested int32) int {
	if requested <= 0 {
		return DefaultPage
	}
	return min(int(requested), MaxPage)
}

// Options configure a Feed.
type Options struct {
	// Name labels the feed's metrics ("gmail_inbound", "calendar_changes").
	Name string
	// Channel is the PostgreSQL NOTIFY channel of the feed (a plain identifier).
	Channel string
	// Poll is how often a stream looks again without a wake-up; default 5s.
	Poll time.Duration
	// Registerer receives the metrics; nil registers none.
	Registerer prometheus.Registerer
}

// Feed wakes streams when rows are stored and counts what is delivered and acknowledged.
type Feed struct {
	opts      Options
	mu        sync.Mutex
	wake      chan struct{}
	delivered prometheus.Counter
	acked     prometheus.Counter
}

// New returns a feed. Metrics of several feeds share one pair of counter vectors per registry.
func New(opts Options) (*Feed, error) {
	if opts.Name == "" || opts.Channel == "" {
		return nil, errors.New("feed: a name and a channel are required")
	}
	if opts.Poll <= 0 {
		opts.Poll = 5 * time.Second
	}
	r := metrics.NewRegistrar(opts.Registerer)
	delivered := metrics.Use(r, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "alga_feed_delivered_total",
		Help: "Rows handed to consumers by List and Stream, by feed.",
	}, []string{"feed"}))
	acked := metrics.Use(r, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "alga_feed_acknowledged_total",
		Help: "Rows acknowledged by consumers, by feed.",
	}, []string{"feed"}))
	if err := r.Err(); err != nil {
		return nil, err
	}
	return &Feed{opts: opts, wake: make(chan struct{}),
		delivered: delivered.WithLabelValues(opts.Name), acked: acked.WithLabelValues(opts.Name)}, nil
}

// The feed's SQL: the per-tenant append lock (see the package documentation) and the wake-up.
const (
	lockSQL   = "SELECT pg_advisory_xact_lock(hashtextextended(@feed || ':' || @tenant, 0))"
	notifySQL = "SELECT pg_notify(@channel, '')"
)

// Notify wakes every stream of the feed, on every replica, once the transaction db belongs to commits.
// Appender.Insert sends it by itself; Notify is for a writer that changes rows without appending.
func (f *Feed) Notify(ctx context.Context, db pg.DB) error {
	_, err := db.Exec(ctx, notifySQL, pg.Args{"channel": f.opts.Channel})
	return err
}

// Appender appends one tenant's rows to the feed inside one transaction: the only way rows get their
// position (see "Commit order" in the package documentation). Get one per transaction with
// Feed.Appender; it must not be used after the transaction ends.
type Appender struct {
	f        *Feed
	tx       pgx.Tx
	tenant   string
	locked   bool
	notified bool
	appended int
}

// Appender returns tx's appender of tenant's rows. It takes nothing yet: the lock is taken by the first
// Insert, so it is held only from there to the commit.
func (f *Feed) Appender(tx pgx.Tx, tenant string) *Appender {
	return &Appender{f: f, tx: tx, tenant: tenant}
}

// ErrWrongTenant is returned by Insert for a row of another tenant than the appender's (whose lock would
// not order it).
var ErrWrongTenant = errors.New("feed: a row of another tenant than the appender's")

// Insert runs sql — an INSERT of one row of the appender's tenant (args["tenant"]) that draws the row's
// position and returns at least one column into dest, or no row when nothing was inserted (ON CONFLICT DO
// NOTHING) — after taking the tenant's append lock, and reports whether a row was appended. The first
// appended row also sends the feed's NOTIFY, delivered on commit.
func (a *Appender) Insert(ctx context.Context, sql string, args pg.Args, dest ...any) (bool, error) {
	if t, _ := args["tenant"].(string); t != a.tenant {
		return false, ErrWrongTenant
	}
	if !a.locked {
		if _, err := a.tx.Exec(ctx, lockSQL, pg.Args{"feed": a.f.opts.Name, "tenant": a.tenant}); err != nil {
			return false, err
		}
		a.locked = true
	}
	err := a.tx.QueryRow(ctx, sql, args).Scan(dest...)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	a.appended++
	if !a.notified {
		if err := a.f.Notify(ctx, a.tx); err != nil {
			return false, err
		}
		a.notified = true
	}
	return true, nil
}

// Appended is how many rows this appender has appended.
func (a *Appender) Appended() int { return a.appended }

// Wake wakes this process's streams at once (a writer that knows it stored rows).
func (f *Feed) Wake() {
	f.mu.Lock()
	defer f.mu.Unlock()
	close(f.wake)
	f.wake = make(chan struct{})
}

func (f *Feed) waiter() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.wake
}

// Acknowledged counts n rows acknowledged by a consumer.
func (f *Feed) Acknowledged(n int) { f.acked.Add(float64(n)) }

// Run relays the feed's NOTIFY channel to its streams until ctx ends, reconnecting on errors.
func (f *Feed) Run(ctx context.Context, pool *pgxpool.Pool) {
	for ctx.Err() == nil {
		func() {
			conn, err := pool.Acquire(ctx)
			if err != nil {
				return
			}
			defer conn.Release()
			if _, err := conn.Exec(ctx, "LISTEN "+f.opts.Channel); err != nil {
				return
			}
			defer conn.Exec(context.WithoutCancel(ctx), "UNLISTEN *") //nolint:errcheck // the connection is released either way
			for {
				if _, err := conn.Conn().WaitForNotification(ctx); err != nil {
					return
				}
				f.Wake()
			}
		}()
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// Source reads a feed's rows of one consumer (tenant, filters) after a position, in position order.
type Source[T any] struct {
	// After returns at most limit rows positioned after `after`.
	After func(ctx context.Context, after int64, limit int) ([]T, error)
	// Seq is a row's position.
	Seq func(T) int64
}

// List returns one page after the cursor and the cursor to continue from (the given one when the page
// is empty).
func List[T any](ctx context.Context, f *Feed, src Source[T], afterCursor string, pageSize int32) ([]T, string, error) {
	after, err := ParseCursor("after_cursor", afterCursor)
	if err != nil {
		return nil, "", err
	}
	rows, err := src.After(ctx, after, PageSize(pageSize))
	if err != nil {
		return nil, "", err
	}
	next := Cursor(after)
	if len(rows) > 0 {
		next = Cursor(src.Seq(rows[len(rows)-1]))
	}
	f.delivered.Add(float64(len(rows)))
	return rows, next, nil
}

// Stream sends every row after the cursor, then live rows as they are stored, until ctx ends (nil) or
// send fails.
func Stream[T any](ctx context.Context, f *Feed, src Source[T], afterCursor string, send func(T) error) error {
	after, err := ParseCursor("after_cursor", afterCursor)
	if err != nil {
		return err
	}
	poll := time.NewTicker(f.opts.Poll)
	defer poll.Stop()
	for {
		wake := f.waiter() // before reading, so a row stored after the read still wakes us
		rows, err := src.After(ctx, after, streamBatch)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		for _, r := range rows {
			if err := send(r); err != nil {
				return err
			}
			f.delivered.Inc()
			after = src.Seq(r)
		}
		if len(rows) == streamBatch {
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
		case <-poll.C:
		}
	}
}

// Delivered is the counter of rows this feed handed to consumers (tests, diagnostics).
func (f *Feed) Delivered() prometheus.Counter { return f.delivered }
