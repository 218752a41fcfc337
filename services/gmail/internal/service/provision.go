package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"cloud.google.com/go/iam/apiv1/iampb"
	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"github.com/jackc/pgx/v5"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"
	"google.golang.org/api/gmail/v1"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	maintenancev1 "github.com/algapsa/alga-google/gen/alga/maintenance/v1"
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

// failure is a step that failed: the provider goes to ERROR with this code, message and remedy.
type failure struct {
	code, message, remedy string
	// class is how maintenance sees it (zero: permanent).
	class maintenancev1.FailureClass
	// step is the diagnostics step the error is recorded for (default: the step that failed; a broken
	// grant found by the labels or watch call is the token's).
	step string
}

func (f *failure) Error() string { return f.code + ": " + f.message }

// notConfigured is the class of a tenant Google setup that lacks what a step needs.
const notConfigured = maintenancev1.FailureClass_FAILURE_CLASS_NOT_CONFIGURED

// failureClass is f's class for maintenance (PERMANENT unless classified).
func (f *failure) failureClass() maintenancev1.FailureClass {
	if f.class == maintenancev1.FailureClass_FAILURE_CLASS_UNSPECIFIED {
		return maintenancev1.FailureClass_FAILURE_CLASS_PERMANENT
	}
	return f.class
}

// tokenFailure records a tokenProblem as a failed step (the error belongs to the token).
func tokenFailure(tp *tokenProblem) *failure {
	return &failure{code: tp.code, message: tp.message, remedy: tp.remedy, class: tp.class, step: stepToken}
}

// googleFailure is a failed Gmail call: a tokenProblem (the 401 path) keeps its class, anything else is
// code with Google's status and message (transient for 429, 5xx and network errors).
func googleFailure(err error, code, what, remedy string) *failure {
	var tp *tokenProblem
	if errors.As(err, &tp) {
		return tokenFailure(tp)
	}
	f := &failure{code: code, message: what + ": " + googleMessage(err) + ".", remedy: remedy}
	if retryable(err) {
		f.class = maintenancev1.FailureClass_FAILURE_CLASS_TRANSIENT
	}
	return f
}

// provisioning collects the steps of an activation (or of an upkeep step) and what they produced.
type provisioning struct {
	steps []store.Step
	out   store.Provisioned
	// repaired names what had drifted at Google and was put right (see MaintainGmailProviderResponse).
	repaired []string
}

func (p *provisioning) ok(name, detail string) {
	p.steps = append(p.steps, store.Step{Name: name, OK: true, Detail: detail, CheckTime: time.Now()})
}

func (p *provisioning) fail(name string, f *failure) *failure {
	p.steps = append(p.steps, store.Step{Name: name, OK: false, Detail: f.message, CheckTime: time.Now()})
	if f.step == "" {
		f.step = name
	}
	return f
}

func (p *provisioning) repair(what ...string) { p.repaired = append(p.repaired, what...) }

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
		return nil, &failure{code: "service_account_missing", message: "The tenant's Google service-account key is not configured.", remedy: setup,
			class: notConfigured}, nil
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
		return nil, &failure{code: "service_account_invalid", message: "The tenant's service-account key is not a valid service_account JSON key.", remedy: setup,
			class: notConfigured}, nil
	}
	project := strings.TrimSpace(vals["google_project_id"])
	if project == "" {
		project = key.ProjectID
	}
	if project == "" {
		return nil, &failure{code: "project_missing", message: "The tenant's Google Cloud project id is not configured.",
			remedy: "Enter the Google Cloud project id in Settings → Integrations → Communication → Google (" + s.base.GoogleSettingsURL() + ").",
			class:  notConfigured}, nil
	}
	return &tenantGoogle{projectID: project, serviceAccountEmail: key.ClientEmail, keyJSON: []byte(keyJSON)}, nil, nil
}

