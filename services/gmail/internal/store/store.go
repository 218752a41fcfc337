// Package store is the gmail schema's query layer. The SQL lives in queries.sql (named queries) and the
// numbered migrations in migrations/; every query is scoped by tenant.
package store

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"maps"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/algapsa/alga-google/services/platform/feed"
	"github.com/algapsa/alga-google/services/platform/lease"
	"github.com/algapsa/alga-google/services/platform/pg"
	"github.com/algapsa/alga-google/services/platform/text"
)

// Schema is the Postgres schema the gmail service owns.
const Schema = "gmail"

//go:embed migrations/*.sql queries.sql
var files embed.FS

var schema = func() *pg.Migrations {
	m := pg.Load(Schema, files)
	maps.Copy(m.Queries, SyncLeases.Queries())
	return m
}()

// SyncLeases is the mailbox's sync lease (migrations: sync_leases): a sync job holds it for its whole run
// and renews it, so the sweeper tells a live job from a dead replica's.
var SyncLeases = lease.New(Schema+".sync_leases", ErrNotFound)

// Migrations of the gmail schema, with every statement of queries.sql (the query check prepares them).
func Migrations() *pg.Migrations { return schema }

func q(name string) string { return schema.Queries.Get(name) }

// DB is a pool or a transaction.
type DB = pg.DB

// Provider states (PAUSED is derived from Active).
const (
	StateDisconnected = "disconnected"
	StateConnecting   = "connecting"
	StateConnected    = "connected"
	StateError        = "error"
)

// Provider is one row of gmail.providers.
type Provider struct {
	ID              string          `db:"id"`
	Tenant          string          `db:"tenant"`
	Mailbox         string          `db:"mailbox"`
	DisplayName     string          `db:"display_name"`
	LabelFilters    []string        `db:"label_filters"`
	InboundDefaults json.RawMessage `db:"inbound_defaults"`
	Active          bool            `db:"active"`
	State           string          `db:"state"`
	ErrorCode       string          `db:"error_code"`
	ErrorMessage    string          `db:"error_message"`
	ErrorRemedy     string          `db:"error_remedy"`
	AccountEmail    string          `db:"account_email"`
	Subscription    string          `db:"subscription"`
	Topic           string          `db:"topic"`
	WatchLabelIDs   []string        `db:"watch_label_ids"`
	HistoryID       *int64          `db:"history_id"`
	WatchExpireTime *time.Time      `db:"watch_expire_time"`
	LastPushTime    *time.Time      `db:"last_push_time"`
	LastSyncTime    *time.Time      `db:"last_sync_time"`
	ConnectTime     *time.Time      `db:"connect_time"`
	CreateTime      time.Time       `db:"create_time"`
	UpdateTime      time.Time       `db:"update_time"`
	// LastWatchTime is when users.watch last succeeded; LastProvisioningCheckTime when the topic, the
	// publisher grant and the push subscription were last read back right.
	LastWatchTime             *time.Time `db:"last_watch_time"`
	LastProvisioningCheckTime *time.Time `db:"last_provisioning_check_time"`
	// ErrorStep is the diagnostics step that recorded ErrorCode ("" without an error).
	ErrorStep string `db:"error_step"`
}

// ErrNotFound is returned when a row of the tenant does not exist.
var ErrNotFound = errors.New("not found")

// ErrDuplicate is returned for a unique violation.
var ErrDuplicate = errors.New("duplicate")

func one(rows pgx.Rows, err error) (*Provider, error) {
	if err != nil {
		return nil, err
	}
	p, err := pgx.CollectExactlyOneRow(rows, pgx.RowToAddrOfStructByName[Provider])
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		return nil, ErrDuplicate
	}
	return p, err
}

// NewProvider is what CreateProvider stores.
type NewProvider struct {
	Tenant, Mailbox, DisplayName string
	LabelFilters                 []string
	InboundDefaults              json.RawMessage
	Active                       bool
}

func CreateProvider(ctx context.Context, db DB, n NewProvider) (*Provider, error) {
	if n.LabelFilters == nil {
		n.LabelFilters = []string{}
	}
	if n.InboundDefaults == nil {
		n.InboundDefaults = json.RawMessage("{}")
	}
	return one(db.Query(ctx, q("CreateProvider"), pg.Args{"tenant": n.Tenant, "mailbox": n.Mailbox,
		"display_name": n.DisplayName, "label_filters": n.LabelFilters, "inbound_defaults": n.InboundDefaults, "active": n.Active}))
}

