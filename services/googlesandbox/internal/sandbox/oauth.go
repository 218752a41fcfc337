package sandbox

import (
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/algapsa/alga-google/services/googlesandbox/internal/keys"
)

type project struct {
	id, number, status string
	clients            []string
}

type oauthClient struct {
	id, secret, projectID string
	redirectURIs          []string
	deleted               bool
}

type serviceAccount struct {
	email, projectID, clientID, keyID string
	key                               *rsa.PrivateKey
	keyJSON                           []byte
}

type authCode struct {
	code, clientID, redirectURI, email string
	challenge, method, nonce           string
	scopes                             []string
	offline, forceConsent              bool
	expires                            time.Time
	used                               bool
}

type grantKey struct{ email, clientID string }

type grant struct {
	scopes    []string
	consentAt time.Time
	refresh   []*refreshToken // oldest first
}

type refreshToken struct {
	token, email, clientID string
	scopes                 []string
	issued                 time.Time
	testing                bool
	revoked                bool
}

type accessToken struct {
	token, subject, clientID string
	scopes                   []string
	expires                  time.Time
	refresh                  *refreshToken
	sa                       *serviceAccount
	user                     *user
}

// Scopes the APIs check.
const (
	scopeMail          = "https://mail.google.com/"
	scopeGmailReadonly = "https://www.googleapis.com/auth/gmail.readonly"
	scopeGmailModify   = "https://www.googleapis.com/auth/gmail.modify"
	scopeGmailMetadata = "https://www.googleapis.com/auth/gmail.metadata"
	scopeCalendar      = "https://www.googleapis.com/auth/calendar"
	scopeCalendarRO    = "https://www.googleapis.com/auth/calendar.readonly"
	scopeEvents        = "https://www.googleapis.com/auth/calendar.events"
	scopeEventsRO      = "https://www.googleapis.com/auth/calendar.events.readonly"
	scopeUserEmail     = "https://www.googleapis.com/auth/userinfo.email"
	scopeUserProfile   = "https://www.googleapis.com/auth/userinfo.profile"
)

var (
	gmailScopes    = []string{scopeMail, scopeGmailReadonly, scopeGmailModify, scopeGmailMetadata}
	calendarScopes = []string{scopeCalendar, scopeCalendarRO, scopeEvents, scopeEventsRO}
)

func validScope(sc string) bool {
	switch sc {
	case "openid", "email", "profile", scopeMail:
		return true
	}
	return strings.HasPrefix(sc, "https://www.googleapis.com/auth/") && len(sc) > len("https://www.googleapis.com/auth/")
}

func hasAnyScope(have []string, want ...string) bool {
	for _, w := range want {
		if slices.Contains(have, w) {
			return true
		}
	}
	return false
}

// ---- authorization endpoint ----

type authRequest struct {
	client                          *oauthClient
	project                         *project
	redirectURI, state, loginHint   string
	scopes                          []string
	challenge, method, nonce        string
	offline, forceConsent, noPrompt bool
}

type authPageError struct {
	status int
	code   string
	msg    string
}

// parseAuthRequest validates the query of an authorization request. Caller holds s.mu.
func (s *Server) parseAuthRequest(q url.Values) (*authRequest, *authPageError) {
	cid := strings.TrimSpace(q.Get("client_id"))
	if cid == "" {
		return nil, &authPageError{400, "invalid_request", "Missing required parameter: client_id"}
	}
	c := s.clients[cid]
	if c == nil {
		return nil, &authPageError{401, "invalid_client", "The OAuth client was not found."}
	}
	if c.deleted {
		return nil, &authPageError{401, "deleted_client", "The OAuth client was deleted."}
	}
	ru := q.Get("redirect_uri")
	if ru == "" {
		return nil, &authPageError{400, "invalid_request", "Missing required parameter: redirect_uri"}
	}
	if !slices.Contains(c.redirectURIs, ru) {
		return nil, &authPageError{400, "redirect_uri_mismatch", "You can't sign in to this app because it doesn't comply with Google's OAuth 2.0 policy. redirect_uri=" + ru + " is not registered for this client."}
	}
	if rt := q.Get("response_type"); rt != "code" {
		return nil, &authPageError{400, "unsupported_response_type", "Invalid response_type: " + rt}
	}
	scopes := strings.Fields(q.Get("scope"))
	if len(scopes) == 0 {
		return nil, &authPageError{400, "invalid_request", "Missing required parameter: scope"}
	}
	for _, sc := range scopes {
		if !validScope(sc) {
			return nil, &authPageError{400, "invalid_scope", "Some requested scopes were invalid. {invalid=[" + sc + "]}"}
		}
	}
	ar := &authRequest{client: c, project: s.projects[c.projectID], redirectURI: ru, state: q.Get("state"),
		loginHint: q.Get("login_hint"), scopes: scopes, nonce: q.Get("nonce")}
	switch at := q.Get("access_type"); at {
	case "", "online":
	case "offline":
		ar.offline = true
	default:
		return nil, &authPageError{400, "invalid_request", "Invalid access_type: " + at}
	}
	for _, p := range strings.Fields(q.Get("prompt")) {
		switch p {
		case "consent":
			ar.forceConsent = true
		case "select_account":
		case "none":
			ar.noPrompt = true
		default:
			return nil, &authPageError{400, "invalid_request", "Invalid prompt: " + p}
		}
	}
	ar.challenge = q.Get("code_challenge")
	ar.method = q.Get("code_challenge_method")
	if ar.challenge != "" {
		if ar.method == "" {
			ar.method = "plain"
		}
		if ar.method != "S256" && ar.method != "plain" {
			return nil, &authPageError{400, "invalid_request", "Invalid code_challenge_method: " + ar.method}
		}
		if len(ar.challenge) < 43 || len(ar.challenge) > 128 {
			return nil, &authPageError{400, "invalid_request", "Invalid code_challenge."}
		}
	} else if ar.method != "" {
		return nil, &authPageError{400, "invalid_request", "code_challenge_method without code_challenge"}
	}
	return ar, nil
}

