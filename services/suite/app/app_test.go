package app_test

import (
	"context"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	secretsv1 "github.com/algapsa/alga-google/gen/alga/secrets/v1"

	"github.com/algapsa/alga-google/services/platform/auth"
	"github.com/algapsa/alga-google/services/platform/config"
	"github.com/algapsa/alga-google/services/platform/errs"
	"github.com/algapsa/alga-google/services/platform/grpcserver"
	"github.com/algapsa/alga-google/services/platform/logging"
	"github.com/algapsa/alga-google/services/platform/pg"
	"github.com/algapsa/alga-google/services/platform/pgtest"
	"github.com/algapsa/alga-google/services/suite/app"
)

const userKey = "app-test-user-key-0123456789abcdef0"

type testBundle struct {
	app     *app.App
	dbURL   string
	base    string
	metrics string
	health  healthpb.HealthClient
	token   string
}

func setup(t *testing.T, migrateOnStart bool) testBundle {
	t.Helper()
	dbURL := pgtest.NewDatabase(t)
	httpLis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	grpcLis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	metricsLis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	cfg := config.Config{
		DatabaseURL: dbURL, BaseURL: "http://" + httpLis.Addr().String(), Dev: true,
		AuthHS256Key: userKey, AuthIssuer: "alga-psa", AuthAudience: "alga-google",
	}
	built, err := app.NewTargetsWith(map[string]string{
		"secrets-kek":    base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef")),
		"secrets-kek-id": "k1", "secrets-backend": "postgres",
	})
	require.NoError(t, err)
	a, err := app.Start(context.Background(), app.Options{
		Config: cfg, Targets: app.Select(built, []string{"secrets", "gateway"}), Logger: logging.Discard(),
		GRPCListener: grpcLis, HTTPListener: httpLis, MetricsListener: metricsLis, MigrateOnStart: migrateOnStart,
	})
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = a.Shutdown(ctx)
	})
	conn, err := grpc.NewClient(a.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	signer, err := auth.NewSigner([]byte(userKey), "alga-psa", "alga-google")
	require.NoError(t, err)
	tok, err := signer.MintUser(auth.UserToken{Subject: "admin", Tenant: "t1", Permissions: []string{auth.PermSystemSettingsUpdate}})
	require.NoError(t, err)
	return testBundle{app: a, dbURL: dbURL, base: cfg.BaseURL, metrics: "http://" + a.MetricsAddr(), health: healthpb.NewHealthClient(conn), token: tok}
}

