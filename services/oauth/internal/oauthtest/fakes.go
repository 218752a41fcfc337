// Package oauthtest holds the fakes the oauth service's own tests run against: an in-memory secrets
// service, Gmail/Calendar provider services, and a small Google OAuth server (authorize, token with PKCE,
// refresh, JWT bearer, userinfo, revoke). The end-to-end tests in services/suite use the real secrets
// service and the Google sandbox instead.
package oauthtest

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	calendarv1 "github.com/algapsa/alga-google/gen/alga/calendar/v1"
	gmailv1 "github.com/algapsa/alga-google/gen/alga/gmail/v1"
	secretsv1 "github.com/algapsa/alga-google/gen/alga/secrets/v1"
	"github.com/algapsa/alga-google/services/platform/auth"
	"github.com/algapsa/alga-google/services/platform/errs"
)

// Secrets is an in-memory SecretsService keyed by the caller's tenant.
type Secrets struct {
	secretsv1.UnimplementedSecretsServiceServer
	mu   sync.Mutex
	data map[string]map[string]string // tenant → name → value
	ver  map[string]int64
	Puts atomic.Int64
}

// NewSecrets returns an empty store.
func NewSecrets() *Secrets {
	return &Secrets{data: map[string]map[string]string{}, ver: map[string]int64{}}
}

func tenantOf(ctx context.Context) (string, error) {
	id, ok := auth.FromContext(ctx)
	if !ok || id.Tenant == "" {
		return "", errs.PermissionDenied("no tenant")
	}
	return id.Tenant, nil
}

// Value returns a stored value (tests inspect what was written).
func (s *Secrets) Value(tenant, name string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.data[tenant][name]
	return v, ok
}

// Delete removes a secret (a tenant admin deleting credentials behind the service's back).
func (s *Secrets) Delete(tenant string, names ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range names {
		delete(s.data[tenant], n)
	}
}

// Names lists a tenant's secret names.
func (s *Secrets) Names(tenant string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for n := range s.data[tenant] {
		out = append(out, n)
	}
	return out
}

func (s *Secrets) PutSecrets(ctx context.Context, r *secretsv1.PutSecretsRequest) (*secretsv1.PutSecretsResponse, error) {
	t, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	s.Puts.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.data[t] == nil {
		s.data[t] = map[string]string{}
	}
	for _, w := range r.GetWrites() {
		s.data[t][w.GetName()] = w.GetValue()
		s.ver[t+"/"+w.GetName()]++
	}
	for _, n := range r.GetDeleteNames() {
		delete(s.data[t], n)
	}
	return &secretsv1.PutSecretsResponse{}, nil
}

func (s *Secrets) DescribeSecrets(ctx context.Context, r *secretsv1.DescribeSecretsRequest) (*secretsv1.DescribeSecretsResponse, error) {
	t, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := &secretsv1.DescribeSecretsResponse{}
	for _, n := range r.GetNames() {
		v, ok := s.data[t][n]
		d := &secretsv1.SecretDescription{Name: n, Present: ok, Version: s.ver[t+"/"+n], UpdateTime: timestamppb.Now()}
		if ok && strings.HasSuffix(n, "_secret") && len(v) >= 4 {
			d.Hint = "••••" + v[len(v)-4:]
		}
		out.Secrets = append(out.Secrets, d)
	}
	return out, nil
}

func (s *Secrets) GetSecrets(ctx context.Context, r *secretsv1.GetSecretsRequest) (*secretsv1.GetSecretsResponse, error) {
	t, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	if id, _ := auth.FromContext(ctx); !id.IsService() {
		return nil, errs.PermissionDenied("services only")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := &secretsv1.GetSecretsResponse{}
	for _, n := range r.GetNames() {
		if v, ok := s.data[t][n]; ok {
			out.Secrets = append(out.Secrets, &secretsv1.SecretValue{Name: n, Value: v, Version: s.ver[t+"/"+n]})
		}
	}
	return out, nil
}

func (s *Secrets) DeleteSecrets(ctx context.Context, r *secretsv1.DeleteSecretsRequest) (*secretsv1.DeleteSecretsResponse, error) {
	t, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	s.Delete(t, r.GetNames()...)
	return &secretsv1.DeleteSecretsResponse{DeletedNames: r.GetNames()}, nil
}

// Gmail is a GmailProviderService with providers (id → mailbox) and a record of activations.
type Gmail struct {
	gmailv1.UnimplementedGmailProviderServiceServer
	mu        sync.Mutex
	Mailboxes map[string]string // tenant/id → mailbox
	Activated []string          // tenant/id/email
	Resets    atomic.Int64
}

// NewGmail returns a Gmail fake.
func NewGmail() *Gmail { return &Gmail{Mailboxes: map[string]string{}} }

// AddProvider registers a provider of tenant.
func (g *Gmail) AddProvider(tenant, id, mailbox string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.Mailboxes[tenant+"/"+id] = mailbox
}

// Activations returns the recorded activations.
func (g *Gmail) Activations() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.Activated...)
}

