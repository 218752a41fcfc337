package service

import (
	"context"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	gmailv1 "github.com/algapsa/alga-google/gen/alga/gmail/v1"
	"github.com/algapsa/alga-google/services/gmail/internal/mailparse"
	"github.com/algapsa/alga-google/services/gmail/internal/store"
	"github.com/algapsa/alga-google/services/platform/auth"
	"github.com/algapsa/alga-google/services/platform/errs"
	"github.com/algapsa/alga-google/services/platform/feed"
)

// Inbound implements InboundMailService (service identities only; the tenant comes from the token): the
// stored messages are a platform feed (cursor, list, stream, wake-ups and metrics all from feed).
type Inbound struct {
	gmailv1.UnimplementedInboundMailServiceServer
	s *Service
}

func serviceTenant(ctx context.Context) (string, error) {
	id, ok := auth.FromContext(ctx)
	if !ok || !id.IsService() {
		return "", errs.PermissionDenied("this method is available to internal services only")
	}
	if id.Tenant == "" {
		return "", errs.PermissionDenied("the service token names no tenant")
	}
	return id.Tenant, nil
}

// messages is the feed source of one consumer: the tenant's messages, of one provider when providerID
// is set, acknowledged ones too when includeAck.
func (in *Inbound) messages(tenant, providerID string, includeAck bool) feed.Source[*store.Message] {
	return feed.Source[*store.Message]{
		After: func(ctx context.Context, after int64, limit int) ([]*store.Message, error) {
			return store.ListMessages(ctx, in.s.pool, tenant, providerID, after, limit, includeAck)
		},
		Seq: func(m *store.Message) int64 { return m.Seq },
	}
}

func toInbound(m *store.Message) *gmailv1.InboundMessage {
	out := &gmailv1.InboundMessage{
		Cursor: feed.Cursor(m.Seq), Id: m.ID, ProviderId: m.ProviderID, Mailbox: m.Mailbox, GmailMessageId: m.GmailMessageID,
		ThreadId: m.ThreadID, MessageIdHeader: m.MessageIDHeader, InReplyTo: m.InReplyTo, References: m.References,
		From: m.From, To: m.To, Cc: m.Cc, Subject: m.Subject, TextBody: m.TextBody, HtmlBody: m.HTMLBody,
		LabelIds: m.LabelIDs, ReceiveTime: timestamppb.New(m.ReceiveTime), Acknowledged: m.AcknowledgeTime != nil,
		Truncated: m.Truncated,
	}
	var atts []mailparse.Attachment
	if err := jsonUnmarshal(m.Attachments, &atts); err == nil {
		for _, a := range atts {
			out.Attachments = append(out.Attachments, &gmailv1.Attachment{Filename: a.Filename, ContentType: a.ContentType, Size: a.Size, ContentId: a.ContentID})
		}
	}
	return out
}

func (in *Inbound) ListInboundMessages(ctx context.Context, req *gmailv1.ListInboundMessagesRequest) (*gmailv1.ListInboundMessagesResponse, error) {
	tenant, err := serviceTenant(ctx)
	if err != nil {
		return nil, err
	}
	msgs, next, err := feed.List(ctx, in.s.feed, in.messages(tenant, req.GetProviderId(), req.GetIncludeAcknowledged()),
		req.GetAfterCursor(), req.GetPageSize())
	if err != nil {
		return nil, err
	}
	resp := &gmailv1.ListInboundMessagesResponse{NextCursor: next}
	for _, m := range msgs {
		resp.Messages = append(resp.Messages, toInbound(m))
	}
	return resp, nil
}

func (in *Inbound) StreamInboundMessages(req *gmailv1.StreamInboundMessagesRequest, stream grpc.ServerStreamingServer[gmailv1.StreamInboundMessagesResponse]) error {
	ctx := stream.Context()
	tenant, err := serviceTenant(ctx)
	if err != nil {
		return err
	}
	return feed.Stream(ctx, in.s.feed, in.messages(tenant, req.GetProviderId(), false), req.GetAfterCursor(),
		func(m *store.Message) error {
			return stream.Send(&gmailv1.StreamInboundMessagesResponse{Message: toInbound(m)})
		})
}

func (in *Inbound) AcknowledgeInboundMessages(ctx context.Context, req *gmailv1.AcknowledgeInboundMessagesRequest) (*gmailv1.AcknowledgeInboundMessagesResponse, error) {
	tenant, err := serviceTenant(ctx)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(req.GetMessageIds()))
	for i, id := range req.GetMessageIds() {
		ids[i] = strings.ToLower(id)
	}
	n, err := store.Acknowledge(ctx, in.s.pool, tenant, ids)
	if err != nil {
		return nil, err
	}
	in.s.feed.Acknowledged(int(n))
	return &gmailv1.AcknowledgeInboundMessagesResponse{Acknowledged: int32(n)}, nil
}
