// Package metrics registers a service's Prometheus collectors the one way every service does: errors
// are returned (never a panic), and a collector already registered under the same name — a retried
// Start, two feeds on one registry — is reused rather than refused.
package metrics

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Registrar registers a group of collectors and keeps the first error, so a constructor can declare
// them in one literal and check once.
type Registrar struct {
	reg prometheus.Registerer
	err error
}

// NewRegistrar registers on reg; a nil reg registers nothing (tests).
func NewRegistrar(reg prometheus.Registerer) *Registrar { return &Registrar{reg: reg} }

// Err is the first registration error.
func (r *Registrar) Err() error { return r.err }

// Use registers c and returns the collector to use: c, or the one the registry already has under c's
// name. After an error it registers nothing more.
func Use[C prometheus.Collector](r *Registrar, c C) C {
	if r.reg == nil || r.err != nil {
		return c
	}
	if err := r.reg.Register(c); err != nil {
		var already prometheus.AlreadyRegisteredError
		if errors.As(err, &already) {
			if existing, ok := already.ExistingCollector.(C); ok {
				return existing
			}
		}
		r.err = err
	}
	return c
}
