package service

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	gmailv1 "github.com/algapsa/alga-google/gen/alga/gmail/v1"
	m "github.com/algapsa/alga-google/gen/alga/maintenance/v1"
	oauthv1 "github.com/algapsa/alga-google/gen/alga/oauth/v1"
	"github.com/algapsa/alga-google/services/gmail/internal/store"
	"github.com/algapsa/alga-google/services/platform/auth"
	"github.com/algapsa/alga-google/services/platform/errs"
	"github.com/algapsa/alga-google/services/platform/logging"
	"github.com/algapsa/alga-google/services/platform/urls"
)

const runID = "5b0c7f7e-6d43-4c1a-9b8e-0d4f3c2a1b10"

func (b *testBundle) upkeep() m.GmailUpkeepServiceClient {
	return m.NewGmailUpkeepServiceClient(b.conn)
}

// maintain calls MaintainGmailProvider as the maintenance service does (a service token of tenant).
func (b *testBundle) maintain(t *testing.T, tenant string, req *m.MaintainGmailProviderRequest) *m.MaintainGmailProviderResponse {
	t.Helper()
	if req.RunId == "" {
		req.RunId = runID
	}
	resp, err := b.upkeep().MaintainGmailProvider(b.service(auth.SvcMaintenance, tenant), req)
	require.NoError(t, err)
	return resp
}

// listUpkeep returns the tenant's GmailUpkeep by provider id.
func (b *testBundle) listUpkeep(t *testing.T, tenant string) map[string]*m.GmailUpkeep {
	t.Helper()
	resp, err := b.upkeep().ListGmailUpkeep(b.service(auth.SvcMaintenance, tenant), &m.ListGmailUpkeepRequest{})
	require.NoError(t, err)
	out := map[string]*m.GmailUpkeep{}
	for _, p := range resp.GetProviders() {
		out[p.GetProviderId()] = p
	}
	return out
}

// waitIdle waits until the mailbox's syncs (the activation's catch-up included) have finished, so
// that the Google fakes' counters move only for what a test does next.
func (b *testBundle) waitIdle(t *testing.T, mailbox string) {
	t.Helper()
	require.Eventually(t, func() bool {
		return b.gm.snapshot(mailbox).historyCalls >= 1 &&
			b.count(t, "SELECT count(*) FROM gmail.river_job WHERE kind = 'gmail_history_sync' AND state NOT IN ('completed', 'discarded', 'cancelled')") == 0
	}, 10*time.Second, 20*time.Millisecond)
}

func (b *testBundle) provider(t *testing.T, tenant, id string) *gmailv1.GmailProvider {
	t.Helper()
	got, err := b.providers().GetGmailProvider(b.user(tenant), &gmailv1.GetGmailProviderRequest{Id: id})
	require.NoError(t, err)
	return got.GetProvider()
}

func (b *testBundle) diagnostics(t *testing.T, tenant, id string) *gmailv1.GmailDiagnostics {
	t.Helper()
	got, err := b.providers().GetGmailProviderDiagnostics(b.user(tenant), &gmailv1.GetGmailProviderDiagnosticsRequest{Id: id})
	require.NoError(t, err)
	return got.GetDiagnostics()
}

func stepOf(d *gmailv1.GmailDiagnostics, name string) *gmailv1.ProvisioningStep {
	for _, s := range d.GetSteps() {
		if s.GetName() == name {
			return s
		}
	}
	return nil
}

// eventTypes lists the provider's timeline, newest first.
func eventTypes(d *gmailv1.GmailDiagnostics) []string {
	var out []string
	for _, e := range d.GetEvents() {
		out = append(out, e.GetType())
	}
	return out
}

func requireOutcome(t *testing.T, o *m.Outcome, st m.OutcomeStatus, calls int) {
	t.Helper()
	require.Equal(t, st, o.GetStatus(), "%v", o)
	require.EqualValues(t, calls, o.GetGoogleCalls(), "google_calls of %v", o)
}

func requireFailed(t *testing.T, o *m.Outcome, class m.FailureClass, code string) {
	t.Helper()
	require.Equal(t, m.OutcomeStatus_OUTCOME_STATUS_FAILED, o.GetStatus(), "%v", o)
	require.Equal(t, class, o.GetFailureClass(), "%v", o)
	require.Equal(t, code, o.GetErrorCode())
	require.NotEmpty(t, o.GetMessage())
	require.NotEmpty(t, o.GetRemedy())
}

func topicOf(tenant string) string {
	return fmt.Sprintf("projects/%s/topics/alga-gmail-%s", project, tenantHash(tenant))
}

func (b *testBundle) readSubscription(t *testing.T, tenant string) *pubsubpb.Subscription {
	t.Helper()
	client, err := b.svc.pubsubClient(b.ctx, &tenantGoogle{projectID: project, serviceAccountEmail: saEmail})
	require.NoError(t, err)
	defer client.Close()
	sub, err := client.SubscriptionAdminClient.GetSubscription(b.ctx, &pubsubpb.GetSubscriptionRequest{Subscription: subscriptionOf(tenant)})
	require.NoError(t, err)
	return sub
}

// ---- ListGmailUpkeep ----

