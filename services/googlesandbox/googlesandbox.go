// Package googlesandbox is a Google-compatible emulator for development, demos, tests and benchmarks:
// OAuth 2.0/OIDC (consent page, token, revoke, userinfo, JWKS), Gmail (gmail/v1), Calendar (calendar/v3),
// Pub/Sub (pstest plus an IAM policy service and a push deliverer with OIDC tokens), and an admin API
// under /sandbox/admin/ to create projects, accounts, mail and events, move the clock and inject faults.
//
// Everything is served on Google's own paths below one root URL (Sandbox.URL), which is what
// ALGA_GOOGLE_API_ROOT points at; Pub/Sub is a gRPC server (Sandbox.PubSubAddr, PUBSUB_EMULATOR_HOST).
package googlesandbox

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/algapsa/alga-google/services/googlesandbox/internal/sandbox"
)

// Options configure a sandbox.
type Options struct {
	// Addr is the HTTP listen address ("127.0.0.1:0" picks a free port).
	Addr string
	// PubSubAddr is the gRPC listen address of Pub/Sub and IAM ("127.0.0.1:0" picks a free port).
	PubSubAddr string
	// Logger receives the sandbox's logs; nil discards them.
	Logger *slog.Logger
	// PublicURL is the root URL to advertise (token_uri in key files, discovery, resourceUri) if it differs
	// from the listener's, e.g. behind a proxy or in a container.
	PublicURL string

	// PushMinBackoff, PushMaxBackoff and PushMaxAttempts bound the retries of Pub/Sub pushes and Calendar
	// channel notifications (defaults 100ms, 5s, 8 attempts; after the last attempt a push is dropped).
	PushMinBackoff  time.Duration
	PushMaxBackoff  time.Duration
	PushMaxAttempts int
	// PushPollInterval is how often push subscriptions are checked for new messages (default 50ms).
	PushPollInterval time.Duration
}

// Sandbox is a running emulator.
type Sandbox struct {
	srv     *sandbox.Server
	http    *http.Server
	ps      *sandbox.PubSub
	url     string
	psAddr  string
	admin   *AdminClient
	closeMu sync.Mutex
	closed  bool
	served  chan struct{}
}

// Start starts the HTTP server and the Pub/Sub gRPC server. Close stops both.
func Start(ctx context.Context, opts Options) (*Sandbox, error) {
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	if opts.PubSubAddr == "" {
		opts.PubSubAddr = "127.0.0.1:0"
	}
	lc := net.ListenConfig{}
	hl, err := lc.Listen(ctx, "tcp", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("sandbox http listen %s: %w", opts.Addr, err)
	}
	pl, err := lc.Listen(ctx, "tcp", opts.PubSubAddr)
	if err != nil {
		_ = hl.Close()
		return nil, fmt.Errorf("sandbox pubsub listen %s: %w", opts.PubSubAddr, err)
	}
	url := strings.TrimRight(opts.PublicURL, "/")
	if url == "" {
		url = "http://" + advertised(hl.Addr())
	}
	srv, err := sandbox.New(sandbox.Config{Logger: opts.Logger, PublicURL: url, PushMinBackoff: opts.PushMinBackoff,
		PushMaxBackoff: opts.PushMaxBackoff, PushMaxAttempts: opts.PushMaxAttempts, PushPollInterval: opts.PushPollInterval})
	if err != nil {
		_ = hl.Close()
		_ = pl.Close()
		return nil, err
	}
	sb := &Sandbox{srv: srv, url: url, psAddr: advertised(pl.Addr()), served: make(chan struct{})}
	sb.http = &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	sb.ps = srv.StartPubSub(pl)
	go func() {
		defer close(sb.served)
		_ = sb.http.Serve(hl)
	}()
	sb.admin = NewAdminClient(url, nil)
	return sb, nil
}

