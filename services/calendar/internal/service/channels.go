package service

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"

	calendarv1 "github.com/algapsa/alga-google/gen/alga/calendar/v1"
	"github.com/algapsa/alga-google/services/calendar/internal/gcal"
	"github.com/algapsa/alga-google/services/calendar/internal/store"
	"github.com/algapsa/alga-google/services/platform/errs"
)

// maxStopAttempts bounds how often a failing channels.stop is retried before the channel is left to expire.
const maxStopAttempts = 3

// expiringWithin is when a channel counts as expiring (renew it).
const expiringWithin = 24 * time.Hour

// ActivateCalendarProvider runs after a successful OAuth callback: calendar list, initial full sync, then a
// push channel. CONNECTED only when all of it succeeded.
func (s *Service) ActivateCalendarProvider(ctx context.Context, req *calendarv1.ActivateCalendarProviderRequest) (*calendarv1.ActivateCalendarProviderResponse, error) {
	id, err := serviceCaller(ctx)
	if err != nil {
		return nil, err
	}
	p, err := store.GetProvider(ctx, s.deps.Pool, id.Tenant, req.GetId())
	if errors.Is(err, store.ErrNotFound) {
		return nil, errProviderNotFound
	}
	if err != nil {
		return nil, err
	}
	if email := req.GetAccountEmail(); email != "" && email != p.AccountEmail {
		// Another Google account: its events are not the old account's, start from nothing.
		if err := store.ClearSyncToken(ctx, s.deps.Pool, p.Tenant, p.ID); err != nil {
			return nil, err
		}
	}
	p, err = s.activate(ctx, p, req.GetAccountEmail())
	if err != nil {
		return nil, err
	}
	v, err := s.view(ctx, p, s.googleConfig(ctx))
	if err != nil {
		return nil, err
	}
	return &calendarv1.ActivateCalendarProviderResponse{Provider: v}, nil
}

func (s *Service) activate(ctx context.Context, p *store.Provider, accountEmail string) (*store.Provider, error) {
	if _, err := store.SetState(ctx, s.deps.Pool, p.Tenant, p.ID, store.StateConnecting, "", "", ""); err != nil {
		return nil, err
	}
	tok, err := s.deps.OAuth.AccessToken(ctx, p.Tenant, p.ID)
	if err != nil {
		return nil, s.tokenError(ctx, p, err)
	}
	if accountEmail == "" {
		accountEmail = tok.AccountEmail
	}
	if accountEmail == "" {
		accountEmail = p.AccountEmail
	}
	cl, err := s.client(ctx, p.Tenant, tok)
	if err != nil {
		return nil, err
	}
	cals, err := cl.CalendarIDs(ctx)
	if err != nil {
		return nil, s.googleError(ctx, p, "calendarList", err)
	}
	if p.CalendarID != DefaultCalendarID && !slices.Contains(cals, p.CalendarID) {
		s.setError(ctx, p, errCalendarMissing)
		return nil, errs.FailedPrecondition("CALENDAR_NOT_FOUND", "%s %s", errCalendarMissing.message, errCalendarMissing.remedy)
	}
	// The channel change holds the provider's channel lease, so an upkeep renewal cannot interleave
	// (best effort: a lease that stays busy does not block a reconnect).
	release, err := s.leaseChannels(ctx, p)
	if errors.Is(err, errChannelBusy) {
		s.log.WarnContext(ctx, "activation: another channel change is still in progress; going ahead", "provider", p.ID)
		release = func() {}
	} else if err != nil {
		return nil, err
	}
	// Channels of an earlier connection go first (a reconnect must not leave them running at Google).
	old, err := store.ListChannels(ctx, s.deps.Pool, p.Tenant, p.ID)
	if err != nil {
		release()
		return nil, err
	}
	for _, w := range s.stopChannels(ctx, p, old, &tok, "") {
		s.log.InfoContext(ctx, "activation: earlier channel", "provider", p.ID, "warning", w)
	}
	// The channel first, then the initial sync: a change made while the sync runs is notified and picked
	// up by the delta sync that notification enqueues, so nothing falls between the two.
	ch, err := s.createChannel(ctx, p, tok, cl)
	release()
	if err != nil {
		return nil, s.googleError(ctx, p, "watch", err)
	}
	// A full sync; it reconciles with what an earlier connection recorded.
	if err := s.syncWith(ctx, p.Tenant, p.ID, cl); err != nil {
		gerr := s.googleError(ctx, p, "events.list", err)
		s.stopChannels(ctx, p, []*store.Channel{ch}, &tok, "")
		return nil, gerr
	}
	p, err = store.SetConnected(ctx, s.deps.Pool, p.Tenant, p.ID, accountEmail, cals)
	if err != nil {
		return nil, err
	}
	if err := store.MendStep(ctx, s.deps.Pool, p.Tenant, p.ID, stepToken, tokenWorks); err != nil {
		s.log.ErrorContext(ctx, "mending the token step", "provider", p.ID, "err", err)
	}
	s.timeline(ctx, p, store.TimelineEvent{Type: "activated",
		Message: fmt.Sprintf("Connected to %s: push channel %s (expiration as Google returned it: %s), initial sync done.", accountEmail, ch.ChannelID, expiry(ch))})
	return p, nil
}

