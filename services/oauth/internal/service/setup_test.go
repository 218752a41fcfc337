package service_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2/pstest"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	oauthv1 "github.com/algapsa/alga-google/gen/alga/oauth/v1"
	secretsv1 "github.com/algapsa/alga-google/gen/alga/secrets/v1"
	"github.com/algapsa/alga-google/services/oauth/internal/service"
	"github.com/algapsa/alga-google/services/oauth/internal/store"
	"github.com/algapsa/alga-google/services/platform/auth"
)

var testRSAKey, _ = rsa.GenerateKey(rand.Reader, 2048)

// serviceAccountKey is a service-account key file for project.
func serviceAccountKey(t testing.TB, project string) string {
	der, err := x509.MarshalPKCS8PrivateKey(testRSAKey)
	require.NoError(t, err)
	b, _ := json.Marshal(map[string]string{
		"type": "service_account", "project_id": project, "private_key_id": "k1",
		"private_key":  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email": "alga-pubsub@" + project + ".iam.gserviceaccount.com", "client_id": "1111",
		"token_uri": "https://oauth2.googleapis.com/token",
	})
	return string(b)
}

func fieldOf(err error) string {
	for _, d := range status.Convert(err).Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info.Metadata["field"]
		}
	}
	return ""
}

func reasonOf(err error) (string, map[string]string) {
	for _, d := range status.Convert(err).Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info.Reason, info.Metadata
		}
	}
	return "", nil
}

func TestSetupStatusSaveAndPartialUpdate(t *testing.T) {
	t.Parallel()
	b := setup(t, 1, "")
	in := b.instances[0]
	adm := b.admin(t, "tenant-a")

	got, err := in.setup.GetGoogleConfig(b.user(t, "tenant-a", "u1"), &oauthv1.GetGoogleConfigRequest{})
	require.NoError(t, err)
	require.Equal(t, oauthv1.GoogleConfigState_GOOGLE_CONFIG_STATE_MISSING, got.Config.State)
	require.True(t, got.Config.UseSameApp, "use-same-app defaults to on")
	require.Equal(t, baseURL+"/api/auth/google/callback", got.Config.GmailRedirectUri)
	require.Equal(t, baseURL+"/api/auth/google/calendar/callback", got.Config.CalendarRedirectUri)
	require.Equal(t, service.GmailScopes, got.Config.GmailScopes)
	require.Equal(t, []string{"https://www.googleapis.com/auth/calendar"}, got.Config.CalendarScopes)

	// Zero-width characters and spaces around a pasted client id are removed; the cleaned value is stored.
	resp, err := in.setup.UpdateGoogleConfig(adm, &oauthv1.UpdateGoogleConfigRequest{
		GmailClientId: ptr(" \u200b" + clientA + "\ufeff "), GmailClientSecret: ptr(secretA), ProjectId: ptr(projectA),
	})
	require.NoError(t, err)
	v, _ := b.secrets.Value("tenant-a", "google_client_id")
	require.Equal(t, clientA, v)
	require.Equal(t, oauthv1.GoogleConfigState_GOOGLE_CONFIG_STATE_PARTIAL, resp.Config.State)
	require.Equal(t, []string{"Pub/Sub service-account key"}, resp.Config.Missing)
	require.False(t, resp.Config.GmailReady)
	require.True(t, resp.Config.CalendarReady, "use-same-app: Calendar has the Gmail client")
	require.Equal(t, "1234…apps.googleusercontent.com", resp.Config.GmailClientIdMasked)
	require.Equal(t, "••••1234", resp.Config.GmailClientSecretHint)
	cal, _ := b.secrets.Value("tenant-a", "google_calendar_client_secret")
	require.Equal(t, secretA, cal, "use-same-app writes the Calendar key set too")

	// Partial update: only the key; everything else keeps its value.
	resp, err = in.setup.UpdateGoogleConfig(adm, &oauthv1.UpdateGoogleConfigRequest{ServiceAccountKeyJson: ptr(serviceAccountKey(t, projectA))})
	require.NoError(t, err)
	require.Equal(t, oauthv1.GoogleConfigState_GOOGLE_CONFIG_STATE_CONFIGURED, resp.Config.State)
	require.Empty(t, resp.Config.Missing)
	require.Equal(t, "alga-pubsub@"+projectA+".iam.gserviceaccount.com", resp.Config.ServiceAccountEmail)
	require.Equal(t, projectA, resp.Config.ProjectId)
	require.Equal(t, "admin-1", resp.Config.UpdatedBy)
	v, _ = b.secrets.Value("tenant-a", "google_client_secret")
	require.Equal(t, secretA, v)

	// Separate Calendar app: turning use-same-app off keeps what is stored, and separate values stay.
	resp, err = in.setup.UpdateGoogleConfig(adm, &oauthv1.UpdateGoogleConfigRequest{UseSameApp: ptr(false), CalendarClientId: ptr(clientB), CalendarClientSecret: ptr(secretB)})
	require.NoError(t, err)
	require.False(t, resp.Config.UseSameApp)
	require.Equal(t, "9876…apps.googleusercontent.com", resp.Config.CalendarClientIdMasked)
	resp, err = in.setup.UpdateGoogleConfig(adm, &oauthv1.UpdateGoogleConfigRequest{GmailClientSecret: ptr(secretA + "x")})
	require.NoError(t, err)
	cal, _ = b.secrets.Value("tenant-a", "google_calendar_client_secret")
	require.Equal(t, secretB, cal, "a Gmail change does not touch separate Calendar credentials")
	require.False(t, resp.Config.UseSameApp, "the flag round-trips as saved")
	_, err = in.setup.UpdateGoogleConfig(adm, &oauthv1.UpdateGoogleConfigRequest{CalendarClientId: ptr(clientB)})
	require.NoError(t, err, "calendar fields are accepted while the stored flag is off")

	// Back on: Calendar mirrors Gmail again.
	resp, err = in.setup.UpdateGoogleConfig(adm, &oauthv1.UpdateGoogleConfigRequest{UseSameApp: ptr(true)})
	require.NoError(t, err)
	require.True(t, resp.Config.UseSameApp)
	cal, _ = b.secrets.Value("tenant-a", "google_calendar_client_id")
	require.Equal(t, clientA, cal)
	_, err = in.setup.UpdateGoogleConfig(adm, &oauthv1.UpdateGoogleConfigRequest{CalendarClientId: ptr(clientB)})
	require.Equal(t, "calendar_client_id", fieldOf(err), "calendar fields are refused while the stored flag is on")

	// Tenants are isolated: tenant B sees nothing of A.
	other, err := in.setup.GetGoogleConfig(b.user(t, "tenant-b", "u1"), &oauthv1.GetGoogleConfigRequest{})
	require.NoError(t, err)
	require.Equal(t, oauthv1.GoogleConfigState_GOOGLE_CONFIG_STATE_MISSING, other.Config.State)

	// The audit keeps field names, never values.
	var fields []string
	require.NoError(t, b.pool.QueryRow(t.Context(), "SELECT fields FROM oauth.config_audit WHERE tenant='tenant-a' ORDER BY id LIMIT 1").Scan(&fields))
	require.Equal(t, []string{"gmail_client_id", "gmail_client_secret", "project_id"}, fields)
}

