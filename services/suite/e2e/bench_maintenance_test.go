package e2e_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	m "github.com/algapsa/alga-google/gen/alga/maintenance/v1"
)

// BenchmarkMaintenancePass: one scheduled maintenance pass over every provider of every tenant (by
// default 100 tenants × 50 Gmail + 50 Calendar providers = 10,000; ALGA_BENCH_TENANTS and
// ALGA_BENCH_PROVIDERS — per tenant, half Gmail, half Calendar — change it), all of them due (the world
// made 6.5 days older: bench_maintenance_world_test.go), run by the worker's default runner (River, in
// process: the worker suite starts, its periodic tick enqueues one job per tenant, at most 8 tenants ×
// 4 providers at a time — the defaults — with the per-tenant Google rate limit off: at its default of 10
// calls/s it alone would hold each tenant of 100 providers for at least 50 s, whatever the code does).
//
// It reports, per pass:
//
//   - google_calls_made: the Google API calls the sandbox counted during the pass (counter deltas);
//   - google_calls_due: what the plan found due, as the run history records it — for every step that
//     ran, the requests that step consists of (benchStepCalls) — which must equal the calls made,
//     endpoint by endpoint (the benchmark fails otherwise: a redundant or missing call);
//   - google_calls_recorded: the calls the owning services reported per step (run history), which must
//     equal the calls made too (their accounting);
//   - made/due (1), pass_s (the first tenant's start to the last tenant's end, from the run history),
//     providers/s and calls/s over pass_s;
//   - the baseline, measured right after in the same run: the same calls issued straight at the sandbox
//     with Google's client libraries, as many providers at once as the worker maintains (32) — sandbox_s,
//     sandbox_calls/s — and product/sandbox, how many times longer the pass takes than the sandbox alone
//     needs for its calls;
//   - setup_s: the arrangement (not timed).
//
// ns/op is the worker suite's start up to the last run recorded. One pass per iteration, each on a world
// made 6.5 days older again; `make bench` runs it once (a pass takes far longer than -benchtime's 1 s),
// as does -benchtime 1x. At full scale it runs for tens of minutes on a small machine (arrangement and
// pass alike), past go test's default 10-minute timeout: give -timeout (the Makefile's bench target
// does).
func BenchmarkMaintenancePass(b *testing.B) {
	scale := benchEnvScale(b, 100, 100)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Hour)
	defer cancel()
	b.StopTimer()
	w := newBenchWorld(b, ctx, scale)
	b.Logf("arranged %s in %s", scale, w.setup.Round(time.Millisecond))

	var (
		made, due, recorded int64
		wall                time.Duration
		last                benchPass
	)
	b.ResetTimer()
	for range b.N {
		r := w.pass(ctx, b.StartTimer, b.StopTimer)
		if len(r.problems) > 0 {
			b.Fatalf("the pass did not maintain every provider as due:\n%s", strings.Join(r.problems, "\n"))
		}
		if benchSum(r.made) != benchSum(r.due) || !maps.Equal(r.made, r.due) {
			b.Fatalf("Google calls made %d != calls due %d (no redundant or missing call allowed):\n%s", benchSum(r.made), benchSum(r.due), benchTable(r.made, r.due))
		}
		if r.recorded != benchSum(r.made) {
			b.Fatalf("the owning services recorded %d Google calls, the sandbox counted %d:\n%s", r.recorded, benchSum(r.made), benchTable(r.made, r.due))
		}
		made, due, recorded, wall, last = made+benchSum(r.made), due+benchSum(r.due), recorded+r.recorded, wall+r.wall, r
	}
	b.StopTimer()

	parallel := benchWorkerTenants * benchWorkerProviders
	base, baseCalls, err := w.baseline(ctx, parallel)
	if err != nil {
		b.Fatalf("baseline: %v", err)
	}
	if !maps.Equal(baseCalls, last.due) {
		b.Fatalf("the baseline made other calls than one pass:\n%s", benchTable(baseCalls, last.due))
	}
	n := float64(b.N)
	passS := wall.Seconds() / n
	b.ReportMetric(float64(made)/n, "google_calls_made")
	b.ReportMetric(float64(due)/n, "google_calls_due")
	b.ReportMetric(float64(recorded)/n, "google_calls_recorded")
	b.ReportMetric(float64(made)/float64(due), "made/due")
	b.ReportMetric(passS, "pass_s")
	b.ReportMetric(float64(scale.providers())/passS, "providers/s")
	b.ReportMetric(float64(made)/n/passS, "calls/s")
	b.ReportMetric(base.Seconds(), "sandbox_s")
	b.ReportMetric(float64(benchSum(baseCalls))/base.Seconds(), "sandbox_calls/s")
	b.ReportMetric(passS/base.Seconds(), "product/sandbox")
	b.ReportMetric(w.setup.Seconds(), "setup_s")
	b.Logf("%s, %d pass(es): Google calls made %d = due %d = recorded %d; pass %.2fs (%.1f providers/s, %.0f calls/s); "+
		"the same %d calls straight at the sandbox, %d at once: %.2fs (%.0f calls/s); product/sandbox %.2f×; setup %s",
		scale, b.N, made, due, recorded, passS, float64(scale.providers())/passS, float64(made)/n/passS,
		benchSum(baseCalls), parallel, base.Seconds(), float64(benchSum(baseCalls))/base.Seconds(), passS/base.Seconds(),
		w.setup.Round(time.Millisecond))
	b.Logf("made/due by endpoint (last pass): %s", benchLine(last.made, last.due))
}

