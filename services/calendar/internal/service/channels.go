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

// providerError is a status shown to the user with what to do about it.
type providerError struct {
	code, message, remedy string
}

var (
	errReauth = providerError{"reauthorization_required",
		"Google no longer accepts this calendar's authorization.",
		"Reconnect the calendar (Connect) to authorize again."}
	errNotConfigured = providerError{"google_not_configured",
		"Google is not configured for this tenant.",
		"Ask an administrator to complete Settings → Integrations → Communication → Google, then reconnect."}
	errCalendarMissing = providerError{"calendar_not_found",
		"The selected calendar does not exist in the connected Google account.",
		"Pick one of the available calendars, or reconnect with the right account."}
	errChannelFailed = providerError{"channel_failed",
		"Google did not accept the push channel, so calendar changes are not received.",
		"Check that the suite's public URL is reachable from Google over HTTPS, then reconnect."}
)

func (s *Service) setError(ctx context.Context, p *store.Provider, e providerError) {
	if _, err := store.SetState(context.WithoutCancel(ctx), s.deps.Pool, p.Tenant, p.ID, store.StateError, e.code, e.message, e.remedy); err != nil {
		s.log.ErrorContext(ctx, "recording provider error", "provider", p.ID, "err", err)
	}
}

// tokenError turns an access-token failure into a provider error (true) or a transient error (false).
func (s *Service) tokenError(ctx context.Context, p *store.Provider, err error) error {
	switch errs.ReasonOf(err) {
	case "REAUTHORIZATION_REQUIRED", "NOT_FOUND":
		s.setError(ctx, p, errReauth)
		return errs.FailedPrecondition("REAUTHORIZATION_REQUIRED", "%s %s", errReauth.message, errReauth.remedy).Wrap(err)
	case "GOOGLE_NOT_CONFIGURED":
		s.setError(ctx, p, errNotConfigured)
		return errs.GoogleNotConfigured("the Calendar OAuth client").Wrap(err)
	}
	return errs.Unavailable("TOKEN_UNAVAILABLE", "the calendar's access token could not be obtained; retry shortly").Wrap(err)
}

func (s *Service) client(ctx context.Context, tok Token) (*gcal.Client, error) {
	return gcal.New(ctx, s.deps.Google, tok.AccessToken, s.deps.Retry)
}

// googleError maps a Calendar API failure to a caller-facing error, recording permanent ones on the provider.
func (s *Service) googleError(ctx context.Context, p *store.Provider, step string, err error) error {
	switch {
	case errors.Is(err, gcal.ErrUnauthorized):
		s.setError(ctx, p, errReauth)
		return errs.FailedPrecondition("REAUTHORIZATION_REQUIRED", "%s %s", errReauth.message, errReauth.remedy).Wrap(err)
	case errors.Is(err, gcal.ErrNotFound) && step != "watch":
		s.setError(ctx, p, errCalendarMissing)
		return errs.FailedPrecondition("CALENDAR_NOT_FOUND", "%s %s", errCalendarMissing.message, errCalendarMissing.remedy).Wrap(err)
	case step == "watch":
		s.setError(ctx, p, errChannelFailed)
		return errs.Unavailable("CHANNEL_FAILED", "%s %s", errChannelFailed.message, errChannelFailed.remedy).Wrap(err)
	}
	return errs.Unavailable("GOOGLE_UNAVAILABLE", "Google Calendar did not answer (%s); retry shortly", step).Wrap(err)
}

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
	cl, err := s.client(ctx, tok)
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
	// Channels of an earlier connection go first (a reconnect must not leave them running at Google).
	old, err := store.ListChannels(ctx, s.deps.Pool, p.Tenant, p.ID)
	if err != nil {
		return nil, err
	}
	for _, w := range s.stopChannels(ctx, p, old, &tok, "") {
		s.log.InfoContext(ctx, "activation: earlier channel", "provider", p.ID, "warning", w)
	}
	// The channel first, then the initial sync: a change made while the sync runs is notified and picked
	// up by the delta sync that notification enqueues, so nothing falls between the two.
	ch, err := s.createChannel(ctx, p, tok, cl)
	if err != nil {
		return nil, err
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
// the watch answer is already recognized; the row is removed again when Google refuses.
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
		return nil, s.googleError(ctx, p, "watch", err)
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
			if cl, err = s.client(ctx, *tok); err != nil {
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
	if p.State != store.StateConnected && p.State != store.StateError {
		return nil, errs.FailedPrecondition("NOT_CONNECTED", "the calendar provider is not connected")
	}
	tok, err := s.deps.OAuth.AccessToken(ctx, p.Tenant, p.ID)
	if err != nil {
		return nil, s.tokenError(ctx, p, err)
	}
	cl, err := s.client(ctx, tok)
	if err != nil {
		return nil, err
	}
	old, err := store.ListChannels(ctx, s.deps.Pool, p.Tenant, p.ID)
	if err != nil {
		return nil, err
	}
	ch, err := s.createChannel(ctx, p, tok, cl)
	if err != nil {
		return nil, err
	}
	for _, w := range s.stopChannels(ctx, p, old, &tok, ch.ChannelID) {
		s.log.WarnContext(ctx, "channel renewal", "provider", p.ID, "warning", w)
	}
	if p.State == store.StateError && p.ErrorCode == errChannelFailed.code {
		if _, err := store.SetState(ctx, s.deps.Pool, p.Tenant, p.ID, store.StateConnected, "", "", ""); err != nil {
			return nil, err
		}
	}
	return &calendarv1.RenewCalendarChannelResponse{Channel: toChannel(ch)}, nil
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
