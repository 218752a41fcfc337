package oauthtesting_test

import (
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/algapsa/alga-google/services/oauth/internal/store"
	"github.com/algapsa/alga-google/services/oauth/oauthtesting"
	"github.com/algapsa/alga-google/services/platform/pgtest"
)

func TestHelpersArrangeState(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool, _ := pgtest.NewPool(t)
	require.NoError(t, store.Migrations().Apply(ctx, pool))
	now := time.Now()
	expiry := now.Add(time.Hour)
	conn, err := store.UpsertConnection(ctx, pool, store.Connection{
		ID: uuid.NewString(), Tenant: "tenant-a", Kind: "gmail", ProviderID: "p1", UserID: "u1",
		AccountEmail: "support@acme.test", ClientID: "c1", AccessTokenExpiresAt: &expiry,
	}, now)
	require.NoError(t, err)
	require.NoError(t, store.InsertState(ctx, pool, store.State{
		StateHash: []byte("h"), Tenant: "tenant-a", UserID: "u1", ProviderID: "p1", Kind: "gmail", ClientID: "c1",
		SealedVerifier: []byte("v"), BindingHash: []byte("b"), CreatedAt: now, ExpiresAt: now.Add(10 * time.Minute),
	}))

	require.NoError(t, oauthtesting.ExpireAccessToken(ctx, pool, conn.ID))
	require.NoError(t, oauthtesting.AgeConsent(ctx, pool, "support@acme.test", 8*24*time.Hour))
	got, err := store.GetConnection(ctx, pool, "tenant-a", "gmail", "p1")
	require.NoError(t, err)
	require.True(t, got.AccessTokenExpiresAt.Before(time.Now()))
	require.WithinDuration(t, conn.ConsentedAt.Add(-8*24*time.Hour), got.ConsentedAt, time.Millisecond)
	require.WithinDuration(t, conn.ConnectedAt.Add(-8*24*time.Hour), got.ConnectedAt, time.Millisecond)

	require.NoError(t, oauthtesting.ExpireAuthStates(ctx, pool, "p1"))
	st, err := store.ConsumeState(ctx, pool, []byte("h"))
	require.NoError(t, err)
	require.True(t, st.ExpiresAt.Before(time.Now()))

	require.ErrorIs(t, oauthtesting.ExpireAccessToken(ctx, pool, uuid.NewString()), oauthtesting.ErrNoRow)
	require.ErrorIs(t, oauthtesting.AgeConsent(ctx, pool, "nobody@acme.test", time.Hour), oauthtesting.ErrNoRow)
	require.ErrorIs(t, oauthtesting.ExpireAuthStates(ctx, pool, "p1"), oauthtesting.ErrNoRow)
}
