package service

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/iam/apiv1/iampb"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"cloud.google.com/go/pubsub/v2/pstest"
	"github.com/golang-jwt/jwt/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	gmailv1 "github.com/algapsa/alga-google/gen/alga/gmail/v1"
	"github.com/algapsa/alga-google/services/gmail/internal/store"
	"github.com/algapsa/alga-google/services/platform/auth"
	"github.com/algapsa/alga-google/services/platform/errs"
	"github.com/algapsa/alga-google/services/platform/googleapi"
	"github.com/algapsa/alga-google/services/platform/grpcserver"
	"github.com/algapsa/alga-google/services/platform/logging"
	"github.com/algapsa/alga-google/services/platform/pgtest"
	"github.com/algapsa/alga-google/services/platform/urls"
)

const (
	project = "acme-prod"
	saEmail = "alga-pubsub@acme-prod.iam.gserviceaccount.com"
)

var (
	pushKey  = mustRSA()
	otherKey = mustRSA()
	authKey  = []byte("test-key-0123456789abcdef0123456789")
	svcKey   = []byte("test-service-key-0123456789abcdef0123")
)

func mustRSA() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
}

type staticKeys map[string]*rsa.PublicKey

func (s staticKeys) Key(_ context.Context, kid string) (*rsa.PublicKey, error) {
	if k, ok := s[kid]; ok {
		return k, nil
	}
	return nil, fmt.Errorf("unknown kid %q", kid)
}

type testBundle struct {
	ctx        context.Context
	pool       *pgxpool.Pool
	dbURL      string
	svc        *Service
	gm         *fakeGmail
	ps         *pstest.Server
	iam        *fakeIAM
	psCalls    *pubsubCalls
	logs       *lockedBuffer
	peers      *fakePeers
	conn       *grpc.ClientConn
	userSigner *auth.Signer
	svcSigner  *auth.Signer
	base       urls.Base
	cancel     context.CancelFunc
	// tweak changes the service's options before Start (setup's optional arguments).
	tweak []func(*Options)
}

func newPool(t *testing.T, dbURL string) *pgxpool.Pool {
	cfg, err := pgxpool.ParseConfig(dbURL)
	require.NoError(t, err)
	cfg.MaxConns = 20
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return pool
}

func setup(t *testing.T, tweak ...func(*Options)) *testBundle {
	t.Helper()
	ctx := context.Background()
	dbURL := pgtest.NewDatabase(t)
	pool := newPool(t, dbURL)
	require.NoError(t, store.Migrations().Apply(ctx, pool))
	ps, iam, psCalls := startPubSub(t)
	b := &testBundle{ctx: ctx, pool: pool, dbURL: dbURL, gm: startGmail(t), ps: ps, iam: iam, psCalls: psCalls, peers: newPeers()}
	b.base, _ = urls.Parse("https://helpdesk.example.com", false)
	b.logs = &lockedBuffer{}
	b.userSigner, _ = auth.NewSigner(authKey, "alga-psa", "alga-google")
	b.svcSigner, _ = auth.NewSigner(svcKey, "alga-google", "alga-google")
	b.tweak = tweak
	b.startService(t)
	return b
}

// startService starts a service (and its gRPC server) on the bundle's database, the way the target
// does: construct, register, start; stopped at the end of the test (or by b.cancel).
func (b *testBundle) startService(t *testing.T) {
	t.Helper()
	svc := New()
	verifier, err := auth.NewVerifier(auth.VerifierConfig{HS256Key: authKey, ServiceKey: svcKey, Issuer: "alga-psa", Audience: "alga-google", ServiceIssuer: "alga-google"})
	require.NoError(t, err)
	srv := grpcserver.New(grpcserver.Options{Logger: logging.Discard(), Verifier: verifier, Registerer: prometheus.NewRegistry()})
	svc.Register(srv)
	runCtx, cancel := context.WithCancel(context.Background())
	opts := Options{
		Pool: b.pool, Logger: slog.New(slog.NewJSONHandler(b.logs, &slog.HandlerOptions{Level: slog.LevelDebug})), Base: b.base,
		Google: googleapi.Endpoints{Root: b.gm.srv.URL, PubSubEmulatorHost: b.ps.Addr},
		Peers:  b.peers.peers(), Registry: prometheus.NewRegistry(), Keys: staticKeys{"g1": &pushKey.PublicKey},
		Settle: 150 * time.Millisecond, MaxSettle: time.Second, SweepEvery: time.Second, SweepAge: time.Second,
		StreamPoll: 200 * time.Millisecond, ReconcileWait: time.Second, TestOnly: true,
	}
	for _, f := range b.tweak {
		f(&opts)
	}
	require.NoError(t, svc.Start(runCtx, opts))
	lis := bufconn.Listen(1 << 20)
	go func() { _ = srv.GRPC.Serve(lis) }()
	conn, err := grpc.NewClient("passthrough:///bufnet", grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }))
	require.NoError(t, err)
	b.svc, b.conn = svc, conn
	b.cancel = func() {
		sctx, c := context.WithTimeout(context.Background(), 10*time.Second)
		defer c()
		_ = svc.river.Stop(sctx) // graceful: let running jobs finish
		cancel()
		require.NoError(t, svc.Stop(sctx))
		srv.GRPC.Stop()
		_ = conn.Close()
	}
	t.Cleanup(b.cancel)
}

