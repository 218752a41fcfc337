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
	"sync"
	"time"

	"github.com/riverqueue/river"
	"google.golang.org/grpc"

	calendarv1 "github.com/algapsa/alga-google/gen/alga/calendar/v1"
	"github.com/algapsa/alga-google/services/calendar/internal/channel"
	"github.com/algapsa/alga-google/services/calendar/internal/service"
	"github.com/algapsa/alga-google/services/calendar/internal/store"
	"github.com/algapsa/alga-google/services/platform/grpcserver"
	"github.com/algapsa/alga-google/services/platform/jobs"
	"github.com/algapsa/alga-google/services/platform/pg"
	"github.com/algapsa/alga-google/services/platform/target"
)

// Internal methods: service identities only (never mapped in http.yaml).
var internalMethods = []string{
	calendarv1.CalendarProviderService_ActivateCalendarProvider_FullMethodName,
	calendarv1.CalendarProviderService_ResetCalendarProviders_FullMethodName,
	calendarv1.CalendarProviderService_HandleCalendarNotification_FullMethodName,
	calendarv1.CalendarProviderService_RenewCalendarChannel_FullMethodName,
	calendarv1.CalendarProviderService_VerifyCalendarChannel_FullMethodName,
	"/" + calendarv1.CalendarChangeService_ServiceDesc.ServiceName + "/",
}

// sweepInterval is how often providers with uncovered notifications get a sync enqueued.
const sweepInterval = 2 * time.Second

// NewTarget returns the calendar target.
func NewTarget() target.Target { return &calendarTarget{svc: service.New()} }

type calendarTarget struct {
	svc        *service.Service
	mu         sync.Mutex
	registered bool
	started    bool
}

func (t *calendarTarget) Name() string { return target.Calendar }

// Migrations implements target.Target: the `calendar` schema.
func (t *calendarTarget) Migrations() *pg.Migrations { return store.Migrations() }

// Register registers both gRPC services; their dependencies arrive in Start.
func (t *calendarTarget) Register(srv *grpcserver.Server) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.registered {
		return
	}
	t.registered = true
	calendarv1.RegisterCalendarProviderServiceServer(srv.GRPC, t.svc)
	calendarv1.RegisterCalendarChangeServiceServer(srv.GRPC, t.svc.ChangeServer())
	srv.RequireService(internalMethods...)
}

// Start connects the dependencies and starts the sync worker.
func (t *calendarTarget) Start(ctx context.Context, deps *target.Deps) error {
	if deps.Pool == nil {
		return errors.New("calendar: a database is required")
	}
	if deps.Base.IsZero() {
		return errors.New("calendar: ALGA_BASE_URL is required (it is the address of the push channels)")
	}
	keys, err := channel.NewKeyring(deps.Config.CalendarChannelKey, deps.Config.ServiceKey())
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.started {
		return nil
	}
	if !t.registered {
		t.registered = true
		calendarv1.RegisterCalendarProviderServiceServer(deps.Server.GRPC, t.svc)
		calendarv1.RegisterCalendarChangeServiceServer(deps.Server.GRPC, t.svc.ChangeServer())
		deps.Server.RequireService(internalMethods...)
	}
	log := deps.Logger.With("service", "calendar")
	if err := t.svc.Init(service.Options{
		Pool:           deps.Pool,
		Logger:         log,
		OAuth:          service.PeerOAuth{Conn: func() (*grpc.ClientConn, error) { return deps.Peer(target.OAuth) }},
		Google:         deps.Google.CalendarOptions(),
		Keys:           keys,
		WebhookAddress: deps.Base.CalendarWebhookAddress(),
		BaseURL:        deps.Base.String(),
		Registerer:     deps.Registry,
	}); err != nil {
		return err
	}
	workers := river.NewWorkers()
	river.AddWorker(workers, service.NewSyncWorker(t.svc))
	client, err := jobs.New(ctx, deps.Pool, jobs.Options{Schema: store.Schema, Workers: workers, Logger: log})
	if err != nil {
		return err
	}
	t.svc.SetJobs(client)
	if err := jobs.RunUntilDone(ctx, client, log); err != nil {
		return err
	}
	go t.svc.RunSweeper(ctx, sweepInterval)
	t.started = true
	return nil
}
