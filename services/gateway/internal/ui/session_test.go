package ui

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/algapsa/alga-google/services/platform/auth"
)

const testKey = "ui-test-user-key-0123456789abcdef-xyz"

type bundle struct {
	srv    *Server
	signer *auth.Signer
	mux    *http.ServeMux
	seen   *http.Request
}

func setup(t *testing.T, base string, dev bool) *bundle {
	t.Helper()
	v, err := auth.NewVerifier(auth.VerifierConfig{HS256Key: []byte(testKey), ServiceKey: []byte(testKey + "-svc"),
		Issuer: "alga-psa", Audience: "alga-google", ServiceIssuer: "alga-google"})
	if err != nil {
		t.Fatal(err)
	}
	signer, err := auth.NewSigner([]byte(testKey), "alga-psa", "alga-google")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Options{Base: base, Dev: dev, Verifier: v, UserSigner: signer, CSRFKey: []byte("csrf-key"),
		Has: func(string) bool { return false }})
	if err != nil {
		t.Fatal(err)
	}
	b := &bundle{srv: srv, signer: signer, mux: http.NewServeMux()}
	srv.Mount(b.mux)
	b.mux.Handle("/api/", srv.APIAuth(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.seen = r
		w.WriteHeader(http.StatusNoContent)
	})))
	return b
}

