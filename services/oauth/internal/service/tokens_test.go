package service_test

import (
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	oauthv1 "github.com/algapsa/alga-google/gen/alga/oauth/v1"
	"github.com/algapsa/alga-google/services/platform/errs"
)

// ReasonReauthorizationRequired is the reason callers branch on (service.ReasonReauthorizationRequired).
const ReasonReauthorizationRequired = "REAUTHORIZATION_REQUIRED"

// expireAccessToken makes the stored access tokens of a tenant expired (row and secret).
func (b *testBundle) expireAccessToken(t *testing.T, tenant string) {
	rows, err := b.pool.Query(t.Context(), "UPDATE oauth.connections SET access_token_expires_at = now() - interval '1 minute' WHERE tenant = $1 RETURNING id::text", tenant)
	require.NoError(t, err)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	for _, id := range ids {
		name := "google_oauth_token_" + id
		raw, ok := b.secrets.Value(tenant, name)
		require.True(t, ok)
		var tok map[string]any
		require.NoError(t, json.Unmarshal([]byte(raw), &tok))
		tok["expiry"] = time.Now().Add(-time.Minute).Format(time.RFC3339Nano)
		aged, _ := json.Marshal(tok)
		b.secrets.Set(tenant, name, string(aged))
	}
}

func TestOneRefreshAcrossThreeInstances(t *testing.T) {
	t.Parallel()
	b := setup(t, 3, "")
	b.configure(t, "tenant-a")
	b.gmail.AddProvider("tenant-a", p1, "support@acme.test")
	require.Equal(t, "connected", b.connect(t, "tenant-a", "u1", gmailKind, p1, "support@acme.test"))
	b.google.RefreshDelay = 100 * time.Millisecond
	b.expireAccessToken(t, "tenant-a")
	const n = 200
	var wg sync.WaitGroup
	tokens := make([]string, n)
	errsSeen := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			in := b.instances[i%3]
			ctx := b.service(t, "gmail", "tenant-a", "")
			<-start
			resp, err := in.tokens.GetAccessToken(ctx, &oauthv1.GetAccessTokenRequest{Kind: gmailKind, ProviderId: p1})
			errsSeen[i] = err
			if err == nil {
				tokens[i] = resp.AccessToken
			}
		}()
	}
	close(start)
	wg.Wait()
	for i := range n {
		require.NoError(t, errsSeen[i])
		require.True(t, b.google.ValidAccessToken(tokens[i]))
		require.Equal(t, tokens[0], tokens[i], "every caller got the one refreshed token")
	}
	require.EqualValues(t, 1, b.google.Refreshes.Load(), "exactly one refresh at Google for 200 callers on 3 instances")
	require.EqualValues(t, 1, b.google.RefreshCalls.Load())
}

func TestRefreshFailureClasses(t *testing.T) {
	t.Parallel()
	b := setup(t, 1, "")
	b.configure(t, "tenant-a")
	b.gmail.AddProvider("tenant-a", p1, "support@acme.test")
	svc := b.service(t, "gmail", "tenant-a", "")
	tokens := b.instances[0].tokens
	force := &oauthv1.GetAccessTokenRequest{Kind: gmailKind, ProviderId: p1, ForceRefresh: true}

	cases := []struct {
		name, fault string
		consentAge  time.Duration
		want        oauthv1.ConnectionStatus
		code        codes.Code
		remedy      string
	}{
		{"revoked", "invalid_grant", 0, oauthv1.ConnectionStatus_CONNECTION_STATUS_REVOKED, codes.FailedPrecondition, "Reconnect"},
		{"testing expiry", "invalid_grant", 7*24*time.Hour + time.Minute, oauthv1.ConnectionStatus_CONNECTION_STATUS_EXPIRED_TESTING, codes.FailedPrecondition, "publish the app to Production"},
		{"invalid_rapt", "invalid_rapt", 0, oauthv1.ConnectionStatus_CONNECTION_STATUS_REAUTH_REQUIRED, codes.FailedPrecondition, "Reconnect"},
		{"client deleted", "invalid_client", 0, oauthv1.ConnectionStatus_CONNECTION_STATUS_CLIENT_INVALID, codes.FailedPrecondition, "Update the OAuth client ID and secret"},
		{"client unauthorized", "unauthorized_client", 0, oauthv1.ConnectionStatus_CONNECTION_STATUS_CLIENT_INVALID, codes.FailedPrecondition, "Update the OAuth client ID and secret"},
		{"transient", "503", 0, oauthv1.ConnectionStatus_CONNECTION_STATUS_TRANSIENT_ERROR, codes.Unavailable, "No action needed"},
	}
	for _, c := range cases {
		require.Equal(t, "connected", b.connect(t, "tenant-a", "u1", gmailKind, p1, "support@acme.test"), c.name)
		if c.consentAge > 0 {
			_, err := b.pool.Exec(t.Context(), "UPDATE oauth.connections SET consented_at = now() - $1::interval", c.consentAge.String())
			require.NoError(t, err)
		}
		calls := b.google.RefreshCalls.Load()
		b.google.SetFault(c.fault, 0)
		_, err := tokens.GetAccessToken(svc, force)
		require.Equal(t, c.code, status.Code(err), c.name)
		if c.code == codes.FailedPrecondition {
			reason, meta := reasonOf(err)
			require.Equal(t, "REAUTHORIZATION_REQUIRED", reason, c.name)
			require.Equal(t, c.want.String(), meta["status"], c.name)
			require.EqualValues(t, 1, b.google.RefreshCalls.Load()-calls, "permanent failures are not retried: "+c.name)
			// Without force, a permanently failed connection answers at once, without calling Google.
			_, err = tokens.GetAccessToken(svc, &oauthv1.GetAccessTokenRequest{Kind: gmailKind, ProviderId: p1})
			require.Equal(t, codes.FailedPrecondition, status.Code(err), c.name)
			require.EqualValues(t, 1, b.google.RefreshCalls.Load()-calls, c.name)
		} else {
			require.EqualValues(t, 3, b.google.RefreshCalls.Load()-calls, "transient failures are retried, bounded")
		}
		conn, err := tokens.GetConnection(svc, &oauthv1.GetConnectionRequest{Kind: gmailKind, ProviderId: p1})
		require.NoError(t, err)
		require.Equal(t, c.want, conn.Connection.Status, c.name)
		require.Contains(t, conn.Connection.Remedy, c.remedy, c.name)
		require.NotEmpty(t, conn.Connection.StatusMessage, c.name)
		require.Equal(t, "refresh_failed", eventTypes(conn.Connection)[func() int {
			if c.code == codes.Unavailable {
				return 0
			}
			return 1
		}()], c.name)

		// Recovery: Google answers again.
		b.google.SetFault("", 0)
		if c.code == codes.Unavailable {
			_, err = tokens.GetAccessToken(svc, force)
			require.NoError(t, err)
			conn, err = tokens.GetConnection(svc, &oauthv1.GetConnectionRequest{Kind: gmailKind, ProviderId: p1})
			require.NoError(t, err)
			require.Equal(t, oauthv1.ConnectionStatus_CONNECTION_STATUS_CONNECTED, conn.Connection.Status)
			require.Equal(t, "recovered", eventTypes(conn.Connection)[0])
		}
	}
}