func (b *testBundle) user(tenant string, perms ...string) context.Context {
	if perms == nil {
		perms = []string{auth.PermSystemSettingsUpdate}
	}
	tok, err := b.userSigner.MintUser(auth.UserToken{Subject: "admin@" + tenant, Tenant: tenant, Permissions: perms})
	if err != nil {
		panic(err)
	}
	return metadata.AppendToOutgoingContext(b.ctx, "authorization", "Bearer "+tok)
}

// service is a service identity (the callers of the target's access table) acting for tenant.
func (b *testBundle) service(identity, tenant string) context.Context {
	tok, err := b.svcSigner.MintService(identity, tenant, "", nil)
	if err != nil {
		panic(err)
	}
	return metadata.AppendToOutgoingContext(b.ctx, "authorization", "Bearer "+tok)
}

func (b *testBundle) providers() gmailv1.GmailProviderServiceClient {
	return gmailv1.NewGmailProviderServiceClient(b.conn)
}

func (b *testBundle) inbound() gmailv1.InboundMailServiceClient {
	return gmailv1.NewInboundMailServiceClient(b.conn)
}

func (b *testBundle) configureTenant(tenant string) {
	b.peers.mu.Lock()
	defer b.peers.mu.Unlock()
	b.peers.secrets[tenant] = map[string]string{"google_service_account_key": serviceAccountKey(project, saEmail), "google_project_id": project}
}

// connect creates a provider and activates it as the oauth service would after a consent.
// connectThenStopWorkers connects mailbox for tenant t1 (configured), waits for the activation's sync to
// have run and settled, then stops River's workers: what is pushed afterwards is stored (and enqueued)
// but nothing syncs it — a replica that died, as far as the mailbox can tell.
func (b *testBundle) connectThenStopWorkers(t *testing.T, mailbox string) *gmailv1.GmailProvider {
	t.Helper()
	b.configureTenant("t1")
	p := b.connect(t, "t1", mailbox)
	require.Eventually(t, func() bool { return b.gm.snapshot(mailbox).historyCalls >= 1 }, 10*time.Second, 20*time.Millisecond)
	time.Sleep(300 * time.Millisecond)
	sctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	require.NoError(t, b.svc.river.Stop(sctx))
	return p
}

func (b *testBundle) connect(t *testing.T, tenant, mailbox string, labels ...string) *gmailv1.GmailProvider {
	t.Helper()
	created, err := b.providers().CreateGmailProvider(b.user(tenant), &gmailv1.CreateGmailProviderRequest{Mailbox: mailbox, DisplayName: "Support", LabelFilters: labels})
	require.NoError(t, err)
	b.peers.mu.Lock()
	b.peers.accounts[created.GetProvider().GetId()] = mailbox
	b.peers.mu.Unlock()
	act, err := b.providers().ActivateGmailProvider(b.service(auth.SvcOAuth, tenant), &gmailv1.ActivateGmailProviderRequest{Id: created.GetProvider().GetId(), AccountEmail: mailbox})
	require.NoError(t, err)
	return act.GetProvider()
}

func subscriptionOf(tenant string) string {
	return fmt.Sprintf("projects/%s/subscriptions/alga-gmail-%s-push", project, tenantHash(tenant))
}

