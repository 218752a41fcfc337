package upkeep

import (
	"testing"

	"github.com/stretchr/testify/require"
)

type fakeExec struct {
	results map[string]StepResult
	calls   []Task
}

func (f *fakeExec) Execute(t Task) StepResult {
	f.calls = append(f.calls, t)
	if r, ok := f.results[t.Step]; ok {
		return r
	}
	return StepResult{Step: t.Step, Status: StatusOK, GoogleCalls: 1}
}

func gmailItem() Item {
	tok := Task{Tenant: "t1", RunID: "r1", Kind: KindGmail, ProviderID: "p1", Step: StepTokenRefresh, ConnectionID: "k1", Reason: "daily"}
	return Item{Kind: KindGmail, ProviderID: "p1", Name: "support@acme.test", Token: &tok, Steps: []Task{
		{Step: StepProvisioningVerify, Reason: "daily"}, {Step: StepWatchRenew, Reason: "expires"}, {Step: StepReconcile, Reason: "silent"},
	}}
}

func TestMaintainRunsEveryDueStepInOrder(t *testing.T) {
	t.Parallel()
	x := &fakeExec{}
	res := Maintain(x, gmailItem())
	require.Len(t, x.calls, 4)
	require.Equal(t, []string{StepTokenRefresh, StepProvisioningVerify, StepWatchRenew, StepReconcile},
		[]string{x.calls[0].Step, x.calls[1].Step, x.calls[2].Step, x.calls[3].Step})
	require.Equal(t, StatusOK, res.Status())
	require.Equal(t, "expires", res.Steps[2].Reason)
}

func TestPermanentTokenFailureIsRecordedAndStopsTheProvider(t *testing.T) {
	t.Parallel()
	x := &fakeExec{results: map[string]StepResult{
		StepTokenRefresh: Failure(StepTokenRefresh, ClassRevoked, "token_revoked", "revoked", "reconnect"),
	}}
	res := Maintain(x, gmailItem())
	require.Len(t, x.calls, 2, "the refresh, then the record on the provider; no Google step")
	rec := x.calls[1]
	require.Equal(t, StepRecordTokenFailure, rec.Step)
	require.Equal(t, "token_revoked", rec.TokenFailure.ErrorCode)
	require.Equal(t, "p1", rec.ProviderID)
	require.Equal(t, StatusFailed, res.Status())
	f, _ := res.FirstFailure()
	require.Equal(t, "reconnect", f.Remedy)
	skipped := 0
	for _, s := range res.Steps {
		if s.Status == StatusSkipped {
			skipped++
		}
	}
	require.Equal(t, 3, skipped)
}

func TestTransientTokenFailureStillRunsTheSteps(t *testing.T) {
	t.Parallel()
	x := &fakeExec{results: map[string]StepResult{StepTokenRefresh: Failure(StepTokenRefresh, ClassTransient, "token_unavailable", "503", "")}}
	Maintain(x, gmailItem())
	require.Len(t, x.calls, 4)
}

func TestPermanentStepFailureSkipsTheLaterSteps(t *testing.T) {
	t.Parallel()
	x := &fakeExec{results: map[string]StepResult{StepProvisioningVerify: Failure(StepProvisioningVerify, ClassPermanent, "publisher_grant_failed", "denied", "grant")}}
	res := Maintain(x, gmailItem())
	require.Len(t, x.calls, 2)
	require.Equal(t, StatusSkipped, res.Steps[2].Status)
	require.Equal(t, StatusSkipped, res.Steps[3].Status)

	// A transient failure does not stop the steps after it.
	x = &fakeExec{results: map[string]StepResult{StepProvisioningVerify: Failure(StepProvisioningVerify, ClassTransient, "unavailable", "503", "")}}
	Maintain(x, gmailItem())
	require.Len(t, x.calls, 4)
}

func TestOrphanConnectionFailureIsNotRecordedOnAProvider(t *testing.T) {
	t.Parallel()
	it := gmailItem()
	it.Orphan, it.Steps = true, nil
	x := &fakeExec{results: map[string]StepResult{StepTokenRefresh: Failure(StepTokenRefresh, ClassRevoked, "token_revoked", "", "")}}
	Maintain(x, it)
	require.Len(t, x.calls, 1)
}

func TestNothingDueCallsNothing(t *testing.T) {
	t.Parallel()
	x := &fakeExec{}
	res := Maintain(x, Item{Kind: KindCalendar, ProviderID: "c1", Notes: []StepResult{{Step: StepChannelRenew, Status: StatusNotDue}}})
	require.Empty(t, x.calls)
	require.Equal(t, StatusNotDue, res.Status())
	require.False(t, res.Due)
}
