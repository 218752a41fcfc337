package googlesandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	gcal "google.golang.org/api/calendar/v3"

	"github.com/algapsa/alga-google/services/googlesandbox/internal/api"
)

// Admin API types (see AdminAPIHelp and the README for the JSON).
type (
	CreateProjectRequest     = api.CreateProjectRequest
	Project                  = api.Project
	CreateOAuthClientRequest = api.CreateOAuthClientRequest
	OAuthClient              = api.OAuthClient
	ServiceAccount           = api.ServiceAccount
	CreateTestUserRequest    = api.CreateTestUserRequest
	User                     = api.User
	Calendar                 = api.Calendar
	Email                    = api.Email
	DeliveredMessage         = api.DeliveredMessage
	Label                    = api.Label
	Clock                    = api.Clock
	Fault                    = api.Fault
	GmailWatch               = api.GmailWatch
	Channel                  = api.Channel
	Binding                  = api.Binding
	TopicPolicy              = api.TopicPolicy
	ExpirationPolicy         = api.ExpirationPolicy
	Subscription             = api.Subscription
	Delivery                 = api.Delivery
	SeedGrantsRequest        = api.SeedGrantsRequest
	SeededGrant              = api.SeededGrant
)

// MaxSeedGrants bounds the accounts of one SeedGrants call.
const MaxSeedGrants = api.MaxSeedGrants

// Publishing statuses of a project's OAuth consent screen.
const (
	PublishingTesting    = api.PublishingTesting
	PublishingProduction = api.PublishingProduction
)

// GmailPushServiceAccount is the account Gmail publishes notifications as; it needs roles/pubsub.publisher
// on the watched topic.
const GmailPushServiceAccount = "gmail-api-push@system.gserviceaccount.com"

// AdminClient calls the admin API of a sandbox.
type AdminClient struct {
	root string
	hc   *http.Client
}

// NewAdminClient returns a client for the sandbox at root (Sandbox.URL()); hc nil = a default client.
func NewAdminClient(root string, hc *http.Client) *AdminClient {
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	return &AdminClient{root: strings.TrimRight(root, "/"), hc: hc}
}

// Error is a non-2xx admin answer.
type Error struct {
	Status  int
	Message string
}

func (e *Error) Error() string { return fmt.Sprintf("sandbox admin: %d: %s", e.Status, e.Message) }

// IsNotFound reports whether err is an admin 404.
func IsNotFound(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == http.StatusNotFound
}

func (c *AdminClient) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.root+"/sandbox/admin"+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var e api.Error
		if json.Unmarshal(data, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(data))
		}
		return &Error{Status: resp.StatusCode, Message: e.Error}
	}
	if out != nil && len(data) > 0 {
		return json.Unmarshal(data, out)
	}
	return nil
}

func esc(s string) string { return url.PathEscape(s) }

// CreateProject creates a project with one OAuth client.
func (c *AdminClient) CreateProject(ctx context.Context, req CreateProjectRequest) (Project, error) {
	var p Project
	err := c.do(ctx, http.MethodPost, "/projects", req, &p)
	return p, err
}

// SetPublishingStatus switches a project's consent screen between "testing" and "production".
func (c *AdminClient) SetPublishingStatus(ctx context.Context, projectID, status string) error {
	return c.do(ctx, http.MethodPost, "/projects/"+esc(projectID)+"/publishingStatus", map[string]string{"publishingStatus": status}, nil)
}

// CreateOAuthClient adds another OAuth client (e.g. a replacement) to a project.
func (c *AdminClient) CreateOAuthClient(ctx context.Context, projectID string, redirectURIs []string) (OAuthClient, error) {
	var o OAuthClient
	err := c.do(ctx, http.MethodPost, "/projects/"+esc(projectID)+"/clients", CreateOAuthClientRequest{RedirectURIs: redirectURIs}, &o)
	return o, err
}

// DeleteOAuthClient deletes an OAuth client: its credentials then answer invalid_client.
func (c *AdminClient) DeleteOAuthClient(ctx context.Context, clientID string) error {
	return c.do(ctx, http.MethodDelete, "/clients/"+esc(clientID), nil, nil)
}

// CreateServiceAccount creates NAME@PROJECT.iam.gserviceaccount.com and returns its JSON key file and email.
func (c *AdminClient) CreateServiceAccount(ctx context.Context, projectID, name string) ([]byte, string, error) {
	var sa ServiceAccount
	if err := c.do(ctx, http.MethodPost, "/projects/"+esc(projectID)+"/serviceAccounts", map[string]string{"name": name}, &sa); err != nil {
		return nil, "", err
	}
	return []byte(sa.Key), sa.Email, nil
}

// CreateTestUser creates a Google account (mailbox + primary calendar). With projects, the account is a
// test user of those projects only; without, of every project.
func (c *AdminClient) CreateTestUser(ctx context.Context, email string, projects ...string) error {
	_, err := c.CreateUser(ctx, CreateTestUserRequest{Email: email, Projects: projects})
	return err
}

