// Package runner runs tenants' maintenance under the configured job runner: River (embedded, the
// default) or Temporal (per-tenant Schedules starting the workflow). Both run the same plan, the same
// per-provider flow and the same activity code, and record every run in the history.
package runner

import (
	"context"
	"time"

	"github.com/algapsa/alga-google/services/maintenance/internal/upkeep"
)

// Runner is what the MaintenanceService asks of the configured runner.
type Runner interface {
	// Name is upkeep.RunnerRiver or upkeep.RunnerTemporal.
	Name() string
	// RunNow runs the tenant's maintenance now, waits for it and returns the recorded run.
	RunNow(ctx context.Context, tenant string) (upkeep.Run, error)
	// NextRun says when the tenant's next scheduled run is expected (ok=false: none scheduled).
	NextRun(ctx context.Context, tenant string) (time.Time, bool, error)
}

// ScheduleID is the id of a tenant's Temporal Schedule.
func ScheduleID(tenant string) string { return "google-maintenance/" + tenant }
