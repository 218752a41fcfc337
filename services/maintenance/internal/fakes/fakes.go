// Package fakes implements the upkeep contracts (GmailUpkeepService, CalendarUpkeepService,
// TokenUpkeepService, TenantDirectoryService) in memory, the way the owning services must: the tenant
// comes from the verified service token, each Maintain call does exactly the steps it names and
// reports the Google calls it made. Tests of the maintenance service run against it; the real
// implementations live in gmail, calendar and oauth.
package fakes

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	m "github.com/algapsa/alga-google/gen/alga/maintenance/v1"
	"github.com/algapsa/alga-google/services/platform/auth"
	"github.com/algapsa/alga-google/services/platform/errs"
	"github.com/algapsa/alga-google/services/platform/grpcserver"
)

// Call is one Maintain or Refresh request the fake received.
type Call struct {
	Tenant, Method, ID, Step string
	At                       time.Time
}

// Tenant is one tenant's state and behaviour.
type Tenant struct {
	Configured bool
	Gmail      map[string]*m.GmailUpkeep
	Calendar   map[string]*m.CalendarUpkeep
	Tokens     map[string]*m.TokenUpkeep
	// Delay makes every Maintain and Refresh call of the tenant take this long (a slow Google).
	Delay time.Duration
	// Revoked connections fail their refresh as revoked (invalid_grant).
	Revoked map[string]bool
	// Transient counts, per step name, the calls still to fail transiently (a 503 from Google).
	Transient map[string]int
	// Permanent makes a step fail permanently (a 403 from Google).
	Permanent map[string]bool
	// TokenFailures are the failures recorded on each provider (record_token_failure).
	TokenFailures map[string]*m.Outcome
	// ListFails makes the List calls answer Unavailable.
	ListFails bool
}

// Fake is the in-memory upkeep side of gmail, calendar and oauth.
type Fake struct {
	// Now is the clock the fake stamps times with (the maintenance Now, in tests that move time).
	Now func() time.Time
	// PushEndpoint is what a provisioning repair sets (the canonical endpoint).
	PushEndpoint string

	mu      sync.Mutex
	tenants map[string]*Tenant
	calls   []Call
}

// New returns an empty fake.
func New() *Fake { return &Fake{Now: time.Now, tenants: map[string]*Tenant{}} }

func (f *Fake) now() time.Time { return f.Now() }

// Tenant returns (creating) a configured tenant's state; change it only under Do.
func (f *Fake) Tenant(name string) *Tenant {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tenant(name)
}

func (f *Fake) tenant(name string) *Tenant {
	t, ok := f.tenants[name]
	if !ok {
		t = &Tenant{Configured: true, Gmail: map[string]*m.GmailUpkeep{}, Calendar: map[string]*m.CalendarUpkeep{},
			Tokens: map[string]*m.TokenUpkeep{}, Revoked: map[string]bool{}, Transient: map[string]int{},
			Permanent: map[string]bool{}, TokenFailures: map[string]*m.Outcome{}}
		f.tenants[name] = t
	}
	return t
}

// Do runs fn with the fake locked (to change tenants' state consistently); tenant returns (creating)
// a tenant's state.
func (f *Fake) Do(fn func(tenant func(name string) *Tenant)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f.tenant)
}

// AddGmail adds a connected, healthy Gmail provider (watch renewed now, 7 days left) with its
// connection; it returns the provider and connection ids.
func (f *Fake) AddGmail(tenant, mailbox string) (string, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := timestamppb.New(f.now())
	id, conn := uuid.NewString(), uuid.NewString()
	t := f.tenant(tenant)
	t.Gmail[id] = &m.GmailUpkeep{
		ProviderId: id, Mailbox: mailbox, State: m.ProviderState_PROVIDER_STATE_CONNECTED, ConnectTime: now,
		WatchExpireTime: timestamppb.New(f.now().Add(7 * 24 * time.Hour)), LastWatchTime: now, LastSyncTime: now,
		LastProvisioningCheckTime: now, PushEndpoint: f.PushEndpoint, PushAudience: f.PushEndpoint,
	}
	t.Tokens[conn] = &m.TokenUpkeep{ConnectionId: conn, Kind: m.ProviderKind_PROVIDER_KIND_GMAIL, ProviderId: id,
		State: m.ConnectionState_CONNECTION_STATE_CONNECTED, ConnectTime: now, LastRefreshTime: now,
		AccessTokenExpireTime: timestamppb.New(f.now().Add(time.Hour))}
	return id, conn
}