// CreateUser creates a Google account with every option.
func (c *AdminClient) CreateUser(ctx context.Context, req CreateTestUserRequest) (User, error) {
	var u User
	err := c.do(ctx, http.MethodPost, "/users", req, &u)
	return u, err
}

// GetUser reads an account and its calendars.
func (c *AdminClient) GetUser(ctx context.Context, email string) (User, error) {
	var u User
	err := c.do(ctx, http.MethodGet, "/users/"+esc(email), nil, &u)
	return u, err
}

// DeliverEmail delivers a message into a mailbox (msg is an Email, or raw RFC 822 bytes) and returns its id.
func (c *AdminClient) DeliverEmail(ctx context.Context, mailbox string, msg any) (string, error) {
	d, err := c.Deliver(ctx, mailbox, msg)
	return d.ID, err
}

// Deliver is DeliverEmail returning the thread, history id and whether a notification was published.
func (c *AdminClient) Deliver(ctx context.Context, mailbox string, msg any) (DeliveredMessage, error) {
	var e Email
	switch m := msg.(type) {
	case []byte:
		e.Raw = m
	case string:
		e.Raw = []byte(m)
	case Email:
		e = m
	case *Email:
		e = *m
	default:
		return DeliveredMessage{}, fmt.Errorf("DeliverEmail: want []byte, string or Email, got %T", msg)
	}
	var d DeliveredMessage
	err := c.do(ctx, http.MethodPost, "/users/"+esc(mailbox)+"/messages", e, &d)
	return d, err
}

// CreateLabel creates (or finds) a user label by name.
func (c *AdminClient) CreateLabel(ctx context.Context, mailbox, name string) (Label, error) {
	var l Label
	err := c.do(ctx, http.MethodPost, "/users/"+esc(mailbox)+"/labels", map[string]string{"name": name}, &l)
	return l, err
}

// Watches returns the mailbox's users.watch state (empty when never watched).
func (c *AdminClient) Watches(ctx context.Context, mailbox string) ([]GmailWatch, error) {
	var out []GmailWatch
	err := c.do(ctx, http.MethodGet, "/users/"+esc(mailbox)+"/watches", nil, &out)
	return out, err
}

// ExpireHistory drops the mailbox's history: any older startHistoryId answers 404.
func (c *AdminClient) ExpireHistory(ctx context.Context, mailbox string) error {
	return c.do(ctx, http.MethodPost, "/users/"+esc(mailbox)+"/expireHistory", nil, nil)
}

// CreateCalendar adds a secondary calendar.
func (c *AdminClient) CreateCalendar(ctx context.Context, owner, summary string) (Calendar, error) {
	var cal Calendar
	err := c.do(ctx, http.MethodPost, "/users/"+esc(owner)+"/calendars", map[string]string{"summary": summary}, &cal)
	return cal, err
}

// DeleteCalendar deletes a secondary calendar (its channels get a not_exists notification).
func (c *AdminClient) DeleteCalendar(ctx context.Context, owner, calendarID string) error {
	return c.do(ctx, http.MethodDelete, "/users/"+esc(owner)+"/calendars/"+esc(calendarID), nil, nil)
}

// CreateEvent creates an event ("primary" names the owner's primary calendar); watching channels are notified.
func (c *AdminClient) CreateEvent(ctx context.Context, owner, calendarID string, ev *gcal.Event) (*gcal.Event, error) {
	var out gcal.Event
	err := c.do(ctx, http.MethodPost, "/users/"+esc(owner)+"/calendars/"+esc(calendarID)+"/events", ev, &out)
	return &out, err
}

// UpdateEvent replaces an event's fields (ev.Id names it).
func (c *AdminClient) UpdateEvent(ctx context.Context, owner, calendarID string, ev *gcal.Event) (*gcal.Event, error) {
	var out gcal.Event
	err := c.do(ctx, http.MethodPut, "/users/"+esc(owner)+"/calendars/"+esc(calendarID)+"/events/"+esc(ev.Id), ev, &out)
	return &out, err
}

// DeleteEvent cancels an event (incremental syncs then return it with status "cancelled").
func (c *AdminClient) DeleteEvent(ctx context.Context, owner, calendarID, eventID string) error {
	return c.do(ctx, http.MethodDelete, "/users/"+esc(owner)+"/calendars/"+esc(calendarID)+"/events/"+esc(eventID), nil, nil)
}

// InvalidateSyncTokens makes every sync token of a calendar answer 410 fullSyncRequired.
func (c *AdminClient) InvalidateSyncTokens(ctx context.Context, owner, calendarID string) error {
	return c.do(ctx, http.MethodPost, "/users/"+esc(owner)+"/calendars/"+esc(calendarID)+"/invalidateSyncTokens", nil, nil)
}

// Channels lists every Calendar push channel.
func (c *AdminClient) Channels(ctx context.Context) ([]Channel, error) {
	var out []Channel
	err := c.do(ctx, http.MethodGet, "/channels", nil, &out)
	return out, err
}

