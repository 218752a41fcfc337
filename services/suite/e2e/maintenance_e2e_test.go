package e2e_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/prototext"

	calendarv1 "github.com/algapsa/alga-google/gen/alga/calendar/v1"
	oauthv1 "github.com/algapsa/alga-google/gen/alga/oauth/v1"
	secretsv1 "github.com/algapsa/alga-google/gen/alga/secrets/v1"
	"github.com/algapsa/alga-google/services/googlesandbox"
	"github.com/algapsa/alga-google/services/oauth/oauthtesting"
	"github.com/algapsa/alga-google/services/platform/auth"
	"github.com/algapsa/alga-google/services/platform/pgtest"
	"github.com/algapsa/alga-google/services/suite/harness"
)

// The scheduled-maintenance end-to-end tests: the whole suite (worker target included) against the
// Google sandbox, under both runners — River (embedded, the default) and Temporal (a real dev server
// from bin/temporal). Runs are started the way the schedule starts them (the River periodic job, the
// tenant's Temporal Schedule) and observed the way an admin does (GET /api/v1/google/maintenance, the
// provider pages), with Google's side read back from the sandbox.

// ---- the maintenance API's JSON ----

type mtOutcome struct {
	Status       string `json:"status"`
	FailureClass string `json:"failure_class"`
	ErrorCode    string `json:"error_code"`
	Message      string `json:"message"`
	Remedy       string `json:"remedy"`
	GoogleCalls  int    `json:"google_calls"`
}

type mtStep struct {
	Step    string    `json:"step"`
	Outcome mtOutcome `json:"outcome"`
	Reason  string    `json:"reason"`
}

type mtProvider struct {
	Kind       string   `json:"kind"`
	ProviderID string   `json:"provider_id"`
	Name       string   `json:"name"`
	Status     string   `json:"status"`
	ErrorCode  string   `json:"error_code"`
	Message    string   `json:"message"`
	Remedy     string   `json:"remedy"`
	Steps      []mtStep `json:"steps"`
}

type mtRun struct {
	RunID         string       `json:"run_id"`
	Runner        string       `json:"runner"`
	Trigger       string       `json:"trigger"`
	Status        string       `json:"status"`
	StartTime     time.Time    `json:"start_time"`
	EndTime       time.Time    `json:"end_time"`
	Duration      string       `json:"duration"`
	ErrorCode     string       `json:"error_code"`
	Message       string       `json:"message"`
	ProviderCount int          `json:"provider_count"`
	DueCount      int          `json:"due_count"`
	FailedCount   int          `json:"failed_count"`
	GoogleCalls   int          `json:"google_calls"`
	Providers     []mtProvider `json:"providers"`
}

// duration is the run's recorded duration.
func (r mtRun) duration(t *testing.T) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(r.Duration)
	require.NoError(t, err, "duration %q", r.Duration)
	return d
}

func (r mtRun) provider(t *testing.T, id string) mtProvider {
	t.Helper()
	for _, p := range r.Providers {
		if p.ProviderID == id {
			return p
		}
	}
	t.Fatalf("run %s has no provider %s: %+v", r.RunID, id, r.Providers)
	return mtProvider{}
}

func (p mtProvider) steps() map[string]mtStep {
	out := map[string]mtStep{}
	for _, s := range p.Steps {
		out[s.Step] = s
	}
	return out
}

type mtStatus struct {
	Runs        []mtRun    `json:"runs"`
	NextRunTime *time.Time `json:"next_run_time"`
	Runner      string     `json:"runner"`
	Interval    string     `json:"interval"`
}

// maintenanceStatus is GET /api/v1/google/maintenance as c.
func maintenanceStatus(t *testing.T, c *harness.HTTPClient) mtStatus {
	t.Helper()
	resp := c.Do(t, http.MethodGet, "/api/v1/google/maintenance?page_size=50", nil)
	require.Equal(t, http.StatusOK, resp.Status, resp.Errorf())
	var out mtStatus
	require.NoError(t, resp.JSON(&out), resp.String())
	return out
}

// runMaintenance is POST /api/v1/google/maintenance:run as c (an admin).
func runMaintenance(t *testing.T, c *harness.HTTPClient) mtRun {
	t.Helper()
	resp := c.Do(t, http.MethodPost, "/api/v1/google/maintenance:run", map[string]any{})
	require.Equal(t, http.StatusOK, resp.Status, resp.Errorf())
	var out struct {
		Run mtRun `json:"run"`
	}
	require.NoError(t, resp.JSON(&out), resp.String())
	require.NotEmpty(t, out.Run.RunID, resp.String())
	return out.Run
}

// runIDs are the ids of the tenant's recorded runs.
func runIDs(t *testing.T, c *harness.HTTPClient) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, r := range maintenanceStatus(t, c).Runs {
		out[r.RunID] = true
	}
	return out
}

