package service

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	calendarv1 "github.com/algapsa/alga-google/gen/alga/calendar/v1"
	"github.com/algapsa/alga-google/services/calendar/internal/store"
	"github.com/algapsa/alga-google/services/platform/auth"
	"github.com/algapsa/alga-google/services/platform/errs"
)

// HeaderOAuthBinding is the response metadata the gateway turns into the HttpOnly browser-binding cookie.
const HeaderOAuthBinding = "x-alga-oauth-binding"

// DefaultCalendarID is the calendar a provider syncs unless the user picks another.
const DefaultCalendarID = "primary"

// peerTimeout bounds best-effort peer calls that only decorate an answer.
const peerTimeout = 3 * time.Second

// user returns the identity of a caller acting as (or for) a user.
func user(ctx context.Context) (auth.Identity, error) {
	id, ok := auth.FromContext(ctx)
	if !ok || id.Tenant == "" {
		return id, errs.Unauthenticated("a tenant identity is required")
	}
	if id.Subject == "" {
		return id, errs.PermissionDenied("calendar providers belong to users: the call must act for a user")
	}
	return id, nil
}

// service returns the identity of an internal caller (the methods are also restricted by the server).
func serviceCaller(ctx context.Context) (auth.Identity, error) {
	id, ok := auth.FromContext(ctx)
	if !ok || id.Tenant == "" {
		return id, errs.Unauthenticated("a tenant identity is required")
	}
	if !id.IsService() {
		return id, errs.PermissionDenied("this method is available to internal services only")
	}
	return id, nil
}

func isAdmin(id auth.Identity) bool { return id.Has(auth.PermSystemSettingsUpdate) }

var errProviderNotFound = errs.NotFound("calendar provider")

// load returns a provider the caller may see: their own, or any when adminOK and the caller is an admin.
// Another user's provider is NotFound, never PermissionDenied, so existence does not leak.
func (s *Service) load(ctx context.Context, id auth.Identity, providerID string, adminOK bool) (*store.Provider, error) {
	p, err := store.GetProvider(ctx, s.deps.Pool, id.Tenant, providerID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errProviderNotFound
	}
	if err != nil {
		return nil, err
	}
	if p.UserID != id.Subject && !(adminOK && isAdmin(id)) {
		return nil, errProviderNotFound
	}
	return p, nil
}

// googleConfig reads the tenant's Google setup, best effort (nil when the oauth service does not answer).
func (s *Service) googleConfig(ctx context.Context) *GoogleConfig {
	ctx, cancel := context.WithTimeout(ctx, peerTimeout)
	defer cancel()
	cfg, err := s.deps.OAuth.GoogleConfig(ctx)
	if err != nil {
		s.log.DebugContext(ctx, "google config unavailable", "err", err)
		return nil
	}
	return &cfg
}

func (s *Service) view(ctx context.Context, p *store.Provider, cfg *GoogleConfig) (*calendarv1.CalendarProvider, error) {
	chans, err := store.ListChannels(ctx, s.deps.Pool, p.Tenant, p.ID)
	if err != nil {
		return nil, err
	}
	return toProvider(p, chans, cfg), nil
}

func (s *Service) CreateCalendarProvider(ctx context.Context, req *calendarv1.CreateCalendarProviderRequest) (*calendarv1.CreateCalendarProviderResponse, error) {
	id, err := user(ctx)
	if err != nil {
		return nil, err
	}
	cal := strings.TrimSpace(req.GetCalendarId())
	if cal == "" {
		cal = DefaultCalendarID
	}
	dir := req.GetSyncDirection()
	if dir == calendarv1.SyncDirection_SYNC_DIRECTION_UNSPECIFIED {
		dir = calendarv1.SyncDirection_SYNC_DIRECTION_GOOGLE_TO_ALGA
	}
	p, err := store.CreateProvider(ctx, s.deps.Pool, store.NewProvider{
		Tenant: id.Tenant, UserID: id.Subject, CalendarID: cal,
		DisplayName: strings.TrimSpace(req.GetDisplayName()), SyncDirection: int16(dir),
	})
	if errors.Is(err, store.ErrDuplicate) {
		return nil, errs.AlreadyExists("you already have a Google Calendar provider; connect or update it instead of creating another")
	}
	if err != nil {
		return nil, err
	}
	v, err := s.view(ctx, p, s.googleConfig(ctx))
	if err != nil {
		return nil, err
	}
	return &calendarv1.CreateCalendarProviderResponse{Provider: v}, nil
}

