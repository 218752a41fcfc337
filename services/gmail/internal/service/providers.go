package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"google.golang.org/api/gmail/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/timestamppb"

	gmailv1 "github.com/algapsa/alga-google/gen/alga/gmail/v1"
	oauthv1 "github.com/algapsa/alga-google/gen/alga/oauth/v1"
	"github.com/algapsa/alga-google/services/gmail/internal/store"
	"github.com/algapsa/alga-google/services/platform/auth"
	"github.com/algapsa/alga-google/services/platform/errs"
)

// diagnosticsEvents is how many timeline entries diagnostics show.
const diagnosticsEvents = 50

// HeaderOAuthBinding is the response metadata the gateway turns into the HttpOnly OAuth binding cookie.
const HeaderOAuthBinding = "x-alga-oauth-binding"

// Permissions.
const (
	permSystemSettings = auth.PermSystemSettingsUpdate
	permTicketSettings = "ticket_settings:update"
)

// Providers implements GmailProviderService.
type Providers struct {
	gmailv1.UnimplementedGmailProviderServiceServer
	s *Service
}

// caller returns the tenant of a caller holding one of perms (services acting internally pass).
func caller(ctx context.Context, perms ...string) (auth.Identity, error) {
	id, ok := auth.FromContext(ctx)
	if !ok {
		return id, errs.Unauthenticated("a bearer token is required")
	}
	if id.Tenant == "" {
		return id, errs.PermissionDenied("the token names no tenant")
	}
	if id.IsService() {
		return id, nil
	}
	for _, p := range perms {
		if id.Has(p) {
			return id, nil
		}
	}
	return id, errs.PermissionDenied("this requires the %s permission", strings.Join(perms, " or "))
}

func notFound(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return errs.NotFound("Gmail provider")
	}
	return err
}

func statusOf(p *store.Provider) gmailv1.ProviderStatus {
	if !p.Active {
		return gmailv1.ProviderStatus_PROVIDER_STATUS_PAUSED
	}
	switch p.State {
	case store.StateConnecting:
		return gmailv1.ProviderStatus_PROVIDER_STATUS_CONNECTING
	case store.StateConnected:
		return gmailv1.ProviderStatus_PROVIDER_STATUS_CONNECTED
	case store.StateError:
		return gmailv1.ProviderStatus_PROVIDER_STATUS_ERROR
	}
	return gmailv1.ProviderStatus_PROVIDER_STATUS_DISCONNECTED
}

func toProto(p *store.Provider) *gmailv1.GmailProvider {
	out := &gmailv1.GmailProvider{
		Id: p.ID, Mailbox: p.Mailbox, DisplayName: p.DisplayName, LabelFilters: p.LabelFilters, Active: p.Active,
		Status: statusOf(p), CreateTime: timestamppb.New(p.CreateTime), UpdateTime: timestamppb.New(p.UpdateTime),
		InboundDefaults: &gmailv1.InboundDefaults{},
	}
	_ = json.Unmarshal(p.InboundDefaults, out.InboundDefaults)
	if p.State == store.StateError {
		out.Error = &gmailv1.ProviderError{Code: p.ErrorCode, Message: p.ErrorMessage, Remedy: p.ErrorRemedy}
	}
	if p.WatchExpireTime != nil {
		out.WatchExpireTime = timestamppb.New(*p.WatchExpireTime)
	}
	if p.LastSyncTime != nil {
		out.LastSyncTime = timestamppb.New(*p.LastSyncTime)
	}
	return out
}

func defaultsJSON(d *gmailv1.InboundDefaults) json.RawMessage {
	if d == nil {
		return nil
	}
	b, _ := json.Marshal(map[string]string{"board_id": d.GetBoardId(), "status_id": d.GetStatusId(),
		"priority_id": d.GetPriorityId(), "client_id": d.GetClientId(), "category_id": d.GetCategoryId()})
	return b
}

func cleanLabels(l []string) []string {
	out := make([]string, 0, len(l))
	for _, s := range l {
		out = append(out, strings.TrimSpace(s))
	}
	return out
}

func (h *Providers) CreateGmailProvider(ctx context.Context, req *gmailv1.CreateGmailProviderRequest) (*gmailv1.CreateGmailProviderResponse, error) {
	id, err := caller(ctx, permSystemSettings)
	if err != nil {
		return nil, err
	}
	active := true
	if req.Active != nil {
		active = req.GetActive()
	}
	defaults := defaultsJSON(req.GetInboundDefaults())
	p, err := store.CreateProvider(ctx, h.s.pool, store.NewProvider{
		Tenant: id.Tenant, Mailbox: gmailv1.NormalizeMailbox(req.GetMailbox()), DisplayName: strings.TrimSpace(req.GetDisplayName()),
		LabelFilters: cleanLabels(req.GetLabelFilters()), InboundDefaults: defaults, Active: active,
	})
	if errors.Is(err, store.ErrDuplicate) {
		return nil, errs.AlreadyExists("a Gmail provider for %s already exists", gmailv1.NormalizeMailbox(req.GetMailbox()))
	}
	if err != nil {
		return nil, err
	}
	return &gmailv1.CreateGmailProviderResponse{Provider: toProto(p)}, nil
}

