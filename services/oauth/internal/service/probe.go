package service

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	oauthv1 "github.com/algapsa/alga-google/gen/alga/oauth/v1"
	"github.com/algapsa/alga-google/services/oauth/internal/store"
	"github.com/algapsa/alga-google/services/platform/urls"
)

const (
	pass    = oauthv1.CheckResult_CHECK_RESULT_PASS
	warn    = oauthv1.CheckResult_CHECK_RESULT_WARN
	fail    = oauthv1.CheckResult_CHECK_RESULT_FAIL
	skipped = oauthv1.CheckResult_CHECK_RESULT_SKIPPED
)

// probeCode is a deliberately invalid authorization code: Google answers invalid_grant when it accepts
// the client, invalid_client / unauthorized_client when it does not.
const probeCode = "alga-google-configuration-probe"

const pubsubScope = "https://www.googleapis.com/auth/pubsub"

// TestGoogleConfig implements GoogleSetupService: static checks and live probes with the tenant's own
// credentials. Every check reports pass / warn / fail / skipped with a remedy; nothing here is an error.
func (s *Setup) TestGoogleConfig(ctx context.Context, _ *oauthv1.TestGoogleConfigRequest) (*oauthv1.TestGoogleConfigResponse, error) {
	id, err := admin(ctx)
	if err != nil {
		return nil, err
	}
	v, err := s.loadSetup(ctx, id.Tenant)
	if err != nil {
		return nil, err
	}
	cfg := s.configOf(v)
	secretVals, err := s.getSecrets(ctx, SecretClientSecret, SecretCalendarClientSecret)
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, 45*time.Second)
	defer cancel()

	var checks []*oauthv1.ConfigCheck
	add := func(c *oauthv1.ConfigCheck) { checks = append(checks, c) }

	// 1. Required values.
	if len(cfg.Missing) == 0 {
		add(&oauthv1.ConfigCheck{Id: "required_values", Title: "Required values", Result: pass, Message: "Every value Gmail and Calendar need is present."})
	} else {
		add(&oauthv1.ConfigCheck{Id: "required_values", Title: "Required values", Result: fail,
			Message: "Missing: " + strings.Join(cfg.Missing, ", ") + ".",
			Remedy:  "Enter the missing values in the form above and save."})
	}

	// 2. Redirect URIs from the canonical base URL.
	add(s.checkRedirectURIs())

	// 3. The OAuth client(s) at Google's token endpoint.
	if v.clientID != "" && secretVals[SecretClientSecret] != "" {
		add(s.checkOAuthClient(pctx, "oauth_client", "Gmail OAuth client", client{ID: v.clientID, Secret: secretVals[SecretClientSecret]}, kindGmail))
	} else {
		add(&oauthv1.ConfigCheck{Id: "oauth_client", Title: "Gmail OAuth client", Result: skipped, Message: "The Gmail OAuth client ID or secret is missing."})
	}
	if !v.settings.UseSameApp {
		if v.calClientID != "" && secretVals[SecretCalendarClientSecret] != "" {
			add(s.checkOAuthClient(pctx, "oauth_client_calendar", "Calendar OAuth client", client{ID: v.calClientID, Secret: secretVals[SecretCalendarClientSecret]}, kindCalendar))
		} else {
			add(&oauthv1.ConfigCheck{Id: "oauth_client_calendar", Title: "Calendar OAuth client", Result: skipped, Message: "The Calendar OAuth client ID or secret is missing."})
		}
	}

	// 4 and 5. The service account and Pub/Sub.
	saCheck, ts := s.checkServiceAccount(pctx, v)
	add(saCheck)
	add(s.checkPubSub(pctx, v.projectID, ts, saCheck.Result))

	// 6. The consent screen's publishing status cannot be read through an API: warn, and fail when a
	// connection already shows the Testing-mode expiry.
	add(s.checkConsentScreen(ctx, id.Tenant))

	overall := pass
	for _, c := range checks {
		switch {
		case c.Result == fail:
			overall = fail
		case c.Result == warn && overall != fail:
			overall = warn
		}
	}
	s.log.InfoContext(ctx, "google setup tested", "overall", overall.String())
	return &oauthv1.TestGoogleConfigResponse{Overall: overall, Checks: checks}, nil
}

