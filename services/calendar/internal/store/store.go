// Package store is the calendar schema's query layer. The SQL lives in queries.sql (named queries) and
// the numbered migrations in migrations/; these typed wrappers are its only callers.
package store

import (
	"context"
	"embed"
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

// Schema is the Postgres schema the calendar service owns.
const Schema = "calendar"

//go:embed migrations/*.sql queries.sql
var files embed.FS

var schema = func() *pg.Migrations {
	m := pg.Load(Schema, files)
	maps.Copy(m.Queries, SyncLeases.Queries())
	return m
}()

// SyncLeases is the provider's sync lease (migrations: sync_leases): a sync job holds it for its whole run
// and renews it, so the sweeper tells a live job from a dead replica's.
var SyncLeases = lease.New(Schema+".sync_leases", ErrNotFound)

// Migrations of the calendar schema, with every statement of queries.sql (the query check prepares them).
func Migrations() *pg.Migrations { return schema }

func q(name string) string { return schema.Queries.Get(name) }

// DB is a pool or a transaction.
type DB = pg.DB

// Provider states.
const (
	StateDisconnected = "disconnected"
	StateConnecting   = "connecting"
	StateConnected    = "connected"
	StateError        = "error"
)

// Channel states.
const (
	ChannelActive      = "active"
	ChannelStopping    = "stopping"
	ChannelStopped     = "stopped"
	ChannelUnstoppable = "unstoppable"
)

// ErrNotFound is returned when a row of the tenant does not exist.
var ErrNotFound = errors.New("not found")

// ErrDuplicate is returned for a unique violation.
var ErrDuplicate = errors.New("duplicate")

// Provider is one row of calendar.providers.
type Provider struct {
	ID                 string     `db:"id"`
	Tenant             string     `db:"tenant"`
	UserID             string     `db:"user_id"`
	CalendarID         string     `db:"calendar_id"`
	DisplayName        string     `db:"display_name"`
	SyncDirection      int16      `db:"sync_direction"`
	State              string     `db:"state"`
	ErrorCode          string     `db:"error_code"`
	ErrorMessage       string     `db:"error_message"`
	ErrorRemedy        string     `db:"error_remedy"`
	AccountEmail       string     `db:"account_email"`
	AvailableCalendars []string   `db:"available_calendars"`
	SyncToken          string     `db:"sync_token"`
	NotifySeq          int64      `db:"notify_seq"`
	SyncedSeq          int64      `db:"synced_seq"`
	Generation         int64      `db:"generation"`
	LastSyncTime       *time.Time `db:"last_sync_time"`
	ConnectTime        *time.Time `db:"connect_time"`
	CreateTime         time.Time  `db:"create_time"`
	UpdateTime         time.Time  `db:"update_time"`
	// The channel lease (AcquireChannelLease); never shown.
	ChannelLease      string     `db:"channel_lease"`
	ChannelLeaseUntil *time.Time `db:"channel_lease_until"`
}

func mapErr(err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return ErrNotFound
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		return ErrDuplicate
	}
	return err
}

func oneProvider(rows pgx.Rows, err error) (*Provider, error) {
	if err != nil {
		return nil, mapErr(err)
	}
	p, err := pgx.CollectExactlyOneRow(rows, pgx.RowToAddrOfStructByName[Provider])
	return p, mapErr(err)
}

// NewProvider is what CreateProvider stores.
type NewProvider struct {
	Tenant, UserID, CalendarID, DisplayName string
	SyncDirection                           int16
}

func CreateProvider(ctx context.Context, db DB, n NewProvider) (*Provider, error) {
	return oneProvider(db.Query(ctx, q("CreateProvider"), pg.Args{"tenant": n.Tenant, "user_id": n.UserID,
		"calendar_id": n.CalendarID, "display_name": n.DisplayName, "sync_direction": n.SyncDirection}))
}

func GetProvider(ctx context.Context, db DB, tenant, id string) (*Provider, error) {
	return oneProvider(db.Query(ctx, q("GetProvider"), pg.Args{"tenant": tenant, "id": id}))
}

