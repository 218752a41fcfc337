package e2e_test

import (
	"encoding/json"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	oauthv1 "github.com/algapsa/alga-google/gen/alga/oauth/v1"
	secretsv1 "github.com/algapsa/alga-google/gen/alga/secrets/v1"
	"github.com/algapsa/alga-google/services/googlesandbox"
	"github.com/algapsa/alga-google/services/oauth/oauthtesting"
	"github.com/algapsa/alga-google/services/platform/config"
	"github.com/algapsa/alga-google/services/suite/harness"
)

// TestOAuthOneRefreshAcrossThreeInstances: 200 concurrent GetAccessToken calls for one connection whose
// access token has expired, spread over three oauth instances sharing one database, cause exactly one
// refresh at Google; every caller gets the same, valid token.
func TestOAuthOneRefreshAcrossThreeInstances(t *testing.T) {
	t.Parallel()
	sb := startSandbox(t)
	e := newEnv(t, harness.Options{Sandbox: sb})
	ts := e.setupTenant(t, "tenant-refresh", "acme-refresh-1", setupOpts{})
	p := e.connectGmail(t, ts, "busy@acme.test")
	e.waitSyncIdle(t)

	// Three more oauth instances (each with its own secrets target, sharing the KEK) on the same database.
	var instances []*harness.Suite
	for range 3 {
		instances = append(instances, harness.Start(t, harness.Options{DatabaseURL: e.s.DatabaseURL, Sandbox: sb, Targets: "secrets,oauth",
			Configure: func(c *config.Config) { c.GmailAddr, c.CalendarAddr = e.s.App.GRPCAddr(), e.s.App.GRPCAddr() }}))
	}

	// The stored access token expires (its recorded expiry moves into the past), as an hour later.
	conn := e.connection(t, ts.tenant, p.ID)
	grant := e.storedGrant(t, ts.tenant, conn.GetConnectionId())
	oldToken := grant["access_token"].(string)
	grant["expiry"] = time.Now().Add(-time.Minute).UTC().Format(time.RFC3339Nano)
	raw, err := json.Marshal(grant)
	require.NoError(t, err)
	_, err = secretsv1.NewSecretsServiceClient(e.s.Conn(t)).PutSecrets(e.svcCtx("oauth", ts.tenant), &secretsv1.PutSecretsRequest{
		Writes: []*secretsv1.SecretWrite{{Name: "google_oauth_token_" + conn.GetConnectionId(), Value: string(raw)}}})
	require.NoError(t, err)
	err = oauthtesting.ExpireAccessToken(e.ctx, e.s.App.Deps().Pool, conn.GetConnectionId())
	require.NoError(t, err)
	key := "oauth.token.refresh_token|" + ts.project.ClientID
	before := e.counter(t, key)

	var clients []oauthv1.TokenServiceClient
	for _, in := range instances {
		clients = append(clients, oauthv1.NewTokenServiceClient(in.Conn(t)))
	}
	ctx := harness.WithToken(e.ctx, e.s.ServiceToken("gmail", ts.tenant))
	var (
		mu     sync.Mutex
		tokens = map[string]int{}
		errs   []error
		wg     sync.WaitGroup
		start  = make(chan struct{})
	)
	for i := range 200 {
		wg.Go(func() {
			<-start
			res, err := clients[i%3].GetAccessToken(ctx, &oauthv1.GetAccessTokenRequest{Kind: oauthv1.ProviderKind_PROVIDER_KIND_GMAIL, ProviderId: p.ID})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			tokens[res.GetAccessToken()]++
		})
	}
	close(start)
	wg.Wait()
	require.Empty(t, errs)
	require.Equal(t, int64(1), e.counter(t, key)-before, "exactly one refresh at Google")
	require.Len(t, tokens, 1, "every caller got the same token")
	var fresh string
	for tok, n := range tokens {
		fresh = tok
		require.Equal(t, 200, n)
	}
	require.NotEqual(t, oldToken, fresh)

	// The token is valid at Google: the mailbox's profile.
	req, err := http.NewRequestWithContext(e.ctx, http.MethodGet, sb.URL()+"/gmail/v1/users/me/profile", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+fresh)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var profile struct {
		EmailAddress string `json:"emailAddress"`
	}
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&profile))
	require.Equal(t, "busy@acme.test", profile.EmailAddress)
}