func TestListGmailUpkeep(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.configureTenant("t1")
	b.configureTenant("t2")
	connected := b.connect(t, "t1", "support@acme.test")
	paused := b.connect(t, "t1", "billing@acme.test")
	off := false
	_, err := b.providers().UpdateGmailProvider(b.user("t1"), &gmailv1.UpdateGmailProviderRequest{Id: paused.GetId(), Active: &off})
	require.NoError(t, err)
	failed := b.connect(t, "t1", "sales@acme.test", "No Such Label")
	created, err := b.providers().CreateGmailProvider(b.user("t1"), &gmailv1.CreateGmailProviderRequest{Mailbox: "new@acme.test"})
	require.NoError(t, err)
	other := b.connect(t, "t2", "support@acme.test")

	list := b.listUpkeep(t, "t1")
	require.Len(t, list, 4)
	require.NotContains(t, list, other.GetId(), "another tenant's providers are never listed")

	c := list[connected.GetId()]
	require.Equal(t, "support@acme.test", c.GetMailbox())
	require.Equal(t, m.ProviderState_PROVIDER_STATE_CONNECTED, c.GetState())
	require.Empty(t, c.GetErrorCode())
	require.NotNil(t, c.GetConnectTime())
	require.Equal(t, connected.GetWatchExpireTime().AsTime(), c.GetWatchExpireTime().AsTime())
	require.NotNil(t, c.GetLastWatchTime(), "activation's users.watch counts")
	require.NotNil(t, c.GetLastProvisioningCheckTime(), "activation's read-back counts")
	require.Equal(t, b.base.GmailPushEndpoint(), c.GetPushEndpoint())
	require.Equal(t, b.base.GmailPushAudience(), c.GetPushAudience())

	require.Equal(t, m.ProviderState_PROVIDER_STATE_PAUSED, list[paused.GetId()].GetState())
	f := list[failed.GetId()]
	require.Equal(t, m.ProviderState_PROVIDER_STATE_ERROR, f.GetState())
	require.Equal(t, "unknown_label", f.GetErrorCode())
	require.NotNil(t, f.GetLastProvisioningCheckTime(), "the provisioning was right; only the labels failed")
	require.Nil(t, f.GetLastWatchTime())
	n := list[created.GetProvider().GetId()]
	require.Equal(t, m.ProviderState_PROVIDER_STATE_DISCONNECTED, n.GetState())
	require.Nil(t, n.GetWatchExpireTime())
	require.Empty(t, n.GetPushEndpoint())

	// A push is seen.
	b.waitIdle(t, "support@acme.test")
	require.EqualValues(t, 204, b.notify(t, "t1", "support@acme.test", "l-1"))
	require.NotNil(t, b.listUpkeep(t, "t1")[connected.GetId()].GetLastPushTime())

	// Service identities of a tenant only.
	_, err = b.upkeep().ListGmailUpkeep(b.user("t1"), &m.ListGmailUpkeepRequest{})
	require.Equal(t, codes.PermissionDenied, status.Code(err))
	_, err = b.upkeep().ListGmailUpkeep(b.service(auth.SvcMaintenance, ""), &m.ListGmailUpkeepRequest{})
	require.Equal(t, codes.PermissionDenied, status.Code(err))
	_, err = b.upkeep().MaintainGmailProvider(b.user("t1"), &m.MaintainGmailProviderRequest{ProviderId: connected.GetId(), RenewWatch: true})
	require.Equal(t, codes.PermissionDenied, status.Code(err))
}

// ---- NOT_DUE, SKIPPED, validation ----

func TestMaintainNotDueAndSkippedMakeNoGoogleCalls(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.configureTenant("t1")
	p := b.connect(t, "t1", "support@acme.test")
	b.waitIdle(t, "support@acme.test")

	// Only what is asked: verifying the provisioning calls Pub/Sub and nothing of Gmail.
	gmailBefore, before := b.gm.calls(), b.googleCalls()
	resp := b.maintain(t, "t1", &m.MaintainGmailProviderRequest{ProviderId: p.GetId(), VerifyProvisioning: true})
	requireOutcome(t, resp.GetProvisioning(), m.OutcomeStatus_OUTCOME_STATUS_OK, 3) // GetTopic, GetIamPolicy, GetSubscription
	for _, o := range []*m.Outcome{resp.GetWatch(), resp.GetReconcile(), resp.GetTokenFailure()} {
		requireOutcome(t, o, m.OutcomeStatus_OUTCOME_STATUS_NOT_DUE, 0)
	}
	require.Empty(t, resp.GetRepaired())
	require.Equal(t, 3, b.googleCalls()-before)
	require.Equal(t, gmailBefore, b.gm.calls(), "no Gmail call for steps not asked")
	require.Equal(t, m.ProviderState_PROVIDER_STATE_CONNECTED, resp.GetState())

	// The reverse: a reconcile alone touches neither Pub/Sub nor users.watch.
	before, psBefore, watches := b.googleCalls(), b.psCalls.total()+b.iam.count(), b.gm.snapshot("support@acme.test").watches
	resp = b.maintain(t, "t1", &m.MaintainGmailProviderRequest{ProviderId: p.GetId(), Reconcile: true})
	requireOutcome(t, resp.GetReconcile(), m.OutcomeStatus_OUTCOME_STATUS_OK, 1)
	requireOutcome(t, resp.GetProvisioning(), m.OutcomeStatus_OUTCOME_STATUS_NOT_DUE, 0)
	requireOutcome(t, resp.GetWatch(), m.OutcomeStatus_OUTCOME_STATUS_NOT_DUE, 0)
	require.Equal(t, 1, b.googleCalls()-before)
	require.Equal(t, psBefore, b.psCalls.total()+b.iam.count())
	require.Equal(t, watches, b.gm.snapshot("support@acme.test").watches)

	// Paused, not connected, deleted: every asked step SKIPPED, nothing called.
	off := false
	_, err := b.providers().UpdateGmailProvider(b.user("t1"), &gmailv1.UpdateGmailProviderRequest{Id: p.GetId(), Active: &off})
	require.NoError(t, err)
	created, err := b.providers().CreateGmailProvider(b.user("t1"), &gmailv1.CreateGmailProviderRequest{Mailbox: "new@acme.test"})
	require.NoError(t, err)
	before = b.googleCalls()
	for id, want := range map[string]m.ProviderState{
		p.GetId():                              m.ProviderState_PROVIDER_STATE_PAUSED,
		created.GetProvider().GetId():          m.ProviderState_PROVIDER_STATE_DISCONNECTED,
		"0b6f5c1e-8a4f-4d57-9a55-2f5c3b1e7a10": m.ProviderState_PROVIDER_STATE_DISCONNECTED,
	} {
		resp := b.maintain(t, "t1", &m.MaintainGmailProviderRequest{ProviderId: id, VerifyProvisioning: true, RenewWatch: true, Reconcile: true})
		for _, o := range []*m.Outcome{resp.GetProvisioning(), resp.GetWatch(), resp.GetReconcile()} {
			requireOutcome(t, o, m.OutcomeStatus_OUTCOME_STATUS_SKIPPED, 0)
			require.NotEmpty(t, o.GetMessage())
		}
		require.Equal(t, want, resp.GetState())
	}
	require.Equal(t, before, b.googleCalls())
	// The other tenant cannot maintain t1's provider: to it, it does not exist.
	resp = b.maintain(t, "t2", &m.MaintainGmailProviderRequest{ProviderId: created.GetProvider().GetId(), RenewWatch: true})
	requireOutcome(t, resp.GetWatch(), m.OutcomeStatus_OUTCOME_STATUS_SKIPPED, 0)

	// Validation (before the handler).
	for _, bad := range []*m.MaintainGmailProviderRequest{
		{ProviderId: p.GetId()},
		{ProviderId: "not-a-uuid", RenewWatch: true},
		{ProviderId: p.GetId(), RenewWatch: true, TokenFailure: &m.Outcome{Status: m.OutcomeStatus_OUTCOME_STATUS_FAILED,
			FailureClass: m.FailureClass_FAILURE_CLASS_REVOKED, ErrorCode: "token_revoked"}},
	} {
		_, err := b.upkeep().MaintainGmailProvider(b.service(auth.SvcMaintenance, "t1"), bad)
		require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", bad)
	}
}

