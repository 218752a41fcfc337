package service_test

import (
	"context"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	maintenancev1 "github.com/algapsa/alga-google/gen/alga/maintenance/v1"
	"github.com/algapsa/alga-google/services/platform/auth"
)

// scheduleRecorder is the worker's MaintenanceScheduleService as the oauth tests see it.
type scheduleRecorder struct {
	maintenancev1.UnimplementedMaintenanceScheduleServiceServer
	mu    sync.Mutex
	calls []string // "<caller service>/<tenant>/<configured>"
}

func (r *scheduleRecorder) SyncGoogleMaintenanceSchedule(ctx context.Context, req *maintenancev1.SyncGoogleMaintenanceScheduleRequest) (*maintenancev1.SyncGoogleMaintenanceScheduleResponse, error) {
	id, _ := auth.FromContext(ctx)
	r.mu.Lock()
	defer r.mu.Unlock()
	state := "removed"
	if req.GetConfigured() {
		state = "configured"
	}
	r.calls = append(r.calls, id.Service+"/"+id.Tenant+"/"+state)
	return &maintenancev1.SyncGoogleMaintenanceScheduleResponse{Scheduled: req.GetConfigured()}, nil
}

func (r *scheduleRecorder) seen() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.calls...)
}

// Under the Temporal runner a saved setup tells the worker at once, for the saving tenant only, so
// the tenant's maintenance schedule exists from the first save.
func TestSavedSetupSyncsTheMaintenanceSchedule(t *testing.T) {
	t.Parallel()
	b := setup(t, 1, "")
	b.configure(t, "tenant-sched")
	require.Equal(t, []string{"oauth/tenant-sched/configured"}, b.schedules.seen(), "oauth calls as its own identity")
}
