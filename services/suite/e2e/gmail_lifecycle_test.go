package e2e_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	secretsv1 "github.com/algapsa/alga-google/gen/alga/secrets/v1"
	"github.com/algapsa/alga-google/services/googlesandbox"
	"github.com/algapsa/alga-google/services/suite/harness"
)

// activationFails connects a provider whose activation must fail, and checks it ends in ERROR with code
// (never CONNECTED), no watch at Google, and the failed step recorded for diagnostics.
func (e *env) activationFails(t *testing.T, ts *tenantSetup, p gmailProvider, code, step string, prepare func()) gmailProvider {
	t.Helper()
	authURL := e.beginConnect(t, ts.adminHTTP, p.ID)
	if prepare != nil {
		prepare()
	}
	status, _ := e.callback(t, ts.adminHTTP, e.consent(t, authURL, p.Mailbox))
	require.Equal(t, "activation_failed", status)
	got := e.provider(t, ts, p.ID)
	require.Equal(t, "PROVIDER_STATUS_ERROR", got.Status)
	require.NotNil(t, got.Error)
	require.Equal(t, code, got.Error.Code, got.Error.Message)
	require.NotEmpty(t, got.Error.Message)
	require.NotEmpty(t, got.Error.Remedy)
	d := e.diagnostics(t, ts, p.ID)
	var failed []string
	for _, st := range d.Diagnostics.Steps {
		if !st.OK {
			failed = append(failed, st.Name)
		}
	}
	require.Equal(t, []string{step}, failed, "%+v", d.Diagnostics.Steps)
	require.Equal(t, code, d.Diagnostics.LastError.Code)
	w, err := e.admin.Watches(e.ctx, p.Mailbox)
	require.NoError(t, err)
	for _, x := range w {
		require.False(t, x.Active, "no watch at Google")
	}
	require.Zero(t, e.counter(t, "gmail.users.watch|"+ts.project.ClientID), "users.watch never called")
	return got
}

// TestGmailActivationFailures: a publisher grant Google refuses, a service-account key that is missing,
// and an unknown label each leave the provider in ERROR with its own code and remedy, never CONNECTED.
func TestGmailActivationFailures(t *testing.T) {
	t.Parallel()

	t.Run("publisher grant refused", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, harness.Options{})
		ts := e.setupTenant(t, "tenant-pg", "acme-grant-1", setupOpts{})
		e.ensureUser(t, "grant@acme.test")
		p := e.createProvider(t, ts.adminHTTP, "grant@acme.test")
		require.NoError(t, e.admin.SetFault(e.ctx, googlesandbox.Fault{Endpoint: "pubsub.SetIamPolicy", ForceError: "PERMISSION_DENIED"}))
		got := e.activationFails(t, ts, p, "publisher_grant_failed", "publisher_grant", nil)
		require.Contains(t, got.Error.Message, "gmail-api-push@system.gserviceaccount.com")
		require.Contains(t, got.Error.Remedy, ts.saEmail)
		require.Contains(t, got.Error.Remedy, "roles/pubsub.admin")
		require.Positive(t, e.counter(t, "pubsub.SetIamPolicy"))

		// Once Google accepts the grant, Refresh connects it.
		require.NoError(t, e.admin.ClearFaults(e.ctx))
		r := ts.adminHTTP.Do(t, http.MethodPost, "/api/v1/gmail/providers/"+p.ID+":refresh", map[string]any{})
		require.Equal(t, http.StatusOK, r.Status, r.Errorf())
		require.Contains(t, r.String(), "PROVIDER_STATUS_CONNECTED")
	})

	t.Run("service-account key missing", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, harness.Options{})
		ts := e.setupTenant(t, "tenant-nokey", "acme-nokey-1", setupOpts{noKey: true})
		e.ensureUser(t, "nokey@acme.test")
		p := e.createProvider(t, ts.adminHTTP, "nokey@acme.test")

		// Without a key, :connect fails fast and points to the Google setup.
		r := ts.adminHTTP.Do(t, http.MethodPost, "/api/v1/gmail/providers/"+p.ID+":connect", map[string]any{})
		require.Equal(t, http.StatusBadRequest, r.Status, r.Errorf())
		require.Contains(t, r.String(), "service-account key")
		require.Contains(t, r.String(), "GOOGLE_NOT_CONFIGURED")
		require.Empty(t, bindingCookie(ts.adminHTTP), "no flow started")
		require.Equal(t, "PROVIDER_STATUS_DISCONNECTED", e.provider(t, ts, p.ID).Status)

		// The key is uploaded, a flow begins, and the key is deleted before the callback: activation fails.
		put := ts.adminHTTP.Do(t, http.MethodPut, "/api/v1/google/config", map[string]any{"service_account_key_json": string(ts.saKey)})
		require.Equal(t, http.StatusOK, put.Status, put.Errorf())
		got := e.activationFails(t, ts, p, "service_account_missing", "service_account", func() {
			// The key is oauth's to delete (the generic secrets API refuses its reserved names).
			_, err := secretsv1.NewSecretsServiceClient(e.s.Conn(t)).PutSecrets(e.svcCtx("oauth", ts.tenant),
				&secretsv1.PutSecretsRequest{DeleteNames: []string{"google_service_account_key"}})
			require.NoError(t, err)
		})
		require.Contains(t, got.Error.Remedy, "/settings/integrations/google")
	})

	t.Run("unknown label", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, harness.Options{})
		ts := e.setupTenant(t, "tenant-label", "acme-label-1", setupOpts{})
		e.ensureUser(t, "labels@acme.test")
		p := e.createProvider(t, ts.adminHTTP, "labels@acme.test", "Escalations")
		got := e.activationFails(t, ts, p, "unknown_label", "labels", nil)
		require.Contains(t, got.Error.Message, "Escalations")

		// Creating the label in Gmail and refreshing connects a watch on exactly that label.
		l, err := e.admin.CreateLabel(e.ctx, "labels@acme.test", "Escalations")
		require.NoError(t, err)
		r := ts.adminHTTP.Do(t, http.MethodPost, "/api/v1/gmail/providers/"+p.ID+":refresh", map[string]any{})
		require.Equal(t, http.StatusOK, r.Status, r.Errorf())
		require.Contains(t, r.String(), "PROVIDER_STATUS_CONNECTED")
		w, err := e.admin.Watches(e.ctx, "labels@acme.test")
		require.NoError(t, err)
		require.Equal(t, []string{l.ID}, w[0].LabelIDs)
	})
}

