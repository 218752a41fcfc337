package service_test

import (
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	secretsv1 "github.com/algapsa/alga-google/gen/alga/secrets/v1"
	"github.com/algapsa/alga-google/services/platform/auth"
	"github.com/algapsa/alga-google/services/platform/errs"
	"github.com/algapsa/alga-google/services/platform/grpcserver"
)

// Raw values reach only the identities that need them: oauth reads everything, gmail only what it
// provisions Pub/Sub with, and the internet-facing gateway (or any other identity) nothing.
func TestGetSecretsLeastPrivilege(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, err := b.client.PutSecrets(b.service(t, "t1"), &secretsv1.PutSecretsRequest{Writes: []*secretsv1.SecretWrite{
		{Name: "google_client_secret", Value: "GOCSPX-abcdefgh-wxyz"}, {Name: "google_project_id", Value: "acme-1"},
		{Name: "google_service_account_key", Value: `{"type":"service_account"}`}}})
	require.NoError(t, err)
	get := func(identity string, names ...string) (*secretsv1.GetSecretsResponse, error) {
		return b.client.GetSecrets(b.serviceAs(t, identity, "t1"), &secretsv1.GetSecretsRequest{Names: names})
	}

	for _, identity := range []string{auth.SvcGateway, auth.SvcCalendar, auth.SvcMaintenance, auth.SvcPlatform, auth.SvcCLI, "alga-google"} {
		_, err := get(identity, "google_project_id")
		st := requireCode(t, err, codes.PermissionDenied)
		require.Equal(t, grpcserver.ReasonCallerNotAllowed, errs.ReasonOf(st.Err()), identity)
	}

	res, err := get(auth.SvcGmail, "google_service_account_key", "google_project_id")
	require.NoError(t, err)
	require.Len(t, res.GetSecrets(), 2)
	_, err = get(auth.SvcGmail, "google_project_id", "google_client_secret")
	st := requireCode(t, err, codes.PermissionDenied)
	require.Contains(t, st.Message(), "google_client_secret")

	require.Equal(t, map[string]string{"google_client_secret": "GOCSPX-abcdefgh-wxyz"}, b.get(t, b.client, "t1", "google_client_secret"))
}
