package store

import (
	"context"
	"time"

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
	defer rows.Close()
	var out []ActivityDay
	for rows.Next() {
		var d ActivityDay
		if err := rows.Scan(&d.Start, &d.Pushes, &d.Syncs, &d.Errors, &d.Messages); err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
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
	defer rows.Close()
	var out []RecentMessage
	for rows.Next() {
		var m RecentMessage
		if err := rows.Scan(&m.ReceiveTime, &m.From, &m.Subject); err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}
