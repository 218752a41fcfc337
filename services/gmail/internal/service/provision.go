package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"cloud.google.com/go/iam/apiv1/iampb"
	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"github.com/jackc/pgx/v5"
	"golang.org/x/oauth2/google"
	"google.golang.org/api/gmail/v1"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	secretsv1 "github.com/algapsa/alga-google/gen/alga/secrets/v1"
	"github.com/algapsa/alga-google/services/gmail/internal/store"
)

// Gmail's push service account, which must be allowed to publish to the tenant's topic.
const (
	GmailPushMember = "serviceAccount:gmail-api-push@system.gserviceaccount.com"
	PublisherRole   = "roles/pubsub.publisher"
	pubsubScope     = "https://www.googleapis.com/auth/pubsub"
)

// Step names, in order.
const (
	stepServiceAccount = "service_account"
	stepTopic          = "topic"
	stepPublisherGrant = "publisher_grant"
	stepSubscription   = "subscription"
	stepToken          = "token"
	stepLabels         = "labels"
	stepWatch          = "watch"
)

// failure is a provisioning step that failed: the provider goes to ERROR with this code and remedy.
type failure struct {
	code, message, remedy string
}

func (f *failure) Error() string { return f.code + ": " + f.message }

type provisioning struct {
	steps []store.Step
	out   store.Provisioned
}

func (p *provisioning) ok(name, detail string) {
	p.steps = append(p.steps, store.Step{Name: name, OK: true, Detail: detail, CheckTime: time.Now()})
}

func (p *provisioning) fail(name string, f *failure) *failure {
	p.steps = append(p.steps, store.Step{Name: name, OK: false, Detail: f.message, CheckTime: time.Now()})
	return f
}

// tenantGoogle is what provisioning reads from the tenant's secrets.
type tenantGoogle struct {
	projectID           string
	serviceAccountEmail string
	keyJSON             []byte
}

func (s *Service) readTenantGoogle(ctx context.Context, tenant string) (*tenantGoogle, *failure, error) {
	resp, err := s.peers.Secrets.GetSecrets(actFor(ctx, tenant), &secretsv1.GetSecretsRequest{
		Names: []string{"google_service_account_key", "google_project_id"}})
	if err != nil {
		return nil, nil, fmt.Errorf("reading tenant secrets: %w", err)
	}
	vals := map[string]string{}
	for _, v := range resp.GetSecrets() {
		vals[v.GetName()] = v.GetValue()
	}
	setup := "Upload the service-account key JSON in Settings → Integrations → Communication → Google (" + s.base.GoogleSettingsURL() + "), then Refresh this mailbox."
	keyJSON := strings.TrimSpace(vals["google_service_account_key"])
	if keyJSON == "" {
		return nil, &failure{code: "service_account_missing", message: "The tenant's Google service-account key is not configured.", remedy: setup}, nil
	}
	var key struct {
		Type, ClientEmail, PrivateKey, ProjectID string
	}
	var raw map[string]any
	if err := json.Unmarshal([]byte(keyJSON), &raw); err == nil {
		key.Type, _ = raw["type"].(string)
		key.ClientEmail, _ = raw["client_email"].(string)
		key.PrivateKey, _ = raw["private_key"].(string)
		key.ProjectID, _ = raw["project_id"].(string)
	}
	if key.Type != "service_account" || key.ClientEmail == "" || key.PrivateKey == "" {
		return nil, &failure{code: "service_account_invalid", message: "The tenant's service-account key is not a valid service_account JSON key.", remedy: setup}, nil
	}
	project := strings.TrimSpace(vals["google_project_id"])
	if project == "" {
		project = key.ProjectID
	}
	if project == "" {
		return nil, &failure{code: "project_missing", message: "The tenant's Google Cloud project id is not configured.",
			remedy: "Enter the Google Cloud project id in Settings → Integrations → Communication → Google (" + s.base.GoogleSettingsURL() + ")."}, nil
	}
	return &tenantGoogle{projectID: project, serviceAccountEmail: key.ClientEmail, keyJSON: []byte(keyJSON)}, nil, nil
}

