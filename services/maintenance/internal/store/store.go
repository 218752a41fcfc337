// Package store is the maintenance schema's query layer: the run history. The SQL lives in queries.sql
// (named statements) and the numbered migrations in migrations/; every statement is scoped by tenant.
package store

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/algapsa/alga-google/services/maintenance/internal/upkeep"
	"github.com/algapsa/alga-google/services/platform/pg"
)

//go:embed migrations/*.sql
var migrationsFS embed.FS

//go:embed queries.sql
var queriesSQL string

// Schema is the Postgres schema the maintenance service owns (River's tables live in it too).
const Schema = "maintenance"

var queries = pg.ParseQueries(queriesSQL)

// Migrations of the maintenance schema, with every statement of queries.sql (prepared against the
// migrated schema by TestEveryQueryPrepares).
func Migrations() *pg.Migrations {
	return &pg.Migrations{Schema: Schema, FS: migrationsFS, Dir: "migrations", Queries: queries}
}

func q(name string) string { return queries.Get(name) }

// Keep is how many runs of a tenant the history keeps.
const Keep = 200

// ErrNotFound is returned for a run the tenant does not have.
var ErrNotFound = errors.New("not found")

// Store reads and writes the run history.
type Store struct{ pool *pgxpool.Pool }

// New returns a store on pool.
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// RecordRun stores a run with its providers and steps in one transaction, and prunes the tenant's
// history to the newest Keep runs. Recording the same run again changes nothing.
func (s *Store) RecordRun(ctx context.Context, r upkeep.Run) error {
	due, failed, calls := r.Counts()
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, q("InsertRun"), pg.Args{
			"id": r.RunID, "tenant": r.Tenant, "runner": r.Runner, "trigger": r.Trigger, "status": r.Status(),
			"start_time": r.StartTime, "end_time": r.EndTime, "error_code": r.ErrorCode, "message": r.Message,
			"provider_count": len(r.Providers), "due_count": due, "failed_count": failed, "google_calls": calls,
		})
		if err != nil {
			return fmt.Errorf("recording run: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return nil // already recorded
		}
		var pos, spos, seqs, gcalls []int32
		var kinds, ids, names, steps, statuses, classes, codes, msgs, remedies, reasons []string
		var dues []bool
		var expires []*time.Time
		for i, p := range r.Providers {
			pos = append(pos, int32(i))
			kinds = append(kinds, p.Kind)
			ids = append(ids, p.ProviderID)
			names = append(names, p.Name)
			dues = append(dues, p.Due)
			for j, st := range p.Steps {
				spos = append(spos, int32(i))
				seqs = append(seqs, int32(j))
				steps = append(steps, st.Step)
				statuses = append(statuses, st.Status)
				classes = append(classes, st.FailureClass)
				codes = append(codes, st.ErrorCode)
				msgs = append(msgs, st.Message)
				remedies = append(remedies, st.Remedy)
				reasons = append(reasons, st.Reason)
				gcalls = append(gcalls, int32(st.GoogleCalls))
				expires = append(expires, st.ExpireTime)
			}
		}
		if len(pos) > 0 {
			if _, err := tx.Exec(ctx, q("InsertRunProviders"), pg.Args{
				"run_id": r.RunID, "tenant": r.Tenant, "positions": pos, "kinds": kinds,
				"provider_ids": ids, "names": names, "dues": dues,
			}); err != nil {
				return fmt.Errorf("recording run providers: %w", err)
			}
		}
		if len(spos) > 0 {
			if _, err := tx.Exec(ctx, q("InsertRunSteps"), pg.Args{
				"run_id": r.RunID, "tenant": r.Tenant, "positions": spos, "seqs": seqs, "steps": steps,
				"statuses": statuses, "failure_classes": classes, "error_codes": codes, "messages": msgs,
				"remedies": remedies, "reasons": reasons, "google_calls": gcalls, "expire_times": expires,
			}); err != nil {
				return fmt.Errorf("recording run steps: %w", err)
			}
		}
		_, err = tx.Exec(ctx, q("PruneRuns"), pg.Args{"tenant": r.Tenant, "keep": Keep})
		return err
	})
}

type runRow struct {
	ID        string    `db:"id"`
	Runner    string    `db:"runner"`
	Trigger   string    `db:"trigger"`
	StartTime time.Time `db:"start_time"`
	EndTime   time.Time `db:"end_time"`
	ErrorCode string    `db:"error_code"`
	Message   string    `db:"message"`
}

type providerRow struct {
	RunID      string `db:"run_id"`
	Position   int32  `db:"position"`
	Kind       string `db:"kind"`
	ProviderID string `db:"provider_id"`
	Name       string `db:"name"`
	Due        bool   `db:"due"`
}

type stepRow struct {
	RunID        string     `db:"run_id"`
	Position     int32      `db:"position"`
	Step         string     `db:"step"`
	Status       string     `db:"status"`
	FailureClass string     `db:"failure_class"`
	ErrorCode    string     `db:"error_code"`
	Message      string     `db:"message"`
	Remedy       string     `db:"remedy"`
	Reason       string     `db:"reason"`
	GoogleCalls  int32      `db:"google_calls"`
	ExpireTime   *time.Time `db:"expire_time"`
}

