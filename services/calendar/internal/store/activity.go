package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

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
	defer rows.Close()
	var out []ActivityDay
	for rows.Next() {
		var d ActivityDay
		if err := rows.Scan(&d.Start, &d.Notifications, &d.Syncs, &d.Errors, &d.Changes); err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
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
	defer rows.Close()
	var out []RecentChange
	for rows.Next() {
		var c RecentChange
		var start pgtype.Timestamptz
		if err := rows.Scan(&c.RecordTime, &c.Type, &c.Summary, &start, &c.StartDate, &c.AllDay); err != nil {
			return nil, err
		}
		if start.Valid {
			t := start.Time
			c.StartTime = &t
		}
		out = append(out, c)
	}
	return out, rows.Err()
}
