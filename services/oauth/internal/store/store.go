// Package store is the oauth schema's query layer: typed functions over the named statements of
// queries.sql (named parameters, passed as pg.Args) and the numbered migrations in migrations/. Every
// query is scoped by tenant, except consuming a state, the tenant directory and the test helpers (see
// queries.sql).
package store

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/algapsa/alga-google/services/platform/pg"
)

// Schema is the Postgres schema the oauth service owns.
const Schema = "oauth"

//go:embed migrations/*.sql queries.sql
var files embed.FS

var schema = pg.Load(Schema, files)

// Migrations of the oauth schema, with every statement of queries.sql (the query check prepares them).
func Migrations() *pg.Migrations { return schema }

func q(name string) string { return schema.Queries.Get(name) }

// DB is a pool or a transaction.
type DB = pg.DB

// ErrNotFound is returned when a row does not exist.
var ErrNotFound = errors.New("not found")

// Connection statuses (the ConnectionStatus enum in lower case).
const (
	StatusConnected      = "connected"
	StatusRevoked        = "revoked"
	StatusExpiredTesting = "expired_testing"
	StatusReauthRequired = "reauth_required"
	StatusClientInvalid  = "client_invalid"
	StatusTransientError = "transient_error"
	StatusDisconnected   = "disconnected"
)

// Settings is a tenant's non-secret Google setup (the use-same-app flag) and who changed it last.
type Settings struct {
	Tenant     string    `db:"tenant"`
	UseSameApp bool      `db:"use_same_app"`
	UpdatedBy  string    `db:"updated_by"`
	UpdatedAt  time.Time `db:"updated_at"`
}

// GetSettings returns the tenant's settings, or the defaults (use-same-app on) when none were saved.
func GetSettings(ctx context.Context, db DB, tenant string) (Settings, bool, error) {
	rows, _ := db.Query(ctx, q("GetSettings"), pg.Args{"tenant": tenant})
	s, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[Settings])
	if errors.Is(err, pgx.ErrNoRows) {
		return Settings{Tenant: tenant, UseSameApp: true}, false, nil
	}
	return s, err == nil, err
}

// UpsertSettings stores the tenant's settings.
func UpsertSettings(ctx context.Context, db DB, s Settings) (Settings, error) {
	rows, _ := db.Query(ctx, q("UpsertSettings"), pg.Args{
		"tenant": s.Tenant, "use_same_app": s.UseSameApp, "updated_by": s.UpdatedBy, "updated_at": s.UpdatedAt,
	})
	return pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[Settings])
}

// AuditEntry is one change of the Google setup (field names, never values).
type AuditEntry struct {
	Actor     string    `db:"actor"`
	Action    string    `db:"action"`
	Fields    []string  `db:"fields"`
	CreatedAt time.Time `db:"created_at"`
}

// InsertAudit records a change.
func InsertAudit(ctx context.Context, db DB, tenant string, e AuditEntry) error {
	if e.Fields == nil {
		e.Fields = []string{}
	}
	_, err := db.Exec(ctx, q("InsertAudit"), pg.Args{
		"tenant": tenant, "actor": e.Actor, "action": e.Action, "fields": e.Fields, "created_at": e.CreatedAt,
	})
	return err
}

// ListAudit returns the newest changes first.
func ListAudit(ctx context.Context, db DB, tenant string, limit int) ([]AuditEntry, error) {
	rows, _ := db.Query(ctx, q("ListAudit"), pg.Args{"tenant": tenant, "limit": limit})
	return pgx.CollectRows(rows, pgx.RowToStructByName[AuditEntry])
}

// Setup states recorded in tenant_setups (the GoogleConfigState enum in lower case).
const (
	SetupConfigured = "configured"
	SetupPartial    = "partial"
	SetupMissing    = "missing"
)

// UpsertTenantSetup records the state of a tenant's Google setup (written where the setup is saved).
func UpsertTenantSetup(ctx context.Context, db DB, tenant, state string, now time.Time) error {
	_, err := db.Exec(ctx, q("UpsertTenantSetup"), pg.Args{"tenant": tenant, "state": state, "updated_at": now})
	return err
}

// ReconcileTenantSetup records a state read back from the setup when it differs from the recorded one
// (the setup's secrets changed behind the oauth service's back); a missing setup of a tenant never
// recorded stays unrecorded.
func ReconcileTenantSetup(ctx context.Context, db DB, tenant, state string, now time.Time) error {
	_, err := db.Exec(ctx, q("ReconcileTenantSetup"), pg.Args{"tenant": tenant, "state": state, "updated_at": now})
	return err
}

