// Package upkeep is the maintenance domain: what a run plans, the due decisions (pure functions of the
// providers' state, the clock and the settings — made once, here, so the owning services execute
// exactly what is due and nothing more), the per-provider flow both runners share, and the records a
// run produces. Nothing in these types is a secret: they travel through Temporal histories and land
// in the run history.
package upkeep

import "time"

// Kinds of providers.
const (
	KindGmail    = "gmail"
	KindCalendar = "calendar"
)

// Steps (the proto's Step enum, by name).
const (
	StepTokenRefresh       = "token_refresh"
	StepProvisioningVerify = "provisioning_verify"
	StepWatchRenew         = "watch_renew"
	StepReconcile          = "reconcile"
	StepChannelRenew       = "channel_renew"
	StepChannelRecreate    = "channel_recreate"
	StepDeltaSync          = "delta_sync"
	StepRecordTokenFailure = "record_token_failure"
)

// Outcome statuses (the proto's OutcomeStatus, by name).
const (
	StatusOK      = "ok"
	StatusNotDue  = "not_due"
	StatusSkipped = "skipped"
	StatusFailed  = "failed"
)

// Failure classes (the proto's FailureClass, by name). Every class but transient is permanent.
const (
	ClassTransient      = "transient"
	ClassPermanent      = "permanent"
	ClassRevoked        = "revoked"
	ClassTestingExpiry  = "testing_expiry"
	ClassInvalidRapt    = "invalid_rapt"
	ClassClientReplaced = "client_replaced"
	ClassNotConfigured  = "not_configured"
)

// Runners and triggers.
const (
	RunnerRiver    = "river"
	RunnerTemporal = "temporal"

	TriggerSchedule = "schedule"
	TriggerManual   = "manual"
)

// Run statuses.
const (
	RunSucceeded = "succeeded"
	RunPartial   = "partial"
	RunFailed    = "failed"
)

// Input starts one tenant's run (the workflow's input, the River job's payload).
type Input struct {
	Tenant  string `json:"tenant"`
	Trigger string `json:"trigger"`
}

// Options shape how a run executes its steps. The plan carries them (from the worker's settings when
// it planned), so a workflow's behaviour is fixed by its history and a settings change never makes a
// running workflow non-deterministic.
type Options struct {
	// Concurrency bounds the providers of the tenant maintained at once.
	Concurrency int `json:"concurrency"`
	// StepTimeout is each step's StartToCloseTimeout; HeartbeatTimeout the heartbeat deadline.
	StepTimeout      time.Duration `json:"step_timeout"`
	HeartbeatTimeout time.Duration `json:"heartbeat_timeout"`
	// MaxAttempts and InitialInterval form the steps' retry policy (transient failures only).
	MaxAttempts     int           `json:"max_attempts"`
	InitialInterval time.Duration `json:"initial_interval"`
}

// Plan is what one run of a tenant will do: every provider (and orphan connection) with its due steps.
type Plan struct {
	Tenant    string    `json:"tenant"`
	RunID     string    `json:"run_id"`
	PlannedAt time.Time `json:"planned_at"`
	Options   Options   `json:"options"`
	Items     []Item    `json:"items"`
}

// Item is one provider of the plan.
type Item struct {
	Kind       string `json:"kind"`
	ProviderID string `json:"provider_id"`
	Name       string `json:"name"`
	// Orphan marks a connection whose provider neither service listed: only its token is refreshed.
	Orphan bool `json:"orphan,omitempty"`
	// Token is the connection refresh, when due.
	Token *Task `json:"token,omitempty"`
	// Steps are the provider's due steps, in order.
	Steps []Task `json:"steps,omitempty"`
	// Notes are the steps that were not due (NOT_DUE) or not attempted (SKIPPED), with the reason.
	Notes []StepResult `json:"notes,omitempty"`
}

// Due reports whether anything of the item needs a call.
func (it Item) Due() bool { return it.Token != nil || len(it.Steps) > 0 }

