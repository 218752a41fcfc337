package cli_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/algapsa/alga-google/services/suite/cli"
	"github.com/algapsa/alga-google/services/suite/harness"
)

// `alga-google maintenance run|status` reach a running worker as a service identity acting for the
// tenant: a run of a tenant without providers is recorded and then shown by status.
func TestMaintenanceRunThenStatus(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	t.Setenv("ALGA_AUTH_HS256_KEY", s.Config.AuthHS256Key)
	t.Setenv("ALGA_SERVICE_TOKEN_KEY", s.Config.ServiceTokenKey)
	args := []string{"--tenant", "tenant-cli", "--worker-addr", s.App.GRPCAddr()}

	var out, errOut bytes.Buffer
	require.NoError(t, cli.Main(context.Background(), append([]string{"maintenance", "run"}, args...), &out, &errOut), errOut.String())
	require.Contains(t, out.String(), `"run_id"`)
	require.Contains(t, out.String(), `"TRIGGER_MANUAL"`)

	out.Reset()
	require.NoError(t, cli.Main(context.Background(), append([]string{"maintenance", "status"}, args...), &out, &errOut), errOut.String())
	require.Contains(t, out.String(), `"runs"`)
	require.Contains(t, out.String(), `"TRIGGER_MANUAL"`)

	err := cli.Main(context.Background(), []string{"maintenance", "run", "--worker-addr", s.App.GRPCAddr()}, &out, &errOut)
	require.ErrorContains(t, err, "--tenant is required")
	t.Setenv("ALGA_SERVICE_TOKEN_KEY", "another-key-that-the-suite-does-not-know-0123")
	err = cli.Main(context.Background(), append([]string{"maintenance", "status"}, args...), &out, &errOut)
	require.ErrorContains(t, err, "Unauthenticated")
}
