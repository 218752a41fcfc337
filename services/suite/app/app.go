// Package app wires targets into one process: the shared gRPC server (TCP plus an in-process listener so
// co-located targets still call each other through the full interceptor chain), the public HTTP server,
// readiness, and graceful shutdown.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/test/bufconn"

	"github.com/algapsa/alga-google/services/platform/auth"
	"github.com/algapsa/alga-google/services/platform/config"
	"github.com/algapsa/alga-google/services/platform/googleapi"
	"github.com/algapsa/alga-google/services/platform/grpcclient"
	"github.com/algapsa/alga-google/services/platform/grpcserver"
	"github.com/algapsa/alga-google/services/platform/grpctls"
	"github.com/algapsa/alga-google/services/platform/pg"
	"github.com/algapsa/alga-google/services/platform/target"
	"github.com/algapsa/alga-google/services/platform/urls"
)

// Options configure a running suite.
type Options struct {
	Config config.Config
	// Targets to run, constructed and bound (see NewTargets).
	Targets []target.Target
	Logger  *slog.Logger
	// Listeners override Config.GRPCAddr / Config.HTTPAddr / Config.MetricsAddr (tests pass 127.0.0.1:0
	// listeners).
	GRPCListener    net.Listener
	HTTPListener    net.Listener
	MetricsListener net.Listener
	// MigrateOnStart applies pending migrations before a target starts; otherwise the target waits
	// (NOT_SERVING) until `alga-google migrate` has run.
	MigrateOnStart bool
}

// App is a running suite.
type App struct {
	opts    Options
	log     *slog.Logger
	deps    *target.Deps
	server  *grpcserver.Server
	httpSrv *http.Server
	grpcLis net.Listener
	httpLis net.Listener
	// metricsSrv serves /metrics on a listener of its own (never the public one); nil without one.
	metricsSrv *http.Server
	metricsLis net.Listener
	inproc     *bufconn.Listener
	targets    []target.Target
	group      *errgroup.Group
	cancel     context.CancelFunc
	mu         sync.Mutex
	ready      map[string]bool
	poolMu     sync.Mutex // guards deps.Pool, connected on first need
}

// ExpandTargets turns "all" and comma lists into target names, rejecting unknown ones.
func ExpandTargets(list string) ([]string, error) {
	var out []string
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		switch {
		case name == "":
			continue
		case name == "all":
			out = append(out, AllTargets...)
		case Registry[name] != nil:
			out = append(out, name)
		default:
			return nil, fmt.Errorf("unknown target %q (known: all, %s)", name, strings.Join(AllTargets, ", "))
		}
	}
	slices.Sort(out)
	out = slices.Compact(out)
	if len(out) == 0 {
		return nil, errors.New("no target given (use --target=all or a comma list)")
	}
	return out, nil
}

