package service_test

import (
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	oauthv1 "github.com/algapsa/alga-google/gen/alga/oauth/v1"
)

const (
	gmailKind    = oauthv1.ProviderKind_PROVIDER_KIND_GMAIL
	calendarKind = oauthv1.ProviderKind_PROVIDER_KIND_CALENDAR
)

type begun struct {
	url, state, binding string
}

func (b *testBundle) begin(t *testing.T, tenant, user string, kind oauthv1.ProviderKind, provider, hint string) begun {
	t.Helper()
	resp, err := b.instances[0].flow.BeginAuthorization(b.service(t, "gmail", tenant, user),
		&oauthv1.BeginAuthorizationRequest{Kind: kind, ProviderId: provider, LoginHint: hint})
	require.NoError(t, err)
	u, err := url.Parse(resp.AuthorizationUrl)
	require.NoError(t, err)
	return begun{url: resp.AuthorizationUrl, state: u.Query().Get("state"), binding: resp.BrowserBinding}
}

func (b *testBundle) callback(t *testing.T, kind oauthv1.ProviderKind, state, code, binding string) *oauthv1.CompleteAuthorizationResponse {
	t.Helper()
	resp, err := b.instances[0].flow.CompleteAuthorization(b.service(t, "gateway", "", ""),
		&oauthv1.CompleteAuthorizationRequest{CallbackKind: kind, State: state, Code: code, BrowserBinding: binding})
	require.NoError(t, err)
	return resp
}

// connect runs a whole flow and returns the callback status.
func (b *testBundle) connect(t *testing.T, tenant, user string, kind oauthv1.ProviderKind, provider, email string) string {
	t.Helper()
	bg := b.begin(t, tenant, user, kind, provider, email)
	code, _, err := b.google.Approve(bg.url, email, "")
	require.NoError(t, err)
	return b.callback(t, kind, bg.state, code, bg.binding).Status
}

func TestGmailFlowConnects(t *testing.T) {
	t.Parallel()
	b := setup(t, 1, "")
	b.configure(t, "tenant-a")
	b.gmail.AddProvider("tenant-a", p1, "Support@Acme.test")

	bg := b.begin(t, "tenant-a", "u1", gmailKind, p1, "support@acme.test")
	u, _ := url.Parse(bg.url)
	q := u.Query()
	require.Equal(t, b.google.URL()+"/o/oauth2/v2/auth", u.Scheme+"://"+u.Host+u.Path)
	require.Equal(t, clientA, q.Get("client_id"))
	require.Equal(t, baseURL+"/api/auth/google/callback", q.Get("redirect_uri"))
	require.Equal(t, "offline", q.Get("access_type"))
	require.Equal(t, "consent", q.Get("prompt"))
	require.Equal(t, "S256", q.Get("code_challenge_method"))
	require.Equal(t, "support@acme.test", q.Get("login_hint"))
	require.Equal(t, "true", q.Get("include_granted_scopes"))
	require.Equal(t, "https://www.googleapis.com/auth/gmail.readonly https://www.googleapis.com/auth/pubsub", q.Get("scope"))
	require.NotEmpty(t, bg.binding)

	// Nothing of the state, binding or verifier is stored in plain text.
	var rows int
	require.NoError(t, b.pool.QueryRow(t.Context(), `SELECT count(*) FROM oauth.auth_states
		WHERE position(convert_to($1, 'UTF8') in state_hash) = 0 AND position(convert_to($2, 'UTF8') in binding_hash) = 0`, bg.state, bg.binding).Scan(&rows))
	require.Equal(t, 1, rows)

	code, _, err := b.google.Approve(bg.url, "support@acme.test", "")
	require.NoError(t, err)
	resp := b.callback(t, gmailKind, bg.state, code, bg.binding)
	require.Equal(t, "connected", resp.Status)
	require.Equal(t, baseURL+"/settings/integrations/google?google_oauth=connected&provider="+p1, resp.RedirectUrl)
	require.Equal(t, []string{"tenant-a/" + p1 + "/support@acme.test"}, b.gmail.Activations())

	conn, err := b.instances[0].tokens.GetConnection(b.service(t, "gmail", "tenant-a", ""), &oauthv1.GetConnectionRequest{Kind: gmailKind, ProviderId: p1})
	require.NoError(t, err)
	require.Equal(t, oauthv1.ConnectionStatus_CONNECTION_STATUS_CONNECTED, conn.Connection.Status)
	require.Equal(t, "support@acme.test", conn.Connection.AccountEmail)
	require.Equal(t, "u1", conn.Connection.UserId)
	require.Equal(t, "connected", conn.Connection.Events[0].Type)
	raw, ok := b.secrets.Value("tenant-a", "google_oauth_token_"+conn.Connection.ConnectionId)
	require.True(t, ok, "tokens live in the secrets service")
	var tok map[string]any
	require.NoError(t, json.Unmarshal([]byte(raw), &tok))
	require.NotEmpty(t, tok["refresh_token"])
	require.Equal(t, clientA, tok["client_id"])

	// No token anywhere in the connection row.
	var rowText string
	require.NoError(t, b.pool.QueryRow(t.Context(), "SELECT row_to_json(c)::text FROM oauth.connections c").Scan(&rowText))
	require.NotContains(t, rowText, tok["refresh_token"].(string))
	require.NotContains(t, rowText, tok["access_token"].(string))

	// The access token is served to services.
	at, err := b.instances[0].tokens.GetAccessToken(b.service(t, "gmail", "tenant-a", ""), &oauthv1.GetAccessTokenRequest{Kind: gmailKind, ProviderId: p1})
	require.NoError(t, err)
	require.Equal(t, tok["access_token"], at.AccessToken)
	require.Equal(t, clientA, at.ClientId)
	require.EqualValues(t, 0, b.google.Refreshes.Load(), "a fresh token needs no refresh")

	// Reconnect where Google sends no refresh token: the stored one is kept.
	b.google.OmitRefreshToken(true)
	require.Equal(t, "connected", b.connect(t, "tenant-a", "u1", gmailKind, p1, "support@acme.test"))
	raw2, _ := b.secrets.Value("tenant-a", "google_oauth_token_"+conn.Connection.ConnectionId)
	var tok2 map[string]any
	require.NoError(t, json.Unmarshal([]byte(raw2), &tok2))
	require.Equal(t, tok["refresh_token"], tok2["refresh_token"])
	require.NotEqual(t, tok["access_token"], tok2["access_token"])
}

