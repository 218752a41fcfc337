package googlesandbox_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"cloud.google.com/go/iam/apiv1/iampb"
	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"github.com/stretchr/testify/require"
	gmail "google.golang.org/api/gmail/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/algapsa/alga-google/services/googlesandbox"
)

const multipartMail = "From: Customer <customer@example.com>\r\n" +
	"To: support@acme.test\r\n" +
	"Subject: Printer on fire\r\n" +
	"Message-ID: <m1@example.com>\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: multipart/mixed; boundary=\"b1\"\r\n" +
	"\r\n" +
	"--b1\r\n" +
	"Content-Type: text/plain; charset=UTF-8\r\n" +
	"Content-Transfer-Encoding: quoted-printable\r\n" +
	"\r\n" +
	"It is on fire =E2=80=94 please help.\r\n" +
	"--b1\r\n" +
	"Content-Type: application/octet-stream; name=\"log.txt\"\r\n" +
	"Content-Disposition: attachment; filename=\"log.txt\"\r\n" +
	"Content-Transfer-Encoding: base64\r\n" +
	"\r\n" +
	"aGVsbG8gbG9n\r\n" +
	"--b1--\r\n"

func TestGmailMessagesHistoryAndPaging(t *testing.T) {
	t.Parallel()
	b := setup(t)
	tn := b.tenant(t, "gmail-tenant", "production")
	b.user(t, "support@acme.test")
	svc := b.gmail(t, tn.cfg, b.connect(t, tn.cfg, "support@acme.test"))

	prof, err := svc.Users.GetProfile("me").Do()
	require.NoError(t, err)
	require.Equal(t, "support@acme.test", prof.EmailAddress)
	start := prof.HistoryId

	lbl, err := b.admin.CreateLabel(b.ctx, "support@acme.test", "Helpdesk")
	require.NoError(t, err)
	labels, err := svc.Users.Labels.List("me").Do()
	require.NoError(t, err)
	var names []string
	for _, l := range labels.Labels {
		names = append(names, l.Name)
	}
	require.Subset(t, names, []string{"INBOX", "SENT", "DRAFT", "UNREAD", "Helpdesk"})

	id1, err := b.admin.DeliverEmail(b.ctx, "support@acme.test", []byte(multipartMail))
	require.NoError(t, err)
	err = b.admin.AdvanceClock(b.ctx, 10*time.Second)
	require.NoError(t, err)
	cut, err := b.admin.Now(b.ctx)
	require.NoError(t, err)
	id2, err := b.admin.DeliverEmail(b.ctx, "support@acme.test", googlesandbox.Email{From: "a@example.com", Subject: "second", Body: "two", LabelNames: []string{"Helpdesk"}})
	require.NoError(t, err)
	id3, err := b.admin.DeliverEmail(b.ctx, "support@acme.test", googlesandbox.Email{Subject: "sent one", Body: "out", LabelIDs: []string{"SENT"}})
	require.NoError(t, err)

	// history.list pages one record at a time.
	var seen []string
	pageToken := ""
	for {
		call := svc.Users.History.List("me").StartHistoryId(start).HistoryTypes("messageAdded").MaxResults(1)
		if pageToken != "" {
			call = call.PageToken(pageToken)
		}
		h, err := call.Do()
		require.NoError(t, err)
		for _, rec := range h.History {
			for _, ma := range rec.MessagesAdded {
				seen = append(seen, ma.Message.Id)
			}
		}
		if pageToken = h.NextPageToken; pageToken == "" {
			break
		}
	}
	require.Equal(t, []string{id1, id2, id3}, seen)
	h, err := svc.Users.History.List("me").StartHistoryId(start).LabelId("INBOX").Do()
	require.NoError(t, err)
	require.Len(t, h.History, 2)
	h, err = svc.Users.History.List("me").StartHistoryId(start).LabelId(lbl.ID).Do()
	require.NoError(t, err)
	require.Len(t, h.History, 1)
	require.Equal(t, id2, h.History[0].MessagesAdded[0].Message.Id)

	// messages.list with q=after: and labelIds, paging.
	l, err := svc.Users.Messages.List("me").Q(fmt.Sprintf("after:%d", cut.Unix())).Do()
	require.NoError(t, err)
	require.Len(t, l.Messages, 2)
	l, err = svc.Users.Messages.List("me").LabelIds("INBOX").MaxResults(1).Do()
	require.NoError(t, err)
	require.Len(t, l.Messages, 1)
	require.Equal(t, id2, l.Messages[0].Id) // newest first
	l, err = svc.Users.Messages.List("me").LabelIds("INBOX").MaxResults(1).PageToken(l.NextPageToken).Do()
	require.NoError(t, err)
	require.Equal(t, id1, l.Messages[0].Id)
	require.Empty(t, l.NextPageToken)

	// messages.get raw and full.
	m, err := svc.Users.Messages.Get("me", id1).Format("raw").Do()
	require.NoError(t, err)
	raw, err := base64.URLEncoding.DecodeString(m.Raw)
	require.NoError(t, err)
	require.Equal(t, multipartMail, string(raw))
	m, err = svc.Users.Messages.Get("me", id1).Format("full").Do()
	require.NoError(t, err)
	require.Equal(t, "multipart/mixed", m.Payload.MimeType)
	require.Equal(t, "Subject", m.Payload.Headers[2].Name)
	require.Equal(t, "Printer on fire", m.Payload.Headers[2].Value)
	require.Len(t, m.Payload.Parts, 2)
	text, err := base64.URLEncoding.DecodeString(m.Payload.Parts[0].Body.Data)
	require.NoError(t, err)
	require.Equal(t, "It is on fire — please help.", string(text))
	require.Equal(t, "log.txt", m.Payload.Parts[1].Filename)
	att, err := svc.Users.Messages.Attachments.Get("me", id1, m.Payload.Parts[1].Body.AttachmentId).Do()
	require.NoError(t, err)
	data, _ := base64.URLEncoding.DecodeString(att.Data)
	require.Equal(t, "hello log", string(data))
	require.Contains(t, m.LabelIds, "INBOX")
	require.Equal(t, "It is on fire — please help.", m.Snippet)

	_, err = svc.Users.Messages.Get("me", "ffffffffffffffff").Do()
	requireAPIStatus(t, err, 404)
	_, err = svc.Users.GetProfile("someone-else@acme.test").Do()
	requireAPIStatus(t, err, 403)
}

