package upkeep

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	maintenancev1 "github.com/algapsa/alga-google/gen/alga/maintenance/v1"
)

// Daily is how often a watch is renewed, the provisioning re-read and a token refreshed even when
// nothing else makes it due (Google recommends calling users.watch once a day).
const Daily = 24 * time.Hour

// Settings are the thresholds the due decisions use.
type Settings struct {
	// Interval is how often a tenant's run is scheduled. Daily work is due once its age reaches
	// Daily − Interval/2, so an hourly schedule's jitter never stretches "once a day" to 25 hours.
	Interval time.Duration
	// RenewAhead: a watch or channel expiring within it is renewed.
	RenewAhead time.Duration
	// TokenMargin: a live access token expiring within it is refreshed ahead.
	TokenMargin time.Duration
	// Silence: a mailbox or calendar without a notification (or sync) for this long is reconciled.
	Silence time.Duration
	// PushEndpoint and PushAudience are the canonical Gmail push endpoint and OIDC audience (from
	// ALGA_BASE_URL); empty skips the drift comparison.
	PushEndpoint string
	PushAudience string
}

func (s Settings) dailyAge() time.Duration {
	slack := s.Interval / 2
	if slack > Daily/2 {
		slack = Daily / 2
	}
	return Daily - slack
}

func ts(t *timestamppb.Timestamp) *time.Time {
	if t == nil {
		return nil
	}
	v := t.AsTime()
	return &v
}

func latest(ts ...*timestamppb.Timestamp) *time.Time {
	var out *time.Time
	for _, t := range ts {
		if t == nil {
			continue
		}
		v := t.AsTime()
		if out == nil || v.After(*out) {
			out = &v
		}
	}
	return out
}

func round(d time.Duration) string { return d.Round(time.Minute).String() }

// TokenDecision is whether a connection's token is refreshed in this run.
type TokenDecision struct {
	Refresh bool
	// NeedsReauth: the connection failed permanently before; nothing of the provider is maintained
	// until the user reconnects (each run would fail the same way).
	NeedsReauth bool
	Reason      string
}

// DecideToken decides a connection's refresh: at least once a day (the connect counts as one), when a
// live access token expires within the margin, and after a transient failure. A revoked, expired,
// reauth-required or client-replaced connection is left alone: only the user can mend it. An access
// token that has already expired is not refreshed ahead (nobody is using it; the next user refreshes
// it on demand) — only the daily refresh applies.
func DecideToken(s Settings, now time.Time, c *maintenancev1.TokenUpkeep) TokenDecision {
	switch c.GetState() {
	case maintenancev1.ConnectionState_CONNECTION_STATE_DISCONNECTED:
		return TokenDecision{Reason: "connection is disconnected"}
	case maintenancev1.ConnectionState_CONNECTION_STATE_REVOKED,
		maintenancev1.ConnectionState_CONNECTION_STATE_TESTING_EXPIRY,
		maintenancev1.ConnectionState_CONNECTION_STATE_INVALID_RAPT,
		maintenancev1.ConnectionState_CONNECTION_STATE_CLIENT_REPLACED:
		return TokenDecision{NeedsReauth: true, Reason: "the connection needs to be reauthorized (" + stateName(c.GetState()) + ")"}
	case maintenancev1.ConnectionState_CONNECTION_STATE_TRANSIENT_ERROR:
		return TokenDecision{Refresh: true, Reason: "the last refresh failed transiently"}
	}
	base := latest(c.GetLastRefreshTime(), c.GetConnectTime())
	if base == nil {
		return TokenDecision{Refresh: true, Reason: "never refreshed"}
	}
	if age := now.Sub(*base); age >= s.dailyAge() {
		return TokenDecision{Refresh: true, Reason: "daily refresh (last " + round(age) + " ago)"}
	}
	if exp := ts(c.GetAccessTokenExpireTime()); exp != nil {
		if left := exp.Sub(now); left > 0 && left <= s.TokenMargin {
			return TokenDecision{Refresh: true, Reason: "access token expires within " + s.TokenMargin.String()}
		}
	}
	return TokenDecision{Reason: "refreshed " + round(now.Sub(*base)) + " ago"}
}

