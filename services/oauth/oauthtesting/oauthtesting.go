// Package oauthtesting lets other modules' tests (the suite's end-to-end tests and benchmarks) arrange
// the oauth service's state — an access token that has expired, a consent given days ago, a pending
// authorization past its deadline, thousands of connected grants — without writing the oauth schema
// themselves. Each helper runs the oauth service's own code: a named statement of its store on db (the
// pool of the database the oauth target runs on), failing with ErrNoRow when nothing matched so a test
// that addresses the wrong row says so; SeedConnections stores grants the way a completed authorization
// does (tokens through the secrets service, then the connection rows).
//
// Not for production code: nothing outside tests changes these columns this way.
package oauthtesting

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/oauth2"

	oauthv1 "github.com/algapsa/alga-google/gen/alga/oauth/v1"
	secretsv1 "github.com/algapsa/alga-google/gen/alga/secrets/v1"
	"github.com/algapsa/alga-google/services/oauth/internal/service"
	"github.com/algapsa/alga-google/services/oauth/internal/store"
	"github.com/algapsa/alga-google/services/platform/pg"
)

// ErrNoRow is returned when no row matched what a helper was given.
var ErrNoRow = store.ErrNoRow

// ExpireAccessToken records the access token of the connection connectionID as expired a minute ago,
// so the next GetAccessToken refreshes it (the token's own expiry, kept in the secrets service, is the
// test's to age as well).
func ExpireAccessToken(ctx context.Context, db pg.DB, connectionID string) error {
	return store.ExpireAccessToken(ctx, db, connectionID)
}

// AgeConsent moves the consent and connection times of the connections of the Google account
// accountEmail (as stored: lower case) back by `by`, as if the account had consented that long ago.
func AgeConsent(ctx context.Context, db pg.DB, accountEmail string, by time.Duration) error {
	return store.AgeConsent(ctx, db, accountEmail, by)
}

// ExpireAuthStates makes every pending authorization (begun, not yet called back) of the provider
// providerID expired a second ago, so its callback answers state_invalid.
func ExpireAuthStates(ctx context.Context, db pg.DB, providerID string) error {
	return store.ExpireAuthStates(ctx, db, providerID)
}

// Grant is a connected Google grant to arrange: the provider it belongs to, who began the authorization
// (UserID) and who consented (AccountEmail), the OAuth client it was given to, and the token response
// Google answered (e.g. googlesandbox.AdminClient.SeedGrants).
type Grant struct {
	Kind         oauthv1.ProviderKind
	ProviderID   string
	UserID       string
	AccountEmail string
	ClientID     string
	AccessToken  string
	RefreshToken string
	TokenType    string
	Scope        string
	// Expiry is the access token's expiry.
	Expiry time.Time
}

// SeedConnections stores grants of tenant as connected, the way the oauth service's completed
// authorization stores one — each token as its encrypted secret through the secrets service, then the
// connection row and its "connected" timeline event — batched, without an authorization flow. The
// tokens are written with secrets, acting as ctx's identity: the oauth service acting for tenant (e.g.
// harness.WithToken(ctx, suite.ServiceToken("oauth", tenant))), as the oauth service writes them. The
// connections are connected now. It returns their ids in the order of grants.
func SeedConnections(ctx context.Context, pool *pgxpool.Pool, secrets secretsv1.SecretsServiceClient, tenant string, grants []Grant) ([]string, error) {
	seed := make([]service.SeedGrant, len(grants))
	for i, g := range grants {
		kind := "gmail"
		switch g.Kind {
		case oauthv1.ProviderKind_PROVIDER_KIND_GMAIL:
		case oauthv1.ProviderKind_PROVIDER_KIND_CALENDAR:
			kind = "calendar"
		default:
			return nil, fmt.Errorf("grant %d: kind %s", i, g.Kind)
		}
		tok := &oauth2.Token{AccessToken: g.AccessToken, RefreshToken: g.RefreshToken, TokenType: g.TokenType, Expiry: g.Expiry}
		if g.Scope != "" {
			tok = tok.WithExtra(map[string]any{"scope": g.Scope})
		}
		seed[i] = service.SeedGrant{Kind: kind, ProviderID: g.ProviderID, UserID: g.UserID, AccountEmail: g.AccountEmail, ClientID: g.ClientID, Token: tok}
	}
	conns, err := service.SeedGrants(ctx, pool, secrets, tenant, seed, time.Now())
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(conns))
	for i, c := range conns {
		ids[i] = c.ID
	}
	return ids, nil
}

// AgeTenant moves every recorded time of tenant's connections — consent, connect, last refresh, the
// access token's recorded expiry — and of their timelines back by `by`, as if all of it had happened
// that long ago (pair it with the other services' AgeTenant helpers to make a whole tenant older). It
// fails with ErrNoRow when the tenant has no connection.
func AgeTenant(ctx context.Context, db pg.DB, tenant string, by time.Duration) error {
	n, err := store.AgeTenant(ctx, db, tenant, by)
	if err == nil && n == 0 {
		return ErrNoRow
	}
	return err
}
