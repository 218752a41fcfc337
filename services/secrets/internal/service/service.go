// Package service implements alga.secrets.v1.SecretsService over a store.Backend. Requests arrive
// authenticated and validated by the platform's interceptor chain; handlers decide who may do what and
// return domain errors only. No value is ever logged.
package service

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"

	secretsv1 "github.com/algapsa/alga-google/gen/alga/secrets/v1"
	"github.com/algapsa/alga-google/services/platform/auth"
	"github.com/algapsa/alga-google/services/platform/errs"
	"github.com/algapsa/alga-google/services/secrets/internal/store"
)

// Readable lists, per service identity other than oauth, the only names GetSecrets returns it (the
// secrets target's Access table decides who may call GetSecrets at all). oauth — the owner of the
// Google setup and of the tokens — reads any name; gmail reads what it provisions Pub/Sub with.
var Readable = map[string][]string{
	auth.SvcGmail: {"google_service_account_key", "google_project_id"},
}

// Server is the SecretsService. New makes it without dependencies, for registration before the gRPC
// server serves; the target's Start hands it its dependencies (Use) before the server's start-up gate
// lets the first call through.
type Server struct {
	secretsv1.UnimplementedSecretsServiceServer
	backend store.Backend
	audit   *store.AuditLog
	log     *slog.Logger
}

// New returns the service, to be registered now and given its dependencies by Use.
func New() *Server { return &Server{} }

// Use sets the service's dependencies: the backend secrets live in, and the audit trail ListSecretAudit
// reads. The target calls it once, at the end of a successful Start.
func (s *Server) Use(backend store.Backend, audit *store.AuditLog, log *slog.Logger) {
	s.backend, s.audit, s.log = backend, audit, log
}

type access int

const (
	accessRead  access = iota // users with system_settings:read (or :update), any service
	accessWrite               // users with system_settings:update, any service
	accessRaw                 // services only
)

// Reserved secret names are owned by one service identity, which alone writes (and deletes) them: the
// Google setup keys go through the setup's checks (PUT /api/v1/google/config), the OAuth tokens through
// the callback and token custody. The generic API — browser users through the gateway, or any other
// identity — refuses them with PermissionDenied (RESERVED_SECRET_NAME).
var reserved = []struct {
	name   string // a full name, or a prefix ending in "_"
	prefix bool
	owner  string
	why    string
}{
	{"google_client_id", false, auth.SvcOAuth, "it is part of the Google setup: change it in the Google settings (PUT /api/v1/google/config)"},
	{"google_client_secret", false, auth.SvcOAuth, "it is part of the Google setup: change it in the Google settings (PUT /api/v1/google/config)"},
	{"google_calendar_client_id", false, auth.SvcOAuth, "it is part of the Google setup: change it in the Google settings (PUT /api/v1/google/config)"},
	{"google_calendar_client_secret", false, auth.SvcOAuth, "it is part of the Google setup: change it in the Google settings (PUT /api/v1/google/config)"},
	{"google_project_id", false, auth.SvcOAuth, "it is part of the Google setup: change it in the Google settings (PUT /api/v1/google/config)"},
	{"google_service_account_key", false, auth.SvcOAuth, "it is part of the Google setup: change it in the Google settings (PUT /api/v1/google/config)"},
	{"google_oauth_token_", true, auth.SvcOAuth, "it holds an OAuth token, stored only by the OAuth callback and refreshes"},
}

// checkReserved refuses a write or delete of a reserved name by anyone but its owner.
func checkReserved(ctx context.Context, names ...string) error {
	id, _ := auth.FromContext(ctx)
	for _, n := range names {
		for _, r := range reserved {
			if (r.prefix && strings.HasPrefix(n, r.name)) || (!r.prefix && n == r.name) {
				if id.Service == r.owner {
					break
				}
				return (&errs.Error{Code: codes.PermissionDenied, Reason: "RESERVED_SECRET_NAME",
					Message: fmt.Sprintf("the secret %q is reserved to the %s service: %s", n, r.owner, r.why)}).With("name", n)
			}
		}
	}
	return nil
}

// caller resolves the tenant and actor of a request and checks the caller may do what it asks.
func caller(ctx context.Context, need access) (string, store.Actor, error) {
	id, ok := auth.FromContext(ctx)
	if !ok {
		return "", store.Actor{}, errs.Unauthenticated("a bearer token is required")
	}
	if !id.IsService() && id.UserType != auth.UserTypeInternal {
		return "", store.Actor{}, errs.PermissionDenied("client users cannot use this service")
	}
	if id.Tenant == "" {
		return "", store.Actor{}, errs.FailedPrecondition("TENANT_REQUIRED", "this call is tenant-scoped: the token must name the tenant it acts for")
	}
	if !store.ValidTenant(id.Tenant) {
		return "", store.Actor{}, errs.PermissionDenied("the token's tenant id is not a valid tenant id")
	}
	switch need {
	case accessRead:
		if !id.IsService() && !id.Has(auth.PermSystemSettingsRead) && !id.Has(auth.PermSystemSettingsUpdate) {
			return "", store.Actor{}, errs.PermissionDenied("listing secrets needs the %s permission", auth.PermSystemSettingsRead)
		}
	case accessWrite:
		if !id.IsService() && !id.Has(auth.PermSystemSettingsUpdate) {
			return "", store.Actor{}, errs.PermissionDenied("changing secrets or reading their audit trail needs the %s permission", auth.PermSystemSettingsUpdate)
		}
	case accessRaw:
		if !id.IsService() {
			return "", store.Actor{}, errs.PermissionDenied("this method is available to internal services only")
		}
	}
	actor := store.Actor{ID: id.Subject, Type: "user"}
	if id.IsService() {
		actor = store.Actor{ID: id.Service, Type: "service"}
		if id.Subject != "" {
			actor.ID = id.Service + " for " + id.Subject
		}
	}
	return id.Tenant, actor, nil
}

