package cli

import (
	"context"
	"fmt"
	"io"
	"net"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/algapsa/alga-google/services/platform/config"
	"github.com/algapsa/alga-google/services/platform/grpcclient"
	"github.com/algapsa/alga-google/services/platform/grpctls"
)

// probe asks this pod's own gRPC server for its health, over the same TLS the targets use between
// them: the readiness probe of a gRPC target under mutual TLS, where kubelet's gRPC probe (plaintext)
// is refused. It reads the shared settings like serve (ALGA_GRPC_ADDR, ALGA_GRPC_TLS_*), dials the
// listener at localhost (the certificate must name localhost too), and succeeds only on SERVING: of
// --target when given, else of the whole process (every target it runs).
func probe(ctx context.Context, args []string, _, stderr io.Writer) error {
	var cfg config.Config
	fs, b := newFlags("probe", stderr, &cfg)
	target := fs.String("target", "", "target whose gRPC health to ask (empty: the whole process)")
	timeout := fs.Duration("timeout", 2*time.Second, "how long the check may take")
	if err := parseFlags(fs, b, args); err != nil {
		return err
	}
	_, port, err := net.SplitHostPort(cfg.GRPCAddr)
	if err != nil {
		return fmt.Errorf("ALGA_GRPC_ADDR %q: %w", cfg.GRPCAddr, err)
	}
	peerTLS, err := grpctls.Load(cfg.GRPCTLSCert, cfg.GRPCTLSKey, cfg.GRPCTLSCA)
	if err != nil {
		return err
	}
	// Health needs no service token: the dialer's raw connection carries none.
	conn, err := grpcclient.Dialer{TLS: peerTLS.Client()}.DialRaw(net.JoinHostPort("localhost", port))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	res, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: *target})
	if err != nil {
		return fmt.Errorf("gRPC health of %q: %w", *target, err)
	}
	if res.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("gRPC health of %q: %s", *target, res.GetStatus())
	}
	return nil
}