// waitScheduledRun waits until the tenant's history holds a scheduled run not in seen.
func waitScheduledRun(t *testing.T, c *harness.HTTPClient, seen map[string]bool) mtRun {
	t.Helper()
	var got *mtRun
	require.Eventually(t, func() bool {
		for _, r := range maintenanceStatus(t, c).Runs {
			if !seen[r.RunID] && r.Trigger == "TRIGGER_SCHEDULE" {
				got = &r
				return true
			}
		}
		return false
	}, time.Minute, 50*time.Millisecond, "waiting for a scheduled maintenance run")
	return *got
}

// ---- calendar on the shared env ----

// cal is the calendar helpers (calendar_e2e_test.go) on this env's suite; the ones that read the
// change feed are tenant-bound and not used through it.
func (e *env) cal() *calendarEnv { return &calendarEnv{s: e.s, admin: e.admin, ctx: e.ctx} }

// connectCalendar creates the Google account (with one event) and a Calendar provider of user for
// it, and runs the whole consent flow; the provider ends CONNECTED and its first sync is recorded.
func (e *env) connectCalendar(t *testing.T, ts *tenantSetup, user, account string) calendarProviderJSON {
	t.Helper()
	e.ensureUser(t, account, ts.project.ProjectID)
	ce := e.cal()
	ce.calendarEvent(t, account, "Before the jump")
	c := e.s.HTTP(e.s.UserToken(ts.tenant, user))
	p := ce.calendarCreate(t, c)
	ce.calendarConnect(t, c, p.ID, account)
	resp := c.Do(t, http.MethodGet, "/api/v1/calendar/providers/"+p.ID, nil)
	require.Equal(t, http.StatusOK, resp.Status, resp.Errorf())
	var out struct {
		Provider calendarProviderJSON `json:"provider"`
	}
	require.NoError(t, resp.JSON(&out))
	require.Equal(t, "PROVIDER_STATUS_CONNECTED", out.Provider.Status)
	e.waitCalendarChanges(t, ts.tenant, p.ID, 1)
	return out.Provider
}

func (e *env) calendarChanges(t *testing.T, tenant, providerID string) []*calendarv1.CalendarChange {
	t.Helper()
	res, err := calendarv1.NewCalendarChangeServiceClient(e.s.Conn(t)).ListCalendarChanges(e.svcCtx("platform", tenant),
		&calendarv1.ListCalendarChangesRequest{ProviderId: providerID, PageSize: 500, IncludeAcknowledged: true})
	require.NoError(t, err)
	return res.GetChanges()
}

// waitCalendarChanges waits until the provider's change feed holds n changes and every sync is done.
func (e *env) waitCalendarChanges(t *testing.T, tenant, providerID string, n int) []*calendarv1.CalendarChange {
	t.Helper()
	var got []*calendarv1.CalendarChange
	require.Eventually(t, func() bool {
		got = e.calendarChanges(t, tenant, providerID)
		return len(got) >= n
	}, 30*time.Second, 100*time.Millisecond, "waiting for %d calendar changes", n)
	e.waitCalendarIdle(t)
	got = e.calendarChanges(t, tenant, providerID)
	require.Len(t, got, n, "%v", calendarTypes(got))
	return got
}

// waitCalendarIdle waits until no calendar sync is queued or running and every notification is synced.
func (e *env) waitCalendarIdle(t *testing.T) {
	t.Helper()
	require.Eventually(t, func() bool {
		return e.count(t, "SELECT count(*) FROM calendar.river_job WHERE kind = 'calendar_sync' AND state NOT IN ('completed','cancelled','discarded')") == 0 &&
			e.count(t, "SELECT count(*) FROM calendar.providers WHERE notify_seq > synced_seq") == 0
	}, 30*time.Second, 50*time.Millisecond, "calendar syncs still running")
}

func (e *env) calendarConnection(t *testing.T, tenant, providerID string) *oauthv1.Connection {
	t.Helper()
	res, err := oauthv1.NewTokenServiceClient(e.s.Conn(t)).GetConnection(e.svcCtx("calendar", tenant),
		&oauthv1.GetConnectionRequest{Kind: oauthv1.ProviderKind_PROVIDER_KIND_CALENDAR, ProviderId: providerID})
	require.NoError(t, err)
	return res.GetConnection()
}

// counters reads every sandbox counter.
func (e *env) counters(t *testing.T) map[string]int64 {
	t.Helper()
	c, err := e.admin.Counters(e.ctx)
	require.NoError(t, err)
	return c
}

// delta is after[key] − before[key] for each key.
func delta(before, after map[string]int64, keys ...string) map[string]int64 {
	out := map[string]int64{}
	for _, k := range keys {
		out[k] = after[k] - before[k]
	}
	return out
}

// noSecrets checks that none of the secrets appears in any of the texts.
func noSecrets(t *testing.T, texts map[string]string, secrets map[string]string) {
	t.Helper()
	for sname, secret := range secrets {
		require.NotEmpty(t, secret, "the planted %s is known", sname)
		for where, text := range texts {
			require.NotContains(t, text, secret, "%s in %s", sname, where)
		}
	}
}

