// Package sandbox implements the Google-compatible emulator: OAuth 2.0/OIDC, Gmail, Calendar, an IAM policy
// service and push delivery for Pub/Sub (pstest), and the admin API. All state lives in memory behind one
// mutex; network I/O (pushes) happens outside it.
package sandbox

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/big"
	"net/http"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/iam/apiv1/iampb"
	"cloud.google.com/go/pubsub/v2/pstest"

	"github.com/algapsa/alga-google/services/googlesandbox/internal/api"
	"github.com/algapsa/alga-google/services/googlesandbox/internal/keys"
)

// Config tunes a sandbox.
type Config struct {
	Logger *slog.Logger
	// PublicURL is the root URL the sandbox advertises (token_uri, discovery, resourceUri).
	PublicURL string
	// Push retry policy for Pub/Sub push deliveries and Calendar channel notifications.
	PushMinBackoff  time.Duration
	PushMaxBackoff  time.Duration
	PushMaxAttempts int
	// PushPollInterval is how often push subscriptions are polled for new messages.
	PushPollInterval time.Duration
	// HTTPClient sends pushes; default a client without a global timeout (each push has its own deadline).
	HTTPClient *http.Client
}

// Durations Google documents.
const (
	AccessTokenLifetime   = time.Hour
	TestingRefreshTTL     = 7 * 24 * time.Hour
	MaxRefreshTokens      = 100
	GmailWatchTTL         = 7 * 24 * time.Hour
	HistoryRetention      = 7 * 24 * time.Hour
	SyncTokenTTL          = 7 * 24 * time.Hour
	ChannelDefaultTTL     = 7 * 24 * time.Hour
	ChannelMaxTTL         = 7 * 24 * time.Hour
	AuthCodeTTL           = 10 * time.Minute
	NotificationInterval  = time.Second
	GmailPushAccount      = "gmail-api-push@system.gserviceaccount.com"
	Issuer                = "https://accounts.google.com"
	defaultPushAckTimeout = 10 * time.Second
)

// Server is one sandbox.
type Server struct {
	cfg Config
	log *slog.Logger

	mu          sync.Mutex
	clockOffset time.Duration

	signKey *rsa.PrivateKey
	signKid string

	projects       map[string]*project
	clients        map[string]*oauthClient
	serviceAccts   map[string]*serviceAccount // by email
	saKeys         map[string]*serviceAccount // by private_key_id
	users          map[string]*user
	codes          map[string]*authCode
	grants         map[grantKey]*grant
	refreshTokens  map[string]*refreshToken
	accessTokens   map[string]*accessToken
	channels       map[string]*channel
	policies       map[string]*iampb.Policy
	policyVersions map[string]int

	faults     []*faultState
	counters   map[string]int64
	deliveries []api.Delivery

	pst *pstest.Server

	bg       context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	queues   *serialQueues
	inflight map[string]bool // pubsub push: subscription|messageID being delivered
}

// New creates a sandbox; call SetPubSub before serving Pub/Sub, and Close when done.
func New(cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.PushMinBackoff <= 0 {
		cfg.PushMinBackoff = 100 * time.Millisecond
	}
	if cfg.PushMaxBackoff <= 0 {
		cfg.PushMaxBackoff = 5 * time.Second
	}
	if cfg.PushMaxAttempts <= 0 {
		cfg.PushMaxAttempts = 8
	}
	if cfg.PushPollInterval <= 0 {
		cfg.PushPollInterval = 50 * time.Millisecond
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	cfg.PublicURL = strings.TrimRight(cfg.PublicURL, "/")
	k, err := keys.Get()
	if err != nil {
		return nil, err
	}
	bg, cancel := context.WithCancel(context.Background())
	s := &Server{
		cfg: cfg, log: cfg.Logger,
		signKey: k, signKid: randHex(20),
		projects: map[string]*project{}, clients: map[string]*oauthClient{},
		serviceAccts: map[string]*serviceAccount{}, saKeys: map[string]*serviceAccount{},
		users: map[string]*user{}, codes: map[string]*authCode{}, grants: map[grantKey]*grant{},
		refreshTokens: map[string]*refreshToken{}, accessTokens: map[string]*accessToken{},
		channels: map[string]*channel{}, policies: map[string]*iampb.Policy{}, policyVersions: map[string]int{},
		counters: map[string]int64{}, inflight: map[string]bool{},
		bg: bg, cancel: cancel,
	}
	s.queues = newSerialQueues(bg, &s.wg)
	return s, nil
}

// SetPublicURL sets the advertised root URL (once the listener is known).
func (s *Server) SetPublicURL(u string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cfg.PublicURL = strings.TrimRight(u, "/")
}

func (s *Server) root() string { return s.cfg.PublicURL }

// Close stops background work (pushes) and waits for it.
func (s *Server) Close() {
	s.cancel()
	s.wg.Wait()
}

// now is the sandbox clock: wall time plus the advanced offset. Caller holds s.mu or accepts a racy read.
func (s *Server) now() time.Time { return time.Now().Add(s.clockOffset) }

// Now returns the sandbox clock.
func (s *Server) Now() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.now()
}

