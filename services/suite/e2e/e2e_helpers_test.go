package e2e_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"github.com/stretchr/testify/require"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	gmailv1 "github.com/algapsa/alga-google/gen/alga/gmail/v1"
	oauthv1 "github.com/algapsa/alga-google/gen/alga/oauth/v1"
	secretsv1 "github.com/algapsa/alga-google/gen/alga/secrets/v1"
	"github.com/algapsa/alga-google/services/googlesandbox"
	"github.com/algapsa/alga-google/services/platform/auth"
	"github.com/algapsa/alga-google/services/platform/config"
	"github.com/algapsa/alga-google/services/platform/logging"
	"github.com/algapsa/alga-google/services/suite/harness"
)

// Shared helpers of the Gmail and OAuth end-to-end tests: a tenant's Google setup over HTTP, a Gmail
// provider connected through the real consent path (gateway → sandbox consent page → gateway callback),
// reads of the inbound-mail API, sandbox counters, push-token minting and push capture.

// env is one running suite with its sandbox.
type env struct {
	s     *harness.Suite
	admin *googlesandbox.AdminClient
	ctx   context.Context
}

func newEnv(t *testing.T, opts harness.Options) *env {
	t.Helper()
	s := harness.Start(t, opts)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return &env{s: s, admin: s.Sandbox.Admin(), ctx: ctx}
}

// startSandbox starts a sandbox the test owns (for suites that are restarted or share it).
func startSandbox(t *testing.T) *googlesandbox.Sandbox {
	t.Helper()
	sb, err := googlesandbox.Start(context.Background(), googlesandbox.Options{Addr: "127.0.0.1:0", PubSubAddr: "127.0.0.1:0", Logger: logging.Discard()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = sb.Close() })
	return sb
}

// tenantSetup is a tenant whose Google setup (its own project, OAuth client and service account) is saved.
type tenantSetup struct {
	tenant  string
	project googlesandbox.Project
	saEmail string
	saKey   []byte
	// adminHTTP is an admin (system_settings:update) of the tenant, with its own cookie jar (browser).
	adminHTTP *harness.HTTPClient
}

type setupOpts struct {
	publishing string // default production
	noKey      bool   // save the config without the service-account key
}

// setupTenant creates the tenant's Google project in the sandbox and saves its configuration over HTTP.
func (e *env) setupTenant(t *testing.T, tenant, projectID string, o setupOpts) *tenantSetup {
	t.Helper()
	if o.publishing == "" {
		o.publishing = googlesandbox.PublishingProduction
	}
	redirects := []string{e.s.BaseURL + "/api/auth/google/callback", e.s.BaseURL + "/api/auth/google/calendar/callback"}
	proj, err := e.admin.CreateProject(e.ctx, googlesandbox.CreateProjectRequest{ProjectID: projectID, PublishingStatus: o.publishing, RedirectURIs: redirects})
	require.NoError(t, err)
	key, email, err := e.admin.CreateServiceAccount(e.ctx, proj.ProjectID, "alga-pubsub")
	require.NoError(t, err)
	ts := &tenantSetup{tenant: tenant, project: proj, saEmail: email, saKey: key,
		adminHTTP: e.s.HTTP(e.s.UserToken(tenant, "admin-"+tenant, auth.PermSystemSettingsUpdate))}
	body := map[string]any{"gmail_client_id": proj.ClientID, "gmail_client_secret": proj.ClientSecret, "project_id": proj.ProjectID}
	if !o.noKey {
		body["service_account_key_json"] = string(key)
	}
	resp := ts.adminHTTP.Do(t, http.MethodPut, "/api/v1/google/config", body)
	require.Equal(t, http.StatusOK, resp.Status, resp.Errorf())
	return ts
}

// browser is another admin browser (own cookie jar) of the tenant.
func (e *env) browser(ts *tenantSetup, user string) *harness.HTTPClient {
	return e.s.HTTP(e.s.UserToken(ts.tenant, user, auth.PermSystemSettingsUpdate))
}

