package store

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/algapsa/alga-google/services/platform/feed"
	"github.com/algapsa/alga-google/services/platform/pgtest"
)

type testBundle struct {
	ctx  context.Context
	pool *pgxpool.Pool
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	pool, _ := pgtest.NewPool(t)
	ctx := context.Background()
	require.NoError(t, Migrations().Apply(ctx, pool))
	return &testBundle{ctx: ctx, pool: pool}
}

// TestEveryQueryPrepares prepares every statement of queries.sql against the migrated schema: a
// misspelled column or a wrong type fails here, naming the statement.
func TestEveryQueryPrepares(t *testing.T) {
	t.Parallel()
	pgtest.CheckQueries(t, Migrations())
}

func TestProvidersScopedByTenant(t *testing.T) {
	t.Parallel()
	b := setup(t)
	p, err := CreateProvider(b.ctx, b.pool, NewProvider{Tenant: "t1", Mailbox: "support@acme.test", Active: true})
	require.NoError(t, err)
	require.Len(t, p.ID, 36)
	require.Equal(t, StateDisconnected, p.State)

	_, err = CreateProvider(b.ctx, b.pool, NewProvider{Tenant: "t1", Mailbox: "support@acme.test"})
	require.ErrorIs(t, err, ErrDuplicate)
	_, err = CreateProvider(b.ctx, b.pool, NewProvider{Tenant: "t2", Mailbox: "support@acme.test"})
	require.NoError(t, err, "the same address in another tenant is fine")

	_, err = GetProvider(b.ctx, b.pool, "t2", p.ID)
	require.ErrorIs(t, err, ErrNotFound)
	name := "Support"
	u, err := UpdateProvider(b.ctx, b.pool, "t1", p.ID, ProviderUpdate{DisplayName: &name, SetLabels: true, LabelFilters: []string{"INBOX", "Tickets"}})
	require.NoError(t, err)
	require.Equal(t, "Support", u.DisplayName)
	require.Equal(t, []string{"INBOX", "Tickets"}, u.LabelFilters)
	ok, err := DeleteProvider(b.ctx, b.pool, "t2", p.ID)
	require.NoError(t, err)
	require.False(t, ok)
}

func TestNotificationsAndMessagesOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	p, err := CreateProvider(b.ctx, b.pool, NewProvider{Tenant: "t1", Mailbox: "a@acme.test", Active: true})
	require.NoError(t, err)
	n := Notification{Tenant: "t1", ProviderID: p.ID, Subscription: "projects/p/subscriptions/s", PubSubMessageID: "m1", EmailAddress: "a@acme.test", HistoryID: 10}
	for i := range 3 {
		fresh, err := InsertNotification(b.ctx, b.pool, n)
		require.NoError(t, err)
		require.Equal(t, i == 0, fresh)
	}
	pend, err := PendingNotifications(b.ctx, b.pool, "t1", p.ID)
	require.NoError(t, err)
	require.EqualValues(t, 10, pend.MaxHistoryID)
	require.NoError(t, MarkProcessed(b.ctx, b.pool, "t1", p.ID, pend.MaxID))
	more, err := PendingAfter(b.ctx, b.pool, "t1", p.ID, 0)
	require.NoError(t, err)
	require.False(t, more)

	inbound, err := feed.New(feed.Options{Name: "gmail_inbound", Channel: "gmail_inbound"})
	require.NoError(t, err)
	err = pgx.BeginFunc(b.ctx, b.pool, func(tx pgx.Tx) error {
		app := inbound.Appender(tx, "t1")
		m := &Message{Tenant: "t1", ProviderID: p.ID, Mailbox: p.Mailbox, GmailMessageID: "g1", ReceiveTime: time.Now(),
			References: []string{"<a>"}, Subject: "nul\x00 \xff", Truncated: true}
		fresh, err := InsertMessage(b.ctx, app, m)
		require.NoError(t, err)
		require.True(t, fresh)
		fresh, err = InsertMessage(b.ctx, app, m)
		require.NoError(t, err)
		require.False(t, fresh)
		require.NoError(t, AdvanceHistory(b.ctx, tx, "t1", p.ID, 20))
		return AdvanceHistory(b.ctx, tx, "t1", p.ID, 15)
	})
	require.NoError(t, err)
	got, err := GetProvider(b.ctx, b.pool, "t1", p.ID)
	require.NoError(t, err)
	require.EqualValues(t, 20, *got.HistoryID, "history ids never go back")

	msgs, err := ListMessages(b.ctx, b.pool, "t1", "", 0, 10, 1<<20, false)
	require.NoError(t, err)
	require.Len(t, msgs, 1)
	require.Equal(t, []string{"<a>"}, msgs[0].References)
	require.Equal(t, "nul \uFFFD", msgs[0].Subject, "stored cleaned")
	require.True(t, msgs[0].Truncated)
	none, err := ListMessages(b.ctx, b.pool, "t2", "", 0, 10, 1<<20, false)
	require.NoError(t, err)
	require.Empty(t, none)
	nAck, err := Acknowledge(b.ctx, b.pool, "t2", []string{msgs[0].ID})
	require.NoError(t, err)
	require.Zero(t, nAck)
	nAck, err = Acknowledge(b.ctx, b.pool, "t1", []string{msgs[0].ID})
	require.NoError(t, err)
	require.EqualValues(t, 1, nAck)
	msgs, err = ListMessages(b.ctx, b.pool, "t1", p.ID, 0, 10, 1<<20, false)
	require.NoError(t, err)
	require.Empty(t, msgs)
}