func stateName(st maintenancev1.ConnectionState) string {
	switch st {
	case maintenancev1.ConnectionState_CONNECTION_STATE_REVOKED:
		return "revoked"
	case maintenancev1.ConnectionState_CONNECTION_STATE_TESTING_EXPIRY:
		return "testing-mode expiry"
	case maintenancev1.ConnectionState_CONNECTION_STATE_INVALID_RAPT:
		return "reauthentication required"
	case maintenancev1.ConnectionState_CONNECTION_STATE_CLIENT_REPLACED:
		return "OAuth client replaced"
	}
	return st.String()
}

// skipState says why a provider in this state is not maintained ("" when it is).
func skipState(st maintenancev1.ProviderState) string {
	switch st {
	case maintenancev1.ProviderState_PROVIDER_STATE_CONNECTED, maintenancev1.ProviderState_PROVIDER_STATE_ERROR:
		return ""
	case maintenancev1.ProviderState_PROVIDER_STATE_PAUSED:
		return "the provider is paused"
	case maintenancev1.ProviderState_PROVIDER_STATE_CONNECTING:
		return "the provider is being connected"
	}
	return "the provider is not connected"
}

// GmailDecision is what is due for one Gmail provider.
type GmailDecision struct {
	Skip               string
	VerifyProvisioning string // reason, "" = not due
	RenewWatch         string
	Reconcile          string
	NotDue             map[string]string
}

// DecideGmail decides a Gmail provider's steps:
//   - provisioning is re-read once a day, at once when the recorded push endpoint or audience differs
//     from the canonical one (ALGA_BASE_URL changed), and after an error;
//   - users.watch is called when there is no watch, it expires within RenewAhead, the last call is a
//     day old (Google's recommendation), or after an error;
//   - history.list reconciles when no push and no sync happened for Silence, the watch had lapsed, or
//     after an error.
//
// A provider in ERROR gets every step: repairing is the only way its error clears.
func DecideGmail(s Settings, now time.Time, p *maintenancev1.GmailUpkeep) GmailDecision {
	d := GmailDecision{NotDue: map[string]string{}}
	if d.Skip = skipState(p.GetState()); d.Skip != "" {
		return d
	}
	if p.GetState() == maintenancev1.ProviderState_PROVIDER_STATE_ERROR {
		why := "repairing after error " + p.GetErrorCode()
		d.VerifyProvisioning, d.RenewWatch, d.Reconcile = why, why, why
		return d
	}
	switch check := ts(p.GetLastProvisioningCheckTime()); {
	case s.PushEndpoint != "" && p.GetPushEndpoint() != s.PushEndpoint:
		d.VerifyProvisioning = "push endpoint " + p.GetPushEndpoint() + " is not the canonical " + s.PushEndpoint
	case s.PushAudience != "" && p.GetPushAudience() != s.PushAudience:
		d.VerifyProvisioning = "push audience " + p.GetPushAudience() + " is not the canonical " + s.PushAudience
	case check == nil:
		d.VerifyProvisioning = "provisioning never verified"
	case now.Sub(*check) >= s.dailyAge():
		d.VerifyProvisioning = "daily verification (last " + round(now.Sub(*check)) + " ago)"
	default:
		d.NotDue[StepProvisioningVerify] = "verified " + round(now.Sub(*check)) + " ago"
	}
	lapsed := false
	exp := ts(p.GetWatchExpireTime())
	last := ts(p.GetLastWatchTime())
	switch {
	case exp == nil:
		d.RenewWatch, lapsed = "no watch", true
	case !exp.After(now):
		d.RenewWatch, lapsed = "watch expired "+round(now.Sub(*exp))+" ago", true
	case exp.Sub(now) <= s.RenewAhead:
		d.RenewWatch = "watch expires within " + s.RenewAhead.String()
	case last == nil:
		d.RenewWatch = "watch never renewed"
	case now.Sub(*last) >= s.dailyAge():
		d.RenewWatch = "daily renewal (last " + round(now.Sub(*last)) + " ago)"
	default:
		d.NotDue[StepWatchRenew] = fmt.Sprintf("renewed %s ago, expires in %s", round(now.Sub(*last)), round(exp.Sub(now)))
	}
	quiet := latest(p.GetLastPushTime(), p.GetLastSyncTime(), p.GetConnectTime())
	switch {
	case lapsed && quiet != nil:
		d.Reconcile = "the watch had lapsed: notifications may have been missed"
	case quiet == nil:
		d.Reconcile = "never synced"
	case now.Sub(*quiet) >= s.Silence:
		d.Reconcile = "no push or sync for " + round(now.Sub(*quiet))
	default:
		d.NotDue[StepReconcile] = "last push or sync " + round(now.Sub(*quiet)) + " ago"
	}
	return d
}

