package service

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2"
	"google.golang.org/api/gmail/v1"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/option"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	maintenancev1 "github.com/algapsa/alga-google/gen/alga/maintenance/v1"
	oauthv1 "github.com/algapsa/alga-google/gen/alga/oauth/v1"
	"github.com/algapsa/alga-google/services/gmail/internal/store"
	"github.com/algapsa/alga-google/services/platform/errs"
	"github.com/algapsa/alga-google/services/platform/googleretry"
	"github.com/algapsa/alga-google/services/platform/grpcclient"
)

// actFor returns a context whose peer calls act for tenant (background work and webhooks, once the
// tenant is known from trusted data).
func actFor(ctx context.Context, tenant string) context.Context {
	return grpcclient.ActFor(ctx, "gmail", tenant, "")
}

// tenantHash names a tenant's Pub/Sub resources without exposing the tenant id.
func tenantHash(tenant string) string {
	h := sha256.Sum256([]byte("alga-gmail:" + tenant))
	return hex.EncodeToString(h[:8])
}

// tokenProblem is an OAuth connection that cannot give a working access token: the provider goes to
// ERROR with the oauth service's message and remedy (a transient one is retried instead).
type tokenProblem struct {
	code, message, remedy string
	class                 maintenancev1.FailureClass
}

func (p *tokenProblem) Error() string { return p.code + ": " + p.message }

func (p *tokenProblem) transient() bool {
	return p.class == maintenancev1.FailureClass_FAILURE_CLASS_TRANSIENT
}

// The failure class of each connection status the oauth service reports for a broken grant.
var connectionClass = map[oauthv1.ConnectionStatus]maintenancev1.FailureClass{
	oauthv1.ConnectionStatus_CONNECTION_STATUS_REVOKED:         maintenancev1.FailureClass_FAILURE_CLASS_REVOKED,
	oauthv1.ConnectionStatus_CONNECTION_STATUS_EXPIRED_TESTING: maintenancev1.FailureClass_FAILURE_CLASS_TESTING_EXPIRY,
	oauthv1.ConnectionStatus_CONNECTION_STATUS_REAUTH_REQUIRED: maintenancev1.FailureClass_FAILURE_CLASS_INVALID_RAPT,
	oauthv1.ConnectionStatus_CONNECTION_STATUS_CLIENT_INVALID:  maintenancev1.FailureClass_FAILURE_CLASS_CLIENT_REPLACED,
	oauthv1.ConnectionStatus_CONNECTION_STATUS_TRANSIENT_ERROR: maintenancev1.FailureClass_FAILURE_CLASS_TRANSIENT,
}

