package grpcserver_test

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	secretsv1 "github.com/algapsa/alga-google/gen/alga/secrets/v1"
	"github.com/algapsa/alga-google/services/platform/auth"
	"github.com/algapsa/alga-google/services/platform/errs"
	"github.com/algapsa/alga-google/services/platform/grpcserver"
	"github.com/algapsa/alga-google/services/platform/logging"
)

const (
	key    = "grpcserver-test-key-0123456789abcdef"
	svcKey = "grpcserver-test-service-key-0123456789"
)

// verifier verifies user tokens signed with key and service tokens signed with svcKey.
func verifier(t *testing.T) *auth.Verifier {
	t.Helper()
	v, err := auth.NewVerifier(auth.VerifierConfig{HS256Key: []byte(key), ServiceKey: []byte(svcKey), Issuer: "alga-psa", Audience: "alga-google", ServiceIssuer: "alga-google"})
	require.NoError(t, err)
	return v
}

// probe is a tiny service used to observe the interceptor chain.
type probe struct {
	secretsv1.UnimplementedSecretsServiceServer
}

func (probe) DescribeSecrets(ctx context.Context, _ *secretsv1.DescribeSecretsRequest) (*secretsv1.DescribeSecretsResponse, error) {
	id, _ := auth.FromContext(ctx)
	return &secretsv1.DescribeSecretsResponse{Secrets: []*secretsv1.SecretDescription{{Name: id.Tenant}}}, nil
}

func (probe) PutSecrets(context.Context, *secretsv1.PutSecretsRequest) (*secretsv1.PutSecretsResponse, error) {
	panic("handler bug")
}

func (probe) DeleteSecrets(context.Context, *secretsv1.DeleteSecretsRequest) (*secretsv1.DeleteSecretsResponse, error) {
	return nil, errs.InvalidField("names[0]", "must not be empty")
}

func (probe) GetSecrets(context.Context, *secretsv1.GetSecretsRequest) (*secretsv1.GetSecretsResponse, error) {
	return &secretsv1.GetSecretsResponse{}, nil
}

type testBundle struct {
	srv    *grpcserver.Server
	client secretsv1.SecretsServiceClient
	health healthpb.HealthClient
	users  *auth.Signer
	svcs   *auth.Signer
}

func setup(t *testing.T) testBundle {
	t.Helper()
	return setupLogged(t, logging.Discard())
}

func setupLogged(t *testing.T, log *slog.Logger) testBundle {
	t.Helper()
	srv := grpcserver.New(grpcserver.Options{Logger: log, Verifier: verifier(t), Registerer: prometheus.NewRegistry()})
	secretsv1.RegisterSecretsServiceServer(srv.GRPC, probe{})
	srv.Allow(grpcserver.Access{
		"/alga.secrets.v1.SecretsService/":           grpcserver.Users("oauth"),
		"/alga.secrets.v1.SecretsService/GetSecrets": grpcserver.Services("oauth"),
	})
	conn := serveAndDial(t, srv)
	users, _ := auth.NewSigner([]byte(key), "alga-psa", "alga-google")
	svcs, _ := auth.NewSigner([]byte(svcKey), "alga-google", "alga-google")
	return testBundle{srv: srv, client: secretsv1.NewSecretsServiceClient(conn), health: healthpb.NewHealthClient(conn), users: users, svcs: svcs}
}

func bearer(tok string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+tok)
}

func TestChain(t *testing.T) {
	t.Parallel()
	b := setup(t)
	user, _ := b.users.MintUser(auth.UserToken{Subject: "u", Tenant: "tenant-a"})
	client, _ := b.users.MintUser(auth.UserToken{Subject: "u", Tenant: "tenant-a", UserType: auth.UserTypeClient})
	svc, _ := b.svcs.MintService("oauth", "tenant-a", "", nil)

	_, err := b.client.DescribeSecrets(context.Background(), &secretsv1.DescribeSecretsRequest{})
	require.Equal(t, codes.Unauthenticated, status.Code(err))

	resp, err := b.client.DescribeSecrets(bearer(user), &secretsv1.DescribeSecretsRequest{})
	require.NoError(t, err)
	require.Equal(t, "tenant-a", resp.Secrets[0].Name, "tenant comes from the token")

	_, err = b.client.DescribeSecrets(bearer(client), &secretsv1.DescribeSecretsRequest{})
	require.Equal(t, codes.PermissionDenied, status.Code(err))

	_, err = b.client.GetSecrets(bearer(user), &secretsv1.GetSecretsRequest{})
	require.Equal(t, codes.PermissionDenied, status.Code(err), "service-only method refuses users")
	_, err = b.client.GetSecrets(bearer(svc), &secretsv1.GetSecretsRequest{Names: []string{"google_client_id"}})
	require.NoError(t, err)

	_, err = b.client.PutSecrets(bearer(user), &secretsv1.PutSecretsRequest{Writes: []*secretsv1.SecretWrite{{Name: "a", Value: "b"}}})
	require.Equal(t, codes.Internal, status.Code(err), "a panic becomes Internal, the server survives")
	_, err = b.client.DescribeSecrets(bearer(user), &secretsv1.DescribeSecretsRequest{})
	require.NoError(t, err)

	_, err = b.client.DeleteSecrets(bearer(user), &secretsv1.DeleteSecretsRequest{Names: []string{"ok"}})
	require.Equal(t, codes.InvalidArgument, status.Code(err))
	require.Contains(t, status.Convert(err).Message(), "names[0]")
}