func TestSetupValidationPerField(t *testing.T) {
	t.Parallel()
	b := setup(t, 1, "")
	in := b.instances[0]
	adm := b.admin(t, "tenant-a")
	noType := strings.Replace(serviceAccountKey(t, projectA), `"service_account"`, `"authorized_user"`, 1)
	var m map[string]any
	require.NoError(t, json.Unmarshal([]byte(serviceAccountKey(t, projectA)), &m))
	delete(m, "private_key")
	noKey, _ := json.Marshal(m)
	delete(m, "client_email")
	m["private_key"] = "-----BEGIN PRIVATE KEY-----"
	noEmail, _ := json.Marshal(m)

	cases := []struct {
		name  string
		req   *oauthv1.UpdateGoogleConfigRequest
		field string
	}{
		{"client id shape", &oauthv1.UpdateGoogleConfigRequest{GmailClientId: ptr("my-client")}, "gmail_client_id"},
		{"client id suffix", &oauthv1.UpdateGoogleConfigRequest{GmailClientId: ptr("1234-abc.apps.example.com")}, "gmail_client_id"},
		{"empty secret", &oauthv1.UpdateGoogleConfigRequest{GmailClientSecret: ptr("  \u200b")}, "gmail_client_secret"},
		{"calendar id", &oauthv1.UpdateGoogleConfigRequest{UseSameApp: ptr(false), CalendarClientId: ptr("x")}, "calendar_client_id"},
		{"calendar empty secret", &oauthv1.UpdateGoogleConfigRequest{UseSameApp: ptr(false), CalendarClientSecret: ptr("")}, "calendar_client_secret"},
		{"project upper case", &oauthv1.UpdateGoogleConfigRequest{ProjectId: ptr("Acme-Project")}, "project_id"},
		{"project too short", &oauthv1.UpdateGoogleConfigRequest{ProjectId: ptr("acme")}, "project_id"},
		{"project ends with hyphen", &oauthv1.UpdateGoogleConfigRequest{ProjectId: ptr("acme-project-")}, "project_id"},
		{"project starts with digit", &oauthv1.UpdateGoogleConfigRequest{ProjectId: ptr("1acme-project")}, "project_id"},
		{"project missing with gmail", &oauthv1.UpdateGoogleConfigRequest{GmailClientId: ptr(clientA), GmailClientSecret: ptr(secretA)}, "project_id"},
		{"sa not json", &oauthv1.UpdateGoogleConfigRequest{ServiceAccountKeyJson: ptr("{not json")}, "service_account_key_json"},
		{"sa wrong type", &oauthv1.UpdateGoogleConfigRequest{ServiceAccountKeyJson: ptr(noType)}, "service_account_key_json"},
		{"sa no private key", &oauthv1.UpdateGoogleConfigRequest{ServiceAccountKeyJson: ptr(string(noKey))}, "service_account_key_json"},
		{"sa no client email", &oauthv1.UpdateGoogleConfigRequest{ServiceAccountKeyJson: ptr(string(noEmail))}, "service_account_key_json"},
		{"sa other project", &oauthv1.UpdateGoogleConfigRequest{ProjectId: ptr(projectA), ServiceAccountKeyJson: ptr(serviceAccountKey(t, "other-project-9"))}, "service_account_key_json"},
		{"calendar while same app", &oauthv1.UpdateGoogleConfigRequest{UseSameApp: ptr(true), CalendarClientId: ptr(clientB)}, "calendar_client_id"},
	}
	for _, c := range cases {
		_, err := in.setup.UpdateGoogleConfig(adm, c.req)
		require.Equal(t, codes.InvalidArgument, status.Code(err), c.name)
		require.Equal(t, c.field, fieldOf(err), c.name)
		require.NotContains(t, status.Convert(err).Message(), "PRIVATE KEY", c.name)
	}
	require.Empty(t, b.secrets.Names("tenant-a"), "nothing was written by a rejected save")

	// Stateful: a stored key from another project than a new project id.
	_, err := in.setup.UpdateGoogleConfig(adm, &oauthv1.UpdateGoogleConfigRequest{ProjectId: ptr(projectA), ServiceAccountKeyJson: ptr(serviceAccountKey(t, projectA))})
	require.NoError(t, err)
	_, err = in.setup.UpdateGoogleConfig(adm, &oauthv1.UpdateGoogleConfigRequest{ProjectId: ptr("another-project")})
	require.Equal(t, "project_id", fieldOf(err))
}