func (s *Setup) checkRedirectURIs() *oauthv1.ConfigCheck {
	c := &oauthv1.ConfigCheck{Id: "redirect_uris", Title: "Redirect URIs"}
	uris := s.base.GmailRedirectURI() + " and " + s.base.CalendarRedirectURI()
	configured, err := urls.Parse(s.baseURL, true)
	switch {
	case s.baseURL != "" && (err != nil || configured.String() != s.base.String()):
		c.Result, c.Message = fail, "The redirect URIs do not derive from the current ALGA_BASE_URL."
		c.Remedy = "Restart the service after changing ALGA_BASE_URL, then register " + uris + " at Google."
	case !strings.HasPrefix(s.base.String(), "https://"):
		c.Result, c.Message = warn, "The base URL uses plain http ("+s.base.String()+"); Google accepts that for localhost development only."
		c.Remedy = "Set ALGA_BASE_URL to the public https address of this installation, then register " + uris + " at Google."
	default:
		c.Result, c.Message = pass, "Register exactly these Authorized redirect URIs on the OAuth client: "+uris+"."
		c.Remedy = "Google Cloud Console → APIs & Services → Credentials → your OAuth client → Authorized redirect URIs."
	}
	return c
}

func (s *Setup) checkOAuthClient(ctx context.Context, id, title string, c client, kind string) *oauthv1.ConfigCheck {
	check := &oauthv1.ConfigCheck{Id: id, Title: title}
	_, err := s.oauthConfig(c, kind).Exchange(s.httpContext(ctx), probeCode)
	if err == nil {
		check.Result, check.Message = warn, "Google accepted a deliberately invalid authorization code, which it should not; the token endpoint may not be Google's."
		return check
	}
	te := classifyTokenError(err)
	switch {
	case te.code == "invalid_grant":
		check.Result, check.Message = pass, "Google accepts the OAuth client ID and secret."
	case te.code == "invalid_client" || te.code == "unauthorized_client":
		check.Result = fail
		check.Message = "Google rejects the OAuth client (" + te.code + "): the client ID does not exist, was deleted, or the secret is wrong."
		check.Remedy = "Copy the client ID and secret of the Web application OAuth client again from Google Cloud Console → APIs & Services → Credentials, save, and test again."
	case te.code == "redirect_uri_mismatch":
		check.Result = fail
		check.Message = "Google rejects the redirect URI " + s.redirectURI(kind) + "."
		check.Remedy = "Add " + s.base.GmailRedirectURI() + " and " + s.base.CalendarRedirectURI() + " to the OAuth client's Authorized redirect URIs."
	case te.transient:
		check.Result = warn
		check.Message = "Google's token endpoint could not be reached to check the client."
		check.Remedy = "Try again in a few minutes."
	default:
		check.Result = warn
		check.Message = "Google answered the probe with " + orDefault(te.code, fmt.Sprintf("HTTP %d", te.httpStatus)) + "; the client could not be confirmed."
		check.Remedy = "Check the OAuth client in Google Cloud Console."
	}
	return check
}

// checkServiceAccount signs a JWT with the key and exchanges it for an access token at Google.
func (s *Setup) checkServiceAccount(ctx context.Context, v setupView) (*oauthv1.ConfigCheck, oauth2.TokenSource) {
	c := &oauthv1.ConfigCheck{Id: "service_account", Title: "Pub/Sub service account"}
	if v.saKey == "" {
		c.Result, c.Message = skipped, "No service-account key is stored."
		return c, nil
	}
	key, err := oauthv1.ParseServiceAccountKey([]byte(v.saKey))
	if err != nil {
		c.Result, c.Message, c.Remedy = fail, err.Error(), "Upload the JSON key file of the service account again."
		return c, nil
	}
	if v.projectID != "" && key.ProjectID != v.projectID {
		c.Result = fail
		c.Message = fmt.Sprintf("The key belongs to project %q, but the project ID is %q.", key.ProjectID, v.projectID)
		c.Remedy = "Create the service account and its key in the project that hosts the Pub/Sub topic."
		return c, nil
	}
	jwtCfg, err := google.JWTConfigFromJSON([]byte(v.saKey), pubsubScope)
	if err != nil {
		c.Result, c.Message, c.Remedy = fail, "The service-account key cannot sign requests (its private key does not parse).", "Create a new JSON key for the service account and upload it."
		return c, nil
	}
	jwtCfg.TokenURL = s.google.TokenURL()
	ts := jwtCfg.TokenSource(s.httpContext(ctx))
	if _, err := ts.Token(); err != nil {
		te := classifyTokenError(err)
		if te.transient {
			c.Result, c.Message, c.Remedy = warn, "Google's token endpoint could not be reached to check the service account.", "Try again in a few minutes."
			return c, nil
		}
		c.Result = fail
		c.Message = "Google refuses the service-account key (" + orDefault(te.code, fmt.Sprintf("HTTP %d", te.httpStatus)) + "): the key or the account was deleted or disabled."
		c.Remedy = "In Google Cloud Console → IAM & Admin → Service accounts, check that " + key.ClientEmail + " is enabled, create a new JSON key, and upload it."
		return c, nil
	}
	c.Result, c.Message = pass, "The service account "+key.ClientEmail+" obtains access tokens."
	return c, ts
}