func eventTypes(c *oauthv1.Connection) []string {
	var out []string
	for _, e := range c.Events {
		out = append(out, e.Type)
	}
	return out
}

func TestClientChangedSinceConnect(t *testing.T) {
	t.Parallel()
	b := setup(t, 1, "")
	b.configure(t, "tenant-a")
	b.gmail.AddProvider("tenant-a", p1, "support@acme.test")
	require.Equal(t, "connected", b.connect(t, "tenant-a", "u1", gmailKind, p1, "support@acme.test"))
	b.google.AddClient(clientB, secretB)
	_, err := b.instances[0].setup.UpdateGoogleConfig(b.admin(t, "tenant-a"), &oauthv1.UpdateGoogleConfigRequest{GmailClientId: ptr(clientB), GmailClientSecret: ptr(secretB)})
	require.NoError(t, err)
	svc := b.service(t, "gmail", "tenant-a", "")
	_, err = b.instances[0].tokens.GetAccessToken(svc, &oauthv1.GetAccessTokenRequest{Kind: gmailKind, ProviderId: p1, ForceRefresh: true})
	_, meta := reasonOf(err)
	require.Equal(t, "CONNECTION_STATUS_CLIENT_INVALID", meta["status"])

	// Credentials gone entirely: fail fast, pointing to the Google setup.
	b.secrets.Delete("tenant-a", "google_client_id")
	_, err = b.instances[0].tokens.GetAccessToken(svc, &oauthv1.GetAccessTokenRequest{Kind: gmailKind, ProviderId: p1, ForceRefresh: true})
	reason, _ := reasonOf(err)
	require.Equal(t, "GOOGLE_NOT_CONFIGURED", reason)
}

