// Package api holds the JSON types of the sandbox's admin API (/sandbox/admin/...). The root package
// re-exports them; the server and the admin client share them so the wire format has one definition.
package api

import (
	"encoding/json"
	"fmt"
	"time"
)

// PublishingStatus values of an OAuth consent screen.
const (
	PublishingTesting    = "testing"
	PublishingProduction = "production"
)

// CreateProjectRequest creates a tenant's Google Cloud project with one OAuth client.
type CreateProjectRequest struct {
	ProjectID string `json:"projectId"`
	// PublishingStatus is "testing" (default: refresh tokens die 7 days after consent) or "production".
	PublishingStatus string   `json:"publishingStatus,omitempty"`
	RedirectURIs     []string `json:"redirectUris,omitempty"`
}

// Project is a created project and its first OAuth client.
type Project struct {
	ProjectID        string   `json:"projectId"`
	ProjectNumber    string   `json:"projectNumber"`
	PublishingStatus string   `json:"publishingStatus"`
	ClientID         string   `json:"clientId"`
	ClientSecret     string   `json:"clientSecret"`
	RedirectURIs     []string `json:"redirectUris"`
}

// CreateOAuthClientRequest adds an OAuth client to a project.
type CreateOAuthClientRequest struct {
	RedirectURIs []string `json:"redirectUris,omitempty"`
}

// OAuthClient is an OAuth client of a project.
type OAuthClient struct {
	ProjectID    string   `json:"projectId"`
	ClientID     string   `json:"clientId"`
	ClientSecret string   `json:"clientSecret"`
	RedirectURIs []string `json:"redirectUris"`
}

// SetPublishingStatusRequest changes a project's consent-screen publishing status.
type SetPublishingStatusRequest struct {
	PublishingStatus string `json:"publishingStatus"`
}

// CreateServiceAccountRequest creates a service account (NAME@PROJECT.iam.gserviceaccount.com) with a key.
type CreateServiceAccountRequest struct {
	Name string `json:"name"`
}

// ServiceAccount is a created service account with its JSON key file.
type ServiceAccount struct {
	Email    string          `json:"email"`
	ClientID string          `json:"clientId"`
	KeyID    string          `json:"keyId"`
	Key      json.RawMessage `json:"key"`
}

// CreateTestUserRequest creates a Google account with a Gmail mailbox and a primary calendar.
type CreateTestUserRequest struct {
	Email string `json:"email"`
	Name  string `json:"name,omitempty"`
	// Projects lists the projects whose consent screen lists this account as a test user; empty = every project.
	Projects []string `json:"projects,omitempty"`
	// SecondCalendar also creates a secondary calendar ("Team", id ...@group.calendar.google.com).
	SecondCalendar bool `json:"secondCalendar,omitempty"`
}

// User is a sandbox Google account.
type User struct {
	Email     string     `json:"email"`
	Name      string     `json:"name"`
	ID        string     `json:"id"`
	Projects  []string   `json:"projects,omitempty"`
	Calendars []Calendar `json:"calendars"`
}

// Calendar is one of a user's calendars.
type Calendar struct {
	ID      string `json:"id"`
	Summary string `json:"summary"`
	Primary bool   `json:"primary,omitempty"`
}

// CreateCalendarRequest adds a secondary calendar to a user.
type CreateCalendarRequest struct {
	Summary string `json:"summary"`
}

// Email is a message to deliver into a mailbox. Either Raw (an RFC 822 message) or the simple fields.
type Email struct {
	Raw     []byte    `json:"raw,omitempty"`
	From    string    `json:"from,omitempty"`
	To      string    `json:"to,omitempty"`
	Subject string    `json:"subject,omitempty"`
	Body    string    `json:"body,omitempty"`
	Date    time.Time `json:"date,omitzero"`
	// LabelIDs defaults to INBOX+UNREAD (use SENT or DRAFT for outgoing mail).
	LabelIDs []string `json:"labelIds,omitempty"`
	// LabelNames are user labels by name, created when missing.
	LabelNames []string `json:"labelNames,omitempty"`
	// ThreadID puts the message into an existing thread.
	ThreadID string `json:"threadId,omitempty"`
}

// DeliveredMessage identifies a delivered message.
type DeliveredMessage struct {
	ID        string `json:"id"`
	ThreadID  string `json:"threadId"`
	HistoryID uint64 `json:"historyId"`
	// Notified reports whether a Gmail push notification was published for it.
	Notified bool `json:"notified"`
}

