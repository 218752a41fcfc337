// Package calendar is the Google Calendar provider service of alga-google: the `calendar` target.
//
// Each technician connects their own Google Calendar with the tenant's own OAuth client. After the OAuth
// callback the provider is activated: a native push channel (events.watch; Calendar has no Pub/Sub) whose
// token is an HMAC of (tenant, provider, channel id) under a server key, then an initial full sync. Push
// notifications reach POST /api/calendar/webhooks/google through the gateway; each accepted one is stored
// and a delta sync (syncToken) enqueued in the same transaction (River, coalesced per provider). Changes
// are offered to the platform over gRPC (CalendarChangeService).
package calendar

import (
	"context"
	"errors"
	"fmt"

	"github.com/riverqueue/river"
	"google.golang.org/grpc"

	calendarv1 "github.com/algapsa/alga-google/gen/alga/calendar/v1"
	maintenancev1 "github.com/algapsa/alga-google/gen/alga/maintenance/v1"
	"github.com/algapsa/alga-google/services/calendar/internal/channel"
	"github.com/algapsa/alga-google/services/calendar/internal/service"
	"github.com/algapsa/alga-google/services/calendar/internal/store"
	"github.com/algapsa/alga-google/services/platform/auth"
	"github.com/algapsa/alga-google/services/platform/config"
	"github.com/algapsa/alga-google/services/platform/googleretry"
	"github.com/algapsa/alga-google/services/platform/grpcserver"
	"github.com/algapsa/alga-google/services/platform/jobs"
	"github.com/algapsa/alga-google/services/platform/pg"
	"github.com/algapsa/alga-google/services/platform/target"
)

// Access is who may call each RPC of the calendar target: providers are the browser's; activation and
// reset are oauth's, notification ingest the gateway's, channel upkeep the worker's and the change feed
// the platform's (Alga PSA). The internal ones are never mapped in http.yaml.
var Access = grpcserver.Access{
	calendarv1.CalendarProviderService_CreateCalendarProvider_FullMethodName:         grpcserver.Users(),
	calendarv1.CalendarProviderService_GetCalendarProvider_FullMethodName:            grpcserver.Users(),
	calendarv1.CalendarProviderService_ListCalendarProviders_FullMethodName:          grpcserver.Users(),
	calendarv1.CalendarProviderService_UpdateCalendarProvider_FullMethodName:         grpcserver.Users(),
	calendarv1.CalendarProviderService_DeleteCalendarProvider_FullMethodName:         grpcserver.Users(),
	calendarv1.CalendarProviderService_ConnectCalendarProvider_FullMethodName:        grpcserver.Users(),
	calendarv1.CalendarProviderService_DisconnectCalendarProvider_FullMethodName:     grpcserver.Users(),
	calendarv1.CalendarProviderService_GetCalendarProviderDiagnostics_FullMethodName: grpcserver.Users(),
	calendarv1.CalendarProviderService_GetCalendarProviderActivity_FullMethodName:    grpcserver.Users(),
	calendarv1.CalendarProviderService_ActivateCalendarProvider_FullMethodName:       grpcserver.Services(auth.SvcOAuth),
	calendarv1.CalendarProviderService_ResetCalendarProviders_FullMethodName:         grpcserver.Services(auth.SvcOAuth),
	calendarv1.CalendarProviderService_HandleCalendarNotification_FullMethodName:     grpcserver.Services(auth.SvcGateway),
	calendarv1.CalendarProviderService_RenewCalendarChannel_FullMethodName:           grpcserver.Services(auth.SvcMaintenance),
	calendarv1.CalendarProviderService_VerifyCalendarChannel_FullMethodName:          grpcserver.Services(auth.SvcMaintenance),

	"/" + calendarv1.CalendarChangeService_ServiceDesc.ServiceName + "/":    grpcserver.Services(auth.SvcPlatform),
	"/" + maintenancev1.CalendarUpkeepService_ServiceDesc.ServiceName + "/": grpcserver.Services(auth.SvcMaintenance),
}