// checkPubSub lists the project's topics with the service account: the Pub/Sub API must be enabled and
// the account allowed to manage topics.
func (s *Setup) checkPubSub(ctx context.Context, project string, ts oauth2.TokenSource, saResult oauthv1.CheckResult) *oauthv1.ConfigCheck {
	c := &oauthv1.ConfigCheck{Id: "pubsub", Title: "Pub/Sub API"}
	if project == "" || ts == nil {
		c.Result = skipped
		c.Message = "Needs the project ID and a working service-account key."
		if saResult == warn {
			c.Message = "The service account could not be checked."
		}
		return c
	}
	var opts []option.ClientOption
	if host := s.google.PubSubEmulatorHost; host != "" {
		opts = append(opts, option.WithEndpoint(host), option.WithoutAuthentication(),
			option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())))
	} else {
		opts = append(opts, option.WithTokenSource(ts))
	}
	client, err := pubsub.NewClient(ctx, project, opts...)
	if err != nil {
		c.Result, c.Message, c.Remedy = warn, "The Pub/Sub client could not be created.", "Try again in a few minutes."
		return c
	}
	defer client.Close()
	it := client.TopicAdminClient.ListTopics(ctx, &pubsubpb.ListTopicsRequest{Project: "projects/" + project, PageSize: 1})
	_, err = it.Next()
	if errors.Is(err, iterator.Done) {
		err = nil
	}
	switch status.Code(err) {
	case codes.OK:
		c.Result, c.Message = pass, "The service account can use Pub/Sub in project "+project+"."
	case codes.PermissionDenied:
		c.Result = fail
		c.Message = "The service account may not use Pub/Sub in project " + project + ", or the Pub/Sub API is not enabled."
		c.Remedy = "Enable the Cloud Pub/Sub API in the project and grant the service account the Pub/Sub Admin role (roles/pubsub.admin)."
	case codes.NotFound:
		c.Result = fail
		c.Message = "Project " + project + " was not found by Pub/Sub."
		c.Remedy = "Check the project ID (the ID, not the name or number)."
	case codes.Unauthenticated:
		c.Result = fail
		c.Message = "Pub/Sub does not accept the service account's credentials."
		c.Remedy = "Create a new JSON key for the service account and upload it."
	default:
		c.Result = warn
		c.Message = "Pub/Sub could not be reached (" + status.Code(err).String() + ")."
		c.Remedy = "Try again in a few minutes."
	}
	return c
}

func (s *Setup) checkConsentScreen(ctx context.Context, tenant string) *oauthv1.ConfigCheck {
	c := &oauthv1.ConfigCheck{Id: "consent_screen", Title: "OAuth consent screen", Result: warn,
		Message: "If the OAuth consent screen's publishing status is Testing, Google expires refresh tokens 7 days after consent and every mailbox and calendar disconnects.",
		Remedy:  "In Google Cloud Console → APIs & Services → OAuth consent screen, publish the app (Internal apps of a Workspace domain need no verification)."}
	conns, err := store.ListConnections(ctx, s.pool, tenant, "")
	if err != nil {
		return c
	}
	for _, conn := range conns {
		if conn.Status == store.StatusExpiredTesting {
			c.Result = fail
			c.Message = "A connection (" + conn.AccountEmail + ") expired 7 days after consent: the consent screen is in Testing."
			c.Remedy += " Then reconnect the affected providers."
			break
		}
	}
	return c
}