// reactivate restarts a connected provider on another calendar.
func (s *Service) reactivate(ctx context.Context, p *store.Provider) (*store.Provider, error) {
	if err := store.ClearSyncToken(ctx, s.deps.Pool, p.Tenant, p.ID); err != nil {
		return nil, err
	}
	return s.activate(ctx, p, p.AccountEmail)
}

// createChannel opens a push channel. Its row is written before events.watch so a notification racing
// the watch answer is already recognized; the row is removed again when Google refuses (the Calendar
// API's error is returned as it is: map it with googleError).
func (s *Service) createChannel(ctx context.Context, p *store.Provider, tok Token, cl *gcal.Client) (*store.Channel, error) {
	chID := uuid.NewString()
	if _, err := store.InsertChannel(ctx, s.deps.Pool, store.Channel{
		ChannelID: chID, Tenant: p.Tenant, ProviderID: p.ID, Address: s.deps.WebhookAddress, ClientID: tok.ClientID,
	}); err != nil {
		return nil, err
	}
	w, err := cl.Watch(ctx, p.CalendarID, chID, s.deps.Keys.Token(p.Tenant, p.ID, chID), s.deps.WebhookAddress)
	if err != nil {
		if derr := store.DeleteChannel(context.WithoutCancel(ctx), s.deps.Pool, p.Tenant, chID); derr != nil {
			s.log.ErrorContext(ctx, "removing refused channel", "err", derr)
		}
		return nil, err
	}
	var exp *time.Time
	if !w.Expire.IsZero() {
		exp = &w.Expire
	}
	row, err := store.ConfirmChannel(ctx, s.deps.Pool, p.Tenant, chID, w.ResourceID, w.ResourceURI, exp)
	if err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "calendar channel created", "provider", p.ID, "channel", chID, "expire", w.Expire)
	return row, nil
}

// stopChannels stops every live channel except keep. A channel created by another OAuth client than the
// connection's current one cannot be stopped (Google allows only the creating client): it is marked
// unstoppable and left to expire. Failures are retried on later calls, at most maxStopAttempts times.
func (s *Service) stopChannels(ctx context.Context, p *store.Provider, chans []*store.Channel, tok *Token, keep string) []string {
	var warnings []string
	var cl *gcal.Client
	for _, c := range chans {
		if c.ChannelID == keep || (c.State != store.ChannelActive && c.State != store.ChannelStopping) {
			continue
		}
		if c.ResourceID == "" {
			// Never confirmed by Google (a crash between insert and watch): nothing to stop.
			s.setChannel(ctx, c, store.ChannelStopped, "never confirmed by Google", false)
			continue
		}
		if c.ExpireTime != nil && c.ExpireTime.Before(s.deps.Now()) {
			s.setChannel(ctx, c, store.ChannelStopped, "expired", false)
			continue
		}
		if tok == nil {
			s.setChannel(ctx, c, store.ChannelUnstoppable, "no access token: the channel is left to expire", false)
			warnings = append(warnings, fmt.Sprintf("calendar channel %s of provider %s could not be stopped (no valid authorization); it expires on its own", c.ChannelID, p.ID))
			continue
		}
		if c.ClientID != tok.ClientID {
			s.setChannel(ctx, c, store.ChannelUnstoppable, "created by another OAuth client: only that client can stop it", false)
			warnings = append(warnings, fmt.Sprintf("calendar channel %s of provider %s was created by a replaced OAuth client and cannot be stopped; it expires on its own", c.ChannelID, p.ID))
			continue
		}
		if cl == nil {
			var err error
			if cl, err = s.client(ctx, p.Tenant, *tok); err != nil {
				warnings = append(warnings, "calendar client: "+err.Error())
				return warnings
			}
		}
		err := cl.Stop(ctx, c.ChannelID, c.ResourceID)
		switch {
		case err == nil, errors.Is(err, gcal.ErrNotFound):
			s.setChannel(ctx, c, store.ChannelStopped, "", true)
		case errors.Is(err, gcal.ErrForbidden), errors.Is(err, gcal.ErrUnauthorized):
			s.setChannel(ctx, c, store.ChannelUnstoppable, "google refused to stop it: "+err.Error(), true)
			warnings = append(warnings, fmt.Sprintf("Google refused to stop calendar channel %s of provider %s; it expires on its own", c.ChannelID, p.ID))
		case c.StopAttempts+1 >= maxStopAttempts:
			s.setChannel(ctx, c, store.ChannelUnstoppable, "stop failed repeatedly: "+err.Error(), true)
			warnings = append(warnings, fmt.Sprintf("calendar channel %s of provider %s could not be stopped after %d attempts; it expires on its own", c.ChannelID, p.ID, maxStopAttempts))
		default:
			s.setChannel(ctx, c, store.ChannelStopping, err.Error(), true)
			warnings = append(warnings, fmt.Sprintf("calendar channel %s of provider %s could not be stopped yet (will retry)", c.ChannelID, p.ID))
		}
	}
	return warnings
}