// GetProviderForUpdate locks the provider row for the rest of the transaction.
func GetProviderForUpdate(ctx context.Context, db DB, tenant, id string) (*Provider, error) {
	return oneProvider(db.Query(ctx, q("GetProviderForUpdate"), pg.Args{"tenant": tenant, "id": id}))
}

// ListProviders lists the tenant's providers, only userID's unless userID is empty.
func ListProviders(ctx context.Context, db DB, tenant, userID string) ([]*Provider, error) {
	rows, err := db.Query(ctx, q("ListProviders"), pg.Args{"tenant": tenant, "user_id": userID})
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToAddrOfStructByName[Provider])
}

// ProviderUpdate holds the fields to change (nil / 0 = keep).
type ProviderUpdate struct {
	DisplayName   *string
	CalendarID    *string
	SyncDirection int16
}

func UpdateProvider(ctx context.Context, db DB, tenant, id string, u ProviderUpdate) (*Provider, error) {
	return oneProvider(db.Query(ctx, q("UpdateProvider"), pg.Args{"tenant": tenant, "id": id,
		"display_name": u.DisplayName, "calendar_id": u.CalendarID, "sync_direction": u.SyncDirection}))
}

func DeleteProvider(ctx context.Context, db DB, tenant, id string) (bool, error) {
	tag, err := db.Exec(ctx, q("DeleteProvider"), pg.Args{"tenant": tenant, "id": id})
	return tag.RowsAffected() == 1, err
}

// SetState sets the provider's status with its error code, message and remedy (empty for none).
func SetState(ctx context.Context, db DB, tenant, id, state, code, message, remedy string) (*Provider, error) {
	return oneProvider(db.Query(ctx, q("SetState"), pg.Args{"tenant": tenant, "id": id, "state": state,
		"error_code": code, "error_message": text.Clean(message), "error_remedy": text.Clean(remedy)}))
}

// SetConnected marks an activated provider. Like every store function writing what Google answered, it
// cleans the text (platform/text: no NUL, valid UTF-8), which PostgreSQL would otherwise refuse.
func SetConnected(ctx context.Context, db DB, tenant, id, accountEmail string, calendars []string) (*Provider, error) {
	if calendars == nil {
		calendars = []string{}
	}
	return oneProvider(db.Query(ctx, q("SetConnected"), pg.Args{"tenant": tenant, "id": id,
		"account_email": text.Clean(accountEmail), "available_calendars": text.CleanAll(calendars)}))
}

// ClearSyncState returns the provider to DISCONNECTED and forgets its sync token and event states.
func ClearSyncState(ctx context.Context, db DB, tenant, id string) (*Provider, error) {
	if _, err := db.Exec(ctx, q("DeleteEvents"), pg.Args{"tenant": tenant, "provider_id": id}); err != nil {
		return nil, err
	}
	return oneProvider(db.Query(ctx, q("ClearSyncState"), pg.Args{"tenant": tenant, "id": id}))
}

// BumpNotify records that a notification asks for a sync and returns the new sequence.
func BumpNotify(ctx context.Context, db DB, tenant, id string) (int64, error) {
	var seq int64
	err := db.QueryRow(ctx, q("BumpNotify"), pg.Args{"tenant": tenant, "id": id}).Scan(&seq)
	return seq, mapErr(err)
}

// SaveSync stores the new sync token and the notification sequence the sync covered.
func SaveSync(ctx context.Context, db DB, tenant, id, token string, coveredSeq int64) error {
	_, err := db.Exec(ctx, q("SaveSync"), pg.Args{"tenant": tenant, "id": id, "sync_token": text.Clean(token), "covered_seq": coveredSeq})
	return err
}

// ClearSyncToken forgets the sync token (after a 410) so the next sync is a full one.
func ClearSyncToken(ctx context.Context, db DB, tenant, id string) error {
	_, err := db.Exec(ctx, q("ClearSyncToken"), pg.Args{"tenant": tenant, "id": id})
	return err
}

