package store_test

import (
	"io/fs"
	"testing"
	"testing/fstest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/algapsa/alga-google/services/oauth/internal/store"
	"github.com/algapsa/alga-google/services/platform/pg"
	"github.com/algapsa/alga-google/services/platform/pgtest"
)

// TestEveryQueryPrepares prepares every statement of queries.sql against the migrated schema: a renamed
// column or a wrong type fails here, naming the statement.
func TestEveryQueryPrepares(t *testing.T) {
	t.Parallel()
	pgtest.CheckQueries(t, store.Migrations())
}

// TestTenantSetupsBackfill: a tenant that saved its setup before tenant_setups existed is listed by
// the directory after the migration (as partial, until its next save records the real state).
func TestTenantSetupsBackfill(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool, _ := pgtest.NewPool(t)
	full := store.Migrations()
	first, err := fs.ReadFile(full.FS, "migrations/0001_init.sql")
	require.NoError(t, err)
	v1 := pg.Migrations{Schema: full.Schema, FS: fstest.MapFS{"migrations/0001_init.sql": {Data: first}}, Dir: "migrations"}
	require.NoError(t, v1.Apply(ctx, pool))
	saved := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	_, err = store.UpsertSettings(ctx, pool, store.Settings{Tenant: "tenant-old", UseSameApp: true, UpdatedBy: "admin", UpdatedAt: saved})
	require.NoError(t, err)

	require.NoError(t, full.Apply(ctx, pool))
	got, err := store.ListConfiguredTenants(ctx, pool)
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Equal(t, "tenant-old", got[0].Tenant)
	require.True(t, got[0].UpdatedAt.Equal(saved))

	// The next look at the setup records what it finds: nothing, so the tenant leaves the directory.
	require.NoError(t, store.ReconcileTenantSetup(ctx, pool, "tenant-old", store.SetupMissing, time.Now()))
	got, err = store.ListConfiguredTenants(ctx, pool)
	require.NoError(t, err)
	require.Empty(t, got)
	// A tenant never recorded with nothing of a setup gets no row; with something, it does.
	require.NoError(t, store.ReconcileTenantSetup(ctx, pool, "tenant-new", store.SetupMissing, time.Now()))
	var rows int
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM oauth.tenant_setups WHERE tenant = 'tenant-new'").Scan(&rows))
	require.Zero(t, rows)
	require.NoError(t, store.ReconcileTenantSetup(ctx, pool, "tenant-new", store.SetupConfigured, time.Now()))
	got, err = store.ListConfiguredTenants(ctx, pool)
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Equal(t, "tenant-new", got[0].Tenant)
}