// pubsubSubscription reads a subscription back from the sandbox's Pub/Sub with the official client.
func (e *env) pubsubSubscription(t *testing.T, name string) *pubsubpb.Subscription {
	t.Helper()
	project := strings.Split(name, "/")[1]
	c, err := pubsub.NewClient(e.ctx, project, option.WithEndpoint(e.s.Sandbox.PubSubAddr()), option.WithoutAuthentication(),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())))
	require.NoError(t, err)
	defer c.Close()
	sub, err := c.SubscriptionAdminClient.GetSubscription(e.ctx, &pubsubpb.GetSubscriptionRequest{Subscription: name})
	require.NoError(t, err)
	return sub
}

// ---- 6.5 days later, one scheduled run ----

const jump = 6*24*time.Hour + 12*time.Hour

// longInterval keeps the schedule's own next action out of a test's way (a Temporal interval is
// aligned to the epoch, so even a daily one could fire mid-test at midnight UTC); the tests fire the
// scheduled runs themselves.
const longInterval = "720h"

// checkSixAndAHalfDays connects a mailbox and a calendar, moves the sandbox clock 6.5 days ahead
// (the worker's due decisions follow it), fires ONE scheduled run with trigger, and checks that every
// watch and channel was renewed and every token refreshed at Google, the outcomes recorded, and mail
// and events created after the jump arrive. It returns the run.
func checkSixAndAHalfDays(t *testing.T, e *env, logs *syncBuffer, tenant, wantRunner string, trigger func()) (*tenantSetup, mtRun) {
	t.Helper()
	ts := e.setupTenant(t, tenant, "acme-"+tenant, setupOpts{})
	rec := record(ts.adminHTTP)
	mailbox, account := "support@"+tenant+".test", "tech@"+tenant+".test"
	g := e.connectGmail(t, ts, mailbox)
	e.waitSyncIdle(t)
	calp := e.connectCalendar(t, ts, "tech-1", account)
	oldChannel := e.cal().calendarLiveChannel(t, account)
	gConnBefore, cConnBefore := e.connection(t, tenant, g.ID), e.calendarConnection(t, tenant, calp.ID)
	grantsBefore := []map[string]any{e.storedGrant(t, tenant, gConnBefore.GetConnectionId()), e.storedGrant(t, tenant, cConnBefore.GetConnectionId())}
	seen := runIDs(t, ts.adminHTTP)

	require.NoError(t, e.admin.AdvanceClock(e.ctx, jump))
	sandboxNow, err := e.admin.Now(e.ctx)
	require.NoError(t, err)
	client := ts.project.ClientID
	keys := []string{"gmail.users.watch|" + client, "calendar.events.watch|" + client, "calendar.channels.stop|" + client,
		"oauth.token.refresh_token|" + client, "gmail.users.history.list|" + client, "calendar.events.list|" + client}
	before := e.counters(t)
	triggered := time.Now()
	trigger()
	run := waitScheduledRun(t, ts.adminHTTP, seen)
	after := e.counters(t)

	// The run: scheduled, under the configured runner, every step due and done.
	require.Equal(t, wantRunner, run.Runner)
	require.Equal(t, "RUN_STATUS_SUCCEEDED", run.Status, "%+v", run)
	require.Equal(t, 2, run.ProviderCount)
	require.Equal(t, 2, run.DueCount)
	require.Zero(t, run.FailedCount)
	gs := run.provider(t, g.ID).steps()
	for _, st := range []string{"STEP_TOKEN_REFRESH", "STEP_PROVISIONING_VERIFY", "STEP_WATCH_RENEW", "STEP_RECONCILE"} {
		require.Equal(t, "OUTCOME_STATUS_OK", gs[st].Outcome.Status, "gmail %s: %+v", st, gs[st])
		require.NotEmpty(t, gs[st].Reason)
	}
	require.Contains(t, gs["STEP_WATCH_RENEW"].Reason, "expires within", "the watch was due because it expires within the renew-ahead window")
	cs := run.provider(t, calp.ID).steps()
	for _, st := range []string{"STEP_TOKEN_REFRESH", "STEP_CHANNEL_RENEW", "STEP_DELTA_SYNC"} {
		require.Equal(t, "OUTCOME_STATUS_OK", cs[st].Outcome.Status, "calendar %s: %+v", st, cs[st])
	}
	require.Contains(t, cs["STEP_CHANNEL_RENEW"].Reason, "expires within")

	// Google's side: one users.watch, one events.watch then one channels.stop, one refresh per
	// connection, one history.list (reconcile) and one events.list (delta sync) — nothing else.
	require.Equal(t, map[string]int64{keys[0]: 1, keys[1]: 1, keys[2]: 1, keys[3]: 2, keys[4]: 1, keys[5]: 1}, delta(before, after, keys...))
	w, err := e.admin.Watches(e.ctx, mailbox)
	require.NoError(t, err)
	require.Len(t, w, 1)
	require.True(t, w[0].Active)
	require.WithinDuration(t, sandboxNow.Add(7*24*time.Hour), w[0].Expiration, time.Minute, "a new week-long watch from the jump")
	newChannel := e.cal().calendarLiveChannel(t, account)
	require.NotEqual(t, oldChannel.ID, newChannel.ID)
	require.WithinDuration(t, sandboxNow.Add(7*24*time.Hour), newChannel.Expiration, time.Minute)
	for _, ch := range e.cal().calendarChannels(t, account) {
		if ch.ID == oldChannel.ID {
			require.True(t, ch.Stopped, "the old channel was stopped")
		}
	}
	d := e.diagnostics(t, ts, g.ID)
	require.Equal(t, "PROVIDER_STATUS_CONNECTED", d.Provider.Status)
	require.Equal(t, w[0].Expiration.Truncate(time.Millisecond).UTC(), mustTime(t, d.Diagnostics.WatchExpireTime).UTC(), "Google's expiration (ms) stored as is")

	// Every token was refreshed: the connections' last refresh is this run's.
	for _, conn := range []*oauthv1.Connection{e.connection(t, tenant, g.ID), e.calendarConnection(t, tenant, calp.ID)} {
		require.Equal(t, oauthv1.ConnectionStatus_CONNECTION_STATUS_CONNECTED, conn.GetStatus())
		require.True(t, conn.GetLastRefreshTime().AsTime().After(triggered.Add(-time.Second)), "connection %s refreshed by the run (%v)", conn.GetConnectionId(), conn.GetLastRefreshTime().AsTime())
	}

	// Mail and events created after the jump arrive (pushed through the renewed watch and channel).
	require.True(t, e.deliver(t, mailbox, plainEmail(mailbox, "After the jump")).Notified, "the renewed watch notifies")
	got := e.waitInbound(t, tenant, g.ID, 1)
	require.Equal(t, "After the jump", got[0].GetSubject())
	e.cal().calendarEvent(t, account, "Created after the jump")
	changes := e.waitCalendarChanges(t, tenant, calp.ID, 2)
	require.Equal(t, "CREATED:Created after the jump", calendarTypes(changes)[1])
	require.Positive(t, e.counter(t, "calendar.push|"+newChannel.ID), "the change came through the new channel")

	// Who may run and look: running needs system_settings:update; reading, any internal user.
	plain := e.s.HTTP(e.s.UserToken(tenant, "tech-1"))
	r := plain.Do(t, http.MethodPost, "/api/v1/google/maintenance:run", map[string]any{})
	require.Equal(t, http.StatusForbidden, r.Status, r.Errorf())
	st := maintenanceStatus(t, plain)
	require.Equal(t, wantRunner, st.Runner)
	require.Equal(t, run.RunID, st.Runs[0].RunID, "most recent first")
	require.Equal(t, http.StatusForbidden, e.s.HTTP(e.s.ClientUserToken(tenant, "customer")).Do(t, http.MethodGet, "/api/v1/google/maintenance", nil).Status)
	manual := runMaintenance(t, ts.adminHTTP)
	require.Equal(t, "TRIGGER_MANUAL", manual.Trigger)
	require.Equal(t, wantRunner, manual.Runner)
	require.Equal(t, "RUN_STATUS_SUCCEEDED", manual.Status, "%+v", manual)
	require.Len(t, manual.Providers, 2, "the answer has every provider's outcome")
	for _, p := range manual.Providers {
		require.NotEmpty(t, p.Steps, "%+v", p)
	}
	st = maintenanceStatus(t, ts.adminHTTP)
	require.Equal(t, []string{manual.RunID, run.RunID}, []string{st.Runs[0].RunID, st.Runs[1].RunID})
	scheduled := 0
	for _, r := range st.Runs {
		if r.Trigger == "TRIGGER_SCHEDULE" {
			scheduled++
		}
	}
	require.Equal(t, 1, scheduled, "one scheduled run")

	// No secret or token in any response the admin got, nor in the suite's logs.
	secrets := map[string]string{"client secret": ts.project.ClientSecret, "service-account key": privateKeyOf(t, ts.saKey)}
	grants := append(grantsBefore, e.storedGrant(t, tenant, gConnBefore.GetConnectionId()), e.storedGrant(t, tenant, cConnBefore.GetConnectionId()))
	for i, gr := range grants {
		secrets["access token "+itoa(i)] = gr["access_token"].(string)
		secrets["refresh token "+itoa(i)] = gr["refresh_token"].(string)
	}
	require.NotEqual(t, grants[0]["access_token"], grants[2]["access_token"], "the gmail token was refreshed")
	noSecrets(t, map[string]string{"HTTP responses": rec.String(), "logs": logs.String()}, secrets)
	return ts, run
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339Nano, s)
	require.NoError(t, err, s)
	return v
}

