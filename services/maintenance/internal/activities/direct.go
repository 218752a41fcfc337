package activities

import (
	"context"
	"time"

	"github.com/algapsa/alga-google/services/maintenance/internal/upkeep"
)

// Direct is the executor of the River runner: it runs each task in this process with the retry
// policy the workflow gives its activities (transient failures retried with exponential backoff up
// to MaxAttempts; permanent ones not at all).
func Direct(ctx context.Context, a *Activities, opts upkeep.Options) upkeep.Executor {
	return &direct{ctx: ctx, a: a, opts: opts}
}

type direct struct {
	ctx  context.Context
	a    *Activities
	opts upkeep.Options
}

func (d *direct) Execute(t upkeep.Task) upkeep.StepResult {
	attempts := max(d.opts.MaxAttempts, 1)
	wait := d.opts.InitialInterval
	if wait <= 0 {
		wait = time.Second
	}
	var r upkeep.StepResult
	for i := 1; ; i++ {
		ctx, cancel := d.ctx, context.CancelFunc(func() {})
		if d.opts.StepTimeout > 0 {
			ctx, cancel = context.WithTimeout(d.ctx, d.opts.StepTimeout)
		}
		r = d.a.Execute(ctx, t)
		timedOut := ctx.Err() != nil && d.ctx.Err() == nil
		cancel()
		if timedOut && r.Failed() {
			r = upkeep.Failure(t.Step, upkeep.ClassTransient, "step_timed_out", "the step did not finish in time (start-to-close timeout)", "")
		}
		if !r.Failed() || r.Permanent() || i >= attempts || d.ctx.Err() != nil {
			return r
		}
		select {
		case <-d.ctx.Done():
			return r
		case <-time.After(wait):
		}
		wait = min(wait*2, time.Minute)
	}
}
