package service_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	m "github.com/algapsa/alga-google/gen/alga/maintenance/v1"
	oauthv1 "github.com/algapsa/alga-google/gen/alga/oauth/v1"
	"github.com/algapsa/alga-google/services/platform/errs"
)

const runID = "7d3c2b1a-0f9e-4d8c-b7a6-5e4d3c2b1a09"

// upkeepOf returns the tenant's connection of provider as ListTokenUpkeep reports it.
func (b *testBundle) upkeepOf(t *testing.T, tenant, provider string) *m.TokenUpkeep {
	t.Helper()
	list, err := b.instances[0].upkeep.ListTokenUpkeep(b.service(t, "maintenance", tenant, ""), &m.ListTokenUpkeepRequest{})
	require.NoError(t, err)
	for _, c := range list.Connections {
		if c.ProviderId == provider {
			return c
		}
	}
	t.Fatalf("no connection of provider %s", provider)
	return nil
}

// refreshConn asks RefreshConnection for a connection, with the last refresh time the decision saw.
func (b *testBundle) refreshConn(t *testing.T, tenant string, c *m.TokenUpkeep, force bool) *m.RefreshConnectionResponse {
	t.Helper()
	resp, err := b.instances[0].upkeep.RefreshConnection(b.service(t, "maintenance", tenant, ""),
		&m.RefreshConnectionRequest{ConnectionId: c.ConnectionId, SeenRefreshTime: c.LastRefreshTime, Force: force, RunId: runID})
	require.NoError(t, err)
	return resp
}

func (b *testBundle) connection(t *testing.T, tenant string, kind oauthv1.ProviderKind, provider string) *oauthv1.Connection {
	t.Helper()
	resp, err := b.instances[0].tokens.GetConnection(b.service(t, "gmail", tenant, ""), &oauthv1.GetConnectionRequest{Kind: kind, ProviderId: provider})
	require.NoError(t, err)
	return resp.Connection
}

