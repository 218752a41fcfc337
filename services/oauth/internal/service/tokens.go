package service

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"
	"google.golang.org/protobuf/types/known/timestamppb"

	oauthv1 "github.com/algapsa/alga-google/gen/alga/oauth/v1"
	secretsv1 "github.com/algapsa/alga-google/gen/alga/secrets/v1"
	"github.com/algapsa/alga-google/services/oauth/internal/store"
	"github.com/algapsa/alga-google/services/platform/errs"
)

// ReasonReauthorizationRequired is the ErrorInfo reason of a connection that needs a new consent.
const ReasonReauthorizationRequired = "REAUTHORIZATION_REQUIRED"

// refreshLockTimeout bounds the wait for another replica's refresh of the same connection.
const refreshLockTimeout = 30 * time.Second

// testingExpiryHeuristic: a consent screen in Testing issues refresh tokens that die 7 days after consent.
const testingExpiryHeuristic = 156 * time.Hour // 6.5 days

// failure is a classified refresh failure: the status it puts the connection in, and what to tell the admin.
type failure struct {
	status    string
	reason    string // short machine reason recorded in the timeline
	message   string
	remedy    string
	transient bool
}

func permanentStatus(st string) bool {
	switch st {
	case store.StatusRevoked, store.StatusExpiredTesting, store.StatusReauthRequired, store.StatusClientInvalid:
		return true
	}
	return false
}

