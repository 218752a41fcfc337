package service

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	gmailv1 "github.com/algapsa/alga-google/gen/alga/gmail/v1"
	"github.com/algapsa/alga-google/services/gmail/internal/push"
	"github.com/algapsa/alga-google/services/gmail/internal/store"
)

func pushStatus(code int) *gmailv1.HandleGmailPushResponse {
	return &gmailv1.HandleGmailPushResponse{HttpStatus: int32(code)}
}

// pushRefused is a 4xx answer with the reason the gateway puts in its JSON error body: the part of the
// request at fault, then what is wrong with it. The push package's errors name the check that failed
// and never carry the token; the gateway caps the reason's length.
func pushRefused(code int, part string, err error) *gmailv1.HandleGmailPushResponse {
	return &gmailv1.HandleGmailPushResponse{HttpStatus: int32(code), Reason: part + ": " + err.Error()}
}

// HandleGmailPush verifies a Pub/Sub push, stores the notification (the durable enqueue) in one
// statement, answers, and has its mailbox's sync enqueued right after (dispatch.go). Nothing is written before the
// token is verified.
func (h *Providers) HandleGmailPush(ctx context.Context, req *gmailv1.HandleGmailPushRequest) (*gmailv1.HandleGmailPushResponse, error) {
	return h.s.handlePush(ctx, req)
}

// Per-push lines are Debug: a backlog redelivered after an outage would otherwise write a line per push.
// The counts are alga_gmail_push_requests_total{result}.
func (s *Service) handlePush(ctx context.Context, req *gmailv1.HandleGmailPushRequest) (*gmailv1.HandleGmailPushResponse, error) {
	tok, err := push.BearerToken(req.GetAuthorization())
	if err != nil {
		s.metrics.push.WithLabelValues("unauthenticated").Inc()
		return pushRefused(http.StatusUnauthorized, "authorization", err), nil
	}
	claims, err := s.verifier.Verify(ctx, tok)
	if err != nil {
		s.log.DebugContext(ctx, "gmail push rejected", "err", err)
		s.metrics.push.WithLabelValues("unauthenticated").Inc()
		return pushRefused(http.StatusUnauthorized, "authorization", err), nil
	}
	env, err := push.ParseEnvelope(req.GetBody())
	if err != nil {
		s.log.DebugContext(ctx, "gmail push malformed", "err", err)
		s.metrics.push.WithLabelValues("malformed").Inc()
		return pushRefused(http.StatusBadRequest, "body", err), nil
	}
	var publish *time.Time
	if !env.PublishTime.IsZero() {
		publish = &env.PublishTime
	}
	n := store.Notification{Subscription: env.Subscription, PubSubMessageID: env.MessageID, EmailAddress: env.EmailAddress,
		HistoryID: int64(env.HistoryID), PublishTime: publish}

	// Fast path: the route as recently read. StorePush re-checks it inside its INSERT, so a stale route
	// stores nothing and falls through to the lookups below.
	if r, ok := s.routes.get(env.Subscription, env.EmailAddress); ok && push.CheckEmail(claims, r.serviceAccount) == nil {
		resp, routed, err := s.storePush(ctx, r, n)
		if err != nil || routed {
			return resp, err
		}
		s.routes.forget(env.Subscription, env.EmailAddress)
	}

	sub, err := store.GetSubscription(ctx, s.pool, env.Subscription)
	if errors.Is(err, store.ErrNotFound) {
		// Not ours (or deleted): acknowledge so Pub/Sub stops retrying, and count it.
		s.log.DebugContext(ctx, "gmail push for an unknown subscription", "subscription", env.Subscription)
		s.metrics.push.WithLabelValues("unknown_subscription").Inc()
		return pushStatus(http.StatusNoContent), nil
	}
	if err != nil {
		return nil, err
	}
	if err := push.CheckEmail(claims, sub.ServiceAccountEmail); err != nil {
		s.log.DebugContext(ctx, "gmail push rejected", "err", err, "subscription", env.Subscription)
		s.metrics.push.WithLabelValues("unauthenticated").Inc()
		return pushRefused(http.StatusUnauthorized, "authorization", err), nil
	}
	p, err := store.ProviderByMailbox(ctx, s.pool, sub.Tenant, env.EmailAddress)
	if errors.Is(err, store.ErrNotFound) {
		s.log.DebugContext(ctx, "gmail push for an unknown mailbox", "tenant", sub.Tenant)
		s.metrics.push.WithLabelValues("unknown_mailbox").Inc()
		return pushStatus(http.StatusNoContent), nil
	}
	if err != nil {
		return nil, err
	}
	r := pushRoute{tenant: sub.Tenant, providerID: p.ID, serviceAccount: sub.ServiceAccountEmail}
	if p.Subscription == env.Subscription {
		resp, routed, err := s.storePush(ctx, r, n)
		if err != nil || routed {
			if routed {
				s.routes.put(env.Subscription, env.EmailAddress, r)
			}
			return resp, err
		}
		// The route changed between the lookups and the INSERT: as superseded below.
	}
	// A subscription the mailbox no longer publishes to (superseded by a project change or cleared by a
	// reset): its row stays for routing history, but its pushes are not trusted. Acknowledged so
	// Pub/Sub stops redelivering, and counted; nothing is stored or synced.
	s.log.DebugContext(ctx, "gmail push for a superseded subscription", "tenant", sub.Tenant, "provider", p.ID, "subscription", env.Subscription)
	s.metrics.push.WithLabelValues("superseded_subscription").Inc()
	return pushStatus(http.StatusNoContent), nil
}