func (g *Gmail) GetGmailProvider(ctx context.Context, r *gmailv1.GetGmailProviderRequest) (*gmailv1.GetGmailProviderResponse, error) {
	t, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	m, ok := g.Mailboxes[t+"/"+r.GetId()]
	if !ok {
		return nil, errs.NotFound("gmail provider")
	}
	return &gmailv1.GetGmailProviderResponse{Provider: &gmailv1.GmailProvider{Id: r.GetId(), Mailbox: m}}, nil
}

func (g *Gmail) ActivateGmailProvider(ctx context.Context, r *gmailv1.ActivateGmailProviderRequest) (*gmailv1.ActivateGmailProviderResponse, error) {
	t, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.Activated = append(g.Activated, t+"/"+r.GetId()+"/"+r.GetAccountEmail())
	return &gmailv1.ActivateGmailProviderResponse{Provider: &gmailv1.GmailProvider{Id: r.GetId(), Status: gmailv1.ProviderStatus_PROVIDER_STATUS_CONNECTED}}, nil
}

func (g *Gmail) ResetGmailProviders(ctx context.Context, _ *gmailv1.ResetGmailProvidersRequest) (*gmailv1.ResetGmailProvidersResponse, error) {
	g.Resets.Add(1)
	return &gmailv1.ResetGmailProvidersResponse{ProvidersReset: 1, Warnings: []string{"watch of m@x could not be stopped"}}, nil
}

// Calendar is a CalendarProviderService that implements nothing (a peer not built yet).
type Calendar struct {
	calendarv1.UnimplementedCalendarProviderServiceServer
}

// Google is a small Google OAuth server.
type Google struct {
	Server *httptest.Server

	mu      sync.Mutex
	clients map[string]string // client id → secret
	codes   map[string]codeGrant
	refresh map[string]grant // refresh token → grant
	access  map[string]grant // access token → grant
	serial  int
	fault   string // forced token-endpoint error for refresh grants: an OAuth error code or "503"
	faultN  int    // remaining faulted calls (0 = until cleared)
	omitRT  bool   // answer refresh grants and code exchanges without a refresh token

	Refreshes    atomic.Int64 // refresh_token grants answered successfully
	RefreshCalls atomic.Int64 // refresh_token grant requests, including failed ones
	Exchanges    atomic.Int64
	Revocations  atomic.Int64
	RefreshDelay time.Duration
}

type grant struct {
	clientID, email, scope string
}

type codeGrant struct {
	grant
	redirectURI, challenge string
}

