package service_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"

	m "github.com/algapsa/alga-google/gen/alga/maintenance/v1"
	oauthv1 "github.com/algapsa/alga-google/gen/alga/oauth/v1"
	secretsv1 "github.com/algapsa/alga-google/gen/alga/secrets/v1"
	"github.com/algapsa/alga-google/services/oauth/internal/oauthtest"
	"github.com/algapsa/alga-google/services/oauth/internal/service"
	"github.com/algapsa/alga-google/services/oauth/oauthtesting"
	"github.com/algapsa/alga-google/services/platform/auth"
)

// secretsAs calls the fake secrets service in-process as a service identity acting for a tenant (what
// the server's auth interceptor would establish from that service's token).
type secretsAs struct {
	secretsv1.SecretsServiceClient
	fake *oauthtest.Secrets
	id   auth.Identity
}

func (s secretsAs) PutSecrets(ctx context.Context, in *secretsv1.PutSecretsRequest, _ ...grpc.CallOption) (*secretsv1.PutSecretsResponse, error) {
	return s.fake.PutSecrets(auth.WithIdentity(ctx, s.id), in)
}

// TestSeededConnectionsAreConnectedGrants: oauthtesting.SeedConnections stores grants the way a completed
// authorization does — the token as its secret through the secrets service, the connection row and its
// "connected" event — so the service treats them as any connected grant: the cached token is answered
// without a refresh, the scheduled refresh works, a second seed of the provider keeps its connection id,
// and AgeTenant makes the whole tenant older.
func TestSeededConnectionsAreConnectedGrants(t *testing.T) {
	t.Parallel()
	b := setup(t, 1, "")
	b.configure(t, "tenant-a")
	gmailScope := "https://www.googleapis.com/auth/gmail.readonly https://www.googleapis.com/auth/pubsub"
	at1, rt1 := b.google.Grant(clientA, "support@acme.test", gmailScope)
	at2, rt2 := b.google.Grant(clientA, "tech@acme.test", "https://www.googleapis.com/auth/calendar")
	expiry := time.Now().Add(time.Hour).Round(time.Second)
	grants := []oauthtesting.Grant{
		{Kind: gmailKind, ProviderID: p1, UserID: "admin-1", AccountEmail: "Support@acme.test", ClientID: clientA,
			AccessToken: at1, RefreshToken: rt1, TokenType: "Bearer", Scope: gmailScope, Expiry: expiry},
		{Kind: calendarKind, ProviderID: cal1, UserID: "tech-7", AccountEmail: "tech@acme.test", ClientID: clientA,
			AccessToken: at2, RefreshToken: rt2, TokenType: "Bearer", Expiry: expiry},
	}
	secrets := secretsAs{fake: b.secrets, id: auth.Identity{Service: "oauth", Tenant: "tenant-a"}}
	asOAuth := t.Context()
	ids, err := oauthtesting.SeedConnections(asOAuth, b.pool, secrets, "tenant-a", grants)
	require.NoError(t, err)
	require.Len(t, ids, 2)

	g := b.connection(t, "tenant-a", gmailKind, p1)
	require.Equal(t, ids[0], g.ConnectionId)
	require.Equal(t, oauthv1.ConnectionStatus_CONNECTION_STATUS_CONNECTED, g.Status)
	require.Equal(t, "support@acme.test", g.AccountEmail)
	require.Equal(t, []string{"https://www.googleapis.com/auth/gmail.readonly", "https://www.googleapis.com/auth/pubsub"}, g.Scopes)
	require.Equal(t, "connected", g.Events[0].Type)
	c := b.connection(t, "tenant-a", calendarKind, cal1)
	require.Equal(t, ids[1], c.ConnectionId)
	require.Equal(t, "tech-7", c.UserId)
	require.Equal(t, []string{"https://www.googleapis.com/auth/calendar"}, c.Scopes, "the scopes asked for when Google named none")

	// The token is a secret written through the secrets service, in the service's own format.
	raw, ok := b.secrets.Value("tenant-a", service.TokenSecretName(ids[0]))
	require.True(t, ok)
	var stored map[string]any
	require.NoError(t, json.Unmarshal([]byte(raw), &stored))
	require.Equal(t, rt1, stored["refresh_token"])
	require.Equal(t, clientA, stored["client_id"])

	// The cached access token is answered as is; the scheduled refresh asks Google once.
	tok, err := b.instances[0].tokens.GetAccessToken(b.service(t, "gmail", "tenant-a", ""), &oauthv1.GetAccessTokenRequest{Kind: gmailKind, ProviderId: p1})
	require.NoError(t, err)
	require.Equal(t, at1, tok.AccessToken)
	require.Zero(t, b.google.RefreshCalls.Load())
	resp := b.refreshConn(t, "tenant-a", b.upkeepOf(t, "tenant-a", cal1), false)
	require.Equal(t, m.OutcomeStatus_OUTCOME_STATUS_OK, resp.Outcome.Status, "%v", resp.Outcome)
	require.EqualValues(t, 1, resp.Outcome.GoogleCalls)
	require.EqualValues(t, 1, b.google.Refreshes.Load())

	// Seeding a connected provider again is a reconnect: same connection, the new token.
	at3, rt3 := b.google.Grant(clientA, "support@acme.test", gmailScope)
	grants[0].AccessToken, grants[0].RefreshToken = at3, rt3
	again, err := oauthtesting.SeedConnections(asOAuth, b.pool, secrets, "tenant-a", grants[:1])
	require.NoError(t, err)
	require.Equal(t, ids[:1], again)
	raw, _ = b.secrets.Value("tenant-a", service.TokenSecretName(ids[0]))
	require.Contains(t, raw, rt3)

	// A seed without a refresh token stores nothing.
	_, err = oauthtesting.SeedConnections(asOAuth, b.pool, secrets, "tenant-a", []oauthtesting.Grant{{Kind: gmailKind, ProviderID: "p-none", ClientID: clientA, AccessToken: "x"}})
	require.Error(t, err)

	before := b.upkeepOf(t, "tenant-a", p1)
	require.NoError(t, oauthtesting.AgeTenant(t.Context(), b.pool, "tenant-a", 156*time.Hour))
	after := b.upkeepOf(t, "tenant-a", p1)
	require.Equal(t, before.ConnectTime.AsTime().Add(-156*time.Hour), after.ConnectTime.AsTime())
	require.Equal(t, before.AccessTokenExpireTime.AsTime().Add(-156*time.Hour), after.AccessTokenExpireTime.AsTime())
	require.ErrorIs(t, oauthtesting.AgeTenant(t.Context(), b.pool, "tenant-nobody", time.Hour), oauthtesting.ErrNoRow)
}
