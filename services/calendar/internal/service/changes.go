package service

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/google/uuid"

	calendarv1 "github.com/algapsa/alga-google/gen/alga/calendar/v1"
	"github.com/algapsa/alga-google/services/calendar/internal/store"
	"github.com/algapsa/alga-google/services/platform/errs"
)

// ChangeServer implements CalendarChangeService (service identities only; the tenant is the caller's).
type ChangeServer struct {
	calendarv1.UnimplementedCalendarChangeServiceServer
	s *Service
}

const (
	defaultPageSize = 100
	maxPageSize     = 500
	streamBatch     = 200
)

func cursorString(seq int64) string { return strconv.FormatInt(seq, 10) }

func parseCursor(c string) (int64, error) {
	if c == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(c, 10, 64)
	if err != nil || n < 0 {
		return 0, errs.InvalidField("after_cursor", "must be a cursor returned by this API")
	}
	return n, nil
}

func checkProviderFilter(id string) error {
	if id == "" {
		return nil
	}
	if u, err := uuid.Parse(id); err != nil || u.String() != id {
		return errs.InvalidField("provider_id", "must be a provider id")
	}
	return nil
}

func (c *ChangeServer) ListCalendarChanges(ctx context.Context, req *calendarv1.ListCalendarChangesRequest) (*calendarv1.ListCalendarChangesResponse, error) {
	id, err := serviceCaller(ctx)
	if err != nil {
		return nil, err
	}
	if err := checkProviderFilter(req.GetProviderId()); err != nil {
		return nil, err
	}
	after, err := parseCursor(req.GetAfterCursor())
	if err != nil {
		return nil, err
	}
	size := int(req.GetPageSize())
	if size <= 0 {
		size = defaultPageSize
	}
	size = min(size, maxPageSize)
	list, err := store.ListChanges(ctx, c.s.opts.Pool, id.Tenant, req.GetProviderId(), after, req.GetIncludeAcknowledged(), size)
	if err != nil {
		return nil, err
	}
	out := &calendarv1.ListCalendarChangesResponse{Changes: []*calendarv1.CalendarChange{}, NextCursor: cursorString(after)}
	for _, ch := range list {
		out.Changes = append(out.Changes, toChange(ch))
		out.NextCursor = cursorString(ch.Seq)
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
	if err := req.Validate(); err != nil {
		return err
	}
	after, err := parseCursor(req.GetAfterCursor())
	if err != nil {
		return err
	}
	poll := time.NewTicker(c.s.opts.PollInterval)
	defer poll.Stop()
	for {
		wake := c.s.changed.wait()
		list, err := store.ListChanges(ctx, c.s.opts.Pool, id.Tenant, req.GetProviderId(), after, true, streamBatch)
		if err != nil {
			if errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		}
		for _, ch := range list {
			if err := stream.Send(&calendarv1.StreamCalendarChangesResponse{Change: toChange(ch)}); err != nil {
				return err
			}
			after = ch.Seq
		}
		if len(list) == streamBatch {
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
		case <-poll.C:
		}
	}
}

func (c *ChangeServer) AcknowledgeCalendarChanges(ctx context.Context, req *calendarv1.AcknowledgeCalendarChangesRequest) (*calendarv1.AcknowledgeCalendarChangesResponse, error) {
	id, err := serviceCaller(ctx)
	if err != nil {
		return nil, err
	}
	n, err := store.AcknowledgeChanges(ctx, c.s.opts.Pool, id.Tenant, req.GetChangeIds())
	if err != nil {
		return nil, err
	}
	return &calendarv1.AcknowledgeCalendarChangesResponse{Acknowledged: int32(n)}, nil
}
