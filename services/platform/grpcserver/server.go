// Package grpcserver builds the gRPC server every target is served by, with one named interceptor chain:
// otel stats handler → recovery → metrics → logging → start-up gate → auth → validation → recovery →
// error rewrite. Recovery is outermost, so no panic anywhere in the chain (a verifier, a validator)
// ends the process; the inner one keeps a handler's panic an ordinary Internal call that metrics and
// logs record.
// Health says SERVING for a target only after the target reported its dependencies ready.
package grpcserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	"github.com/algapsa/alga-google/services/platform/auth"
	"github.com/algapsa/alga-google/services/platform/errs"
	"github.com/algapsa/alga-google/services/platform/grpctls"
	"github.com/algapsa/alga-google/services/platform/logging"
)

// Options configure a Server.
type Options struct {
	Logger *slog.Logger
	// Verifier checks bearer tokens (an *auth.Verifier).
	Verifier TokenVerifier
	// Registerer receives the gRPC metrics; nil means prometheus.DefaultRegisterer.
	Registerer prometheus.Registerer
	// TLS, when set, serves network listeners over TLS (mutual when it requires client certificates);
	// the in-process listener stays plaintext (grpctls.ServerCredentials).
	TLS *tls.Config
	// Reflection registers the gRPC reflection service (--dev, or explicitly enabled).
	Reflection bool
}

// TokenVerifier verifies a bearer token and returns the identity it carries (*auth.Verifier).
type TokenVerifier interface {
	Verify(ctx context.Context, raw string) (auth.Identity, error)
}

// Server is a grpc.Server plus its health service and the access tables of its methods.
type Server struct {
	GRPC   *grpc.Server
	Health *health.Server
	log    *slog.Logger
	auth   TokenVerifier

	mu     sync.RWMutex
	access map[string]Rule // full method or "/pkg.Service/" prefix
	// debugCalls are methods whose successful calls are logged at Debug (see LogCallsAtDebug).
	debugCalls map[string]bool
	// gated maps a gRPC service name to the target that owns it; notReady lists targets still starting.
	gated    map[string]string
	notReady map[string]bool
}

// Validator is implemented by request messages with hand-written validation (beside the generated code).
type Validator interface{ Validate() error }

// New builds the server and registers health and reflection.
func New(opts Options) *Server {
	s := &Server{log: opts.Logger, auth: opts.Verifier, access: map[string]Rule{}, debugCalls: map[string]bool{}, Health: health.NewServer(),
		gated: map[string]string{}, notReady: map[string]bool{}}
	reg := opts.Registerer
	if reg == nil {
		reg = prometheus.DefaultRegisterer
	}
	metrics := grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram())
	if err := reg.Register(metrics); err != nil {
		s.log.Warn("grpc metrics not registered", "err", err)
	}
	recoveryOpt := recovery.WithRecoveryHandlerContext(func(ctx context.Context, p any) error {
		s.log.ErrorContext(ctx, "panic in handler", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		return status.Error(codes.Internal, "internal error")
	})
	serverOpts := []grpc.ServerOption{grpc.StatsHandler(otelgrpc.NewServerHandler())}
	if opts.TLS != nil {
		serverOpts = append(serverOpts, grpc.Creds(grpctls.ServerCredentials(opts.TLS)))
	}
	s.GRPC = grpc.NewServer(append(serverOpts,
		grpc.ChainUnaryInterceptor(
			recovery.UnaryServerInterceptor(recoveryOpt),
			metrics.UnaryServerInterceptor(),
			s.unaryLogging,
			s.unaryGate,
			s.unaryAuth,
			unaryValidation(s.log),
			recovery.UnaryServerInterceptor(recoveryOpt),
			s.unaryRewrite,
		),
		grpc.ChainStreamInterceptor(
			recovery.StreamServerInterceptor(recoveryOpt),
			metrics.StreamServerInterceptor(),
			s.streamLogging,
			s.streamGate,
			s.streamAuth,
			streamValidation(s.log),
			recovery.StreamServerInterceptor(recoveryOpt),
			s.streamRewrite,
		),
	)...)
	healthpb.RegisterHealthServer(s.GRPC, s.Health)
	if opts.Reflection {
		reflection.Register(s.GRPC)
	}
	metrics.InitializeMetrics(s.GRPC)
	// Nothing is SERVING until its target says it is ready.
	s.Health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	return s
}

// Rule says who may call an RPC: internal users (browsers, through the gateway; the handler still checks
// their permissions and tenant) when Users is set, and the service identities listed (the svc claim of
// a service token, e.g. auth.SvcOAuth). Anyone else gets PermissionDenied from the auth interceptor.
type Rule struct {
	Users    bool
	Services []string
}

