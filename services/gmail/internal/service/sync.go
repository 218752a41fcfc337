package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"google.golang.org/api/gmail/v1"

	"github.com/algapsa/alga-google/services/gmail/internal/mailparse"
	"github.com/algapsa/alga-google/services/gmail/internal/store"
	"github.com/algapsa/alga-google/services/platform/jobs"
)

// SyncArgs is the per-mailbox history sync job; unique by provider, so notifications coalesce.
type SyncArgs struct {
	ProviderID string `json:"provider_id" river:"unique"`
	Tenant     string `json:"tenant"`
}

func (SyncArgs) Kind() string { return "gmail_history_sync" }

// Limits of one sync.
const (
	maxHistoryPages  = 200
	maxBackfillPages = 20
	backfillMargin   = time.Hour
	maxSyncRounds    = 5
)

func (s *Service) enqueueSync(ctx context.Context, tx pgx.Tx, tenant, providerID string) error {
	if s.river == nil {
		return errors.New("job queue not started")
	}
	// The lock orders this insert with a running sync's last look for pending notifications (see
	// finishIfIdle): either that look sees our notification, or our insert sees the job completed.
	if err := store.LockProvider(ctx, tx, tenant, providerID); err != nil {
		return err
	}
	_, err := s.river.InsertTx(ctx, tx, SyncArgs{ProviderID: providerID, Tenant: tenant}, jobs.Coalesce())
	return err
}

type syncWorker struct {
	river.WorkerDefaults[SyncArgs]
	s *Service
}

// Timeout bounds one run (a big backfill may take minutes). River's rescue waits at least this long, so
// a crashed replica's job is recovered earlier by the sweeper, from its lapsed sync lease (see sweep).
func (w *syncWorker) Timeout(*river.Job[SyncArgs]) time.Duration { return 10 * time.Minute }

func (w *syncWorker) Work(ctx context.Context, job *river.Job[SyncArgs]) error {
	return jobs.SnoozeLater(w.s.syncProvider(ctx, job)) // a tenant's Google cool-down: run again when it ends
}

// sweep (the periodic sweeper, see jobs.AddSweeper) enqueues syncs for notifications left pending: a
// sync that was skipped because one was running, a lost enqueue, or a crash. A mailbox whose sync lease
// someone holds is being synced by a live holder (it renews the lease while it works) and is left to
// it. Otherwise a sync job still "running" for the mailbox since before the lease's TTL is a dead
// replica's (a live job holds the lease from its first moment): it is ended (jobs.EndAbandoned), so it
// no longer blocks the coalescing key, and a new job is enqueued in the same transaction — recovery
// within syncLeaseTTL + SweepAge + SweepEvery of the crash instead of River's rescue.
func (s *Service) sweep(ctx context.Context) error {
	list, err := store.ProvidersWithStalePending(ctx, s.pool, s.opts.SweepAge)
	if err != nil {
		return err
	}
	for _, tp := range list {
		if err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			if err := store.LockProvider(ctx, tx, tp.Tenant, tp.ProviderID); err != nil {
				return err
			}
			held, err := store.SyncLeases.Held(ctx, tx, tp.Tenant, tp.ProviderID)
			if err != nil || held {
				return err
			}
			ended, err := jobs.EndAbandoned(ctx, tx, s.river, SyncArgs{}.Kind(), time.Now().Add(-s.opts.SyncLeaseTTL),
				"args->>'provider_id' = @provider_id", river.NamedArgs{"provider_id": tp.ProviderID})
			if err != nil {
				return err
			}
			if ended > 0 {
				s.log.WarnContext(ctx, "gmail sync: ended a dead replica's sync job (its lease lapsed)", "provider", tp.ProviderID, "jobs", ended)
			}
			return s.enqueueSync(ctx, tx, tp.Tenant, tp.ProviderID)
		}); err != nil {
			return err
		}
	}
	return nil
}

