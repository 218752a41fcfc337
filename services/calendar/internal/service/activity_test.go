package service

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	calendarv1 "github.com/algapsa/alga-google/gen/alga/calendar/v1"
	"github.com/algapsa/alga-google/services/platform/auth"
)

func TestActivityCountsDaysAndShowsLatestChanges(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.google.put("primary", "ev1", "Standup")
	b.google.put("primary", "ev2", "Customer visit")
	p := b.connect(t, "alice") // the initial sync records two changes
	time.Sleep(5 * time.Millisecond)
	ch := b.activeChannel(t, p.GetId())
	b.google.put("primary", "ev3", "Emergency repair")
	require.Equal(t, int32(http.StatusOK), b.notify(t, b.google.notification(ch.ChannelID, "exists")))
	b.drain(t)

	res, err := b.svc.GetCalendarProviderActivity(userCtx("alice"), &calendarv1.GetCalendarProviderActivityRequest{Id: p.GetId()})
	require.NoError(t, err)
	days := res.GetDays()
	require.Len(t, days, 7)
	today := time.Now().UTC().Truncate(24 * time.Hour)
	require.True(t, days[6].GetStartTime().AsTime().Equal(today), "oldest first, ending today (UTC)")
	require.EqualValues(t, 1, days[6].GetNotifications())
	require.EqualValues(t, 2, days[6].GetSyncs(), "the initial sync and the one the notification caused")
	require.EqualValues(t, 3, days[6].GetChanges())
	require.Zero(t, days[6].GetErrors())
	for _, d := range days[:6] {
		require.Zero(t, d.GetNotifications()+d.GetSyncs()+d.GetChanges()+d.GetErrors())
	}
	changes := res.GetRecentChanges()
	require.Len(t, changes, 3)
	require.Equal(t, "Emergency repair", changes[0].GetSummary(), "newest first")
	require.Equal(t, calendarv1.ChangeType_CHANGE_TYPE_CREATED, changes[0].GetType())
	require.NotNil(t, changes[0].GetRecordTime())

	limited, err := b.svc.GetCalendarProviderActivity(userCtx("alice"), &calendarv1.GetCalendarProviderActivityRequest{Id: p.GetId(), Days: 1, ChangeCount: 1})
	require.NoError(t, err)
	require.Len(t, limited.GetDays(), 1)
	require.Len(t, limited.GetRecentChanges(), 1)

	// Another technician cannot see it (NotFound, like every other read); an admin can.
	_, err = b.svc.GetCalendarProviderActivity(userCtx("bob"), &calendarv1.GetCalendarProviderActivityRequest{Id: p.GetId()})
	require.Equal(t, codes.NotFound, code(err))
	_, err = b.svc.GetCalendarProviderActivity(userCtx("admin", auth.PermSystemSettingsUpdate), &calendarv1.GetCalendarProviderActivityRequest{Id: p.GetId()})
	require.NoError(t, err)

	require.Error(t, (&calendarv1.GetCalendarProviderActivityRequest{Id: p.GetId(), Days: 40}).Validate())
	require.Error(t, (&calendarv1.GetCalendarProviderActivityRequest{Id: p.GetId(), ChangeCount: -1}).Validate())
	require.Error(t, (&calendarv1.GetCalendarProviderActivityRequest{Id: "p1:activity"}).Validate())
	require.NoError(t, (&calendarv1.GetCalendarProviderActivityRequest{Id: p.GetId()}).Validate())
}
