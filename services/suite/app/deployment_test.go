package app_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/algapsa/alga-google/services/suite/app"
)

// The call graph is read from the access tables; the README's "Service identities" table says the same.
func TestPeersFollowTheAccessTables(t *testing.T) {
	t.Parallel()
	callers := app.Callers()
	require.Equal(t, []string{"gmail", "oauth", "users"}, callers["secrets"])
	require.NotContains(t, callers, "gateway", "the gateway serves no gRPC")

	require.Empty(t, app.Peers("secrets"))
	require.Equal(t, []string{"calendar", "gmail", "oauth", "secrets", "worker"}, app.Peers("gateway"))
	require.Equal(t, []string{"calendar", "gmail", "secrets", "worker"}, app.Peers("oauth"))
	require.Equal(t, []string{"oauth", "secrets"}, app.Peers("gmail"))
	require.Equal(t, []string{"oauth"}, app.Peers("calendar"))
	require.Equal(t, []string{"calendar", "gmail", "oauth"}, app.Peers("worker"))
}

func TestRequiredSettings(t *testing.T) {
	t.Parallel()
	require.Equal(t, [][]string{
		{"ALGA_BASE_URL"}, {"ALGA_SERVICE_TOKEN_KEY"}, {"ALGA_AUTH_HS256_KEY", "ALGA_AUTH_JWKS"},
		{"DATABASE_URL"}, {"ALGA_SECRETS_KEK", "ALGA_SECRETS_KEK_FILE"},
	}, app.RequiredSettings([]string{"secrets"}, app.RunnerRiver))
	require.Equal(t, [][]string{
		{"ALGA_BASE_URL"}, {"ALGA_SERVICE_TOKEN_KEY"}, {"ALGA_AUTH_HS256_KEY", "ALGA_AUTH_JWKS"},
		{"DATABASE_URL"}, {"ALGA_OAUTH_ADDR"}, {"ALGA_GMAIL_ADDR"}, {"ALGA_CALENDAR_ADDR"},
		{"ALGA_JOB_RUNNER"}, {"TEMPORAL_ADDRESS"}, {"TEMPORAL_NAMESPACE"},
	}, app.RequiredSettings([]string{"worker"}, app.RunnerTemporal))
	// One process with every target dials no peer.
	require.Len(t, app.RequiredSettings(app.AllTargets, app.RunnerRiver), 5)
}