// pubsubClient connects to Pub/Sub with the tenant's service account (or the emulator). Every request
// it sends — the service account's token fetch included — is counted under ctx (countCalls).
func (s *Service) pubsubClient(ctx context.Context, tg *tenantGoogle) (*pubsub.Client, error) {
	opts := []option.ClientOption{option.WithGRPCDialOption(grpc.WithChainUnaryInterceptor(countingInterceptor))}
	if host := s.google.PubSubEmulatorHost; host != "" {
		opts = append(opts, option.WithEndpoint(host), option.WithoutAuthentication(),
			option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())))
	} else {
		conf, err := google.JWTConfigFromJSON(tg.keyJSON, pubsubScope)
		if err != nil {
			return nil, fmt.Errorf("service-account key: %w", err)
		}
		conf.TokenURL = s.google.TokenURL()
		tokenCtx := context.WithValue(context.WithoutCancel(ctx), oauth2.HTTPClient,
			&http.Client{Timeout: 30 * time.Second, Transport: countingTransport{base: s.transport()}})
		opts = append(opts, option.WithTokenSource(conf.TokenSource(tokenCtx)))
	}
	return pubsub.NewClient(ctx, tg.projectID, opts...)
}

func adminRemedy(tg *tenantGoogle) string {
	return fmt.Sprintf("Grant the service account %s the Pub/Sub Admin role (roles/pubsub.admin) in project %s (IAM & Admin → IAM), then Refresh this mailbox.",
		tg.serviceAccountEmail, tg.projectID)
}

// grpcFailure is a failed Pub/Sub or IAM call: transient when Google was unavailable, overloaded or
// timed out, permanent otherwise (permission denied, bad request).
func grpcFailure(code, what string, err error, remedy string) *failure {
	f := &failure{code: code, message: what, remedy: remedy}
	if st, ok := status.FromError(err); ok {
		f.message = fmt.Sprintf("%s: %s (%s)", what, st.Message(), st.Code())
		switch st.Code() {
		case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted, codes.Internal, codes.Aborted, codes.Unknown:
			f.class = maintenancev1.FailureClass_FAILURE_CLASS_TRANSIENT
		}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		f.class = maintenancev1.FailureClass_FAILURE_CLASS_TRANSIENT
	}
	return f
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
	event := store.Event{Type: "activated", Message: "Provisioned and watching " + p.Mailbox + "."}
	if f != nil {
		pr.out.State, pr.out.ErrorStep, pr.out.ErrorCode, pr.out.ErrorMessage, pr.out.ErrorRemedy = store.StateError, f.step, f.code, f.message, f.remedy
		event = store.Event{Type: "activation_failed", Step: f.step, ErrorCode: f.code, Message: f.message}
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
		if saved, err = store.SaveProvisioning(ctx, tx, p.Tenant, p.ID, pr.out); err != nil {
			return err
		}
		if err := store.InsertEvent(ctx, tx, p.Tenant, p.ID, event); err != nil {
			return err
		}
		if saved.State != store.StateConnected || !saved.Active {
			return nil
		}
		// Catch up on anything since the stored history id right away.
		return s.enqueueSync(ctx, tx, p.Tenant, p.ID)
	})
	return saved, err
}

// runProvisioning runs every activation step: the Pub/Sub provisioning, then the mailbox's watch.
func (s *Service) runProvisioning(ctx context.Context, p *store.Provider, pr *provisioning) (*failure, error) {
	if _, f, err := s.provisionPubSub(ctx, p, pr); f != nil || err != nil {
		return f, err
	}
	pr.out.ProvisioningChecked = true
	return s.watchMailbox(ctx, p, pr.out.Topic, pr)
}