// CalendarDecision is what is due for one Calendar provider.
type CalendarDecision struct {
	Skip string
	// ChannelStep is StepChannelRenew, StepChannelRecreate or "".
	ChannelStep   string
	ChannelID     string
	ChannelReason string
	DeltaSync     string
	NotDue        map[string]string
}

// DecideCalendar decides a Calendar provider's steps:
//   - no live channel, or an expired one → recreate (and a delta sync: notifications were missed);
//   - a channel expiring within RenewAhead → renew (the owner creates the new one first, then stops
//     the old one);
//   - no notification and no sync for Silence → delta sync;
//   - a provider in ERROR → a fresh channel (renew, or recreate when none is live) and a delta sync.
func DecideCalendar(s Settings, now time.Time, p *maintenancev1.CalendarUpkeep) CalendarDecision {
	d := CalendarDecision{NotDue: map[string]string{}}
	if d.Skip = skipState(p.GetState()); d.Skip != "" {
		return d
	}
	ch := p.GetChannel()
	var exp *time.Time
	if ch != nil {
		exp = ts(ch.GetExpireTime())
	}
	lapsed := false
	switch {
	case ch == nil:
		d.ChannelStep, d.ChannelReason, lapsed = StepChannelRecreate, "no live channel", true
	case exp != nil && !exp.After(now):
		d.ChannelStep, d.ChannelID, d.ChannelReason, lapsed = StepChannelRecreate, ch.GetChannelId(), "channel expired "+round(now.Sub(*exp))+" ago", true
	case p.GetState() == maintenancev1.ProviderState_PROVIDER_STATE_ERROR:
		d.ChannelStep, d.ChannelID, d.ChannelReason = StepChannelRenew, ch.GetChannelId(), "repairing after error "+p.GetErrorCode()
	case exp == nil:
		d.ChannelStep, d.ChannelID, d.ChannelReason = StepChannelRenew, ch.GetChannelId(), "channel expiration unknown"
	case exp.Sub(now) <= s.RenewAhead:
		d.ChannelStep, d.ChannelID, d.ChannelReason = StepChannelRenew, ch.GetChannelId(), "channel expires within "+s.RenewAhead.String()
	default:
		d.NotDue[StepChannelRenew] = "channel expires in " + round(exp.Sub(now))
	}
	var quiet *time.Time
	if ch != nil {
		quiet = latest(ch.GetLastNotificationTime(), ch.GetCreateTime(), p.GetLastSyncTime(), p.GetConnectTime())
	} else {
		quiet = latest(p.GetLastSyncTime(), p.GetConnectTime())
	}
	switch {
	case p.GetState() == maintenancev1.ProviderState_PROVIDER_STATE_ERROR:
		d.DeltaSync = "repairing after error " + p.GetErrorCode()
	case lapsed:
		d.DeltaSync = "the channel had lapsed: notifications may have been missed"
	case quiet == nil:
		d.DeltaSync = "never synced"
	case now.Sub(*quiet) >= s.Silence:
		d.DeltaSync = "no notification or sync for " + round(now.Sub(*quiet))
	default:
		d.NotDue[StepDeltaSync] = "last notification or sync " + round(now.Sub(*quiet)) + " ago"
	}
	return d
}