// advertised turns a wildcard listener address into a dialable one.
func advertised(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// URL is the root URL of every Google HTTP API (no trailing slash): ALGA_GOOGLE_API_ROOT.
func (s *Sandbox) URL() string { return s.url }

// PubSubAddr is host:port of the Pub/Sub gRPC server: PUBSUB_EMULATOR_HOST.
func (s *Sandbox) PubSubAddr() string { return s.psAddr }

// Admin returns a client of the admin API.
func (s *Sandbox) Admin() *AdminClient { return s.admin }

// Now is the sandbox clock (wall clock plus every AdvanceClock).
func (s *Sandbox) Now() time.Time { return s.srv.Now() }

// Close stops the servers and waits for background work (pushes in flight are abandoned). Idempotent.
func (s *Sandbox) Close() error {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.http.Shutdown(ctx)
	if err != nil {
		_ = s.http.Close()
	}
	<-s.served
	s.ps.Stop()
	s.srv.Close()
	if errors.Is(err, context.DeadlineExceeded) {
		return nil
	}
	return err
}

// RegisterFlags registers the sandbox's flags on fs and returns the options they fill.
func RegisterFlags(fs *flag.FlagSet) *Options {
	o := &Options{}
	fs.StringVar(&o.Addr, "addr", "127.0.0.1:8085", "HTTP listen address of the Google APIs and the admin API")
	fs.StringVar(&o.PubSubAddr, "pubsub-addr", "127.0.0.1:8086", "gRPC listen address of Pub/Sub and IAM (PUBSUB_EMULATOR_HOST)")
	fs.StringVar(&o.PublicURL, "public-url", "", "root URL to advertise if different from http://ADDR")
	fs.DurationVar(&o.PushMinBackoff, "push-min-backoff", 100*time.Millisecond, "first retry delay of a failed push")
	fs.DurationVar(&o.PushMaxBackoff, "push-max-backoff", 5*time.Second, "longest retry delay of a failed push")
	fs.IntVar(&o.PushMaxAttempts, "push-max-attempts", 8, "attempts per push before it is dropped")
	return o
}

// Main runs the sandbox standalone until ctx is done: `alga-google sandbox [flags]`.
func Main(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("sandbox", flag.ContinueOnError)
	fs.SetOutput(stdout)
	verbose := fs.Bool("v", false, "log every request")
	opts := RegisterFlags(fs)
	fs.Usage = func() {
		fmt.Fprintln(stdout, "Usage: alga-google sandbox [flags]")
		fmt.Fprintln(stdout, "\nRuns the Google sandbox, a Google-compatible emulator.\n\nFlags:")
		fs.PrintDefaults()
		fmt.Fprintln(stdout)
		fmt.Fprint(stdout, AdminAPIHelp)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	opts.Logger = slog.New(slog.NewJSONHandler(stdout, &slog.HandlerOptions{Level: level}))
	sb, err := Start(ctx, *opts)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Google sandbox running\n  ALGA_GOOGLE_API_ROOT=%s\n  PUBSUB_EMULATOR_HOST=%s\n  admin API: %s/sandbox/admin/\n", sb.URL(), sb.PubSubAddr(), sb.URL())
	<-ctx.Done()
	return sb.Close()
}

// AdminAPIHelp describes the admin API (printed by `alga-google sandbox --help`).
const AdminAPIHelp = `Google sandbox admin API (JSON over HTTP, under ROOT/sandbox/admin)

  Projects and accounts
    POST   /projects                              {"projectId","publishingStatus":"testing|production","redirectUris":[...]}
                                                  -> {"projectId","projectNumber","clientId","clientSecret",...}
    POST   /projects/{project}/publishingStatus   {"publishingStatus"}
    POST   /projects/{project}/clients            {"redirectUris":[...]} -> a second OAuth client
    DELETE /clients/{clientId}                    delete an OAuth client (its tokens answer invalid_client)
    POST   /projects/{project}/serviceAccounts    {"name"} -> {"email","clientId","keyId","key":{service-account JSON}}
    POST   /users                                 {"email","name","projects":[...],"secondCalendar":bool}
    GET    /users/{email}

  Gmail
    POST   /users/{email}/messages                {"raw":base64 RFC 822 | "from","to","subject","body", "labelIds","labelNames","date"}
                                                  -> {"id","threadId","historyId","notified"}
    POST   /users/{email}/labels                  {"name"} -> {"id","name","type"}
    GET    /users/{email}/watches                 users.watch state (topic, labels, expiration, calls, stops)
    POST   /users/{email}/expireHistory           make every older startHistoryId answer 404

  Calendar
    POST   /users/{email}/calendars               {"summary"} -> a secondary calendar
    DELETE /users/{email}/calendars/{calendarId}  (channels get not_exists)
    POST   /users/{email}/calendars/{calendarId}/events              Calendar Event JSON -> Event
    PUT    /users/{email}/calendars/{calendarId}/events/{eventId}    Event JSON
    DELETE /users/{email}/calendars/{calendarId}/events/{eventId}    (becomes status "cancelled")
    POST   /users/{email}/calendars/{calendarId}/invalidateSyncTokens (next sync answers 410)
    GET    /channels                              every events.watch channel

  OAuth, clock, faults, observation
    POST   /grants                                {"clientId","scopes":[...],"accounts":[emails]} -> {"grants":[{"email",
                                                   "accessToken","refreshToken","expiresIn","scope","tokenType"}]}: an
                                                   approved offline consent + code exchange per account, without the
                                                   requests (missing accounts become test users; at most 1000)
    POST   /grants/revoke                         {"email","clientId"}
    GET    /clock     POST /clock/advance         {"duration":"168h"}
    GET|POST|DELETE /faults                       {"endpoint","clientId","rate429","rate5xx","status5xx","latency":"250ms",
                                                   "dropNotifications","forceError","times"}
    GET|DELETE /counters                          {"endpoint": n, "endpoint|client_id": n}
    GET|DELETE /deliveries                        push attempts (Pub/Sub and Calendar)
    GET    /pubsub/policy?resource=projects/P/topics/T
    GET    /pubsub/subscription?name=projects/P/subscriptions/S

  Consent page: GET ROOT/o/oauth2/v2/auth?... shows a form that POSTs back to the same URL with the fields
  "account" (the email of a test user) and "decision" ("approve" or "deny").
  Endpoint names for faults and counters are listed in services/googlesandbox/README.md.
`
