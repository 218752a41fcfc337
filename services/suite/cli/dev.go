package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/algapsa/alga-google/services/googlesandbox"
	"github.com/algapsa/alga-google/services/platform/auth"
	"github.com/algapsa/alga-google/services/platform/config"
	"github.com/algapsa/alga-google/services/platform/urls"
	"github.com/algapsa/alga-google/services/suite/app"
)

// devEnv is what --dev adds around the suite: a loopback base URL by default and, unless
// ALGA_GOOGLE_API_ROOT / PUBSUB_EMULATOR_HOST say otherwise, an in-process Google sandbox seeded with a
// demo Google Cloud project so a newcomer can click through everything without a Google account.
type devEnv struct {
	sandbox *googlesandbox.Sandbox
	demo    *demoProject
}

// demoProject is the sandbox project seeded for the newcomer (what a tenant admin would paste in).
type demoProject struct {
	ProjectID          string          `json:"project_id"`
	ClientID           string          `json:"gmail_client_id"`
	ClientSecret       string          `json:"gmail_client_secret"`
	ServiceAccountKey  json.RawMessage `json:"service_account_key_json"`
	Mailbox            string          `json:"mailbox"`
	Technician         string          `json:"technician"`
	ServiceAccountFile string          `json:"-"`
}

func (d devEnv) Close() {
	if d.sandbox != nil {
		_ = d.sandbox.Close()
	}
}

func prepareDev(ctx context.Context, cfg *config.Config, log *slog.Logger) (devEnv, error) {
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
	// Explicit configuration always wins over the in-process sandbox.
	if cfg.GoogleAPIRoot != "" || cfg.PubSubEmulatorHost != "" {
		return devEnv{}, nil
	}
	sb, err := googlesandbox.Start(ctx, googlesandbox.Options{
		Addr: envOr("ALGA_SANDBOX_ADDR", "127.0.0.1:0"), PubSubAddr: envOr("ALGA_SANDBOX_PUBSUB_ADDR", "127.0.0.1:0"),
		Logger: log.With("component", "googlesandbox"),
	})
	if err != nil {
		return devEnv{}, fmt.Errorf("starting the Google sandbox: %w", err)
	}
	cfg.GoogleAPIRoot = sb.URL()
	cfg.PubSubEmulatorHost = sb.PubSubAddr()
	demo, err := seedDemo(ctx, sb, *cfg)
	if err != nil {
		_ = sb.Close()
		return devEnv{}, fmt.Errorf("seeding the Google sandbox: %w", err)
	}
	return devEnv{sandbox: sb, demo: demo}, nil
}

// seedDemo creates a demo project (production consent screen), its OAuth client with the suite's redirect
// URIs, a Pub/Sub service account, a helpdesk mailbox and a technician.
func seedDemo(ctx context.Context, sb *googlesandbox.Sandbox, cfg config.Config) (*demoProject, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	base, err := urls.Parse(cfg.BaseURL, true)
	if err != nil {
		return nil, err
	}
	admin := sb.Admin()
	proj, err := admin.CreateProject(ctx, googlesandbox.CreateProjectRequest{
		ProjectID: "alga-demo", PublishingStatus: googlesandbox.PublishingProduction,
		RedirectURIs: []string{base.GmailRedirectURI(), base.CalendarRedirectURI()},
	})
	if err != nil {
		return nil, err
	}
	key, _, err := admin.CreateServiceAccount(ctx, proj.ProjectID, "alga-pubsub")
	if err != nil {
		return nil, err
	}
	demo := &demoProject{ProjectID: proj.ProjectID, ClientID: proj.ClientID, ClientSecret: proj.ClientSecret,
		ServiceAccountKey: key, Mailbox: "support@demo.example", Technician: "tech@demo.example"}
	for _, email := range []string{demo.Mailbox, demo.Technician} {
		if err := admin.CreateTestUser(ctx, email); err != nil {
			return nil, err
		}
	}
	// The key goes to a private file under .data/ (as a tenant admin's downloaded key file would).
	if dir := envOr("ALGA_DEV_DATA_DIR", ".data"); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err == nil {
			demo.ServiceAccountFile = filepath.Join(dir, "sandbox-service-account.json")
			_ = os.WriteFile(demo.ServiceAccountFile, key, 0o600)
		}
	}
	return demo, nil
}

// announce prints the URL, a ready-to-use admin token and how to try the product against the sandbox.
func (d devEnv) announce(_ context.Context, w io.Writer, a *app.App, cfg config.Config) {
	fmt.Fprintf(w, "\nalga-google is running (dev mode)\n  UI:      %s%s  (dev sign-in: pick tenant, user and permissions)\n  URL:     %s\n  gRPC:    %s\n",
		cfg.BaseURL, urls.GoogleSettingsPath, cfg.BaseURL, a.GRPCAddr())
	s, err := auth.NewSigner([]byte(cfg.AuthHS256Key), cfg.AuthIssuer, cfg.AuthAudience)
	if err != nil {
		return
	}
	tok, err := s.MintUser(auth.UserToken{Subject: "admin@dev", Tenant: "tenant-dev",
		Permissions: []string{auth.PermSystemSettingsUpdate}, TTL: 24 * time.Hour})
	if err != nil {
		return
	}
	fmt.Fprintf(w, "  Admin token (tenant tenant-dev, user admin@dev, 24h):\n    %s\n", tok)
	if d.sandbox == nil {
		fmt.Fprintf(w, "  Google:  %s (configured)\n", cfg.GoogleAPIRoot)
		return
	}
	fmt.Fprintf(w, "  Google sandbox: %s (Pub/Sub %s) — admin API: alga-google sandbox --help\n", d.sandbox.URL(), d.sandbox.PubSubAddr())
	fmt.Fprintf(w, "  Demo Google Cloud project %q: OAuth client %s, mailbox %s, technician %s\n",
		d.demo.ProjectID, d.demo.ClientID, d.demo.Mailbox, d.demo.Technician)
	body, _ := json.Marshal(map[string]any{
		"gmail_client_id": d.demo.ClientID, "gmail_client_secret": d.demo.ClientSecret,
		"project_id": d.demo.ProjectID, "service_account_key_json": string(d.demo.ServiceAccountKey), "use_same_app": true,
	})
	file := d.demo.ServiceAccountFile
	if file != "" {
		cfgFile := file[:len(file)-len(filepath.Ext(file))] + "-google-config.json"
		if os.WriteFile(cfgFile, body, 0o600) == nil {
			fmt.Fprintf(w, "  Configure the tenant's Google setup with it:\n    curl -X PUT -H 'Authorization: Bearer %s' -H 'Content-Type: application/json' --data @%s %s/api/v1/google/config\n",
				tok, cfgFile, cfg.BaseURL)
		}
	}
	fmt.Fprintln(w)
}
