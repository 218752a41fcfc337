// Package gateway is the HTTP edge of the suite: the grpc-gateway mux built from proto/alga/http.yaml,
// the OAuth callbacks, the Google webhooks, the web UI (internal/ui), health, metrics and the OpenAPI
// document.
package gateway

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"

	calendarv1 "github.com/algapsa/alga-google/gen/alga/calendar/v1"
	gmailv1 "github.com/algapsa/alga-google/gen/alga/gmail/v1"
	maintenancev1 "github.com/algapsa/alga-google/gen/alga/maintenance/v1"
	oauthv1 "github.com/algapsa/alga-google/gen/alga/oauth/v1"
	secretsv1 "github.com/algapsa/alga-google/gen/alga/secrets/v1"
	"github.com/algapsa/alga-google/gen/openapi"
	"github.com/algapsa/alga-google/services/gateway/internal/edge"
	"github.com/algapsa/alga-google/services/gateway/internal/ui"
	"github.com/algapsa/alga-google/services/platform/config"
	"github.com/algapsa/alga-google/services/platform/grpcserver"
	"github.com/algapsa/alga-google/services/platform/pg"
	"github.com/algapsa/alga-google/services/platform/target"
	"github.com/algapsa/alga-google/services/platform/urls"
)

// NewTarget returns the gateway target.
func NewTarget() target.Target { return &gatewayTarget{} }

type gatewayTarget struct{}

func (*gatewayTarget) Name() string { return target.Gateway }

// Bind implements target.Target: the gateway reads only the shared settings.
func (*gatewayTarget) Bind(*config.Binder) {}

// Migrations implements target.Target: the gateway owns no schema.
func (*gatewayTarget) Migrations() *pg.Migrations { return nil }

// Register implements target.Target: the gateway serves HTTP only.
func (*gatewayTarget) Register(*grpcserver.Server) {}

// Stop implements target.Target: the routes need nothing stopped (the binary shuts the listener down).
func (*gatewayTarget) Stop(context.Context) error { return nil }

// Start mounts every route on deps.HTTP.
func (*gatewayTarget) Start(ctx context.Context, deps *target.Deps) error {
	g := &gateway{deps: deps}
	mux := runtime.NewServeMux(
		runtime.WithMiddlewares(g.checkInput),
		// A body that does not decode is answered naming the field by its proto path.
		runtime.WithMarshalerOption(runtime.MIMEWildcard, edge.FieldNamingJSON{JSONPb: &runtime.JSONPb{
			MarshalOptions:   protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true},
			UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
		}}),
		runtime.WithIncomingHeaderMatcher(incomingHeader),
		runtime.WithOutgoingHeaderMatcher(outgoingHeader),
		runtime.WithForwardResponseOption(g.forwardResponse),
		runtime.WithErrorHandler(errorHandler),
		runtime.WithRoutingErrorHandler(routingErrorHandler),
	)
	g.mux = mux
	type registration struct {
		peer     string
		register func(context.Context, *runtime.ServeMux, *grpc.ClientConn) error
	}
	regs := []registration{
		{target.Secrets, func(ctx context.Context, m *runtime.ServeMux, c *grpc.ClientConn) error {
			return secretsv1.RegisterSecretsServiceHandler(ctx, m, c)
		}},
		{target.OAuth, func(ctx context.Context, m *runtime.ServeMux, c *grpc.ClientConn) error {
			return oauthv1.RegisterGoogleSetupServiceHandler(ctx, m, c)
		}},
		{target.Gmail, func(ctx context.Context, m *runtime.ServeMux, c *grpc.ClientConn) error {
			return gmailv1.RegisterGmailProviderServiceHandler(ctx, m, c)
		}},
		{target.Calendar, func(ctx context.Context, m *runtime.ServeMux, c *grpc.ClientConn) error {
			return calendarv1.RegisterCalendarProviderServiceHandler(ctx, m, c)
		}},
		{target.Worker, func(ctx context.Context, m *runtime.ServeMux, c *grpc.ClientConn) error {
			return maintenancev1.RegisterMaintenanceServiceHandler(ctx, m, c)
		}},
	}
	for _, r := range regs {
		if !slices.Contains(deps.Upstreams, r.peer) {
			continue
		}
		conn, err := deps.PeerRaw(r.peer)
		if err != nil {
			return err
		}
		if err := r.register(ctx, mux, conn); err != nil {
			return err
		}
	}
	if err := g.mountRaw(mux); err != nil {
		return err
	}
	web, err := ui.New(ui.Options{
		Base: deps.Base.String(), Dev: deps.Config.Dev, Verifier: deps.Verifier, UserSigner: deps.UserSigner,
		CSRFKey: csrfKey(deps.Config.ServiceKey()), Conn: deps.PeerRaw,
		Has:    func(name string) bool { return slices.Contains(deps.Upstreams, name) },
		Logger: deps.Logger.With("component", "ui"),
	})
	if err != nil {
		return err
	}
	// The UI's routes get their body limit too (its forms are small).
	uiMux := http.NewServeMux()
	web.Mount(uiMux)
	deps.HTTP.Handle("/", edge.LimitBodies(bodyLimits, uiMux))
	// The session cookie of the UI becomes the bearer of /api/v1/ calls (writes need its CSRF token).
	// Bodies are limited (and read whole) before anything else sees them.
	h := otelhttp.NewHandler(edge.LimitBodies(bodyLimits, web.APIAuth(mux)), "gateway",
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return r.Method + " " + r.URL.Path }))
	deps.HTTP.Handle("/api/", h)
	deps.HTTP.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("ok\n"))
	})
	deps.HTTP.HandleFunc("GET /readyz", g.readyz)
	deps.HTTP.HandleFunc("GET /api/openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(openapi.Document)
	})
	if deps.Config.Dev {
		deps.HTTP.HandleFunc("GET /dev/token", g.devToken)
	}
	return nil
}

