package service

import (
	"testing"

	"github.com/stretchr/testify/require"

	calendarv1 "github.com/algapsa/alga-google/gen/alga/calendar/v1"
	"github.com/algapsa/alga-google/services/platform/errs"
)

// A database error during a sync — after Google answered — is the service's own failure: reported as
// such (not "Google Calendar did not answer"), transient (retried, never cancelled), not recorded on the
// provider as a Google problem; the next sync, once the database works, records the change.
func TestDatabaseErrorDuringSyncIsNotGooglesAndIsRetried(t *testing.T) {
	t.Parallel()
	b := setup(t)
	p := b.connect(t, "alice")
	before := len(b.changes(t, p.GetId()))
	b.google.put("primary", "late", "added after the connection")
	// A real PostgreSQL failure of the sync's transaction: every new change row is refused.
	_, err := b.pool.Exec(b.ctx, "ALTER TABLE calendar.changes ADD CONSTRAINT refuse_all CHECK (false) NOT VALID")
	require.NoError(t, err)

	err = b.svc.SyncProvider(b.ctx, tenant, p.GetId())
	require.Error(t, err)
	require.True(t, errs.HasReason(err, "STORAGE_UNAVAILABLE"), "%v", err)
	require.NotContains(t, err.Error(), "Google Calendar did not answer")
	require.False(t, isPermanent(err), "retried, not cancelled")
	require.Equal(t, errStorageUnavailable, classified(err))
	require.Equal(t, classTransient, classified(err).class)
	got, err := b.svc.GetCalendarProvider(userCtx("alice"), &calendarv1.GetCalendarProviderRequest{Id: p.GetId()})
	require.NoError(t, err)
	require.Equal(t, calendarv1.ProviderStatus_PROVIDER_STATUS_CONNECTED, got.GetProvider().GetStatus(), "not shown as a Google problem")

	_, err = b.pool.Exec(b.ctx, "ALTER TABLE calendar.changes DROP CONSTRAINT refuse_all")
	require.NoError(t, err)
	require.NoError(t, b.svc.SyncProvider(b.ctx, tenant, p.GetId()), "the retry succeeds")
	require.Len(t, b.changes(t, p.GetId()), before+1)
}