func randHex(n int) string {
	b := make([]byte, (n+1)/2)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)[:n]
}

const lowerAlnum = "abcdefghijklmnopqrstuvwxyz0123456789"

func randString(alphabet string, n int) string {
	out := make([]byte, n)
	max := big.NewInt(int64(len(alphabet)))
	for i := range out {
		v, _ := rand.Int(rand.Reader, max)
		out[i] = alphabet[v.Int64()]
	}
	return string(out)
}

func randDigits(n int) string {
	d := randString("0123456789", n)
	if d[0] == '0' {
		d = "1" + d[1:]
	}
	return d
}

// ---- HTTP helpers ----

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// googleError is the JSON error shape of Google's REST APIs.
type googleError struct {
	Error googleErrorBody `json:"error"`
}

type googleErrorBody struct {
	Code    int               `json:"code"`
	Message string            `json:"message"`
	Errors  []googleErrorItem `json:"errors,omitempty"`
	Status  string            `json:"status,omitempty"`
}

type googleErrorItem struct {
	Message      string `json:"message"`
	Domain       string `json:"domain"`
	Reason       string `json:"reason"`
	Location     string `json:"location,omitempty"`
	LocationType string `json:"locationType,omitempty"`
}

var httpStatusNames = map[int]string{
	400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
	409: "ABORTED", 410: "FAILED_PRECONDITION", 412: "FAILED_PRECONDITION", 429: "RESOURCE_EXHAUSTED",
	500: "INTERNAL", 501: "NOT_IMPLEMENTED", 502: "UNAVAILABLE", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED",
}

// apiError writes Google's REST error body.
func apiError(w http.ResponseWriter, code int, reason, msg string) {
	if code == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="https://accounts.google.com/", error="invalid_token"`)
	}
	item := googleErrorItem{Message: msg, Domain: "global", Reason: reason}
	if code == http.StatusUnauthorized {
		item.Location, item.LocationType = "Authorization", "header"
	}
	writeJSON(w, code, googleError{Error: googleErrorBody{Code: code, Message: msg, Errors: []googleErrorItem{item}, Status: httpStatusNames[code]}})
}

// oauthError writes the OAuth 2.0 error shape of Google's token endpoint.
func oauthError(w http.ResponseWriter, code int, errCode, desc string) {
	writeJSON(w, code, map[string]string{"error": errCode, "error_description": desc})
}

func adminError(w http.ResponseWriter, code int, format string, args ...any) {
	writeJSON(w, code, api.Error{Error: fmt.Sprintf(format, args...)})
}

// ---- serial queues: per-key FIFO work (push notifications of one channel are delivered in order) ----

type serialQueues struct {
	ctx     context.Context
	wg      *sync.WaitGroup
	mu      sync.Mutex
	pending map[string][]func(context.Context)
}

func newSerialQueues(ctx context.Context, wg *sync.WaitGroup) *serialQueues {
	return &serialQueues{ctx: ctx, wg: wg, pending: map[string][]func(context.Context){}}
}

func (q *serialQueues) push(key string, fn func(context.Context)) {
	if q.ctx.Err() != nil {
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	list, running := q.pending[key]
	q.pending[key] = append(list, fn)
	if running {
		return
	}
	q.wg.Add(1)
	go q.run(key)
}

func (q *serialQueues) run(key string) {
	defer q.wg.Done()
	for {
		q.mu.Lock()
		list := q.pending[key]
		if len(list) == 0 || q.ctx.Err() != nil {
			delete(q.pending, key)
			q.mu.Unlock()
			return
		}
		fn := list[0]
		q.pending[key] = list[1:]
		q.mu.Unlock()
		fn(q.ctx)
	}
}

// sleep waits d or until ctx is done; it reports whether the full duration passed.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