// ---- verify_provisioning ----

func TestMaintainVerifyRepairsDriftAndFollowsTheBaseURL(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.configureTenant("t1")
	p := b.connect(t, "t1", "support@acme.test")
	b.waitIdle(t, "support@acme.test")
	checked := b.listUpkeep(t, "t1")[p.GetId()].GetLastProvisioningCheckTime().AsTime()

	// Drift made behind our back: the publisher grant removed, the push endpoint, audience and
	// expiration changed.
	b.iam.revoke(topicOf("t1"), PublisherRole, GmailPushMember)
	client, err := b.svc.pubsubClient(b.ctx, &tenantGoogle{projectID: project, serviceAccountEmail: saEmail})
	require.NoError(t, err)
	sub := b.readSubscription(t, "t1")
	sub.PushConfig.PushEndpoint = "https://old.example.com/api/email/webhooks/google"
	sub.PushConfig.GetOidcToken().Audience = "https://old.example.com/api/email/webhooks/google"
	sub.ExpirationPolicy = &pubsubpb.ExpirationPolicy{Ttl: durationpb.New(31 * 24 * time.Hour)}
	_, err = client.SubscriptionAdminClient.UpdateSubscription(b.ctx, &pubsubpb.UpdateSubscriptionRequest{Subscription: sub,
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"push_config", "expiration_policy"}}})
	require.NoError(t, err)
	require.NoError(t, client.Close())

	before := b.googleCalls()
	resp := b.maintain(t, "t1", &m.MaintainGmailProviderRequest{ProviderId: p.GetId(), VerifyProvisioning: true})
	require.Equal(t, m.OutcomeStatus_OUTCOME_STATUS_OK, resp.GetProvisioning().GetStatus(), "%v", resp.GetProvisioning())
	require.ElementsMatch(t, []string{"publisher_grant", "push_endpoint", "oidc_audience", "expiration"}, resp.GetRepaired())
	require.EqualValues(t, b.googleCalls()-before, resp.GetProvisioning().GetGoogleCalls(), "every Google request counted")
	require.EqualValues(t, 7, resp.GetProvisioning().GetGoogleCalls()) // topic; policy, grant, read back; subscription, update, read back
	sub = b.readSubscription(t, "t1")
	require.Equal(t, b.base.GmailPushEndpoint(), sub.GetPushConfig().GetPushEndpoint())
	require.Equal(t, b.base.GmailPushAudience(), sub.GetPushConfig().GetOidcToken().GetAudience())
	require.Equal(t, saEmail, sub.GetPushConfig().GetOidcToken().GetServiceAccountEmail())
	require.Zero(t, sub.GetExpirationPolicy().GetTtl().AsDuration())
	require.True(t, b.list1(t, p.GetId()).GetLastProvisioningCheckTime().AsTime().After(checked))
	d := b.diagnostics(t, "t1", p.GetId())
	require.Equal(t, "provisioning_verify_ok", d.GetEvents()[0].GetType())
	require.Contains(t, d.GetEvents()[0].GetMessage(), "repaired")
	require.Equal(t, runID, d.GetEvents()[0].GetRunId())
	require.True(t, stepOf(d, "publisher_grant").GetOk())

	// A missing topic is created again.
	client, err = b.svc.pubsubClient(b.ctx, &tenantGoogle{projectID: project, serviceAccountEmail: saEmail})
	require.NoError(t, err)
	require.NoError(t, client.TopicAdminClient.DeleteTopic(b.ctx, &pubsubpb.DeleteTopicRequest{Topic: topicOf("t1")}))
	b.iam.forget(topicOf("t1")) // its policy goes with it
	require.NoError(t, client.Close())
	resp = b.maintain(t, "t1", &m.MaintainGmailProviderRequest{ProviderId: p.GetId(), VerifyProvisioning: true})
	require.Equal(t, m.OutcomeStatus_OUTCOME_STATUS_OK, resp.GetProvisioning().GetStatus(), "%v", resp.GetProvisioning())
	require.ElementsMatch(t, []string{"topic", "publisher_grant", "subscription"}, resp.GetRepaired(), "a new topic, its grant, and the detached subscription replaced")
	require.Equal(t, topicOf("t1"), b.readSubscription(t, "t1").GetTopic())

	// ALGA_BASE_URL changes and the service restarts: maintenance sees the old endpoint, and the next
	// verification moves the subscription to the new canonical endpoint and audience.
	b.cancel()
	b.base, _ = urls.Parse("https://desk.example.org", false)
	b.startService(t)
	up := b.list1(t, p.GetId())
	require.Equal(t, "https://helpdesk.example.com/api/email/webhooks/google", up.GetPushEndpoint(), "what the subscription was provisioned with")
	require.NotEqual(t, b.base.GmailPushEndpoint(), up.GetPushEndpoint())
	resp = b.maintain(t, "t1", &m.MaintainGmailProviderRequest{ProviderId: p.GetId(), VerifyProvisioning: true})
	require.Equal(t, m.OutcomeStatus_OUTCOME_STATUS_OK, resp.GetProvisioning().GetStatus(), "%v", resp.GetProvisioning())
	require.ElementsMatch(t, []string{"push_endpoint", "oidc_audience"}, resp.GetRepaired())
	sub = b.readSubscription(t, "t1")
	require.Equal(t, "https://desk.example.org/api/email/webhooks/google", sub.GetPushConfig().GetPushEndpoint())
	require.Equal(t, "https://desk.example.org/api/email/webhooks/google", sub.GetPushConfig().GetOidcToken().GetAudience())
	up = b.list1(t, p.GetId())
	require.Equal(t, b.base.GmailPushEndpoint(), up.GetPushEndpoint())
	require.Equal(t, b.base.GmailPushAudience(), up.GetPushAudience())
	// Pushes for the new audience arrive.
	b.gm.deliver("support@acme.test", "After the move")
	require.EqualValues(t, 204, b.notify(t, "t1", "support@acme.test", "moved-1"))
	got := b.waitMessages(t, "t1", p.GetId(), 1)
	require.Equal(t, "After the move", got[0].GetSubject())
}

