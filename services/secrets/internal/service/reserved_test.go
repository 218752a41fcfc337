package service_test

import (
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	secretsv1 "github.com/algapsa/alga-google/gen/alga/secrets/v1"
	"github.com/algapsa/alga-google/services/platform/auth"
	"github.com/algapsa/alga-google/services/platform/errs"
)

// The names the services own — the Google setup keys and the OAuth tokens — are written and deleted only
// by their owner (oauth): the generic API refuses them to admins (as the gateway's batchPut does) and to
// other service identities, naming the reason; other names stay the admin's.
func TestReservedNamesAreWrittenOnlyByTheirOwner(t *testing.T) {
	t.Parallel()
	b := setup(t)
	reserved := []string{"google_client_id", "google_client_secret", "google_calendar_client_id", "google_calendar_client_secret",
		"google_project_id", "google_service_account_key", "google_oauth_token_0f8fad5b-d9cb-469f-a165-70867728950e"}

	for _, name := range reserved {
		for who, call := range map[string]func() error{
			"admin put": func() error {
				_, err := b.client.PutSecrets(b.admin(t, "t1"), &secretsv1.PutSecretsRequest{Writes: []*secretsv1.SecretWrite{{Name: name, Value: "planted"}}})
				return err
			},
			"admin delete via put": func() error {
				_, err := b.client.PutSecrets(b.admin(t, "t1"), &secretsv1.PutSecretsRequest{DeleteNames: []string{name}})
				return err
			},
			"admin delete": func() error {
				_, err := b.client.DeleteSecrets(b.admin(t, "t1"), &secretsv1.DeleteSecretsRequest{Names: []string{name}})
				return err
			},
		} {
			st := requireCode(t, call(), codes.PermissionDenied)
			require.Equal(t, "RESERVED_SECRET_NAME", errs.ReasonOf(st.Err()), "%s %s", who, name)
			require.Contains(t, st.Message(), name)
			require.Contains(t, st.Message(), "reserved to the oauth service")
		}
	}
	// One reserved name spoils the whole (atomic) batch: nothing is written.
	_, err := b.client.PutSecrets(b.admin(t, "t1"), &secretsv1.PutSecretsRequest{Writes: []*secretsv1.SecretWrite{
		{Name: "acme_api_key", Value: "v1"}, {Name: "google_service_account_key", Value: "planted"}}})
	requireCode(t, err, codes.PermissionDenied)
	d, err := b.client.DescribeSecrets(b.admin(t, "t1"), &secretsv1.DescribeSecretsRequest{})
	require.NoError(t, err)
	require.Empty(t, d.GetSecrets())

	// The owner writes and deletes them; another service identity does not.
	writes := make([]*secretsv1.SecretWrite, len(reserved))
	for i, n := range reserved {
		writes[i] = &secretsv1.SecretWrite{Name: n, Value: "value-of-" + n}
	}
	_, err = b.client.PutSecrets(b.service(t, "t1"), &secretsv1.PutSecretsRequest{Writes: writes})
	require.NoError(t, err)
	_, err = b.client.PutSecrets(b.serviceAs(t, auth.SvcGmail, "t1"), &secretsv1.PutSecretsRequest{Writes: writes[:1]})
	requireCode(t, err, codes.PermissionDenied)
	_, err = b.client.PutSecrets(b.service(t, "t1"), &secretsv1.PutSecretsRequest{DeleteNames: reserved[:2]})
	require.NoError(t, err)

	// Other names remain the admin's to manage.
	b.put(t, "t1", "acme_api_key", "v1")
	_, err = b.client.DeleteSecrets(b.admin(t, "t1"), &secretsv1.DeleteSecretsRequest{Names: []string{"acme_api_key"}})
	require.NoError(t, err)
}
