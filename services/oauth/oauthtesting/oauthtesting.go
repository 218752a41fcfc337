// Package oauthtesting lets other modules' tests (the suite's end-to-end tests) arrange the oauth
// service's state — an access token that has expired, a consent given days ago, a pending authorization
// past its deadline — without writing the oauth schema themselves. Each helper runs one named statement
// of the oauth store on db (the pool of the database the oauth target runs on) and fails with
// ErrNoRow when nothing matched, so a test that addresses the wrong row says so.
//
// Not for production code: nothing outside tests changes these columns this way.
package oauthtesting

import (
	"context"
	"time"

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