// pubsubClient connects to Pub/Sub with the tenant's service account (or the emulator).
func (s *Service) pubsubClient(ctx context.Context, tg *tenantGoogle) (*pubsub.Client, error) {
	var opts []option.ClientOption
	if host := s.google.PubSubEmulatorHost; host != "" {
		opts = []option.ClientOption{option.WithEndpoint(host), option.WithoutAuthentication(),
			option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials()))}
	} else {
		conf, err := google.JWTConfigFromJSON(tg.keyJSON, pubsubScope)
		if err != nil {
			return nil, fmt.Errorf("service-account key: %w", err)
		}
		conf.TokenURL = s.google.TokenURL()
		opts = []option.ClientOption{option.WithTokenSource(conf.TokenSource(context.WithoutCancel(ctx)))}
	}
	return pubsub.NewClient(ctx, tg.projectID, opts...)
}

func adminRemedy(tg *tenantGoogle) string {
	return fmt.Sprintf("Grant the service account %s the Pub/Sub Admin role (roles/pubsub.admin) in project %s (IAM & Admin → IAM), then Refresh this mailbox.",
		tg.serviceAccountEmail, tg.projectID)
}

func grpcFailure(code, what string, err error, remedy string) *failure {
	msg := what
	if st, ok := status.FromError(err); ok {
		msg = fmt.Sprintf("%s: %s (%s)", what, st.Message(), st.Code())
	}
	return &failure{code: code, message: msg, remedy: remedy}
}

// provision runs every activation step for p and records the outcome. It returns the updated provider;
// an error is returned only for failures of our own (database), never for a failed step.
func (s *Service) provision(ctx context.Context, p *store.Provider, accountEmail string) (*store.Provider, error) {
	pr := &provisioning{}
	pr.out.AccountEmail = accountEmail
	f, err := s.runProvisioning(ctx, p, pr)
	if err != nil {
		return nil, err
	}
	pr.out.Steps = pr.steps
	if f != nil {
		pr.out.State, pr.out.ErrorCode, pr.out.ErrorMessage, pr.out.ErrorRemedy = store.StateError, f.code, f.message, f.remedy
		s.metrics.provision.WithLabelValues(f.code).Inc()
	} else {
		pr.out.State = store.StateConnected
		s.metrics.provision.WithLabelValues("ok").Inc()
	}
	var saved *store.Provider
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := store.LockProvider(ctx, tx, p.Tenant, p.ID); err != nil { // before the update: see enqueueSync
			return err
		}
		var err error
		saved, err = store.SaveProvisioning(ctx, tx, p.Tenant, p.ID, pr.out)
		if err != nil || saved.State != store.StateConnected || !saved.Active {
			return err
		}
		// Catch up on anything since the stored history id right away.
		return s.enqueueSync(ctx, tx, p.Tenant, p.ID)
	})
	return saved, err
}