func (b *bundle) token(t *testing.T, u auth.UserToken) string {
	t.Helper()
	if u.Tenant == "" {
		u.Tenant = "t1"
	}
	if u.Subject == "" {
		u.Subject = "admin@t1"
	}
	tok, err := b.signer.MintUser(u)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (b *bundle) serve(r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	b.mux.ServeHTTP(w, r)
	return w
}

func sessionCookie(t *testing.T, w *httptest.ResponseRecorder, name string) *http.Cookie {
	t.Helper()
	for _, c := range w.Result().Cookies() {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no %s cookie in %v", name, w.Header().Values("Set-Cookie"))
	return nil
}

func TestSessionCookieFlags(t *testing.T) {
	t.Parallel()
	b := setup(t, "https://alga.example.com", false)
	tok := b.token(t, auth.UserToken{Permissions: []string{auth.PermSystemSettingsUpdate}})
	r := httptest.NewRequest(http.MethodPost, "https://alga.example.com/ui/session", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	w := b.serve(r)
	if w.Code != http.StatusOK {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	if strings.Contains(w.Body.String(), tok) {
		t.Fatal("the answer echoes the token")
	}
	c := sessionCookie(t, w, "__Host-alga_session")
	if !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.Domain != "" {
		t.Fatalf("cookie flags: %+v", c)
	}
	if c.MaxAge <= 0 || c.MaxAge > int(time.Hour/time.Second) {
		t.Fatalf("max-age %d: want the token's lifetime (1h)", c.MaxAge)
	}

	// Plain http (dev): no Secure flag, no __Host- prefix.
	d := setup(t, "http://127.0.0.1:8080", true)
	r = httptest.NewRequest(http.MethodPost, "http://127.0.0.1:8080/ui/session", nil)
	r.Header.Set("Authorization", "Bearer "+d.token(t, auth.UserToken{}))
	if c := sessionCookie(t, d.serve(r), "alga_session"); c.Secure || !c.HttpOnly {
		t.Fatalf("dev cookie: %+v", c)
	}
}

func TestSessionRefusals(t *testing.T) {
	t.Parallel()
	b := setup(t, "https://alga.example.com", false)
	svc, _ := auth.NewSigner([]byte(testKey+"-svc"), "alga-google", "alga-google")
	svcTok, _ := svc.MintService("gmail", "t1", "", nil)
	cases := map[string]struct {
		token string
		site  string
		want  int
	}{
		"client portal user": {token: b.token(t, auth.UserToken{UserType: auth.UserTypeClient}), want: http.StatusForbidden},
		"service token":      {token: svcTok, want: http.StatusForbidden},
		"garbage":            {token: "a.b.c", want: http.StatusUnauthorized},
		"cross-site":         {token: b.token(t, auth.UserToken{}), site: "cross-site", want: http.StatusForbidden},
	}
	for name, c := range cases {
		r := httptest.NewRequest(http.MethodPost, "https://alga.example.com/ui/session", nil)
		r.Header.Set("Authorization", "Bearer "+c.token)
		if c.site != "" {
			r.Header.Set("Sec-Fetch-Site", c.site)
		}
		w := b.serve(r)
		if w.Code != c.want || len(w.Result().Cookies()) != 0 {
			t.Errorf("%s: status %d, cookies %v; want %d and none", name, w.Code, w.Result().Cookies(), c.want)
		}
	}
}

func TestAPIWritesNeedCSRFAndSameOrigin(t *testing.T) {
	t.Parallel()
	b := setup(t, "https://alga.example.com", false)
	tok := b.token(t, auth.UserToken{Permissions: []string{auth.PermSystemSettingsUpdate}})
	cookie := &http.Cookie{Name: b.srv.CookieName(), Value: tok}
	csrf := b.srv.csrfToken(tok)
	req := func(method, origin, site, token string) *http.Request {
		r := httptest.NewRequest(method, "https://alga.example.com/api/v1/gmail/providers", strings.NewReader(`{}`))
		r.AddCookie(cookie)
		r.AddCookie(&http.Cookie{Name: "other", Value: "kept"})
		if origin != "" {
			r.Header.Set("Origin", origin)
		}
		if site != "" {
			r.Header.Set("Sec-Fetch-Site", site)
		}
		if token != "" {
			r.Header.Set(CSRFHeader, token)
		}
		return r
	}
	refused := map[string]*http.Request{
		"no CSRF token":         req(http.MethodPost, "https://alga.example.com", "same-origin", ""),
		"CSRF token of another": req(http.MethodPost, "https://alga.example.com", "same-origin", b.srv.csrfToken("x")),
		"another origin":        req(http.MethodPost, "https://evil.example.com", "cross-site", csrf),
		"a sibling site":        req(http.MethodDelete, "https://other.alga.example.com", "same-site", csrf),
		"an opaque origin":      req(http.MethodPut, "null", "", csrf),
	}
	for name, r := range refused {
		b.seen = nil
		w := b.serve(r)
		if w.Code != http.StatusForbidden || b.seen != nil {
			t.Errorf("%s: status %d (reached the API: %v), want 403", name, w.Code, b.seen != nil)
		}
	}
	b.seen = nil
	if w := b.serve(req(http.MethodPost, "https://alga.example.com", "same-origin", csrf)); w.Code != http.StatusNoContent || b.seen == nil {
		t.Fatalf("a same-origin write with its token: %d", w.Code)
	}
	if got := b.seen.Header.Get("Authorization"); got != "Bearer "+tok {
		t.Fatalf("bearer %q", got)
	}
	if c := b.seen.Header.Get("Cookie"); strings.Contains(c, tok) || !strings.Contains(c, "other=kept") {
		t.Fatalf("forwarded cookies %q: the session cookie must be removed, the others kept", c)
	}
	// Reads need no token; explicit bearers are left alone.
	b.seen = nil
	if w := b.serve(req(http.MethodGet, "", "", "")); w.Code != http.StatusNoContent || b.seen.Header.Get("Authorization") == "" {
		t.Fatalf("read: %d", w.Code)
	}
	r := req(http.MethodPost, "", "", "")
	r.Header.Set("Authorization", "Bearer api-client")
	if w := b.serve(r); w.Code != http.StatusNoContent || b.seen.Header.Get("Authorization") != "Bearer api-client" {
		t.Fatalf("explicit bearer: %d", w.Code)
	}
}

func TestPagesNeedASession(t *testing.T) {
	t.Parallel()
	b := setup(t, "https://alga.example.com", false)
	w := b.serve(httptest.NewRequest(http.MethodGet, "https://alga.example.com/settings/integrations/email?provider=x", nil))
	if w.Code != http.StatusSeeOther || !strings.HasPrefix(w.Header().Get("Location"), SignInPath+"?next=") {
		t.Fatalf("no session: %d %s", w.Code, w.Header().Get("Location"))
	}
	// Back from Google (cross-site) a Strict cookie is not sent: continue once from our own page.
	r := httptest.NewRequest(http.MethodGet, "https://alga.example.com/settings/integrations/calendar?google_oauth=connected", nil)
	r.Header.Set("Sec-Fetch-Site", "cross-site")
	w = b.serve(r)
	if w.Code != http.StatusOK || !strings.Contains(w.Header().Get("Refresh"), "continue=1") {
		t.Fatalf("cross-site arrival: %d %q", w.Code, w.Header().Get("Refresh"))
	}
	// An expired or forged cookie is cleared.
	r = httptest.NewRequest(http.MethodGet, "https://alga.example.com/settings/integrations/google", nil)
	r.AddCookie(&http.Cookie{Name: b.srv.CookieName(), Value: "a.b.c"})
	w = b.serve(r)
	if loc := w.Header().Get("Location"); w.Code != http.StatusSeeOther || !strings.Contains(loc, "expired=1") {
		t.Fatalf("bad cookie: %d %s", w.Code, loc)
	}
	// The dev sign-in exists only in --dev.
	form := url.Values{"tenant": {"t"}, "user": {"u"}}
	r = httptest.NewRequest(http.MethodPost, "https://alga.example.com/ui/dev/session", strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if w := b.serve(r); w.Code == http.StatusSeeOther {
		t.Fatal("dev sign-in served without --dev")
	}
}

func TestSafeNext(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"":                                 GooglePath,
		"/settings/integrations/email?x=1": "/settings/integrations/email?x=1",
		"https://evil.example.com/settings/integrations/google": GooglePath,
		"//evil.example.com/settings/integrations/google":       GooglePath,
		"/api/v1/google/config":                                 GooglePath,
		"/settings/integrations/../../api":                      GooglePath,
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestEveryCallbackStatusHasAMessage(t *testing.T) {
	t.Parallel()
	// The statuses services/oauth redirects with (README "State"), and the gateway's own fallback.
	for _, s := range []string{"connected", "state_invalid", "browser_mismatch", "denied", "google_error", "config_missing",
		"config_changed", "exchange_failed", "client_invalid", "google_unavailable", "no_refresh_token", "wrong_account",
		"provider_not_found", "provider_unavailable", "activation_failed", "error"} {
		if n, ok := oauthResults[s]; !ok || n.Text == "" {
			t.Errorf("no message for callback status %q", s)
		}
	}
}

func TestChart(t *testing.T) {
	t.Parallel()
	now := time.Date(2030, 5, 10, 12, 0, 0, 0, time.UTC)
	svg := string(renderChart(chartInput{Now: now, Title: "A <b>title</b>", Series: gmailSeries,
		Days:   []dayCount{{Start: now.Truncate(24 * time.Hour), Pushes: 5, Syncs: 3, Errors: 1}},
		Expiry: now.Add(6 * 24 * time.Hour), ExpiryLabel: "watch expires",
		Runs: []runMark{{Time: now.Add(-time.Hour), Label: "run"}}}))
	for _, want := range []string{`id="chart-expiry"`, "watch expires Thu 16 May", "Pushes received: 5", "A &lt;b&gt;title&lt;/b&gt;", `class="run run-ok"`, "<td>5</td>"} {
		if !strings.Contains(svg, want) {
			t.Errorf("chart lacks %q", want)
		}
	}
	if strings.Count(svg, `class="bar bar-pushes"`) != 7 {
		t.Error("want 7 days of bars")
	}
}