type providerError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Remedy  string `json:"remedy"`
}

type gmailProvider struct {
	ID           string         `json:"id"`
	Mailbox      string         `json:"mailbox"`
	Status       string         `json:"status"`
	LabelFilters []string       `json:"label_filters"`
	Error        *providerError `json:"error"`
}

type provisioningStep struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

type gmailDiagnostics struct {
	Provider    gmailProvider `json:"provider"`
	Diagnostics struct {
		BaseURL             string             `json:"base_url"`
		ServiceAccountEmail string             `json:"service_account_email"`
		Topic               string             `json:"topic"`
		Subscription        string             `json:"subscription"`
		PushEndpoint        string             `json:"push_endpoint"`
		PushAudience        string             `json:"push_audience"`
		Steps               []provisioningStep `json:"steps"`
		HistoryID           string             `json:"history_id"`
		WatchExpireTime     string             `json:"watch_expire_time"`
		LastPushTime        string             `json:"last_push_time"`
		LastError           *providerError     `json:"last_error"`
		ConnectionStatus    string             `json:"connection_status"`
	} `json:"diagnostics"`
}

// createProvider creates a Gmail provider over HTTP.
func (e *env) createProvider(t *testing.T, c *harness.HTTPClient, mailbox string, labels ...string) gmailProvider {
	t.Helper()
	body := map[string]any{"mailbox": mailbox, "display_name": "Support " + mailbox}
	if len(labels) > 0 {
		body["label_filters"] = labels
	}
	resp := c.Do(t, http.MethodPost, "/api/v1/gmail/providers", body)
	require.Equal(t, http.StatusOK, resp.Status, resp.Errorf())
	var out struct {
		Provider gmailProvider `json:"provider"`
	}
	require.NoError(t, resp.JSON(&out))
	require.NotEmpty(t, out.Provider.ID)
	return out.Provider
}

// beginConnect calls :connect over HTTP: the authorization URL comes back and the browser-binding cookie
// lands in c's jar.
func (e *env) beginConnect(t *testing.T, c *harness.HTTPClient, providerID string) string {
	t.Helper()
	resp := c.Do(t, http.MethodPost, "/api/v1/gmail/providers/"+providerID+":connect", map[string]any{})
	require.Equal(t, http.StatusOK, resp.Status, resp.Errorf())
	var out struct {
		AuthorizationURL string `json:"authorization_url"`
	}
	require.NoError(t, resp.JSON(&out))
	require.NotEmpty(t, out.AuthorizationURL)
	return out.AuthorizationURL
}

// consent approves the sandbox consent page as account and returns the callback URL Google redirects to.
func (e *env) consent(t *testing.T, authURL, account string) string {
	t.Helper()
	cb, err := e.admin.Consent(e.ctx, authURL, account, true)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(cb.String(), e.s.BaseURL+"/api/auth/google/callback?"), cb.String())
	return cb.String()
}

// callback opens the callback URL in the browser c and returns the google_oauth status of the redirect.
func (e *env) callback(t *testing.T, c *harness.HTTPClient, callbackURL string) (string, *harness.Response) {
	t.Helper()
	resp := c.Do(t, http.MethodGet, callbackURL, nil)
	require.Equal(t, http.StatusFound, resp.Status, resp.Errorf())
	loc, err := url.Parse(resp.Header.Get("Location"))
	require.NoError(t, err)
	return loc.Query().Get("google_oauth"), resp
}

// bindingCookie returns the Gmail flow's browser-binding cookie the gateway set in c's jar ("" when
// none); each flow kind has its own (alga_google_oauth_gmail, alga_google_oauth_calendar).
func bindingCookie(c *harness.HTTPClient) string {
	return bindingCookieOf(c, "alga_google_oauth_gmail")
}

