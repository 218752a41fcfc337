package sandbox

// Access tokens of API calls (Gmail, Calendar, userinfo): lookupToken finds the token of a request and
// beginAPI authenticates, counts, applies faults and checks scopes for one call.
//
// The token is taken from "Authorization: Bearer" or the access_token query parameter, as Google accepts. A
// user's token stops working when its refresh token is revoked or its OAuth client deleted. beginAPI goes:
// injected latency, authentication (401), injected errors, scope check (403). Faults are chosen by the token's
// client id, so a call without a valid token gets its 401 rather than a fault meant for some client.

import (
	"errors"
	"net/http"
	"strings"
)

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
	d.setRetryAfter(w)
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
