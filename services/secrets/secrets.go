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
//     a previous KEK (ALGA_SECRETS_KEK_PREVIOUS): new tenants get the new key, every existing one stays
//     readable.
//  2. Run `alga-google secrets rotate-kek` (RotateKEK): each tenant's data key is re-wrapped in its own
//     short transaction; readers and writers keep working. It can be run again after an interruption.
//  3. Remove the previous KEK. The target refuses to start while a data key is wrapped by a KEK it lacks.
package secrets

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"

	secretsv1 "github.com/algapsa/alga-google/gen/alga/secrets/v1"
	"github.com/algapsa/alga-google/services/platform/auth"
	"github.com/algapsa/alga-google/services/platform/config"
	"github.com/algapsa/alga-google/services/platform/grpcserver"
	"github.com/algapsa/alga-google/services/platform/pg"
	"github.com/algapsa/alga-google/services/platform/target"
	"github.com/algapsa/alga-google/services/secrets/internal/envelope"
	"github.com/algapsa/alga-google/services/secrets/internal/service"
	"github.com/algapsa/alga-google/services/secrets/internal/store"
)

// NewTarget returns the secrets target; the binary binds its settings (Bind) before starting it.
func NewTarget() target.Target { return New() }

// NewTargetWithConfig returns the secrets target with its settings filled in (tests, tools): the
// binary's Bind is not needed, and Start reads cfg as it is.
func NewTargetWithConfig(cfg Config) target.Target {
	t := New()
	t.cfg = cfg
	return t
}

// Target is the secrets target: SecretsService over the configured backends.
type Target struct {
	cfg Config
	svc *service.Server
}

// New constructs the target with its gRPC implementation, without dependencies (see Start).
func New() *Target { return &Target{svc: service.New()} }

// Name implements target.Target.
func (t *Target) Name() string { return target.Secrets }

// Bind implements target.Target: the secrets settings (config.go).
func (t *Target) Bind(b *config.Binder) { t.cfg.Bind(b) }

// Migrations implements target.Target: the `secrets` schema and its queries.
func (t *Target) Migrations() *pg.Migrations { return store.Migrations() }

// Access is who may call each RPC of the secrets target. GetSecrets (plaintext values) is for oauth and
// gmail only, and the handler narrows gmail to the names it provisions Pub/Sub with (service.Readable):
// only oauth reads OAuth client secrets and tokens.
var Access = grpcserver.Access{
	secretsv1.SecretsService_PutSecrets_FullMethodName:      grpcserver.Users(auth.SvcOAuth),
	secretsv1.SecretsService_DescribeSecrets_FullMethodName: grpcserver.Users(auth.SvcOAuth),
	secretsv1.SecretsService_GetSecrets_FullMethodName:      grpcserver.Services(auth.SvcOAuth, auth.SvcGmail),
	secretsv1.SecretsService_DeleteSecrets_FullMethodName:   grpcserver.Users(),
	secretsv1.SecretsService_ListSecretAudit_FullMethodName: grpcserver.Users(),
}

// Register implements target.Target: SecretsService itself, and who may call it (Access).
func (t *Target) Register(srv *grpcserver.Server) {
	secretsv1.RegisterSecretsServiceServer(srv.GRPC, t.svc)
	srv.Allow(Access)
}

// Start implements target.Target: builds the backend chain, checks every data key can be unwrapped with
// the configured KEKs, and hands the chain to SecretsService.
func (t *Target) Start(ctx context.Context, deps *target.Deps) error {
	cfg := t.cfg
	if deps.Pool == nil {
		return errors.New("secrets: a database is required (the audit trail and the postgres backend live there)")
	}
	names, err := cfg.backendNames()
	if err != nil {
		return err
	}
	audit := store.NewAuditLog(deps.Pool)
	var backends []store.Backend
	for _, name := range names {
		switch name {
		case "postgres":
			kek, err := cfg.KEK()
			if err != nil {
				return err
			}
			previous, err := cfg.PreviousKEKs()
			if err != nil {
				return err
			}
			keys, err := envelope.NewKeyring(cfg.KEKID, kek, previous)
			if err != nil {
				return err
			}
			p := store.NewPostgres(deps.Pool, keys)
			if err := p.CheckKeys(ctx); err != nil {
				return fmt.Errorf("secrets: %w", err)
			}
			backends = append(backends, p)
		case "filesystem":
			fs, err := store.NewFilesystem(cfg.FSBase, audit)
			if err != nil {
				return err
			}
			backends = append(backends, fs)
		}
	}
	chain := store.NewChain(backends...)
	t.svc.Use(chain, audit, deps.Logger)
	deps.Logger.InfoContext(ctx, "secrets backend ready", "backend", chain.Name())
	return nil
}

// Stop implements target.Target: the secrets target runs no background work.
func (t *Target) Stop(context.Context) error { return nil }

// RotateKEK re-wraps every tenant's data key from oldKEK to newKEK, recording newKeyID beside each. One
// short transaction per tenant: the service keeps serving (run it while replicas hold both keys, see the
// package documentation). Data keys already wrapped by newKeyID are verified and skipped, so it can be
// re-run after an interruption. It returns how many data keys it re-wrapped. Apply migrations first.
func RotateKEK(ctx context.Context, pool *pgxpool.Pool, oldKEK, newKEK []byte, newKeyID string, log *slog.Logger) (int, error) {
	return store.RotateKEK(ctx, pool, oldKEK, newKEK, newKeyID, log)
}

// RotateKEKFrom is RotateKEK for a database whose data keys may be wrapped by several older KEKs
// (key id → key, e.g. Config.PreviousKEKs): each data key is unwrapped with the old KEK of the id
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
