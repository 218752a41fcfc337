// Package target is the contract between the alga-google binary and each service: a target owns one
// schema, registers its gRPC services (or HTTP routes) and runs its background work.
package target

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/algapsa/alga-google/services/platform/auth"
	"github.com/algapsa/alga-google/services/platform/config"
	"github.com/algapsa/alga-google/services/platform/googleapi"
	"github.com/algapsa/alga-google/services/platform/grpcclient"
	"github.com/algapsa/alga-google/services/platform/grpcserver"
	"github.com/algapsa/alga-google/services/platform/pg"
	"github.com/algapsa/alga-google/services/platform/urls"
)

// Names of the targets; "all" means every one of them in one process.
const (
	Secrets  = "secrets"
	OAuth    = "oauth"
	Gmail    = "gmail"
	Calendar = "calendar"
	Gateway  = "gateway"
	Worker   = "worker"
)

// Target is one deployable part of the suite.
type Target interface {
	Name() string
	// Migrations returns the migrations of the schema the target owns, or nil.
	Migrations() *pg.Migrations
	// Register registers the target's gRPC services. It is called before the server starts serving
	// (grpc-go forbids registering later), so the registered implementations get their dependencies in
	// Start; until Start returns, the server answers the target's methods with Unavailable by itself.
	Register(srv *grpcserver.Server)
	// Start connects the target's dependencies and starts its background work, which runs until ctx is
	// done. It returns once the target can serve; it is retried (with backoff) while it fails.
	Start(ctx context.Context, deps *Deps) error
}

// Deps is what the binary hands every target.
type Deps struct {
	Config   config.Config
	Logger   *slog.Logger
	Pool     *pgxpool.Pool
	Server   *grpcserver.Server
	Verifier *auth.Verifier
	// ServiceSigner mints service tokens (peer calls, the gateway's webhook calls).
	ServiceSigner *auth.Signer
	// UserSigner mints user tokens in --dev mode (dev sign-in); nil when no HS256 user key is configured.
	UserSigner *auth.Signer
	Base       urls.Base
	Google     googleapi.Endpoints
	Registry   *prometheus.Registry
	// HTTP is the public mux (served by the gateway listener); targets may add raw routes to it.
	HTTP *http.ServeMux
	// Local lists the targets running in this process.
	Local map[string]bool
	// Upstreams are the gRPC targets the gateway serves and checks for readiness.
	Upstreams []string

	dialer grpcclient.Dialer
	mu     sync.Mutex
	conns  map[string]*grpc.ClientConn
}

// SetDialer sets how peers are reached (in-process when they are local). Call before Peer.
func (d *Deps) SetDialer(dialer grpcclient.Dialer) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.dialer = dialer
	d.conns = map[string]*grpc.ClientConn{}
}

// Peer returns a (shared) connection to another target's gRPC services, with service credentials.
func (d *Deps) Peer(name string) (*grpc.ClientConn, error) {
	return d.peer(name, false)
}

// PeerRaw returns a connection without service credentials (the gateway forwards the browser's token).
func (d *Deps) PeerRaw(name string) (*grpc.ClientConn, error) {
	return d.peer(name, true)
}

func (d *Deps) peer(name string, raw bool) (*grpc.ClientConn, error) {
	key := name
	if raw {
		key += "#raw"
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if c, ok := d.conns[key]; ok {
		return c, nil
	}
	addr, err := d.peerAddr(name)
	if err != nil {
		return nil, err
	}
	dialer := d.dialer
	if !d.Local[name] {
		dialer.ContextDialer = nil
	}
	var c *grpc.ClientConn
	if raw {
		c, err = dialer.DialRaw(addr)
	} else {
		c, err = dialer.Dial(addr)
	}
	if err != nil {
		return nil, fmt.Errorf("dialing %s at %s: %w", name, addr, err)
	}
	d.conns[key] = c
	return c, nil
}

func (d *Deps) peerAddr(name string) (string, error) {
	switch name {
	case Secrets:
		return d.Config.SecretsAddr, nil
	case OAuth:
		return d.Config.OAuthAddr, nil
	case Gmail:
		return d.Config.GmailAddr, nil
	case Calendar:
		return d.Config.CalendarAddr, nil
	}
	return "", fmt.Errorf("no gRPC peer named %q", name)
}

// Close closes peer connections.
func (d *Deps) Close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, c := range d.conns {
		_ = c.Close()
	}
}
