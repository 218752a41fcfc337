package calendartesting_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/algapsa/alga-google/services/calendar/calendartesting"
	"github.com/algapsa/alga-google/services/calendar/internal/store"
	"github.com/algapsa/alga-google/services/platform/pgtest"
)

func TestAgeTenantMovesEveryRecordedTime(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := pgtest.NewPool(t)
	require.NoError(t, store.Migrations().Apply(ctx, pool))
	mk := func(tenant string) *store.Upkeep {
		p, err := store.CreateProvider(ctx, pool, store.NewProvider{Tenant: tenant, UserID: "tech-1", CalendarID: "primary"})
		require.NoError(t, err)
		expire := time.Now().Add(7 * 24 * time.Hour).Truncate(time.Millisecond)
		_, err = store.InsertChannel(ctx, pool, store.Channel{ChannelID: "ch-" + tenant, Tenant: tenant, ProviderID: p.ID, Address: "https://alga.test/hook", ClientID: "c1"})
		require.NoError(t, err)
		_, err = store.ConfirmChannel(ctx, pool, tenant, "ch-"+tenant, "res-1", "https://www.googleapis.com/calendar/v3/calendars/primary/events", &expire)
		require.NoError(t, err)
		advanced, err := store.AdvanceMessageNumber(ctx, pool, "ch-"+tenant, 1)
		require.NoError(t, err)
		require.True(t, advanced)
		_, err = store.SetConnected(ctx, pool, tenant, p.ID, "tech@acme.test", nil)
		require.NoError(t, err)
		require.NoError(t, store.SaveSync(ctx, pool, tenant, p.ID, "sync-1", 0))
		list, err := store.ListUpkeep(ctx, pool, tenant)
		require.NoError(t, err)
		require.Len(t, list, 1)
		return list[0]
	}
	a, other := mk("tenant-a"), mk("tenant-b")
	by := 156 * time.Hour

	require.NoError(t, calendartesting.AgeTenant(ctx, pool, "tenant-a", by))
	list, err := store.ListUpkeep(ctx, pool, "tenant-a")
	require.NoError(t, err)
	got := list[0]
	for name, pair := range map[string][2]*time.Time{
		"connect_time": {a.ConnectTime, got.ConnectTime}, "last_sync_time": {a.LastSyncTime, got.LastSyncTime},
		"channel expire_time": {a.ChannelExpireTime, got.ChannelExpireTime}, "channel create_time": {a.ChannelCreateTime, got.ChannelCreateTime},
		"channel last_notification_time": {a.ChannelLastNotificationTime, got.ChannelLastNotificationTime},
	} {
		require.NotNil(t, pair[0], name)
		require.Equal(t, pair[0].Add(-by), *pair[1], name)
	}
	untouched, err := store.ListUpkeep(ctx, pool, "tenant-b")
	require.NoError(t, err)
	require.Equal(t, other.ChannelExpireTime, untouched[0].ChannelExpireTime, "another tenant is left alone")
	require.ErrorIs(t, calendartesting.AgeTenant(ctx, pool, "tenant-nobody", by), calendartesting.ErrNoRow)
}