func (b *testBundle) mint(t *testing.T, key *rsa.PrivateKey, mod func(jwt.MapClaims)) string {
	c := jwt.MapClaims{"iss": "https://accounts.google.com", "aud": b.base.GmailPushAudience(), "email": saEmail,
		"email_verified": true, "sub": "1", "iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix()}
	if mod != nil {
		mod(c)
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, c)
	tok.Header["kid"] = "g1"
	s, err := tok.SignedString(key)
	require.NoError(t, err)
	return s
}

func envelope(sub, msgID, email string, historyID uint64) []byte {
	data, _ := json.Marshal(map[string]any{"emailAddress": email, "historyId": historyID})
	body, _ := json.Marshal(map[string]any{"message": map[string]any{"data": base64.StdEncoding.EncodeToString(data),
		"messageId": msgID, "publishTime": time.Now().UTC().Format(time.RFC3339Nano)}, "subscription": sub})
	return body
}

func (b *testBundle) push(t *testing.T, authz string, body []byte) int32 {
	t.Helper()
	return b.pushAnswer(t, authz, body).GetHttpStatus()
}

func (b *testBundle) pushAnswer(t *testing.T, authz string, body []byte) *gmailv1.HandleGmailPushResponse {
	t.Helper()
	resp, err := b.providers().HandleGmailPush(b.service(auth.SvcGateway, ""), &gmailv1.HandleGmailPushRequest{Authorization: authz, Body: body})
	require.NoError(t, err)
	return resp
}

// notify pushes a valid notification for mailbox's current history id.
func (b *testBundle) notify(t *testing.T, tenant, mailbox, msgID string) int32 {
	hid := b.gm.snapshot(mailbox).historyID
	return b.push(t, "Bearer "+b.mint(t, pushKey, nil), envelope(subscriptionOf(tenant), msgID, mailbox, hid))
}

func (b *testBundle) waitMessages(t *testing.T, tenant, provider string, n int) []*gmailv1.InboundMessage {
	t.Helper()
	var got []*gmailv1.InboundMessage
	require.Eventually(t, func() bool {
		resp, err := b.inbound().ListInboundMessages(b.service(auth.SvcPlatform, tenant), &gmailv1.ListInboundMessagesRequest{ProviderId: provider, IncludeAcknowledged: true})
		require.NoError(t, err)
		got = resp.GetMessages()
		return len(got) >= n
	}, 15*time.Second, 50*time.Millisecond, "want %d messages", n)
	return got
}

func (b *testBundle) count(t *testing.T, sql string, args ...any) int {
	var n int
	require.NoError(t, b.pool.QueryRow(b.ctx, sql, args...).Scan(&n))
	return n
}

func reason(err error) string { return errs.ReasonOf(err) }

// googleCalls counts every request the Google fakes (Gmail, Pub/Sub, IAM) have answered.
func (b *testBundle) googleCalls() int {
	return b.gm.calls() + b.psCalls.total() + b.iam.count()
}

// lockedBuffer collects the service's log lines (written from many goroutines).
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// ---- tests ----

func TestProvidersCRUDValidationAndScope(t *testing.T) {
	t.Parallel()
	b := setup(t)
	pc := b.providers()
	created, err := pc.CreateGmailProvider(b.user("t1"), &gmailv1.CreateGmailProviderRequest{Mailbox: " Support@Acme.test ", DisplayName: "Support",
		LabelFilters: []string{"INBOX"}, InboundDefaults: &gmailv1.InboundDefaults{BoardId: "b1"}})
	require.NoError(t, err)
	p := created.GetProvider()
	require.Equal(t, "support@acme.test", p.GetMailbox())
	require.Equal(t, gmailv1.ProviderStatus_PROVIDER_STATUS_DISCONNECTED, p.GetStatus())
	require.Equal(t, "b1", p.GetInboundDefaults().GetBoardId())

	_, err = pc.CreateGmailProvider(b.user("t1"), &gmailv1.CreateGmailProviderRequest{Mailbox: "support@acme.test"})
	require.Equal(t, codes.AlreadyExists, status.Code(err))
	_, err = pc.CreateGmailProvider(b.user("t2"), &gmailv1.CreateGmailProviderRequest{Mailbox: "support@acme.test"})
	require.NoError(t, err, "the same address in another tenant")

	for _, bad := range []string{"not-an-email", "Bob <bob@acme.test>", "", "a@b"} {
		_, err = pc.CreateGmailProvider(b.user("t1"), &gmailv1.CreateGmailProviderRequest{Mailbox: bad})
		require.Equal(t, codes.InvalidArgument, status.Code(err), bad)
	}
	_, err = pc.GetGmailProvider(b.user("t1"), &gmailv1.GetGmailProviderRequest{Id: "p1:connect"})
	require.Equal(t, codes.InvalidArgument, status.Code(err))
	_, err = pc.GetGmailProvider(b.user("t1"), &gmailv1.GetGmailProviderRequest{Id: p.GetId() + ":connect"})
	require.Equal(t, codes.InvalidArgument, status.Code(err))
	_, err = pc.GetGmailProvider(b.user("t2"), &gmailv1.GetGmailProviderRequest{Id: p.GetId()})
	require.Equal(t, codes.NotFound, status.Code(err), "another tenant's provider is invisible")
	_, err = pc.GetGmailProvider(b.user("t1", "ticket_settings:update"), &gmailv1.GetGmailProviderRequest{Id: p.GetId()})
	require.Equal(t, codes.PermissionDenied, status.Code(err))
	_, err = pc.GetGmailProviderDiagnostics(b.user("t1", "ticket_settings:update"), &gmailv1.GetGmailProviderDiagnosticsRequest{Id: p.GetId()})
	require.NoError(t, err, "diagnostics allow ticket_settings:update")
	_, err = pc.ActivateGmailProvider(b.user("t1"), &gmailv1.ActivateGmailProviderRequest{Id: p.GetId(), AccountEmail: "support@acme.test"})
	require.Equal(t, codes.PermissionDenied, status.Code(err), "activation is internal")

	off := false
	upd, err := pc.UpdateGmailProvider(b.user("t1"), &gmailv1.UpdateGmailProviderRequest{Id: p.GetId(), Active: &off})
	require.NoError(t, err)
	require.Equal(t, gmailv1.ProviderStatus_PROVIDER_STATUS_PAUSED, upd.GetProvider().GetStatus())
	list, err := pc.ListGmailProviders(b.user("t1"), &gmailv1.ListGmailProvidersRequest{})
	require.NoError(t, err)
	require.Len(t, list.GetProviders(), 1)
	_, err = pc.DeleteGmailProvider(b.user("t1"), &gmailv1.DeleteGmailProviderRequest{Id: p.GetId()})
	require.NoError(t, err)
	_, err = pc.GetGmailProvider(b.user("t1"), &gmailv1.GetGmailProviderRequest{Id: p.GetId()})
	require.Equal(t, codes.NotFound, status.Code(err))
}

func TestConnect(t *testing.T) {
	t.Parallel()
	b := setup(t)
	created, err := b.providers().CreateGmailProvider(b.user("t1"), &gmailv1.CreateGmailProviderRequest{Mailbox: "support@acme.test"})
	require.NoError(t, err)
	id := created.GetProvider().GetId()

	b.peers.gmailReady = false
	_, err = b.providers().ConnectGmailProvider(b.user("t1"), &gmailv1.ConnectGmailProviderRequest{Id: id})
	require.Equal(t, codes.FailedPrecondition, status.Code(err))
	require.Equal(t, "GOOGLE_NOT_CONFIGURED", reason(err))

	b.peers.gmailReady = true
	var header metadata.MD
	resp, err := b.providers().ConnectGmailProvider(b.user("t1"), &gmailv1.ConnectGmailProviderRequest{Id: id}, grpc.Header(&header))
	require.NoError(t, err)
	require.Contains(t, resp.GetAuthorizationUrl(), "login_hint=support@acme.test")
	require.Equal(t, []string{"binding-123"}, header.Get(HeaderOAuthBinding))
	got, err := b.providers().GetGmailProvider(b.user("t1"), &gmailv1.GetGmailProviderRequest{Id: id})
	require.NoError(t, err)
	require.Equal(t, gmailv1.ProviderStatus_PROVIDER_STATUS_CONNECTING, got.GetProvider().GetStatus())
}

func TestActivateProvisionsWatchesAndDeliversParsedMail(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.configureTenant("t1")
	b.iam.conflicts = 2 // the IAM read-modify-write must survive concurrent edits
	p := b.connect(t, "t1", "support@acme.test")
	require.Equal(t, gmailv1.ProviderStatus_PROVIDER_STATUS_CONNECTED, p.GetStatus(), "%v", p.GetError())
	require.NotNil(t, p.GetWatchExpireTime())

	// Read the provisioning back from Pub/Sub.
	topic := fmt.Sprintf("projects/%s/topics/alga-gmail-%s", project, tenantHash("t1"))
	tg := &tenantGoogle{projectID: project, serviceAccountEmail: saEmail, keyJSON: []byte(serviceAccountKey(project, saEmail))}
	client, err := b.svc.pubsubClient(b.ctx, tg)
	require.NoError(t, err)
	defer client.Close()
	_, err = client.TopicAdminClient.GetTopic(b.ctx, &pubsubpb.GetTopicRequest{Topic: topic})
	require.NoError(t, err)
	policy, err := client.TopicAdminClient.GetIamPolicy(b.ctx, &iampb.GetIamPolicyRequest{Resource: topic})
	require.NoError(t, err)
	require.True(t, hasMember(policy, "roles/pubsub.publisher", "serviceAccount:gmail-api-push@system.gserviceaccount.com"))
	sub, err := client.SubscriptionAdminClient.GetSubscription(b.ctx, &pubsubpb.GetSubscriptionRequest{Subscription: subscriptionOf("t1")})
	require.NoError(t, err)
	require.Equal(t, topic, sub.GetTopic())
	require.Equal(t, "https://helpdesk.example.com/api/email/webhooks/google", sub.GetPushConfig().GetPushEndpoint())
	require.Equal(t, "https://helpdesk.example.com/api/email/webhooks/google", sub.GetPushConfig().GetOidcToken().GetAudience())
	require.Equal(t, saEmail, sub.GetPushConfig().GetOidcToken().GetServiceAccountEmail())
	require.NotNil(t, sub.GetExpirationPolicy())
	require.Zero(t, sub.GetExpirationPolicy().GetTtl().AsDuration(), "never expires")
	box := b.gm.snapshot("support@acme.test")
	require.Equal(t, 1, box.watches)
	require.Equal(t, []string{"INBOX"}, box.watchLabels)

	diag, err := b.providers().GetGmailProviderDiagnostics(b.user("t1"), &gmailv1.GetGmailProviderDiagnosticsRequest{Id: p.GetId()})
	require.NoError(t, err)
	d := diag.GetDiagnostics()
	require.Equal(t, "https://helpdesk.example.com", d.GetBaseUrl())
	require.Equal(t, saEmail, d.GetServiceAccountEmail())
	require.Equal(t, topic, d.GetTopic())
	require.Equal(t, "connected", d.GetConnectionStatus())
	var names []string
	for _, s := range d.GetSteps() {
		require.True(t, s.GetOk(), s.GetName())
		names = append(names, s.GetName())
	}
	require.Equal(t, []string{"service_account", "topic", "publisher_grant", "subscription", "token", "labels", "watch"}, names)

	// Mail arrives: push → sync → inbound API, parsed.
	b.gm.deliver("support@acme.test", "Printer on fire")
	b.gm.deliver("support@acme.test", "Draft reply", "DRAFT")
	b.gm.deliver("support@acme.test", "Our reply", "SENT")
	require.EqualValues(t, 204, b.notify(t, "t1", "support@acme.test", "ps-1"))
	msgs := b.waitMessages(t, "t1", p.GetId(), 1)
	require.Len(t, msgs, 1, "drafts and sent mail are skipped")
	m := msgs[0]
	require.Equal(t, "Printer on fire", m.GetSubject())
	require.Equal(t, "Customer <customer@example.com>", strings.ReplaceAll(m.GetFrom(), `"`, ""))
	require.Equal(t, []string{"support@acme.test"}, m.GetTo())
	require.Equal(t, "<parent@example.com>", m.GetInReplyTo())
	require.Equal(t, []string{"<root@example.com>", "<parent@example.com>"}, m.GetReferences())
	require.Contains(t, m.GetTextBody(), "Hello Printer on fire")
	require.Contains(t, m.GetHtmlBody(), "<p>Hello Printer on fire</p>")
	require.Equal(t, "support@acme.test", m.GetMailbox())
	require.NotEmpty(t, m.GetCursor())

	ack, err := b.inbound().AcknowledgeInboundMessages(b.service(auth.SvcPlatform, "t1"), &gmailv1.AcknowledgeInboundMessagesRequest{MessageIds: []string{m.GetId()}})
	require.NoError(t, err)
	require.EqualValues(t, 1, ack.GetAcknowledged())
	rest, err := b.inbound().ListInboundMessages(b.service(auth.SvcPlatform, "t1"), &gmailv1.ListInboundMessagesRequest{})
	require.NoError(t, err)
	require.Empty(t, rest.GetMessages())
	_, err = b.inbound().ListInboundMessages(b.user("t1"), &gmailv1.ListInboundMessagesRequest{})
	require.Equal(t, codes.PermissionDenied, status.Code(err), "users cannot read inbound mail")
	_, err = b.inbound().ListInboundMessages(b.service(auth.SvcPlatform, "t1"), &gmailv1.ListInboundMessagesRequest{AfterCursor: "garbage!"})
	require.Equal(t, codes.InvalidArgument, status.Code(err))
}

func TestPushIdempotentAndCoalesced(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.configureTenant("t1")
	p := b.connect(t, "t1", "support@acme.test")
	require.Equal(t, gmailv1.ProviderStatus_PROVIDER_STATUS_CONNECTED, p.GetStatus())
	// Wait for the catch-up sync enqueued by the activation.
	require.Eventually(t, func() bool { return b.gm.snapshot("support@acme.test").historyCalls >= 1 }, 10*time.Second, 20*time.Millisecond)
	time.Sleep(300 * time.Millisecond)

	b.gm.deliver("support@acme.test", "Once")
	for range 5 {
		require.EqualValues(t, 204, b.notify(t, "t1", "support@acme.test", "same-id"))
	}
	b.waitMessages(t, "t1", p.GetId(), 1)
	require.Equal(t, 1, b.count(t, "SELECT count(*) FROM gmail.notifications"))
	require.Equal(t, 1, b.count(t, "SELECT count(*) FROM gmail.messages"))

	require.Eventually(t, func() bool {
		return b.count(t, "SELECT count(*) FROM gmail.notifications WHERE process_time IS NULL") == 0
	}, 10*time.Second, 20*time.Millisecond)
	time.Sleep(200 * time.Millisecond)
	before := b.gm.snapshot("support@acme.test").historyCalls

	// A burst of ten distinct notifications causes one history sync.
	b.gm.deliver("support@acme.test", "Burst")
	for i := range 10 {
		require.EqualValues(t, 204, b.notify(t, "t1", "support@acme.test", fmt.Sprintf("burst-%d", i)))
	}
	b.waitMessages(t, "t1", p.GetId(), 2)
	require.Eventually(t, func() bool {
		return b.count(t, "SELECT count(*) FROM gmail.notifications WHERE process_time IS NULL") == 0
	}, 10*time.Second, 20*time.Millisecond)
	time.Sleep(time.Second)
	require.Equal(t, before+1, b.gm.snapshot("support@acme.test").historyCalls)
	require.Equal(t, 1, b.gm.snapshot("support@acme.test").getCalls["m00002"], "each message is fetched once")
	require.Equal(t, 2, b.count(t, "SELECT count(*) FROM gmail.messages"))
}

func TestPushRejectedStoresNothing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.configureTenant("t1")
	b.connect(t, "t1", "support@acme.test")
	body := envelope(subscriptionOf("t1"), "ps-x", "support@acme.test", 5000)
	// Each refusal names what is wrong with the Authorization header (the gateway's error body), and
	// never carries the token.
	cases := map[string]struct{ authz, reason string }{
		"no token":      {"", "no bearer token"},
		"not bearer":    {"Basic abc", "no bearer token"},
		"wrong aud":     {"Bearer " + b.mint(t, pushKey, func(c jwt.MapClaims) { c["aud"] = "https://evil.example.com/api/email/webhooks/google" }), "aud"},
		"wrong iss":     {"Bearer " + b.mint(t, pushKey, func(c jwt.MapClaims) { c["iss"] = "https://evil.example.com" }), "issuer"},
		"wrong email":   {"Bearer " + b.mint(t, pushKey, func(c jwt.MapClaims) { c["email"] = "attacker@evil.iam.gserviceaccount.com" }), "service account"},
		"unverified":    {"Bearer " + b.mint(t, pushKey, func(c jwt.MapClaims) { c["email_verified"] = false }), "not verified"},
		"expired":       {"Bearer " + b.mint(t, pushKey, func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Hour).Unix() }), "expired"},
		"other key":     {"Bearer " + b.mint(t, otherKey, nil), "signature"},
		"garbage token": {"Bearer abc.def.ghi", "malformed"},
	}
	for name, tc := range cases {
		resp := b.pushAnswer(t, tc.authz, body)
		require.EqualValues(t, 401, resp.GetHttpStatus(), name)
		require.True(t, strings.HasPrefix(resp.GetReason(), "authorization: "), "%s: %q", name, resp.GetReason())
		require.Contains(t, resp.GetReason(), tc.reason, name)
		if tok := strings.TrimPrefix(tc.authz, "Bearer "); len(tok) > 8 {
			require.NotContains(t, resp.GetReason(), tok, name)
		}
	}
	require.Zero(t, b.count(t, "SELECT count(*) FROM gmail.notifications"))
	require.Zero(t, b.count(t, "SELECT count(*) FROM gmail.providers WHERE last_push_time IS NOT NULL"))

	good := "Bearer " + b.mint(t, pushKey, nil)
	for body, reason := range map[string]string{`{"message":{}}`: "body: malformed push envelope: bad subscription name", `not json`: "body: malformed push envelope: invalid character"} {
		resp := b.pushAnswer(t, good, []byte(body))
		require.EqualValues(t, 400, resp.GetHttpStatus(), body)
		require.Contains(t, resp.GetReason(), reason, body)
	}
	ack := b.pushAnswer(t, good, envelope("projects/other-proj/subscriptions/unknown-sub", "u1", "support@acme.test", 5))
	require.EqualValues(t, 204, ack.GetHttpStatus())
	require.Empty(t, ack.GetReason(), "a 2xx carries no reason")
	require.EqualValues(t, 1, b.svc.PushCount("unknown_subscription"))
	require.EqualValues(t, 204, b.push(t, good, envelope(subscriptionOf("t1"), "u2", "nobody@acme.test", 5)))
	require.EqualValues(t, 1, b.svc.PushCount("unknown_mailbox"))
	require.Zero(t, b.count(t, "SELECT count(*) FROM gmail.notifications"))
}

