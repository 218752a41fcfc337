package service_test

import (
	"context"
	"net"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	secretsv1 "github.com/algapsa/alga-google/gen/alga/secrets/v1"
	"github.com/algapsa/alga-google/services/platform/auth"
	"github.com/algapsa/alga-google/services/platform/config"
	"github.com/algapsa/alga-google/services/platform/grpcserver"
	"github.com/algapsa/alga-google/services/platform/logging"
	"github.com/algapsa/alga-google/services/platform/target"
	"github.com/algapsa/alga-google/services/secrets"
)

func TestBackendConfig(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, bad := range []string{"vault", "nosuch", "postgres,postgres"} {
		_, err := b.tryServe(t, secrets.Config{Backend: bad, KEKBase64: b64(b.kek)})
		require.Error(t, err, bad)
	}
	_, err := b.tryServe(t, secrets.Config{Backend: "filesystem"})
	require.ErrorContains(t, err, "ALGA_SECRETS_FS_BASE")
}

func TestRotateKEKFromSeveralOldKeys(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := ctxTimeout(t)
	b.put(t, "t1", "a", "value-1")
	// t2's data key is created by a replica already on kek-2.
	k2 := newKey(t)
	c2 := b.serve(t, secrets.Config{KEKBase64: b64(k2), KEKID: "kek-2", KEKPrevious: "kek-1:" + b64(b.kek), Backend: "postgres"})
	_, err := c2.PutSecrets(b.admin(t, "t2"), &secretsv1.PutSecretsRequest{Writes: []*secretsv1.SecretWrite{{Name: "a", Value: "value-2"}}})
	require.NoError(t, err)
	usage, err := secrets.KEKUsage(ctx, b.pool)
	require.NoError(t, err)
	require.Equal(t, map[string]int64{"kek-1": 1, "kek-2": 1}, usage)

	// Missing the old key of one tenant: that tenant is reported, nothing is lost.
	k3 := newKey(t)
	_, err = secrets.RotateKEKFrom(ctx, b.pool, map[string][]byte{"kek-2": k2}, k3, "kek-3", logging.Discard())
	require.ErrorContains(t, err, `"kek-1"`)

	n, err := secrets.RotateKEKFrom(ctx, b.pool, map[string][]byte{"kek-1": b.kek, "kek-2": k2}, k3, "kek-3", logging.Discard())
	require.NoError(t, err)
	require.Equal(t, 2, n)
	c3 := b.serve(t, secrets.Config{KEKBase64: b64(k3), KEKID: "kek-3", Backend: "postgres"})
	require.Equal(t, "value-1", b.get(t, c3, "t1", "a")["a"])
	require.Equal(t, "value-2", b.get(t, c3, "t2", "a")["a"])
}

// The binary registers services before serving (grpc-go refuses later registrations), gates them and
// starts targets afterwards; until Start has finished, calls answer Unavailable.
func TestRegisterBeforeServe(t *testing.T) {
	t.Parallel()
	b := setup(t)
	log := logging.New(b.logs, "debug")
	v, err := auth.NewVerifier(auth.VerifierConfig{HS256Key: []byte(authKey), ServiceKey: []byte(svcKey), Issuer: issuer, Audience: audience, ServiceIssuer: svcIss})
	require.NoError(t, err)
	srv := grpcserver.New(grpcserver.Options{Logger: log, Verifier: v, Registerer: prometheus.NewRegistry()})
	tgt := secrets.NewTargetWithConfig(secrets.Config{KEKBase64: b64(b.kek), KEKID: "kek-1", Backend: "postgres"})
	tgt.Register(srv)

	lis := bufconn.Listen(1 << 20)
	go func() { _ = srv.GRPC.Serve(lis) }()
	t.Cleanup(srv.GRPC.Stop)
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	client := secretsv1.NewSecretsServiceClient(conn)

	// Register itself declares the service-only methods: checked here before the binary's start-up gate
	// (which answers every call Unavailable, ahead of authentication) is put in front of the service.
	_, err = client.GetSecrets(b.admin(t, "t1"), &secretsv1.GetSecretsRequest{Names: []string{"a"}})
	requireCode(t, err, codes.PermissionDenied) // service-only before Start too

	// What the binary does with the services a target registered, until its Start succeeds.
	srv.Gate(target.Secrets, secretsv1.SecretsService_ServiceDesc.ServiceName)
	_, err = client.DescribeSecrets(b.admin(t, "t1"), &secretsv1.DescribeSecretsRequest{})
	requireCode(t, err, codes.Unavailable)

	deps := &target.Deps{Config: config.Config{}, Logger: log, Pool: b.pool, Server: srv}
	require.NoError(t, tgt.Start(context.Background(), deps))
	srv.SetReady(target.Secrets, true)
	b.put(t, "t1", "a", "value-a")
	require.Equal(t, "value-a", b.get(t, client, "t1", "a")["a"])
}
