package grpcserver_test

import (
	"context"
	"net"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	gmailv1 "github.com/algapsa/alga-google/gen/alga/gmail/v1"
	secretsv1 "github.com/algapsa/alga-google/gen/alga/secrets/v1"
	"github.com/algapsa/alga-google/services/platform/auth"
	"github.com/algapsa/alga-google/services/platform/errs"
	"github.com/algapsa/alga-google/services/platform/grpcserver"
	"github.com/algapsa/alga-google/services/platform/logging"
)

// The access table is enforced by the auth interceptor: each identity reaches only the methods listed
// for it, users only the browser-facing ones, nobody an undeclared one, and a service claim signed with
// the user key is no service token at all.
func TestAccessTable(t *testing.T) {
	t.Parallel()
	srv := grpcserver.New(grpcserver.Options{Logger: logging.Discard(), Verifier: verifier(t), Registerer: prometheus.NewRegistry()})
	secretsv1.RegisterSecretsServiceServer(srv.GRPC, probe{})
	gmailv1.RegisterInboundMailServiceServer(srv.GRPC, gmailv1.UnimplementedInboundMailServiceServer{})
	srv.Allow(grpcserver.Access{
		"/alga.secrets.v1.SecretsService/":                 grpcserver.Users("oauth"),
		secretsv1.SecretsService_GetSecrets_FullMethodName: grpcserver.Services("oauth", "gmail"),
		// InboundMailService is registered and declares nothing.
	})
	lis := bufconn.Listen(1 << 20)
	go func() { _ = srv.GRPC.Serve(lis) }()
	t.Cleanup(srv.GRPC.Stop)
	conn, err := grpc.NewClient("passthrough:///bufnet", grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	client := secretsv1.NewSecretsServiceClient(conn)
	users, _ := auth.NewSigner([]byte(key), "alga-psa", "alga-google")
	svcs, _ := auth.NewSigner([]byte(svcKey), "alga-google", "alga-google")
	as := func(identity string) context.Context {
		tok, err := svcs.MintService(identity, "tenant-a", "", nil)
		require.NoError(t, err)
		return bearer(tok)
	}
	refused := func(err error, code codes.Code, reason string) {
		t.Helper()
		require.Equal(t, code, status.Code(err), "%v", err)
		require.Equal(t, reason, errs.ReasonOf(err))
	}

	get := &secretsv1.GetSecretsRequest{Names: []string{"google_client_id"}}
	_, err = client.GetSecrets(as("oauth"), get)
	require.NoError(t, err)
	_, err = client.GetSecrets(as("gmail"), get)
	require.NoError(t, err)
	_, err = client.GetSecrets(as("gateway"), get)
	refused(err, codes.PermissionDenied, grpcserver.ReasonCallerNotAllowed)
	require.Contains(t, status.Convert(err).Message(), `"gateway"`)

	_, err = client.DescribeSecrets(as("oauth"), &secretsv1.DescribeSecretsRequest{})
	require.NoError(t, err)
	_, err = client.DescribeSecrets(as("gmail"), &secretsv1.DescribeSecretsRequest{})
	refused(err, codes.PermissionDenied, grpcserver.ReasonCallerNotAllowed)

	user, _ := users.MintUser(auth.UserToken{Subject: "u", Tenant: "tenant-a", Permissions: []string{auth.PermSystemSettingsUpdate}})
	_, err = client.DescribeSecrets(bearer(user), &secretsv1.DescribeSecretsRequest{})
	require.NoError(t, err)
	_, err = client.GetSecrets(bearer(user), get)
	refused(err, codes.PermissionDenied, grpcserver.ReasonServiceOnly)

	// A service claim signed with the user key: a forgery, refused before any table is read.
	forged, err := users.MintService("oauth", "tenant-a", "", nil)
	require.NoError(t, err)
	_, err = client.GetSecrets(bearer(forged), get)
	refused(err, codes.Unauthenticated, "UNAUTHENTICATED")

	_, err = gmailv1.NewInboundMailServiceClient(conn).ListInboundMessages(as("platform"), &gmailv1.ListInboundMessagesRequest{})
	refused(err, codes.PermissionDenied, grpcserver.ReasonNoAccessRule)
}
