// Package service implements the gmail target: provider management and activation (Pub/Sub provisioning
// and users.watch), the push webhook, the per-mailbox history sync (River) and the inbound-mail API.
package service

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	gmailv1 "github.com/algapsa/alga-google/gen/alga/gmail/v1"
	oauthv1 "github.com/algapsa/alga-google/gen/alga/oauth/v1"
	secretsv1 "github.com/algapsa/alga-google/gen/alga/secrets/v1"
	"github.com/algapsa/alga-google/services/gmail/internal/push"
	"github.com/algapsa/alga-google/services/gmail/internal/store"
	"github.com/algapsa/alga-google/services/platform/googleapi"
	"github.com/algapsa/alga-google/services/platform/grpcserver"
	"github.com/algapsa/alga-google/services/platform/jobs"
	"github.com/algapsa/alga-google/services/platform/urls"
)

// Peers are the other services the gmail service calls.
type Peers struct {
	Tokens  oauthv1.TokenServiceClient
	Flow    oauthv1.OAuthFlowServiceClient
	Setup   oauthv1.GoogleSetupServiceClient
	Secrets secretsv1.SecretsServiceClient
}

// Options configure a Service.
type Options struct {
	Pool     *pgxpool.Pool
	Logger   *slog.Logger
	Base     urls.Base
	Google   googleapi.Endpoints
	Peers    Peers
	Registry prometheus.Registerer
	// Keys verifies push tokens; default Google's certs (Google.CertsURL()), cached.
	Keys push.KeySource

	// Settle is how long a mailbox must be quiet before its sync runs (a burst causes one sync).
	Settle    time.Duration
	MaxSettle time.Duration
	// SweepEvery and SweepAge control the periodic re-enqueue of notifications left pending.
	SweepEvery time.Duration
	SweepAge   time.Duration
	// StreamPoll bounds how long a stream waits without a database notification.
	StreamPoll time.Duration
	// Workers: River queue concurrency (0 = 4). TestOnly speeds River up.
	Workers  int
	TestOnly bool
}

// Service is the gmail target's state.
type Service struct {
	opts     Options
	pool     *pgxpool.Pool
	log      *slog.Logger
	base     urls.Base
	google   googleapi.Endpoints
	peers    Peers
	verifier *push.Verifier
	metrics  *metrics
	hub      *hub
	river    *jobs.Client

	Providers *Providers
	Inbound   *Inbound

	startOnce sync.Once
}

// MethodsServiceOnly are the RPCs only service identities may call.
var MethodsServiceOnly = []string{
	"/alga.gmail.v1.InboundMailService/",
	"/alga.gmail.v1.GmailProviderService/ActivateGmailProvider",
	"/alga.gmail.v1.GmailProviderService/ResetGmailProviders",
	"/alga.gmail.v1.GmailProviderService/HandleGmailPush",
}

// New builds a ready service (see Init).
func New(ctx context.Context, opts Options) (*Service, error) {
	s := NewUnstarted()
	if err := s.Init(ctx, opts); err != nil {
		return nil, err
	}
	return s, nil
}

// NewUnstarted returns a service whose handlers can be registered before its dependencies exist (the
// server gates the target's methods with Unavailable until Init has run and the target is ready).
func NewUnstarted() *Service {
	s := &Service{}
	s.Providers = &Providers{s: s}
	s.Inbound = &Inbound{s: s}
	return s
}

