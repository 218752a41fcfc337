package service

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	calendarv1 "github.com/algapsa/alga-google/gen/alga/calendar/v1"
	"github.com/algapsa/alga-google/gen/validation"
	"github.com/algapsa/alga-google/services/platform/auth"
	"github.com/algapsa/alga-google/services/platform/feed"
)

// fakeStream is the server side of StreamCalendarChanges, handing what is sent to a channel.
type fakeStream struct {
	grpc.ServerStream
	ctx  context.Context
	sent chan *calendarv1.CalendarChange
}

func (f *fakeStream) Context() context.Context { return f.ctx }

func (f *fakeStream) Send(m *calendarv1.StreamCalendarChangesResponse) error {
	select {
	case f.sent <- m.GetChange():
		return nil
	case <-f.ctx.Done():
		return f.ctx.Err()
	}
}

func TestBadCursorsAreInvalidAfterCursor(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, c := range []string{"0", "12", "f1:3", "not a cursor", feed.Cursor(3) + "x"} {
		_, err := b.svc.ChangeServer().ListCalendarChanges(serviceCtx("platform"), &calendarv1.ListCalendarChangesRequest{AfterCursor: c})
		require.Equal(t, codes.InvalidArgument, code(err), c)
		var fe *validation.FieldError
		require.True(t, errors.As(err, &fe), c)
		require.Equal(t, "after_cursor", fe.Field)

		err = b.svc.ChangeServer().StreamCalendarChanges(&calendarv1.StreamCalendarChangesRequest{AfterCursor: c},
			&fakeStream{ctx: serviceCtx("platform"), sent: make(chan *calendarv1.CalendarChange, 1)})
		require.Equal(t, codes.InvalidArgument, code(err), c)
	}
}

func TestListCursorsContinueAndEmptyPagesKeepTheirCursor(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, id := range []string{"a", "b", "c"} {
		b.google.put("primary", id, "event "+id)
	}
	p := b.connect(t, "alice")
	list := func(after string, size int32) *calendarv1.ListCalendarChangesResponse {
		res, err := b.svc.ChangeServer().ListCalendarChanges(serviceCtx("platform"), &calendarv1.ListCalendarChangesRequest{ProviderId: p.GetId(), AfterCursor: after, PageSize: size})
		require.NoError(t, err)
		return res
	}
	first := list("", 2)
	require.Equal(t, []string{"CREATED:a", "CREATED:b"}, types(first.GetChanges()))
	require.Equal(t, first.GetChanges()[1].GetCursor(), first.GetNextCursor())
	rest := list(first.GetNextCursor(), 0)
	require.Equal(t, []string{"CREATED:c"}, types(rest.GetChanges()))
	empty := list(rest.GetNextCursor(), 0)
	require.Empty(t, empty.GetChanges())
	require.Equal(t, rest.GetNextCursor(), empty.GetNextCursor())
}

// A sync notifies the feed in the transaction that records its changes: the LISTEN relay wakes the
// stream at once (its poll is an hour here, so nothing else could deliver the change).
func TestStreamWakesWhenASyncRecordsChanges(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.google.put("primary", "a", "first")
	p := b.connect(t, "alice")
	ch := b.activeChannel(t, p.GetId())

	f, err := feed.New(feed.Options{Name: feedName, Channel: feedName, Poll: time.Hour})
	require.NoError(t, err)
	b.svc.feed = f
	ctx, cancel := context.WithCancel(b.ctx)
	defer cancel()
	relayDone := make(chan struct{})
	go func() { defer close(relayDone); f.Run(ctx, b.pool) }()
	defer func() { cancel(); <-relayDone }()
	require.Eventually(t, func() bool {
		return b.count(t, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query = 'LISTEN "+feedName+"'") == 1
	}, 10*time.Second, 10*time.Millisecond, "the relay listens")

	stream := &fakeStream{ctx: auth.WithIdentity(ctx, auth.Identity{Service: "platform", Tenant: tenant}), sent: make(chan *calendarv1.CalendarChange, 10)}
	streamDone := make(chan error, 1)
	go func() {
		streamDone <- b.svc.ChangeServer().StreamCalendarChanges(&calendarv1.StreamCalendarChangesRequest{ProviderId: p.GetId()}, stream)
	}()
	recv := func() *calendarv1.CalendarChange {
		select {
		case c := <-stream.sent:
			return c
		case err := <-streamDone:
			t.Fatalf("stream ended: %v", err)
		case <-time.After(10 * time.Second):
			t.Fatal("no change arrived")
		}
		return nil
	}
	require.Equal(t, "first", recv().GetSummary(), "the backlog")

	b.google.put("primary", "b", "second")
	require.Equal(t, int32(200), b.notify(t, b.google.notification(ch.ChannelID, "exists")))
	b.drain(t)
	require.Equal(t, "second", recv().GetSummary(), "woken by the sync's notification")

	cancel()
	require.NoError(t, <-streamDone, "a stream ends quietly with its context")
}

// A retried Start registers the counters again on the same registry: they are reused, not an error.
func TestMetricsAndFeedSurviveARetriedStart(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m1, err := NewMetrics(reg)
	require.NoError(t, err)
	m2, err := NewMetrics(reg)
	require.NoError(t, err)
	require.Same(t, m1.notifications, m2.notifications)
	require.Same(t, m1.syncs, m2.syncs)
	_, err = NewFeed(reg)
	require.NoError(t, err)
	_, err = NewFeed(reg)
	require.NoError(t, err)
}
