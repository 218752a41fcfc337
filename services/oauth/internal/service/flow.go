package service

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"golang.org/x/oauth2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	calendarv1 "github.com/algapsa/alga-google/gen/alga/calendar/v1"
	gmailv1 "github.com/algapsa/alga-google/gen/alga/gmail/v1"
	oauthv1 "github.com/algapsa/alga-google/gen/alga/oauth/v1"
	"github.com/algapsa/alga-google/services/oauth/internal/store"
	"github.com/algapsa/alga-google/services/platform/errs"
	"github.com/algapsa/alga-google/services/platform/grpcclient"
	"github.com/algapsa/alga-google/services/platform/urls"
)

// Callback statuses shown by the UI (the only thing the browser learns about the outcome).
const (
	StatusConnected           = "connected"
	StatusStateInvalid        = "state_invalid"
	StatusBrowserMismatch     = "browser_mismatch"
	StatusDenied              = "denied"
	StatusGoogleError         = "google_error"
	StatusConfigMissing       = "config_missing"
	StatusConfigChanged       = "config_changed"
	StatusExchangeFailed      = "exchange_failed"
	StatusClientInvalid       = "client_invalid"
	StatusGoogleUnavailable   = "google_unavailable"
	StatusNoRefreshToken      = "no_refresh_token"
	StatusWrongAccount        = "wrong_account"
	StatusProviderNotFound    = "provider_not_found"
	StatusProviderUnavailable = "provider_unavailable"
	StatusActivationFailed    = "activation_failed"
)

// CalendarSettingsPath is the UI page of Calendar providers.
const CalendarSettingsPath = "/settings/integrations/calendar"

func (s *core) oauthConfig(c client, kind string) *oauth2.Config {
	return &oauth2.Config{
		ClientID: c.ID, ClientSecret: c.Secret,
		Endpoint:    s.google.OAuthEndpoint(),
		RedirectURL: s.redirectURI(kind),
		Scopes:      scopesFor(kind),
	}
}

func (s *core) httpContext(ctx context.Context) context.Context {
	return context.WithValue(ctx, oauth2.HTTPClient, s.http)
}

// BeginAuthorization implements OAuthFlowService. Called by a provider service acting for the signed-in
// user; returns the Google authorization URL built from the tenant's own OAuth client.
func (s *Flow) BeginAuthorization(ctx context.Context, req *oauthv1.BeginAuthorizationRequest) (*oauthv1.BeginAuthorizationResponse, error) {
	id, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if id.Subject == "" {
		return nil, errs.FailedPrecondition("USER_REQUIRED", "an authorization is started for a signed-in user: the call must act for one")
	}
	kind := kindName(req.GetKind())
	c, err := s.loadClient(ctx, kind)
	if err != nil {
		return nil, err
	}
	state, binding, verifier := randomToken(32), randomToken(32), oauth2.GenerateVerifier()
	sealed, err := sealVerifier(state, verifier)
	if err != nil {
		return nil, err
	}
	now := s.now()
	expires := now.Add(StateTTL)
	_ = store.PurgeExpiredStates(ctx, s.pool, now.Add(-time.Hour))
	if err := store.InsertState(ctx, s.pool, store.State{
		StateHash: stateHash(state), Tenant: id.Tenant, UserID: id.Subject, ProviderID: req.GetProviderId(), Kind: kind,
		ClientID: c.ID, LoginHint: req.GetLoginHint(), SealedVerifier: sealed, BindingHash: bindingHash(binding),
		CreatedAt: now, ExpiresAt: expires,
	}); err != nil {
		return nil, err
	}
	opts := []oauth2.AuthCodeOption{
		oauth2.AccessTypeOffline, oauth2.ApprovalForce, oauth2.S256ChallengeOption(verifier),
		oauth2.SetAuthURLParam("include_granted_scopes", "true"),
	}
	if req.GetLoginHint() != "" {
		opts = append(opts, oauth2.SetAuthURLParam("login_hint", req.GetLoginHint()))
	}
	authURL := s.oauthConfig(c, kind).AuthCodeURL(state, opts...)
	s.log.InfoContext(ctx, "authorization begun", "kind", kind, "provider", req.GetProviderId())
	return &oauthv1.BeginAuthorizationResponse{AuthorizationUrl: authURL, BrowserBinding: binding, ExpireTime: timestamppb.New(expires)}, nil
}