func TestCalendarFlowWithPeerNotImplemented(t *testing.T) {
	t.Parallel()
	b := setup(t, 1, "")
	b.configure(t, "tenant-a")
	bg := b.begin(t, "tenant-a", "tech-7", calendarKind, cal1, "")
	u, _ := url.Parse(bg.url)
	require.Equal(t, baseURL+"/api/auth/google/calendar/callback", u.Query().Get("redirect_uri"))
	require.Equal(t, "https://www.googleapis.com/auth/calendar", u.Query().Get("scope"))
	require.Equal(t, clientA, u.Query().Get("client_id"), "use-same-app: the Calendar flow uses the Gmail client")
	code, _, err := b.google.Approve(bg.url, "tech@acme.test", "")
	require.NoError(t, err)
	resp := b.callback(t, calendarKind, bg.state, code, bg.binding)
	// The calendar fake answers Unimplemented: reported as a status, not a crash.
	require.Equal(t, "activation_failed", resp.Status)
	require.Equal(t, baseURL+"/settings/integrations/calendar?google_oauth=activation_failed&provider="+cal1, resp.RedirectUrl)
}

func TestCallbackRejections(t *testing.T) {
	t.Parallel()
	b := setup(t, 1, "")
	b.configure(t, "tenant-a")
	b.configure(t, "tenant-b")
	b.gmail.AddProvider("tenant-a", p1, "support@acme.test")
	b.gmail.AddProvider("tenant-b", p1, "help@other.test")
	approve := func(bg begun, email string) string {
		code, _, err := b.google.Approve(bg.url, email, "")
		require.NoError(t, err)
		return code
	}

	t.Run("replayed state", func(t *testing.T) {
		bg := b.begin(t, "tenant-a", "u1", gmailKind, p1, "support@acme.test")
		code := approve(bg, "support@acme.test")
		require.Equal(t, "connected", b.callback(t, gmailKind, bg.state, code, bg.binding).Status)
		require.Equal(t, "state_invalid", b.callback(t, gmailKind, bg.state, code, bg.binding).Status)
	})
	t.Run("unknown or empty state", func(t *testing.T) {
		require.Equal(t, "state_invalid", b.callback(t, gmailKind, "made-up", "c", "b").Status)
		resp := b.callback(t, gmailKind, "", "c", "b")
		require.Equal(t, "state_invalid", resp.Status)
		require.Equal(t, baseURL+"/settings/integrations/google?google_oauth=state_invalid", resp.RedirectUrl)
	})
	t.Run("expired state", func(t *testing.T) {
		bg := b.begin(t, "tenant-a", "u1", gmailKind, p1, "support@acme.test")
		_, err := b.pool.Exec(t.Context(), "UPDATE oauth.auth_states SET expires_at = now() - interval '1 second'")
		require.NoError(t, err)
		require.Equal(t, "state_invalid", b.callback(t, gmailKind, bg.state, approve(bg, "support@acme.test"), bg.binding).Status)
	})
	t.Run("missing or mismatched browser binding", func(t *testing.T) {
		bg := b.begin(t, "tenant-a", "u1", gmailKind, p1, "support@acme.test")
		require.Equal(t, "browser_mismatch", b.callback(t, gmailKind, bg.state, approve(bg, "support@acme.test"), "").Status)
		require.Equal(t, "browser_mismatch", b.callback(t, gmailKind, bg.state, approve(bg, "support@acme.test"), bg.binding+"x").Status)
		// Whoever learned the state could not burn it: the failed attempts consumed nothing, and the browser
		// that began the flow completes it — once.
		require.Equal(t, "connected", b.callback(t, gmailKind, bg.state, approve(bg, "support@acme.test"), bg.binding).Status)
		require.Equal(t, "state_invalid", b.callback(t, gmailKind, bg.state, approve(bg, "support@acme.test"), bg.binding).Status)
	})
	t.Run("state of another tenant or user", func(t *testing.T) {
		victim := b.begin(t, "tenant-a", "u1", gmailKind, p1, "support@acme.test")
		attacker := b.begin(t, "tenant-b", "u9", gmailKind, p1, "help@other.test")
		// The attacker's browser (tenant B's cookie) presents tenant A's state, and vice versa.
		require.Equal(t, "browser_mismatch", b.callback(t, gmailKind, victim.state, approve(victim, "support@acme.test"), attacker.binding).Status)
		other := b.begin(t, "tenant-a", "u2", gmailKind, p1, "support@acme.test")
		require.Equal(t, "browser_mismatch", b.callback(t, gmailKind, attacker.state, approve(attacker, "help@other.test"), other.binding).Status)
	})
	t.Run("callback of the other kind", func(t *testing.T) {
		bg := b.begin(t, "tenant-a", "u1", gmailKind, p1, "support@acme.test")
		require.Equal(t, "state_invalid", b.callback(t, calendarKind, bg.state, approve(bg, "support@acme.test"), bg.binding).Status)
	})
	t.Run("denied", func(t *testing.T) {
		bg := b.begin(t, "tenant-a", "u1", gmailKind, p1, "support@acme.test")
		resp, err := b.instances[0].flow.CompleteAuthorization(b.service(t, "gateway", "", ""),
			&oauthv1.CompleteAuthorizationRequest{CallbackKind: gmailKind, State: bg.state, Error: "access_denied", BrowserBinding: bg.binding})
		require.NoError(t, err)
		require.Equal(t, "denied", resp.Status)
	})
	t.Run("tampered PKCE verifier", func(t *testing.T) {
		bg := b.begin(t, "tenant-a", "u1", gmailKind, p1, "support@acme.test")
		code, _, err := b.google.Approve(bg.url, "support@acme.test", "tampered-challenge-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
		require.NoError(t, err)
		require.Equal(t, "exchange_failed", b.callback(t, gmailKind, bg.state, code, bg.binding).Status)
	})
	t.Run("wrong google account", func(t *testing.T) {
		before := len(b.secrets.Names("tenant-b"))
		bg := b.begin(t, "tenant-b", "u9", gmailKind, p1, "help@other.test")
		require.Equal(t, "wrong_account", b.callback(t, gmailKind, bg.state, approve(bg, "someone.else@other.test"), bg.binding).Status)
		require.Len(t, b.secrets.Names("tenant-b"), before, "no token stored for the wrong account")
		_, err := b.instances[0].tokens.GetConnection(b.service(t, "gmail", "tenant-b", ""), &oauthv1.GetConnectionRequest{Kind: gmailKind, ProviderId: p1})
		require.Equal(t, codes.NotFound, status.Code(err))
	})
	t.Run("credentials deleted meanwhile", func(t *testing.T) {
		bg := b.begin(t, "tenant-a", "u1", gmailKind, p1, "support@acme.test")
		code := approve(bg, "support@acme.test")
		b.secrets.Delete("tenant-a", "google_client_id", "google_client_secret")
		require.Equal(t, "config_missing", b.callback(t, gmailKind, bg.state, code, bg.binding).Status)
	})
	t.Run("client changed meanwhile", func(t *testing.T) {
		b.configure(t, "tenant-a")
		bg := b.begin(t, "tenant-a", "u1", gmailKind, p1, "support@acme.test")
		code := approve(bg, "support@acme.test")
		b.google.AddClient(clientB, secretB)
		_, err := b.instances[0].setup.UpdateGoogleConfig(b.admin(t, "tenant-a"), &oauthv1.UpdateGoogleConfigRequest{GmailClientId: ptr(clientB), GmailClientSecret: ptr(secretB)})
		require.NoError(t, err)
		require.Equal(t, "config_changed", b.callback(t, gmailKind, bg.state, code, bg.binding).Status)
	})
	t.Run("no token in any redirect", func(t *testing.T) {
		b.configure(t, "tenant-a")
		bg := b.begin(t, "tenant-a", "u1", gmailKind, p1, "support@acme.test")
		resp := b.callback(t, gmailKind, bg.state, approve(bg, "support@acme.test"), bg.binding)
		u, _ := url.Parse(resp.RedirectUrl)
		require.ElementsMatch(t, []string{"google_oauth", "provider"}, keys(u.Query()))
		require.False(t, strings.Contains(resp.RedirectUrl, "at-") || strings.Contains(resp.RedirectUrl, "rt-"))
	})
}

func keys(v url.Values) []string {
	var out []string
	for k := range v {
		out = append(out, k)
	}
	return out
}

var _ = context.Background

const (
	p1   = "0b6f5c1e-8a4f-4d57-9a55-2f5c3b1e7a10"
	cal1 = "6a1d2f7e-3c4b-4e5f-8a9b-0c1d2e3f4a5b"
)
