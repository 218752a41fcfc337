// Package ui is the suite's web UI: Settings → Integrations → Communication → Google, the Gmail
// providers and the Calendar providers pages, served by the gateway. Pages are html/template files
// rendered on the server from the suite's gRPC APIs, called with the signed-in user's own token
// (never a service identity); the little JavaScript in static/app.js writes through the public HTTP API
// (/api/v1/...). Everything — templates, script, style, icon — is embedded in the binary.
//
// Sign-in: the platform's JWT is exchanged (POST /ui/session) for an HttpOnly, SameSite=Strict session
// cookie (Secure when the base URL is https) that the gateway turns into the bearer of API calls; page
// JavaScript never sees the token. Every write made with the cookie must carry the CSRF token of the
// session (X-Alga-CSRF) and come from the suite's own origin. In --dev a sign-in page picks tenant,
// user and permissions and mints the token itself.
package ui

import (
	"context"
	"embed"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"google.golang.org/grpc"

	"github.com/algapsa/alga-google/services/platform/auth"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Paths of the UI.
const (
	GooglePath   = "/settings/integrations/google"
	EmailPath    = "/settings/integrations/email"
	CalendarPath = "/settings/integrations/calendar"
	SignInPath   = "/ui/signin"
	SessionPath  = "/ui/session"
	SignOutPath  = "/ui/signout"
	DevSession   = "/ui/dev/session"
	StaticPrefix = "/ui/static/"
)

// Peer names (the targets the UI reads from).
const (
	PeerOAuth    = "oauth"
	PeerGmail    = "gmail"
	PeerCalendar = "calendar"
	PeerWorker   = "worker"
)

// Options are what the UI needs from the gateway.
type Options struct {
	// Base is the canonical public URL (ALGA_BASE_URL), e.g. "https://alga.example.com".
	Base string
	Dev  bool
	// Verifier checks the platform's JWTs.
	Verifier *auth.Verifier
	// UserSigner mints dev sign-in tokens (--dev only); nil disables the dev sign-in.
	UserSigner *auth.Signer
	// CSRFKey derives the CSRF token of a session; shared by every gateway replica.
	CSRFKey []byte
	// Conn returns a connection to a peer without service credentials (the user's token is added per call).
	Conn func(name string) (*grpc.ClientConn, error)
	// Has reports whether the gateway serves a peer (a target not deployed answers as not available).
	Has    func(name string) bool
	Logger *slog.Logger
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
}

// Server serves the UI.
type Server struct {
	opt       Options
	base      *url.URL
	secure    bool
	pages     map[string]*template.Template
	static    fs.FS
	staticSum string
}

// New builds the UI server (templates are parsed once).
func New(opt Options) (*Server, error) {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.Has == nil {
		opt.Has = func(string) bool { return true }
	}
	base, err := url.Parse(strings.TrimRight(opt.Base, "/"))
	if err != nil {
		return nil, err
	}
	pages, err := parseTemplates()
	if err != nil {
		return nil, err
	}
	sub, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, err
	}
	s := &Server{opt: opt, base: base, secure: base.Scheme == "https", pages: pages, static: sub}
	s.staticSum = staticVersion(sub)
	return s, nil
}

// Mount adds the UI's routes to mux.
func (s *Server) Mount(mux *http.ServeMux) {
	mux.Handle("GET "+StaticPrefix, s.staticHandler())
	mux.HandleFunc("GET /favicon.ico", s.favicon)
	mux.HandleFunc("GET /{$}", s.home)
	mux.HandleFunc("GET /ui/{$}", s.home)
	mux.HandleFunc("GET /ui", s.home)
	mux.HandleFunc("GET /settings/integrations/{$}", s.home)
	mux.HandleFunc("GET "+SignInPath, s.signInPage)
	mux.HandleFunc("POST "+SessionPath, s.createSession)
	mux.HandleFunc("GET "+SessionPath, s.sessionInfo)
	mux.HandleFunc("POST "+SignOutPath, s.signOut)
	if s.opt.Dev {
		mux.HandleFunc("POST "+DevSession, s.devSession)
	}
	mux.Handle("GET "+GooglePath, s.page(s.googlePage))
	mux.Handle("GET "+EmailPath, s.page(s.emailPage))
	mux.Handle("GET "+CalendarPath, s.page(s.calendarPage))
}

// URL returns the UI's entry URL (what `make run` prints).
func URL(base string) string { return strings.TrimRight(base, "/") + GooglePath }

func (s *Server) home(w http.ResponseWriter, r *http.Request) {
	http.Redirect(w, r, GooglePath, http.StatusSeeOther)
}

// conn returns a peer connection, or nil when the peer is not served.
func (s *Server) conn(name string) *grpc.ClientConn {
	if !s.opt.Has(name) || s.opt.Conn == nil {
		return nil
	}
	c, err := s.opt.Conn(name)
	if err != nil {
		s.opt.Logger.Warn("ui: peer unavailable", "peer", name, "err", err)
		return nil
	}
	return c
}

// callCtx bounds a page's gRPC calls.
func callCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, 20*time.Second)
}
