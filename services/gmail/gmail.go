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
	"github.com/algapsa/alga-google/services/platform/pg"
	"github.com/algapsa/alga-google/services/platform/target"
)

// NewTarget returns the gmail target.
func NewTarget() target.Target { return &gmailTarget{} }

type gmailTarget struct {
	mu  sync.Mutex
	svc *service.Service
}

func (*gmailTarget) Name() string { return target.Gmail }

func (*gmailTarget) Migrations() *pg.Migrations { return store.Migrations() }

// Start builds the service (River in the gmail schema), registers its gRPC services once and starts the
// sync workers. The binary may call Start again after a failure; registration happens only once.
func (t *gmailTarget) Start(ctx context.Context, deps *target.Deps) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.svc == nil {
		oauthConn, err := deps.Peer(target.OAuth)
		if err != nil {
			return err
		}
		secretsConn, err := deps.Peer(target.Secrets)
		if err != nil {
			return err
		}
		svc, err := service.New(ctx, service.Options{
			Pool: deps.Pool, Logger: deps.Logger.With("service", target.Gmail), Base: deps.Base, Google: deps.Google,
			Registry: deps.Registry,
			Peers: service.Peers{
				Tokens:  oauthv1.NewTokenServiceClient(oauthConn),
				Flow:    oauthv1.NewOAuthFlowServiceClient(oauthConn),
				Setup:   oauthv1.NewGoogleSetupServiceClient(oauthConn),
				Secrets: secretsv1.NewSecretsServiceClient(secretsConn),
			},
		})
		if err != nil {
			return fmt.Errorf("gmail: %w", err)
		}
		svc.Register(deps.Server)
		t.svc = svc
	}
	return t.svc.Run(ctx)
}
