// Package testenv runs the worker target for tests the way the binary does — on the platform's gRPC
// server with its interceptor chain, reached through target.Deps peers with service tokens — beside
// the fake upkeep services (internal/fakes), on a real PostgreSQL and, for the Temporal runner, a
// real Temporal dev server (bin/temporal, never downloaded).
package testenv

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/client"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/test/bufconn"

	m "github.com/algapsa/alga-google/gen/alga/maintenance/v1"
	"github.com/algapsa/alga-google/services/maintenance"
	"github.com/algapsa/alga-google/services/maintenance/internal/fakes"
	"github.com/algapsa/alga-google/services/maintenance/maintenancetesting"
	"github.com/algapsa/alga-google/services/platform/auth"
	"github.com/algapsa/alga-google/services/platform/config"
	"github.com/algapsa/alga-google/services/platform/grpcclient"
	"github.com/algapsa/alga-google/services/platform/grpcserver"
	"github.com/algapsa/alga-google/services/platform/pgtest"
	"github.com/algapsa/alga-google/services/platform/target"
	"github.com/algapsa/alga-google/services/platform/urls"
)

const (
	userKey    = "test-user-key-0123456789abcdef0123456789"
	serviceKey = "test-service-key-0123456789abcdef01234567"
	// BaseURL is the canonical public URL of the test suite.
	BaseURL = "https://alga.test"
)

// Options shape an environment.
type Options struct {
	// Runner is "river" or "temporal".
	Runner string
	// TemporalAddress is the dev server's frontend (runner temporal).
	TemporalAddress string
	// Configure adjusts the worker's settings after the defaults are bound.
	Configure func(c *maintenance.Config)
	// Fake is the upkeep side; New creates one when nil.
	Fake *fakes.Fake
}

// Env is a started worker target with its fakes.
type Env struct {
	Fake   *fakes.Fake
	Target *maintenance.Target
	Deps   *target.Deps
	users  *auth.Signer
	conn   *grpc.ClientConn
	cancel context.CancelFunc
}

// Start starts the worker target; everything stops at the end of the test.
func Start(t testing.TB, opts Options) *Env {
	t.Helper()
	pool, _ := pgtest.NewPool(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() && os.Getenv("ALGA_TEST_LOGS") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	verifier, err := auth.NewVerifier(auth.VerifierConfig{HS256Key: []byte(userKey), ServiceKey: []byte(serviceKey),
		Issuer: "alga-psa", Audience: "alga-google", ServiceIssuer: "alga-google"})
	if err != nil {
		t.Fatal(err)
	}
	services, _ := auth.NewSigner([]byte(serviceKey), "alga-google", "alga-google")
	users, _ := auth.NewSigner([]byte(userKey), "alga-psa", "alga-google")
	srv := grpcserver.New(grpcserver.Options{Logger: log, Verifier: verifier, Registerer: prometheus.NewRegistry()})

	fake := opts.Fake
	if fake == nil {
		fake = fakes.New()
	}
	base, err := urls.Parse(BaseURL, false)
	if err != nil {
		t.Fatal(err)
	}
	if fake.PushEndpoint == "" {
		fake.PushEndpoint = base.GmailPushEndpoint()
	}
	fake.Register(srv.GRPC)
	srv.Allow(fakes.Access)

	fs := flagSet()
	tg := maintenance.New()
	tg.Bind(config.NewBinder(fs))
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	c := tg.Config()
	c.RiverTestOnly, c.RetryInterval = true, 50*time.Millisecond
	if opts.Configure != nil {
		opts.Configure(c)
	}
	tg.Register(srv)

	lis := bufconn.Listen(1 << 20)
	go func() { _ = srv.GRPC.Serve(lis) }()
	t.Cleanup(srv.GRPC.Stop)

	runner := opts.Runner
	if runner == "" {
		runner = "river"
	}
	deps := &target.Deps{
		Config: config.Config{JobRunner: runner, TemporalAddress: opts.TemporalAddress, TemporalNamespace: "default",
			GmailAddr: "bufnet", CalendarAddr: "bufnet", OAuthAddr: "bufnet"},
		Logger: log, Pool: pool, Server: srv, Verifier: verifier, ServiceSigner: services, Base: base,
		HTTP:  http.NewServeMux(),
		Local: map[string]bool{target.Gmail: true, target.Calendar: true, target.OAuth: true, target.Worker: true},
	}
	deps.SetDialer(grpcclient.Dialer{Signer: services,
		ContextDialer: func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }})
	t.Cleanup(deps.Close)
	deps = deps.As(target.Identity(target.Worker))

	ctx, cancel := context.WithCancel(context.Background())
	if err := tg.Migrations().Apply(ctx, pool); err != nil {
		t.Fatal(err)
	}
	if err := tg.Start(ctx, deps); err != nil {
		cancel()
		t.Fatalf("starting the worker target: %v", err)
	}
	conn, err := grpc.NewClient("passthrough:///bufnet", grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
		return lis.DialContext(ctx)
	}), grpc.WithTransportCredentials(insecureCreds()))
	if err != nil {
		t.Fatal(err)
	}
	e := &Env{Fake: fake, Target: tg, Deps: deps, users: users, conn: conn, cancel: cancel}
	t.Cleanup(func() {
		cancel()
		sctx, scancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer scancel()
		if err := tg.Stop(sctx); err != nil {
			t.Errorf("stopping the worker target: %v", err)
		}
		_ = conn.Close()
	})
	return e
}

// Stop stops the target now (a restart test starts another).
func (e *Env) Stop(t testing.TB) {
	e.cancel()
	sctx, scancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer scancel()
	if err := e.Target.Stop(sctx); err != nil {
		t.Errorf("stopping the worker target: %v", err)
	}
}

// Conn is a connection to the server without credentials (add a token per call).
func (e *Env) Conn() *grpc.ClientConn { return e.conn }

// Client returns a MaintenanceService client and a context carrying a user token of tenant with the
// given permissions.
func (e *Env) Client(t testing.TB, ctx context.Context, tenant string, perms ...string) (m.MaintenanceServiceClient, context.Context) {
	t.Helper()
	tok, err := e.users.MintUser(auth.UserToken{Subject: "user-1", Tenant: tenant, Permissions: perms})
	if err != nil {
		t.Fatal(err)
	}
	return m.NewMaintenanceServiceClient(e.conn), metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok)
}

// ScheduleClient returns a MaintenanceScheduleService client with a service token acting for tenant.
func (e *Env) ScheduleClient(t testing.TB, ctx context.Context, tenant string) (m.MaintenanceScheduleServiceClient, context.Context) {
	t.Helper()
	tok, err := e.Deps.ServiceSigner.MintService("oauth", tenant, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	return m.NewMaintenanceScheduleServiceClient(e.conn), metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok)
}

// StartTemporal starts a Temporal dev server for the test (see maintenancetesting.StartTemporal).
func StartTemporal(t testing.TB) (string, client.Client) { return maintenancetesting.StartTemporal(t) }
