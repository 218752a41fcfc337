package service

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"

	gmailv1 "github.com/algapsa/alga-google/gen/alga/gmail/v1"
	"github.com/algapsa/alga-google/services/gmail/internal/push"
	"github.com/algapsa/alga-google/services/gmail/internal/store"
)

func pushStatus(code int) *gmailv1.HandleGmailPushResponse {
	return &gmailv1.HandleGmailPushResponse{HttpStatus: int32(code)}
}

// HandleGmailPush verifies a Pub/Sub push, stores the notification and enqueues the mailbox's sync in one
// transaction, then answers. Nothing is written before the token is verified.
func (h *Providers) HandleGmailPush(ctx context.Context, req *gmailv1.HandleGmailPushRequest) (*gmailv1.HandleGmailPushResponse, error) {
	return h.s.handlePush(ctx, req)
}

func (s *Service) handlePush(ctx context.Context, req *gmailv1.HandleGmailPushRequest) (*gmailv1.HandleGmailPushResponse, error) {
	tok, err := push.BearerToken(req.GetAuthorization())
	if err != nil {
		s.metrics.push.WithLabelValues("unauthenticated").Inc()
		return pushStatus(http.StatusUnauthorized), nil
	}
	claims, err := s.verifier.Verify(ctx, tok)
	if err != nil {
		s.log.InfoContext(ctx, "gmail push rejected", "err", err)
		s.metrics.push.WithLabelValues("unauthenticated").Inc()
		return pushStatus(http.StatusUnauthorized), nil
	}
	env, err := push.ParseEnvelope(req.GetBody())
	if err != nil {
		s.log.InfoContext(ctx, "gmail push malformed", "err", err)
		s.metrics.push.WithLabelValues("malformed").Inc()
		return pushStatus(http.StatusBadRequest), nil
	}
	sub, err := store.GetSubscription(ctx, s.pool, env.Subscription)
	if errors.Is(err, store.ErrNotFound) {
		// Not ours (or deleted): acknowledge so Pub/Sub stops retrying, and count it.
		s.log.InfoContext(ctx, "gmail push for an unknown subscription", "subscription", env.Subscription)
		s.metrics.push.WithLabelValues("unknown_subscription").Inc()
		return pushStatus(http.StatusNoContent), nil
	}
	if err != nil {
		return nil, err
	}
	if err := push.CheckEmail(claims, sub.ServiceAccountEmail); err != nil {
		s.log.InfoContext(ctx, "gmail push rejected", "err", err, "subscription", env.Subscription)
		s.metrics.push.WithLabelValues("unauthenticated").Inc()
		return pushStatus(http.StatusUnauthorized), nil
	}
	p, err := store.ProviderByMailbox(ctx, s.pool, sub.Tenant, env.EmailAddress)
	if errors.Is(err, store.ErrNotFound) {
		s.log.InfoContext(ctx, "gmail push for an unknown mailbox", "tenant", sub.Tenant)
		s.metrics.push.WithLabelValues("unknown_mailbox").Inc()
		return pushStatus(http.StatusNoContent), nil
	}
	if err != nil {
		return nil, err
	}
	if p.Subscription != env.Subscription {
		// A subscription the mailbox no longer publishes to (superseded by a project change or cleared by a
		// reset): its row stays for routing history, but its pushes are not trusted. Acknowledged so
		// Pub/Sub stops redelivering, and counted; nothing is stored or synced.
		s.log.InfoContext(ctx, "gmail push for a superseded subscription", "tenant", sub.Tenant, "provider", p.ID, "subscription", env.Subscription)
		s.metrics.push.WithLabelValues("superseded_subscription").Inc()
		return pushStatus(http.StatusNoContent), nil
	}
	var publish *time.Time
	if !env.PublishTime.IsZero() {
		publish = &env.PublishTime
	}
	fresh := false
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// The provider's lock first (enqueueSync takes it again): the notification's foreign key would
		// otherwise share-lock the row, and two pushes upgrading to the lock would deadlock.
		if err := store.LockProvider(ctx, tx, sub.Tenant, p.ID); err != nil {
			return err
		}
		var err error
		fresh, err = store.InsertNotification(ctx, tx, store.Notification{
			Tenant: sub.Tenant, ProviderID: p.ID, Subscription: env.Subscription, PubSubMessageID: env.MessageID,
			EmailAddress: env.EmailAddress, HistoryID: int64(env.HistoryID), PublishTime: publish,
		})
		if err != nil || !fresh {
			return err
		}
		return s.enqueueSync(ctx, tx, sub.Tenant, p.ID)
	})
	if err != nil {
		return nil, err
	}
	if fresh {
		s.metrics.push.WithLabelValues("stored").Inc()
	} else {
		s.metrics.push.WithLabelValues("duplicate").Inc()
	}
	return pushStatus(http.StatusNoContent), nil
}