// AddCalendar adds a connected, healthy Calendar provider (channel created now, 7 days left).
func (f *Fake) AddCalendar(tenant, name string) (string, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := timestamppb.New(f.now())
	id, conn := uuid.NewString(), uuid.NewString()
	t := f.tenant(tenant)
	t.Calendar[id] = &m.CalendarUpkeep{
		ProviderId: id, UserId: "user-" + name, Name: name, State: m.ProviderState_PROVIDER_STATE_CONNECTED, ConnectTime: now,
		LastSyncTime: now,
		Channel: &m.CalendarChannelUpkeep{ChannelId: uuid.NewString(), CreateTime: now, LastNotificationTime: now,
			ExpireTime: timestamppb.New(f.now().Add(7 * 24 * time.Hour))},
	}
	t.Tokens[conn] = &m.TokenUpkeep{ConnectionId: conn, Kind: m.ProviderKind_PROVIDER_KIND_CALENDAR, ProviderId: id,
		State: m.ConnectionState_CONNECTION_STATE_CONNECTED, ConnectTime: now, LastRefreshTime: now,
		AccessTokenExpireTime: timestamppb.New(f.now().Add(time.Hour))}
	return id, conn
}

// Calls returns the Maintain and Refresh calls received so far (for one tenant, or all when "").
func (f *Fake) Calls(tenant string) []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Call
	for _, c := range f.calls {
		if tenant == "" || c.Tenant == tenant {
			out = append(out, c)
		}
	}
	return out
}

// Gmail returns a copy of a provider's state.
func (f *Fake) Gmail(tenant, id string) *m.GmailUpkeep {
	f.mu.Lock()
	defer f.mu.Unlock()
	return proto.Clone(f.tenant(tenant).Gmail[id]).(*m.GmailUpkeep)
}

// Calendar returns a copy of a provider's state.
func (f *Fake) Calendar(tenant, id string) *m.CalendarUpkeep {
	f.mu.Lock()
	defer f.mu.Unlock()
	return proto.Clone(f.tenant(tenant).Calendar[id]).(*m.CalendarUpkeep)
}

// Token returns a copy of a connection's state.
func (f *Fake) Token(tenant, id string) *m.TokenUpkeep {
	f.mu.Lock()
	defer f.mu.Unlock()
	return proto.Clone(f.tenant(tenant).Tokens[id]).(*m.TokenUpkeep)
}

// Access is who may call the fakes: the worker, as the owners' tables say.
var Access = grpcserver.Access{
	"/" + m.GmailUpkeepService_ServiceDesc.ServiceName + "/":     grpcserver.Services(auth.SvcMaintenance),
	"/" + m.CalendarUpkeepService_ServiceDesc.ServiceName + "/":  grpcserver.Services(auth.SvcMaintenance),
	"/" + m.TokenUpkeepService_ServiceDesc.ServiceName + "/":     grpcserver.Services(auth.SvcMaintenance),
	"/" + m.TenantDirectoryService_ServiceDesc.ServiceName + "/": grpcserver.Services(auth.SvcMaintenance),
}

// Register registers the four upkeep services on s (a grpcserver.Server's GRPC; declare Access on it).
func (f *Fake) Register(s grpc.ServiceRegistrar) {
	m.RegisterGmailUpkeepServiceServer(s, &gmailSrv{f: f})
	m.RegisterCalendarUpkeepServiceServer(s, &calendarSrv{f: f})
	m.RegisterTokenUpkeepServiceServer(s, &tokenSrv{f: f})
	m.RegisterTenantDirectoryServiceServer(s, &dirSrv{f: f})
}

// callerTenant is the tenant the service token acts for; users are refused, as the owners must.
func callerTenant(ctx context.Context) (string, error) {
	id, ok := auth.FromContext(ctx)
	if !ok || !id.IsService() {
		return "", errs.PermissionDenied("service identities only")
	}
	return id.Tenant, nil
}

