package service

import (
	"context"
	"strings"

	"google.golang.org/protobuf/types/known/timestamppb"

	gmailv1 "github.com/algapsa/alga-google/gen/alga/gmail/v1"
	"github.com/algapsa/alga-google/services/gmail/internal/store"
)

// GetGmailProviderActivity implements GmailProviderService: a mailbox's daily traffic and its newest
// inbound messages (received time, sender, subject — never a body or a recipient list), for the UI.
// The same permissions as diagnostics.
func (h *Providers) GetGmailProviderActivity(ctx context.Context, req *gmailv1.GetGmailProviderActivityRequest) (*gmailv1.GetGmailProviderActivityResponse, error) {
	id, err := caller(ctx, permSystemSettings, permTicketSettings)
	if err != nil {
		return nil, err
	}
	p, err := store.GetProvider(ctx, h.s.pool, id.Tenant, strings.ToLower(req.GetId()))
	if err != nil {
		return nil, notFound(err)
	}
	days, count := int(req.GetDays()), int(req.GetMessageCount())
	if days == 0 {
		days = 7
	}
	if count == 0 {
		count = 10
	}
	counts, err := store.ActivityDays(ctx, h.s.pool, id.Tenant, p.ID, days)
	if err != nil {
		return nil, err
	}
	recent, err := store.RecentMessages(ctx, h.s.pool, id.Tenant, p.ID, count)
	if err != nil {
		return nil, err
	}
	out := &gmailv1.GetGmailProviderActivityResponse{Days: []*gmailv1.ActivityDay{}, RecentMessages: []*gmailv1.RecentMessage{}}
	for _, d := range counts {
		out.Days = append(out.Days, &gmailv1.ActivityDay{StartTime: timestamppb.New(d.Start), Pushes: int32(d.Pushes),
			Syncs: int32(d.Syncs), Errors: int32(d.Errors), Messages: int32(d.Messages)})
	}
	for _, m := range recent {
		out.RecentMessages = append(out.RecentMessages, &gmailv1.RecentMessage{ReceiveTime: timestamppb.New(m.ReceiveTime), From: m.From, Subject: m.Subject})
	}
	return out, nil
}
