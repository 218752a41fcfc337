// Package maintenance is the scheduled Google upkeep service of alga-google: the `worker` target.
//
// Per tenant, on a schedule, it keeps every Gmail watch, Calendar channel and OAuth token alive: it
// lists the tenant's providers and connections from the services that own them (gmail, calendar,
// oauth), decides once what is due (internal/upkeep), and asks the owning service to do exactly
// that, one step at a time; every outcome lands on the provider (recorded by its owner) and in this
// service's run history (schema `maintenance`). Two runners execute the same activity code:
// River (ALGA_JOB_RUNNER=river, embedded, the default) and Temporal (ALGA_JOB_RUNNER=temporal, one
// Schedule per tenant). See README.md.
package maintenance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"

	m "github.com/algapsa/alga-google/gen/alga/maintenance/v1"
	"github.com/algapsa/alga-google/services/maintenance/internal/activities"
	"github.com/algapsa/alga-google/services/maintenance/internal/runner"
	"github.com/algapsa/alga-google/services/maintenance/internal/service"
	"github.com/algapsa/alga-google/services/maintenance/internal/store"
	"github.com/algapsa/alga-google/services/maintenance/internal/upkeep"
	"github.com/algapsa/alga-google/services/platform/auth"
	"github.com/algapsa/alga-google/services/platform/config"
	"github.com/algapsa/alga-google/services/platform/grpcserver"
	"github.com/algapsa/alga-google/services/platform/pg"
	"github.com/algapsa/alga-google/services/platform/target"
)

// Access is who may call each RPC of the worker target: MaintenanceService is the browser's (and the
// operator's `alga-google maintenance` command); the schedule sync is oauth's, after a saved setup.
var Access = grpcserver.Access{
	"/" + m.MaintenanceService_ServiceDesc.ServiceName + "/":         grpcserver.Users(auth.SvcCLI),
	"/" + m.MaintenanceScheduleService_ServiceDesc.ServiceName + "/": grpcserver.Services(auth.SvcOAuth),
}

// Target is the worker target (see target.Target for the lifecycle).
type Target struct {
	cfg Config
	svc *service.Service

	mu         sync.Mutex
	river      *runner.River
	temporal   *runner.Temporal
	client     client.Client
	background sync.WaitGroup
}

// NewTarget returns the worker target (the suite's registry constructor).
func NewTarget() target.Target { return New() }

// New constructs the target with its gRPC implementations, without dependencies.
func New() *Target { return &Target{svc: service.New()} }

// Name implements target.Target: "worker".
func (*Target) Name() string { return target.Worker }

// Bind declares the worker's own settings.
func (t *Target) Bind(b *config.Binder) { t.cfg.Bind(b) }

// Config returns the target's settings (tests adjust them before Start).
func (t *Target) Config() *Config { return &t.cfg }

// Migrations implements target.Target: the `maintenance` schema (run history, River's tables).
func (*Target) Migrations() *pg.Migrations { return store.Migrations() }

// Register registers MaintenanceService (browser-facing through the gateway) and
// MaintenanceScheduleService (oauth only), and who may call them (Access).
func (t *Target) Register(srv *grpcserver.Server) {
	srv.Allow(Access)
	m.RegisterMaintenanceServiceServer(srv.GRPC, t.svc)
	m.RegisterMaintenanceScheduleServiceServer(srv.GRPC, t.svc.Schedules())
}

