package e2e_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	gmailv1 "github.com/algapsa/alga-google/gen/alga/gmail/v1"
	"github.com/algapsa/alga-google/services/platform/config"
	"github.com/algapsa/alga-google/services/platform/pgtest"
	"github.com/algapsa/alga-google/services/suite/harness"
)

// TestDistributedTargets runs every target as its own "process" (its own gRPC server, listeners and
// peers reached over TCP, as one Kubernetes Deployment per target) on one database, with mutual TLS
// between them, and drives the Gmail product path through the gateway: setup → connect → consent →
// callback → provisioning → mail in. A peer without a certificate the CA signed is refused.
func TestDistributedTargets(t *testing.T) {
	t.Parallel()
	sb := startSandbox(t)
	certs := harness.NewTLS(t)
	db := pgtest.NewDatabase(t)
	names := []string{"secrets", "oauth", "gmail", "calendar", "worker"}
	grpcLis := map[string]net.Listener{}
	for _, n := range append(names, "gateway") {
		grpcLis[n] = harness.Listen(t)
	}
	httpLis := harness.Listen(t)
	base := "http://" + httpLis.Addr().String()
	peers := func(c *config.Config) {
		c.GRPCTLSCert, c.GRPCTLSKey, c.GRPCTLSCA = certs.Cert, certs.Key, certs.CA
		c.BaseURL = base
		c.SecretsAddr = grpcLis["secrets"].Addr().String()
		c.OAuthAddr = grpcLis["oauth"].Addr().String()
		c.GmailAddr = grpcLis["gmail"].Addr().String()
		c.CalendarAddr = grpcLis["calendar"].Addr().String()
		c.WorkerAddr = grpcLis["worker"].Addr().String()
	}
	suites := map[string]*harness.Suite{}
	for _, n := range append(names, "gateway") {
		opts := harness.Options{Targets: n, DatabaseURL: db, Sandbox: sb, Configure: peers, GRPCListener: grpcLis[n]}
		if n == "gateway" {
			opts.HTTPListener = httpLis
		}
		suites[n] = harness.Start(t, opts)
	}
	gw := suites["gateway"]
	require.Equal(t, base, gw.BaseURL)
	r := gw.HTTP("").Do(t, http.MethodGet, "/readyz", nil)
	require.Equal(t, http.StatusOK, r.Status, r.String())

	e := &env{s: gw, admin: sb.Admin(), ctx: t.Context()}
	ts := e.setupTenant(t, "tenant-dist", "acme-dist-1", setupOpts{})
	p := e.connectGmail(t, ts, "help@dist.test")
	e.deliver(t, "help@dist.test", plainEmail("help@dist.test", "Across processes"))

	inbound := gmailv1.NewInboundMailServiceClient(suites["gmail"].Conn(t))
	ctx := harness.WithToken(t.Context(), suites["gmail"].ServiceToken("platform", ts.tenant))
	require.Eventually(t, func() bool {
		res, err := inbound.ListInboundMessages(ctx, &gmailv1.ListInboundMessagesRequest{ProviderId: p.ID})
		return err == nil && len(res.GetMessages()) == 1 && res.GetMessages()[0].GetSubject() == "Across processes"
	}, 30*time.Second, 100*time.Millisecond)

	// The gRPC listeners speak mutual TLS only: plaintext, TLS without a client certificate, and a
	// certificate of another CA are all refused before any RPC — health included.
	other := harness.NewTLS(t)
	otherCert, err := tls.LoadX509KeyPair(other.Cert, other.Key)
	require.NoError(t, err)
	caPEM, err := os.ReadFile(certs.CA)
	require.NoError(t, err)
	roots := x509.NewCertPool()
	require.True(t, roots.AppendCertsFromPEM(caPEM))
	for name, creds := range map[string]credentials.TransportCredentials{
		"plaintext":             insecure.NewCredentials(),
		"no client certificate": credentials.NewTLS(&tls.Config{RootCAs: roots}),
		"another CA's client":   credentials.NewTLS(&tls.Config{RootCAs: roots, Certificates: []tls.Certificate{otherCert}}),
	} {
		conn, err := grpc.NewClient(grpcLis["secrets"].Addr().String(), grpc.WithTransportCredentials(creds))
		require.NoError(t, err)
		hctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		_, err = healthpb.NewHealthClient(conn).Check(hctx, &healthpb.HealthCheckRequest{Service: "secrets"})
		cancel()
		_ = conn.Close()
		require.Error(t, err, name)
	}
	hctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	res, err := healthpb.NewHealthClient(suites["secrets"].Conn(t)).Check(hctx, &healthpb.HealthCheckRequest{Service: "secrets"})
	require.NoError(t, err, "a peer with the CA's certificate")
	require.Equal(t, healthpb.HealthCheckResponse_SERVING, res.GetStatus())
}