func GetProvider(ctx context.Context, db DB, tenant, id string) (*Provider, error) {
	return one(db.Query(ctx, q("GetProvider"), pg.Args{"tenant": tenant, "id": id}))
}

func GetProviderForUpdate(ctx context.Context, db DB, tenant, id string) (*Provider, error) {
	return one(db.Query(ctx, q("GetProviderForUpdate"), pg.Args{"tenant": tenant, "id": id}))
}

func ProviderByMailbox(ctx context.Context, db DB, tenant, mailbox string) (*Provider, error) {
	return one(db.Query(ctx, q("ProviderByMailbox"), pg.Args{"tenant": tenant, "mailbox": mailbox}))
}

func ListProviders(ctx context.Context, db DB, tenant string) ([]*Provider, error) {
	rows, err := db.Query(ctx, q("ListProviders"), pg.Args{"tenant": tenant})
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToAddrOfStructByName[Provider])
}

// ProviderUpdate holds the fields to change (nil = keep).
type ProviderUpdate struct {
	DisplayName     *string
	SetLabels       bool
	LabelFilters    []string
	InboundDefaults json.RawMessage
	Active          *bool
}

func UpdateProvider(ctx context.Context, db DB, tenant, id string, u ProviderUpdate) (*Provider, error) {
	labels := u.LabelFilters
	if labels == nil {
		labels = []string{}
	}
	var defaults any
	if u.InboundDefaults != nil {
		defaults = u.InboundDefaults
	}
	return one(db.Query(ctx, q("UpdateProvider"), pg.Args{"tenant": tenant, "id": id, "display_name": u.DisplayName,
		"set_labels": u.SetLabels, "label_filters": labels, "inbound_defaults": defaults, "active": u.Active}))
}

func DeleteProvider(ctx context.Context, db DB, tenant, id string) (bool, error) {
	tag, err := db.Exec(ctx, q("DeleteProvider"), pg.Args{"tenant": tenant, "id": id})
	return tag.RowsAffected() == 1, err
}

func SetConnecting(ctx context.Context, db DB, tenant, id string) (*Provider, error) {
	return one(db.Query(ctx, q("SetConnecting"), pg.Args{"tenant": tenant, "id": id}))
}

// SetError puts the provider in ERROR; step is the diagnostics step that failed. Messages may carry
// Google's words: like every text from outside, they are stored through text.Clean.
func SetError(ctx context.Context, db DB, tenant, id, step, code, message, remedy string) (*Provider, error) {
	return one(db.Query(ctx, q("SetError"), pg.Args{"tenant": tenant, "id": id, "error_step": step,
		"error_code": code, "error_message": text.Clean(message), "error_remedy": text.Clean(remedy)}))
}

// ClearError returns a provider in ERROR to CONNECTED when its error was recorded by one of steps; it
// reports whether it did.
func ClearError(ctx context.Context, db DB, tenant, id string, steps []string) (bool, error) {
	tag, err := db.Exec(ctx, q("ClearError"), pg.Args{"tenant": tenant, "id": id, "steps": steps})
	return tag.RowsAffected() == 1, err
}

// RecordProvisioningCheck records a successful read-back of the provider's Pub/Sub provisioning.
func RecordProvisioningCheck(ctx context.Context, db DB, tenant, id, topic, subscription string) (*Provider, error) {
	return one(db.Query(ctx, q("RecordProvisioningCheck"), pg.Args{"tenant": tenant, "id": id, "topic": topic, "subscription": subscription}))
}

// RecordWatch records a successful users.watch: the label ids watched, Google's expiration and the
// history baseline (kept when one is stored).
func RecordWatch(ctx context.Context, db DB, tenant, id string, labelIDs []string, expire time.Time, baseline int64) (*Provider, error) {
	return one(db.Query(ctx, q("RecordWatch"), pg.Args{"tenant": tenant, "id": id, "watch_label_ids": nz(text.CleanAll(labelIDs)),
		"watch_expire_time": expire, "history_baseline": baseline}))
}

func ResetProvider(ctx context.Context, db DB, tenant, id string) (*Provider, error) {
	if _, err := db.Exec(ctx, q("DeleteSteps"), pg.Args{"tenant": tenant, "provider_id": id}); err != nil {
		return nil, err
	}
	return one(db.Query(ctx, q("ResetProvider"), pg.Args{"tenant": tenant, "id": id}))
}