// privateKeyOf is the PEM body of a service-account key file (a line of it is enough to find a leak).
func privateKeyOf(t *testing.T, keyJSON []byte) string {
	t.Helper()
	s := string(keyJSON)
	i := strings.Index(s, "PRIVATE KEY-----")
	require.Positive(t, i)
	rest := strings.TrimPrefix(s[i+len("PRIVATE KEY-----"):], `\n`)
	require.Greater(t, len(rest), 64)
	return rest[:64]
}

// TestMaintenanceTemporalSixAndAHalfDays: under the Temporal runner against a real dev server, the
// tenant's Schedule (google-maintenance/<tenant>) fires once 6.5 days after connect: every watch,
// channel and token is renewed at Google, mail and events keep arriving, and the workflow's history
// carries no token or secret.
func TestMaintenanceTemporalSixAndAHalfDays(t *testing.T) {
	t.Parallel()
	tp := harness.StartTemporal(t)
	logs := &syncBuffer{}
	e := newEnv(t, harness.Options{Logs: logs, SandboxClock: true, Configure: tp.Configure,
		Settings: map[string]string{"maintenance-interval": longInterval}})
	const tenant = "tenant-mt-temporal"
	ts, run := checkSixAndAHalfDays(t, e, logs, tenant, "RUNNER_TEMPORAL", func() {
		tp.TriggerSchedule(t, e.ctx, tenant)
	})

	// The schedule is the tenant's, with overlap SKIP, and it started the run.
	desc, err := tp.Client.ScheduleClient().GetHandle(e.ctx, harness.ScheduleID(tenant)).Describe(e.ctx)
	require.NoError(t, err)
	require.Equal(t, enumspb.SCHEDULE_OVERLAP_POLICY_SKIP, desc.Schedule.Policy.Overlap)
	require.Len(t, desc.Info.RecentActions, 1, "one scheduled run")
	action := desc.Info.RecentActions[0].StartWorkflowResult
	require.True(t, strings.HasPrefix(action.WorkflowID, harness.ScheduleID(tenant)+"/scheduled"), action.WorkflowID)
	st := maintenanceStatus(t, ts.adminHTTP)
	require.NotNil(t, st.NextRunTime, "the schedule's next action is shown")
	require.Equal(t, "2592000s", st.Interval)

	// Workflow inputs, outputs and activity results carry ids and outcomes, never a secret.
	var hist strings.Builder
	it := tp.Client.GetWorkflowHistory(e.ctx, action.WorkflowID, action.FirstExecutionRunID, false, 0)
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(t, err)
		b, err := prototext.Marshal(ev)
		require.NoError(t, err)
		hist.Write(b)
	}
	require.Contains(t, hist.String(), run.RunID, "the history's payloads are readable")
	secrets := map[string]string{"client secret": ts.project.ClientSecret, "service-account key": privateKeyOf(t, ts.saKey)}
	for _, p := range run.Providers {
		var cid string
		if p.Kind == "PROVIDER_KIND_GMAIL" {
			cid = e.connection(t, tenant, p.ProviderID).GetConnectionId()
		} else {
			cid = e.calendarConnection(t, tenant, p.ProviderID).GetConnectionId()
		}
		gr := e.storedGrant(t, tenant, cid)
		secrets["access token of "+p.Name] = gr["access_token"].(string)
		secrets["refresh token of "+p.Name] = gr["refresh_token"].(string)
	}
	noSecrets(t, map[string]string{"workflow history": hist.String()}, secrets)
}

