package e2e_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"

	calendarv1 "github.com/algapsa/alga-google/gen/alga/calendar/v1"
	gmailv1 "github.com/algapsa/alga-google/gen/alga/gmail/v1"
	m "github.com/algapsa/alga-google/gen/alga/maintenance/v1"
	oauthv1 "github.com/algapsa/alga-google/gen/alga/oauth/v1"
	secretsv1 "github.com/algapsa/alga-google/gen/alga/secrets/v1"
	"github.com/algapsa/alga-google/services/calendar/calendartesting"
	"github.com/algapsa/alga-google/services/gmail/gmailtesting"
	"github.com/algapsa/alga-google/services/googlesandbox"
	"github.com/algapsa/alga-google/services/oauth/oauthtesting"
	"github.com/algapsa/alga-google/services/platform/auth"
	"github.com/algapsa/alga-google/services/platform/config"
	"github.com/algapsa/alga-google/services/platform/pgtest"
	"github.com/algapsa/alga-google/services/suite/harness"
)

// The arranged world of the maintenance benchmark (bench_maintenance_test.go): every target but the
// worker, on one database and one sandbox, with tenants whose Gmail and Calendar providers are all
// connected — arranged through each service's own code, never by writing another service's tables:
//
//   - the sandbox: a project (production consent screen) with its OAuth client and service account per
//     tenant, and per provider an account with an approved offline grant (AdminClient.SeedGrants: what
//     the consent page and the code exchange leave behind, without the two requests);
//   - oauth: the tenant's Google setup saved through GoogleSetupService, the grants stored as connected
//     connections by oauthtesting.SeedConnections (tokens through the secrets service, as the oauth
//     service itself writes them);
//   - gmail and calendar: providers created through their provider APIs and activated through
//     ActivateGmailProvider / ActivateCalendarProvider (gmailtesting / calendartesting.ConnectProviders:
//     the Pub/Sub provisioning, users.watch, channels, first syncs — what a browser consent ends in).
//
// "6.5 days later" is then made on our side: every recorded time of each tenant (connections, providers,
// channels, Google's expirations as recorded) is moved back 6.5 days by the services' AgeTenant helpers.
// The due decisions are the worker's, made on the wall clock against those records, so this is exactly
// what the worker sees 6.5 days after a connect: every token a day old, every watch and channel expiring
// within 24 h, every provisioning check a day old, every mailbox and calendar silent for days. The
// sandbox clock is left alone: nothing at Google needs it for the calls to be due or to work, and a
// sandbox 6.5 days ahead would make the expirations the pass records (Google's) 6.5 days later than the
// wall clock our next decision reads — each further pass would then find less due.

// benchAge is how much older the world is made before each pass.
const benchAge = 156 * time.Hour // 6.5 days

// Arrangement parallelism: tenants arranged at once, and calls at once within a tenant.
const (
	benchTenantsAtOnce = 8
	benchCallsAtOnce   = 8
)

// The worker's concurrency during the pass (the defaults of ALGA_MAINTENANCE_CONCURRENCY and
// ALGA_MAINTENANCE_TENANT_CONCURRENCY) and the baseline's, which is the same: tenants × providers.
const (
	benchWorkerTenants   = 8
	benchWorkerProviders = 4
)

// benchScale is the size of the world: tenants, and Gmail and Calendar providers per tenant.
type benchScale struct{ tenants, gmail, calendar int }

func (s benchScale) providers() int { return s.tenants * (s.gmail + s.calendar) }

func (s benchScale) String() string {
	return fmt.Sprintf("%d tenants × (%d Gmail + %d Calendar) = %d providers", s.tenants, s.gmail, s.calendar, s.providers())
}

// benchScaleOf splits providers per tenant into Gmail (the larger half) and Calendar.
func benchScaleOf(tenants, providers int) benchScale {
	g := (providers + 1) / 2
	return benchScale{tenants: tenants, gmail: g, calendar: providers - g}
}

// benchEnvScale reads ALGA_BENCH_TENANTS and ALGA_BENCH_PROVIDERS (per tenant), with defaults.
func benchEnvScale(tb testing.TB, tenants, providers int) benchScale {
	tb.Helper()
	return benchScaleOf(benchEnvInt(tb, "ALGA_BENCH_TENANTS", tenants), benchEnvInt(tb, "ALGA_BENCH_PROVIDERS", providers))
}

type benchAccount struct {
	email, userID, providerID string
	grant                     googlesandbox.SeededGrant
}

type benchTenant struct {
	id                  string
	project             googlesandbox.Project
	topic, subscription string
	gmail, calendar     []benchAccount
	// adminToken is a user of the tenant with system_settings:update.
	adminToken string
}

