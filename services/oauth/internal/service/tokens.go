package service

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"golang.org/x/oauth2"
	"google.golang.org/protobuf/types/known/timestamppb"

	oauthv1 "github.com/algapsa/alga-google/gen/alga/oauth/v1"
	secretsv1 "github.com/algapsa/alga-google/gen/alga/secrets/v1"
	"github.com/algapsa/alga-google/services/oauth/internal/store"
	"github.com/algapsa/alga-google/services/platform/errs"
	"github.com/algapsa/alga-google/services/platform/googleretry"
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
	// notConfigured is set when the tenant's OAuth client is gone from the setup: the error
	// GetAccessToken answers (GOOGLE_NOT_CONFIGURED).
	notConfigured *errs.Error
}

// reasonNotConfigured is the ErrorInfo reason of errs.GoogleNotConfigured.
const reasonNotConfigured = "GOOGLE_NOT_CONFIGURED"

// recordedFailure is the failure a connection's row records (a permanent one, answered without asking
// Google again).
func recordedFailure(conn store.Connection) failure {
	return failure{status: conn.Status, reason: conn.Status, message: conn.StatusMessage, remedy: conn.Remedy}
}

// answer is the error GetAccessToken returns for a failure (see GetAccessToken for the reasons).
func (f failure) answer(conn store.Connection) error {
	switch {
	case f.notConfigured != nil:
		return f.notConfigured
	case f.transient:
		return errs.Unavailable("GOOGLE_UNAVAILABLE", "Google's token endpoint is unavailable; retry later").
			With("status", statusEnum(f.status).String()).With("failure_class", failureClass(f).String())
	}
	return reauthError(conn).With("failure_class", failureClass(f).String())
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

func reauthError(conn store.Connection) *errs.Error {
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
// connection across every replica (row lock and refresh lease, then re-check). With force_refresh it
// asks Google even when the cached token is still valid (a caller that got a 401 with it: the grant may
// have been revoked before the token expired) and even when the connection failed permanently before;
// a caller that waited while another refreshed gets that refresh's token. Failures, recorded on the
// connection before answering, carry an ErrorInfo reason callers branch on (errs.ReasonOf):
//
//   - REAUTHORIZATION_REQUIRED (FailedPrecondition): the grant is unusable until the user reconnects;
//     metadata "status" is the ConnectionStatus, "failure_class" the maintenance FailureClass.
//   - GOOGLE_UNAVAILABLE (Unavailable): Google's token endpoint failed transiently (retried 3 times);
//     status CONNECTION_STATUS_TRANSIENT_ERROR, failure_class FAILURE_CLASS_TRANSIENT.
//   - GOOGLE_NOT_CONFIGURED (FailedPrecondition): the tenant's OAuth client is gone from the setup.
//   - NOT_FOUND: the provider has no connection.
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
	force := req.GetForceRefresh()
	started := s.now()
	conn, err := store.GetConnection(ctx, s.pool, id.Tenant, kind, req.GetProviderId())
	if errors.Is(err, store.ErrNotFound) {
		return nil, errs.NotFound(kindLabel(kind)+" connection of provider "+req.GetProviderId()).With("reason_detail", "not_connected")
	}
	if err != nil {
		return nil, err
	}
	if !force && !permanentStatus(conn.Status) && conn.AccessTokenExpiresAt != nil && conn.AccessTokenExpiresAt.After(started.Add(minValidity)) {
		if t, err := s.readToken(ctx, conn.ID); err == nil && fresh(t, s.now(), minValidity) {
			return tokenResponse(t, conn), nil
		}
	}
	res, err := s.refresh(ctx, refreshRequest{
		tenant: id.Tenant, kind: kind, providerID: req.GetProviderId(), force: force, attempts: refreshAttempts,
		// Whoever held the lock before us may have refreshed already: a fresh token will do, and for a
		// forced refresh only one obtained since this call began.
		done: func(conn store.Connection, tok storedToken, now time.Time) bool {
			refreshedMeanwhile := conn.LastRefreshAt != nil && !conn.LastRefreshAt.Before(started)
			return fresh(tok, now, minValidity) && conn.Status == store.StatusConnected && (!force || refreshedMeanwhile)
		},
	})
	if errors.Is(err, errConnectionGone) {
		return nil, errs.NotFound(kindLabel(kind) + " connection of provider " + req.GetProviderId())
	}
	if err != nil {
		return nil, err
	}
	if res.fail != nil {
		return nil, res.fail.answer(res.conn)
	}
	return tokenResponse(res.token, res.conn), nil
}

// errConnectionGone: the connection a refresh was asked for does not exist (any more).
var errConnectionGone = errors.New("connection not found")

// errReconnected: the connection was connected anew (a callback) while its refresh asked Google.
var errReconnected = errors.New("connection reconnected during the refresh")

// refreshRequest is what one caller needs of a connection's refresh: GetAccessToken (a usable token)
// and RefreshConnection (maintenance: a refresh at Google unless one happened since its decision).
type refreshRequest struct {
	tenant, kind, providerID string
	// connectionID, when set, is the connection the caller decided on: another row under the same
	// provider counts as gone.
	connectionID string
	// force asks Google even when the connection failed permanently before.
	force bool
	// done reports, under the row lock, that what the caller needs is already there: nothing is asked
	// of Google and nothing is recorded.
	done func(conn store.Connection, tok storedToken, now time.Time) bool
	// attempts bounds the token-endpoint requests when Google fails transiently.
	attempts int
	// runID names the maintenance run in the timeline ("" outside maintenance).
	runID string
}

// refreshResult is what a refresh found or did.
type refreshResult struct {
	conn  store.Connection // the connection as the call left it
	token storedToken      // the usable token (unset on failure)
	calls int              // requests made to Google's token endpoint
	// fail is the classified failure, recorded on the connection before the call returned (nil on
	// success). For a connection that had failed permanently and was not forced, it is that recorded
	// failure: nothing was asked or recorded anew.
	fail *failure
}

// refresh is the one refresh of a connection's access token: in-process key lock, then under the row
// lock (FOR UPDATE, bounded wait) the re-check (done); a permanently failed connection fails fast unless
// forced; the tenant's current OAuth client; a refresh lease, so one refresh runs at a time per
// connection across replicas; Google's token endpoint, asked outside any transaction; and every outcome
// recorded on the connection (status, message, remedy, timeline event) under the row lock again, in the
// transaction that releases the lease. A success clears an earlier failure.
//
// No database connection and no process-wide slot is held while Google answers: a tenant whose Google
// answers slowly (or who has many connections to refresh) delays no other tenant's refresh.
func (s *core) refresh(ctx context.Context, r refreshRequest) (refreshResult, error) {
	unlock, err := s.lockKey(ctx, r.tenant+"/"+r.kind+"/"+r.providerID)
	if err != nil {
		return refreshResult{}, err
	}
	defer unlock()
	waitUntil := time.Now().Add(refreshLockTimeout)
	for {
		res, call, err := s.beginRefresh(ctx, r)
		if err != nil || call == nil {
			return res, err
		}
		if call.busy { // another replica is asking Google: its outcome is what the re-check will find
			if time.Now().After(waitUntil) {
				return refreshResult{}, errs.Unavailable("GOOGLE_UNAVAILABLE", "another refresh of this connection is still waiting for Google's token endpoint; retry later").
					With("status", oauthv1.ConnectionStatus_CONNECTION_STATUS_TRANSIENT_ERROR.String()).
					With("failure_class", failureClass(failure{transient: true}).String())
			}
			select {
			case <-ctx.Done():
				return refreshResult{}, ctx.Err()
			case <-time.After(leasePoll):
			}
			continue
		}
		gctx, cancel := context.WithTimeout(ctx, refreshLease-5*time.Second)
		newTok, calls, callErr := s.refreshWithRetry(gctx, call.client, r.tenant, r.kind, call.token.RefreshToken, r.attempts)
		cancel()
		if callErr != nil && ctx.Err() != nil {
			s.releaseLease(ctx, call)
			return refreshResult{}, ctx.Err()
		}
		res, err = s.finishRefresh(ctx, r, call, newTok, calls, callErr)
		if errors.Is(err, errReconnected) {
			continue // the new grant's token is what the re-check finds
		}
		if err != nil {
			s.releaseLease(ctx, call)
		}
		return res, err
	}
}

// refreshLease bounds a refresh in flight: the token-endpoint requests it covers are cut short 5 s
// before, and a lease left by a replica that died mid-refresh lets the others in after it.
const refreshLease = 45 * time.Second

// leasePoll is how often a caller waiting on another replica's refresh of the same connection looks again.
const leasePoll = 50 * time.Millisecond

// refreshCall is a refresh about to ask Google: what was read under the row lock, the tenant's client
// and the lease taken. busy: another replica holds a live lease (nothing was taken).
type refreshCall struct {
	conn   store.Connection
	token  storedToken
	client client
	holder string
	busy   bool
}

// beginRefresh is a refresh's first transaction. It answers a result (call nil) when nothing is to be
// asked of Google: done, a recorded permanent failure, or a failure found before asking (recorded);
// else a call holding the refresh lease, or a busy call.
func (s *core) beginRefresh(ctx context.Context, r refreshRequest) (refreshResult, *refreshCall, error) {
	release, err := s.dbSlot(ctx)
	if err != nil {
		return refreshResult{}, nil, err
	}
	defer release()
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return refreshResult{}, nil, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck
	if err := store.SetLockTimeout(ctx, tx, refreshLockTimeout); err != nil {
		return refreshResult{}, nil, err
	}
	conn, err := store.GetConnectionForUpdate(ctx, tx, r.tenant, r.kind, r.providerID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && r.connectionID != "" && conn.ID != r.connectionID) {
		return refreshResult{}, nil, errConnectionGone
	}
	if err != nil {
		return refreshResult{}, nil, err
	}
	tok, err := s.readToken(ctx, conn.ID)
	if err != nil && !errors.Is(err, errNoToken) {
		return refreshResult{}, nil, err
	}
	now := s.now()
	if r.done != nil && r.done(conn, tok, now) {
		return refreshResult{conn: conn, token: tok}, nil, tx.Commit(ctx)
	}
	if permanentStatus(conn.Status) && !r.force {
		f := recordedFailure(conn)
		return refreshResult{conn: conn, fail: &f}, nil, tx.Commit(ctx)
	}
	lease, held, err := store.GetRefreshLease(ctx, tx, conn.ID)
	if err != nil {
		return refreshResult{}, nil, err
	}
	if held && lease.ExpiresAt.After(now) {
		return refreshResult{}, &refreshCall{busy: true}, tx.Commit(ctx)
	}
	c, err := s.loadClient(ctx, r.kind)
	var notConfigured *errs.Error
	if errors.As(err, &notConfigured) && notConfigured.Reason == reasonNotConfigured {
		// Recorded as a transient error: nothing is known to be wrong with the grant, and once the setup
		// has the client again the next refresh works (and clears this). A grant already known to be
		// unusable (a forced refresh) keeps its status: the missing client is no news about it.
		f := failure{status: store.StatusTransientError, reason: "google_not_configured", notConfigured: notConfigured,
			message: notConfigured.Message,
			remedy:  fmt.Sprintf("Complete the %s OAuth client in Settings → Integrations → Communication → Google; the connection works again at its next refresh.", kindLabel(r.kind))}
		if permanentStatus(conn.Status) {
			f.status, f.message, f.remedy = conn.Status, conn.StatusMessage, conn.Remedy
		}
		res, err := s.recordFailure(ctx, tx, r, conn, f, 0, now)
		return res, nil, err
	}
	if err != nil {
		return refreshResult{}, nil, err
	}
	if c.ID != conn.ClientID {
		res, err := s.recordFailure(ctx, tx, r, conn, failure{status: store.StatusClientInvalid, reason: "client_changed",
			message: fmt.Sprintf("The %s OAuth client in the Google setup changed since this account connected; its grant belongs to the previous client.", kindLabel(r.kind)),
			remedy:  fmt.Sprintf("Reconnect the %s provider (Connect) so the account consents to the current OAuth client.", kindLabel(r.kind))}, 0, now)
		return res, nil, err
	}
	if tok.RefreshToken == "" {
		res, err := s.recordFailure(ctx, tx, r, conn, failure{status: store.StatusReauthRequired, reason: "no_refresh_token",
			message: "No refresh token is stored for this connection.",
			remedy:  fmt.Sprintf("Reconnect the %s provider (Connect).", kindLabel(r.kind))}, 0, now)
		return res, nil, err
	}
	holder := uuid.NewString()
	if err := store.TakeRefreshLease(ctx, tx, conn.ID, holder, now.Add(refreshLease)); err != nil {
		return refreshResult{}, nil, err
	}
	if err := tx.Commit(ctx); err != nil {
		return refreshResult{}, nil, err
	}
	return refreshResult{}, &refreshCall{conn: conn, token: tok, client: c, holder: holder}, nil
}

// finishRefresh is a refresh's second transaction: under the row lock again, it records what Google
// answered (the new token, or the classified failure) and releases the lease.
func (s *core) finishRefresh(ctx context.Context, r refreshRequest, call *refreshCall, newTok *oauth2.Token, calls int, callErr error) (refreshResult, error) {
	release, err := s.dbSlot(ctx)
	if err != nil {
		return refreshResult{}, err
	}
	defer release()
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return refreshResult{}, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck
	if err := store.SetLockTimeout(ctx, tx, refreshLockTimeout); err != nil {
		return refreshResult{}, err
	}
	conn, err := store.GetConnectionForUpdate(ctx, tx, r.tenant, r.kind, r.providerID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && conn.ID != call.conn.ID) {
		return refreshResult{}, errConnectionGone // deleted meanwhile (its lease with it): the answer is dropped
	}
	if err != nil {
		return refreshResult{}, err
	}
	if err := store.ReleaseRefreshLease(ctx, tx, conn.ID, call.holder); err != nil {
		return refreshResult{}, err
	}
	if !conn.ConnectedAt.Equal(call.conn.ConnectedAt) {
		// A callback stored a new grant while Google answered this refresh of the old one: recording
		// the answer would put the old grant's token back. Dropped; the lease goes.
		if err := tx.Commit(ctx); err != nil {
			return refreshResult{}, err
		}
		return refreshResult{}, errReconnected
	}
	now := s.now()
	if callErr != nil {
		return s.recordFailure(ctx, tx, r, conn, classifyRefresh(classifyTokenError(callErr), conn, now), calls, now)
	}
	merged := tokenFrom(newTok, call.client.ID)
	if merged.RefreshToken == "" { // never erase a stored refresh token
		merged.RefreshToken = call.token.RefreshToken
	}
	if merged.Scope == "" {
		merged.Scope = call.token.Scope
	}
	if err := s.writeToken(ctx, conn.ID, merged); err != nil {
		return refreshResult{}, err
	}
	updated, err := store.MarkRefreshed(ctx, tx, r.tenant, conn.ID, merged.Expiry, now)
	if err != nil {
		return refreshResult{}, err
	}
	ev := store.Event{Type: "refreshed", Message: inRun("Access token refreshed.", r.runID), CreatedAt: now}
	if conn.Status != store.StatusConnected {
		ev = store.Event{Type: "recovered", Message: inRun("Token refresh works again (was "+conn.Status+").", r.runID), CreatedAt: now}
	}
	if err := store.InsertEvent(ctx, tx, r.tenant, conn.ID, ev); err != nil {
		return refreshResult{}, err
	}
	if err := tx.Commit(ctx); err != nil {
		return refreshResult{}, err
	}
	return refreshResult{conn: updated, token: merged, calls: calls}, nil
}

// recordFailure records a classified failure on the connection in tx (status, message, remedy, timeline
// events) and commits it.
func (s *core) recordFailure(ctx context.Context, tx pgx.Tx, r refreshRequest, conn store.Connection, f failure, calls int, now time.Time) (refreshResult, error) {
	updated, err := store.MarkFailed(ctx, tx, r.tenant, conn.ID, f.status, f.message, f.remedy, now)
	if err != nil {
		return refreshResult{}, err
	}
	what := f.message
	if f.notConfigured != nil {
		what = f.notConfigured.Message
	}
	if err := store.InsertEvent(ctx, tx, r.tenant, conn.ID, store.Event{Type: "refresh_failed", Message: inRun(f.reason+": "+what, r.runID), CreatedAt: now}); err != nil {
		return refreshResult{}, err
	}
	if permanentStatus(f.status) && !permanentStatus(conn.Status) {
		if err := store.InsertEvent(ctx, tx, r.tenant, conn.ID, store.Event{Type: "reauthorization_required", Message: f.remedy, CreatedAt: now}); err != nil {
			return refreshResult{}, err
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return refreshResult{}, err
	}
	s.log.WarnContext(ctx, "token refresh failed", "kind", r.kind, "provider", r.providerID, "status", f.status, "reason", f.reason, "google_calls", calls)
	return refreshResult{conn: updated, fail: &f, calls: calls}, nil
}

// releaseLease ends a refresh's lease after it could not record its outcome (best effort: an unreleased
// lease expires).
func (s *core) releaseLease(ctx context.Context, call *refreshCall) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := store.ReleaseRefreshLease(rctx, s.pool, call.conn.ID, call.holder); err != nil {
		s.log.WarnContext(rctx, "releasing a refresh lease", "connection", call.conn.ID, "err", err)
	}
}

// inRun names the maintenance run an event belongs to.
func inRun(msg, runID string) string {
	if runID == "" {
		return msg
	}
	return msg + " (maintenance run " + runID + ")"
}

// refreshWithRetry calls Google's token endpoint through the service's retrier (transient failures
// retried, attempts requests at most, on the tenant's budget); it reports how many requests it made.
func (s *core) refreshWithRetry(ctx context.Context, c client, tenant, kind, refreshToken string, attempts int) (*oauth2.Token, int, error) {
	cfg := s.oauthConfig(c, kind)
	hctx := s.httpContext(ctx)
	calls := 0
	var tok *oauth2.Token
	err := s.retry.Do(ctx, googleretry.Call{Tenant: tenant, Endpoint: "token.refresh", Attempts: attempts}, func() (err error) {
		calls++
		tok, err = cfg.TokenSource(hctx, &oauth2.Token{RefreshToken: refreshToken, Expiry: time.Unix(1, 0)}).Token()
		return err
	})
	if err != nil {
		return nil, calls, err
	}
	return tok, calls, nil
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
	unlock, err := s.lockKey(ctx, id.Tenant+"/"+kind+"/"+req.GetProviderId())
	if err != nil {
		return nil, err
	}
	defer unlock()
	tok, deleted, err := s.deleteConnection(ctx, id.Tenant, kind, req.GetProviderId(), req.GetRevoke())
	if err != nil || !deleted {
		return &oauthv1.DeleteConnectionResponse{Deleted: false}, err
	}
	// Revoked once the row and the token are gone, with no transaction or database slot held while
	// Google answers (best effort, as before: a grant Google did not revoke is one nobody stores).
	if tok != nil {
		s.revoke(ctx, *tok)
	}
	s.log.InfoContext(ctx, "connection deleted", "kind", kind, "provider", req.GetProviderId(), "revoked", req.GetRevoke())
	return &oauthv1.DeleteConnectionResponse{Deleted: true}, nil
}

// deleteConnection deletes the provider's connection and its token secret under the row lock and
// returns the token to revoke (when asked and readable); deleted is false when there was none.
func (s *Tokens) deleteConnection(ctx context.Context, tenant, kind, providerID string, revoke bool) (*storedToken, bool, error) {
	release, err := s.dbSlot(ctx)
	if err != nil {
		return nil, false, err
	}
	defer release()
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, false, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck
	conn, err := store.GetConnectionForUpdate(ctx, tx, tenant, kind, providerID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	var tok *storedToken
	if revoke {
		if t, err := s.readToken(ctx, conn.ID); err == nil {
			tok = &t
		}
	}
	if _, err := s.secrets.PutSecrets(ctx, &secretsv1.PutSecretsRequest{DeleteNames: []string{TokenSecretName(conn.ID)}}); err != nil {
		return nil, false, err
	}
	if err := store.DeleteConnection(ctx, tx, tenant, conn.ID); err != nil {
		return nil, false, err
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, false, err
	}
	return tok, true, nil
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
