package store_test

import (
	"testing"

	"github.com/algapsa/alga-google/services/calendar/internal/store"
	"github.com/algapsa/alga-google/services/platform/pgtest"
)

// TestEveryQueryPrepares prepares every statement of queries.sql against the migrated schema, so a
// misspelled column or a wrong type fails here rather than in a request.
func TestEveryQueryPrepares(t *testing.T) {
	t.Parallel()
	pgtest.CheckQueries(t, store.Migrations())
}