// accessToken gets an access token for a provider's connection; force makes the oauth service refresh
// it at Google even when the cached one looks valid (Google answered 401 with it). A failure is a
// *tokenProblem classified from the oauth service's answer (or the context's error).
func (s *Service) accessToken(ctx context.Context, tenant, providerID string, force bool) (*oauthv1.GetAccessTokenResponse, error) {
	ctx = actFor(ctx, tenant)
	resp, err := s.peers.Tokens.GetAccessToken(ctx, &oauthv1.GetAccessTokenRequest{
		Kind: oauthv1.ProviderKind_PROVIDER_KIND_GMAIL, ProviderId: providerID, MinValiditySeconds: 300, ForceRefresh: force,
	})
	if err == nil {
		return resp, nil
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return nil, s.classifyToken(ctx, providerID, err)
}

// classifyToken turns the oauth service's GetAccessToken error into a tokenProblem: by its ErrorInfo
// reason (GOOGLE_NOT_CONFIGURED; REAUTHORIZATION_REQUIRED with the connection's status — revoked,
// Testing-mode expiry, reauthentication required (invalid_rapt), client replaced; anything else,
// GOOGLE_UNAVAILABLE included, is transient) and, for a broken grant, the connection's own message and
// remedy.
func (s *Service) classifyToken(ctx context.Context, providerID string, err error) *tokenProblem {
	st, _ := status.FromError(err)
	switch reason := errs.ReasonOf(err); {
	case reason == "GOOGLE_NOT_CONFIGURED":
		return &tokenProblem{code: "google_not_configured", message: st.Message(), class: maintenancev1.FailureClass_FAILURE_CLASS_NOT_CONFIGURED,
			remedy: "Complete the Google setup in Settings → Integrations → Communication → Google."}
	case reason == "REAUTHORIZATION_REQUIRED" || st.Code() == codes.FailedPrecondition || st.Code() == codes.NotFound:
		p := &tokenProblem{code: "reauthorization_required", message: st.Message(), class: maintenancev1.FailureClass_FAILURE_CLASS_PERMANENT,
			remedy: "Reconnect the mailbox (Connect) to authorize Google again."}
		connStatus := oauthv1.ConnectionStatus(oauthv1.ConnectionStatus_value[errorMeta(err, "status")])
		if c, cerr := s.peers.Tokens.GetConnection(ctx, &oauthv1.GetConnectionRequest{
			Kind: oauthv1.ProviderKind_PROVIDER_KIND_GMAIL, ProviderId: providerID}); cerr == nil && c.GetConnection() != nil {
			conn := c.GetConnection()
			if connStatus == oauthv1.ConnectionStatus_CONNECTION_STATUS_UNSPECIFIED {
				connStatus = conn.GetStatus()
			}
			if conn.GetStatusMessage() != "" {
				p.message = conn.GetStatusMessage()
			}
			if conn.GetRemedy() != "" {
				p.remedy = conn.GetRemedy()
			}
		}
		switch connStatus {
		case oauthv1.ConnectionStatus_CONNECTION_STATUS_UNSPECIFIED, oauthv1.ConnectionStatus_CONNECTION_STATUS_CONNECTED:
		default:
			p.code = statusCode(connStatus)
			if c, ok := connectionClass[connStatus]; ok {
				p.class = c
			}
		}
		p.class = oauthClass(err, p.class)
		return p
	}
	p := &tokenProblem{code: "token_unavailable", message: "Cannot get an access token for the mailbox", class: maintenancev1.FailureClass_FAILURE_CLASS_TRANSIENT,
		remedy: "No action needed unless this persists: it is retried automatically (or Refresh the mailbox in a minute)."}
	if st.Message() != "" {
		p.message += ": " + st.Message()
	}
	p.message += "."
	if connStatus := oauthv1.ConnectionStatus(oauthv1.ConnectionStatus_value[errorMeta(err, "status")]); connStatus == oauthv1.ConnectionStatus_CONNECTION_STATUS_TRANSIENT_ERROR {
		p.code = statusCode(connStatus) // Google's token endpoint failed: the code oauth records for it
	}
	p.class = oauthClass(err, p.class)
	return p
}

// statusCode is the error code of a connection status, the one the oauth service reports too
// ("token_revoked", "token_expired_testing", "token_reauth_required", "token_client_invalid", …).
func statusCode(st oauthv1.ConnectionStatus) string {
	return "token_" + strings.TrimPrefix(strings.ToLower(st.String()), "connection_status_")
}

// oauthClass is the failure class the oauth service put in its ErrorInfo ("failure_class"), else def.
func oauthClass(err error, def maintenancev1.FailureClass) maintenancev1.FailureClass {
	if c, ok := maintenancev1.FailureClass_value[errorMeta(err, "failure_class")]; ok && c != 0 {
		return maintenancev1.FailureClass(c)
	}
	return def
}

// errorMeta returns a metadata value of a status error's ErrorInfo.
func errorMeta(err error, key string) string {
	st, ok := status.FromError(err)
	if !ok {
		return ""
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info.GetMetadata()[key]
		}
	}
	return ""
}

// ---- Google call counting ----

type callCounterKey struct{}

// callCounter counts the Google API requests made under a context: each attempt of a retried call,
// the service account's token fetch, and a forced refresh of the mailbox's access token.
type callCounter struct{ n atomic.Int32 }

func (c *callCounter) count() int32 { return c.n.Load() }

// countCalls returns a context whose Google requests are counted by the returned counter.
func countCalls(ctx context.Context) (context.Context, *callCounter) {
	c := &callCounter{}
	return context.WithValue(ctx, callCounterKey{}, c), c
}

// countCall counts one Google request made under ctx (nothing when nobody counts).
func countCall(ctx context.Context) {
	if c, ok := ctx.Value(callCounterKey{}).(*callCounter); ok {
		c.n.Add(1)
	}
}

// countingTransport counts every HTTP request it sends to Google.
type countingTransport struct{ base http.RoundTripper }

func (t countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	countCall(r.Context())
	return t.base.RoundTrip(r)
}

// countingInterceptor counts every gRPC request (Pub/Sub, IAM) sent to Google.
func countingInterceptor(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	countCall(ctx)
	return invoker(ctx, method, req, reply, cc, opts...)
}

// transport is the HTTP transport toward Google (the configured client's, else the default).
func (s *Service) transport() http.RoundTripper {
	if base := s.google.HTTPClient; base != nil && base.Transport != nil {
		return base.Transport
	}
	return http.DefaultTransport
}