// Step is one recorded provisioning step.
type Step struct {
	Name      string
	OK        bool
	Detail    string
	CheckTime time.Time
}

// Provisioned is the outcome of an activation.
type Provisioned struct {
	State, ErrorStep, ErrorCode, ErrorMessage, ErrorRemedy string
	// ProvisioningChecked: the topic, the grant and the subscription were confirmed.
	ProvisioningChecked               bool
	AccountEmail, Subscription, Topic string
	LabelIDs                          []string
	WatchExpire                       *time.Time
	HistoryBaseline                   *int64
	Steps                             []Step
}

// SaveProvisioning records an activation's outcome and its steps in one transaction.
func SaveProvisioning(ctx context.Context, tx pgx.Tx, tenant, id string, p Provisioned) (*Provider, error) {
	labels := p.LabelIDs
	if labels == nil {
		labels = []string{}
	}
	labels = text.CleanAll(labels)
	prov, err := one(tx.Query(ctx, q("SetProvisioned"), pg.Args{"tenant": tenant, "id": id, "state": p.State,
		"error_step": p.ErrorStep, "error_code": p.ErrorCode, "error_message": text.Clean(p.ErrorMessage), "error_remedy": text.Clean(p.ErrorRemedy),
		"provisioning_checked": p.ProvisioningChecked, "account_email": text.Clean(p.AccountEmail), "subscription": p.Subscription, "topic": p.Topic, "watch_label_ids": labels,
		"watch_expire_time": p.WatchExpire, "history_baseline": p.HistoryBaseline}))
	if err != nil {
		return nil, err
	}
	if _, err := tx.Exec(ctx, q("DeleteSteps"), pg.Args{"tenant": tenant, "provider_id": id}); err != nil {
		return nil, err
	}
	for i, s := range p.Steps {
		if _, err := tx.Exec(ctx, q("InsertStep"), pg.Args{"tenant": tenant, "provider_id": id, "position": i,
			"name": s.Name, "ok": s.OK, "detail": text.Clean(s.Detail), "check_time": s.CheckTime}); err != nil {
			return nil, err
		}
	}
	return prov, nil
}

// StepPositions orders the diagnostics steps (activation's order, then the history sync).
var StepPositions = map[string]int{
	"service_account": 0, "topic": 1, "publisher_grant": 2, "subscription": 3, "token": 4, "labels": 5, "watch": 6, "history": 7,
}

// UpsertSteps replaces the recorded outcome of the given steps, keeping the others.
func UpsertSteps(ctx context.Context, db DB, tenant, id string, steps []Step) error {
	for _, s := range steps {
		if _, err := db.Exec(ctx, q("UpsertStep"), pg.Args{"tenant": tenant, "provider_id": id, "position": StepPositions[s.Name],
			"name": s.Name, "ok": s.OK, "detail": text.Clean(s.Detail), "check_time": s.CheckTime}); err != nil {
			return err
		}
	}
	return nil
}

func ListSteps(ctx context.Context, db DB, tenant, id string) ([]Step, error) {
	rows, err := db.Query(ctx, q("ListSteps"), pg.Args{"tenant": tenant, "provider_id": id})
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Step, error) {
		var s Step
		err := r.Scan(&s.Name, &s.OK, &s.Detail, &s.CheckTime)
		return s, err
	})
}

// Subscription is a push subscription created at provisioning.
type Subscription struct {
	Name, Tenant, ProjectID, Topic, ServiceAccountEmail, PushEndpoint, Audience string
}

// ErrSubscriptionOwned is returned when a subscription name belongs to another tenant.
var ErrSubscriptionOwned = errors.New("subscription belongs to another tenant")

func UpsertSubscription(ctx context.Context, db DB, s Subscription) error {
	var name string
	err := db.QueryRow(ctx, q("UpsertSubscription"), pg.Args{"name": s.Name, "tenant": s.Tenant, "project_id": s.ProjectID,
		"topic": s.Topic, "service_account_email": s.ServiceAccountEmail, "push_endpoint": s.PushEndpoint, "audience": s.Audience}).Scan(&name)
	if errors.Is(err, pgx.ErrNoRows) {
		return ErrSubscriptionOwned
	}
	return err
}

func GetSubscription(ctx context.Context, db DB, name string) (*Subscription, error) {
	var s Subscription
	err := db.QueryRow(ctx, q("GetSubscription"), pg.Args{"name": name}).Scan(&s.Name, &s.Tenant, &s.ProjectID, &s.Topic, &s.ServiceAccountEmail, &s.PushEndpoint, &s.Audience)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	return &s, err
}