// TestMaintenanceRiverSixAndAHalfDays: the same scenario under the River runner (the default): the
// periodic job fires once 6.5 days after connect.
func TestMaintenanceRiverSixAndAHalfDays(t *testing.T) {
	t.Parallel()
	logs := &syncBuffer{}
	e := newEnv(t, harness.Options{Logs: logs, SandboxClock: true, Settings: map[string]string{"maintenance-interval": longInterval}})
	// The periodic job also runs at start (before any tenant is configured): let it finish first, so the
	// only scheduled run after the jump is the one fired below.
	e.waitStartupTick(t)
	const tenant = "tenant-mt-river"
	ts, _ := checkSixAndAHalfDays(t, e, logs, tenant, "RUNNER_RIVER", func() { e.s.TriggerRiverMaintenance(t, e.ctx) })
	st := maintenanceStatus(t, ts.adminHTTP)
	require.NotNil(t, st.NextRunTime)
	require.Equal(t, "2592000s", st.Interval)
}

// expireCachedToken makes the connection's cached access token expired a minute ago, on the oauth
// service's record and in the stored grant (as an hour after the last refresh): the next caller
// refreshes it.
func (e *env) expireCachedToken(t *testing.T, tenant, connectionID string) {
	t.Helper()
	grant := e.storedGrant(t, tenant, connectionID)
	grant["expiry"] = time.Now().Add(-time.Minute).UTC().Format(time.RFC3339Nano)
	raw, err := json.Marshal(grant)
	require.NoError(t, err)
	_, err = secretsv1.NewSecretsServiceClient(e.s.Conn(t)).PutSecrets(e.svcCtx("oauth", tenant), &secretsv1.PutSecretsRequest{
		Writes: []*secretsv1.SecretWrite{{Name: "google_oauth_token_" + connectionID, Value: string(raw)}}})
	require.NoError(t, err)
	require.NoError(t, oauthtesting.ExpireAccessToken(e.ctx, e.s.App.Deps().Pool, connectionID))
}

