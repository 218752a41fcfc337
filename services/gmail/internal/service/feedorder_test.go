package service

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	gmailv1 "github.com/algapsa/alga-google/gen/alga/gmail/v1"
	"github.com/algapsa/alga-google/services/platform/auth"
)

// Two mailboxes of one tenant sync at the same time — A's batches much larger than B's, B's push a
// little later, so B's short transaction runs while A's long one is open — while a platform consumer
// streams the tenant's inbound feed. Every message must reach the stream exactly once: with positions
// drawn without the feed's append lock, B's rows commit first with higher positions, the stream's cursor
// moves past them and A's rows, committed later with smaller positions, are never sent.
func TestConcurrentMailboxesOfOneTenantStreamEveryMessageOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.gm.mu.Lock()
	b.gm.pageSize = 500 // a whole backlog in one history page: one large batch per sync
	b.gm.mu.Unlock()
	b.configureTenant("t1")
	const mailA, mailB = "a@acme.test", "b@acme.test"
	b.connect(t, "t1", mailA)
	b.connect(t, "t1", mailB)

	ctx, cancel := context.WithTimeout(b.service(auth.SvcPlatform, "t1"), 60*time.Second)
	defer cancel()
	stream, err := b.inbound().StreamInboundMessages(ctx, &gmailv1.StreamInboundMessagesRequest{})
	require.NoError(t, err)
	var mu sync.Mutex
	seen := map[string]int{}
	var order []string
	go func() {
		for {
			msg, err := stream.Recv()
			if err != nil {
				return
			}
			mu.Lock()
			seen[msg.GetMessage().GetGmailMessageId()]++
			order = append(order, msg.GetMessage().GetCursor())
			mu.Unlock()
		}
	}()

	var delivered []string
	for round := range 4 {
		for i := range 40 {
			delivered = append(delivered, b.gm.deliver(mailA, fmt.Sprintf("A%d-%d", round, i)))
		}
		for i := range 2 {
			delivered = append(delivered, b.gm.deliver(mailB, fmt.Sprintf("B%d-%d", round, i)))
		}
		require.EqualValues(t, 204, b.notify(t, "t1", mailA, fmt.Sprintf("a-%d", round)))
		time.Sleep(time.Duration(rand.IntN(40)) * time.Millisecond)
		require.EqualValues(t, 204, b.notify(t, "t1", mailB, fmt.Sprintf("b-%d", round)))
		want := len(delivered)
		require.Eventually(t, func() bool {
			n, err := b.countAll(ctx)
			require.NoError(t, err)
			return n == want
		}, 20*time.Second, 20*time.Millisecond, "round %d: every message stored", round)
		// Stored is not streamed: give the stream its wake-up (or its 200 ms poll) to catch up.
		require.Eventually(t, func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(seen) == want
		}, 5*time.Second, 20*time.Millisecond, "round %d: the stream sent every stored message", round)
	}
	time.Sleep(300 * time.Millisecond) // more than a poll: nothing is sent twice
	mu.Lock()
	defer mu.Unlock()
	for _, id := range delivered {
		require.Equal(t, 1, seen[id], "message %s streamed exactly once", id)
	}
	require.Len(t, seen, len(delivered))
	require.Len(t, order, len(delivered))
}

// countAll counts the tenant's stored messages through the inbound API.
func (b *testBundle) countAll(ctx context.Context) (int, error) {
	n, cursor := 0, ""
	for {
		resp, err := b.inbound().ListInboundMessages(ctx, &gmailv1.ListInboundMessagesRequest{AfterCursor: cursor, PageSize: 500, IncludeAcknowledged: true})
		if err != nil {
			return 0, err
		}
		if len(resp.GetMessages()) == 0 {
			return n, nil
		}
		n += len(resp.GetMessages())
		cursor = resp.GetNextCursor()
	}
}
