// Package gcal is the calendar service's use of the official Google Calendar client: listing calendars,
// listing events (full or with a sync token, every page), creating and stopping push channels. Transient
// failures (429, 5xx, network) are retried by the service's googleretry.Retrier, on the tenant's budget;
// the rest are classified for the caller.
package gcal

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2"
	calendar "google.golang.org/api/calendar/v3"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/option"

	"github.com/algapsa/alga-google/services/platform/googleretry"
)

// Errors callers branch on.
var (
	// ErrSyncTokenGone is Google's 410 for an expired or invalidated sync token: clear it, full resync.
	ErrSyncTokenGone = errors.New("calendar sync token is no longer valid (410)")
	// ErrUnauthorized means Google refused the access token (revoked grant, missing scope).
	ErrUnauthorized = errors.New("google refused the access token")
	// ErrNotFound is a calendar or channel Google does not know (or will not show to this client).
	ErrNotFound = errors.New("not found at Google")
	// ErrForbidden is a refusal such as stopping a channel created by another OAuth client.
	ErrForbidden = errors.New("google refused the request")
)

// Client is a Calendar API client acting with one access token for one tenant.
type Client struct {
	svc    *calendar.Service
	retry  *googleretry.Retrier
	tenant string
}

// New returns a client for the given endpoints options and access token; its calls are retried by retry
// on tenant's budget.
func New(ctx context.Context, endpoint []option.ClientOption, accessToken string, retry *googleretry.Retrier, tenant string) (*Client, error) {
	opts := append([]option.ClientOption{}, endpoint...)
	opts = append(opts, option.WithTokenSource(oauth2.StaticTokenSource(&oauth2.Token{AccessToken: accessToken, TokenType: "Bearer"})))
	svc, err := calendar.NewService(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("calendar client: %w", err)
	}
	if retry == nil {
		return nil, errors.New("calendar client: a retrier is required")
	}
	return &Client{svc: svc, retry: retry, tenant: tenant}, nil
}

func classify(err error) error {
	var ge *googleapi.Error
	if !errors.As(err, &ge) {
		return err
	}
	switch ge.Code {
	case http.StatusGone:
		return fmt.Errorf("%w: %s", ErrSyncTokenGone, ge.Message)
	case http.StatusUnauthorized:
		return fmt.Errorf("%w: %s", ErrUnauthorized, ge.Message)
	case http.StatusNotFound:
		return fmt.Errorf("%w: %s", ErrNotFound, ge.Message)
	case http.StatusForbidden:
		return fmt.Errorf("%w: %s", ErrForbidden, ge.Message)
	}
	return err
}

// IsTransient reports whether a classified failure is worth retrying later (429, 5xx, network, the
// tenant cooling down).
func IsTransient(err error) bool { return googleretry.Transient(err) }

// Counter counts the Calendar API requests made under a context (CountCalls), whatever their result.
type Counter struct{ n atomic.Int32 }

// Calls returns how many requests were sent so far.
func (c *Counter) Calls() int32 {
	if c == nil {
		return 0
	}
	return c.n.Load()
}

type counterKey struct{}

// CountCalls returns a context under which every request of every Client (each attempt of a retried
// call included) is counted in the returned Counter.
func CountCalls(ctx context.Context) (context.Context, *Counter) {
	c := &Counter{}
	return context.WithValue(ctx, counterKey{}, c), c
}

func count(ctx context.Context) {
	if c, ok := ctx.Value(counterKey{}).(*Counter); ok {
		c.n.Add(1)
	}
}

// do runs call on the tenant's budget (every request counted), then classifies a failure.
func (c *Client) do(ctx context.Context, endpoint string, call func() error) error {
	err := c.retry.Do(ctx, googleretry.Call{Tenant: c.tenant, Endpoint: endpoint}, func() error {
		count(ctx)
		return call()
	})
	if err != nil {
		return classify(err)
	}
	return nil
}

// CalendarIDs lists the ids of the calendars in the user's calendar list (every page).
func (c *Client) CalendarIDs(ctx context.Context) ([]string, error) {
	var ids []string
	page := ""
	for {
		var res *calendar.CalendarList
		err := c.do(ctx, "calendarList.list", func() (err error) {
			call := c.svc.CalendarList.List().Context(ctx).MaxResults(250)
			if page != "" {
				call = call.PageToken(page)
			}
			res, err = call.Do()
			return err
		})
		if err != nil {
			return nil, err
		}
		for _, e := range res.Items {
			ids = append(ids, e.Id)
		}
		if page = res.NextPageToken; page == "" {
			return ids, nil
		}
	}
}

// ListEvents lists every page of a calendar's events: all of them when syncToken is empty (a full sync,
// cancelled events omitted), otherwise what changed since the token (cancelled events included). It
// returns the next sync token. ErrSyncTokenGone means the token must be dropped.
func (c *Client) ListEvents(ctx context.Context, calendarID, syncToken string) ([]*calendar.Event, string, error) {
	var events []*calendar.Event
	page := ""
	for {
		var res *calendar.Events
		err := c.do(ctx, "events.list", func() (err error) {
			// The same parameters on every request of a sync chain (Google requires it for sync tokens).
			call := c.svc.Events.List(calendarID).Context(ctx).SingleEvents(true).MaxResults(250)
			if syncToken != "" {
				call = call.SyncToken(syncToken)
			}
			if page != "" {
				call = call.PageToken(page)
			}
			res, err = call.Do()
			return err
		})
		if err != nil {
			return nil, "", err
		}
		events = append(events, res.Items...)
		if res.NextPageToken != "" {
			page = res.NextPageToken
			continue
		}
		if res.NextSyncToken == "" {
			return nil, "", errors.New("google returned the last page without a nextSyncToken")
		}
		return events, res.NextSyncToken, nil
	}
}

// Watched is Google's answer to events.watch.
type Watched struct {
	ResourceID  string
	ResourceURI string
	// Expire is the expiration Google granted (trusted as returned).
	Expire time.Time
}

// Watch creates a push channel for the calendar's events.
func (c *Client) Watch(ctx context.Context, calendarID, channelID, token, address string) (Watched, error) {
	var res *calendar.Channel
	err := c.do(ctx, "events.watch", func() (err error) {
		res, err = c.svc.Events.Watch(calendarID, &calendar.Channel{
			Id: channelID, Type: "web_hook", Address: address, Token: token,
		}).Context(ctx).Do()
		return err
	})
	if err != nil {
		return Watched{}, err
	}
	if res.ResourceId == "" {
		return Watched{}, errors.New("google created a channel without a resource id")
	}
	w := Watched{ResourceID: res.ResourceId, ResourceURI: res.ResourceUri}
	if res.Expiration > 0 {
		w.Expire = time.UnixMilli(res.Expiration).UTC()
	}
	return w, nil
}

// Stop stops a push channel. Only the OAuth client that created it can.
func (c *Client) Stop(ctx context.Context, channelID, resourceID string) error {
	return c.do(ctx, "channels.stop", func() error {
		return c.svc.Channels.Stop(&calendar.Channel{Id: channelID, ResourceId: resourceID}).Context(ctx).Do()
	})
}
