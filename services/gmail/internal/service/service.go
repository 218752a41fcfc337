// Package service implements the gmail target: provider management and activation (Pub/Sub provisioning
// and users.watch), the push webhook, the per-mailbox history sync (River) and the inbound-mail API.
package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/riverqueue/river"

	gmailv1 "github.com/algapsa/alga-google/gen/alga/gmail/v1"
	maintenancev1 "github.com/algapsa/alga-google/gen/alga/maintenance/v1"
	oauthv1 "github.com/algapsa/alga-google/gen/alga/oauth/v1"
	secretsv1 "github.com/algapsa/alga-google/gen/alga/secrets/v1"
	"github.com/algapsa/alga-google/services/gmail/internal/push"
	"github.com/algapsa/alga-google/services/gmail/internal/store"
	"github.com/algapsa/alga-google/services/platform/auth"
	"github.com/algapsa/alga-google/services/platform/feed"
	"github.com/algapsa/alga-google/services/platform/googleapi"
	"github.com/algapsa/alga-google/services/platform/googleretry"
	"github.com/algapsa/alga-google/services/platform/grpcserver"
	"github.com/algapsa/alga-google/services/platform/jobs"
	"github.com/algapsa/alga-google/services/platform/metrics"
	"github.com/algapsa/alga-google/services/platform/urls"
)

// Peers are the other services the gmail service calls.
type Peers struct {
	Tokens  oauthv1.TokenServiceClient
	Flow    oauthv1.OAuthFlowServiceClient
	Setup   oauthv1.GoogleSetupServiceClient
	Secrets secretsv1.SecretsServiceClient
}

// Options are the dependencies and tunables Start connects the service with.
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
	// ReconcileWait bounds how long a maintenance reconcile waits for a running sync of the same
	// mailbox (0 = 30 s).
	ReconcileWait time.Duration
	// SyncLeaseTTL is how long a mailbox's sync lease outlives its holder's last renewal (0 = 20 s; see
	// syncLeaseTTL).
	SyncLeaseTTL time.Duration
	// Retry tunes the retries of Gmail calls and the tenants' Google budgets (zero: googleretry's defaults).
	Retry googleretry.Policy
	// Sync bounds a history sync's memory (zero fields: DefaultSyncLimits).
	Sync SyncLimits
	// Workers: River queue concurrency (0 = 4). TestOnly speeds River up.
	Workers  int
	TestOnly bool
}

// sweepTimeout bounds one sweep (a query and a few inserts).
const sweepTimeout = 20 * time.Second

// FeedName names the inbound feed: its metrics label and its NOTIFY channel.
const FeedName = "gmail_inbound"

// Service is the gmail target's state: the gRPC implementations (Providers, Inbound) and what Start
// connects them to.
type Service struct {
	opts     Options
	pool     *pgxpool.Pool
	log      *slog.Logger
	base     urls.Base
	google   googleapi.Endpoints
	peers    Peers
	verifier *push.Verifier
	metrics  *serviceMetrics
	retry    *googleretry.Retrier
	feed     *feed.Feed
	river    *jobs.Client
	// routes caches push routes; dispatcher enqueues the syncs of stored pushes (webhook.go, dispatch.go).
	routes     *routeCache
	pushes     *groupCommit[store.Push, store.PushResult]
	dispatcher *dispatcher
	// background is the work Start runs besides River (the feed's LISTEN relay); Stop waits for it.
	background sync.WaitGroup

	Providers *Providers
	Inbound   *Inbound
	Upkeep    *Upkeep
}