func (s *Service) runProvisioning(ctx context.Context, p *store.Provider, pr *provisioning) (*failure, error) {
	// 1. The tenant's service account and project.
	tg, f, err := s.readTenantGoogle(ctx, p.Tenant)
	if err != nil {
		return nil, err
	}
	if f != nil {
		return pr.fail(stepServiceAccount, f), nil
	}
	pr.ok(stepServiceAccount, tg.serviceAccountEmail+" in project "+tg.projectID)

	client, err := s.pubsubClient(ctx, tg)
	if err != nil {
		return pr.fail(stepTopic, &failure{code: "pubsub_unreachable", message: "Cannot connect to Pub/Sub: " + err.Error(), remedy: adminRemedy(tg)}), nil
	}
	defer client.Close()
	hash := tenantHash(p.Tenant)
	topic := fmt.Sprintf("projects/%s/topics/alga-gmail-%s", tg.projectID, hash)
	subName := fmt.Sprintf("projects/%s/subscriptions/alga-gmail-%s-push", tg.projectID, hash)
	pr.out.Topic, pr.out.Subscription = topic, subName

	// 2. Topic.
	if f := s.ensureTopic(ctx, client, topic, tg); f != nil {
		return pr.fail(stepTopic, f), nil
	}
	pr.ok(stepTopic, topic)

	// 3. Publisher grant for Gmail's push account (IAM read-modify-write with etag).
	if f := s.ensurePublisherGrant(ctx, client, topic, tg); f != nil {
		return pr.fail(stepPublisherGrant, f), nil
	}
	pr.ok(stepPublisherGrant, GmailPushMember+" has "+PublisherRole+" on "+topic)

	// 4. Push subscription, read back and compared.
	if f := s.ensureSubscription(ctx, client, subName, topic, tg); f != nil {
		return pr.fail(stepSubscription, f), nil
	}
	if err := store.UpsertSubscription(ctx, s.pool, store.Subscription{
		Name: subName, Tenant: p.Tenant, ProjectID: tg.projectID, Topic: topic, ServiceAccountEmail: tg.serviceAccountEmail,
		PushEndpoint: s.base.GmailPushEndpoint(), Audience: s.base.GmailPushAudience(),
	}); err != nil {
		if errors.Is(err, store.ErrSubscriptionOwned) {
			return pr.fail(stepSubscription, &failure{code: "subscription_conflict", message: "The push subscription " + subName + " belongs to another tenant.",
				remedy: "Use a Google Cloud project of your own for this tenant."}), nil
		}
		return nil, err
	}
	pr.ok(stepSubscription, fmt.Sprintf("%s → %s (OIDC %s, audience %s, no expiration)", subName, s.base.GmailPushEndpoint(), tg.serviceAccountEmail, s.base.GmailPushAudience()))

	// 5. The mailbox's OAuth connection.
	tok, err := s.accessToken(ctx, p.Tenant, p.ID)
	if err != nil {
		var tp *tokenProblem
		if errors.As(err, &tp) {
			return pr.fail(stepToken, &failure{code: tp.code, message: tp.message, remedy: tp.remedy}), nil
		}
		return pr.fail(stepToken, &failure{code: "token_unavailable", message: "Cannot get an access token: " + err.Error(), remedy: "Try Refresh again in a minute."}), nil
	}
	if tok.GetAccountEmail() != "" && !strings.EqualFold(tok.GetAccountEmail(), p.Mailbox) {
		return pr.fail(stepToken, &failure{code: "wrong_account", message: "The connected Google account " + tok.GetAccountEmail() + " is not " + p.Mailbox + ".",
			remedy: "Connect again and sign in as " + p.Mailbox + "."}), nil
	}
	pr.ok(stepToken, "access token for "+p.Mailbox)
	gm, err := s.gmailService(ctx, tok.GetAccessToken())
	if err != nil {
		return nil, err
	}

	// 6. Labels: names resolved to ids; an unknown label is an error, never a whole-mailbox watch.
	labelIDs, f := s.resolveLabels(ctx, gm, p.LabelFilters)
	if f != nil {
		return pr.fail(stepLabels, f), nil
	}
	pr.ok(stepLabels, strings.Join(labelIDs, ", "))
	pr.out.LabelIDs = labelIDs

	// 7. Watch.
	var w *gmail.WatchResponse
	err = withRetry(ctx, 3, func() error {
		var err error
		w, err = gm.Users.Watch("me", &gmail.WatchRequest{TopicName: topic, LabelIds: labelIDs, LabelFilterBehavior: "include"}).Context(ctx).Do()
		return err
	})
	if err != nil {
		return pr.fail(stepWatch, &failure{code: "watch_failed", message: "users.watch failed: " + err.Error(),
			remedy: "Check that " + GmailPushMember + " may publish to " + topic + " and that the Gmail API is enabled in project " + tg.projectID + ", then Refresh."}), nil
	}
	exp := time.UnixMilli(w.Expiration).UTC()
	hid := int64(w.HistoryId)
	pr.out.WatchExpire, pr.out.HistoryBaseline = &exp, &hid
	pr.ok(stepWatch, fmt.Sprintf("watching %s until %s", strings.Join(labelIDs, ", "), exp.Format(time.RFC3339)))
	return nil, nil
}

