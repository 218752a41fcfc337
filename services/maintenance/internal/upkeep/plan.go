package upkeep

import (
	"sort"
	"time"

	maintenancev1 "github.com/algapsa/alga-google/gen/alga/maintenance/v1"
)

// Snapshot is what the owning services reported for one tenant.
type Snapshot struct {
	Gmail    []*maintenancev1.GmailUpkeep
	Calendar []*maintenancev1.CalendarUpkeep
	Tokens   []*maintenancev1.TokenUpkeep
}

func kindOf(k maintenancev1.ProviderKind) string {
	switch k {
	case maintenancev1.ProviderKind_PROVIDER_KIND_GMAIL:
		return KindGmail
	case maintenancev1.ProviderKind_PROVIDER_KIND_CALENDAR:
		return KindCalendar
	}
	return ""
}

var kindSteps = map[string][]string{
	KindGmail:    {StepTokenRefresh, StepProvisioningVerify, StepWatchRenew, StepReconcile},
	KindCalendar: {StepTokenRefresh, StepChannelRenew, StepDeltaSync},
}

// BuildPlan decides, for every provider and connection of the snapshot, which steps are due now. It
// is the only place that decides: the runners execute the plan's tasks and nothing else.
func BuildPlan(s Settings, now time.Time, tenant, runID string, opts Options, snap Snapshot) Plan {
	plan := Plan{Tenant: tenant, RunID: runID, PlannedAt: now, Options: opts}
	conns := map[[2]string]*maintenancev1.TokenUpkeep{}
	for _, c := range snap.Tokens {
		conns[[2]string{kindOf(c.GetKind()), c.GetProviderId()}] = c
	}
	used := map[[2]string]bool{}
	task := func(kind, provider, step, reason string) Task {
		return Task{Tenant: tenant, RunID: runID, Kind: kind, ProviderID: provider, Step: step, Reason: reason}
	}
	// token applies the connection's decision; it reports false when nothing else may run.
	token := func(it *Item, skip string) bool {
		key := [2]string{it.Kind, it.ProviderID}
		c := conns[key]
		used[key] = true
		if skip == "" && c == nil {
			skip = "the provider has no OAuth connection"
		}
		var d TokenDecision
		if skip == "" {
			d = DecideToken(s, now, c)
			if d.NeedsReauth {
				skip = d.Reason
			}
		}
		if skip != "" {
			for _, st := range kindSteps[it.Kind] {
				it.Notes = append(it.Notes, StepResult{Step: st, Status: StatusSkipped, Reason: skip})
			}
			return false
		}
		if d.Refresh {
			t := task(it.Kind, it.ProviderID, StepTokenRefresh, d.Reason)
			t.ConnectionID = c.GetConnectionId()
			t.SeenRefreshTime = ts(c.GetLastRefreshTime())
			it.Token = &t
		} else {
			it.Notes = append(it.Notes, StepResult{Step: StepTokenRefresh, Status: StatusNotDue, Reason: d.Reason})
		}
		return true
	}
	notDue := func(it *Item, m map[string]string, order ...string) {
		for _, st := range order {
			if why, ok := m[st]; ok {
				it.Notes = append(it.Notes, StepResult{Step: st, Status: StatusNotDue, Reason: why})
			}
		}
	}
	for _, p := range snap.Gmail {
		it := Item{Kind: KindGmail, ProviderID: p.GetProviderId(), Name: p.GetMailbox()}
		d := DecideGmail(s, now, p)
		if token(&it, d.Skip) {
			for _, st := range []struct{ step, why string }{
				{StepProvisioningVerify, d.VerifyProvisioning}, {StepWatchRenew, d.RenewWatch}, {StepReconcile, d.Reconcile},
			} {
				if st.why != "" {
					it.Steps = append(it.Steps, task(KindGmail, it.ProviderID, st.step, st.why))
				}
			}
			notDue(&it, d.NotDue, StepProvisioningVerify, StepWatchRenew, StepReconcile)
		}
		plan.Items = append(plan.Items, it)
	}
	for _, p := range snap.Calendar {
		name := p.GetName()
		if name == "" {
			name = p.GetUserId()
		}
		it := Item{Kind: KindCalendar, ProviderID: p.GetProviderId(), Name: name}
		d := DecideCalendar(s, now, p)
		if token(&it, d.Skip) {
			if d.ChannelStep != "" {
				t := task(KindCalendar, it.ProviderID, d.ChannelStep, d.ChannelReason)
				t.ChannelID = d.ChannelID
				it.Steps = append(it.Steps, t)
			}
			if d.DeltaSync != "" {
				it.Steps = append(it.Steps, task(KindCalendar, it.ProviderID, StepDeltaSync, d.DeltaSync))
			}
			notDue(&it, d.NotDue, StepChannelRenew, StepDeltaSync)
		}
		plan.Items = append(plan.Items, it)
	}
	// Connections whose provider neither service listed are still refreshed daily: a broken refresh
	// token is found early even then.
	for _, c := range snap.Tokens {
		key := [2]string{kindOf(c.GetKind()), c.GetProviderId()}
		if used[key] || key[0] == "" {
			continue
		}
		it := Item{Kind: key[0], ProviderID: c.GetProviderId(), Name: "connection " + c.GetConnectionId(), Orphan: true}
		d := DecideToken(s, now, c)
		switch {
		case d.Refresh:
			t := task(it.Kind, it.ProviderID, StepTokenRefresh, d.Reason)
			t.ConnectionID = c.GetConnectionId()
			t.SeenRefreshTime = ts(c.GetLastRefreshTime())
			it.Token = &t
		case d.NeedsReauth:
			it.Notes = append(it.Notes, StepResult{Step: StepTokenRefresh, Status: StatusSkipped, Reason: d.Reason})
		default:
			it.Notes = append(it.Notes, StepResult{Step: StepTokenRefresh, Status: StatusNotDue, Reason: d.Reason})
		}
		plan.Items = append(plan.Items, it)
	}
	sort.SliceStable(plan.Items, func(i, j int) bool {
		a, b := plan.Items[i], plan.Items[j]
		if a.Kind != b.Kind {
			return a.Kind > b.Kind // gmail first
		}
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		return a.ProviderID < b.ProviderID
	})
	return plan
}

// DueCalls counts the calls the plan makes (each task is one request to an owning service, which
// makes the Google calls that step needs): the benchmark's "calls due".
func (p Plan) DueCalls() int {
	n := 0
	for _, it := range p.Items {
		if it.Token != nil {
			n++
		}
		n += len(it.Steps)
	}
	return n
}