// Notification is a received push.
type Notification struct {
	Tenant, ProviderID, Subscription, PubSubMessageID, EmailAddress string
	HistoryID                                                       int64
	PublishTime                                                     *time.Time
}

// InsertNotification stores n; it reports false for a redelivery (same subscription and message id).
func InsertNotification(ctx context.Context, db DB, n Notification) (bool, error) {
	var id int64
	err := db.QueryRow(ctx, q("InsertNotification"), pg.Args{"tenant": n.Tenant, "provider_id": n.ProviderID,
		"subscription": n.Subscription, "pubsub_message_id": text.Clean(n.PubSubMessageID), "email_address": text.Clean(n.EmailAddress),
		"history_id": n.HistoryID, "publish_time": n.PublishTime}).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	_, err = db.Exec(ctx, q("TouchLastPush"), pg.Args{"tenant": n.Tenant, "id": n.ProviderID})
	return err == nil, err
}

// Push is a verified push and the route it was accepted by: the provider (of Tenant) its mailbox names,
// and the service account its token was issued to.
type Push struct {
	Notification
	ServiceAccountEmail string
}

// PushResult is what StorePushes did with one push.
type PushResult struct{ Routed, Stored bool }

// StorePushes stores the pushes' notifications in one statement, each only while its route still holds
// (the subscription is the provider's current one, of the tenant, for that service account and
// mailbox): Routed is false when it no longer holds (nothing stored), Stored false for a redelivery.
// The providers' last_push_time is set (to the second; a row locked meanwhile is left to the
// dispatcher, TouchLastPushes).
// Each (subscription, Pub/Sub message id) must appear at most once.
func StorePushes(ctx context.Context, db DB, pushes []Push) ([]PushResult, error) {
	n := len(pushes)
	tenants, providers, mailboxes, subs := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	accounts, ids, histories, publish := make([]string, n), make([]string, n), make([]int64, n), make([]*time.Time, n)
	for i, p := range pushes {
		tenants[i], providers[i], mailboxes[i], subs[i] = p.Tenant, p.ProviderID, p.EmailAddress, p.Subscription
		accounts[i], ids[i], histories[i], publish[i] = p.ServiceAccountEmail, p.PubSubMessageID, p.HistoryID, p.PublishTime
	}
	rows, err := db.Query(ctx, q("StorePushes"), pg.Args{"tenants": tenants, "provider_ids": providers, "mailboxes": mailboxes,
		"subscriptions": subs, "service_account_emails": accounts, "pubsub_message_ids": ids, "history_ids": histories, "publish_times": publish})
	if err != nil {
		return nil, err
	}
	out := make([]PushResult, n)
	seen := 0
	var i int64
	var r PushResult
	_, err = pgx.ForEachRow(rows, []any{&i, &r.Routed, &r.Stored}, func() error {
		if i < 1 || i > int64(n) {
			return errors.New("StorePushes: row out of range")
		}
		out[i-1] = r
		seen++
		return nil
	})
	if err == nil && seen != n {
		err = errors.New("StorePushes: a push without a result")
	}
	return out, err
}

// TouchLastPushes locks the rows of the providers named by tenants[i], ids[i] — FOR NO KEY UPDATE, in id
// order, until tx ends — brings their last_push_time up to the second and returns those that still
// exist. The lock conflicts with LockProvider's but not with the FOR KEY SHARE lock a notification's
// insert takes on its provider (the foreign key), so pushes being stored never wait for it; the order
// keeps two replicas' dispatches from deadlocking.
func TouchLastPushes(ctx context.Context, tx pgx.Tx, tenants, ids []string) ([]TenantProvider, error) {
	rows, err := tx.Query(ctx, q("TouchLastPushes"), pg.Args{"tenants": tenants, "ids": ids})
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[TenantProvider])
}

// Pending summarizes a provider's unprocessed notifications.
type Pending struct {
	MaxID        int64
	MaxHistoryID int64
	// Quiet is how long ago the latest one arrived.
	Quiet time.Duration
}

func PendingNotifications(ctx context.Context, db DB, tenant, provider string) (Pending, error) {
	var p Pending
	var secs float64
	err := db.QueryRow(ctx, q("PendingNotifications"), pg.Args{"tenant": tenant, "provider_id": provider}).Scan(&p.MaxID, &p.MaxHistoryID, &secs)
	p.Quiet = time.Duration(secs * float64(time.Second))
	return p, err
}