// Access is who may call each RPC of the gmail target: providers are the browser's (oauth reads one
// to check the mailbox of a callback); activation and reset are oauth's, push ingest the gateway's,
// the inbound feed the platform's (Alga PSA) and the upkeep the worker's.
var Access = grpcserver.Access{
	gmailv1.GmailProviderService_CreateGmailProvider_FullMethodName:         grpcserver.Users(),
	gmailv1.GmailProviderService_GetGmailProvider_FullMethodName:            grpcserver.Users(auth.SvcOAuth),
	gmailv1.GmailProviderService_ListGmailProviders_FullMethodName:          grpcserver.Users(),
	gmailv1.GmailProviderService_UpdateGmailProvider_FullMethodName:         grpcserver.Users(),
	gmailv1.GmailProviderService_DeleteGmailProvider_FullMethodName:         grpcserver.Users(),
	gmailv1.GmailProviderService_ConnectGmailProvider_FullMethodName:        grpcserver.Users(),
	gmailv1.GmailProviderService_GetGmailProviderDiagnostics_FullMethodName: grpcserver.Users(),
	gmailv1.GmailProviderService_RefreshGmailProvider_FullMethodName:        grpcserver.Users(),
	gmailv1.GmailProviderService_GetGmailProviderActivity_FullMethodName:    grpcserver.Users(),
	gmailv1.GmailProviderService_ActivateGmailProvider_FullMethodName:       grpcserver.Services(auth.SvcOAuth),
	gmailv1.GmailProviderService_ResetGmailProviders_FullMethodName:         grpcserver.Services(auth.SvcOAuth),
	gmailv1.GmailProviderService_HandleGmailPush_FullMethodName:             grpcserver.Services(auth.SvcGateway),

	"/" + gmailv1.InboundMailService_ServiceDesc.ServiceName + "/":       grpcserver.Services(auth.SvcPlatform),
	"/" + maintenancev1.GmailUpkeepService_ServiceDesc.ServiceName + "/": grpcserver.Services(auth.SvcMaintenance),
}

// New returns the service's gRPC implementations, without dependencies: the server's start-up gate
// answers them Unavailable until Start has connected them.
func New() *Service {
	s := &Service{}
	s.Providers = &Providers{s: s}
	s.Inbound = &Inbound{s: s}
	s.Upkeep = &Upkeep{s: s}
	return s
}

// Register registers GmailProviderService, InboundMailService and maintenance's GmailUpkeepService (the
// implementations themselves) and who may call them (Access).
func (s *Service) Register(srv *grpcserver.Server) {
	srv.Allow(Access)
	// A push is counted (alga_gmail_push_requests_total), not logged at Info: one line per push of a
	// redelivery burst would cost more than storing it.
	srv.LogCallsAtDebug(gmailv1.GmailProviderService_HandleGmailPush_FullMethodName)
	gmailv1.RegisterGmailProviderServiceServer(srv.GRPC, s.Providers)
	gmailv1.RegisterInboundMailServiceServer(srv.GRPC, s.Inbound)
	maintenancev1.RegisterGmailUpkeepServiceServer(srv.GRPC, s.Upkeep)
}

// Start builds the dependencies (metrics, the inbound feed, River in the gmail schema with the sync
// worker and the pending-notification sweeper), sets them on the service and starts the background
// work — River and the feed's LISTEN relay — until ctx ends. A failed attempt starts nothing, so Start
// may be called again.
func (s *Service) Start(ctx context.Context, opts Options) error {
	if opts.Pool == nil || opts.Logger == nil || opts.Base.IsZero() {
		return errors.New("gmail service: pool, logger and base URL are required")
	}
	if opts.Settle == 0 {
		opts.Settle = 300 * time.Millisecond
	}
	if opts.MaxSettle == 0 {
		opts.MaxSettle = 3 * time.Second
	}
	// A crashed replica's mailbox is synced again within SweepAge + SweepEvery after its sync lease
	// lapsed (syncLeaseTTL): well under a minute.
	if opts.SweepEvery == 0 {
		opts.SweepEvery = 10 * time.Second
	}
	if opts.SweepAge == 0 {
		opts.SweepAge = 15 * time.Second
	}
	if opts.SyncLeaseTTL == 0 {
		opts.SyncLeaseTTL = syncLeaseTTL
	}
	if opts.StreamPoll == 0 {
		opts.StreamPoll = 2 * time.Second
	}
	if opts.ReconcileWait == 0 {
		opts.ReconcileWait = 30 * time.Second
	}
	opts.Sync = opts.Sync.withDefaults()
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
	m, err := newMetrics(opts.Registry)
	if err != nil {
		return fmt.Errorf("gmail metrics: %w", err)
	}
	retrier, err := googleretry.New(googleretry.Options{Service: "gmail", Policy: opts.Retry, Registerer: opts.Registry})
	if err != nil {
		return fmt.Errorf("gmail metrics: %w", err)
	}
	inbound, err := feed.New(feed.Options{Name: FeedName, Channel: FeedName, Poll: opts.StreamPoll, Registerer: opts.Registry})
	if err != nil {
		return err
	}
	workers := river.NewWorkers()
	river.AddWorker(workers, &syncWorker{s: s})
	sweeper := jobs.AddSweeper(workers, opts.SweepEvery, s.sweep)
	client, err := jobs.New(ctx, opts.Pool, jobs.Options{
		Schema:       store.Schema,
		Workers:      workers,
		Queues:       map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: opts.Workers}},
		PeriodicJobs: []*river.PeriodicJob{sweeper},
		Logger:       opts.Logger,
		TestOnly:     opts.TestOnly,
		// Sweeps are short: a dead replica's is rescued within a minute (the sync job has its own
		// Timeout and is recovered by the sweeper from its lapsed lease).
		JobTimeout:  sweepTimeout,
		RescueAfter: 2 * sweepTimeout,
	})
	if err != nil {
		return err
	}

	s.opts, s.pool, s.log, s.base, s.google, s.peers = opts, opts.Pool, opts.Logger, opts.Base, opts.Google, opts.Peers
	s.verifier = &push.Verifier{Audience: opts.Base.GmailPushAudience(), Keys: keys}
	s.metrics, s.retry, s.feed, s.river = m, retrier, inbound, client
	s.routes, s.dispatcher = newRouteCache(), newDispatcher(ctx, &s.background, s.dispatchSyncs)
	s.pushes = newGroupCommit(ctx, &s.background, pushWriters, maxPushes, 0, s.storePushes)
	if err := client.Start(ctx); err != nil {
		s.river = nil // never started: nothing for Stop to wait for
		return fmt.Errorf("starting the gmail job client: %w", err)
	}
	s.background.Add(1)
	go func() {
		defer s.background.Done()
		inbound.Run(ctx, opts.Pool)
	}()
	return nil
}