// classifyRefresh turns a token-endpoint failure into a connection status with message and remedy.
func classifyRefresh(te tokenError, conn store.Connection, now time.Time) failure {
	kind := kindLabel(conn.Kind)
	reconnect := fmt.Sprintf("Reconnect the %s provider (Connect) and approve the consent screen again.", kind)
	switch {
	case te.transient:
		return failure{status: store.StatusTransientError, reason: "google_unavailable", transient: true,
			message: fmt.Sprintf("Google's token endpoint did not answer (HTTP %d); the refresh is retried automatically.", te.httpStatus),
			remedy:  "No action needed unless this persists; check Google's status dashboard."}
	case te.code == "invalid_rapt" || te.subtype == "invalid_rapt":
		return failure{status: store.StatusReauthRequired, reason: "invalid_rapt",
			message: "Google requires the account to sign in again (reauthentication policy of the Google Workspace domain).",
			remedy:  reconnect}
	case te.code == "invalid_client" || te.code == "unauthorized_client":
		return failure{status: store.StatusClientInvalid, reason: te.code,
			message: "Google no longer accepts the OAuth client this account was connected with (the client was deleted, its secret replaced, or it was changed in the Google setup).",
			remedy:  "Update the OAuth client ID and secret in Settings → Integrations → Communication → Google, run Test configuration, then " + strings.ToLower(reconnect[:1]) + reconnect[1:]}
	case te.code == "invalid_grant":
		// Same answer for a revoked grant and for a Testing-mode consent screen's 7-day expiry. A grant that
		// refreshed successfully more than 7 days after consent cannot be a Testing-mode grant.
		age := now.Sub(conn.ConsentedAt)
		provenProduction := conn.LastRefreshAt != nil && conn.LastRefreshAt.Sub(conn.ConsentedAt) >= 7*24*time.Hour
		if age >= testingExpiryHeuristic && !provenProduction {
			return failure{status: store.StatusExpiredTesting, reason: "invalid_grant_testing_expiry",
				message: fmt.Sprintf("The grant expired %.1f days after consent: the OAuth consent screen is most likely in Testing, where Google limits refresh tokens to 7 days.", age.Hours()/24),
				remedy:  "In Google Cloud Console → APIs & Services → OAuth consent screen, publish the app to Production; then " + strings.ToLower(reconnect[:1]) + reconnect[1:]}
		}
		return failure{status: store.StatusRevoked, reason: "invalid_grant",
			message: "The Google account's grant was revoked or has expired (" + orDefault(te.description, "Token has been expired or revoked.") + ")",
			remedy:  reconnect}
	}
	return failure{status: store.StatusReauthRequired, reason: orDefault(te.code, "token_error"),
		message: "Google refused to refresh the token (" + orDefault(te.code, fmt.Sprintf("HTTP %d", te.httpStatus)) + ").",
		remedy:  reconnect}
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func statusEnum(st string) oauthv1.ConnectionStatus {
	switch st {
	case store.StatusConnected:
		return oauthv1.ConnectionStatus_CONNECTION_STATUS_CONNECTED
	case store.StatusRevoked:
		return oauthv1.ConnectionStatus_CONNECTION_STATUS_REVOKED
	case store.StatusExpiredTesting:
		return oauthv1.ConnectionStatus_CONNECTION_STATUS_EXPIRED_TESTING
	case store.StatusReauthRequired:
		return oauthv1.ConnectionStatus_CONNECTION_STATUS_REAUTH_REQUIRED
	case store.StatusClientInvalid:
		return oauthv1.ConnectionStatus_CONNECTION_STATUS_CLIENT_INVALID
	case store.StatusTransientError:
		return oauthv1.ConnectionStatus_CONNECTION_STATUS_TRANSIENT_ERROR
	case store.StatusDisconnected:
		return oauthv1.ConnectionStatus_CONNECTION_STATUS_DISCONNECTED
	}
	return oauthv1.ConnectionStatus_CONNECTION_STATUS_UNSPECIFIED
}

func reauthError(conn store.Connection) error {
	return errs.FailedPrecondition(ReasonReauthorizationRequired, "%s %s", conn.StatusMessage, conn.Remedy).
		With("status", statusEnum(conn.Status).String()).With("provider_id", conn.ProviderID)
}

func fresh(t storedToken, now time.Time, minValidity time.Duration) bool {
	return t.AccessToken != "" && t.Expiry.After(now.Add(minValidity))
}

func tokenResponse(t storedToken, conn store.Connection) *oauthv1.GetAccessTokenResponse {
	return &oauthv1.GetAccessTokenResponse{AccessToken: t.AccessToken, ExpireTime: timestamppb.New(t.Expiry), ClientId: conn.ClientID, AccountEmail: conn.AccountEmail}
}

// GetAccessToken implements TokenService: a fresh access token, refreshed at most once at a time per
// connection across every replica (row lock, then re-check).
func (s *Tokens) GetAccessToken(ctx context.Context, req *oauthv1.GetAccessTokenRequest) (*oauthv1.GetAccessTokenResponse, error) {
	id, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	kind := kindName(req.GetKind())
	minValidity := DefaultMinValidity
	if req.GetMinValiditySeconds() > 0 {
		minValidity = time.Duration(req.GetMinValiditySeconds()) * time.Second
	}
	started := s.now()
	conn, err := store.GetConnection(ctx, s.pool, id.Tenant, kind, req.GetProviderId())
	if errors.Is(err, store.ErrNotFound) {
		return nil, errs.NotFound(kindLabel(kind)+" connection of provider "+req.GetProviderId()).With("reason_detail", "not_connected")
	}
	if err != nil {
		return nil, err
	}
	if !req.GetForceRefresh() && !permanentStatus(conn.Status) && conn.AccessTokenExpiresAt != nil && conn.AccessTokenExpiresAt.After(started.Add(minValidity)) {
		if t, err := s.readToken(ctx, conn.ID); err == nil && fresh(t, s.now(), minValidity) {
			return tokenResponse(t, conn), nil
		}
	}
	return s.refresh(ctx, id.Tenant, kind, req.GetProviderId(), minValidity, req.GetForceRefresh(), started)
}

func (s *Tokens) refresh(ctx context.Context, tenant, kind, providerID string, minValidity time.Duration, force bool, started time.Time) (*oauthv1.GetAccessTokenResponse, error) {
	unlock, err := s.lockStripe(ctx, tenant+"/"+kind+"/"+providerID)
	if err != nil {
		return nil, err
	}
	defer unlock()
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck
	if err := store.SetLockTimeout(ctx, tx, refreshLockTimeout); err != nil {
		return nil, err
	}
	conn, err := store.GetConnectionForUpdate(ctx, tx, tenant, kind, providerID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errs.NotFound(kindLabel(kind) + " connection of provider " + providerID)
	}
	if err != nil {
		return nil, err
	}
	tok, err := s.readToken(ctx, conn.ID)
	if err != nil && !errors.Is(err, errNoToken) {
		return nil, err
	}
	now := s.now()
	// Re-check under the lock: whoever held it before us may have refreshed already.
	refreshedMeanwhile := conn.LastRefreshAt != nil && !conn.LastRefreshAt.Before(started)
	if fresh(tok, now, minValidity) && conn.Status == store.StatusConnected && (!force || refreshedMeanwhile) {
		return tokenResponse(tok, conn), tx.Commit(ctx)
	}
	if permanentStatus(conn.Status) && !force {
		return nil, reauthError(conn)
	}
	fail := func(f failure) error {
		updated, err := store.MarkFailed(ctx, tx, tenant, conn.ID, f.status, f.message, f.remedy, now)
		if err != nil {
			return err
		}
		if err := store.InsertEvent(ctx, tx, tenant, conn.ID, store.Event{Type: "refresh_failed", Message: f.reason + ": " + f.message, CreatedAt: now}); err != nil {
			return err
		}
		if !f.transient && !permanentStatus(conn.Status) {
			if err := store.InsertEvent(ctx, tx, tenant, conn.ID, store.Event{Type: "reauthorization_required", Message: f.remedy, CreatedAt: now}); err != nil {
				return err
			}
		}
		if err := tx.Commit(ctx); err != nil {
			return err
		}
		s.log.WarnContext(ctx, "token refresh failed", "kind", kind, "provider", providerID, "status", f.status, "reason", f.reason)
		if f.transient {
			return errs.Unavailable("GOOGLE_UNAVAILABLE", "Google's token endpoint is unavailable; retry later").With("status", statusEnum(f.status).String())
		}
		return reauthError(updated)
	}
	c, err := s.loadClient(ctx, kind)
	if err != nil {
		return nil, err
	}
	if c.ID != conn.ClientID {
		return nil, fail(failure{status: store.StatusClientInvalid, reason: "client_changed",
			message: fmt.Sprintf("The %s OAuth client in the Google setup changed since this account connected; its grant belongs to the previous client.", kindLabel(kind)),
			remedy:  fmt.Sprintf("Reconnect the %s provider (Connect) so the account consents to the current OAuth client.", kindLabel(kind))})
	}
	if tok.RefreshToken == "" {
		return nil, fail(failure{status: store.StatusReauthRequired, reason: "no_refresh_token",
			message: "No refresh token is stored for this connection.",
			remedy:  fmt.Sprintf("Reconnect the %s provider (Connect).", kindLabel(kind))})
	}
	newTok, err := s.refreshWithRetry(ctx, c, kind, tok.RefreshToken)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fail(classifyRefresh(classifyTokenError(err), conn, now))
	}
	merged := tokenFrom(newTok, c.ID)
	if merged.RefreshToken == "" { // never erase a stored refresh token
		merged.RefreshToken = tok.RefreshToken
	}
	if merged.Scope == "" {
		merged.Scope = tok.Scope
	}
	if err := s.writeToken(ctx, conn.ID, merged); err != nil {
		return nil, err
	}
	now = s.now()
	updated, err := store.MarkRefreshed(ctx, tx, tenant, conn.ID, merged.Expiry, now)
	if err != nil {
		return nil, err
	}
	ev := store.Event{Type: "refreshed", Message: "Access token refreshed.", CreatedAt: now}
	if conn.Status != store.StatusConnected {
		ev = store.Event{Type: "recovered", Message: "Token refresh works again (was " + conn.Status + ").", CreatedAt: now}
	}
	if err := store.InsertEvent(ctx, tx, tenant, conn.ID, ev); err != nil {
		return nil, err
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, err
	}
	return tokenResponse(merged, updated), nil
}

