// Package oauth is the `oauth` target of alga-google: the tenant's Google setup (credentials kept in the
// secrets service), the authorization-code flows with the tenant's own OAuth client, and custody of the
// resulting tokens. There is no application-level Google credential anywhere.
package oauth

import (
	"context"
	"errors"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	maintenancev1 "github.com/algapsa/alga-google/gen/alga/maintenance/v1"
	oauthv1 "github.com/algapsa/alga-google/gen/alga/oauth/v1"
	"github.com/algapsa/alga-google/services/oauth/internal/service"
	"github.com/algapsa/alga-google/services/oauth/internal/store"
	"github.com/algapsa/alga-google/services/platform/auth"
	"github.com/algapsa/alga-google/services/platform/config"
	"github.com/algapsa/alga-google/services/platform/googleretry"
	"github.com/algapsa/alga-google/services/platform/grpcserver"
	"github.com/algapsa/alga-google/services/platform/pg"
	"github.com/algapsa/alga-google/services/platform/target"
)

// NewTarget returns the oauth target.
func NewTarget() target.Target { return &oauthTarget{svc: service.New()} }

type oauthTarget struct {
	cfg Config
	svc *service.Service
}

func (*oauthTarget) Name() string { return target.OAuth }

// Bind implements target.Target: the oauth settings.
func (t *oauthTarget) Bind(b *config.Binder) { t.cfg.Bind(b) }

// Migrations implements target.Target: the `oauth` schema and its queries.
func (*oauthTarget) Migrations() *pg.Migrations { return store.Migrations() }

// Access is who may call each RPC of the oauth target: the Google setup is the browser's (gmail and
// calendar read its status); the flows, tokens and upkeep are internal, each for the identities that
// need it — the gateway only completes a callback, access tokens go only to the services calling Google.
var Access = grpcserver.Access{
	oauthv1.GoogleSetupService_GetGoogleConfig_FullMethodName:      grpcserver.Users(auth.SvcGmail, auth.SvcCalendar),
	oauthv1.GoogleSetupService_UpdateGoogleConfig_FullMethodName:   grpcserver.Users(),
	oauthv1.GoogleSetupService_TestGoogleConfig_FullMethodName:     grpcserver.Users(),
	oauthv1.GoogleSetupService_ResetGoogleProviders_FullMethodName: grpcserver.Users(),

	oauthv1.OAuthFlowService_BeginAuthorization_FullMethodName:    grpcserver.Services(auth.SvcGmail, auth.SvcCalendar),
	oauthv1.OAuthFlowService_CompleteAuthorization_FullMethodName: grpcserver.Services(auth.SvcGateway),

	oauthv1.TokenService_GetAccessToken_FullMethodName:   grpcserver.Services(auth.SvcGmail, auth.SvcCalendar, auth.SvcMaintenance),
	oauthv1.TokenService_GetConnection_FullMethodName:    grpcserver.Services(auth.SvcGmail, auth.SvcCalendar),
	oauthv1.TokenService_DeleteConnection_FullMethodName: grpcserver.Services(auth.SvcGmail, auth.SvcCalendar),
	oauthv1.TokenService_ListConnections_FullMethodName:  grpcserver.Services(auth.SvcMaintenance),

	"/" + maintenancev1.TokenUpkeepService_ServiceDesc.ServiceName + "/":     grpcserver.Services(auth.SvcMaintenance),
	"/" + maintenancev1.TenantDirectoryService_ServiceDesc.ServiceName + "/": grpcserver.Services(auth.SvcMaintenance),
}

// Register implements target.Target: GoogleSetupService, OAuthFlowService, TokenService and
// maintenance's TokenUpkeepService and TenantDirectoryService, and who may call them (Access).
func (t *oauthTarget) Register(srv *grpcserver.Server) {
	t.svc.Register(srv.GRPC)
	srv.Allow(Access)
}

// Start implements target.Target: connects the peers (secrets, gmail, calendar) and hands them to the
// services. Nothing runs in the background.
func (t *oauthTarget) Start(_ context.Context, deps *target.Deps) error {
	if deps.Pool == nil {
		return errors.New("oauth: a database is required")
	}
	secrets, err := deps.Peer(target.Secrets)
	if err != nil {
		return err
	}
	gmail, err := deps.Peer(target.Gmail)
	if err != nil {
		return err
	}
	calendar, err := deps.Peer(target.Calendar)
	if err != nil {
		return err
	}
	// Under the Temporal runner the worker keeps one schedule per configured tenant: a saved setup
	// tells it at once (see service.Deps.Schedules).
	var schedules *grpc.ClientConn
	if deps.Config.JobRunner == "temporal" {
		if schedules, err = deps.Peer(target.Worker); err != nil {
			return err
		}
	}
	var reg prometheus.Registerer // a nil *Registry (tests) registers nothing
	if deps.Registry != nil {
		reg = deps.Registry
	}
	retry, err := googleretry.New(service.RetryOptions(reg))
	if err != nil {
		return err
	}
	d := service.Deps{
		Pool: deps.Pool, Secrets: secrets, Gmail: gmail, Calendar: calendar,
		Base: deps.Base, BaseURL: deps.Config.BaseURL, UIBaseURL: deps.Config.UIBaseURL,
		Google: deps.Google, Logger: deps.Logger, Retry: retry,
	}
	if schedules != nil {
		d.Schedules = schedules
	}
	t.svc.SetDeps(d)
	return nil
}

// Stop implements target.Target: the oauth target has no background work.
func (*oauthTarget) Stop(context.Context) error { return nil }
