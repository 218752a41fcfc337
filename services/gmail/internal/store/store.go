// Package store is the gmail schema's query layer. The SQL lives in queries.sql (named queries) and the
// numbered migrations in migrations/; every query is scoped by tenant.
package store

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/algapsa/alga-google/services/platform/pg"
)

//go:embed migrations/*.sql
var migrationsFS embed.FS

//go:embed queries.sql
var queriesSQL string

// Schema is the Postgres schema the gmail service owns.
const Schema = "gmail"

// Migrations of the gmail schema.
func Migrations() *pg.Migrations {
	return &pg.Migrations{Schema: Schema, FS: migrationsFS, Dir: "migrations"}
}

var queries = pg.ParseQueries(queriesSQL)

func q(name string) string { return queries.Get(name) }

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
	return one(db.Query(ctx, q("CreateProvider"), n.Tenant, n.Mailbox, n.DisplayName, n.LabelFilters, n.InboundDefaults, n.Active))
}

func GetProvider(ctx context.Context, db DB, tenant, id string) (*Provider, error) {
	return one(db.Query(ctx, q("GetProvider"), tenant, id))
}

func GetProviderForUpdate(ctx context.Context, db DB, tenant, id string) (*Provider, error) {
	return one(db.Query(ctx, q("GetProviderForUpdate"), tenant, id))
}

func ProviderByMailbox(ctx context.Context, db DB, tenant, mailbox string) (*Provider, error) {
	return one(db.Query(ctx, q("ProviderByMailbox"), tenant, mailbox))
}

func ListProviders(ctx context.Context, db DB, tenant string) ([]*Provider, error) {
	rows, err := db.Query(ctx, q("ListProviders"), tenant)
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
	return one(db.Query(ctx, q("UpdateProvider"), tenant, id, u.DisplayName, u.SetLabels, labels, defaults, u.Active))
}

func DeleteProvider(ctx context.Context, db DB, tenant, id string) (bool, error) {
	tag, err := db.Exec(ctx, q("DeleteProvider"), tenant, id)
	return tag.RowsAffected() == 1, err
}

func SetConnecting(ctx context.Context, db DB, tenant, id string) (*Provider, error) {
	return one(db.Query(ctx, q("SetConnecting"), tenant, id))
}

func SetError(ctx context.Context, db DB, tenant, id, code, message, remedy string) (*Provider, error) {
	return one(db.Query(ctx, q("SetError"), tenant, id, code, message, remedy))
}

func ResetProvider(ctx context.Context, db DB, tenant, id string) (*Provider, error) {
	if _, err := db.Exec(ctx, q("DeleteSteps"), tenant, id); err != nil {
		return nil, err
	}
	return one(db.Query(ctx, q("ResetProvider"), tenant, id))
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
	State, ErrorCode, ErrorMessage, ErrorRemedy string
	AccountEmail, Subscription, Topic           string
	LabelIDs                                    []string
	WatchExpire                                 *time.Time
	HistoryBaseline                             *int64
	Steps                                       []Step
}

// SaveProvisioning records an activation's outcome and its steps in one transaction.
func SaveProvisioning(ctx context.Context, tx pgx.Tx, tenant, id string, p Provisioned) (*Provider, error) {
	labels := p.LabelIDs
	if labels == nil {
		labels = []string{}
	}
	prov, err := one(tx.Query(ctx, q("SetProvisioned"), tenant, id, p.State, p.ErrorCode, p.ErrorMessage, p.ErrorRemedy,
		p.AccountEmail, p.Subscription, p.Topic, labels, p.WatchExpire, p.HistoryBaseline))
	if err != nil {
		return nil, err
	}
	if _, err := tx.Exec(ctx, q("DeleteSteps"), tenant, id); err != nil {
		return nil, err
	}
	for i, s := range p.Steps {
		if _, err := tx.Exec(ctx, q("InsertStep"), tenant, id, i, s.Name, s.OK, s.Detail, s.CheckTime); err != nil {
			return nil, err
		}
	}
	return prov, nil
}

func ListSteps(ctx context.Context, db DB, tenant, id string) ([]Step, error) {
	rows, err := db.Query(ctx, q("ListSteps"), tenant, id)
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
	err := db.QueryRow(ctx, q("UpsertSubscription"), s.Name, s.Tenant, s.ProjectID, s.Topic, s.ServiceAccountEmail, s.PushEndpoint, s.Audience).Scan(&name)
	if errors.Is(err, pgx.ErrNoRows) {
		return ErrSubscriptionOwned
	}
	return err
}

func GetSubscription(ctx context.Context, db DB, name string) (*Subscription, error) {
	var s Subscription
	err := db.QueryRow(ctx, q("GetSubscription"), name).Scan(&s.Name, &s.Tenant, &s.ProjectID, &s.Topic, &s.ServiceAccountEmail, &s.PushEndpoint, &s.Audience)
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
	err := db.QueryRow(ctx, q("InsertNotification"), n.Tenant, n.ProviderID, n.Subscription, n.PubSubMessageID, n.EmailAddress, n.HistoryID, n.PublishTime).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	_, err = db.Exec(ctx, q("TouchLastPush"), n.Tenant, n.ProviderID)
	return err == nil, err
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
	err := db.QueryRow(ctx, q("PendingNotifications"), tenant, provider).Scan(&p.MaxID, &p.MaxHistoryID, &secs)
	p.Quiet = time.Duration(secs * float64(time.Second))
	return p, err
}