func bindingCookieOf(c *harness.HTTPClient, name string) string {
	u, _ := url.Parse(c.Base + "/api/auth/google/callback")
	for _, ck := range c.Client.Jar.Cookies(u) {
		if ck.Name == name {
			return ck.Value
		}
	}
	return ""
}

// connectGmail creates the Google account (when missing) and a provider for it, and runs the whole consent
// flow; the provider must end CONNECTED.
func (e *env) connectGmail(t *testing.T, ts *tenantSetup, mailbox string, labels ...string) gmailProvider {
	t.Helper()
	e.ensureUser(t, mailbox, ts.project.ProjectID)
	p := e.createProvider(t, ts.adminHTTP, mailbox, labels...)
	status, resp := e.callback(t, ts.adminHTTP, e.consent(t, e.beginConnect(t, ts.adminHTTP, p.ID), mailbox))
	require.Equal(t, "connected", status, resp.Header.Get("Location"))
	got := e.provider(t, ts, p.ID)
	require.Equal(t, "PROVIDER_STATUS_CONNECTED", got.Status, "%+v", got.Error)
	return got
}

// ensureUser creates a Google account in the sandbox (a test user of project) unless it exists.
func (e *env) ensureUser(t *testing.T, email string, projects ...string) {
	t.Helper()
	if _, err := e.admin.GetUser(e.ctx, email); err == nil {
		return
	}
	require.NoError(t, e.admin.CreateTestUser(e.ctx, email, projects...))
}

func (e *env) provider(t *testing.T, ts *tenantSetup, id string) gmailProvider {
	t.Helper()
	resp := ts.adminHTTP.Do(t, http.MethodGet, "/api/v1/gmail/providers/"+id, nil)
	require.Equal(t, http.StatusOK, resp.Status, resp.Errorf())
	var out struct {
		Provider gmailProvider `json:"provider"`
	}
	require.NoError(t, resp.JSON(&out))
	return out.Provider
}

func (e *env) diagnostics(t *testing.T, ts *tenantSetup, id string) gmailDiagnostics {
	t.Helper()
	resp := ts.adminHTTP.Do(t, http.MethodGet, "/api/v1/gmail/providers/"+id+"/diagnostics", nil)
	require.Equal(t, http.StatusOK, resp.Status, resp.Errorf())
	var out gmailDiagnostics
	require.NoError(t, resp.JSON(&out))
	return out
}

// svcCtx acts as an internal service for tenant.
func (e *env) svcCtx(service, tenant string) context.Context {
	return harness.WithToken(e.ctx, e.s.ServiceToken(service, tenant))
}

// inbound lists the provider's inbound messages (all of them, acknowledged or not).
func (e *env) inbound(t *testing.T, tenant, providerID string) []*gmailv1.InboundMessage {
	t.Helper()
	res, err := gmailv1.NewInboundMailServiceClient(e.s.Conn(t)).ListInboundMessages(e.svcCtx("platform", tenant),
		&gmailv1.ListInboundMessagesRequest{ProviderId: providerID, PageSize: 500, IncludeAcknowledged: true})
	require.NoError(t, err)
	return res.GetMessages()
}

// waitInbound waits until the provider has n messages, then checks no more arrive for a moment.
func (e *env) waitInbound(t *testing.T, tenant, providerID string, n int) []*gmailv1.InboundMessage {
	t.Helper()
	var got []*gmailv1.InboundMessage
	require.Eventually(t, func() bool {
		got = e.inbound(t, tenant, providerID)
		return len(got) >= n
	}, 30*time.Second, 100*time.Millisecond, "waiting for %d inbound messages", n)
	e.waitSyncIdle(t)
	got = e.inbound(t, tenant, providerID)
	require.Len(t, got, n, "%v", subjects(got))
	return got
}

func subjects(list []*gmailv1.InboundMessage) []string {
	out := make([]string, 0, len(list))
	for _, m := range list {
		out = append(out, m.GetSubject())
	}
	return out
}