// accountsFor lists the accounts that may sign in to a project's app. Caller holds s.mu.
func (s *Server) accountsFor(p *project) []*user {
	var out []*user
	for _, email := range sortedKeys(s.users) {
		u := s.users[email]
		if p == nil || p.status == "production" || len(u.projects) == 0 || slices.Contains(u.projects, p.id) {
			out = append(out, u)
		}
	}
	return out
}

var consentPage = template.Must(template.New("consent").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in - Google Accounts (sandbox)</title>
<style>body{font-family:sans-serif;max-width:36rem;margin:3rem auto;color:#202124}
.box{border:1px solid #dadce0;border-radius:8px;padding:1.5rem}li{margin:.3rem 0}
button{padding:.5rem 1.2rem;margin-right:.5rem}code{font-size:.85em}</style></head>
<body><div class="box">
<h1>Google sandbox</h1>
<p><strong>{{.ProjectID}}</strong> wants to access your Google Account.</p>
<p>Client: <code>{{.ClientID}}</code>{{if .Testing}} (publishing status: testing){{end}}</p>
<form method="post" action="{{.Action}}">
<fieldset><legend>Choose an account</legend>
{{range .Accounts}}<label><input type="radio" name="account" value="{{.Email}}"{{if .Selected}} checked{{end}}> {{.Name}} &lt;{{.Email}}&gt;</label><br>
{{else}}<p>No test users can sign in to this app yet (create one with the admin API).</p>{{end}}
</fieldset>
<p>This will allow the app to:</p><ul>{{range .Scopes}}<li><code>{{.}}</code></li>{{end}}</ul>
<button type="submit" name="decision" value="approve" id="approve">Allow</button>
<button type="submit" name="decision" value="deny" id="deny">Cancel</button>
</form></div></body></html>
`))

var errorPage = template.Must(template.New("err").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Error {{.Status}} ({{.Code}})</title></head>
<body><h1>Access blocked: authorization error</h1><p id="error">Error {{.Status}}: {{.Code}}</p><p>{{.Msg}}</p></body></html>
`))

func writeAuthPageError(w http.ResponseWriter, e *authPageError) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("X-Sandbox-Error", e.code)
	w.WriteHeader(e.status)
	_ = errorPage.Execute(w, map[string]any{"Status": e.status, "Code": e.code, "Msg": e.msg})
}

func redirectWith(w http.ResponseWriter, r *http.Request, base string, params url.Values) {
	u, err := url.Parse(base)
	if err != nil {
		http.Error(w, "bad redirect_uri", http.StatusBadRequest)
		return
	}
	q := u.Query()
	for k, vs := range params {
		for _, v := range vs {
			if v != "" {
				q.Add(k, v)
			}
		}
	}
	u.RawQuery = q.Encode()
	http.Redirect(w, r, u.String(), http.StatusFound)
}

// handleAuthorize serves GET (consent page) and POST (the consent form, fields "account" and "decision")
// on /o/oauth2/v2/auth. The form posts back to the same URL, so the query carries the request.
func (s *Server) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	s.mu.Lock()
	s.count("oauth.authorize", q.Get("client_id"))
	d := s.decide(q.Get("client_id"), "oauth.authorize")
	ar, perr := s.parseAuthRequest(q)
	s.mu.Unlock()
	sleep(r.Context(), d.Latency)
	if perr != nil {
		writeAuthPageError(w, perr)
		return
	}
	if d.Status != 0 {
		http.Error(w, http.StatusText(d.Status), d.Status)
		return
	}
	if d.ForceError != "" {
		redirectWith(w, r, ar.redirectURI, url.Values{"error": {d.ForceError}, "state": {ar.state}})
		return
	}
	if r.Method == http.MethodGet {
		if ar.noPrompt {
			s.authorizeSilently(w, r, ar)
			return
		}
		s.renderConsent(w, r, ar)
		return
	}
	if err := r.ParseForm(); err != nil {
		writeAuthPageError(w, &authPageError{400, "invalid_request", "Malformed form."})
		return
	}
	switch r.PostForm.Get("decision") {
	case "deny":
		redirectWith(w, r, ar.redirectURI, url.Values{"error": {"access_denied"}, "state": {ar.state}})
		return
	case "approve":
	default:
		writeAuthPageError(w, &authPageError{400, "invalid_request", `The form field "decision" must be "approve" or "deny".`})
		return
	}
	account := strings.ToLower(strings.TrimSpace(r.PostForm.Get("account")))
	if account == "" {
		account = strings.ToLower(strings.TrimSpace(ar.loginHint))
	}
	s.mu.Lock()
	u := s.users[account]
	allowed := u != nil && slices.Contains(s.accountsFor(ar.project), u)
	if !allowed {
		s.mu.Unlock()
		if u != nil {
			writeAuthPageError(w, &authPageError{403, "access_denied", ar.project.id + " has not completed the Google verification process. The app is currently being tested, and can only be accessed by developer-approved testers."})
			return
		}
		writeAuthPageError(w, &authPageError{400, "invalid_request", "Unknown account: " + account})
		return
	}
	code := s.issueCode(ar, u)
	s.mu.Unlock()
	redirectWith(w, r, ar.redirectURI, url.Values{"state": {ar.state}, "code": {code}, "scope": {strings.Join(ar.scopes, " ")},
		"authuser": {"0"}, "prompt": {"consent"}, "iss": {Issuer}})
}