func TestListTokenUpkeep(t *testing.T) {
	t.Parallel()
	b := setup(t, 1, "")
	b.configure(t, "tenant-a")
	b.gmail.AddProvider("tenant-a", p1, "support@acme.test")
	before := time.Now().Add(-time.Second)
	require.Equal(t, "connected", b.connect(t, "tenant-a", "u1", gmailKind, p1, "support@acme.test"))
	// The calendar fake cannot activate, but the connection is stored all the same.
	require.Equal(t, "activation_failed", b.connect(t, "tenant-a", "tech-7", calendarKind, cal1, "tech@acme.test"))
	upkeep := b.instances[0].upkeep

	list, err := upkeep.ListTokenUpkeep(b.service(t, "maintenance", "tenant-a", ""), &m.ListTokenUpkeepRequest{})
	require.NoError(t, err)
	require.Len(t, list.Connections, 2)
	byKind := map[m.ProviderKind]*m.TokenUpkeep{}
	for _, c := range list.Connections {
		byKind[c.Kind] = c
	}
	g, c := byKind[m.ProviderKind_PROVIDER_KIND_GMAIL], byKind[m.ProviderKind_PROVIDER_KIND_CALENDAR]
	require.NotNil(t, g)
	require.NotNil(t, c)
	require.Equal(t, p1, g.ProviderId)
	require.Equal(t, cal1, c.ProviderId)
	conns := map[string]string{}
	for _, conn := range []*oauthv1.Connection{b.connection(t, "tenant-a", gmailKind, p1), b.connection(t, "tenant-a", calendarKind, cal1)} {
		conns[conn.ProviderId] = conn.ConnectionId
	}
	require.Equal(t, conns[p1], g.ConnectionId)
	require.Equal(t, conns[cal1], c.ConnectionId)
	for _, u := range []*m.TokenUpkeep{g, c} {
		require.Equal(t, m.ConnectionState_CONNECTION_STATE_CONNECTED, u.State)
		require.Nil(t, u.LastRefreshTime, "never refreshed since connect")
		require.True(t, u.ConnectTime.AsTime().After(before))
		require.WithinDuration(t, time.Now().Add(time.Hour), u.AccessTokenExpireTime.AsTime(), time.Minute)
	}

	// A refresh shows; a failure shows as the connection's state.
	resp := b.refreshConn(t, "tenant-a", g, false)
	require.Equal(t, m.OutcomeStatus_OUTCOME_STATUS_OK, resp.Outcome.Status)
	g2 := b.upkeepOf(t, "tenant-a", p1)
	require.NotNil(t, g2.LastRefreshTime)
	require.True(t, g2.LastRefreshTime.AsTime().Equal(resp.LastRefreshTime.AsTime()))
	b.google.SetFault("invalid_grant", 0)
	require.Equal(t, m.OutcomeStatus_OUTCOME_STATUS_FAILED, b.refreshConn(t, "tenant-a", byKind[m.ProviderKind_PROVIDER_KIND_CALENDAR], true).Outcome.Status)
	require.Equal(t, m.ConnectionState_CONNECTION_STATE_REVOKED, b.upkeepOf(t, "tenant-a", cal1).State)

	// Another tenant sees none of them; users and tenant-less calls are refused.
	other, err := upkeep.ListTokenUpkeep(b.service(t, "maintenance", "tenant-b", ""), &m.ListTokenUpkeepRequest{})
	require.NoError(t, err)
	require.Empty(t, other.Connections)
	_, err = upkeep.ListTokenUpkeep(b.admin(t, "tenant-a"), &m.ListTokenUpkeepRequest{})
	require.Equal(t, codes.PermissionDenied, status.Code(err))
	_, err = upkeep.ListTokenUpkeep(b.service(t, "maintenance", "", ""), &m.ListTokenUpkeepRequest{})
	require.Equal(t, codes.PermissionDenied, status.Code(err))
	_, err = upkeep.RefreshConnection(b.admin(t, "tenant-a"), &m.RefreshConnectionRequest{ConnectionId: g.ConnectionId})
	require.Equal(t, codes.PermissionDenied, status.Code(err))
}