func (s *Service) GetCalendarProvider(ctx context.Context, req *calendarv1.GetCalendarProviderRequest) (*calendarv1.GetCalendarProviderResponse, error) {
	id, err := user(ctx)
	if err != nil {
		return nil, err
	}
	p, err := s.load(ctx, id, req.GetId(), true)
	if err != nil {
		return nil, err
	}
	v, err := s.view(ctx, p, s.googleConfig(ctx))
	if err != nil {
		return nil, err
	}
	return &calendarv1.GetCalendarProviderResponse{Provider: v}, nil
}

func (s *Service) ListCalendarProviders(ctx context.Context, req *calendarv1.ListCalendarProvidersRequest) (*calendarv1.ListCalendarProvidersResponse, error) {
	id, err := user(ctx)
	if err != nil {
		return nil, err
	}
	owner := id.Subject
	if req.GetAllUsers() {
		if !isAdmin(id) {
			return nil, errs.PermissionDenied("listing every user's calendar providers needs the %s permission", auth.PermSystemSettingsUpdate)
		}
		owner = ""
	}
	list, err := store.ListProviders(ctx, s.deps.Pool, id.Tenant, owner)
	if err != nil {
		return nil, err
	}
	cfg := s.googleConfig(ctx)
	out := &calendarv1.ListCalendarProvidersResponse{Providers: []*calendarv1.CalendarProvider{}}
	for _, p := range list {
		v, err := s.view(ctx, p, cfg)
		if err != nil {
			return nil, err
		}
		out.Providers = append(out.Providers, v)
	}
	return out, nil
}

func (s *Service) UpdateCalendarProvider(ctx context.Context, req *calendarv1.UpdateCalendarProviderRequest) (*calendarv1.UpdateCalendarProviderResponse, error) {
	id, err := user(ctx)
	if err != nil {
		return nil, err
	}
	p, err := s.load(ctx, id, req.GetId(), false)
	if err != nil {
		return nil, err
	}
	u := store.ProviderUpdate{SyncDirection: int16(req.GetSyncDirection())}
	if req.DisplayName != nil {
		name := strings.TrimSpace(req.GetDisplayName())
		u.DisplayName = &name
	}
	calendarChanged := false
	if req.CalendarId != nil {
		cal := strings.TrimSpace(req.GetCalendarId())
		if cal == "" {
			cal = DefaultCalendarID
		}
		if cal != p.CalendarID {
			if len(p.AvailableCalendars) > 0 && cal != DefaultCalendarID && !slices.Contains(p.AvailableCalendars, cal) {
				return nil, errs.InvalidField("calendar_id", "%q is not one of the calendars of the connected Google account", cal)
			}
			calendarChanged = true
		}
		u.CalendarID = &cal
	}
	updated, err := store.UpdateProvider(ctx, s.deps.Pool, id.Tenant, p.ID, u)
	if err != nil {
		return nil, err
	}
	if calendarChanged && (p.State == store.StateConnected || p.State == store.StateError) {
		// Another calendar: stop the old channel and start over with a full sync of the new one.
		if updated, err = s.reactivate(ctx, updated); err != nil {
			return nil, err
		}
	}
	v, err := s.view(ctx, updated, s.googleConfig(ctx))
	if err != nil {
		return nil, err
	}
	return &calendarv1.UpdateCalendarProviderResponse{Provider: v}, nil
}