// provisionPubSub reads the tenant's service account and makes (or confirms) the tenant's topic, the
// publisher grant for Gmail's push account and the push subscription — canonical endpoint and OIDC
// audience from the current base URL, the tenant's service account, no expiration — reading each back
// and repairing what drifted (noted in pr.repaired). Activation and upkeep's verify_provisioning both
// run it. The subscription's routing row records the endpoint and audience it was provisioned with.
func (s *Service) provisionPubSub(ctx context.Context, p *store.Provider, pr *provisioning) (*tenantGoogle, *failure, error) {
	// 1. The tenant's service account and project.
	tg, f, err := s.readTenantGoogle(ctx, p.Tenant)
	if err != nil {
		return nil, nil, err
	}
	if f != nil {
		return nil, pr.fail(stepServiceAccount, f), nil
	}
	pr.ok(stepServiceAccount, tg.serviceAccountEmail+" in project "+tg.projectID)

	client, err := s.pubsubClient(ctx, tg)
	if err != nil {
		return nil, pr.fail(stepTopic, &failure{code: "pubsub_unreachable", message: "Cannot connect to Pub/Sub: " + err.Error(), remedy: adminRemedy(tg)}), nil
	}
	defer client.Close()
	hash := tenantHash(p.Tenant)
	topic := fmt.Sprintf("projects/%s/topics/alga-gmail-%s", tg.projectID, hash)
	subName := fmt.Sprintf("projects/%s/subscriptions/alga-gmail-%s-push", tg.projectID, hash)
	pr.out.Topic, pr.out.Subscription = topic, subName

	// 2. Topic.
	if f := s.ensureTopic(ctx, client, topic, tg, pr); f != nil {
		return nil, pr.fail(stepTopic, f), nil
	}
	pr.ok(stepTopic, topic)

	// 3. Publisher grant for Gmail's push account (IAM read-modify-write with etag).
	if f := s.ensurePublisherGrant(ctx, client, topic, tg, pr); f != nil {
		return nil, pr.fail(stepPublisherGrant, f), nil
	}
	pr.ok(stepPublisherGrant, GmailPushMember+" has "+PublisherRole+" on "+topic)

	// 4. Push subscription, read back and compared.
	if f := s.ensureSubscription(ctx, client, subName, topic, tg, pr); f != nil {
		return nil, pr.fail(stepSubscription, f), nil
	}
	if err := store.UpsertSubscription(ctx, s.pool, store.Subscription{
		Name: subName, Tenant: p.Tenant, ProjectID: tg.projectID, Topic: topic, ServiceAccountEmail: tg.serviceAccountEmail,
		PushEndpoint: s.base.GmailPushEndpoint(), Audience: s.base.GmailPushAudience(),
	}); err != nil {
		if errors.Is(err, store.ErrSubscriptionOwned) {
			return nil, pr.fail(stepSubscription, &failure{code: "subscription_conflict", message: "The push subscription " + subName + " belongs to another tenant.",
				remedy: "Use a Google Cloud project of your own for this tenant."}), nil
		}
		return nil, nil, err
	}
	pr.ok(stepSubscription, fmt.Sprintf("%s → %s (OIDC %s, audience %s, no expiration)", subName, s.base.GmailPushEndpoint(), tg.serviceAccountEmail, s.base.GmailPushAudience()))
	return tg, nil, nil
}

// watchMailbox gets the mailbox's access token, resolves its label filters and calls users.watch on
// topic, recording Google's expiration and history baseline in pr.out. Activation and upkeep's
// renew_watch both run it. A Google 401 forces one token refresh (see mailbox.do): a broken grant is the
// token's failure, with the oauth service's classification, never a labels or watch error.
func (s *Service) watchMailbox(ctx context.Context, p *store.Provider, topic string, pr *provisioning) (*failure, error) {
	// 5. The mailbox's OAuth connection.
	mb, err := s.openMailbox(ctx, p)
	if err != nil {
		var tp *tokenProblem
		if errors.As(err, &tp) {
			return pr.fail(stepToken, tokenFailure(tp)), nil
		}
		return nil, err
	}
	if mb.account != "" && !strings.EqualFold(mb.account, p.Mailbox) {
		return pr.fail(stepToken, &failure{code: "wrong_account", message: "The connected Google account " + mb.account + " is not " + p.Mailbox + ".",
			remedy: "Connect again and sign in as " + p.Mailbox + "."}), nil
	}
	pr.ok(stepToken, "access token for "+p.Mailbox)

	// 6. Labels: names resolved to ids; an unknown label is an error, never a whole-mailbox watch.
	labelIDs, f := s.resolveLabels(ctx, mb, p.LabelFilters)
	if f != nil {
		return pr.fail(stepLabels, f), nil
	}
	pr.ok(stepLabels, strings.Join(labelIDs, ", "))
	pr.out.LabelIDs = labelIDs

	// 7. Watch.
	var w *gmail.WatchResponse
	err = mb.call(ctx, "users.watch", 3, func(gm *gmail.Service) error {
		var err error
		w, err = gm.Users.Watch("me", &gmail.WatchRequest{TopicName: topic, LabelIds: labelIDs, LabelFilterBehavior: "include"}).Context(ctx).Do()
		return err
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return pr.fail(stepWatch, googleFailure(err, "watch_failed", "users.watch failed",
			"Check that "+GmailPushMember+" may publish to "+topic+" and that the Gmail API is enabled in project "+projectOf(topic)+", then Refresh.")), nil
	}
	exp := time.UnixMilli(w.Expiration).UTC()
	hid := int64(w.HistoryId)
	pr.out.WatchExpire, pr.out.HistoryBaseline = &exp, &hid
	pr.ok(stepWatch, fmt.Sprintf("watching %s until %s", strings.Join(labelIDs, ", "), exp.Format(time.RFC3339)))
	return nil, nil
}

// projectOf returns the project of a "projects/P/topics/T" name.
func projectOf(topic string) string {
	rest, _ := strings.CutPrefix(topic, "projects/")
	project, _, _ := strings.Cut(rest, "/")
	return project
}

func (s *Service) ensureTopic(ctx context.Context, client *pubsub.Client, topic string, tg *tenantGoogle, pr *provisioning) *failure {
	_, err := client.TopicAdminClient.GetTopic(ctx, &pubsubpb.GetTopicRequest{Topic: topic})
	if status.Code(err) == codes.NotFound {
		_, err = client.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: topic})
		if status.Code(err) == codes.AlreadyExists {
			err = nil
		}
		if err == nil {
			pr.repair("topic")
		}
	}
	if err != nil {
		return grpcFailure("topic_failed", "Cannot create the Pub/Sub topic "+topic, err, adminRemedy(tg))
	}
	return nil
}