// ProviderRef names a provider of a tenant.
type ProviderRef struct{ Tenant, ID string }

// ProvidersBehind lists providers whose accepted notifications no completed sync has covered yet and
// whose sync lease nobody holds.
func ProvidersBehind(ctx context.Context, db DB, limit int) ([]ProviderRef, error) {
	rows, err := db.Query(ctx, q("ProvidersBehind"), pg.Args{"limit": limit})
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (ProviderRef, error) {
		var p ProviderRef
		err := r.Scan(&p.Tenant, &p.ID)
		return p, err
	})
}

// Channel is one row of calendar.channels.
type Channel struct {
	ChannelID            string     `db:"channel_id"`
	Tenant               string     `db:"tenant"`
	ProviderID           string     `db:"provider_id"`
	ResourceID           string     `db:"resource_id"`
	ResourceURI          string     `db:"resource_uri"`
	Address              string     `db:"address"`
	ClientID             string     `db:"client_id"`
	ExpireTime           *time.Time `db:"expire_time"`
	State                string     `db:"state"`
	StopAttempts         int32      `db:"stop_attempts"`
	StopError            string     `db:"stop_error"`
	LastMessageNumber    int64      `db:"last_message_number"`
	LastNotificationTime *time.Time `db:"last_notification_time"`
	CreateTime           time.Time  `db:"create_time"`
	UpdateTime           time.Time  `db:"update_time"`
}

func oneChannel(rows pgx.Rows, err error) (*Channel, error) {
	if err != nil {
		return nil, mapErr(err)
	}
	c, err := pgx.CollectExactlyOneRow(rows, pgx.RowToAddrOfStructByName[Channel])
	return c, mapErr(err)
}

func InsertChannel(ctx context.Context, db DB, c Channel) (*Channel, error) {
	return oneChannel(db.Query(ctx, q("InsertChannel"), pg.Args{"channel_id": c.ChannelID, "tenant": c.Tenant,
		"provider_id": c.ProviderID, "resource_id": c.ResourceID, "resource_uri": c.ResourceURI,
		"address": c.Address, "client_id": c.ClientID, "expire_time": c.ExpireTime}))
}

// ConfirmChannel records Google's answer to events.watch.
func ConfirmChannel(ctx context.Context, db DB, tenant, channelID, resourceID, resourceURI string, expire *time.Time) (*Channel, error) {
	return oneChannel(db.Query(ctx, q("ConfirmChannel"), pg.Args{"tenant": tenant, "channel_id": channelID,
		"resource_id": text.Clean(resourceID), "resource_uri": text.Clean(resourceURI), "expire_time": expire}))
}

// DeleteChannel removes a channel Google never confirmed.
func DeleteChannel(ctx context.Context, db DB, tenant, channelID string) error {
	_, err := db.Exec(ctx, q("DeleteChannel"), pg.Args{"tenant": tenant, "channel_id": channelID})
	return err
}

// GetChannel finds a channel by its globally unique id (an incoming notification names only that).
func GetChannel(ctx context.Context, db DB, channelID string) (*Channel, error) {
	return oneChannel(db.Query(ctx, q("GetChannel"), pg.Args{"channel_id": channelID}))
}

func ListChannels(ctx context.Context, db DB, tenant, providerID string) ([]*Channel, error) {
	rows, err := db.Query(ctx, q("ListChannels"), pg.Args{"tenant": tenant, "provider_id": providerID})
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToAddrOfStructByName[Channel])
}

// SetChannelState changes a channel's state; attempt adds one to its stop attempts.
func SetChannelState(ctx context.Context, db DB, tenant, channelID, state, stopError string, attempt bool) (*Channel, error) {
	n := 0
	if attempt {
		n = 1
	}
	return oneChannel(db.Query(ctx, q("SetChannelState"), pg.Args{"tenant": tenant, "channel_id": channelID,
		"state": state, "stop_error": text.Clean(stopError), "attempts": n}))
}

