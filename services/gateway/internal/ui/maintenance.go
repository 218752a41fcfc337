package ui

import (
	"context"
	"strings"
	"time"

	maintenancev1 "github.com/algapsa/alga-google/gen/alga/maintenance/v1"
)

// runsView is the maintenance runs shown on a provider page (empty when the worker is not deployed or
// has recorded nothing yet).
type runsView struct {
	Available bool
	Runner    string
	Interval  string
	Next      time.Time
	Runs      []runRow
}

type runRow struct {
	Time     time.Time
	Trigger  string
	Status   statusView
	Outcome  statusView
	Message  string
	Remedy   string
	Steps    []string
	Duration string
}

func (v *runsView) marks() []runMark {
	if v == nil {
		return nil
	}
	var out []runMark
	for _, r := range v.Runs {
		out = append(out, runMark{Time: r.Time, Failed: r.Outcome.Key == "failed" || r.Status.Key == "failed",
			Label: "Maintenance " + r.Time.UTC().Format("Mon 2 Jan 15:04") + ": " + r.Outcome.Label})
	}
	return out
}

func enumKey(name, prefix string) string { return strings.ToLower(strings.TrimPrefix(name, prefix)) }

// maintenanceRuns reads the tenant's recent maintenance runs (GET /api/v1/google/maintenance) and keeps
// what each did for one provider. A worker that is not deployed, not wired or not ready yields the
// empty state.
func (s *Server) maintenanceRuns(ctx context.Context, kind maintenancev1.ProviderKind, providerID string) *runsView {
	out := &runsView{}
	conn := s.conn(PeerWorker)
	if conn == nil {
		return out
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := maintenancev1.NewMaintenanceServiceClient(conn).GetGoogleMaintenance(ctx, &maintenancev1.GetGoogleMaintenanceRequest{PageSize: 20})
	if err != nil {
		if !notAvailable(err) {
			s.opt.Logger.DebugContext(ctx, "ui: maintenance runs unavailable", "err", err)
		}
		return out
	}
	out.Available = true
	out.Runner = enumKey(resp.GetRunner().String(), "RUNNER_")
	if d := resp.GetInterval(); d != nil {
		out.Interval = d.AsDuration().String()
	}
	if t := resp.GetNextRunTime(); t != nil {
		out.Next = t.AsTime()
	}
	for _, run := range resp.GetRuns() {
		row := runRow{
			Time:    run.GetStartTime().AsTime(),
			Trigger: enumKey(run.GetTrigger().String(), "TRIGGER_"),
			Status:  outcomeLabel(enumKey(run.GetStatus().String(), "RUN_STATUS_")),
			Outcome: statusView{"not_due", "Not included"},
			Message: run.GetMessage(),
		}
		if d := run.GetDuration(); d != nil {
			row.Duration = d.AsDuration().Round(time.Millisecond).String()
		}
		for _, p := range run.GetProviders() {
			if p.GetKind() != kind || p.GetProviderId() != providerID {
				continue
			}
			row.Outcome = outcomeLabel(enumKey(p.GetStatus().String(), "OUTCOME_STATUS_"))
			row.Message, row.Remedy = p.GetMessage(), p.GetRemedy()
			for _, st := range p.GetSteps() {
				row.Steps = append(row.Steps, enumKey(st.GetStep().String(), "STEP_")+": "+
					enumKey(st.GetOutcome().GetStatus().String(), "OUTCOME_STATUS_"))
			}
		}
		out.Runs = append(out.Runs, row)
	}
	return out
}

func outcomeLabel(key string) statusView {
	labels := map[string]string{"ok": "OK", "succeeded": "Succeeded", "partial": "Partial", "failed": "Failed",
		"not_due": "Nothing due", "skipped": "Skipped"}
	if l, ok := labels[key]; ok {
		return statusView{key, l}
	}
	return statusView{key, upper1(strings.ReplaceAll(key, "_", " "))}
}
