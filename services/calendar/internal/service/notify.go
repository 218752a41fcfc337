package service

import (
	"context"
	"crypto/subtle"
	"errors"
	"net/http"

	"github.com/jackc/pgx/v5"

	calendarv1 "github.com/algapsa/alga-google/gen/alga/calendar/v1"
	"github.com/algapsa/alga-google/services/calendar/internal/channel"
	"github.com/algapsa/alga-google/services/calendar/internal/store"
	"github.com/algapsa/alga-google/services/platform/auth"
	"github.com/algapsa/alga-google/services/platform/errs"
	"github.com/algapsa/alga-google/services/platform/jobs"
)

func answer(code int) *calendarv1.HandleCalendarNotificationResponse {
	return &calendarv1.HandleCalendarNotificationResponse{HttpStatus: int32(code)}
}

// refused is a 4xx answer with the reason the gateway puts in its JSON error body, naming the header at
// fault (channel.Parse's errors do; they never carry the token). The gateway caps its length.
func refused(code int, reason string) *calendarv1.HandleCalendarNotificationResponse {
	return &calendarv1.HandleCalendarNotificationResponse{HttpStatus: int32(code), Reason: reason}
}

// HandleCalendarNotification ingests one push-channel notification (headers only). The channel is found by
// its id; its token must be the HMAC of (tenant, provider, channel) — missing 401, wrong 403 — and the
// resource id must match. "sync" is acknowledged and recorded; exists/not_exists is stored with its
// message number (not newer than the last seen: ignored) and a coalesced delta sync is enqueued in the
// same transaction. The answer comes right after the commit; the sync runs later.
func (s *Service) HandleCalendarNotification(ctx context.Context, req *calendarv1.HandleCalendarNotificationRequest) (*calendarv1.HandleCalendarNotificationResponse, error) {
	// The gateway's identity carries no tenant: a notification's tenant comes from the channel row, and
	// the channel token proves it.
	if id, ok := auth.FromContext(ctx); !ok || !id.IsService() {
		return nil, errs.PermissionDenied("this method is available to internal services only")
	}
	n, err := channel.Parse(channel.Headers{
		ChannelID: req.GetChannelId(), Token: req.GetChannelToken(), ResourceID: req.GetResourceId(),
		ResourceState: req.GetResourceState(), ResourceURI: req.GetResourceUri(),
		MessageNumber: req.GetMessageNumber(), ChannelExpiration: req.GetChannelExpiration(),
	})
	if err != nil {
		s.metrics.notifications.WithLabelValues("malformed").Inc()
		s.log.InfoContext(ctx, "calendar notification refused", "reason", err.Error())
		return refused(http.StatusBadRequest, err.Error()), nil
	}
	ch, err := store.GetChannel(ctx, s.deps.Pool, n.ChannelID)
	if errors.Is(err, store.ErrNotFound) {
		// Not ours (or long gone): acknowledge so Google stops retrying; nothing is stored.
		s.metrics.notifications.WithLabelValues("unknown_channel").Inc()
		return answer(http.StatusOK), nil
	}
	if err != nil {
		return nil, err
	}
	if n.Token == "" {
		s.metrics.notifications.WithLabelValues("missing_token").Inc()
		s.log.WarnContext(ctx, "calendar notification without channel token refused", "channel", ch.ChannelID)
		return refused(http.StatusUnauthorized, "X-Goog-Channel-Token: missing"), nil
	}
	if !s.deps.Keys.Verify(ch.Tenant, ch.ProviderID, ch.ChannelID, n.Token) {
		s.metrics.notifications.WithLabelValues("bad_token").Inc()
		s.log.WarnContext(ctx, "calendar notification with a wrong channel token refused", "channel", ch.ChannelID)
		return refused(http.StatusForbidden, "X-Goog-Channel-Token: does not match the channel"), nil
	}
	if ch.ResourceID != "" && subtle.ConstantTimeCompare([]byte(ch.ResourceID), []byte(n.ResourceID)) != 1 {
		s.metrics.notifications.WithLabelValues("wrong_resource").Inc()
		s.log.WarnContext(ctx, "calendar notification for another resource refused", "channel", ch.ChannelID)
		return refused(http.StatusForbidden, "X-Goog-Resource-ID: does not match the channel"), nil
	}
	if ch.State == store.ChannelStopped {
		s.metrics.notifications.WithLabelValues("ignored").Inc()
		return answer(http.StatusOK), nil
	}
	result := "duplicate"
	err = s.withTx(ctx, func(tx pgx.Tx) error {
		advanced, err := store.AdvanceMessageNumber(ctx, tx, ch.ChannelID, n.MessageNumber)
		if err != nil || !advanced {
			return err
		}
		if _, err := store.InsertNotification(ctx, tx, ch.Tenant, ch.ProviderID, ch.ChannelID, n.MessageNumber, n.ResourceState); err != nil {
			return err
		}
		if n.ResourceState == channel.StateSync {
			result = "sync"
			return nil
		}
		p, err := store.GetProvider(ctx, tx, ch.Tenant, ch.ProviderID)
		if err != nil {
			return err
		}
		if p.State == store.StateDisconnected {
			result = "ignored"
			return nil
		}
		if _, err := store.BumpNotify(ctx, tx, ch.Tenant, ch.ProviderID); err != nil {
			return err
		}
		if _, err := s.jobs.InsertTx(ctx, tx, SyncArgs{Tenant: ch.Tenant, ProviderID: ch.ProviderID}, jobs.Coalesce()); err != nil {
			return err
		}
		result = "accepted"
		return nil
	})
	if err != nil {
		// Nothing was stored: Google redelivers on a non-2xx answer.
		return nil, err
	}
	s.metrics.notifications.WithLabelValues(result).Inc()
	return answer(http.StatusOK), nil
}
