package e2e_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/algapsa/alga-google/services/googlesandbox"
	"github.com/algapsa/alga-google/services/suite/harness"
)

// The Gmail end-to-end tests: the whole suite against the Google sandbox. Pub/Sub provisioning happens in
// the sandbox's emulator, Gmail publishes notifications there, the sandbox's push deliverer POSTs them with
// Google-signed OIDC tokens to the gateway's webhook, and the sync reads the sandbox's Gmail API.

const richEmail = "From: Carol Customer <carol@example.com>\r\n" +
	"To: Support <support@acme.test>\r\n" +
	"Cc: Dave <dave@example.com>\r\n" +
	"Subject: Printer on fire\r\n" +
	"Date: Tue, 04 Mar 2031 10:00:00 +0000\r\n" +
	"Message-ID: <msg-3@example.com>\r\n" +
	"In-Reply-To: <msg-2@acme.test>\r\n" +
	"References: <msg-1@example.com> <msg-2@acme.test>\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: multipart/mixed; boundary=\"mixed-b\"\r\n" +
	"\r\n" +
	"--mixed-b\r\n" +
	"Content-Type: multipart/alternative; boundary=\"alt-b\"\r\n" +
	"\r\n" +
	"--alt-b\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n" +
	"\r\n" +
	"The printer on floor 3 is on fire.\r\n" +
	"--alt-b\r\n" +
	"Content-Type: text/html; charset=utf-8\r\n" +
	"\r\n" +
	"<p>The printer on floor 3 is <b>on fire</b>.</p>\r\n" +
	"--alt-b--\r\n" +
	"--mixed-b\r\n" +
	"Content-Type: application/pdf; name=\"photo-report.pdf\"\r\n" +
	"Content-Disposition: attachment; filename=\"photo-report.pdf\"\r\n" +
	"Content-Transfer-Encoding: base64\r\n" +
	"\r\n" +
	"JVBERi0xLjQKJcfsj6IKMSAwIG9iago8PD4+CmVuZG9iagp0cmFpbGVyCjw8Pj4KJSVFT0YK\r\n" +
	"--mixed-b--\r\n"