// A push is trusted only for a subscription that is the mailbox's current one: the routing row of a
// subscription the provider no longer publishes to (an older project's, or any after a reset) stays, but
// its pushes store and sync nothing.
func TestPushForASupersededSubscriptionIsRefused(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.configureTenant("t1")
	b.connect(t, "t1", "support@acme.test")
	old := "projects/old-project/subscriptions/alga-gmail-old-push"
	require.NoError(t, store.UpsertSubscription(b.ctx, b.pool, store.Subscription{Name: old, Tenant: "t1", ProjectID: "old-project",
		Topic: "projects/old-project/topics/alga-gmail", ServiceAccountEmail: saEmail}))
	good := "Bearer " + b.mint(t, pushKey, nil)

	require.EqualValues(t, 204, b.push(t, good, envelope(old, "old-1", "support@acme.test", 5000)))
	require.EqualValues(t, 1, b.svc.PushCount("superseded_subscription"))
	require.Zero(t, b.count(t, "SELECT count(*) FROM gmail.notifications"), "nothing stored for the superseded subscription")

	require.EqualValues(t, 204, b.notify(t, "t1", "support@acme.test", "cur-1"))
	require.EqualValues(t, 1, b.count(t, "SELECT count(*) FROM gmail.notifications WHERE subscription = $1", subscriptionOf("t1")))

	// After a reset the provider has no current subscription: its old one is superseded too.
	_, err := b.providers().ResetGmailProviders(b.service(auth.SvcOAuth, "t1"), &gmailv1.ResetGmailProvidersRequest{})
	require.NoError(t, err)
	require.EqualValues(t, 204, b.notify(t, "t1", "support@acme.test", "cur-2"))
	require.EqualValues(t, 2, b.svc.PushCount("superseded_subscription"))
	require.EqualValues(t, 1, b.count(t, "SELECT count(*) FROM gmail.notifications"))
}

