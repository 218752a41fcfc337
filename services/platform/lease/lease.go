// Package lease is a per-provider lease (holder + expiry) kept in a table of a service's own schema: the
// sync lease Gmail and Calendar hold while a sync job runs, so that a sweeper can tell a live job (it
// renews the lease, see jobs.KeepLease) from a dead replica's (its lease lapsed). The SQL is the
// package's (queries.sql); the table is the service's, created by its own migrations with the columns
// provider_id (uuid PRIMARY KEY REFERENCES the provider ON DELETE CASCADE), tenant, holder, expire_time.
package lease

import (
	"context"
	_ "embed"
	"errors"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/riverqueue/river"

	"github.com/algapsa/alga-google/services/platform/jobs"
	"github.com/algapsa/alga-google/services/platform/pg"
)

//go:embed queries.sql
var src string

// statements are queries.sql, parsed once; New binds them to a table.
var statements = pg.ParseQueries(src)

// qualified is a schema-qualified table name: it is written into the SQL, so nothing else is accepted.
var qualified = regexp.MustCompile(`^[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*$`)

// Table is the lease table of one service. Every statement is scoped by tenant.
type Table struct {
	name     string
	notFound error
	queries  pg.Queries
}

// New binds the lease statements to table ("gmail.sync_leases"). notFound is what Acquire returns when
// the provider the lease is for was deleted (the foreign key refuses the row): the store's own
// not-found error, so its callers classify one error. A malformed name is a programming error: panic.
func New(table string, notFound error) *Table {
	if !qualified.MatchString(table) {
		panic("lease: table " + strconv.Quote(table) + " is not a schema-qualified name")
	}
	t := &Table{name: table, notFound: notFound, queries: pg.Queries{}}
	for name, sql := range statements {
		t.queries[t.key(name)] = strings.ReplaceAll(sql, "{table}", table)
	}
	return t
}

// key names a statement in Queries: unique per table, so a service's schema can carry several.
func (t *Table) key(name string) string { return "lease " + t.name + " " + name }

// Queries are the table's statements, for the service's pg.Migrations (the query check prepares them
// against the migrated schema, so a table that does not match fails a test, not a sync).
func (t *Table) Queries() pg.Queries { return t.queries }

func (t *Table) q(name string) string { return t.queries.Get(t.key(name)) }

// Acquire takes the provider's lease for holder (free, expired or already holder's) for ttl; it reports
// whether holder has it now, and the notFound error when the provider is gone.
func (t *Table) Acquire(ctx context.Context, db pg.DB, tenant, provider, holder string, ttl time.Duration) (bool, error) {
	var got string
	err := db.QueryRow(ctx, t.q("Acquire"), pg.Args{"tenant": tenant, "provider_id": provider, "holder": holder,
		"ttl_seconds": ttl.Seconds()}).Scan(&got)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23503" { // the provider was deleted meanwhile
		return false, t.notFound
	}
	return err == nil, err
}

// Renew extends holder's lease by ttl; false when holder no longer has it (another holder took it after
// it lapsed, or the provider was deleted).
func (t *Table) Renew(ctx context.Context, db pg.DB, tenant, provider, holder string, ttl time.Duration) (bool, error) {
	ok, err := t.Acquire(ctx, db, tenant, provider, holder, ttl)
	if errors.Is(err, t.notFound) {
		return false, nil
	}
	return ok, err
}

// Held reports whether a holder has the provider's lease now (unexpired).
func (t *Table) Held(ctx context.Context, db pg.DB, tenant, provider string) (bool, error) {
	var held bool
	err := db.QueryRow(ctx, t.q("Held"), pg.Args{"tenant": tenant, "provider_id": provider}).Scan(&held)
	return held, err
}

// Release gives holder's lease back (a no-op when another holder has it by now).
func (t *Table) Release(ctx context.Context, db pg.DB, tenant, provider, holder string) error {
	_, err := db.Exec(ctx, t.q("Release"), pg.Args{"tenant": tenant, "provider_id": provider, "holder": holder})
	return err
}

// Keep keeps holder's lease (just taken for ttl) alive while the holder works — renewed every ttl/3
// (jobs.KeepLease) — until release is called, which stops the heartbeat and gives the lease back. The
// returned context ends if the lease is lost (taken by another holder after it lapsed, or not renewed in
// time: the database unreachable), so the holder stops rather than work on without it. db is a pool.
func (t *Table) Keep(ctx context.Context, db pg.DB, log *slog.Logger, tenant, provider, holder string, ttl time.Duration) (context.Context, func()) {
	log = log.With("provider", provider, "lease", t.name)
	hctx, stop := jobs.KeepLease(ctx, ttl, log, func(ctx context.Context) (bool, error) {
		return t.Renew(ctx, db, tenant, provider, holder, ttl)
	})
	return hctx, func() {
		stop()
		if err := t.Release(context.WithoutCancel(ctx), db, tenant, provider, holder); err != nil {
			log.WarnContext(ctx, "cannot release a lease (it expires by itself)", "err", err)
		}
	}
}

// HoldForJob is how a River job starts under the provider's lease for its whole run: it takes the lease
// for holder "job:<id>" and keeps it (Keep). With release nil the job must return err at once: nil when
// the provider was deleted (nothing to do), a one-second snooze when another holder has the lease (a run
// that was ended as abandoned but is alive after all, or a reconcile), or the database's error.
// Otherwise the job works under ctx and defers release.
func (t *Table) HoldForJob(ctx context.Context, db pg.DB, log *slog.Logger, tenant, provider string, jobID int64, ttl time.Duration) (_ context.Context, release func(), err error) {
	holder := "job:" + strconv.FormatInt(jobID, 10)
	ok, err := t.Acquire(ctx, db, tenant, provider, holder, ttl)
	switch {
	case errors.Is(err, t.notFound):
		return ctx, nil, nil
	case err != nil:
		return ctx, nil, err
	case !ok:
		return ctx, nil, river.JobSnooze(time.Second)
	}
	ctx, release = t.Keep(ctx, db, log, tenant, provider, holder, ttl)
	return ctx, release, nil
}