func (b *testBundle) list1(t *testing.T, id string) *m.GmailUpkeep {
	t.Helper()
	up, ok := b.listUpkeep(t, "t1")[id]
	require.True(t, ok)
	return up
}

func TestMaintainVerifyFailureIsRecordedAndALaterSuccessClearsIt(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.configureTenant("t1")
	p := b.connect(t, "t1", "support@acme.test")
	b.waitIdle(t, "support@acme.test")

	// The grant is gone and Google refuses to restore it: permanent; the later steps are skipped.
	b.iam.revoke(topicOf("t1"), PublisherRole, GmailPushMember)
	b.iam.mu.Lock()
	b.iam.deny = true
	b.iam.mu.Unlock()
	gmailBefore, before := b.gm.calls(), b.googleCalls()
	resp := b.maintain(t, "t1", &m.MaintainGmailProviderRequest{ProviderId: p.GetId(), VerifyProvisioning: true, RenewWatch: true, Reconcile: true})
	requireFailed(t, resp.GetProvisioning(), m.FailureClass_FAILURE_CLASS_PERMANENT, "publisher_grant_failed")
	require.Contains(t, resp.GetProvisioning().GetRemedy(), saEmail)
	require.EqualValues(t, b.googleCalls()-before, resp.GetProvisioning().GetGoogleCalls())
	requireOutcome(t, resp.GetWatch(), m.OutcomeStatus_OUTCOME_STATUS_SKIPPED, 0)
	requireOutcome(t, resp.GetReconcile(), m.OutcomeStatus_OUTCOME_STATUS_SKIPPED, 0)
	require.Equal(t, gmailBefore, b.gm.calls())
	require.Equal(t, m.ProviderState_PROVIDER_STATE_ERROR, resp.GetState())
	// Recorded on the provider: status, code, message, remedy, diagnostics step, timeline event.
	got := b.provider(t, "t1", p.GetId())
	require.Equal(t, gmailv1.ProviderStatus_PROVIDER_STATUS_ERROR, got.GetStatus())
	require.Equal(t, "publisher_grant_failed", got.GetError().GetCode())
	require.Equal(t, resp.GetProvisioning().GetMessage(), got.GetError().GetMessage())
	require.Equal(t, resp.GetProvisioning().GetRemedy(), got.GetError().GetRemedy())
	d := b.diagnostics(t, "t1", p.GetId())
	require.False(t, stepOf(d, "publisher_grant").GetOk())
	require.True(t, stepOf(d, "watch").GetOk(), "the activation's watch step is kept")
	require.Equal(t, "provisioning_verify_failed", d.GetEvents()[0].GetType())
	require.Equal(t, "publisher_grant", d.GetEvents()[0].GetStep())
	require.Equal(t, "publisher_grant_failed", d.GetEvents()[0].GetErrorCode())
	require.Equal(t, "publisher_grant_failed", b.list1(t, p.GetId()).GetErrorCode())

	// The tenant's key is gone: NOT_CONFIGURED, no Google call.
	b.iam.mu.Lock()
	b.iam.deny = false
	b.iam.mu.Unlock()
	b.peers.mu.Lock()
	delete(b.peers.secrets, "t1")
	b.peers.mu.Unlock()
	before = b.googleCalls()
	resp = b.maintain(t, "t1", &m.MaintainGmailProviderRequest{ProviderId: p.GetId(), VerifyProvisioning: true})
	requireFailed(t, resp.GetProvisioning(), m.FailureClass_FAILURE_CLASS_NOT_CONFIGURED, "service_account_missing")
	requireOutcome(t, resp.GetProvisioning(), m.OutcomeStatus_OUTCOME_STATUS_FAILED, 0)
	require.Equal(t, before, b.googleCalls())
	require.Equal(t, "service_account_missing", b.provider(t, "t1", p.GetId()).GetError().GetCode())

	// Fixed: the next verification repairs the grant and clears the error.
	b.configureTenant("t1")
	resp = b.maintain(t, "t1", &m.MaintainGmailProviderRequest{ProviderId: p.GetId(), VerifyProvisioning: true})
	requireOutcome(t, resp.GetProvisioning(), m.OutcomeStatus_OUTCOME_STATUS_OK, int(resp.GetProvisioning().GetGoogleCalls()))
	require.Contains(t, resp.GetRepaired(), "publisher_grant")
	require.Equal(t, m.ProviderState_PROVIDER_STATE_CONNECTED, resp.GetState())
	got = b.provider(t, "t1", p.GetId())
	require.Equal(t, gmailv1.ProviderStatus_PROVIDER_STATUS_CONNECTED, got.GetStatus())
	require.Nil(t, got.GetError())
	d = b.diagnostics(t, "t1", p.GetId())
	require.Equal(t, []string{"recovered", "provisioning_verify_ok"}, eventTypes(d)[:2])
	require.True(t, stepOf(d, "publisher_grant").GetOk())
	require.Nil(t, d.GetLastError())
}

