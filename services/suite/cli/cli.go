// Package cli implements the alga-google commands: serve, migrate, token, secrets, sandbox, maintenance,
// probe.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/algapsa/alga-google/services/platform/auth"
	"github.com/algapsa/alga-google/services/platform/config"
	"github.com/algapsa/alga-google/services/platform/logging"
	"github.com/algapsa/alga-google/services/platform/pg"
	"github.com/algapsa/alga-google/services/suite/app"
)

type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() map[string]command {
	return map[string]command{
		"serve":       {"run targets: --target=all or a comma list of " + strings.Join(app.AllTargets, ","), serve},
		"migrate":     {"apply every pending schema migration and exit", migrate},
		"token":       {"mint a JWT for development and tests", token},
		"secrets":     {"secret-store operations: rotate-kek, shred", secretsCmd},
		"sandbox":     {"run the Google sandbox (a Google-compatible emulator) standalone", sandboxCmd},
		"maintenance": {"run a tenant's Google maintenance now, or show its last runs: run|status --tenant T", maintenanceCmd},
		"probe":       {"readiness of this pod's gRPC targets over their TLS (the Kubernetes exec probe)", probe},
	}
}

// Main dispatches to a command.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmds := commands()
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdout, cmds)
		return nil
	}
	c, ok := cmds[args[0]]
	if !ok {
		usage(stderr, cmds)
		return fmt.Errorf("unknown command %q", args[0])
	}
	err := c.run(ctx, args[1:], stdout, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}

func usage(w io.Writer, cmds map[string]command) {
	fmt.Fprintln(w, "alga-google — tenant-owned Google integrations (Gmail inbound, Google Calendar) for Alga PSA")
	fmt.Fprintln(w, "\nUsage: alga-google <command> [flags]   (alga-google <command> --help for its flags)\n\nCommands:")
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-11s %s\n", n, cmds[n].summary)
	}
}

// newFlags returns a flag set with the shared settings declared on it, and the binder that declared
// them (parse errors of environment values are reported by parseFlags).
func newFlags(name string, stderr io.Writer, cfg *config.Config) (*flag.FlagSet, *config.Binder) {
	fs := flag.NewFlagSet("alga-google "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	b := config.NewBinder(fs)
	cfg.Bind(b)
	return fs, b
}

// parseFlags parses args, then reports environment values that did not parse.
func parseFlags(fs *flag.FlagSet, b *config.Binder, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	return b.Err()
}

// newLogger is JSON for log pipelines, and text lines for a person at a terminal in --dev.
func newLogger(w io.Writer, cfg config.Config) *slog.Logger {
	if cfg.Dev {
		return logging.NewText(w, cfg.LogLevel)
	}
	return logging.New(w, cfg.LogLevel)
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cfg config.Config
	fs, b := newFlags("serve", stderr, &cfg)
	all := app.NewTargets(b)
	targets := fs.String("target", envOr("ALGA_TARGET", "all"), "targets to run: all, or a comma list of "+strings.Join(app.AllTargets, ",")+" (env ALGA_TARGET)")
	migrateOnStart := fs.Bool("migrate-on-start", envBool("ALGA_MIGRATE_ON_START", true), "apply pending migrations at start; when false, targets wait until alga-google migrate has run (env ALGA_MIGRATE_ON_START)")
	if err := parseFlags(fs, b, args); err != nil {
		return err
	}
	names, err := app.ExpandTargets(*targets)
	if err != nil {
		return err
	}
	log := newLogger(stderr, cfg).With("binary", "alga-google", "targets", strings.Join(names, ","))
	dev, err := prepareDev(ctx, &cfg, log)
	if err != nil {
		return err
	}
	defer dev.Close()
	a, err := app.Start(ctx, app.Options{Config: cfg, Targets: app.Select(all, names), Logger: log, MigrateOnStart: *migrateOnStart})
	if err != nil {
		return err
	}
	log.Info("serving", "grpc", a.GRPCAddr(), "http", a.HTTPAddr(), "base_url", cfg.BaseURL)
	if cfg.Dev {
		dev.announce(ctx, stdout, a, cfg)
	}
	<-ctx.Done()
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	return a.Shutdown(sctx)
}

func migrate(ctx context.Context, args []string, _, stderr io.Writer) error {
	var cfg config.Config
	fs, b := newFlags("migrate", stderr, &cfg)
	targets := fs.String("target", "all", "targets whose schemas to migrate")
	if err := parseFlags(fs, b, args); err != nil {
		return err
	}
	names, err := app.ExpandTargets(*targets)
	if err != nil {
		return err
	}
	if cfg.DatabaseURL == "" {
		return errors.New("DATABASE_URL is required")
	}
	pool, err := pg.Connect(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	log := newLogger(stderr, cfg)
	for _, n := range names {
		m := app.Registry[n]().Migrations()
		if m == nil {
			continue
		}
		if err := m.Apply(ctx, pool); err != nil {
			return err
		}
		log.Info("schema migrated", "schema", m.Schema)
	}
	return nil
}

func token(_ context.Context, args []string, stdout, stderr io.Writer) error {
	var cfg config.Config
	fs, b := newFlags("token", stderr, &cfg)
	tenant := fs.String("tenant", "tenant-dev", "tenant id (claim tenant)")
	user := fs.String("user", "admin@dev", "user id (claim sub)")
	perms := fs.String("permissions", auth.PermSystemSettingsUpdate, "comma list of permissions, e.g. system_settings:update,ticket_settings:update")
	userType := fs.String("user-type", auth.UserTypeInternal, "internal or client")
	service := fs.String("service", "", "mint a service token for this service name instead of a user token")
	ttl := fs.Duration("ttl", 12*time.Hour, "lifetime")
	if err := parseFlags(fs, b, args); err != nil {
		return err
	}
	var tok string
	if *service != "" {
		if err := cfg.CheckServiceKey(); err != nil {
			return err
		}
		s, err := auth.NewSigner(cfg.ServiceKey(), app.ServiceIssuer, cfg.AuthAudience)
		if err != nil {
			return err
		}
		if tok, err = s.MintService(*service, *tenant, "", nil); err != nil {
			return err
		}
	} else {
		s, err := auth.NewSigner([]byte(cfg.AuthHS256Key), cfg.AuthIssuer, cfg.AuthAudience)
		if err != nil {
			return fmt.Errorf("%w (set ALGA_AUTH_HS256_KEY)", err)
		}
		var plist []string
		for _, p := range strings.Split(*perms, ",") {
			if p = strings.TrimSpace(p); p != "" {
				plist = append(plist, p)
			}
		}
		if tok, err = s.MintUser(auth.UserToken{Subject: *user, Tenant: *tenant, Permissions: plist, UserType: *userType, TTL: *ttl}); err != nil {
			return err
		}
	}
	fmt.Fprintln(stdout, tok)
	return nil
}

func envOr(key, def string) string {
	if v, ok := os.LookupEnv(key); ok {
		return v
	}
	return def
}

func envBool(key string, def bool) bool {
	switch strings.ToLower(os.Getenv(key)) {
	case "1", "true", "yes":
		return true
	case "0", "false", "no":
		return false
	}
	return def
}