func MarkProcessed(ctx context.Context, db DB, tenant, provider string, upTo int64) error {
	_, err := db.Exec(ctx, q("MarkProcessed"), pg.Args{"tenant": tenant, "provider_id": provider, "up_to": upTo})
	return err
}

func PendingAfter(ctx context.Context, db DB, tenant, provider string, after int64) (bool, error) {
	var ok bool
	err := db.QueryRow(ctx, q("PendingAfter"), pg.Args{"tenant": tenant, "provider_id": provider, "after": after}).Scan(&ok)
	return ok, err
}

// TenantProvider names a provider with its tenant.
type TenantProvider struct{ Tenant, ProviderID string }

func ProvidersWithStalePending(ctx context.Context, db DB, olderThan time.Duration) ([]TenantProvider, error) {
	rows, err := db.Query(ctx, q("ProvidersWithStalePending"), pg.Args{"older_than_seconds": olderThan.Seconds()})
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[TenantProvider])
}

func MessageExists(ctx context.Context, db DB, provider, gmailID string) (bool, error) {
	var ok bool
	err := db.QueryRow(ctx, q("MessageExists"), pg.Args{"provider_id": provider, "gmail_message_id": gmailID}).Scan(&ok)
	return ok, err
}

// Message is one parsed inbound message.
type Message struct {
	Seq             int64
	ID              string
	Tenant          string
	ProviderID      string
	Mailbox         string
	GmailMessageID  string
	ThreadID        string
	HistoryID       int64
	MessageIDHeader string
	InReplyTo       string
	References      []string
	From            string
	To, Cc          []string
	Subject         string
	TextBody        string
	HTMLBody        string
	Attachments     json.RawMessage
	LabelIDs        []string
	ReceiveTime     time.Time
	AcknowledgeTime *time.Time
	// Truncated: a body was cut to the cap, or only part of a too large raw message was parsed.
	Truncated bool
}

// Size is roughly how many bytes m holds: what a sync batch is bounded by.
func (m *Message) Size() int {
	n := len(m.TextBody) + len(m.HTMLBody) + len(m.Subject) + len(m.From) + len(m.Attachments) + 512
	for _, l := range [][]string{m.To, m.Cc, m.References, m.LabelIDs} {
		for _, s := range l {
			n += len(s)
		}
	}
	return n
}

func nz(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// InsertMessage appends m to the tenant's inbound feed once, through app (the feed's appender of m's
// tenant in the transaction: it takes the append lock before seq is drawn); it reports false when the
// message was stored before. Every text from Google is cleaned here (no NUL, valid UTF-8), where every
// message is stored, so no mail can fail its sync on every retry.
func InsertMessage(ctx context.Context, app *feed.Appender, m *Message) (bool, error) {
	att := m.Attachments
	if att == nil {
		att = json.RawMessage("[]")
	}
	return app.Insert(ctx, q("InsertMessage"), pg.Args{"tenant": m.Tenant, "provider_id": m.ProviderID, "mailbox": m.Mailbox,
		"gmail_message_id": text.Clean(m.GmailMessageID), "thread_id": text.Clean(m.ThreadID), "history_id": m.HistoryID,
		"message_id_header": text.Clean(m.MessageIDHeader), "in_reply_to": text.Clean(m.InReplyTo),
		"references": nz(text.CleanAll(m.References)), "from_address": text.Clean(m.From),
		"to_addresses": nz(text.CleanAll(m.To)), "cc_addresses": nz(text.CleanAll(m.Cc)), "subject": text.Clean(m.Subject),
		"text_body": text.Clean(m.TextBody), "html_body": text.Clean(m.HTMLBody), "attachments": att,
		"label_ids": nz(text.CleanAll(m.LabelIDs)), "receive_time": m.ReceiveTime, "truncated": m.Truncated}, &m.Seq)
}

// AdvanceHistory moves the provider's history id forward (never back) and records the sync time.
func AdvanceHistory(ctx context.Context, db DB, tenant, provider string, historyID int64) error {
	_, err := db.Exec(ctx, q("AdvanceHistory"), pg.Args{"tenant": tenant, "id": provider, "history_id": historyID})
	return err
}

func TouchSync(ctx context.Context, db DB, tenant, provider string) error {
	_, err := db.Exec(ctx, q("TouchSync"), pg.Args{"tenant": tenant, "id": provider})
	return err
}

func LastMessageTime(ctx context.Context, db DB, tenant, provider string) (*time.Time, error) {
	var t *time.Time
	err := db.QueryRow(ctx, q("LastMessageTime"), pg.Args{"tenant": tenant, "provider_id": provider}).Scan(&t)
	return t, err
}

// ListMessages returns the tenant's messages after afterSeq in seq order: at most limit of them, and only
// as many as keep their bodies within maxBytes (always the first one).
func ListMessages(ctx context.Context, db DB, tenant, provider string, afterSeq int64, limit, maxBytes int, includeAck bool) ([]*Message, error) {
	var prov any
	if provider != "" {
		prov = provider
	}
	rows, err := db.Query(ctx, q("ListMessages"), pg.Args{"tenant": tenant, "provider_id": prov, "after_seq": afterSeq,
		"limit": limit, "max_bytes": maxBytes, "include_acknowledged": includeAck})
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (*Message, error) {
		m := &Message{Tenant: tenant}
		err := r.Scan(&m.Seq, &m.ID, &m.ProviderID, &m.Mailbox, &m.GmailMessageID, &m.ThreadID, &m.MessageIDHeader, &m.InReplyTo,
			&m.References, &m.From, &m.To, &m.Cc, &m.Subject, &m.TextBody, &m.HTMLBody, &m.Attachments, &m.LabelIDs,
			&m.ReceiveTime, &m.AcknowledgeTime, &m.Truncated)
		return m, err
	})
}