// A success clears only an error it disproves: a verified provisioning does not clear a label error.
func TestMaintainSuccessClearsOnlyTheErrorsItCovers(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.configureTenant("t1")
	p := b.connect(t, "t1", "support@acme.test", "Escalations")
	require.Equal(t, "unknown_label", p.GetError().GetCode())
	resp := b.maintain(t, "t1", &m.MaintainGmailProviderRequest{ProviderId: p.GetId(), VerifyProvisioning: true})
	require.Equal(t, m.OutcomeStatus_OUTCOME_STATUS_OK, resp.GetProvisioning().GetStatus())
	require.Equal(t, m.ProviderState_PROVIDER_STATE_ERROR, resp.GetState())
	require.Equal(t, "unknown_label", b.provider(t, "t1", p.GetId()).GetError().GetCode())

	// The label now exists: users.watch works, the error clears.
	b.gm.mu.Lock()
	b.gm.labelList = append(b.gm.labelList, map[string]string{"id": "Label_9", "name": "Escalations", "type": "user"})
	b.gm.mu.Unlock()
	resp = b.maintain(t, "t1", &m.MaintainGmailProviderRequest{ProviderId: p.GetId(), RenewWatch: true})
	requireOutcome(t, resp.GetWatch(), m.OutcomeStatus_OUTCOME_STATUS_OK, 2)
	require.Equal(t, m.ProviderState_PROVIDER_STATE_CONNECTED, resp.GetState())
	require.Equal(t, []string{"Label_9"}, b.gm.snapshot("support@acme.test").watchLabels)
}

// ---- renew_watch ----

func TestMaintainRenewWatchStoresGooglesExpiration(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.configureTenant("t1")
	p := b.connect(t, "t1", "support@acme.test", "Tickets")
	b.waitIdle(t, "support@acme.test")
	lastWatch := b.list1(t, p.GetId()).GetLastWatchTime().AsTime()

	// Whatever Google answers is stored, however short.
	exp := time.Now().Add(3*time.Hour + 17*time.Minute).Truncate(time.Millisecond).UTC()
	b.gm.mu.Lock()
	b.gm.watchExpiration = exp
	b.gm.mu.Unlock()
	before, watches := b.googleCalls(), b.gm.snapshot("support@acme.test").watches
	resp := b.maintain(t, "t1", &m.MaintainGmailProviderRequest{ProviderId: p.GetId(), RenewWatch: true})
	requireOutcome(t, resp.GetWatch(), m.OutcomeStatus_OUTCOME_STATUS_OK, 2) // labels.list, users.watch
	require.Equal(t, 2, b.googleCalls()-before)
	require.Equal(t, exp, resp.GetWatchExpireTime().AsTime())
	box := b.gm.snapshot("support@acme.test")
	require.Equal(t, watches+1, box.watches)
	require.Equal(t, []string{"Label_7"}, box.watchLabels, "label names resolved")
	up := b.list1(t, p.GetId())
	require.Equal(t, exp, up.GetWatchExpireTime().AsTime())
	require.True(t, up.GetLastWatchTime().AsTime().After(lastWatch))
	require.Equal(t, exp, b.provider(t, "t1", p.GetId()).GetWatchExpireTime().AsTime())
	d := b.diagnostics(t, "t1", p.GetId())
	require.Equal(t, "watch_renew_ok", d.GetEvents()[0].GetType())
	require.True(t, stepOf(d, "watch").GetCheckTime().AsTime().After(lastWatch))

	// Google keeps failing: transient, recorded, every attempt counted.
	b.gm.mu.Lock()
	b.gm.failWatch = 3
	b.gm.mu.Unlock()
	before = b.googleCalls()
	resp = b.maintain(t, "t1", &m.MaintainGmailProviderRequest{ProviderId: p.GetId(), RenewWatch: true, Reconcile: true})
	requireFailed(t, resp.GetWatch(), m.FailureClass_FAILURE_CLASS_TRANSIENT, "watch_failed")
	require.EqualValues(t, 4, resp.GetWatch().GetGoogleCalls()) // labels.list and three users.watch attempts
	require.Contains(t, resp.GetWatch().GetMessage(), "HTTP 503")
	requireOutcome(t, resp.GetReconcile(), m.OutcomeStatus_OUTCOME_STATUS_OK, 1) // a transient failure does not stop the next step
	require.Equal(t, 5, b.googleCalls()-before)
	require.Equal(t, exp, resp.GetWatchExpireTime().AsTime(), "the current watch is unchanged")
	require.Equal(t, "watch_failed", b.provider(t, "t1", p.GetId()).GetError().GetCode())

	// A label removed from the mailbox: permanent.
	_, err := b.pool.Exec(b.ctx, "UPDATE gmail.providers SET label_filters = '{Gone}' WHERE id = $1", p.GetId())
	require.NoError(t, err)
	resp = b.maintain(t, "t1", &m.MaintainGmailProviderRequest{ProviderId: p.GetId(), RenewWatch: true, Reconcile: true})
	requireFailed(t, resp.GetWatch(), m.FailureClass_FAILURE_CLASS_PERMANENT, "unknown_label")
	requireOutcome(t, resp.GetReconcile(), m.OutcomeStatus_OUTCOME_STATUS_SKIPPED, 0)
	require.Equal(t, "unknown_label", b.provider(t, "t1", p.GetId()).GetError().GetCode())

	// Fixed: the renewal clears the error.
	_, err = b.pool.Exec(b.ctx, "UPDATE gmail.providers SET label_filters = '{Tickets}' WHERE id = $1", p.GetId())
	require.NoError(t, err)
	resp = b.maintain(t, "t1", &m.MaintainGmailProviderRequest{ProviderId: p.GetId(), RenewWatch: true})
	requireOutcome(t, resp.GetWatch(), m.OutcomeStatus_OUTCOME_STATUS_OK, 2)
	require.Equal(t, m.ProviderState_PROVIDER_STATE_CONNECTED, resp.GetState())
	require.Nil(t, b.provider(t, "t1", p.GetId()).GetError())
	require.Equal(t, "recovered", b.diagnostics(t, "t1", p.GetId()).GetEvents()[0].GetType())
}

// ---- reconcile ----

func TestMaintainReconcileStoresMissedMailOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.configureTenant("t1")
	p := b.connect(t, "t1", "support@acme.test")
	b.waitIdle(t, "support@acme.test")
	synced := b.list1(t, p.GetId()).GetLastSyncTime().AsTime()

	// Google dropped the notifications of two messages.
	b.gm.deliver("support@acme.test", "Missed one")
	b.gm.deliver("support@acme.test", "Missed two")
	before := b.googleCalls()
	resp := b.maintain(t, "t1", &m.MaintainGmailProviderRequest{ProviderId: p.GetId(), Reconcile: true})
	requireOutcome(t, resp.GetReconcile(), m.OutcomeStatus_OUTCOME_STATUS_OK, 3) // history.list, two messages.get
	require.Equal(t, 3, b.googleCalls()-before)
	msgs := b.waitMessages(t, "t1", p.GetId(), 2)
	require.ElementsMatch(t, []string{"Missed one", "Missed two"}, []string{msgs[0].GetSubject(), msgs[1].GetSubject()})
	require.True(t, b.list1(t, p.GetId()).GetLastSyncTime().AsTime().After(synced))
	d := b.diagnostics(t, "t1", p.GetId())
	require.True(t, stepOf(d, "history").GetOk())
	require.Equal(t, "reconcile_ok", d.GetEvents()[0].GetType())

	// Nothing new: one history.list, nothing stored twice.
	resp = b.maintain(t, "t1", &m.MaintainGmailProviderRequest{ProviderId: p.GetId(), Reconcile: true})
	requireOutcome(t, resp.GetReconcile(), m.OutcomeStatus_OUTCOME_STATUS_OK, 1)
	require.Equal(t, 2, b.count(t, "SELECT count(*) FROM gmail.messages"))

	// Another sync of the mailbox holds the lease: the reconcile waits, then reports it busy (no call,
	// not the provider's error).
	ok, err := store.SyncLeases.Acquire(b.ctx, b.pool, "t1", p.GetId(), "someone-else", time.Minute)
	require.NoError(t, err)
	require.True(t, ok)
	before = b.googleCalls()
	resp = b.maintain(t, "t1", &m.MaintainGmailProviderRequest{ProviderId: p.GetId(), Reconcile: true})
	requireFailed(t, resp.GetReconcile(), m.FailureClass_FAILURE_CLASS_TRANSIENT, "sync_busy")
	require.Zero(t, resp.GetReconcile().GetGoogleCalls())
	require.Equal(t, before, b.googleCalls())
	require.Equal(t, m.ProviderState_PROVIDER_STATE_CONNECTED, resp.GetState())

	// While the lease is held a push-triggered sync waits too, and runs once it is released.
	b.gm.deliver("support@acme.test", "Pushed")
	history := b.gm.snapshot("support@acme.test").historyCalls
	require.EqualValues(t, 204, b.notify(t, "t1", "support@acme.test", "held-1"))
	time.Sleep(1500 * time.Millisecond)
	require.Equal(t, history, b.gm.snapshot("support@acme.test").historyCalls, "no history.list while another sync holds the lease")
	require.NoError(t, store.SyncLeases.Release(b.ctx, b.pool, "t1", p.GetId(), "someone-else"))
	b.waitMessages(t, "t1", p.GetId(), 3)

	// A reconcile racing a burst of pushes: every message fetched and stored once.
	b.waitIdle(t, "support@acme.test")
	var ids []string
	for i := range 3 {
		ids = append(ids, b.gm.deliver("support@acme.test", fmt.Sprintf("Race %d", i)))
	}
	done := make(chan *m.MaintainGmailProviderResponse)
	go func() {
		resp, err := b.upkeep().MaintainGmailProvider(b.service(auth.SvcMaintenance, "t1"), &m.MaintainGmailProviderRequest{ProviderId: p.GetId(), Reconcile: true})
		if err != nil {
			t.Error(err)
		}
		done <- resp
	}()
	for i := range 3 {
		require.EqualValues(t, 204, b.notify(t, "t1", "support@acme.test", fmt.Sprintf("race-%d", i)))
	}
	require.Equal(t, m.OutcomeStatus_OUTCOME_STATUS_OK, (<-done).GetReconcile().GetStatus())
	b.waitMessages(t, "t1", p.GetId(), 6)
	b.waitIdle(t, "support@acme.test")
	box := b.gm.snapshot("support@acme.test")
	for _, id := range ids {
		require.Equal(t, 1, box.getCalls[id], "message %s fetched once", id)
	}
	require.Equal(t, 6, b.count(t, "SELECT count(*) FROM gmail.messages"))
}

// ---- token_failure ----

func TestMaintainRecordsATokenFailureWithoutCallingGoogle(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.configureTenant("t1")
	p := b.connect(t, "t1", "support@acme.test")
	b.waitIdle(t, "support@acme.test")

	before := b.googleCalls()
	resp := b.maintain(t, "t1", &m.MaintainGmailProviderRequest{ProviderId: p.GetId(), TokenFailure: &m.Outcome{
		Status: m.OutcomeStatus_OUTCOME_STATUS_FAILED, FailureClass: m.FailureClass_FAILURE_CLASS_TESTING_EXPIRY,
		ErrorCode: "token_expired_testing", Message: "The grant expired 7 days after consent.", Remedy: "Publish the app to Production, then reconnect."}})
	requireOutcome(t, resp.GetTokenFailure(), m.OutcomeStatus_OUTCOME_STATUS_OK, 0)
	for _, o := range []*m.Outcome{resp.GetProvisioning(), resp.GetWatch(), resp.GetReconcile()} {
		requireOutcome(t, o, m.OutcomeStatus_OUTCOME_STATUS_NOT_DUE, 0)
	}
	require.Equal(t, before, b.googleCalls(), "no Google call")
	require.Equal(t, m.ProviderState_PROVIDER_STATE_ERROR, resp.GetState())
	got := b.provider(t, "t1", p.GetId())
	require.Equal(t, "token_expired_testing", got.GetError().GetCode())
	require.Equal(t, "The grant expired 7 days after consent.", got.GetError().GetMessage())
	require.Equal(t, "Publish the app to Production, then reconnect.", got.GetError().GetRemedy())
	d := b.diagnostics(t, "t1", p.GetId())
	require.False(t, stepOf(d, "token").GetOk())
	require.Equal(t, "token_failure", d.GetEvents()[0].GetType())
	require.Equal(t, runID, d.GetEvents()[0].GetRunId())

	// The user reconnected: the next watch renewal works and clears the token's error.
	resp = b.maintain(t, "t1", &m.MaintainGmailProviderRequest{ProviderId: p.GetId(), RenewWatch: true})
	requireOutcome(t, resp.GetWatch(), m.OutcomeStatus_OUTCOME_STATUS_OK, 2)
	require.Equal(t, m.ProviderState_PROVIDER_STATE_CONNECTED, resp.GetState())
	require.Nil(t, b.provider(t, "t1", p.GetId()).GetError())

	// Nothing to record on a provider that is not connected.
	created, err := b.providers().CreateGmailProvider(b.user("t1"), &gmailv1.CreateGmailProviderRequest{Mailbox: "new@acme.test"})
	require.NoError(t, err)
	resp = b.maintain(t, "t1", &m.MaintainGmailProviderRequest{ProviderId: created.GetProvider().GetId(), TokenFailure: &m.Outcome{
		Status: m.OutcomeStatus_OUTCOME_STATUS_FAILED, FailureClass: m.FailureClass_FAILURE_CLASS_REVOKED, ErrorCode: "token_revoked"}})
	requireOutcome(t, resp.GetTokenFailure(), m.OutcomeStatus_OUTCOME_STATUS_SKIPPED, 0)
	require.Equal(t, gmailv1.ProviderStatus_PROVIDER_STATUS_DISCONNECTED, b.provider(t, "t1", created.GetProvider().GetId()).GetStatus())
}