func (h *Providers) GetGmailProvider(ctx context.Context, req *gmailv1.GetGmailProviderRequest) (*gmailv1.GetGmailProviderResponse, error) {
	id, err := caller(ctx, permSystemSettings)
	if err != nil {
		return nil, err
	}
	p, err := store.GetProvider(ctx, h.s.pool, id.Tenant, strings.ToLower(req.GetId()))
	if err != nil {
		return nil, notFound(err)
	}
	return &gmailv1.GetGmailProviderResponse{Provider: toProto(p)}, nil
}

func (h *Providers) ListGmailProviders(ctx context.Context, _ *gmailv1.ListGmailProvidersRequest) (*gmailv1.ListGmailProvidersResponse, error) {
	id, err := caller(ctx, permSystemSettings)
	if err != nil {
		return nil, err
	}
	list, err := store.ListProviders(ctx, h.s.pool, id.Tenant)
	if err != nil {
		return nil, err
	}
	resp := &gmailv1.ListGmailProvidersResponse{}
	for _, p := range list {
		resp.Providers = append(resp.Providers, toProto(p))
	}
	return resp, nil
}

func (h *Providers) UpdateGmailProvider(ctx context.Context, req *gmailv1.UpdateGmailProviderRequest) (*gmailv1.UpdateGmailProviderResponse, error) {
	id, err := caller(ctx, permSystemSettings)
	if err != nil {
		return nil, err
	}
	pid := strings.ToLower(req.GetId())
	before, err := store.GetProvider(ctx, h.s.pool, id.Tenant, pid)
	if err != nil {
		return nil, notFound(err)
	}
	u := store.ProviderUpdate{SetLabels: req.GetHasLabelFilters(), LabelFilters: cleanLabels(req.GetLabelFilters()),
		InboundDefaults: defaultsJSON(req.GetInboundDefaults()), Active: req.Active}
	if req.DisplayName != nil {
		name := strings.TrimSpace(req.GetDisplayName())
		u.DisplayName = &name
	}
	p, err := store.UpdateProvider(ctx, h.s.pool, id.Tenant, pid, u)
	if err != nil {
		return nil, notFound(err)
	}
	connected := p.State == store.StateConnected || p.State == store.StateError
	switch {
	case connected && p.AccountEmail != "" && u.SetLabels && !equalFold(before.LabelFilters, p.LabelFilters):
		// The watch must follow the new label filters (an unknown label puts the provider in ERROR).
		if p, err = h.s.provision(ctx, p, ""); err != nil {
			return nil, err
		}
	case p.Active && !before.Active && p.State == store.StateConnected:
		// Resumed: catch up on what arrived while paused.
		if err := pgx.BeginFunc(ctx, h.s.pool, func(tx pgx.Tx) error { return h.s.enqueueSync(ctx, tx, p.Tenant, p.ID) }); err != nil {
			return nil, err
		}
	}
	return &gmailv1.UpdateGmailProviderResponse{Provider: toProto(p)}, nil
}

func equalFold(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !strings.EqualFold(a[i], b[i]) {
			return false
		}
	}
	return true
}

func (h *Providers) DeleteGmailProvider(ctx context.Context, req *gmailv1.DeleteGmailProviderRequest) (*gmailv1.DeleteGmailProviderResponse, error) {
	id, err := caller(ctx, permSystemSettings)
	if err != nil {
		return nil, err
	}
	p, err := store.GetProvider(ctx, h.s.pool, id.Tenant, strings.ToLower(req.GetId()))
	if err != nil {
		return nil, notFound(err)
	}
	for _, w := range h.s.disconnect(ctx, p, true) {
		h.s.log.WarnContext(ctx, "gmail provider delete", "provider", p.ID, "warning", w)
	}
	if _, err := store.DeleteProvider(ctx, h.s.pool, id.Tenant, p.ID); err != nil {
		return nil, err
	}
	return &gmailv1.DeleteGmailProviderResponse{}, nil
}

