package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/algapsa/alga-google/services/platform/pg"
)

// ActivityDay is one UTC day of a provider's traffic.
type ActivityDay struct {
	Start                                 time.Time
	Notifications, Syncs, Errors, Changes int64
}

// ActivityDays counts a provider's traffic per UTC day over the last days days, today included.
func ActivityDays(ctx context.Context, db DB, tenant, providerID string, days int) ([]ActivityDay, error) {
	rows, err := db.Query(ctx, q("ActivityDays"), pg.Args{"tenant": tenant, "provider_id": providerID, "days": days})
	if err != nil {
		return nil, err
	}
	// The query's columns are in the struct's field order.
	return pgx.CollectRows(rows, pgx.RowToStructByPos[ActivityDay])
}

// RecentChange is what the UI shows of a recorded change.
type RecentChange struct {
	RecordTime time.Time
	Type       int16
	Summary    string
	StartTime  *time.Time
	StartDate  string
	AllDay     bool
}

// RecentChanges returns a provider's latest recorded changes.
func RecentChanges(ctx context.Context, db DB, tenant, providerID string, limit int) ([]RecentChange, error) {
	rows, err := db.Query(ctx, q("RecentChanges"), pg.Args{"tenant": tenant, "provider_id": providerID, "limit": limit})
	if err != nil {
		return nil, err
	}
	// The query's columns are in the struct's field order; a NULL start_time is a nil StartTime.
	return pgx.CollectRows(rows, pgx.RowToStructByPos[RecentChange])
}
