package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"golang.org/x/oauth2"
	calendar "google.golang.org/api/calendar/v3"
	gmail "google.golang.org/api/gmail/v1"
	"google.golang.org/api/googleapi"
	oauth2api "google.golang.org/api/oauth2/v2"
	"google.golang.org/api/option"

	secretsv1 "github.com/algapsa/alga-google/gen/alga/secrets/v1"
)

// storedToken is the JSON kept in the secrets service under google_oauth_token_<connection id>.
type storedToken struct {
	AccessToken  string    `json:"access_token"`
	RefreshToken string    `json:"refresh_token"`
	TokenType    string    `json:"token_type,omitempty"`
	Expiry       time.Time `json:"expiry"`
	Scope        string    `json:"scope,omitempty"`
	// ClientID is the OAuth client the grant belongs to.
	ClientID string `json:"client_id"`
}

func tokenFrom(tok *oauth2.Token, clientID string) storedToken {
	st := storedToken{AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, TokenType: tok.TokenType, Expiry: tok.Expiry, ClientID: clientID}
	if sc, ok := tok.Extra("scope").(string); ok {
		st.Scope = sc
	}
	if st.Expiry.IsZero() && tok.ExpiresIn > 0 {
		st.Expiry = time.Now().Add(time.Duration(tok.ExpiresIn) * time.Second)
	}
	return st
}

var errNoToken = errors.New("no stored token")

func (s *core) readToken(ctx context.Context, connectionID string) (storedToken, error) {
	name := TokenSecretName(connectionID)
	vals, err := s.getSecrets(ctx, name)
	if err != nil {
		return storedToken{}, err
	}
	raw, ok := vals[name]
	if !ok {
		return storedToken{}, errNoToken
	}
	var t storedToken
	if err := json.Unmarshal([]byte(raw), &t); err != nil {
		return storedToken{}, fmt.Errorf("stored token of connection %s does not parse", connectionID)
	}
	return t, nil
}

func (s *core) writeToken(ctx context.Context, connectionID string, t storedToken) error {
	w, err := tokenWrite(connectionID, t)
	if err != nil {
		return err
	}
	_, err = s.secrets.PutSecrets(ctx, &secretsv1.PutSecretsRequest{Writes: []*secretsv1.SecretWrite{w}})
	return err
}

// tokenWrite is the secrets-service write that stores a connection's token.
func tokenWrite(connectionID string, t storedToken) (*secretsv1.SecretWrite, error) {
	raw, err := json.Marshal(t)
	if err != nil {
		return nil, err
	}
	return &secretsv1.SecretWrite{Name: TokenSecretName(connectionID), Value: string(raw)}, nil
}

// accountEmail reads the Google account that consented: userinfo, or (when the grant's scopes do not
// include the email) the Gmail profile or the primary calendar's id.
func (s *Flow) accountEmail(ctx context.Context, kind string, tok *oauth2.Token) (string, error) {
	ts := oauth2.StaticTokenSource(tok)
	hc := oauth2.NewClient(ctx, ts)
	svc, err := oauth2api.NewService(ctx, append(s.google.OAuth2APIOptions(), option.WithHTTPClient(hc))...)
	if err != nil {
		return "", err
	}
	info, err := svc.Userinfo.Get().Context(ctx).Do()
	if err == nil && info.Email != "" {
		return info.Email, nil
	}
	switch kind {
	case kindGmail:
		g, gerr := gmail.NewService(ctx, append(s.google.GmailOptions(), option.WithHTTPClient(hc))...)
		if gerr != nil {
			return "", gerr
		}
		p, perr := g.Users.GetProfile("me").Context(ctx).Do()
		if perr != nil {
			return "", errors.Join(err, perr)
		}
		return p.EmailAddress, nil
	default:
		c, cerr := calendar.NewService(ctx, append(s.google.CalendarOptions(), option.WithHTTPClient(hc))...)
		if cerr != nil {
			return "", cerr
		}
		list, perr := c.CalendarList.List().Context(ctx).Do()
		if perr != nil {
			return "", errors.Join(err, perr)
		}
		for _, cal := range list.Items {
			if cal.Primary {
				return cal.Id, nil // the primary calendar's id is the account's address
			}
		}
		return "", errors.New("the account has no primary calendar")
	}
}

// tokenError is a classified failure of Google's token endpoint.
type tokenError struct {
	code        string // OAuth error code ("invalid_grant", ...) or "" for non-OAuth failures
	subtype     string // error_subtype ("invalid_rapt")
	description string
	httpStatus  int
	transient   bool
}

func classifyTokenError(err error) tokenError {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		te := tokenError{code: re.ErrorCode, description: re.ErrorDescription}
		if re.Response != nil {
			te.httpStatus = re.Response.StatusCode
		}
		var body struct {
			Error   string `json:"error"`
			Subtype string `json:"error_subtype"`
		}
		if json.Unmarshal(re.Body, &body) == nil {
			te.subtype = body.Subtype
			if te.code == "" {
				te.code = body.Error
			}
		}
		te.transient = te.httpStatus >= 500 || te.httpStatus == http.StatusTooManyRequests ||
			(te.code == "" && te.httpStatus == 0)
		return te
	}
	var ge *googleapi.Error
	if errors.As(err, &ge) {
		return tokenError{httpStatus: ge.Code, transient: ge.Code >= 500 || ge.Code == http.StatusTooManyRequests}
	}
	// A network failure, a timeout or anything else (a malformed answer) is transient: nothing says the
	// grant is broken.
	return tokenError{transient: true}
}
