package service

import (
	"context"
	"errors"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	m "github.com/algapsa/alga-google/gen/alga/maintenance/v1"
	"github.com/algapsa/alga-google/services/oauth/internal/store"
	"github.com/algapsa/alga-google/services/platform/auth"
	"github.com/algapsa/alga-google/services/platform/errs"
)

// upkeepAttempts is how many token-endpoint requests one RefreshConnection makes at most. The
// maintenance runner retries a TRANSIENT outcome with backoff itself (and at the next run) and counts
// every Google call against the calls due, so the refresh it asks for is one request, not three.
const upkeepAttempts = 1

// serviceCaller returns the identity of a service call acting for a tenant (the upkeep contracts are
// registered service-only as well; this keeps the handlers honest on their own).
func serviceCaller(ctx context.Context) (auth.Identity, error) {
	id, err := caller(ctx)
	if err != nil {
		return id, err
	}
	if !id.IsService() {
		return id, errs.PermissionDenied("only services may call the upkeep contracts")
	}
	return id, nil
}

// ListTokenUpkeep implements TokenUpkeepService: every connection of the tenant (Gmail and Calendar)
// with what maintenance decides its refresh on. No token is read.
func (s *Upkeep) ListTokenUpkeep(ctx context.Context, _ *m.ListTokenUpkeepRequest) (*m.ListTokenUpkeepResponse, error) {
	id, err := serviceCaller(ctx)
	if err != nil {
		return nil, err
	}
	conns, err := store.ListConnections(ctx, s.pool, id.Tenant, "")
	if err != nil {
		return nil, err
	}
	resp := &m.ListTokenUpkeepResponse{Connections: make([]*m.TokenUpkeep, 0, len(conns))}
	for _, c := range conns {
		resp.Connections = append(resp.Connections, &m.TokenUpkeep{
			ConnectionId: c.ID, Kind: upkeepKind(c.Kind), ProviderId: c.ProviderID, State: connectionState(c.Status),
			AccessTokenExpireTime: tsOf(c.AccessTokenExpiresAt), LastRefreshTime: tsOf(c.LastRefreshAt),
			ConnectTime: timestamppb.New(c.ConnectedAt),
		})
	}
	return resp, nil
}

// RefreshConnection implements TokenUpkeepService: one refresh at Google through the same refresh as
// GetAccessToken (stripe and row lock, classification, recording), except that
//   - it refreshes even when the cached token is still valid (the daily refresh proves the grant);
//   - when the connection was refreshed after seen_refresh_time (a caller needed a token meanwhile)
//     and is connected, that refresh is the one asked for: OK with google_calls 0, nothing called —
//     unless force is set;
//   - a connection that failed permanently answers its recorded failure without asking Google, unless
//     force is set;
//   - it makes one token-endpoint request (upkeepAttempts);
//   - a connection that no longer exists (disconnected, reset) is SKIPPED.
//
// Every failure is recorded on the connection (status, message, remedy, timeline event naming the run)
// before the answer; a later success clears it.
func (s *Upkeep) RefreshConnection(ctx context.Context, req *m.RefreshConnectionRequest) (*m.RefreshConnectionResponse, error) {
	id, err := serviceCaller(ctx)
	if err != nil {
		return nil, err
	}
	conn, err := store.GetConnectionByID(ctx, s.pool, id.Tenant, req.GetConnectionId())
	if errors.Is(err, store.ErrNotFound) {
		return gone(), nil
	}
	if err != nil {
		return nil, err
	}
	var seen *time.Time
	if req.SeenRefreshTime != nil {
		t := req.GetSeenRefreshTime().AsTime()
		seen = &t
	}
	force := req.GetForce()
	res, err := s.refresh(ctx, refreshRequest{
		tenant: id.Tenant, kind: conn.Kind, providerID: conn.ProviderID, connectionID: conn.ID,
		force: force, attempts: upkeepAttempts, runID: req.GetRunId(),
		done: func(c store.Connection, _ storedToken, _ time.Time) bool {
			return !force && c.Status == store.StatusConnected && c.LastRefreshAt != nil && (seen == nil || c.LastRefreshAt.After(*seen))
		},
	})
	if errors.Is(err, errConnectionGone) {
		return gone(), nil
	}
	if err != nil {
		return nil, err
	}
	out := &m.Outcome{Status: m.OutcomeStatus_OUTCOME_STATUS_OK, GoogleCalls: int32(res.calls)}
	if f := res.fail; f != nil {
		out = &m.Outcome{Status: m.OutcomeStatus_OUTCOME_STATUS_FAILED, FailureClass: failureClass(*f),
			ErrorCode: failureCode(*f), Message: f.message, Remedy: f.remedy, GoogleCalls: int32(res.calls)}
	}
	return &m.RefreshConnectionResponse{
		Outcome: out, State: connectionState(res.conn.Status),
		AccessTokenExpireTime: tsOf(res.conn.AccessTokenExpiresAt), LastRefreshTime: tsOf(res.conn.LastRefreshAt),
	}, nil
}