// ---- a Google 401 with a cached access token ----

// The bug: a grant revoked before its cached access token expired made activation end in a
// misleading labels_failed and :refresh answer 200 while leaving the provider in ERROR.
func TestGoogle401WithACachedTokenForcesARefreshAndClassifies(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.configureTenant("t1")
	created, err := b.providers().CreateGmailProvider(b.user("t1"), &gmailv1.CreateGmailProviderRequest{Mailbox: "support@acme.test"})
	require.NoError(t, err)
	id := created.GetProvider().GetId()
	b.peers.mu.Lock()
	b.peers.accounts[id] = "support@acme.test"
	b.peers.forceFails[id] = oauthv1.ConnectionStatus_CONNECTION_STATUS_REVOKED // the refresh finds invalid_grant
	b.peers.mu.Unlock()
	b.gm.mu.Lock()
	b.gm.reject["tok:support@acme.test"] = true // the cached token is dead at Google
	b.gm.mu.Unlock()

	act, err := b.providers().ActivateGmailProvider(b.service(auth.SvcOAuth, "t1"), &gmailv1.ActivateGmailProviderRequest{Id: id, AccountEmail: "support@acme.test"})
	require.NoError(t, err)
	p := act.GetProvider()
	require.Equal(t, gmailv1.ProviderStatus_PROVIDER_STATUS_ERROR, p.GetStatus())
	require.Equal(t, "token_revoked", p.GetError().GetCode(), "not labels_failed")
	require.Equal(t, "Access was revoked in the Google account.", p.GetError().GetMessage())
	require.Equal(t, "Connect the mailbox again.", p.GetError().GetRemedy())
	require.Equal(t, []string{id}, b.peers.forced, "one forced refresh")
	require.Zero(t, b.gm.snapshot("support@acme.test").watches)
	d := b.diagnostics(t, "t1", id)
	require.False(t, stepOf(d, "labels").GetOk())
	require.Equal(t, "activation_failed", d.GetEvents()[0].GetType())
	require.Equal(t, "token", d.GetEvents()[0].GetStep())

	// :refresh does not answer success for a provider left in ERROR.
	_, err = b.providers().RefreshGmailProvider(b.user("t1"), &gmailv1.RefreshGmailProviderRequest{Id: id})
	require.Equal(t, codes.FailedPrecondition, status.Code(err))
	require.Equal(t, "TOKEN_REVOKED", reason(err))
	require.Equal(t, "Connect the mailbox again.", errorMeta(err, "remedy"))
	require.Equal(t, "token_revoked", errorMeta(err, "error_code"))
	require.Contains(t, status.Convert(err).Message(), "Connect the mailbox again.")

	// Every class, found by a maintenance watch renewal on a connected mailbox whose cached token dies.
	for i, c := range []struct {
		status oauthv1.ConnectionStatus
		class  m.FailureClass
		code   string
	}{
		{oauthv1.ConnectionStatus_CONNECTION_STATUS_REVOKED, m.FailureClass_FAILURE_CLASS_REVOKED, "token_revoked"},
		{oauthv1.ConnectionStatus_CONNECTION_STATUS_EXPIRED_TESTING, m.FailureClass_FAILURE_CLASS_TESTING_EXPIRY, "token_expired_testing"},
		{oauthv1.ConnectionStatus_CONNECTION_STATUS_REAUTH_REQUIRED, m.FailureClass_FAILURE_CLASS_INVALID_RAPT, "token_reauth_required"},
		{oauthv1.ConnectionStatus_CONNECTION_STATUS_CLIENT_INVALID, m.FailureClass_FAILURE_CLASS_CLIENT_REPLACED, "token_client_invalid"},
		{oauthv1.ConnectionStatus_CONNECTION_STATUS_TRANSIENT_ERROR, m.FailureClass_FAILURE_CLASS_TRANSIENT, "token_transient_error"},
	} {
		mailbox := fmt.Sprintf("class%d@acme.test", i)
		p := b.connect(t, "t1", mailbox)
		require.Equal(t, gmailv1.ProviderStatus_PROVIDER_STATUS_CONNECTED, p.GetStatus())
		b.waitIdle(t, mailbox)
		b.peers.mu.Lock()
		b.peers.forceFails[p.GetId()] = c.status
		b.peers.mu.Unlock()
		b.gm.mu.Lock()
		b.gm.reject["tok:"+mailbox] = true
		b.gm.mu.Unlock()
		before := b.googleCalls()
		resp := b.maintain(t, "t1", &m.MaintainGmailProviderRequest{ProviderId: p.GetId(), RenewWatch: true})
		requireFailed(t, resp.GetWatch(), c.class, c.code)
		require.EqualValues(t, 2, resp.GetWatch().GetGoogleCalls(), "%s: the 401 and the forced refresh", c.code)
		require.Equal(t, 1, b.googleCalls()-before, "the forced refresh is oauth's request to Google, not a Gmail one")
		got := b.provider(t, "t1", p.GetId())
		require.Equal(t, c.code, got.GetError().GetCode())
		require.Equal(t, resp.GetWatch().GetRemedy(), got.GetError().GetRemedy())
		if texts, ok := connectionTexts[c.status]; ok {
			require.Equal(t, texts[1], got.GetError().GetRemedy(), "the connection's own remedy")
		}
	}

	// The cached token was only invalidated: the forced refresh works and the call is retried once.
	p = b.connect(t, "t1", "alive@acme.test")
	b.waitIdle(t, "alive@acme.test")
	b.gm.mu.Lock()
	b.gm.reject["tok:alive@acme.test"] = true
	b.gm.mu.Unlock()
	before, watches := b.googleCalls(), b.gm.snapshot("alive@acme.test").watches
	resp := b.maintain(t, "t1", &m.MaintainGmailProviderRequest{ProviderId: p.GetId(), RenewWatch: true})
	requireOutcome(t, resp.GetWatch(), m.OutcomeStatus_OUTCOME_STATUS_OK, 4) // labels 401, the refresh, labels, watch
	require.Equal(t, 3, b.googleCalls()-before)
	require.Equal(t, watches+1, b.gm.snapshot("alive@acme.test").watches)
	b.gm.mu.Lock()
	require.Equal(t, 2, b.gm.tokens["tok:alive@acme.test#1"], "the new token did labels.list and users.watch")
	b.gm.mu.Unlock()

	// The push path: history.list with a dead cached token and a revoked grant ends in the token's error.
	p = b.connect(t, "t1", "pushed@acme.test")
	b.waitIdle(t, "pushed@acme.test")
	b.peers.mu.Lock()
	b.peers.forceFails[p.GetId()] = oauthv1.ConnectionStatus_CONNECTION_STATUS_REVOKED
	b.peers.mu.Unlock()
	b.gm.mu.Lock()
	b.gm.reject["tok:pushed@acme.test"] = true
	b.gm.mu.Unlock()
	b.gm.deliver("pushed@acme.test", "x")
	require.EqualValues(t, 204, b.notify(t, "t1", "pushed@acme.test", "rv-401"))
	require.Eventually(t, func() bool {
		return b.provider(t, "t1", p.GetId()).GetStatus() == gmailv1.ProviderStatus_PROVIDER_STATUS_ERROR
	}, 10*time.Second, 20*time.Millisecond)
	require.Equal(t, "token_revoked", b.provider(t, "t1", p.GetId()).GetError().GetCode())
	// ... and so does a reconcile of it.
	resp = b.maintain(t, "t1", &m.MaintainGmailProviderRequest{ProviderId: p.GetId(), Reconcile: true})
	requireFailed(t, resp.GetReconcile(), m.FailureClass_FAILURE_CLASS_REVOKED, "token_revoked")
	require.Zero(t, resp.GetReconcile().GetGoogleCalls(), "the broken connection answers without a Google call")

	// No token in any log line, stored row or answer.
	require.NotContains(t, b.logs.String(), "tok:")
	for _, q := range []string{
		"SELECT count(*) FROM gmail.providers WHERE error_message LIKE '%tok:%' OR error_remedy LIKE '%tok:%'",
		"SELECT count(*) FROM gmail.provider_steps WHERE detail LIKE '%tok:%'",
		"SELECT count(*) FROM gmail.provider_events WHERE message LIKE '%tok:%'",
	} {
		require.Zero(t, b.count(t, q), q)
	}
	require.False(t, strings.Contains(resp.String(), "tok:"))
}

