package service_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	secretsv1 "github.com/algapsa/alga-google/gen/alga/secrets/v1"
	"github.com/algapsa/alga-google/services/platform/auth"
	"github.com/algapsa/alga-google/services/platform/config"
	"github.com/algapsa/alga-google/services/platform/grpcserver"
	"github.com/algapsa/alga-google/services/platform/logging"
	"github.com/algapsa/alga-google/services/platform/pgtest"
	"github.com/algapsa/alga-google/services/platform/target"
	"github.com/algapsa/alga-google/services/secrets"
)

const (
	authKey  = "secrets-test-hs256-key-0123456789abcdef"
	svcKey   = "secrets-test-service-key-0123456789abcd"
	issuer   = "alga-psa"
	svcIss   = "alga-google"
	audience = "alga-google"
)

// syncBuffer collects the service's logs so tests can scan them for planted values.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type testBundle struct {
	pool   *pgxpool.Pool
	dbURL  string
	kek    []byte
	client secretsv1.SecretsServiceClient
	users  *auth.Signer
	svcs   *auth.Signer
	logs   *syncBuffer
}

func newKey(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, 32)
	_, err := rand.Read(k)
	require.NoError(t, err)
	return k
}

// setup starts the secrets target (Postgres backend) on a fresh database behind the platform's real
// gRPC server, so authentication and validation interceptors run on every call.
func setup(t *testing.T) *testBundle {
	t.Helper()
	pool, dbURL := pgtest.NewPool(t)
	require.NoError(t, secrets.NewTarget().Migrations().Apply(context.Background(), pool))
	b := &testBundle{pool: pool, dbURL: dbURL, kek: newKey(t), logs: &syncBuffer{}}
	b.client = b.serve(t, secrets.Config{KEKBase64: b64(b.kek), KEKID: "kek-1", Backend: "postgres"})
	var err error
	b.users, err = auth.NewSigner([]byte(authKey), issuer, audience)
	require.NoError(t, err)
	b.svcs, err = auth.NewSigner([]byte(svcKey), svcIss, audience)
	require.NoError(t, err)
	return b
}

// b64 is how a key is written in the secrets settings.
func b64(key []byte) string { return base64.StdEncoding.EncodeToString(key) }

// serve starts another secrets server on the bundle's database with cfg and returns a client.
func (b *testBundle) serve(t *testing.T, cfg secrets.Config) secretsv1.SecretsServiceClient {
	t.Helper()
	client, err := b.tryServe(t, cfg)
	require.NoError(t, err)
	return client
}

// tryServe registers and starts a secrets target as the binary does, then serves it.
func (b *testBundle) tryServe(t *testing.T, cfg secrets.Config) (secretsv1.SecretsServiceClient, error) {
	t.Helper()
	log := logging.New(b.logs, "debug")
	v, err := auth.NewVerifier(auth.VerifierConfig{HS256Key: []byte(authKey), ServiceKey: []byte(svcKey), Issuer: issuer, Audience: audience, ServiceIssuer: svcIss})
	require.NoError(t, err)
	srv := grpcserver.New(grpcserver.Options{Logger: log, Verifier: v, Registerer: prometheus.NewRegistry()})
	deps := &target.Deps{Config: config.Config{}, Logger: log, Pool: b.pool, Server: srv}
	tgt := secrets.NewTargetWithConfig(cfg)
	tgt.Register(srv)
	if err := tgt.Start(context.Background(), deps); err != nil {
		return nil, err
	}
	lis := bufconn.Listen(1 << 20)
	go func() { _ = srv.GRPC.Serve(lis) }()
	t.Cleanup(srv.GRPC.Stop)
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return secretsv1.NewSecretsServiceClient(conn), nil
}

func withToken(tok string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+tok)
}

// admin is a user of tenant with system_settings:update.
func (b *testBundle) admin(t *testing.T, tenant string) context.Context {
	t.Helper()
	tok, err := b.users.MintUser(auth.UserToken{Subject: "admin-" + tenant, Tenant: tenant, Permissions: []string{auth.PermSystemSettingsUpdate}})
	require.NoError(t, err)
	return withToken(tok)
}

// reader is a user of tenant with system_settings:read.
func (b *testBundle) reader(t *testing.T, tenant string) context.Context {
	t.Helper()
	tok, err := b.users.MintUser(auth.UserToken{Subject: "reader-" + tenant, Tenant: tenant, Permissions: []string{auth.PermSystemSettingsRead}})
	require.NoError(t, err)
	return withToken(tok)
}

// user is an internal user of tenant without permissions.
func (b *testBundle) user(t *testing.T, tenant string) context.Context {
	t.Helper()
	tok, err := b.users.MintUser(auth.UserToken{Subject: "user-" + tenant, Tenant: tenant})
	require.NoError(t, err)
	return withToken(tok)
}

// service is the oauth service acting for tenant.
func (b *testBundle) service(t *testing.T, tenant string) context.Context {
	t.Helper()
	return b.serviceAs(t, auth.SvcOAuth, tenant)
}

// serviceAs is a service identity acting for tenant.
func (b *testBundle) serviceAs(t *testing.T, identity, tenant string) context.Context {
	t.Helper()
	tok, err := b.svcs.MintService(identity, tenant, "", nil)
	require.NoError(t, err)
	return withToken(tok)
}

func (b *testBundle) put(t *testing.T, tenant string, kv ...string) *secretsv1.PutSecretsResponse {
	t.Helper()
	req := &secretsv1.PutSecretsRequest{}
	for i := 0; i < len(kv); i += 2 {
		req.Writes = append(req.Writes, &secretsv1.SecretWrite{Name: kv[i], Value: kv[i+1]})
	}
	resp, err := b.client.PutSecrets(b.admin(t, tenant), req)
	require.NoError(t, err)
	return resp
}

func (b *testBundle) get(t *testing.T, client secretsv1.SecretsServiceClient, tenant string, names ...string) map[string]string {
	t.Helper()
	resp, err := client.GetSecrets(b.service(t, tenant), &secretsv1.GetSecretsRequest{Names: names})
	require.NoError(t, err)
	out := map[string]string{}
	for _, s := range resp.GetSecrets() {
		out[s.GetName()] = s.GetValue()
	}
	return out
}

func requireCode(t *testing.T, err error, code codes.Code) *status.Status {
	t.Helper()
	require.Error(t, err)
	st, ok := status.FromError(err)
	require.True(t, ok, "not a status error: %v", err)
	require.Equal(t, code, st.Code(), "message: %s", st.Message())
	return st
}

// badField returns the field named by an InvalidArgument status's BadRequest and ErrorInfo details.
func badField(t *testing.T, err error) string {
	t.Helper()
	st := requireCode(t, err, codes.InvalidArgument)
	var field, infoField string
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.BadRequest:
			require.Len(t, d.GetFieldViolations(), 1)
			field = d.GetFieldViolations()[0].GetField()
		case *errdetails.ErrorInfo:
			require.Equal(t, "INVALID_FIELD", d.GetReason())
			infoField = d.GetMetadata()["field"]
		}
	}
	require.Equal(t, field, infoField)
	return field
}

func ctxTimeout(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}