// count runs a count query against the suite's database.
func (e *env) count(t *testing.T, sql string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, e.s.App.Deps().Pool.QueryRow(e.ctx, sql, args...).Scan(&n))
	return n
}

// waitSyncIdle waits until no Gmail history sync is queued or running and no notification is pending.
func (e *env) waitSyncIdle(t *testing.T) {
	t.Helper()
	require.Eventually(t, func() bool {
		return e.count(t, "SELECT count(*) FROM gmail.river_job WHERE kind = 'gmail_history_sync' AND state NOT IN ('completed','cancelled','discarded')") == 0 &&
			e.count(t, "SELECT count(*) FROM gmail.notifications WHERE process_time IS NULL") == 0
	}, 30*time.Second, 50*time.Millisecond, "gmail syncs still running")
}

// counter reads one sandbox counter.
func (e *env) counter(t *testing.T, key string) int64 {
	t.Helper()
	c, err := e.admin.Counters(e.ctx)
	require.NoError(t, err)
	return c[key]
}

// deliver puts a message in mailbox at the sandbox, a second (sandbox time) after the previous one so Gmail's
// one-notification-per-second rule never swallows its push.
func (e *env) deliver(t *testing.T, mailbox string, msg any) googlesandbox.DeliveredMessage {
	t.Helper()
	require.NoError(t, e.admin.AdvanceClock(e.ctx, time.Second))
	d, err := e.admin.Deliver(e.ctx, mailbox, msg)
	require.NoError(t, err)
	return d
}

func plainEmail(to, subject string) googlesandbox.Email {
	return googlesandbox.Email{From: "customer@example.com", To: to, Subject: subject, Body: "Body of " + subject}
}

// connection reads the provider's OAuth connection through TokenService (as the gmail service does).
func (e *env) connection(t *testing.T, tenant, providerID string) *oauthv1.Connection {
	t.Helper()
	res, err := oauthv1.NewTokenServiceClient(e.s.Conn(t)).GetConnection(e.svcCtx("gmail", tenant),
		&oauthv1.GetConnectionRequest{Kind: oauthv1.ProviderKind_PROVIDER_KIND_GMAIL, ProviderId: providerID})
	require.NoError(t, err)
	return res.GetConnection()
}

// storedGrant reads the connection's token secret through the secrets service (service identity only).
func (e *env) storedGrant(t *testing.T, tenant, connectionID string) map[string]any {
	t.Helper()
	name := "google_oauth_token_" + connectionID
	res, err := secretsv1.NewSecretsServiceClient(e.s.Conn(t)).GetSecrets(e.svcCtx("oauth", tenant), &secretsv1.GetSecretsRequest{Names: []string{name}})
	require.NoError(t, err)
	for _, s := range res.GetSecrets() {
		if s.GetName() == name {
			var out map[string]any
			require.NoError(t, json.Unmarshal([]byte(s.GetValue()), &out))
			return out
		}
	}
	t.Fatalf("no secret %s", name)
	return nil
}

// --- push tokens and envelopes ---

// pushKey is an RSA key that signs push OIDC tokens under kid.
type pushKey struct {
	kid string
	key *rsa.PrivateKey
}

func newPushKey(t *testing.T, kid string) *pushKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	return &pushKey{kid: kid, key: k}
}