func (s *Service) ensureTopic(ctx context.Context, client *pubsub.Client, topic string, tg *tenantGoogle) *failure {
	_, err := client.TopicAdminClient.GetTopic(ctx, &pubsubpb.GetTopicRequest{Topic: topic})
	if status.Code(err) == codes.NotFound {
		_, err = client.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: topic})
		if status.Code(err) == codes.AlreadyExists {
			err = nil
		}
	}
	if err != nil {
		return grpcFailure("topic_failed", "Cannot create the Pub/Sub topic "+topic, err, adminRemedy(tg))
	}
	return nil
}

func (s *Service) ensurePublisherGrant(ctx context.Context, client *pubsub.Client, topic string, tg *tenantGoogle) *failure {
	for attempt := 0; attempt < 6; attempt++ {
		policy, err := client.TopicAdminClient.GetIamPolicy(ctx, &iampb.GetIamPolicyRequest{Resource: topic})
		if err != nil {
			return grpcFailure("publisher_grant_failed", "Cannot read the IAM policy of "+topic, err, adminRemedy(tg))
		}
		if hasMember(policy, PublisherRole, GmailPushMember) {
			return nil
		}
		addMember(policy, PublisherRole, GmailPushMember)
		_, err = client.TopicAdminClient.SetIamPolicy(ctx, &iampb.SetIamPolicyRequest{Resource: topic, Policy: policy})
		switch status.Code(err) {
		case codes.OK:
			// Read back: the grant must really be there.
			continue
		case codes.Aborted, codes.FailedPrecondition:
			// Concurrent modification (etag mismatch): read again and retry.
			time.Sleep(time.Duration(attempt+1) * 100 * time.Millisecond)
			continue
		default:
			return grpcFailure("publisher_grant_failed", "Cannot grant "+GmailPushMember+" "+PublisherRole+" on "+topic, err, adminRemedy(tg))
		}
	}
	return &failure{code: "publisher_grant_failed", message: "The IAM policy of " + topic + " kept changing concurrently; the publisher grant could not be confirmed.",
		remedy: "Refresh this mailbox again; if it persists, " + adminRemedy(tg)}
}

func hasMember(p *iampb.Policy, role, member string) bool {
	for _, b := range p.GetBindings() {
		if b.GetRole() == role && b.GetCondition() == nil && slices.Contains(b.GetMembers(), member) {
			return true
		}
	}
	return false
}

func addMember(p *iampb.Policy, role, member string) {
	for _, b := range p.Bindings {
		if b.GetRole() == role && b.GetCondition() == nil {
			b.Members = append(b.Members, member)
			return
		}
	}
	p.Bindings = append(p.Bindings, &iampb.Binding{Role: role, Members: []string{member}})
}

func (s *Service) wantSubscription(name, topic string, tg *tenantGoogle) *pubsubpb.Subscription {
	return &pubsubpb.Subscription{
		Name:  name,
		Topic: topic,
		PushConfig: &pubsubpb.PushConfig{
			PushEndpoint: s.base.GmailPushEndpoint(),
			AuthenticationMethod: &pubsubpb.PushConfig_OidcToken_{OidcToken: &pubsubpb.PushConfig_OidcToken{
				ServiceAccountEmail: tg.serviceAccountEmail,
				Audience:            s.base.GmailPushAudience(),
			}},
		},
		AckDeadlineSeconds: 30,
		// An expiration policy without a TTL means the subscription never expires.
		ExpirationPolicy: &pubsubpb.ExpirationPolicy{},
	}
}

// subscriptionMismatch compares a subscription with what it must be; "" when it matches.
func subscriptionMismatch(got, want *pubsubpb.Subscription) string {
	var diffs []string
	if got.GetTopic() != want.GetTopic() {
		diffs = append(diffs, "topic "+got.GetTopic())
	}
	if got.GetPushConfig().GetPushEndpoint() != want.GetPushConfig().GetPushEndpoint() {
		diffs = append(diffs, "endpoint "+got.GetPushConfig().GetPushEndpoint())
	}
	oidc := got.GetPushConfig().GetOidcToken()
	if oidc.GetAudience() != want.GetPushConfig().GetOidcToken().GetAudience() {
		diffs = append(diffs, "audience "+oidc.GetAudience())
	}
	if !strings.EqualFold(oidc.GetServiceAccountEmail(), want.GetPushConfig().GetOidcToken().GetServiceAccountEmail()) {
		diffs = append(diffs, "service account "+oidc.GetServiceAccountEmail())
	}
	if ep := got.GetExpirationPolicy(); ep == nil || ep.GetTtl().AsDuration() != 0 {
		diffs = append(diffs, "expiration "+ep.GetTtl().AsDuration().String())
	}
	return strings.Join(diffs, ", ")
}

