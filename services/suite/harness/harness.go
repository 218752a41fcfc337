// Package harness starts the whole suite in-process — every registered target, over real gRPC and HTTP
// listeners, on a fresh PostgreSQL database — against an in-process Google sandbox, for end-to-end tests.
package harness

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/algapsa/alga-google/services/googlesandbox"
	"github.com/algapsa/alga-google/services/maintenance"
	"github.com/algapsa/alga-google/services/platform/auth"
	"github.com/algapsa/alga-google/services/platform/config"
	"github.com/algapsa/alga-google/services/platform/grpctls"
	"github.com/algapsa/alga-google/services/platform/logging"
	"github.com/algapsa/alga-google/services/platform/pgtest"
	"github.com/algapsa/alga-google/services/platform/target"
	"github.com/algapsa/alga-google/services/suite/app"
)

// Options tune a suite under test.
type Options struct {
	// Targets defaults to "all".
	Targets string
	// DatabaseURL reuses a database (e.g. to restart the suite on the same data); default a fresh one.
	DatabaseURL string
	// Sandbox reuses a running sandbox; default a fresh one per suite.
	Sandbox *googlesandbox.Sandbox
	// GoogleAPIRoot and PubSubEmulatorHost point the suite at a sandbox running elsewhere (in the test
	// process that started this suite process, see RunProcess); no sandbox is started then.
	GoogleAPIRoot      string
	PubSubEmulatorHost string
	// Configure adjusts the shared configuration before start.
	Configure func(*config.Config)
	// Settings set the targets' own settings by flag name (e.g. "secrets-kek-id"), over TestSettings.
	Settings map[string]string
	// Logs receives the suite's JSON logs (tests scan them for planted secrets); default discarded.
	Logs io.Writer
	// LogLevel is the level of the suite's logs: default "debug" when Logs is set (a test reading its
	// logs sees everything), "info" when they are discarded, as in production, so that benchmarks and
	// tests do not pay for formatting debug lines nobody reads.
	LogLevel string
	// GRPCListener and HTTPListener are opened by the test when other suites must know the addresses
	// before this one starts (one suite per target, as in a distributed deployment); default 127.0.0.1:0.
	GRPCListener net.Listener
	HTTPListener net.Listener
	// SandboxClock makes the worker's due decisions read the sandbox clock, so AdvanceClock moves time
	// for scheduled maintenance as it does for Google (watch, channel and token expiry); default the
	// wall clock. The other services keep the wall clock (and the database's now()).
	SandboxClock bool
}

// Suite is a running suite.
type Suite struct {
	App         *app.App
	Sandbox     *googlesandbox.Sandbox
	Config      config.Config
	BaseURL     string
	DatabaseURL string
	// MetricsURL is the root of the suite's /metrics listener (apart from the public BaseURL).
	MetricsURL string

	userSigner    *auth.Signer
	serviceSigner *auth.Signer
	t             testing.TB
	stopped       bool
	// grpcAddr is the gRPC address of a suite running in another process (App is nil then).
	grpcAddr string
}

// Start starts a suite and waits until every target is ready; everything stops when the test ends.
func Start(t testing.TB, opts Options) *Suite {
	t.Helper()
	ctx := context.Background()
	sb := opts.Sandbox
	if sb == nil && opts.GoogleAPIRoot == "" {
		var err error
		sb, err = googlesandbox.Start(ctx, googlesandbox.Options{Addr: "127.0.0.1:0", PubSubAddr: "127.0.0.1:0", Logger: logging.Discard()})
		if err != nil {
			t.Fatalf("starting sandbox: %v", err)
		}
		t.Cleanup(func() { _ = sb.Close() })
	}
	dbURL := opts.DatabaseURL
	if dbURL == "" {
		dbURL = pgtest.NewDatabase(t)
	}
	httpLis, grpcLis := opts.HTTPListener, opts.GRPCListener
	if httpLis == nil {
		httpLis = Listen(t)
	}
	if grpcLis == nil {
		grpcLis = Listen(t)
	}
	cfg := TestConfig()
	cfg.DatabaseURL = dbURL
	cfg.BaseURL = "http://" + httpLis.Addr().String()
	cfg.HTTPAddr = httpLis.Addr().String()
	cfg.GRPCAddr = grpcLis.Addr().String()
	if sb != nil {
		cfg.GoogleAPIRoot = sb.URL()
		cfg.PubSubEmulatorHost = sb.PubSubAddr()
	} else {
		cfg.GoogleAPIRoot, cfg.PubSubEmulatorHost = opts.GoogleAPIRoot, opts.PubSubEmulatorHost
	}
	if opts.Configure != nil {
		opts.Configure(&cfg)
	}
	targets := opts.Targets
	if targets == "" {
		targets = "all"
	}
	names, err := app.ExpandTargets(targets)
	if err != nil {
		t.Fatal(err)
	}
	settings := TestSettings()
	for k, v := range opts.Settings {
		settings[k] = v
	}
	built, err := app.NewTargetsWith(settings)
	if err != nil {
		t.Fatal(err)
	}
	if opts.SandboxClock {
		built[target.Worker].(*maintenance.Target).Config().Now = sb.Now
	}
	logw, level := opts.Logs, opts.LogLevel
	if logw == nil {
		logw = io.Discard
	}
	if level == "" {
		level = "debug"
		if opts.Logs == nil {
			level = "info"
		}
	}
	a, err := app.Start(ctx, app.Options{
		Config: cfg, Targets: app.Select(built, names), Logger: logging.New(logw, level),
		GRPCListener: grpcLis, HTTPListener: httpLis, MigrateOnStart: true,
	})
	if err != nil {
		t.Fatalf("starting suite: %v", err)
	}
	s := &Suite{App: a, Sandbox: sb, Config: cfg, BaseURL: cfg.BaseURL, DatabaseURL: dbURL, MetricsURL: "http://" + a.MetricsAddr(), t: t}
	s.userSigner, _ = auth.NewSigner([]byte(cfg.AuthHS256Key), cfg.AuthIssuer, cfg.AuthAudience)
	s.serviceSigner, _ = auth.NewSigner(cfg.ServiceKey(), app.ServiceIssuer, cfg.AuthAudience)
	t.Cleanup(s.Stop)
	rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := a.WaitReady(rctx); err != nil {
		t.Fatal(err)
	}
	return s
}

