package service_test

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	oauthv1 "github.com/algapsa/alga-google/gen/alga/oauth/v1"
)

// Provider ids of the lease tests (the flows validate them as UUIDs).
var leaseProviders = []string{
	"1b6f5c1e-8a4f-4d57-9a55-2f5c3b1e7a11", "2b6f5c1e-8a4f-4d57-9a55-2f5c3b1e7a12", "3b6f5c1e-8a4f-4d57-9a55-2f5c3b1e7a13",
	"4b6f5c1e-8a4f-4d57-9a55-2f5c3b1e7a14", "5b6f5c1e-8a4f-4d57-9a55-2f5c3b1e7a15", "6b6f5c1e-8a4f-4d57-9a55-2f5c3b1e7a16",
}

// TestSlowGoogleForOneTenantDelaysNoOther: while Google's token endpoint takes its time over five of
// tenant A's refreshes — more than the process runs refresh transactions at once — all five are at
// Google together, no database transaction is open waiting for them, and tenant B's refresh is not
// queued behind them.
func TestSlowGoogleForOneTenantDelaysNoOther(t *testing.T) {
	t.Parallel()
	b := setup(t, 1, "")
	b.configure(t, "tenant-a")
	b.configure(t, "tenant-b")
	aProviders, bProvider := leaseProviders[:5], leaseProviders[5]
	for i, p := range aProviders {
		mailbox := "a" + string(rune('1'+i)) + "@acme.test"
		b.gmail.AddProvider("tenant-a", p, mailbox)
		require.Equal(t, "connected", b.connect(t, "tenant-a", "u1", gmailKind, p, mailbox))
	}
	b.gmail.AddProvider("tenant-b", bProvider, "b@acme.test")
	require.Equal(t, "connected", b.connect(t, "tenant-b", "u2", gmailKind, bProvider, "b@acme.test"))

	const delay = 2 * time.Second
	b.google.RefreshDelay = delay
	tokens := b.instances[0].tokens
	var wg sync.WaitGroup
	errs := make([]error, len(aProviders))
	for i, p := range aProviders {
		wg.Go(func() {
			_, errs[i] = tokens.GetAccessToken(b.service(t, "gmail", "tenant-a", ""), &oauthv1.GetAccessTokenRequest{Kind: gmailKind, ProviderId: p, ForceRefresh: true})
		})
	}
	require.Eventually(t, func() bool { return b.google.RefreshCalls.Load() == int64(len(aProviders)) }, delay, 10*time.Millisecond,
		"all of A's refreshes at Google at once")
	var open int
	require.NoError(t, b.pool.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity
		WHERE datname = current_database() AND state LIKE 'idle in transaction%'`).Scan(&open))
	require.Zero(t, open, "no transaction (no pool connection) is held while Google answers")

	started := time.Now()
	_, err := tokens.GetAccessToken(b.service(t, "gmail", "tenant-b", ""), &oauthv1.GetAccessTokenRequest{Kind: gmailKind, ProviderId: bProvider, ForceRefresh: true})
	require.NoError(t, err)
	took := time.Since(started)
	require.Less(t, took, delay+delay/2, "B's refresh took its own time at Google only (%v)", took)
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	require.EqualValues(t, len(aProviders)+1, b.google.Refreshes.Load())
	var leases int
	require.NoError(t, b.pool.QueryRow(t.Context(), "SELECT count(*) FROM oauth.refresh_leases").Scan(&leases))
	require.Zero(t, leases, "every lease released with its outcome")
}

// TestRefreshLeaseOfAnotherReplica: a live lease of another replica makes a caller wait for its outcome;
// one left by a replica that died mid-refresh lets the caller in once it expires.
func TestRefreshLeaseOfAnotherReplica(t *testing.T) {
	t.Parallel()
	b := setup(t, 1, "")
	b.configure(t, "tenant-a")
	p := leaseProviders[0]
	b.gmail.AddProvider("tenant-a", p, "support@acme.test")
	require.Equal(t, "connected", b.connect(t, "tenant-a", "u1", gmailKind, p, "support@acme.test"))
	conn := b.connection(t, "tenant-a", gmailKind, p)
	_, err := b.pool.Exec(t.Context(), `INSERT INTO oauth.refresh_leases (connection_id, holder, expires_at)
		VALUES ($1, 'a replica that died', now() + interval '1 second')`, conn.ConnectionId)
	require.NoError(t, err)

	started := time.Now()
	_, err = b.instances[0].tokens.GetAccessToken(b.service(t, "gmail", "tenant-a", ""), &oauthv1.GetAccessTokenRequest{Kind: gmailKind, ProviderId: p, ForceRefresh: true})
	require.NoError(t, err)
	require.GreaterOrEqual(t, time.Since(started), 900*time.Millisecond, "waited for the other replica's lease")
	require.EqualValues(t, 1, b.google.Refreshes.Load(), "then refreshed itself")
	var leases int
	require.NoError(t, b.pool.QueryRow(t.Context(), "SELECT count(*) FROM oauth.refresh_leases").Scan(&leases))
	require.Zero(t, leases)
}