func (s *Server) authorizeSilently(w http.ResponseWriter, r *http.Request, ar *authRequest) {
	s.mu.Lock()
	var u *user
	if ar.loginHint != "" {
		u = s.users[strings.ToLower(ar.loginHint)]
	}
	if u == nil || s.grants[grantKey{u.email, ar.client.id}] == nil {
		s.mu.Unlock()
		redirectWith(w, r, ar.redirectURI, url.Values{"error": {"consent_required"}, "state": {ar.state}})
		return
	}
	code := s.issueCode(ar, u)
	s.mu.Unlock()
	redirectWith(w, r, ar.redirectURI, url.Values{"state": {ar.state}, "code": {code}, "scope": {strings.Join(ar.scopes, " ")}, "iss": {Issuer}})
}

func (s *Server) issueCode(ar *authRequest, u *user) string {
	code := "4/0A" + randString(lowerAlnum+"ABCDEFGHIJKLMNOPQRSTUVWXYZ_-", 70)
	s.codes[code] = &authCode{code: code, clientID: ar.client.id, redirectURI: ar.redirectURI, email: u.email,
		challenge: ar.challenge, method: ar.method, nonce: ar.nonce, scopes: ar.scopes, offline: ar.offline,
		forceConsent: ar.forceConsent, expires: s.now().Add(AuthCodeTTL)}
	return code
}

