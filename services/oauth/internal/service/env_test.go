package service_test

import (
	"context"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	calendarv1 "github.com/algapsa/alga-google/gen/alga/calendar/v1"
	gmailv1 "github.com/algapsa/alga-google/gen/alga/gmail/v1"
	maintenancev1 "github.com/algapsa/alga-google/gen/alga/maintenance/v1"
	oauthv1 "github.com/algapsa/alga-google/gen/alga/oauth/v1"
	secretsv1 "github.com/algapsa/alga-google/gen/alga/secrets/v1"
	"github.com/algapsa/alga-google/services/oauth"
	"github.com/algapsa/alga-google/services/oauth/internal/oauthtest"
	"github.com/algapsa/alga-google/services/oauth/internal/store"
	"github.com/algapsa/alga-google/services/platform/auth"
	"github.com/algapsa/alga-google/services/platform/config"
	"github.com/algapsa/alga-google/services/platform/googleapi"
	"github.com/algapsa/alga-google/services/platform/grpcclient"
	"github.com/algapsa/alga-google/services/platform/grpcserver"
	"github.com/algapsa/alga-google/services/platform/logging"
	"github.com/algapsa/alga-google/services/platform/pgtest"
	"github.com/algapsa/alga-google/services/platform/target"
	"github.com/algapsa/alga-google/services/platform/urls"
)

const (
	testKey  = "oauth-service-test-key-0123456789abcdef"
	svcKey   = "oauth-test-service-token-key-0123456789"
	baseURL  = "https://helpdesk.example.com"
	clientA  = "123456789012-abcdefghijklmnop.apps.googleusercontent.com"
	secretA  = "GOCSPX-planted-secret-AAAA1234"
	clientB  = "987654321098-zyxwvutsrqponmlk.apps.googleusercontent.com"
	secretB  = "GOCSPX-planted-secret-BBBB5678"
	projectA = "acme-helpdesk-1"
)

// instance is one oauth target on its own gRPC server and pool.
type instance struct {
	setup     oauthv1.GoogleSetupServiceClient
	flow      oauthv1.OAuthFlowServiceClient
	tokens    oauthv1.TokenServiceClient
	upkeep    maintenancev1.TokenUpkeepServiceClient
	directory maintenancev1.TenantDirectoryServiceClient
}

type testBundle struct {
	pool      *pgxpool.Pool
	secrets   *oauthtest.Secrets
	gmail     *oauthtest.Gmail
	google    *oauthtest.Google
	users     *auth.Signer
	svcs      *auth.Signer
	instances []instance
	schedules *scheduleRecorder
}