func TestRoutingAcrossMailboxesAndTenants(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.configureTenant("t1")
	b.configureTenant("t2")
	a1 := b.connect(t, "t1", "support@acme.test")
	a2 := b.connect(t, "t1", "billing@acme.test")
	c1 := b.connect(t, "t2", "support@acme.test") // the same address in another tenant
	for _, p := range []*gmailv1.GmailProvider{a1, a2, c1} {
		require.Equal(t, gmailv1.ProviderStatus_PROVIDER_STATUS_CONNECTED, p.GetStatus(), "%v", p.GetError())
	}
	// In the fake, both tenants' support@ share one Gmail mailbox; what matters is where pushes route.
	b.gm.deliver("billing@acme.test", "Invoice")
	require.EqualValues(t, 204, b.notify(t, "t1", "billing@acme.test", "r1"))
	got := b.waitMessages(t, "t1", a2.GetId(), 1)
	require.Equal(t, "Invoice", got[0].GetSubject())

	b.gm.deliver("support@acme.test", "For tenant two")
	require.EqualValues(t, 204, b.notify(t, "t2", "support@acme.test", "r2"))
	got = b.waitMessages(t, "t2", c1.GetId(), 1)
	require.Equal(t, "For tenant two", got[0].GetSubject())
	require.Eventually(t, func() bool {
		return b.count(t, "SELECT count(*) FROM gmail.notifications WHERE process_time IS NULL") == 0
	}, 10*time.Second, 20*time.Millisecond)
	require.Equal(t, 1, b.count(t, "SELECT count(*) FROM gmail.notifications WHERE tenant = 't2' AND provider_id = $1", c1.GetId()))
	require.Equal(t, 1, b.count(t, "SELECT count(*) FROM gmail.notifications WHERE tenant = 't1' AND provider_id = $1", a2.GetId()))
	require.Zero(t, b.count(t, "SELECT count(*) FROM gmail.notifications WHERE provider_id = $1", a1.GetId()))
	// Tenant one's inbound API never shows tenant two's mail.
	resp, err := b.inbound().ListInboundMessages(b.service(auth.SvcPlatform, "t1"), &gmailv1.ListInboundMessagesRequest{IncludeAcknowledged: true})
	require.NoError(t, err)
	for _, m := range resp.GetMessages() {
		require.NotEqual(t, c1.GetId(), m.GetProviderId())
	}
}

func TestStaleHistoryRecoversEverythingOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.configureTenant("t1")
	p := b.connect(t, "t1", "support@acme.test")
	b.gm.deliver("support@acme.test", "Before")
	require.EqualValues(t, 204, b.notify(t, "t1", "support@acme.test", "s0"))
	b.waitMessages(t, "t1", p.GetId(), 1)

	// Mail keeps arriving while notifications are lost; then the stored history id goes stale.
	for i := range 7 {
		b.gm.deliver("support@acme.test", fmt.Sprintf("Missed %d", i))
	}
	b.gm.mu.Lock()
	b.gm.boxes["support@acme.test"].staleBefore = b.gm.boxes["support@acme.test"].historyID
	b.gm.mu.Unlock()
	b.gm.deliver("support@acme.test", "After")
	require.EqualValues(t, 204, b.notify(t, "t1", "support@acme.test", "s1"))
	msgs := b.waitMessages(t, "t1", p.GetId(), 9)
	time.Sleep(500 * time.Millisecond)
	require.Equal(t, 9, b.count(t, "SELECT count(*) FROM gmail.messages"), "all recovered, none twice")
	seen := map[string]bool{}
	for _, m := range msgs {
		require.False(t, seen[m.GetGmailMessageId()])
		seen[m.GetGmailMessageId()] = true
	}
	// The baseline moved forward: the next sync works from history again.
	b.gm.deliver("support@acme.test", "Later")
	require.EqualValues(t, 204, b.notify(t, "t1", "support@acme.test", "s2"))
	b.waitMessages(t, "t1", p.GetId(), 10)
}

