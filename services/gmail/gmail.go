// Package gmail is the gmail target of alga-google: inbound Gmail mailboxes turned into a stream of
// parsed messages. See internal/service for the implementation.
package gmail

import (
	"context"
	"fmt"
	"sync"

	oauthv1 "github.com/algapsa/alga-google/gen/alga/oauth/v1"
	secretsv1 "github.com/algapsa/alga-google/gen/alga/secrets/v1"
	"github.com/algapsa/alga-google/services/gmail/internal/service"
	"github.com/algapsa/alga-google/services/gmail/internal/store"
	"github.com/algapsa/alga-google/services/platform/grpcserver"
	"github.com/algapsa/alga-google/services/platform/pg"
	"github.com/algapsa/alga-google/services/platform/target"
)

// NewTarget returns the gmail target.
func NewTarget() target.Target { return &gmailTarget{svc: service.NewUnstarted()} }

type gmailTarget struct {
	mu         sync.Mutex
	svc        *service.Service
	registered bool
	started    bool
}

func (*gmailTarget) Name() string { return target.Gmail }

func (*gmailTarget) Migrations() *pg.Migrations { return store.Migrations() }

// Register registers GmailProviderService and InboundMailService before the server serves; the server
// answers them with Unavailable until Start has finished.
func (t *gmailTarget) Register(srv *grpcserver.Server) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.registered {
		t.svc.Register(srv)
		t.registered = true
	}
}

// Start connects the service (peers, River in the gmail schema) and starts the sync workers. It may be
// called again after a failure.
func (t *gmailTarget) Start(ctx context.Context, deps *target.Deps) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.registered {
		t.svc.Register(deps.Server)
		t.registered = true
	}
	if t.started {
		return nil
	}
	oauthConn, err := deps.Peer(target.OAuth)
	if err != nil {
		return err
	}
	secretsConn, err := deps.Peer(target.Secrets)
	if err != nil {
		return err
	}
	if err := t.svc.Init(ctx, service.Options{
		Pool: deps.Pool, Logger: deps.Logger.With("service", target.Gmail), Base: deps.Base, Google: deps.Google,
		Registry: deps.Registry,
		Peers: service.Peers{
			Tokens:  oauthv1.NewTokenServiceClient(oauthConn),
			Flow:    oauthv1.NewOAuthFlowServiceClient(oauthConn),
			Setup:   oauthv1.NewGoogleSetupServiceClient(oauthConn),
			Secrets: secretsv1.NewSecretsServiceClient(secretsConn),
		},
	}); err != nil {
		return fmt.Errorf("gmail: %w", err)
	}
	if err := t.svc.Run(ctx); err != nil {
		return err
	}
	t.started = true
	return nil
}