// TestGmailConnectProvisionAndReceive: create → connect over HTTP → provisioned in the tenant's project
// (read back from the sandbox) → watch → a rich email delivered in the sandbox arrives, parsed, through
// InboundMailService; diagnostics show every step ok.
func TestGmailConnectProvisionAndReceive(t *testing.T) {
	t.Parallel()
	e := newEnv(t, harness.Options{})
	ts := e.setupTenant(t, "tenant-gm1", "acme-gmail-1", setupOpts{})
	p := e.connectGmail(t, ts, "support@acme.test")
	require.Nil(t, p.Error)

	// Provisioning, read back from Google (the sandbox), not from our own records.
	d := e.diagnostics(t, ts, p.ID)
	topic, sub := d.Diagnostics.Topic, d.Diagnostics.Subscription
	require.True(t, strings.HasPrefix(topic, "projects/acme-gmail-1/topics/"), topic)
	require.True(t, strings.HasPrefix(sub, "projects/acme-gmail-1/subscriptions/"), sub)
	policy, err := e.admin.TopicPolicy(e.ctx, topic)
	require.NoError(t, err)
	granted := false
	for _, b := range policy.Bindings {
		if b.Role == "roles/pubsub.publisher" && slices.Contains(b.Members, "serviceAccount:"+googlesandbox.GmailPushServiceAccount) {
			granted = true
		}
	}
	require.True(t, granted, "publisher grant for gmail-api-push: %+v", policy.Bindings)
	got, err := e.admin.Subscription(e.ctx, sub)
	require.NoError(t, err)
	canonical := e.s.BaseURL + "/api/email/webhooks/google"
	require.Equal(t, topic, got.Topic)
	require.Equal(t, canonical, got.PushEndpoint)
	require.Equal(t, canonical, got.Audience)
	require.Equal(t, ts.saEmail, got.ServiceAccountEmail)
	require.NotNil(t, got.ExpirationPolicy, "expiration policy set")
	require.True(t, got.ExpirationPolicy.Never, "the subscription never expires")

	watches, err := e.admin.Watches(e.ctx, "support@acme.test")
	require.NoError(t, err)
	require.Len(t, watches, 1)
	require.True(t, watches[0].Active)
	require.Equal(t, topic, watches[0].TopicName)
	require.Equal(t, []string{"INBOX"}, watches[0].LabelIDs)
	require.Equal(t, ts.project.ClientID, watches[0].ClientID)

	// A rich email arrives through the real push path.
	e.waitSyncIdle(t)
	dm := e.deliver(t, "support@acme.test", []byte(richEmail))
	require.True(t, dm.Notified, "Gmail published a notification")
	msgs := e.waitInbound(t, ts.tenant, p.ID, 1)
	m := msgs[0]
	require.Equal(t, dm.ID, m.GetGmailMessageId())
	require.Equal(t, dm.ThreadID, m.GetThreadId())
	require.Equal(t, p.ID, m.GetProviderId())
	require.Equal(t, "support@acme.test", m.GetMailbox())
	require.Equal(t, "Printer on fire", m.GetSubject())
	require.Contains(t, m.GetFrom(), "carol@example.com")
	require.Len(t, m.GetTo(), 1)
	require.Contains(t, m.GetTo()[0], "support@acme.test")
	require.Len(t, m.GetCc(), 1)
	require.Contains(t, m.GetCc()[0], "dave@example.com")
	require.Equal(t, "<msg-3@example.com>", normalizeID(m.GetMessageIdHeader()))
	require.Equal(t, "<msg-2@acme.test>", normalizeID(m.GetInReplyTo()))
	require.Len(t, m.GetReferences(), 2)
	require.Equal(t, "<msg-1@example.com>", normalizeID(m.GetReferences()[0]))
	require.Equal(t, "<msg-2@acme.test>", normalizeID(m.GetReferences()[1]))
	require.Contains(t, m.GetTextBody(), "The printer on floor 3 is on fire.")
	require.Contains(t, m.GetHtmlBody(), "<b>on fire</b>")
	require.Len(t, m.GetAttachments(), 1)
	require.Equal(t, "photo-report.pdf", m.GetAttachments()[0].GetFilename())
	require.Equal(t, "application/pdf", m.GetAttachments()[0].GetContentType())
	require.Positive(t, m.GetAttachments()[0].GetSize())
	require.Contains(t, m.GetLabelIds(), "INBOX")
	require.False(t, m.GetAcknowledged())
	require.Equal(t, 1, e.count(t, "SELECT count(*) FROM gmail.notifications WHERE provider_id = $1", p.ID), "one push stored")

	// Connected, and diagnostics show every step ok (and the push that came in).
	d = e.diagnostics(t, ts, p.ID)
	require.Equal(t, "PROVIDER_STATUS_CONNECTED", d.Provider.Status)
	var names []string
	for _, st := range d.Diagnostics.Steps {
		require.True(t, st.OK, "step %s: %s", st.Name, st.Detail)
		names = append(names, st.Name)
	}
	require.Equal(t, []string{"service_account", "topic", "publisher_grant", "subscription", "token", "labels", "watch"}, names)
	require.Equal(t, ts.saEmail, d.Diagnostics.ServiceAccountEmail)
	require.Equal(t, canonical, d.Diagnostics.PushEndpoint)
	require.Equal(t, canonical, d.Diagnostics.PushAudience)
	require.Equal(t, "connected", d.Diagnostics.ConnectionStatus)
	require.NotEmpty(t, d.Diagnostics.WatchExpireTime)
	require.NotEmpty(t, d.Diagnostics.LastPushTime)
	require.Nil(t, d.Diagnostics.LastError)
}