// jwk is the key's public half as a JWKS entry.
func (k *pushKey) jwk() map[string]any {
	return map[string]any{"kty": "RSA", "alg": "RS256", "use": "sig", "kid": k.kid,
		"n": base64.RawURLEncoding.EncodeToString(k.key.N.Bytes()),
		"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(k.key.E)).Bytes())}
}

// sign makes an RS256 JWT of claims with kid in the header.
func (k *pushKey) sign(t *testing.T, kid string, claims map[string]any) string {
	t.Helper()
	h, _ := json.Marshal(map[string]any{"alg": "RS256", "typ": "JWT", "kid": kid})
	c, err := json.Marshal(claims)
	require.NoError(t, err)
	input := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c)
	sum := sha256.Sum256([]byte(input))
	sig, err := rsa.SignPKCS1v15(rand.Reader, k.key, crypto.SHA256, sum[:])
	require.NoError(t, err)
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// pushClaims are the claims Pub/Sub puts in a push token.
func pushClaims(audience, email string) map[string]any {
	now := time.Now()
	return map[string]any{"iss": "https://accounts.google.com", "aud": audience, "azp": "1234567890", "sub": "1234567890",
		"email": email, "email_verified": true, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
}

// envelope builds a Pub/Sub push body carrying a Gmail notification.
func envelope(subscription, messageID, mailbox string, historyID uint64) []byte {
	data, _ := json.Marshal(map[string]any{"emailAddress": mailbox, "historyId": historyID})
	pt := time.Now().UTC().Format(time.RFC3339Nano)
	b, _ := json.Marshal(map[string]any{"subscription": subscription, "message": map[string]any{
		"data": base64.StdEncoding.EncodeToString(data), "messageId": messageID, "message_id": messageID,
		"publishTime": pt, "publish_time": pt, "attributes": map[string]string{}}})
	return b
}

// postPush POSTs a push to the gateway's webhook as Pub/Sub would and returns the status.
func (e *env) postPush(t *testing.T, authorization string, body []byte) int {
	t.Helper()
	req, err := http.NewRequestWithContext(e.ctx, http.MethodPost, e.s.BaseURL+"/api/email/webhooks/google", bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// newTrustedKeyEnv is a suite whose Google certs come through certsProxy with a "trusted" test key added
// (so the test can sign push tokens the suite accepts, one bad claim at a time), and "other", a key in
// no JWKS. It returns the sandbox too (its own keys are the ones Google would sign with).
func newTrustedKeyEnv(t *testing.T, trustedKid, otherKid string) (e *env, sb *googlesandbox.Sandbox, trusted, other *pushKey) {
	t.Helper()
	sb = startSandbox(t)
	trusted, other = newPushKey(t, trustedKid), newPushKey(t, otherKid)
	proxy := certsProxy(t, sb, trusted)
	e = newEnv(t, harness.Options{Sandbox: sb, Configure: func(c *config.Config) { c.GoogleAPIRoot = proxy.URL }})
	return e, sb, trusted, other
}

// certsProxy serves the sandbox on another root, adding extra keys to its JWKS (/oauth2/v3/certs): a suite
// pointed at it trusts push tokens signed with those keys as if Google had signed them.
func certsProxy(t *testing.T, sb *googlesandbox.Sandbox, extra ...*pushKey) *httptest.Server {
	t.Helper()
	target, err := url.Parse(sb.URL())
	require.NoError(t, err)
	rp := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/oauth2/v3/certs" {
			rp.ServeHTTP(w, r)
			return
		}
		resp, err := http.Get(sb.URL() + "/oauth2/v3/certs")
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		var doc struct {
			Keys []map[string]any `json:"keys"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		for _, k := range extra {
			doc.Keys = append(doc.Keys, k.jwk())
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(doc)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// sandboxKids lists the key ids of the sandbox's JWKS.
func sandboxKids(t *testing.T, sb *googlesandbox.Sandbox) []string {
	t.Helper()
	resp, err := http.Get(sb.URL() + "/oauth2/v3/certs")
	require.NoError(t, err)
	defer resp.Body.Close()
	var doc struct {
		Keys []struct {
			Kid string `json:"kid"`
		} `json:"keys"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&doc))
	var out []string
	for _, k := range doc.Keys {
		out = append(out, k.Kid)
	}
	require.NotEmpty(t, out)
	return out
}

// capturedPush is one push the sandbox's Pub/Sub delivered to a capture endpoint.
type capturedPush struct {
	Authorization string
	Body          []byte
}

// pushCapture is a second push subscription on a tenant's Gmail topic, configured exactly like ours
// (OIDC token of the tenant's service account, canonical audience) but pushing to a local recorder: it
// captures the envelopes and Google-signed tokens the sandbox sends for the same Pub/Sub messages.
type pushCapture struct {
	mu    sync.Mutex
	got   []capturedPush
	added chan struct{}
}

func (e *env) capturePushes(t testing.TB, topic, saEmail string) *pushCapture {
	t.Helper()
	pc := &pushCapture{added: make(chan struct{}, 100)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		pc.mu.Lock()
		pc.got = append(pc.got, capturedPush{Authorization: r.Header.Get("Authorization"), Body: body})
		pc.mu.Unlock()
		select {
		case pc.added <- struct{}{}:
		default:
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	project := strings.Split(topic, "/")[1]
	client, err := pubsub.NewClient(e.ctx, project, option.WithEndpoint(e.s.Sandbox.PubSubAddr()), option.WithoutAuthentication(),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())))
	require.NoError(t, err)
	t.Cleanup(func() { _ = client.Close() })
	_, err = client.SubscriptionAdminClient.CreateSubscription(e.ctx, &pubsubpb.Subscription{
		Name: fmt.Sprintf("projects/%s/subscriptions/e2e-capture", project), Topic: topic, AckDeadlineSeconds: 10,
		PushConfig: &pubsubpb.PushConfig{PushEndpoint: srv.URL, AuthenticationMethod: &pubsubpb.PushConfig_OidcToken_{OidcToken: &pubsubpb.PushConfig_OidcToken{
			ServiceAccountEmail: saEmail, Audience: e.s.BaseURL + "/api/email/webhooks/google"}}},
	})
	require.NoError(t, err)
	return pc
}

// wait returns the n-th captured push (1-based), waiting for it.
func (pc *pushCapture) wait(t testing.TB, n int) capturedPush {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		pc.mu.Lock()
		if len(pc.got) >= n {
			p := pc.got[n-1]
			pc.mu.Unlock()
			return p
		}
		pc.mu.Unlock()
		select {
		case <-pc.added:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatalf("no push %d captured", n)
		}
	}
}

// asDeliveredTo rewrites a captured envelope's subscription (the token does not cover the body): the very
// push Pub/Sub sent to our subscription for the same message.
func asDeliveredTo(t *testing.T, body []byte, subscription string, messageID string) []byte {
	t.Helper()
	var env map[string]any
	require.NoError(t, json.Unmarshal(body, &env))
	env["subscription"] = subscription
	if messageID != "" {
		m := env["message"].(map[string]any)
		m["messageId"], m["message_id"] = messageID, messageID
	}
	out, err := json.Marshal(env)
	require.NoError(t, err)
	return out
}

// recorder records every HTTP response a client receives (to scan them for secrets).
type recorder struct {
	base http.RoundTripper
	mu   sync.Mutex
	all  bytes.Buffer
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.base.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintf(&r.all, "%s %s -> %d\n", req.Method, req.URL, resp.StatusCode)
	for k, v := range resp.Header {
		fmt.Fprintf(&r.all, "%s: %s\n", k, strings.Join(v, ", "))
	}
	r.all.Write(body)
	r.all.WriteString("\n")
	return resp, nil
}

func (r *recorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.all.String()
}

// record makes c record its responses.
func record(c *harness.HTTPClient) *recorder {
	base := c.Client.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	r := &recorder{base: base}
	c.Client.Transport = r
	return r
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// postPushNoT is postPush for goroutines (no t.FailNow): 0 on a transport error.
func (e *env) postPushNoT(authorization string, body []byte) int {
	req, err := http.NewRequestWithContext(e.ctx, http.MethodPost, e.s.BaseURL+"/api/email/webhooks/google", bytes.NewReader(body))
	if err != nil {
		return 0
	}
	req.Header.Set("Content-Type", "application/json")
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}