// disconnect stops the watch at Google (with the connection's token) and deletes the connection; both
// best effort, returning warnings for what could not be done.
func (s *Service) disconnect(ctx context.Context, p *store.Provider, revoke bool) []string {
	var warnings []string
	if p.State != store.StateDisconnected || p.WatchExpireTime != nil {
		if err := s.stopWatch(ctx, p); err != nil {
			warnings = append(warnings, fmt.Sprintf("%s: the Gmail watch could not be stopped at Google (%v); it expires by itself within 7 days", p.Mailbox, err))
		}
	}
	_, err := s.peers.Tokens.DeleteConnection(actFor(ctx, p.Tenant), &oauthv1.DeleteConnectionRequest{
		Kind: oauthv1.ProviderKind_PROVIDER_KIND_GMAIL, ProviderId: p.ID, Revoke: revoke})
	if err != nil {
		warnings = append(warnings, fmt.Sprintf("%s: the OAuth connection could not be deleted (%v)", p.Mailbox, err))
	}
	return warnings
}

func (s *Service) stopWatch(ctx context.Context, p *store.Provider) error {
	mb, err := s.openMailbox(ctx, p)
	if err != nil {
		return err
	}
	err = mb.call(ctx, "users.stop", 3, func(gm *gmail.Service) error { return gm.Users.Stop("me").Context(ctx).Do() })
	if err == nil {
		s.metrics.watchStops.Inc()
	}
	return err
}

func (h *Providers) ConnectGmailProvider(ctx context.Context, req *gmailv1.ConnectGmailProviderRequest) (*gmailv1.ConnectGmailProviderResponse, error) {
	id, err := caller(ctx, permSystemSettings)
	if err != nil {
		return nil, err
	}
	p, err := store.GetProvider(ctx, h.s.pool, id.Tenant, strings.ToLower(req.GetId()))
	if err != nil {
		return nil, notFound(err)
	}
	// Fail fast when the tenant's Google setup cannot serve Gmail.
	cfg, err := h.s.peers.Setup.GetGoogleConfig(ctx, &oauthv1.GetGoogleConfigRequest{})
	if err != nil {
		return nil, err
	}
	if !cfg.GetConfig().GetGmailReady() {
		missing := strings.Join(cfg.GetConfig().GetMissing(), ", ")
		if missing == "" {
			missing = "the Gmail OAuth client"
		}
		return nil, errs.GoogleNotConfigured(missing)
	}
	begin, err := h.s.peers.Flow.BeginAuthorization(ctx, &oauthv1.BeginAuthorizationRequest{
		Kind: oauthv1.ProviderKind_PROVIDER_KIND_GMAIL, ProviderId: p.ID, LoginHint: p.Mailbox})
	if err != nil {
		return nil, err
	}
	if _, err := store.SetConnecting(ctx, h.s.pool, id.Tenant, p.ID); err != nil {
		return nil, err
	}
	if err := grpc.SetHeader(ctx, metadata.Pairs(HeaderOAuthBinding, begin.GetBrowserBinding())); err != nil {
		h.s.log.WarnContext(ctx, "cannot set the OAuth binding header", "err", err)
	}
	return &gmailv1.ConnectGmailProviderResponse{AuthorizationUrl: begin.GetAuthorizationUrl()}, nil
}

func (h *Providers) ActivateGmailProvider(ctx context.Context, req *gmailv1.ActivateGmailProviderRequest) (*gmailv1.ActivateGmailProviderResponse, error) {
	tenant, err := serviceTenant(ctx)
	if err != nil {
		return nil, err
	}
	p, err := store.GetProvider(ctx, h.s.pool, tenant, strings.ToLower(req.GetId()))
	if err != nil {
		return nil, notFound(err)
	}
	account := gmailv1.NormalizeMailbox(req.GetAccountEmail())
	if account != p.Mailbox {
		return nil, errs.FailedPrecondition("WRONG_ACCOUNT", "the Google account %s is not the mailbox %s", account, p.Mailbox)
	}
	p, err = h.s.provision(ctx, p, account)
	if err != nil {
		return nil, err
	}
	return &gmailv1.ActivateGmailProviderResponse{Provider: toProto(p)}, nil
}

func (h *Providers) RefreshGmailProvider(ctx context.Context, req *gmailv1.RefreshGmailProviderRequest) (*gmailv1.RefreshGmailProviderResponse, error) {
	id, err := caller(ctx, permSystemSettings)
	if err != nil {
		return nil, err
	}
	p, err := store.GetProvider(ctx, h.s.pool, id.Tenant, strings.ToLower(req.GetId()))
	if err != nil {
		return nil, notFound(err)
	}
	if p.AccountEmail == "" || p.State == store.StateDisconnected {
		return nil, errs.FailedPrecondition("NOT_CONNECTED", "the mailbox %s is not connected yet: use Connect first", p.Mailbox)
	}
	p, err = h.s.provision(ctx, p, "")
	if err != nil {
		return nil, err
	}
	if p.State == store.StateError {
		// The refresh did not mend the mailbox: say so, with the provider's own code and remedy.
		return nil, errs.FailedPrecondition(strings.ToUpper(p.ErrorCode), "The mailbox %s is still in error: %s %s", p.Mailbox, p.ErrorMessage, p.ErrorRemedy).
			With("error_code", p.ErrorCode).With("remedy", p.ErrorRemedy).With("step", p.ErrorStep).With("provider_id", p.ID)
	}
	return &gmailv1.RefreshGmailProviderResponse{Provider: toProto(p)}, nil
}

