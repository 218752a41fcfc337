package app

import (
	"github.com/algapsa/alga-google/services/calendar"
	"github.com/algapsa/alga-google/services/gateway"
	"github.com/algapsa/alga-google/services/gmail"
	"github.com/algapsa/alga-google/services/oauth"
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
}

// AllTargets is what --target=all runs.
var AllTargets = []string{target.Secrets, target.OAuth, target.Gmail, target.Calendar, target.Gateway}