// uiRedirect is where the browser goes after a callback: the settings page with a status code only.
func (s *Flow) uiRedirect(kind, statusCode, providerID string) string {
	path := urls.GoogleSettingsPath
	if kind == kindCalendar {
		path = CalendarSettingsPath
	}
	q := url.Values{"google_oauth": {statusCode}}
	if providerID != "" {
		q.Set("provider", providerID)
	}
	return s.uiBase + path + "?" + q.Encode()
}

func (s *Flow) complete(kind, statusCode, providerID string) *oauthv1.CompleteAuthorizationResponse {
	return &oauthv1.CompleteAuthorizationResponse{RedirectUrl: s.uiRedirect(kind, statusCode, providerID), Status: statusCode}
}

// CompleteAuthorization implements OAuthFlowService. Called by the gateway for both callbacks; the tenant
// is established from the consumed state, never from the request.
func (s *Flow) CompleteAuthorization(ctx context.Context, req *oauthv1.CompleteAuthorizationRequest) (*oauthv1.CompleteAuthorizationResponse, error) {
	callbackKind := kindName(req.GetCallbackKind())
	if req.GetState() == "" {
		return s.complete(callbackKind, StatusStateInvalid, ""), nil
	}
	// The browser binding is checked before the state is consumed: a callback without the binding cookie
	// (or another browser's) consumes nothing, so whoever learns a state cannot burn it for the browser
	// that began the flow.
	st, err := store.ConsumeBoundState(ctx, s.pool, stateHash(req.GetState()), bindingHash(req.GetBrowserBinding()))
	if errors.Is(err, store.ErrNotFound) {
		exists, xerr := store.StateExists(ctx, s.pool, stateHash(req.GetState()))
		if xerr != nil {
			return nil, xerr
		}
		if exists {
			s.log.WarnContext(ctx, "oauth callback from another browser (binding cookie missing or different); the state stays usable", "kind", callbackKind)
			return s.complete(callbackKind, StatusBrowserMismatch, ""), nil
		}
		s.log.InfoContext(ctx, "oauth callback with an unknown or replayed state", "kind", callbackKind)
		return s.complete(callbackKind, StatusStateInvalid, ""), nil
	}
	if err != nil {
		return nil, err
	}
	now := s.now()
	if !now.Before(st.ExpiresAt) {
		s.log.InfoContext(ctx, "oauth callback with an expired state", "kind", st.Kind, "provider", st.ProviderID)
		return s.complete(callbackKind, StatusStateInvalid, ""), nil
	}
	if st.Kind != callbackKind {
		s.log.WarnContext(ctx, "oauth callback on the other kind's redirect URI", "state_kind", st.Kind, "callback_kind", callbackKind)
		return s.complete(callbackKind, StatusStateInvalid, ""), nil
	}
	kind, pid := st.Kind, st.ProviderID
	switch {
	case req.GetError() == "access_denied":
		return s.complete(kind, StatusDenied, pid), nil
	case req.GetError() != "":
		s.log.InfoContext(ctx, "google answered the authorization with an error", "error", truncateLog(req.GetError()))
		return s.complete(kind, StatusGoogleError, pid), nil
	case req.GetCode() == "":
		return s.complete(kind, StatusGoogleError, pid), nil
	}
	// From here on the call acts for the tenant and user the state was issued to.
	ctx = grpcclient.ActFor(ctx, ServiceName, st.Tenant, st.UserID)
	c, err := s.loadClient(ctx, kind)
	if errs.HasReason(err, "GOOGLE_NOT_CONFIGURED") {
		return s.complete(kind, StatusConfigMissing, pid), nil
	}
	if err != nil {
		return nil, err
	}
	if c.ID != st.ClientID {
		return s.complete(kind, StatusConfigChanged, pid), nil
	}
	verifier, err := openVerifier(req.GetState(), st.SealedVerifier)
	if err != nil {
		return nil, err
	}
	hctx := s.httpContext(ctx)
	tok, err := s.oauthConfig(c, kind).Exchange(hctx, req.GetCode(), oauth2.VerifierOption(verifier))
	if err != nil {
		cls := classifyTokenError(err)
		s.log.InfoContext(ctx, "authorization code exchange failed", "kind", kind, "provider", pid, "oauth_error", cls.code)
		switch {
		case cls.transient:
			return s.complete(kind, StatusGoogleUnavailable, pid), nil
		case cls.code == "invalid_client" || cls.code == "unauthorized_client":
			return s.complete(kind, StatusClientInvalid, pid), nil
		}
		return s.complete(kind, StatusExchangeFailed, pid), nil
	}
	email, err := s.accountEmail(hctx, kind, tok)
	if err != nil {
		s.log.InfoContext(ctx, "reading the Google account failed", "err", err)
		return s.complete(kind, StatusGoogleUnavailable, pid), nil
	}
	if kind == kindGmail {
		mailbox, code := s.gmailMailbox(ctx, pid, st.LoginHint)
		if code != "" {
			return s.complete(kind, code, pid), nil
		}
		if !strings.EqualFold(strings.TrimSpace(mailbox), strings.TrimSpace(email)) {
			s.log.InfoContext(ctx, "gmail consent by another google account than the mailbox", "provider", pid)
			return s.complete(kind, StatusWrongAccount, pid), nil
		}
	}
	conn, err := s.storeGrant(ctx, st, c, email, tok)
	if errors.Is(err, errNoRefreshToken) {
		return s.complete(kind, StatusNoRefreshToken, pid), nil
	}
	if err != nil {
		return nil, err
	}
	return s.complete(kind, s.activate(ctx, kind, pid, conn.AccountEmail), pid), nil
}