// TestRefreshConnectionAsked: a refresh at Google even with a valid cached token, unless the connection
// was refreshed after the time the decision saw (then OK without any call), unless forced.
func TestRefreshConnectionAsked(t *testing.T) {
	t.Parallel()
	b := setup(t, 1, "")
	b.configure(t, "tenant-a")
	b.gmail.AddProvider("tenant-a", p1, "support@acme.test")
	require.Equal(t, "connected", b.connect(t, "tenant-a", "u1", gmailKind, p1, "support@acme.test"))
	svc := b.service(t, "gmail", "tenant-a", "")
	cached, err := b.instances[0].tokens.GetAccessToken(svc, &oauthv1.GetAccessTokenRequest{Kind: gmailKind, ProviderId: p1})
	require.NoError(t, err)
	require.Zero(t, b.google.RefreshCalls.Load(), "the cached token is valid")

	// Never refreshed, valid token: the daily refresh goes to Google once.
	decided := b.upkeepOf(t, "tenant-a", p1)
	resp := b.refreshConn(t, "tenant-a", decided, false)
	require.Equal(t, m.OutcomeStatus_OUTCOME_STATUS_OK, resp.Outcome.Status)
	require.EqualValues(t, 1, resp.Outcome.GoogleCalls)
	require.EqualValues(t, 1, b.google.RefreshCalls.Load())
	require.EqualValues(t, 1, b.google.Refreshes.Load())
	require.Equal(t, m.ConnectionState_CONNECTION_STATE_CONNECTED, resp.State)
	require.NotNil(t, resp.LastRefreshTime)
	require.WithinDuration(t, time.Now().Add(time.Hour), resp.AccessTokenExpireTime.AsTime(), time.Minute)
	now, err := b.instances[0].tokens.GetAccessToken(svc, &oauthv1.GetAccessTokenRequest{Kind: gmailKind, ProviderId: p1})
	require.NoError(t, err)
	require.NotEqual(t, cached.AccessToken, now.AccessToken, "callers get the refreshed token")
	require.True(t, b.google.ValidAccessToken(now.AccessToken))
	conn := b.connection(t, "tenant-a", gmailKind, p1)
	require.Equal(t, "refreshed", conn.Events[0].Type)
	require.Contains(t, conn.Events[0].Message, runID, "the timeline names the run")

	// The same decision again (a retry): the refresh it asked for happened, nothing is called.
	again := b.refreshConn(t, "tenant-a", decided, false)
	require.Equal(t, m.OutcomeStatus_OUTCOME_STATUS_OK, again.Outcome.Status)
	require.Zero(t, again.Outcome.GoogleCalls)
	require.EqualValues(t, 1, b.google.RefreshCalls.Load())
	require.True(t, again.LastRefreshTime.AsTime().Equal(resp.LastRefreshTime.AsTime()))

	// A decision on the current refresh time: refreshed again.
	current := b.upkeepOf(t, "tenant-a", p1)
	require.EqualValues(t, 1, b.refreshConn(t, "tenant-a", current, false).Outcome.GoogleCalls)
	require.EqualValues(t, 2, b.google.RefreshCalls.Load())

	// A request needed a token meanwhile (a forced GetAccessToken): the decided refresh is done.
	decided = b.upkeepOf(t, "tenant-a", p1)
	_, err = b.instances[0].tokens.GetAccessToken(svc, &oauthv1.GetAccessTokenRequest{Kind: gmailKind, ProviderId: p1, ForceRefresh: true})
	require.NoError(t, err)
	require.EqualValues(t, 3, b.google.RefreshCalls.Load())
	skipped := b.refreshConn(t, "tenant-a", decided, false)
	require.Equal(t, m.OutcomeStatus_OUTCOME_STATUS_OK, skipped.Outcome.Status)
	require.Zero(t, skipped.Outcome.GoogleCalls)
	require.EqualValues(t, 3, b.google.RefreshCalls.Load())

	// Unless forced.
	forced := b.refreshConn(t, "tenant-a", decided, true)
	require.Equal(t, m.OutcomeStatus_OUTCOME_STATUS_OK, forced.Outcome.Status)
	require.EqualValues(t, 1, forced.Outcome.GoogleCalls)
	require.EqualValues(t, 4, b.google.RefreshCalls.Load())

	// A connection that no longer exists (or never did, or belongs to another tenant) is skipped.
	for _, c := range []struct{ tenant, id string }{
		{"tenant-b", decided.ConnectionId},
		{"tenant-a", "5f0c7b1e-0000-4000-8000-000000000000"},
	} {
		r, err := b.instances[0].upkeep.RefreshConnection(b.service(t, "maintenance", c.tenant, ""), &m.RefreshConnectionRequest{ConnectionId: c.id})
		require.NoError(t, err)
		require.Equal(t, m.OutcomeStatus_OUTCOME_STATUS_SKIPPED, r.Outcome.Status, c.id)
		require.Equal(t, m.ConnectionState_CONNECTION_STATE_DISCONNECTED, r.State)
		require.Zero(t, r.Outcome.GoogleCalls)
	}
	_, err = b.instances[0].tokens.DeleteConnection(svc, &oauthv1.DeleteConnectionRequest{Kind: gmailKind, ProviderId: p1})
	require.NoError(t, err)
	r := b.refreshConn(t, "tenant-a", decided, true)
	require.Equal(t, m.OutcomeStatus_OUTCOME_STATUS_SKIPPED, r.Outcome.Status)
	require.EqualValues(t, 4, b.google.RefreshCalls.Load(), "nothing was called for the skipped ones")

	for _, bad := range []string{"", "not-a-uuid"} {
		_, err = b.instances[0].upkeep.RefreshConnection(b.service(t, "maintenance", "tenant-a", ""), &m.RefreshConnectionRequest{ConnectionId: bad})
		require.Equal(t, codes.InvalidArgument, status.Code(err), "connection_id must be a UUID: %q", bad)
	}
}

