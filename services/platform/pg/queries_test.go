package pg_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/algapsa/alga-google/services/platform/pg"
	"github.com/algapsa/alga-google/services/platform/pgtest"
)

func TestParseQueries(t *testing.T) {
	t.Parallel()
	q := pg.ParseQueries(`-- a header comment
-- name: GetThing
-- Reads one thing; $1 in a comment is prose, not a parameter.
SELECT * FROM things
WHERE id = @id;

-- name: DeleteThing
DELETE FROM things WHERE id = @id;
`)
	require.Equal(t, "-- Reads one thing; $1 in a comment is prose, not a parameter.\nSELECT * FROM things\nWHERE id = @id;", q.Get("GetThing"))
	require.Equal(t, "DELETE FROM things WHERE id = @id;", q.Get("DeleteThing"))
	require.Equal(t, []string{"DeleteThing", "GetThing"}, q.Names())
	require.Panics(t, func() { q.Get("Nope") })
	require.PanicsWithValue(t, "pg: query A uses a positional parameter; name it (@name)", func() {
		pg.ParseQueries("-- name: A\nSELECT $1")
	})
	require.PanicsWithValue(t, "pg: query A is defined twice", func() {
		pg.ParseQueries("-- name: A\nSELECT 1;\n-- name: A\nSELECT 2;")
	})
}

// Prepare names every statement PostgreSQL refuses against the schema — a misspelled column among them.
func TestPrepareFindsWrongColumns(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewPool(t)
	ctx := context.Background()
	_, err := pool.Exec(ctx, "CREATE TABLE things (id int PRIMARY KEY, name text NOT NULL)")
	require.NoError(t, err)
	conn, err := pool.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()

	good := pg.ParseQueries("-- name: Get\nSELECT name FROM things WHERE id = @id;\n-- name: Put\nINSERT INTO things (id, name) VALUES (@id, @name::text);")
	require.NoError(t, good.Prepare(ctx, conn.Conn()))

	bad := pg.ParseQueries("-- name: Get\nSELECT nmae FROM things WHERE id = @id;\n-- name: Gone\nSELECT 1 FROM nothings;\n-- name: Put\nINSERT INTO things (id, name) VALUES (@id, @name);")
	err = bad.Prepare(ctx, conn.Conn())
	require.ErrorContains(t, err, `query Get: ERROR: column "nmae" does not exist`)
	require.ErrorContains(t, err, `query Gone: ERROR: relation "nothings" does not exist`)
	require.NotContains(t, err.Error(), "query Put")
}

// Args are strict: a statement run with a missing or an extra name fails instead of binding NULL.
func TestArgsAreStrict(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewPool(t)
	ctx := context.Background()
	var n int
	require.NoError(t, pool.QueryRow(ctx, "SELECT @a::int + @b::int", pg.Args{"a": 1, "b": 2}).Scan(&n))
	require.Equal(t, 3, n)
	require.Error(t, pool.QueryRow(ctx, "SELECT @a::int + @b::int", pg.Args{"a": 1}).Scan(&n))
	require.Error(t, pool.QueryRow(ctx, "SELECT @a::int", pg.Args{"a": 1, "typo": 2}).Scan(&n))
}