// syncProvider runs history syncs for one mailbox until no notification is left pending. Only one runs
// per mailbox at a time (unique job); notifications that arrive during a run are picked up by the next
// round instead of a second job.
//
// The job holds the mailbox's sync lease for its whole run, renewed by a heartbeat (HoldForJob), so
// a reconcile never reads the same history at once and a job whose replica died is recognised by its
// lapsed lease (see sweep). A job that finds the lease held snoozes; one that loses it stops.
func (s *Service) syncProvider(ctx context.Context, job *river.Job[SyncArgs]) error {
	tenant, providerID := job.Args.Tenant, job.Args.ProviderID
	// A lease held by another holder is a reconcile of this mailbox reading the same history: the job
	// snoozes and looks again shortly.
	ctx, release, err := store.SyncLeases.HoldForJob(ctx, s.pool, s.log, tenant, providerID, job.ID, s.opts.SyncLeaseTTL)
	if release == nil {
		return err
	}
	defer release()
	for round := 0; round < maxSyncRounds; round++ {
		pend, err := s.settle(ctx, tenant, providerID)
		if err != nil {
			return err
		}
		p, err := store.GetProvider(ctx, s.pool, tenant, providerID)
		if errors.Is(err, store.ErrNotFound) {
			return nil // deleted meanwhile
		}
		if err != nil {
			return err
		}
		if p.Active && p.State == store.StateConnected && p.HistoryID != nil {
			// A redelivered or old notification (history id already processed) needs no Google call.
			if round == 0 || pend.MaxHistoryID == 0 || pend.MaxHistoryID > *p.HistoryID {
				err = s.syncLeased(ctx, p)
				if err != nil {
					var tp *tokenProblem
					if errors.As(err, &tp) && !tp.transient() {
						s.log.WarnContext(ctx, "gmail sync: connection needs an admin", "provider", p.ID, "code", tp.code)
						if err := s.recordSyncTokenProblem(ctx, p, tp); err != nil {
							return err
						}
						s.metrics.syncs.WithLabelValues("reauthorization_required").Inc()
						return store.MarkProcessed(ctx, s.pool, tenant, providerID, pend.MaxID)
					}
					s.metrics.syncs.WithLabelValues("error").Inc()
					return err
				}
				s.metrics.syncs.WithLabelValues("ok").Inc()
			}
		}
		if err := store.MarkProcessed(ctx, s.pool, tenant, providerID, pend.MaxID); err != nil {
			return err
		}
		idle, err := s.finishIfIdle(ctx, job, pend.MaxID)
		if err != nil || idle {
			return err
		}
	}
	return river.JobSnooze(time.Second)
}

// finishIfIdle completes the job unless notifications arrived after upTo. The look and the completion
// share one transaction under the provider's lock, which enqueueSync takes too: a notification stored
// meanwhile is either seen here (another round) or finds this job completed and enqueues a new one.
func (s *Service) finishIfIdle(ctx context.Context, job *river.Job[SyncArgs], upTo int64) (bool, error) {
	return jobs.FinishIfIdle(ctx, s.pool, job, func(ctx context.Context, tx pgx.Tx) (bool, error) {
		if err := store.LockProvider(ctx, tx, job.Args.Tenant, job.Args.ProviderID); err != nil {
			return false, err
		}
		more, err := store.PendingAfter(ctx, tx, job.Args.Tenant, job.Args.ProviderID, upTo)
		return !more, err
	})
}

// settle waits (briefly) until a burst of notifications has stopped, so a burst causes one sync, and
// returns the mailbox's pending notifications as last seen.
func (s *Service) settle(ctx context.Context, tenant, providerID string) (store.Pending, error) {
	var pend store.Pending
	err := jobs.Settle(ctx, s.opts.Settle, s.opts.MaxSettle, func(ctx context.Context) (time.Duration, bool, error) {
		var err error
		pend, err = store.PendingNotifications(ctx, s.pool, tenant, providerID)
		return pend.Quiet, pend.MaxID != 0, err
	})
	return pend, err
}

// recordSyncTokenProblem puts the provider in ERROR for a broken grant found by a push-triggered sync
// (the token's error: a later success of a step using the token clears it).
func (s *Service) recordSyncTokenProblem(ctx context.Context, p *store.Provider, tp *tokenProblem) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		_, err := store.SetError(ctx, tx, p.Tenant, p.ID, stepToken, tp.code, tp.message, tp.remedy)
		if errors.Is(err, store.ErrNotFound) {
			return nil // reset or deleted while the sync ran: its connection's failure is moot
		}
		if err != nil {
			return err
		}
		return store.InsertEvent(ctx, tx, p.Tenant, p.ID, store.Event{Type: "sync_failed", Step: stepToken, ErrorCode: tp.code, Message: tp.message})
	})
}

// syncLeaseTTL is how long a sync lease lasts without renewal (Options.SyncLeaseTTL): a live holder
// renews it every TTL/3 (lease.Table.Keep), so it never lapses under a working holder, while a dead
// holder's (kill -9) lapses within the TTL and the sweeper recovers its mailbox (see sweep). Short, so
// mail waits seconds, not River's rescue, after a crash; three renewals per TTL ride out a slow query.
const syncLeaseTTL = 20 * time.Second

