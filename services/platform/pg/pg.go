// Package pg opens the pgx pool and applies each service's numbered, embedded migrations to the schema
// it owns. A service touches no schema but its own.
package pg

import (
	"context"
	"fmt"
	"hash/fnv"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Connect opens a pool and checks that the database answers.
func Connect(ctx context.Context, url string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL: %w", err)
	}
	if cfg.MaxConns < 8 {
		cfg.MaxConns = 8
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connecting to PostgreSQL: %w", err)
	}
	return pool, nil
}

// Migrations is one schema's ordered migration files (NNNN_description.sql in an fs.FS) and the named
// statements that run against it, which CheckQueries prepares against the migrated schema.
type Migrations struct {
	Schema string
	FS     fs.FS
	Dir    string
	// Queries are every statement of the service's query layer (its queries.sql).
	Queries Queries
}

// Load reads a service's schema from its store package's embedded files: the numbered migrations in
// migrations/ and the named statements of queries.sql. It panics on a malformed queries.sql (see
// ParseQueries): the files are compiled in, so the first test that loads the package finds it.
func Load(schema string, files fs.FS) *Migrations {
	src, err := fs.ReadFile(files, "queries.sql")
	if err != nil {
		panic("pg: schema " + schema + " has no queries.sql: " + err.Error())
	}
	return &Migrations{Schema: schema, FS: files, Dir: "migrations", Queries: ParseQueries(string(src))}
}

var migrationName = regexp.MustCompile(`^(\d{4})_[a-z0-9_]+\.sql$`)

type migration struct {
	version int
	name    string
	sql     string
}

func (m Migrations) load() ([]migration, error) {
	entries, err := fs.ReadDir(m.FS, m.Dir)
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, e := range entries {
		match := migrationName.FindStringSubmatch(e.Name())
		if match == nil {
			return nil, fmt.Errorf("migration %q: name must be NNNN_description.sql", e.Name())
		}
		v, _ := strconv.Atoi(match[1])
		body, err := fs.ReadFile(m.FS, path.Join(m.Dir, e.Name()))
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: v, name: e.Name(), sql: string(body)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	for i, mg := range out {
		if mg.version != i+1 {
			return nil, fmt.Errorf("schema %s: migrations must be numbered 0001, 0002, … without gaps (found %s)", m.Schema, mg.name)
		}
	}
	return out, nil
}

// Apply creates the schema and runs every migration not yet applied, each in its own transaction,
// serialized across replicas by an advisory lock.
func (m Migrations) Apply(ctx context.Context, pool *pgxpool.Pool) error {
	migs, err := m.load()
	if err != nil {
		return err
	}
	ident := pgx.Identifier{m.Schema}.Sanitize()
	h := fnv.New64a()
	h.Write([]byte("alga-google-migrate:" + m.Schema))
	lockID := int64(h.Sum64() >> 1)

	conn, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", lockID); err != nil {
		return err
	}
	defer conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", lockID) //nolint:errcheck

	if _, err := conn.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+ident); err != nil {
		return fmt.Errorf("creating schema %s: %w", m.Schema, err)
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+ident+`.schema_migrations (
		version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return err
	}
	var current int
	if err := conn.QueryRow(ctx, "SELECT coalesce(max(version),0) FROM "+ident+".schema_migrations").Scan(&current); err != nil {
		return err
	}
	for _, mg := range migs {
		if mg.version <= current {
			continue
		}
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "SET LOCAL search_path TO "+ident); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, mg.sql); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO "+ident+".schema_migrations (version, name) VALUES ($1, $2)", mg.version, mg.name)
			return err
		})
		if err != nil {
			return fmt.Errorf("schema %s migration %s: %w", m.Schema, mg.name, err)
		}
	}
	return nil
}

// Applied reports whether every migration has been applied (readiness).
func (m Migrations) Applied(ctx context.Context, pool *pgxpool.Pool) (bool, error) {
	migs, err := m.load()
	if err != nil {
		return false, err
	}
	var current int
	err = pool.QueryRow(ctx, "SELECT coalesce(max(version),0) FROM "+pgx.Identifier{m.Schema}.Sanitize()+".schema_migrations").Scan(&current)
	if err != nil {
		return false, nil //nolint:nilerr // a missing table means "not migrated yet", not a failure
	}
	return current >= len(migs), nil
}