func TestRefreshAnswersTheErrorWhileTheProviderStaysInError(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.configureTenant("t1")
	b.iam.mu.Lock()
	b.iam.deny = true
	b.iam.mu.Unlock()
	p := b.connect(t, "t1", "support@acme.test")
	require.Equal(t, "publisher_grant_failed", p.GetError().GetCode())
	_, err := b.providers().RefreshGmailProvider(b.user("t1"), &gmailv1.RefreshGmailProviderRequest{Id: p.GetId()})
	require.Equal(t, codes.FailedPrecondition, status.Code(err))
	require.Equal(t, "PUBLISHER_GRANT_FAILED", reason(err))
	require.Contains(t, errorMeta(err, "remedy"), "roles/pubsub.admin")
	require.Equal(t, "publisher_grant", errorMeta(err, "step"))
	require.Equal(t, gmailv1.ProviderStatus_PROVIDER_STATUS_ERROR, b.provider(t, "t1", p.GetId()).GetStatus())
}

// The oauth service's own failure class (ErrorInfo "failure_class") wins over the status mapping.
func TestTokenClassFromOAuthErrorInfo(t *testing.T) {
	t.Parallel()
	s := &Service{peers: newPeers().peers()}
	ctx := context.Background()
	withClass := errs.Rewrite(ctx, logging.Discard(), errs.FailedPrecondition("REAUTHORIZATION_REQUIRED", "gone").
		With("status", oauthv1.ConnectionStatus_CONNECTION_STATUS_REVOKED.String()).With("failure_class", m.FailureClass_FAILURE_CLASS_CLIENT_REPLACED.String()))
	tp := s.classifyToken(ctx, "p1", withClass)
	require.Equal(t, "token_revoked", tp.code)
	require.Equal(t, m.FailureClass_FAILURE_CLASS_CLIENT_REPLACED, tp.class)
	tp = s.classifyToken(ctx, "p1", errs.Rewrite(ctx, logging.Discard(), errs.GoogleNotConfigured("the Gmail OAuth client")))
	require.Equal(t, "google_not_configured", tp.code)
	require.Equal(t, m.FailureClass_FAILURE_CLASS_NOT_CONFIGURED, tp.class)
	tp = s.classifyToken(ctx, "p1", status.Error(codes.Unavailable, "connection refused"))
	require.Equal(t, "token_unavailable", tp.code)
	require.True(t, tp.transient())
}
