package feed_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/algapsa/alga-google/gen/validation"
	"github.com/algapsa/alga-google/services/platform/feed"
	"github.com/algapsa/alga-google/services/platform/pg"
	"github.com/algapsa/alga-google/services/platform/pgtest"
)

func TestCursor(t *testing.T) {
	t.Parallel()
	for _, seq := range []int64{0, 1, 42, 1 << 40} {
		got, err := feed.ParseCursor("after_cursor", feed.Cursor(seq))
		require.NoError(t, err)
		require.Equal(t, seq, got)
	}
	got, err := feed.ParseCursor("after_cursor", "")
	require.NoError(t, err)
	require.Zero(t, got)
	for _, bad := range []string{"garbage!", "12", feed.Cursor(1) + "x", "ZjE6LTE"} { // ZjE6LTE = "f1:-1"
		_, err := feed.ParseCursor("after_cursor", bad)
		var fe *validation.FieldError
		require.ErrorAs(t, err, &fe, bad)
		require.Equal(t, "after_cursor", fe.Field)
	}
	require.Equal(t, feed.DefaultPage, feed.PageSize(0))
	require.Equal(t, feed.MaxPage, feed.PageSize(10_000))
	require.Equal(t, 7, feed.PageSize(7))
}

type row struct{ seq int64 }

func source(pool *pgxpool.Pool) feed.Source[row] {
	return feed.Source[row]{
		After: func(ctx context.Context, after int64, limit int) ([]row, error) {
			rows, err := pool.Query(ctx, "SELECT seq FROM items WHERE seq > @after ORDER BY seq LIMIT @limit", pg.Args{"after": after, "limit": limit})
			if err != nil {
				return nil, err
			}
			defer rows.Close()
			var out []row
			for rows.Next() {
				var r row
				if err := rows.Scan(&r.seq); err != nil {
					return nil, err
				}
				out = append(out, r)
			}
			return out, rows.Err()
		},
		Seq: func(r row) int64 { return r.seq },
	}
}

// A stream sends the backlog, then a row stored by another "replica" (its own Feed on the same
// database) as soon as that transaction commits — woken by NOTIFY, long before the poll.
func TestStreamWakesOnCommitAcrossReplicas(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewPool(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err := pool.Exec(ctx, "CREATE TABLE items (seq bigint PRIMARY KEY)")
	require.NoError(t, err)
	_, err = pool.Exec(ctx, "INSERT INTO items SELECT generate_series(1, 250)")
	require.NoError(t, err)

	reg := prometheus.NewRegistry()
	reader, err := feed.New(feed.Options{Name: "items", Channel: "items_feed", Poll: time.Hour, Registerer: reg})
	require.NoError(t, err)
	writer, err := feed.New(feed.Options{Name: "items", Channel: "items_feed", Registerer: prometheus.NewRegistry()})
	require.NoError(t, err)
	go reader.Run(ctx, pool)

	var mu sync.Mutex
	var got []int64
	done := make(chan error, 1)
	go func() {
		done <- feed.Stream(ctx, reader, source(pool), feed.Cursor(0), func(r row) error {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, r.seq)
			return nil
		})
	}()
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(got) }
	require.Eventually(t, func() bool { return count() == 250 }, 10*time.Second, 10*time.Millisecond, "the backlog, across a full batch")

	time.Sleep(200 * time.Millisecond) // the LISTEN is in place
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, "INSERT INTO items VALUES (251)")
	require.NoError(t, err)
	require.NoError(t, writer.Notify(ctx, tx))
	time.Sleep(100 * time.Millisecond)
	require.Equal(t, 250, count(), "nothing is delivered before the commit")
	require.NoError(t, tx.Commit(ctx))
	require.Eventually(t, func() bool { return count() == 251 }, 5*time.Second, 10*time.Millisecond)

	cancel()
	require.NoError(t, <-done, "a stream ends cleanly with its context")
	require.Equal(t, 251.0, testutil.ToFloat64(reader.Delivered()))
}

func TestListPagesAfterTheCursor(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewPool(t)
	ctx := context.Background()
	_, err := pool.Exec(ctx, "CREATE TABLE items (seq bigint PRIMARY KEY); INSERT INTO items SELECT generate_series(1, 5)")
	require.NoError(t, err)
	f, err := feed.New(feed.Options{Name: "items", Channel: "items_feed"})
	require.NoError(t, err)
	page, next, err := feed.List(ctx, f, source(pool), "", 3)
	require.NoError(t, err)
	require.Equal(t, []row{{1}, {2}, {3}}, page)
	page, next, err = feed.List(ctx, f, source(pool), next, 3)
	require.NoError(t, err)
	require.Equal(t, []row{{4}, {5}}, page)
	page, again, err := feed.List(ctx, f, source(pool), next, 3)
	require.NoError(t, err)
	require.Empty(t, page)
	require.Equal(t, next, again, "an empty page keeps the cursor")
	_, _, err = feed.List(ctx, f, source(pool), "nope", 3)
	require.Error(t, err)
}
