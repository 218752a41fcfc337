// Package urls derives every public URL of the suite from the one canonical base URL. Provisioning,
// verification and the UI all call these functions; nothing falls back to a request's Host header.
package urls

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
)

// Base is a validated canonical base URL: scheme and host only, lowercase host, no default port, no path.
type Base struct{ u url.URL }

// Parse validates raw. Plain http is allowed only for loopback hosts and only when dev is true.
func Parse(raw string, dev bool) (Base, error) {
	if strings.TrimSpace(raw) == "" {
		return Base{}, errors.New("ALGA_BASE_URL is required (e.g. https://helpdesk.example.com)")
	}
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return Base{}, fmt.Errorf("ALGA_BASE_URL: %w", err)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return Base{}, errors.New("ALGA_BASE_URL must not contain credentials, a query or a fragment")
	}
	if strings.Trim(u.Path, "/") != "" {
		return Base{}, errors.New("ALGA_BASE_URL must not contain a path")
	}
	host := strings.ToLower(u.Hostname())
	if host == "" {
		return Base{}, errors.New("ALGA_BASE_URL needs a host")
	}
	port := u.Port()
	switch u.Scheme {
	case "https":
		if port == "443" {
			port = ""
		}
	case "http":
		if !dev || !isLoopback(host) {
			return Base{}, errors.New("ALGA_BASE_URL must use https (plain http is allowed only for a loopback host in --dev mode)")
		}
		if port == "80" {
			port = ""
		}
	default:
		return Base{}, fmt.Errorf("ALGA_BASE_URL scheme %q is not http(s)", u.Scheme)
	}
	hostport := host
	if strings.Contains(host, ":") {
		hostport = "[" + host + "]"
	}
	if port != "" {
		hostport = net.JoinHostPort(host, port)
	}
	return Base{u: url.URL{Scheme: u.Scheme, Host: hostport}}, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// String is the canonical base, e.g. "https://helpdesk.example.com".
func (b Base) String() string { return b.u.String() }

// IsZero reports an unset Base.
func (b Base) IsZero() bool { return b.u.Host == "" }

func (b Base) path(p string) string { return b.String() + p }

// Paths of the public HTTP surface (kept stable: tenants register some of them at Google).
const (
	GmailCallbackPath    = "/api/auth/google/callback"
	CalendarCallbackPath = "/api/auth/google/calendar/callback"
	GmailWebhookPath     = "/api/email/webhooks/google"
	CalendarWebhookPath  = "/api/calendar/webhooks/google"
	GoogleSettingsPath   = "/settings/integrations/google"
)

// GmailRedirectURI is the OAuth redirect URI tenants register for Gmail.
func (b Base) GmailRedirectURI() string { return b.path(GmailCallbackPath) }

// CalendarRedirectURI is the OAuth redirect URI tenants register for Calendar.
func (b Base) CalendarRedirectURI() string { return b.path(CalendarCallbackPath) }

// GmailPushEndpoint is where Pub/Sub pushes Gmail notifications.
func (b Base) GmailPushEndpoint() string { return b.path(GmailWebhookPath) }

// GmailPushAudience is the OIDC audience of Gmail pushes (the endpoint itself, as Google defaults to).
func (b Base) GmailPushAudience() string { return b.GmailPushEndpoint() }

// CalendarWebhookAddress is the address of Calendar push channels.
func (b Base) CalendarWebhookAddress() string { return b.path(CalendarWebhookPath) }

// GoogleSettingsURL is the UI page of the Google setup area.
func (b Base) GoogleSettingsURL() string { return b.path(GoogleSettingsPath) }
