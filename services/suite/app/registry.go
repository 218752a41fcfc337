package app

import (
	"flag"
	"fmt"
	"io"

	"github.com/algapsa/alga-google/services/calendar"
	"github.com/algapsa/alga-google/services/gateway"
	"github.com/algapsa/alga-google/services/gmail"
	"github.com/algapsa/alga-google/services/maintenance"
	"github.com/algapsa/alga-google/services/oauth"
	"github.com/algapsa/alga-google/services/platform/config"
	"github.com/algapsa/alga-google/services/platform/target"
	"github.com/algapsa/alga-google/services/secrets"
)

// Registry maps target names to constructors. Each service module exposes NewTarget.
var Registry = map[string]func() target.Target{
	target.Gateway:  gateway.NewTarget,
	target.Secrets:  secrets.NewTarget,
	target.Gmail:    gmail.NewTarget,
	target.OAuth:    oauth.NewTarget,
	target.Calendar: calendar.NewTarget,
	target.Worker:   maintenance.NewTarget,
}

// NewTargets constructs every target of the binary (none started) and declares all their settings on
// b, so `serve --help` lists each setting once whichever targets run.
func NewTargets(b *config.Binder) map[string]target.Target {
	out := map[string]target.Target{}
	for _, name := range AllTargets {
		t := Registry[name]()
		t.Bind(b)
		out[name] = t
	}
	return out
}

// Select returns the named targets of all (names as ExpandTargets returns them).
func Select(all map[string]target.Target, names []string) []target.Target {
	out := make([]target.Target, 0, len(names))
	for _, n := range names {
		out = append(out, all[n])
	}
	return out
}

// AllTargets is what --target=all runs.
var AllTargets = []string{target.Secrets, target.OAuth, target.Gmail, target.Calendar, target.Worker, target.Gateway}

// NewTargetsWith constructs every target with its own settings given by flag name (tests, tools), parsed
// by the same declarations the binary's flags use; a setting no target declares is an error.
func NewTargetsWith(settings map[string]string) (map[string]target.Target, error) {
	fs := flag.NewFlagSet("targets", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	all := NewTargets(config.NewBinder(fs))
	args := make([]string, 0, len(settings))
	for k, v := range settings {
		args = append(args, "--"+k+"="+v)
	}
	if err := fs.Parse(args); err != nil {
		return nil, fmt.Errorf("target settings: %w", err)
	}
	return all, nil
}