// Users is the rule of a browser-facing RPC that the service identities listed may call too.
func Users(services ...string) Rule { return Rule{Users: true, Services: services} }

// Services is the rule of an internal RPC only the service identities listed may call.
func Services(services ...string) Rule { return Rule{Services: services} }

// Allows reports whether the identity may call a method with this rule.
func (r Rule) Allows(id auth.Identity) bool {
	if !id.IsService() {
		return r.Users
	}
	return slices.Contains(r.Services, id.Service)
}

// Access is one target's table of who may call what: full method names
// ("/alga.secrets.v1.SecretsService/GetSecrets") or service prefixes ending in "/"
// ("/alga.gmail.v1.InboundMailService/") to their rule; a full name wins over its service's prefix.
type Access map[string]Rule

// Reasons (ErrorInfo) of the auth interceptor's refusals.
const (
	// ReasonServiceOnly: a user called an RPC only service identities may call.
	ReasonServiceOnly = "SERVICE_ONLY"
	// ReasonCallerNotAllowed: a service identity called an RPC its identity is not listed for.
	ReasonCallerNotAllowed = "CALLER_NOT_ALLOWED"
	// ReasonNoAccessRule: the RPC has no rule at all (every registered RPC must be declared).
	ReasonNoAccessRule = "NO_ACCESS_RULE"
)

// Allow declares a target's access table (call it from Register, beside the registrations it covers).
// An RPC no table declares is refused to everyone, so a new RPC is unreachable until it is declared.
func (s *Server) Allow(table Access) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for m, r := range table {
		s.access[m] = r
	}
}

// LogCallsAtDebug logs the calls of methods that end without an Internal or Unknown error at Debug
// instead of Info: high-volume ingest (a webhook redelivery burst) would otherwise write a line per
// request. Their counts stay in the gRPC metrics.
func (s *Server) LogCallsAtDebug(methods ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range methods {
		s.debugCalls[m] = true
	}
}

// RuleOf returns the rule that applies to a full method name, if any.
func (s *Server) RuleOf(method string) (Rule, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if r, ok := s.access[method]; ok {
		return r, true
	}
	if i := strings.LastIndex(method, "/"); i > 0 {
		r, ok := s.access[method[:i+1]]
		return r, ok
	}
	return Rule{}, false
}

// authorize checks the verified caller against the method's rule.
func (s *Server) authorize(method string, id auth.Identity) error {
	rule, ok := s.RuleOf(method)
	switch {
	case !ok:
		return &errs.Error{Code: codes.PermissionDenied, Reason: ReasonNoAccessRule,
			Message: "this method declares no callers and is available to no one"}
	case rule.Allows(id):
		return nil
	case !id.IsService():
		return &errs.Error{Code: codes.PermissionDenied, Reason: ReasonServiceOnly,
			Message: "this method is available to internal services only"}
	default:
		return &errs.Error{Code: codes.PermissionDenied, Reason: ReasonCallerNotAllowed,
			Message: fmt.Sprintf("the %q service identity may not call this method", id.Service)}
	}
}

// Gate ties the gRPC services (full names like "alga.secrets.v1.SecretsService") to a target that is
// not ready yet: their calls get Unavailable until SetReady(target, true).
func (s *Server) Gate(target string, services ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, svc := range services {
		s.gated[svc] = target
	}
	s.notReady[target] = true
}

// SetReady opens (or closes) the gate of a target's services.
func (s *Server) SetReady(target string, ready bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.notReady[target] = !ready
}

