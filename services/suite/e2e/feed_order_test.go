package e2e_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	gmailv1 "github.com/algapsa/alga-google/gen/alga/gmail/v1"
	"github.com/algapsa/alga-google/services/platform/feed"
	"github.com/algapsa/alga-google/services/suite/harness"
)

// TestGmailFeedOfTwoMailboxesStreamsEveryMessageOnceInOrder is issue #13 end to end: two mailboxes of one
// tenant, connected through the suite against the Google sandbox, receive mail at the same time — A's
// batches much larger than B's, so B's short sync transaction runs while A's long one is open — while a
// platform service streams the tenant's inbound feed over gRPC from the start. Without the feed's append
// lock B's rows commit first with higher positions, the stream's cursor moves past them and A's rows,
// committed afterwards with lower positions, are never sent. Every message must be streamed exactly
// once, in cursor order, and paging ListInboundMessages from the start must return the same messages in
// the same order.
func TestGmailFeedOfTwoMailboxesStreamsEveryMessageOnceInOrder(t *testing.T) {
	t.Parallel()
	const (
		rounds       = 3
		perRoundA    = 30
		perRoundB    = 2
		mailA, mailB = "feed-a@acme.test", "feed-b@acme.test"
	)
	// A round's 30 messages of A are stored in one transaction (one batch), B's in a short one.
	e := newEnv(t, harness.Options{Settings: map[string]string{"gmail-sync-batch-messages": "50"}})
	ts := e.setupTenant(t, "tenant-feed", "acme-feed", setupOpts{})
	pa := e.connectGmail(t, ts, mailA)
	pb := e.connectGmail(t, ts, mailB)
	e.waitSyncIdle(t)

	inbound := gmailv1.NewInboundMailServiceClient(e.s.Conn(t))
	ctx, cancel := context.WithCancel(e.svcCtx("platform", ts.tenant))
	defer cancel()
	stream, err := inbound.StreamInboundMessages(ctx, &gmailv1.StreamInboundMessagesRequest{})
	require.NoError(t, err)
	var mu sync.Mutex
	var streamed []*gmailv1.InboundMessage
	recvDone := make(chan error, 1)
	go func() {
		for {
			resp, err := stream.Recv()
			if err != nil {
				recvDone <- err
				return
			}
			mu.Lock()
			streamed = append(streamed, resp.GetMessage())
			mu.Unlock()
		}
	}()

	// deliverRound puts n messages in mailbox as fast as the sandbox takes them; only the first of a
	// mailbox within Gmail's notification interval is pushed, and the sync it starts runs while the
	// rest are still arriving (the round's last message, pushed after the interval, picks them up).
	deliverRound := func(mailbox string, round, from, n int, ids chan<- string) error {
		for i := from; i < from+n; i++ {
			d, err := e.admin.Deliver(e.ctx, mailbox, plainEmail(mailbox, fmt.Sprintf("%s r%d #%d", mailbox, round, i)))
			if err != nil {
				return err
			}
			ids <- mailbox + "/" + d.ID
		}
		return nil
	}
	ids := make(chan string, rounds*(perRoundA+perRoundB))
	for round := range rounds {
		require.NoError(t, e.admin.AdvanceClock(e.ctx, time.Second))
		var wg sync.WaitGroup
		errs := make(chan error, 2)
		for _, m := range []struct {
			mailbox string
			n       int
		}{{mailA, perRoundA - 1}, {mailB, perRoundB - 1}} {
			wg.Go(func() { errs <- deliverRound(m.mailbox, round, 0, m.n, ids) })
		}
		wg.Wait()
		require.NoError(t, <-errs)
		require.NoError(t, <-errs)
		// The round's last message of each mailbox, after the interval: pushed, both syncs at once.
		require.NoError(t, e.admin.AdvanceClock(e.ctx, time.Second))
		for _, m := range []struct {
			mailbox string
			n       int
		}{{mailA, perRoundA}, {mailB, perRoundB}} {
			wg.Go(func() {
				d, err := e.admin.Deliver(e.ctx, m.mailbox, plainEmail(m.mailbox, fmt.Sprintf("%s r%d #%d", m.mailbox, round, m.n-1)))
				if err == nil && !d.Notified {
					err = fmt.Errorf("the last message of round %d to %s was not pushed", round, m.mailbox)
				}
				if err == nil {
					ids <- m.mailbox + "/" + d.ID
				}
				errs <- err
			})
		}
		wg.Wait()
		require.NoError(t, <-errs)
		require.NoError(t, <-errs)
	}
	close(ids)
	want := map[string]bool{} // mailbox/id: Gmail message ids are a mailbox's own
	for id := range ids {
		want[id] = true
	}
	require.Len(t, want, rounds*(perRoundA+perRoundB))

	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(streamed) >= len(want)
	}, 30*time.Second, 20*time.Millisecond, "the stream sends every message")
	e.waitSyncIdle(t)
	time.Sleep(300 * time.Millisecond) // nothing more arrives: no message is sent twice
	cancel()
	<-recvDone

	mu.Lock()
	defer mu.Unlock()
	seen := map[string]int{}
	perProvider := map[string]int{}
	last := int64(0)
	for i, m := range streamed {
		seen[m.GetMailbox()+"/"+m.GetGmailMessageId()]++
		perProvider[m.GetProviderId()]++
		seq, err := feed.ParseCursor("cursor", m.GetCursor())
		require.NoError(t, err)
		require.Greater(t, seq, last, "message %d of the stream is in cursor order", i)
		last = seq
	}
	for id := range want {
		require.Equal(t, 1, seen[id], "message %s streamed exactly once", id)
	}
	require.Len(t, streamed, len(want), "nothing else streamed")
	require.Equal(t, map[string]int{pa.ID: rounds * perRoundA, pb.ID: rounds * perRoundB}, perProvider)

	// A consumer paging the feed from the start reads the same messages in the same order.
	var listed []string
	cursor := ""
	for {
		resp, err := inbound.ListInboundMessages(e.svcCtx("platform", ts.tenant),
			&gmailv1.ListInboundMessagesRequest{AfterCursor: cursor, PageSize: 7})
		require.NoError(t, err)
		if len(resp.GetMessages()) == 0 {
			require.Equal(t, cursor, resp.GetNextCursor(), "an empty page keeps the cursor")
			break
		}
		for _, m := range resp.GetMessages() {
			listed = append(listed, m.GetCursor()+" "+m.GetGmailMessageId())
		}
		cursor = resp.GetNextCursor()
	}
	streamedKeys := make([]string, len(streamed))
	for i, m := range streamed {
		streamedKeys[i] = m.GetCursor() + " " + m.GetGmailMessageId()
	}
	require.Equal(t, streamedKeys, listed)
}
