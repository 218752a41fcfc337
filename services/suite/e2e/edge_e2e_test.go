package e2e_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/algapsa/alga-google/services/suite/harness"
)

// A Gmail and a Calendar flow started in one browser both complete: each flow kind has its own binding
// cookie, so starting the second does not overwrite the first's, and completing one leaves the other's.
func TestGmailAndCalendarFlowsInOneBrowser(t *testing.T) {
	t.Parallel()
	e := newEnv(t, harness.Options{})
	ts := e.setupTenant(t, "tenant-two-flows", "acme-two-flows", setupOpts{})
	c := ts.adminHTTP
	const mailbox, account = "support@two-flows.test", "tech@two-flows.test"
	e.ensureUser(t, mailbox, ts.project.ProjectID)
	e.ensureUser(t, account)

	p := e.createProvider(t, c, mailbox)
	gmailAuth := e.beginConnect(t, c, p.ID)

	resp := c.Do(t, http.MethodPost, "/api/v1/calendar/providers", map[string]any{"display_name": "My calendar"})
	require.Equal(t, http.StatusOK, resp.Status, resp.Errorf())
	var created struct {
		Provider struct {
			ID string `json:"id"`
		} `json:"provider"`
	}
	require.NoError(t, resp.JSON(&created))
	resp = c.Do(t, http.MethodPost, "/api/v1/calendar/providers/"+created.Provider.ID+":connect", map[string]any{})
	require.Equal(t, http.StatusOK, resp.Status, resp.Errorf())
	var begun struct {
		AuthorizationURL string `json:"authorization_url"`
	}
	require.NoError(t, resp.JSON(&begun))

	gmailBinding, calendarBinding := bindingCookieOf(c, "alga_google_oauth_gmail"), bindingCookieOf(c, "alga_google_oauth_calendar")
	require.NotEmpty(t, gmailBinding)
	require.NotEmpty(t, calendarBinding)
	require.NotEqual(t, gmailBinding, calendarBinding)

	// The Calendar flow completes first; the Gmail flow's cookie is untouched and completes too.
	calendarCallback, err := e.admin.Consent(e.ctx, begun.AuthorizationURL, account, true)
	require.NoError(t, err)
	st, cb := e.callback(t, c, calendarCallback.String())
	require.Equal(t, "connected", st, cb.Header.Get("Location"))
	require.Empty(t, bindingCookieOf(c, "alga_google_oauth_calendar"), "the calendar binding is single-use")
	require.Equal(t, gmailBinding, bindingCookieOf(c, "alga_google_oauth_gmail"))

	st, cb = e.callback(t, c, e.consent(t, gmailAuth, mailbox))
	require.Equal(t, "connected", st, cb.Header.Get("Location"))
	require.Equal(t, "PROVIDER_STATUS_CONNECTED", e.provider(t, ts, p.ID).Status)
}