// csrfKey derives the UI's CSRF key from the service key every gateway replica shares.
func csrfKey(serviceKey []byte) []byte {
	m := hmac.New(sha256.New, serviceKey)
	m.Write([]byte("alga-google gateway ui csrf key"))
	return m.Sum(nil)
}

type gateway struct {
	deps *target.Deps
	mux  *runtime.ServeMux
}

// bodyLimits are the largest request bodies per route class (413 above them, naming the limit).
var bodyLimits = []edge.BodyLimit{
	{Prefix: "/api/", Class: "API", Limit: 1 << 20},
	// A Pub/Sub push: the gmail API's own limit on the envelope it verifies.
	{Prefix: urls.GmailWebhookPath, Class: "Gmail push", Limit: gmailv1.MaxPushBody},
	// Calendar notifications carry headers only; the callbacks are GET redirects from Google.
	{Prefix: urls.CalendarWebhookPath, Class: "Calendar notification", Limit: 64 << 10},
	{Prefix: "/api/auth/", Class: "OAuth callback", Limit: 16 << 10},
	// The UI's sign-in and sign-out forms.
	{Prefix: "/", Class: "UI", Limit: 64 << 10},
}

// checkInput refuses malformed path parameters, query parameters, forwarded headers and JSON bodies
// with 400 naming the part (see edge.CheckRequest) before a route's handler puts them into a request.
func (g *gateway) checkInput(next runtime.HandlerFunc) runtime.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request, params map[string]string) {
		err := edge.CheckRequest(r, edge.Request{
			PathParams: params,
			Metadata:   incomingHeader,
			JSONBody:   strings.HasPrefix(r.URL.Path, "/api/v1/"),
		})
		if err != nil {
			_, m := runtime.MarshalerForRequest(g.mux, r)
			runtime.HTTPError(r.Context(), g.mux, m, w, r, err)
			return
		}
		next(w, r, params)
	}
}

// incomingHeader forwards the headers services need as metadata; Authorization is forwarded by default.
func incomingHeader(key string) (string, bool) {
	switch strings.ToLower(key) {
	case "x-request-id", "cookie":
		return strings.ToLower(key), true
	}
	return runtime.DefaultHeaderMatcher(key)
}

// outgoingHeader keeps internal metadata out of HTTP responses.
func outgoingHeader(key string) (string, bool) {
	switch key {
	case "x-request-id":
		return "X-Request-Id", true
	}
	return "", false
}

// readyz answers 200 only when every gRPC target reports SERVING (dependencies ready, migrations applied).
// It is on the public listener, so it names the targets that are not ready and nothing else: why (the
// upstream's error: addresses, causes) goes to the log, and each target's own state is in gRPC health.
func (g *gateway) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	var notReady []string
	for _, name := range g.deps.Upstreams {
		if err := g.checkPeer(ctx, name); err != nil {
			g.deps.Logger.InfoContext(ctx, "readiness: upstream not ready", "target", name, "err", err)
			notReady = append(notReady, name)
		}
	}
	w.Header().Set("Content-Type", "text/plain")
	w.Header().Set("Cache-Control", "no-store")
	if len(notReady) > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("not ready: " + strings.Join(notReady, ", ") + "\n"))
		return
	}
	_, _ = w.Write([]byte("ready\n"))
}