// TenantSetup is one tenant whose Google setup is saved (configured or partial).
type TenantSetup struct {
	Tenant    string    `db:"tenant"`
	UpdatedAt time.Time `db:"updated_at"`
}

// ListConfiguredTenants lists every tenant whose setup is configured or partial, across tenants (the
// tenant directory; see queries.sql).
func ListConfiguredTenants(ctx context.Context, db DB) ([]TenantSetup, error) {
	rows, _ := db.Query(ctx, q("ListConfiguredTenants"), pg.Args{})
	return pgx.CollectRows(rows, pgx.RowToStructByName[TenantSetup])
}

// State is a pending authorization (one row per begun flow, consumed once).
type State struct {
	StateHash      []byte    `db:"state_hash"`
	Tenant         string    `db:"tenant"`
	UserID         string    `db:"user_id"`
	ProviderID     string    `db:"provider_id"`
	Kind           string    `db:"kind"`
	ClientID       string    `db:"client_id"`
	LoginHint      string    `db:"login_hint"`
	SealedVerifier []byte    `db:"sealed_verifier"`
	BindingHash    []byte    `db:"binding_hash"`
	CreatedAt      time.Time `db:"created_at"`
	ExpiresAt      time.Time `db:"expires_at"`
}

// InsertState stores a pending authorization.
func InsertState(ctx context.Context, db DB, s State) error {
	_, err := db.Exec(ctx, q("InsertState"), pg.Args{
		"state_hash": s.StateHash, "tenant": s.Tenant, "user_id": s.UserID, "provider_id": s.ProviderID, "kind": s.Kind,
		"client_id": s.ClientID, "login_hint": s.LoginHint, "sealed_verifier": s.SealedVerifier,
		"binding_hash": s.BindingHash, "created_at": s.CreatedAt, "expires_at": s.ExpiresAt,
	})
	return err
}

// ConsumeState deletes and returns the state with this hash (atomically: only one caller gets it).
// Expired rows are returned too so the caller can tell "expired" from "unknown"; they are gone either way.
func ConsumeState(ctx context.Context, db DB, hash []byte) (State, error) {
	rows, _ := db.Query(ctx, q("ConsumeState"), pg.Args{"state_hash": hash})
	s, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[State])
	if errors.Is(err, pgx.ErrNoRows) {
		return State{}, ErrNotFound
	}
	return s, err
}

// ConsumeBoundState deletes and returns the state with hash, only when its binding hash is binding
// (ErrNotFound otherwise, leaving the state in place).
func ConsumeBoundState(ctx context.Context, db DB, hash, binding []byte) (State, error) {
	rows, _ := db.Query(ctx, q("ConsumeBoundState"), pg.Args{"state_hash": hash, "binding_hash": binding})
	s, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[State])
	if errors.Is(err, pgx.ErrNoRows) {
		return State{}, ErrNotFound
	}
	return s, err
}

// StateExists reports whether a state with hash is stored (expired or not).
func StateExists(ctx context.Context, db DB, hash []byte) (bool, error) {
	var ok bool
	err := db.QueryRow(ctx, q("StateExists"), pg.Args{"state_hash": hash}).Scan(&ok)
	return ok, err
}

// PurgeExpiredStates deletes states that expired before cutoff.
func PurgeExpiredStates(ctx context.Context, db DB, cutoff time.Time) error {
	_, err := db.Exec(ctx, q("PurgeExpiredStates"), pg.Args{"cutoff": cutoff})
	return err
}

// Connection is one provider's OAuth grant. Its tokens live in the secrets service.
type Connection struct {
	ID                   string     `db:"id"`
	Tenant               string     `db:"tenant"`
	Kind                 string     `db:"kind"`
	ProviderID           string     `db:"provider_id"`
	UserID               string     `db:"user_id"`
	AccountEmail         string     `db:"account_email"`
	ClientID             string     `db:"client_id"`
	Scopes               []string   `db:"scopes"`
	Status               string     `db:"status"`
	StatusMessage        string     `db:"status_message"`
	Remedy               string     `db:"remedy"`
	AccessTokenExpiresAt *time.Time `db:"access_token_expires_at"`
	LastRefreshAt        *time.Time `db:"last_refresh_at"`
	ConsentedAt          time.Time  `db:"consented_at"`
	ConnectedAt          time.Time  `db:"connected_at"`
	UpdatedAt            time.Time  `db:"updated_at"`
}

