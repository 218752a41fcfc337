// Package gmailtesting lets other modules' tests (the suite's end-to-end tests and benchmarks) arrange
// the gmail service's state without writing the gmail schema themselves: connected providers, through
// the service's own API — the calls a browser consent ends in, without the browser — and a tenant made
// older, through a named statement of the gmail store.
//
// Not for production code.
package gmailtesting

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"

	gmailv1 "github.com/algapsa/alga-google/gen/alga/gmail/v1"
	"github.com/algapsa/alga-google/services/gmail/internal/store"
	"github.com/algapsa/alga-google/services/platform/pg"
)

// ErrNoRow is returned when no row matched what a helper was given.
var ErrNoRow = errors.New("no row matched")

// ConnectProviders arranges one connected Gmail provider per mailbox of a tenant through the gmail
// service's API (conn), as the consent path does after the browser: CreateGmailProvider for every
// mailbox (admin: a user of the tenant with system_settings:update), then grant — the caller stores the
// providers' OAuth connections (e.g. oauthtesting.SeedConnections with Google's tokens for the
// mailboxes) — then ActivateGmailProvider for each (asOAuth: the oauth service acting for the tenant, as
// its callback does), which runs the whole activation: the tenant's Pub/Sub provisioning, the labels,
// users.watch, and the first history sync (a River job: it has run once ListGmailUpkeep shows a
// last_sync_time). The first activation runs alone, since it creates the tenant's topic, publisher grant
// and subscription; the others run `parallel` at a time. Every provider must end CONNECTED; they are
// returned in the order of mailboxes, as activated.
func ConnectProviders(admin, asOAuth context.Context, conn grpc.ClientConnInterface, mailboxes []string, grant func([]*gmailv1.GmailProvider) error, parallel int) ([]*gmailv1.GmailProvider, error) {
	providers := gmailv1.NewGmailProviderServiceClient(conn)
	out := make([]*gmailv1.GmailProvider, len(mailboxes))
	err := each(len(mailboxes), parallel, 0, func(i int) error {
		r, err := providers.CreateGmailProvider(admin, &gmailv1.CreateGmailProviderRequest{Mailbox: mailboxes[i], DisplayName: "Support " + mailboxes[i]})
		if err != nil {
			return fmt.Errorf("creating the provider of %s: %w", mailboxes[i], err)
		}
		out[i] = r.GetProvider()
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := grant(out); err != nil {
		return nil, err
	}
	err = each(len(out), parallel, 1, func(i int) error {
		r, err := providers.ActivateGmailProvider(asOAuth, &gmailv1.ActivateGmailProviderRequest{Id: out[i].GetId(), AccountEmail: mailboxes[i]})
		if err != nil {
			return fmt.Errorf("activating the provider of %s: %w", mailboxes[i], err)
		}
		p := r.GetProvider()
		if p.GetStatus() != gmailv1.ProviderStatus_PROVIDER_STATUS_CONNECTED {
			return fmt.Errorf("the provider of %s is %s after activation: %s %s", mailboxes[i], p.GetStatus(), p.GetError().GetCode(), p.GetError().GetMessage())
		}
		out[i] = p
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// each runs fn(0..n-1), `parallel` at a time, after running the first `alone` of them one by one; it
// returns the first error (the calls already started finish).
func each(n, parallel, alone int, fn func(i int) error) error {
	for i := 0; i < min(alone, n); i++ {
		if err := fn(i); err != nil {
			return err
		}
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	sem := make(chan struct{}, max(parallel, 1))
	for i := min(alone, n); i < n; i++ {
		mu.Lock()
		failed := first != nil
		mu.Unlock()
		if failed {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := fn(i); err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return first
}

// AgeTenant moves every recorded time of the tenant's Gmail providers — connect, last sync and push, the
// last users.watch and provisioning check, Google's watch expiration — and of their diagnostics steps
// and timelines back by `by` (db: the pool of the database the gmail target runs on), as if all of it
// had happened that long ago: what the provider looks like `by` later to everything that decides on
// those times (e.g. maintenance). It fails with ErrNoRow when the tenant has no Gmail provider.
func AgeTenant(ctx context.Context, db pg.DB, tenant string, by time.Duration) error {
	n, err := store.AgeTenant(ctx, db, tenant, by)
	if err == nil && n == 0 {
		return ErrNoRow
	}
	return err
}
