package pg

import (
	"context"
	"regexp"
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

// Queries are the named statements of a .sql file, so SQL stays in SQL files instead of being scattered
// through handlers. Each statement starts with a line `-- name: Name` and runs to the next such line.
type Queries map[string]string

var queryName = regexp.MustCompile(`(?m)^-- name: (\w+)\s*$`)

// ParseQueries splits src into named statements.
func ParseQueries(src string) Queries {
	out := Queries{}
	idx := queryName.FindAllStringSubmatchIndex(src, -1)
	for i, m := range idx {
		end := len(src)
		if i+1 < len(idx) {
			end = idx[i+1][0]
		}
		out[src[m[2]:m[3]]] = strings.TrimSpace(src[m[1]:end])
	}
	return out
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
