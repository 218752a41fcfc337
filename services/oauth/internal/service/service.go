// Package service implements the oauth target's three gRPC services: GoogleSetupService (the tenant's
// Google setup), OAuthFlowService (authorization-code flows with the tenant's own OAuth client) and
// TokenService (custody and refresh of the tokens). Credentials and tokens live in the secrets service;
// the oauth schema keeps the use-same-app flag, pending states, connections and their timelines.
package service

import (
	"context"
	"hash/fnv"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc"

	calendarv1 "github.com/algapsa/alga-google/gen/alga/calendar/v1"
	gmailv1 "github.com/algapsa/alga-google/gen/alga/gmail/v1"
	oauthv1 "github.com/algapsa/alga-google/gen/alga/oauth/v1"
	secretsv1 "github.com/algapsa/alga-google/gen/alga/secrets/v1"
	"github.com/algapsa/alga-google/services/platform/auth"
	"github.com/algapsa/alga-google/services/platform/errs"
	"github.com/algapsa/alga-google/services/platform/googleapi"
	"github.com/algapsa/alga-google/services/platform/urls"
)

// ServiceName is how the oauth service names itself in the service tokens of its peer calls.
const ServiceName = "oauth"

// Scopes each kind asks for.
var (
	GmailScopes    = []string{"https://www.googleapis.com/auth/gmail.readonly", "https://www.googleapis.com/auth/pubsub"}
	CalendarScopes = []string{"https://www.googleapis.com/auth/calendar"}
)

// Timing defaults.
const (
	StateTTL            = 10 * time.Minute
	DefaultMinValidity  = 5 * time.Minute
	refreshAttempts     = 3
	maxConcurrentLocked = 4
)

// Options build a Service.
type Options struct {
	Pool     *pgxpool.Pool
	Secrets  grpc.ClientConnInterface
	Gmail    grpc.ClientConnInterface
	Calendar grpc.ClientConnInterface
	Base     urls.Base
	// BaseURL is the configured ALGA_BASE_URL as given (Test configuration compares it with Base).
	BaseURL string
	// UIBaseURL is where OAuth callbacks send the browser (default Base).
	UIBaseURL string
	Google    googleapi.Endpoints
	Logger    *slog.Logger
	// Now is the clock (tests inject one); default time.Now.
	Now func() time.Time
	// RetryBackoff is the first pause between refresh attempts after a transient failure (default 250ms).
	RetryBackoff time.Duration
}

// Service holds the dependencies of the three gRPC services.
type Service struct {
	pool      *pgxpool.Pool
	secrets   secretsv1.SecretsServiceClient
	gmail     gmailv1.GmailProviderServiceClient
	calendar  calendarv1.CalendarProviderServiceClient
	base      urls.Base
	baseURL   string
	uiBase    string
	google    googleapi.Endpoints
	http      *http.Client
	log       *slog.Logger
	now       func() time.Time
	backoff   time.Duration
	stripes   [64]chan struct{}
	lockSlots chan struct{}
}