func (s *Service) setChannel(ctx context.Context, c *store.Channel, state, stopErr string, attempt bool) {
	if len(stopErr) > 500 {
		stopErr = stopErr[:500]
	}
	if _, err := store.SetChannelState(context.WithoutCancel(ctx), s.deps.Pool, c.Tenant, c.ChannelID, state, stopErr, attempt); err != nil {
		s.log.ErrorContext(ctx, "recording channel state", "channel", c.ChannelID, "err", err)
	}
}

// RenewCalendarChannel creates a new channel first, then stops the old ones (overlap, no gap).
func (s *Service) RenewCalendarChannel(ctx context.Context, req *calendarv1.RenewCalendarChannelRequest) (*calendarv1.RenewCalendarChannelResponse, error) {
	id, err := serviceCaller(ctx)
	if err != nil {
		return nil, err
	}
	p, err := store.GetProvider(ctx, s.deps.Pool, id.Tenant, req.GetProviderId())
	if errors.Is(err, store.ErrNotFound) {
		return nil, errProviderNotFound
	}
	if err != nil {
		return nil, err
	}
	r, err := s.replaceChannel(ctx, p, func(p *store.Provider, chans []*store.Channel) channelPlan {
		if p.State != store.StateConnected && p.State != store.StateError {
			return channelPlan{skip: "the calendar provider is not connected"}
		}
		// Every earlier channel still running, including stops that failed before (retried here).
		return channelPlan{stop: chans}
	})
	switch {
	case errors.Is(err, errChannelBusy):
		return nil, errs.Conflict("CHANNEL_CHANGE_IN_PROGRESS", "another change of this provider's push channel is in progress; retry shortly")
	case errors.Is(err, store.ErrNotFound):
		return nil, errProviderNotFound
	case err != nil:
		return nil, err
	case r.skip != "":
		return nil, errs.FailedPrecondition("NOT_CONNECTED", "%s", r.skip)
	}
	for _, w := range r.warnings {
		s.log.WarnContext(ctx, "channel renewal", "provider", p.ID, "warning", w)
	}
	if r.provider.State == store.StateError && r.provider.ErrorCode == errChannelFailed.code {
		if _, err := store.SetState(ctx, s.deps.Pool, p.Tenant, p.ID, store.StateConnected, "", "", ""); err != nil {
			return nil, err
		}
	}
	return &calendarv1.RenewCalendarChannelResponse{Channel: toChannel(r.channel)}, nil
}

// channelPlan is what a channel change does besides creating the new channel.
type channelPlan struct {
	// stop: channels stopped at Google once the new one is confirmed (the new one excepted).
	stop []*store.Channel
	// retire: expired channels, marked stopped without a call.
	retire []*store.Channel
	// skip, when set, says why nothing is done (the provider's state changed since the decision).
	skip string
}

// channelChange is what replaceChannel did.
type channelChange struct {
	// provider as read under the lease.
	provider *store.Provider
	channel  *store.Channel
	warnings []string
	skip     string
}