func TestGmailStaleHistoryIDIs404(t *testing.T) {
	t.Parallel()
	b := setup(t)
	tn := b.tenant(t, "history-tenant", "production")
	b.user(t, "ivy@acme.test")
	svc := b.gmail(t, tn.cfg, b.connect(t, tn.cfg, "ivy@acme.test"))
	prof, err := svc.Users.GetProfile("me").Do()
	require.NoError(t, err)
	_, err = b.admin.DeliverEmail(b.ctx, "ivy@acme.test", googlesandbox.Email{Subject: "old"})
	require.NoError(t, err)

	err = b.admin.AdvanceClock(b.ctx, 6*24*time.Hour)
	require.NoError(t, err)
	// Refresh the access token (the old one expired with the clock).
	svc = b.gmail(t, tn.cfg, b.connect(t, tn.cfg, "ivy@acme.test"))
	h, err := svc.Users.History.List("me").StartHistoryId(prof.HistoryId).Do()
	require.NoError(t, err)
	require.Len(t, h.History, 1)

	err = b.admin.AdvanceClock(b.ctx, 2*24*time.Hour)
	require.NoError(t, err)
	svc = b.gmail(t, tn.cfg, b.connect(t, tn.cfg, "ivy@acme.test"))
	_, err = svc.Users.History.List("me").StartHistoryId(prof.HistoryId).Do()
	requireAPIStatus(t, err, 404)
	// The current history id still works, and messages.list finds the old mail for a backfill.
	cur, err := svc.Users.GetProfile("me").Do()
	require.NoError(t, err)
	_, err = svc.Users.History.List("me").StartHistoryId(cur.HistoryId).Do()
	require.NoError(t, err)
	l, err := svc.Users.Messages.List("me").Q("after:0").Do()
	require.NoError(t, err)
	require.Len(t, l.Messages, 1)
}