// New returns a Service.
func New(o Options) *Service {
	s := &Service{
		pool: o.Pool, base: o.Base, baseURL: o.BaseURL, google: o.Google, log: o.Logger, now: o.Now, backoff: o.RetryBackoff,
		secrets:   secretsv1.NewSecretsServiceClient(o.Secrets),
		lockSlots: make(chan struct{}, maxConcurrentLocked),
	}
	if o.Gmail != nil {
		s.gmail = gmailv1.NewGmailProviderServiceClient(o.Gmail)
	}
	if o.Calendar != nil {
		s.calendar = calendarv1.NewCalendarProviderServiceClient(o.Calendar)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.backoff == 0 {
		s.backoff = 250 * time.Millisecond
	}
	s.uiBase = strings.TrimRight(o.UIBaseURL, "/")
	if s.uiBase == "" {
		s.uiBase = o.Base.String()
	}
	s.http = o.Google.HTTPClient
	if s.http == nil {
		s.http = &http.Client{Timeout: 20 * time.Second}
	}
	for i := range s.stripes {
		s.stripes[i] = make(chan struct{}, 1)
	}
	return s
}

// Holder lets the gRPC services be registered before the Service exists (targets register before the
// server starts serving and get their dependencies in Start). Until Set, calls answer Unavailable.
type Holder struct{ p atomic.Pointer[Service] }

// Set installs the Service.
func (h *Holder) Set(s *Service) { h.p.Store(s) }

func (h *Holder) get() (*Service, error) {
	if s := h.p.Load(); s != nil {
		return s, nil
	}
	return nil, errs.Unavailable("STARTING", "the oauth service is starting; retry shortly")
}

// Register registers the three gRPC services on srv, backed by whatever h holds.
func Register(srv *grpc.Server, h *Holder) {
	oauthv1.RegisterGoogleSetupServiceServer(srv, setupServer{h: h})
	oauthv1.RegisterOAuthFlowServiceServer(srv, flowServer{h: h})
	oauthv1.RegisterTokenServiceServer(srv, tokenServer{h: h})
}

type setupServer struct {
	oauthv1.UnimplementedGoogleSetupServiceServer
	h *Holder
}

func (x setupServer) GetGoogleConfig(ctx context.Context, r *oauthv1.GetGoogleConfigRequest) (*oauthv1.GetGoogleConfigResponse, error) {
	s, err := x.h.get()
	if err != nil {
		return nil, err
	}
	return s.GetGoogleConfig(ctx, r)
}

func (x setupServer) UpdateGoogleConfig(ctx context.Context, r *oauthv1.UpdateGoogleConfigRequest) (*oauthv1.UpdateGoogleConfigResponse, error) {
	s, err := x.h.get()
	if err != nil {
		return nil, err
	}
	return s.UpdateGoogleConfig(ctx, r)
}

func (x setupServer) TestGoogleConfig(ctx context.Context, r *oauthv1.TestGoogleConfigRequest) (*oauthv1.TestGoogleConfigResponse, error) {
	s, err := x.h.get()
	if err != nil {
		return nil, err
	}
	return s.TestGoogleConfig(ctx, r)
}

func (x setupServer) ResetGoogleProviders(ctx context.Context, r *oauthv1.ResetGoogleProvidersRequest) (*oauthv1.ResetGoogleProvidersResponse, error) {
	s, err := x.h.get()
	if err != nil {
		return nil, err
	}
	return s.ResetGoogleProviders(ctx, r)
}

type flowServer struct {
	oauthv1.UnimplementedOAuthFlowServiceServer
	h *Holder
}

func (x flowServer) BeginAuthorization(ctx context.Context, r *oauthv1.BeginAuthorizationRequest) (*oauthv1.BeginAuthorizationResponse, error) {
	s, err := x.h.get()
	if err != nil {
		return nil, err
	}
	return s.BeginAuthorization(ctx, r)
}

func (x flowServer) CompleteAuthorization(ctx context.Context, r *oauthv1.CompleteAuthorizationRequest) (*oauthv1.CompleteAuthorizationResponse, error) {
	s, err := x.h.get()
	if err != nil {
		return nil, err
	}
	return s.CompleteAuthorization(ctx, r)
}

type tokenServer struct {
	oauthv1.UnimplementedTokenServiceServer
	h *Holder
}

func (x tokenServer) GetAccessToken(ctx context.Context, r *oauthv1.GetAccessTokenRequest) (*oauthv1.GetAccessTokenResponse, error) {
	s, err := x.h.get()
	if err != nil {
		return nil, err
	}
	return s.GetAccessToken(ctx, r)
}

func (x tokenServer) GetConnection(ctx context.Context, r *oauthv1.GetConnectionRequest) (*oauthv1.GetConnectionResponse, error) {
	s, err := x.h.get()
	if err != nil {
		return nil, err
	}
	return s.GetConnection(ctx, r)
}

func (x tokenServer) DeleteConnection(ctx context.Context, r *oauthv1.DeleteConnectionRequest) (*oauthv1.DeleteConnectionResponse, error) {
	s, err := x.h.get()
	if err != nil {
		return nil, err
	}
	return s.DeleteConnection(ctx, r)
}

func (x tokenServer) ListConnections(ctx context.Context, r *oauthv1.ListConnectionsRequest) (*oauthv1.ListConnectionsResponse, error) {
	s, err := x.h.get()
	if err != nil {
		return nil, err
	}
	return s.ListConnections(ctx, r)
}

// caller returns the verified identity of a request, which must carry a tenant.
func caller(ctx context.Context) (auth.Identity, error) {
	id, ok := auth.FromContext(ctx)
	if !ok {
		return auth.Identity{}, errs.Unauthenticated("a bearer token is required")
	}
	if id.Tenant == "" {
		return auth.Identity{}, errs.PermissionDenied("the token carries no tenant")
	}
	return id, nil
}

// admin returns the identity of a caller allowed to change the Google setup.
func admin(ctx context.Context) (auth.Identity, error) {
	id, err := caller(ctx)
	if err != nil {
		return id, err
	}
	if !id.IsService() && !id.Has(auth.PermSystemSettingsUpdate) {
		return id, errs.PermissionDenied("changing, testing or resetting the Google setup requires the %s permission", auth.PermSystemSettingsUpdate)
	}
	return id, nil
}

func actor(id auth.Identity) string {
	if id.IsService() {
		if id.Subject != "" {
			return id.Service + " for " + id.Subject
		}
		return id.Service
	}
	return id.Subject
}

// Kind names used in the schema.
const (
	kindGmail    = "gmail"
	kindCalendar = "calendar"
)

func kindName(k oauthv1.ProviderKind) string {
	if k == oauthv1.ProviderKind_PROVIDER_KIND_CALENDAR {
		return kindCalendar
	}
	return kindGmail
}

func kindEnum(k string) oauthv1.ProviderKind {
	if k == kindCalendar {
		return oauthv1.ProviderKind_PROVIDER_KIND_CALENDAR
	}
	return oauthv1.ProviderKind_PROVIDER_KIND_GMAIL
}

func scopesFor(kind string) []string {
	if kind == kindCalendar {
		return CalendarScopes
	}
	return GmailScopes
}

func (s *Service) redirectURI(kind string) string {
	if kind == kindCalendar {
		return s.base.CalendarRedirectURI()
	}
	return s.base.GmailRedirectURI()
}

// lockStripe serializes work on one key within this process (the row lock does it across replicas; this
// keeps waiters from each holding a database connection).
func (s *Service) lockStripe(ctx context.Context, key string) (func(), error) {
	h := fnv.New32a()
	h.Write([]byte(key))
	ch := s.stripes[h.Sum32()%uint32(len(s.stripes))]
	select {
	case ch <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case s.lockSlots <- struct{}{}:
	case <-ctx.Done():
		<-ch
		return nil, ctx.Err()
	}
	return func() { <-s.lockSlots; <-ch }, nil
}
