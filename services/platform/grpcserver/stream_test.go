package grpcserver_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	gmailv1 "github.com/algapsa/alga-google/gen/alga/gmail/v1"
	"github.com/algapsa/alga-google/services/platform/auth"
	"github.com/algapsa/alga-google/services/platform/grpcserver"
	"github.com/algapsa/alga-google/services/platform/logging"
)

// streamProbe records whether its stream handler ran.
type streamProbe struct {
	gmailv1.UnimplementedInboundMailServiceServer
	ran chan struct{}
}

func (p *streamProbe) StreamInboundMessages(req *gmailv1.StreamInboundMessagesRequest, _ grpc.ServerStreamingServer[gmailv1.StreamInboundMessagesResponse]) error {
	close(p.ran)
	return nil
}

// The validation interceptor covers stream calls too: an invalid request never reaches the handler and
// answers InvalidArgument naming the field.
func TestStreamRequestsAreValidated(t *testing.T) {
	t.Parallel()
	probe := &streamProbe{ran: make(chan struct{})}
	client, tok := streamServer(t, probe)

	stream, err := client.StreamInboundMessages(bearer(tok), &gmailv1.StreamInboundMessagesRequest{ProviderId: "not-a-uuid"})
	require.NoError(t, err)
	_, err = stream.Recv()
	require.Equal(t, codes.InvalidArgument, status.Code(err))
	require.Contains(t, status.Convert(err).Message(), "provider_id")
	select {
	case <-probe.ran:
		t.Fatal("the handler ran with an invalid request")
	default:
	}

	stream, err = client.StreamInboundMessages(bearer(tok), &gmailv1.StreamInboundMessagesRequest{})
	require.NoError(t, err)
	_, _ = stream.Recv()
	<-probe.ran
}

// streamServer serves probe's InboundMailService and returns a client and a service token allowed to call it.
func streamServer(t *testing.T, probe gmailv1.InboundMailServiceServer) (gmailv1.InboundMailServiceClient, string) {
	t.Helper()
	srv := grpcserver.New(grpcserver.Options{Logger: logging.Discard(), Verifier: verifier(t), Registerer: prometheus.NewRegistry()})
	gmailv1.RegisterInboundMailServiceServer(srv.GRPC, probe)
	srv.Allow(grpcserver.Access{"/alga.gmail.v1.InboundMailService/": grpcserver.Services("platform")})
	conn := serveAndDial(t, srv)
	svcs, _ := auth.NewSigner([]byte(svcKey), "alga-google", "alga-google")
	tok, _ := svcs.MintService("platform", "tenant-a", "", nil)
	return gmailv1.NewInboundMailServiceClient(conn), tok
}
