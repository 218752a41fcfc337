// Package service implements MaintenanceService (run now, last runs) and MaintenanceScheduleService
// (schedule sync for the oauth target) on top of the configured runner and the run history.
package service

import (
	"context"
	"log/slog"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	m "github.com/algapsa/alga-google/gen/alga/maintenance/v1"
	"github.com/algapsa/alga-google/services/maintenance/internal/runner"
	"github.com/algapsa/alga-google/services/maintenance/internal/store"
	"github.com/algapsa/alga-google/services/maintenance/internal/upkeep"
	"github.com/algapsa/alga-google/services/platform/auth"
	"github.com/algapsa/alga-google/services/platform/errs"
)

// Scheduler is the Temporal runner's schedule management (nil under River).
type Scheduler interface {
	Ensure(ctx context.Context, tenant string) error
	Remove(ctx context.Context, tenant string) error
}

// Options are the service's dependencies, set by the target's Start.
type Options struct {
	Runner    runner.Runner
	Scheduler Scheduler
	Store     *store.Store
	Interval  time.Duration
	Logger    *slog.Logger
}

// Service implements the worker target's gRPC services.
type Service struct {
	m.UnimplementedMaintenanceServiceServer
	opts Options
}

// New returns the service without dependencies (the target registers it before Start).
func New() *Service { return &Service{} }

// Init sets the dependencies (before the server's gate opens).
func (s *Service) Init(opts Options) { s.opts = opts }

// Schedules returns the MaintenanceScheduleService implementation.
func (s *Service) Schedules() m.MaintenanceScheduleServiceServer { return &schedules{s: s} }

func caller(ctx context.Context) (auth.Identity, error) {
	id, ok := auth.FromContext(ctx)
	if !ok {
		return auth.Identity{}, errs.Unauthenticated("a bearer token is required")
	}
	if id.Tenant == "" {
		return auth.Identity{}, errs.PermissionDenied("the token carries no tenant")
	}
	return id, nil
}

// RunGoogleMaintenance runs the caller's tenant now and answers with the recorded run.
func (s *Service) RunGoogleMaintenance(ctx context.Context, _ *m.RunGoogleMaintenanceRequest) (*m.RunGoogleMaintenanceResponse, error) {
	id, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if !id.IsService() && !id.Has(auth.PermSystemSettingsUpdate) {
		return nil, errs.PermissionDenied("running Google maintenance requires the %s permission", auth.PermSystemSettingsUpdate)
	}
	run, err := s.opts.Runner.RunNow(ctx, id.Tenant)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, errs.Unavailable("MAINTENANCE_UNAVAILABLE", "the maintenance run could not be completed under the %s runner; retry shortly", s.opts.Runner.Name()).Wrap(err)
	}
	return &m.RunGoogleMaintenanceResponse{Run: run.ToProto()}, nil
}

// GetGoogleMaintenance shows the tenant's recent runs and the next scheduled one.
func (s *Service) GetGoogleMaintenance(ctx context.Context, r *m.GetGoogleMaintenanceRequest) (*m.GetGoogleMaintenanceResponse, error) {
	id, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	limit := int(r.GetPageSize())
	if limit == 0 {
		limit = 10
	}
	runs, err := s.opts.Store.ListRuns(ctx, id.Tenant, limit)
	if err != nil {
		return nil, err
	}
	out := &m.GetGoogleMaintenanceResponse{Runner: upkeep.RunnerEnum(s.opts.Runner.Name()), Interval: durationpb.New(s.opts.Interval)}
	for _, run := range runs {
		out.Runs = append(out.Runs, run.ToProto())
	}
	next, ok, err := s.opts.Runner.NextRun(ctx, id.Tenant)
	if err != nil {
		// The history is still worth showing when Temporal does not answer.
		s.opts.Logger.WarnContext(ctx, "next maintenance run unknown", "err", err)
	} else if ok {
		out.NextRunTime = timestamppb.New(next)
	}
	return out, nil
}

type schedules struct {
	m.UnimplementedMaintenanceScheduleServiceServer
	s *Service
}

// SyncGoogleMaintenanceSchedule creates or deletes the tenant's Temporal schedule at once.
func (x *schedules) SyncGoogleMaintenanceSchedule(ctx context.Context, r *m.SyncGoogleMaintenanceScheduleRequest) (*m.SyncGoogleMaintenanceScheduleResponse, error) {
	id, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if !id.IsService() {
		return nil, errs.PermissionDenied("this method is available to internal services only")
	}
	sch := x.s.opts.Scheduler
	if sch == nil {
		return &m.SyncGoogleMaintenanceScheduleResponse{}, nil
	}
	if r.GetConfigured() {
		err = sch.Ensure(ctx, id.Tenant)
	} else {
		err = sch.Remove(ctx, id.Tenant)
	}
	if err != nil {
		return nil, errs.Unavailable("TEMPORAL_UNAVAILABLE", "the maintenance schedule could not be updated; the periodic reconcile will retry").Wrap(err)
	}
	resp := &m.SyncGoogleMaintenanceScheduleResponse{Scheduled: r.GetConfigured()}
	if resp.Scheduled {
		resp.ScheduleId = runner.ScheduleID(id.Tenant)
	}
	return resp, nil
}