func TestSetupPermissionsAndNoSecretsInStatus(t *testing.T) {
	t.Parallel()
	b := setup(t, 1, "")
	in := b.instances[0]
	b.configure(t, "tenant-a")
	u := b.user(t, "tenant-a", "tech-1")

	_, err := in.setup.UpdateGoogleConfig(u, &oauthv1.UpdateGoogleConfigRequest{GmailClientSecret: ptr("x")})
	require.Equal(t, codes.PermissionDenied, status.Code(err))
	_, err = in.setup.TestGoogleConfig(u, &oauthv1.TestGoogleConfigRequest{})
	require.Equal(t, codes.PermissionDenied, status.Code(err))
	_, err = in.setup.ResetGoogleProviders(u, &oauthv1.ResetGoogleProvidersRequest{})
	require.Equal(t, codes.PermissionDenied, status.Code(err))
	_, err = in.flow.BeginAuthorization(u, &oauthv1.BeginAuthorizationRequest{Kind: oauthv1.ProviderKind_PROVIDER_KIND_GMAIL, ProviderId: p1})
	require.Equal(t, codes.PermissionDenied, status.Code(err), "flows are for services only")
	_, err = in.tokens.GetAccessToken(u, &oauthv1.GetAccessTokenRequest{Kind: oauthv1.ProviderKind_PROVIDER_KIND_GMAIL, ProviderId: p1})
	require.Equal(t, codes.PermissionDenied, status.Code(err), "tokens are for services only")

	got, err := in.setup.GetGoogleConfig(u, &oauthv1.GetGoogleConfigRequest{})
	require.NoError(t, err, "any internal user reads the status")
	raw, _ := protojson.Marshal(got)
	key := serviceAccountKey(t, projectA)
	var k map[string]string
	_ = json.Unmarshal([]byte(key), &k)
	for _, planted := range []string{secretA, clientA, "PRIVATE KEY", k["private_key_id"] + `"`, "GOCSPX"} {
		require.NotContains(t, string(raw), planted)
	}
}