// CreateLabelRequest creates a user label.
type CreateLabelRequest struct {
	Name string `json:"name"`
}

// Label is a Gmail label.
type Label struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Type string `json:"type"`
}

// RevokeGrantRequest revokes the grant an account gave an OAuth client (as the user would in their Google
// account settings): every refresh and access token of the pair dies.
type RevokeGrantRequest struct {
	Email    string `json:"email"`
	ClientID string `json:"clientId"`
}

// SeedGrantsRequest stores, for each account, what an approved offline consent (access_type=offline,
// prompt=consent) and its code exchange leave behind — the grant, a refresh token and an access token —
// without the consent page and the token request (tests and benchmarks that need thousands of connected
// accounts). An account that does not exist yet is created as a test user of the client's project.
type SeedGrantsRequest struct {
	ClientID string   `json:"clientId"`
	Scopes   []string `json:"scopes"`
	// Accounts are email addresses; at most MaxSeedGrants per request.
	Accounts []string `json:"accounts"`
}

// MaxSeedGrants bounds the accounts of one SeedGrantsRequest.
const MaxSeedGrants = 1000

// SeededGrant is the token response the code exchange would have answered for one account.
type SeededGrant struct {
	Email        string `json:"email"`
	AccessToken  string `json:"accessToken"`
	RefreshToken string `json:"refreshToken"`
	// ExpiresIn is the access token's lifetime in seconds (3599, as Google answers).
	ExpiresIn int    `json:"expiresIn"`
	Scope     string `json:"scope"`
	TokenType string `json:"tokenType"`
}

// SeedGrantsResponse lists the grants in the order of the request's accounts.
type SeedGrantsResponse struct {
	Grants []SeededGrant `json:"grants"`
}

// AdvanceClockRequest moves the sandbox clock forward.
type AdvanceClockRequest struct {
	// Duration is a Go duration string ("168h", "90s").
	Duration string `json:"duration"`
}

// Clock is the sandbox clock.
type Clock struct {
	Now    time.Time `json:"now"`
	Offset string    `json:"offset"`
}

// Fault injects failures into calls of one endpoint (see the endpoint names in the README).
type Fault struct {
	// Endpoint is an endpoint name ("oauth.token", "gmail.users.history.list", "pubsub.push"), a prefix
	// ending in "*" ("gmail.*"), or "*".
	Endpoint string `json:"endpoint"`
	// ClientID limits the fault to calls made by one OAuth client (or service account client id); empty = any.
	ClientID string `json:"clientId,omitempty"`
	// Rate429 and Rate5xx in [0,1] are deterministic: the fault fires on calls n where ceil(n*rate)
	// grows, so 1 = every call, 0.5 = calls 1,3,5..., 0.25 = calls 1,5,9...
	Rate429 float64 `json:"rate429,omitempty"`
	Rate5xx float64 `json:"rate5xx,omitempty"`
	// Status5xx is the 5xx status to answer (default 503).
	Status5xx int `json:"status5xx,omitempty"`
	// RetryAfterSeconds, when set, is sent as the Retry-After header of the 429 and 5xx answers this
	// fault injects (API and token endpoints).
	RetryAfterSeconds int `json:"retryAfterSeconds,omitempty"`
	// Latency delays every matching call (JSON: a Go duration string like "250ms", or nanoseconds).
	Latency time.Duration `json:"latency,omitempty"`
	// DropNotifications drops notifications of a notification endpoint (gmail.notification,
	// calendar.push, pubsub.push).
	DropNotifications bool `json:"dropNotifications,omitempty"`
	// ForceError answers matching calls with an error: OAuth errors at oauth.* endpoints ("invalid_grant",
	// "invalid_rapt", "invalid_client", "unauthorized_client", "invalid_request", "invalid_scope",
	// "access_denied" at oauth.authorize), an HTTP status at API endpoints ("404", "410", or a name:
	// "not_found", "gone", "unauthenticated", "forbidden", "bad_request", "rate_limited", "backend_error"),
	// or a gRPC code name at pubsub.* RPCs ("PERMISSION_DENIED", "NOT_FOUND", "UNAVAILABLE", ...).
	ForceError string `json:"forceError,omitempty"`
	// Times limits the fault to the next N calls on which it acts (0 = until cleared).
	Times int `json:"times,omitempty"`
}

