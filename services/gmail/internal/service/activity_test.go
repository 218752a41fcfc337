package service

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	gmailv1 "github.com/algapsa/alga-google/gen/alga/gmail/v1"
)

func TestActivityCountsDaysAndShowsRecentMessages(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.configureTenant("t1")
	p := b.connect(t, "t1", "support@acme.test")
	b.gm.deliver("support@acme.test", "First question")
	b.gm.deliver("support@acme.test", "Second question")
	require.EqualValues(t, 204, b.notify(t, "t1", "support@acme.test", "ps-1"))
	b.waitMessages(t, "t1", p.GetId(), 2)

	var resp *gmailv1.GetGmailProviderActivityResponse
	require.Eventually(t, func() bool {
		var err error
		resp, err = b.providers().GetGmailProviderActivity(b.user("t1"), &gmailv1.GetGmailProviderActivityRequest{Id: p.GetId()})
		require.NoError(t, err)
		return len(resp.GetDays()) == 7 && resp.GetDays()[6].GetSyncs() > 0
	}, 10*time.Second, 50*time.Millisecond, "the sync is counted once it finished")
	days := resp.GetDays()
	today := time.Now().UTC().Truncate(24 * time.Hour)
	require.True(t, days[6].GetStartTime().AsTime().Equal(today), "oldest first, ending today (UTC)")
	require.True(t, days[0].GetStartTime().AsTime().Equal(today.AddDate(0, 0, -6)))
	require.EqualValues(t, 1, days[6].GetPushes())
	require.EqualValues(t, 2, days[6].GetMessages())
	require.Zero(t, days[6].GetErrors())
	for _, d := range days[:6] {
		require.Zero(t, d.GetPushes()+d.GetSyncs()+d.GetMessages()+d.GetErrors())
	}
	msgs := resp.GetRecentMessages()
	require.Len(t, msgs, 2)
	var subjects []string
	for _, m := range msgs {
		subjects = append(subjects, m.GetSubject())
		require.Contains(t, m.GetFrom(), "customer@example.com")
		require.NotNil(t, m.GetReceiveTime())
	}
	require.ElementsMatch(t, []string{"First question", "Second question"}, subjects)
	require.False(t, msgs[0].GetReceiveTime().AsTime().Before(msgs[1].GetReceiveTime().AsTime()), "newest first")

	one, err := b.providers().GetGmailProviderActivity(b.user("t1", permTicketSettings), &gmailv1.GetGmailProviderActivityRequest{Id: p.GetId(), Days: 2, MessageCount: 1})
	require.NoError(t, err, "ticket_settings:update may read it, as diagnostics")
	require.Len(t, one.GetDays(), 2)
	require.Len(t, one.GetRecentMessages(), 1)

	_, err = b.providers().GetGmailProviderActivity(b.user("t1", "tickets:read"), &gmailv1.GetGmailProviderActivityRequest{Id: p.GetId()})
	require.Equal(t, codes.PermissionDenied, status.Code(err))
	_, err = b.providers().GetGmailProviderActivity(b.user("t2"), &gmailv1.GetGmailProviderActivityRequest{Id: p.GetId()})
	require.Equal(t, codes.NotFound, status.Code(err), "another tenant's provider")
	_, err = b.providers().GetGmailProviderActivity(b.user("t1"), &gmailv1.GetGmailProviderActivityRequest{Id: p.GetId(), Days: 32})
	require.Equal(t, codes.InvalidArgument, status.Code(err))
	_, err = b.providers().GetGmailProviderActivity(b.user("t1"), &gmailv1.GetGmailProviderActivityRequest{Id: "p1:activity"})
	require.Equal(t, codes.InvalidArgument, status.Code(err))
}
