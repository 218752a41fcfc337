package sandbox

// OAuth 2.0 / OIDC state shared by the endpoint files: projects, clients, service accounts, authorization
// codes, grants and tokens, and the scopes the Gmail and Calendar APIs check. The endpoints are
// oauth_authorize.go, oauth_token.go, oauth_revoke.go, oauth_userinfo.go; oauth_bearer.go checks the access
// tokens of API calls and oauth_admin.go creates clients and service accounts. Routes are in Handler (admin.go).

import (
	"crypto/rsa"
	"slices"
	"strings"
	"time"
)

type project struct {
	id, number, status string
	clients            []string
}

type oauthClient struct {
	id, secret, projectID string
	redirectURIs          []string
	deleted               bool
}

type serviceAccount struct {
	email, projectID, clientID, keyID string
	key                               *rsa.PrivateKey
	keyJSON                           []byte
}

type authCode struct {
	code, clientID, redirectURI, email string
	challenge, method, nonce           string
	scopes                             []string
	offline, forceConsent              bool
	expires                            time.Time
	used                               bool
}

type grantKey struct{ email, clientID string }

type grant struct {
	scopes    []string
	consentAt time.Time
	refresh   []*refreshToken // oldest first
}

type refreshToken struct {
	token, email, clientID string
	scopes                 []string
	issued                 time.Time
	testing                bool
	revoked                bool
}

type accessToken struct {
	token, subject, clientID string
	scopes                   []string
	expires                  time.Time
	refresh                  *refreshToken
	sa                       *serviceAccount
	user                     *user
}

// Scopes the APIs check.
const (
	scopeMail          = "https://mail.google.com/"
	scopeGmailReadonly = "https://www.googleapis.com/auth/gmail.readonly"
	scopeGmailModify   = "https://www.googleapis.com/auth/gmail.modify"
	scopeGmailMetadata = "https://www.googleapis.com/auth/gmail.metadata"
	scopeCalendar      = "https://www.googleapis.com/auth/calendar"
	scopeCalendarRO    = "https://www.googleapis.com/auth/calendar.readonly"
	scopeEvents        = "https://www.googleapis.com/auth/calendar.events"
	scopeEventsRO      = "https://www.googleapis.com/auth/calendar.events.readonly"
	scopeUserEmail     = "https://www.googleapis.com/auth/userinfo.email"
	scopeUserProfile   = "https://www.googleapis.com/auth/userinfo.profile"
)

var (
	gmailScopes    = []string{scopeMail, scopeGmailReadonly, scopeGmailModify, scopeGmailMetadata}
	calendarScopes = []string{scopeCalendar, scopeCalendarRO, scopeEvents, scopeEventsRO}
)

func validScope(sc string) bool {
	switch sc {
	case "openid", "email", "profile", scopeMail:
		return true
	}
	return strings.HasPrefix(sc, "https://www.googleapis.com/auth/") && len(sc) > len("https://www.googleapis.com/auth/")
}

func hasAnyScope(have []string, want ...string) bool {
	for _, w := range want {
		if slices.Contains(have, w) {
			return true
		}
	}
	return false
}