// TestRefreshConnectionFailureClasses: each failure is classified, recorded on the connection before
// the answer, and cleared by a later success.
func TestRefreshConnectionFailureClasses(t *testing.T) {
	t.Parallel()
	b := setup(t, 1, "")
	b.configure(t, "tenant-a")
	b.gmail.AddProvider("tenant-a", p1, "support@acme.test")

	cases := []struct {
		name, fault string
		consentAge  time.Duration
		class       m.FailureClass
		state       m.ConnectionState
		status      oauthv1.ConnectionStatus
		code        string
		remedy      string
	}{
		{"revoked", "invalid_grant", 0, m.FailureClass_FAILURE_CLASS_REVOKED, m.ConnectionState_CONNECTION_STATE_REVOKED,
			oauthv1.ConnectionStatus_CONNECTION_STATUS_REVOKED, "token_revoked", "Reconnect"},
		{"testing expiry", "invalid_grant", 7*24*time.Hour + time.Minute, m.FailureClass_FAILURE_CLASS_TESTING_EXPIRY, m.ConnectionState_CONNECTION_STATE_TESTING_EXPIRY,
			oauthv1.ConnectionStatus_CONNECTION_STATUS_EXPIRED_TESTING, "token_expired_testing", "publish the app to Production"},
		{"invalid_rapt", "invalid_rapt", 0, m.FailureClass_FAILURE_CLASS_INVALID_RAPT, m.ConnectionState_CONNECTION_STATE_INVALID_RAPT,
			oauthv1.ConnectionStatus_CONNECTION_STATUS_REAUTH_REQUIRED, "token_reauth_required", "Reconnect"},
		{"client deleted", "invalid_client", 0, m.FailureClass_FAILURE_CLASS_CLIENT_REPLACED, m.ConnectionState_CONNECTION_STATE_CLIENT_REPLACED,
			oauthv1.ConnectionStatus_CONNECTION_STATUS_CLIENT_INVALID, "token_client_invalid", "Update the OAuth client ID and secret"},
		{"client unauthorized", "unauthorized_client", 0, m.FailureClass_FAILURE_CLASS_CLIENT_REPLACED, m.ConnectionState_CONNECTION_STATE_CLIENT_REPLACED,
			oauthv1.ConnectionStatus_CONNECTION_STATUS_CLIENT_INVALID, "token_client_invalid", "Update the OAuth client ID and secret"},
		{"transient", "503", 0, m.FailureClass_FAILURE_CLASS_TRANSIENT, m.ConnectionState_CONNECTION_STATE_TRANSIENT_ERROR,
			oauthv1.ConnectionStatus_CONNECTION_STATUS_TRANSIENT_ERROR, "token_transient_error", "No action needed"},
	}
	for _, c := range cases {
		require.Equal(t, "connected", b.connect(t, "tenant-a", "u1", gmailKind, p1, "support@acme.test"), c.name)
		if c.consentAge > 0 {
			_, err := b.pool.Exec(t.Context(), "UPDATE oauth.connections SET consented_at = now() - $1::interval", c.consentAge.String())
			require.NoError(t, err)
		}
		decided := b.upkeepOf(t, "tenant-a", p1)
		calls := b.google.RefreshCalls.Load()
		b.google.SetFault(c.fault, 0)
		resp := b.refreshConn(t, "tenant-a", decided, false)
		out := resp.Outcome
		require.Equal(t, m.OutcomeStatus_OUTCOME_STATUS_FAILED, out.Status, c.name)
		require.Equal(t, c.class, out.FailureClass, c.name)
		require.Equal(t, c.code, out.ErrorCode, c.name)
		require.Contains(t, out.Remedy, c.remedy, c.name)
		require.NotEmpty(t, out.Message, c.name)
		require.EqualValues(t, 1, out.GoogleCalls, "one request, transient or not (the runner retries): "+c.name)
		require.EqualValues(t, 1, b.google.RefreshCalls.Load()-calls, c.name)
		require.Equal(t, c.state, resp.State, c.name)
		require.Nil(t, resp.LastRefreshTime, c.name)

		// Recorded on the connection before the answer.
		conn := b.connection(t, "tenant-a", gmailKind, p1)
		require.Equal(t, c.status, conn.Status, c.name)
		require.Equal(t, out.Message, conn.StatusMessage, c.name)
		require.Equal(t, out.Remedy, conn.Remedy, c.name)
		require.Equal(t, c.state, b.upkeepOf(t, "tenant-a", p1).State, c.name)
		types := eventTypes(conn)
		if c.class == m.FailureClass_FAILURE_CLASS_TRANSIENT {
			require.Equal(t, "refresh_failed", types[0], c.name)
			require.Contains(t, conn.Events[0].Message, runID, c.name)
		} else {
			require.Equal(t, []string{"reauthorization_required", "refresh_failed"}, types[:2], c.name)
			require.Contains(t, conn.Events[1].Message, runID, c.name)
			// A permanent failure answers at once from what is recorded, without asking Google.
			b.google.SetFault("", 0)
			calls = b.google.RefreshCalls.Load()
			again := b.refreshConn(t, "tenant-a", decided, false)
			require.Equal(t, m.OutcomeStatus_OUTCOME_STATUS_FAILED, again.Outcome.Status, c.name)
			require.Equal(t, c.class, again.Outcome.FailureClass, c.name)
			require.Equal(t, c.code, again.Outcome.ErrorCode, c.name)
			require.Zero(t, again.Outcome.GoogleCalls, c.name)
			require.Equal(t, calls, b.google.RefreshCalls.Load(), c.name)
			if c.fault == "invalid_client" || c.fault == "unauthorized_client" || c.fault == "invalid_grant" || c.fault == "invalid_rapt" {
				// Forced, Google answers again (the fake never broke the grant): the success clears it.
				require.Equal(t, m.OutcomeStatus_OUTCOME_STATUS_OK, b.refreshConn(t, "tenant-a", decided, true).Outcome.Status, c.name)
			}
		}
		// A later success clears the failure.
		b.google.SetFault("", 0)
		if c.class == m.FailureClass_FAILURE_CLASS_TRANSIENT {
			ok := b.refreshConn(t, "tenant-a", b.upkeepOf(t, "tenant-a", p1), false)
			require.Equal(t, m.OutcomeStatus_OUTCOME_STATUS_OK, ok.Outcome.Status)
			require.EqualValues(t, 1, ok.Outcome.GoogleCalls)
		}
		conn = b.connection(t, "tenant-a", gmailKind, p1)
		require.Equal(t, oauthv1.ConnectionStatus_CONNECTION_STATUS_CONNECTED, conn.Status, c.name)
		require.Empty(t, conn.StatusMessage, c.name)
		require.Empty(t, conn.Remedy, c.name)
		require.Equal(t, "recovered", eventTypes(conn)[0], c.name)
		require.Equal(t, m.ConnectionState_CONNECTION_STATE_CONNECTED, b.upkeepOf(t, "tenant-a", p1).State, c.name)
	}
}

