package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/algapsa/alga-google/services/platform/errs"
	"github.com/algapsa/alga-google/services/secrets/internal/envelope"
)

// Postgres is the default backend: envelope encryption (see package envelope) in the secrets schema.
// A write is one transaction: every value and its audit row land together or not at all.
type Postgres struct {
	pool *pgxpool.Pool
	keys *envelope.Keyring
}

// NewPostgres returns the Postgres backend; keys holds the current KEK and any still accepted.
func NewPostgres(pool *pgxpool.Pool, keys *envelope.Keyring) *Postgres {
	return &Postgres{pool: pool, keys: keys}
}

// Name implements Backend.
func (p *Postgres) Name() string { return "postgres" }

// CheckKeys reports an error when some data key is wrapped by a KEK the keyring does not hold (a
// misconfigured replica would otherwise fail on that tenant's first request).
func (p *Postgres) CheckKeys(ctx context.Context) error {
	usage, err := kekUsage(ctx, p.pool)
	if err != nil {
		return err
	}
	for _, u := range usage {
		if !p.keys.Has(u.KEKID) {
			return fmt.Errorf("%d tenant data keys are wrapped by KEK id %q, which is not configured (configured: %v); "+
				"configure that key as a previous KEK or finish the rotation", u.Count, u.KEKID, p.keys.IDs())
		}
	}
	return nil
}

// The statements that read a tenant's data key (see getDataKey), by who reads it.
const (
	stmtDataKeyRead   = "DataKeyGet"
	stmtDataKeyWrite  = "DataKeyGetForWrite"
	stmtDataKeyRotate = "DataKeyLock"
)

type op struct {
	name  string
	write *Write // nil = delete
	index int    // position among the request's writes
}

