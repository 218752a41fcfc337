// Package service implements the oauth target's gRPC services: GoogleSetupService (the tenant's Google
// setup), OAuthFlowService (authorization-code flows with the tenant's own OAuth client), TokenService
// (custody and refresh of the tokens), and the two maintenance contracts the oauth target owns:
// TokenUpkeepService (the connections' scheduled refresh) and TenantDirectoryService (which tenants
// have a setup). Credentials and tokens live in the secrets service; the oauth schema keeps the
// use-same-app flag, each tenant's setup state, pending states, connections and their timelines.
package service

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	calendarv1 "github.com/algapsa/alga-google/gen/alga/calendar/v1"
	gmailv1 "github.com/algapsa/alga-google/gen/alga/gmail/v1"
	maintenancev1 "github.com/algapsa/alga-google/gen/alga/maintenance/v1"
	oauthv1 "github.com/algapsa/alga-google/gen/alga/oauth/v1"
	secretsv1 "github.com/algapsa/alga-google/gen/alga/secrets/v1"
	"github.com/algapsa/alga-google/services/platform/auth"
	"github.com/algapsa/alga-google/services/platform/errs"
	"github.com/algapsa/alga-google/services/platform/googleapi"
	"github.com/algapsa/alga-google/services/platform/googleretry"
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

// Deps are what the gRPC services need; the target's Start builds them and hands them over once,
// before the server's start-up gate opens.
type Deps struct {
	Pool     *pgxpool.Pool
	Secrets  grpc.ClientConnInterface
	Gmail    grpc.ClientConnInterface
	Calendar grpc.ClientConnInterface
	// Schedules reaches the worker's MaintenanceScheduleService when the Temporal runner keeps a
	// schedule per tenant (nil otherwise: River lists the configured tenants at every run).
	Schedules grpc.ClientConnInterface
	Base      urls.Base
	// BaseURL is the configured ALGA_BASE_URL as given (Test configuration compares it with Base).
	BaseURL string
	// UIBaseURL is where OAuth callbacks send the browser (default Base).
	UIBaseURL string
	Google    googleapi.Endpoints
	Logger    *slog.Logger
	// Now is the clock (tests inject one); default time.Now.
	Now func() time.Time
	// Retry retries the token endpoint's transient failures on each tenant's budget (nil: googleretry's
	// defaults with the token-error classification of classifyTokenError, no metrics; see NewRetrier).
	Retry *googleretry.Retrier
}

// Service is the oauth target's gRPC implementations, built by New over one shared core (the
// dependencies and the in-process refresh locks). Register registers these very values.
type Service struct {
	Setup     *Setup
	Flow      *Flow
	Tokens    *Tokens
	Upkeep    *Upkeep
	Directory *Directory
	core      *core
}

// Setup implements GoogleSetupService (setup.go, probe.go).
type Setup struct {
	oauthv1.UnimplementedGoogleSetupServiceServer
	*core
}

// Flow implements OAuthFlowService (flow.go).
type Flow struct {
	oauthv1.UnimplementedOAuthFlowServiceServer
	*core
}

// Tokens implements TokenService (tokens.go).
type Tokens struct {
	oauthv1.UnimplementedTokenServiceServer
	*core
}

// Upkeep implements maintenance's TokenUpkeepService (upkeep.go), over the refresh of tokens.go.
type Upkeep struct {
	maintenancev1.UnimplementedTokenUpkeepServiceServer
	*core
}

// Directory implements maintenance's TenantDirectoryService (directory.go).
type Directory struct {
	maintenancev1.UnimplementedTenantDirectoryServiceServer
	*core
}

// core is what the services share.
type core struct {
	pool      *pgxpool.Pool
	secrets   secretsv1.SecretsServiceClient
	gmail     gmailv1.GmailProviderServiceClient
	calendar  calendarv1.CalendarProviderServiceClient
	schedules maintenancev1.MaintenanceScheduleServiceClient
	base      urls.Base
	baseURL   string
	uiBase    string
	google    googleapi.Endpoints
	http      *http.Client
	log       *slog.Logger
	now       func() time.Time
	retry     *googleretry.Retrier
	keysMu    sync.Mutex
	keys      map[string]*keyLock
	lockSlots chan struct{}
}