// ListRuns returns the tenant's newest runs (at most limit), most recent first, with their providers
// and steps.
func (s *Store) ListRuns(ctx context.Context, tenant string, limit int) ([]upkeep.Run, error) {
	rows, err := s.pool.Query(ctx, q("ListRuns"), pg.Args{"tenant": tenant, "limit": limit})
	if err != nil {
		return nil, err
	}
	runs, err := pgx.CollectRows(rows, pgx.RowToStructByName[runRow])
	if err != nil {
		return nil, err
	}
	return s.fill(ctx, tenant, runs)
}

// GetRun returns one run of the tenant.
func (s *Store) GetRun(ctx context.Context, tenant, id string) (upkeep.Run, error) {
	rows, err := s.pool.Query(ctx, q("GetRun"), pg.Args{"tenant": tenant, "id": id})
	if err != nil {
		return upkeep.Run{}, err
	}
	runs, err := pgx.CollectRows(rows, pgx.RowToStructByName[runRow])
	if err != nil {
		return upkeep.Run{}, err
	}
	if len(runs) == 0 {
		return upkeep.Run{}, ErrNotFound
	}
	out, err := s.fill(ctx, tenant, runs)
	if err != nil {
		return upkeep.Run{}, err
	}
	return out[0], nil
}

func (s *Store) fill(ctx context.Context, tenant string, runs []runRow) ([]upkeep.Run, error) {
	out := make([]upkeep.Run, len(runs))
	byID := map[string]int{}
	ids := make([]string, len(runs))
	for i, r := range runs {
		out[i] = upkeep.Run{RunID: r.ID, Tenant: tenant, Runner: r.Runner, Trigger: r.Trigger,
			StartTime: r.StartTime, EndTime: r.EndTime, ErrorCode: r.ErrorCode, Message: r.Message}
		byID[r.ID] = i
		ids[i] = r.ID
	}
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := s.pool.Query(ctx, q("ListRunProviders"), pg.Args{"tenant": tenant, "run_ids": ids})
	if err != nil {
		return nil, err
	}
	provs, err := pgx.CollectRows(rows, pgx.RowToStructByName[providerRow])
	if err != nil {
		return nil, err
	}
	type key struct {
		run string
		pos int32
	}
	at := map[key][2]int{}
	for _, p := range provs {
		i := byID[p.RunID]
		at[key{p.RunID, p.Position}] = [2]int{i, len(out[i].Providers)}
		out[i].Providers = append(out[i].Providers, upkeep.ProviderResult{Kind: p.Kind, ProviderID: p.ProviderID, Name: p.Name, Due: p.Due})
	}
	rows, err = s.pool.Query(ctx, q("ListRunSteps"), pg.Args{"tenant": tenant, "run_ids": ids})
	if err != nil {
		return nil, err
	}
	steps, err := pgx.CollectRows(rows, pgx.RowToStructByName[stepRow])
	if err != nil {
		return nil, err
	}
	for _, st := range steps {
		loc, ok := at[key{st.RunID, st.Position}]
		if !ok {
			continue
		}
		p := &out[loc[0]].Providers[loc[1]]
		p.Steps = append(p.Steps, upkeep.StepResult{
			Step: st.Step, Status: st.Status, FailureClass: st.FailureClass, ErrorCode: st.ErrorCode,
			Message: st.Message, Remedy: st.Remedy, Reason: st.Reason, GoogleCalls: int(st.GoogleCalls), ExpireTime: st.ExpireTime,
		})
	}
	return out, nil
}

// LastScheduledRunStart returns when the tenant's last scheduled run started (ok=false: never).
func (s *Store) LastScheduledRunStart(ctx context.Context, tenant string) (time.Time, bool, error) {
	var t *time.Time
	if err := s.pool.QueryRow(ctx, q("LastScheduledRunStart"), pg.Args{"tenant": tenant}).Scan(&t); err != nil {
		return time.Time{}, false, err
	}
	if t == nil {
		return time.Time{}, false, nil
	}
	return *t, true, nil
}

// WithTenantLock runs fn while holding the tenant's run lease, so two runs of one tenant never
// overlap, whichever replica runs them. It waits for the lease (polling) until ctx ends; ttl bounds how
// long a crashed holder keeps it.
func (s *Store) WithTenantLock(ctx context.Context, tenant string, ttl time.Duration, fn func(context.Context) error) error {
	holder := uuid.NewString()
	for {
		var got string
		err := s.pool.QueryRow(ctx, q("TakeLease"), pg.Args{"tenant": tenant, "holder": holder, "ttl": ttl.String()}).Scan(&got)
		if err == nil {
			break
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("taking the tenant's run lease: %w", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the tenant's run lease: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	defer func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_, _ = s.pool.Exec(uctx, q("ReleaseLease"), pg.Args{"tenant": tenant, "holder": holder})
	}()
	return fn(ctx)
}
