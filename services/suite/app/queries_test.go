package app_test

import (
	"testing"

	"github.com/algapsa/alga-google/services/platform/pgtest"
	"github.com/algapsa/alga-google/services/suite/app"
)

// Every statement of every service is prepared against its migrated schema: a misspelled column or a
// dropped table fails here, naming the statement, instead of a request in production.
func TestEveryServiceQueryPrepares(t *testing.T) {
	t.Parallel()
	checked := 0
	for _, name := range app.AllTargets {
		m := app.Registry[name]().Migrations()
		if m == nil {
			continue
		}
		checked++
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			pgtest.CheckQueries(t, m)
		})
	}
	if checked == 0 {
		t.Fatal("no target owns a schema")
	}
}
