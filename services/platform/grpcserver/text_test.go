package grpcserver_test

import (
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	gmailv1 "github.com/algapsa/alga-google/gen/alga/gmail/v1"
	secretsv1 "github.com/algapsa/alga-google/gen/alga/secrets/v1"
	"github.com/algapsa/alga-google/services/platform/auth"
)

// A NUL byte in any string field of any request — top level, in a repeated field, in a nested message —
// is refused InvalidArgument naming the field before the handler runs (probe's PutSecrets panics: had
// the request reached it, the answer would be Internal).
func TestNULInAnyStringFieldIsRefused(t *testing.T) {
	t.Parallel()
	b := setup(t)
	user, _ := b.users.MintUser(auth.UserToken{Subject: "u", Tenant: "tenant-a"})

	_, err := b.client.PutSecrets(bearer(user), &secretsv1.PutSecretsRequest{Writes: []*secretsv1.SecretWrite{
		{Name: "google_client_id", Value: "ok"}, {Name: "google_client_secret", Value: "sec\x00ret"},
	}})
	requireField(t, err, "writes[1].value", "NUL")

	_, err = b.client.PutSecrets(bearer(user), &secretsv1.PutSecretsRequest{DeleteNames: []string{"a\x00"}})
	requireField(t, err, "delete_names[0]", "NUL")

	_, err = b.client.DescribeSecrets(bearer(user), &secretsv1.DescribeSecretsRequest{Names: []string{"\x00"}})
	requireField(t, err, "names[0]", "NUL")

	// Clean text still reaches the handler.
	_, err = b.client.DescribeSecrets(bearer(user), &secretsv1.DescribeSecretsRequest{Names: []string{"google_client_id"}})
	require.NoError(t, err)
}

func TestNULInStreamRequestIsRefused(t *testing.T) {
	t.Parallel()
	probe := &streamProbe{ran: make(chan struct{})}
	client, tok := streamServer(t, probe)
	stream, err := client.StreamInboundMessages(bearer(tok), &gmailv1.StreamInboundMessagesRequest{ProviderId: "0b6f5c1e-8a4f-4d57-9a55-2f5c3b1e7a10", AfterCursor: "a\x00b"})
	require.NoError(t, err)
	_, err = stream.Recv()
	requireField(t, err, "after_cursor", "NUL")
	select {
	case <-probe.ran:
		t.Fatal("the handler ran with a NUL in the request")
	default:
	}
}

func requireField(t *testing.T, err error, field, text string) {
	t.Helper()
	require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
	require.Contains(t, status.Convert(err).Message(), field+": ")
	require.Contains(t, status.Convert(err).Message(), text)
}