// TestMaintenancePassMakesExactlyTheCallsDue runs the benchmark's code path at a small scale (2 tenants ×
// 2 Gmail + 2 Calendar providers), twice (a pass per iteration, the world made older before each), and
// the baseline once, so `make test` keeps it working: every provider maintained as due, the calls made
// equal to the calls due endpoint by endpoint, and to what the owning services recorded.
func TestMaintenancePassMakesExactlyTheCallsDue(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	w := newBenchWorld(t, ctx, benchScaleOf(2, 4))
	for range 2 {
		r := w.pass(ctx, nil, nil)
		require.Empty(t, r.problems)
		require.Equal(t, r.due, r.made, "calls made vs due per endpoint:\n%s", benchTable(r.made, r.due))
		require.EqualValues(t, 2*(2*7+2*4), benchSum(r.made), "per Gmail provider 7 calls, per Calendar provider 4")
		require.Equal(t, benchSum(r.made), r.recorded)
		require.Len(t, r.runs, 2)
	}
	_, baseCalls, err := w.baseline(ctx, benchWorkerTenants*benchWorkerProviders)
	require.NoError(t, err)
	require.EqualValues(t, 2*(2*7+2*4), benchSum(baseCalls), "%v", baseCalls)
}

// benchStepCalls are the Google requests (sandbox endpoint names) each maintenance step consists of, the
// owning services' code as it is: the token refresh is one token request; verifying the Pub/Sub
// provisioning reads the topic, its IAM policy and the push subscription (a repair would add writes);
// users.watch resolves the label filters (labels.list) and watches; the reconcile and the delta sync are
// one history.list / events.list page; renewing a channel creates the new one, then stops the old one.
var benchStepCalls = map[m.Step][]string{
	m.Step_STEP_TOKEN_REFRESH:        {"oauth.token.refresh_token"},
	m.Step_STEP_PROVISIONING_VERIFY:  {"pubsub.GetTopic", "pubsub.GetIamPolicy", "pubsub.GetSubscription"},
	m.Step_STEP_WATCH_RENEW:          {"gmail.users.labels.list", "gmail.users.watch"},
	m.Step_STEP_RECONCILE:            {"gmail.users.history.list"},
	m.Step_STEP_CHANNEL_RENEW:        {"calendar.events.watch", "calendar.channels.stop"},
	m.Step_STEP_CHANNEL_RECREATE:     {"calendar.events.watch"},
	m.Step_STEP_DELTA_SYNC:           {"calendar.events.list"},
	m.Step_STEP_RECORD_TOKEN_FAILURE: nil,
}

// benchWantSteps are the steps a provider of each kind must have run, 6.5 days after its connect.
var benchWantSteps = map[m.ProviderKind][]m.Step{
	m.ProviderKind_PROVIDER_KIND_GMAIL:    {m.Step_STEP_TOKEN_REFRESH, m.Step_STEP_PROVISIONING_VERIFY, m.Step_STEP_WATCH_RENEW, m.Step_STEP_RECONCILE},
	m.ProviderKind_PROVIDER_KIND_CALENDAR: {m.Step_STEP_TOKEN_REFRESH, m.Step_STEP_CHANNEL_RENEW, m.Step_STEP_DELTA_SYNC},
}

// benchPass is one pass, measured.
type benchPass struct {
	runs []*m.MaintenanceRun
	// wall is the pass: the first tenant's start to the last tenant's end (run history).
	wall time.Duration
	// made are the sandbox's counter deltas; due the calls of the steps the run history records as
	// done (benchStepCalls), by endpoint.
	made, due map[string]int64
	// recorded are the Google calls the owning services reported (run history).
	recorded int64
	// problems lists what was not as due: a run that failed, a provider or step not maintained.
	problems []string
}