// TestRefreshConnectionSetupFailures: failures of the tenant's setup, found without calling Google.
func TestRefreshConnectionSetupFailures(t *testing.T) {
	t.Parallel()
	b := setup(t, 1, "")
	b.configure(t, "tenant-a")
	b.gmail.AddProvider("tenant-a", p1, "support@acme.test")
	require.Equal(t, "connected", b.connect(t, "tenant-a", "u1", gmailKind, p1, "support@acme.test"))

	// The OAuth client is gone from the setup: NOT_CONFIGURED, recorded (as a transient error: the grant
	// itself is fine), and cleared once the client is back.
	b.secrets.Delete("tenant-a", "google_client_secret")
	resp := b.refreshConn(t, "tenant-a", b.upkeepOf(t, "tenant-a", p1), false)
	require.Equal(t, m.OutcomeStatus_OUTCOME_STATUS_FAILED, resp.Outcome.Status)
	require.Equal(t, m.FailureClass_FAILURE_CLASS_NOT_CONFIGURED, resp.Outcome.FailureClass)
	require.Equal(t, "google_not_configured", resp.Outcome.ErrorCode)
	require.Contains(t, resp.Outcome.Message, "Gmail OAuth client secret")
	require.Contains(t, resp.Outcome.Remedy, "Settings → Integrations → Communication → Google")
	require.Zero(t, resp.Outcome.GoogleCalls)
	require.Zero(t, b.google.RefreshCalls.Load())
	require.Equal(t, m.ConnectionState_CONNECTION_STATE_TRANSIENT_ERROR, resp.State)
	conn := b.connection(t, "tenant-a", gmailKind, p1)
	require.Equal(t, oauthv1.ConnectionStatus_CONNECTION_STATUS_TRANSIENT_ERROR, conn.Status)
	require.Equal(t, resp.Outcome.Remedy, conn.Remedy)
	require.Equal(t, "refresh_failed", conn.Events[0].Type)
	require.Contains(t, conn.Events[0].Message, "google_not_configured")
	// GetAccessToken answers the same failure with its reason.
	_, err := b.instances[0].tokens.GetAccessToken(b.service(t, "gmail", "tenant-a", ""), &oauthv1.GetAccessTokenRequest{Kind: gmailKind, ProviderId: p1, ForceRefresh: true})
	require.Equal(t, "GOOGLE_NOT_CONFIGURED", errs.ReasonOf(err))

	b.secrets.Set("tenant-a", "google_client_secret", secretA)
	ok := b.refreshConn(t, "tenant-a", b.upkeepOf(t, "tenant-a", p1), false)
	require.Equal(t, m.OutcomeStatus_OUTCOME_STATUS_OK, ok.Outcome.Status)
	require.Equal(t, m.ConnectionState_CONNECTION_STATE_CONNECTED, ok.State)
	conn = b.connection(t, "tenant-a", gmailKind, p1)
	require.Equal(t, oauthv1.ConnectionStatus_CONNECTION_STATUS_CONNECTED, conn.Status)
	require.Equal(t, "recovered", conn.Events[0].Type)

	// The client was replaced in the setup: the grant belongs to the old one. CLIENT_REPLACED, no call.
	calls := b.google.RefreshCalls.Load()
	b.google.AddClient(clientB, secretB)
	_, err = b.instances[0].setup.UpdateGoogleConfig(b.admin(t, "tenant-a"), &oauthv1.UpdateGoogleConfigRequest{GmailClientId: ptr(clientB), GmailClientSecret: ptr(secretB)})
	require.NoError(t, err)
	resp = b.refreshConn(t, "tenant-a", b.upkeepOf(t, "tenant-a", p1), false)
	require.Equal(t, m.FailureClass_FAILURE_CLASS_CLIENT_REPLACED, resp.Outcome.FailureClass)
	require.Equal(t, m.ConnectionState_CONNECTION_STATE_CLIENT_REPLACED, resp.State)
	require.Zero(t, resp.Outcome.GoogleCalls)
	require.Equal(t, calls, b.google.RefreshCalls.Load())

	// Forced while the setup lacks the client: NOT_CONFIGURED, and the grant keeps its recorded status.
	b.secrets.Delete("tenant-a", "google_client_id")
	resp = b.refreshConn(t, "tenant-a", b.upkeepOf(t, "tenant-a", p1), true)
	require.Equal(t, m.FailureClass_FAILURE_CLASS_NOT_CONFIGURED, resp.Outcome.FailureClass)
	require.Equal(t, m.ConnectionState_CONNECTION_STATE_CLIENT_REPLACED, resp.State)
	require.Equal(t, oauthv1.ConnectionStatus_CONNECTION_STATUS_CLIENT_INVALID, b.connection(t, "tenant-a", gmailKind, p1).Status)
}

