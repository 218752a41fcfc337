package service

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	calendarv1 "github.com/algapsa/alga-google/gen/alga/calendar/v1"
	"github.com/algapsa/alga-google/services/calendar/internal/store"
	"github.com/algapsa/alga-google/services/platform/feed"
)

// feedName names the change feed's metrics and its NOTIFY channel.
const feedName = "calendar_changes"

// feedPoll is how often a stream looks for changes without a wake-up (a lost notification only delays it).
const feedPoll = 2 * time.Second

// NewFeed returns the change feed, its metrics registered with reg (when not nil). The target runs its
// LISTEN relay (feed.Run); a sync that records changes notifies it in its transaction.
func NewFeed(reg prometheus.Registerer) (*feed.Feed, error) {
	return feed.New(feed.Options{Name: feedName, Channel: feedName, Poll: feedPoll, Registerer: reg})
}

// ChangeServer implements CalendarChangeService (service identities only; the tenant is the caller's).
type ChangeServer struct {
	calendarv1.UnimplementedCalendarChangeServiceServer
	s *Service
}

// source reads the tenant's changes, of one provider unless providerID is empty.
func (c *ChangeServer) source(tenant, providerID string, includeAcknowledged bool) feed.Source[*store.Change] {
	return feed.Source[*store.Change]{
		// Changes are small (an event's fields, no bodies), so the query bounds rows only and Size alone
		// keeps a page within the feed's byte bound (a long description still cuts a page).
		After: func(ctx context.Context, after int64, limit, _ int) ([]*store.Change, error) {
			return store.ListChanges(ctx, c.s.deps.Pool, tenant, providerID, after, includeAcknowledged, limit)
		},
		Seq:  func(ch *store.Change) int64 { return ch.Seq },
		Size: func(ch *store.Change) int { return proto.Size(toChange(ch)) },
	}
}

func (c *ChangeServer) ListCalendarChanges(ctx context.Context, req *calendarv1.ListCalendarChangesRequest) (*calendarv1.ListCalendarChangesResponse, error) {
	id, err := serviceCaller(ctx)
	if err != nil {
		return nil, err
	}
	src := c.source(id.Tenant, req.GetProviderId(), req.GetIncludeAcknowledged())
	list, next, err := feed.List(ctx, c.s.feed, src, req.GetAfterCursor(), req.GetPageSize())
	if err != nil {
		return nil, err
	}
	out := &calendarv1.ListCalendarChangesResponse{Changes: make([]*calendarv1.CalendarChange, 0, len(list)), NextCursor: next}
	for _, ch := range list {
		out.Changes = append(out.Changes, toChange(ch))
	}
	return out, nil
}

// StreamCalendarChanges sends the backlog after the cursor, then live changes as they are recorded.
func (c *ChangeServer) StreamCalendarChanges(req *calendarv1.StreamCalendarChangesRequest, stream calendarv1.CalendarChangeService_StreamCalendarChangesServer) error {
	ctx := stream.Context()
	id, err := serviceCaller(ctx)
	if err != nil {
		return err
	}
	return feed.Stream(ctx, c.s.feed, c.source(id.Tenant, req.GetProviderId(), true), req.GetAfterCursor(),
		func(ch *store.Change) error {
			return stream.Send(&calendarv1.StreamCalendarChangesResponse{Change: toChange(ch)})
		})
}

func (c *ChangeServer) AcknowledgeCalendarChanges(ctx context.Context, req *calendarv1.AcknowledgeCalendarChangesRequest) (*calendarv1.AcknowledgeCalendarChangesResponse, error) {
	id, err := serviceCaller(ctx)
	if err != nil {
		return nil, err
	}
	n, err := store.AcknowledgeChanges(ctx, c.s.deps.Pool, id.Tenant, req.GetChangeIds())
	if err != nil {
		return nil, err
	}
	c.s.feed.Acknowledged(int(n))
	return &calendarv1.AcknowledgeCalendarChangesResponse{Acknowledged: int32(n)}, nil
}