func (s *Service) ensureSubscription(ctx context.Context, client *pubsub.Client, name, topic string, tg *tenantGoogle) *failure {
	want := s.wantSubscription(name, topic, tg)
	admin := client.SubscriptionAdminClient
	got, err := admin.GetSubscription(ctx, &pubsubpb.GetSubscriptionRequest{Subscription: name})
	switch {
	case status.Code(err) == codes.NotFound:
		_, err = admin.CreateSubscription(ctx, want)
		if err != nil && status.Code(err) != codes.AlreadyExists {
			return grpcFailure("subscription_failed", "Cannot create the push subscription "+name, err, adminRemedy(tg))
		}
	case err != nil:
		return grpcFailure("subscription_failed", "Cannot read the push subscription "+name, err, adminRemedy(tg))
	case got.GetTopic() != topic:
		return &failure{code: "subscription_conflict", message: "The subscription " + name + " exists for another topic (" + got.GetTopic() + ").",
			remedy: "Delete the subscription " + name + " in the Google Cloud console, then Refresh."}
	case subscriptionMismatch(got, want) != "":
		_, err = admin.UpdateSubscription(ctx, &pubsubpb.UpdateSubscriptionRequest{
			Subscription: want,
			UpdateMask:   &fieldmaskpb.FieldMask{Paths: []string{"push_config", "expiration_policy"}},
		})
		if err != nil {
			return grpcFailure("subscription_failed", "Cannot update the push subscription "+name, err, adminRemedy(tg))
		}
	}
	got, err = admin.GetSubscription(ctx, &pubsubpb.GetSubscriptionRequest{Subscription: name})
	if err != nil {
		return grpcFailure("subscription_failed", "Cannot read back the push subscription "+name, err, adminRemedy(tg))
	}
	if diff := subscriptionMismatch(got, want); diff != "" {
		return &failure{code: "subscription_mismatch", message: "The push subscription " + name + " does not match after provisioning: " + diff + ".",
			remedy: "Check that nothing else modifies the subscription, then Refresh. " + adminRemedy(tg)}
	}
	return nil
}

// resolveLabels maps label names (or ids) to Gmail label ids; empty filters mean INBOX.
func (s *Service) resolveLabels(ctx context.Context, gm *gmail.Service, filters []string) ([]string, *failure) {
	if len(filters) == 0 {
		filters = []string{"INBOX"}
	}
	var resp *gmail.ListLabelsResponse
	err := withRetry(ctx, 3, func() error {
		var err error
		resp, err = gm.Users.Labels.List("me").Context(ctx).Do()
		return err
	})
	if err != nil {
		return nil, &failure{code: "labels_failed", message: "Cannot list the mailbox's labels: " + err.Error(), remedy: "Refresh this mailbox; reconnect it if this persists."}
	}
	var ids, unknown []string
	for _, f := range filters {
		found := ""
		for _, l := range resp.Labels {
			if l.Id == f || strings.EqualFold(l.Name, strings.TrimSpace(f)) {
				found = l.Id
				break
			}
		}
		if found == "" {
			unknown = append(unknown, f)
			continue
		}
		if !slices.Contains(ids, found) {
			ids = append(ids, found)
		}
	}
	if len(unknown) > 0 {
		return nil, &failure{code: "unknown_label", message: fmt.Sprintf("The mailbox has no label named %s.", quoteList(unknown)),
			remedy: "Create the label in Gmail or correct the provider's label filters, then Refresh."}
	}
	return ids, nil
}

func quoteList(l []string) string {
	q := make([]string, len(l))
	for i, s := range l {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}