// PutSecrets implements SecretsService.
func (s *Server) PutSecrets(ctx context.Context, req *secretsv1.PutSecretsRequest) (*secretsv1.PutSecretsResponse, error) {
	tenant, actor, err := caller(ctx, accessWrite)
	if err != nil {
		return nil, err
	}
	touched := append([]string(nil), req.GetDeleteNames()...)
	for _, w := range req.GetWrites() {
		touched = append(touched, w.GetName())
	}
	if err := checkReserved(ctx, touched...); err != nil {
		return nil, err
	}
	writes := make([]store.Write, len(req.GetWrites()))
	for i, w := range req.GetWrites() {
		writes[i] = store.Write{Name: w.GetName(), Value: w.GetValue(), ExpectedVersion: w.ExpectedVersion}
	}
	ds, err := s.backend.Put(ctx, tenant, actor, writes, req.GetDeleteNames())
	if err != nil {
		return nil, err
	}
	names := make([]string, len(ds))
	for i, d := range ds {
		names[i] = d.Name
	}
	s.log.InfoContext(ctx, "secrets written", "names", names, "deleted", req.GetDeleteNames(), "actor", actor.ID)
	return &secretsv1.PutSecretsResponse{Secrets: descriptions(ds)}, nil
}

// DescribeSecrets implements SecretsService.
func (s *Server) DescribeSecrets(ctx context.Context, req *secretsv1.DescribeSecretsRequest) (*secretsv1.DescribeSecretsResponse, error) {
	tenant, _, err := caller(ctx, accessRead)
	if err != nil {
		return nil, err
	}
	var names []string
	if len(req.GetNames()) > 0 {
		names = req.GetNames()
	}
	ds, err := s.backend.Describe(ctx, tenant, names)
	if err != nil {
		return nil, err
	}
	return &secretsv1.DescribeSecretsResponse{Secrets: descriptions(ds)}, nil
}

// GetSecrets implements SecretsService (service identities only; every value returned is audited).
func (s *Server) GetSecrets(ctx context.Context, req *secretsv1.GetSecretsRequest) (*secretsv1.GetSecretsResponse, error) {
	tenant, actor, err := caller(ctx, accessRaw)
	if err != nil {
		return nil, err
	}
	if id, _ := auth.FromContext(ctx); id.Service != auth.SvcOAuth {
		for _, n := range req.GetNames() {
			if !slices.Contains(Readable[id.Service], n) {
				return nil, errs.PermissionDenied("the %s service may not read the secret %q", id.Service, n)
			}
		}
	}
	vals, err := s.backend.Get(ctx, tenant, actor, req.GetNames())
	if err != nil {
		return nil, err
	}
	out := make([]*secretsv1.SecretValue, len(vals))
	for i, v := range vals {
		out[i] = &secretsv1.SecretValue{Name: v.Name, Value: v.Value, Version: v.Version}
	}
	return &secretsv1.GetSecretsResponse{Secrets: out}, nil
}

// DeleteSecrets implements SecretsService.
func (s *Server) DeleteSecrets(ctx context.Context, req *secretsv1.DeleteSecretsRequest) (*secretsv1.DeleteSecretsResponse, error) {
	tenant, actor, err := caller(ctx, accessWrite)
	if err != nil {
		return nil, err
	}
	if err := checkReserved(ctx, req.GetNames()...); err != nil {
		return nil, err
	}
	deleted, err := s.backend.Delete(ctx, tenant, actor, req.GetNames())
	if err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "secrets deleted", "names", deleted, "actor", actor.ID)
	return &secretsv1.DeleteSecretsResponse{DeletedNames: deleted}, nil
}

// ListSecretAudit implements SecretsService.
func (s *Server) ListSecretAudit(ctx context.Context, req *secretsv1.ListSecretAuditRequest) (*secretsv1.ListSecretAuditResponse, error) {
	tenant, _, err := caller(ctx, accessWrite)
	if err != nil {
		return nil, err
	}
	// Validate has refused every token AuditPageToken did not make.
	before, _ := secretsv1.AuditPageTokenID(req.GetPageToken())
	size := int(req.GetPageSize())
	if size == 0 {
		size = 100
	}
	events, err := s.audit.List(ctx, tenant, req.GetName(), before, size+1)
	if err != nil {
		return nil, err
	}
	resp := &secretsv1.ListSecretAuditResponse{}
	if len(events) > size {
		events = events[:size]
		resp.NextPageToken = secretsv1.AuditPageToken(events[len(events)-1].ID)
	}
	for _, e := range events {
		resp.Events = append(resp.Events, &secretsv1.SecretAuditEvent{
			Id: e.ID, Name: e.Name, Action: e.Action, Actor: e.Actor, ActorType: e.ActorType,
			Version: e.Version, CreateTime: timestamppb.New(e.CreateTime),
		})
	}
	return resp, nil
}

func descriptions(ds []store.Description) []*secretsv1.SecretDescription {
	out := make([]*secretsv1.SecretDescription, len(ds))
	for i, d := range ds {
		out[i] = &secretsv1.SecretDescription{Name: d.Name, Present: d.Present, Version: d.Version, Hint: d.Hint}
		if !d.UpdateTime.IsZero() {
			out[i].UpdateTime = timestamppb.New(d.UpdateTime)
		}
	}
	return out
}
