package googlesandbox_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"
	"google.golang.org/api/gmail/v1"
	"google.golang.org/api/option"

	"github.com/algapsa/alga-google/services/googlesandbox"
)

// TestSeedGrantsActAsAConsentAndExchange: a seeded grant is what an approved offline consent and its code
// exchange leave behind — the access token works on the APIs, the refresh token refreshes, revoking the
// grant kills both — and nothing is counted, because no Google endpoint was called.
func TestSeedGrantsActAsAConsentAndExchange(t *testing.T) {
	t.Parallel()
	b := setup(t)
	tn := b.tenant(t, "seed-tenant", "testing")
	b.user(t, "existing@acme.test")
	accounts := []string{"existing@acme.test", "New.One@acme.test", "new.two@acme.test"}
	grants, err := b.admin.SeedGrants(b.ctx, googlesandbox.SeedGrantsRequest{ClientID: tn.project.ClientID, Scopes: []string{scopeGmail}, Accounts: accounts})
	require.NoError(t, err)
	require.Len(t, grants, 3)
	c, err := b.admin.Counters(b.ctx)
	require.NoError(t, err)
	require.Zero(t, c["oauth.token"], "seeding calls no Google endpoint")
	require.Zero(t, c["oauth.authorize"])

	for i, g := range grants {
		require.Equal(t, []string{"existing@acme.test", "new.one@acme.test", "new.two@acme.test"}[i], g.Email)
		require.NotEmpty(t, g.AccessToken)
		require.NotEmpty(t, g.RefreshToken)
		require.Equal(t, 3599, g.ExpiresIn)
		require.Equal(t, scopeGmail, g.Scope)
		require.Equal(t, "Bearer", g.TokenType)
		svc, err := gmail.NewService(b.ctx, option.WithEndpoint(b.sb.URL()+"/"), option.WithTokenSource(oauth2.StaticTokenSource(&oauth2.Token{AccessToken: g.AccessToken})))
		require.NoError(t, err)
		prof, err := svc.Users.GetProfile("me").Do()
		require.NoError(t, err)
		require.Equal(t, g.Email, prof.EmailAddress)
		tok, err := tn.cfg.TokenSource(b.ctx, &oauth2.Token{RefreshToken: g.RefreshToken}).Token()
		require.NoError(t, err)
		require.NotEqual(t, g.AccessToken, tok.AccessToken)
	}
	// New accounts are test users of the client's project: the consent page offers them.
	u, err := b.admin.GetUser(b.ctx, "new.one@acme.test")
	require.NoError(t, err)
	require.Equal(t, []string{"seed-tenant"}, u.Projects)
	require.Len(t, u.Calendars, 1)

	require.NoError(t, b.admin.RevokeGrant(b.ctx, "new.two@acme.test", tn.project.ClientID))
	_, err = tn.cfg.TokenSource(b.ctx, &oauth2.Token{RefreshToken: grants[2].RefreshToken}).Token()
	require.Equal(t, "invalid_grant", retrieveErr(t, err).ErrorCode)
}

func TestSeedGrantsRefusesBadRequests(t *testing.T) {
	t.Parallel()
	b := setup(t)
	tn := b.tenant(t, "seed-refusals", "testing")
	other := b.tenant(t, "seed-other", "testing")
	require.NoError(t, b.admin.CreateTestUser(b.ctx, "elsewhere@acme.test", other.project.ProjectID))
	many := make([]string, googlesandbox.MaxSeedGrants+1)
	for i := range many {
		many[i] = "u" + string(rune('a'+i%26)) + "@acme.test"
	}
	for name, c := range map[string]struct {
		req    googlesandbox.SeedGrantsRequest
		status int
	}{
		"unknown client":        {googlesandbox.SeedGrantsRequest{ClientID: "nope", Scopes: []string{scopeGmail}, Accounts: []string{"a@acme.test"}}, http.StatusNotFound},
		"no scope":              {googlesandbox.SeedGrantsRequest{ClientID: tn.project.ClientID, Accounts: []string{"a@acme.test"}}, http.StatusBadRequest},
		"bad scope":             {googlesandbox.SeedGrantsRequest{ClientID: tn.project.ClientID, Scopes: []string{"gmail"}, Accounts: []string{"a@acme.test"}}, http.StatusBadRequest},
		"no account":            {googlesandbox.SeedGrantsRequest{ClientID: tn.project.ClientID, Scopes: []string{scopeGmail}}, http.StatusBadRequest},
		"too many accounts":     {googlesandbox.SeedGrantsRequest{ClientID: tn.project.ClientID, Scopes: []string{scopeGmail}, Accounts: many}, http.StatusBadRequest},
		"account twice":         {googlesandbox.SeedGrantsRequest{ClientID: tn.project.ClientID, Scopes: []string{scopeGmail}, Accounts: []string{"a@acme.test", "A@acme.test"}}, http.StatusBadRequest},
		"bad email":             {googlesandbox.SeedGrantsRequest{ClientID: tn.project.ClientID, Scopes: []string{scopeGmail}, Accounts: []string{"not-an-email"}}, http.StatusBadRequest},
		"not a test user there": {googlesandbox.SeedGrantsRequest{ClientID: tn.project.ClientID, Scopes: []string{scopeGmail}, Accounts: []string{"fresh@acme.test", "elsewhere@acme.test"}}, http.StatusForbidden},
	} {
		_, err := b.admin.SeedGrants(b.ctx, c.req)
		var e *googlesandbox.Error
		require.ErrorAs(t, err, &e, name)
		require.Equal(t, c.status, e.Status, name)
	}
	// A refused request stored nothing: the first account of the last case was not created.
	_, err := b.admin.GetUser(b.ctx, "fresh@acme.test")
	require.True(t, googlesandbox.IsNotFound(err), "%v", err)
}