func (s *Service) ensurePublisherGrant(ctx context.Context, client *pubsub.Client, topic string, tg *tenantGoogle, pr *provisioning) *failure {
	granted := false
	for attempt := 0; attempt < 6; attempt++ {
		policy, err := client.TopicAdminClient.GetIamPolicy(ctx, &iampb.GetIamPolicyRequest{Resource: topic})
		if err != nil {
			return grpcFailure("publisher_grant_failed", "Cannot read the IAM policy of "+topic, err, adminRemedy(tg))
		}
		if hasMember(policy, PublisherRole, GmailPushMember) {
			if granted {
				pr.repair("publisher_grant")
			}
			return nil
		}
		addMember(policy, PublisherRole, GmailPushMember)
		_, err = client.TopicAdminClient.SetIamPolicy(ctx, &iampb.SetIamPolicyRequest{Resource: topic, Policy: policy})
		switch status.Code(err) {
		case codes.OK:
			// Read back: the grant must really be there.
			granted = true
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
		remedy: "Refresh this mailbox again; if it persists, " + adminRemedy(tg), class: maintenancev1.FailureClass_FAILURE_CLASS_TRANSIENT}
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

// drift is one way a subscription differs from what it must be: what (as MaintainGmailProviderResponse
// names repairs) and the value found.
type drift struct{ what, found string }

// subscriptionDrift compares a subscription with what it must be; empty when it matches.
func subscriptionDrift(got, want *pubsubpb.Subscription) []drift {
	var diffs []drift
	if got.GetTopic() != want.GetTopic() {
		diffs = append(diffs, drift{"topic", "topic " + got.GetTopic()})
	}
	if got.GetPushConfig().GetPushEndpoint() != want.GetPushConfig().GetPushEndpoint() {
		diffs = append(diffs, drift{"push_endpoint", "endpoint " + got.GetPushConfig().GetPushEndpoint()})
	}
	oidc := got.GetPushConfig().GetOidcToken()
	if oidc.GetAudience() != want.GetPushConfig().GetOidcToken().GetAudience() {
		diffs = append(diffs, drift{"oidc_audience", "audience " + oidc.GetAudience()})
	}
	if !strings.EqualFold(oidc.GetServiceAccountEmail(), want.GetPushConfig().GetOidcToken().GetServiceAccountEmail()) {
		diffs = append(diffs, drift{"oidc_service_account", "service account " + oidc.GetServiceAccountEmail()})
	}
	if ep := got.GetExpirationPolicy(); ep == nil || ep.GetTtl().AsDuration() != 0 {
		diffs = append(diffs, drift{"expiration", "expiration " + ep.GetTtl().AsDuration().String()})
	}
	return diffs
}

func describeDrift(diffs []drift) string {
	out := make([]string, len(diffs))
	for i, d := range diffs {
		out[i] = d.found
	}
	return strings.Join(out, ", ")
}

// deletedTopic is the topic Pub/Sub shows for a subscription whose topic was deleted.
const deletedTopic = "_deleted-topic_"

func (s *Service) ensureSubscription(ctx context.Context, client *pubsub.Client, name, topic string, tg *tenantGoogle, pr *provisioning) *failure {
	want := s.wantSubscription(name, topic, tg)
	admin := client.SubscriptionAdminClient
	got, err := admin.GetSubscription(ctx, &pubsubpb.GetSubscriptionRequest{Subscription: name})
	switch {
	case status.Code(err) == codes.NotFound:
		_, err = admin.CreateSubscription(ctx, want)
		if err != nil && status.Code(err) != codes.AlreadyExists {
			return grpcFailure("subscription_failed", "Cannot create the push subscription "+name, err, adminRemedy(tg))
		}
		pr.repair("subscription")
	case err != nil:
		return grpcFailure("subscription_failed", "Cannot read the push subscription "+name, err, adminRemedy(tg))
	case got.GetTopic() == deletedTopic:
		// Its topic was deleted (and has just been created again): a detached subscription cannot be
		// re-attached, so it is replaced.
		if err := admin.DeleteSubscription(ctx, &pubsubpb.DeleteSubscriptionRequest{Subscription: name}); err != nil && status.Code(err) != codes.NotFound {
			return grpcFailure("subscription_failed", "Cannot replace the detached push subscription "+name, err, adminRemedy(tg))
		}
		if _, err := admin.CreateSubscription(ctx, want); err != nil && status.Code(err) != codes.AlreadyExists {
			return grpcFailure("subscription_failed", "Cannot create the push subscription "+name, err, adminRemedy(tg))
		}
		pr.repair("subscription")
	case got.GetTopic() != topic:
		return &failure{code: "subscription_conflict", message: "The subscription " + name + " exists for another topic (" + got.GetTopic() + ").",
			remedy: "Delete the subscription " + name + " in the Google Cloud console, then Refresh."}
	case len(subscriptionDrift(got, want)) > 0:
		diffs := subscriptionDrift(got, want)
		_, err = admin.UpdateSubscription(ctx, &pubsubpb.UpdateSubscriptionRequest{
			Subscription: want,
			UpdateMask:   &fieldmaskpb.FieldMask{Paths: []string{"push_config", "expiration_policy"}},
		})
		if err != nil {
			return grpcFailure("subscription_failed", "Cannot update the push subscription "+name, err, adminRemedy(tg))
		}
		for _, d := range diffs {
			pr.repair(d.what)
		}
	default:
		return nil // read and found right: nothing to change, nothing to read back
	}
	// Read back what was created or updated.
	got, err = admin.GetSubscription(ctx, &pubsubpb.GetSubscriptionRequest{Subscription: name})
	if err != nil {
		return grpcFailure("subscription_failed", "Cannot read back the push subscription "+name, err, adminRemedy(tg))
	}
	if diffs := subscriptionDrift(got, want); len(diffs) > 0 {
		return &failure{code: "subscription_mismatch", message: "The push subscription " + name + " does not match after provisioning: " + describeDrift(diffs) + ".",
			remedy: "Check that nothing else modifies the subscription, then Refresh. " + adminRemedy(tg)}
	}
	return nil
}

// resolveLabels maps label names (or ids) to Gmail label ids; empty filters mean INBOX.
func (s *Service) resolveLabels(ctx context.Context, mb *mailbox, filters []string) ([]string, *failure) {
	if len(filters) == 0 {
		filters = []string{"INBOX"}
	}
	var resp *gmail.ListLabelsResponse
	err := mb.call(ctx, "labels.list", 3, func(gm *gmail.Service) error {
		var err error
		resp, err = gm.Users.Labels.List("me").Context(ctx).Do()
		return err
	})
	if err != nil {
		return nil, googleFailure(err, "labels_failed", "Cannot list the mailbox's labels", "Refresh this mailbox; reconnect it if this persists.")
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