// TestGmailRestartBetweenPushAndSync: the suite stops after a push is stored but before its sync could
// finish (Google's history.list fails meanwhile); a new suite on the same database and sandbox delivers
// the mail, once.
func TestGmailRestartBetweenPushAndSync(t *testing.T) {
	t.Parallel()
	sb := startSandbox(t)
	e := newEnv(t, harness.Options{Sandbox: sb})
	ts := e.setupTenant(t, "tenant-restart", "acme-restart-1", setupOpts{})
	p := e.connectGmail(t, ts, "restart@acme.test")
	e.waitSyncIdle(t)

	require.NoError(t, e.admin.SetFault(e.ctx, googlesandbox.Fault{Endpoint: "gmail.users.history.list", Rate5xx: 1}))
	listed := e.counter(t, "gmail.users.history.list")
	require.True(t, e.deliver(t, "restart@acme.test", plainEmail("restart@acme.test", "Survives a restart")).Notified)
	require.Eventually(t, func() bool {
		return e.count(t, "SELECT count(*) FROM gmail.notifications WHERE provider_id = $1 AND process_time IS NULL", p.ID) == 1 &&
			e.counter(t, "gmail.users.history.list") > listed
	}, 20*time.Second, 20*time.Millisecond, "push stored and its sync attempted")
	e.s.Stop()
	conn, err := pgx.Connect(e.ctx, e.s.DatabaseURL)
	require.NoError(t, err)
	var running int
	require.NoError(t, conn.QueryRow(e.ctx, "SELECT count(*) FROM gmail.river_job WHERE kind = 'gmail_history_sync' AND state = 'running'").Scan(&running))
	require.NoError(t, conn.Close(e.ctx))
	require.Zero(t, running, "the stopped suite left no sync job 'running' (it would block the mailbox's sync until rescued)")
	require.Empty(t, e.storedSubjects(t, p.ID), "not delivered before the restart")
	require.NoError(t, e.admin.ClearFaults(e.ctx))

	e2 := newEnv(t, harness.Options{DatabaseURL: e.s.DatabaseURL, Sandbox: sb})
	got := e2.waitInbound(t, ts.tenant, p.ID, 1)
	require.Equal(t, "Survives a restart", got[0].GetSubject())
	time.Sleep(500 * time.Millisecond)
	require.Len(t, e2.inbound(t, ts.tenant, p.ID), 1, "once")
	require.Equal(t, 1, e2.count(t, "SELECT count(*) FROM gmail.messages WHERE provider_id = $1", p.ID))
}

// storedSubjects reads stored messages straight from the database (works while the suite is stopped).
func (e *env) storedSubjects(t *testing.T, providerID string) []string {
	t.Helper()
	conn, err := pgx.Connect(e.ctx, e.s.DatabaseURL)
	require.NoError(t, err)
	defer conn.Close(e.ctx)
	rows, err := conn.Query(e.ctx, "SELECT subject FROM gmail.messages WHERE provider_id = $1 ORDER BY seq", providerID)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return out
}

// TestGmailDeleteStopsWatch: deleting a provider stops its watch at Google with the grant's client, and
// forgets its connection.
func TestGmailDeleteStopsWatch(t *testing.T) {
	t.Parallel()
	e := newEnv(t, harness.Options{})
	ts := e.setupTenant(t, "tenant-del", "acme-delete-1", setupOpts{})
	p := e.connectGmail(t, ts, "gone@acme.test")
	w, err := e.admin.Watches(e.ctx, "gone@acme.test")
	require.NoError(t, err)
	require.Len(t, w, 1)
	require.True(t, w[0].Active)
	e.waitSyncIdle(t)

	r := ts.adminHTTP.Do(t, http.MethodDelete, "/api/v1/gmail/providers/"+p.ID, nil)
	require.Equal(t, http.StatusOK, r.Status, r.Errorf())
	require.Equal(t, int64(1), e.counter(t, "gmail.users.stop|"+ts.project.ClientID), "users.stop once, with the grant's client")
	w, err = e.admin.Watches(e.ctx, "gone@acme.test")
	require.NoError(t, err)
	for _, x := range w {
		require.Empty(t, x.TopicName, "no watch left")
		require.False(t, x.Active)
		require.Equal(t, 1, x.Stops)
	}
	require.Equal(t, http.StatusNotFound, ts.adminHTTP.Do(t, http.MethodGet, "/api/v1/gmail/providers/"+p.ID, nil).Status)
	require.Equal(t, 0, e.count(t, "SELECT count(*) FROM oauth.connections WHERE provider_id = $1", p.ID), "connection forgotten")

	// Mail after the delete notifies nobody.
	require.False(t, e.deliver(t, "gone@acme.test", plainEmail("gone@acme.test", "Too late")).Notified)
}
