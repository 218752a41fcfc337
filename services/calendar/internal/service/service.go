// Package service implements the calendar service: CalendarProviderService (providers, OAuth connect,
// activation, push-channel webhook, channel upkeep), CalendarChangeService (the change feed) and the
// River worker that runs delta syncs.
package service

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/api/option"

	calendarv1 "github.com/algapsa/alga-google/gen/alga/calendar/v1"
	"github.com/algapsa/alga-google/services/calendar/internal/channel"
	"github.com/algapsa/alga-google/services/calendar/internal/gcal"
	"github.com/algapsa/alga-google/services/platform/jobs"
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
	// ConnectionStatus returns the connection's status name ("" when there is none).
	ConnectionStatus(ctx context.Context, tenant, providerID string) (string, error)
	// DeleteConnection forgets the provider's tokens, revoking them at Google first if asked.
	DeleteConnection(ctx context.Context, tenant, providerID string, revoke bool) error
	// BeginAuthorization starts the flow acting for the user in ctx.
	BeginAuthorization(ctx context.Context, providerID, loginHint string) (url, binding string, err error)
	// GoogleConfig reads the tenant's Google setup status acting for the caller in ctx.
	GoogleConfig(ctx context.Context) (GoogleConfig, error)
}

// Options are the service's dependencies.
type Options struct {
	Pool   *pgxpool.Pool
	Logger *slog.Logger
	OAuth  OAuth
	// Google are the Calendar client options of the endpoints (empty for the real Google).
	Google []option.ClientOption
	Retry  gcal.Retry
	Keys   *channel.Keyring
	// WebhookAddress is the canonical channel address (urls.Base.CalendarWebhookAddress).
	WebhookAddress string
	BaseURL        string
	Registerer     prometheus.Registerer
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
	// PollInterval is how often a change stream looks for changes written by other replicas.
	PollInterval time.Duration
	// SilentAfter is how long a channel may go without its first notification before it counts as silent.
	SilentAfter time.Duration
	// Settle is how long a provider must be quiet before its sync job runs, bounded by MaxSettle, so a
	// burst of notifications causes one sync (defaults 300ms and 3s).
	Settle    time.Duration
	MaxSettle time.Duration
}

// Service implements both gRPC services. Register it first and Init it when its dependencies are ready.
type Service struct {
	calendarv1.UnimplementedCalendarProviderServiceServer
	opts    Options
	log     *slog.Logger
	jobs    *jobs.Client
	metrics *metrics
	changed *broadcaster
	changes *ChangeServer
}

// New returns an uninitialized service (its methods may be registered before Init).
func New() *Service {
	s := &Service{changed: newBroadcaster()}
	s.changes = &ChangeServer{s: s}
	return s
}

// Init sets the dependencies. Metrics are registered once.
func (s *Service) Init(opts Options) error {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = 2 * time.Second
	}
	if opts.SilentAfter <= 0 {
		opts.SilentAfter = 15 * time.Minute
	}
	if opts.Settle <= 0 {
		opts.Settle = 300 * time.Millisecond
	}
	if opts.MaxSettle <= 0 {
		opts.MaxSettle = 3 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if s.metrics == nil {
		m, err := newMetrics(opts.Registerer)
		if err != nil {
			return err
		}
		s.metrics = m
	}
	s.opts = opts
	s.log = opts.Logger
	return nil
}

// SetJobs gives the service the River client it enqueues syncs with.
func (s *Service) SetJobs(c *jobs.Client) { s.jobs = c }

// ChangeServer returns the CalendarChangeService implementation.
func (s *Service) ChangeServer() calendarv1.CalendarChangeServiceServer { return s.changes }

type metrics struct {
	notifications *prometheus.CounterVec
	syncs         *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		notifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "alga_calendar_notifications_total",
			Help: "Calendar push-channel notifications by outcome (accepted, duplicate, sync, unknown_channel, malformed, missing_token, bad_token, wrong_resource, ignored).",
		}, []string{"result"}),
		syncs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "alga_calendar_syncs_total",
			Help: "Calendar syncs by kind (full, delta, resync) and outcome.",
		}, []string{"kind", "result"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.notifications, m.syncs} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

// broadcaster wakes change streams when this process records changes.
type broadcaster struct {
	mu sync.Mutex
	ch chan struct{}
}

func newBroadcaster() *broadcaster { return &broadcaster{ch: make(chan struct{})} }

func (b *broadcaster) wait() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.ch
}

func (b *broadcaster) signal() {
	b.mu.Lock()
	defer b.mu.Unlock()
	close(b.ch)
	b.ch = make(chan struct{})
}