func normalizeID(s string) string {
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, "<") {
		s = "<" + s + ">"
	}
	return s
}

// TestGmailRedeliveryAndBurst: the same push delivered five times stores one notification and one
// message; ten pushes for one mailbox in a burst cause one history sync.
func TestGmailRedeliveryAndBurst(t *testing.T) {
	t.Parallel()
	e := newEnv(t, harness.Options{})
	ts := e.setupTenant(t, "tenant-gm2", "acme-gmail-2", setupOpts{})
	p := e.connectGmail(t, ts, "help@acme.test")
	d := e.diagnostics(t, ts, p.ID)
	capture := e.capturePushes(t, d.Diagnostics.Topic, ts.saEmail)
	e.waitSyncIdle(t)

	// One email: Pub/Sub pushes it to our subscription (stored, synced) and to the capture subscription
	// (the same message with a Google-signed token for the same audience and service account).
	dm := e.deliver(t, "help@acme.test", plainEmail("help@acme.test", "Once only"))
	require.True(t, dm.Notified)
	e.waitInbound(t, ts.tenant, p.ID, 1)
	push := capture.wait(t, 1)
	require.True(t, strings.HasPrefix(push.Authorization, "Bearer "))
	var captured struct {
		Message struct {
			MessageID string `json:"messageId"`
		} `json:"message"`
	}
	require.NoError(t, json.Unmarshal(push.Body, &captured))
	msgID := captured.Message.MessageID
	require.NotEmpty(t, msgID)
	require.Equal(t, 1, e.count(t, "SELECT count(*) FROM gmail.notifications WHERE pubsub_message_id = $1 AND subscription = $2", msgID, d.Diagnostics.Subscription),
		"our subscription's push of the same message was stored")

	// Pub/Sub redelivers that push five times (at-least-once delivery).
	replay := asDeliveredTo(t, push.Body, d.Diagnostics.Subscription, "")
	for range 5 {
		require.Equal(t, http.StatusNoContent, e.postPush(t, push.Authorization, replay))
	}
	e.waitSyncIdle(t)
	require.Equal(t, 1, e.count(t, "SELECT count(*) FROM gmail.notifications WHERE provider_id = $1", p.ID), "one notification")
	require.Len(t, e.inbound(t, ts.tenant, p.ID), 1, "one message")

	// Ten distinct pushes for the mailbox in a burst (new Pub/Sub message ids): one history sync.
	e.deliver(t, "help@acme.test", plainEmail("help@acme.test", "Burst"))
	// Our subscription's own push for dm2 is part of the burst too; wait for it before counting.
	require.Eventually(t, func() bool {
		return e.count(t, "SELECT count(*) FROM gmail.notifications WHERE provider_id = $1", p.ID) == 2
	}, 20*time.Second, 20*time.Millisecond)
	e.waitSyncIdle(t)
	before := e.counter(t, "gmail.users.history.list")
	bodies := make([][]byte, 10)
	for i := range bodies {
		bodies[i] = asDeliveredTo(t, replay, d.Diagnostics.Subscription, "burst-"+strconv.Itoa(i))
	}
	statuses := make(chan int, len(bodies))
	for _, b := range bodies {
		go func() { statuses <- e.postPushNoT(push.Authorization, b) }()
	}
	for range bodies {
		require.Equal(t, http.StatusNoContent, <-statuses)
	}
	e.waitSyncIdle(t)
	require.Equal(t, 12, e.count(t, "SELECT count(*) FROM gmail.notifications WHERE provider_id = $1", p.ID), "ten more notifications stored")
	require.Equal(t, int64(1), e.counter(t, "gmail.users.history.list")-before, "ten pushes in a burst: one history.list")
	got := e.inbound(t, ts.tenant, p.ID)
	require.Equal(t, []string{"Once only", "Burst"}, subjects(got), "no duplicates")
}
