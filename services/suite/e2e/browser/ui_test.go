package browser

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
	gcal "google.golang.org/api/calendar/v3"

	"github.com/algapsa/alga-google/services/googlesandbox"
	"github.com/algapsa/alga-google/services/platform/auth"
	"github.com/algapsa/alga-google/services/suite/harness"
)

// uiEnv is one suite with a tenant's Google Cloud project in the sandbox, as a tenant admin would have
// prepared it in Google Cloud Console.
type uiEnv struct {
	s       *harness.Suite
	admin   *googlesandbox.AdminClient
	ctx     context.Context
	project googlesandbox.Project
	keyFile string
	saEmail string
}

const (
	tenant     = "ui-acme"
	mailbox    = "support@acme.test"
	technician = "tech1@acme.test"
	otherTech  = "tech2@acme.test"
)

func newUIEnv(t *testing.T) *uiEnv {
	t.Helper()
	s := harness.Start(t, harness.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	t.Cleanup(cancel)
	e := &uiEnv{s: s, admin: s.Sandbox.Admin(), ctx: ctx}
	proj, err := e.admin.CreateProject(ctx, googlesandbox.CreateProjectRequest{
		ProjectID: "ui-acme-helpdesk", PublishingStatus: googlesandbox.PublishingProduction,
		RedirectURIs: []string{s.BaseURL + "/api/auth/google/callback", s.BaseURL + "/api/auth/google/calendar/callback"},
	})
	require.NoError(t, err)
	key, email, err := e.admin.CreateServiceAccount(ctx, proj.ProjectID, "alga-pubsub")
	require.NoError(t, err)
	for _, u := range []string{mailbox, technician, otherTech} {
		require.NoError(t, e.admin.CreateTestUser(ctx, u))
	}
	e.project, e.saEmail = proj, email
	e.keyFile = filepath.Join(t.TempDir(), "alga-pubsub-key.json")
	require.NoError(t, os.WriteFile(e.keyFile, key, 0o600))
	return e
}

// signIn uses the dev sign-in page: tenant, user, permissions, user type.
func (b *tab) signIn(tenantID, user string, admin bool, next string) {
	b.t.Helper()
	b.open(next)
	b.waitFor("the sign-in page", `location.pathname === "/ui/signin"`)
	b.do(
		chromedp.SetValue(chromedp.ID("tenant"), tenantID),
		chromedp.SetValue(chromedp.ID("user"), user),
		chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`document.getElementById("perm-system").checked = %v`, admin)),
		chromedp.Click(chromedp.ID("dev-signin-submit")),
	)
	b.waitFor("the settings page", `location.pathname.startsWith("/settings/integrations/") && document.querySelector("main h1")`)
}

// consent approves the sandbox's consent page in the browser as account.
func (b *tab) consent(sandboxURL, account string) {
	b.t.Helper()
	b.expectFailure(sandboxURL+"/favicon.ico", 404) // the emulator serves no icon
	b.waitFor("the sandbox consent page", fmt.Sprintf(`location.href.startsWith(%q) && document.getElementById("approve")`, sandboxURL))
	b.shot("google-consent")
	b.do(chromedp.Click(chromedp.CSS(fmt.Sprintf(`input[name=account][value=%q]`, account))), chromedp.Click(chromedp.ID("approve")))
}

// reloadUntil reloads the page until the element's text contains want (mail and changes arrive
// asynchronously).
func (b *tab) reloadUntil(sel, want string) {
	b.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		has := evalIn[bool](b, fmt.Sprintf(`!!document.querySelector(%q) && document.querySelector(%q).textContent.includes(%q)`, sel, sel, want))
		if has {
			return
		}
		if time.Now().After(deadline) {
			b.shot("failure")
			b.t.Fatalf("%s never showed %q", sel, want)
		}
		time.Sleep(400 * time.Millisecond)
		b.do(chromedp.Reload())
	}
}