func Acknowledge(ctx context.Context, db DB, tenant string, ids []string) (int64, error) {
	tag, err := db.Exec(ctx, q("Acknowledge"), pg.Args{"tenant": tenant, "ids": ids})
	return tag.RowsAffected(), err
}

// LockProvider locks the provider's row until tx ends (a deleted provider locks nothing, which is fine:
// nothing is left to sync).
func LockProvider(ctx context.Context, tx pgx.Tx, tenant, provider string) error {
	_, err := tx.Exec(ctx, q("LockProvider"), pg.Args{"tenant": tenant, "id": provider})
	return err
}

// Upkeep is a provider with the push endpoint and audience its subscription was provisioned with.
type Upkeep struct {
	Provider
	PushEndpoint string `db:"push_endpoint"`
	PushAudience string `db:"push_audience"`
}

// ListUpkeep lists every provider of the tenant with its subscription's push endpoint and audience.
func ListUpkeep(ctx context.Context, db DB, tenant string) ([]*Upkeep, error) {
	rows, err := db.Query(ctx, q("ListUpkeep"), pg.Args{"tenant": tenant})
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToAddrOfStructByName[Upkeep])
}

// Event is one entry of a provider's timeline.
type Event struct {
	Type, Step, ErrorCode, Message, RunID string
	CreateTime                            time.Time
}

// MaxEvents is how many timeline entries a provider keeps.
const MaxEvents = 200

// InsertEvent appends to the provider's timeline, keeping its newest MaxEvents entries.
func InsertEvent(ctx context.Context, db DB, tenant, id string, e Event) error {
	if _, err := db.Exec(ctx, q("InsertEvent"), pg.Args{"tenant": tenant, "provider_id": id, "type": e.Type, "step": e.Step,
		"error_code": e.ErrorCode, "message": text.Clean(e.Message), "run_id": e.RunID}); err != nil {
		return err
	}
	_, err := db.Exec(ctx, q("PruneEvents"), pg.Args{"tenant": tenant, "provider_id": id, "keep": MaxEvents})
	return err
}

// ListEvents returns the provider's newest limit timeline entries, newest first.
func ListEvents(ctx context.Context, db DB, tenant, id string, limit int) ([]Event, error) {
	rows, err := db.Query(ctx, q("ListEvents"), pg.Args{"tenant": tenant, "provider_id": id, "limit": limit})
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Event, error) {
		var e Event
		err := r.Scan(&e.Type, &e.Step, &e.ErrorCode, &e.Message, &e.RunID, &e.CreateTime)
		return e, err
	})
}

// AgeTenant moves every recorded time of the tenant's providers (Google's watch expiration included),
// their diagnostics steps and timelines back by `by`, and reports how many providers it moved (test
// helper).
func AgeTenant(ctx context.Context, db DB, tenant string, by time.Duration) (int, error) {
	var n int
	err := db.QueryRow(ctx, q("TestAgeTenant"), pg.Args{"tenant": tenant, "by": by}).Scan(&n)
	return n, err
}