// gmailMailbox returns the provider's mailbox for the wrong-account check, or a status code.
func (s *Flow) gmailMailbox(ctx context.Context, providerID, loginHint string) (string, string) {
	if s.gmail == nil {
		return loginHint, ""
	}
	resp, err := s.gmail.GetGmailProvider(ctx, &gmailv1.GetGmailProviderRequest{Id: providerID})
	switch status.Code(err) {
	case codes.OK:
		return resp.GetProvider().GetMailbox(), ""
	case codes.NotFound:
		return "", StatusProviderNotFound
	case codes.Unimplemented:
		// The gmail service passed the mailbox as the login hint when it began the flow (a trusted caller).
		if loginHint != "" {
			return loginHint, ""
		}
	}
	s.log.WarnContext(ctx, "reading the gmail provider failed", "code", status.Code(err).String(), "err", err)
	return "", StatusProviderUnavailable
}

// activate hands the connected provider to its service and returns the callback status.
func (s *Flow) activate(ctx context.Context, kind, providerID, email string) string {
	var err error
	var providerErr string
	switch kind {
	case kindGmail:
		if s.gmail == nil {
			return StatusConnected
		}
		var r *gmailv1.ActivateGmailProviderResponse
		r, err = s.gmail.ActivateGmailProvider(ctx, &gmailv1.ActivateGmailProviderRequest{Id: providerID, AccountEmail: email})
		if err == nil && r.GetProvider().GetStatus() == gmailv1.ProviderStatus_PROVIDER_STATUS_ERROR {
			providerErr = r.GetProvider().GetError().GetCode()
		}
	case kindCalendar:
		if s.calendar == nil {
			return StatusConnected
		}
		var r *calendarv1.ActivateCalendarProviderResponse
		r, err = s.calendar.ActivateCalendarProvider(ctx, &calendarv1.ActivateCalendarProviderRequest{Id: providerID, AccountEmail: email})
		if err == nil && r.GetProvider().GetStatus() == calendarv1.ProviderStatus_PROVIDER_STATUS_ERROR {
			providerErr = r.GetProvider().GetError().GetCode()
		}
	}
	switch {
	case err != nil && status.Code(err) == codes.NotFound:
		return StatusProviderNotFound
	case err != nil:
		s.log.WarnContext(ctx, "provider activation failed", "kind", kind, "provider", providerID, "code", status.Code(err).String(), "reason", errs.ReasonOf(err))
		return StatusActivationFailed
	case providerErr != "":
		s.log.InfoContext(ctx, "provider activation ended in an error state", "kind", kind, "provider", providerID, "error_code", providerErr)
		return StatusActivationFailed
	}
	return StatusConnected
}

