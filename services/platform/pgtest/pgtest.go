// Package pgtest gives each test its own freshly created PostgreSQL database on the real server named by
// TEST_DATABASE_URL (or DATABASE_URL), dropped when the test ends. No mocks of our own database.
package pgtest

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/algapsa/alga-google/services/platform/jobs"
	"github.com/algapsa/alga-google/services/platform/pg"
)

var counter atomic.Int64

// AdminURL returns the URL tests connect to. It fails the test when none is configured,
// because a test suite that silently skips its database tests proves nothing.
func AdminURL(t testing.TB) string {
	t.Helper()
	for _, k := range []string{"TEST_DATABASE_URL", "DATABASE_URL"} {
		if v := os.Getenv(k); v != "" {
			return v
		}
	}
	t.Fatal("TEST_DATABASE_URL is not set: run tests through `make test`, which starts PostgreSQL")
	return ""
}

// NewDatabase creates an empty database and returns its URL; it is dropped at the end of the test.
func NewDatabase(t testing.TB) string {
	t.Helper()
	admin := AdminURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatalf("connecting to test PostgreSQL: %v", err)
	}
	defer conn.Close(ctx)
	name := fmt.Sprintf("algatest_%d_%d_%d", os.Getpid(), time.Now().UnixNano()%1e9, counter.Add(1))
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("creating test database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, admin)
		if err != nil {
			return
		}
		defer c.Close(ctx)
		_, _ = c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	return withDatabase(admin, name)
}

// NewPool creates a database (see NewDatabase) and returns a pool on it, closed at the end of the test.
func NewPool(t testing.TB) (*pgxpool.Pool, string) {
	t.Helper()
	dbURL := NewDatabase(t)
	pool, err := pgxpool.New(context.Background(), dbURL)
	if err != nil {
		t.Fatalf("opening pool: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool, dbURL
}

// withDatabase swaps the database name of a postgres URL (URL or keyword/value form).
func withDatabase(raw, db string) string {
	if strings.HasPrefix(raw, "postgres://") || strings.HasPrefix(raw, "postgresql://") {
		u, err := url.Parse(raw)
		if err == nil {
			u.Path = "/" + db
			return u.String()
		}
	}
	return raw + " dbname=" + db
}

// CheckQueries migrates a fresh database with m (and River's tables in the same schema, which some
// statements read) and prepares every statement of m.Queries against it: a misspelled column, a wrong
// type or a missing table fails the test, naming the statement.
func CheckQueries(t testing.TB, m *pg.Migrations) {
	t.Helper()
	if len(m.Queries) == 0 {
		t.Fatalf("schema %s declares no queries", m.Schema)
	}
	pool, _ := NewPool(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := m.Apply(ctx, pool); err != nil {
		t.Fatalf("migrating %s: %v", m.Schema, err)
	}
	if err := jobs.Migrate(ctx, pool, m.Schema, nil); err != nil {
		t.Fatalf("river tables in %s: %v", m.Schema, err)
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if err := m.Queries.Prepare(ctx, conn.Conn()); err != nil {
		t.Fatalf("schema %s: %v", m.Schema, err)
	}
}