// begin records a call and applies the tenant's delay and injected failures (outside the lock).
func (f *Fake) begin(ctx context.Context, method, id, step string) (*Tenant, string, *m.Outcome, error) {
	tn, err := callerTenant(ctx)
	if err != nil {
		return nil, "", nil, err
	}
	f.mu.Lock()
	t := f.tenant(tn)
	f.calls = append(f.calls, Call{Tenant: tn, Method: method, ID: id, Step: step, At: time.Now()})
	delay := t.Delay
	var fail *m.Outcome
	switch {
	case t.Permanent[step]:
		fail = &m.Outcome{Status: m.OutcomeStatus_OUTCOME_STATUS_FAILED, FailureClass: m.FailureClass_FAILURE_CLASS_PERMANENT,
			ErrorCode: step + "_denied", Message: "Google refused the " + step, Remedy: "Check the service account's permissions.", GoogleCalls: 1}
	case t.Transient[step] > 0:
		t.Transient[step]--
		fail = &m.Outcome{Status: m.OutcomeStatus_OUTCOME_STATUS_FAILED, FailureClass: m.FailureClass_FAILURE_CLASS_TRANSIENT,
			ErrorCode: "google_unavailable", Message: "Google answered 503", GoogleCalls: 1}
	}
	f.mu.Unlock()
	if delay > 0 {
		select {
		case <-ctx.Done():
			return nil, "", nil, ctx.Err()
		case <-time.After(delay):
		}
	}
	return t, tn, fail, nil
}

func ok(calls int32) *m.Outcome {
	return &m.Outcome{Status: m.OutcomeStatus_OUTCOME_STATUS_OK, GoogleCalls: calls}
}

func notDue() *m.Outcome { return &m.Outcome{Status: m.OutcomeStatus_OUTCOME_STATUS_NOT_DUE} }

type gmailSrv struct {
	m.UnimplementedGmailUpkeepServiceServer
	f *Fake
}

func (s *gmailSrv) ListGmailUpkeep(ctx context.Context, _ *m.ListGmailUpkeepRequest) (*m.ListGmailUpkeepResponse, error) {
	tn, err := callerTenant(ctx)
	if err != nil {
		return nil, err
	}
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	t := s.f.tenant(tn)
	if t.ListFails {
		return nil, errs.Unavailable("GMAIL_UNAVAILABLE", "gmail is restarting")
	}
	out := &m.ListGmailUpkeepResponse{}
	for _, p := range t.Gmail {
		out.Providers = append(out.Providers, proto.Clone(p).(*m.GmailUpkeep))
	}
	sort.Slice(out.Providers, func(i, j int) bool { return out.Providers[i].GetMailbox() < out.Providers[j].GetMailbox() })
	return out, nil
}

func gmailStep(r *m.MaintainGmailProviderRequest) string {
	switch {
	case r.GetTokenFailure() != nil:
		return "record_token_failure"
	case r.GetVerifyProvisioning():
		return "provisioning_verify"
	case r.GetRenewWatch():
		return "watch_renew"
	}
	return "reconcile"
}