// waitStartupTick waits until the River periodic job's run at start (before any tenant is configured)
// has finished, so the only scheduled runs a test sees are the ones it fires.
func (e *env) waitStartupTick(t *testing.T) {
	t.Helper()
	require.Eventually(t, func() bool {
		return e.count(t, "SELECT count(*) FROM maintenance.river_job WHERE kind = 'google_maintenance_tick' AND state = 'completed'") >= 1
	}, 30*time.Second, 50*time.Millisecond, "the start-up tick")
}

// TestMaintenanceRevokedTenantDoesNotDelayAnother: tenant A's grants are revoked at Google while their
// access tokens are still cached, and A's Google answers slowly; one scheduled tick (River) or both
// tenants' Schedules (Temporal) start A's and B's runs together. A's providers end in ERROR with the
// revoked-grant remedy (the Google 401 forced a refresh, classified, never labels_failed) — on the
// provider, its diagnostics and the run history — and B's run, whose expired tokens are refreshed on
// demand beside A's four slow forced refreshes, takes its normal time (its recorded duration against a
// B-only baseline). Before oauth's refresh lease, A's refreshes held every refresh slot of the oauth
// process (and a database connection each) while Google answered, and B waited for them.
func TestMaintenanceRevokedTenantDoesNotDelayAnother(t *testing.T) {
	t.Parallel()
	t.Run("river", func(t *testing.T) {
		t.Parallel()
		checkRevokedTenantIsolation(t, nil)
	})
	t.Run("temporal", func(t *testing.T) {
		t.Parallel()
		checkRevokedTenantIsolation(t, harness.StartTemporal(t))
	})
}