func TestConfigurationCheck(t *testing.T) {
	t.Parallel()
	ps := pstest.NewServer()
	t.Cleanup(func() { _ = ps.Close() })
	b := setup(t, 1, ps.Addr)
	in := b.instances[0]
	b.configure(t, "tenant-a")
	adm := b.admin(t, "tenant-a")

	resp, err := in.setup.TestGoogleConfig(adm, &oauthv1.TestGoogleConfigRequest{})
	require.NoError(t, err)
	results := map[string]oauthv1.CheckResult{}
	for _, c := range resp.Checks {
		results[c.Id] = c.Result
		if c.Result == oauthv1.CheckResult_CHECK_RESULT_WARN || c.Result == oauthv1.CheckResult_CHECK_RESULT_FAIL {
			require.NotEmpty(t, c.Remedy, c.Id)
		}
	}
	require.Equal(t, map[string]oauthv1.CheckResult{
		"required_values": oauthv1.CheckResult_CHECK_RESULT_PASS,
		"redirect_uris":   oauthv1.CheckResult_CHECK_RESULT_PASS,
		"oauth_client":    oauthv1.CheckResult_CHECK_RESULT_PASS,
		"service_account": oauthv1.CheckResult_CHECK_RESULT_PASS,
		"pubsub":          oauthv1.CheckResult_CHECK_RESULT_PASS,
		"consent_screen":  oauthv1.CheckResult_CHECK_RESULT_WARN,
	}, results)
	require.Equal(t, oauthv1.CheckResult_CHECK_RESULT_WARN, resp.Overall)

	// The client deleted at Google: the probe fails with a remedy.
	b.google.RemoveClient(clientA)
	resp, err = in.setup.TestGoogleConfig(adm, &oauthv1.TestGoogleConfigRequest{})
	require.NoError(t, err)
	require.Equal(t, oauthv1.CheckResult_CHECK_RESULT_FAIL, resp.Overall)
	for _, c := range resp.Checks {
		if c.Id == "oauth_client" {
			require.Equal(t, oauthv1.CheckResult_CHECK_RESULT_FAIL, c.Result)
			require.Contains(t, c.Message, "invalid_client")
		}
	}
	raw, _ := protojson.Marshal(resp)
	require.NotContains(t, string(raw), secretA)
}

func TestMissingCredentialsFailFast(t *testing.T) {
	t.Parallel()
	b := setup(t, 1, "")
	_, err := b.instances[0].flow.BeginAuthorization(b.service(t, "gmail", "tenant-a", "u1"),
		&oauthv1.BeginAuthorizationRequest{Kind: oauthv1.ProviderKind_PROVIDER_KIND_GMAIL, ProviderId: p1, LoginHint: "m@acme.test"})
	require.Equal(t, codes.FailedPrecondition, status.Code(err))
	reason, meta := reasonOf(err)
	require.Equal(t, "GOOGLE_NOT_CONFIGURED", reason)
	require.Equal(t, "/settings/integrations/google", meta["setup_path"])
}

// A reset of a tenant with more connections than one secrets request may name (250 > MaxBatch) removes
// every one of their tokens: the deletes go in batches.
func TestResetDeletesEveryLeftoverTokenInBatches(t *testing.T) {
	t.Parallel()
	b := setup(t, 1, "")
	const tenant = "tenant-many"
	b.configure(t, tenant)
	ctx := t.Context()
	oauthSvc := auth.WithIdentity(ctx, auth.Identity{Service: auth.SvcOAuth, Tenant: tenant})
	now := time.Now()
	for i := range 250 {
		c, err := store.UpsertConnection(ctx, b.pool, store.Connection{
			ID: uuid.NewString(), Tenant: tenant, Kind: "gmail", ProviderID: uuid.NewString(), UserID: "admin-1",
			AccountEmail: fmt.Sprintf("box-%d@acme.test", i), ClientID: clientA, AccessTokenExpiresAt: &now,
		}, now)
		require.NoError(t, err)
		_, err = b.secrets.PutSecrets(oauthSvc, &secretsv1.PutSecretsRequest{Writes: []*secretsv1.SecretWrite{
			{Name: service.TokenSecretName(c.ID), Value: `{"refresh_token":"rt"}`}}})
		require.NoError(t, err)
	}
	tokens := func() int {
		n := 0
		for _, name := range b.secrets.Names(tenant) {
			if strings.HasPrefix(name, "google_oauth_token_") {
				n++
			}
		}
		return n
	}
	require.Equal(t, 250, tokens())

	puts := b.secrets.Puts.Load()
	resp, err := b.instances[0].setup.ResetGoogleProviders(b.admin(t, tenant), &oauthv1.ResetGoogleProvidersRequest{})
	require.NoError(t, err)
	require.EqualValues(t, 250, resp.GetConnectionsCleared())
	for _, w := range resp.GetWarnings() {
		require.NotContains(t, w, "stored tokens")
	}
	require.Zero(t, tokens(), "every leftover token is deleted")
	require.GreaterOrEqual(t, b.secrets.Puts.Load()-puts, int64(3), "in batches of at most 100 names")
}
