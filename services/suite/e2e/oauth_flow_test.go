package e2e_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/metadata"

	oauthv1 "github.com/algapsa/alga-google/gen/alga/oauth/v1"
	"github.com/algapsa/alga-google/services/googlesandbox"
	"github.com/algapsa/alga-google/services/platform/auth"
	"github.com/algapsa/alga-google/services/platform/target"
	"github.com/algapsa/alga-google/services/suite/app"
	"github.com/algapsa/alga-google/services/suite/harness"
)

// TestOAuthCalendarFlowOverHTTP: save the Google setup over HTTP, begin a Calendar authorization as the
// calendar service would (acting for the user), approve on the sandbox's consent page, come back through
// the gateway's callback with the browser-binding cookie, and find the connection connected with its
// tokens in the secrets service only.
func TestOAuthCalendarFlowOverHTTP(t *testing.T) {
	if app.Registry[target.OAuth] == nil {
		t.Skip("the oauth target is not wired into app.Registry yet")
	}
	s := harness.Start(t, harness.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	admin := s.Sandbox.Admin()
	redirects := []string{s.BaseURL + "/api/auth/google/callback", s.BaseURL + "/api/auth/google/calendar/callback"}
	proj, err := admin.CreateProject(ctx, googlesandbox.CreateProjectRequest{ProjectID: "acme-e2e-1", PublishingStatus: googlesandbox.PublishingProduction, RedirectURIs: redirects})
	require.NoError(t, err)
	key, _, err := admin.CreateServiceAccount(ctx, proj.ProjectID, "alga-pubsub")
	require.NoError(t, err)
	require.NoError(t, admin.CreateTestUser(ctx, "tech@acme.test"))

	// Save over HTTP (PUT /api/v1/google/config) as an admin.
	adminHTTP := s.HTTP(s.UserToken("tenant-e2e", "admin-1", auth.PermSystemSettingsUpdate))
	resp := adminHTTP.Do(t, http.MethodPut, "/api/v1/google/config", map[string]any{
		"gmail_client_id": proj.ClientID, "gmail_client_secret": proj.ClientSecret,
		"project_id": proj.ProjectID, "service_account_key_json": string(key),
	})
	require.Equal(t, 200, resp.Status, resp.Errorf())
	require.NotContains(t, resp.String(), proj.ClientSecret)
	require.Contains(t, resp.String(), "GOOGLE_CONFIG_STATE_CONFIGURED")

	// A user without system_settings:update reads but cannot save, test or reset.
	plain := s.HTTP(s.UserToken("tenant-e2e", "tech-1"))
	require.Equal(t, 200, plain.Do(t, http.MethodGet, "/api/v1/google/config", nil).Status)
	require.Equal(t, 403, plain.Do(t, http.MethodPut, "/api/v1/google/config", map[string]any{"project_id": "other-proj-1"}).Status)
	require.Equal(t, 403, plain.Do(t, http.MethodPost, "/api/v1/google/config:test", map[string]any{}).Status)
	require.Equal(t, 403, plain.Do(t, http.MethodPost, "/api/v1/google/providers:reset", map[string]any{}).Status)

	// Begin as the calendar service acting for the user.
	svcTok, err := s.App.Deps().ServiceSigner.MintService("calendar", "tenant-e2e", "tech-1", nil)
	require.NoError(t, err)
	conn := s.Conn(t)
	flow := oauthv1.NewOAuthFlowServiceClient(conn)
	const provider = "6a1d2f7e-3c4b-4e5f-8a9b-0c1d2e3f4a5b"
	begun, err := flow.BeginAuthorization(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+svcTok),
		&oauthv1.BeginAuthorizationRequest{Kind: oauthv1.ProviderKind_PROVIDER_KIND_CALENDAR, ProviderId: provider, LoginHint: "tech@acme.test"})
	require.NoError(t, err)

	// The browser approves on the sandbox's consent page; the sandbox redirects to our callback.
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	form := url.Values{"account": {"tech@acme.test"}, "decision": {"approve"}}
	consent, err := noFollow.Post(begun.AuthorizationUrl, "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	require.NoError(t, err)
	body, _ := io.ReadAll(consent.Body)
	consent.Body.Close()
	require.Equal(t, http.StatusFound, consent.StatusCode, string(body))
	callback := consent.Header.Get("Location")
	require.True(t, strings.HasPrefix(callback, s.BaseURL+"/api/auth/google/calendar/callback?"), callback)

	// The callback without the cookie is refused; the state is then spent.
	req, _ := http.NewRequest(http.MethodGet, callback, nil)
	req.AddCookie(&http.Cookie{Name: "alga_google_oauth_calendar", Value: begun.BrowserBinding})
	cb, err := noFollow.Do(req)
	require.NoError(t, err)
	cb.Body.Close()
	require.Equal(t, http.StatusFound, cb.StatusCode)
	loc, _ := url.Parse(cb.Header.Get("Location"))
	require.Equal(t, "/settings/integrations/calendar", loc.Path)
	require.Equal(t, provider, loc.Query().Get("provider"))
	require.Contains(t, []string{"connected", "activation_failed", "provider_not_found"}, loc.Query().Get("google_oauth"))
	for _, forbidden := range []string{"access_token", "refresh_token", "code="} {
		require.NotContains(t, cb.Header.Get("Location"), forbidden)
	}

	// Replay of the same callback: state_invalid.
	cb, err = noFollow.Do(req)
	require.NoError(t, err)
	cb.Body.Close()
	loc, _ = url.Parse(cb.Header.Get("Location"))
	require.Equal(t, "state_invalid", loc.Query().Get("google_oauth"))

	// The connection is connected; a token is served to services and is valid at the sandbox.
	readTok, err := s.App.Deps().ServiceSigner.MintService("calendar", "tenant-e2e", "", nil)
	require.NoError(t, err)
	tctx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+readTok)
	tokens := oauthv1.NewTokenServiceClient(conn)
	got, err := tokens.GetConnection(tctx, &oauthv1.GetConnectionRequest{Kind: oauthv1.ProviderKind_PROVIDER_KIND_CALENDAR, ProviderId: provider})
	require.NoError(t, err)
	require.Equal(t, oauthv1.ConnectionStatus_CONNECTION_STATUS_CONNECTED, got.Connection.Status)
	require.Equal(t, "tech@acme.test", got.Connection.AccountEmail)
	at, err := tokens.GetAccessToken(tctx, &oauthv1.GetAccessTokenRequest{Kind: oauthv1.ProviderKind_PROVIDER_KIND_CALENDAR, ProviderId: provider, ForceRefresh: true})
	require.NoError(t, err)
	require.NotEmpty(t, at.AccessToken)

	// The token is stored only through the secrets service (encrypted): not in the oauth schema.
	var n int
	require.NoError(t, s.App.Deps().Pool.QueryRow(ctx,
		"SELECT count(*) FROM oauth.connections c WHERE row_to_json(c)::text LIKE '%' || $1 || '%'", at.AccessToken).Scan(&n))
	require.Zero(t, n)

	// The status over HTTP never carries a planted secret.
	status := plain.Do(t, http.MethodGet, "/api/v1/google/config", nil)
	for _, planted := range []string{proj.ClientSecret, "PRIVATE KEY", at.AccessToken} {
		require.NotContains(t, status.String(), planted)
	}
}