// Start builds and starts the suite; it returns once listeners are open. Targets become ready in the
// background; health and /readyz tell when.
func Start(ctx context.Context, opts Options) (*App, error) {
	cfg := opts.Config
	log := opts.Logger
	base, err := urls.Parse(cfg.BaseURL, cfg.Dev)
	if err != nil {
		return nil, err
	}
	if err := cfg.CheckServiceKey(); err != nil {
		return nil, err
	}
	verifier, err := auth.NewVerifier(auth.VerifierConfig{
		HS256Key: []byte(cfg.AuthHS256Key), JWKS: cfg.AuthJWKS, ServiceKey: cfg.ServiceKey(),
		Issuer: cfg.AuthIssuer, Audience: cfg.AuthAudience, ServiceIssuer: ServiceIssuer,
		JWKSMaxAge: cfg.AuthJWKSMaxAge, JWKSMinInterval: cfg.AuthJWKSMinInterval,
	})
	if err != nil {
		return nil, err
	}
	serviceSigner, err := auth.NewSigner(cfg.ServiceKey(), ServiceIssuer, cfg.AuthAudience)
	if err != nil {
		return nil, err
	}
	var userSigner *auth.Signer
	if len(cfg.AuthHS256Key) >= 32 {
		userSigner, _ = auth.NewSigner([]byte(cfg.AuthHS256Key), cfg.AuthIssuer, cfg.AuthAudience)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	a := &App{opts: opts, log: log, ready: map[string]bool{}, inproc: bufconn.Listen(1 << 20)}
	peerTLS, err := grpctls.Load(cfg.GRPCTLSCert, cfg.GRPCTLSKey, cfg.GRPCTLSCA)
	if err != nil {
		return nil, err
	}
	a.server = grpcserver.New(grpcserver.Options{Logger: log, Verifier: verifier, Registerer: reg,
		TLS: peerTLS.Server(), Reflection: cfg.Dev || cfg.GRPCReflection})

	local := map[string]bool{}
	for _, t := range opts.Targets {
		name := t.Name()
		local[name] = true
		a.targets = append(a.targets, t)
		// Register before Serve; the target's services answer Unavailable until its Start succeeds.
		before := a.server.GRPC.GetServiceInfo()
		t.Register(a.server)
		var added []string
		for svc := range a.server.GRPC.GetServiceInfo() {
			if _, ok := before[svc]; !ok {
				added = append(added, svc)
			}
		}
		a.server.Gate(name, added...)
		a.server.Health.SetServingStatus(name, healthpb.HealthCheckResponse_NOT_SERVING)
	}
	upstreams := []string{}
	for _, name := range grpcTargets {
		// A gateway alone fronts every service; beside some targets it fronts the local ones.
		if Registry[name] != nil && (local[name] || !hasAnyGRPCTarget(local)) {
			upstreams = append(upstreams, name)
		}
	}
	a.deps = &target.Deps{
		Config: cfg, Logger: log, Server: a.server, Verifier: verifier,
		ServiceSigner: serviceSigner, UserSigner: userSigner, Base: base,
		Google:   googleapi.New(cfg.GoogleAPIRoot, cfg.PubSubEmulatorHost),
		Registry: reg, HTTP: http.NewServeMux(), Local: local, Upstreams: upstreams,
	}
	// Each target signs its peer calls as its own identity (target.Identity): see depsOf.
	a.deps.SetDialer(grpcclient.Dialer{
		Signer:        serviceSigner,
		TLS:           peerTLS.Client(),
		ContextDialer: func(ctx context.Context, _ string) (net.Conn, error) { return a.inproc.DialContext(ctx) },
	})

	if a.grpcLis = opts.GRPCListener; a.grpcLis == nil {
		if a.grpcLis, err = net.Listen("tcp", cfg.GRPCAddr); err != nil {
			return nil, fmt.Errorf("gRPC listener: %w", err)
		}
	}
	if local[target.Gateway] {
		if a.httpLis = opts.HTTPListener; a.httpLis == nil {
			if a.httpLis, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
				return nil, fmt.Errorf("HTTP listener: %w", err)
			}
		}
		a.httpSrv = newHTTPServer(a.deps.HTTP, cfg)
	}
	if a.metricsLis = opts.MetricsListener; a.metricsLis == nil && cfg.MetricsAddr != "" {
		if a.metricsLis, err = net.Listen("tcp", cfg.MetricsAddr); err != nil {
			return nil, fmt.Errorf("metrics listener: %w", err)
		}
	}
	if a.metricsLis != nil {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		a.metricsSrv = newHTTPServer(mux, cfg)
	}

	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	a.cancel = cancel
	// Targets without a database (the gateway) start before anything is served, so their routes exist
	// from the first request; the others come up in the background as their database allows.
	var pending []target.Target
	for _, t := range a.targets {
		if t.Migrations() != nil {
			pending = append(pending, t)
			continue
		}
		if err := t.Start(runCtx, a.depsOf(t)); err != nil {
			cancel()
			return nil, fmt.Errorf("starting %s: %w", t.Name(), err)
		}
		a.setReady(t.Name(), true)
	}
	g, gctx := errgroup.WithContext(runCtx)
	a.group = g
	g.Go(func() error { return a.server.GRPC.Serve(a.grpcLis) })
	g.Go(func() error { return a.server.GRPC.Serve(a.inproc) })
	for srv, lis := range map[*http.Server]net.Listener{a.httpSrv: a.httpLis, a.metricsSrv: a.metricsLis} {
		if srv == nil {
			continue
		}
		g.Go(func() error {
			if err := srv.Serve(lis); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		})
	}
	for _, t := range pending {
		g.Go(func() error { return a.runTarget(gctx, t) })
	}
	g.Go(func() error { a.watchDatabase(gctx); return nil })
	return a, nil
}

// HTTP server timeouts when the configuration leaves them unset.
const (
	defaultReadTimeout  = 30 * time.Second
	defaultWriteTimeout = 2 * time.Minute
	defaultIdleTimeout  = 2 * time.Minute
)

// newHTTPServer bounds every phase of a connection: headers, the whole request, the response (no
// endpoint streams over HTTP — one that did would extend its own deadline with
// http.ResponseController.SetWriteDeadline), and idle keep-alives.
func newHTTPServer(h http.Handler, cfg config.Config) *http.Server {
	or := func(d, def time.Duration) time.Duration {
		if d > 0 {
			return d
		}
		return def
	}
	read := or(cfg.HTTPReadTimeout, defaultReadTimeout)
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: min(10*time.Second, read),
		ReadTimeout:       read,
		WriteTimeout:      or(cfg.HTTPWriteTimeout, defaultWriteTimeout),
		IdleTimeout:       or(cfg.HTTPIdleTimeout, defaultIdleTimeout),
	}
}

// grpcTargets are the targets that serve gRPC (the gateway fronts them and checks their readiness).
var grpcTargets = []string{target.Secrets, target.OAuth, target.Gmail, target.Calendar, target.Worker}

func hasAnyGRPCTarget(local map[string]bool) bool {
	for _, n := range grpcTargets {
		if local[n] {
			return true
		}
	}
	return false
}

// ServiceIssuer is the iss of service tokens minted by the suite.
const ServiceIssuer = "alga-google"

