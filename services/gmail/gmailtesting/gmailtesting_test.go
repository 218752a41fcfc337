package gmailtesting_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/algapsa/alga-google/services/gmail/gmailtesting"
	"github.com/algapsa/alga-google/services/gmail/internal/store"
	"github.com/algapsa/alga-google/services/platform/pgtest"
)

func TestAgeTenantMovesEveryRecordedTime(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := pgtest.NewPool(t)
	require.NoError(t, store.Migrations().Apply(ctx, pool))
	mk := func(tenant string) *store.Provider {
		p, err := store.CreateProvider(ctx, pool, store.NewProvider{Tenant: tenant, Mailbox: "support@" + tenant + ".test", Active: true})
		require.NoError(t, err)
		expire := time.Now().Add(7 * 24 * time.Hour).Truncate(time.Millisecond)
		baseline := int64(100)
		require.NoError(t, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			p, err = store.SaveProvisioning(ctx, tx, tenant, p.ID, store.Provisioned{State: store.StateConnected, ProvisioningChecked: true,
				Topic: "projects/p/topics/t", Subscription: "projects/p/subscriptions/s", WatchExpire: &expire, HistoryBaseline: &baseline,
				Steps: []store.Step{{Name: "watch", OK: true, CheckTime: time.Now()}}})
			return err
		}))
		require.NoError(t, store.TouchSync(ctx, pool, tenant, p.ID))
		p, err = store.GetProvider(ctx, pool, tenant, p.ID)
		require.NoError(t, err)
		return p
	}
	a, other := mk("tenant-a"), mk("tenant-b")
	by := 156 * time.Hour

	require.NoError(t, gmailtesting.AgeTenant(ctx, pool, "tenant-a", by))
	got, err := store.GetProvider(ctx, pool, "tenant-a", a.ID)
	require.NoError(t, err)
	for name, pair := range map[string][2]*time.Time{
		"watch_expire_time": {a.WatchExpireTime, got.WatchExpireTime}, "last_sync_time": {a.LastSyncTime, got.LastSyncTime},
		"connect_time": {a.ConnectTime, got.ConnectTime}, "last_watch_time": {a.LastWatchTime, got.LastWatchTime},
		"last_provisioning_check_time": {a.LastProvisioningCheckTime, got.LastProvisioningCheckTime},
		"create_time":                  {&a.CreateTime, &got.CreateTime},
	} {
		require.NotNil(t, pair[0], name)
		require.Equal(t, pair[0].Add(-by), *pair[1], name)
	}
	require.Nil(t, got.LastPushTime, "an unset time stays unset")
	steps, err := store.ListSteps(ctx, pool, "tenant-a", a.ID)
	require.NoError(t, err)
	require.Less(t, steps[0].CheckTime, time.Now().Add(-by+time.Minute))

	untouched, err := store.GetProvider(ctx, pool, "tenant-b", other.ID)
	require.NoError(t, err)
	require.Equal(t, other.LastSyncTime, untouched.LastSyncTime, "another tenant is left alone")
	require.ErrorIs(t, gmailtesting.AgeTenant(ctx, pool, "tenant-nobody", by), gmailtesting.ErrNoRow)
}
