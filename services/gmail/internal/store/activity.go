package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/algapsa/alga-google/services/platform/pg"
)

// ActivityDay is one UTC day of a provider's traffic.
type ActivityDay struct {
	Start                           time.Time
	Pushes, Syncs, Errors, Messages int64
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

// RecentMessage is what the UI shows of an inbound message.
type RecentMessage struct {
	ReceiveTime   time.Time
	From, Subject string
}

// RecentMessages returns a provider's newest inbound messages.
func RecentMessages(ctx context.Context, db DB, tenant, providerID string, limit int) ([]RecentMessage, error) {
	rows, err := db.Query(ctx, q("RecentMessages"), pg.Args{"tenant": tenant, "provider_id": providerID, "limit": limit})
	if err != nil {
		return nil, err
	}
	// The query's columns are in the struct's field order.
	return pgx.CollectRows(rows, pgx.RowToStructByPos[RecentMessage])
}