// TestRefreshConnectionRacesGetAccessToken: maintenance's refresh and callers needing a token, on
// three instances at once, make one refresh at Google between them (the one-refresh-per-connection lock).
func TestRefreshConnectionRacesGetAccessToken(t *testing.T) {
	t.Parallel()
	b := setup(t, 3, "")
	b.configure(t, "tenant-a")
	b.gmail.AddProvider("tenant-a", p1, "support@acme.test")
	require.Equal(t, "connected", b.connect(t, "tenant-a", "u1", gmailKind, p1, "support@acme.test"))
	b.google.RefreshDelay = 50 * time.Millisecond
	b.expireAccessToken(t, "tenant-a")
	decided := b.upkeepOf(t, "tenant-a", p1)

	const n = 60
	var wg sync.WaitGroup
	start := make(chan struct{})
	errsSeen := make([]error, n)
	outcomes := make([]*m.RefreshConnectionResponse, 3)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			in := b.instances[i%3]
			<-start
			if i < 3 {
				outcomes[i], errsSeen[i] = in.upkeep.RefreshConnection(b.service(t, "maintenance", "tenant-a", ""),
					&m.RefreshConnectionRequest{ConnectionId: decided.ConnectionId, SeenRefreshTime: decided.LastRefreshTime, RunId: runID})
				return
			}
			_, errsSeen[i] = in.tokens.GetAccessToken(b.service(t, "gmail", "tenant-a", ""), &oauthv1.GetAccessTokenRequest{Kind: gmailKind, ProviderId: p1})
		}()
	}
	close(start)
	wg.Wait()
	var calls int32
	for i := range n {
		require.NoError(t, errsSeen[i])
	}
	for _, o := range outcomes {
		require.Equal(t, m.OutcomeStatus_OUTCOME_STATUS_OK, o.Outcome.Status)
		calls += o.Outcome.GoogleCalls
	}
	require.EqualValues(t, 1, b.google.RefreshCalls.Load(), "one refresh at Google for everyone")
	require.LessOrEqual(t, calls, int32(1), "the upkeep calls report only the calls they made")
}