// TestOAuthRefreshFailureClasses: each refresh failure Google can answer puts the connection in its own
// status with its own remedy (read through TokenService.GetConnection).
func TestOAuthRefreshFailureClasses(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		publishing string
		breakIt    func(t *testing.T, e *env, ts *tenantSetup, mailbox string)
		want       oauthv1.ConnectionStatus
		wantCode   codes.Code
		remedy     string
	}{
		{name: "revoked", want: oauthv1.ConnectionStatus_CONNECTION_STATUS_REVOKED, wantCode: codes.FailedPrecondition, remedy: "Reconnect",
			breakIt: func(t *testing.T, e *env, ts *tenantSetup, mailbox string) {
				require.NoError(t, e.admin.RevokeGrant(e.ctx, mailbox, ts.project.ClientID))
			}},
		{name: "testing-mode 7-day expiry", publishing: googlesandbox.PublishingTesting,
			want: oauthv1.ConnectionStatus_CONNECTION_STATUS_EXPIRED_TESTING, wantCode: codes.FailedPrecondition, remedy: "Production",
			breakIt: func(t *testing.T, e *env, ts *tenantSetup, mailbox string) {
				require.NoError(t, e.admin.AdvanceClock(e.ctx, 8*24*time.Hour))
				// Our side judges the consent's age by its own clock: the consent happened 8 days ago.
				err := oauthtesting.AgeConsent(e.ctx, e.s.App.Deps().Pool, mailbox, 8*24*time.Hour)
				require.NoError(t, err)
			}},
		{name: "invalid_rapt", want: oauthv1.ConnectionStatus_CONNECTION_STATUS_REAUTH_REQUIRED, wantCode: codes.FailedPrecondition, remedy: "Reconnect",
			breakIt: func(t *testing.T, e *env, ts *tenantSetup, mailbox string) {
				require.NoError(t, e.admin.SetFault(e.ctx, googlesandbox.Fault{Endpoint: "oauth.token.refresh_token", ForceError: "invalid_rapt"}))
			}},
		{name: "client deleted", want: oauthv1.ConnectionStatus_CONNECTION_STATUS_CLIENT_INVALID, wantCode: codes.FailedPrecondition, remedy: "OAuth client",
			breakIt: func(t *testing.T, e *env, ts *tenantSetup, mailbox string) {
				require.NoError(t, e.admin.DeleteOAuthClient(e.ctx, ts.project.ClientID))
			}},
		{name: "Google unavailable", want: oauthv1.ConnectionStatus_CONNECTION_STATUS_TRANSIENT_ERROR, wantCode: codes.Unavailable, remedy: "No action needed",
			breakIt: func(t *testing.T, e *env, ts *tenantSetup, mailbox string) {
				require.NoError(t, e.admin.SetFault(e.ctx, googlesandbox.Fault{Endpoint: "oauth.token.refresh_token", Rate5xx: 1, Status5xx: 503}))
			}},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, harness.Options{})
			ts := e.setupTenant(t, "tenant-fail-"+itoa(i), "acme-fail-"+itoa(i), setupOpts{publishing: c.publishing})
			mailbox := "fail" + itoa(i) + "@acme.test"
			e.ensureUser(t, mailbox, ts.project.ProjectID)
			p := e.connectGmail(t, ts, mailbox)
			e.waitSyncIdle(t)
			require.Equal(t, oauthv1.ConnectionStatus_CONNECTION_STATUS_CONNECTED, e.connection(t, ts.tenant, p.ID).GetStatus())

			c.breakIt(t, e, ts, mailbox)
			refreshes := e.counter(t, "oauth.token.refresh_token")
			tokens := oauthv1.NewTokenServiceClient(e.s.Conn(t))
			_, err := tokens.GetAccessToken(e.svcCtx("maintenance", ts.tenant), &oauthv1.GetAccessTokenRequest{
				Kind: oauthv1.ProviderKind_PROVIDER_KIND_GMAIL, ProviderId: p.ID, ForceRefresh: true})
			require.Equal(t, c.wantCode, status.Code(err), "%v", err)
			require.Positive(t, e.counter(t, "oauth.token.refresh_token")-refreshes, "Google was asked")

			conn := e.connection(t, ts.tenant, p.ID)
			require.Equal(t, c.want, conn.GetStatus(), conn.GetStatusMessage())
			require.NotEmpty(t, conn.GetStatusMessage())
			require.Contains(t, conn.GetRemedy(), c.remedy)
			var types []string
			for _, ev := range conn.GetEvents() {
				types = append(types, ev.GetType())
			}
			require.Contains(t, types, "refresh_failed")
			if c.wantCode == codes.Unavailable {
				// Transient: once Google answers again, the connection recovers by itself.
				require.NoError(t, e.admin.ClearFaults(e.ctx))
				_, err = tokens.GetAccessToken(e.svcCtx("maintenance", ts.tenant), &oauthv1.GetAccessTokenRequest{
					Kind: oauthv1.ProviderKind_PROVIDER_KIND_GMAIL, ProviderId: p.ID, ForceRefresh: true})
				require.NoError(t, err)
				require.Equal(t, oauthv1.ConnectionStatus_CONNECTION_STATUS_CONNECTED, e.connection(t, ts.tenant, p.ID).GetStatus())
				return
			}
			// Permanent: the next caller is told at once, without asking Google again.
			refreshes = e.counter(t, "oauth.token.refresh_token")
			_, err = tokens.GetAccessToken(e.svcCtx("gmail", ts.tenant), &oauthv1.GetAccessTokenRequest{Kind: oauthv1.ProviderKind_PROVIDER_KIND_GMAIL, ProviderId: p.ID})
			require.Equal(t, codes.FailedPrecondition, status.Code(err))
			require.Equal(t, refreshes, e.counter(t, "oauth.token.refresh_token"))
		})
	}
}