func TestProvisioningFailuresAreErrors(t *testing.T) {
	t.Parallel()
	b := setup(t)

	// No service-account key.
	p := b.connect(t, "t0", "support@acme.test")
	require.Equal(t, gmailv1.ProviderStatus_PROVIDER_STATUS_ERROR, p.GetStatus())
	require.Equal(t, "service_account_missing", p.GetError().GetCode())
	require.Contains(t, p.GetError().GetRemedy(), "Settings → Integrations → Communication → Google")

	// Publisher grant refused.
	b.configureTenant("t1")
	b.iam.deny = true
	p = b.connect(t, "t1", "support@acme.test")
	require.Equal(t, gmailv1.ProviderStatus_PROVIDER_STATUS_ERROR, p.GetStatus())
	require.Equal(t, "publisher_grant_failed", p.GetError().GetCode())
	require.Contains(t, p.GetError().GetRemedy(), "Pub/Sub Admin")
	require.Contains(t, p.GetError().GetRemedy(), saEmail)
	require.Zero(t, b.gm.snapshot("support@acme.test").watches, "no watch without the grant")
	diag, err := b.providers().GetGmailProviderDiagnostics(b.user("t1"), &gmailv1.GetGmailProviderDiagnosticsRequest{Id: p.GetId()})
	require.NoError(t, err)
	last := diag.GetDiagnostics().GetSteps()[len(diag.GetDiagnostics().GetSteps())-1]
	require.Equal(t, "publisher_grant", last.GetName())
	require.False(t, last.GetOk())

	// Fixed by the admin: Refresh connects.
	b.iam.deny = false
	ref, err := b.providers().RefreshGmailProvider(b.user("t1"), &gmailv1.RefreshGmailProviderRequest{Id: p.GetId()})
	require.NoError(t, err)
	require.Equal(t, gmailv1.ProviderStatus_PROVIDER_STATUS_CONNECTED, ref.GetProvider().GetStatus())

	// Unknown label: an error, never a whole-mailbox watch.
	p = b.connect(t, "t1", "sales@acme.test", "Tickets", "No Such Label")
	require.Equal(t, gmailv1.ProviderStatus_PROVIDER_STATUS_ERROR, p.GetStatus())
	require.Equal(t, "unknown_label", p.GetError().GetCode())
	require.Contains(t, p.GetError().GetMessage(), "No Such Label")
	require.Zero(t, b.gm.snapshot("sales@acme.test").watches)
	// Known label names resolve to ids.
	upd, err := b.providers().UpdateGmailProvider(b.user("t1"), &gmailv1.UpdateGmailProviderRequest{Id: p.GetId(), HasLabelFilters: true, LabelFilters: []string{"Tickets"}})
	require.NoError(t, err)
	require.Equal(t, gmailv1.ProviderStatus_PROVIDER_STATUS_CONNECTED, upd.GetProvider().GetStatus(), "%v", upd.GetProvider().GetError())
	require.Equal(t, []string{"Label_7"}, b.gm.snapshot("sales@acme.test").watchLabels)
}

func TestRestartLosesNothing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	// Stop the workers: the push is stored and its job enqueued, but nothing syncs it.
	p := b.connectThenStopWorkers(t, "support@acme.test")
	b.gm.deliver("support@acme.test", "Survives a restart")
	require.EqualValues(t, 204, b.notify(t, "t1", "support@acme.test", "crash-1"))
	time.Sleep(300 * time.Millisecond)
	require.Zero(t, b.count(t, "SELECT count(*) FROM gmail.messages"))
	require.Equal(t, 1, b.count(t, "SELECT count(*) FROM gmail.river_job WHERE kind = 'gmail_history_sync' AND state = 'available'"))
	b.cancel()

	// A new process on the same database picks the job up.
	b.startService(t)
	got := b.waitMessages(t, "t1", p.GetId(), 1)
	require.Equal(t, "Survives a restart", got[0].GetSubject())
}

