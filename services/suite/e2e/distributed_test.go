package e2e_test

import (
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	gmailv1 "github.com/algapsa/alga-google/gen/alga/gmail/v1"
	"github.com/algapsa/alga-google/services/platform/config"
	"github.com/algapsa/alga-google/services/platform/pgtest"
	"github.com/algapsa/alga-google/services/suite/harness"
)

// TestDistributedTargets runs every target as its own "process" (its own gRPC server, listeners and
// peers reached over TCP, as one Kubernetes Deployment per target) on one database, and drives the Gmail
// product path through the gateway: setup → connect → consent → callback → provisioning → mail in.
func TestDistributedTargets(t *testing.T) {
	t.Parallel()
	sb := startSandbox(t)
	db := pgtest.NewDatabase(t)
	names := []string{"secrets", "oauth", "gmail", "calendar", "worker"}
	grpcLis := map[string]net.Listener{}
	for _, n := range append(names, "gateway") {
		grpcLis[n] = harness.Listen(t)
	}
	httpLis := harness.Listen(t)
	base := "http://" + httpLis.Addr().String()
	peers := func(c *config.Config) {
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
}