// Listen opens a loopback listener on a free port.
func Listen(t testing.TB) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// Stop shuts the suite down (idempotent); tests use it to simulate a crash or restart.
func (s *Suite) Stop() {
	if s.stopped || s.App == nil {
		return
	}
	s.stopped = true
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	_ = s.App.Shutdown(ctx)
}

// TestConfig is the configuration every test suite starts from (fixed test keys — the service key its
// own, never the user key — dev mode).
func TestConfig() config.Config {
	return config.Config{
		AuthHS256Key:    "test-user-token-key-0123456789abcdef",
		ServiceTokenKey: "test-service-token-key-0123456789abcdef",
		MetricsAddr:     "127.0.0.1:0",
		AuthIssuer:      "alga-psa",
		AuthAudience:    "alga-google",
		JobRunner:       "river",
		LogLevel:        "debug",
		Dev:             true,
		ShutdownTimeout: 10 * time.Second,
	}
}

// TestSettings are the targets' own settings of a suite under test, by flag name.
func TestSettings() map[string]string {
	return map[string]string{
		"secrets-kek":     base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef")),
		"secrets-kek-id":  "kek-test",
		"secrets-backend": "postgres",
	}
}

// UserToken mints an internal user's token.
func (s *Suite) UserToken(tenant, user string, perms ...string) string {
	tok, err := s.userSigner.MintUser(auth.UserToken{Subject: user, Tenant: tenant, Permissions: perms})
	if err != nil {
		s.t.Fatal(err)
	}
	return tok
}

// ClientUserToken mints a token with user_type=client (refused everywhere).
func (s *Suite) ClientUserToken(tenant, user string, perms ...string) string {
	tok, err := s.userSigner.MintUser(auth.UserToken{Subject: user, Tenant: tenant, Permissions: perms, UserType: auth.UserTypeClient})
	if err != nil {
		s.t.Fatal(err)
	}
	return tok
}

// ServiceToken mints a service token acting for tenant.
func (s *Suite) ServiceToken(service, tenant string) string {
	tok, err := s.serviceSigner.MintService(service, tenant, "", nil)
	if err != nil {
		s.t.Fatal(err)
	}
	return tok
}

// ServiceTokenFor mints a service token acting for a user of tenant (as a provider service does when it
// begins an OAuth flow for the signed-in user).
func (s *Suite) ServiceTokenFor(service, tenant, user string) string {
	tok, err := s.serviceSigner.MintService(service, tenant, user, nil)
	if err != nil {
		s.t.Fatal(err)
	}
	return tok
}

// Conn is a gRPC connection to the suite without a token (add one with WithToken); over mutual TLS, as
// a peer target, when the suite serves gRPC with TLS.
func (s *Suite) Conn(t testing.TB) *grpc.ClientConn {
	t.Helper()
	transport := insecure.NewCredentials()
	peerTLS, err := grpctls.Load(s.Config.GRPCTLSCert, s.Config.GRPCTLSKey, s.Config.GRPCTLSCA)
	if err != nil {
		t.Fatal(err)
	}
	if peerTLS != nil {
		transport = credentials.NewTLS(peerTLS.Client())
	}
	addr := s.grpcAddr
	if s.App != nil {
		addr = s.App.GRPCAddr()
	}
	c, err := grpc.NewClient(addr, grpc.WithTransportCredentials(transport))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// WithToken returns a context whose outgoing gRPC calls carry token.
func WithToken(ctx context.Context, token string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
}

// HTTPClient talks JSON to the gateway with a bearer token and a cookie jar; it never follows redirects.
type HTTPClient struct {
	Base   string
	Token  string
	Client *http.Client
}

// HTTP returns a client for the gateway.
func (s *Suite) HTTP(token string) *HTTPClient {
	jar, _ := cookiejar.New(nil)
	return &HTTPClient{Base: s.BaseURL, Token: token, Client: &http.Client{
		Jar: jar, Timeout: 60 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// Response is a finished HTTP exchange.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into v.
func (r *Response) JSON(v any) error { return json.Unmarshal(r.Body, v) }

// String returns the body.
func (r *Response) String() string { return string(r.Body) }

// Do sends method path with body (a string/[]byte sent as-is, anything else JSON-encoded).
func (c *HTTPClient) Do(t testing.TB, method, path string, body any) *Response {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		buf, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(buf)
	}
	u := path
	if !strings.HasPrefix(path, "http://") && !strings.HasPrefix(path, "https://") {
		u = c.Base + path
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Token != "" && strings.HasPrefix(u, c.Base) {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := c.Client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: data}
}

// Errorf formats a response for assertion messages.
func (r *Response) Errorf() string { return fmt.Sprintf("status %d: %s", r.Status, r.Body) }
