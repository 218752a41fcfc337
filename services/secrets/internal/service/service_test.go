package service_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	secretsv1 "github.com/algapsa/alga-google/gen/alga/secrets/v1"
	"github.com/algapsa/alga-google/services/platform/auth"
)

func TestPutDescribeGetDelete(t *testing.T) {
	t.Parallel()
	b := setup(t)

	resp := b.put(t, "t1", "acme_client_id", "123-abc.apps.googleusercontent.com", "acme_client_secret", "GOCSPX-abcdefgh-wxyz")
	require.Len(t, resp.GetSecrets(), 2)
	require.Equal(t, "acme_client_id", resp.GetSecrets()[0].GetName())
	require.EqualValues(t, 1, resp.GetSecrets()[0].GetVersion())
	require.Empty(t, resp.GetSecrets()[0].GetHint(), "only *_secret names get a hint")
	require.Equal(t, "••••wxyz", resp.GetSecrets()[1].GetHint())

	// Describe everything: sorted by name, never a value.
	all, err := b.client.DescribeSecrets(b.reader(t, "t1"), &secretsv1.DescribeSecretsRequest{})
	require.NoError(t, err)
	require.Len(t, all.GetSecrets(), 2)
	require.Equal(t, "acme_client_id", all.GetSecrets()[0].GetName())
	require.Equal(t, "acme_client_secret", all.GetSecrets()[1].GetName())
	require.Equal(t, "••••wxyz", all.GetSecrets()[1].GetHint())
	require.NotNil(t, all.GetSecrets()[1].GetUpdateTime())

	// Describe by name: absent names come back with present=false, in request order.
	some, err := b.client.DescribeSecrets(b.reader(t, "t1"), &secretsv1.DescribeSecretsRequest{Names: []string{"acme_project_id", "acme_client_secret"}})
	require.NoError(t, err)
	require.Len(t, some.GetSecrets(), 2)
	require.Equal(t, "acme_project_id", some.GetSecrets()[0].GetName())
	require.False(t, some.GetSecrets()[0].GetPresent())
	require.True(t, some.GetSecrets()[1].GetPresent())

	// Short secrets get a hint that gives nothing away.
	b.put(t, "t1", "acme_calendar_client_secret", "short")
	d, err := b.client.DescribeSecrets(b.reader(t, "t1"), &secretsv1.DescribeSecretsRequest{Names: []string{"acme_calendar_client_secret"}})
	require.NoError(t, err)
	require.Equal(t, "••••", d.GetSecrets()[0].GetHint())

	// Get (service): only what exists.
	vals := b.get(t, b.client, "t1", "acme_client_secret", "acme_project_id")
	require.Equal(t, map[string]string{"acme_client_secret": "GOCSPX-abcdefgh-wxyz"}, vals)

	// Overwrite bumps the version.
	resp = b.put(t, "t1", "acme_client_secret", "GOCSPX-second-value-qrst")
	require.EqualValues(t, 2, resp.GetSecrets()[0].GetVersion())

	// Delete; absent names are not an error. A re-created secret continues the version sequence.
	del, err := b.client.DeleteSecrets(b.admin(t, "t1"), &secretsv1.DeleteSecretsRequest{Names: []string{"acme_client_secret", "acme_project_id"}})
	require.NoError(t, err)
	require.Equal(t, []string{"acme_client_secret"}, del.GetDeletedNames())
	require.Empty(t, b.get(t, b.client, "t1", "acme_client_secret"))
	resp = b.put(t, "t1", "acme_client_secret", "GOCSPX-third-value-mnop")
	require.EqualValues(t, 3, resp.GetSecrets()[0].GetVersion())

	// Writes and deletes in one batch.
	_, err = b.client.PutSecrets(b.admin(t, "t1"), &secretsv1.PutSecretsRequest{
		Writes:      []*secretsv1.SecretWrite{{Name: "acme_project_id", Value: "my-project"}},
		DeleteNames: []string{"acme_client_id"},
	})
	require.NoError(t, err)
	require.Equal(t, map[string]string{"acme_project_id": "my-project"}, b.get(t, b.client, "t1", "acme_project_id", "acme_client_id"))
}

