package store

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The query layer: every statement lives in sql/<name>.sql; these typed wrappers are the only callers.

//go:embed sql/*.sql
var sqlFiles embed.FS

func load(name string) string {
	b, err := sqlFiles.ReadFile("sql/" + name + ".sql")
	if err != nil {
		panic(fmt.Sprintf("store: missing query %s: %v", name, err))
	}
	return strings.TrimSpace(string(b))
}

var (
	qDataKeyGet         = load("data_key_get")
	qDataKeyGetForWrite = load("data_key_get_for_write")
	qDataKeyInsert      = load("data_key_insert")
	qDataKeyLock        = load("data_key_lock")
	qDataKeyRewrap      = load("data_key_rewrap")
	qDataKeyDelete      = load("data_key_delete")
	qDataKeyTenants     = load("data_key_tenants")
	qDataKeyKEKIDs      = load("data_key_kek_ids")
	qSecretPlaceholder  = load("secret_placeholder")
	qSecretLock         = load("secret_lock")
	qSecretSet          = load("secret_set")
	qSecretTombstone    = load("secret_tombstone")
	qSecretsList        = load("secrets_list")
	qSecretsDeleteAll   = load("secrets_delete_tenant")
	qAuditInsert        = load("audit_insert")
	qAuditList          = load("audit_list")
)

// dbtx is a pool, a connection or a transaction.
type dbtx interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

type wrappedKey struct {
	KEKID   string
	Wrapped []byte
}

func getDataKey(ctx context.Context, db dbtx, q, tenant string) (wrappedKey, bool, error) {
	var k wrappedKey
	err := db.QueryRow(ctx, q, tenant).Scan(&k.KEKID, &k.Wrapped)
	if errors.Is(err, pgx.ErrNoRows) {
		return k, false, nil
	}
	return k, err == nil, err
}

func insertDataKey(ctx context.Context, db dbtx, tenant, kekID string, wrapped []byte) error {
	_, err := db.Exec(ctx, qDataKeyInsert, tenant, kekID, wrapped)
	return err
}

func rewrapDataKey(ctx context.Context, db dbtx, tenant, kekID string, wrapped []byte) error {
	_, err := db.Exec(ctx, qDataKeyRewrap, tenant, kekID, wrapped)
	return err
}

func deleteDataKey(ctx context.Context, db dbtx, tenant string) (bool, error) {
	tag, err := db.Exec(ctx, qDataKeyDelete, tenant)
	return tag.RowsAffected() > 0, err
}

func deleteTenantSecrets(ctx context.Context, db dbtx, tenant string) (int64, error) {
	tag, err := db.Exec(ctx, qSecretsDeleteAll, tenant)
	return tag.RowsAffected(), err
}

func dataKeyTenants(ctx context.Context, db dbtx) ([]string, error) {
	rows, err := db.Query(ctx, qDataKeyTenants)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// KEKUsage counts the data keys wrapped by each KEK id.
type KEKUsage struct {
	KEKID string
	Count int64
}

func kekUsage(ctx context.Context, db dbtx) ([]KEKUsage, error) {
	rows, err := db.Query(ctx, qDataKeyKEKIDs)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (KEKUsage, error) {
		var u KEKUsage
		return u, r.Scan(&u.KEKID, &u.Count)
	})
}

// lockSecret makes sure the (tenant, name) row exists and locks it; it returns the stored version and
// whether a value is present (a tombstone or a fresh placeholder has none).
func lockSecret(ctx context.Context, db dbtx, tenant, name, actor string) (version int64, present bool, err error) {
	if _, err := db.Exec(ctx, qSecretPlaceholder, tenant, name, actor); err != nil {
		return 0, false, err
	}
	err = db.QueryRow(ctx, qSecretLock, tenant, name).Scan(&version, &present)
	return version, present, err
}

func setSecret(ctx context.Context, db dbtx, tenant, name string, version int64, nonce, ciphertext []byte, actor string) (time.Time, error) {
	var at time.Time
	err := db.QueryRow(ctx, qSecretSet, tenant, name, version, nonce, ciphertext, actor).Scan(&at)
	return at, err
}

// tombstoneSecret removes a stored value; it reports the version removed, or false when nothing was stored.
func tombstoneSecret(ctx context.Context, db dbtx, tenant, name, actor string) (int64, bool, error) {
	var v int64
	err := db.QueryRow(ctx, qSecretTombstone, tenant, name, actor).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil
	}
	return v, err == nil, err
}

type storedSecret struct {
	Name       string
	Version    int64
	Nonce      []byte
	Ciphertext []byte
	UpdatedAt  time.Time
}

// listSecrets returns stored values; names nil means all of the tenant's.
func listSecrets(ctx context.Context, db dbtx, tenant string, names []string) ([]storedSecret, error) {
	var arg any
	if names != nil {
		arg = names
	}
	rows, err := db.Query(ctx, qSecretsList, tenant, arg)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (storedSecret, error) {
		var s storedSecret
		return s, r.Scan(&s.Name, &s.Version, &s.Nonce, &s.Ciphertext, &s.UpdatedAt)
	})
}

// Audit actions.
const (
	ActionPut    = "put"
	ActionGet    = "get"
	ActionDelete = "delete"
	ActionRotate = "rotate"
	ActionShred  = "shred"
)

func insertAudit(ctx context.Context, db dbtx, tenant, name, action string, actor Actor, version int64) error {
	_, err := db.Exec(ctx, qAuditInsert, tenant, name, action, actor.ID, actor.Type, version)
	return err
}

// AuditEvent is one row of the audit trail.
type AuditEvent struct {
	ID         int64
	Name       string
	Action     string
	Actor      string
	ActorType  string
	Version    int64
	CreateTime time.Time
}

func listAudit(ctx context.Context, db dbtx, tenant, name string, beforeID int64, limit int) ([]AuditEvent, error) {
	rows, err := db.Query(ctx, qAuditList, tenant, name, beforeID, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (AuditEvent, error) {
		var e AuditEvent
		return e, r.Scan(&e.ID, &e.Name, &e.Action, &e.Actor, &e.ActorType, &e.Version, &e.CreateTime)
	})
}
