package googlesandbox_test

import (
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"
	gmail "google.golang.org/api/gmail/v1"
	"google.golang.org/api/googleapi"
	oauth2api "google.golang.org/api/oauth2/v2"
	"google.golang.org/api/option"

	"github.com/algapsa/alga-google/services/googlesandbox"
)

func TestOAuthFlowWithPKCE(t *testing.T) {
	t.Parallel()
	b := setup(t)
	tn := b.tenant(t, "acme-helpdesk", "production")
	require.Regexp(t, `^[0-9]+-[a-z0-9]+\.apps\.googleusercontent\.com$`, tn.project.ClientID)
	require.True(t, strings.HasPrefix(tn.project.ClientSecret, "GOCSPX-"))
	b.user(t, "alice@acme.test")

	// The consent page is a plain HTML form that lists the test users and preselects login_hint.
	verifier := oauth2.GenerateVerifier()
	authURL := tn.cfg.AuthCodeURL("st", oauth2.AccessTypeOffline, oauth2.ApprovalForce, oauth2.S256ChallengeOption(verifier),
		oauth2.SetAuthURLParam("login_hint", "alice@acme.test"))
	resp, err := http.Get(authURL)
	require.NoError(t, err)
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	require.Contains(t, string(page), `name="account" value="alice@acme.test" checked`)
	require.Contains(t, string(page), `name="decision" value="approve"`)
	action := regexp.MustCompile(`action="([^"]+)"`).FindStringSubmatch(string(page))[1]

	// Submitting the form as a browser would.
	form := url.Values{"account": {"alice@acme.test"}, "decision": {"approve"}}
	res := postForm(t, b.sb.URL()+html.UnescapeString(action), form)
	require.Equal(t, http.StatusFound, res.StatusCode)
	loc, err := url.Parse(res.Header.Get("Location"))
	require.NoError(t, err, action)
	require.True(t, strings.HasPrefix(loc.String(), redirectURI+"?"))
	require.Equal(t, "st", loc.Query().Get("state"))

	tok, err := tn.cfg.Exchange(b.ctx, loc.Query().Get("code"), oauth2.VerifierOption(verifier))
	require.NoError(t, err)
	require.NotEmpty(t, tok.RefreshToken)
	require.WithinDuration(t, time.Now().Add(time.Hour), tok.Expiry, time.Minute)

	// The code is single-use.
	_, err = tn.cfg.Exchange(b.ctx, loc.Query().Get("code"), oauth2.VerifierOption(verifier))
	require.Equal(t, "invalid_grant", retrieveErr(t, err).ErrorCode)

	// The ID token verifies against the sandbox's JWKS.
	raw, _ := tok.Extra("id_token").(string)
	keySet := oidc.NewRemoteKeySet(b.ctx, b.sb.URL()+"/oauth2/v3/certs")
	idt, err := oidc.NewVerifier("https://accounts.google.com", keySet, &oidc.Config{ClientID: tn.project.ClientID}).Verify(b.ctx, raw)
	require.NoError(t, err)
	var claims struct {
		Email         string `json:"email"`
		EmailVerified bool   `json:"email_verified"`
	}
	require.NoError(t, idt.Claims(&claims))
	require.Equal(t, "alice@acme.test", claims.Email)
	require.True(t, claims.EmailVerified)

	// Discovery names the issuer and the sandbox's endpoints.
	prov, err := oidc.NewProvider(oidc.InsecureIssuerURLContext(b.ctx, "https://accounts.google.com"), b.sb.URL())
	require.NoError(t, err)
	require.Equal(t, b.sb.URL()+"/token", prov.Endpoint().TokenURL)

	// Refresh gives a new access token; userinfo answers for the account.
	fresh, err := tn.cfg.TokenSource(b.ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
	require.NoError(t, err)
	require.NotEqual(t, tok.AccessToken, fresh.AccessToken)
	oa, err := oauth2api.NewService(b.ctx, option.WithEndpoint(b.sb.URL()+"/"), option.WithTokenSource(oauth2.StaticTokenSource(fresh)))
	require.NoError(t, err)
	info, err := oa.Userinfo.Get().Context(b.ctx).Do()
	require.NoError(t, err)
	require.Equal(t, "alice@acme.test", info.Email)

	counters, err := b.admin.Counters(b.ctx)
	require.NoError(t, err)
	require.EqualValues(t, 1, counters["oauth.token.refresh_token|"+tn.project.ClientID])
	require.EqualValues(t, 2, counters["oauth.token.authorization_code|"+tn.project.ClientID])

	// Revoking the refresh token kills the grant.
	rr, err := http.PostForm(b.sb.URL()+"/revoke", url.Values{"token": {tok.RefreshToken}})
	require.NoError(t, err)
	rr.Body.Close()
	require.Equal(t, 200, rr.StatusCode)
	_, err = tn.cfg.TokenSource(b.ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
	require.Equal(t, "invalid_grant", retrieveErr(t, err).ErrorCode)
	_, err = oa.Userinfo.Get().Context(b.ctx).Do()
	requireAPIStatus(t, err, 401)
}

func requireAPIStatus(t *testing.T, err error, code int) *googleapi.Error {
	t.Helper()
	require.Error(t, err)
	ge, ok := err.(*googleapi.Error)
	require.True(t, ok, "want *googleapi.Error, got %T %v", err, err)
	require.Equal(t, code, ge.Code, ge.Error())
	return ge
}

func TestPKCEMismatchIsInvalidGrant(t *testing.T) {
	t.Parallel()
	b := setup(t)
	tn := b.tenant(t, "pkce-tenant", "testing")
	b.user(t, "bob@acme.test")
	verifier := oauth2.GenerateVerifier()
	authURL := tn.cfg.AuthCodeURL("s", oauth2.AccessTypeOffline, oauth2.S256ChallengeOption(verifier))
	loc, err := b.admin.Consent(b.ctx, authURL, "bob@acme.test", true)
	require.NoError(t, err)
	_, err = tn.cfg.Exchange(b.ctx, loc.Query().Get("code"), oauth2.VerifierOption(oauth2.GenerateVerifier()))
	re := retrieveErr(t, err)
	require.Equal(t, "invalid_grant", re.ErrorCode)
	require.Equal(t, "Invalid code verifier.", re.ErrorDescription)
	// Without a verifier at all.
	loc, err = b.admin.Consent(b.ctx, authURL, "bob@acme.test", true)
	require.NoError(t, err)
	_, err = tn.cfg.Exchange(b.ctx, loc.Query().Get("code"))
	require.Equal(t, "invalid_grant", retrieveErr(t, err).ErrorCode)
}

func TestWrongRedirectURIRefused(t *testing.T) {
	t.Parallel()
	b := setup(t)
	tn := b.tenant(t, "redirect-tenant", "testing")
	b.user(t, "carol@acme.test")
	bad := *tn.cfg
	bad.RedirectURL = "https://evil.example.com/callback"
	authURL := bad.AuthCodeURL("s", oauth2.AccessTypeOffline)
	resp, err := http.Get(authURL)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 400, resp.StatusCode)
	require.Equal(t, "redirect_uri_mismatch", resp.Header.Get("X-Sandbox-Error"))
	_, err = b.admin.Consent(b.ctx, authURL, "carol@acme.test", true)
	require.Error(t, err)
	require.Contains(t, err.Error(), "redirect_uri_mismatch")

	// A code issued for the registered URI cannot be exchanged with another.
	loc, err := b.admin.Consent(b.ctx, tn.cfg.AuthCodeURL("s"), "carol@acme.test", true)
	require.NoError(t, err)
	_, err = bad.Exchange(b.ctx, loc.Query().Get("code"))
	require.Equal(t, "redirect_uri_mismatch", retrieveErr(t, err).ErrorCode)

	// Deny redirects with access_denied; unknown client is an error page.
	loc, err = b.admin.Consent(b.ctx, tn.cfg.AuthCodeURL("s2"), "carol@acme.test", false)
	require.NoError(t, err)
	require.Equal(t, "access_denied", loc.Query().Get("error"))
	require.Equal(t, "s2", loc.Query().Get("state"))
	unknown := *tn.cfg
	unknown.ClientID = "123-abc.apps.googleusercontent.com"
	_, err = b.admin.Consent(b.ctx, unknown.AuthCodeURL("s"), "carol@acme.test", true)
	require.ErrorContains(t, err, "invalid_client")
}

func TestTestingRefreshTokenDiesAfterSevenDays(t *testing.T) {
	t.Parallel()
	b := setup(t)
	testing7 := b.tenant(t, "testing-tenant", "testing")
	prod := b.tenant(t, "prod-tenant", "production")
	b.user(t, "dave@acme.test")
	tt := b.connect(t, testing7.cfg, "dave@acme.test")
	pt := b.connect(t, prod.cfg, "dave@acme.test")
	require.Greater(t, tt.Extra("refresh_token_expires_in"), float64(0))

	err := b.admin.AdvanceClock(b.ctx, 7*24*time.Hour-time.Minute)
	require.NoError(t, err)
	_, err = testing7.cfg.TokenSource(b.ctx, &oauth2.Token{RefreshToken: tt.RefreshToken}).Token()
	require.NoError(t, err)

	err = b.admin.AdvanceClock(b.ctx, 2*time.Minute)
	require.NoError(t, err)
	_, err = testing7.cfg.TokenSource(b.ctx, &oauth2.Token{RefreshToken: tt.RefreshToken}).Token()
	re := retrieveErr(t, err)
	require.Equal(t, "invalid_grant", re.ErrorCode)
	require.Equal(t, "Token has been expired or revoked.", re.ErrorDescription)
	_, err = prod.cfg.TokenSource(b.ctx, &oauth2.Token{RefreshToken: pt.RefreshToken}).Token()
	require.NoError(t, err)
}

func TestAccessTokenExpiresAfterAnHour(t *testing.T) {
	t.Parallel()
	b := setup(t)
	tn := b.tenant(t, "expiry-tenant", "production")
	b.user(t, "erin@acme.test")
	tok := b.connect(t, tn.cfg, "erin@acme.test")
	svc, err := gmail.NewService(b.ctx, option.WithEndpoint(b.sb.URL()+"/"), option.WithTokenSource(oauth2.StaticTokenSource(tok)))
	require.NoError(t, err)
	_, err = svc.Users.GetProfile("me").Do()
	require.NoError(t, err)
	err = b.admin.AdvanceClock(b.ctx, time.Hour)
	require.NoError(t, err)
	_, err = svc.Users.GetProfile("me").Do()
	ge := requireAPIStatus(t, err, 401)
	require.Equal(t, "authError", ge.Errors[0].Reason)
	// Unknown token too.
	bad, err := gmail.NewService(b.ctx, option.WithEndpoint(b.sb.URL()+"/"), option.WithTokenSource(oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "nope"})))
	require.NoError(t, err)
	_, err = bad.Users.GetProfile("me").Do()
	requireAPIStatus(t, err, 401)
}

