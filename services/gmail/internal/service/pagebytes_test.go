package service

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	gmailv1 "github.com/algapsa/alga-google/gen/alga/gmail/v1"
	"github.com/algapsa/alga-google/services/platform/auth"
	"github.com/algapsa/alga-google/services/platform/feed"
)

// Twenty messages with 1 MiB bodies: a List page of up to 500 rows would be 20 MiB, past gRPC's 4 MiB
// receive limit (the consumer would get ResourceExhausted: an unreadable feed). Every page comes back
// within the feed's byte bound, every message once across the pages, and a stream delivers all of them.
func TestLargeMessagesListAndStreamWithinTheMessageLimit(t *testing.T) {
	t.Parallel()
	const messages = 20
	b := setup(t)
	b.gm.mu.Lock()
	b.gm.pageSize = 500
	b.gm.mu.Unlock()
	b.configureTenant("t1")
	p := b.connect(t, "t1", "big@acme.test")
	want := map[string]bool{}
	for range messages {
		want[b.gm.deliverLarge("big@acme.test", 1<<20)] = true
	}
	require.EqualValues(t, 204, b.notify(t, "t1", "big@acme.test", "big-1"))
	require.Eventually(t, func() bool {
		return b.count(t, "SELECT count(*) FROM gmail.messages WHERE provider_id = $1", p.GetId()) == messages
	}, 60*time.Second, 100*time.Millisecond)

	ctx := b.service(auth.SvcPlatform, "t1")
	seen := map[string]int{}
	cursor, pages := "", 0
	for {
		resp, err := b.inbound().ListInboundMessages(ctx, &gmailv1.ListInboundMessagesRequest{AfterCursor: cursor, PageSize: 500})
		require.NoError(t, err, "page %d", pages)
		if len(resp.GetMessages()) == 0 {
			break
		}
		pages++
		require.LessOrEqual(t, proto.Size(resp), feed.PageBytes+1024, "page %d stays within the byte bound", pages)
		for _, m := range resp.GetMessages() {
			require.Greater(t, len(m.GetTextBody()), 1<<20-100, "the body itself, not a cut page")
			seen[m.GetGmailMessageId()]++
		}
		require.Equal(t, resp.GetMessages()[len(resp.GetMessages())-1].GetCursor(), resp.GetNextCursor())
		cursor = resp.GetNextCursor()
	}
	require.Len(t, seen, messages)
	for id := range want {
		require.Equal(t, 1, seen[id], "message %s listed once", id)
	}
	require.Greater(t, pages, 5, "bounded by bytes, not by the 500 rows asked for")

	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	stream, err := b.inbound().StreamInboundMessages(sctx, &gmailv1.StreamInboundMessagesRequest{})
	require.NoError(t, err)
	streamed := map[string]int{}
	for len(streamed) < messages {
		msg, err := stream.Recv()
		require.NoError(t, err, fmt.Sprintf("after %d messages", len(streamed)))
		streamed[msg.GetMessage().GetGmailMessageId()]++
	}
	require.Equal(t, seen, streamed)
}
