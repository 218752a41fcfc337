// Package store holds the secret store's backends behind one small interface (backend.go): Postgres
// (envelope encryption, the default), the filesystem layout of the platform, and a read chain over
// several. This file is the query layer of the `secrets` schema: its migrations, and the typed functions
// that are the only callers of the named statements in queries.sql.
package store

import (
	"context"
	"embed"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/algapsa/alga-google/services/platform/pg"
)

// Schema is the Postgres schema the secrets service owns.
const Schema = "secrets"

//go:embed migrations/*.sql queries.sql
var files embed.FS

var schema = pg.Load(Schema, files)

// Migrations of the secrets schema, with every statement of queries.sql (the query check prepares them).
func Migrations() *pg.Migrations { return schema }

type wrappedKey struct {
	KEKID   string
	Wrapped []byte
}

// getDataKey reads the tenant's data key with one of the DataKeyGet* statements (plain, for write, or
// locked for a rotation).
func getDataKey(ctx context.Context, db pg.DB, query, tenant string) (wrappedKey, bool, error) {
	var k wrappedKey
	err := db.QueryRow(ctx, schema.Queries.Get(query), pg.Args{"tenant": tenant}).Scan(&k.KEKID, &k.Wrapped)
	if errors.Is(err, pgx.ErrNoRows) {
		return k, false, nil
	}
	return k, err == nil, err
}

func insertDataKey(ctx context.Context, db pg.DB, tenant, kekID string, wrapped []byte) error {
	_, err := db.Exec(ctx, schema.Queries.Get("DataKeyInsert"), pg.Args{"tenant": tenant, "kek_id": kekID, "wrapped_key": wrapped})
	return err
}

func rewrapDataKey(ctx context.Context, db pg.DB, tenant, kekID string, wrapped []byte) error {
	_, err := db.Exec(ctx, schema.Queries.Get("DataKeyRewrap"), pg.Args{"tenant": tenant, "kek_id": kekID, "wrapped_key": wrapped})
	return err
}

func deleteDataKey(ctx context.Context, db pg.DB, tenant string) (bool, error) {
	tag, err := db.Exec(ctx, schema.Queries.Get("DataKeyDelete"), pg.Args{"tenant": tenant})
	return tag.RowsAffected() > 0, err
}

func deleteTenantSecrets(ctx context.Context, db pg.DB, tenant string) (int64, error) {
	tag, err := db.Exec(ctx, schema.Queries.Get("SecretsDeleteTenant"), pg.Args{"tenant": tenant})
	return tag.RowsAffected(), err
}

func dataKeyTenants(ctx context.Context, db pg.DB) ([]string, error) {
	rows, err := db.Query(ctx, schema.Queries.Get("DataKeyTenants"))
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

func kekUsage(ctx context.Context, db pg.DB) ([]KEKUsage, error) {
	rows, err := db.Query(ctx, schema.Queries.Get("DataKeyKEKIDs"))
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
func lockSecret(ctx context.Context, db pg.DB, tenant, name, actor string) (version int64, present bool, err error) {
	if _, err := db.Exec(ctx, schema.Queries.Get("SecretPlaceholder"), pg.Args{"tenant": tenant, "name": name, "actor": actor}); err != nil {
		return 0, false, err
	}
	err = db.QueryRow(ctx, schema.Queries.Get("SecretLock"), pg.Args{"tenant": tenant, "name": name}).Scan(&version, &present)
	return version, present, err
}

func setSecret(ctx context.Context, db pg.DB, tenant, name string, version int64, nonce, ciphertext []byte, actor string) (time.Time, error) {
	var at time.Time
	err := db.QueryRow(ctx, schema.Queries.Get("SecretSet"), pg.Args{
		"tenant": tenant, "name": name, "version": version, "nonce": nonce, "ciphertext": ciphertext, "actor": actor,
	}).Scan(&at)
	return at, err
}

// tombstoneSecret removes a stored value; it reports the version removed, or false when nothing was stored.
func tombstoneSecret(ctx context.Context, db pg.DB, tenant, name, actor string) (int64, bool, error) {
	var v int64
	err := db.QueryRow(ctx, schema.Queries.Get("SecretTombstone"), pg.Args{"tenant": tenant, "name": name, "actor": actor}).Scan(&v)
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
func listSecrets(ctx context.Context, db pg.DB, tenant string, names []string) ([]storedSecret, error) {
	var arg any
	if names != nil {
		arg = names
	}
	rows, err := db.Query(ctx, schema.Queries.Get("SecretsList"), pg.Args{"tenant": tenant, "names": arg})
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

func insertAudit(ctx context.Context, db pg.DB, tenant, name, action string, actor Actor, version int64) error {
	_, err := db.Exec(ctx, schema.Queries.Get("AuditInsert"), pg.Args{
		"tenant": tenant, "name": name, "action": action, "actor": actor.ID, "actor_type": actor.Type, "version": version,
	})
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

func listAudit(ctx context.Context, db pg.DB, tenant, name string, beforeID int64, limit int) ([]AuditEvent, error) {
	rows, err := db.Query(ctx, schema.Queries.Get("AuditList"), pg.Args{"tenant": tenant, "name": name, "before_id": beforeID, "limit": limit})
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (AuditEvent, error) {
		var e AuditEvent
		return e, r.Scan(&e.ID, &e.Name, &e.Action, &e.Actor, &e.ActorType, &e.Version, &e.CreateTime)
	})
}
