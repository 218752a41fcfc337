package service

import (
	"context"

	"google.golang.org/protobuf/types/known/timestamppb"

	calendarv1 "github.com/algapsa/alga-google/gen/alga/calendar/v1"
	"github.com/algapsa/alga-google/services/calendar/internal/store"
)

// GetCalendarProviderActivity implements CalendarProviderService: a calendar's daily traffic and its
// latest recorded changes (summary and start only), for the UI. Like diagnostics, a user sees their own
// provider and an admin any; another user's provider is NotFound.
func (s *Service) GetCalendarProviderActivity(ctx context.Context, req *calendarv1.GetCalendarProviderActivityRequest) (*calendarv1.GetCalendarProviderActivityResponse, error) {
	id, err := user(ctx)
	if err != nil {
		return nil, err
	}
	p, err := s.load(ctx, id, req.GetId(), true)
	if err != nil {
		return nil, err
	}
	days, count := int(req.GetDays()), int(req.GetChangeCount())
	if days == 0 {
		days = 7
	}
	if count == 0 {
		count = 10
	}
	counts, err := store.ActivityDays(ctx, s.deps.Pool, p.Tenant, p.ID, days)
	if err != nil {
		return nil, err
	}
	recent, err := store.RecentChanges(ctx, s.deps.Pool, p.Tenant, p.ID, count)
	if err != nil {
		return nil, err
	}
	out := &calendarv1.GetCalendarProviderActivityResponse{Days: []*calendarv1.ActivityDay{}, RecentChanges: []*calendarv1.RecentChange{}}
	for _, d := range counts {
		out.Days = append(out.Days, &calendarv1.ActivityDay{StartTime: timestamppb.New(d.Start), Notifications: int32(d.Notifications),
			Syncs: int32(d.Syncs), Errors: int32(d.Errors), Changes: int32(d.Changes)})
	}
	for _, c := range recent {
		rc := &calendarv1.RecentChange{RecordTime: timestamppb.New(c.RecordTime), Type: calendarv1.ChangeType(c.Type),
			Summary: c.Summary, StartDate: c.StartDate, AllDay: c.AllDay}
		if c.StartTime != nil {
			rc.StartTime = timestamppb.New(*c.StartTime)
		}
		out.RecentChanges = append(out.RecentChanges, rc)
	}
	return out, nil
}