// gone answers a refresh of a connection that does not exist (any more).
func gone() *m.RefreshConnectionResponse {
	return &m.RefreshConnectionResponse{
		Outcome: &m.Outcome{Status: m.OutcomeStatus_OUTCOME_STATUS_SKIPPED,
			Message: "The connection no longer exists: the provider was disconnected or reset since the decision."},
		State: m.ConnectionState_CONNECTION_STATE_DISCONNECTED,
	}
}

func tsOf(t *time.Time) *timestamppb.Timestamp {
	if t == nil {
		return nil
	}
	return timestamppb.New(*t)
}

func upkeepKind(kind string) m.ProviderKind {
	if kind == kindCalendar {
		return m.ProviderKind_PROVIDER_KIND_CALENDAR
	}
	return m.ProviderKind_PROVIDER_KIND_GMAIL
}

// connectionState maps a connection status to the state maintenance decides on. REAUTH_REQUIRED
// (invalid_rapt, and the rarer refusals that need a new consent as well: no stored refresh token, an
// unknown OAuth error) is INVALID_RAPT: the user must sign in again; the recorded message says why.
func connectionState(status string) m.ConnectionState {
	switch status {
	case store.StatusConnected:
		return m.ConnectionState_CONNECTION_STATE_CONNECTED
	case store.StatusRevoked:
		return m.ConnectionState_CONNECTION_STATE_REVOKED
	case store.StatusExpiredTesting:
		return m.ConnectionState_CONNECTION_STATE_TESTING_EXPIRY
	case store.StatusReauthRequired:
		return m.ConnectionState_CONNECTION_STATE_INVALID_RAPT
	case store.StatusClientInvalid:
		return m.ConnectionState_CONNECTION_STATE_CLIENT_REPLACED
	case store.StatusTransientError:
		return m.ConnectionState_CONNECTION_STATE_TRANSIENT_ERROR
	case store.StatusDisconnected:
		return m.ConnectionState_CONNECTION_STATE_DISCONNECTED
	}
	return m.ConnectionState_CONNECTION_STATE_UNSPECIFIED
}

// failureClass is a classified refresh failure's class: the one of the status it records, except a
// setup without the OAuth client (NOT_CONFIGURED, recorded as a transient error).
func failureClass(f failure) m.FailureClass {
	if f.notConfigured != nil {
		return m.FailureClass_FAILURE_CLASS_NOT_CONFIGURED
	}
	switch f.status {
	case store.StatusRevoked:
		return m.FailureClass_FAILURE_CLASS_REVOKED
	case store.StatusExpiredTesting:
		return m.FailureClass_FAILURE_CLASS_TESTING_EXPIRY
	case store.StatusReauthRequired:
		return m.FailureClass_FAILURE_CLASS_INVALID_RAPT
	case store.StatusClientInvalid:
		return m.FailureClass_FAILURE_CLASS_CLIENT_REPLACED
	}
	return m.FailureClass_FAILURE_CLASS_TRANSIENT
}

// failureCode is the stable code of a refresh failure: "token_" and the status it records (the code
// the gmail service puts on its provider for the same failure), or "google_not_configured".
func failureCode(f failure) string {
	if f.notConfigured != nil {
		return "google_not_configured"
	}
	return "token_" + f.status
}