// Start dials the owning services (gmail, calendar, oauth), builds the activities and starts the
// configured runner: River in the maintenance schema, or a Temporal client, worker and the schedule
// reconciler. Everything is built first and committed last, so a failed attempt can be retried.
func (t *Target) Start(ctx context.Context, deps *target.Deps) error {
	if deps.Pool == nil {
		return errors.New("worker: a database is required")
	}
	if err := t.cfg.validate(); err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	runnerName := deps.Config.JobRunner
	if runnerName == "" {
		runnerName = upkeep.RunnerRiver
	}
	if runnerName != upkeep.RunnerRiver && runnerName != upkeep.RunnerTemporal {
		return fmt.Errorf("worker: ALGA_JOB_RUNNER must be river or temporal, not %q", runnerName)
	}
	gmailConn, err := deps.Peer(target.Gmail)
	if err != nil {
		return err
	}
	calendarConn, err := deps.Peer(target.Calendar)
	if err != nil {
		return err
	}
	oauthConn, err := deps.Peer(target.OAuth)
	if err != nil {
		return err
	}
	log := deps.Logger.With("service", target.Worker)
	st := store.New(deps.Pool)
	settings := upkeep.Settings{
		Interval: t.cfg.Interval, RenewAhead: t.cfg.RenewAhead, TokenMargin: t.cfg.TokenMargin, Silence: t.cfg.Silence,
	}
	if !deps.Base.IsZero() {
		settings.PushEndpoint, settings.PushAudience = deps.Base.GmailPushEndpoint(), deps.Base.GmailPushAudience()
	}
	acts := &activities.Activities{
		Gmail:    m.NewGmailUpkeepServiceClient(gmailConn),
		Calendar: m.NewCalendarUpkeepServiceClient(calendarConn),
		Tokens:   m.NewTokenUpkeepServiceClient(oauthConn),
		Tenants:  m.NewTenantDirectoryServiceClient(oauthConn),
		Store:    st,
		Limiter:  activities.NewLimiter(float64(t.cfg.GoogleRate), max(2*t.cfg.GoogleRate, 1)),
		Settings: settings,
		Options: upkeep.Options{
			Concurrency: t.cfg.TenantConcurrency, StepTimeout: t.cfg.StepTimeout, HeartbeatTimeout: t.cfg.HeartbeatTimeout,
			MaxAttempts: t.cfg.MaxAttempts, InitialInterval: t.cfg.RetryInterval,
		},
		Logger: log,
		Now:    t.cfg.Now,
	}

	t.mu.Lock()
	defer t.mu.Unlock()
	opts := service.Options{Store: st, Interval: t.cfg.Interval, Logger: log}
	switch runnerName {
	case upkeep.RunnerRiver:
		r := &runner.River{
			Pool: deps.Pool, Activities: acts, Store: st, Interval: t.cfg.Interval, Concurrency: t.cfg.Concurrency,
			RunTimeout: t.cfg.RunTimeout, Logger: log, TestOnly: t.cfg.RiverTestOnly,
		}
		if err := r.Start(ctx); err != nil {
			return fmt.Errorf("worker: %w", err)
		}
		t.river = r
		opts.Runner = r
	case upkeep.RunnerTemporal:
		copts, err := t.cfg.Temporal.clientOptions(deps.Config.TemporalAddress, deps.Config.TemporalNamespace)
		if err != nil {
			return fmt.Errorf("worker: %w", err)
		}
		copts.Logger = tlog.NewStructuredLogger(log.With("component", "temporal"))
		c, err := client.DialContext(ctx, copts)
		if err != nil {
			return fmt.Errorf("worker: connecting to Temporal at %s: %w", deps.Config.TemporalAddress, err)
		}
		tr := &runner.Temporal{
			Client: c, TaskQueue: t.cfg.TaskQueue, Interval: t.cfg.Interval, Activities: acts,
			MaxActivities: t.cfg.Concurrency * t.cfg.TenantConcurrency, Logger: log,
		}
		if err := tr.StartWorker(); err != nil {
			c.Close()
			return fmt.Errorf("worker: %w", err)
		}
		t.client, t.temporal = c, tr
		opts.Runner, opts.Scheduler = tr, tr
		t.background.Add(1)
		go func() {
			defer t.background.Done()
			tr.RunReconciler(ctx, t.cfg.ReconcileEvery)
		}()
		t.background.Add(1)
		go func() {
			defer t.background.Done()
			<-ctx.Done()
			tr.StopWorker()
		}()
	}
	t.svc.Init(opts)
	log.Info("maintenance runner started", slog.String("runner", runnerName), slog.Duration("interval", t.cfg.Interval))
	return nil
}

// Stop waits (bounded by ctx) until River has stopped, or the Temporal worker and the reconciler
// have ended; then it closes the Temporal client.
func (t *Target) Stop(ctx context.Context) error {
	t.mu.Lock()
	r, c := t.river, t.client
	t.mu.Unlock()
	var err error
	if r != nil {
		err = r.Stop(ctx)
	}
	done := make(chan struct{})
	go func() {
		t.background.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		err = errors.Join(err, fmt.Errorf("the Temporal worker did not stop in time: %w", ctx.Err()))
	}
	if c != nil {
		c.Close()
	}
	return err
}
