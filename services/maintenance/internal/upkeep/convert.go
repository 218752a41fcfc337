package upkeep

import (
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	m "github.com/algapsa/alga-google/gen/alga/maintenance/v1"
)

var stepEnum = map[string]m.Step{
	StepTokenRefresh:       m.Step_STEP_TOKEN_REFRESH,
	StepProvisioningVerify: m.Step_STEP_PROVISIONING_VERIFY,
	StepWatchRenew:         m.Step_STEP_WATCH_RENEW,
	StepReconcile:          m.Step_STEP_RECONCILE,
	StepChannelRenew:       m.Step_STEP_CHANNEL_RENEW,
	StepChannelRecreate:    m.Step_STEP_CHANNEL_RECREATE,
	StepDeltaSync:          m.Step_STEP_DELTA_SYNC,
	StepRecordTokenFailure: m.Step_STEP_RECORD_TOKEN_FAILURE,
}

var statusEnum = map[string]m.OutcomeStatus{
	StatusOK: m.OutcomeStatus_OUTCOME_STATUS_OK, StatusNotDue: m.OutcomeStatus_OUTCOME_STATUS_NOT_DUE,
	StatusSkipped: m.OutcomeStatus_OUTCOME_STATUS_SKIPPED, StatusFailed: m.OutcomeStatus_OUTCOME_STATUS_FAILED,
}

var classEnum = map[string]m.FailureClass{
	ClassTransient: m.FailureClass_FAILURE_CLASS_TRANSIENT, ClassPermanent: m.FailureClass_FAILURE_CLASS_PERMANENT,
	ClassRevoked: m.FailureClass_FAILURE_CLASS_REVOKED, ClassTestingExpiry: m.FailureClass_FAILURE_CLASS_TESTING_EXPIRY,
	ClassInvalidRapt: m.FailureClass_FAILURE_CLASS_INVALID_RAPT, ClassClientReplaced: m.FailureClass_FAILURE_CLASS_CLIENT_REPLACED,
	ClassNotConfigured: m.FailureClass_FAILURE_CLASS_NOT_CONFIGURED,
}

func invert[K comparable, V comparable](in map[K]V) map[V]K {
	out := make(map[V]K, len(in))
	for k, v := range in {
		out[v] = k
	}
	return out
}

var (
	statusName = invert(statusEnum)
	className  = invert(classEnum)
)

// FromOutcome turns an owning service's outcome into a step result. An unset outcome (a step the
// service did not report) is a transient failure: the call was made, its result is unknown.
func FromOutcome(step string, o *m.Outcome) StepResult {
	if o == nil || o.GetStatus() == m.OutcomeStatus_OUTCOME_STATUS_UNSPECIFIED {
		return Failure(step, ClassTransient, "no_outcome", "the service did not report the step's outcome", "")
	}
	r := StepResult{
		Step: step, Status: statusName[o.GetStatus()], ErrorCode: o.GetErrorCode(),
		Message: o.GetMessage(), Remedy: o.GetRemedy(), GoogleCalls: int(o.GetGoogleCalls()),
	}
	if r.Failed() {
		r.FailureClass = className[o.GetFailureClass()]
		if r.FailureClass == "" {
			// A failure without a class is treated as permanent: retrying blindly could repeat calls.
			r.FailureClass = ClassPermanent
		}
	}
	return r
}

// ToOutcome is the inverse of FromOutcome (a token failure passed to the owning service).
func ToOutcome(r StepResult) *m.Outcome {
	return &m.Outcome{
		Status: statusEnum[r.Status], FailureClass: classEnum[r.FailureClass], ErrorCode: r.ErrorCode,
		Message: r.Message, Remedy: r.Remedy, GoogleCalls: int32(r.GoogleCalls),
	}
}

var kindEnum = map[string]m.ProviderKind{KindGmail: m.ProviderKind_PROVIDER_KIND_GMAIL, KindCalendar: m.ProviderKind_PROVIDER_KIND_CALENDAR}

// RunnerEnum maps a runner name.
func RunnerEnum(r string) m.Runner {
	switch r {
	case RunnerRiver:
		return m.Runner_RUNNER_RIVER
	case RunnerTemporal:
		return m.Runner_RUNNER_TEMPORAL
	}
	return m.Runner_RUNNER_UNSPECIFIED
}

// ToProto renders a run for the API.
func (r Run) ToProto() *m.MaintenanceRun {
	due, failed, calls := r.Counts()
	out := &m.MaintenanceRun{
		RunId: r.RunID, Runner: RunnerEnum(r.Runner), ErrorCode: r.ErrorCode, Message: r.Message,
		StartTime: timestamppb.New(r.StartTime), EndTime: timestamppb.New(r.EndTime), Duration: durationpb.New(r.Duration()),
		ProviderCount: int32(len(r.Providers)), DueCount: int32(due), FailedCount: int32(failed), GoogleCalls: int32(calls),
	}
	switch r.Trigger {
	case TriggerSchedule:
		out.Trigger = m.Trigger_TRIGGER_SCHEDULE
	case TriggerManual:
		out.Trigger = m.Trigger_TRIGGER_MANUAL
	}
	switch r.Status() {
	case RunSucceeded:
		out.Status = m.RunStatus_RUN_STATUS_SUCCEEDED
	case RunPartial:
		out.Status = m.RunStatus_RUN_STATUS_PARTIAL
	case RunFailed:
		out.Status = m.RunStatus_RUN_STATUS_FAILED
	}
	for _, p := range r.Providers {
		po := &m.ProviderOutcome{Kind: kindEnum[p.Kind], ProviderId: p.ProviderID, Name: p.Name, Status: statusEnum[p.Status()]}
		if f, ok := p.FirstFailure(); ok {
			po.ErrorCode, po.Message, po.Remedy = f.ErrorCode, f.Message, f.Remedy
		}
		for _, s := range p.Steps {
			po.Steps = append(po.Steps, &m.StepOutcome{Step: stepEnum[s.Step], Outcome: ToOutcome(s), Reason: s.Reason})
		}
		out.Providers = append(out.Providers, po)
	}
	return out
}