// pubsubSetup creates topic and a push subscription with an OIDC token to the receiver.
func pubsubSetup(t *testing.T, b *testBundle, ps *pubsub.Client, project string, rc *receiver, audience, saEmail string) (topic, sub string) {
	t.Helper()
	topic = "projects/" + project + "/topics/gmail"
	sub = "projects/" + project + "/subscriptions/gmail-push"
	createTopic(t, b.ctx, ps, topic)
	_, err := ps.SubscriptionAdminClient.CreateSubscription(b.ctx, &pubsubpb.Subscription{
		Name: sub, Topic: topic, AckDeadlineSeconds: 10,
		PushConfig: &pubsubpb.PushConfig{PushEndpoint: rc.URL + "/api/email/webhooks/google",
			AuthenticationMethod: &pubsubpb.PushConfig_OidcToken_{OidcToken: &pubsubpb.PushConfig_OidcToken{ServiceAccountEmail: saEmail, Audience: audience}}},
		ExpirationPolicy: &pubsubpb.ExpirationPolicy{},
	})
	require.NoError(t, err)
	return topic, sub
}

func TestGmailWatchNeedsPublisherGrantAndPushesNotifications(t *testing.T) {
	t.Parallel()
	b := setup(t)
	tn := b.tenant(t, "watch-tenant", "production")
	b.user(t, "jane@acme.test")
	_, saEmail, err := b.admin.CreateServiceAccount(b.ctx, "watch-tenant", "alga-push")
	require.NoError(t, err)
	svc := b.gmail(t, tn.cfg, b.connect(t, tn.cfg, "jane@acme.test"))
	ps := b.pubsub(t, "watch-tenant")
	const audience = "https://alga.example.com/api/email/webhooks/google"
	rc := b.receiver(t, audience)
	topic, sub := pubsubSetup(t, b, ps, "watch-tenant", rc, audience, saEmail)

	// No publisher grant: Google's 403.
	_, err = svc.Users.Watch("me", &gmail.WatchRequest{TopicName: topic, LabelIds: []string{"INBOX"}}).Do()
	ge := requireAPIStatus(t, err, 403)
	require.Contains(t, ge.Message, "User not authorized to perform this action.")
	// A topic of another project: 400.
	_, err = svc.Users.Watch("me", &gmail.WatchRequest{TopicName: "projects/other-project/topics/gmail"}).Do()
	requireAPIStatus(t, err, 400)

	// Etag-safe grant: a stale etag is ABORTED.
	pol, err := ps.TopicAdminClient.GetIamPolicy(b.ctx, &iampb.GetIamPolicyRequest{Resource: topic})
	require.NoError(t, err)
	stale := pol.Etag
	grantGmailPublisher(t, b.ctx, ps, topic)
	pol.Etag = stale
	pol.Bindings = append(pol.Bindings, &iampb.Binding{Role: "roles/pubsub.viewer", Members: []string{"user:x@acme.test"}})
	_, err = ps.TopicAdminClient.SetIamPolicy(b.ctx, &iampb.SetIamPolicyRequest{Resource: topic, Policy: pol})
	require.Equal(t, codes.Aborted, status.Code(err))
	perms, err := ps.TopicAdminClient.TestIamPermissions(b.ctx, &iampb.TestIamPermissionsRequest{Resource: topic, Permissions: []string{"pubsub.topics.publish"}})
	require.NoError(t, err)
	require.Equal(t, []string{"pubsub.topics.publish"}, perms.Permissions)
	tp, err := b.admin.TopicPolicy(b.ctx, topic)
	require.NoError(t, err)
	require.Equal(t, []googlesandbox.Binding{{Role: "roles/pubsub.publisher", Members: []string{"serviceAccount:gmail-api-push@system.gserviceaccount.com"}}}, tp.Bindings)
	si, err := b.admin.Subscription(b.ctx, sub)
	require.NoError(t, err)
	require.Equal(t, audience, si.Audience)
	require.Equal(t, saEmail, si.ServiceAccountEmail)
	require.True(t, si.ExpirationPolicy.Never)

	wr, err := svc.Users.Watch("me", &gmail.WatchRequest{TopicName: topic, LabelIds: []string{"INBOX"}, LabelFilterBehavior: "include"}).Do()
	require.NoError(t, err)
	now, _ := b.admin.Now(b.ctx)
	require.WithinDuration(t, now.Add(7*24*time.Hour), time.UnixMilli(wr.Expiration), 5*time.Second)

	d, err := b.admin.Deliver(b.ctx, "jane@acme.test", googlesandbox.Email{Subject: "hello", Body: "hi"})
	require.NoError(t, err)
	require.True(t, d.Notified)
	reqs := rc.waitFor(t, 1)
	require.NoError(t, reqs[0].Err)
	require.Equal(t, saEmail, reqs[0].Claims["email"])
	require.Equal(t, true, reqs[0].Claims["email_verified"])
	require.Equal(t, "https://accounts.google.com", reqs[0].Claims["iss"])
	env := decodeEnvelope(t, reqs[0].Body)
	require.Equal(t, sub, env.Subscription)
	require.NotEmpty(t, env.Message.MessageID)
	require.Equal(t, env.Message.MessageID, env.Message.MessageID2)
	var note struct {
		EmailAddress string `json:"emailAddress"`
		HistoryID    uint64 `json:"historyId"`
	}
	require.NoError(t, json.Unmarshal(env.Message.Data, &note))
	require.Equal(t, "jane@acme.test", note.EmailAddress)
	require.Equal(t, d.HistoryID, note.HistoryID)

	// Sent mail does not match the INBOX filter: no notification.
	err = b.admin.AdvanceClock(b.ctx, 2*time.Second)
	require.NoError(t, err)
	d, err = b.admin.Deliver(b.ctx, "jane@acme.test", googlesandbox.Email{Subject: "out", LabelIDs: []string{"SENT"}})
	require.NoError(t, err)
	require.False(t, d.Notified)

	// users.stop ends notifications.
	require.NoError(t, svc.Users.Stop("me").Do())
	d, err = b.admin.Deliver(b.ctx, "jane@acme.test", googlesandbox.Email{Subject: "after stop"})
	require.NoError(t, err)
	require.False(t, d.Notified)
	ws, err := b.admin.Watches(b.ctx, "jane@acme.test")
	require.NoError(t, err)
	require.Equal(t, 1, ws[0].Stops)
	c, err := b.admin.Counters(b.ctx)
	require.NoError(t, err)
	require.EqualValues(t, 1, c["gmail.users.stop|"+tn.project.ClientID])

	// A watch expires after 7 sandbox days.
	svc = b.gmail(t, tn.cfg, b.connect(t, tn.cfg, "jane@acme.test"))
	_, err = svc.Users.Watch("me", &gmail.WatchRequest{TopicName: topic}).Do()
	require.NoError(t, err)
	err = b.admin.AdvanceClock(b.ctx, 7*24*time.Hour)
	require.NoError(t, err)
	d, err = b.admin.Deliver(b.ctx, "jane@acme.test", googlesandbox.Email{Subject: "too late"})
	require.NoError(t, err)
	require.False(t, d.Notified)
}