func TestPutIsAtomicAndConditional(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := b.admin(t, "t1")

	// expected_version 0 = must not exist yet.
	_, err := b.client.PutSecrets(ctx, &secretsv1.PutSecretsRequest{Writes: []*secretsv1.SecretWrite{{Name: "a", Value: "1", ExpectedVersion: proto.Int64(0)}}})
	require.NoError(t, err)
	_, err = b.client.PutSecrets(ctx, &secretsv1.PutSecretsRequest{Writes: []*secretsv1.SecretWrite{{Name: "a", Value: "2", ExpectedVersion: proto.Int64(0)}}})
	requireCode(t, err, codes.Aborted)
	_, err = b.client.PutSecrets(ctx, &secretsv1.PutSecretsRequest{Writes: []*secretsv1.SecretWrite{{Name: "a", Value: "2", ExpectedVersion: proto.Int64(1)}}})
	require.NoError(t, err)

	// One failing condition rolls back the whole batch, including deletes.
	_, err = b.client.PutSecrets(ctx, &secretsv1.PutSecretsRequest{
		Writes: []*secretsv1.SecretWrite{
			{Name: "b", Value: "new"},
			{Name: "a", Value: "3", ExpectedVersion: proto.Int64(1)},
		},
		DeleteNames: []string{"a-other"},
	})
	requireCode(t, err, codes.Aborted)
	require.Equal(t, map[string]string{"a": "2"}, b.get(t, b.client, "t1", "a", "b"))

	events, err := b.client.ListSecretAudit(ctx, &secretsv1.ListSecretAuditRequest{})
	require.NoError(t, err)
	for _, e := range events.GetEvents() {
		require.NotEqual(t, "b", e.GetName(), "a rolled-back write leaves no audit row")
	}
}

func TestTenantIsolationAndPermissions(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.put(t, "tenant-a", "acme_client_secret", "tenant-a-secret-value-1234")

	// Tenant B's tokens never see or touch tenant A's secrets.
	d, err := b.client.DescribeSecrets(b.admin(t, "tenant-b"), &secretsv1.DescribeSecretsRequest{})
	require.NoError(t, err)
	require.Empty(t, d.GetSecrets())
	d, err = b.client.DescribeSecrets(b.admin(t, "tenant-b"), &secretsv1.DescribeSecretsRequest{Names: []string{"acme_client_secret"}})
	require.NoError(t, err)
	require.False(t, d.GetSecrets()[0].GetPresent())
	require.Empty(t, b.get(t, b.client, "tenant-b", "acme_client_secret"))
	del, err := b.client.DeleteSecrets(b.admin(t, "tenant-b"), &secretsv1.DeleteSecretsRequest{Names: []string{"acme_client_secret"}})
	require.NoError(t, err)
	require.Empty(t, del.GetDeletedNames())
	b.put(t, "tenant-b", "acme_client_secret", "tenant-b-secret-value-5678")
	require.Equal(t, "tenant-a-secret-value-1234", b.get(t, b.client, "tenant-a", "acme_client_secret")["acme_client_secret"])
	require.Equal(t, "tenant-b-secret-value-5678", b.get(t, b.client, "tenant-b", "acme_client_secret")["acme_client_secret"])
	audit, err := b.client.ListSecretAudit(b.admin(t, "tenant-b"), &secretsv1.ListSecretAuditRequest{})
	require.NoError(t, err)
	for _, e := range audit.GetEvents() {
		require.NotEqual(t, "admin-tenant-a", e.GetActor())
	}

	// Users never read raw values, whatever their permissions.
	_, err = b.client.GetSecrets(b.admin(t, "tenant-a"), &secretsv1.GetSecretsRequest{Names: []string{"acme_client_secret"}})
	requireCode(t, err, codes.PermissionDenied)

	// A user with system_settings:read (not :update) may describe, not write, delete or read the audit.
	_, err = b.client.DescribeSecrets(b.reader(t, "tenant-a"), &secretsv1.DescribeSecretsRequest{})
	require.NoError(t, err)
	_, err = b.client.PutSecrets(b.reader(t, "tenant-a"), &secretsv1.PutSecretsRequest{Writes: []*secretsv1.SecretWrite{{Name: "x", Value: "y"}}})
	requireCode(t, err, codes.PermissionDenied)
	_, err = b.client.DeleteSecrets(b.reader(t, "tenant-a"), &secretsv1.DeleteSecretsRequest{Names: []string{"acme_client_secret"}})
	requireCode(t, err, codes.PermissionDenied)
	_, err = b.client.ListSecretAudit(b.reader(t, "tenant-a"), &secretsv1.ListSecretAuditRequest{})
	requireCode(t, err, codes.PermissionDenied)
	// An internal user without permissions does not even learn which secrets exist.
	st := requireCode(t, func() error {
		_, err := b.client.DescribeSecrets(b.user(t, "tenant-a"), &secretsv1.DescribeSecretsRequest{})
		return err
	}(), codes.PermissionDenied)
	require.Contains(t, st.Message(), auth.PermSystemSettingsRead)

	// Client users are refused everywhere.
	tok, err := b.users.MintUser(auth.UserToken{Subject: "c1", Tenant: "tenant-a", UserType: auth.UserTypeClient, Permissions: []string{auth.PermSystemSettingsUpdate}})
	require.NoError(t, err)
	_, err = b.client.DescribeSecrets(withToken(tok), &secretsv1.DescribeSecretsRequest{})
	requireCode(t, err, codes.PermissionDenied)

	// A service token without a tenant cannot make tenant-scoped calls.
	tok, err = b.svcs.MintService(auth.SvcOAuth, "", "", nil)
	require.NoError(t, err)
	_, err = b.client.GetSecrets(withToken(tok), &secretsv1.GetSecretsRequest{Names: []string{"acme_client_secret"}})
	requireCode(t, err, codes.FailedPrecondition)
	_, err = b.client.DescribeSecrets(withToken(tok), &secretsv1.DescribeSecretsRequest{})
	requireCode(t, err, codes.FailedPrecondition)

	// Services may write for the tenant they act for.
	_, err = b.client.PutSecrets(b.service(t, "tenant-a"), &secretsv1.PutSecretsRequest{Writes: []*secretsv1.SecretWrite{{Name: "google_refresh_token", Value: "rt"}}})
	require.NoError(t, err)

	// No token at all.
	_, err = b.client.DescribeSecrets(t.Context(), &secretsv1.DescribeSecretsRequest{})
	requireCode(t, err, codes.Unauthenticated)
}