func TestTenantDirectory(t *testing.T) {
	t.Parallel()
	b := setup(t, 1, "")
	setupSvc := b.instances[0].setup
	dir := b.instances[0].directory
	list := func() map[string]time.Time {
		t.Helper()
		resp, err := dir.ListConfiguredTenants(b.service(t, "maintenance", "", ""), &m.ListConfiguredTenantsRequest{})
		require.NoError(t, err)
		out := map[string]time.Time{}
		for _, c := range resp.Tenants {
			out[c.Tenant] = c.UpdateTime.AsTime()
		}
		return out
	}
	require.Empty(t, list())

	b.configure(t, "tenant-a") // CONFIGURED
	_, err := setupSvc.UpdateGoogleConfig(b.admin(t, "tenant-b"), &oauthv1.UpdateGoogleConfigRequest{GmailClientId: ptr(clientA), ProjectId: ptr(projectA)})
	require.NoError(t, err) // PARTIAL
	_, err = setupSvc.UpdateGoogleConfig(b.admin(t, "tenant-c"), &oauthv1.UpdateGoogleConfigRequest{UseSameApp: ptr(false)})
	require.NoError(t, err) // saved, but nothing of a setup: MISSING
	cfg, err := setupSvc.GetGoogleConfig(b.admin(t, "tenant-b"), &oauthv1.GetGoogleConfigRequest{})
	require.NoError(t, err)
	require.Equal(t, oauthv1.GoogleConfigState_GOOGLE_CONFIG_STATE_PARTIAL, cfg.Config.State)
	cfg, err = setupSvc.GetGoogleConfig(b.admin(t, "tenant-c"), &oauthv1.GetGoogleConfigRequest{})
	require.NoError(t, err)
	require.Equal(t, oauthv1.GoogleConfigState_GOOGLE_CONFIG_STATE_MISSING, cfg.Config.State)

	got := list()
	require.Len(t, got, 2)
	require.Contains(t, got, "tenant-a")
	require.Contains(t, got, "tenant-b")
	resp, err := dir.ListConfiguredTenants(b.service(t, "maintenance", "", ""), &m.ListConfiguredTenantsRequest{})
	require.NoError(t, err)
	require.Equal(t, "tenant-a", resp.Tenants[0].Tenant, "ordered by tenant")

	// tenant-b completes its setup, tenant-c starts one: both listed, b's time moves.
	_, err = setupSvc.UpdateGoogleConfig(b.admin(t, "tenant-b"), &oauthv1.UpdateGoogleConfigRequest{
		GmailClientSecret: ptr(secretA), ServiceAccountKeyJson: ptr(serviceAccountKey(t, projectA))})
	require.NoError(t, err)
	_, err = setupSvc.UpdateGoogleConfig(b.admin(t, "tenant-c"), &oauthv1.UpdateGoogleConfigRequest{ProjectId: ptr("acme-c-1")})
	require.NoError(t, err)
	now := list()
	require.Len(t, now, 3)
	require.True(t, now["tenant-b"].After(got["tenant-b"]))
	require.Equal(t, got["tenant-a"], now["tenant-a"])

	// The setup's values deleted behind the service's back (through the secrets API): the recorded
	// state is stale until the setup is looked at, which records what it finds.
	b.secrets.Delete("tenant-c", b.secrets.Names("tenant-c")...)
	require.Contains(t, list(), "tenant-c")
	cfg, err = setupSvc.GetGoogleConfig(b.user(t, "tenant-c", "u9"), &oauthv1.GetGoogleConfigRequest{})
	require.NoError(t, err)
	require.Equal(t, oauthv1.GoogleConfigState_GOOGLE_CONFIG_STATE_MISSING, cfg.Config.State)
	require.NotContains(t, list(), "tenant-c")
	// Looking at an unchanged setup records nothing.
	before := list()
	_, err = setupSvc.GetGoogleConfig(b.user(t, "tenant-a", "u9"), &oauthv1.GetGoogleConfigRequest{})
	require.NoError(t, err)
	require.Equal(t, before, list())

	// A reset keeps the setup, so the tenant stays listed (its state read again, its time moved); a
	// reset after the setup vanished behind the service's back records that.
	_, err = setupSvc.ResetGoogleProviders(b.admin(t, "tenant-a"), &oauthv1.ResetGoogleProvidersRequest{})
	require.NoError(t, err)
	require.True(t, list()["tenant-a"].After(before["tenant-a"]))
	b.secrets.Delete("tenant-b", b.secrets.Names("tenant-b")...)
	_, err = setupSvc.ResetGoogleProviders(b.admin(t, "tenant-b"), &oauthv1.ResetGoogleProvidersRequest{})
	require.NoError(t, err)
	require.Equal(t, []string{"tenant-a"}, keysOf(list()))

	// Only a service acting for no tenant may list the tenants.
	for name, ctx := range map[string]context.Context{
		"user":                  b.admin(t, "tenant-a"),
		"service for a tenant":  b.service(t, "maintenance", "tenant-a", ""),
		"service for a user":    b.service(t, "gmail", "tenant-a", "u1"),
		"tenant-less user call": b.user(t, "", "u1"),
	} {
		_, err := dir.ListConfiguredTenants(ctx, &m.ListConfiguredTenantsRequest{})
		require.Contains(t, []codes.Code{codes.PermissionDenied, codes.Unauthenticated}, status.Code(err), name)
	}
}

func keysOf(m map[string]time.Time) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
