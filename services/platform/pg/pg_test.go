package pg_test

import (
	"context"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/require"

	"github.com/algapsa/alga-google/services/platform/pg"
	"github.com/algapsa/alga-google/services/platform/pgtest"
)

func TestMigrationsApplyOnceConcurrently(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewPool(t)
	ctx := context.Background()
	m := pg.Migrations{Schema: "demo", Dir: "m", FS: fstest.MapFS{
		"m/0001_init.sql":  {Data: []byte("CREATE TABLE items (id bigserial PRIMARY KEY, name text NOT NULL);")},
		"m/0002_index.sql": {Data: []byte("CREATE UNIQUE INDEX items_name ON items (name);")},
	}}
	ok, err := m.Applied(ctx, pool)
	require.NoError(t, err)
	require.False(t, ok)

	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = m.Apply(ctx, pool) }()
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	ok, err = m.Applied(ctx, pool)
	require.NoError(t, err)
	require.True(t, ok)
	var n int
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM demo.schema_migrations").Scan(&n))
	require.Equal(t, 2, n)
	_, err = pool.Exec(ctx, "INSERT INTO demo.items (name) VALUES ('a')")
	require.NoError(t, err)
}

func TestMigrationsRejectGapsAndBadNames(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.NewPool(t)
	gap := pg.Migrations{Schema: "gap", Dir: "m", FS: fstest.MapFS{"m/0002_x.sql": {Data: []byte("SELECT 1")}}}
	require.ErrorContains(t, gap.Apply(context.Background(), pool), "without gaps")
	bad := pg.Migrations{Schema: "bad", Dir: "m", FS: fstest.MapFS{"m/init.sql": {Data: []byte("SELECT 1")}}}
	require.ErrorContains(t, bad.Apply(context.Background(), pool), "NNNN_description.sql")
}