// RevokeGrant revokes what email granted clientID: every token of the pair answers invalid_grant / 401.
func (c *AdminClient) RevokeGrant(ctx context.Context, email, clientID string) error {
	return c.do(ctx, http.MethodPost, "/grants/revoke", api.RevokeGrantRequest{Email: email, ClientID: clientID}, nil)
}

// SeedGrants stores, for each account of req, what an approved offline consent (prompt=consent) and its
// code exchange leave behind — the grant, a refresh token and an access token — without the consent page
// or a token request, and returns the token responses in the order of req.Accounts. Missing accounts are
// created as test users of the client's project. At most MaxSeedGrants accounts per call; nothing is
// counted (no Google endpoint was called).
func (c *AdminClient) SeedGrants(ctx context.Context, req SeedGrantsRequest) ([]SeededGrant, error) {
	var out api.SeedGrantsResponse
	if err := c.do(ctx, http.MethodPost, "/grants", req, &out); err != nil {
		return nil, err
	}
	return out.Grants, nil
}

// AdvanceClock moves the sandbox clock forward by d (Now reads it). Watches, channels, tokens, history
// and sync tokens expire by the sandbox clock; signed JWTs (ID tokens, push tokens) use the wall clock.
func (c *AdminClient) AdvanceClock(ctx context.Context, d time.Duration) error {
	return c.do(ctx, http.MethodPost, "/clock/advance", api.AdvanceClockRequest{Duration: d.String()}, nil)
}

// Now reads the sandbox clock.
func (c *AdminClient) Now(ctx context.Context) (time.Time, error) {
	var out Clock
	err := c.do(ctx, http.MethodGet, "/clock", nil, &out)
	return out.Now, err
}

// SetFault adds a fault (faults accumulate until ClearFaults or until their Times run out).
func (c *AdminClient) SetFault(ctx context.Context, f Fault) error {
	return c.do(ctx, http.MethodPost, "/faults", f, nil)
}

// Faults lists the active faults.
func (c *AdminClient) Faults(ctx context.Context) ([]Fault, error) {
	var out []Fault
	err := c.do(ctx, http.MethodGet, "/faults", nil, &out)
	return out, err
}

// ClearFaults removes every fault.
func (c *AdminClient) ClearFaults(ctx context.Context) error {
	return c.do(ctx, http.MethodDelete, "/faults", nil, nil)
}

// Counters returns call counts keyed "endpoint" (total) and "endpoint|key", where key is the calling OAuth
// client id (a service account's client id for jwt-bearer and its tokens; "-" when unknown), the mailbox for
// gmail.notification*, the subscription for pubsub.push*, and the channel id for calendar.push*.
func (c *AdminClient) Counters(ctx context.Context) (map[string]int64, error) {
	out := map[string]int64{}
	err := c.do(ctx, http.MethodGet, "/counters", nil, &out)
	return out, err
}

// ResetCounters zeroes every counter.
func (c *AdminClient) ResetCounters(ctx context.Context) error {
	return c.do(ctx, http.MethodDelete, "/counters", nil, nil)
}

// Deliveries lists recent push attempts (Pub/Sub pushes and Calendar notifications), oldest first.
func (c *AdminClient) Deliveries(ctx context.Context) ([]Delivery, error) {
	var out []Delivery
	err := c.do(ctx, http.MethodGet, "/deliveries", nil, &out)
	return out, err
}

// TopicPolicy reads the IAM policy of a topic (or subscription) as the IAM service stores it.
func (c *AdminClient) TopicPolicy(ctx context.Context, topic string) (TopicPolicy, error) {
	var out TopicPolicy
	err := c.do(ctx, http.MethodGet, "/pubsub/policy?resource="+url.QueryEscape(topic), nil, &out)
	return out, err
}

// Subscription reads a subscription's push endpoint, OIDC audience, service account and expiration policy.
func (c *AdminClient) Subscription(ctx context.Context, name string) (Subscription, error) {
	var out Subscription
	err := c.do(ctx, http.MethodGet, "/pubsub/subscription?name="+url.QueryEscape(name), nil, &out)
	return out, err
}

// Consent completes the consent page of an authorization URL as account would: it posts the form
// (fields "account" and "decision") and returns the redirect it answers with (code+state, or
// error=access_denied when approve is false). A consent page error (unknown client, redirect_uri not
// registered, ...) is returned as *Error with the page's status and error code.
func (c *AdminClient) Consent(ctx context.Context, authURL, account string, approve bool) (*url.URL, error) {
	decision := "deny"
	if approve {
		decision = "approve"
	}
	form := url.Values{"account": {account}, "decision": {decision}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, authURL, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	hc := *c.hc
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusFound {
		msg := resp.Header.Get("X-Sandbox-Error")
		if msg == "" {
			msg = resp.Status
		}
		return nil, &Error{Status: resp.StatusCode, Message: msg}
	}
	return url.Parse(resp.Header.Get("Location"))
}
