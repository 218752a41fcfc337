package harness

import (
	"context"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/algapsa/alga-google/services/maintenance/maintenancetesting"
	"github.com/algapsa/alga-google/services/platform/config"
)

// Scheduled maintenance under test: a real Temporal dev server (the pinned CLI in bin/, never
// downloaded) and a way to fire the schedule now instead of waiting for its interval.

// Temporal is a Temporal dev server started for one test.
type Temporal struct {
	// Address is the frontend's host:port.
	Address   string
	Namespace string
	// Client is a client of the dev server (the test's own, e.g. to trigger or inspect schedules).
	Client client.Client
}

// Configure points a suite at the dev server with the Temporal runner (use as Options.Configure, or
// call from one).
func (tp *Temporal) Configure(c *config.Config) {
	c.JobRunner, c.TemporalAddress, c.TemporalNamespace = "temporal", tp.Address, tp.Namespace
}

// StartTemporal starts a Temporal dev server (the pinned CLI in bin/, never downloaded) for the test;
// it stops when the test ends.
func StartTemporal(t testing.TB) *Temporal {
	t.Helper()
	addr, c := maintenancetesting.StartTemporal(t)
	return &Temporal{Address: addr, Namespace: maintenancetesting.Namespace, Client: c}
}

// ScheduleID is the tenant's maintenance Schedule under the Temporal runner.
func ScheduleID(tenant string) string { return maintenancetesting.ScheduleID(tenant) }

// TriggerSchedule fires the tenant's maintenance Schedule now (a scheduled run, as at its interval),
// waiting until the schedule exists (it is created when the tenant's Google setup is saved).
func (tp *Temporal) TriggerSchedule(t testing.TB, ctx context.Context, tenant string) {
	t.Helper()
	h := tp.Client.ScheduleClient().GetHandle(ctx, ScheduleID(tenant))
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := h.Describe(ctx)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no schedule %s: %v", ScheduleID(tenant), err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := h.Trigger(ctx, client.ScheduleTriggerOptions{Overlap: enumspb.SCHEDULE_OVERLAP_POLICY_SKIP}); err != nil {
		t.Fatalf("triggering %s: %v", ScheduleID(tenant), err)
	}
}

// TriggerRiverMaintenance fires the River runner's periodic maintenance job now (scheduled runs of
// every configured tenant, as at its interval), through the maintenance service's own test helper.
func (s *Suite) TriggerRiverMaintenance(t testing.TB, ctx context.Context) {
	t.Helper()
	if err := maintenancetesting.TriggerRiverTick(ctx, s.App.Deps().Pool); err != nil {
		t.Fatalf("firing the maintenance tick: %v", err)
	}
}
