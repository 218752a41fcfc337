package maintenance

import (
	"errors"
	"fmt"
	"time"

	"github.com/algapsa/alga-google/services/platform/config"
)

// Config is the worker target's own settings. The runner (ALGA_JOB_RUNNER) and Temporal's address and
// namespace (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE) are shared settings (platform config.Config).
type Config struct {
	// Interval is how often each tenant's maintenance runs. Hourly by default: every run acts only on
	// what is due (a watch renewed once a day or when it expires within RenewAhead, …), so a short
	// interval finds a lapse or a revoked grant within the hour without extra Google calls.
	Interval time.Duration
	// RenewAhead: watches and channels expiring within it are renewed.
	RenewAhead time.Duration
	// TokenMargin: a live access token expiring within it is refreshed ahead.
	TokenMargin time.Duration
	// Silence: a mailbox or calendar without a notification for this long is reconciled (Google drops
	// notifications).
	Silence time.Duration
	// TenantConcurrency bounds the providers of one tenant maintained at once.
	TenantConcurrency int
	// Concurrency bounds the tenants maintained at once by one worker process.
	Concurrency int
	// GoogleRate is the per-tenant rate limit toward Google, in calls per second (0 = unlimited).
	GoogleRate int
	// StepTimeout, HeartbeatTimeout and MaxAttempts shape each step (StartToCloseTimeout, heartbeat
	// deadline, retry policy for transient failures).
	StepTimeout      time.Duration
	HeartbeatTimeout time.Duration
	MaxAttempts      int
	// RunTimeout bounds one tenant's run under River.
	RunTimeout time.Duration
	// ReconcileEvery is how often the Temporal schedules are reconciled with the configured tenants.
	ReconcileEvery time.Duration
	// TaskQueue is the Temporal task queue of the workflow and its activities.
	TaskQueue string

	// RiverTestOnly speeds River up in tests (periodic jobs start sooner). Not a flag.
	RiverTestOnly bool
	// Now replaces the clock of the due decisions in tests. Not a flag.
	Now func() time.Time
	// RetryInterval is the first retry's backoff (doubling after); tests shorten it. Not a flag.
	RetryInterval time.Duration
}

// Bind declares the worker target's settings.
func (c *Config) Bind(b *config.Binder) {
	b.Duration(&c.Interval, "maintenance-interval", "ALGA_MAINTENANCE_INTERVAL", time.Hour, "how often each tenant's Google maintenance runs (each run acts only on what is due)")
	b.Duration(&c.RenewAhead, "maintenance-renew-ahead", "ALGA_MAINTENANCE_RENEW_AHEAD", 24*time.Hour, "renew Gmail watches and Calendar channels that expire within this window")
	b.Duration(&c.TokenMargin, "maintenance-token-margin", "ALGA_MAINTENANCE_TOKEN_MARGIN", 15*time.Minute, "refresh a live access token that expires within this margin (every connection is also refreshed daily)")
	b.Duration(&c.Silence, "maintenance-silence", "ALGA_MAINTENANCE_SILENCE", 6*time.Hour, "reconcile a mailbox or calendar that had no notification or sync for this long")
	b.Int(&c.TenantConcurrency, "maintenance-tenant-concurrency", "ALGA_MAINTENANCE_TENANT_CONCURRENCY", 4, "providers of one tenant maintained at once")
	b.Int(&c.Concurrency, "maintenance-concurrency", "ALGA_MAINTENANCE_CONCURRENCY", 8, "tenants maintained at once by one worker")
	b.Int(&c.GoogleRate, "maintenance-google-rate", "ALGA_MAINTENANCE_GOOGLE_RATE", 10, "per-tenant rate limit toward Google during maintenance, calls per second (0 = unlimited)")
	b.Duration(&c.StepTimeout, "maintenance-step-timeout", "ALGA_MAINTENANCE_STEP_TIMEOUT", 2*time.Minute, "start-to-close timeout of one maintenance step")
	b.Duration(&c.HeartbeatTimeout, "maintenance-heartbeat-timeout", "ALGA_MAINTENANCE_HEARTBEAT_TIMEOUT", 30*time.Second, "heartbeat timeout of a maintenance step (Temporal)")
	b.Int(&c.MaxAttempts, "maintenance-max-attempts", "ALGA_MAINTENANCE_MAX_ATTEMPTS", 3, "attempts of a step that fails transiently (permanent failures are not retried)")
	b.Duration(&c.RunTimeout, "maintenance-run-timeout", "ALGA_MAINTENANCE_RUN_TIMEOUT", 8*time.Minute, "how long one tenant's run may take under River")
	b.Duration(&c.ReconcileEvery, "maintenance-reconcile-every", "ALGA_MAINTENANCE_RECONCILE_EVERY", 5*time.Minute, "how often the Temporal schedules are reconciled with the configured tenants")
	b.String(&c.TaskQueue, "temporal-task-queue", "ALGA_TEMPORAL_TASK_QUEUE", "alga-google-maintenance", "Temporal task queue of the maintenance workflows (job runner temporal)")
}

// validate checks the settings Start relies on.
func (c *Config) validate() error {
	var errs []error
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"ALGA_MAINTENANCE_INTERVAL", c.Interval}, {"ALGA_MAINTENANCE_RENEW_AHEAD", c.RenewAhead},
		{"ALGA_MAINTENANCE_SILENCE", c.Silence}, {"ALGA_MAINTENANCE_STEP_TIMEOUT", c.StepTimeout},
		{"ALGA_MAINTENANCE_HEARTBEAT_TIMEOUT", c.HeartbeatTimeout}, {"ALGA_MAINTENANCE_RUN_TIMEOUT", c.RunTimeout},
		{"ALGA_MAINTENANCE_RECONCILE_EVERY", c.ReconcileEvery},
	} {
		if d.v <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive", d.name))
		}
	}
	if c.TokenMargin < 0 {
		errs = append(errs, errors.New("ALGA_MAINTENANCE_TOKEN_MARGIN must not be negative"))
	}
	if c.TenantConcurrency < 1 || c.Concurrency < 1 || c.MaxAttempts < 1 {
		errs = append(errs, errors.New("ALGA_MAINTENANCE_TENANT_CONCURRENCY, ALGA_MAINTENANCE_CONCURRENCY and ALGA_MAINTENANCE_MAX_ATTEMPTS must be at least 1"))
	}
	if c.GoogleRate < 0 {
		errs = append(errs, errors.New("ALGA_MAINTENANCE_GOOGLE_RATE must not be negative"))
	}
	if c.TaskQueue == "" {
		errs = append(errs, errors.New("ALGA_TEMPORAL_TASK_QUEUE must not be empty"))
	}
	return errors.Join(errs...)
}