var errNoRefreshToken = errors.New("google returned no refresh token")

// storeGrant stores the tokens (through the secrets service) and records the connection and its event.
// A response without a refresh token keeps the stored one.
//
// Callbacks for the same provider are serialized across replicas (store.LockGrant, then the connection's
// row lock, which a refresh's transactions take too) and decide under that lock: two first callbacks at
// once (Connect clicked twice) would otherwise each see no connection, store their token under a new id
// each and upsert one row, leaving the row pointing at one grant's token with the other's metadata and a
// live refresh token orphaned in the secret store. Under the lock the later callback finds the earlier
// one's row, reuses its id and overwrites its token: the later grant wins, whole. The token is written
// inside the transaction (a call to our secrets service, never to Google: the code exchange happened
// before), so a failed write leaves no row and a failed commit leaves the previous grant's token
// replaced by a newer grant of the same client and account, still valid.
func (s *Flow) storeGrant(ctx context.Context, st store.State, c client, email string, tok *oauth2.Token) (store.Connection, error) {
	release, err := s.dbSlot(ctx)
	if err != nil {
		return store.Connection{}, err
	}
	defer release()
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return store.Connection{}, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck
	if err := store.SetLockTimeout(ctx, tx, refreshLockTimeout); err != nil {
		return store.Connection{}, err
	}
	if err := store.LockGrant(ctx, tx, st.Tenant, st.Kind, st.ProviderID); err != nil {
		return store.Connection{}, err
	}
	existing, err := store.GetConnectionForUpdate(ctx, tx, st.Tenant, st.Kind, st.ProviderID)
	connID := existing.ID
	switch {
	case errors.Is(err, store.ErrNotFound):
		connID = uuid.NewString()
	case err != nil:
		return store.Connection{}, err
	}
	stored := tokenFrom(tok, c.ID)
	if stored.RefreshToken == "" && existing.ID != "" {
		if prev, err := s.readToken(ctx, existing.ID); err == nil && prev.ClientID == c.ID {
			stored.RefreshToken = prev.RefreshToken
		}
	}
	if stored.RefreshToken == "" {
		return store.Connection{}, errNoRefreshToken
	}
	if err := s.writeToken(ctx, connID, stored); err != nil {
		return store.Connection{}, err
	}
	conn, err := saveConnection(ctx, tx, connectionOf(connID, st.Tenant, st.Kind, st.ProviderID, st.UserID, email, c.ID, stored), s.now())
	if err != nil {
		return store.Connection{}, err
	}
	if err := tx.Commit(ctx); err != nil {
		return store.Connection{}, err
	}
	s.log.InfoContext(ctx, "google account connected", "kind", st.Kind, "provider", st.ProviderID, "connection", conn.ID)
	return conn, nil
}

// connectionOf is the connection row of a grant whose token is stored: the granted scopes (those asked
// for when Google did not say), the account in lower case and the access token's expiry.
func connectionOf(connID, tenant, kind, providerID, userID, email, clientID string, stored storedToken) store.Connection {
	scopes := strings.Fields(stored.Scope)
	if len(scopes) == 0 {
		scopes = scopesFor(kind)
	}
	expiry := stored.Expiry
	return store.Connection{
		ID: connID, Tenant: tenant, Kind: kind, ProviderID: providerID, UserID: userID,
		AccountEmail: strings.ToLower(email), ClientID: clientID, Scopes: scopes, AccessTokenExpiresAt: &expiry,
	}
}

// saveConnection records a connected grant (a reconnect keeps the row's id) and its "connected" timeline
// event, in the caller's transaction.
func saveConnection(ctx context.Context, tx pgx.Tx, c store.Connection, now time.Time) (store.Connection, error) {
	conn, err := store.UpsertConnection(ctx, tx, c, now)
	if err != nil {
		return store.Connection{}, err
	}
	if err := store.InsertEvent(ctx, tx, c.Tenant, conn.ID, store.Event{Type: "connected", Message: "Connected as " + conn.AccountEmail + ".", CreatedAt: now}); err != nil {
		return store.Connection{}, err
	}
	return conn, nil
}

func truncateLog(s string) string {
	if len(s) > 64 {
		return s[:64]
	}
	return s
}