func TestHealthNotServingUntilReady(t *testing.T) {
	t.Parallel()
	b := setup(t)
	resp, err := b.health.Check(context.Background(), &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
	require.Equal(t, healthpb.HealthCheckResponse_NOT_SERVING, resp.Status)
	b.srv.Health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	resp, err = b.health.Check(context.Background(), &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
	require.Equal(t, healthpb.HealthCheckResponse_SERVING, resp.Status)
}

func TestValidationRunsBeforeHandler(t *testing.T) {
	t.Parallel()
	b := setup(t)
	user, _ := b.users.MintUser(auth.UserToken{Subject: "u", Tenant: "tenant-a"})
	_, err := b.client.DeleteSecrets(bearer(user), &secretsv1.DeleteSecretsRequest{Names: []string{"../x"}})
	require.Equal(t, codes.InvalidArgument, status.Code(err))
	require.Contains(t, status.Convert(err).Message(), "names[0]")
}

func TestGatedServiceIsUnavailableUntilReady(t *testing.T) {
	t.Parallel()
	b := setup(t)
	user, _ := b.users.MintUser(auth.UserToken{Subject: "u", Tenant: "tenant-a"})
	b.srv.Gate("secrets", "alga.secrets.v1.SecretsService")
	_, err := b.client.DescribeSecrets(bearer(user), &secretsv1.DescribeSecretsRequest{})
	require.Equal(t, codes.Unavailable, status.Code(err))
	b.srv.SetReady("secrets", true)
	_, err = b.client.DescribeSecrets(bearer(user), &secretsv1.DescribeSecretsRequest{})
	require.NoError(t, err)
}

// Reflection is served only when asked for (--dev, or ALGA_GRPC_REFLECTION): without it a caller needs
// the proto files, as any client of a production deployment has.
func TestReflectionOnlyWhenEnabled(t *testing.T) {
	t.Parallel()
	off := grpcserver.New(grpcserver.Options{Logger: logging.Discard(), Verifier: verifier(t), Registerer: prometheus.NewRegistry()})
	require.NotContains(t, off.GRPC.GetServiceInfo(), "grpc.reflection.v1.ServerReflection")
	on := grpcserver.New(grpcserver.Options{Logger: logging.Discard(), Verifier: verifier(t), Registerer: prometheus.NewRegistry(), Reflection: true})
	require.Contains(t, on.GRPC.GetServiceInfo(), "grpc.reflection.v1.ServerReflection")
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// calls counts the "grpc call" lines of method at level.
func (s *syncBuffer) calls(level, method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, l := range strings.Split(s.b.String(), "\n") {
		if strings.Contains(l, `"level":"`+level+`","msg":"grpc call"`) && strings.Contains(l, `"method":"`+method+`"`) {
			n++
		}
	}
	return n
}

// A method logged at Debug writes no call line at Info, unless it fails with Internal; other methods
// keep theirs.
func TestLogCallsAtDebug(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	b := setupLogged(t, logging.New(&logs, "info"))
	b.srv.LogCallsAtDebug("/alga.secrets.v1.SecretsService/DescribeSecrets", "/alga.secrets.v1.SecretsService/PutSecrets")
	user, _ := b.users.MintUser(auth.UserToken{Subject: "u", Tenant: "tenant-a"})
	for range 3 {
		_, err := b.client.DescribeSecrets(bearer(user), &secretsv1.DescribeSecretsRequest{})
		require.NoError(t, err)
	}
	_, err := b.client.DeleteSecrets(bearer(user), &secretsv1.DeleteSecretsRequest{Names: []string{"ok"}})
	require.Equal(t, codes.InvalidArgument, status.Code(err))
	_, err = b.client.PutSecrets(bearer(user), &secretsv1.PutSecretsRequest{Writes: []*secretsv1.SecretWrite{{Name: "a", Value: "b"}}})
	require.Equal(t, codes.Internal, status.Code(err))
	const svc = "/alga.secrets.v1.SecretsService/"
	require.Zero(t, logs.calls("INFO", svc+"DescribeSecrets")+logs.calls("DEBUG", svc+"DescribeSecrets"), "successful calls at Debug")
	require.Equal(t, 1, logs.calls("INFO", svc+"DeleteSecrets"), "other methods at Info")
	require.Equal(t, 1, logs.calls("ERROR", svc+"PutSecrets"), "an Internal error is still logged")

	var all syncBuffer
	b = setupLogged(t, logging.New(&all, "debug"))
	b.srv.LogCallsAtDebug("/alga.secrets.v1.SecretsService/DescribeSecrets")
	_, err = b.client.DescribeSecrets(bearer(user), &secretsv1.DescribeSecretsRequest{})
	require.NoError(t, err)
	require.Equal(t, 1, all.calls("DEBUG", svc+"DescribeSecrets"))
}

// serveAndDial serves srv on a loopback port for the test and returns a plaintext client connection to it.
func serveAndDial(t *testing.T, srv *grpcserver.Server) *grpc.ClientConn {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = srv.GRPC.Serve(lis) }()
	t.Cleanup(srv.GRPC.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}