// replaceChannel is the one implementation of a channel renewal (RenewCalendarChannel and upkeep's
// RENEW and RECREATE): under the provider's channel lease it reads the provider and its channels,
// lets decide say what to stop or retire (or skip: then nothing is called), creates the new channel
// first (a 401 forces one token refresh and one retry, see withGoogle), and only then retires and
// stops the old ones — overlap, no gap. A failed creation is mapped with googleError (recorded on the
// provider); failing stops are warnings (retried by later renewals, see stopChannels).
func (s *Service) replaceChannel(ctx context.Context, p *store.Provider, decide func(*store.Provider, []*store.Channel) channelPlan) (channelChange, error) {
	var out channelChange
	release, err := s.leaseChannels(ctx, p)
	if err != nil {
		return out, err
	}
	defer release()
	if p, err = store.GetProvider(ctx, s.deps.Pool, p.Tenant, p.ID); err != nil {
		return out, err
	}
	out.provider = p
	chans, err := store.ListChannels(ctx, s.deps.Pool, p.Tenant, p.ID)
	if err != nil {
		return out, err
	}
	plan := decide(p, chans)
	if plan.skip != "" {
		out.skip = plan.skip
		return out, nil
	}
	var tok Token
	err = s.withGoogle(ctx, p, func(t Token, cl *gcal.Client) error {
		ch, err := s.createChannel(ctx, p, t, cl)
		out.channel, tok = ch, t
		return err
	})
	if err != nil {
		return out, s.googleError(ctx, p, "watch", err)
	}
	for _, c := range plan.retire {
		if c.ChannelID != out.channel.ChannelID {
			s.setChannel(ctx, c, store.ChannelStopped, "expired: retired without a stop call", false)
		}
	}
	out.warnings = s.stopChannels(ctx, p, plan.stop, &tok, out.channel.ChannelID)
	return out, nil
}

// Channel lease: how long one change may hold it (a crashed holder's lease runs out), how long a
// change waits for another one to finish, and how often it looks.
const (
	channelLeaseTTL  = 2 * time.Minute
	channelLeaseWait = 15 * time.Second
	channelLeasePoll = 50 * time.Millisecond
)

// errChannelBusy means another change of the provider's channel did not finish within channelLeaseWait.
var errChannelBusy = errors.New("another change of the provider's push channel is in progress")

// leaseChannels takes the provider's channel lease (waiting at most channelLeaseWait for another
// holder) and returns its release. The lease is a row value, not a lock: no database connection is
// held while Google answers.
func (s *Service) leaseChannels(ctx context.Context, p *store.Provider) (func(), error) {
	lease := uuid.NewString()
	deadline := time.Now().Add(channelLeaseWait)
	for {
		ok, err := store.AcquireChannelLease(ctx, s.deps.Pool, p.Tenant, p.ID, lease, channelLeaseTTL)
		if err != nil {
			return nil, err
		}
		if ok {
			return func() {
				if err := store.ReleaseChannelLease(context.WithoutCancel(ctx), s.deps.Pool, p.Tenant, p.ID, lease); err != nil {
					s.log.ErrorContext(ctx, "releasing the channel lease", "provider", p.ID, "err", err)
				}
			}, nil
		}
		if time.Now().After(deadline) {
			return nil, errChannelBusy
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(channelLeasePoll):
		}
	}
}

// expiry formats a channel's expiration as Google returned it.
func expiry(c *store.Channel) string {
	if c == nil || c.ExpireTime == nil {
		return "none"
	}
	return c.ExpireTime.UTC().Format(time.RFC3339)
}

// VerifyCalendarChannel reports whether the provider has a live, recent channel.
func (s *Service) VerifyCalendarChannel(ctx context.Context, req *calendarv1.VerifyCalendarChannelRequest) (*calendarv1.VerifyCalendarChannelResponse, error) {
	id, err := serviceCaller(ctx)
	if err != nil {
		return nil, err
	}
	p, err := store.GetProvider(ctx, s.deps.Pool, id.Tenant, req.GetProviderId())
	if errors.Is(err, store.ErrNotFound) {
		return nil, errProviderNotFound
	}
	if err != nil {
		return nil, err
	}
	chans, err := store.ListChannels(ctx, s.deps.Pool, p.Tenant, p.ID)
	if err != nil {
		return nil, err
	}
	healthy, reason := s.channelHealth(chans)
	return &calendarv1.VerifyCalendarChannelResponse{Healthy: healthy, Reason: reason}, nil
}

func (s *Service) channelHealth(chans []*store.Channel) (bool, string) {
	now := s.deps.Now()
	c := latestActive(chans)
	if c == nil {
		for _, o := range chans {
			if o.State == store.ChannelStopped || o.State == store.ChannelUnstoppable || o.State == store.ChannelStopping {
				return false, "stopped"
			}
		}
		return false, "missing"
	}
	if c.ExpireTime != nil && c.ExpireTime.Before(now) {
		return false, "stopped"
	}
	if c.ExpireTime != nil && c.ExpireTime.Before(now.Add(expiringWithin)) {
		return false, "expiring"
	}
	// Google sends a "sync" message right after creating a channel: none at all means the address is
	// not reachable from Google (or notifications are being dropped).
	if c.LastNotificationTime == nil && now.Sub(c.CreateTime) > s.deps.SilentAfter {
		return false, "silent"
	}
	return true, ""
}