func TestBadInputIsInvalidArgument(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := b.admin(t, "t1")
	big := strings.Repeat("x", secretsv1.MaxValueBytes+1)
	many := make([]*secretsv1.SecretWrite, secretsv1.MaxBatch+1)
	for i := range many {
		many[i] = &secretsv1.SecretWrite{Name: fmt.Sprintf("n%d", i), Value: "v"}
	}
	cases := []struct {
		name  string
		req   *secretsv1.PutSecretsRequest
		field string
	}{
		{"empty request", &secretsv1.PutSecretsRequest{}, "writes"},
		{"empty name", &secretsv1.PutSecretsRequest{Writes: []*secretsv1.SecretWrite{{Name: "ok"}, {Name: ""}}}, "writes[1].name"},
		{"uppercase", &secretsv1.PutSecretsRequest{Writes: []*secretsv1.SecretWrite{{Name: "Google"}}}, "writes[0].name"},
		{"traversal", &secretsv1.PutSecretsRequest{Writes: []*secretsv1.SecretWrite{{Name: "a"}, {Name: "b"}, {Name: "../x"}}}, "writes[2].name"},
		{"slash", &secretsv1.PutSecretsRequest{Writes: []*secretsv1.SecretWrite{{Name: "a/b"}}}, "writes[0].name"},
		{"leading dash", &secretsv1.PutSecretsRequest{Writes: []*secretsv1.SecretWrite{{Name: "-a"}}}, "writes[0].name"},
		{"too long", &secretsv1.PutSecretsRequest{Writes: []*secretsv1.SecretWrite{{Name: strings.Repeat("a", 129)}}}, "writes[0].name"},
		{"oversized value", &secretsv1.PutSecretsRequest{Writes: []*secretsv1.SecretWrite{{Name: "a", Value: big}}}, "writes[0].value"},
		{"duplicate", &secretsv1.PutSecretsRequest{Writes: []*secretsv1.SecretWrite{{Name: "a"}, {Name: "a"}}}, "writes[1].name"},
		{"write and delete", &secretsv1.PutSecretsRequest{Writes: []*secretsv1.SecretWrite{{Name: "a"}}, DeleteNames: []string{"a"}}, "delete_names[0]"},
		{"bad delete name", &secretsv1.PutSecretsRequest{DeleteNames: []string{"ok", ".."}}, "delete_names[1]"},
		{"batch too large", &secretsv1.PutSecretsRequest{Writes: many}, "writes"},
		{"negative version", &secretsv1.PutSecretsRequest{Writes: []*secretsv1.SecretWrite{{Name: "a", ExpectedVersion: proto.Int64(-1)}}}, "writes[0].expected_version"},
	}
	for _, c := range cases {
		_, err := b.client.PutSecrets(ctx, c.req)
		require.Equal(t, c.field, badField(t, err), c.name)
	}

	_, err := b.client.DescribeSecrets(ctx, &secretsv1.DescribeSecretsRequest{Names: []string{"a", "a"}})
	require.Equal(t, "names[1]", badField(t, err))
	_, err = b.client.GetSecrets(b.service(t, "t1"), &secretsv1.GetSecretsRequest{})
	require.Equal(t, "names", badField(t, err))
	_, err = b.client.GetSecrets(b.service(t, "t1"), &secretsv1.GetSecretsRequest{Names: []string{"../../etc/passwd"}})
	require.Equal(t, "names[0]", badField(t, err))
	_, err = b.client.DeleteSecrets(ctx, &secretsv1.DeleteSecretsRequest{Names: []string{"a\x00"}})
	require.Equal(t, "names[0]", badField(t, err))
	_, err = b.client.ListSecretAudit(ctx, &secretsv1.ListSecretAuditRequest{PageSize: 501})
	require.Equal(t, "page_size", badField(t, err))
	_, err = b.client.ListSecretAudit(ctx, &secretsv1.ListSecretAuditRequest{PageSize: -1})
	require.Equal(t, "page_size", badField(t, err))
	_, err = b.client.ListSecretAudit(ctx, &secretsv1.ListSecretAuditRequest{PageToken: "garbage"})
	require.Equal(t, "page_token", badField(t, err))
	_, err = b.client.ListSecretAudit(ctx, &secretsv1.ListSecretAuditRequest{Name: "A"})
	require.Equal(t, "name", badField(t, err))

	// The largest allowed value is accepted.
	_, err = b.client.PutSecrets(ctx, &secretsv1.PutSecretsRequest{Writes: []*secretsv1.SecretWrite{{Name: "big", Value: big[1:]}}})
	require.NoError(t, err)
}

