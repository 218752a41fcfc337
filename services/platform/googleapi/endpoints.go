// Package googleapi says where Google lives: the real Google by default, or one Google-compatible root
// (the sandbox) for every HTTP API when ALGA_GOOGLE_API_ROOT is set. Google's own paths are kept.
package googleapi

import (
	"net/http"
	"strings"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"
	"google.golang.org/api/option"
)

// Endpoints are the Google URLs the suite calls.
type Endpoints struct {
	// Root is empty for the real Google.
	Root string
	// PubSubEmulatorHost is host:port of a Pub/Sub emulator, empty for the real Pub/Sub.
	PubSubEmulatorHost string
	HTTPClient         *http.Client
}

// New returns endpoints for root ("" = real Google).
func New(root, pubsubEmulator string) Endpoints {
	return Endpoints{Root: strings.TrimRight(root, "/"), PubSubEmulatorHost: pubsubEmulator}
}

// IsEmulated reports whether an emulator stands in for Google.
func (e Endpoints) IsEmulated() bool { return e.Root != "" }

// OAuthEndpoint is the authorization and token endpoint pair.
func (e Endpoints) OAuthEndpoint() oauth2.Endpoint {
	ep := google.Endpoint
	if e.Root != "" {
		ep.AuthURL = e.Root + "/o/oauth2/v2/auth"
		ep.TokenURL = e.Root + "/token"
		ep.DeviceAuthURL = e.Root + "/device/code"
	}
	ep.AuthStyle = oauth2.AuthStyleInParams
	return ep
}

// RevokeURL revokes a token.
func (e Endpoints) RevokeURL() string {
	if e.Root != "" {
		return e.Root + "/revoke"
	}
	return "https://oauth2.googleapis.com/revoke"
}

// CertsURL is Google's OIDC signing keys (JWKS).
func (e Endpoints) CertsURL() string {
	if e.Root != "" {
		return e.Root + "/oauth2/v3/certs"
	}
	return "https://www.googleapis.com/oauth2/v3/certs"
}

// TokenURL is the token endpoint (also the audience of service-account JWT assertions).
func (e Endpoints) TokenURL() string { return e.OAuthEndpoint().TokenURL }

// Issuer is the iss of Google-signed OIDC tokens (Pub/Sub push).
const Issuer = "https://accounts.google.com"

// GmailOptions are client options for google.golang.org/api/gmail/v1 (plus a credential option).
func (e Endpoints) GmailOptions() []option.ClientOption {
	if e.Root == "" {
		return nil
	}
	return []option.ClientOption{option.WithEndpoint(e.Root + "/")}
}

// OAuth2APIOptions are client options for google.golang.org/api/oauth2/v2 (userinfo).
func (e Endpoints) OAuth2APIOptions() []option.ClientOption { return e.GmailOptions() }

// CalendarOptions are client options for google.golang.org/api/calendar/v3.
func (e Endpoints) CalendarOptions() []option.ClientOption {
	if e.Root == "" {
		return nil
	}
	return []option.ClientOption{option.WithEndpoint(e.Root + "/calendar/v3/")}
}