func (s *gmailSrv) MaintainGmailProvider(ctx context.Context, r *m.MaintainGmailProviderRequest) (*m.MaintainGmailProviderResponse, error) {
	t, _, fail, err := s.f.begin(ctx, "MaintainGmailProvider", r.GetProviderId(), gmailStep(r))
	if err != nil {
		return nil, err
	}
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	p, found := t.Gmail[r.GetProviderId()]
	if !found {
		return nil, errs.NotFound("gmail provider")
	}
	now := timestamppb.New(s.f.now())
	resp := &m.MaintainGmailProviderResponse{Provisioning: notDue(), Watch: notDue(), Reconcile: notDue(), TokenFailure: notDue()}
	set := func(o **m.Outcome, apply func()) {
		if fail != nil {
			*o = fail
			if fail.GetFailureClass() != m.FailureClass_FAILURE_CLASS_TRANSIENT {
				p.State, p.ErrorCode = m.ProviderState_PROVIDER_STATE_ERROR, fail.GetErrorCode()
			}
			return
		}
		apply()
		p.State, p.ErrorCode = m.ProviderState_PROVIDER_STATE_CONNECTED, ""
	}
	switch {
	case r.GetTokenFailure() != nil:
		t.TokenFailures[p.GetProviderId()] = r.GetTokenFailure()
		p.State, p.ErrorCode = m.ProviderState_PROVIDER_STATE_ERROR, r.GetTokenFailure().GetErrorCode()
		resp.TokenFailure = ok(0)
	case r.GetVerifyProvisioning():
		set(&resp.Provisioning, func() {
			if p.GetPushEndpoint() != s.f.PushEndpoint {
				resp.Repaired = append(resp.Repaired, "push_endpoint")
			}
			p.PushEndpoint, p.PushAudience, p.LastProvisioningCheckTime = s.f.PushEndpoint, s.f.PushEndpoint, now
			resp.Provisioning = ok(3)
		})
	case r.GetRenewWatch():
		set(&resp.Watch, func() {
			p.WatchExpireTime, p.LastWatchTime = timestamppb.New(s.f.now().Add(7*24*time.Hour)), now
			resp.Watch, resp.WatchExpireTime = ok(1), p.GetWatchExpireTime()
		})
	case r.GetReconcile():
		set(&resp.Reconcile, func() {
			p.LastSyncTime = now
			resp.Reconcile = ok(1)
		})
	}
	resp.State = p.GetState()
	return resp, nil
}

type calendarSrv struct {
	m.UnimplementedCalendarUpkeepServiceServer
	f *Fake
}

func (s *calendarSrv) ListCalendarUpkeep(ctx context.Context, _ *m.ListCalendarUpkeepRequest) (*m.ListCalendarUpkeepResponse, error) {
	tn, err := callerTenant(ctx)
	if err != nil {
		return nil, err
	}
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	t := s.f.tenant(tn)
	if t.ListFails {
		return nil, errs.Unavailable("CALENDAR_UNAVAILABLE", "calendar is restarting")
	}
	out := &m.ListCalendarUpkeepResponse{}
	for _, p := range t.Calendar {
		out.Providers = append(out.Providers, proto.Clone(p).(*m.CalendarUpkeep))
	}
	sort.Slice(out.Providers, func(i, j int) bool { return out.Providers[i].GetName() < out.Providers[j].GetName() })
	return out, nil
}

func calendarStep(r *m.MaintainCalendarProviderRequest) string {
	switch {
	case r.GetTokenFailure() != nil:
		return "record_token_failure"
	case r.GetChannelAction() == m.ChannelAction_CHANNEL_ACTION_RENEW:
		return "channel_renew"
	case r.GetChannelAction() == m.ChannelAction_CHANNEL_ACTION_RECREATE:
		return "channel_recreate"
	}
	return "delta_sync"
}

func (s *calendarSrv) MaintainCalendarProvider(ctx context.Context, r *m.MaintainCalendarProviderRequest) (*m.MaintainCalendarProviderResponse, error) {
	step := calendarStep(r)
	t, _, fail, err := s.f.begin(ctx, "MaintainCalendarProvider", r.GetProviderId(), step)
	if err != nil {
		return nil, err
	}
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	p, found := t.Calendar[r.GetProviderId()]
	if !found {
		return nil, errs.NotFound("calendar provider")
	}
	resp := &m.MaintainCalendarProviderResponse{Channel: notDue(), DeltaSync: notDue(), TokenFailure: notDue()}
	now := timestamppb.New(s.f.now())
	newChannel := func(calls int32) {
		p.Channel = &m.CalendarChannelUpkeep{ChannelId: uuid.NewString(), CreateTime: now, LastNotificationTime: now,
			ExpireTime: timestamppb.New(s.f.now().Add(7 * 24 * time.Hour))}
		resp.Channel, resp.ChannelId, resp.ChannelExpireTime = ok(calls), p.Channel.GetChannelId(), p.Channel.GetExpireTime()
		p.State, p.ErrorCode = m.ProviderState_PROVIDER_STATE_CONNECTED, ""
	}
	switch {
	case fail != nil:
		if step == "delta_sync" {
			resp.DeltaSync = fail
		} else {
			resp.Channel = fail
		}
	case r.GetTokenFailure() != nil:
		t.TokenFailures[p.GetProviderId()] = r.GetTokenFailure()
		p.State, p.ErrorCode = m.ProviderState_PROVIDER_STATE_ERROR, r.GetTokenFailure().GetErrorCode()
		resp.TokenFailure = ok(0)
	case step == "channel_renew":
		if p.GetChannel().GetChannelId() != r.GetChannelId() {
			// Renewed meanwhile: nothing to do, nothing called.
			resp.Channel = &m.Outcome{Status: m.OutcomeStatus_OUTCOME_STATUS_SKIPPED}
			break
		}
		newChannel(2) // events.watch, then channels.stop of the old one
	case step == "channel_recreate":
		newChannel(1)
	default:
		p.LastSyncTime = now
		resp.DeltaSync = ok(1)
	}
	resp.State = p.GetState()
	return resp, nil
}

