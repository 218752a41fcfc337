package service

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/oauth2"

	secretsv1 "github.com/algapsa/alga-google/gen/alga/secrets/v1"
	"github.com/algapsa/alga-google/services/oauth/internal/store"
)

// SeedGrant is one grant for SeedGrants: what an authorization of Kind ("gmail" or "calendar") for the
// provider, begun by UserID and consented by AccountEmail with the OAuth client ClientID, ends with —
// Google's token response.
type SeedGrant struct {
	Kind, ProviderID, UserID, AccountEmail, ClientID string
	Token                                            *oauth2.Token
}

// SeedGrants stores connected grants of one tenant the way a completed authorization stores its grant
// (storeGrant): each token as its own encrypted secret through the secrets service (PutSecrets, as the
// identity ctx carries: the oauth service acting for tenant), then the connection row and its
// "connected" timeline event (saveConnection) — batched (at most secretsv1.MaxBatch tokens per PutSecrets,
// every row in one transaction) and without the authorization flow. now is the consent and connect time.
// A provider already connected keeps its connection id, as on a reconnect. It returns the connections in
// the order of grants.
//
// For arranging tests (package oauthtesting); nothing in production stores a grant this way.
func SeedGrants(ctx context.Context, pool *pgxpool.Pool, secrets secretsv1.SecretsServiceClient, tenant string, grants []SeedGrant, now time.Time) ([]store.Connection, error) {
	rows := make([]store.Connection, len(grants))
	writes := make([]*secretsv1.SecretWrite, len(grants))
	for i, g := range grants {
		if g.Kind != kindGmail && g.Kind != kindCalendar {
			return nil, fmt.Errorf("grant %d: kind %q is not gmail or calendar", i, g.Kind)
		}
		if g.Token == nil || g.Token.RefreshToken == "" {
			return nil, fmt.Errorf("grant %d (%s): %w", i, g.ProviderID, errNoRefreshToken)
		}
		connID := uuid.NewString()
		existing, err := store.GetConnection(ctx, pool, tenant, g.Kind, g.ProviderID)
		switch {
		case err == nil:
			connID = existing.ID
		case !errors.Is(err, store.ErrNotFound):
			return nil, err
		}
		stored := tokenFrom(g.Token, g.ClientID)
		if writes[i], err = tokenWrite(connID, stored); err != nil {
			return nil, err
		}
		rows[i] = connectionOf(connID, tenant, g.Kind, g.ProviderID, g.UserID, g.AccountEmail, g.ClientID, stored)
	}
	for start := 0; start < len(writes); start += secretsv1.MaxBatch {
		batch := writes[start:min(start+secretsv1.MaxBatch, len(writes))]
		if _, err := secrets.PutSecrets(ctx, &secretsv1.PutSecretsRequest{Writes: batch}); err != nil {
			return nil, fmt.Errorf("storing tokens through the secrets service: %w", err)
		}
	}
	out := make([]store.Connection, len(rows))
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		for i, c := range rows {
			var err error
			if out[i], err = saveConnection(ctx, tx, c, now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
