package service_test

import (
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	oauthv1 "github.com/algapsa/alga-google/gen/alga/oauth/v1"
	"github.com/algapsa/alga-google/services/oauth/internal/service"
)

// TestSimultaneousFirstCallbacks: the admin clicked Connect twice (two valid states) and both consents
// come back at the same moment, on two replicas, for a provider that has no connection yet. One
// connection results, its stored token is the grant its row describes, no token secret is left behind
// unreferenced, and the connection works. Several providers at once: the race window is small.
func TestSimultaneousFirstCallbacks(t *testing.T) {
	t.Parallel()
	b := setup(t, 2, "")
	const tenant = "tenant-race"
	b.configure(t, tenant)
	const mailbox = "support@acme.test"
	providers := make([]string, 6)
	for i := range providers {
		providers[i] = uuid.NewString()
		b.gmail.AddProvider(tenant, providers[i], mailbox)
	}

	type flow struct{ state, code, binding string }
	flows := map[string][2]flow{}
	for _, pid := range providers {
		var pair [2]flow
		for i := range pair {
			bg := b.begin(t, tenant, "admin-1", gmailKind, pid, mailbox)
			code, _, err := b.google.Approve(bg.url, mailbox, "")
			require.NoError(t, err)
			pair[i] = flow{state: bg.state, code: code, binding: bg.binding}
		}
		flows[pid] = pair
	}

	// Every callback at once: each provider's two on different replicas.
	start := make(chan struct{})
	var wg sync.WaitGroup
	statuses := make(chan string, 2*len(providers))
	for _, pid := range providers {
		for i, f := range flows[pid] {
			wg.Go(func() {
				<-start
				resp, err := b.instances[i].flow.CompleteAuthorization(b.service(t, "gateway", "", ""),
					&oauthv1.CompleteAuthorizationRequest{CallbackKind: gmailKind, State: f.state, Code: f.code, BrowserBinding: f.binding})
				if err != nil {
					statuses <- "error: " + err.Error()
					return
				}
				statuses <- resp.GetStatus()
			})
		}
	}
	close(start)
	wg.Wait()
	close(statuses)
	for st := range statuses {
		require.Equal(t, service.StatusConnected, st, "both callbacks succeed: the later one's grant is the one kept")
	}

	var tokenSecrets []string
	for _, name := range b.secrets.Names(tenant) {
		if strings.HasPrefix(name, "google_oauth_token_") {
			tokenSecrets = append(tokenSecrets, name)
		}
	}
	require.Len(t, tokenSecrets, len(providers), "one token secret per connection, none orphaned: %v", tokenSecrets)
	for _, pid := range providers {
		var connID string
		require.NoError(t, b.pool.QueryRow(t.Context(),
			"SELECT id::text FROM oauth.connections WHERE tenant = $1 AND kind = 'gmail' AND provider_id = $2", tenant, pid).Scan(&connID))
		raw, ok := b.secrets.Value(tenant, service.TokenSecretName(connID))
		require.True(t, ok, "the row's token secret exists")
		var stored struct {
			AccessToken  string `json:"access_token"`
			RefreshToken string `json:"refresh_token"`
		}
		require.NoError(t, json.Unmarshal([]byte(raw), &stored))
		require.NotEmpty(t, stored.RefreshToken)

		// The connection works: a cached token is handed out and a forced refresh at Google succeeds.
		got, err := b.instances[0].tokens.GetAccessToken(b.service(t, "gmail", tenant, ""),
			&oauthv1.GetAccessTokenRequest{Kind: gmailKind, ProviderId: pid, ForceRefresh: true})
		require.NoError(t, err)
		require.True(t, b.google.ValidAccessToken(got.GetAccessToken()))
	}
}

// TestReconnectDuringRefresh: a callback stores a new grant while a refresh of the old one waits for
// Google. The refresh's answer is dropped (it would put the old grant's token back): the stored token
// stays the new grant's, and the refresh's caller gets a working token.
func TestReconnectDuringRefresh(t *testing.T) {
	t.Parallel()
	b := setup(t, 1, "")
	const tenant, mailbox = "tenant-reconnect", "support@acme.test"
	b.configure(t, tenant)
	pid := uuid.NewString()
	b.gmail.AddProvider(tenant, pid, mailbox)
	require.Equal(t, service.StatusConnected, b.connect(t, tenant, "admin-1", gmailKind, pid, mailbox))
	var connID string
	require.NoError(t, b.pool.QueryRow(t.Context(), "SELECT id::text FROM oauth.connections WHERE tenant = $1 AND provider_id = $2", tenant, pid).Scan(&connID))
	refreshToken := func() string {
		raw, ok := b.secrets.Value(tenant, service.TokenSecretName(connID))
		require.True(t, ok)
		var stored struct {
			RefreshToken string `json:"refresh_token"`
		}
		require.NoError(t, json.Unmarshal([]byte(raw), &stored))
		return stored.RefreshToken
	}
	old := refreshToken()

	b.google.RefreshDelay = time.Second
	calls := b.google.RefreshCalls.Load()
	done := make(chan error, 1)
	var got *oauthv1.GetAccessTokenResponse
	go func() {
		var err error
		got, err = b.instances[0].tokens.GetAccessToken(b.service(t, "gmail", tenant, ""),
			&oauthv1.GetAccessTokenRequest{Kind: gmailKind, ProviderId: pid, ForceRefresh: true})
		done <- err
	}()
	require.Eventually(t, func() bool { return b.google.RefreshCalls.Load() > calls }, 5*time.Second, 5*time.Millisecond)
	require.Equal(t, service.StatusConnected, b.connect(t, tenant, "admin-1", gmailKind, pid, mailbox), "reconnected while the refresh waits for Google")
	reconnected := refreshToken()
	require.NotEqual(t, old, reconnected)

	require.NoError(t, <-done)
	require.Equal(t, reconnected, refreshToken(), "the refresh of the old grant did not overwrite the new one")
	require.True(t, b.google.ValidAccessToken(got.GetAccessToken()))
}