// pass makes the world benchAge older, starts a worker suite (its first tick is the pass), waits for
// every tenant's run and measures it; start and stop bracket what a benchmark times (nil in tests).
func (w *benchWorld) pass(ctx context.Context, start, stop func()) benchPass {
	tb := w.tb
	tb.Helper()
	if err := w.age(ctx); err != nil {
		tb.Fatal(err)
	}
	before, err := w.googleCalls(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	since := time.Now()
	if start != nil {
		start()
	}
	worker := w.startWorker(map[string]string{
		"maintenance-google-rate":        "0",
		"maintenance-concurrency":        fmt.Sprint(benchWorkerTenants),
		"maintenance-tenant-concurrency": fmt.Sprint(benchWorkerProviders),
	})
	runs, err := w.waitRuns(ctx, worker, since, 30*time.Minute)
	if stop != nil {
		stop()
	}
	if err != nil {
		tb.Fatal(err)
	}
	after, err := w.googleCalls(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	worker.Stop()

	r := benchPass{runs: runs, made: benchDelta(before, after), due: map[string]int64{}}
	var first, last time.Time
	problem := func(format string, args ...any) {
		if len(r.problems) < 20 {
			r.problems = append(r.problems, fmt.Sprintf(format, args...))
		}
	}
	for i, run := range runs {
		t := w.tenants[i]
		st, en := run.GetStartTime().AsTime(), run.GetEndTime().AsTime()
		if first.IsZero() || st.Before(first) {
			first = st
		}
		if en.After(last) {
			last = en
		}
		r.recorded += int64(run.GetGoogleCalls())
		if run.GetRunner() != m.Runner_RUNNER_RIVER || run.GetTrigger() != m.Trigger_TRIGGER_SCHEDULE || run.GetStatus() != m.RunStatus_RUN_STATUS_SUCCEEDED {
			problem("%s: run %s is %s/%s/%s %s %s", t.id, run.GetRunId(), run.GetRunner(), run.GetTrigger(), run.GetStatus(), run.GetErrorCode(), run.GetMessage())
		}
		if got, want := len(run.GetProviders()), len(t.gmail)+len(t.calendar); got != want || int(run.GetDueCount()) != want {
			problem("%s: the run looked at %d providers (%d due), want %d, all due", t.id, got, run.GetDueCount(), want)
		}
		for _, p := range run.GetProviders() {
			done := map[m.Step]bool{}
			for _, s := range p.GetSteps() {
				switch s.GetOutcome().GetStatus() {
				case m.OutcomeStatus_OUTCOME_STATUS_OK:
					done[s.GetStep()] = true
				case m.OutcomeStatus_OUTCOME_STATUS_FAILED:
					problem("%s %s: %s failed: %s %s", t.id, p.GetName(), s.GetStep(), s.GetOutcome().GetErrorCode(), s.GetOutcome().GetMessage())
				default:
					continue
				}
				for _, ep := range benchStepCalls[s.GetStep()] {
					r.due[ep]++
				}
			}
			for _, s := range benchWantSteps[p.GetKind()] {
				if !done[s] {
					problem("%s %s: %s was not done (%s)", t.id, p.GetName(), s, benchReason(p, s))
				}
			}
		}
	}
	r.wall = last.Sub(first)
	return r
}

func benchReason(p *m.ProviderOutcome, step m.Step) string {
	for _, s := range p.GetSteps() {
		if s.GetStep() == step {
			return s.GetOutcome().GetStatus().String() + ": " + s.GetReason()
		}
	}
	return "not in the run"
}

// benchLine is benchTable on one line ("endpoint made/due, ..."): benchmark logs are cut after a few
// lines unless -v.
func benchLine(made, due map[string]int64) string {
	keys := slices.Sorted(maps.Keys(made))
	for k := range due {
		if _, ok := made[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d/%d", k, made[k], due[k])
	}
	return strings.Join(parts, ", ")
}

// benchTable lists calls made and due by endpoint.
func benchTable(made, due map[string]int64) string {
	keys := slices.Sorted(maps.Keys(made))
	for k := range due {
		if _, ok := made[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var b strings.Builder
	fmt.Fprintf(&b, "  %-28s %8s %8s\n", "endpoint", "made", "due")
	for _, k := range keys {
		fmt.Fprintf(&b, "  %-28s %8d %8d\n", k, made[k], due[k])
	}
	fmt.Fprintf(&b, "  %-28s %8d %8d", "total", benchSum(made), benchSum(due))
	return b.String()
}