// Stop waits, bounded by ctx, until the background work started by Start has finished (its context
// has ended): River has recorded its cancelled jobs and the feed relay has released its connection.
func (s *Service) Stop(ctx context.Context) error {
	relay := make(chan struct{})
	go func() {
		s.background.Wait()
		close(relay)
	}()
	err := jobs.Stop(ctx, s.river)
	select {
	case <-relay:
	case <-ctx.Done():
		err = errors.Join(err, fmt.Errorf("gmail feed relay did not stop in time: %w", ctx.Err()))
	}
	return err
}

type serviceMetrics struct {
	push       *prometheus.CounterVec
	syncs      *prometheus.CounterVec
	provision  *prometheus.CounterVec
	messages   prometheus.Counter
	backfills  prometheus.Counter
	watchStops prometheus.Counter
	upkeep     *prometheus.CounterVec
}

// newMetrics registers the service's metrics on reg. A collector registered before under the same name
// (a retried Start, or several services on one registry) is reused, as feed does.
func newMetrics(reg prometheus.Registerer) (*serviceMetrics, error) {
	r := metrics.NewRegistrar(reg)
	m := &serviceMetrics{
		push: metrics.Use(r, prometheus.NewCounterVec(prometheus.CounterOpts{Name: "alga_gmail_push_requests_total",
			Help: "Gmail Pub/Sub pushes by result (stored, duplicate, unauthenticated, malformed, unknown_subscription, superseded_subscription, unknown_mailbox)."}, []string{"result"})),
		syncs: metrics.Use(r, prometheus.NewCounterVec(prometheus.CounterOpts{Name: "alga_gmail_history_syncs_total",
			Help: "Gmail history syncs by result."}, []string{"result"})),
		provision: metrics.Use(r, prometheus.NewCounterVec(prometheus.CounterOpts{Name: "alga_gmail_provisioning_total",
			Help: "Gmail activations by outcome (ok or the error code)."}, []string{"outcome"})),
		messages:   metrics.Use(r, prometheus.NewCounter(prometheus.CounterOpts{Name: "alga_gmail_messages_stored_total", Help: "Inbound messages stored."})),
		backfills:  metrics.Use(r, prometheus.NewCounter(prometheus.CounterOpts{Name: "alga_gmail_history_backfills_total", Help: "Stale-history recoveries (bounded backfills)."})),
		watchStops: metrics.Use(r, prometheus.NewCounter(prometheus.CounterOpts{Name: "alga_gmail_watch_stops_total", Help: "Watches stopped at Google."})),
		upkeep: metrics.Use(r, prometheus.NewCounterVec(prometheus.CounterOpts{Name: "alga_gmail_upkeep_steps_total",
			Help: "Maintenance steps (provisioning_verify, watch_renew, reconcile, record_token_failure) by outcome (ok, not_due, skipped, failed)."}, []string{"step", "outcome"})),
	}
	if err := r.Err(); err != nil {
		return nil, err
	}
	return m, nil
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