func oneConnection(rows pgx.Rows) (Connection, error) {
	c, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[Connection])
	if errors.Is(err, pgx.ErrNoRows) {
		return Connection{}, ErrNotFound
	}
	return c, err
}

// GetConnection returns the connection of a provider.
func GetConnection(ctx context.Context, db DB, tenant, kind, providerID string) (Connection, error) {
	rows, _ := db.Query(ctx, q("GetConnection"), pg.Args{"tenant": tenant, "kind": kind, "provider_id": providerID})
	return oneConnection(rows)
}

// GetConnectionByID returns a connection by its id.
func GetConnectionByID(ctx context.Context, db DB, tenant, id string) (Connection, error) {
	rows, _ := db.Query(ctx, q("GetConnectionByID"), pg.Args{"tenant": tenant, "id": id})
	return oneConnection(rows)
}

// GetConnectionForUpdate locks the connection row until the transaction ends (one refresh at a time).
func GetConnectionForUpdate(ctx context.Context, tx pgx.Tx, tenant, kind, providerID string) (Connection, error) {
	rows, _ := tx.Query(ctx, q("GetConnectionForUpdate"), pg.Args{"tenant": tenant, "kind": kind, "provider_id": providerID})
	return oneConnection(rows)
}

// LockGrant serializes, across replicas and until tx ends, the callbacks that store a grant for one
// provider — including its first, when there is no connection row to lock yet.
func LockGrant(ctx context.Context, tx pgx.Tx, tenant, kind, providerID string) error {
	_, err := tx.Exec(ctx, q("LockGrant"), pg.Args{"tenant": tenant, "kind": kind, "provider_id": providerID})
	return err
}

// SetLockTimeout bounds, for the rest of tx, how long a statement waits for a row lock (SET LOCAL
// lock_timeout), so a refresh stuck behind another replica's fails instead of holding a connection.
func SetLockTimeout(ctx context.Context, tx pgx.Tx, d time.Duration) error {
	_, err := tx.Exec(ctx, q("SetLockTimeout"), pg.Args{"timeout": fmt.Sprintf("%dms", d.Milliseconds())})
	return err
}

// ListConnections lists the tenant's connections of one kind ("" = all).
func ListConnections(ctx context.Context, db DB, tenant, kind string) ([]Connection, error) {
	rows, _ := db.Query(ctx, q("ListConnections"), pg.Args{"tenant": tenant, "kind": kind})
	return pgx.CollectRows(rows, pgx.RowToStructByName[Connection])
}

// UpsertConnection records a (re)connected grant; the row keeps its id when it already existed.
func UpsertConnection(ctx context.Context, db DB, c Connection, now time.Time) (Connection, error) {
	if c.Scopes == nil {
		c.Scopes = []string{}
	}
	rows, _ := db.Query(ctx, q("UpsertConnection"), pg.Args{
		"id": c.ID, "tenant": c.Tenant, "kind": c.Kind, "provider_id": c.ProviderID, "user_id": c.UserID,
		"account_email": c.AccountEmail, "client_id": c.ClientID, "scopes": c.Scopes,
		"access_token_expires_at": c.AccessTokenExpiresAt, "now": now,
	})
	return oneConnection(rows)
}

// MarkRefreshed records a successful refresh.
func MarkRefreshed(ctx context.Context, db DB, tenant, id string, expiry, now time.Time) (Connection, error) {
	rows, _ := db.Query(ctx, q("MarkRefreshed"), pg.Args{"tenant": tenant, "id": id, "expiry": expiry, "now": now})
	return oneConnection(rows)
}

// MarkFailed records a failed refresh's classification.
func MarkFailed(ctx context.Context, db DB, tenant, id, status, message, remedy string, now time.Time) (Connection, error) {
	rows, _ := db.Query(ctx, q("MarkFailed"), pg.Args{
		"tenant": tenant, "id": id, "status": status, "message": message, "remedy": remedy, "now": now,
	})
	return oneConnection(rows)
}

// RefreshLease is a refresh of a connection in flight: who holds it and until when. The request to
// Google is made outside any transaction; the lease (read and taken under the connection's row lock)
// keeps the other replicas from refreshing the connection meanwhile.
type RefreshLease struct {
	Holder    string
	ExpiresAt time.Time
}

