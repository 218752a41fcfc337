package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	m "github.com/algapsa/alga-google/gen/alga/maintenance/v1"
	"github.com/algapsa/alga-google/services/platform/auth"
	"github.com/algapsa/alga-google/services/platform/config"
	"github.com/algapsa/alga-google/services/platform/grpcclient"
	"github.com/algapsa/alga-google/services/platform/grpctls"
	"github.com/algapsa/alga-google/services/suite/app"
)

// maintenanceCmd asks a running worker target to run one tenant's Google maintenance now, or shows its
// last runs: the operator's view of what POST /api/v1/google/maintenance:run and GET
// /api/v1/google/maintenance show the tenant admin. It calls as a service identity acting for the
// tenant, signed with the service key (the operator has it; no user token is needed).
func maintenanceCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "run" && args[0] != "status") {
		return errors.New("usage: alga-google maintenance run|status --tenant T [--worker-addr host:port]")
	}
	var cfg config.Config
	fs, b := newFlags("maintenance "+args[0], stderr, &cfg)
	tenant := fs.String("tenant", "", "tenant whose Google maintenance to run or show (required)")
	runs := fs.Int("runs", 10, "status: how many recent runs to show (at most 100)")
	timeout := fs.Duration("timeout", 10*time.Minute, "run: how long to wait for the run to finish")
	if err := parseFlags(fs, b, args[1:]); err != nil {
		return err
	}
	if *tenant == "" {
		return errors.New("--tenant is required")
	}
	if err := cfg.CheckServiceKey(); err != nil {
		return err
	}
	signer, err := auth.NewSigner(cfg.ServiceKey(), app.ServiceIssuer, cfg.AuthAudience)
	if err != nil {
		return err
	}
	peerTLS, err := grpctls.Load(cfg.GRPCTLSCert, cfg.GRPCTLSKey, cfg.GRPCTLSCA)
	if err != nil {
		return err
	}
	conn, err := grpcclient.Dialer{Signer: signer, Service: auth.SvcCLI, TLS: peerTLS.Client()}.Dial(cfg.WorkerAddr)
	if err != nil {
		return err
	}
	defer conn.Close()
	client := m.NewMaintenanceServiceClient(conn)
	ctx = grpcclient.ActFor(ctx, auth.SvcCLI, *tenant, "")
	var out proto.Message
	switch args[0] {
	case "run":
		rctx, cancel := context.WithTimeout(ctx, *timeout)
		defer cancel()
		out, err = client.RunGoogleMaintenance(rctx, &m.RunGoogleMaintenanceRequest{})
	case "status":
		out, err = client.GetGoogleMaintenance(ctx, &m.GetGoogleMaintenanceRequest{PageSize: int32(*runs)})
	}
	if err != nil {
		return fmt.Errorf("worker at %s: %w", cfg.WorkerAddr, err)
	}
	js, err := protojson.MarshalOptions{Multiline: true, UseProtoNames: true}.Marshal(out)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, string(js))
	return err
}
