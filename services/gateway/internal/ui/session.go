package ui

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"google.golang.org/grpc/metadata"

	"github.com/algapsa/alga-google/services/platform/auth"
)

// CSRFHeader carries the session's CSRF token on every write made with the session cookie.
const CSRFHeader = "X-Alga-CSRF"

// maxSession bounds a session even when the platform's token lives longer.
const maxSession = 12 * time.Hour

// session is a signed-in browser: the platform token from its cookie and the identity it carries.
type session struct {
	token string
	id    auth.Identity
	csrf  string
}

func (s *session) canEdit() bool { return s.id.Has(auth.PermSystemSettingsUpdate) }

// CSRF, Tenant and User are what the templates show of a session.
func (s *session) CSRF() string   { return s.csrf }
func (s *session) Tenant() string { return s.id.Tenant }
func (s *session) User() string   { return s.id.Subject }

// outgoing returns ctx with the user's bearer for gRPC calls made on the user's behalf.
func (s *session) outgoing(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+s.token)
}

// CookieName is the session cookie's name: with the __Host- prefix (Secure, Path=/, no Domain) on https.
func (s *Server) CookieName() string {
	if s.secure {
		return "__Host-alga_session"
	}
	return "alga_session"
}

// csrfToken derives the CSRF token bound to one session cookie value.
func (s *Server) csrfToken(cookieValue string) string {
	m := hmac.New(sha256.New, s.opt.CSRFKey)
	m.Write([]byte("alga-google ui csrf\x00"))
	m.Write([]byte(cookieValue))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (s *Server) validCSRF(cookieValue, presented string) bool {
	if presented == "" || cookieValue == "" {
		return false
	}
	return hmac.Equal([]byte(s.csrfToken(cookieValue)), []byte(presented))
}

// origin is the canonical origin ("https://host[:port]").
func (s *Server) origin() string { return s.base.Scheme + "://" + s.base.Host }

// sameOrigin reports whether a state-changing browser request comes from the UI's own origin: Fetch
// Metadata (Sec-Fetch-Site) when the browser sends it, and the Origin header when present. In --dev the
// origin the browser actually used (its Host) is accepted too.
func (s *Server) sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" {
		return false
	}
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	if o == s.origin() {
		return true
	}
	if s.opt.Dev {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		return o == scheme+"://"+r.Host
	}
	return false
}

// crossSite reports a request made by another site (refused for sign-in: no login CSRF from elsewhere).
func crossSite(r *http.Request) bool {
	return r.Header.Get("Sec-Fetch-Site") == "cross-site" || r.Header.Get("Origin") == "null"
}

// readSession returns the signed-in session of r, or nil (no cookie, or a token no longer valid).
func (s *Server) readSession(r *http.Request) (*session, error) {
	c, err := r.Cookie(s.CookieName())
	if err != nil || c.Value == "" {
		return nil, nil
	}
	id, err := s.opt.Verifier.Verify(r.Context(), c.Value)
	if err != nil {
		return nil, err
	}
	if id.IsService() {
		return nil, auth.ErrUnauthenticated
	}
	return &session{token: c.Value, id: id, csrf: s.csrfToken(c.Value)}, nil
}

func (s *Server) sessionCookie(value string, maxAge int) *http.Cookie {
	return &http.Cookie{
		Name: s.CookieName(), Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteStrictMode,
	}
}

// tokenExpiry reads exp from an already verified JWT.
func tokenExpiry(raw string) (time.Time, bool) {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return time.Time{}, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return time.Time{}, false
	}
	var c struct {
		Exp float64 `json:"exp"`
	}
	if json.Unmarshal(payload, &c) != nil || c.Exp == 0 {
		return time.Time{}, false
	}
	return time.Unix(int64(c.Exp), 0), true
}

// startSession verifies a platform token and sets the session cookie. It answers the HTTP status to
// refuse with (0 on success) and a message for people.
func (s *Server) startSession(w http.ResponseWriter, r *http.Request, raw string) (int, string) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return http.StatusBadRequest, "No token was presented."
	}
	if len(raw) > 3500 {
		return http.StatusBadRequest, "The token is too large for a session cookie."
	}
	id, err := s.opt.Verifier.Verify(r.Context(), raw)
	switch {
	case errors.Is(err, auth.ErrForbiddenUserType):
		return http.StatusForbidden, "Client portal users cannot use the Google integration settings."
	case err != nil:
		return http.StatusUnauthorized, "The token is not valid (expired, wrong issuer or audience, or a bad signature)."
	case id.IsService():
		return http.StatusForbidden, "Service tokens cannot sign in to the UI."
	}
	exp, ok := tokenExpiry(raw)
	now := s.opt.Now()
	if !ok || !exp.After(now) {
		return http.StatusUnauthorized, "The token has no usable expiry."
	}
	ttl := exp.Sub(now)
	if ttl > maxSession {
		ttl = maxSession
	}
	http.SetCookie(w, s.sessionCookie(raw, int(ttl/time.Second)))
	s.opt.Logger.InfoContext(r.Context(), "ui session started", "tenant", id.Tenant, "user", id.Subject)
	return 0, ""
}