func TestTenantIsolationAndDeleteAndReset(t *testing.T) {
	t.Parallel()
	b := setup(t, 1, "")
	b.configure(t, "tenant-a")
	b.gmail.AddProvider("tenant-a", p1, "support@acme.test")
	require.Equal(t, "connected", b.connect(t, "tenant-a", "u1", gmailKind, p1, "support@acme.test"))
	tokens := b.instances[0].tokens

	_, err := tokens.GetAccessToken(b.service(t, "gmail", "tenant-b", ""), &oauthv1.GetAccessTokenRequest{Kind: gmailKind, ProviderId: p1})
	require.Equal(t, codes.NotFound, status.Code(err), "another tenant cannot reach the connection")

	list, err := tokens.ListConnections(b.service(t, "maintenance", "tenant-a", ""), &oauthv1.ListConnectionsRequest{})
	require.NoError(t, err)
	require.Len(t, list.Connections, 1)
	connID := list.Connections[0].ConnectionId

	del, err := tokens.DeleteConnection(b.service(t, "gmail", "tenant-a", ""), &oauthv1.DeleteConnectionRequest{Kind: gmailKind, ProviderId: p1, Revoke: true})
	require.NoError(t, err)
	require.True(t, del.Deleted)
	require.EqualValues(t, 1, b.google.Revocations.Load())
	_, ok := b.secrets.Value("tenant-a", "google_oauth_token_"+connID)
	require.False(t, ok, "the token secret is deleted")
	del, err = tokens.DeleteConnection(b.service(t, "gmail", "tenant-a", ""), &oauthv1.DeleteConnectionRequest{Kind: gmailKind, ProviderId: p1})
	require.NoError(t, err)
	require.False(t, del.Deleted)

	// Reset: providers reset through their services (Calendar not implemented yet → a warning), every
	// connection and its tokens cleared.
	require.Equal(t, "connected", b.connect(t, "tenant-a", "u1", gmailKind, p1, "support@acme.test"))
	list, _ = tokens.ListConnections(b.service(t, "maintenance", "tenant-a", ""), &oauthv1.ListConnectionsRequest{})
	connID = list.Connections[0].ConnectionId
	resp, err := b.instances[0].setup.ResetGoogleProviders(b.admin(t, "tenant-a"), &oauthv1.ResetGoogleProvidersRequest{})
	require.NoError(t, err)
	require.EqualValues(t, 1, resp.GmailProvidersReset)
	require.EqualValues(t, 1, resp.ConnectionsCleared)
	require.Len(t, resp.Warnings, 2)
	require.Contains(t, resp.Warnings[1], "Calendar")
	_, ok = b.secrets.Value("tenant-a", "google_oauth_token_"+connID)
	require.False(t, ok)
	list, _ = tokens.ListConnections(b.service(t, "maintenance", "tenant-a", ""), &oauthv1.ListConnectionsRequest{})
	require.Empty(t, list.Connections)
}

// TestForceRefreshWithValidCachedToken: a caller that got a 401 with a cached token that has not expired
// (a grant revoked early) forces a refresh: Google is asked even though the token is valid, and the
// failure comes back with a reason and a class the caller branches on.
func TestForceRefreshWithValidCachedToken(t *testing.T) {
	t.Parallel()
	b := setup(t, 1, "")
	b.configure(t, "tenant-a")
	b.gmail.AddProvider("tenant-a", p1, "support@acme.test")
	require.Equal(t, "connected", b.connect(t, "tenant-a", "u1", gmailKind, p1, "support@acme.test"))
	svc := b.service(t, "gmail", "tenant-a", "")
	tokens := b.instances[0].tokens
	get := &oauthv1.GetAccessTokenRequest{Kind: gmailKind, ProviderId: p1}
	force := &oauthv1.GetAccessTokenRequest{Kind: gmailKind, ProviderId: p1, ForceRefresh: true}

	cached, err := tokens.GetAccessToken(svc, get)
	require.NoError(t, err)
	require.Zero(t, b.google.RefreshCalls.Load())
	forced, err := tokens.GetAccessToken(svc, force)
	require.NoError(t, err)
	require.EqualValues(t, 1, b.google.RefreshCalls.Load(), "forced although the cached token is valid")
	require.NotEqual(t, cached.AccessToken, forced.AccessToken)
	require.True(t, b.google.ValidAccessToken(forced.AccessToken))
	again, err := tokens.GetAccessToken(svc, get)
	require.NoError(t, err)
	require.Equal(t, forced.AccessToken, again.AccessToken, "the forced token is the cached one now")

	// Transient: GOOGLE_UNAVAILABLE, class TRANSIENT; the cached token still serves unforced callers.
	b.google.SetFault("503", 0)
	_, err = tokens.GetAccessToken(svc, force)
	require.Equal(t, codes.Unavailable, status.Code(err))
	require.Equal(t, "GOOGLE_UNAVAILABLE", errs.ReasonOf(err))
	_, meta := reasonOf(err)
	require.Equal(t, "FAILURE_CLASS_TRANSIENT", meta["failure_class"])
	require.Equal(t, "CONNECTION_STATUS_TRANSIENT_ERROR", meta["status"])

	// Revoked before the token expired: REAUTHORIZATION_REQUIRED, class REVOKED, recorded.
	b.google.SetFault("invalid_grant", 0)
	_, err = tokens.GetAccessToken(svc, force)
	require.Equal(t, codes.FailedPrecondition, status.Code(err))
	require.Equal(t, ReasonReauthorizationRequired, errs.ReasonOf(err))
	_, meta = reasonOf(err)
	require.Equal(t, "FAILURE_CLASS_REVOKED", meta["failure_class"])
	require.Equal(t, "CONNECTION_STATUS_REVOKED", meta["status"])
	require.Equal(t, oauthv1.ConnectionStatus_CONNECTION_STATUS_REVOKED, b.connection(t, "tenant-a", gmailKind, p1).Status)
	// From now on every caller is told at once, without Google, with the same reason and class.
	calls := b.google.RefreshCalls.Load()
	_, err = tokens.GetAccessToken(svc, get)
	require.Equal(t, ReasonReauthorizationRequired, errs.ReasonOf(err))
	_, meta = reasonOf(err)
	require.Equal(t, "FAILURE_CLASS_REVOKED", meta["failure_class"])
	require.Equal(t, calls, b.google.RefreshCalls.Load())
}