// checkRevokedTenantIsolation is the two-tenant scenario under River (tp nil: one periodic tick starts
// both runs) or Temporal (both tenants' Schedules are fired together).
func checkRevokedTenantIsolation(t *testing.T, tp *harness.Temporal) {
	logs := &syncBuffer{}
	// A renew-ahead window longer than a watch's life: every run renews every watch and channel (the
	// same work in each run, no clock moved) while the tokens stay fresh, so A's revoked grants are met
	// with a Google 401 on the still-cached access tokens.
	opts := harness.Options{Logs: logs, Settings: map[string]string{"maintenance-interval": longInterval, "maintenance-renew-ahead": "192h"}}
	wantRunner := "RUNNER_RIVER"
	if tp != nil {
		opts.Configure, wantRunner = tp.Configure, "RUNNER_TEMPORAL"
	}
	e := newEnv(t, opts)
	if tp == nil {
		e.waitStartupTick(t)
	}
	a := e.setupTenant(t, "tenant-mt-a", "acme-mt-a", setupOpts{})
	b := e.setupTenant(t, "tenant-mt-b", "acme-mt-b", setupOpts{})
	recA, recB := record(a.adminHTTP), record(b.adminHTTP)
	var aProviders []gmailProvider
	for _, mb := range []string{"one@a.test", "two@a.test", "three@a.test", "four@a.test"} {
		aProviders = append(aProviders, e.connectGmail(t, a, mb))
	}
	bg := e.connectGmail(t, b, "help@b.test")
	bc := e.connectCalendar(t, b, "tech-b", "tech@b.test")
	e.waitSyncIdle(t)

	// B's access tokens expired an hour ago (an idle mailbox's do): each run's renewals refresh them
	// on demand first.
	expireB := func() {
		e.expireCachedToken(t, b.tenant, e.connection(t, b.tenant, bg.ID).GetConnectionId())
		e.expireCachedToken(t, b.tenant, e.calendarConnection(t, b.tenant, bc.ID).GetConnectionId())
	}

	// B's normal time: a B-only run doing the same work (refresh its tokens, renew its watch and its
	// channel).
	expireB()
	refreshes := e.counter(t, "oauth.token.refresh_token|"+b.project.ClientID)
	base := runMaintenance(t, b.adminHTTP)
	require.Equal(t, refreshes+2, e.counter(t, "oauth.token.refresh_token|"+b.project.ClientID), "B's run refreshed both tokens")
	require.Equal(t, "RUN_STATUS_SUCCEEDED", base.Status, "%+v", base)
	require.Equal(t, 2, base.DueCount)
	d0 := base.duration(t)

	// A: every grant revoked at Google (the access tokens stay cached on our side), and Google slow for
	// A's OAuth client.
	const slow = 8 * time.Second // ≫ what a busy machine adds to B's normal time
	for _, p := range aProviders {
		require.NoError(t, e.admin.RevokeGrant(e.ctx, p.Mailbox, a.project.ClientID))
	}
	require.NoError(t, e.admin.SetFault(e.ctx, googlesandbox.Fault{Endpoint: "*", ClientID: a.project.ClientID, Latency: slow}))
	expireB()
	seenA, seenB := runIDs(t, a.adminHTTP), runIDs(t, b.adminHTTP)
	if tp == nil {
		e.s.TriggerRiverMaintenance(t, e.ctx)
	} else {
		tp.TriggerSchedule(t, e.ctx, a.tenant)
		tp.TriggerSchedule(t, e.ctx, b.tenant)
	}
	rb := waitScheduledRun(t, b.adminHTTP, seenB)
	ra := waitScheduledRun(t, a.adminHTTP, seenA)

	// Started together; B in its normal time, A held up by its own Google only.
	require.True(t, rb.StartTime.Before(ra.EndTime) && ra.StartTime.Before(rb.EndTime), "the runs overlapped: A %v–%v, B %v–%v", ra.StartTime, ra.EndTime, rb.StartTime, rb.EndTime)
	if tp == nil {
		require.WithinDuration(t, ra.StartTime, rb.StartTime, 2*time.Second, "one tick started both runs")
	}
	require.Equal(t, wantRunner, ra.Runner)
	require.Equal(t, wantRunner, rb.Runner)
	require.Equal(t, "RUN_STATUS_SUCCEEDED", rb.Status, "%+v", rb)
	db, da := rb.duration(t), ra.duration(t)
	bound := max(3*d0, d0+4*time.Second) // room for a busy machine, yet half of one of A's Google calls
	t.Logf("%s: B alone %v; B beside A %v (bound %v); A %v", wantRunner, d0, db, bound, da)
	require.LessOrEqual(t, db, bound, "B's run took its normal time")
	require.True(t, rb.EndTime.Before(ra.StartTime.Add(slow)), "B's run ended before any of A's slow Google calls could answer")
	require.GreaterOrEqual(t, da, slow, "A's run met its slow Google")
	for _, id := range []string{bg.ID, bc.ID} {
		p := rb.provider(t, id)
		require.Equal(t, "OUTCOME_STATUS_OK", p.Status, "%+v", p)
	}

	// A's providers: ERROR with the revoked-grant remedy, in the run, on the provider, in diagnostics.
	require.Equal(t, "RUN_STATUS_PARTIAL", ra.Status, "%+v", ra)
	require.Equal(t, len(aProviders), ra.FailedCount)
	for _, gp := range aProviders {
		p := ra.provider(t, gp.ID)
		require.Equal(t, "OUTCOME_STATUS_FAILED", p.Status, "%+v", p)
		require.Equal(t, "token_revoked", p.ErrorCode, "%+v", p)
		require.Contains(t, p.Remedy, "Reconnect")
		w := p.steps()["STEP_WATCH_RENEW"]
		require.Equal(t, "OUTCOME_STATUS_FAILED", w.Outcome.Status, "%+v", p.Steps)
		require.Equal(t, "FAILURE_CLASS_REVOKED", w.Outcome.FailureClass)

		got := e.provider(t, a, gp.ID)
		require.Equal(t, "PROVIDER_STATUS_ERROR", got.Status)
		require.NotNil(t, got.Error)
		require.Equal(t, "token_revoked", got.Error.Code, "%+v", got.Error)
		require.NotEqual(t, "labels_failed", got.Error.Code)
		require.Contains(t, got.Error.Remedy, "Reconnect")
		require.NotEmpty(t, got.Error.Message)
		d := e.diagnostics(t, a, gp.ID)
		require.NotNil(t, d.Diagnostics.LastError)
		require.Equal(t, "token_revoked", d.Diagnostics.LastError.Code)
		require.Contains(t, d.Diagnostics.LastError.Remedy, "Reconnect")
		require.Equal(t, oauthv1.ConnectionStatus_CONNECTION_STATUS_REVOKED, e.connection(t, a.tenant, gp.ID).GetStatus())
	}
	st := maintenanceStatus(t, a.adminHTTP)
	require.Equal(t, ra.RunID, st.Runs[0].RunID)
	require.Equal(t, "token_revoked", st.Runs[0].provider(t, aProviders[0].ID).ErrorCode)
	// :refresh does not claim success while the grant is gone.
	require.NoError(t, e.admin.ClearFaults(e.ctx))
	r := a.adminHTTP.Do(t, http.MethodPost, "/api/v1/gmail/providers/"+aProviders[0].ID+":refresh", map[string]any{})
	require.NotEqual(t, http.StatusOK, r.Status, r.Errorf())
	require.Equal(t, "PROVIDER_STATUS_ERROR", e.provider(t, a, aProviders[0].ID).Status)

	// B is untouched: its mail still arrives.
	require.True(t, e.deliver(t, "help@b.test", plainEmail("help@b.test", "B is fine")).Notified)
	require.Equal(t, "B is fine", e.waitInbound(t, b.tenant, bg.ID, 1)[0].GetSubject())

	secrets := map[string]string{"A's client secret": a.project.ClientSecret, "B's client secret": b.project.ClientSecret}
	for _, gp := range aProviders {
		gr := e.storedGrant(t, a.tenant, e.connection(t, a.tenant, gp.ID).GetConnectionId())
		secrets["access token of "+gp.Mailbox] = gr["access_token"].(string)
		secrets["refresh token of "+gp.Mailbox] = gr["refresh_token"].(string)
	}
	noSecrets(t, map[string]string{"A's responses": recA.String(), "B's responses": recB.String(), "logs": logs.String()}, secrets)
}

