package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"golang.org/x/sync/errgroup"

	"github.com/algapsa/alga-google/services/maintenance/internal/activities"
	"github.com/algapsa/alga-google/services/maintenance/internal/store"
	"github.com/algapsa/alga-google/services/maintenance/internal/upkeep"
	"github.com/algapsa/alga-google/services/maintenance/internal/workflow"
	"github.com/algapsa/alga-google/services/platform/jobs"
)

// Queue is the River queue of the tenants' runs; its MaxWorkers bounds the tenants maintained at once.
const Queue = "maintenance"

// tickQueue holds the periodic job that enqueues the tenants' runs (one worker: it only inserts).
const tickQueue = "maintenance_tick"

// River is the embedded runner: a periodic job every Interval enqueues one job per configured tenant
// (coalesced by tenant), each running that tenant's maintenance in this process. Tenants are
// isolated: each is its own job, at most Concurrency of them run at once, and within a job at most
// Options.Concurrency providers — so a tenant with a thousand mailboxes or a slow Google holds one
// worker slot, never another tenant's job.
type River struct {
	Pool        *pgxpool.Pool
	Activities  *activities.Activities
	Store       *store.Store
	Interval    time.Duration
	Concurrency int
	// RunTimeout bounds one tenant's run (the job's timeout).
	RunTimeout time.Duration
	Logger     *slog.Logger
	TestOnly   bool

	client *jobs.Client
}

// Name implements Runner.
func (*River) Name() string { return upkeep.RunnerRiver }

type tickArgs struct{}

func (tickArgs) Kind() string { return "google_maintenance_tick" }

func (tickArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{Queue: tickQueue} }

type tenantArgs struct {
	Tenant string `json:"tenant" river:"unique"`
}

func (tenantArgs) Kind() string { return "google_maintenance_tenant" }

func (tenantArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{Queue: Queue} }

// Start migrates River's tables in the maintenance schema and starts the client (the periodic job
// runs on the leader replica only) until ctx ends.
func (r *River) Start(ctx context.Context) error {
	workers := river.NewWorkers()
	river.AddWorker(workers, river.WorkFunc(func(ctx context.Context, _ *river.Job[tickArgs]) error {
		return r.enqueueAll(ctx)
	}))
	river.AddWorker(workers, &tenantWorker{r: r})
	tick := river.NewPeriodicJob(river.PeriodicInterval(r.Interval), func() (river.JobArgs, *river.InsertOpts) {
		opts := jobs.Coalesce()
		opts.Queue = tickQueue
		return tickArgs{}, opts
	}, &river.PeriodicJobOpts{RunOnStart: true})
	client, err := jobs.New(ctx, r.Pool, jobs.Options{
		Schema:  store.Schema,
		Workers: workers,
		Queues: map[string]river.QueueConfig{
			Queue:     {MaxWorkers: max(r.Concurrency, 1)},
			tickQueue: {MaxWorkers: 1},
		},
		PeriodicJobs: []*river.PeriodicJob{tick},
		Logger:       r.Logger,
		TestOnly:     r.TestOnly,
	})
	if err != nil {
		return err
	}
	if err := client.Start(ctx); err != nil {
		return fmt.Errorf("starting River: %w", err)
	}
	r.client = client
	return nil
}

// Stop waits until River has stopped (its context ended), bounded by ctx.
func (r *River) Stop(ctx context.Context) error { return jobs.Stop(ctx, r.client) }

// enqueueAll inserts one run job per configured tenant; a tenant whose job is still queued or
// running gets no second one.
func (r *River) enqueueAll(ctx context.Context) error {
	tenants, err := r.Activities.ListTenants(ctx)
	if err != nil {
		return err
	}
	if len(tenants) == 0 {
		return nil
	}
	params := make([]river.InsertManyParams, 0, len(tenants))
	for _, t := range tenants {
		opts := jobs.Coalesce()
		opts.Queue = Queue
		params = append(params, river.InsertManyParams{Args: tenantArgs{Tenant: t}, InsertOpts: opts})
	}
	_, err = r.client.InsertMany(ctx, params)
	return err
}

type tenantWorker struct {
	river.WorkerDefaults[tenantArgs]
	r *River
}

func (w *tenantWorker) Timeout(*river.Job[tenantArgs]) time.Duration { return w.r.runTimeout() }