// Put implements Backend: one transaction, rows locked in name order (no deadlocks between batches).
func (p *Postgres) Put(ctx context.Context, tenant string, actor Actor, writes []Write, deletes []string) ([]Description, error) {
	ops := make([]op, 0, len(writes)+len(deletes))
	for i := range writes {
		ops = append(ops, op{name: writes[i].Name, write: &writes[i], index: i})
	}
	for _, n := range deletes {
		ops = append(ops, op{name: n})
	}
	sort.SliceStable(ops, func(i, j int) bool { return ops[i].name < ops[j].name })

	out := make([]Description, len(writes))
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		var dek []byte
		if len(writes) > 0 {
			var err error
			if dek, err = p.dataKeyForWrite(ctx, tx, tenant); err != nil {
				return err
			}
		}
		for _, o := range ops {
			if o.write == nil {
				v, ok, err := tombstoneSecret(ctx, tx, tenant, o.name, actor.ID)
				if err != nil {
					return err
				}
				if ok {
					if err := insertAudit(ctx, tx, tenant, o.name, ActionDelete, actor, v); err != nil {
						return err
					}
				}
				continue
			}
			w := o.write
			version, present, err := lockSecret(ctx, tx, tenant, w.Name, actor.ID)
			if err != nil {
				return err
			}
			if w.ExpectedVersion != nil {
				current := int64(0)
				if present {
					current = version
				}
				if *w.ExpectedVersion != current {
					return versionConflict(w.Name, *w.ExpectedVersion, current)
				}
			}
			next := version + 1
			nonce, ct, err := envelope.SealValue(dek, tenant, w.Name, next, []byte(w.Value))
			if err != nil {
				return err
			}
			at, err := setSecret(ctx, tx, tenant, w.Name, next, nonce, ct, actor.ID)
			if err != nil {
				return err
			}
			if err := insertAudit(ctx, tx, tenant, w.Name, ActionPut, actor, next); err != nil {
				return err
			}
			out[o.index] = Description{Name: w.Name, Present: true, Version: next, UpdateTime: at, Hint: Hint(w.Name, w.Value)}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// dataKeyForWrite returns the tenant's data key, creating it on the tenant's first write. The row is
// locked FOR KEY SHARE: a concurrent shred waits for this transaction, a rotation does not.
func (p *Postgres) dataKeyForWrite(ctx context.Context, tx pgx.Tx, tenant string) ([]byte, error) {
	k, ok, err := getDataKey(ctx, tx, stmtDataKeyWrite, tenant)
	if err != nil {
		return nil, err
	}
	if !ok {
		_, wrapped, kekID, err := p.keys.NewDataKey(tenant)
		if err != nil {
			return nil, err
		}
		if err := insertDataKey(ctx, tx, tenant, kekID, wrapped); err != nil {
			return nil, err
		}
		// Read back: another writer's key may have won the race.
		if k, ok, err = getDataKey(ctx, tx, stmtDataKeyWrite, tenant); err != nil {
			return nil, err
		} else if !ok {
			return nil, errors.New("store: data key vanished while writing")
		}
	}
	return p.unwrap(tenant, k)
}

func (p *Postgres) unwrap(tenant string, k wrappedKey) ([]byte, error) {
	dek, err := p.keys.Unwrap(tenant, k.KEKID, k.Wrapped)
	if errors.Is(err, envelope.ErrUnknownKEK) {
		return nil, errs.FailedPrecondition("SECRETS_KEY_UNAVAILABLE",
			"the secrets service is not configured with the key that protects this tenant's secrets; an operator must configure KEK %q", k.KEKID).Wrap(err)
	}
	if err != nil {
		return nil, errUnreadable("data key", err)
	}
	return dek, nil
}

// readTx runs fn in a repeatable-read transaction: one consistent snapshot of key and values.
func (p *Postgres) readTx(ctx context.Context, fn func(pgx.Tx) error) error {
	return pgx.BeginTxFunc(ctx, p.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead}, fn)
}

// open decrypts stored values; dek is fetched lazily, only if something needs decrypting.
type opener struct {
	p      *Postgres
	tx     pgx.Tx
	tenant string
	dek    []byte
}

func (o *opener) open(ctx context.Context, s storedSecret) (string, error) {
	if o.dek == nil {
		k, ok, err := getDataKey(ctx, o.tx, stmtDataKeyRead, o.tenant)
		if err != nil {
			return "", err
		}
		if !ok {
			return "", errUnreadable(s.Name, errors.New("the tenant has no data key (shredded)"))
		}
		if o.dek, err = o.p.unwrap(o.tenant, k); err != nil {
			return "", err
		}
	}
	pt, err := envelope.OpenValue(o.dek, o.tenant, s.Name, s.Version, s.Nonce, s.Ciphertext)
	if err != nil {
		return "", errUnreadable(s.Name, err)
	}
	return string(pt), nil
}

// Describe implements Backend. Hints are computed here by decrypting; nothing about a value is stored
// in the clear.
func (p *Postgres) Describe(ctx context.Context, tenant string, names []string) ([]Description, error) {
	var out []Description
	err := p.readTx(ctx, func(tx pgx.Tx) error {
		stored, err := listSecrets(ctx, tx, tenant, names)
		if err != nil {
			return err
		}
		o := &opener{p: p, tx: tx, tenant: tenant}
		found := make(map[string]Description, len(stored))
		for _, s := range stored {
			d := Description{Name: s.Name, Present: true, Version: s.Version, UpdateTime: s.UpdatedAt}
			if hasHint(s.Name) {
				v, err := o.open(ctx, s)
				if err != nil {
					return err
				}
				d.Hint = Hint(s.Name, v)
			}
			found[s.Name] = d
		}
		out = orderDescriptions(names, found)
		return nil
	})
	return out, err
}

// orderDescriptions lists found in request order (absent names included), or by name when names is nil.
func orderDescriptions(names []string, found map[string]Description) []Description {
	if names == nil {
		out := make([]Description, 0, len(found))
		for _, d := range found {
			out = append(out, d)
		}
		sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
		return out
	}
	out := make([]Description, 0, len(names))
	for _, n := range names {
		if d, ok := found[n]; ok {
			out = append(out, d)
		} else {
			out = append(out, Description{Name: n})
		}
	}
	return out
}

// Get implements Backend; every value returned is audited in the same transaction.
func (p *Postgres) Get(ctx context.Context, tenant string, actor Actor, names []string) ([]Value, error) {
	var out []Value
	err := p.readTx(ctx, func(tx pgx.Tx) error {
		out = out[:0]
		stored, err := listSecrets(ctx, tx, tenant, names)
		if err != nil {
			return err
		}
		o := &opener{p: p, tx: tx, tenant: tenant}
		for _, s := range stored {
			v, err := o.open(ctx, s)
			if err != nil {
				return err
			}
			if err := insertAudit(ctx, tx, tenant, s.Name, ActionGet, actor, s.Version); err != nil {
				return err
			}
			out = append(out, Value{Name: s.Name, Value: v, Version: s.Version})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return orderValues(names, out), nil
}

func orderValues(names []string, vals []Value) []Value {
	if names == nil {
		return vals
	}
	pos := make(map[string]int, len(names))
	for i, n := range names {
		pos[n] = i
	}
	sort.SliceStable(vals, func(i, j int) bool { return pos[vals[i].Name] < pos[vals[j].Name] })
	return vals
}

// Delete implements Backend.
func (p *Postgres) Delete(ctx context.Context, tenant string, actor Actor, names []string) ([]string, error) {
	sorted := append([]string(nil), names...)
	sort.Strings(sorted)
	deleted := map[string]bool{}
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		clear(deleted)
		for _, n := range sorted {
			v, ok, err := tombstoneSecret(ctx, tx, tenant, n, actor.ID)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			deleted[n] = true
			if err := insertAudit(ctx, tx, tenant, n, ActionDelete, actor, v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := []string{}
	for _, n := range names {
		if deleted[n] {
			out = append(out, n)
		}
	}
	return out, nil
}

// Operator is the audit actor of operations run from the command line.
func Operator(command string) Actor {
	return Actor{ID: "alga-google secrets " + command, Type: "service"}
}

// RotateKEK re-wraps every tenant's data key from oldKEK to newKEK (recorded as newKeyID), one short
// transaction per tenant, so readers and writers keep working throughout. Data keys already wrapped by
// newKeyID are checked and skipped, so an interrupted rotation can simply be run again.
func RotateKEK(ctx context.Context, pool *pgxpool.Pool, oldKEK, newKEK []byte, newKeyID string, log *slog.Logger) (int, error) {
	if len(oldKEK) != envelope.KeySize {
		return 0, fmt.Errorf("rotate-kek: the old KEK must be %d bytes", envelope.KeySize)
	}
	return rotate(ctx, pool, func(string) ([]byte, bool) { return oldKEK, true }, newKEK, newKeyID, log)
}

// RotateKEKFrom is RotateKEK with several old KEKs (key id → key): each data key is unwrapped with the
// old KEK of the id recorded beside it.
func RotateKEKFrom(ctx context.Context, pool *pgxpool.Pool, oldKEKs map[string][]byte, newKEK []byte, newKeyID string, log *slog.Logger) (int, error) {
	for id, k := range oldKEKs {
		if len(k) != envelope.KeySize {
			return 0, fmt.Errorf("rotate-kek: old KEK %q must be %d bytes", id, envelope.KeySize)
		}
	}
	return rotate(ctx, pool, func(id string) ([]byte, bool) { k, ok := oldKEKs[id]; return k, ok }, newKEK, newKeyID, log)
}

func rotate(ctx context.Context, pool *pgxpool.Pool, oldKEK func(id string) ([]byte, bool), newKEK []byte, newKeyID string, log *slog.Logger) (int, error) {
	if newKeyID == "" {
		return 0, errors.New("rotate-kek: the new KEK needs a key id")
	}
	if len(newKEK) != envelope.KeySize {
		return 0, fmt.Errorf("rotate-kek: the new KEK must be %d bytes", envelope.KeySize)
	}
	tenants, err := dataKeyTenants(ctx, pool)
	if err != nil {
		return 0, err
	}
	actor := Operator("rotate-kek")
	rewrapped := 0
	for _, tenant := range tenants {
		changed := false
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			k, ok, err := getDataKey(ctx, tx, stmtDataKeyRotate, tenant)
			if err != nil || !ok {
				return err // shredded meanwhile: nothing to do
			}
			if k.KEKID == newKeyID {
				if _, err := envelope.UnwrapDataKey(newKEK, newKeyID, tenant, k.Wrapped); err != nil {
					return fmt.Errorf("the data key of tenant %s is recorded as wrapped by %q but does not open with the new KEK; give the new KEK a new key id", tenant, newKeyID)
				}
				return nil
			}
			old, ok := oldKEK(k.KEKID)
			if !ok {
				return fmt.Errorf("the data key of tenant %s is wrapped by KEK id %q, and no old KEK with that id was given", tenant, k.KEKID)
			}
			dek, err := envelope.UnwrapDataKey(old, k.KEKID, tenant, k.Wrapped)
			if err != nil {
				return fmt.Errorf("the data key of tenant %s (KEK id %q) does not open with the old KEK: %w", tenant, k.KEKID, err)
			}
			wrapped, err := envelope.WrapDataKey(newKEK, newKeyID, tenant, dek)
			if err != nil {
				return err
			}
			if err := rewrapDataKey(ctx, tx, tenant, newKeyID, wrapped); err != nil {
				return err
			}
			changed = true
			return insertAudit(ctx, tx, tenant, "", ActionRotate, actor, 0)
		})
		if err != nil {
			return rewrapped, fmt.Errorf("rotate-kek: %w", err)
		}
		if changed {
			rewrapped++
			log.InfoContext(ctx, "data key re-wrapped", "tenant", tenant, "kek_id", newKeyID)
		}
	}
	log.InfoContext(ctx, "KEK rotation finished", "rewrapped", rewrapped, "tenants", len(tenants), "kek_id", newKeyID)
	return rewrapped, nil
}

// ShredTenant deletes the tenant's data key and secret rows and records a "shred" audit row, in one
// transaction. Every ciphertext of the tenant — including copies in backups and dumps — becomes
// unreadable for good. Other tenants are untouched. A later write starts the tenant over with a new key.
func ShredTenant(ctx context.Context, pool *pgxpool.Pool, tenant string, actor Actor) error {
	if !ValidTenant(tenant) {
		return fmt.Errorf("shred: %q is not a valid tenant id", tenant)
	}
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := deleteDataKey(ctx, tx, tenant); err != nil {
			return err
		}
		if _, err := deleteTenantSecrets(ctx, tx, tenant); err != nil {
			return err
		}
		return insertAudit(ctx, tx, tenant, "", ActionShred, actor, 0)
	})
}

// AuditLog reads and (for backends outside Postgres) writes the audit trail in the secrets schema.
type AuditLog struct{ pool *pgxpool.Pool }

// NewAuditLog returns the audit trail on pool.
func NewAuditLog(pool *pgxpool.Pool) *AuditLog { return &AuditLog{pool: pool} }

// Record adds one audit row.
func (a *AuditLog) Record(ctx context.Context, tenant, name, action string, actor Actor, version int64) error {
	return insertAudit(ctx, a.pool, tenant, name, action, actor, version)
}

// List returns up to limit events of tenant (optionally one name), newest first, below beforeID (0 = newest).
func (a *AuditLog) List(ctx context.Context, tenant, name string, beforeID int64, limit int) ([]AuditEvent, error) {
	return listAudit(ctx, a.pool, tenant, name, beforeID, limit)
}

// KEKUsageOf reports how many data keys each KEK id wraps.
func KEKUsageOf(ctx context.Context, pool *pgxpool.Pool) (map[string]int64, error) {
	usage, err := kekUsage(ctx, pool)
	if err != nil {
		return nil, err
	}
	out := make(map[string]int64, len(usage))
	for _, u := range usage {
		out[u.KEKID] = u.Count
	}
	return out, nil
}
