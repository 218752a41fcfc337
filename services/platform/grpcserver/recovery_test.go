package grpcserver_test

import (
	"context"
	"net"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/algapsa/alga-google/services/platform/auth"
	"github.com/algapsa/alga-google/services/platform/grpcserver"
	"github.com/algapsa/alga-google/services/platform/logging"
)

// panicky is a request whose hand-written validation has a bug.
type panicky struct{ *emptypb.Empty }

func (panicky) Validate() error { panic("validator bug") }

// panicsDesc is a tiny service whose requests are panicky, one unary and one server-streaming method.
var panicsDesc = grpc.ServiceDesc{
	ServiceName: "test.Panics",
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{{MethodName: "Unary", Handler: func(srv any, ctx context.Context, dec func(any) error, ic grpc.UnaryServerInterceptor) (any, error) {
		in := panicky{&emptypb.Empty{}}
		if err := dec(in); err != nil {
			return nil, err
		}
		h := func(context.Context, any) (any, error) { return &emptypb.Empty{}, nil }
		return ic(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: "/test.Panics/Unary"}, h)
	}}},
	Streams: []grpc.StreamDesc{{StreamName: "Stream", ServerStreams: true, Handler: func(_ any, stream grpc.ServerStream) error {
		in := panicky{&emptypb.Empty{}}
		if err := stream.RecvMsg(in); err != nil {
			return err
		}
		return stream.SendMsg(&emptypb.Empty{})
	}}},
}

// panickingVerifier has a bug on one token and verifies every other as a user of tenant-a.
type panickingVerifier struct{}

func (panickingVerifier) Verify(_ context.Context, raw string) (auth.Identity, error) {
	if raw == "boom" {
		panic("verifier bug")
	}
	return auth.Identity{Subject: "u", Tenant: "tenant-a", UserType: auth.UserTypeInternal}, nil
}

func serveBufconn(t *testing.T, srv *grpcserver.Server) *grpc.ClientConn {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	go func() { _ = srv.GRPC.Serve(lis) }()
	t.Cleanup(srv.GRPC.Stop)
	conn, err := grpc.NewClient("passthrough:///bufnet", grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// Recovery is the outermost interceptor (after the stats handler): a panic in the verifier or in a
// validator — interceptors ahead of the handler — answers Internal, for unary and stream calls, and the
// server keeps serving.
func TestPanicsInTheChainAnswerInternal(t *testing.T) {
	t.Parallel()
	srv := grpcserver.New(grpcserver.Options{Logger: logging.Discard(), Verifier: panickingVerifier{}, Registerer: prometheus.NewRegistry()})
	srv.GRPC.RegisterService(&panicsDesc, struct{}{})
	srv.Allow(grpcserver.Access{"/test.Panics/": grpcserver.Users()})
	srv.Health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	conn := serveBufconn(t, srv)
	unary := func(tok string) error {
		return conn.Invoke(bearer(tok), "/test.Panics/Unary", &emptypb.Empty{}, &emptypb.Empty{})
	}
	stream := func(tok string) error {
		s, err := conn.NewStream(bearer(tok), &panicsDesc.Streams[0], "/test.Panics/Stream")
		require.NoError(t, err)
		require.NoError(t, s.SendMsg(&emptypb.Empty{}))
		require.NoError(t, s.CloseSend())
		return s.RecvMsg(&emptypb.Empty{})
	}

	for i := 0; i < 3; i++ {
		for name, err := range map[string]error{
			"unary, panicking verifier":   unary("boom"),
			"unary, panicking validator":  unary("user"),
			"stream, panicking verifier":  stream("boom"),
			"stream, panicking validator": stream("user"),
		} {
			require.Equal(t, codes.Internal, status.Code(err), "%s: %v", name, err)
			require.Equal(t, "internal error", status.Convert(err).Message(), "%s: no panic text leaves the server", name)
		}
	}
	// Still serving.
	resp, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
	require.Equal(t, healthpb.HealthCheckResponse_SERVING, resp.GetStatus())
}
