// Package feed is the one implementation of "rows a platform service consumes after a cursor": Gmail's
// inbound messages and Calendar's changes. A service keeps the rows in its own table with a position
// (seq) and an acknowledge time; this package gives every such feed the same cursor format, the same
// list/stream semantics, the same wake-ups and the same metrics.
//
// Wake-ups: the writer calls Notify inside the transaction that stores rows, so PostgreSQL delivers the
// notification on commit — to every replica, through Run's LISTEN. Streams also poll, so a lost
// notification only delays them.
package feed

import (
	"context"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

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

// Notify wakes every stream of the feed, on every replica, once the transaction db belongs to commits.
func (f *Feed) Notify(ctx context.Context, db pg.DB) error {
	_, err := db.Exec(ctx, "SELECT pg_notify(@channel, '')", pg.Args{"channel": f.opts.Channel})
	return err
}

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