func MarkProcessed(ctx context.Context, db DB, tenant, provider string, upTo int64) error {
	_, err := db.Exec(ctx, q("MarkProcessed"), tenant, provider, upTo)
	return err
}

func PendingAfter(ctx context.Context, db DB, tenant, provider string, after int64) (bool, error) {
	var ok bool
	err := db.QueryRow(ctx, q("PendingAfter"), tenant, provider, after).Scan(&ok)
	return ok, err
}

// TenantProvider names a provider with its tenant.
type TenantProvider struct{ Tenant, ProviderID string }

func ProvidersWithStalePending(ctx context.Context, db DB, olderThan time.Duration) ([]TenantProvider, error) {
	rows, err := db.Query(ctx, q("ProvidersWithStalePending"), olderThan.Seconds())
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (TenantProvider, error) {
		var tp TenantProvider
		err := r.Scan(&tp.Tenant, &tp.ProviderID)
		return tp, err
	})
}

func MessageExists(ctx context.Context, db DB, provider, gmailID string) (bool, error) {
	var ok bool
	err := db.QueryRow(ctx, q("MessageExists"), provider, gmailID).Scan(&ok)
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
}

func nz(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// InsertMessage stores m once; it reports false when the message was stored before.
func InsertMessage(ctx context.Context, db DB, m *Message) (bool, error) {
	att := m.Attachments
	if att == nil {
		att = json.RawMessage("[]")
	}
	err := db.QueryRow(ctx, q("InsertMessage"), m.Tenant, m.ProviderID, m.Mailbox, m.GmailMessageID, m.ThreadID, m.HistoryID,
		m.MessageIDHeader, m.InReplyTo, nz(m.References), m.From, nz(m.To), nz(m.Cc), m.Subject, m.TextBody, m.HTMLBody,
		att, nz(m.LabelIDs), m.ReceiveTime).Scan(&m.Seq)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// AdvanceHistory moves the provider's history id forward (never back) and records the sync time.
func AdvanceHistory(ctx context.Context, db DB, tenant, provider string, historyID int64) error {
	_, err := db.Exec(ctx, q("AdvanceHistory"), tenant, provider, historyID)
	return err
}

func TouchSync(ctx context.Context, db DB, tenant, provider string) error {
	_, err := db.Exec(ctx, q("TouchSync"), tenant, provider)
	return err
}

func LastMessageTime(ctx context.Context, db DB, tenant, provider string) (*time.Time, error) {
	var t *time.Time
	err := db.QueryRow(ctx, q("LastMessageTime"), tenant, provider).Scan(&t)
	return t, err
}

// ListMessages lists a tenant's messages after a cursor position.
func ListMessages(ctx context.Context, db DB, tenant, provider string, afterSeq int64, limit int, includeAck bool) ([]*Message, error) {
	var prov any
	if provider != "" {
		prov = provider
	}
	rows, err := db.Query(ctx, q("ListMessages"), tenant, prov, afterSeq, limit, includeAck)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (*Message, error) {
		m := &Message{Tenant: tenant}
		err := r.Scan(&m.Seq, &m.ID, &m.ProviderID, &m.Mailbox, &m.GmailMessageID, &m.ThreadID, &m.MessageIDHeader, &m.InReplyTo,
			&m.References, &m.From, &m.To, &m.Cc, &m.Subject, &m.TextBody, &m.HTMLBody, &m.Attachments, &m.LabelIDs,
			&m.ReceiveTime, &m.AcknowledgeTime)
		return m, err
	})
}

func Acknowledge(ctx context.Context, db DB, tenant string, ids []string) (int64, error) {
	tag, err := db.Exec(ctx, q("Acknowledge"), tenant, ids)
	return tag.RowsAffected(), err
}

// NotifyInbound wakes streams (delivered when the transaction commits).
func NotifyInbound(ctx context.Context, db DB, tenant string) error {
	_, err := db.Exec(ctx, q("NotifyInbound"), tenant)
	return err
}

// InboundChannel is the LISTEN channel of NotifyInbound.
const InboundChannel = "gmail_inbound"

// Check makes sure every named query exists (called from tests).
func Check() error {
	for _, n := range []string{"CreateProvider", "ListMessages", "Acknowledge"} {
		if _, ok := queries[n]; !ok {
			return fmt.Errorf("missing query %s", n)
		}
	}
	return nil
}

// LockProvider locks the provider's row until tx ends (a deleted provider locks nothing, which is fine:
// nothing is left to sync).
func LockProvider(ctx context.Context, tx pgx.Tx, tenant, provider string) error {
	_, err := tx.Exec(ctx, q("LockProvider"), tenant, provider)
	return err
}