// gateErr refuses calls to a service whose target is still starting.
func (s *Server) gateErr(method string) error {
	svc := strings.TrimPrefix(method, "/")
	if i := strings.Index(svc, "/"); i >= 0 {
		svc = svc[:i]
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if t, ok := s.gated[svc]; ok && s.notReady[t] {
		return status.Error(codes.Unavailable, "the "+t+" service is starting; retry shortly")
	}
	return nil
}

func (s *Server) unaryGate(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if err := s.gateErr(info.FullMethod); err != nil {
		return nil, err
	}
	return h(ctx, req)
}

func (s *Server) streamGate(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	if err := s.gateErr(info.FullMethod); err != nil {
		return err
	}
	return h(srv, ss)
}

func isPublic(method string) bool {
	return strings.HasPrefix(method, "/grpc.health.v1.Health/") || strings.HasPrefix(method, "/grpc.reflection.")
}

// authenticate verifies the bearer token of an incoming call and returns the context carrying the identity.
func (s *Server) authenticate(ctx context.Context, method string) (context.Context, error) {
	if isPublic(method) {
		return ctx, nil
	}
	md, _ := metadata.FromIncomingContext(ctx)
	var raw string
	if v := md.Get("authorization"); len(v) > 0 {
		raw = v[0]
	}
	token, ok := strings.CutPrefix(raw, "Bearer ")
	if !ok {
		token, ok = strings.CutPrefix(raw, "bearer ")
	}
	if !ok || token == "" {
		return nil, errs.Unauthenticated("a bearer token is required")
	}
	id, err := s.auth.Verify(ctx, token)
	if err != nil {
		if errors.Is(err, auth.ErrForbiddenUserType) {
			return nil, errs.PermissionDenied("client users cannot use this service")
		}
		s.log.InfoContext(ctx, "token rejected", "err", err)
		return nil, errs.Unauthenticated("the bearer token is invalid or expired")
	}
	if err := s.authorize(method, id); err != nil {
		s.log.WarnContext(ctx, "call refused", "method", method, "caller_service", id.Service, "tenant", id.Tenant, "err", err)
		return nil, err
	}
	ctx = auth.WithIdentity(ctx, id)
	attrs := []slog.Attr{slog.String("tenant", id.Tenant)}
	if id.IsService() {
		attrs = append(attrs, slog.String("caller_service", id.Service))
	} else {
		attrs = append(attrs, slog.String("user", id.Subject))
	}
	return logging.With(ctx, attrs...), nil
}

func (s *Server) unaryAuth(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	ctx, err := s.authenticate(ctx, info.FullMethod)
	if err != nil {
		return nil, errs.Rewrite(ctx, s.log, err)
	}
	return h(ctx, req)
}

func (s *Server) streamAuth(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	ctx, err := s.authenticate(ss.Context(), info.FullMethod)
	if err != nil {
		return errs.Rewrite(ss.Context(), s.log, err)
	}
	return h(srv, &wrappedStream{ServerStream: ss, ctx: ctx})
}

func unaryValidation(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if err := checkText(req); err != nil {
			return nil, errs.Rewrite(ctx, log, err)
		}
		if v, ok := req.(Validator); ok {
			if err := v.Validate(); err != nil {
				return nil, errs.Rewrite(ctx, log, err)
			}
		}
		return h(ctx, req)
	}
}

// streamValidation validates a server-streaming call's request, which grpc-go hands the handler only
// when it calls RecvMsg: the wrapped stream validates each message it receives, so a stream handler
// never sees an invalid request (and never validates by hand).
func streamValidation(log *slog.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		return h(srv, &validatingStream{ServerStream: ss, log: log})
	}
}

type validatingStream struct {
	grpc.ServerStream
	log *slog.Logger
}

func (v *validatingStream) RecvMsg(m any) error {
	if err := v.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	if err := checkText(m); err != nil {
		return errs.Rewrite(v.Context(), v.log, err)
	}
	if val, ok := m.(Validator); ok {
		if err := val.Validate(); err != nil {
			return errs.Rewrite(v.Context(), v.log, err)
		}
	}
	return nil
}

func (s *Server) unaryRewrite(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	resp, err := h(ctx, req)
	return resp, errs.Rewrite(ctx, s.log, err)
}

func (s *Server) streamRewrite(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	return errs.Rewrite(ss.Context(), s.log, h(srv, ss))
}

func requestContext(ctx context.Context, method string) context.Context {
	md, _ := metadata.FromIncomingContext(ctx)
	rid := ""
	if v := md.Get("x-request-id"); len(v) > 0 && len(v[0]) <= 128 {
		rid = v[0]
	}
	if rid == "" {
		rid = uuid.NewString()
	}
	_ = grpc.SetHeader(ctx, metadata.Pairs("x-request-id", rid))
	return logging.With(ctx, slog.String("request_id", rid), slog.String("method", method))
}

func (s *Server) unaryLogging(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	ctx = requestContext(ctx, info.FullMethod)
	start := time.Now()
	resp, err := h(ctx, req)
	s.logDone(ctx, info.FullMethod, start, err)
	return resp, err
}

func (s *Server) streamLogging(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	ctx := requestContext(ss.Context(), info.FullMethod)
	start := time.Now()
	err := h(srv, &wrappedStream{ServerStream: ss, ctx: ctx})
	s.logDone(ctx, info.FullMethod, start, err)
	return err
}

func (s *Server) logDone(ctx context.Context, method string, start time.Time, err error) {
	if isPublic(method) {
		return
	}
	code := status.Code(err)
	level := slog.LevelInfo
	if code == codes.Internal || code == codes.Unknown {
		level = slog.LevelError
	} else {
		s.mu.RLock()
		if s.debugCalls[method] {
			level = slog.LevelDebug
		}
		s.mu.RUnlock()
	}
	if !s.log.Enabled(ctx, level) {
		return
	}
	s.log.Log(ctx, level, "grpc call", "code", code.String(), "duration_ms", time.Since(start).Milliseconds())
}

type wrappedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (w *wrappedStream) Context() context.Context { return w.ctx }
