package service_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	secretsv1 "github.com/algapsa/alga-google/gen/alga/secrets/v1"
	"github.com/algapsa/alga-google/services/secrets"
)

func TestFilesystemBackendLayout(t *testing.T) {
	t.Parallel()
	b := setup(t)
	base := t.TempDir()
	client := b.serve(t, secrets.Config{Backend: "filesystem", FSBase: base})

	// A secret the platform wrote (plaintext file, trailing newline trimmed on read as the platform does).
	dir := filepath.Join(base, "tenants", "t1")
	require.NoError(t, os.MkdirAll(dir, 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "acme_client_id"), []byte("123-abc.apps.googleusercontent.com\n"), 0o600))
	require.Equal(t, map[string]string{"acme_client_id": "123-abc.apps.googleusercontent.com"}, b.get(t, client, "t1", "acme_client_id"))

	// A secret written through the service lands where the platform reads it, atomically and private.
	_, err := client.PutSecrets(b.admin(t, "t1"), &secretsv1.PutSecretsRequest{Writes: []*secretsv1.SecretWrite{{Name: "acme_client_secret", Value: "fs-secret-value-wxyz"}}})
	require.NoError(t, err)
	raw, err := os.ReadFile(filepath.Join(dir, "acme_client_secret"))
	require.NoError(t, err)
	require.Equal(t, "fs-secret-value-wxyz", string(raw))
	info, err := os.Stat(filepath.Join(dir, "acme_client_secret"))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), info.Mode().Perm())
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 2, "no temporary files left behind")

	d, err := client.DescribeSecrets(b.reader(t, "t1"), &secretsv1.DescribeSecretsRequest{})
	require.NoError(t, err)
	require.Len(t, d.GetSecrets(), 2)
	require.Equal(t, "••••wxyz", d.GetSecrets()[1].GetHint())

	// Other tenants see nothing; deletes remove the file; the audit trail is in Postgres.
	require.Empty(t, b.get(t, client, "t2", "acme_client_secret"))
	del, err := client.DeleteSecrets(b.admin(t, "t1"), &secretsv1.DeleteSecretsRequest{Names: []string{"acme_client_secret"}})
	require.NoError(t, err)
	require.Equal(t, []string{"acme_client_secret"}, del.GetDeletedNames())
	require.NoFileExists(t, filepath.Join(dir, "acme_client_secret"))
	audit, err := client.ListSecretAudit(b.admin(t, "t1"), &secretsv1.ListSecretAuditRequest{})
	require.NoError(t, err)
	require.Len(t, audit.GetEvents(), 3) // get, put, delete (the t2 read found nothing)
}

func TestFilesystemRefusesTraversal(t *testing.T) {
	t.Parallel()
	b := setup(t)
	base := t.TempDir()
	outside := filepath.Join(filepath.Dir(base), "outside-"+filepath.Base(base))
	require.NoError(t, os.WriteFile(outside, []byte("not yours"), 0o600))
	t.Cleanup(func() { _ = os.Remove(outside) })
	client := b.serve(t, secrets.Config{Backend: "filesystem", FSBase: base})

	// Path-like names never reach the backend.
	for _, name := range []string{"../x", "..", "a/b", "../../outside", "./a", "a\\b"} {
		_, err := client.GetSecrets(b.service(t, "t1"), &secretsv1.GetSecretsRequest{Names: []string{name}})
		require.Equal(t, "names[0]", badField(t, err), name)
		_, err = client.PutSecrets(b.admin(t, "t1"), &secretsv1.PutSecretsRequest{Writes: []*secretsv1.SecretWrite{{Name: name, Value: "x"}}})
		require.Equal(t, "writes[0].name", badField(t, err), name)
	}
	// Path-like tenants in a (validly signed) token are refused too.
	for _, tenant := range []string{"..", "../t1", "a/b"} {
		_, err := client.DescribeSecrets(b.admin(t, tenant), &secretsv1.DescribeSecretsRequest{})
		requireCode(t, err, codes.PermissionDenied)
	}
	// A symbolic link planted in a tenant directory is not followed.
	dir := filepath.Join(base, "tenants", "t1")
	require.NoError(t, os.MkdirAll(dir, 0o700))
	require.NoError(t, os.Symlink(outside, filepath.Join(dir, "linked")))
	_, err := client.GetSecrets(b.service(t, "t1"), &secretsv1.GetSecretsRequest{Names: []string{"linked"}})
	requireCode(t, err, codes.FailedPrecondition)
	d, err := client.DescribeSecrets(b.admin(t, "t1"), &secretsv1.DescribeSecretsRequest{})
	require.NoError(t, err)
	require.Empty(t, d.GetSecrets())
	require.NotContains(t, b.logs.String(), "not yours")
}

