package e2e_test

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	oauthv1 "github.com/algapsa/alga-google/gen/alga/oauth/v1"
	secretsv1 "github.com/algapsa/alga-google/gen/alga/secrets/v1"
	"github.com/algapsa/alga-google/services/oauth/oauthtesting"
	"github.com/algapsa/alga-google/services/suite/harness"
)

// The OAuth end-to-end tests for Gmail connections, against the sandbox's real consent page and token
// endpoint, through the gateway's callback.

// TestOAuthGmailFlowLeaksNoToken: the whole Gmail flow over HTTP; no access or refresh token appears in
// any HTTP response the browser got (bodies and headers), nor in the suite's logs.
func TestOAuthGmailFlowLeaksNoToken(t *testing.T) {
	t.Parallel()
	logs := &syncBuffer{}
	e := newEnv(t, harness.Options{Logs: logs})
	ts := e.setupTenant(t, "tenant-leak", "acme-leak-1", setupOpts{})
	rec := record(ts.adminHTTP)
	e.ensureUser(t, "leak@acme.test")
	p := e.createProvider(t, ts.adminHTTP, "leak@acme.test")
	authURL := e.beginConnect(t, ts.adminHTTP, p.ID)
	u, err := url.Parse(authURL)
	require.NoError(t, err)
	q := u.Query()
	require.Equal(t, "offline", q.Get("access_type"))
	require.Equal(t, "consent", q.Get("prompt"))
	require.Equal(t, "S256", q.Get("code_challenge_method"))
	require.NotEmpty(t, q.Get("code_challenge"))
	require.Equal(t, "leak@acme.test", q.Get("login_hint"))
	require.Equal(t, e.s.BaseURL+"/api/auth/google/callback", q.Get("redirect_uri"))
	require.Equal(t, ts.project.ClientID, q.Get("client_id"))
	require.NotEmpty(t, bindingCookie(ts.adminHTTP), "browser-binding cookie set")
	st, resp := e.callback(t, ts.adminHTTP, e.consent(t, authURL, "leak@acme.test"))
	require.Equal(t, "connected", st)
	require.Empty(t, bindingCookie(ts.adminHTTP), "the binding cookie is single-use")
	loc := resp.Header.Get("Location")
	for _, forbidden := range []string{"code=", "access_token", "refresh_token", "state="} {
		require.NotContains(t, loc, forbidden)
	}
	require.Equal(t, int64(1), e.counter(t, "oauth.token.authorization_code|"+ts.project.ClientID))
	require.Zero(t, e.counter(t, "oauth.token.refresh_token|"+ts.project.ClientID), "the access token is the one from the code exchange")
	for _, path := range []string{"/api/v1/gmail/providers", "/api/v1/gmail/providers/" + p.ID, "/api/v1/gmail/providers/" + p.ID + "/diagnostics",
		"/api/v1/google/config", "/api/v1/secrets"} {
		r := ts.adminHTTP.Do(t, http.MethodGet, path, nil)
		require.Equal(t, http.StatusOK, r.Status, path)
	}
	require.Equal(t, http.StatusOK, ts.adminHTTP.Do(t, http.MethodPost, "/api/v1/google/config:test", map[string]any{}).Status)

	// The tokens the flow produced, as the services see them.
	tok, err := oauthv1.NewTokenServiceClient(e.s.Conn(t)).GetAccessToken(e.svcCtx("gmail", ts.tenant),
		&oauthv1.GetAccessTokenRequest{Kind: oauthv1.ProviderKind_PROVIDER_KIND_GMAIL, ProviderId: p.ID})
	require.NoError(t, err)
	conn := e.connection(t, ts.tenant, p.ID)
	grant := e.storedGrant(t, ts.tenant, conn.GetConnectionId())
	refresh, _ := grant["refresh_token"].(string)
	require.NotEmpty(t, refresh)
	require.Equal(t, tok.GetAccessToken(), grant["access_token"])

	all := rec.String()
	require.Contains(t, all, "google_oauth=connected", "the recorder saw the flow")
	for name, secret := range map[string]string{"access token": tok.GetAccessToken(), "refresh token": refresh, "client secret": ts.project.ClientSecret} {
		require.NotContains(t, all, secret, "%s in an HTTP response", name)
		require.NotContains(t, logs.String(), secret, "%s in the logs", name)
	}
}

