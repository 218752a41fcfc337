// Package secrets is the tenant-scoped secret store of alga-google (the platform's "Secrets Provider"):
// the `secrets` target, and the operations the binary exposes as `alga-google secrets rotate-kek` and
// `alga-google secrets shred`.
//
// Backends (ALGA_SECRETS_BACKEND, a comma list read in order, writes to the first):
//   - postgres (default): AES-256-GCM envelope encryption in the `secrets` schema — one random data key
//     per tenant wrapped by the KEK (recorded with its key id), each value bound to (tenant, name, version).
//   - filesystem: the platform's layout <base>/tenants/<tenant>/<name> (ALGA_SECRETS_FS_BASE), for
//     on-prem installs whose base directory is a shared volume every replica mounts.
//
// KEK rotation, online:
//  1. Deploy every replica with the new key as ALGA_SECRETS_KEK / ALGA_SECRETS_KEK_ID and the old one as
//     a previous KEK (Options.PreviousKEKs): new tenants get the new key, every existing one stays readable.
//  2. Run `alga-google secrets rotate-kek` (RotateKEK): each tenant's data key is re-wrapped in its own
//     short transaction; readers and writers keep working. It can be run again after an interruption.
//  3. Remove the previous KEK. The target refuses to start while a data key is wrapped by a KEK it lacks.
package secrets

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"

	secretsv1 "github.com/algapsa/alga-google/gen/alga/secrets/v1"
	"github.com/algapsa/alga-google/services/platform/grpcserver"
	"github.com/algapsa/alga-google/services/platform/pg"
	"github.com/algapsa/alga-google/services/platform/target"
	"github.com/algapsa/alga-google/services/secrets/internal/envelope"
	"github.com/algapsa/alga-google/services/secrets/internal/server"
	"github.com/algapsa/alga-google/services/secrets/internal/store"
	"github.com/algapsa/alga-google/services/secrets/migrations"
)

// Options override what the target otherwise reads from the suite's config.Config. Zero values mean
// "use the config": KEK ← Config.KEK() (ALGA_SECRETS_KEK / ALGA_SECRETS_KEK_FILE), KEKID ←
// ALGA_SECRETS_KEK_ID, Backend ← ALGA_SECRETS_BACKEND, FSBase ← ALGA_SECRETS_FS_BASE.
type Options struct {
	KEK   []byte
	KEKID string
	// PreviousKEKs are older KEKs (key id → 32-byte key) still accepted for unwrapping data keys while a
	// rotation is under way. See ParseKEKList for a config format.
	PreviousKEKs map[string][]byte
	Backend      string
	FSBase       string
}

// NewTarget returns the secrets target configured from the suite's config.
func NewTarget() target.Target { return NewTargetWithOptions(Options{}) }

// NewTargetWithOptions returns the secrets target with explicit options (tests, a previous KEK).
func NewTargetWithOptions(opts Options) target.Target { return &secretsTarget{opts: opts} }

type secretsTarget struct {
	opts Options
	lazy *server.Lazy // set by Register
}

// Register registers SecretsService on s before it starts serving (grpc-go refuses registrations after
// Serve); calls answer Unavailable until Start has finished. The binary should call it, when a target
// implements it, before serving; without it, Start registers the service itself.
func (t *secretsTarget) Register(s *grpcserver.Server) {
	if t.lazy != nil {
		return
	}
	t.lazy = &server.Lazy{}
	secretsv1.RegisterSecretsServiceServer(s.GRPC, t.lazy)
	s.RequireService(server.GetSecretsMethod)
}

func (t *secretsTarget) Name() string { return target.Secrets }

// Migrations implements target.Target: the `secrets` schema.
func (t *secretsTarget) Migrations() *pg.Migrations { return migrations.Migrations() }

