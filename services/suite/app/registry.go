package app

import (
	"github.com/algapsa/alga-google/services/gateway"
	"github.com/algapsa/alga-google/services/platform/target"
)

// Registry maps target names to constructors. Each service module exposes NewTarget.
var Registry = map[string]func() target.Target{
	target.Gateway: gateway.NewTarget,
}

// AllTargets is what --target=all runs.
var AllTargets = []string{target.Gateway}