type tokenSrv struct {
	m.UnimplementedTokenUpkeepServiceServer
	f *Fake
}

func (s *tokenSrv) ListTokenUpkeep(ctx context.Context, _ *m.ListTokenUpkeepRequest) (*m.ListTokenUpkeepResponse, error) {
	tn, err := callerTenant(ctx)
	if err != nil {
		return nil, err
	}
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	t := s.f.tenant(tn)
	if t.ListFails {
		return nil, errs.Unavailable("OAUTH_UNAVAILABLE", "oauth is restarting")
	}
	out := &m.ListTokenUpkeepResponse{}
	for _, c := range t.Tokens {
		out.Connections = append(out.Connections, proto.Clone(c).(*m.TokenUpkeep))
	}
	sort.Slice(out.Connections, func(i, j int) bool {
		return out.Connections[i].GetConnectionId() < out.Connections[j].GetConnectionId()
	})
	return out, nil
}

func (s *tokenSrv) RefreshConnection(ctx context.Context, r *m.RefreshConnectionRequest) (*m.RefreshConnectionResponse, error) {
	t, _, fail, err := s.f.begin(ctx, "RefreshConnection", r.GetConnectionId(), "token_refresh")
	if err != nil {
		return nil, err
	}
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	c, found := t.Tokens[r.GetConnectionId()]
	if !found {
		return nil, errs.NotFound("connection")
	}
	switch {
	case t.Revoked[c.GetConnectionId()]:
		c.State = m.ConnectionState_CONNECTION_STATE_REVOKED
		fail = &m.Outcome{Status: m.OutcomeStatus_OUTCOME_STATUS_FAILED, FailureClass: m.FailureClass_FAILURE_CLASS_REVOKED,
			ErrorCode: "token_revoked", Message: "Google says the grant was revoked (invalid_grant).",
			Remedy: "Reconnect the account: open the provider and choose Connect.", GoogleCalls: 1}
	case fail != nil:
		if fail.GetFailureClass() == m.FailureClass_FAILURE_CLASS_TRANSIENT {
			c.State = m.ConnectionState_CONNECTION_STATE_TRANSIENT_ERROR
		}
	default:
		c.State = m.ConnectionState_CONNECTION_STATE_CONNECTED
		c.LastRefreshTime = timestamppb.New(s.f.now())
		c.AccessTokenExpireTime = timestamppb.New(s.f.now().Add(time.Hour))
	}
	resp := &m.RefreshConnectionResponse{State: c.GetState(), AccessTokenExpireTime: c.GetAccessTokenExpireTime(), LastRefreshTime: c.GetLastRefreshTime()}
	if fail != nil {
		resp.Outcome = fail
	} else {
		resp.Outcome = ok(1)
	}
	return resp, nil
}

type dirSrv struct {
	m.UnimplementedTenantDirectoryServiceServer
	f *Fake
}

func (s *dirSrv) ListConfiguredTenants(ctx context.Context, _ *m.ListConfiguredTenantsRequest) (*m.ListConfiguredTenantsResponse, error) {
	if _, err := callerTenant(ctx); err != nil {
		return nil, err
	}
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	out := &m.ListConfiguredTenantsResponse{}
	names := make([]string, 0, len(s.f.tenants))
	for n, t := range s.f.tenants {
		if t.Configured {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		out.Tenants = append(out.Tenants, &m.ConfiguredTenant{Tenant: n})
	}
	return out, nil
}