// Init connects the service to its dependencies and builds its River client (migrating River's tables
// in the gmail schema). It may be called again after a failure.
func (s *Service) Init(ctx context.Context, opts Options) error {
	if opts.Pool == nil || opts.Logger == nil || opts.Base.IsZero() {
		return errors.New("gmail service: pool, logger and base URL are required")
	}
	if opts.Settle == 0 {
		opts.Settle = 300 * time.Millisecond
	}
	if opts.MaxSettle == 0 {
		opts.MaxSettle = 3 * time.Second
	}
	if opts.SweepEvery == 0 {
		opts.SweepEvery = 30 * time.Second
	}
	if opts.SweepAge == 0 {
		opts.SweepAge = 20 * time.Second
	}
	if opts.StreamPoll == 0 {
		opts.StreamPoll = 2 * time.Second
	}
	if opts.Workers == 0 {
		opts.Workers = 4
	}
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
	}
	keys := opts.Keys
	if keys == nil {
		keys = &push.JWKS{URL: opts.Google.CertsURL(), Client: opts.Google.HTTPClient}
	}
	workers := river.NewWorkers()
	river.AddWorker(workers, &syncWorker{s: s})
	river.AddWorker(workers, &sweepWorker{s: s})
	client, err := jobs.New(ctx, opts.Pool, jobs.Options{
		Schema:  store.Schema,
		Workers: workers,
		Queues:  map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: opts.Workers}},
		PeriodicJobs: []*river.PeriodicJob{river.NewPeriodicJob(river.PeriodicInterval(opts.SweepEvery),
			func() (river.JobArgs, *river.InsertOpts) {
				return SweepArgs{}, &river.InsertOpts{UniqueOpts: river.UniqueOpts{ByArgs: true, ByState: []rivertype.JobState{
					rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRunning, rivertype.JobStateRetryable, rivertype.JobStateScheduled}}}
			}, &river.PeriodicJobOpts{RunOnStart: true})},
		Logger:   opts.Logger,
		TestOnly: opts.TestOnly,
	})
	if err != nil {
		return err
	}
	s.opts, s.pool, s.log, s.base, s.google, s.peers = opts, opts.Pool, opts.Logger, opts.Base, opts.Google, opts.Peers
	s.verifier = &push.Verifier{Audience: opts.Base.GmailPushAudience(), Keys: keys}
	if s.metrics == nil {
		s.metrics = newMetrics(opts.Registry)
	}
	s.hub = newHub()
	s.river = client
	return nil
}

// Register adds the gRPC services to srv (once).
func (s *Service) Register(srv *grpcserver.Server) {
	srv.RequireService(MethodsServiceOnly...)
	gmailv1.RegisterGmailProviderServiceServer(srv.GRPC, s.Providers)
	gmailv1.RegisterInboundMailServiceServer(srv.GRPC, s.Inbound)
}

// Run starts the background work (River workers, the inbound notification listener) until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	if err := jobs.RunUntilDone(ctx, s.river, s.log); err != nil {
		return err
	}
	s.startOnce.Do(func() { go s.hub.listen(ctx, s.pool) })
	return nil
}

// River exposes the job client (tests stop and restart it).
func (s *Service) River() *jobs.Client { return s.river }

type metrics struct {
	push       *prometheus.CounterVec
	syncs      *prometheus.CounterVec
	provision  *prometheus.CounterVec
	messages   prometheus.Counter
	backfills  prometheus.Counter
	watchStops prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		push: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "alga_gmail_push_requests_total",
			Help: "Gmail Pub/Sub pushes by result (stored, duplicate, unauthenticated, malformed, unknown_subscription, unknown_mailbox)."}, []string{"result"}),
		syncs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "alga_gmail_history_syncs_total",
			Help: "Gmail history syncs by result."}, []string{"result"}),
		provision: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "alga_gmail_provisioning_total",
			Help: "Gmail activations by outcome (ok or the error code)."}, []string{"outcome"}),
		messages:   prometheus.NewCounter(prometheus.CounterOpts{Name: "alga_gmail_messages_stored_total", Help: "Inbound messages stored."}),
		backfills:  prometheus.NewCounter(prometheus.CounterOpts{Name: "alga_gmail_history_backfills_total", Help: "Stale-history recoveries (bounded backfills)."}),
		watchStops: prometheus.NewCounter(prometheus.CounterOpts{Name: "alga_gmail_watch_stops_total", Help: "Watches stopped at Google."}),
	}
	for _, c := range []prometheus.Collector{m.push, m.syncs, m.provision, m.messages, m.backfills, m.watchStops} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				panic(err)
			}
		}
	}
	return m
}

// PushCount reads a push counter (tests).
func (s *Service) PushCount(result string) float64 {
	return counterValue(s.metrics.push.WithLabelValues(result))
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return 0
	}
	return m.GetCounter().GetValue()
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
