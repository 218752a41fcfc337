package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/algapsa/alga-google/services/platform/config"
	"github.com/algapsa/alga-google/services/platform/pg"
	"github.com/algapsa/alga-google/services/secrets"
)

// secretsCmd runs the secret-store operations that act on the database directly.
func secretsCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: alga-google secrets rotate-kek | shred --tenant T | kek-usage")
	}
	var cfg config.Config
	var sc secrets.Config
	fs, b := newFlags("secrets "+args[0], stderr, &cfg)
	sc.Bind(b)
	tenant := fs.String("tenant", "", "tenant to crypto-shred (shred)")
	if err := parseFlags(fs, b, args[1:]); err != nil {
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
	switch args[0] {
	case "rotate-kek":
		// The current KEK (ALGA_SECRETS_KEK/_ID) becomes the wrapping key of every data key that
		// ALGA_SECRETS_KEK_PREVIOUS can still unwrap.
		newKEK, err := sc.KEK()
		if err != nil {
			return err
		}
		old, err := sc.PreviousKEKs()
		if err != nil {
			return err
		}
		n, err := secrets.RotateKEKFrom(ctx, pool, old, newKEK, sc.KEKID, log)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "re-wrapped %d tenant data keys with %s\n", n, sc.KEKID)
		return printUsage(ctx, stdout, pool)
	case "kek-usage":
		return printUsage(ctx, stdout, pool)
	case "shred":
		if *tenant == "" {
			return errors.New("--tenant is required")
		}
		if err := secrets.ShredTenant(ctx, pool, *tenant); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "tenant %s crypto-shredded: its data key and secrets are gone\n", *tenant)
		return nil
	}
	return fmt.Errorf("unknown secrets command %q (rotate-kek, shred, kek-usage)", args[0])
}

func printUsage(ctx context.Context, w io.Writer, pool *pgxpool.Pool) error {
	usage, err := secrets.KEKUsage(ctx, pool)
	if err != nil {
		return err
	}
	ids := make([]string, 0, len(usage))
	for id := range usage {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		fmt.Fprintf(w, "KEK %s wraps %d tenant data keys\n", id, usage[id])
	}
	return nil
}