func TestHundredFirstRefreshTokenInvalidatesTheFirst(t *testing.T) {
	t.Parallel()
	b := setup(t)
	tn := b.tenant(t, "limit-tenant", "production")
	b.user(t, "frank@acme.test")
	var toks []*oauth2.Token
	for range 101 {
		toks = append(toks, b.connect(t, tn.cfg, "frank@acme.test"))
	}
	_, err := tn.cfg.TokenSource(b.ctx, &oauth2.Token{RefreshToken: toks[0].RefreshToken}).Token()
	require.Equal(t, "invalid_grant", retrieveErr(t, err).ErrorCode)
	for _, i := range []int{1, 50, 100} {
		_, err = tn.cfg.TokenSource(b.ctx, &oauth2.Token{RefreshToken: toks[i].RefreshToken}).Token()
		require.NoError(t, err, "token %d", i)
	}
}

func TestRevokedDeletedAndReplacedClients(t *testing.T) {
	t.Parallel()
	b := setup(t)
	tn := b.tenant(t, "client-tenant", "production")
	b.user(t, "gina@acme.test")
	tok := b.connect(t, tn.cfg, "gina@acme.test")

	// A replacement client in the same project cannot use the old client's refresh token.
	repl, err := b.admin.CreateOAuthClient(b.ctx, tn.project.ProjectID, []string{redirectURI})
	require.NoError(t, err)
	require.NotEqual(t, tn.project.ClientID, repl.ClientID)
	_, err = b.oauthConfig(repl.ClientID, repl.ClientSecret).TokenSource(b.ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
	require.Equal(t, "unauthorized_client", retrieveErr(t, err).ErrorCode)

	// Wrong secret.
	_, err = b.oauthConfig(tn.project.ClientID, "GOCSPX-wrong").TokenSource(b.ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
	re := retrieveErr(t, err)
	require.Equal(t, "invalid_client", re.ErrorCode)
	require.Equal(t, 401, re.Response.StatusCode)

	// Admin revoke of the grant.
	require.NoError(t, b.admin.RevokeGrant(b.ctx, "gina@acme.test", tn.project.ClientID))
	_, err = tn.cfg.TokenSource(b.ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
	require.Equal(t, "invalid_grant", retrieveErr(t, err).ErrorCode)

	// Deleted client.
	tok = b.connect(t, tn.cfg, "gina@acme.test")
	require.NoError(t, b.admin.DeleteOAuthClient(b.ctx, tn.project.ClientID))
	_, err = tn.cfg.TokenSource(b.ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
	re = retrieveErr(t, err)
	require.Equal(t, "invalid_client", re.ErrorCode)
	require.Equal(t, "The OAuth client was deleted.", re.ErrorDescription)
}

func TestForcedOAuthErrors(t *testing.T) {
	t.Parallel()
	b := setup(t)
	tn := b.tenant(t, "fault-tenant", "production")
	b.user(t, "hank@acme.test")
	tok := b.connect(t, tn.cfg, "hank@acme.test")
	require.NoError(t, b.admin.SetFault(b.ctx, googlesandbox.Fault{Endpoint: "oauth.token.refresh_token", ForceError: "invalid_rapt", Times: 1}))
	_, err := tn.cfg.TokenSource(b.ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
	re := retrieveErr(t, err)
	require.Equal(t, "invalid_grant", re.ErrorCode)
	var body map[string]string
	require.NoError(t, json.Unmarshal(re.Body, &body))
	require.Equal(t, "invalid_rapt", body["error_subtype"])
	// Times: 1 — the next refresh works.
	_, err = tn.cfg.TokenSource(b.ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
	require.NoError(t, err)

	// Deterministic 429 rate: 0.5 fails calls 1, 3, ...
	require.NoError(t, b.admin.SetFault(b.ctx, googlesandbox.Fault{Endpoint: "gmail.*", Rate429: 0.5}))
	svc, err := gmail.NewService(b.ctx, option.WithEndpoint(b.sb.URL()+"/"), option.WithTokenSource(oauth2.StaticTokenSource(tok)),
		option.WithHTTPClient(&http.Client{Transport: &oauth2.Transport{Source: oauth2.StaticTokenSource(tok)}}))
	require.NoError(t, err)
	_, err = svc.Users.GetProfile("me").Do()
	requireAPIStatus(t, err, 429)
	_, err = svc.Users.GetProfile("me").Do()
	require.NoError(t, err)
	require.NoError(t, b.admin.ClearFaults(b.ctx))
	require.NoError(t, b.admin.SetFault(b.ctx, googlesandbox.Fault{Endpoint: "gmail.users.getProfile", Rate5xx: 1, Status5xx: 500, Times: 1}))
	_, err = svc.Users.GetProfile("me").Do()
	requireAPIStatus(t, err, 500)
	_, err = svc.Users.GetProfile("me").Do()
	require.NoError(t, err)
	c, err := b.admin.Counters(b.ctx)
	require.NoError(t, err)
	require.EqualValues(t, 4, c["gmail.users.getProfile|"+tn.project.ClientID])
	require.NoError(t, b.admin.ResetCounters(b.ctx))
	c, err = b.admin.Counters(b.ctx)
	require.NoError(t, err)
	require.Empty(t, c)
}

func TestServiceAccountKeyJWTBearer(t *testing.T) {
	t.Parallel()
	b := setup(t)
	tn := b.tenant(t, "sa-tenant", "production")
	key, email, err := b.admin.CreateServiceAccount(b.ctx, tn.project.ProjectID, "alga-pubsub")
	require.NoError(t, err)
	require.Equal(t, "alga-pubsub@sa-tenant.iam.gserviceaccount.com", email)
	var kf map[string]string
	require.NoError(t, json.Unmarshal(key, &kf))
	require.Equal(t, "service_account", kf["type"])
	require.Equal(t, "sa-tenant", kf["project_id"])
	require.Equal(t, b.sb.URL()+"/token", kf["token_uri"])
	require.Contains(t, kf["private_key"], "-----BEGIN PRIVATE KEY-----")
	for _, f := range []string{"private_key_id", "client_email", "client_id", "auth_uri", "auth_provider_x509_cert_url", "client_x509_cert_url"} {
		require.NotEmpty(t, kf[f], f)
	}

	creds, err := google.CredentialsFromJSONWithType(b.ctx, key, google.ServiceAccount, "https://www.googleapis.com/auth/pubsub")
	require.NoError(t, err)
	require.Equal(t, "sa-tenant", creds.ProjectID)
	tok, err := creds.TokenSource.Token()
	require.NoError(t, err)
	require.NotEmpty(t, tok.AccessToken)

	jc, err := google.JWTConfigFromJSON(key, "https://www.googleapis.com/auth/cloud-platform")
	require.NoError(t, err)
	_, err = jc.TokenSource(b.ctx).Token()
	require.NoError(t, err)

	// A key the sandbox did not issue for this account fails the signature check.
	other, _, err := b.admin.CreateServiceAccount(b.ctx, tn.project.ProjectID, "other-account")
	require.NoError(t, err)
	var of map[string]string
	require.NoError(t, json.Unmarshal(other, &of))
	kf["private_key_id"] = of["private_key_id"]
	forged, _ := json.Marshal(kf)
	jc, err = google.JWTConfigFromJSON(forged, "https://www.googleapis.com/auth/cloud-platform")
	require.NoError(t, err)
	_, err = jc.TokenSource(b.ctx).Token()
	re := retrieveErr(t, err) // x/oauth2/jwt does not parse the error body
	require.Equal(t, 400, re.Response.StatusCode)
	require.Contains(t, string(re.Body), `"invalid_grant"`)

	c, err := b.admin.Counters(b.ctx)
	require.NoError(t, err)
	require.EqualValues(t, 2, c["oauth.token.jwt_bearer|"+kf["client_id"]])
}

// TestFaultRetryAfterForOneClient: a fault scoped to one OAuth client answers that client's calls with
// its status and Retry-After (API and token endpoints) while another client's calls go through.
func TestFaultRetryAfterForOneClient(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a, other := b.tenant(t, "storm-a", googlesandbox.PublishingProduction), b.tenant(t, "storm-b", googlesandbox.PublishingProduction)
	b.user(t, "a@storm.test")
	b.user(t, "b@storm.test")
	tokA, tokB := b.connect(t, a.cfg, "a@storm.test"), b.connect(t, other.cfg, "b@storm.test")
	require.NoError(t, b.admin.SetFault(b.ctx, googlesandbox.Fault{Endpoint: "gmail.*", ClientID: a.project.ClientID, Rate429: 1, RetryAfterSeconds: 3}))
	require.NoError(t, b.admin.SetFault(b.ctx, googlesandbox.Fault{Endpoint: "oauth.token.refresh_token", ClientID: a.project.ClientID, Rate5xx: 1, RetryAfterSeconds: 2}))

	_, err := b.gmail(t, a.cfg, tokA).Users.GetProfile("me").Do()
	gerr := requireAPIStatus(t, err, 429)
	require.Equal(t, "3", gerr.Header.Get("Retry-After"))
	_, err = b.gmail(t, other.cfg, tokB).Users.GetProfile("me").Do()
	require.NoError(t, err, "another client is not stormed")

	_, err = a.cfg.TokenSource(b.ctx, &oauth2.Token{RefreshToken: tokA.RefreshToken}).Token()
	re := retrieveErr(t, err)
	require.Equal(t, 503, re.Response.StatusCode)
	require.Equal(t, "2", re.Response.Header.Get("Retry-After"))
	_, err = other.cfg.TokenSource(b.ctx, &oauth2.Token{RefreshToken: tokB.RefreshToken}).Token()
	require.NoError(t, err)
}
