// Package oauth is the `oauth` target of alga-google: the tenant's Google setup (credentials kept in the
// secrets service), the authorization-code flows with the tenant's own OAuth client, and custody of the
// resulting tokens. There is no application-level Google credential anywhere.
package oauth

import (
	"context"
	"errors"

	"github.com/algapsa/alga-google/services/oauth/internal/service"
	"github.com/algapsa/alga-google/services/oauth/internal/store"
	"github.com/algapsa/alga-google/services/platform/grpcserver"
	"github.com/algapsa/alga-google/services/platform/pg"
	"github.com/algapsa/alga-google/services/platform/target"
)

// NewTarget returns the oauth target.
func NewTarget() target.Target { return &oauthTarget{} }

type oauthTarget struct {
	holder     service.Holder
	registered bool
}

func (*oauthTarget) Name() string { return target.OAuth }

// Migrations implements target.Target: the `oauth` schema.
func (*oauthTarget) Migrations() *pg.Migrations { return store.Migrations() }

// Register implements target.Target: GoogleSetupService (users), OAuthFlowService and TokenService
// (service identities only). They answer Unavailable until Start has finished.
func (t *oauthTarget) Register(srv *grpcserver.Server) {
	if t.registered {
		return
	}
	t.registered = true
	service.Register(srv.GRPC, &t.holder)
	srv.RequireService("/alga.oauth.v1.OAuthFlowService/", "/alga.oauth.v1.TokenService/")
}

// Start implements target.Target: connects the peers (secrets, gmail, calendar) and opens the services.
func (t *oauthTarget) Start(_ context.Context, deps *target.Deps) error {
	if deps.Pool == nil {
		return errors.New("oauth: a database is required")
	}
	t.Register(deps.Server)
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
	t.holder.Set(service.New(service.Options{
		Pool: deps.Pool, Secrets: secrets, Gmail: gmail, Calendar: calendar,
		Base: deps.Base, BaseURL: deps.Config.BaseURL, UIBaseURL: deps.Config.UIBaseURL,
		Google: deps.Google, Logger: deps.Logger,
	}))
	return nil
}
