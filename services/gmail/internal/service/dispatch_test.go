package service

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	gmailv1 "github.com/algapsa/alga-google/gen/alga/gmail/v1"
	"github.com/algapsa/alga-google/services/gmail/internal/store"
)

// A redelivery burst for one mailbox: pushes at once, every fourth a redelivery. Each Pub/Sub message
// is stored once, the duplicates counted, last_push_time set by the time the pushes are answered, and
// the mailbox synced (nothing left pending) — with no per-push log line at Info.
func TestConcurrentPushesForOneMailbox(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.configureTenant("t1")
	p := b.connect(t, "t1", "support@acme.test")
	require.Eventually(t, func() bool { return b.gm.snapshot("support@acme.test").historyCalls >= 1 }, 10*time.Second, 20*time.Millisecond)
	b.gm.deliver("support@acme.test", "Burst")

	const n, atOnce = 80, 16
	authz := "Bearer " + b.mint(t, pushKey, nil)
	hid := b.gm.snapshot("support@acme.test").historyID
	var next atomic.Int64
	var wg sync.WaitGroup
	statuses := make([]int32, n)
	for range atOnce {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				id := i
				if i%4 == 3 {
					id = i - 1
				}
				resp, err := b.providers().HandleGmailPush(b.service("gateway", ""), &gmailv1.HandleGmailPushRequest{
					Authorization: authz, Body: envelope(subscriptionOf("t1"), fmt.Sprintf("burst-%d", id), "support@acme.test", hid)})
				if err == nil {
					statuses[i] = resp.GetHttpStatus()
				}
			}
		}()
	}
	wg.Wait()
	for i, st := range statuses {
		require.EqualValues(t, 204, st, "push %d", i)
	}
	require.Equal(t, n-n/4, b.count(t, "SELECT count(*) FROM gmail.notifications"), "each message stored once")
	require.EqualValues(t, n-n/4, b.svc.PushCount("stored"))
	require.EqualValues(t, n/4, b.svc.PushCount("duplicate"))
	require.Equal(t, 1, b.count(t, "SELECT count(*) FROM gmail.providers WHERE last_push_time IS NOT NULL"), "seen once answered")
	b.waitMessages(t, "t1", p.GetId(), 1)
	require.Eventually(t, func() bool {
		return b.count(t, "SELECT count(*) FROM gmail.notifications WHERE process_time IS NULL") == 0
	}, 15*time.Second, 20*time.Millisecond, "every push synced")
	require.NotContains(t, b.logs.String(), `"level":"INFO","msg":"gmail push`)
}

// A route read before the subscription's service account changed stores nothing for a token of the
// old account: the INSERT re-checks the route, and the push is refused as the lookups decide (401).
func TestCachedRouteRecheckedByTheInsert(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.configureTenant("t1")
	b.connect(t, "t1", "support@acme.test")
	require.EqualValues(t, 204, b.notify(t, "t1", "support@acme.test", "before"))
	_, cached := b.svc.routes.get(subscriptionOf("t1"), "support@acme.test")
	require.True(t, cached, "the route is cached")

	sub, err := store.GetSubscription(b.ctx, b.pool, subscriptionOf("t1"))
	require.NoError(t, err)
	sub.ServiceAccountEmail = "rotated@acme-prod.iam.gserviceaccount.com"
	require.NoError(t, store.UpsertSubscription(b.ctx, b.pool, *sub))
	require.EqualValues(t, 401, b.notify(t, "t1", "support@acme.test", "after"))
	require.Equal(t, 1, b.count(t, "SELECT count(*) FROM gmail.notifications"))
	require.EqualValues(t, 1, b.svc.PushCount("unauthenticated"))
	_, cached = b.svc.routes.get(subscriptionOf("t1"), "support@acme.test")
	require.False(t, cached, "a route that no longer holds is forgotten")
}

// Pushes arriving while a dispatch runs share the next one, whatever their providers (each named once);
// a failed dispatch is retried; nothing starts once stopping.
func TestDispatcherBatchesAndRetries(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	release := make(chan struct{})
	var mu sync.Mutex
	var batches [][]providerKey
	var fail atomic.Int64
	d := newDispatcher(ctx, &wg, func(ctx context.Context, providers []providerKey) error {
		mu.Lock()
		batches = append(batches, providers)
		n := len(batches)
		mu.Unlock()
		if n == 1 {
			<-release
		}
		if fail.Load() > 0 {
			fail.Add(-1)
			return errors.New("database unavailable")
		}
		return nil
	})
	calls := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(batches)
	}

	d.dispatch("t1", "p0")
	require.Eventually(t, func() bool { return calls() == 1 }, 5*time.Second, time.Millisecond)
	for i := range 20 {
		d.dispatch("t1", fmt.Sprintf("p%d", i%10))
	}
	close(release)
	require.Eventually(t, func() bool { return calls() == 2 }, 5*time.Second, time.Millisecond)
	time.Sleep(50 * time.Millisecond)
	require.Equal(t, 2, calls(), "twenty pushes during a dispatch share the next one")
	require.Len(t, batches[1], 10, "each provider once")

	fail.Store(1)
	d.dispatch("t1", "p1")
	require.Eventually(t, func() bool { return calls() == 4 }, 5*time.Second, 10*time.Millisecond, "retried after a failure")
	require.Equal(t, []providerKey{{"t1", "p1"}}, batches[3])

	cancel()
	d.dispatch("t1", "p1")
	time.Sleep(50 * time.Millisecond)
	require.Equal(t, 4, calls(), "nothing starts once stopping")
}