// A failure found by a sync or upkeep step after the provider was disconnected (reset) records nothing.
func TestSetErrorLeavesADisconnectedProviderAlone(t *testing.T) {
	t.Parallel()
	b := setup(t)
	p, err := CreateProvider(b.ctx, b.pool, NewProvider{Tenant: "t1", Mailbox: "a@acme.test", Active: true})
	require.NoError(t, err)
	_, err = SetError(b.ctx, b.pool, "t1", p.ID, "token", "token_missing", "gone", "reconnect")
	require.ErrorIs(t, err, ErrNotFound)
	got, err := GetProvider(b.ctx, b.pool, "t1", p.ID)
	require.NoError(t, err)
	require.Equal(t, StateDisconnected, got.State)
}

func TestSubscriptionOwnedByOneTenant(t *testing.T) {
	t.Parallel()
	b := setup(t)
	s := Subscription{Name: "projects/p/subscriptions/s", Tenant: "t1", ProjectID: "p", Topic: "projects/p/topics/t", ServiceAccountEmail: "sa@p.iam.gserviceaccount.com"}
	require.NoError(t, UpsertSubscription(b.ctx, b.pool, s))
	require.NoError(t, UpsertSubscription(b.ctx, b.pool, s))
	s.Tenant = "t2"
	require.ErrorIs(t, UpsertSubscription(b.ctx, b.pool, s), ErrSubscriptionOwned)
	got, err := GetSubscription(b.ctx, b.pool, s.Name)
	require.NoError(t, err)
	require.Equal(t, "t1", got.Tenant)
}

// Google's words reach error messages, step details and the timeline: a NUL or invalid UTF-8 in them is
// stored cleaned instead of failing the transaction that records the failure.
func TestOutsideTextIsStoredCleaned(t *testing.T) {
	t.Parallel()
	b := setup(t)
	p, err := CreateProvider(b.ctx, b.pool, NewProvider{Tenant: "t1", Mailbox: "a@acme.test", Active: true})
	require.NoError(t, err)
	_, err = SetConnecting(b.ctx, b.pool, "t1", p.ID) // a disconnected provider takes no error (SetError)
	require.NoError(t, err)
	got, err := SetError(b.ctx, b.pool, "t1", p.ID, "watch", "watch_failed", "Google said \x00\xff", "retry")
	require.NoError(t, err)
	require.Equal(t, "Google said \uFFFD", got.ErrorMessage)
	require.NoError(t, UpsertSteps(b.ctx, b.pool, "t1", p.ID, []Step{{Name: "watch", Detail: "403 \x00denied", CheckTime: time.Now()}}))
	steps, err := ListSteps(b.ctx, b.pool, "t1", p.ID)
	require.NoError(t, err)
	require.Equal(t, "403 denied", steps[0].Detail)
	require.NoError(t, InsertEvent(b.ctx, b.pool, "t1", p.ID, Event{Type: "watch_failed", Message: "\x00x"}))
	events, err := ListEvents(b.ctx, b.pool, "t1", p.ID, 1)
	require.NoError(t, err)
	require.Equal(t, "x", events[0].Message)
}

// ListMessages stops before the message that would take the page past maxBytes (by the bodies' stored
// sizes, so those rows' bodies are never read), but always returns the first one.
func TestListMessagesBoundedByBytes(t *testing.T) {
	t.Parallel()
	b := setup(t)
	p, err := CreateProvider(b.ctx, b.pool, NewProvider{Tenant: "t1", Mailbox: "a@acme.test", Active: true})
	require.NoError(t, err)
	inbound, err := feed.New(feed.Options{Name: "gmail_inbound", Channel: "gmail_inbound"})
	require.NoError(t, err)
	const body = 100 << 10
	require.NoError(t, pgx.BeginFunc(b.ctx, b.pool, func(tx pgx.Tx) error {
		app := inbound.Appender(tx, "t1")
		for i := range 5 {
			m := &Message{Tenant: "t1", ProviderID: p.ID, Mailbox: p.Mailbox, GmailMessageID: fmt.Sprintf("g%d", i),
				ReceiveTime: time.Now(), TextBody: strings.Repeat("x", body), HTMLBody: strings.Repeat("y", body/2)}
			if _, err := InsertMessage(b.ctx, app, m); err != nil {
				return err
			}
		}
		return nil
	}))
	count := func(after int64, maxBytes int) (int, int64) {
		msgs, err := ListMessages(b.ctx, b.pool, "t1", "", after, 500, maxBytes, false)
		require.NoError(t, err)
		if len(msgs) == 0 {
			return 0, after
		}
		return len(msgs), msgs[len(msgs)-1].Seq
	}
	n, _ := count(0, 1<<30)
	require.Equal(t, 5, n)
	n, _ = count(0, 2*body*3/2+1024) // two rows' bodies and their small columns fit, a third does not
	require.Equal(t, 2, n)
	n, last := count(0, 1)
	require.Equal(t, 1, n, "the first row even when it alone is past the bound")
	n, _ = count(last, 4*body*3/2+4096)
	require.Equal(t, 4, n, "the rest, after the cursor")
}
