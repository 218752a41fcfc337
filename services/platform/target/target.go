// Package target is the contract between the alga-google binary and each service: a target owns one
// schema, registers its gRPC services (or HTTP routes) and runs its background work.
package target

import (
	"context"
	"errors"
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

// Target is one deployable part of the suite. Every service implements it the same way, in the file
// named after the service at its module root (see this package's README for the layout):
//
//  1. construct — New(): the service's gRPC implementations exist, without dependencies.
//  2. bind — Bind(b): the service declares its own settings (flags + env) into its Config.
//  3. register — Register(srv): called once, before the server serves (grpc-go refuses later
//     registrations): registers the implementations themselves — no wrappers — and declares who may
//     call each method (srv.Allow with the target's one grpcserver.Access table, beside Register; an
//     undeclared method is refused to everyone). From now until Start returns nil, the server's start-up
//     gate answers the target's methods with Unavailable, so no handler runs without its dependencies.
//  4. start — Start(ctx, deps): once the target's schema is migrated, connects the dependencies (pool,
//     peers, River) into the implementations and starts background work, which runs until ctx ends. It
//     is retried with backoff while it fails, so it builds everything first and commits it last (a failed
//     attempt leaves nothing half-started). Fields Start sets are safe for handlers to read: the gate
//     opens under the server's lock after Start returns.
//  5. stop — Stop(ctx): after ctx of Start has ended, waits until background work has finished (River
//     clients record their cancelled jobs), bounded by ctx; the binary closes the pool afterwards.
type Target interface {
	Name() string
	Bind(b *config.Binder)
	// Migrations returns the schema the target owns (migrations and every query), or nil.
	Migrations() *pg.Migrations
	Register(srv *grpcserver.Server)
	Start(ctx context.Context, deps *Deps) error
	Stop(ctx context.Context) error
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
	// Identity is the service identity (svc claim) the target's peer calls sign as: the binary hands
	// each target its own Deps (As), so a target's calls carry its own name (see Identity).
	Identity string
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

	peers *peers
}

// peers are the connections of every target of the process, by identity and peer.
type peers struct {
	dialer grpcclient.Dialer
	mu     sync.Mutex
	conns  map[string]*grpc.ClientConn
}

// Identity is the service identity a target signs its peer calls as (the worker target is
// "maintenance"; every other target is its own name).
func Identity(targetName string) string {
	if targetName == Worker {
		return auth.SvcMaintenance
	}
	return targetName
}

// SetDialer sets how peers are reached (in-process when they are local). Call before Peer; the
// dialer's Service is replaced by the Identity of the Deps a target is handed.
func (d *Deps) SetDialer(dialer grpcclient.Dialer) {
	d.peers = &peers{dialer: dialer, conns: map[string]*grpc.ClientConn{}}
}

// As returns the dependencies of one target: the same everything, with peer calls signed as identity
// (connections shared by the targets of the process that sign as the same identity).
func (d *Deps) As(identity string) *Deps {
	c := *d
	c.Identity = identity
	return &c
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
	if d.peers == nil {
		return nil, errors.New("target: no dialer set (Deps.SetDialer)")
	}
	dialer := d.peers.dialer
	if d.Identity != "" {
		dialer.Service = d.Identity
	}
	key := dialer.Service + ">" + name
	if raw {
		key = "raw>" + name
	}
	d.peers.mu.Lock()
	defer d.peers.mu.Unlock()
	if c, ok := d.peers.conns[key]; ok {
		return c, nil
	}
	addr, err := d.peerAddr(name)
	if err != nil {
		return nil, err
	}
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
	d.peers.conns[key] = c
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
	case Worker:
		return d.Config.WorkerAddr, nil
	}
	return "", fmt.Errorf("no gRPC peer named %q", name)
}

// Close closes the peer connections of every target of the process.
func (d *Deps) Close() {
	if d.peers == nil {
		return
	}
	d.peers.mu.Lock()
	defer d.peers.mu.Unlock()
	for k, c := range d.peers.conns {
		_ = c.Close()
		delete(d.peers.conns, k)
	}
}