func (s *Service) DeleteCalendarProvider(ctx context.Context, req *calendarv1.DeleteCalendarProviderRequest) (*calendarv1.DeleteCalendarProviderResponse, error) {
	id, err := user(ctx)
	if err != nil {
		return nil, err
	}
	p, err := s.load(ctx, id, req.GetId(), true)
	if err != nil {
		return nil, err
	}
	if warnings := s.teardown(ctx, p, true); len(warnings) > 0 {
		s.log.WarnContext(ctx, "calendar provider deleted with warnings", "provider", p.ID, "warnings", warnings)
	}
	if _, err := store.DeleteProvider(ctx, s.deps.Pool, id.Tenant, p.ID); err != nil {
		return nil, err
	}
	return &calendarv1.DeleteCalendarProviderResponse{}, nil
}

func (s *Service) ConnectCalendarProvider(ctx context.Context, req *calendarv1.ConnectCalendarProviderRequest) (*calendarv1.ConnectCalendarProviderResponse, error) {
	id, err := user(ctx)
	if err != nil {
		return nil, err
	}
	// Only the owner connects: the grant is their own Google account.
	p, err := s.load(ctx, id, req.GetId(), false)
	if err != nil {
		return nil, err
	}
	cfg, err := s.deps.OAuth.GoogleConfig(ctx)
	if err != nil {
		return nil, err
	}
	if !cfg.CalendarReady {
		missing := "the Calendar OAuth client"
		if len(cfg.Missing) > 0 {
			missing = strings.Join(cfg.Missing, ", ")
		}
		return nil, errs.GoogleNotConfigured(missing)
	}
	url, binding, err := s.deps.OAuth.BeginAuthorization(ctx, p.ID, p.AccountEmail)
	if err != nil {
		return nil, err
	}
	if binding != "" {
		if err := grpc.SetHeader(ctx, metadata.Pairs(HeaderOAuthBinding, binding)); err != nil {
			s.log.DebugContext(ctx, "no grpc header to set (direct call)", "err", err)
		}
	}
	if p.State != store.StateConnected {
		if _, err := store.SetState(ctx, s.deps.Pool, id.Tenant, p.ID, store.StateConnecting, "", "", ""); err != nil {
			return nil, err
		}
	}
	return &calendarv1.ConnectCalendarProviderResponse{AuthorizationUrl: url}, nil
}

func (s *Service) DisconnectCalendarProvider(ctx context.Context, req *calendarv1.DisconnectCalendarProviderRequest) (*calendarv1.DisconnectCalendarProviderResponse, error) {
	id, err := user(ctx)
	if err != nil {
		return nil, err
	}
	p, err := s.load(ctx, id, req.GetId(), true)
	if err != nil {
		return nil, err
	}
	if warnings := s.teardown(ctx, p, true); len(warnings) > 0 {
		s.log.WarnContext(ctx, "calendar provider disconnected with warnings", "provider", p.ID, "warnings", warnings)
	}
	p, err = store.ClearSyncState(ctx, s.deps.Pool, id.Tenant, p.ID)
	if err != nil {
		return nil, err
	}
	v, err := s.view(ctx, p, s.googleConfig(ctx))
	if err != nil {
		return nil, err
	}
	return &calendarv1.DisconnectCalendarProviderResponse{Provider: v}, nil
}