// storePush stores n for route r (routed false: the route no longer holds, nothing stored) and, for a
// new notification, wakes the dispatcher, which enqueues the mailbox's sync (the push does not wait for
// it: the stored row is the durable enqueue, and a failed dispatch is retried, then swept).
func (s *Service) storePush(ctx context.Context, r pushRoute, n store.Notification) (*gmailv1.HandleGmailPushResponse, bool, error) {
	n.Tenant, n.ProviderID = r.tenant, r.providerID
	res, err := s.pushes.do(ctx, store.Push{Notification: n, ServiceAccountEmail: r.serviceAccount})
	if err != nil || !res.Routed {
		return nil, res.Routed, err
	}
	if !res.Stored {
		s.metrics.push.WithLabelValues("duplicate").Inc()
		return pushStatus(http.StatusNoContent), true, nil
	}
	s.metrics.push.WithLabelValues("stored").Inc()
	s.dispatcher.dispatch(r.tenant, r.providerID)
	return pushStatus(http.StatusNoContent), true, nil
}

// pushRoute is where a subscription's pushes for one mailbox go: the tenant owning the subscription, the
// provider of that mailbox, and the service account the push token must name.
type pushRoute struct {
	tenant, providerID, serviceAccount string
	expires                            time.Time
}

// routeTTL bounds how long a route read from the database is reused. Correctness does not depend on it
// (StorePush re-checks the route in its INSERT); it bounds how long a route changed by another replica
// costs one extra statement per push.
const routeTTL = 30 * time.Second

// maxRoutes bounds the cache (one entry per subscription and mailbox pushed to); beyond it, it starts
// over.
const maxRoutes = 100_000

// routeCache remembers the routes of recent pushes (only routes that held: an unknown subscription or
// mailbox is looked up every time, so a new one works at once).
type routeCache struct {
	mu     sync.Mutex
	routes map[[2]string]pushRoute
	now    func() time.Time
}

func newRouteCache() *routeCache {
	return &routeCache{routes: map[[2]string]pushRoute{}, now: time.Now}
}

func (c *routeCache) get(subscription, mailbox string) (pushRoute, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.routes[[2]string{subscription, mailbox}]
	if !ok || !c.now().Before(r.expires) {
		return pushRoute{}, false
	}
	return r, true
}

func (c *routeCache) put(subscription, mailbox string, r pushRoute) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.routes) >= maxRoutes {
		clear(c.routes)
	}
	r.expires = c.now().Add(routeTTL)
	c.routes[[2]string{subscription, mailbox}] = r
}

func (c *routeCache) forget(subscription, mailbox string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.routes, [2]string{subscription, mailbox})
}

// Concurrent pushes are stored together: one statement (and one commit) for the pushes that arrived
// while the previous ones were being stored, pushWriters statements at once. Each push is answered once
// the statement holding its notification has committed, as if it had been stored alone. Two writers:
// under load the batches grow instead of the statements (fewer commits for PostgreSQL to make on the
// same CPU: at half the bare handler's rate, 2 gave a lower p99 than 4 in alternating runs), while a
// statement held up — by another replica's uncommitted redelivery of one of its messages — does not
// stop every push behind it.
const (
	pushWriters = 2
	maxPushes   = 256
)

// storePushes stores a group of pushes (StorePushes). A Pub/Sub message twice in one group (a redelivery
// arriving with the original) is stored once; its second push is a duplicate of the first.
func (s *Service) storePushes(ctx context.Context, pushes []store.Push) ([]store.PushResult, error) {
	type key struct{ subscription, id string }
	first := make(map[key]int, len(pushes))
	unique := make([]store.Push, 0, len(pushes))
	of := make([]int, len(pushes))
	for i, p := range pushes {
		k := key{p.Subscription, p.PubSubMessageID}
		j, ok := first[k]
		if !ok {
			j = len(unique)
			first[k] = j
			unique = append(unique, p)
		}
		of[i] = j
	}
	res, err := store.StorePushes(ctx, s.pool, unique)
	for try := 0; try < 2 && isDeadlock(err); try++ {
		// Not expected between pushes (keys and rows are taken in one order), but another writer may
		// lock providers in its own order: the statement rolled back whole, so it can run again.
		res, err = store.StorePushes(ctx, s.pool, unique)
	}
	if err != nil {
		return nil, err
	}
	out := make([]store.PushResult, len(pushes))
	taken := make([]bool, len(unique))
	for i, j := range of {
		out[i] = store.PushResult{Routed: res[j].Routed, Stored: res[j].Stored && !taken[j]}
		taken[j] = true
	}
	return out, nil
}

func isDeadlock(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "40P01"
}