// Task is one step to execute: everything the activity needs to make exactly one call.
type Task struct {
	Tenant     string `json:"tenant"`
	RunID      string `json:"run_id"`
	Kind       string `json:"kind"`
	ProviderID string `json:"provider_id"`
	Step       string `json:"step"`
	// ConnectionID and SeenRefreshTime: token refresh.
	ConnectionID    string     `json:"connection_id,omitempty"`
	SeenRefreshTime *time.Time `json:"seen_refresh_time,omitempty"`
	// ChannelID: calendar renew (the live channel) or recreate (the expired one, or empty).
	ChannelID string `json:"channel_id,omitempty"`
	// TokenFailure: record_token_failure.
	TokenFailure *StepResult `json:"token_failure,omitempty"`
	// Reason says why the step is due.
	Reason string `json:"reason"`
}

// StepResult is the outcome of one step.
type StepResult struct {
	Step         string `json:"step"`
	Status       string `json:"status"`
	FailureClass string `json:"failure_class,omitempty"`
	ErrorCode    string `json:"error_code,omitempty"`
	Message      string `json:"message,omitempty"`
	Remedy       string `json:"remedy,omitempty"`
	Reason       string `json:"reason,omitempty"`
	GoogleCalls  int    `json:"google_calls,omitempty"`
	// ExpireTime is the new watch, channel or access-token expiration the step produced.
	ExpireTime *time.Time `json:"expire_time,omitempty"`
}

// Failed reports whether the step failed.
func (r StepResult) Failed() bool { return r.Status == StatusFailed }

// Permanent reports whether a failure will not heal by retrying.
func (r StepResult) Permanent() bool { return r.Failed() && r.FailureClass != ClassTransient }

// ProviderResult is what a run did for one provider.
type ProviderResult struct {
	Kind       string       `json:"kind"`
	ProviderID string       `json:"provider_id"`
	Name       string       `json:"name"`
	Due        bool         `json:"due"`
	Steps      []StepResult `json:"steps"`
}

// Status is the worst status of the provider's steps (failed > skipped > ok > not_due).
func (p ProviderResult) Status() string {
	rank := map[string]int{StatusNotDue: 0, StatusOK: 1, StatusSkipped: 2, StatusFailed: 3}
	out := StatusNotDue
	for _, s := range p.Steps {
		if rank[s.Status] > rank[out] {
			out = s.Status
		}
	}
	return out
}

// FirstFailure returns the first failed step, if any.
func (p ProviderResult) FirstFailure() (StepResult, bool) {
	for _, s := range p.Steps {
		if s.Failed() {
			return s, true
		}
	}
	return StepResult{}, false
}

// Run is the record of one run: what the run history stores and RunGoogleMaintenance answers.
type Run struct {
	RunID     string           `json:"run_id"`
	Tenant    string           `json:"tenant"`
	Runner    string           `json:"runner"`
	Trigger   string           `json:"trigger"`
	StartTime time.Time        `json:"start_time"`
	EndTime   time.Time        `json:"end_time"`
	ErrorCode string           `json:"error_code,omitempty"`
	Message   string           `json:"message,omitempty"`
	Providers []ProviderResult `json:"providers"`
}

// Duration is how long the run took.
func (r Run) Duration() time.Duration { return r.EndTime.Sub(r.StartTime) }

// Status summarizes the run.
func (r Run) Status() string {
	if r.ErrorCode != "" {
		return RunFailed
	}
	for _, p := range r.Providers {
		if p.Status() == StatusFailed {
			return RunPartial
		}
	}
	return RunSucceeded
}

// Counts returns the providers with a step due, those that failed, and the Google calls reported.
func (r Run) Counts() (due, failed, calls int) {
	for _, p := range r.Providers {
		if p.Due {
			due++
		}
		if p.Status() == StatusFailed {
			failed++
		}
		for _, s := range p.Steps {
			calls += s.GoogleCalls
		}
	}
	return due, failed, calls
}