// New returns the services, without dependencies (SetDeps).
func New() *Service {
	c := &core{lockSlots: make(chan struct{}, maxConcurrentLocked), keys: map[string]*keyLock{}}
	return &Service{Setup: &Setup{core: c}, Flow: &Flow{core: c}, Tokens: &Tokens{core: c},
		Upkeep: &Upkeep{core: c}, Directory: &Directory{core: c}, core: c}
}

// Register registers the services on srv. Until SetDeps, the server's start-up gate keeps every call
// away from them.
func (s *Service) Register(srv *grpc.Server) {
	oauthv1.RegisterGoogleSetupServiceServer(srv, s.Setup)
	oauthv1.RegisterOAuthFlowServiceServer(srv, s.Flow)
	oauthv1.RegisterTokenServiceServer(srv, s.Tokens)
	maintenancev1.RegisterTokenUpkeepServiceServer(srv, s.Upkeep)
	maintenancev1.RegisterTenantDirectoryServiceServer(srv, s.Directory)
}

// SetDeps hands the services their dependencies. Called once, by the target's Start, before any call
// reaches them (the gate opens after Start returns).
func (s *Service) SetDeps(d Deps) {
	c := s.core
	c.pool, c.base, c.baseURL, c.google, c.log, c.now, c.retry = d.Pool, d.Base, d.BaseURL, d.Google, d.Logger, d.Now, d.Retry
	c.secrets = secretsv1.NewSecretsServiceClient(d.Secrets)
	if d.Gmail != nil {
		c.gmail = gmailv1.NewGmailProviderServiceClient(d.Gmail)
	}
	if d.Calendar != nil {
		c.calendar = calendarv1.NewCalendarProviderServiceClient(d.Calendar)
	}
	if d.Schedules != nil {
		c.schedules = maintenancev1.NewMaintenanceScheduleServiceClient(d.Schedules)
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.retry == nil {
		c.retry = googleretry.Must(RetryOptions(nil))
	}
	c.uiBase = strings.TrimRight(d.UIBaseURL, "/")
	if c.uiBase == "" {
		c.uiBase = d.Base.String()
	}
	c.http = d.Google.HTTPClient
	if c.http == nil {
		c.http = &http.Client{Timeout: 20 * time.Second}
	}
}

// RetryOptions are the options of the service's Google retrier: the token endpoint's failures are
// classified as a refresh classifies them (classifyTokenError: a malformed answer is transient too).
func RetryOptions(reg prometheus.Registerer) googleretry.Options {
	return googleretry.Options{Service: ServiceName, Registerer: reg, Policy: googleretry.Policy{
		Base: 250 * time.Millisecond,
		Transient: func(err error) bool {
			return googleretry.Transient(err) || (!errors.Is(err, context.Canceled) && classifyTokenError(err).transient)
		},
	}}
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

func (s *core) redirectURI(kind string) string {
	if kind == kindCalendar {
		return s.base.CalendarRedirectURI()
	}
	return s.base.GmailRedirectURI()
}

// lockKey serializes work on one key (a connection) within this process — across replicas the row
// lock and the refresh lease do it — so the callers waiting on one connection hold no database
// connection. Every key has its own lock: a slow refresh of one connection delays no other.
func (s *core) lockKey(ctx context.Context, key string) (func(), error) {
	s.keysMu.Lock()
	l := s.keys[key]
	if l == nil {
		l = &keyLock{ch: make(chan struct{}, 1)}
		s.keys[key] = l
	}
	l.refs++
	s.keysMu.Unlock()
	forget := func() {
		s.keysMu.Lock()
		defer s.keysMu.Unlock()
		if l.refs--; l.refs == 0 {
			delete(s.keys, key)
		}
	}
	select {
	case l.ch <- struct{}{}:
	case <-ctx.Done():
		forget()
		return nil, ctx.Err()
	}
	return func() { <-l.ch; forget() }, nil
}

// keyLock is one key's lock and how many callers hold or wait for it.
type keyLock struct {
	ch   chan struct{}
	refs int
}

// dbSlot bounds the refresh and delete transactions this process has open at once (each holds a
// database connection) to maxConcurrentLocked, so a burst of refreshes leaves the pool to the rest.
// A transaction is short: the request to Google's token endpoint is made outside it.
func (s *core) dbSlot(ctx context.Context) (func(), error) {
	select {
	case s.lockSlots <- struct{}{}:
		return func() { <-s.lockSlots }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