// leaseSync takes the mailbox's sync lease for holder, waiting up to wait for the holder before
// (0: one try). A push-triggered sync and a reconcile never read the same mailbox's history at once.
func (s *Service) leaseSync(ctx context.Context, p *store.Provider, holder string, wait time.Duration) (bool, error) {
	deadline := time.Now().Add(wait)
	for {
		ok, err := store.SyncLeases.Acquire(ctx, s.pool, p.Tenant, p.ID, holder, s.opts.SyncLeaseTTL)
		if err != nil || ok || !time.Now().Before(deadline) {
			return ok, err
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// syncLeased runs syncOnce under the sync lease the caller holds (store.SyncLeases.Keep), re-reading the
// provider first (a sync that held the lease before may have advanced its history id).
func (s *Service) syncLeased(ctx context.Context, p *store.Provider) error {
	fresh, err := store.GetProvider(ctx, s.pool, p.Tenant, p.ID)
	if err != nil {
		return err
	}
	*p = *fresh
	if p.HistoryID == nil {
		return nil
	}
	return s.syncOnce(ctx, p)
}

// syncOnce reads the mailbox history from the stored history id and stores every new message.
func (s *Service) syncOnce(ctx context.Context, p *store.Provider) error {
	mb, err := s.openMailbox(ctx, p)
	if err != nil {
		return err
	}
	labels := p.WatchLabelIDs
	pageToken := ""
	for page := 0; page < maxHistoryPages; page++ {
		var resp *gmail.ListHistoryResponse
		err := mb.do(ctx, 4, func(gm *gmail.Service) error {
			call := gm.Users.History.List("me").StartHistoryId(uint64(*p.HistoryID)).HistoryTypes("messageAdded").MaxResults(500)
			if len(labels) == 1 {
				call = call.LabelId(labels[0])
			}
			if pageToken != "" {
				call = call.PageToken(pageToken)
			}
			var err error
			resp, err = call.Context(ctx).Do()
			return err
		})
		if isHTTP(err, http.StatusNotFound) {
			return s.recoverStale(ctx, p, mb)
		}
		if err != nil {
			return fmt.Errorf("history.list: %w", err)
		}
		var ids []string
		var pageMax uint64
		for _, h := range resp.History {
			pageMax = max(pageMax, h.Id)
			for _, added := range h.MessagesAdded {
				m := added.Message
				if m == nil || m.Id == "" || slices.Contains(ids, m.Id) {
					continue
				}
				if skipLabels(m.LabelIds) || (len(m.LabelIds) > 0 && !intersects(m.LabelIds, labels)) {
					continue
				}
				ids = append(ids, m.Id)
			}
		}
		advance := pageMax
		if resp.NextPageToken == "" {
			advance = max(advance, resp.HistoryId)
		}
		if err := s.storeMessages(ctx, p, mb, ids, int64(advance)); err != nil {
			return err
		}
		if resp.NextPageToken == "" {
			return nil
		}
		pageToken = resp.NextPageToken
	}
	return nil // the rest is picked up by the next sync
}

// recoverStale handles a 404 for a stale history id: take the new baseline first, then backfill every
// message since the last processed one (with a margin) by a bounded messages.list, then move the
// history id to the baseline. Messages already stored are not stored twice.
func (s *Service) recoverStale(ctx context.Context, p *store.Provider, mb *mailbox) error {
	var prof *gmail.Profile
	if err := mb.do(ctx, 4, func(gm *gmail.Service) error {
		var err error
		prof, err = gm.Users.GetProfile("me").Context(ctx).Do()
		return err
	}); err != nil {
		return fmt.Errorf("getProfile: %w", err)
	}
	since := time.Now().Add(-7 * 24 * time.Hour)
	if last, err := store.LastMessageTime(ctx, s.pool, p.Tenant, p.ID); err != nil {
		return err
	} else if last != nil {
		since = *last
	} else if p.LastSyncTime != nil {
		since = *p.LastSyncTime
	} else if p.ConnectTime != nil {
		since = *p.ConnectTime
	}
	since = since.Add(-backfillMargin)
	query := fmt.Sprintf("after:%d", since.Unix())
	labels := p.WatchLabelIDs
	if len(labels) == 0 {
		labels = []string{""}
	}
	var ids []string
	truncated := false
	for _, label := range labels {
		var found []string
		pageToken := ""
		for page := 0; ; page++ {
			if page == maxBackfillPages {
				truncated = true
				break
			}
			var resp *gmail.ListMessagesResponse
			if err := mb.do(ctx, 4, func(gm *gmail.Service) error {
				call := gm.Users.Messages.List("me").Q(query).MaxResults(500)
				if label != "" {
					call = call.LabelIds(label)
				}
				if pageToken != "" {
					call = call.PageToken(pageToken)
				}
				var err error
				resp, err = call.Context(ctx).Do()
				return err
			}); err != nil {
				return fmt.Errorf("messages.list backfill: %w", err)
			}
			for _, m := range resp.Messages {
				found = append(found, m.Id)
			}
			if resp.NextPageToken == "" {
				break
			}
			pageToken = resp.NextPageToken
		}
		// messages.list is newest first; store oldest first.
		slices.Reverse(found)
		for _, id := range found {
			if !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
		}
	}
	s.log.InfoContext(ctx, "gmail history id was stale: backfilled", "provider", p.ID, "since", since, "messages", len(ids), "truncated", truncated)
	s.metrics.backfills.Inc()
	return s.storeMessages(ctx, p, mb, ids, int64(prof.HistoryId))
}

func skipLabels(labels []string) bool {
	// Sent mail includes the mailbox's own replies (and mail to itself): never inbound, so no loops.
	return slices.Contains(labels, "DRAFT") || slices.Contains(labels, "SENT")
}

func intersects(a, b []string) bool {
	if len(b) == 0 {
		return true
	}
	for _, x := range a {
		if slices.Contains(b, x) {
			return true
		}
	}
	return false
}

// SyncLimits bound what one history sync holds in memory, whatever the backlog (a history page names up
// to 500 messages, a backfill thousands, and anyone can send large mail): messages are fetched and parsed
// in batches, each batch stored in its own transaction before the next is fetched, each body capped,
// and only the first MaxRawBytes of a raw message decoded and parsed. So a sync holds at most one batch
// of capped messages plus the one message being fetched.
type SyncLimits struct {
	// BatchMessages and BatchBytes end a batch: whichever is reached first (bytes as store.Message.Size).
	BatchMessages int
	BatchBytes    int
	// MaxBodyBytes caps each stored body (text, HTML), cut on a UTF-8 boundary: the message is marked
	// truncated.
	MaxBodyBytes int
	// MaxRawBytes is how much of a raw message is decoded and parsed; a longer one is marked truncated
	// (what is cut off is usually attachments, whose metadata is then missing).
	MaxRawBytes int
}

// DefaultSyncLimits are the limits of ALGA_GMAIL_SYNC_BATCH_MESSAGES, ALGA_GMAIL_SYNC_BATCH_BYTES,
// ALGA_GMAIL_MAX_BODY_BYTES and ALGA_GMAIL_MAX_RAW_BYTES when unset.
var DefaultSyncLimits = SyncLimits{BatchMessages: 20, BatchBytes: 16 << 20, MaxBodyBytes: mailparse.DefaultMaxBody, MaxRawBytes: 24 << 20}

func (l SyncLimits) withDefaults() SyncLimits {
	d := DefaultSyncLimits
	if l.BatchMessages <= 0 {
		l.BatchMessages = d.BatchMessages
	}
	if l.BatchBytes <= 0 {
		l.BatchBytes = d.BatchBytes
	}
	if l.MaxBodyBytes <= 0 {
		l.MaxBodyBytes = d.MaxBodyBytes
	}
	if l.MaxRawBytes <= 0 {
		l.MaxRawBytes = d.MaxRawBytes
	}
	return l
}

// storeMessages fetches and parses ids (skipping stored ones) in bounded batches (SyncLimits), storing
// each batch in its own transaction, and advances the history id to advanceTo only with the last one —
// never past a message not stored yet. A crash between batches re-reads the same history next time;
// the messages stored already are skipped (MessageExists, and the insert is idempotent). The transactions
// hold the inbound feed's append lock from their first insert to their commit: nothing but inserts and
// the history advance happens in them, the Google calls and the parsing come before.
func (s *Service) storeMessages(ctx context.Context, p *store.Provider, mb *mailbox, ids []string, advanceTo int64) error {
	limits := s.opts.Sync
	var batch []*store.Message
	size := 0
	for _, id := range ids {
		exists, err := store.MessageExists(ctx, s.pool, p.ID, id)
		if err != nil {
			return err
		}
		if exists {
			continue
		}
		var gmsg *gmail.Message
		err = mb.do(ctx, 4, func(gm *gmail.Service) error {
			var err error
			gmsg, err = gm.Users.Messages.Get("me", id).Format("raw").Context(ctx).Do()
			return err
		})
		if isHTTP(err, http.StatusNotFound) {
			continue // deleted since
		}
		if err != nil {
			return fmt.Errorf("messages.get: %w", err)
		}
		if skipLabels(gmsg.LabelIds) {
			continue
		}
		m, err := s.toMessage(p, gmsg)
		if err != nil {
			s.log.WarnContext(ctx, "gmail message could not be parsed; stored with headers only", "provider", p.ID, "gmail_message_id", id, "err", err)
		}
		batch = append(batch, m)
		size += m.Size()
		if len(batch) >= limits.BatchMessages || size >= limits.BatchBytes {
			if err := s.insertBatch(ctx, p, batch, false, 0); err != nil {
				return err
			}
			batch, size = nil, 0
		}
	}
	return s.insertBatch(ctx, p, batch, true, advanceTo)
}

// insertBatch stores msgs in one transaction, through the inbound feed's appender (the tenant's append
// lock from the first insert to the commit, and the NOTIFY that wakes the streams of every replica on
// commit). The last batch of a sync step (last) also advances the history id to advanceTo (> 0), or
// records the sync time.
func (s *Service) insertBatch(ctx context.Context, p *store.Provider, msgs []*store.Message, last bool, advanceTo int64) error {
	inserted := 0
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		app := s.feed.Appender(tx, p.Tenant)
		for _, m := range msgs {
			if _, err := store.InsertMessage(ctx, app, m); err != nil {
				return err
			}
		}
		inserted = app.Appended()
		if !last {
			return nil
		}
		if advanceTo > 0 {
			return store.AdvanceHistory(ctx, tx, p.Tenant, p.ID, advanceTo)
		}
		return store.TouchSync(ctx, tx, p.Tenant, p.ID)
	})
	if err == nil {
		s.metrics.messages.Add(float64(inserted))
	}
	return err
}

func (s *Service) toMessage(p *store.Provider, g *gmail.Message) (*store.Message, error) {
	m := &store.Message{
		Tenant: p.Tenant, ProviderID: p.ID, Mailbox: p.Mailbox, GmailMessageID: g.Id, ThreadID: g.ThreadId,
		HistoryID: int64(g.HistoryId), LabelIDs: g.LabelIds, ReceiveTime: time.UnixMilli(g.InternalDate).UTC(),
		Attachments: json.RawMessage("[]"),
	}
	if g.InternalDate == 0 {
		m.ReceiveTime = time.Now().UTC()
	}
	raw, cut, err := rawPrefix(g.Raw, s.opts.Sync.MaxRawBytes)
	g.Raw = "" // the encoded copy is garbage from here: the parse must not keep it alive
	if err != nil {
		return m, fmt.Errorf("raw is not base64url: %w", err)
	}
	m.Truncated = cut
	parsed, err := mailparse.Parse(raw, s.opts.Sync.MaxBodyBytes)
	if err != nil {
		return m, err
	}
	m.Truncated = m.Truncated || parsed.Truncated
	m.MessageIDHeader, m.InReplyTo, m.References = parsed.MessageID, parsed.InReplyTo, parsed.References
	m.From, m.To, m.Cc, m.Subject = parsed.From, parsed.To, parsed.Cc, parsed.Subject
	m.TextBody, m.HTMLBody = parsed.TextBody, parsed.HTMLBody
	if len(parsed.Attachments) > 0 {
		if b, err := json.Marshal(parsed.Attachments); err == nil {
			m.Attachments = b
		}
	}
	return m, nil
}

// rawPrefix decodes at most max bytes of Gmail's base64url raw message — only the encoded characters
// those bytes need, so a message larger than the cap never has a whole decoded copy in memory — and
// reports whether there was more.
func rawPrefix(raw string, max int) ([]byte, bool, error) {
	raw = strings.TrimRight(raw, "=")
	cut := false
	if n := (max + 2) / 3 * 4; len(raw) > n { // whole 4-character groups: a prefix decodes cleanly
		raw, cut = raw[:n], true
	}
	b, err := decodeRaw(raw)
	if err != nil {
		return nil, false, err
	}
	if len(b) > max {
		b, cut = b[:max], true
	}
	return b, cut, nil
}
