package upkeep

import "sort"

// Executor runs one task and reports its outcome; a failure is a FAILED result, never an error. The
// Temporal workflow executes each task as an activity (with its retry policy); the River runner calls
// the same activity method directly, retrying transient failures the same way.
type Executor interface {
	Execute(t Task) StepResult
}

var stepOrder = map[string]int{
	StepTokenRefresh: 0, StepRecordTokenFailure: 1,
	StepProvisioningVerify: 2, StepWatchRenew: 3, StepReconcile: 4,
	StepChannelRecreate: 2, StepChannelRenew: 2, StepDeltaSync: 3,
}

// Maintain runs one item of a plan: the token refresh first (the other steps need a working grant),
// then the provider's steps in order. A permanent failure stops the provider there: a failed refresh
// is recorded on the provider (ERROR with its remedy) and its steps are skipped; a failed step skips
// the steps after it. Transient failures do not stop the others (each has its own retries).
//
// Maintain is deterministic given the executor's results, so the workflow can call it.
func Maintain(x Executor, it Item) ProviderResult {
	res := ProviderResult{Kind: it.Kind, ProviderID: it.ProviderID, Name: it.Name, Due: it.Due()}
	res.Steps = append(res.Steps, it.Notes...)
	skipRest := func(from int, why string) {
		for _, t := range it.Steps[from:] {
			res.Steps = append(res.Steps, StepResult{Step: t.Step, Status: StatusSkipped, Reason: why})
		}
	}
	if it.Token != nil {
		r := withReason(x.Execute(*it.Token), it.Token.Reason)
		res.Steps = append(res.Steps, r)
		if r.Permanent() {
			if !it.Orphan {
				failure := r
				rec := Task{
					Tenant: it.Token.Tenant, RunID: it.Token.RunID, Kind: it.Kind, ProviderID: it.ProviderID,
					Step: StepRecordTokenFailure, TokenFailure: &failure, Reason: "the token refresh failed: " + r.ErrorCode,
				}
				res.Steps = append(res.Steps, withReason(x.Execute(rec), rec.Reason))
			}
			skipRest(0, "the token refresh failed ("+r.ErrorCode+")")
			sortSteps(res.Steps)
			return res
		}
	}
	for i, t := range it.Steps {
		r := withReason(x.Execute(t), t.Reason)
		res.Steps = append(res.Steps, r)
		if r.Permanent() {
			skipRest(i+1, "an earlier step failed ("+r.ErrorCode+")")
			break
		}
	}
	sortSteps(res.Steps)
	return res
}

func withReason(r StepResult, reason string) StepResult {
	if r.Reason == "" {
		r.Reason = reason
	}
	return r
}

func sortSteps(steps []StepResult) {
	sort.SliceStable(steps, func(i, j int) bool { return stepOrder[steps[i].Step] < stepOrder[steps[j].Step] })
}

// Failure builds a FAILED result.
func Failure(step, class, code, message, remedy string) StepResult {
	return StepResult{Step: step, Status: StatusFailed, FailureClass: class, ErrorCode: code, Message: message, Remedy: remedy}
}
