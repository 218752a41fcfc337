package sandbox

// Token endpoint: POST /token and /o/oauth2/token, for the authorization_code, refresh_token and JWT-bearer
// (service account) grants, and the ID tokens they carry.
//
// Client credentials come by HTTP Basic (form-URL-encoded, RFC 6749 section 2.3.1, hence the unescape) or in
// the body. Counters and faults are keyed by client id; for the JWT-bearer grant that is the service account's
// client id, read from the assertion before it is verified (assertionClientID). As with Google, a refresh
// token is issued only for access_type=offline, and only when the grant has no live one or prompt=consent was
// given; a grant keeps at most MaxRefreshTokens live (the oldest die silently), and those of testing-status
// projects expire after TestingRefreshTTL. expires_in is the lifetime minus one second (3599), as Google
// answers. Assertion iat/exp and ID-token times use the wall clock, not the sandbox clock, because the client
// libraries that sign and verify them do.

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/algapsa/alga-google/services/googlesandbox/internal/keys"
)

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
	status     int
	code, desc string
	subtype    string
	errorURI   string
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
	d.setRetryAfter(w)
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
	resp := s.consentTokens(u, c, ac.scopes, ac.offline, ac.forceConsent)
	if slices.Contains(ac.scopes, "openid") {
		resp.IDToken = s.idToken(u, c.id, ac.scopes, ac.nonce)
	}
	return resp, nil
}

// consentTokens records u's consent to c for scopes (the grant, its scopes and consent time) and issues
// what the code exchange answers: an access token, and a refresh token for an offline request when the
// consent was forced or the grant has no live one. The admin API's SeedGrants uses it too. Caller holds
// s.mu.
func (s *Server) consentTokens(u *user, c *oauthClient, scopes []string, offline, forceConsent bool) *tokenResponse {
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
	for _, sc := range scopes {
		if !slices.Contains(g.scopes, sc) {
			g.scopes = append(g.scopes, sc)
		}
	}
	resp := &tokenResponse{TokenType: "Bearer", Scope: strings.Join(scopes, " ")}
	var rt *refreshToken
	if offline && (forceConsent || !hadLiveRefresh) {
		p := s.projects[c.projectID]
		rt = &refreshToken{token: "1//0" + randString(lowerAlnum+"ABCDEFGHIJKLMNOPQRSTUVWXYZ_-", 100), email: u.email,
			clientID: c.id, scopes: scopes, issued: now, testing: p != nil && p.status == "testing"}
		s.refreshTokens[rt.token] = rt
		g.refresh = append(g.refresh, rt)
		s.enforceRefreshLimit(g)
		resp.RefreshToken = rt.token
		if rt.testing {
			resp.RefreshTokenExpiresIn = int(TestingRefreshTTL/time.Second) - 1
		}
	}
	at := s.issueAccess(u.email, c.id, scopes, rt, nil, u)
	resp.AccessToken = at.token
	resp.ExpiresIn = int(AccessTokenLifetime/time.Second) - 1
	return resp
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
