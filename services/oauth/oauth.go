// Package oauth is the `oauth` target of alga-google: the tenant's Google setup (credentials kept in the
// secrets service), the authorization-code flows with the tenant's own OAuth client, and custody of the
// resulting tokens. There is no application-level Google credential anywhere.
package oauth

import (
	"context"
	"errors"

	"google.golang.org/grpc"

	"github.com/algapsa/alga-google/services/oauth/internal/service"
	"github.com/algapsa/alga-google/services/oauth/internal/store"
	"github.com/algapsa/alga-google/services/platform/config"
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

// Register implements target.Target: GoogleSetupService (users); OAuthFlowService, TokenService and
// maintenance's TokenUpkeepService and TenantDirectoryService (service identities only).
func (t *oauthTarget) Register(srv *grpcserver.Server) {
	t.svc.Register(srv.GRPC)
	srv.RequireService("/alga.oauth.v1.OAuthFlowService/", "/alga.oauth.v1.TokenService/",
		"/alga.maintenance.v1.TokenUpkeepService/", "/alga.maintenance.v1.TenantDirectoryService/")
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
	d := service.Deps{
		Pool: deps.Pool, Secrets: secrets, Gmail: gmail, Calendar: calendar,
		Base: deps.Base, BaseURL: deps.Config.BaseURL, UIBaseURL: deps.Config.UIBaseURL,
		Google: deps.Google, Logger: deps.Logger,
	}
	if schedules != nil {
		d.Schedules = schedules
	}
	t.svc.SetDeps(d)
	return nil
}

// Stop implements target.Target: the oauth target has no background work.
func (*oauthTarget) Stop(context.Context) error { return nil }