func (s *Service) GetCalendarProviderDiagnostics(ctx context.Context, req *calendarv1.GetCalendarProviderDiagnosticsRequest) (*calendarv1.GetCalendarProviderDiagnosticsResponse, error) {
	id, err := user(ctx)
	if err != nil {
		return nil, err
	}
	p, err := s.load(ctx, id, req.GetId(), true)
	if err != nil {
		return nil, err
	}
	chans, err := store.ListChannels(ctx, s.deps.Pool, p.Tenant, p.ID)
	if err != nil {
		return nil, err
	}
	d := &calendarv1.CalendarDiagnostics{
		BaseUrl:            s.deps.BaseURL,
		WebhookAddress:     s.deps.WebhookAddress,
		HasSyncToken:       p.SyncToken != "",
		LastSyncTime:       ts(p.LastSyncTime),
		AvailableCalendars: append([]string{}, p.AvailableCalendars...),
	}
	for _, c := range chans {
		d.Channels = append(d.Channels, toChannel(c))
	}
	if p.ErrorCode != "" {
		d.LastError = &calendarv1.ProviderError{Code: p.ErrorCode, Message: p.ErrorMessage, Remedy: p.ErrorRemedy}
	}
	steps, err := store.ListSteps(ctx, s.deps.Pool, p.Tenant, p.ID)
	if err != nil {
		return nil, err
	}
	for _, st := range steps {
		d.Steps = append(d.Steps, toUpkeepStep(st))
	}
	events, err := store.ListTimeline(ctx, s.deps.Pool, p.Tenant, p.ID, store.TimelineKeep)
	if err != nil {
		return nil, err
	}
	for _, e := range events {
		d.Events = append(d.Events, toProviderEvent(e))
	}
	cctx, cancel := context.WithTimeout(ctx, peerTimeout)
	if st, err := s.deps.OAuth.ConnectionStatus(cctx, p.Tenant, p.ID); err == nil {
		d.ConnectionStatus = st
	} else {
		d.ConnectionStatus = "unknown"
	}
	cancel()
	return &calendarv1.GetCalendarProviderDiagnosticsResponse{Provider: toProvider(p, chans, s.googleConfig(ctx)), Diagnostics: d}, nil
}

// ResetCalendarProviders returns every provider of the tenant to DISCONNECTED: channels stopped at
// Google where possible, tokens cleared, sync state forgotten. Problems become warnings, never a failure.
func (s *Service) ResetCalendarProviders(ctx context.Context, _ *calendarv1.ResetCalendarProvidersRequest) (*calendarv1.ResetCalendarProvidersResponse, error) {
	id, err := serviceCaller(ctx)
	if err != nil {
		return nil, err
	}
	list, err := store.ListProviders(ctx, s.deps.Pool, id.Tenant, "")
	if err != nil {
		return nil, err
	}
	out := &calendarv1.ResetCalendarProvidersResponse{Warnings: []string{}}
	for _, p := range list {
		out.Warnings = append(out.Warnings, s.teardown(ctx, p, false)...)
		if _, err := store.ClearSyncState(ctx, s.deps.Pool, id.Tenant, p.ID); err != nil {
			return nil, err
		}
		out.ProvidersReset++
	}
	return out, nil
}

// teardown stops the provider's channels at Google (with the OAuth client that created them) and
// deletes its connection. It returns warnings for what could not be done; it never fails.
func (s *Service) teardown(ctx context.Context, p *store.Provider, revoke bool) []string {
	var warnings []string
	var tok *Token
	chans, err := store.ListChannels(ctx, s.deps.Pool, p.Tenant, p.ID)
	if err != nil {
		return []string{"provider " + p.ID + ": channels could not be read"}
	}
	if hasLiveChannel(chans) {
		tctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		t, err := s.deps.OAuth.AccessToken(tctx, p.Tenant, p.ID)
		cancel()
		if err == nil {
			tok = &t
		} else {
			s.log.InfoContext(ctx, "no access token to stop channels", "provider", p.ID, "err", err)
		}
	}
	warnings = append(warnings, s.stopChannels(ctx, p, chans, tok, "")...)
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := s.deps.OAuth.DeleteConnection(dctx, p.Tenant, p.ID, revoke); err != nil && errs.ReasonOf(err) != "NOT_FOUND" {
		s.log.WarnContext(ctx, "deleting the calendar connection failed", "provider", p.ID, "err", err)
		warnings = append(warnings, "calendar provider "+p.ID+": its tokens could not be cleared (retry the reset)")
	}
	return warnings
}

func hasLiveChannel(chans []*store.Channel) bool {
	for _, c := range chans {
		if c.State == store.ChannelActive || c.State == store.ChannelStopping {
			return true
		}
	}
	return false
}

// withTx runs fn in a transaction.
func (s *Service) withTx(ctx context.Context, fn func(pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, s.deps.Pool, fn)
}