// Work runs the tenant's scheduled maintenance. Failed providers are recorded in the run, not
// returned: the next run retries what is still due.
func (w *tenantWorker) Work(ctx context.Context, job *river.Job[tenantArgs]) error {
	_, err := w.r.Run(ctx, job.Args.Tenant, upkeep.TriggerSchedule)
	return err
}

func (r *River) runTimeout() time.Duration {
	if r.RunTimeout > 0 {
		return r.RunTimeout
	}
	return 8 * time.Minute
}

// RunNow implements Runner: the same code path as the tenant's job, in this request.
func (r *River) RunNow(ctx context.Context, tenant string) (upkeep.Run, error) {
	ctx, cancel := context.WithTimeout(ctx, r.runTimeout())
	defer cancel()
	return r.Run(ctx, tenant, upkeep.TriggerManual)
}

// NextRun implements Runner: the last scheduled run plus the interval (River runs the periodic job
// every Interval on its leader).
func (r *River) NextRun(ctx context.Context, tenant string) (time.Time, bool, error) {
	last, ok, err := r.Store.LastScheduledRunStart(ctx, tenant)
	if err != nil || !ok {
		return time.Time{}, false, err
	}
	next := last.Add(r.Interval)
	if now := time.Now(); next.Before(now) {
		next = now
	}
	return next, true, nil
}

// Run runs one tenant's maintenance under the tenant's run lock (a scheduled job and a run-now of
// the same tenant never overlap, on any replica) and records it.
func (r *River) Run(ctx context.Context, tenant, trigger string) (upkeep.Run, error) {
	var run upkeep.Run
	err := r.Store.WithTenantLock(ctx, tenant, r.runTimeout()+time.Minute, func(ctx context.Context) error {
		run = Execute(ctx, r.Activities, upkeep.RunnerRiver, tenant, trigger)
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		return r.Activities.RecordRun(rctx, run)
	})
	return run, err
}

// Execute plans and maintains one tenant in this process — what the workflow does with activities —
// and returns the run to record.
func Execute(ctx context.Context, a *activities.Activities, runner, tenant, trigger string) upkeep.Run {
	now := time.Now
	run := upkeep.Run{RunID: uuid.NewString(), Tenant: tenant, Runner: runner, Trigger: trigger, StartTime: now()}
	plan, err := planWithRetry(ctx, a, activities.PlanInput{Tenant: tenant, RunID: run.RunID})
	if err != nil {
		run.ErrorCode, run.Message = "plan_failed", activities.ResultFromError("plan", err).Message
		run.EndTime = now()
		return run
	}
	opts := workflow.WithDefaults(plan.Options)
	x := activities.Direct(ctx, a, opts)
	run.Providers = make([]upkeep.ProviderResult, len(plan.Items))
	g := errgroup.Group{}
	g.SetLimit(opts.Concurrency)
	for i, it := range plan.Items {
		if !it.Due() {
			run.Providers[i] = upkeep.Maintain(nil, it)
			continue
		}
		g.Go(func() error {
			run.Providers[i] = upkeep.Maintain(x, it)
			return nil
		})
	}
	_ = g.Wait()
	if ctx.Err() != nil {
		run.ErrorCode, run.Message = "run_interrupted", "the run was cut short (timeout or shutdown); the next run continues with what is still due"
	}
	run.EndTime = now()
	return run
}

// planWithRetry plans with the workflow's plan retry policy (3 attempts, transient failures only).
func planWithRetry(ctx context.Context, a *activities.Activities, in activities.PlanInput) (upkeep.Plan, error) {
	wait := time.Second
	for i := 1; ; i++ {
		plan, err := a.Plan(ctx, in)
		if err == nil {
			return plan, nil
		}
		if i >= 3 || nonRetryable(err) || ctx.Err() != nil {
			return plan, err
		}
		select {
		case <-ctx.Done():
			return plan, err
		case <-time.After(wait):
		}
		wait *= 2
	}
}

func nonRetryable(err error) bool {
	type nr interface{ NonRetryable() bool }
	var e nr
	return errors.As(err, &e) && e.NonRetryable()
}

// InsertTick enqueues the periodic pass now, as its interval would (tests, operators' tools): an
// insert-only River client on the maintenance schema, coalesced with a pass already waiting.
func InsertTick(ctx context.Context, pool *pgxpool.Pool) error {
	c, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Schema: store.Schema})
	if err != nil {
		return err
	}
	opts := jobs.Coalesce()
	opts.Queue = tickQueue
	_, err = c.Insert(ctx, tickArgs{}, opts)
	return err
}