func (h *Providers) ResetGmailProviders(ctx context.Context, _ *gmailv1.ResetGmailProvidersRequest) (*gmailv1.ResetGmailProvidersResponse, error) {
	tenant, err := serviceTenant(ctx)
	if err != nil {
		return nil, err
	}
	list, err := store.ListProviders(ctx, h.s.pool, tenant)
	if err != nil {
		return nil, err
	}
	resp := &gmailv1.ResetGmailProvidersResponse{}
	for _, p := range list {
		resp.Warnings = append(resp.Warnings, h.s.disconnect(ctx, p, true)...)
		if _, err := store.ResetProvider(ctx, h.s.pool, tenant, p.ID); err != nil {
			return nil, err
		}
		resp.ProvidersReset++
	}
	return resp, nil
}

func (h *Providers) GetGmailProviderDiagnostics(ctx context.Context, req *gmailv1.GetGmailProviderDiagnosticsRequest) (*gmailv1.GetGmailProviderDiagnosticsResponse, error) {
	id, err := caller(ctx, permSystemSettings, permTicketSettings)
	if err != nil {
		return nil, err
	}
	p, err := store.GetProvider(ctx, h.s.pool, id.Tenant, strings.ToLower(req.GetId()))
	if err != nil {
		return nil, notFound(err)
	}
	d := &gmailv1.GmailDiagnostics{
		BaseUrl: h.s.base.String(), Topic: p.Topic, Subscription: p.Subscription,
		PushEndpoint: h.s.base.GmailPushEndpoint(), PushAudience: h.s.base.GmailPushAudience(),
	}
	if p.Subscription != "" {
		if sub, err := store.GetSubscription(ctx, h.s.pool, p.Subscription); err == nil && sub.Tenant == id.Tenant {
			d.ServiceAccountEmail, d.PushEndpoint, d.PushAudience = sub.ServiceAccountEmail, sub.PushEndpoint, sub.Audience
		}
	}
	steps, err := store.ListSteps(ctx, h.s.pool, id.Tenant, p.ID)
	if err != nil {
		return nil, err
	}
	for _, st := range steps {
		d.Steps = append(d.Steps, &gmailv1.ProvisioningStep{Name: st.Name, Ok: st.OK, Detail: st.Detail, CheckTime: timestamppb.New(st.CheckTime)})
	}
	if p.HistoryID != nil {
		d.HistoryId = fmt.Sprint(*p.HistoryID)
	}
	if p.WatchExpireTime != nil {
		d.WatchExpireTime = timestamppb.New(*p.WatchExpireTime)
	}
	if p.LastPushTime != nil {
		d.LastPushTime = timestamppb.New(*p.LastPushTime)
	}
	if p.LastSyncTime != nil {
		d.LastSyncTime = timestamppb.New(*p.LastSyncTime)
	}
	if p.ErrorCode != "" {
		d.LastError = &gmailv1.ProviderError{Code: p.ErrorCode, Message: p.ErrorMessage, Remedy: p.ErrorRemedy}
	}
	d.LastWatchTime, d.LastProvisioningCheckTime = tsOf(p.LastWatchTime), tsOf(p.LastProvisioningCheckTime)
	events, err := store.ListEvents(ctx, h.s.pool, id.Tenant, p.ID, diagnosticsEvents)
	if err != nil {
		return nil, err
	}
	for _, e := range events {
		d.Events = append(d.Events, &gmailv1.ProviderEvent{Type: e.Type, Step: e.Step, ErrorCode: e.ErrorCode, Message: e.Message,
			RunId: e.RunID, CreateTime: timestamppb.New(e.CreateTime)})
	}
	d.ConnectionStatus = "unknown"
	if c, err := h.s.peers.Tokens.GetConnection(actFor(ctx, id.Tenant), &oauthv1.GetConnectionRequest{
		Kind: oauthv1.ProviderKind_PROVIDER_KIND_GMAIL, ProviderId: p.ID}); err == nil {
		d.ConnectionStatus = strings.TrimPrefix(strings.ToLower(c.GetConnection().GetStatus().String()), "connection_status_")
	} else if errs.ReasonOf(err) == "NOT_FOUND" {
		d.ConnectionStatus = "disconnected"
	}
	return &gmailv1.GetGmailProviderDiagnosticsResponse{Provider: toProto(p), Diagnostics: d}, nil
}
