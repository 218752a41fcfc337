// Package calendartesting lets other modules' tests (the suite's end-to-end tests and benchmarks)
// arrange the calendar service's state without writing the calendar schema themselves: connected
// providers, through the service's own API — the calls a technician's browser consent ends in, without
// the browser — and a tenant made older, through a named statement of the calendar store.
//
// Not for production code.
package calendartesting

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"

	calendarv1 "github.com/algapsa/alga-google/gen/alga/calendar/v1"
	"github.com/algapsa/alga-google/services/calendar/internal/store"
	"github.com/algapsa/alga-google/services/platform/pg"
)

// ErrNoRow is returned when no row matched what a helper was given.
var ErrNoRow = errors.New("no row matched")

// Account is one technician's Calendar provider to connect: the Alga user it belongs to and the
// Google account that consents.
type Account struct {
	UserID string
	Email  string
}

// ConnectProviders arranges one connected Calendar provider per account of a tenant through the
// calendar service's API (conn), as the consent path does after the browser: CreateCalendarProvider
// for every account, acting as its user (asUser(account.UserID): a context carrying that user's token),
// then grant — the caller stores the providers' OAuth connections (e.g. oauthtesting.SeedConnections
// with Google's tokens for the accounts) — then ActivateCalendarProvider for each (asOAuth: the oauth
// service acting for the tenant, as its callback does), which runs the whole activation: the calendar
// list, the push channel (events.watch; Google then sends its first "sync" message, recorded as the
// channel's last notification) and the initial full sync. `parallel` calls run at a time. Every
// provider must end CONNECTED; they are returned in the order of accounts, as activated.
func ConnectProviders(asUser func(userID string) context.Context, asOAuth context.Context, conn grpc.ClientConnInterface, accounts []Account, grant func([]*calendarv1.CalendarProvider) error, parallel int) ([]*calendarv1.CalendarProvider, error) {
	providers := calendarv1.NewCalendarProviderServiceClient(conn)
	out := make([]*calendarv1.CalendarProvider, len(accounts))
	err := each(len(accounts), parallel, func(i int) error {
		r, err := providers.CreateCalendarProvider(asUser(accounts[i].UserID), &calendarv1.CreateCalendarProviderRequest{DisplayName: "Calendar of " + accounts[i].Email})
		if err != nil {
			return fmt.Errorf("creating the provider of %s: %w", accounts[i].UserID, err)
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
	err = each(len(out), parallel, func(i int) error {
		r, err := providers.ActivateCalendarProvider(asOAuth, &calendarv1.ActivateCalendarProviderRequest{Id: out[i].GetId(), AccountEmail: accounts[i].Email})
		if err != nil {
			return fmt.Errorf("activating the provider of %s: %w", accounts[i].UserID, err)
		}
		p := r.GetProvider()
		if p.GetStatus() != calendarv1.ProviderStatus_PROVIDER_STATUS_CONNECTED {
			return fmt.Errorf("the provider of %s is %s after activation: %s %s", accounts[i].UserID, p.GetStatus(), p.GetError().GetCode(), p.GetError().GetMessage())
		}
		out[i] = p
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// each runs fn(0..n-1), `parallel` at a time, and returns the first error (the calls already started
// finish).
func each(n, parallel int, fn func(i int) error) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	sem := make(chan struct{}, max(parallel, 1))
	for i := range n {
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

// AgeTenant moves every recorded time of the tenant's Calendar providers and channels — connect, last
// sync, channel creation and last notification, Google's channel expiration — and of their
// notifications, diagnostics steps and timelines back by `by` (db: the pool of the database the
// calendar target runs on), as if all of it had happened that long ago: what the providers look like
// `by` later to everything that decides on those times (e.g. maintenance). It fails with ErrNoRow when
// the tenant has no Calendar provider.
func AgeTenant(ctx context.Context, db pg.DB, tenant string, by time.Duration) error {
	n, err := store.AgeTenant(ctx, db, tenant, by)
	if err == nil && n == 0 {
		return ErrNoRow
	}
	return err
}
