// Package gmail is the gmail target of alga-google: inbound Gmail mailboxes turned into a stream of
// parsed messages. See internal/service for the implementation.
package gmail

import (
	"context"
	"fmt"

	oauthv1 "github.com/algapsa/alga-google/gen/alga/oauth/v1"
	secretsv1 "github.com/algapsa/alga-google/gen/alga/secrets/v1"
	"github.com/algapsa/alga-google/services/gmail/internal/service"
	"github.com/algapsa/alga-google/services/gmail/internal/store"
	"github.com/algapsa/alga-google/services/platform/config"
	"github.com/algapsa/alga-google/services/platform/grpcserver"
	"github.com/algapsa/alga-google/services/platform/pg"
	"github.com/algapsa/alga-google/services/platform/target"
)

// Target is the gmail target (see target.Target for the lifecycle).
type Target struct {
	cfg Config
	svc *service.Service
}

// NewTarget returns the gmail target (the suite's registry constructor).
func NewTarget() target.Target { return New() }

// New constructs the target with its gRPC implementations, without dependencies.
func New() *Target { return &Target{svc: service.New()} }

func (*Target) Name() string { return target.Gmail }

// Bind declares the gmail target's own settings.
func (t *Target) Bind(b *config.Binder) { t.cfg.Bind(b) }

func (*Target) Migrations() *pg.Migrations { return store.Migrations() }

// Register registers GmailProviderService, InboundMailService and maintenance's GmailUpkeepService
// before the server serves, and who may call them (service.Access); the server answers them
// Unavailable until Start succeeds.
func (t *Target) Register(srv *grpcserver.Server) { t.svc.Register(srv) }

// Start connects the service to its peers (oauth, secrets) and starts River in the gmail schema (the
// sync worker and the pending-notification sweeper) and the inbound feed's relay, until ctx ends.
func (t *Target) Start(ctx context.Context, deps *target.Deps) error {
	if err := t.cfg.validate(); err != nil {
		return fmt.Errorf("gmail: %w", err)
	}
	oauthConn, err := deps.Peer(target.OAuth)
	if err != nil {
		return err
	}
	secretsConn, err := deps.Peer(target.Secrets)
	if err != nil {
		return err
	}
	if err := t.svc.Start(ctx, service.Options{
		Pool: deps.Pool, Logger: deps.Logger.With("service", target.Gmail), Base: deps.Base, Google: deps.Google,
		Registry: deps.Registry, Sync: t.cfg.Sync,
		Peers: service.Peers{
			Tokens:  oauthv1.NewTokenServiceClient(oauthConn),
			Flow:    oauthv1.NewOAuthFlowServiceClient(oauthConn),
			Setup:   oauthv1.NewGoogleSetupServiceClient(oauthConn),
			Secrets: secretsv1.NewSecretsServiceClient(secretsConn),
		},
	}); err != nil {
		return fmt.Errorf("gmail: %w", err)
	}
	return nil
}

// Stop waits (bounded by ctx) until River has stopped and the feed relay has ended.
func (t *Target) Stop(ctx context.Context) error { return t.svc.Stop(ctx) }
