package ui

import (
	"context"
	"strings"
	"time"

	"google.golang.org/grpc"

	calendarv1 "github.com/algapsa/alga-google/gen/alga/calendar/v1"
	gmailv1 "github.com/algapsa/alga-google/gen/alga/gmail/v1"
)

// activity is what a provider page shows of recent traffic: 7 daily counts and the latest items
// (inbound messages of a mailbox, changes of a calendar). nil when the service does not offer it.
type activity struct {
	Days     []dayCount
	Messages []messageRow
	Changes  []changeRow
}

type messageRow struct {
	Time          time.Time
	From, Subject string
}

type changeRow struct {
	Time                time.Time
	Type, Summary, When string
}

func (s *Server) gmailActivity(ctx context.Context, conn *grpc.ClientConn, id string) *activity {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := gmailv1.NewGmailProviderServiceClient(conn).GetGmailProviderActivity(ctx, &gmailv1.GetGmailProviderActivityRequest{Id: id, Days: 7, MessageCount: 10})
	if err != nil {
		s.opt.Logger.DebugContext(ctx, "ui: gmail activity unavailable", "err", err)
		return nil
	}
	a := &activity{}
	for _, d := range resp.GetDays() {
		a.Days = append(a.Days, dayCount{Start: d.GetStartTime().AsTime(), Pushes: int(d.GetPushes()), Syncs: int(d.GetSyncs()), Errors: int(d.GetErrors())})
	}
	for _, m := range resp.GetRecentMessages() {
		a.Messages = append(a.Messages, messageRow{Time: m.GetReceiveTime().AsTime(), From: m.GetFrom(), Subject: m.GetSubject()})
	}
	return a
}

func (s *Server) calendarActivity(ctx context.Context, conn *grpc.ClientConn, id string) *activity {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := calendarv1.NewCalendarProviderServiceClient(conn).GetCalendarProviderActivity(ctx, &calendarv1.GetCalendarProviderActivityRequest{Id: id, Days: 7, ChangeCount: 10})
	if err != nil {
		s.opt.Logger.DebugContext(ctx, "ui: calendar activity unavailable", "err", err)
		return nil
	}
	a := &activity{}
	for _, d := range resp.GetDays() {
		a.Days = append(a.Days, dayCount{Start: d.GetStartTime().AsTime(), Pushes: int(d.GetNotifications()), Syncs: int(d.GetSyncs()), Errors: int(d.GetErrors())})
	}
	for _, c := range resp.GetRecentChanges() {
		row := changeRow{Time: c.GetRecordTime().AsTime(), Summary: c.GetSummary(),
			Type: upper1(strings.ToLower(strings.TrimPrefix(c.GetType().String(), "CHANGE_TYPE_")))}
		switch {
		case c.GetAllDay() || c.GetStartDate() != "":
			row.When = c.GetStartDate() + " (all day)"
		case c.GetStartTime() != nil:
			row.When = fmtTime(c.GetStartTime())
		}
		a.Changes = append(a.Changes, row)
	}
	return a
}
