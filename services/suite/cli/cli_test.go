package cli_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/algapsa/alga-google/services/platform/auth"
	"github.com/algapsa/alga-google/services/suite/cli"
)

const (
	key    = "cli-test-key-0123456789abcdef-0123456"
	svcKey = "cli-test-service-key-0123456789abcdef"
)

// A service token is signed with the service key, never the user key: without ALGA_SERVICE_TOKEN_KEY
// (outside --dev) there is none to mint, and the one minted verifies as a service identity.
func TestTokenServiceNeedsTheServiceKey(t *testing.T) {
	t.Setenv("ALGA_AUTH_HS256_KEY", key)
	var out, errOut bytes.Buffer
	err := cli.Main(context.Background(), []string{"token", "--service", "gmail", "--tenant", "t1"}, &out, &errOut)
	require.ErrorContains(t, err, "ALGA_SERVICE_TOKEN_KEY")

	t.Setenv("ALGA_SERVICE_TOKEN_KEY", svcKey)
	out.Reset()
	require.NoError(t, cli.Main(context.Background(), []string{"token", "--service", "gmail", "--tenant", "t1"}, &out, &errOut))
	v, err := auth.NewVerifier(auth.VerifierConfig{HS256Key: []byte(key), ServiceKey: []byte(svcKey), Audience: "alga-google", ServiceIssuer: "alga-google"})
	require.NoError(t, err)
	id, err := v.Verify(context.Background(), strings.TrimSpace(out.String()))
	require.NoError(t, err)
	require.Equal(t, "gmail", id.Service)
}

func TestTokenMintsVerifiableUserToken(t *testing.T) {
	t.Setenv("ALGA_AUTH_HS256_KEY", key)
	var out, errOut bytes.Buffer
	err := cli.Main(context.Background(), []string{"token", "--tenant", "t1", "--user", "u1",
		"--permissions", "system_settings:update,ticket_settings:update"}, &out, &errOut)
	require.NoError(t, err, errOut.String())
	v, err := auth.NewVerifier(auth.VerifierConfig{HS256Key: []byte(key), ServiceKey: []byte(svcKey), Issuer: "alga-psa", Audience: "alga-google"})
	require.NoError(t, err)
	id, err := v.Verify(context.Background(), strings.TrimSpace(out.String()))
	require.NoError(t, err)
	require.Equal(t, "t1", id.Tenant)
	require.Equal(t, "u1", id.Subject)
	require.Equal(t, []string{"system_settings:update", "ticket_settings:update"}, id.Permissions)
}

func TestTokenClientUserTypeIsRefusedByVerifier(t *testing.T) {
	t.Setenv("ALGA_AUTH_HS256_KEY", key)
	var out bytes.Buffer
	require.NoError(t, cli.Main(context.Background(), []string{"token", "--user-type", "client"}, &out, &out))
	v, _ := auth.NewVerifier(auth.VerifierConfig{HS256Key: []byte(key), ServiceKey: []byte(svcKey)})
	_, err := v.Verify(context.Background(), strings.TrimSpace(out.String()))
	require.ErrorIs(t, err, auth.ErrForbiddenUserType)
}

func TestHelpDocumentsEverySetting(t *testing.T) {
	var out, errOut bytes.Buffer
	require.NoError(t, cli.Main(context.Background(), []string{"serve", "--help"}, &out, &errOut))
	help := errOut.String()
	for _, env := range []string{"DATABASE_URL", "ALGA_BASE_URL", "ALGA_HTTP_ADDR", "ALGA_GRPC_ADDR", "ALGA_AUTH_HS256_KEY",
		"ALGA_AUTH_JWKS", "ALGA_SECRETS_KEK", "ALGA_SECRETS_KEK_FILE", "ALGA_SECRETS_BACKEND", "ALGA_GOOGLE_API_ROOT",
		"PUBSUB_EMULATOR_HOST", "ALGA_JOB_RUNNER", "TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "ALGA_SECRETS_ADDR", "-target",
		"TEMPORAL_TLS_CERT", "TEMPORAL_TLS_KEY", "TEMPORAL_TLS_CA", "TEMPORAL_API_KEY_FILE", "TEMPORAL_API_KEY"} {
		require.Contains(t, help, env)
	}
	out.Reset()
	require.NoError(t, cli.Main(context.Background(), nil, &out, &errOut))
	require.Contains(t, out.String(), "serve")
	require.Contains(t, out.String(), "probe") // the Kubernetes exec probe is a command like the others
	errOut.Reset()
	require.NoError(t, cli.Main(context.Background(), []string{"probe", "--help"}, &out, &errOut))
	require.Contains(t, errOut.String(), "-timeout")
	require.Contains(t, errOut.String(), "ALGA_GRPC_TLS_CA")
	require.Error(t, cli.Main(context.Background(), []string{"bogus"}, &out, &errOut))
}

func TestServeRejectsUnknownTargetAndHTTPBaseURL(t *testing.T) {
	t.Setenv("ALGA_AUTH_HS256_KEY", key)
	var out bytes.Buffer
	err := cli.Main(context.Background(), []string{"serve", "--target=gateway,nope"}, &out, &out)
	require.ErrorContains(t, err, `unknown target "nope"`)
	err = cli.Main(context.Background(), []string{"serve", "--target=gateway", "--base-url=http://helpdesk.example.com"}, &out, &out)
	require.ErrorContains(t, err, "https")
}