// gmailService builds a Gmail API client authorized with token.
func (s *Service) gmailService(ctx context.Context, token string) (*gmail.Service, error) {
	client := &http.Client{
		Timeout: 60 * time.Second,
		Transport: &oauth2.Transport{Source: oauth2.StaticTokenSource(&oauth2.Token{AccessToken: token}),
			Base: countingTransport{base: s.transport()}},
	}
	opts := append(s.google.GmailOptions(), option.WithHTTPClient(client))
	return gmail.NewService(ctx, opts...)
}

// ---- the mailbox's Gmail client ----

// mailbox is a Gmail client for one provider's connection. A Google 401 with the cached access token
// (a grant revoked, or the token invalidated, before it expired) forces one refresh at the oauth
// service: a failed refresh is the classified tokenProblem, a successful one retries the call once.
type mailbox struct {
	s         *Service
	p         *store.Provider
	gm        *gmail.Service
	account   string
	refreshed bool
}

// openMailbox gets the connection's access token (a *tokenProblem when it cannot) and a client with it.
func (s *Service) openMailbox(ctx context.Context, p *store.Provider) (*mailbox, error) {
	tok, err := s.accessToken(ctx, p.Tenant, p.ID, false)
	if err != nil {
		return nil, err
	}
	gm, err := s.gmailService(ctx, tok.GetAccessToken())
	if err != nil {
		return nil, err
	}
	return &mailbox{s: s, p: p, gm: gm, account: tok.GetAccountEmail()}, nil
}

// do is call on an unnamed endpoint class (see call).
func (m *mailbox) do(ctx context.Context, attempts int, call func(gm *gmail.Service) error) error {
	return m.call(ctx, "api", attempts, call)
}

// call runs call through the service's Google retrier (transient failures retried, attempts requests at
// most, on the tenant's budget; endpoint labels the metrics); on a 401 it forces a token refresh once
// and, when that works, runs call once more with the new token.
func (m *mailbox) call(ctx context.Context, endpoint string, attempts int, call func(gm *gmail.Service) error) error {
	c := googleretry.Call{Tenant: m.p.Tenant, Endpoint: endpoint, Attempts: attempts}
	err := m.s.retry.Do(ctx, c, func() error { return call(m.gm) })
	if !isHTTP(err, http.StatusUnauthorized) {
		return err
	}
	if m.refreshed {
		return m.rejected()
	}
	m.refreshed = true
	// The forced refresh is a request to Google's token endpoint, made by the oauth service for this call.
	countCall(ctx)
	m.s.log.InfoContext(ctx, "gmail: Google answered 401 with the cached access token; forcing a refresh", "provider", m.p.ID)
	tok, err := m.s.accessToken(ctx, m.p.Tenant, m.p.ID, true)
	if err != nil {
		return err
	}
	if m.gm, err = m.s.gmailService(ctx, tok.GetAccessToken()); err != nil {
		return err
	}
	err = m.s.retry.Do(ctx, c, func() error { return call(m.gm) })
	if isHTTP(err, http.StatusUnauthorized) {
		return m.rejected()
	}
	return err
}

// rejected is Google refusing even a freshly refreshed access token.
func (m *mailbox) rejected() *tokenProblem {
	return &tokenProblem{code: "token_rejected", class: maintenancev1.FailureClass_FAILURE_CLASS_PERMANENT,
		message: "Google rejected a freshly refreshed access token for " + m.p.Mailbox + " (HTTP 401).",
		remedy:  "Reconnect the mailbox (Connect) and approve every requested permission."}
}

// googleMessage describes a Google API failure without its raw body: the HTTP status and Google's
// message, or the transport error.
func googleMessage(err error) string {
	var gerr *googleapi.Error
	if errors.As(err, &gerr) {
		if gerr.Message != "" {
			return fmt.Sprintf("HTTP %d: %s", gerr.Code, gerr.Message)
		}
		return fmt.Sprintf("HTTP %d", gerr.Code)
	}
	return err.Error()
}

// retryable reports a Google failure worth retrying later: 429, 5xx, network errors, a tenant cooling
// down (googleretry.Transient).
func retryable(err error) bool { return googleretry.Transient(err) }

// isHTTP reports a Google API error with the given HTTP status.
func isHTTP(err error, code int) bool {
	var gerr *googleapi.Error
	return errors.As(err, &gerr) && gerr.Code == code
}

// decodeRaw decodes Gmail's base64url raw message (padded or not).
func decodeRaw(raw string) ([]byte, error) {
	raw = strings.TrimRight(raw, "=")
	if b, err := base64.RawURLEncoding.DecodeString(raw); err == nil {
		return b, nil
	}
	return base64.RawStdEncoding.DecodeString(raw)
}