// TestOAuthGmailCallbackRefusals: each way a callback can be wrong ends with its own status, and stores no
// grant.
func TestOAuthGmailCallbackRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t, harness.Options{})
	ts := e.setupTenant(t, "tenant-cb", "acme-callback-1", setupOpts{})
	noGrant := func(t *testing.T, providerID string) {
		t.Helper()
		_, err := oauthv1.NewTokenServiceClient(e.s.Conn(t)).GetConnection(e.svcCtx("gmail", ts.tenant),
			&oauthv1.GetConnectionRequest{Kind: oauthv1.ProviderKind_PROVIDER_KIND_GMAIL, ProviderId: providerID})
		require.Equal(t, codes.NotFound, status.Code(err), "no connection stored")
		require.Zero(t, e.count(t, "SELECT count(*) FROM oauth.connections WHERE provider_id = $1", providerID))
		require.NotEqual(t, "PROVIDER_STATUS_CONNECTED", e.provider(t, ts, providerID).Status)
	}
	// begin starts a flow for a new provider in browser c and returns the provider and the callback URL
	// Google redirects to after approval by account.
	begin := func(t *testing.T, c *harness.HTTPClient, mailbox, account string) (gmailProvider, string) {
		t.Helper()
		e.ensureUser(t, mailbox)
		e.ensureUser(t, account)
		p := e.createProvider(t, ts.adminHTTP, mailbox)
		return p, e.consent(t, e.beginConnect(t, c, p.ID), account)
	}

	t.Run("replayed state", func(t *testing.T) {
		c := e.browser(ts, "admin-replay")
		p, cb := begin(t, c, "replay@acme.test", "replay@acme.test")
		binding := bindingCookie(c)
		st, _ := e.callback(t, c, cb)
		require.Equal(t, "connected", st)
		// The same callback again, even with the binding cookie put back: the state is spent.
		replay := e.browser(ts, "admin-replay")
		setBinding(t, replay, binding)
		st, _ = e.callback(t, replay, cb)
		require.Equal(t, "state_invalid", st)
		require.Equal(t, int64(1), e.counter(t, "oauth.token.authorization_code|"+ts.project.ClientID), "the code was exchanged once")
		require.Equal(t, "PROVIDER_STATUS_CONNECTED", e.provider(t, ts, p.ID).Status)
	})

	t.Run("expired state", func(t *testing.T) {
		c := e.browser(ts, "admin-expired")
		p, cb := begin(t, c, "expired@acme.test", "expired@acme.test")
		require.Equal(t, 1, e.count(t, "SELECT count(*) FROM oauth.auth_states WHERE provider_id = $1", p.ID))
		err := oauthtesting.ExpireAuthStates(e.ctx, e.s.App.Deps().Pool, p.ID)
		require.NoError(t, err)
		st, _ := e.callback(t, c, cb)
		require.Equal(t, "state_invalid", st)
		noGrant(t, p.ID)
	})

	t.Run("state of another tenant", func(t *testing.T) {
		other := e.setupTenant(t, "tenant-cb-other", "acme-callback-2", setupOpts{})
		e.ensureUser(t, "other@acme.test")
		po := e.createProvider(t, other.adminHTTP, "other@acme.test")
		cb := e.consent(t, e.beginConnect(t, other.adminHTTP, po.ID), "other@acme.test")
		// This tenant's admin has a flow of its own going (a binding cookie), and opens the other's callback.
		c := e.browser(ts, "admin-x")
		p, _ := begin(t, c, "mine@acme.test", "mine@acme.test")
		st, _ := e.callback(t, c, cb)
		require.Equal(t, "browser_mismatch", st)
		noGrant(t, p.ID)
		_, err := oauthv1.NewTokenServiceClient(e.s.Conn(t)).GetConnection(e.svcCtx("gmail", other.tenant),
			&oauthv1.GetConnectionRequest{Kind: oauthv1.ProviderKind_PROVIDER_KIND_GMAIL, ProviderId: po.ID})
		require.Equal(t, codes.NotFound, status.Code(err))
		// The refused attempt consumed nothing: the rightful browser still completes its flow.
		st, _ = e.callback(t, other.adminHTTP, cb)
		require.Equal(t, "connected", st)
	})

	t.Run("state of another user", func(t *testing.T) {
		u1, u2 := e.browser(ts, "admin-u1"), e.browser(ts, "admin-u2")
		p, cb := begin(t, u2, "user2@acme.test", "user2@acme.test")
		_, _ = begin(t, u1, "user1@acme.test", "user1@acme.test")
		st, _ := e.callback(t, u1, cb)
		require.Equal(t, "browser_mismatch", st)
		noGrant(t, p.ID)
	})

	t.Run("missing cookie", func(t *testing.T) {
		c := e.browser(ts, "admin-nocookie")
		p, cb := begin(t, c, "nocookie@acme.test", "nocookie@acme.test")
		st, _ := e.callback(t, e.browser(ts, "admin-nocookie"), cb) // same user, a browser without the cookie
		require.Equal(t, "browser_mismatch", st)
		noGrant(t, p.ID)
		// Whoever learns a state cannot burn it: the cookie-less callback left it usable by the real browser.
		st, _ = e.callback(t, c, cb)
		require.Equal(t, "connected", st)
		require.Equal(t, "PROVIDER_STATUS_CONNECTED", e.provider(t, ts, p.ID).Status)
	})

	t.Run("mismatched cookie", func(t *testing.T) {
		c := e.browser(ts, "admin-badcookie")
		p, cb := begin(t, c, "badcookie@acme.test", "badcookie@acme.test")
		forged := e.browser(ts, "admin-badcookie")
		setBinding(t, forged, "forged-"+strings.Repeat("x", 40))
		st, _ := e.callback(t, forged, cb)
		require.Equal(t, "browser_mismatch", st)
		noGrant(t, p.ID)
	})

	t.Run("tampered PKCE", func(t *testing.T) {
		// The code is bound to another challenge than the one of our stored verifier (as if the verifier
		// had been tampered with): Google refuses the exchange, the callback says exchange_failed.
		c := e.browser(ts, "admin-pkce")
		e.ensureUser(t, "pkce@acme.test")
		p := e.createProvider(t, ts.adminHTTP, "pkce@acme.test")
		authURL := e.beginConnect(t, c, p.ID)
		u, err := url.Parse(authURL)
		require.NoError(t, err)
		q := u.Query()
		sum := sha256.Sum256([]byte(oauth2.GenerateVerifier()))
		q.Set("code_challenge", base64.RawURLEncoding.EncodeToString(sum[:]))
		u.RawQuery = q.Encode()
		codes0 := e.counter(t, "oauth.token.authorization_code|"+ts.project.ClientID)
		st, _ := e.callback(t, c, e.consent(t, u.String(), "pkce@acme.test"))
		require.Equal(t, "exchange_failed", st)
		require.Equal(t, codes0+1, e.counter(t, "oauth.token.authorization_code|"+ts.project.ClientID), "the exchange was tried and refused")
		noGrant(t, p.ID)

		// And directly: the sandbox refuses a code exchanged with a wrong verifier.
		p2 := e.createProvider(t, ts.adminHTTP, "pkce2@acme.test")
		e.ensureUser(t, "pkce2@acme.test")
		cb, err := url.Parse(e.consent(t, e.beginConnect(t, c, p2.ID), "pkce2@acme.test"))
		require.NoError(t, err)
		resp, err := http.PostForm(e.s.Sandbox.URL()+"/token", url.Values{"grant_type": {"authorization_code"}, "code": {cb.Query().Get("code")},
			"redirect_uri": {e.s.BaseURL + "/api/auth/google/callback"}, "client_id": {ts.project.ClientID}, "client_secret": {ts.project.ClientSecret},
			"code_verifier": {oauth2.GenerateVerifier()}})
		require.NoError(t, err)
		defer resp.Body.Close()
		var body struct {
			Error string `json:"error"`
		}
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
		require.Equal(t, http.StatusBadRequest, resp.StatusCode)
		require.Equal(t, "invalid_grant", body.Error)
	})

	t.Run("wrong Google account", func(t *testing.T) {
		c := e.browser(ts, "admin-wrong")
		p, cb := begin(t, c, "mailbox@acme.test", "somebody-else@acme.test")
		codes0 := e.counter(t, "oauth.token.authorization_code|"+ts.project.ClientID)
		st, _ := e.callback(t, c, cb)
		require.Equal(t, "wrong_account", st)
		require.Equal(t, codes0+1, e.counter(t, "oauth.token.authorization_code|"+ts.project.ClientID))
		noGrant(t, p.ID)
		d, err := secretsv1.NewSecretsServiceClient(e.s.Conn(t)).DescribeSecrets(e.svcCtx("oauth", ts.tenant), &secretsv1.DescribeSecretsRequest{})
		require.NoError(t, err)
		tokens := 0
		for _, s := range d.GetSecrets() {
			if strings.HasPrefix(s.GetName(), "google_oauth_token_") && s.GetPresent() {
				tokens++
			}
		}
		require.Equal(t, e.count(t, "SELECT count(*) FROM oauth.connections WHERE tenant = $1", ts.tenant), tokens, "a token secret only for each stored connection")
	})

	t.Run("credentials deleted meanwhile", func(t *testing.T) {
		c := e.browser(ts, "admin-deleted")
		p, cb := begin(t, c, "deleted@acme.test", "deleted@acme.test")
		// The credentials are oauth's to delete (the generic secrets API refuses their reserved names).
		_, err := secretsv1.NewSecretsServiceClient(e.s.Conn(t)).PutSecrets(e.svcCtx("oauth", ts.tenant), &secretsv1.PutSecretsRequest{
			DeleteNames: []string{"google_client_id", "google_client_secret", "google_calendar_client_id", "google_calendar_client_secret"}})
		require.NoError(t, err)
		st, _ := e.callback(t, c, cb)
		require.Equal(t, "config_missing", st)
		noGrant(t, p.ID)
	})
}

// setBinding puts a browser-binding cookie into c's jar (as a browser that kept or forged one would send).
func setBinding(t *testing.T, c *harness.HTTPClient, value string) {
	t.Helper()
	u, err := url.Parse(c.Base + "/api/auth/google/callback")
	require.NoError(t, err)
	c.Client.Jar.SetCookies(u, []*http.Cookie{{Name: "alga_google_oauth_gmail", Value: value, Path: "/api/auth/google"}})
}