// setup starts n oauth instances sharing one fresh database, the fakes they call, and clients.
func setup(t *testing.T, n int, pubsubHost string) *testBundle {
	t.Helper()
	ctx := context.Background()
	pool, dbURL := pgtest.NewPool(t)
	require.NoError(t, store.Migrations().Apply(ctx, pool))

	verifier, err := auth.NewVerifier(auth.VerifierConfig{HS256Key: []byte(testKey), ServiceKey: []byte(svcKey), Issuer: "alga-psa", Audience: "alga-google", ServiceIssuer: "alga-google"})
	require.NoError(t, err)
	users, _ := auth.NewSigner([]byte(testKey), "alga-psa", "alga-google")
	svcs, _ := auth.NewSigner([]byte(svcKey), "alga-google", "alga-google")

	b := &testBundle{pool: pool, secrets: oauthtest.NewSecrets(), gmail: oauthtest.NewGmail(), google: oauthtest.NewGoogle(), users: users, svcs: svcs}
	t.Cleanup(b.google.Close)

	peers := grpcserver.New(grpcserver.Options{Logger: logging.Discard(), Verifier: verifier, Registerer: prometheus.NewRegistry()})
	secretsv1.RegisterSecretsServiceServer(peers.GRPC, b.secrets)
	gmailv1.RegisterGmailProviderServiceServer(peers.GRPC, b.gmail)
	calendarv1.RegisterCalendarProviderServiceServer(peers.GRPC, &oauthtest.Calendar{})
	b.schedules = &scheduleRecorder{}
	maintenancev1.RegisterMaintenanceScheduleServiceServer(peers.GRPC, b.schedules)
	// The peers' fakes answer oauth, as their owners' access tables do.
	peers.Allow(grpcserver.Access{
		"/alga.secrets.v1.SecretsService/":                 grpcserver.Services(auth.SvcOAuth),
		"/alga.gmail.v1.GmailProviderService/":             grpcserver.Services(auth.SvcOAuth),
		"/alga.calendar.v1.CalendarProviderService/":       grpcserver.Services(auth.SvcOAuth),
		"/alga.maintenance.v1.MaintenanceScheduleService/": grpcserver.Services(auth.SvcOAuth),
	})
	peerAddr := serve(t, peers.GRPC)

	base, err := urls.Parse(baseURL, false)
	require.NoError(t, err)
	for range n {
		ipool, err := pgxpool.New(ctx, dbURL)
		require.NoError(t, err)
		t.Cleanup(ipool.Close)
		srv := grpcserver.New(grpcserver.Options{Logger: logging.Discard(), Verifier: verifier, Registerer: prometheus.NewRegistry()})
		tg := oauth.NewTarget()
		tg.Register(srv)
		addr := serve(t, srv.GRPC)
		deps := &target.Deps{
			Config: config.Config{BaseURL: baseURL, SecretsAddr: peerAddr, GmailAddr: peerAddr, CalendarAddr: peerAddr,
				WorkerAddr: peerAddr, JobRunner: "temporal"},
			Logger: testLogger(), Pool: ipool, Server: srv, Verifier: verifier, ServiceSigner: svcs, Base: base,
			Google: googleapi.New(b.google.URL(), pubsubHost), Local: map[string]bool{target.OAuth: true},
		}
		deps.SetDialer(grpcclient.Dialer{Signer: svcs})
		t.Cleanup(deps.Close)
		require.NoError(t, tg.Start(ctx, deps.As(target.Identity(target.OAuth))))
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		require.NoError(t, err)
		t.Cleanup(func() { _ = conn.Close() })
		b.instances = append(b.instances, instance{
			setup: oauthv1.NewGoogleSetupServiceClient(conn), flow: oauthv1.NewOAuthFlowServiceClient(conn), tokens: oauthv1.NewTokenServiceClient(conn),
			upkeep: maintenancev1.NewTokenUpkeepServiceClient(conn), directory: maintenancev1.NewTenantDirectoryServiceClient(conn),
		})
	}
	return b
}

func serve(t *testing.T, s *grpc.Server) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = s.Serve(lis) }()
	t.Cleanup(s.Stop)
	return lis.Addr().String()
}

func bearer(tok string) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	_ = cancel
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok)
}

// admin is a user with system_settings:update.
func (b *testBundle) admin(t *testing.T, tenant string) context.Context {
	tok, err := b.users.MintUser(auth.UserToken{Subject: "admin-1", Tenant: tenant, Permissions: []string{auth.PermSystemSettingsUpdate}})
	require.NoError(t, err)
	return bearer(tok)
}

// user is an internal user without permissions.
func (b *testBundle) user(t *testing.T, tenant, sub string) context.Context {
	tok, err := b.users.MintUser(auth.UserToken{Subject: sub, Tenant: tenant})
	require.NoError(t, err)
	return bearer(tok)
}

// service is a provider service acting for a user of tenant ("" user: the gateway's tenant-less token).
func (b *testBundle) service(t *testing.T, name, tenant, user string) context.Context {
	tok, err := b.svcs.MintService(name, tenant, user, nil)
	require.NoError(t, err)
	return bearer(tok)
}

func ptr[T any](v T) *T { return &v }

// configure saves a complete Google setup for tenant with client A.
func (b *testBundle) configure(t *testing.T, tenant string) {
	t.Helper()
	b.google.AddClient(clientA, secretA)
	_, err := b.instances[0].setup.UpdateGoogleConfig(b.admin(t, tenant), &oauthv1.UpdateGoogleConfigRequest{
		GmailClientId: ptr(clientA), GmailClientSecret: ptr(secretA), ProjectId: ptr(projectA),
		ServiceAccountKeyJson: ptr(serviceAccountKey(t, projectA)),
	})
	require.NoError(t, err)
}

func testLogger() *slog.Logger {
	if os.Getenv("OAUTH_TEST_LOGS") != "" {
		return logging.New(os.Stderr, "debug")
	}
	return logging.Discard()
}