// refreshWithRetry calls Google's token endpoint, retrying transient failures a bounded number of times.
func (s *Tokens) refreshWithRetry(ctx context.Context, c client, kind, refreshToken string) (*oauth2.Token, error) {
	cfg := s.oauthConfig(c, kind)
	hctx := s.httpContext(ctx)
	var lastErr error
	pause := s.backoff
	for attempt := 1; attempt <= refreshAttempts; attempt++ {
		tok, err := cfg.TokenSource(hctx, &oauth2.Token{RefreshToken: refreshToken, Expiry: time.Unix(1, 0)}).Token()
		if err == nil {
			return tok, nil
		}
		lastErr = err
		if !classifyTokenError(err).transient || attempt == refreshAttempts {
			break
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(pause):
		}
		pause *= 2
	}
	return nil, lastErr
}

func (s *Tokens) connectionProto(ctx context.Context, conn store.Connection, withEvents bool) (*oauthv1.Connection, error) {
	p := &oauthv1.Connection{
		ConnectionId: conn.ID, Kind: kindEnum(conn.Kind), ProviderId: conn.ProviderID, UserId: conn.UserID,
		AccountEmail: conn.AccountEmail, ClientIdMasked: maskClientID(conn.ClientID), Status: statusEnum(conn.Status),
		StatusMessage: conn.StatusMessage, Remedy: conn.Remedy, Scopes: conn.Scopes, ConnectTime: timestamppb.New(conn.ConnectedAt),
	}
	if conn.AccessTokenExpiresAt != nil {
		p.AccessTokenExpireTime = timestamppb.New(*conn.AccessTokenExpiresAt)
	}
	if conn.LastRefreshAt != nil {
		p.LastRefreshTime = timestamppb.New(*conn.LastRefreshAt)
	}
	if withEvents {
		evs, err := store.ListEvents(ctx, s.pool, conn.Tenant, conn.ID, 100)
		if err != nil {
			return nil, err
		}
		for _, e := range evs {
			p.Events = append(p.Events, &oauthv1.ConnectionEvent{Type: e.Type, Message: e.Message, CreateTime: timestamppb.New(e.CreatedAt)})
		}
	}
	return p, nil
}