// AdvanceMessageNumber moves the channel's last message number forward; false when n is not newer.
func AdvanceMessageNumber(ctx context.Context, db DB, channelID string, n int64) (bool, error) {
	var id string
	err := db.QueryRow(ctx, q("AdvanceMessageNumber"), pg.Args{"channel_id": channelID, "message_number": n}).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// InsertNotification stores a notification once (channel id + message number).
func InsertNotification(ctx context.Context, db DB, tenant, providerID, channelID string, n int64, state string) (bool, error) {
	tag, err := db.Exec(ctx, q("InsertNotification"), pg.Args{"channel_id": channelID, "message_number": n,
		"tenant": tenant, "provider_id": providerID, "resource_state": state})
	return tag.RowsAffected() == 1, err
}

// EventState is the last seen state of one event.
type EventState struct {
	EventID string `db:"event_id"`
	ETag    string `db:"etag"`
	Status  string `db:"status"`
}

// ListEvents returns the provider's known events by id.
func ListEvents(ctx context.Context, db DB, tenant, providerID string) (map[string]EventState, error) {
	rows, err := db.Query(ctx, q("ListEvents"), pg.Args{"tenant": tenant, "provider_id": providerID})
	if err != nil {
		return nil, err
	}
	list, err := pgx.CollectRows(rows, pgx.RowToStructByName[EventState])
	if err != nil {
		return nil, err
	}
	out := make(map[string]EventState, len(list))
	for _, e := range list {
		out[e.EventID] = e
	}
	return out, nil
}

func UpsertEvent(ctx context.Context, db DB, tenant, providerID, eventID, etag, status string, updated *time.Time) error {
	_, err := db.Exec(ctx, q("UpsertEvent"), pg.Args{"tenant": tenant, "provider_id": providerID,
		"event_id": text.Clean(eventID), "etag": text.Clean(etag), "status": text.Clean(status), "update_time": updated})
	return err
}

// HasChanges reports whether the provider ever recorded a change.
func HasChanges(ctx context.Context, db DB, tenant, providerID string) (bool, error) {
	var ok bool
	err := db.QueryRow(ctx, q("HasChanges"), pg.Args{"tenant": tenant, "provider_id": providerID}).Scan(&ok)
	return ok, err
}

// Change types (the values of calendarv1.ChangeType).
const (
	ChangeCreated   = 1
	ChangeUpdated   = 2
	ChangeCancelled = 3
	ChangeResync    = 4
)

// Change is one row of calendar.changes.
type Change struct {
	Seq             int64      `db:"seq"`
	ID              string     `db:"id"`
	Tenant          string     `db:"tenant"`
	ProviderID      string     `db:"provider_id"`
	UserID          string     `db:"user_id"`
	CalendarID      string     `db:"calendar_id"`
	Type            int16      `db:"change_type"`
	EventID         string     `db:"event_id"`
	ICalUID         string     `db:"ical_uid"`
	Summary         string     `db:"summary"`
	Description     string     `db:"description"`
	Location        string     `db:"location"`
	StartTime       *time.Time `db:"start_time"`
	EndTime         *time.Time `db:"end_time"`
	AllDay          bool       `db:"all_day"`
	StartDate       string     `db:"start_date"`
	EndDate         string     `db:"end_date"`
	EventStatus     string     `db:"event_status"`
	ETag            string     `db:"etag"`
	EventUpdateTime *time.Time `db:"event_update_time"`
	RecordTime      time.Time  `db:"record_time"`
	Acknowledged    bool       `db:"acknowledged"`
	AcknowledgeTime *time.Time `db:"acknowledge_time"`
}

// InsertChange appends a change to the tenant's change feed through app (the feed's appender of c's
// tenant in the transaction: it takes the append lock before seq is drawn) and returns its cursor. Text
// from Google is cleaned (no NUL, valid UTF-8) here, where every change is stored.
func InsertChange(ctx context.Context, app *feed.Appender, c Change) (int64, error) {
	var seq int64
	_, err := app.Insert(ctx, q("InsertChange"), pg.Args{
		"tenant": c.Tenant, "provider_id": c.ProviderID, "user_id": c.UserID, "calendar_id": text.Clean(c.CalendarID),
		"change_type": c.Type, "event_id": text.Clean(c.EventID), "ical_uid": text.Clean(c.ICalUID),
		"summary": text.Clean(c.Summary), "description": text.Clean(c.Description), "location": text.Clean(c.Location),
		"start_time": c.StartTime, "end_time": c.EndTime, "all_day": c.AllDay, "start_date": text.Clean(c.StartDate),
		"end_date": text.Clean(c.EndDate), "event_status": text.Clean(c.EventStatus), "etag": text.Clean(c.ETag),
		"event_update_time": c.EventUpdateTime,
	}, &seq)
	return seq, err
}

// ListChanges returns up to limit changes after the cursor, of one provider unless providerID is empty.
func ListChanges(ctx context.Context, db DB, tenant, providerID string, after int64, includeAcknowledged bool, limit int) ([]*Change, error) {
	rows, err := db.Query(ctx, q("ListChanges"), pg.Args{"tenant": tenant, "provider_id": providerID,
		"after": after, "include_acknowledged": includeAcknowledged, "limit": limit})
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToAddrOfStructByName[Change])
}