func get(t *testing.T, url, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestReadyOnlyAfterMigrations(t *testing.T) {
	t.Parallel()
	b := setup(t, false)
	code, _ := get(t, b.base+"/healthz", "")
	require.Equal(t, http.StatusOK, code, "liveness does not depend on the database")

	// Not migrated: /readyz stays 503 and health says NOT_SERVING.
	time.Sleep(300 * time.Millisecond)
	code, body := get(t, b.base+"/readyz", "")
	require.Equal(t, http.StatusServiceUnavailable, code, body)
	require.Equal(t, "not ready: secrets\n", body, "the public listener names the target, never why (that is in the log and gRPC health)")
	resp, err := b.health.Check(context.Background(), &healthpb.HealthCheckRequest{Service: "secrets"})
	require.NoError(t, err)
	require.Equal(t, healthpb.HealthCheckResponse_NOT_SERVING, resp.Status)
	code, _ = get(t, b.base+"/api/v1/secrets", b.token)
	require.Equal(t, http.StatusServiceUnavailable, code, "a starting target answers Unavailable")

	// `alga-google migrate` runs: the targets come up on their own.
	pool, err := pg.Connect(context.Background(), b.dbURL)
	require.NoError(t, err)
	defer pool.Close()
	for _, name := range app.AllTargets {
		if m := app.Registry[name]().Migrations(); m != nil {
			require.NoError(t, m.Apply(context.Background(), pool))
		}
	}
	require.Eventually(t, func() bool {
		code, _ := get(t, b.base+"/readyz", "")
		return code == http.StatusOK
	}, 30*time.Second, 100*time.Millisecond)
	for _, svc := range []string{"", "secrets"} {
		resp, err = b.health.Check(context.Background(), &healthpb.HealthCheckRequest{Service: svc})
		require.NoError(t, err)
		require.Equal(t, healthpb.HealthCheckResponse_SERVING, resp.Status, svc)
	}
}

func TestGatewayAnswersBadInputWith4xx(t *testing.T) {
	t.Parallel()
	b := setup(t, true)
	require.NoError(t, b.app.WaitReady(context.Background()))

	post := func(path, body, token string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, b.base+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(out)
	}
	code, body := post("/api/v1/secrets:batchPut", `{"writes": [`, b.token)
	require.Equal(t, http.StatusBadRequest, code, body)
	code, body = post("/api/v1/secrets:batchPut", `{"writes": [{"name": "../etc/passwd", "value": "x"}]}`, b.token)
	require.Equal(t, http.StatusBadRequest, code, body)
	require.Contains(t, body, "writes[0].name")
	code, body = post("/api/v1/secrets:batchPut", `{"writes": [{"name": "acme_client_secret", "value": "planted-secret-value-123"}]}`, "")
	require.Equal(t, http.StatusUnauthorized, code, body)
	code, body = post("/api/v1/secrets:batchPut", `{"writes": [{"name": "acme_client_secret", "value": "planted-secret-value-123"}]}`, b.token)
	require.Equal(t, http.StatusOK, code, body)
	require.NotContains(t, body, "planted-secret-value")
	// The names the services own are not the generic API's: 403 naming the reason.
	for _, name := range []string{"google_client_secret", "google_service_account_key", "google_oauth_token_x"} {
		code, body = post("/api/v1/secrets:batchPut", `{"writes": [{"name": "`+name+`", "value": "planted-secret-value-123"}]}`, b.token)
		require.Equal(t, http.StatusForbidden, code, body)
		require.Contains(t, body, "RESERVED_SECRET_NAME")
		require.Contains(t, body, "reserved to the oauth service")
		code, body = post("/api/v1/secrets:batchDelete", `{"names": ["`+name+`"]}`, b.token)
		require.Equal(t, http.StatusForbidden, code, body)
	}

	code, body = get(t, b.base+"/api/v1/secrets", b.token)
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, `"acme_client_secret"`)
	require.Contains(t, body, "••••-123", "the last-4 hint of a client secret")
	require.NotContains(t, body, "planted-secret-value")

	req, _ := http.NewRequest(http.MethodDelete, b.base+"/api/v1/secrets", nil)
	req.Header.Set("Authorization", "Bearer "+b.token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)

	code, _ = get(t, b.base+"/api/nope", b.token)
	require.Equal(t, http.StatusNotFound, code)
	code, body = get(t, b.base+"/api/openapi.json", "")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, "/api/v1/google/config:test")
	code, _ = get(t, b.base+"/metrics", "")
	require.Equal(t, http.StatusNotFound, code, "metrics are not on the public listener")
	code, body = get(t, b.metrics+"/metrics", "")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, "grpc_server_handled_total")
}

// The service key is its own: start-up refuses a missing one outside --dev and one equal to the user
// key anywhere; --dev derives a distinct one when none is given.
func TestStartRefusesASharedOrMissingServiceKey(t *testing.T) {
	t.Parallel()
	start := func(cfg config.Config) error {
		cfg.AuthIssuer, cfg.AuthAudience = "alga-psa", "alga-google"
		a, err := app.Start(context.Background(), app.Options{Config: cfg, Logger: logging.Discard()})
		if a != nil {
			_ = a.Shutdown(context.Background())
		}
		return err
	}
	prod := config.Config{BaseURL: "https://helpdesk.example.com", AuthHS256Key: userKey}
	require.ErrorContains(t, start(prod), "ALGA_SERVICE_TOKEN_KEY is required")
	prod.ServiceTokenKey = userKey
	require.ErrorContains(t, start(prod), "must differ from ALGA_AUTH_HS256_KEY")
	dev := config.Config{BaseURL: "http://127.0.0.1:1", AuthHS256Key: userKey, ServiceTokenKey: userKey, Dev: true}
	require.ErrorContains(t, start(dev), "must differ from ALGA_AUTH_HS256_KEY")

	dev.ServiceTokenKey = ""
	require.NoError(t, dev.CheckServiceKey())
	require.NotEqual(t, []byte(userKey), dev.ServiceKey(), "--dev derives a key of its own")
	require.GreaterOrEqual(t, len(dev.ServiceKey()), 32)
}