func TestUI(t *testing.T) {
	t.Parallel()
	e := newUIEnv(t)
	sb := e.s.Sandbox.URL()

	var gmailID, calendarID string
	t.Run("AdminClickThrough", func(t *testing.T) {
		b := newTab(t, e.s.BaseURL)
		b.grantClipboard()
		// Not signed in: the sign-in page.
		b.open("/settings/integrations/google")
		b.waitFor("sign-in", `location.pathname === "/ui/signin"`)
		b.checkLabels("sign-in")
		b.shot("signin")
		b.signIn(tenant, "admin@acme.test", true, "/settings/integrations/google")
		require.Equal(t, "Missing", strings.TrimSpace(b.text("#config-state")))
		require.True(t, b.present("#retired-notice"))
		require.Contains(t, b.text("#guidance"), "Testing")
		b.checkLabels("google")
		b.shot("google-empty")
		b.narrow("google-empty")

		// A failed save: the API names the field, the page shows the error beside it.
		b.expectFailure("/api/v1/google/config", http.StatusBadRequest)
		b.do(
			chromedp.SendKeys(chromedp.ID("project_id"), e.project.ProjectID),
			chromedp.SendKeys(chromedp.ID("gmail_client_id"), "not-a-client-id"),
			chromedp.SendKeys(chromedp.ID("gmail_client_secret"), e.project.ClientSecret),
			chromedp.Click(chromedp.ID("save-config")),
		)
		b.waitFor("the client id error", `!document.getElementById("err-gmail_client_id").hidden`)
		require.Contains(t, b.text("#err-gmail_client_id"), "not a Google OAuth client ID")
		require.Equal(t, "true", evalIn[string](b, `document.getElementById("gmail_client_id").getAttribute("aria-invalid")`))
		b.shot("google-invalid-client-id")
		// A second one: a malformed service-account key, pasted.
		b.do(
			chromedp.SetValue(chromedp.ID("gmail_client_id"), e.project.ClientID),
			chromedp.SendKeys(chromedp.ID("service_account_key_json"), `{"type": "service_account", "project_id": `),
			chromedp.Click(chromedp.ID("save-config")),
		)
		b.waitFor("the key error", `!document.getElementById("err-service_account_key_json").hidden`)
		require.True(t, evalIn[bool](b, `document.getElementById("err-gmail_client_id").hidden`), "the fixed field's error is cleared")
		b.shot("google-invalid-key")
		// Nothing was stored by the failed saves.
		require.Equal(t, "Missing", strings.TrimSpace(b.text("#config-state")))

		// A good save: the key as a file upload.
		b.do(
			chromedp.Evaluate[chromedp.Void](`document.getElementById("service_account_key_json").value = ""`),
			chromedp.SetUploadFiles(chromedp.ID("sa_key_file"), []string{e.keyFile}),
			chromedp.Click(chromedp.ID("save-config")),
		)
		b.waitFor("the saved notice", `document.querySelector("[data-notice=ok]") && location.search.includes("done=saved")`)
		require.Equal(t, "Configured", strings.TrimSpace(b.text("#config-state")))
		require.Contains(t, b.text("#gmail-secret-state"), "set (")
		require.Contains(t, b.text("#gmail-secret-state"), e.project.ClientSecret[len(e.project.ClientSecret)-4:]+")")
		require.Contains(t, b.text("#sa-state"), e.saEmail)
		require.NotContains(t, evalIn[string](b, `document.documentElement.outerHTML`), e.project.ClientSecret, "the secret is never sent back")
		// Partial update: secrets are not re-entered; an unchanged form saves nothing.
		require.Empty(t, evalIn[string](b, `document.getElementById("gmail_client_secret").value`))
		b.do(chromedp.Click(chromedp.ID("save-config")))
		b.waitText("#form-error", "Nothing to save")
		// The same-app switch reveals the Calendar client fields.
		require.True(t, evalIn[bool](b, `document.getElementById("calendar-fields").hidden`))
		b.do(chromedp.Click(chromedp.ID("use_same_app")))
		require.False(t, evalIn[bool](b, `document.getElementById("calendar-fields").hidden`))
		b.do(chromedp.Click(chromedp.ID("use_same_app")))
		b.shot("google-configured")

		// Copy buttons, read back from the clipboard (one of them used from the keyboard).
		for id, want := range map[string]string{
			"copy-gmail-redirect":    e.s.BaseURL + "/api/auth/google/callback",
			"copy-calendar-redirect": e.s.BaseURL + "/api/auth/google/calendar/callback",
			"copy-scope-0":           "https://www.googleapis.com/auth/gmail.readonly",
		} {
			if id == "copy-calendar-redirect" {
				b.do(chromedp.Focus(chromedp.ID(id)), chromedp.KeyEvent("\r"))
			} else {
				b.do(chromedp.Click(chromedp.ID(id)))
			}
			b.waitText("#"+id, "Copied")
			require.Equal(t, want, evalIn[string](b, `navigator.clipboard.readText()`), id)
		}

		// Test configuration.
		b.do(chromedp.Click(chromedp.ID("test-config")))
		b.waitFor("the test results", `document.querySelectorAll("#test-checks li").length > 0`)
		require.NotContains(t, b.text("#test-overall"), "FAIL")
		require.NotContains(t, b.text("#test-checks"), "FAIL", "every check passes (the consent-screen reminder is a warning)")
		require.Contains(t, b.text(`#test-checks li[data-check=oauth_client]`), "PASS")
		b.shot("google-test")

		// Gmail: create a provider.
		b.do(chromedp.Click(chromedp.CSS(`a[href="/settings/integrations/email"]`)))
		b.waitFor("the email page", `location.pathname === "/settings/integrations/email" && document.getElementById("gmail-create-form")`)
		b.checkLabels("email")
		b.shot("email-empty")
		b.do(
			chromedp.SendKeys(chromedp.ID("new-mailbox"), mailbox),
			chromedp.SendKeys(chromedp.ID("new-display_name"), "Acme support"),
			chromedp.Click(chromedp.ID("create-provider")),
		)
		b.waitFor("the created provider", `document.getElementById("provider-status") && location.search.includes("done=created")`)
		require.Equal(t, "Disconnected", strings.TrimSpace(b.text("#provider-status")))
		gmailID = evalIn[string](b, `document.getElementById("provider").dataset.id`)

		// Connect: a full-page redirect to the sandbox's consent page and back.
		b.do(chromedp.Click(chromedp.ID("connect")))
		b.consent(sb, mailbox)
		b.waitFor("the connected mailbox", `location.pathname === "/settings/integrations/email" && document.getElementById("provider-status")`)
		require.Contains(t, b.location(), "google_oauth=connected")
		require.Contains(t, b.text("[data-notice=ok]"), "Connected")
		require.Equal(t, "Connected", strings.TrimSpace(b.text("#provider-status")))
		require.Contains(t, b.text("#provisioning-steps"), "watch")
		require.True(t, b.present("#health-chart #chart-expiry"), "the watch expiry is marked")
		b.shot("email-connected")

		// Mail flows: a sandbox email appears among the recent messages.
		_, err := e.admin.Deliver(e.ctx, mailbox, googlesandbox.Email{From: "Customer <customer@example.com>", To: mailbox,
			Subject: "Printer on fire", Body: "Please help."})
		require.NoError(t, err)
		b.reloadUntil("#recent-messages", "Printer on fire")
		require.Contains(t, b.text("#recent-messages"), "customer@example.com")
		b.shot("email-message")
		b.narrow("email-message")

		// Refresh.
		b.do(chromedp.Click(chromedp.ID("refresh")))
		b.waitFor("the refreshed notice", `location.search.includes("done=refreshed")`)
		require.Equal(t, "Connected", strings.TrimSpace(b.text("#provider-status")))
	})

	t.Run("TechnicianConnectsCalendar", func(t *testing.T) {
		b := newTab(t, e.s.BaseURL)
		b.signIn(tenant, technician, false, "/settings/integrations/calendar")
		require.Contains(t, b.text("#config-used"), "Gmail OAuth app")
		require.False(t, b.present("#all-calendars"), "a technician sees only their own calendar")
		b.checkLabels("calendar")
		b.shot("calendar-empty")
		b.do(chromedp.Click(chromedp.ID("create-calendar")))
		b.waitFor("the created calendar", `document.getElementById("provider-status") && location.search.includes("done=created")`)
		calendarID = evalIn[string](b, `document.getElementById("provider").dataset.id`)
		b.do(chromedp.Click(chromedp.ID("connect")))
		b.consent(sb, technician)
		b.waitFor("the connected calendar", `location.pathname === "/settings/integrations/calendar" && document.getElementById("provider-status")`)
		require.Contains(t, b.location(), "google_oauth=connected")
		require.Equal(t, "Connected", strings.TrimSpace(b.text("#provider-status")))
		require.Contains(t, b.text("#account-email"), technician)
		require.True(t, b.present("#health-chart #chart-expiry"), "the channel expiry is marked")
		// A change in Google Calendar appears among the latest synced changes.
		start := time.Now().Add(48 * time.Hour).UTC().Truncate(time.Hour)
		_, err := e.admin.CreateEvent(e.ctx, technician, "primary", &gcal.Event{Summary: "Customer visit",
			Start: &gcal.EventDateTime{DateTime: start.Format(time.RFC3339)}, End: &gcal.EventDateTime{DateTime: start.Add(time.Hour).Format(time.RFC3339)}})
		require.NoError(t, err)
		b.reloadUntil("#recent-changes", "Customer visit")
		b.shot("calendar-connected")
		b.narrow("calendar-connected")
	})

	t.Run("AdminSeesEveryCalendar", func(t *testing.T) {
		b := newTab(t, e.s.BaseURL)
		b.signIn(tenant, "admin@acme.test", true, "/settings/integrations/calendar")
		require.Contains(t, b.text("#calendar-providers"), technician[:strings.IndexByte(technician, '@')])
		b.open("/settings/integrations/calendar?provider=" + calendarID)
		require.Equal(t, "Connected", strings.TrimSpace(b.text("#provider-status")))
		require.True(t, b.present("#disconnect"), "an admin may disconnect any calendar")
		require.False(t, b.present("#connect"), "only the technician connects their own")
		b.shot("calendar-admin")
	})

	t.Run("ReadOnlyWithoutSystemSettings", func(t *testing.T) {
		b := newTab(t, e.s.BaseURL)
		b.signIn(tenant, "viewer@acme.test", false, "/settings/integrations/google")
		require.True(t, b.present("#read-only"))
		require.False(t, b.present("#google-config-form"), "no form")
		require.False(t, b.present("#save-config"), "no save button")
		require.False(t, b.present("#test-config"))
		require.False(t, b.present("#reset-providers"))
		require.Equal(t, "Configured", strings.TrimSpace(b.text("#config-state")), "the status is readable")
		b.shot("google-read-only")
		// The API refuses the write even when sent from the page with the session's CSRF token.
		b.expectFailure("/api/v1/google/config", http.StatusForbidden)
		code := evalIn[int](b, `fetch("/api/v1/google/config", {method: "PUT", headers: {"Content-Type": "application/json",
			"X-Alga-CSRF": document.querySelector('meta[name="alga-csrf"]').content}, body: JSON.stringify({project_id: "other-project"})}).then(r => r.status)`)
		require.Equal(t, http.StatusForbidden, code)
		// Nor may they read a mailbox's activity (recent messages).
		b.expectFailure("/api/v1/gmail/providers/"+gmailID+"/activity", http.StatusForbidden)
		code = evalIn[int](b, fmt.Sprintf(`fetch("/api/v1/gmail/providers/%s/activity").then(r => r.status)`, gmailID))
		require.Equal(t, http.StatusForbidden, code)
		// The mailbox page says so too.
		b.open("/settings/integrations/email")
		require.True(t, b.present("#read-only"))
		require.False(t, b.present("#gmail-create-form"))
		b.shot("email-read-only")
	})

	t.Run("ClientPortalUserRefused", func(t *testing.T) {
		b := newTab(t, e.s.BaseURL)
		b.open("/ui/signin")
		b.expectFailure("/ui/dev/session", http.StatusForbidden)
		b.do(
			chromedp.SetValue(chromedp.ID("tenant"), tenant),
			chromedp.SetValue(chromedp.ID("user"), "customer@client.test"),
			chromedp.Click(chromedp.ID("type-client")),
			chromedp.Click(chromedp.ID("dev-signin-submit")),
		)
		b.waitText("#signin-error", "Client portal users")
		b.shot("signin-client-refused")
		b.open("/settings/integrations/google")
		b.waitFor("the sign-in page", `location.pathname === "/ui/signin"`)
		// Their token is refused by the API as well.
		r := e.s.HTTP(e.s.ClientUserToken(tenant, "customer@client.test", auth.PermSystemSettingsUpdate)).Do(t, http.MethodGet, "/api/v1/google/config", nil)
		require.Equal(t, http.StatusForbidden, r.Status, r.String())
		// And cannot be exchanged for a session.
		req, _ := http.NewRequest(http.MethodPost, e.s.BaseURL+"/ui/session", nil)
		req.Header.Set("Authorization", "Bearer "+e.s.ClientUserToken(tenant, "customer@client.test"))
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusForbidden, resp.StatusCode)
		require.Empty(t, resp.Cookies())
	})

	t.Run("TechnicianCannotSeeAnothersCalendar", func(t *testing.T) {
		require.NotEmpty(t, calendarID)
		b := newTab(t, e.s.BaseURL)
		b.signIn(tenant, otherTech, false, "/settings/integrations/calendar?provider="+url.QueryEscape(calendarID))
		require.Contains(t, b.text("main"), "not yours to see")
		require.False(t, b.present("#provider"), "no details of the other technician's calendar")
		require.NotContains(t, evalIn[string](b, `document.documentElement.outerHTML`), technician)
		b.expectFailure("/api/v1/calendar/providers/"+calendarID, http.StatusNotFound)
		code := evalIn[int](b, fmt.Sprintf(`fetch("/api/v1/calendar/providers/%s").then(r => r.status)`, calendarID))
		require.Equal(t, http.StatusNotFound, code)
		b.expectFailure("/api/v1/calendar/providers/"+calendarID+"/activity", http.StatusNotFound)
		code = evalIn[int](b, fmt.Sprintf(`fetch("/api/v1/calendar/providers/%s/activity").then(r => r.status)`, calendarID))
		require.Equal(t, http.StatusNotFound, code, "nor its latest changes")
		b.shot("calendar-other-refused")
	})

	t.Run("Reset", func(t *testing.T) {
		require.NotEmpty(t, gmailID)
		b := newTab(t, e.s.BaseURL)
		b.signIn(tenant, "admin@acme.test", true, "/settings/integrations/google")
		// Cancel first: nothing happens.
		b.do(chromedp.Click(chromedp.ID("reset-providers")))
		b.waitFor("the confirmation", `document.getElementById("confirm-dialog").open`)
		require.Contains(t, b.text("#confirm-text"), "disconnected")
		b.shot("google-reset-confirm")
		b.do(chromedp.KeyEvent("\x1b"))
		b.waitFor("the dialog to close", `!document.getElementById("confirm-dialog").open`)
		require.False(t, b.present("#reset-summary"))
		// Confirm.
		b.do(chromedp.Click(chromedp.ID("reset-providers")))
		b.waitFor("the confirmation", `document.getElementById("confirm-dialog").open`)
		b.do(chromedp.Click(chromedp.ID("confirm-ok")))
		b.waitFor("the reset summary", `document.getElementById("reset-summary")`)
		require.Contains(t, b.text("#reset-summary"), "1 Gmail mailbox(es) and 1 calendar(s) disconnected")
		b.shot("google-reset")
		b.open("/settings/integrations/email?provider=" + gmailID)
		require.Equal(t, "Disconnected", strings.TrimSpace(b.text("#provider-status")))
		b.open("/settings/integrations/calendar?provider=" + calendarID)
		require.Equal(t, "Disconnected", strings.TrimSpace(b.text("#provider-status")))
	})

	t.Run("OAuthResults", func(t *testing.T) {
		b := newTab(t, e.s.BaseURL)
		b.signIn(tenant, "admin@acme.test", true, "/settings/integrations/google")
		for _, code := range []string{"connected", "denied", "wrong_account", "config_missing", "state_invalid",
			"browser_mismatch", "google_error", "exchange_failed", "client_invalid", "no_refresh_token", "error"} {
			b.open("/settings/integrations/google?google_oauth=" + code)
			n := b.text("[data-notice]")
			require.NotContains(t, n, "Unknown result", code)
			require.NotEmpty(t, strings.TrimSpace(n), code)
		}
		b.open("/settings/integrations/google?google_oauth=state_invalid")
		require.Contains(t, b.text("[data-notice]"), "expired")
		b.shot("google-oauth-state-invalid")
	})
}