// TestMaintenanceBaseURLChangeMovesPushSubscription: the suite restarts on the same database and
// sandbox with another ALGA_BASE_URL; its next run (the periodic job's run at start) moves the Gmail
// push subscription to the new canonical endpoint and audience, read back from the sandbox's Pub/Sub,
// and pushes arrive there.
func TestMaintenanceBaseURLChangeMovesPushSubscription(t *testing.T) {
	t.Parallel()
	sb := startSandbox(t)
	db := pgtest.NewDatabase(t)
	logs := &syncBuffer{}
	settings := map[string]string{"maintenance-interval": longInterval}
	e1 := newEnv(t, harness.Options{Sandbox: sb, DatabaseURL: db, Logs: logs, Settings: settings})
	e1.waitStartupTick(t)
	ts := e1.setupTenant(t, "tenant-mt-move", "acme-mt-move", setupOpts{})
	g := e1.connectGmail(t, ts, "move@acme.test")
	e1.waitSyncIdle(t)
	sub := e1.diagnostics(t, ts, g.ID).Diagnostics.Subscription
	require.NotEmpty(t, sub)
	oldEndpoint := e1.s.BaseURL + "/api/email/webhooks/google"
	require.Equal(t, oldEndpoint, e1.pubsubSubscription(t, sub).GetPushConfig().GetPushEndpoint())
	seen := runIDs(t, ts.adminHTTP)
	e1.s.Stop()

	// Back on another address: ALGA_BASE_URL changed.
	e2 := newEnv(t, harness.Options{Sandbox: sb, DatabaseURL: db, Logs: logs, Settings: settings})
	require.NotEqual(t, e1.s.BaseURL, e2.s.BaseURL)
	newEndpoint := e2.s.BaseURL + "/api/email/webhooks/google"
	admin := e2.s.HTTP(e2.s.UserToken(ts.tenant, "admin-"+ts.tenant, auth.PermSystemSettingsUpdate))
	rec := record(admin)
	run := waitScheduledRun(t, admin, seen)
	require.Equal(t, "RUN_STATUS_SUCCEEDED", run.Status, "%+v", run)
	pv := run.provider(t, g.ID).steps()["STEP_PROVISIONING_VERIFY"]
	require.Equal(t, "OUTCOME_STATUS_OK", pv.Outcome.Status, "%+v", pv)
	require.Contains(t, pv.Reason, oldEndpoint, "due because the recorded endpoint is not the canonical one")
	require.Contains(t, pv.Reason, newEndpoint)

	// Google's side: the same subscription now pushes to the new endpoint, with the new audience and
	// the tenant's service account.
	s := e2.pubsubSubscription(t, sub)
	require.Equal(t, newEndpoint, s.GetPushConfig().GetPushEndpoint())
	require.Equal(t, newEndpoint, s.GetPushConfig().GetOidcToken().GetAudience())
	require.Equal(t, ts.saEmail, s.GetPushConfig().GetOidcToken().GetServiceAccountEmail())
	d := e2.diagnostics(t, &tenantSetup{tenant: ts.tenant, adminHTTP: admin}, g.ID)
	require.Equal(t, newEndpoint, d.Diagnostics.PushEndpoint)
	require.Equal(t, newEndpoint, d.Diagnostics.PushAudience)
	require.Equal(t, "PROVIDER_STATUS_CONNECTED", d.Provider.Status)

	// And pushes arrive there.
	require.True(t, e2.deliver(t, "move@acme.test", plainEmail("move@acme.test", "To the new address")).Notified)
	got := e2.waitInbound(t, ts.tenant, g.ID, 1)
	require.Equal(t, "To the new address", got[0].GetSubject())
	deliveries, err := e2.admin.Deliveries(e2.ctx)
	require.NoError(t, err)
	acked := 0
	for _, dl := range deliveries {
		if dl.Kind == "pubsub" && dl.Target == sub && dl.Outcome == "acked" {
			require.Equal(t, newEndpoint, dl.Address)
			acked++
		}
	}
	require.Equal(t, 1, acked, "one push, acknowledged at the new endpoint: %+v", deliveries)

	// A second run right after makes no Google call (nothing is due any more).
	again := runMaintenance(t, admin)
	require.Zero(t, again.DueCount, "%+v", again)
	require.Zero(t, again.GoogleCalls)

	secrets := map[string]string{"client secret": ts.project.ClientSecret, "service-account key": privateKeyOf(t, ts.saKey)}
	gr := e2.storedGrant(t, ts.tenant, e2.connection(t, ts.tenant, g.ID).GetConnectionId())
	secrets["access token"], secrets["refresh token"] = gr["access_token"].(string), gr["refresh_token"].(string)
	noSecrets(t, map[string]string{"HTTP responses": rec.String(), "logs": logs.String()}, secrets)
}