func TestConcurrentWritersOneName(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const writers = 50
	ctx := b.admin(t, "t1")
	written := map[string]bool{}
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for i := range writers {
		v := fmt.Sprintf("value-%02d", i)
		written[v] = true
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := b.client.PutSecrets(ctx, &secretsv1.PutSecretsRequest{Writes: []*secretsv1.SecretWrite{{Name: "shared", Value: v}}})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	d, err := b.client.DescribeSecrets(ctx, &secretsv1.DescribeSecretsRequest{Names: []string{"shared"}})
	require.NoError(t, err)
	require.EqualValues(t, writers, d.GetSecrets()[0].GetVersion())
	require.True(t, written[b.get(t, b.client, "t1", "shared")["shared"]])

	// Exactly one put audit row per write, versions 1..50 each once.
	var versions []int64
	token := ""
	for {
		page, err := b.client.ListSecretAudit(ctx, &secretsv1.ListSecretAuditRequest{Name: "shared", PageSize: 7, PageToken: token})
		require.NoError(t, err)
		for _, e := range page.GetEvents() {
			if e.GetAction() == "put" {
				versions = append(versions, e.GetVersion())
			}
		}
		if token = page.GetNextPageToken(); token == "" {
			break
		}
	}
	require.Len(t, versions, writers)
	for i, v := range versions { // newest first
		require.EqualValues(t, writers-i, v)
	}
}

func TestAuditTrail(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.put(t, "t1", "acme_client_secret", "audited-secret-value-abcd")
	b.get(t, b.client, "t1", "acme_client_secret")
	_, err := b.client.DeleteSecrets(b.admin(t, "t1"), &secretsv1.DeleteSecretsRequest{Names: []string{"acme_client_secret"}})
	require.NoError(t, err)

	resp, err := b.client.ListSecretAudit(b.admin(t, "t1"), &secretsv1.ListSecretAuditRequest{})
	require.NoError(t, err)
	require.Len(t, resp.GetEvents(), 3)
	require.Empty(t, resp.GetNextPageToken())
	got := []string{}
	for _, e := range resp.GetEvents() {
		got = append(got, e.GetAction()+":"+e.GetActorType()+":"+e.GetActor())
		require.NotNil(t, e.GetCreateTime())
		require.EqualValues(t, 1, e.GetVersion())
	}
	require.Equal(t, []string{"delete:user:admin-t1", "get:service:oauth", "put:user:admin-t1"}, got)
	require.NotContains(t, resp.String(), "audited-secret-value")
}
