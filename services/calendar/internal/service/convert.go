package service

import (
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	calendarv1 "github.com/algapsa/alga-google/gen/alga/calendar/v1"
	"github.com/algapsa/alga-google/services/calendar/internal/store"
	"github.com/algapsa/alga-google/services/platform/feed"
)

func ts(t *time.Time) *timestamppb.Timestamp {
	if t == nil || t.IsZero() {
		return nil
	}
	return timestamppb.New(*t)
}

func statusOf(state string) calendarv1.ProviderStatus {
	switch state {
	case store.StateDisconnected:
		return calendarv1.ProviderStatus_PROVIDER_STATUS_DISCONNECTED
	case store.StateConnecting:
		return calendarv1.ProviderStatus_PROVIDER_STATUS_CONNECTING
	case store.StateConnected:
		return calendarv1.ProviderStatus_PROVIDER_STATUS_CONNECTED
	case store.StateError:
		return calendarv1.ProviderStatus_PROVIDER_STATUS_ERROR
	}
	return calendarv1.ProviderStatus_PROVIDER_STATUS_UNSPECIFIED
}

// googleConfigName says which tenant configuration a Calendar provider uses.
func googleConfigName(cfg *GoogleConfig) string {
	switch {
	case cfg == nil:
		return ""
	case cfg.UseSameApp:
		return "shared"
	default:
		return "calendar"
	}
}

func toProvider(p *store.Provider, chans []*store.Channel, cfg *GoogleConfig) *calendarv1.CalendarProvider {
	out := &calendarv1.CalendarProvider{
		Id:            p.ID,
		UserId:        p.UserID,
		CalendarId:    p.CalendarID,
		DisplayName:   p.DisplayName,
		SyncDirection: calendarv1.SyncDirection(p.SyncDirection),
		Status:        statusOf(p.State),
		GoogleConfig:  googleConfigName(cfg),
		AccountEmail:  p.AccountEmail,
		LastSyncTime:  ts(p.LastSyncTime),
		CreateTime:    timestamppb.New(p.CreateTime),
		UpdateTime:    timestamppb.New(p.UpdateTime),
	}
	if p.ErrorCode != "" {
		out.Error = &calendarv1.ProviderError{Code: p.ErrorCode, Message: p.ErrorMessage, Remedy: p.ErrorRemedy}
	}
	if c := latestActive(chans); c != nil {
		out.ChannelExpireTime = ts(c.ExpireTime)
	}
	return out
}

// latestActive is the newest active channel with a resource id (a watch Google confirmed).
func latestActive(chans []*store.Channel) *store.Channel {
	var best *store.Channel
	for _, c := range chans {
		if c.State != store.ChannelActive || c.ResourceID == "" {
			continue
		}
		if best == nil || c.CreateTime.After(best.CreateTime) {
			best = c
		}
	}
	return best
}

func toChannel(c *store.Channel) *calendarv1.CalendarChannel {
	return &calendarv1.CalendarChannel{
		ChannelId:            c.ChannelID,
		ResourceId:           c.ResourceID,
		ExpireTime:           ts(c.ExpireTime),
		State:                c.State,
		LastMessageNumber:    c.LastMessageNumber,
		LastNotificationTime: ts(c.LastNotificationTime),
	}
}

func toUpkeepStep(st store.Step) *calendarv1.UpkeepStep {
	return &calendarv1.UpkeepStep{Name: st.Name, Ok: st.OK, ErrorCode: st.ErrorCode, Detail: st.Detail, RunId: st.RunID,
		CheckTime: timestamppb.New(st.CheckTime)}
}

func toProviderEvent(e store.TimelineEvent) *calendarv1.ProviderEvent {
	return &calendarv1.ProviderEvent{Type: e.Type, Step: e.Step, ErrorCode: e.ErrorCode, Message: e.Message, RunId: e.RunID,
		CreateTime: timestamppb.New(e.CreateTime)}
}

func toChange(c *store.Change) *calendarv1.CalendarChange {
	return &calendarv1.CalendarChange{
		Cursor:          feed.Cursor(c.Seq),
		Id:              c.ID,
		ProviderId:      c.ProviderID,
		UserId:          c.UserID,
		CalendarId:      c.CalendarID,
		Type:            calendarv1.ChangeType(c.Type),
		EventId:         c.EventID,
		IcalUid:         c.ICalUID,
		Summary:         c.Summary,
		Description:     c.Description,
		Location:        c.Location,
		StartTime:       ts(c.StartTime),
		EndTime:         ts(c.EndTime),
		AllDay:          c.AllDay,
		StartDate:       c.StartDate,
		EndDate:         c.EndDate,
		EventStatus:     c.EventStatus,
		Etag:            c.ETag,
		EventUpdateTime: ts(c.EventUpdateTime),
		RecordTime:      timestamppb.New(c.RecordTime),
		Acknowledged:    c.Acknowledged,
	}
}
