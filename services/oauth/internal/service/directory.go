package service

import (
	"context"
	"time"

	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	m "github.com/algapsa/alga-google/gen/alga/maintenance/v1"
	oauthv1 "github.com/algapsa/alga-google/gen/alga/oauth/v1"
	"github.com/algapsa/alga-google/services/oauth/internal/store"
	"github.com/algapsa/alga-google/services/platform/auth"
	"github.com/algapsa/alga-google/services/platform/errs"
)

// ListConfiguredTenants implements TenantDirectoryService: the tenants whose Google setup is saved
// (CONFIGURED or PARTIAL), from the states UpdateGoogleConfig and ResetGoogleProviders record in
// tenant_setups (the setup itself is per-tenant secrets, which cannot be listed across tenants).
//
// It is the one read in this service that crosses tenants: the maintenance scheduler needs every
// tenant with a setup to keep one schedule each, and no tenant's token can name the others. So it is
// for a service identity acting for no tenant only — registered service-only, and refused here to users
// and to a service acting for a tenant (such a call works for that tenant, possibly for one of its
// users, and must not learn which other tenants exist). It answers tenant ids and times, nothing of
// any setup.
func (s *Directory) ListConfiguredTenants(ctx context.Context, _ *m.ListConfiguredTenantsRequest) (*m.ListConfiguredTenantsResponse, error) {
	id, ok := auth.FromContext(ctx)
	switch {
	case !ok:
		return nil, errs.Unauthenticated("a bearer token is required")
	case !id.IsService():
		return nil, errs.PermissionDenied("only services may list the tenants")
	case id.Tenant != "":
		return nil, errs.PermissionDenied("a call acting for a tenant may not list the other tenants: call without a tenant")
	}
	rows, err := store.ListConfiguredTenants(ctx, s.pool)
	if err != nil {
		return nil, err
	}
	resp := &m.ListConfiguredTenantsResponse{Tenants: make([]*m.ConfiguredTenant, 0, len(rows))}
	for _, r := range rows {
		resp.Tenants = append(resp.Tenants, &m.ConfiguredTenant{Tenant: r.Tenant, UpdateTime: timestamppb.New(r.UpdatedAt)})
	}
	return resp, nil
}

// setupStateName is how tenant_setups records a setup state.
func setupStateName(st oauthv1.GoogleConfigState) string {
	switch st {
	case oauthv1.GoogleConfigState_GOOGLE_CONFIG_STATE_CONFIGURED:
		return store.SetupConfigured
	case oauthv1.GoogleConfigState_GOOGLE_CONFIG_STATE_PARTIAL:
		return store.SetupPartial
	}
	return store.SetupMissing
}

// syncSchedule tells the worker at once that the caller's tenant's setup is (or is no longer) saved,
// so under the Temporal runner its maintenance schedule exists from the first save, not from the
// worker's next periodic reconcile (which remains the safety net: a failure here is only logged).
func (c *core) syncSchedule(ctx context.Context, configured bool) {
	if c.schedules == nil {
		return
	}
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := c.schedules.SyncGoogleMaintenanceSchedule(sctx, &m.SyncGoogleMaintenanceScheduleRequest{Configured: configured}); err != nil {
		c.log.WarnContext(ctx, "the maintenance schedule will be reconciled later", "code", status.Code(err).String())
	}
}