// NewTarget returns the calendar target.
func NewTarget() target.Target { return &calendarTarget{svc: service.New()} }

type calendarTarget struct {
	cfg Config
	svc *service.Service
	// Set by a successful Start; Stop waits for them.
	jobs     *jobs.Client
	feedDone chan struct{}
}

func (t *calendarTarget) Name() string { return target.Calendar }

// Bind declares the calendar settings (config.go).
func (t *calendarTarget) Bind(b *config.Binder) { t.cfg.Bind(b) }

// Migrations implements target.Target: the `calendar` schema and its queries.
func (t *calendarTarget) Migrations() *pg.Migrations { return store.Migrations() }

// Register registers the gRPC services (providers, the change feed, scheduled upkeep) and who may call
// them (Access); their dependencies arrive in Start.
func (t *calendarTarget) Register(srv *grpcserver.Server) {
	calendarv1.RegisterCalendarProviderServiceServer(srv.GRPC, t.svc)
	calendarv1.RegisterCalendarChangeServiceServer(srv.GRPC, t.svc.ChangeServer())
	maintenancev1.RegisterCalendarUpkeepServiceServer(srv.GRPC, t.svc.UpkeepServer())
	srv.Allow(Access)
}

// Start builds the dependencies, connects them to the service, then starts the sync worker (River,
// with the sweeper) and the change feed's LISTEN relay under ctx.
func (t *calendarTarget) Start(ctx context.Context, deps *target.Deps) error {
	if deps.Pool == nil {
		return errors.New("calendar: a database is required")
	}
	if deps.Base.IsZero() {
		return errors.New("calendar: ALGA_BASE_URL is required (it is the address of the push channels)")
	}
	keys, err := channel.NewKeyring(t.cfg.ChannelKey, deps.Config.ServiceKey())
	if err != nil {
		return err
	}
	metrics, err := service.NewMetrics(deps.Registry)
	if err != nil {
		return err
	}
	changes, err := service.NewFeed(deps.Registry)
	if err != nil {
		return err
	}
	retrier, err := googleretry.New(googleretry.Options{Service: "calendar", Registerer: deps.Registry})
	if err != nil {
		return err
	}
	log := deps.Logger.With("service", "calendar")
	workers := river.NewWorkers()
	periodic := t.svc.AddWorkers(workers)
	client, err := jobs.New(ctx, deps.Pool, jobs.Options{Schema: store.Schema, Workers: workers, PeriodicJobs: periodic, Logger: log})
	if err != nil {
		return err
	}
	t.svc.Connect(service.Deps{
		Pool:           deps.Pool,
		Logger:         log,
		OAuth:          service.PeerOAuth{Conn: func() (*grpc.ClientConn, error) { return deps.Peer(target.OAuth) }},
		Google:         deps.Google.CalendarOptions(),
		Retry:          retrier,
		Keys:           keys,
		WebhookAddress: deps.Base.CalendarWebhookAddress(),
		BaseURL:        deps.Base.String(),
		Jobs:           client,
		Feed:           changes,
		Metrics:        metrics,
	})
	if err := client.Start(ctx); err != nil {
		return err
	}
	t.jobs = client
	t.feedDone = make(chan struct{})
	go func(done chan struct{}) {
		defer close(done)
		changes.Run(ctx, deps.Pool)
	}(t.feedDone)
	return nil
}

// Stop waits until River has recorded its cancelled jobs and the feed relay has released its
// connection, so the binary closes the pool only afterwards.
func (t *calendarTarget) Stop(ctx context.Context) error {
	if err := jobs.Stop(ctx, t.jobs); err != nil {
		return err
	}
	if t.feedDone == nil {
		return nil
	}
	select {
	case <-t.feedDone:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("calendar: the change feed relay did not stop in time: %w", ctx.Err())
	}
}
