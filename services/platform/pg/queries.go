package pg

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// DB is what a query layer runs on: a pool or a transaction.
type DB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Queries are the named statements of a service's queries.sql, so SQL stays in SQL files instead of
// being scattered through handlers. Each statement starts with a line `-- name: Name` and runs to the
// next such line. Parameters are named (`@tenant`, `@provider_id`), never positional: a store function
// passes them as Args, which pgx checks against the statement (a missing or extra name is an error, not
// a silent NULL). Every statement is prepared against the migrated schema by CheckQueries, so a renamed
// column fails `make test` rather than a request in production.
type Queries map[string]string

// Args are the named parameters of one statement (pgx.StrictNamedArgs: every @name the statement uses
// must be given, and nothing else).
type Args = pgx.StrictNamedArgs

var queryName = regexp.MustCompile(`(?m)^-- name: (\w+)\s*$`)

// positional finds $1-style parameters, which named statements must not use.
var positional = regexp.MustCompile(`\$\d+`)

// ParseQueries splits src into named statements. It panics on a positional parameter or a duplicated
// name: both are programming errors in an embedded file, caught by the first test that loads the package.
func ParseQueries(src string) Queries {
	out := Queries{}
	idx := queryName.FindAllStringSubmatchIndex(src, -1)
	for i, m := range idx {
		end := len(src)
		if i+1 < len(idx) {
			end = idx[i+1][0]
		}
		name := src[m[2]:m[3]]
		body := strings.TrimSpace(src[m[1]:end])
		if _, dup := out[name]; dup {
			panic("pg: query " + name + " is defined twice")
		}
		if positional.MatchString(stripComments(body)) {
			panic("pg: query " + name + " uses a positional parameter; name it (@name)")
		}
		out[name] = body
	}
	return out
}

// stripComments drops `--` comment lines, whose text may mention $1 in prose.
func stripComments(sql string) string {
	var b strings.Builder
	for _, line := range strings.Split(sql, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "--") {
			continue
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	return b.String()
}

// Get returns the statement called name. An unknown name is a programming error (caught by any test that
// runs the query), so it panics rather than sending an empty statement to the database.
func (q Queries) Get(name string) string {
	s, ok := q[name]
	if !ok {
		panic("pg: no query named " + name)
	}
	return s
}

// Names returns the statement names in order.
func (q Queries) Names() []string {
	names := make([]string, 0, len(q))
	for n := range q {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Prepare asks PostgreSQL to parse, resolve and type every statement on conn (whose schema is migrated),
// without running any. It returns one error naming every statement that fails, e.g. a misspelled column.
func (q Queries) Prepare(ctx context.Context, conn *pgx.Conn) error {
	var errs []error
	for _, name := range q.Names() {
		sql, _, err := pgx.NamedArgs{}.RewriteQuery(ctx, conn, q[name], nil)
		if err == nil {
			_, err = conn.Prepare(ctx, "", sql)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("query %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}