// GetRefreshLease reads the connection's lease (ok is false when none is recorded).
func GetRefreshLease(ctx context.Context, db DB, connectionID string) (lease RefreshLease, ok bool, err error) {
	err = db.QueryRow(ctx, q("GetRefreshLease"), pg.Args{"connection_id": connectionID}).Scan(&lease.Holder, &lease.ExpiresAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return RefreshLease{}, false, nil
	}
	return lease, err == nil, err
}

// TakeRefreshLease records holder's lease on the connection until expiresAt, replacing any other.
func TakeRefreshLease(ctx context.Context, db DB, connectionID, holder string, expiresAt time.Time) error {
	_, err := db.Exec(ctx, q("TakeRefreshLease"), pg.Args{"connection_id": connectionID, "holder": holder, "expires_at": expiresAt})
	return err
}

// ReleaseRefreshLease ends holder's lease on the connection (a lease another holder took over is left).
func ReleaseRefreshLease(ctx context.Context, db DB, connectionID, holder string) error {
	_, err := db.Exec(ctx, q("ReleaseRefreshLease"), pg.Args{"connection_id": connectionID, "holder": holder})
	return err
}

// DeleteConnection deletes a connection and its timeline.
func DeleteConnection(ctx context.Context, db DB, tenant, id string) error {
	_, err := db.Exec(ctx, q("DeleteConnection"), pg.Args{"tenant": tenant, "id": id})
	return err
}

// DeleteTenantConnections deletes every connection of a tenant and returns their ids.
func DeleteTenantConnections(ctx context.Context, db DB, tenant string) ([]string, error) {
	rows, _ := db.Query(ctx, q("DeleteTenantConnections"), pg.Args{"tenant": tenant})
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
		var id string
		err := r.Scan(&id)
		return id, err
	})
}

// Event is one entry of a connection's health timeline.
type Event struct {
	Type      string    `db:"type"`
	Message   string    `db:"message"`
	CreatedAt time.Time `db:"created_at"`
}

// InsertEvent appends to a connection's timeline.
func InsertEvent(ctx context.Context, db DB, tenant, connectionID string, e Event) error {
	_, err := db.Exec(ctx, q("InsertEvent"), pg.Args{
		"connection_id": connectionID, "tenant": tenant, "type": e.Type, "message": e.Message, "created_at": e.CreatedAt,
	})
	return err
}

// ListEvents returns the newest events first.
func ListEvents(ctx context.Context, db DB, tenant, connectionID string, limit int) ([]Event, error) {
	rows, _ := db.Query(ctx, q("ListEvents"), pg.Args{"tenant": tenant, "connection_id": connectionID, "limit": limit})
	return pgx.CollectRows(rows, pgx.RowToStructByName[Event])
}

// ErrNoRow is returned by the test helpers when no row matched what they were given.
var ErrNoRow = errors.New("no row matched")

func affectedOne(tag pgconn.CommandTag, err error) error {
	if err == nil && tag.RowsAffected() == 0 {
		return ErrNoRow
	}
	return err
}

// ExpireAccessToken records a connection's access token as expired a minute ago (test helper).
func ExpireAccessToken(ctx context.Context, db DB, connectionID string) error {
	return affectedOne(db.Exec(ctx, q("TestExpireAccessToken"), pg.Args{"id": connectionID}))
}

// AgeConsent moves the consent and connection times of the connections of an account back by `by`
// (test helper).
func AgeConsent(ctx context.Context, db DB, accountEmail string, by time.Duration) error {
	return affectedOne(db.Exec(ctx, q("TestAgeConsent"), pg.Args{"account_email": accountEmail, "by": by}))
}

// ExpireAuthStates makes every pending authorization of a provider expired a second ago (test helper).
func ExpireAuthStates(ctx context.Context, db DB, providerID string) error {
	return affectedOne(db.Exec(ctx, q("TestExpireAuthStates"), pg.Args{"provider_id": providerID}))
}

// AgeTenant moves every recorded time of the tenant's connections (consent, connect, last refresh, the
// access token's expiry) and of their timelines back by `by`, and reports how many connections it moved
// (test helper).
func AgeTenant(ctx context.Context, db DB, tenant string, by time.Duration) (int, error) {
	var n int
	err := db.QueryRow(ctx, q("TestAgeTenant"), pg.Args{"tenant": tenant, "by": by}).Scan(&n)
	return n, err
}
