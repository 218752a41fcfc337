package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"

	"github.com/algapsa/alga-google/services/platform/auth"
	"github.com/algapsa/alga-google/services/platform/config"
	"github.com/algapsa/alga-google/services/suite/app"
)

// devEnv is what --dev adds around the suite: defaults for a loopback base URL and, once the sandbox
// target lands, the in-process Google sandbox. Explicit configuration always wins.
type devEnv struct{}

func (devEnv) Close() {}

func prepareDev(_ context.Context, cfg *config.Config, _ *slog.Logger) (devEnv, error) {
	if !cfg.Dev {
		return devEnv{}, nil
	}
	if cfg.BaseURL == "" {
		host, port, err := net.SplitHostPort(cfg.HTTPAddr)
		if err != nil {
			return devEnv{}, fmt.Errorf("ALGA_HTTP_ADDR: %w", err)
		}
		if host == "" || host == "0.0.0.0" || host == "::" {
			host = "127.0.0.1"
		}
		cfg.BaseURL = "http://" + net.JoinHostPort(host, port)
	}
	return devEnv{}, nil
}

// announce prints the URL and a ready-to-use admin token for click-through development.
func (devEnv) announce(_ context.Context, w io.Writer, a *app.App, cfg config.Config) {
	fmt.Fprintf(w, "\nalga-google is running (dev mode)\n  URL:   %s\n  gRPC:  %s\n", cfg.BaseURL, a.GRPCAddr())
	if s, err := auth.NewSigner([]byte(cfg.AuthHS256Key), cfg.AuthIssuer, cfg.AuthAudience); err == nil {
		if tok, err := s.MintUser(auth.UserToken{Subject: "admin@dev", Tenant: "tenant-dev",
			Permissions: []string{auth.PermSystemSettingsUpdate}, TTL: 24 * 3600e9}); err == nil {
			fmt.Fprintf(w, "  Admin token (tenant tenant-dev, 24h):\n    %s\n", tok)
			fmt.Fprintf(w, "  Try: curl -H 'Authorization: Bearer %s…' %s/api/v1/google/config\n", strings.Repeat("", 0)+tok[:12], cfg.BaseURL)
		}
	}
}