// AcknowledgeChanges marks changes of the tenant acknowledged and returns how many were newly marked.
func AcknowledgeChanges(ctx context.Context, db DB, tenant string, ids []string) (int64, error) {
	tag, err := db.Exec(ctx, q("AcknowledgeChanges"), pg.Args{"tenant": tenant, "ids": ids})
	return tag.RowsAffected(), err
}

// NotificationQuiet reports how long the provider has been without a new notification; ok is false when
// it has none at all.
func NotificationQuiet(ctx context.Context, db DB, tenant, providerID string) (quiet time.Duration, ok bool, err error) {
	var age *time.Duration
	if err := db.QueryRow(ctx, q("NotificationQuiet"), pg.Args{"tenant": tenant, "provider_id": providerID}).Scan(&age); err != nil {
		return 0, false, err
	}
	if age == nil {
		return 0, false, nil
	}
	return *age, true, nil
}

// Upkeep is a provider with its live channel (the newest active one Google confirmed), as scheduled
// maintenance decides on it.
type Upkeep struct {
	ID                          string     `db:"id"`
	UserID                      string     `db:"user_id"`
	DisplayName                 string     `db:"display_name"`
	AccountEmail                string     `db:"account_email"`
	State                       string     `db:"state"`
	ErrorCode                   string     `db:"error_code"`
	ConnectTime                 *time.Time `db:"connect_time"`
	LastSyncTime                *time.Time `db:"last_sync_time"`
	ChannelID                   *string    `db:"channel_id"`
	ChannelExpireTime           *time.Time `db:"channel_expire_time"`
	ChannelCreateTime           *time.Time `db:"channel_create_time"`
	ChannelLastNotificationTime *time.Time `db:"channel_last_notification_time"`
}

// ListUpkeep lists every provider of the tenant (all users) with its live channel, in one query.
func ListUpkeep(ctx context.Context, db DB, tenant string) ([]*Upkeep, error) {
	rows, err := db.Query(ctx, q("ListUpkeep"), pg.Args{"tenant": tenant})
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToAddrOfStructByName[Upkeep])
}

// AcquireChannelLease takes the provider's channel lease for ttl under the holder's id; false when
// another holder's lease is still running. ErrNotFound when the provider is gone.
func AcquireChannelLease(ctx context.Context, db DB, tenant, id, lease string, ttl time.Duration) (bool, error) {
	var got string
	err := db.QueryRow(ctx, q("AcquireChannelLease"), pg.Args{"tenant": tenant, "id": id, "lease": lease,
		"ttl_seconds": ttl.Seconds()}).Scan(&got)
	if errors.Is(err, pgx.ErrNoRows) {
		if _, gerr := GetProvider(ctx, db, tenant, id); gerr != nil {
			return false, gerr
		}
		return false, nil
	}
	return err == nil, err
}