// NewGoogle starts the fake; it stops with Close.
func NewGoogle() *Google {
	g := &Google{clients: map[string]string{}, codes: map[string]codeGrant{}, refresh: map[string]grant{}, access: map[string]grant{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", g.token)
	mux.HandleFunc("GET /oauth2/v2/userinfo", g.userinfo)
	mux.HandleFunc("POST /revoke", g.revoke)
	g.Server = httptest.NewServer(mux)
	return g
}

// URL is the root to give googleapi.New.
func (g *Google) URL() string { return g.Server.URL }

// Close stops the server.
func (g *Google) Close() { g.Server.Close() }

// AddClient registers an OAuth client.
func (g *Google) AddClient(id, secret string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.clients[id] = secret
}

// RemoveClient deletes an OAuth client (as an admin deleting it in Cloud Console).
func (g *Google) RemoveClient(id string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.clients, id)
}

// SetFault makes the next n refresh grants (0 = all until cleared) fail with code ("" clears).
func (g *Google) SetFault(code string, n int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.fault, g.faultN = code, n
}

// OmitRefreshToken makes token answers carry no refresh token.
func (g *Google) OmitRefreshToken(v bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.omitRT = v
}

// Approve plays the consent page: it reads an authorization URL and issues a code for email, bound to
// the URL's client, redirect URI and PKCE challenge. challengeOverride replaces the challenge (tampering).
func (g *Google) Approve(authURL, email, challengeOverride string) (code, state string, err error) {
	u, err := url.Parse(authURL)
	if err != nil {
		return "", "", err
	}
	q := u.Query()
	if q.Get("code_challenge_method") != "S256" || q.Get("access_type") != "offline" || q.Get("prompt") != "consent" {
		return "", "", fmt.Errorf("authorization URL lacks PKCE S256, offline access or prompt=consent: %s", u.RawQuery)
	}
	challenge := q.Get("code_challenge")
	if challengeOverride != "" {
		challenge = challengeOverride
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.clients[q.Get("client_id")]; !ok {
		return "", "", fmt.Errorf("unknown client %q", q.Get("client_id"))
	}
	g.serial++
	code = fmt.Sprintf("code-%d", g.serial)
	g.codes[code] = codeGrant{grant: grant{clientID: q.Get("client_id"), email: email, scope: q.Get("scope")}, redirectURI: q.Get("redirect_uri"), challenge: challenge}
	return code, q.Get("state"), nil
}

func oauthErr(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
}

func (g *Google) token(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	f := r.PostForm
	if f.Get("grant_type") == "urn:ietf:params:oauth:grant-type:jwt-bearer" {
		if strings.Count(f.Get("assertion"), ".") != 2 {
			oauthErr(w, 400, "invalid_grant", "Invalid JWT")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "sa-token", "token_type": "Bearer", "expires_in": 3600})
		return
	}
	if f.Get("grant_type") == "refresh_token" {
		g.RefreshCalls.Add(1)
		if g.RefreshDelay > 0 {
			time.Sleep(g.RefreshDelay)
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	secret, ok := g.clients[f.Get("client_id")]
	if !ok {
		oauthErr(w, 401, "invalid_client", "The OAuth client was not found.")
		return
	}
	if secret != f.Get("client_secret") {
		oauthErr(w, 401, "invalid_client", "Unauthorized")
		return
	}
	g.serial++
	switch f.Get("grant_type") {
	case "authorization_code":
		g.Exchanges.Add(1)
		c, ok := g.codes[f.Get("code")]
		delete(g.codes, f.Get("code"))
		if !ok || c.clientID != f.Get("client_id") {
			oauthErr(w, 400, "invalid_grant", "Malformed auth code.")
			return
		}
		if c.redirectURI != f.Get("redirect_uri") {
			oauthErr(w, 400, "redirect_uri_mismatch", "Bad Request")
			return
		}
		sum := sha256.Sum256([]byte(f.Get("code_verifier")))
		if base64.RawURLEncoding.EncodeToString(sum[:]) != c.challenge {
			oauthErr(w, 400, "invalid_grant", "Invalid code verifier.")
			return
		}
		at, rt := fmt.Sprintf("at-%d", g.serial), fmt.Sprintf("rt-%d", g.serial)
		g.access[at], g.refresh[rt] = c.grant, c.grant
		resp := map[string]any{"access_token": at, "token_type": "Bearer", "expires_in": 3599, "scope": c.scope, "refresh_token": rt}
		if g.omitRT {
			delete(resp, "refresh_token")
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(resp)
	case "refresh_token":
		if g.fault != "" {
			code := g.fault
			if g.faultN > 0 {
				g.faultN--
				if g.faultN == 0 {
					g.fault = ""
				}
			}
			switch code {
			case "503":
				http.Error(w, "backend error", http.StatusServiceUnavailable)
			case "invalid_rapt":
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(400)
				_ = json.NewEncoder(w).Encode(map[string]string{"error": "invalid_grant", "error_description": "reauth related error (invalid_rapt)", "error_subtype": "invalid_rapt"})
			case "invalid_grant":
				oauthErr(w, 400, "invalid_grant", "Token has been expired or revoked.")
			default:
				oauthErr(w, 401, code, "Unauthorized")
			}
			return
		}
		gr, ok := g.refresh[f.Get("refresh_token")]
		if !ok || gr.clientID != f.Get("client_id") {
			oauthErr(w, 400, "invalid_grant", "Token has been expired or revoked.")
			return
		}
		at := fmt.Sprintf("at-%d", g.serial)
		g.access[at] = gr
		g.Refreshes.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": at, "token_type": "Bearer", "expires_in": 3599, "scope": gr.scope})
	default:
		oauthErr(w, 400, "unsupported_grant_type", "")
	}
}

// Grant issues tokens for email's consent to clientID with scope, as an approved consent and its code
// exchange would (without the requests): an access token and a refresh token the token endpoint honours.
func (g *Google) Grant(clientID, email, scope string) (accessToken, refreshToken string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.serial++
	at, rt := fmt.Sprintf("at-%d", g.serial), fmt.Sprintf("rt-%d", g.serial)
	gr := grant{clientID: clientID, email: email, scope: scope}
	g.access[at], g.refresh[rt] = gr, gr
	return at, rt
}

// ValidAccessToken reports whether the fake issued tok.
func (g *Google) ValidAccessToken(tok string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	_, ok := g.access[tok]
	return ok
}

func (g *Google) userinfo(w http.ResponseWriter, r *http.Request) {
	tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	g.mu.Lock()
	gr, ok := g.access[tok]
	g.mu.Unlock()
	if !ok {
		http.Error(w, `{"error":{"code":401,"message":"invalid token"}}`, http.StatusUnauthorized)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"id": "1", "email": gr.email, "verified_email": true})
}

func (g *Google) revoke(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	g.Revocations.Add(1)
	g.mu.Lock()
	delete(g.refresh, r.PostForm.Get("token"))
	g.mu.Unlock()
	w.WriteHeader(200)
}

// Set stores a value directly (tests age a stored token).
func (s *Secrets) Set(tenant, name, value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.data[tenant] == nil {
		s.data[tenant] = map[string]string{}
	}
	s.data[tenant][name] = value
}
