package service

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net"
	"net/http"
	"strings"
	"time"

	"golang.org/x/oauth2"
	"google.golang.org/api/gmail/v1"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/option"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	oauthv1 "github.com/algapsa/alga-google/gen/alga/oauth/v1"
	"github.com/algapsa/alga-google/services/platform/errs"
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

// tokenProblem is an OAuth connection that needs an admin (provider goes to ERROR).
type tokenProblem struct {
	code, message, remedy string
}

func (p *tokenProblem) Error() string { return p.code + ": " + p.message }

// accessToken gets a fresh access token for a provider's connection. A broken grant or missing
// Google setup is a *tokenProblem carrying the oauth service's message and remedy.
func (s *Service) accessToken(ctx context.Context, tenant, providerID string) (*oauthv1.GetAccessTokenResponse, error) {
	ctx = actFor(ctx, tenant)
	resp, err := s.peers.Tokens.GetAccessToken(ctx, &oauthv1.GetAccessTokenRequest{
		Kind: oauthv1.ProviderKind_PROVIDER_KIND_GMAIL, ProviderId: providerID, MinValiditySeconds: 300,
	})
	if err == nil {
		return resp, nil
	}
	st, _ := status.FromError(err)
	switch reason := errs.ReasonOf(err); {
	case reason == "GOOGLE_NOT_CONFIGURED":
		return nil, &tokenProblem{code: "google_not_configured", message: st.Message(),
			remedy: "Complete the Google setup in Settings → Integrations → Communication → Google."}
	case reason == "REAUTHORIZATION_REQUIRED" || st.Code() == codes.FailedPrecondition || st.Code() == codes.NotFound:
		p := &tokenProblem{code: "reauthorization_required", message: st.Message(),
			remedy: "Reconnect the mailbox (Connect) to authorize Google again."}
		if c, cerr := s.peers.Tokens.GetConnection(ctx, &oauthv1.GetConnectionRequest{
			Kind: oauthv1.ProviderKind_PROVIDER_KIND_GMAIL, ProviderId: providerID}); cerr == nil && c.GetConnection() != nil {
			conn := c.GetConnection()
			if code := strings.TrimPrefix(strings.ToLower(conn.GetStatus().String()), "connection_status_"); code != "" && code != "unspecified" && code != "connected" {
				p.code = "token_" + code
			}
			if conn.GetStatusMessage() != "" {
				p.message = conn.GetStatusMessage()
			}
			if conn.GetRemedy() != "" {
				p.remedy = conn.GetRemedy()
			}
		}
		return nil, p
	}
	return nil, err
}

// gmailService builds a Gmail API client authorized with token.
func (s *Service) gmailService(ctx context.Context, token string) (*gmail.Service, error) {
	base := s.google.HTTPClient
	var rt http.RoundTripper = http.DefaultTransport
	if base != nil && base.Transport != nil {
		rt = base.Transport
	}
	client := &http.Client{
		Timeout:   60 * time.Second,
		Transport: &oauth2.Transport{Source: oauth2.StaticTokenSource(&oauth2.Token{AccessToken: token}), Base: rt},
	}
	opts := append(s.google.GmailOptions(), option.WithHTTPClient(client))
	return gmail.NewService(ctx, opts...)
}

// retryable reports a Google failure worth retrying: 429, 5xx, network errors.
func retryable(err error) bool {
	var gerr *googleapi.Error
	if errors.As(err, &gerr) {
		return gerr.Code == http.StatusTooManyRequests || gerr.Code >= 500
	}
	var nerr net.Error
	if errors.As(err, &nerr) {
		return true
	}
	if st, ok := status.FromError(err); ok && err != nil {
		switch st.Code() {
		case codes.Unavailable, codes.ResourceExhausted, codes.Internal, codes.DeadlineExceeded:
			return ctxAlive(err)
		}
	}
	return false
}

func ctxAlive(err error) bool { return !errors.Is(err, context.Canceled) }

// isHTTP reports a Google API error with the given HTTP status.
func isHTTP(err error, code int) bool {
	var gerr *googleapi.Error
	return errors.As(err, &gerr) && gerr.Code == code
}

// withRetry runs f, retrying 429/5xx with exponential backoff (in-call); River retries the job after.
func withRetry(ctx context.Context, attempts int, f func() error) error {
	delay := 200 * time.Millisecond
	var err error
	for i := 0; i < attempts; i++ {
		if err = f(); err == nil || !retryable(err) {
			return err
		}
		if i == attempts-1 {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		delay = min(delay*2, 5*time.Second)
	}
	return err
}

// decodeRaw decodes Gmail's base64url raw message (padded or not).
func decodeRaw(raw string) ([]byte, error) {
	raw = strings.TrimRight(raw, "=")
	if b, err := base64.RawURLEncoding.DecodeString(raw); err == nil {
		return b, nil
	}
	return base64.RawStdEncoding.DecodeString(raw)
}
