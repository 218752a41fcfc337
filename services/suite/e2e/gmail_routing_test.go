package e2e_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/algapsa/alga-google/services/googlesandbox"
	"github.com/algapsa/alga-google/services/suite/harness"
)

// TestGmailRoutingAcrossMailboxesAndTenants: two mailboxes of one tenant, and one address connected in two
// tenants (each with its own Google project), each push lands with the provider it belongs to.
func TestGmailRoutingAcrossMailboxesAndTenants(t *testing.T) {
	t.Parallel()
	e := newEnv(t, harness.Options{})
	a := e.setupTenant(t, "tenant-ra", "acme-route-a", setupOpts{})
	b := e.setupTenant(t, "tenant-rb", "acme-route-b", setupOpts{})
	a1 := e.connectGmail(t, a, "sales@acme.test")
	a2 := e.connectGmail(t, a, "billing@acme.test")
	// The same address in both tenants: tenant A first, then tenant B, whose watch is now the live one.
	aShared := e.connectGmail(t, a, "shared@acme.test")
	bShared := e.connectGmail(t, b, "shared@acme.test")
	dA, dB := e.diagnostics(t, a, aShared.ID), e.diagnostics(t, b, bShared.ID)
	require.NotEqual(t, dA.Diagnostics.Subscription, dB.Diagnostics.Subscription)
	require.NotEqual(t, dA.Diagnostics.Topic, dB.Diagnostics.Topic)
	e.waitSyncIdle(t)

	e.deliver(t, "sales@acme.test", plainEmail("sales@acme.test", "For sales"))
	e.deliver(t, "billing@acme.test", plainEmail("billing@acme.test", "For billing"))
	e.deliver(t, "shared@acme.test", plainEmail("shared@acme.test", "For shared (B's watch)"))
	require.Equal(t, []string{"For sales"}, subjects(e.waitInbound(t, a.tenant, a1.ID, 1)))
	require.Equal(t, []string{"For billing"}, subjects(e.waitInbound(t, a.tenant, a2.ID, 1)))
	require.Equal(t, []string{"For shared (B's watch)"}, subjects(e.waitInbound(t, b.tenant, bShared.ID, 1)))
	require.Empty(t, e.inbound(t, a.tenant, aShared.ID), "B's subscription is never routed to A's provider with the same address")
	// Each tenant sees only its own messages.
	require.Len(t, e.inbound(t, a.tenant, ""), 2)
	require.Len(t, e.inbound(t, b.tenant, ""), 1)
	require.Empty(t, e.inbound(t, b.tenant, a1.ID), "another tenant's provider id reads nothing")
	require.Equal(t, 1, e.count(t, "SELECT count(*) FROM gmail.notifications WHERE tenant = $1 AND provider_id = $2 AND subscription = $3",
		b.tenant, bShared.ID, dB.Diagnostics.Subscription))
	require.Equal(t, 0, e.count(t, "SELECT count(*) FROM gmail.notifications WHERE provider_id = $1", aShared.ID))

	// A refresh makes tenant A's watch the live one again: the next mail goes through A's subscription to
	// A's provider (which catches up from its own history id) and not to B's.
	r := a.adminHTTP.Do(t, http.MethodPost, "/api/v1/gmail/providers/"+aShared.ID+":refresh", map[string]any{})
	require.Equal(t, http.StatusOK, r.Status, r.Errorf())
	w, err := e.admin.Watches(e.ctx, "shared@acme.test")
	require.NoError(t, err)
	require.Equal(t, dA.Diagnostics.Topic, w[0].TopicName)
	e.waitSyncIdle(t)
	e.deliver(t, "shared@acme.test", googlesandbox.Email{From: "x@example.com", To: "shared@acme.test", Subject: "For shared (A's watch)", Body: "b"})
	got := e.waitInbound(t, a.tenant, aShared.ID, 2)
	require.ElementsMatch(t, []string{"For shared (B's watch)", "For shared (A's watch)"}, subjects(got))
	require.Equal(t, []string{"For shared (B's watch)"}, subjects(e.inbound(t, b.tenant, bShared.ID)))
	// Every push on a tenant's subscription went to that tenant's provider of the push's address.
	require.Equal(t, 0, e.count(t, `SELECT count(*) FROM gmail.notifications n JOIN gmail.providers p ON p.id = n.provider_id
		WHERE n.tenant <> p.tenant OR p.mailbox <> n.email_address
		   OR n.subscription <> CASE n.tenant WHEN $1 THEN $2 ELSE $3 END`, a.tenant, dA.Diagnostics.Subscription, dB.Diagnostics.Subscription))
	require.Equal(t, 1, e.count(t, "SELECT count(*) FROM gmail.notifications WHERE provider_id = $1", aShared.ID))
}

// TestGmailStaleHistoryRecoversEverything: mail that arrives while the stored history id goes stale (its
// notifications lost, the history expired) is all recovered by the backfill, none twice.
func TestGmailStaleHistoryRecoversEverything(t *testing.T) {
	t.Parallel()
	e := newEnv(t, harness.Options{})
	ts := e.setupTenant(t, "tenant-stale", "acme-stale-1", setupOpts{})
	p := e.connectGmail(t, ts, "desk@acme.test")
	e.waitSyncIdle(t)
	e.deliver(t, "desk@acme.test", plainEmail("desk@acme.test", "Before"))
	e.waitInbound(t, ts.tenant, p.ID, 1)

	// Notifications are lost while three messages arrive; then Gmail's history for them expires.
	require.NoError(t, e.admin.SetFault(e.ctx, googlesandbox.Fault{Endpoint: "gmail.notification", DropNotifications: true}))
	for _, s := range []string{"Lost 1", "Lost 2", "Lost 3"} {
		require.False(t, e.deliver(t, "desk@acme.test", plainEmail("desk@acme.test", s)).Notified)
	}
	require.NoError(t, e.admin.ExpireHistory(e.ctx, "desk@acme.test"))
	require.NoError(t, e.admin.ClearFaults(e.ctx))
	require.Len(t, e.inbound(t, ts.tenant, p.ID), 1)
	listsBefore := e.counter(t, "gmail.users.messages.list")

	// The next message's push finds the history id stale (404): backfill, then the new baseline.
	require.True(t, e.deliver(t, "desk@acme.test", plainEmail("desk@acme.test", "After")).Notified)
	got := e.waitInbound(t, ts.tenant, p.ID, 5)
	require.ElementsMatch(t, []string{"Before", "Lost 1", "Lost 2", "Lost 3", "After"}, subjects(got), "all recovered, none twice")
	require.Positive(t, e.counter(t, "gmail.users.messages.list")-listsBefore, "recovered by a backfill")
	require.Equal(t, "PROVIDER_STATUS_CONNECTED", e.provider(t, ts, p.ID).Status)

	// Syncs work incrementally again from the new baseline.
	e.deliver(t, "desk@acme.test", plainEmail("desk@acme.test", "Later"))
	got = e.waitInbound(t, ts.tenant, p.ID, 6)
	require.Equal(t, "Later", got[5].GetSubject())
}