// GetConnection implements TokenService: status and health timeline (browser-safe content).
func (s *Tokens) GetConnection(ctx context.Context, req *oauthv1.GetConnectionRequest) (*oauthv1.GetConnectionResponse, error) {
	id, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	conn, err := store.GetConnection(ctx, s.pool, id.Tenant, kindName(req.GetKind()), req.GetProviderId())
	if errors.Is(err, store.ErrNotFound) {
		return nil, errs.NotFound(kindLabel(kindName(req.GetKind())) + " connection of provider " + req.GetProviderId())
	}
	if err != nil {
		return nil, err
	}
	p, err := s.connectionProto(ctx, conn, true)
	if err != nil {
		return nil, err
	}
	return &oauthv1.GetConnectionResponse{Connection: p}, nil
}

// ListConnections implements TokenService.
func (s *Tokens) ListConnections(ctx context.Context, req *oauthv1.ListConnectionsRequest) (*oauthv1.ListConnectionsResponse, error) {
	id, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	kind := ""
	if req.GetKind() != oauthv1.ProviderKind_PROVIDER_KIND_UNSPECIFIED {
		kind = kindName(req.GetKind())
	}
	conns, err := store.ListConnections(ctx, s.pool, id.Tenant, kind)
	if err != nil {
		return nil, err
	}
	resp := &oauthv1.ListConnectionsResponse{}
	for _, c := range conns {
		p, err := s.connectionProto(ctx, c, false)
		if err != nil {
			return nil, err
		}
		resp.Connections = append(resp.Connections, p)
	}
	return resp, nil
}

// DeleteConnection implements TokenService: optionally revokes at Google (best effort), then deletes the
// token secret and the row. Deleting an absent connection is not an error.
func (s *Tokens) DeleteConnection(ctx context.Context, req *oauthv1.DeleteConnectionRequest) (*oauthv1.DeleteConnectionResponse, error) {
	id, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	kind := kindName(req.GetKind())
	unlock, err := s.lockStripe(ctx, id.Tenant+"/"+kind+"/"+req.GetProviderId())
	if err != nil {
		return nil, err
	}
	defer unlock()
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck
	conn, err := store.GetConnectionForUpdate(ctx, tx, id.Tenant, kind, req.GetProviderId())
	if errors.Is(err, store.ErrNotFound) {
		return &oauthv1.DeleteConnectionResponse{Deleted: false}, nil
	}
	if err != nil {
		return nil, err
	}
	if req.GetRevoke() {
		if tok, err := s.readToken(ctx, conn.ID); err == nil {
			s.revoke(ctx, tok)
		}
	}
	if _, err := s.secrets.PutSecrets(ctx, &secretsv1.PutSecretsRequest{DeleteNames: []string{TokenSecretName(conn.ID)}}); err != nil {
		return nil, err
	}
	if err := store.DeleteConnection(ctx, tx, id.Tenant, conn.ID); err != nil {
		return nil, err
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "connection deleted", "kind", kind, "provider", req.GetProviderId(), "revoked", req.GetRevoke())
	return &oauthv1.DeleteConnectionResponse{Deleted: true}, nil
}

// revoke asks Google to revoke a grant (the refresh token revokes the whole grant). Best effort.
func (s *Tokens) revoke(ctx context.Context, tok storedToken) {
	t := tok.RefreshToken
	if t == "" {
		t = tok.AccessToken
	}
	if t == "" {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, s.google.RevokeURL(), strings.NewReader(url.Values{"token": {t}}.Encode()))
	if err != nil {
		return
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := s.http.Do(req)
	if err != nil {
		s.log.InfoContext(ctx, "revoking at Google failed", "err", err)
		return
	}
	_ = resp.Body.Close()
	if resp.StatusCode >= 300 {
		s.log.InfoContext(ctx, "revoking at Google failed", "http_status", resp.StatusCode)
	}
}
