// Package service implements the calendar service: CalendarProviderService (providers, OAuth connect,
// activation, push-channel webhook, channel upkeep), CalendarChangeService (the change feed, on the
// platform's feed) and the River workers: delta syncs and the sweeper.
package service

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/api/option"

	calendarv1 "github.com/algapsa/alga-google/gen/alga/calendar/v1"
	"github.com/algapsa/alga-google/services/calendar/internal/channel"
	"github.com/algapsa/alga-google/services/platform/feed"
	"github.com/algapsa/alga-google/services/platform/googleretry"
	"github.com/algapsa/alga-google/services/platform/jobs"
	"github.com/algapsa/alga-google/services/platform/metrics"
)

// Token is a fresh access token of a provider's connection.
type Token struct {
	AccessToken  string
	ClientID     string
	AccountEmail string
}

// GoogleConfig is what the calendar service needs to know of the tenant's Google setup.
type GoogleConfig struct {
	CalendarReady bool
	UseSameApp    bool
	Missing       []string
}

// OAuth is the oauth service as the calendar service uses it (gRPC in production).
type OAuth interface {
	// AccessToken returns a fresh access token of the provider's connection (acting for tenant).
	AccessToken(ctx context.Context, tenant, providerID string) (Token, error)
	// RefreshAccessToken refreshes the connection's access token at Google even if the cached one is
	// still valid (Google refused it: a grant revoked before the token expired) and returns it.
	RefreshAccessToken(ctx context.Context, tenant, providerID string) (Token, error)
	// ConnectionStatus returns the connection's status name ("" when there is none).
	ConnectionStatus(ctx context.Context, tenant, providerID string) (string, error)
	// DeleteConnection forgets the provider's tokens, revoking them at Google first if asked.
	DeleteConnection(ctx context.Context, tenant, providerID string, revoke bool) error
	// BeginAuthorization starts the flow acting for the user in ctx.
	BeginAuthorization(ctx context.Context, providerID, loginHint string) (url, binding string, err error)
	// GoogleConfig reads the tenant's Google setup status acting for the caller in ctx.
	GoogleConfig(ctx context.Context) (GoogleConfig, error)
}

// Deps are the service's dependencies, built by the target's Start (tests build their own).
type Deps struct {
	Pool   *pgxpool.Pool
	Logger *slog.Logger
	OAuth  OAuth
	// Google are the Calendar client options of the endpoints (empty for the real Google).
	Google []option.ClientOption
	// Retry retries the Calendar calls on each tenant's budget (nil: googleretry's defaults, no metrics).
	Retry *googleretry.Retrier
	Keys  *channel.Keyring
	// WebhookAddress is the canonical channel address (urls.Base.CalendarWebhookAddress).
	WebhookAddress string
	BaseURL        string
	// Jobs is the River client syncs are enqueued with (its workers: AddWorkers).
	Jobs *jobs.Client
	// Feed is the change feed (NewFeed): streams and their wake-ups.
	Feed    *feed.Feed
	Metrics *Metrics
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
	// SilentAfter is how long a channel may go without its first notification before it counts as silent.
	SilentAfter time.Duration
	// Settle is how long a provider must be quiet before its sync job runs, bounded by MaxSettle, so a
	// burst of notifications causes one sync (defaults 300ms and 3s).
	Settle    time.Duration
	MaxSettle time.Duration
}

// Service implements both gRPC services. New constructs it so that it can be registered; Connect gives it
// its dependencies before any handler runs (the server's start-up gate opens after the target's Start).
type Service struct {
	calendarv1.UnimplementedCalendarProviderServiceServer
	deps    Deps
	log     *slog.Logger
	jobs    *jobs.Client
	feed    *feed.Feed
	metrics *Metrics
	changes *ChangeServer
	upkeep  *UpkeepServer
}

// New returns the service without its dependencies (see Connect).
func New() *Service {
	s := &Service{}
	s.changes = &ChangeServer{s: s}
	s.upkeep = &UpkeepServer{s: s}
	return s
}

// Connect sets the dependencies, with defaults for the tunables left zero.
func (s *Service) Connect(d Deps) {
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.SilentAfter <= 0 {
		d.SilentAfter = 15 * time.Minute
	}
	if d.Settle <= 0 {
		d.Settle = 300 * time.Millisecond
	}
	if d.MaxSettle <= 0 {
		d.MaxSettle = 3 * time.Second
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Retry == nil {
		d.Retry = googleretry.Must(googleretry.Options{Service: "calendar"})
	}
	s.deps = d
	s.log = d.Logger
	s.jobs = d.Jobs
	s.feed = d.Feed
	s.metrics = d.Metrics
}

// ChangeServer returns the CalendarChangeService implementation.
func (s *Service) ChangeServer() calendarv1.CalendarChangeServiceServer { return s.changes }

// Metrics are the service's counters.
type Metrics struct {
	notifications *prometheus.CounterVec
	syncs         *prometheus.CounterVec
}

// NewMetrics returns the counters, registered with reg (when not nil). Counters the registry already has
// (a retried Start) are reused, as the feed does.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		notifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "alga_calendar_notifications_total",
			Help: "Calendar push-channel notifications by outcome (accepted, duplicate, sync, unknown_channel, malformed, missing_token, bad_token, wrong_resource, ignored).",
		}, []string{"result"}),
		syncs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "alga_calendar_syncs_total",
			Help: "Calendar syncs by kind (full, delta, resync) and outcome.",
		}, []string{"kind", "result"}),
	}
	r := metrics.NewRegistrar(reg)
	m.notifications = metrics.Use(r, m.notifications)
	m.syncs = metrics.Use(r, m.syncs)
	if err := r.Err(); err != nil {
		return nil, err
	}
	return m, nil
}
