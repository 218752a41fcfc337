package feed_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
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

// appendTest is a feed table with a tenant column, as every service's feed table has.
func appendTest(t *testing.T) (*pgxpool.Pool, *feed.Feed) {
	t.Helper()
	pool, _ := pgtest.NewPool(t)
	_, err := pool.Exec(context.Background(), "CREATE TABLE entries (seq bigserial PRIMARY KEY, tenant text NOT NULL, v text NOT NULL UNIQUE)")
	require.NoError(t, err)
	f, err := feed.New(feed.Options{Name: "entries", Channel: "entries_feed"})
	require.NoError(t, err)
	return pool, f
}

const insertEntry = "INSERT INTO entries (tenant, v) VALUES (@tenant, @v) ON CONFLICT (v) DO NOTHING RETURNING seq"

func tenantSource(pool *pgxpool.Pool, tenant string) feed.Source[row] {
	return feed.Source[row]{
		After: func(ctx context.Context, after int64, limit int) ([]row, error) {
			rows, err := pool.Query(ctx, "SELECT seq FROM entries WHERE tenant = @tenant AND seq > @after ORDER BY seq LIMIT @limit",
				pg.Args{"tenant": tenant, "after": after, "limit": limit})
			if err != nil {
				return nil, err
			}
			return pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
				var x row
				return x, r.Scan(&x.seq)
			})
		},
		Seq: func(r row) int64 { return r.seq },
	}
}

// readAll lists every row after the cursor, page by page, as a consumer does, and returns them with the
// cursor to continue from.
func readAll(t *testing.T, f *feed.Feed, src feed.Source[row], cursor string) ([]int64, string) {
	t.Helper()
	var got []int64
	for {
		page, next, err := feed.List(context.Background(), f, src, cursor, 100)
		require.NoError(t, err)
		cursor = next
		if len(page) == 0 {
			return got, cursor
		}
		for _, r := range page {
			got = append(got, r.seq)
		}
	}
}

// The bug the append lock exists for, shown without it: A draws a position, B draws a higher one and
// commits first, a reader moves past B, and A's row — committed afterwards — is never seen.
func TestWithoutTheAppendLockAReaderSkipsALateCommit(t *testing.T) {
	t.Parallel()
	pool, f := appendTest(t)
	ctx := context.Background()
	src := tenantSource(pool, "t1")
	a, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer a.Rollback(ctx) //nolint:errcheck
	var seqA, seqB int64
	require.NoError(t, a.QueryRow(ctx, insertEntry, pg.Args{"tenant": "t1", "v": "a"}).Scan(&seqA))
	require.NoError(t, pgx.BeginFunc(ctx, pool, func(b pgx.Tx) error {
		return b.QueryRow(ctx, insertEntry, pg.Args{"tenant": "t1", "v": "b"}).Scan(&seqB)
	}))
	require.Greater(t, seqB, seqA)
	got, cursor := readAll(t, f, src, "")
	require.Equal(t, []int64{seqB}, got)
	require.NoError(t, a.Commit(ctx))
	got, _ = readAll(t, f, src, cursor)
	require.Empty(t, got, "the row committed late, with the smaller position, is skipped")
}

// With the appender, the same interleaving cannot happen: B's insert waits for A's commit, so B's
// position is drawn after A's row is visible, and a reader sees both, in order, exactly once.
func TestAppendersOfOneTenantCommitInPositionOrder(t *testing.T) {
	t.Parallel()
	pool, f := appendTest(t)
	ctx := context.Background()
	src := tenantSource(pool, "t1")

	a, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer a.Rollback(ctx) //nolint:errcheck
	var seqA int64
	ok, err := f.Appender(a, "t1").Insert(ctx, insertEntry, pg.Args{"tenant": "t1", "v": "a"}, &seqA)
	require.NoError(t, err)
	require.True(t, ok)

	type result struct {
		seq int64
		err error
	}
	bDone := make(chan result, 1)
	go func() {
		var seqB int64
		err := pgx.BeginFunc(ctx, pool, func(b pgx.Tx) error {
			_, err := f.Appender(b, "t1").Insert(ctx, insertEntry, pg.Args{"tenant": "t1", "v": "b"}, &seqB)
			return err
		})
		bDone <- result{seqB, err}
	}()

	// Another tenant's appends do not wait for t1's.
	require.NoError(t, pgx.BeginFunc(ctx, pool, func(c pgx.Tx) error {
		var seq int64
		_, err := f.Appender(c, "t2").Insert(ctx, insertEntry, pg.Args{"tenant": "t2", "v": "c"}, &seq)
		return err
	}))

	select {
	case r := <-bDone:
		t.Fatalf("B appended while A held the tenant's lock: %+v", r)
	case <-time.After(300 * time.Millisecond):
	}
	got, cursor := readAll(t, f, src, "")
	require.Empty(t, got, "nothing is visible before A commits")

	require.NoError(t, a.Commit(ctx))
	var b result
	select {
	case b = <-bDone:
	case <-time.After(10 * time.Second):
		t.Fatal("B still waits after A's commit")
	}
	require.NoError(t, b.err)
	require.Greater(t, b.seq, seqA)
	got, _ = readAll(t, f, src, cursor)
	require.Equal(t, []int64{seqA, b.seq}, got, "both, in position order")
}

func TestAppenderRefusesAnotherTenantsRowAndCountsOnlyInsertedRows(t *testing.T) {
	t.Parallel()
	pool, f := appendTest(t)
	ctx := context.Background()
	require.NoError(t, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		app := f.Appender(tx, "t1")
		var seq int64
		_, err := app.Insert(ctx, insertEntry, pg.Args{"tenant": "t2", "v": "x"}, &seq)
		require.ErrorIs(t, err, feed.ErrWrongTenant)
		ok, err := app.Insert(ctx, insertEntry, pg.Args{"tenant": "t1", "v": "y"}, &seq)
		require.NoError(t, err)
		require.True(t, ok)
		ok, err = app.Insert(ctx, insertEntry, pg.Args{"tenant": "t1", "v": "y"}, &seq)
		require.NoError(t, err)
		require.False(t, ok, "a conflicting row is not appended")
		require.Equal(t, 1, app.Appended())
		return nil
	}))
}