// ReleaseChannelLease gives the lease back (a no-op when it has expired and another holder took it).
func ReleaseChannelLease(ctx context.Context, db DB, tenant, id, lease string) error {
	_, err := db.Exec(ctx, q("ReleaseChannelLease"), pg.Args{"tenant": tenant, "id": id, "lease": lease})
	return err
}

// Step is the last outcome of one upkeep step of a provider (diagnostics).
type Step struct {
	Name      string    `db:"name"`
	OK        bool      `db:"ok"`
	ErrorCode string    `db:"error_code"`
	Detail    string    `db:"detail"`
	RunID     string    `db:"run_id"`
	CheckTime time.Time `db:"check_time"`
}

// UpsertStep records the outcome of a step, replacing the previous one of the same name.
func UpsertStep(ctx context.Context, db DB, tenant, providerID string, st Step) error {
	_, err := db.Exec(ctx, q("UpsertStep"), pg.Args{"provider_id": providerID, "tenant": tenant, "name": st.Name,
		"ok": st.OK, "error_code": st.ErrorCode, "detail": text.Clean(st.Detail), "run_id": st.RunID})
	return err
}

// MendStep marks the provider's failed step name as working again, with detail.
func MendStep(ctx context.Context, db DB, tenant, providerID, name, detail string) error {
	_, err := db.Exec(ctx, q("MendStep"), pg.Args{"tenant": tenant, "provider_id": providerID, "name": name, "detail": text.Clean(detail)})
	return err
}

// ListSteps returns the provider's recorded steps by name.
func ListSteps(ctx context.Context, db DB, tenant, providerID string) ([]Step, error) {
	rows, err := db.Query(ctx, q("ListSteps"), pg.Args{"tenant": tenant, "provider_id": providerID})
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByName[Step])
}

// TimelineKeep is how many timeline entries are kept per provider.
const TimelineKeep = 50

// TimelineEvent is one entry of a provider's timeline.
type TimelineEvent struct {
	Type string `db:"event_type"`
	// Step is the diagnostics step of a failure, or the upkeep step that succeeded.
	Step       string    `db:"step"`
	ErrorCode  string    `db:"error_code"`
	Message    string    `db:"message"`
	RunID      string    `db:"run_id"`
	CreateTime time.Time `db:"create_time"`
}

// AddTimeline appends an entry to the provider's timeline and drops the oldest beyond TimelineKeep.
func AddTimeline(ctx context.Context, db DB, tenant, providerID string, e TimelineEvent) error {
	if _, err := db.Exec(ctx, q("InsertTimeline"), pg.Args{"tenant": tenant, "provider_id": providerID,
		"event_type": e.Type, "step": e.Step, "error_code": e.ErrorCode, "message": text.Clean(e.Message), "run_id": e.RunID}); err != nil {
		return err
	}
	_, err := db.Exec(ctx, q("TrimTimeline"), pg.Args{"tenant": tenant, "provider_id": providerID, "keep": TimelineKeep})
	return err
}

// ListTimeline returns the provider's newest limit entries, newest first.
func ListTimeline(ctx context.Context, db DB, tenant, providerID string, limit int) ([]TimelineEvent, error) {
	rows, err := db.Query(ctx, q("ListTimeline"), pg.Args{"tenant": tenant, "provider_id": providerID, "limit": limit})
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByName[TimelineEvent])
}

// AgeTenant moves every recorded time of the tenant's providers and channels (Google's channel
// expirations included), notifications, diagnostics steps and timelines back by `by`, and reports how
// many providers it moved (test helper).
func AgeTenant(ctx context.Context, db DB, tenant string, by time.Duration) (int, error) {
	var n int
	err := db.QueryRow(ctx, q("TestAgeTenant"), pg.Args{"tenant": tenant, "by": by}).Scan(&n)
	return n, err
}
