package harness

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/testsuite"

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

// TemporalCLI is the Temporal CLI the Makefile builds into bin/ at the repository root (or
// ALGA_TEMPORAL_CLI). A missing binary fails the test: a skipped integration test proves nothing.
func TemporalCLI(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("ALGA_TEMPORAL_CLI"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("ALGA_TEMPORAL_CLI=%s: %v", p, err)
		}
		return p
	}
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			p := filepath.Join(dir, "bin", "temporal")
			if _, err := os.Stat(p); err != nil {
				t.Fatalf("the Temporal CLI is missing at %s: build it once with `make temporal-cli` (or set ALGA_TEMPORAL_CLI)", p)
			}
			return p
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.work above the test: cannot find bin/temporal (set ALGA_TEMPORAL_CLI)")
		}
		dir = parent
	}
}

// StartTemporal starts a Temporal dev server (testsuite.StartDevServer with ExistingPath) for the
// test; it stops when the test ends.
func StartTemporal(t testing.TB) *Temporal {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := testsuite.StartDevServer(ctx, testsuite.DevServerOptions{
		ExistingPath:  TemporalCLI(t),
		ClientOptions: &client.Options{Namespace: "default", Logger: quietTemporalLogger{}},
		LogLevel:      "error",
		Stdout:        io.Discard,
		Stderr:        io.Discard,
	})
	if err != nil {
		t.Fatalf("starting the Temporal dev server: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Stop(); err != nil && !errors.Is(err, os.ErrProcessDone) {
			t.Logf("stopping the Temporal dev server: %v", err)
		}
	})
	return &Temporal{Address: srv.FrontendHostPort(), Namespace: "default", Client: srv.Client()}
}

// ScheduleID is the tenant's maintenance Schedule under the Temporal runner.
func ScheduleID(tenant string) string { return "google-maintenance/" + tenant }

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

// riverTick is the River runner's periodic job (google_maintenance_tick, queue maintenance_tick):
// it lists the configured tenants and enqueues each one's run.
type riverTick struct{}

func (riverTick) Kind() string { return "google_maintenance_tick" }

// TriggerRiverMaintenance fires the River runner's periodic maintenance job now (scheduled runs of
// every configured tenant, as at its interval), by inserting it into the maintenance schema's queue.
func (s *Suite) TriggerRiverMaintenance(t testing.TB, ctx context.Context) {
	t.Helper()
	rc, err := river.NewClient(riverpgxv5.New(s.App.Deps().Pool), &river.Config{Schema: "maintenance"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rc.Insert(ctx, riverTick{}, &river.InsertOpts{Queue: "maintenance_tick"}); err != nil {
		t.Fatalf("inserting the maintenance tick: %v", err)
	}
}

var _ river.JobArgs = riverTick{}

// quietTemporalLogger drops the test client's logs.
type quietTemporalLogger struct{}

func (quietTemporalLogger) Debug(string, ...any) {}
func (quietTemporalLogger) Info(string, ...any)  {}
func (quietTemporalLogger) Warn(string, ...any)  {}
func (quietTemporalLogger) Error(string, ...any) {}