// createSession is POST /ui/session: the production sign-in. The platform hands its JWT over in the
// Authorization header (fetch) or a form field "token" (a top-level form post); the answer sets the
// session cookie and never echoes the token.
func (s *Server) createSession(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	if crossSite(r) {
		http.Error(w, "cross-site sign-in refused", http.StatusForbidden)
		return
	}
	raw, isForm := "", false
	if h := r.Header.Get("Authorization"); strings.HasPrefix(h, "Bearer ") {
		raw = strings.TrimPrefix(h, "Bearer ")
	} else {
		ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
		switch ct {
		case "application/x-www-form-urlencoded", "multipart/form-data":
			isForm = true
			raw = r.PostFormValue("token")
		case "application/json":
			var body struct {
				Token string `json:"token"`
			}
			_ = json.NewDecoder(http.MaxBytesReader(w, r.Body, 16<<10)).Decode(&body)
			raw = body.Token
		}
	}
	code, msg := s.startSession(w, r, raw)
	if isForm {
		if code != 0 {
			w.WriteHeader(code)
			s.renderSignIn(w, r, msg)
			return
		}
		http.Redirect(w, r, safeNext(r.PostFormValue("next")), http.StatusSeeOther)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if code != 0 {
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"signed_in": true})
}

// sessionInfo is GET /ui/session: who is signed in (no token).
func (s *Server) sessionInfo(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	w.Header().Set("Content-Type", "application/json")
	sess, _ := s.readSession(r)
	if sess == nil {
		_ = json.NewEncoder(w).Encode(map[string]any{"signed_in": false})
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{
		"signed_in": true, "tenant": sess.id.Tenant, "user": sess.id.Subject, "permissions": sess.id.Permissions,
	})
}

// signOut is POST /ui/signout (a same-origin form carrying the CSRF token).
func (s *Server) signOut(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	c, err := r.Cookie(s.CookieName())
	presented := r.Header.Get(CSRFHeader)
	if presented == "" {
		presented = r.PostFormValue("csrf")
	}
	if err != nil || !s.sameOrigin(r) || !s.validCSRF(c.Value, presented) {
		http.Error(w, "sign-out refused: not a request of this page", http.StatusForbidden)
		return
	}
	http.SetCookie(w, s.sessionCookie("", -1))
	http.Redirect(w, r, SignInPath+"?signed_out=1", http.StatusSeeOther)
}

// devSession is POST /ui/dev/session (--dev only): mints a token for the chosen tenant, user and
// permissions and signs in with it, through the same checks as the production path.
func (s *Server) devSession(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	if !s.sameOrigin(r) {
		http.Error(w, "cross-origin sign-in refused", http.StatusForbidden)
		return
	}
	if s.opt.UserSigner == nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		s.renderSignIn(w, r, "The dev sign-in needs ALGA_AUTH_HS256_KEY (user tokens signed with HS256).")
		return
	}
	_ = r.ParseForm()
	tenant, user := strings.TrimSpace(r.PostFormValue("tenant")), strings.TrimSpace(r.PostFormValue("user"))
	if tenant == "" || user == "" {
		w.WriteHeader(http.StatusBadRequest)
		s.renderSignIn(w, r, "Tenant and user are required.")
		return
	}
	var perms []string
	for _, p := range r.PostForm["permission"] {
		if p = strings.TrimSpace(p); p != "" {
			perms = append(perms, p)
		}
	}
	userType := auth.UserTypeInternal
	if r.PostFormValue("user_type") == auth.UserTypeClient {
		userType = auth.UserTypeClient
	}
	tok, err := s.opt.UserSigner.MintUser(auth.UserToken{Subject: user, Tenant: tenant, Permissions: perms, UserType: userType, TTL: maxSession})
	if err != nil {
		http.Error(w, "cannot mint a token", http.StatusInternalServerError)
		return
	}
	if code, msg := s.startSession(w, r, tok); code != 0 {
		w.WriteHeader(code)
		s.renderSignIn(w, r, msg)
		return
	}
	http.Redirect(w, r, safeNext(r.PostFormValue("next")), http.StatusSeeOther)
}

// safeNext keeps a post-sign-in destination on the UI's own pages.
func safeNext(next string) string {
	u, err := url.Parse(next)
	if err != nil || next == "" || u.IsAbs() || u.Host != "" || path.Clean(u.Path) != u.Path ||
		!strings.HasPrefix(u.Path, "/settings/integrations/") ||
		strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return GooglePath
	}
	return u.RequestURI()
}

// APIAuth wraps the public API: a browser request to /api/v1/ that carries the session cookie and no
// Authorization header gets the session's token as its bearer. A write made that way must carry the
// session's CSRF token and come from the UI's origin; otherwise it is refused before any service sees
// it. The session cookie is removed from the headers forwarded to the services.
func (s *Server) APIAuth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/api/v1/") || r.Header.Get("Authorization") != "" {
			next.ServeHTTP(w, r)
			return
		}
		c, err := r.Cookie(s.CookieName())
		if err != nil || c.Value == "" {
			next.ServeHTTP(w, r)
			return
		}
		if !safeMethod(r.Method) && (!s.sameOrigin(r) || !s.validCSRF(c.Value, r.Header.Get(CSRFHeader))) {
			writeAPIError(w, http.StatusForbidden, 7, "cross-site or unverified write refused: the request must come from the Alga Google settings pages with their CSRF token")
			return
		}
		r = r.Clone(r.Context())
		r.Header.Set("Authorization", "Bearer "+c.Value)
		stripCookie(r, s.CookieName())
		next.ServeHTTP(w, r)
	})
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// stripCookie removes one cookie from the request's Cookie header.
func stripCookie(r *http.Request, name string) {
	var keep []string
	for _, c := range r.Cookies() {
		if c.Name != name {
			keep = append(keep, c.Name+"="+c.Value)
		}
	}
	r.Header.Del("Cookie")
	if len(keep) > 0 {
		r.Header.Set("Cookie", strings.Join(keep, "; "))
	}
}

// writeAPIError answers in the API's error shape (google.rpc.Status as JSON).
func writeAPIError(w http.ResponseWriter, status, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"code": code, "message": msg, "details": []any{}})
}

func noStore(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-store")
}
