package pg_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/algapsa/alga-google/services/platform/pg"
)

func TestParseQueries(t *testing.T) {
	t.Parallel()
	q := pg.ParseQueries(`-- a header comment
-- name: GetThing
SELECT * FROM things
WHERE id = $1;

-- name: DeleteThing
DELETE FROM things WHERE id = $1;
`)
	require.Equal(t, "SELECT * FROM things\nWHERE id = $1;", q.Get("GetThing"))
	require.Equal(t, "DELETE FROM things WHERE id = $1;", q.Get("DeleteThing"))
	require.Len(t, q, 2)
	require.Panics(t, func() { q.Get("Nope") })
}
