package service

import (
	"context"
	"encoding/base64"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	gmailv1 "github.com/algapsa/alga-google/gen/alga/gmail/v1"
	"github.com/algapsa/alga-google/services/gmail/internal/mailparse"
	"github.com/algapsa/alga-google/services/gmail/internal/store"
	"github.com/algapsa/alga-google/services/platform/auth"
	"github.com/algapsa/alga-google/services/platform/errs"
)

// Inbound implements InboundMailService (service identities only; the tenant comes from the token).
type Inbound struct {
	gmailv1.UnimplementedInboundMailServiceServer
	s *Service
}

const cursorPrefix = "gm1:"

// EncodeCursor makes an opaque cursor of a message sequence number.
func EncodeCursor(seq int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(cursorPrefix + strconv.FormatInt(seq, 10)))
}

// DecodeCursor parses a cursor; "" is the beginning.
func DecodeCursor(field, c string) (int64, error) {
	if c == "" {
		return 0, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err == nil {
		if v, ok := strings.CutPrefix(string(b), cursorPrefix); ok {
			if seq, err := strconv.ParseInt(v, 10, 64); err == nil && seq >= 0 {
				return seq, nil
			}
		}
	}
	return 0, errs.InvalidField(field, "is not a cursor returned by this API")
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

func toInbound(m *store.Message) *gmailv1.InboundMessage {
	out := &gmailv1.InboundMessage{
		Cursor: EncodeCursor(m.Seq), Id: m.ID, ProviderId: m.ProviderID, Mailbox: m.Mailbox, GmailMessageId: m.GmailMessageID,
		ThreadId: m.ThreadID, MessageIdHeader: m.MessageIDHeader, InReplyTo: m.InReplyTo, References: m.References,
		From: m.From, To: m.To, Cc: m.Cc, Subject: m.Subject, TextBody: m.TextBody, HtmlBody: m.HTMLBody,
		LabelIds: m.LabelIDs, ReceiveTime: timestamppb.New(m.ReceiveTime), Acknowledged: m.AcknowledgeTime != nil,
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
	after, err := DecodeCursor("after_cursor", req.GetAfterCursor())
	if err != nil {
		return nil, err
	}
	size := int(req.GetPageSize())
	if size == 0 {
		size = 100
	}
	msgs, err := store.ListMessages(ctx, in.s.pool, tenant, req.GetProviderId(), after, size, req.GetIncludeAcknowledged())
	if err != nil {
		return nil, err
	}
	resp := &gmailv1.ListInboundMessagesResponse{NextCursor: req.GetAfterCursor()}
	for _, m := range msgs {
		resp.Messages = append(resp.Messages, toInbound(m))
		resp.NextCursor = EncodeCursor(m.Seq)
	}
	return resp, nil
}

func (in *Inbound) StreamInboundMessages(req *gmailv1.StreamInboundMessagesRequest, stream grpc.ServerStreamingServer[gmailv1.StreamInboundMessagesResponse]) error {
	ctx := stream.Context()
	// Streams skip the unary validation interceptor: validate here.
	if err := req.Validate(); err != nil {
		return err
	}
	tenant, err := serviceTenant(ctx)
	if err != nil {
		return err
	}
	after, err := DecodeCursor("after_cursor", req.GetAfterCursor())
	if err != nil {
		return err
	}
	for {
		wake := in.s.hub.wait()
		msgs, err := store.ListMessages(ctx, in.s.pool, tenant, req.GetProviderId(), after, 200, false)
		if err != nil {
			return err
		}
		for _, m := range msgs {
			if err := stream.Send(&gmailv1.StreamInboundMessagesResponse{Message: toInbound(m)}); err != nil {
				return err
			}
			after = m.Seq
		}
		if len(msgs) == 200 {
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
		case <-time.After(in.s.opts.StreamPoll):
		}
	}
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
	return &gmailv1.AcknowledgeInboundMessagesResponse{Acknowledged: int32(n)}, nil
}

// hub wakes streams when messages are stored (LISTEN/NOTIFY); streams also poll, so a lost notification
// only delays them.
type hub struct {
	mu sync.Mutex
	ch chan struct{}
}

func newHub() *hub { return &hub{ch: make(chan struct{})} }

func (h *hub) wait() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.ch
}

func (h *hub) broadcast() {
	h.mu.Lock()
	defer h.mu.Unlock()
	close(h.ch)
	h.ch = make(chan struct{})
}

// listen relays NOTIFY gmail_inbound to the hub until ctx ends, reconnecting on errors.
func (h *hub) listen(ctx context.Context, pool *pgxpool.Pool) {
	for ctx.Err() == nil {
		func() {
			conn, err := pool.Acquire(ctx)
			if err != nil {
				return
			}
			defer conn.Release()
			if _, err := conn.Exec(ctx, "LISTEN "+store.InboundChannel); err != nil {
				return
			}
			defer conn.Exec(context.WithoutCancel(ctx), "UNLISTEN *") //nolint:errcheck
			for {
				if _, err := conn.Conn().WaitForNotification(ctx); err != nil {
					return
				}
				h.broadcast()
			}
		}()
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}