func TestReadChainFallsThrough(t *testing.T) {
	t.Parallel()
	b := setup(t)
	base := t.TempDir()
	dir := filepath.Join(base, "tenants", "t1")
	require.NoError(t, os.MkdirAll(dir, 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "acme_client_secret"), []byte("legacy-fs-secret-abcd"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "acme_project_id"), []byte("legacy-project"), 0o600))
	client := b.serve(t, secrets.Config{Backend: "postgres,filesystem", FSBase: base, KEKBase64: b64(b.kek), KEKID: "kek-1"})

	// Only in the filesystem: read from there.
	require.Equal(t, map[string]string{"acme_client_secret": "legacy-fs-secret-abcd", "acme_project_id": "legacy-project"},
		b.get(t, client, "t1", "acme_client_secret", "acme_project_id", "acme_client_id"))

	// A write goes to Postgres (the first backend) and wins over the filesystem from then on.
	_, err := client.PutSecrets(b.admin(t, "t1"), &secretsv1.PutSecretsRequest{Writes: []*secretsv1.SecretWrite{{Name: "acme_client_secret", Value: "new-pg-secret-wxyz"}}})
	require.NoError(t, err)
	raw, err := os.ReadFile(filepath.Join(dir, "acme_client_secret"))
	require.NoError(t, err)
	require.Equal(t, "legacy-fs-secret-abcd", string(raw), "writes do not go to the filesystem")
	require.Equal(t, "new-pg-secret-wxyz", b.get(t, client, "t1", "acme_client_secret")["acme_client_secret"])
	require.Equal(t, "new-pg-secret-wxyz", b.get(t, b.client, "t1", "acme_client_secret")["acme_client_secret"], "it is in Postgres")

	d, err := client.DescribeSecrets(b.reader(t, "t1"), &secretsv1.DescribeSecretsRequest{})
	require.NoError(t, err)
	require.Len(t, d.GetSecrets(), 2)
	require.Equal(t, "acme_client_secret", d.GetSecrets()[0].GetName())
	require.EqualValues(t, 1, d.GetSecrets()[0].GetVersion())
	require.Equal(t, "••••wxyz", d.GetSecrets()[0].GetHint(), "the first backend wins")
	d, err = client.DescribeSecrets(b.reader(t, "t1"), &secretsv1.DescribeSecretsRequest{Names: []string{"acme_project_id", "acme_client_id"}})
	require.NoError(t, err)
	require.True(t, d.GetSecrets()[0].GetPresent())
	require.False(t, d.GetSecrets()[1].GetPresent())

	// A delete removes the name everywhere, so the legacy copy does not shine through.
	del, err := client.DeleteSecrets(b.admin(t, "t1"), &secretsv1.DeleteSecretsRequest{Names: []string{"acme_client_secret"}})
	require.NoError(t, err)
	require.Equal(t, []string{"acme_client_secret"}, del.GetDeletedNames())
	require.Empty(t, b.get(t, client, "t1", "acme_client_secret"))
	require.NoFileExists(t, filepath.Join(dir, "acme_client_secret"))
}
