// Package maintenancetesting is what other modules' tests use to drive the worker target: a real
// Temporal dev server from the pinned CLI the Makefile builds (never downloaded), the tenant's Schedule
// id, and a way to fire the River runner's periodic pass now. Tests of other modules use these instead
// of writing the maintenance schema's tables themselves.
package maintenancetesting

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/testsuite"

	"github.com/algapsa/alga-google/services/maintenance/internal/runner"
)

// TemporalCLI is the Temporal CLI `make temporal-cli` builds into bin/ at the repository root (or
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

// Namespace is the namespace of the dev servers StartTemporal starts.
const Namespace = "default"

// StartTemporal starts a Temporal dev server (testsuite.StartDevServer with ExistingPath) for the
// test and returns its frontend address and a client on it; it stops when the test ends.
func StartTemporal(t testing.TB) (string, client.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := testsuite.StartDevServer(ctx, testsuite.DevServerOptions{
		ExistingPath:  TemporalCLI(t),
		ClientOptions: &client.Options{Namespace: Namespace, Logger: quietLogger{}},
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
	return srv.FrontendHostPort(), srv.Client()
}

// ScheduleID is the tenant's maintenance Schedule under the Temporal runner.
func ScheduleID(tenant string) string { return runner.ScheduleID(tenant) }

// TriggerRiverTick fires the River runner's periodic pass now (every configured tenant's scheduled
// run, as at its interval) on the database the worker uses.
func TriggerRiverTick(ctx context.Context, pool *pgxpool.Pool) error {
	return runner.InsertTick(ctx, pool)
}

// quietLogger drops the test client's logs.
type quietLogger struct{}

func (quietLogger) Debug(string, ...any) {}
func (quietLogger) Info(string, ...any)  {}
func (quietLogger) Warn(string, ...any)  {}
func (quietLogger) Error(string, ...any) {}