// MarshalJSON renders Latency as a Go duration string.
func (f Fault) MarshalJSON() ([]byte, error) {
	type plain Fault
	aux := struct {
		plain
		Latency string `json:"latency,omitempty"`
	}{plain: plain(f)}
	if f.Latency != 0 {
		aux.Latency = f.Latency.String()
	}
	return json.Marshal(aux)
}

// UnmarshalJSON accepts Latency as a duration string or as nanoseconds.
func (f *Fault) UnmarshalJSON(b []byte) error {
	type plain Fault
	var aux struct {
		plain
		Latency json.RawMessage `json:"latency,omitempty"`
	}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	*f = Fault(aux.plain)
	f.Latency = 0
	if len(aux.Latency) == 0 || string(aux.Latency) == "null" {
		return nil
	}
	var s string
	if err := json.Unmarshal(aux.Latency, &s); err == nil {
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("latency: %w", err)
		}
		f.Latency = d
		return nil
	}
	var n int64
	if err := json.Unmarshal(aux.Latency, &n); err != nil {
		return fmt.Errorf("latency: want a duration string or nanoseconds")
	}
	f.Latency = time.Duration(n)
	return nil
}

// GmailWatch is a mailbox's users.watch state.
type GmailWatch struct {
	EmailAddress        string    `json:"emailAddress"`
	TopicName           string    `json:"topicName"`
	LabelIDs            []string  `json:"labelIds,omitempty"`
	LabelFilterBehavior string    `json:"labelFilterBehavior,omitempty"`
	HistoryID           uint64    `json:"historyId"`
	Expiration          time.Time `json:"expiration"`
	ClientID            string    `json:"clientId"`
	Active              bool      `json:"active"`
	// Calls counts users.watch calls on this mailbox; Stops counts users.stop calls.
	Calls int `json:"calls"`
	Stops int `json:"stops"`
}

// Channel is a Calendar push channel (events.watch).
type Channel struct {
	ID            string    `json:"id"`
	ResourceID    string    `json:"resourceId"`
	ResourceURI   string    `json:"resourceUri"`
	Token         string    `json:"token,omitempty"`
	Address       string    `json:"address"`
	Expiration    time.Time `json:"expiration"`
	ClientID      string    `json:"clientId"`
	Owner         string    `json:"owner"`
	CalendarID    string    `json:"calendarId"`
	Stopped       bool      `json:"stopped"`
	Expired       bool      `json:"expired"`
	MessageNumber int64     `json:"messageNumber"`
}

// Binding is one IAM role binding.
type Binding struct {
	Role    string   `json:"role"`
	Members []string `json:"members"`
}

// TopicPolicy is the IAM policy of a Pub/Sub resource.
type TopicPolicy struct {
	Resource string    `json:"resource"`
	Etag     string    `json:"etag"`
	Version  int32     `json:"version"`
	Bindings []Binding `json:"bindings"`
}

// ExpirationPolicy of a subscription. Never is true for a policy with no TTL (never expires).
type ExpirationPolicy struct {
	Never bool          `json:"never"`
	TTL   time.Duration `json:"ttl,omitempty"`
}

// Subscription is a Pub/Sub subscription as pstest stores it.
type Subscription struct {
	Name                string `json:"name"`
	Topic               string `json:"topic"`
	PushEndpoint        string `json:"pushEndpoint,omitempty"`
	Audience            string `json:"audience,omitempty"`
	ServiceAccountEmail string `json:"serviceAccountEmail,omitempty"`
	NoWrapper           bool   `json:"noWrapper,omitempty"`
	AckDeadlineSeconds  int32  `json:"ackDeadlineSeconds"`
	// ExpirationPolicy is nil when unset (Google's default: expire after 31 days of inactivity).
	ExpirationPolicy *ExpirationPolicy `json:"expirationPolicy,omitempty"`
	Filter           string            `json:"filter,omitempty"`
}

// Delivery is one push attempt (Pub/Sub push or Calendar channel notification).
type Delivery struct {
	Kind string `json:"kind"` // "pubsub" or "calendar"
	// Target is the subscription name or the channel id.
	Target   string    `json:"target"`
	Address  string    `json:"address"`
	ID       string    `json:"id"` // Pub/Sub message id or Calendar message number
	Attempt  int       `json:"attempt"`
	Status   int       `json:"status"`
	Error    string    `json:"error,omitempty"`
	Outcome  string    `json:"outcome"` // "acked", "retry", "gave_up", "dropped", "delivered", "failed"
	At       time.Time `json:"at"`
	Duration string    `json:"duration"`
}

// Error is the admin API's error body.
type Error struct {
	Error string `json:"error"`
}