type benchWorld struct {
	tb      testing.TB
	ctx     context.Context
	scale   benchScale
	sb      *googlesandbox.Sandbox
	admin   *googlesandbox.AdminClient
	db      string
	main    *harness.Suite
	conn    *grpc.ClientConn
	tenants []*benchTenant
	// setup is how long the arrangement took.
	setup time.Duration
	// workers counts the worker suites started (one per pass).
	workers int
}

var benchGmailScopes = []string{"https://www.googleapis.com/auth/gmail.readonly", "https://www.googleapis.com/auth/pubsub"}

var benchCalendarScopes = []string{"https://www.googleapis.com/auth/calendar"}

// newBenchWorld arranges the world at scale (see the top of this file).
func newBenchWorld(tb testing.TB, ctx context.Context, scale benchScale) *benchWorld {
	tb.Helper()
	began := time.Now()
	sb, err := googlesandbox.Start(ctx, googlesandbox.Options{Addr: "127.0.0.1:0", PubSubAddr: "127.0.0.1:0"})
	if err != nil {
		tb.Fatalf("starting the sandbox: %v", err)
	}
	tb.Cleanup(func() { _ = sb.Close() })
	db := pgtest.NewDatabase(tb)
	// The worker runs as its own suite, started for each pass (its River tick's first run is the pass);
	// this one serves the services it maintains, the gateway (Calendar notifications) and the secrets.
	idle := harness.Listen(tb)
	main := harness.Start(tb, harness.Options{Targets: "secrets,oauth,gmail,calendar,gateway", DatabaseURL: db, Sandbox: sb,
		Configure: func(c *config.Config) { c.WorkerAddr = idle.Addr().String() }})
	w := &benchWorld{tb: tb, ctx: ctx, scale: scale, sb: sb, admin: sb.Admin(), db: db, main: main, conn: main.Conn(tb)}
	for i := range scale.tenants {
		t := &benchTenant{id: fmt.Sprintf("bench-tenant-%03d", i)}
		for j := range scale.gmail {
			t.gmail = append(t.gmail, benchAccount{email: fmt.Sprintf("support%03d@t%03d.bench.test", j, i), userID: "bench-admin"})
		}
		for j := range scale.calendar {
			t.calendar = append(t.calendar, benchAccount{email: fmt.Sprintf("tech%03d@t%03d.bench.test", j, i), userID: fmt.Sprintf("tech-%03d", j)})
		}
		t.adminToken = main.UserToken(t.id, "bench-admin", auth.PermSystemSettingsUpdate)
		w.tenants = append(w.tenants, t)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(benchTenantsAtOnce)
	for i, t := range w.tenants {
		g.Go(func() error { return w.arrange(gctx, i, t) })
	}
	if err := g.Wait(); err != nil {
		tb.Fatalf("arranging the tenants: %v", err)
	}
	w.setup = time.Since(began)
	return w
}

// arrange sets up one tenant: its Google project, its saved setup, and its connected providers.
func (w *benchWorld) arrange(ctx context.Context, i int, t *benchTenant) error {
	s := w.main
	redirects := []string{s.BaseURL + "/api/auth/google/callback", s.BaseURL + "/api/auth/google/calendar/callback"}
	proj, err := w.admin.CreateProject(ctx, googlesandbox.CreateProjectRequest{ProjectID: fmt.Sprintf("bench-acme-%03d", i),
		PublishingStatus: googlesandbox.PublishingProduction, RedirectURIs: redirects})
	if err != nil {
		return err
	}
	t.project = proj
	key, _, err := w.admin.CreateServiceAccount(ctx, proj.ProjectID, "alga-pubsub")
	if err != nil {
		return err
	}
	adminCtx := harness.WithToken(ctx, t.adminToken)
	keyJSON := string(key)
	if _, err := oauthv1.NewGoogleSetupServiceClient(w.conn).UpdateGoogleConfig(adminCtx, &oauthv1.UpdateGoogleConfigRequest{
		GmailClientId: &proj.ClientID, GmailClientSecret: &proj.ClientSecret, ProjectId: &proj.ProjectID, ServiceAccountKeyJson: &keyJSON,
	}); err != nil {
		return fmt.Errorf("saving the Google setup of %s: %w", t.id, err)
	}
	if err := w.seedGrants(ctx, proj.ClientID, benchGmailScopes, t.gmail); err != nil {
		return err
	}
	if err := w.seedGrants(ctx, proj.ClientID, benchCalendarScopes, t.calendar); err != nil {
		return err
	}
	asOAuth := harness.WithToken(ctx, s.ServiceToken("oauth", t.id))
	secrets := secretsv1.NewSecretsServiceClient(w.conn)
	connect := func(kind oauthv1.ProviderKind, accounts []benchAccount) error {
		grants := make([]oauthtesting.Grant, len(accounts))
		for k, a := range accounts {
			grants[k] = oauthtesting.Grant{Kind: kind, ProviderID: a.providerID, UserID: a.userID, AccountEmail: a.email,
				ClientID: proj.ClientID, AccessToken: a.grant.AccessToken, RefreshToken: a.grant.RefreshToken,
				TokenType: a.grant.TokenType, Scope: a.grant.Scope, Expiry: time.Now().Add(time.Duration(a.grant.ExpiresIn) * time.Second)}
		}
		_, err := oauthtesting.SeedConnections(asOAuth, s.App.Deps().Pool, secrets, t.id, grants)
		return err
	}
	if len(t.gmail) > 0 {
		mailboxes := make([]string, len(t.gmail))
		for k, a := range t.gmail {
			mailboxes[k] = a.email
		}
		_, err := gmailtesting.ConnectProviders(adminCtx, asOAuth, w.conn, mailboxes, func(ps []*gmailv1.GmailProvider) error {
			for k, p := range ps {
				t.gmail[k].providerID = p.GetId()
			}
			return connect(oauthv1.ProviderKind_PROVIDER_KIND_GMAIL, t.gmail)
		}, benchCallsAtOnce)
		if err != nil {
			return fmt.Errorf("%s: %w", t.id, err)
		}
		d, err := gmailv1.NewGmailProviderServiceClient(w.conn).GetGmailProviderDiagnostics(adminCtx,
			&gmailv1.GetGmailProviderDiagnosticsRequest{Id: t.gmail[0].providerID})
		if err != nil {
			return err
		}
		t.topic, t.subscription = d.GetDiagnostics().GetTopic(), d.GetDiagnostics().GetSubscription()
	}
	if len(t.calendar) > 0 {
		accounts := make([]calendartesting.Account, len(t.calendar))
		for k, a := range t.calendar {
			accounts[k] = calendartesting.Account{UserID: a.userID, Email: a.email}
		}
		asUser := func(user string) context.Context { return harness.WithToken(ctx, s.UserToken(t.id, user)) }
		_, err := calendartesting.ConnectProviders(asUser, asOAuth, w.conn, accounts, func(ps []*calendarv1.CalendarProvider) error {
			for k, p := range ps {
				t.calendar[k].providerID = p.GetId()
			}
			return connect(oauthv1.ProviderKind_PROVIDER_KIND_CALENDAR, t.calendar)
		}, benchCallsAtOnce)
		if err != nil {
			return fmt.Errorf("%s: %w", t.id, err)
		}
	}
	return w.settle(ctx, t)
}

// seedGrants gives every account an approved offline grant to client at the sandbox.
func (w *benchWorld) seedGrants(ctx context.Context, clientID string, scopes []string, accounts []benchAccount) error {
	for start := 0; start < len(accounts); start += googlesandbox.MaxSeedGrants {
		batch := accounts[start:min(start+googlesandbox.MaxSeedGrants, len(accounts))]
		emails := make([]string, len(batch))
		for k, a := range batch {
			emails[k] = a.email
		}
		grants, err := w.admin.SeedGrants(ctx, googlesandbox.SeedGrantsRequest{ClientID: clientID, Scopes: scopes, Accounts: emails})
		if err != nil {
			return err
		}
		for k := range batch {
			batch[k].grant = grants[k]
		}
	}
	return nil
}

// settle waits until what each activation started has finished, as the owners report it to the worker
// (their upkeep listings): every mailbox's first history sync (a River job) and every channel's first
// "sync" message from Google (delivered to the gateway after events.watch). Ageing before either lands
// would leave a fresh time behind.
func (w *benchWorld) settle(ctx context.Context, t *benchTenant) error {
	asWorker := harness.WithToken(ctx, w.main.ServiceToken("maintenance", t.id))
	gm, cal := m.NewGmailUpkeepServiceClient(w.conn), m.NewCalendarUpkeepServiceClient(w.conn)
	deadline := time.Now().Add(5 * time.Minute)
	for {
		pending := 0
		g, err := gm.ListGmailUpkeep(asWorker, &m.ListGmailUpkeepRequest{})
		if err != nil {
			return err
		}
		for _, p := range g.GetProviders() {
			if p.GetLastSyncTime() == nil {
				pending++
			}
		}
		c, err := cal.ListCalendarUpkeep(asWorker, &m.ListCalendarUpkeepRequest{})
		if err != nil {
			return err
		}
		for _, p := range c.GetProviders() {
			if p.GetChannel().GetLastNotificationTime() == nil {
				pending++
			}
		}
		if len(g.GetProviders()) != len(t.gmail) || len(c.GetProviders()) != len(t.calendar) {
			return fmt.Errorf("%s: the owners list %d Gmail and %d Calendar providers, want %d and %d", t.id,
				len(g.GetProviders()), len(c.GetProviders()), len(t.gmail), len(t.calendar))
		}
		if pending == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: %d providers still have no first sync or channel message", t.id, pending)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// age makes every tenant benchAge older, through each owner's AgeTenant helper.
func (w *benchWorld) age(ctx context.Context) error {
	pool := w.main.App.Deps().Pool
	for _, t := range w.tenants {
		if err := oauthtesting.AgeTenant(ctx, pool, t.id, benchAge); err != nil {
			return fmt.Errorf("ageing the connections of %s: %w", t.id, err)
		}
		if len(t.gmail) > 0 {
			if err := gmailtesting.AgeTenant(ctx, pool, t.id, benchAge); err != nil {
				return fmt.Errorf("ageing the Gmail providers of %s: %w", t.id, err)
			}
		}
		if len(t.calendar) > 0 {
			if err := calendartesting.AgeTenant(ctx, pool, t.id, benchAge); err != nil {
				return fmt.Errorf("ageing the Calendar providers of %s: %w", t.id, err)
			}
		}
	}
	return nil
}

// googleCalls returns the sandbox's API-call counters: every endpoint total ("endpoint", not
// "endpoint|key"), without the aggregate "oauth.token" (each token request is also counted under its
// grant, "oauth.token.refresh_token") and without what Google sends rather than answers (Gmail
// notifications, Pub/Sub pushes, Calendar channel messages).
func (w *benchWorld) googleCalls(ctx context.Context) (map[string]int64, error) {
	all, err := w.admin.Counters(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for k, v := range all {
		if strings.Contains(k, "|") || k == "oauth.token" || strings.HasPrefix(k, "gmail.notification") ||
			strings.HasPrefix(k, "pubsub.push") || strings.HasPrefix(k, "calendar.push") {
			continue
		}
		out[k] = v
	}
	return out, nil
}

// benchDelta is after − before, without zeros.
func benchDelta(before, after map[string]int64) map[string]int64 {
	out := map[string]int64{}
	for k, v := range after {
		if d := v - before[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

func benchSum(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

// startWorker starts the worker target as its own suite on the world's database, its peers the main
// suite's targets and its canonical base URL the main suite's. Its River client's periodic tick runs on
// start (RunOnStart) and enqueues one job per configured tenant: that is the pass. The interval (1 h)
// keeps a second tick out of it. The per-tenant Google rate limit is off (settings: see the benchmark).
func (w *benchWorld) startWorker(settings map[string]string) *harness.Suite {
	w.tb.Helper()
	w.workers++
	addr := w.main.App.GRPCAddr()
	return harness.Start(w.tb, harness.Options{Targets: "worker", DatabaseURL: w.db, Sandbox: w.sb, Settings: settings,
		Configure: func(c *config.Config) {
			c.BaseURL = w.main.BaseURL
			c.OAuthAddr, c.GmailAddr, c.CalendarAddr, c.SecretsAddr = addr, addr, addr, addr
		}})
}

// waitRuns waits until every tenant has recorded a run that started after since, and returns them in
// the order of the tenants.
func (w *benchWorld) waitRuns(ctx context.Context, worker *harness.Suite, since time.Time, timeout time.Duration) ([]*m.MaintenanceRun, error) {
	client := m.NewMaintenanceServiceClient(worker.Conn(w.tb))
	runs := make([]*m.MaintenanceRun, len(w.tenants))
	deadline := time.Now().Add(timeout)
	var mu sync.Mutex
	for {
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(16)
		for i, t := range w.tenants {
			mu.Lock()
			done := runs[i] != nil
			mu.Unlock()
			if done {
				continue
			}
			g.Go(func() error {
				r, err := client.GetGoogleMaintenance(harness.WithToken(gctx, t.adminToken), &m.GetGoogleMaintenanceRequest{PageSize: 2})
				if err != nil {
					return err
				}
				for _, run := range r.GetRuns() {
					if !run.GetStartTime().AsTime().Before(since) {
						mu.Lock()
						runs[i] = run
						mu.Unlock()
						break
					}
				}
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return nil, err
		}
		missing := 0
		for _, r := range runs {
			if r == nil {
				missing++
			}
		}
		if missing == 0 {
			return runs, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("after %s, %d of %d tenants have no recorded run", timeout, missing, len(runs))
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
