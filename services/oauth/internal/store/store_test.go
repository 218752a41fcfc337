package store_test

import (
	"testing"

	"github.com/algapsa/alga-google/services/oauth/internal/store"
	"github.com/algapsa/alga-google/services/platform/pgtest"
)

// TestEveryQueryPrepares prepares every statement of queries.sql against the migrated schema: a renamed
// column or a wrong type fails here, naming the statement.
func TestEveryQueryPrepares(t *testing.T) {
	t.Parallel()
	pgtest.CheckQueries(t, store.Migrations())
}
