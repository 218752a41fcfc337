package sandbox

// Identity endpoints: userinfo (/oauth2/v1, v2, v3), tokeninfo (/oauth2/v3/tokeninfo), the OIDC discovery
// document (/.well-known/openid-configuration) and the JWKS (/oauth2/v3/certs).
//
// v1 answers like v2 (id, verified_email); v3 uses the OIDC claim names (sub, email_verified). Userinfo returns
// only the fields the token's email and profile scopes allow. Only userinfo goes through beginAPI; tokeninfo,
// discovery and certs take no injected faults. Discovery builds endpoint URLs from the sandbox root, or the
// request's Host when no root is set, while the issuer stays Issuer (https://accounts.google.com), the
// issuer of the sandbox's ID tokens, which is what code configured for Google checks.

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/algapsa/alga-google/services/googlesandbox/internal/keys"
)

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