// Start implements target.Target: builds the backend chain, checks every data key can be unwrapped with
// the configured KEKs, and registers SecretsService (GetSecrets service-only).
func (t *secretsTarget) Start(ctx context.Context, deps *target.Deps) error {
	opts := t.opts
	cfg := deps.Config
	if opts.Backend == "" {
		opts.Backend = cfg.SecretsBackend
	}
	if opts.FSBase == "" {
		opts.FSBase = cfg.SecretsFSBase
	}
	if opts.KEKID == "" {
		opts.KEKID = cfg.SecretsKEKID
	}
	if deps.Pool == nil {
		return errors.New("secrets: a database is required (the audit trail and the postgres backend live there)")
	}
	names, err := backendNames(opts.Backend)
	if err != nil {
		return err
	}
	audit := store.NewAuditLog(deps.Pool)
	var backends []store.Backend
	for _, name := range names {
		switch name {
		case "postgres":
			if len(opts.KEK) == 0 {
				if opts.KEK, err = cfg.KEK(); err != nil {
					return err
				}
			}
			if opts.PreviousKEKs == nil && cfg.SecretsKEKPrevious != "" {
				if opts.PreviousKEKs, err = ParseKEKList(cfg.SecretsKEKPrevious); err != nil {
					return fmt.Errorf("ALGA_SECRETS_KEK_PREVIOUS: %w", err)
				}
			}
			keys, err := envelope.NewKeyring(opts.KEKID, opts.KEK, opts.PreviousKEKs)
			if err != nil {
				return err
			}
			p := store.NewPostgres(deps.Pool, keys)
			if err := p.CheckKeys(ctx); err != nil {
				return fmt.Errorf("secrets: %w", err)
			}
			backends = append(backends, p)
		case "filesystem":
			fs, err := store.NewFilesystem(opts.FSBase, audit)
			if err != nil {
				return err
			}
			backends = append(backends, fs)
		}
	}
	chain := store.NewChain(backends...)
	srv := server.New(chain, audit, deps.Logger)
	deps.Server.RequireService(server.GetSecretsMethod)
	if t.lazy != nil {
		t.lazy.Set(srv)
	} else {
		secretsv1.RegisterSecretsServiceServer(deps.Server.GRPC, srv)
	}
	deps.Logger.InfoContext(ctx, "secrets backend ready", "backend", chain.Name())
	return nil
}

// backendNames parses ALGA_SECRETS_BACKEND.
func backendNames(list string) ([]string, error) {
	if strings.TrimSpace(list) == "" {
		list = "postgres"
	}
	seen := map[string]bool{}
	var out []string
	for _, n := range strings.Split(list, ",") {
		n = strings.ToLower(strings.TrimSpace(n))
		switch n {
		case "postgres", "filesystem":
		case "vault":
			return nil, errors.New("ALGA_SECRETS_BACKEND: the vault backend is not available in this build")
		default:
			return nil, fmt.Errorf("ALGA_SECRETS_BACKEND: unknown backend %q (use postgres, filesystem, or a comma list)", n)
		}
		if seen[n] {
			return nil, fmt.Errorf("ALGA_SECRETS_BACKEND: %q listed twice", n)
		}
		seen[n] = true
		out = append(out, n)
	}
	return out, nil
}

// ParseKEKList parses previous KEKs written as "id:base64[,id:base64…]" (each key 32 bytes).
func ParseKEKList(s string) (map[string][]byte, error) {
	out := map[string][]byte{}
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		id, b64, ok := strings.Cut(item, ":")
		if !ok || id == "" {
			return nil, errors.New("a previous KEK is written id:base64")
		}
		key, err := base64.StdEncoding.DecodeString(b64)
		if err != nil || len(key) != envelope.KeySize {
			return nil, fmt.Errorf("previous KEK %q must be the base64 encoding of exactly 32 bytes", id)
		}
		if _, dup := out[id]; dup {
			return nil, fmt.Errorf("previous KEK id %q listed twice", id)
		}
		out[id] = key
	}
	return out, nil
}

// RotateKEK re-wraps every tenant's data key from oldKEK to newKEK, recording newKeyID beside each. One
// short transaction per tenant: the service keeps serving (run it while replicas hold both keys, see the
// package documentation). Data keys already wrapped by newKeyID are verified and skipped, so it can be
// re-run after an interruption. It returns how many data keys it re-wrapped. Apply migrations first.
func RotateKEK(ctx context.Context, pool *pgxpool.Pool, oldKEK, newKEK []byte, newKeyID string, log *slog.Logger) (int, error) {
	return store.RotateKEK(ctx, pool, oldKEK, newKEK, newKeyID, log)
}

// RotateKEKFrom is RotateKEK for a database whose data keys may be wrapped by several older KEKs
// (key id → key, e.g. Options.PreviousKEKs): each data key is unwrapped with the old KEK of the id
// recorded beside it. A typical `rotate-kek` run after step 1 of the procedure passes the previous KEKs
// and the configured current KEK and key id.
func RotateKEKFrom(ctx context.Context, pool *pgxpool.Pool, oldKEKs map[string][]byte, newKEK []byte, newKeyID string, log *slog.Logger) (int, error) {
	return store.RotateKEKFrom(ctx, pool, oldKEKs, newKEK, newKeyID, log)
}

// ShredTenant crypto-shreds a tenant: its data key and secret rows are deleted in one transaction and a
// "shred" audit row is recorded. Every ciphertext of the tenant, including copies in backups and dumps,
// is unreadable from then on; other tenants are untouched. Secrets of the tenant in a filesystem backend
// are not touched (they are not encrypted; delete the tenant's directory).
func ShredTenant(ctx context.Context, pool *pgxpool.Pool, tenant string) error {
	return store.ShredTenant(ctx, pool, tenant, store.Operator("shred"))
}

// KEKUsage reports how many tenant data keys each KEK id wraps (rotation progress, doctor).
func KEKUsage(ctx context.Context, pool *pgxpool.Pool) (map[string]int64, error) {
	return store.KEKUsageOf(ctx, pool)
}