func (s *Server) renderConsent(w http.ResponseWriter, r *http.Request, ar *authRequest) {
	type acct struct {
		Email, Name string
		Selected    bool
	}
	s.mu.Lock()
	var accts []acct
	users := s.accountsFor(ar.project)
	for i, u := range users {
		sel := strings.EqualFold(u.email, ar.loginHint) || (ar.loginHint == "" && i == 0)
		accts = append(accts, acct{u.email, u.name, sel})
	}
	testing := ar.project != nil && ar.project.status == "testing"
	pid := ""
	if ar.project != nil {
		pid = ar.project.id
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = consentPage.Execute(w, map[string]any{"ProjectID": pid, "ClientID": ar.client.id, "Testing": testing,
		"Action": r.URL.RequestURI(), "Accounts": accts, "Scopes": ar.scopes})
}

// ---- token endpoint ----

type tokenResponse struct {
	AccessToken           string `json:"access_token"`
	ExpiresIn             int    `json:"expires_in"`
	RefreshToken          string `json:"refresh_token,omitempty"`
	RefreshTokenExpiresIn int    `json:"refresh_token_expires_in,omitempty"`
	Scope                 string `json:"scope,omitempty"`
	TokenType             string `json:"token_type"`
	IDToken               string `json:"id_token,omitempty"`
}

type oauthErr struct {
	status      int
	code, desc  string
	subtype     string
	errorURI    string
	countClient string
}

func (e *oauthErr) write(w http.ResponseWriter) {
	body := map[string]string{"error": e.code, "error_description": e.desc}
	if e.subtype != "" {
		body["error_subtype"] = e.subtype
	}
	if e.errorURI != "" {
		body["error_uri"] = e.errorURI
	}
	writeJSON(w, e.status, body)
}

func forcedOAuthError(v string) *oauthErr {
	switch v {
	case "invalid_rapt":
		return &oauthErr{status: 400, code: "invalid_grant", desc: "reauth related error (invalid_rapt)", subtype: "invalid_rapt", errorURI: "https://support.google.com/a/answer/9368756"}
	case "invalid_grant":
		return &oauthErr{status: 400, code: "invalid_grant", desc: "Token has been expired or revoked."}
	case "invalid_client":
		return &oauthErr{status: 401, code: "invalid_client", desc: "The OAuth client was not found."}
	case "deleted_client":
		return &oauthErr{status: 401, code: "invalid_client", desc: "The OAuth client was deleted."}
	case "unauthorized_client":
		return &oauthErr{status: 400, code: "unauthorized_client", desc: "Unauthorized"}
	case "invalid_request":
		return &oauthErr{status: 400, code: "invalid_request", desc: "Bad Request"}
	case "invalid_scope":
		return &oauthErr{status: 400, code: "invalid_scope", desc: "Bad Request"}
	}
	return &oauthErr{status: 400, code: v, desc: "Forced error"}
}

func grantShort(gt string) string {
	switch gt {
	case "authorization_code", "refresh_token":
		return gt
	case "urn:ietf:params:oauth:grant-type:jwt-bearer":
		return "jwt_bearer"
	}
	return "other"
}

func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		oauthError(w, 400, "invalid_request", "Malformed request body.")
		return
	}
	f := r.Form
	cid, secret, basic := r.BasicAuth()
	if !basic {
		cid, secret = f.Get("client_id"), f.Get("client_secret")
	} else {
		cid, _ = url.QueryUnescape(cid)
		secret, _ = url.QueryUnescape(secret)
	}
	gt := f.Get("grant_type")
	countKey := cid
	if gt == "urn:ietf:params:oauth:grant-type:jwt-bearer" {
		countKey = s.assertionClientID(f.Get("assertion"))
	}
	s.mu.Lock()
	s.count("oauth.token", countKey)
	s.count("oauth.token."+grantShort(gt), countKey)
	d := s.decide(countKey, "oauth.token", "oauth.token."+grantShort(gt))
	s.mu.Unlock()
	sleep(r.Context(), d.Latency)
	if d.Status == 429 {
		oauthError(w, 429, "rate_limit_exceeded", "Rate limit exceeded.")
		return
	}
	if d.Status != 0 {
		oauthError(w, d.Status, "internal_failure", "Backend error.")
		return
	}
	if d.ForceError != "" {
		forcedOAuthError(d.ForceError).write(w)
		return
	}
	var (
		resp *tokenResponse
		oe   *oauthErr
	)
	s.mu.Lock()
	switch gt {
	case "authorization_code":
		resp, oe = s.exchangeCode(cid, secret, f)
	case "refresh_token":
		resp, oe = s.refresh(cid, secret, f)
	case "urn:ietf:params:oauth:grant-type:jwt-bearer":
		resp, oe = s.jwtBearer(r, f)
	case "":
		oe = &oauthErr{status: 400, code: "unsupported_grant_type", desc: "Invalid grant_type: "}
	default:
		oe = &oauthErr{status: 400, code: "unsupported_grant_type", desc: "Invalid grant_type: " + gt}
	}
	s.mu.Unlock()
	if oe != nil {
		oe.write(w)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// authClient checks client credentials. Caller holds s.mu.
func (s *Server) authClient(cid, secret string) (*oauthClient, *oauthErr) {
	if cid == "" {
		return nil, &oauthErr{status: 400, code: "invalid_request", desc: "Missing required parameter: client_id"}
	}
	c := s.clients[cid]
	if c == nil {
		return nil, &oauthErr{status: 401, code: "invalid_client", desc: "The OAuth client was not found."}
	}
	if c.deleted {
		return nil, &oauthErr{status: 401, code: "invalid_client", desc: "The OAuth client was deleted."}
	}
	if subtle.ConstantTimeCompare([]byte(secret), []byte(c.secret)) != 1 {
		return nil, &oauthErr{status: 401, code: "invalid_client", desc: "Unauthorized"}
	}
	return c, nil
}

func pkceOK(method, challenge, verifier string) bool {
	if len(verifier) < 43 || len(verifier) > 128 {
		return false
	}
	want := verifier
	if method == "S256" {
		sum := sha256.Sum256([]byte(verifier))
		want = base64.RawURLEncoding.EncodeToString(sum[:])
	}
	return subtle.ConstantTimeCompare([]byte(want), []byte(challenge)) == 1
}

func (s *Server) exchangeCode(cid, secret string, f url.Values) (*tokenResponse, *oauthErr) {
	c, oe := s.authClient(cid, secret)
	if oe != nil {
		return nil, oe
	}
	code := f.Get("code")
	if code == "" {
		return nil, &oauthErr{status: 400, code: "invalid_request", desc: "Missing required parameter: code"}
	}
	ac := s.codes[code]
	if ac == nil {
		return nil, &oauthErr{status: 400, code: "invalid_grant", desc: "Malformed auth code."}
	}
	if ac.used || s.now().After(ac.expires) || ac.clientID != c.id {
		return nil, &oauthErr{status: 400, code: "invalid_grant", desc: "Bad Request"}
	}
	if f.Get("redirect_uri") != ac.redirectURI {
		return nil, &oauthErr{status: 400, code: "redirect_uri_mismatch", desc: "Bad Request"}
	}
	if ac.challenge != "" {
		v := f.Get("code_verifier")
		if v == "" {
			return nil, &oauthErr{status: 400, code: "invalid_grant", desc: "Missing code verifier."}
		}
		if !pkceOK(ac.method, ac.challenge, v) {
			return nil, &oauthErr{status: 400, code: "invalid_grant", desc: "Invalid code verifier."}
		}
	}
	ac.used = true
	delete(s.codes, code)
	u := s.users[ac.email]
	if u == nil {
		return nil, &oauthErr{status: 400, code: "invalid_grant", desc: "Account has been deleted"}
	}
	gk := grantKey{u.email, c.id}
	g := s.grants[gk]
	hadLiveRefresh := false
	if g != nil {
		for _, rt := range g.refresh {
			if s.refreshLive(rt) {
				hadLiveRefresh = true
			}
		}
	} else {
		g = &grant{}
		s.grants[gk] = g
	}
	now := s.now()
	g.consentAt = now
	for _, sc := range ac.scopes {
		if !slices.Contains(g.scopes, sc) {
			g.scopes = append(g.scopes, sc)
		}
	}
	resp := &tokenResponse{TokenType: "Bearer", Scope: strings.Join(ac.scopes, " ")}
	var rt *refreshToken
	if ac.offline && (ac.forceConsent || !hadLiveRefresh) {
		p := s.projects[c.projectID]
		rt = &refreshToken{token: "1//0" + randString(lowerAlnum+"ABCDEFGHIJKLMNOPQRSTUVWXYZ_-", 100), email: u.email,
			clientID: c.id, scopes: ac.scopes, issued: now, testing: p != nil && p.status == "testing"}
		s.refreshTokens[rt.token] = rt
		g.refresh = append(g.refresh, rt)
		s.enforceRefreshLimit(g)
		resp.RefreshToken = rt.token
		if rt.testing {
			resp.RefreshTokenExpiresIn = int(TestingRefreshTTL/time.Second) - 1
		}
	}
	at := s.issueAccess(u.email, c.id, ac.scopes, rt, nil, u)
	resp.AccessToken = at.token
	resp.ExpiresIn = int(AccessTokenLifetime/time.Second) - 1
	if slices.Contains(ac.scopes, "openid") {
		resp.IDToken = s.idToken(u, c.id, ac.scopes, ac.nonce)
	}
	return resp, nil
}

// enforceRefreshLimit silently invalidates the oldest live refresh tokens beyond the limit. Caller holds s.mu.
func (s *Server) enforceRefreshLimit(g *grant) {
	live := 0
	for i := len(g.refresh) - 1; i >= 0; i-- {
		rt := g.refresh[i]
		if rt.revoked {
			continue
		}
		live++
		if live > MaxRefreshTokens {
			rt.revoked = true
			s.dropAccessFor(rt)
		}
	}
	kept := g.refresh[:0]
	for _, rt := range g.refresh {
		if !rt.revoked {
			kept = append(kept, rt)
		} else {
			delete(s.refreshTokens, rt.token)
		}
	}
	g.refresh = kept
}

func (s *Server) refreshLive(rt *refreshToken) bool {
	if rt.revoked {
		return false
	}
	if rt.testing && s.now().Sub(rt.issued) >= TestingRefreshTTL {
		return false
	}
	c := s.clients[rt.clientID]
	return c != nil && !c.deleted
}

func (s *Server) dropAccessFor(rt *refreshToken) {
	for k, at := range s.accessTokens {
		if at.refresh == rt {
			delete(s.accessTokens, k)
		}
	}
}

func (s *Server) issueAccess(subject, clientID string, scopes []string, rt *refreshToken, sa *serviceAccount, u *user) *accessToken {
	at := &accessToken{token: "ya29.a0" + randString(lowerAlnum+"ABCDEFGHIJKLMNOPQRSTUVWXYZ_-", 120), subject: subject,
		clientID: clientID, scopes: scopes, expires: s.now().Add(AccessTokenLifetime), refresh: rt, sa: sa, user: u}
	s.accessTokens[at.token] = at
	s.gcAccessTokens()
	return at
}

// gcAccessTokens forgets tokens that expired more than a day ago (sandbox clock). Caller holds s.mu.
func (s *Server) gcAccessTokens() {
	if len(s.accessTokens)%256 != 0 {
		return
	}
	cut := s.now().Add(-24 * time.Hour)
	for k, at := range s.accessTokens {
		if at.expires.Before(cut) {
			delete(s.accessTokens, k)
		}
	}
}

func (s *Server) refresh(cid, secret string, f url.Values) (*tokenResponse, *oauthErr) {
	c, oe := s.authClient(cid, secret)
	if oe != nil {
		return nil, oe
	}
	tok := f.Get("refresh_token")
	if tok == "" {
		return nil, &oauthErr{status: 400, code: "invalid_request", desc: "Missing required parameter: refresh_token"}
	}
	rt := s.refreshTokens[tok]
	if rt == nil {
		return nil, &oauthErr{status: 400, code: "invalid_grant", desc: "Token has been expired or revoked."}
	}
	if rt.clientID != c.id {
		return nil, &oauthErr{status: 400, code: "unauthorized_client", desc: "Unauthorized"}
	}
	if !s.refreshLive(rt) {
		return nil, &oauthErr{status: 400, code: "invalid_grant", desc: "Token has been expired or revoked."}
	}
	u := s.users[rt.email]
	if u == nil {
		return nil, &oauthErr{status: 400, code: "invalid_grant", desc: "Account has been deleted"}
	}
	scopes := rt.scopes
	if req := strings.Fields(f.Get("scope")); len(req) > 0 {
		for _, sc := range req {
			if !slices.Contains(rt.scopes, sc) {
				return nil, &oauthErr{status: 400, code: "invalid_scope", desc: "Bad Request"}
			}
		}
		scopes = req
	}
	at := s.issueAccess(u.email, c.id, scopes, rt, nil, u)
	resp := &tokenResponse{AccessToken: at.token, ExpiresIn: int(AccessTokenLifetime/time.Second) - 1, TokenType: "Bearer", Scope: strings.Join(scopes, " ")}
	if rt.testing {
		left := TestingRefreshTTL - s.now().Sub(rt.issued)
		resp.RefreshTokenExpiresIn = int(left / time.Second)
	}
	if slices.Contains(scopes, "openid") {
		resp.IDToken = s.idToken(u, c.id, scopes, "")
	}
	return resp, nil
}

// assertionClientID reads the service account's client id from a JWT assertion (for counters only).
func (s *Server) assertionClientID(assertion string) string {
	h, claims, err := keys.Parse(assertion)
	if err != nil {
		return ""
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if sa := s.saKeys[h.Kid]; sa != nil {
		return sa.clientID
	}
	if iss, _ := claims["iss"].(string); iss != "" {
		if sa := s.serviceAccts[iss]; sa != nil {
			return sa.clientID
		}
	}
	return ""
}

func numClaim(claims map[string]any, name string) (int64, bool) {
	switch v := claims[name].(type) {
	case float64:
		return int64(v), true
	case json.Number:
		n, err := v.Int64()
		return n, err == nil
	case string:
		n, err := strconv.ParseInt(v, 10, 64)
		return n, err == nil
	}
	return 0, false
}

func (s *Server) tokenAudiences(r *http.Request) []string {
	out := []string{"https://oauth2.googleapis.com/token", "https://accounts.google.com/o/oauth2/token",
		"https://www.googleapis.com/oauth2/v4/token"}
	if s.root() != "" {
		out = append(out, s.root()+"/token")
	}
	out = append(out, "http://"+r.Host+"/token")
	return out
}

func (s *Server) jwtBearer(r *http.Request, f url.Values) (*tokenResponse, *oauthErr) {
	assertion := f.Get("assertion")
	if assertion == "" {
		return nil, &oauthErr{status: 400, code: "invalid_request", desc: "Missing required parameter: assertion"}
	}
	h, claims, err := keys.Parse(assertion)
	if err != nil {
		return nil, &oauthErr{status: 400, code: "invalid_grant", desc: "Invalid JWT: " + err.Error()}
	}
	iss, _ := claims["iss"].(string)
	sa := s.saKeys[h.Kid]
	if sa == nil && h.Kid == "" {
		sa = s.serviceAccts[iss]
	}
	if sa == nil || h.Alg != "RS256" || keys.Verify(assertion, &sa.key.PublicKey) != nil {
		return nil, &oauthErr{status: 400, code: "invalid_grant", desc: "Invalid JWT Signature."}
	}
	if iss != sa.email {
		return nil, &oauthErr{status: 400, code: "invalid_grant", desc: "Invalid JWT: iss does not match the key's service account."}
	}
	aud, _ := claims["aud"].(string)
	if !slices.Contains(s.tokenAudiences(r), aud) {
		return nil, &oauthErr{status: 400, code: "invalid_grant", desc: "Invalid JWT: Failed audience check."}
	}
	iat, ok1 := numClaim(claims, "iat")
	exp, ok2 := numClaim(claims, "exp")
	wall := time.Now().Unix()
	if !ok1 || !ok2 || exp <= wall || exp-iat > 3600 || iat > wall+300 || exp < iat {
		return nil, &oauthErr{status: 400, code: "invalid_grant", desc: "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim."}
	}
	if sub, _ := claims["sub"].(string); sub != "" && sub != sa.email {
		return nil, &oauthErr{status: 401, code: "unauthorized_client", desc: "Client is unauthorized to retrieve access tokens using this method, or client not authorized for any of the scopes requested."}
	}
	scope, _ := claims["scope"].(string)
	scopes := strings.Fields(scope)
	if len(scopes) == 0 {
		return nil, &oauthErr{status: 400, code: "invalid_scope", desc: "Empty or missing scope not allowed."}
	}
	at := s.issueAccess(sa.email, sa.clientID, scopes, nil, sa, nil)
	return &tokenResponse{AccessToken: at.token, ExpiresIn: int(AccessTokenLifetime/time.Second) - 1, TokenType: "Bearer"}, nil
}

// idToken signs an OIDC ID token. iat/exp use the wall clock so ordinary verifiers accept it.
func (s *Server) idToken(u *user, clientID string, scopes []string, nonce string) string {
	now := time.Now()
	claims := map[string]any{"iss": Issuer, "azp": clientID, "aud": clientID, "sub": u.id,
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
	if slices.Contains(scopes, "email") || slices.Contains(scopes, scopeUserEmail) {
		claims["email"] = u.email
		claims["email_verified"] = true
	}
	if slices.Contains(scopes, "profile") || slices.Contains(scopes, scopeUserProfile) {
		claims["name"] = u.name
	}
	if nonce != "" {
		claims["nonce"] = nonce
	}
	tok, err := keys.Sign(s.signKey, s.signKid, claims)
	if err != nil {
		return ""
	}
	return tok
}

// ---- revoke ----

func (s *Server) handleRevoke(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	tok := r.Form.Get("token")
	s.mu.Lock()
	var cid string
	if rt := s.refreshTokens[tok]; rt != nil {
		cid = rt.clientID
	} else if at := s.accessTokens[tok]; at != nil {
		cid = at.clientID
	}
	s.count("oauth.revoke", cid)
	d := s.decide(cid, "oauth.revoke")
	s.mu.Unlock()
	sleep(r.Context(), d.Latency)
	if d.Status != 0 {
		oauthError(w, d.Status, "internal_failure", "Backend error.")
		return
	}
	if d.ForceError != "" {
		forcedOAuthError(d.ForceError).write(w)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if rt := s.refreshTokens[tok]; rt != nil && !rt.revoked {
		s.revokeGrant(rt.email, rt.clientID)
		writeJSON(w, 200, map[string]any{})
		return
	}
	if at := s.accessTokens[tok]; at != nil && s.now().Before(at.expires) {
		if at.user != nil {
			s.revokeGrant(at.user.email, at.clientID)
		} else {
			delete(s.accessTokens, tok)
		}
		writeJSON(w, 200, map[string]any{})
		return
	}
	oauthError(w, 400, "invalid_token", "Token expired or revoked")
}

// revokeGrant kills every token of (email, client). Caller holds s.mu. Reports whether a grant existed.
func (s *Server) revokeGrant(email, clientID string) bool {
	gk := grantKey{email, clientID}
	g := s.grants[gk]
	for _, rt := range g.refreshTokensOrNil() {
		rt.revoked = true
		delete(s.refreshTokens, rt.token)
	}
	found := g != nil
	for k, at := range s.accessTokens {
		if at.user != nil && at.user.email == email && at.clientID == clientID {
			delete(s.accessTokens, k)
			found = true
		}
	}
	delete(s.grants, gk)
	return found
}

func (g *grant) refreshTokensOrNil() []*refreshToken {
	if g == nil {
		return nil
	}
	return g.refresh
}

// ---- bearer tokens for APIs ----

var errNoToken = errors.New("no token")

// lookupToken finds a live access token from an Authorization header. Caller holds s.mu.
func (s *Server) lookupToken(r *http.Request) (*accessToken, error) {
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok {
		tok, ok = strings.CutPrefix(h, "bearer ")
	}
	if !ok {
		if t := r.URL.Query().Get("access_token"); t != "" {
			tok, ok = t, true
		}
	}
	if !ok || tok == "" {
		return nil, errNoToken
	}
	at := s.accessTokens[strings.TrimSpace(tok)]
	if at == nil {
		return nil, errors.New("unknown token")
	}
	if !s.now().Before(at.expires) {
		return nil, errors.New("expired token")
	}
	if at.refresh != nil && at.refresh.revoked {
		return nil, errors.New("revoked")
	}
	if at.sa == nil {
		if c := s.clients[at.clientID]; c == nil || c.deleted {
			return nil, errors.New("client deleted")
		}
	}
	return at, nil
}

// apiCall is an authenticated API request that passed faults.
type apiCall struct {
	tok *accessToken
}

// beginAPI authenticates, counts and applies faults for one API call. It writes the error itself and
// returns nil when the call must stop. It does not hold s.mu when it returns.
func (s *Server) beginAPI(w http.ResponseWriter, r *http.Request, endpoint string, scopes []string) *apiCall {
	s.mu.Lock()
	at, err := s.lookupToken(r)
	cid := ""
	if at != nil {
		cid = at.clientID
	}
	s.count(endpoint, cid)
	d := s.decide(cid, endpoint)
	s.mu.Unlock()
	if !sleep(r.Context(), d.Latency) {
		return nil
	}
	if err != nil {
		if err == errNoToken {
			apiError(w, 401, "required", "Request is missing required authentication credential. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.")
			return nil
		}
		apiError(w, 401, "authError", "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.")
		return nil
	}
	if d.ForceError != "" {
		code, reason, msg := forcedAPIStatus(d.ForceError)
		apiError(w, code, reason, msg)
		return nil
	}
	if d.Status == 429 {
		apiError(w, 429, "rateLimitExceeded", "Too many concurrent requests for user.")
		return nil
	}
	if d.Status != 0 {
		apiError(w, d.Status, "backendError", "Backend Error")
		return nil
	}
	if len(scopes) > 0 && !hasAnyScope(at.scopes, scopes...) {
		apiError(w, 403, "insufficientPermissions", "Request had insufficient authentication scopes.")
		return nil
	}
	return &apiCall{tok: at}
}

// ---- userinfo, tokeninfo, discovery, certs ----

func (s *Server) handleUserinfo(version string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c := s.beginAPI(w, r, "oauth.userinfo", nil)
		if c == nil {
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		u := c.tok.user
		if u == nil {
			if version == "v3" {
				writeJSON(w, 200, map[string]any{"sub": c.tok.sa.clientID, "email": c.tok.sa.email, "email_verified": true})
			} else {
				writeJSON(w, 200, map[string]any{"id": c.tok.sa.clientID, "email": c.tok.sa.email, "verified_email": true})
			}
			return
		}
		sc := c.tok.scopes
		withEmail := hasAnyScope(sc, "email", scopeUserEmail, "openid")
		withProfile := hasAnyScope(sc, "profile", scopeUserProfile)
		given, family, _ := strings.Cut(u.name, " ")
		if version == "v3" {
			out := map[string]any{"sub": u.id}
			if withEmail {
				out["email"], out["email_verified"] = u.email, true
			}
			if withProfile {
				out["name"], out["given_name"], out["family_name"], out["picture"] = u.name, given, family, s.root()+"/sandbox/avatar.png"
			}
			writeJSON(w, 200, out)
			return
		}
		out := map[string]any{"id": u.id}
		if withEmail {
			out["email"], out["verified_email"] = u.email, true
		}
		if withProfile {
			out["name"], out["given_name"], out["family_name"], out["picture"] = u.name, given, family, s.root()+"/sandbox/avatar.png"
		}
		writeJSON(w, 200, out)
	}
}

func (s *Server) handleTokeninfo(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	tok := r.Form.Get("access_token")
	s.mu.Lock()
	defer s.mu.Unlock()
	s.count("oauth.tokeninfo", "")
	at := s.accessTokens[tok]
	if at == nil || !s.now().Before(at.expires) {
		writeJSON(w, 400, map[string]string{"error": "invalid_token", "error_description": "Invalid Value"})
		return
	}
	out := map[string]any{"azp": at.clientID, "aud": at.clientID, "scope": strings.Join(at.scopes, " "),
		"exp": strconv.FormatInt(at.expires.Unix(), 10), "expires_in": strconv.Itoa(int(at.expires.Sub(s.now()) / time.Second))}
	if at.user != nil {
		out["sub"], out["email"], out["email_verified"] = at.user.id, at.user.email, "true"
		if at.refresh != nil {
			out["access_type"] = "offline"
		} else {
			out["access_type"] = "online"
		}
	} else if at.sa != nil {
		out["email"], out["email_verified"] = at.sa.email, "true"
	}
	writeJSON(w, 200, out)
}

func (s *Server) rootFor(r *http.Request) string {
	if s.root() != "" {
		return s.root()
	}
	return "http://" + r.Host
}

func (s *Server) handleDiscovery(w http.ResponseWriter, r *http.Request) {
	root := s.rootFor(r)
	writeJSON(w, 200, map[string]any{
		"issuer":                                Issuer,
		"authorization_endpoint":                root + "/o/oauth2/v2/auth",
		"token_endpoint":                        root + "/token",
		"userinfo_endpoint":                     root + "/oauth2/v3/userinfo",
		"revocation_endpoint":                   root + "/revoke",
		"jwks_uri":                              root + "/oauth2/v3/certs",
		"response_types_supported":              []string{"code"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"scopes_supported":                      []string{"openid", "email", "profile"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "client_secret_basic"},
		"claims_supported":                      []string{"aud", "email", "email_verified", "exp", "iat", "iss", "name", "sub", "azp", "nonce"},
		"code_challenge_methods_supported":      []string{"plain", "S256"},
		"grant_types_supported":                 []string{"authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:jwt-bearer"},
	})
}

func (s *Server) handleCerts(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.count("oauth.certs", "")
	s.mu.Unlock()
	w.Header().Set("Cache-Control", "public, max-age=300")
	writeJSON(w, 200, map[string]any{"keys": []keys.JWK{keys.PublicJWK(s.signKid, &s.signKey.PublicKey)}})
}

// ---- admin: projects, clients, service accounts ----

func (s *Server) newClient(p *project, redirectURIs []string) *oauthClient {
	c := &oauthClient{
		id:           p.number + "-" + randString(lowerAlnum, 32) + ".apps.googleusercontent.com",
		secret:       "GOCSPX-" + randString(lowerAlnum+"ABCDEFGHIJKLMNOPQRSTUVWXYZ_-", 28),
		projectID:    p.id,
		redirectURIs: slices.Clone(redirectURIs),
	}
	s.clients[c.id] = c
	p.clients = append(p.clients, c.id)
	return c
}

func (s *Server) createServiceAccount(p *project, name string) (*serviceAccount, error) {
	email := name + "@" + p.id + ".iam.gserviceaccount.com"
	if s.serviceAccts[email] != nil {
		return nil, fmt.Errorf("service account %s already exists", email)
	}
	k, err := keys.Get()
	if err != nil {
		return nil, err
	}
	pemKey, err := keys.PEMPKCS8(k)
	if err != nil {
		return nil, err
	}
	sa := &serviceAccount{email: email, projectID: p.id, clientID: randDigits(21), keyID: randHex(40), key: k}
	root := s.root()
	keyJSON := map[string]string{
		"type":                        "service_account",
		"project_id":                  p.id,
		"private_key_id":              sa.keyID,
		"private_key":                 pemKey,
		"client_email":                email,
		"client_id":                   sa.clientID,
		"auth_uri":                    root + "/o/oauth2/auth",
		"token_uri":                   root + "/token",
		"auth_provider_x509_cert_url": root + "/oauth2/v1/certs",
		"client_x509_cert_url":        root + "/robot/v1/metadata/x509/" + url.PathEscape(email),
		"universe_domain":             "googleapis.com",
	}
	b, err := json.MarshalIndent(keyJSON, "", "  ")
	if err != nil {
		return nil, err
	}
	sa.keyJSON = b
	s.serviceAccts[email] = sa
	s.saKeys[sa.keyID] = sa
	return sa, nil
}