// runTarget brings one target up: database, migrations, Start; retried with backoff until it succeeds.
func (a *App) runTarget(ctx context.Context, t target.Target) error {
	backoff := 500 * time.Millisecond
	for {
		err := a.startTarget(ctx, t)
		if err == nil {
			a.setReady(t.Name(), true)
			a.log.Info("target ready", "target", t.Name())
			return nil
		}
		if ctx.Err() != nil {
			return nil
		}
		a.log.Warn("target not ready yet", "target", t.Name(), "err", err, "retry_in", backoff.String())
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 10*time.Second)
	}
}

func (a *App) startTarget(ctx context.Context, t target.Target) error {
	if m := t.Migrations(); m != nil {
		pool, err := a.pool(ctx)
		if err != nil {
			return err
		}
		if a.opts.MigrateOnStart {
			if err := m.Apply(ctx, pool); err != nil {
				return err
			}
		} else if ok, err := m.Applied(ctx, pool); err != nil || !ok {
			return fmt.Errorf("schema %s is not migrated yet: run `alga-google migrate`", m.Schema)
		}
	}
	return t.Start(ctx, a.depsOf(t))
}

// depsOf is what target t is handed: the shared dependencies, with peer calls signed as the target's
// own service identity.
func (a *App) depsOf(t target.Target) *target.Deps {
	a.poolMu.Lock()
	defer a.poolMu.Unlock()
	return a.deps.As(target.Identity(t.Name()))
}

// pool connects to PostgreSQL once, on first need.
func (a *App) pool(ctx context.Context) (*pgxpool.Pool, error) {
	a.poolMu.Lock()
	defer a.poolMu.Unlock()
	if a.deps.Pool != nil {
		return a.deps.Pool, nil
	}
	if a.opts.Config.DatabaseURL == "" {
		return nil, errors.New("DATABASE_URL is required")
	}
	pool, err := pg.Connect(ctx, a.opts.Config.DatabaseURL)
	if err != nil {
		return nil, err
	}
	a.deps.Pool = pool
	return pool, nil
}

// watchDatabase flips database-backed targets to NOT_SERVING while PostgreSQL does not answer.
func (a *App) watchDatabase(ctx context.Context) {
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		a.poolMu.Lock()
		pool := a.deps.Pool
		a.poolMu.Unlock()
		if pool == nil {
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := pool.Ping(pctx)
		cancel()
		a.mu.Lock()
		for _, t := range a.targets {
			if t.Migrations() != nil && a.ready[t.Name()] {
				a.setHealthLocked(t.Name(), err == nil)
			}
		}
		a.mu.Unlock()
	}
}

func (a *App) setReady(name string, ok bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.ready[name] = ok
	a.server.SetReady(name, ok)
	a.setHealthLocked(name, ok)
}

func (a *App) setHealthLocked(name string, ok bool) {
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if ok {
		st = healthpb.HealthCheckResponse_SERVING
	}
	a.server.Health.SetServingStatus(name, st)
	all := true
	for _, t := range a.targets {
		if !a.ready[t.Name()] {
			all = false
		}
	}
	overall := healthpb.HealthCheckResponse_NOT_SERVING
	if all && ok {
		overall = healthpb.HealthCheckResponse_SERVING
	}
	a.server.Health.SetServingStatus("", overall)
}

// GRPCAddr is the TCP address of the gRPC server.
func (a *App) GRPCAddr() string { return a.grpcLis.Addr().String() }

// MetricsAddr is the address of the /metrics listener ("" without one).
func (a *App) MetricsAddr() string {
	if a.metricsLis == nil {
		return ""
	}
	return a.metricsLis.Addr().String()
}

// HTTPAddr is the address of the public HTTP server ("" without the gateway target).
func (a *App) HTTPAddr() string {
	if a.httpLis == nil {
		return ""
	}
	return a.httpLis.Addr().String()
}

// Deps exposes the wiring (tests use the signers and the pool).
func (a *App) Deps() *target.Deps { return a.deps }

// WaitReady blocks until every target is ready or ctx ends.
func (a *App) WaitReady(ctx context.Context) error {
	for {
		a.mu.Lock()
		n := 0
		for _, t := range a.targets {
			if a.ready[t.Name()] {
				n++
			}
		}
		a.mu.Unlock()
		if n == len(a.targets) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("suite not ready: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Shutdown stops accepting work, drains in-flight requests (bounded by ctx), and stops background work.
func (a *App) Shutdown(ctx context.Context) error {
	a.server.Health.Shutdown()
	if a.httpSrv != nil {
		_ = a.httpSrv.Shutdown(ctx)
	}
	if a.metricsSrv != nil {
		_ = a.metricsSrv.Shutdown(ctx)
	}
	stopped := make(chan struct{})
	go func() { a.server.GRPC.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-ctx.Done():
		a.server.GRPC.Stop()
	}
	a.cancel()
	err := a.group.Wait()
	// Background work started under the targets' contexts (River clients recording their cancelled
	// jobs) finishes before the pool closes.
	for _, t := range a.targets {
		if serr := t.Stop(ctx); serr != nil {
			a.log.Warn("target did not stop cleanly", "target", t.Name(), "err", serr)
		}
	}
	a.deps.Close()
	if a.deps.Pool != nil {
		a.deps.Pool.Close()
	}
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}
