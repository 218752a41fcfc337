package browser

import (
	"context"
	"crypto/tls"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	gmailv1 "github.com/algapsa/alga-google/gen/alga/gmail/v1"
	"github.com/algapsa/alga-google/services/platform/auth"
	"github.com/algapsa/alga-google/services/platform/config"
	"github.com/algapsa/alga-google/services/suite/harness"
)

// attackerPage auto-submits a text/plain form (no CORS preflight) whose body is valid JSON creating a
// Gmail provider: exactly what the session cookie would authorize without the CSRF and origin checks.
func attackerPage(target string) string {
	return fmt.Sprintf(`<!doctype html><html><head><link rel="icon" href="data:,"></head><body>
<form method="post" enctype="text/plain" action="%s">
<input name='{"mailbox":"evil@attacker.test","display_name":"' value='"}'>
</form><script>document.forms[0].submit()</script></body></html>`, html.EscapeString(target))
}

// TestProductionSignIn runs the suite as in production (no --dev, https): the platform's JWT is
// exchanged for the session cookie, which page JavaScript cannot read, and writes from other origins
// are refused.
func TestProductionSignIn(t *testing.T) {
	t.Parallel()
	attacker := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte(attackerPage(r.URL.Query().Get("target"))))
	}))
	attacker.StartTLS()
	t.Cleanup(attacker.Close)
	lis := tls.NewListener(harness.Listen(t), &tls.Config{Certificates: attacker.TLS.Certificates, MinVersion: tls.VersionTLS12})
	base := "https://" + lis.Addr().String()
	s := harness.Start(t, harness.Options{HTTPListener: lis, Configure: func(c *config.Config) {
		c.Dev = false
		c.BaseURL = base
	}})
	const tenantID = "prod-acme"
	tok := s.UserToken(tenantID, "admin@prod-acme.test", auth.PermSystemSettingsUpdate)

	b := newTab(t, base)
	b.open("/settings/integrations/google")
	b.waitFor("the sign-in page", `location.pathname === "/ui/signin"`)
	require.False(t, b.present("#dev-signin"), "no dev sign-in in production")
	b.shot("signin-production")
	b.do(chromedp.SetValue(chromedp.ID("token"), tok), chromedp.Click(chromedp.ID("token-signin-submit")))
	b.waitFor("the Google page", `location.pathname === "/settings/integrations/google" && document.getElementById("config-state")`)
	b.shot("google-production")

	// The token is nowhere page JavaScript can read it.
	require.NotContains(t, evalIn[string](b, `document.documentElement.outerHTML`), tok)
	require.NotContains(t, evalIn[string](b, `document.cookie`), tok)
	require.Equal(t, "", evalIn[string](b, `JSON.stringify(Object.assign({}, localStorage)) + JSON.stringify(Object.assign({}, sessionStorage)) === "{}{}" ? "" : "storage used"`))
	require.NotContains(t, evalIn[string](b, `fetch("/ui/session").then(r => r.text())`), tok)
	for _, page := range []string{"/settings/integrations/email", "/settings/integrations/calendar"} {
		b.open(page)
		require.NotContains(t, evalIn[string](b, `document.documentElement.outerHTML`), tok, page)
	}

	// The session cookie's flags.
	cookies, err := chromedp.Call(b.ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{base + "/"}})
	require.NoError(t, err)
	var session *network.Cookie
	for _, c := range cookies.Cookies {
		if c.Name == "__Host-alga_session" {
			session = c
		}
	}
	require.NotNil(t, session, "the session cookie")
	require.True(t, session.HTTPOnly, "HttpOnly")
	require.True(t, session.Secure, "Secure")
	require.Equal(t, network.CookieSameSiteStrict, session.SameSite)
	require.Equal(t, "/", session.Path)
	require.Greater(t, session.Expires, float64(time.Now().Unix()))

	// A write from the page itself works (so the refusals below are about the checks, not the route).
	b.open("/settings/integrations/email")
	status := evalIn[int](b, `fetch("/api/v1/gmail/providers", {method: "POST", headers: {"Content-Type": "application/json",
		"X-Alga-CSRF": document.querySelector('meta[name="alga-csrf"]').content},
		body: JSON.stringify({mailbox: "legit@prod-acme.test"})}).then(r => r.status)`)
	require.Equal(t, http.StatusOK, status)
	// The same write without the session's CSRF token is refused.
	b.expectFailure(base+"/api/v1/gmail/providers", http.StatusForbidden)
	status = evalIn[int](b, `fetch("/api/v1/gmail/providers", {method: "POST", headers: {"Content-Type": "application/json"},
		body: JSON.stringify({mailbox: "nocsrf@prod-acme.test"})}).then(r => r.status)`)
	require.Equal(t, http.StatusForbidden, status)

	// A page of another origin on the same site (the Strict cookie is sent) posts a form: refused.
	b.do(chromedp.Navigate(attacker.URL + "/?target=" + base + "/api/v1/gmail/providers"))
	b.waitFor("the refusal", fmt.Sprintf(`location.href === %q && document.body.textContent.includes("refused")`, base+"/api/v1/gmail/providers"))
	b.shot("cross-origin-refused")
	// From another site (localhost is not 127.0.0.1's site) the cookie is not even sent, and the gateway
	// refuses the form's text/plain body before any service sees it (400 naming the Content-Type).
	b.expectFailure(base+"/api/v1/gmail/providers", http.StatusBadRequest)
	other := strings.Replace(attacker.URL, "127.0.0.1", "localhost", 1)
	b.do(chromedp.Navigate(other + "/?target=" + base + "/api/v1/gmail/providers"))
	b.waitFor("the refusal", fmt.Sprintf(`location.href === %q && document.body.textContent.length > 0`, base+"/api/v1/gmail/providers"))

	// Only the page's own write happened.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	list, err := gmailv1.NewGmailProviderServiceClient(s.Conn(t)).ListGmailProviders(harness.WithToken(ctx, tok), &gmailv1.ListGmailProvidersRequest{})
	require.NoError(t, err)
	var boxes []string
	for _, p := range list.GetProviders() {
		boxes = append(boxes, p.GetMailbox())
	}
	require.Equal(t, []string{"legit@prod-acme.test"}, boxes)

	// Sign out clears the cookie.
	b.open("/settings/integrations/google")
	b.do(chromedp.Click(chromedp.ID("sign-out")))
	b.waitFor("the sign-in page", `location.pathname === "/ui/signin"`)
	cookies, err = chromedp.Call(b.ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{base + "/"}})
	require.NoError(t, err)
	for _, c := range cookies.Cookies {
		require.NotEqual(t, "__Host-alga_session", c.Name, "signed out")
	}
}