func TestDeleteAndResetStopWatches(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.configureTenant("t1")
	p := b.connect(t, "t1", "support@acme.test")
	q := b.connect(t, "t1", "billing@acme.test")
	_, err := b.providers().DeleteGmailProvider(b.user("t1"), &gmailv1.DeleteGmailProviderRequest{Id: p.GetId()})
	require.NoError(t, err)
	require.Equal(t, 1, b.gm.snapshot("support@acme.test").stops)
	require.Contains(t, b.peers.deleted, p.GetId())

	resp, err := b.providers().ResetGmailProviders(b.service(auth.SvcOAuth, "t1"), &gmailv1.ResetGmailProvidersRequest{})
	require.NoError(t, err)
	require.EqualValues(t, 1, resp.GetProvidersReset())
	require.Empty(t, resp.GetWarnings())
	require.Equal(t, 1, b.gm.snapshot("billing@acme.test").stops)
	got, err := b.providers().GetGmailProvider(b.user("t1"), &gmailv1.GetGmailProviderRequest{Id: q.GetId()})
	require.NoError(t, err)
	require.Equal(t, gmailv1.ProviderStatus_PROVIDER_STATUS_DISCONNECTED, got.GetProvider().GetStatus())
	require.Nil(t, got.GetProvider().GetWatchExpireTime())

	// A reset without a token left still succeeds, with a warning.
	r := b.connect(t, "t1", "sales@acme.test")
	b.peers.mu.Lock()
	delete(b.peers.accounts, r.GetId())
	b.peers.mu.Unlock()
	resp, err = b.providers().ResetGmailProviders(b.service(auth.SvcOAuth, "t1"), &gmailv1.ResetGmailProvidersRequest{})
	require.NoError(t, err)
	require.NotEmpty(t, resp.GetWarnings())
}

func TestRevokedGrantPutsProviderInError(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.configureTenant("t1")
	p := b.connect(t, "t1", "support@acme.test")
	require.Eventually(t, func() bool { return b.gm.snapshot("support@acme.test").historyCalls >= 1 }, 10*time.Second, 20*time.Millisecond)
	b.peers.mu.Lock()
	b.peers.broken[p.GetId()] = true
	b.peers.mu.Unlock()
	b.gm.deliver("support@acme.test", "x")
	require.EqualValues(t, 204, b.notify(t, "t1", "support@acme.test", "rv-1"))
	require.Eventually(t, func() bool {
		got, err := b.providers().GetGmailProvider(b.user("t1"), &gmailv1.GetGmailProviderRequest{Id: p.GetId()})
		require.NoError(t, err)
		return got.GetProvider().GetStatus() == gmailv1.ProviderStatus_PROVIDER_STATUS_ERROR
	}, 10*time.Second, 20*time.Millisecond)
	got, _ := b.providers().GetGmailProvider(b.user("t1"), &gmailv1.GetGmailProviderRequest{Id: p.GetId()})
	require.Equal(t, "token_revoked", got.GetProvider().GetError().GetCode())
	require.Equal(t, "Connect the mailbox again.", got.GetProvider().GetError().GetRemedy())
}

func TestTransientGoogleErrorsRetried(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.configureTenant("t1")
	p := b.connect(t, "t1", "support@acme.test")
	require.Eventually(t, func() bool { return b.gm.snapshot("support@acme.test").historyCalls >= 1 }, 10*time.Second, 20*time.Millisecond)
	time.Sleep(300 * time.Millisecond)
	b.gm.mu.Lock()
	b.gm.failNext = 2
	b.gm.mu.Unlock()
	b.gm.deliver("support@acme.test", "Despite 503s")
	require.EqualValues(t, 204, b.notify(t, "t1", "support@acme.test", "tr-1"))
	got := b.waitMessages(t, "t1", p.GetId(), 1)
	require.Equal(t, "Despite 503s", got[0].GetSubject())
}

func TestStreamInboundMessages(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.configureTenant("t1")
	p := b.connect(t, "t1", "support@acme.test")
	b.gm.deliver("support@acme.test", "First")
	require.EqualValues(t, 204, b.notify(t, "t1", "support@acme.test", "st-1"))
	first := b.waitMessages(t, "t1", p.GetId(), 1)

	ctx, cancel := context.WithTimeout(b.service(auth.SvcPlatform, "t1"), 15*time.Second)
	defer cancel()
	stream, err := b.inbound().StreamInboundMessages(ctx, &gmailv1.StreamInboundMessagesRequest{})
	require.NoError(t, err)
	msg, err := stream.Recv()
	require.NoError(t, err)
	require.Equal(t, first[0].GetId(), msg.GetMessage().GetId(), "the backlog first")

	b.gm.deliver("support@acme.test", "Second")
	require.EqualValues(t, 204, b.notify(t, "t1", "support@acme.test", "st-2"))
	msg, err = stream.Recv()
	require.NoError(t, err)
	require.Equal(t, "Second", msg.GetMessage().GetSubject())

	// Resuming after a cursor skips what was seen.
	stream2, err := b.inbound().StreamInboundMessages(ctx, &gmailv1.StreamInboundMessagesRequest{AfterCursor: first[0].GetCursor()})
	require.NoError(t, err)
	msg, err = stream2.Recv()
	require.NoError(t, err)
	require.Equal(t, "Second", msg.GetMessage().GetSubject())
}