// Over the binary's own wiring: a service claim signed with the user key is refused as unauthenticated,
// and the gateway's genuine identity cannot read raw secrets.
func TestUserKeyMintsNoServiceToken(t *testing.T) {
	t.Parallel()
	b := setup(t, true)
	require.NoError(t, b.app.WaitReady(context.Background()))
	conn, err := grpc.NewClient(b.app.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	client := secretsv1.NewSecretsServiceClient(conn)
	call := func(tok string) error {
		ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+tok)
		_, err := client.GetSecrets(ctx, &secretsv1.GetSecretsRequest{Names: []string{"google_client_secret"}})
		return err
	}

	users, err := auth.NewSigner([]byte(userKey), app.ServiceIssuer, "alga-google")
	require.NoError(t, err)
	forged, err := users.MintService(auth.SvcOAuth, "t1", "", nil)
	require.NoError(t, err)
	require.Equal(t, codes.Unauthenticated, status.Code(call(forged)))

	gw, err := b.app.Deps().ServiceSigner.MintService(auth.SvcGateway, "t1", "", nil)
	require.NoError(t, err)
	err = call(gw)
	require.Equal(t, codes.PermissionDenied, status.Code(err))
	require.Equal(t, grpcserver.ReasonCallerNotAllowed, errs.ReasonOf(err))

	ok, err := b.app.Deps().ServiceSigner.MintService(auth.SvcOAuth, "t1", "", nil)
	require.NoError(t, err)
	require.NoError(t, call(ok))
}

// The public HTTP server bounds each connection: a request whose body never arrives is cut off after
// the read timeout, an idle keep-alive connection is closed after the idle timeout; /metrics is served
// on its own listener only.
func TestHTTPServerTimeoutsAndMetricsListener(t *testing.T) {
	t.Parallel()
	httpLis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	metricsLis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	cfg := config.Config{
		BaseURL: "http://" + httpLis.Addr().String(), Dev: true, AuthHS256Key: userKey, AuthIssuer: "alga-psa", AuthAudience: "alga-google",
		HTTPReadTimeout: 300 * time.Millisecond, HTTPIdleTimeout: 300 * time.Millisecond, HTTPWriteTimeout: time.Second,
	}
	built, err := app.NewTargetsWith(nil)
	require.NoError(t, err)
	grpcLis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	a, err := app.Start(context.Background(), app.Options{Config: cfg, Targets: app.Select(built, []string{"gateway"}), Logger: logging.Discard(),
		GRPCListener: grpcLis, HTTPListener: httpLis, MetricsListener: metricsLis})
	require.NoError(t, err)
	t.Cleanup(func() { _ = a.Shutdown(context.Background()) })

	// A request that promises a body and never sends it.
	conn, err := net.Dial("tcp", a.HTTPAddr())
	require.NoError(t, err)
	defer conn.Close()
	_, err = conn.Write([]byte("POST /api/v1/secrets:batchPut HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"))
	require.NoError(t, err)
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(5*time.Second)))
	start := time.Now()
	_, _ = io.ReadAll(conn) // whatever the server answers, it closes the connection
	require.Less(t, time.Since(start), 3*time.Second, "the read timeout ends a stalled request")

	// An idle keep-alive connection is closed by the server.
	idle, err := net.Dial("tcp", a.HTTPAddr())
	require.NoError(t, err)
	defer idle.Close()
	_, err = idle.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"))
	require.NoError(t, err)
	require.NoError(t, idle.SetReadDeadline(time.Now().Add(5*time.Second)))
	start = time.Now()
	rest, _ := io.ReadAll(idle)
	require.Contains(t, string(rest), "200 OK")
	require.Less(t, time.Since(start), 3*time.Second, "the idle timeout closes a keep-alive connection")

	code, _ := get(t, cfg.BaseURL+"/metrics", "")
	require.Equal(t, http.StatusNotFound, code)
	code, body := get(t, "http://"+a.MetricsAddr()+"/metrics", "")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, "go_goroutines")

	// Nothing answers: /readyz names the targets, with no upstream error text.
	code, body = get(t, cfg.BaseURL+"/readyz", "")
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.True(t, strings.HasPrefix(body, "not ready: "), body)
	for _, leak := range []string{"rpc error", "dial", "connection", "desc =", "127.0.0.1", "localhost"} {
		require.NotContains(t, body, leak)
	}
}