func TestOneNotificationPerSecondPerMailbox(t *testing.T) {
	t.Parallel()
	b := setup(t)
	tn := b.tenant(t, "rate-tenant", "production")
	b.user(t, "kim@acme.test")
	svc := b.gmail(t, tn.cfg, b.connect(t, tn.cfg, "kim@acme.test"))
	ps := b.pubsub(t, "rate-tenant")
	topic := "projects/rate-tenant/topics/gmail"
	createTopic(t, b.ctx, ps, topic)
	grantGmailPublisher(t, b.ctx, ps, topic)
	_, err := svc.Users.Watch("me", &gmail.WatchRequest{TopicName: topic}).Do()
	require.NoError(t, err)
	// Freeze real time out of the picture: the rule uses the sandbox clock, and three deliveries in a row
	// happen well within one second.
	var notified []bool
	for i := range 3 {
		d, err := b.admin.Deliver(b.ctx, "kim@acme.test", googlesandbox.Email{Subject: fmt.Sprint("m", i)})
		require.NoError(t, err)
		notified = append(notified, d.Notified)
	}
	require.Equal(t, []bool{true, false, false}, notified)
	err = b.admin.AdvanceClock(b.ctx, time.Second)
	require.NoError(t, err)
	d, err := b.admin.Deliver(b.ctx, "kim@acme.test", googlesandbox.Email{Subject: "later"})
	require.NoError(t, err)
	require.True(t, d.Notified)
	c, err := b.admin.Counters(b.ctx)
	require.NoError(t, err)
	require.EqualValues(t, 2, c["gmail.notification.dropped|kim@acme.test"])
	require.EqualValues(t, 4, c["gmail.notification|kim@acme.test"])
}

