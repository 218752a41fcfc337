package sandbox

// Revocation endpoint: /revoke (GET or POST, token in the query or the form).
//
// As with Google, revoking a refresh token, or an access token of a user, ends the whole grant of (account,
// client): every refresh and access token of it (prompt=none then answers consent_required). An access
// token of a service account is revoked alone. Unknown, expired and already revoked tokens get 400
// invalid_token.

import (
	"net/http"
)

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