func TestPushRetriedOn500AndDroppedNotifications(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_ = b.tenant(t, "push-tenant", "production")
	_, saEmail, err := b.admin.CreateServiceAccount(b.ctx, "push-tenant", "alga-push")
	require.NoError(t, err)
	ps := b.pubsub(t, "push-tenant")
	rc := b.receiver(t, "", 500, 503) // empty audience: the token's aud is the endpoint
	topic, sub := pubsubSetup(t, b, ps, "push-tenant", rc, "", saEmail)

	res := ps.Publisher(topic).Publish(b.ctx, &pubsub.Message{Data: []byte("payload"), Attributes: map[string]string{"k": "v"}})
	id, err := res.Get(b.ctx)
	require.NoError(t, err)
	reqs := rc.waitFor(t, 3)
	for _, r := range reqs {
		require.NoError(t, r.Err)
		env := decodeEnvelope(t, r.Body)
		require.Equal(t, id, env.Message.MessageID)
		require.Equal(t, "payload", string(env.Message.Data))
		require.Equal(t, "v", env.Message.Attributes["k"])
	}
	require.Eventually(t, func() bool {
		ds, _ := b.admin.Deliveries(b.ctx)
		return len(ds) == 3 && ds[2].Outcome == "acked"
	}, 5*time.Second, 10*time.Millisecond)
	time.Sleep(100 * time.Millisecond)
	require.Len(t, rc.requests(), 3, "an acked message is not delivered again")

	// Dropped notifications never reach the endpoint.
	require.NoError(t, b.admin.SetFault(b.ctx, googlesandbox.Fault{Endpoint: "pubsub.push", DropNotifications: true, Times: 1}))
	_, err = ps.Publisher(topic).Publish(b.ctx, &pubsub.Message{Data: []byte("lost")}).Get(b.ctx)
	require.NoError(t, err)
	// "kept" only once "lost" was dropped: published together, one poll may push them in either order.
	require.Eventually(t, func() bool {
		c, err := b.admin.Counters(b.ctx)
		return err == nil && c["pubsub.push.dropped|"+sub] == 1
	}, 5*time.Second, 10*time.Millisecond)
	_, err = ps.Publisher(topic).Publish(b.ctx, &pubsub.Message{Data: []byte("kept")}).Get(b.ctx)
	require.NoError(t, err)
	reqs = rc.waitFor(t, 4)
	require.Equal(t, "kept", string(decodeEnvelope(t, reqs[3].Body).Message.Data))
	c, err := b.admin.Counters(b.ctx)
	require.NoError(t, err)
	require.EqualValues(t, 1, c["pubsub.push.dropped|"+sub])

	// A receiver that always fails: bounded attempts, then the push is given up.
	require.NoError(t, b.admin.SetFault(b.ctx, googlesandbox.Fault{Endpoint: "pubsub.push", Rate5xx: 1}))
	_, err = ps.Publisher(topic).Publish(b.ctx, &pubsub.Message{Data: []byte("doomed")}).Get(b.ctx)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		ds, _ := b.admin.Deliveries(b.ctx)
		return len(ds) > 0 && ds[len(ds)-1].Outcome == "gave_up" && ds[len(ds)-1].Attempt == 5
	}, 5*time.Second, 10*time.Millisecond)
}
