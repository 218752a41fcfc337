package service

import (
	"context"
	"fmt"
	"slices"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	calendarv1 "github.com/algapsa/alga-google/gen/alga/calendar/v1"
	gmailv1 "github.com/algapsa/alga-google/gen/alga/gmail/v1"
	oauthv1 "github.com/algapsa/alga-google/gen/alga/oauth/v1"
	secretsv1 "github.com/algapsa/alga-google/gen/alga/secrets/v1"
	"github.com/algapsa/alga-google/services/oauth/internal/store"
	"github.com/algapsa/alga-google/services/platform/errs"
)

// Human names of the setup values, used in "missing" lists.
const (
	labelClientID          = "Gmail OAuth client ID"
	labelClientSecret      = "Gmail OAuth client secret"
	labelCalClientID       = "Calendar OAuth client ID"
	labelCalClientSecret   = "Calendar OAuth client secret"
	labelProjectID         = "Google Cloud project ID"
	labelServiceAccountKey = "Pub/Sub service-account key"
)

// setupView is what the status is computed from. It holds no client secret.
type setupView struct {
	settings    store.Settings
	clientID    string
	calClientID string
	projectID   string
	saKey       string
	present     map[string]bool
	hints       map[string]string
}

func (s *Setup) loadSetup(ctx context.Context, tenant string) (setupView, error) {
	settings, _, err := store.GetSettings(ctx, s.pool, tenant)
	if err != nil {
		return setupView{}, err
	}
	return s.readSetup(ctx, settings)
}

// readSetup reads the secrets part of the setup (presence, hints, the non-secret values) beside the
// given settings.
func (s *Setup) readSetup(ctx context.Context, settings store.Settings) (setupView, error) {
	v := setupView{settings: settings, present: map[string]bool{}, hints: map[string]string{}}
	desc, err := s.secrets.DescribeSecrets(ctx, &secretsv1.DescribeSecretsRequest{Names: setupSecretNames})
	if err != nil {
		return v, err
	}
	for _, d := range desc.GetSecrets() {
		if d.GetPresent() {
			v.present[d.GetName()] = true
			v.hints[d.GetName()] = d.GetHint()
		}
	}
	// Only the non-secret values are read (to mask the client ids, show the project and the account).
	vals, err := s.getSecrets(ctx, SecretClientID, SecretCalendarClientID, SecretProjectID, SecretServiceAccountKey)
	if err != nil {
		return v, err
	}
	v.clientID, v.calClientID, v.projectID, v.saKey = vals[SecretClientID], vals[SecretCalendarClientID], vals[SecretProjectID], vals[SecretServiceAccountKey]
	return v, nil
}

func (s *Setup) configOf(v setupView) *oauthv1.GoogleConfig {
	c := &oauthv1.GoogleConfig{
		GmailClientIdMasked:      maskClientID(v.clientID),
		GmailClientSecretSet:     v.present[SecretClientSecret],
		GmailClientSecretHint:    v.hints[SecretClientSecret],
		CalendarClientIdMasked:   maskClientID(v.calClientID),
		CalendarClientSecretSet:  v.present[SecretCalendarClientSecret],
		CalendarClientSecretHint: v.hints[SecretCalendarClientSecret],
		ProjectId:                v.projectID,
		ServiceAccountKeySet:     v.present[SecretServiceAccountKey],
		ServiceAccountEmail:      serviceAccountEmail(v.saKey),
		UseSameApp:               v.settings.UseSameApp,
		GmailRedirectUri:         s.base.GmailRedirectURI(),
		CalendarRedirectUri:      s.base.CalendarRedirectURI(),
		GmailScopes:              slices.Clone(GmailScopes),
		CalendarScopes:           slices.Clone(CalendarScopes),
		UpdatedBy:                v.settings.UpdatedBy,
	}
	if !v.settings.UpdatedAt.IsZero() && v.settings.UpdatedBy != "" {
		c.UpdateTime = timestamppb.New(v.settings.UpdatedAt)
	}
	var gmailMissing, calMissing []string
	if !v.present[SecretClientID] {
		gmailMissing = append(gmailMissing, labelClientID)
	}
	if !v.present[SecretClientSecret] {
		gmailMissing = append(gmailMissing, labelClientSecret)
	}
	if !v.present[SecretProjectID] {
		gmailMissing = append(gmailMissing, labelProjectID)
	}
	if !v.present[SecretServiceAccountKey] {
		gmailMissing = append(gmailMissing, labelServiceAccountKey)
	}
	if v.settings.UseSameApp {
		// The Calendar key set mirrors the Gmail one; what is missing is the Gmail client.
		if !v.present[SecretCalendarClientID] || !v.present[SecretClientID] {
			calMissing = append(calMissing, labelClientID)
		}
		if !v.present[SecretCalendarClientSecret] || !v.present[SecretClientSecret] {
			calMissing = append(calMissing, labelClientSecret)
		}
	} else {
		if !v.present[SecretCalendarClientID] {
			calMissing = append(calMissing, labelCalClientID)
		}
		if !v.present[SecretCalendarClientSecret] {
			calMissing = append(calMissing, labelCalClientSecret)
		}
	}
	c.GmailReady = len(gmailMissing) == 0
	c.CalendarReady = len(calMissing) == 0
	for _, m := range append(gmailMissing, calMissing...) {
		if !slices.Contains(c.Missing, m) {
			c.Missing = append(c.Missing, m)
		}
	}
	anySet := false
	for _, n := range setupSecretNames {
		anySet = anySet || v.present[n]
	}
	switch {
	case c.GmailReady && c.CalendarReady:
		c.State = oauthv1.GoogleConfigState_GOOGLE_CONFIG_STATE_CONFIGURED
	case anySet:
		c.State = oauthv1.GoogleConfigState_GOOGLE_CONFIG_STATE_PARTIAL
	default:
		c.State = oauthv1.GoogleConfigState_GOOGLE_CONFIG_STATE_MISSING
	}
	return c
}

// GetGoogleConfig implements GoogleSetupService: any internal user of the tenant may read the status.
func (s *Setup) GetGoogleConfig(ctx context.Context, _ *oauthv1.GetGoogleConfigRequest) (*oauthv1.GetGoogleConfigResponse, error) {
	id, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	v, err := s.loadSetup(ctx, id.Tenant)
	if err != nil {
		return nil, err
	}
	cfg := s.configOf(v)
	// The setup's values can change behind this service's back (deleted through the secrets API): what
	// is read here is recorded for the tenant directory when it differs. Best effort — reading the
	// setup does not fail because of it.
	if err := store.ReconcileTenantSetup(ctx, s.pool, id.Tenant, setupStateName(cfg.State), s.now()); err != nil {
		s.log.WarnContext(ctx, "recording the google setup state failed", "err", err)
	}
	return &oauthv1.GetGoogleConfigResponse{Config: cfg}, nil
}

// UpdateGoogleConfig implements GoogleSetupService: partial update, one atomic write to the secrets service.
func (s *Setup) UpdateGoogleConfig(ctx context.Context, req *oauthv1.UpdateGoogleConfigRequest) (*oauthv1.UpdateGoogleConfigResponse, error) {
	id, err := admin(ctx)
	if err != nil {
		return nil, err
	}
	settings, _, err := store.GetSettings(ctx, s.pool, id.Tenant)
	if err != nil {
		return nil, err
	}
	useSame := settings.UseSameApp
	if req.UseSameApp != nil {
		useSame = *req.UseSameApp
	}
	if useSame && (req.CalendarClientId != nil || req.CalendarClientSecret != nil) {
		field := "calendar_client_id"
		if req.CalendarClientId == nil {
			field = "calendar_client_secret"
		}
		return nil, errs.InvalidField(field, "leave it empty while \"use the same OAuth app for Gmail and Calendar\" is on (or turn that off in the same save)")
	}
	stored, err := s.getSecrets(ctx, setupSecretNames...)
	if err != nil {
		return nil, err
	}
	writes := map[string]string{}
	var changed []string
	set := func(name, field string, v *string, clean func(string) string) {
		if v == nil {
			return
		}
		writes[name] = clean(*v)
		changed = append(changed, field)
	}
	set(SecretClientID, "gmail_client_id", req.GmailClientId, oauthv1.CleanClientID)
	set(SecretClientSecret, "gmail_client_secret", req.GmailClientSecret, oauthv1.CleanSecretValue)
	set(SecretCalendarClientID, "calendar_client_id", req.CalendarClientId, oauthv1.CleanClientID)
	set(SecretCalendarClientSecret, "calendar_client_secret", req.CalendarClientSecret, oauthv1.CleanSecretValue)
	set(SecretProjectID, "project_id", req.ProjectId, oauthv1.CleanSecretValue)
	if req.ServiceAccountKeyJson != nil {
		writes[SecretServiceAccountKey] = *req.ServiceAccountKeyJson
		changed = append(changed, "service_account_key_json")
	}
	if req.UseSameApp != nil {
		changed = append(changed, "use_same_app")
	}
	effective := func(name string) string {
		if v, ok := writes[name]; ok {
			return v
		}
		return stored[name]
	}

	// Stateful checks: Gmail needs a project, and the service account must belong to it.
	project := effective(SecretProjectID)
	if effective(SecretClientID) != "" && project == "" && (req.GmailClientId != nil || req.ServiceAccountKeyJson != nil) {
		return nil, errs.InvalidField("project_id", "the Google Cloud project ID is required for Gmail (it hosts the Pub/Sub topic)")
	}
	if key := effective(SecretServiceAccountKey); key != "" && (req.ServiceAccountKeyJson != nil || req.ProjectId != nil) {
		// A new key was parsed by the request's Validate; a stored one that does not parse is left alone.
		k, perr := oauthv1.ParseServiceAccountKey([]byte(key))
		switch {
		case perr == nil && project == "":
			return nil, errs.InvalidField("project_id", "the Google Cloud project ID is required with a service-account key (the key belongs to project %q)", k.ProjectID)
		case perr == nil && k.ProjectID != project:
			if req.ServiceAccountKeyJson != nil {
				return nil, errs.InvalidField("service_account_key_json", "this key belongs to project %q, but the project ID is %q: create the key in the same project", k.ProjectID, project)
			}
			return nil, errs.InvalidField("project_id", "the stored service-account key belongs to project %q: upload a key from project %q as well, or keep the project ID", k.ProjectID, project)
		}
	}

	var deletes []string
	if useSame {
		// Calendar uses the Gmail app: its key set gets the same values.
		for calName, gmailName := range map[string]string{SecretCalendarClientID: SecretClientID, SecretCalendarClientSecret: SecretClientSecret} {
			want := effective(gmailName)
			switch {
			case want != "" && stored[calName] != want:
				writes[calName] = want
			case want == "" && stored[calName] != "":
				deletes = append(deletes, calName)
			}
		}
	}
	if len(writes) > 0 || len(deletes) > 0 {
		put := &secretsv1.PutSecretsRequest{DeleteNames: deletes}
		for _, name := range setupSecretNames {
			if v, ok := writes[name]; ok && v != stored[name] {
				put.Writes = append(put.Writes, &secretsv1.SecretWrite{Name: name, Value: v})
			}
		}
		if len(put.Writes) > 0 || len(put.DeleteNames) > 0 {
			if _, err := s.secrets.PutSecrets(ctx, put); err != nil {
				return nil, err
			}
		}
	}
	// The saved setup's state (read back from the secrets service with the settings being saved) is
	// recorded with the settings, for the tenant directory.
	now := s.now()
	v, err := s.readSetup(ctx, store.Settings{Tenant: id.Tenant, UseSameApp: useSame, UpdatedBy: actor(id), UpdatedAt: now})
	if err != nil {
		return nil, err
	}
	cfg := s.configOf(v)
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	if v.settings, err = store.UpsertSettings(ctx, tx, v.settings); err != nil {
		return nil, err
	}
	if err := store.InsertAudit(ctx, tx, id.Tenant, store.AuditEntry{Actor: actor(id), Action: "update", Fields: changed, CreatedAt: now}); err != nil {
		return nil, err
	}
	if err := store.UpsertTenantSetup(ctx, tx, id.Tenant, setupStateName(cfg.State), now); err != nil {
		return nil, err
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "google setup updated", "fields", changed, "state", setupStateName(cfg.State))
	s.syncSchedule(ctx, setupStateName(cfg.State) != store.SetupMissing)
	return &oauthv1.UpdateGoogleConfigResponse{Config: s.configOf(v)}, nil
}

// ResetGoogleProviders implements GoogleSetupService: every provider back to disconnected, every
// connection's tokens cleared. Failures are reported as warnings and never block the reset.
func (s *Setup) ResetGoogleProviders(ctx context.Context, _ *oauthv1.ResetGoogleProvidersRequest) (*oauthv1.ResetGoogleProvidersResponse, error) {
	id, err := admin(ctx)
	if err != nil {
		return nil, err
	}
	resp := &oauthv1.ResetGoogleProvidersResponse{}
	// Providers first: they stop watches and channels at Google, which needs the tokens still present.
	if s.gmail != nil {
		r, err := s.gmail.ResetGmailProviders(ctx, &gmailv1.ResetGmailProvidersRequest{})
		if err != nil {
			resp.Warnings = append(resp.Warnings, peerWarning("Gmail", err))
		} else {
			resp.GmailProvidersReset = r.GetProvidersReset()
			resp.Warnings = append(resp.Warnings, r.GetWarnings()...)
		}
	}
	if s.calendar != nil {
		r, err := s.calendar.ResetCalendarProviders(ctx, &calendarv1.ResetCalendarProvidersRequest{})
		if err != nil {
			resp.Warnings = append(resp.Warnings, peerWarning("Calendar", err))
		} else {
			resp.CalendarProvidersReset = r.GetProvidersReset()
			resp.Warnings = append(resp.Warnings, r.GetWarnings()...)
		}
	}
	ids, err := store.DeleteTenantConnections(ctx, s.pool, id.Tenant)
	if err != nil {
		return nil, err
	}
	resp.ConnectionsCleared = int32(len(ids))
	// The tokens of the cleared connections, deleted in batches the secrets service accepts (at most
	// secretsv1.MaxBatch names a request): one failed batch does not keep the others stored.
	failed := 0
	for batch := range slices.Chunk(ids, secretsv1.MaxBatch) {
		names := make([]string, len(batch))
		for i, cid := range batch {
			names[i] = TokenSecretName(cid)
		}
		if _, err := s.secrets.PutSecrets(ctx, &secretsv1.PutSecretsRequest{DeleteNames: names}); err != nil {
			s.log.WarnContext(ctx, "stored tokens could not be deleted", "count", len(names), "err", err)
			failed += len(names)
		}
	}
	if failed > 0 {
		resp.Warnings = append(resp.Warnings, fmt.Sprintf("%d stored tokens could not be deleted; they are unreachable without their connection rows", failed))
	}
	// The reset keeps the setup (credentials stay saved): its state is read again and recorded with the
	// audit entry, so the tenant directory holds the state as of the reset.
	now := s.now()
	state := ""
	if v, err := s.loadSetup(ctx, id.Tenant); err != nil {
		resp.Warnings = append(resp.Warnings, fmt.Sprintf("the Google setup's state could not be read back (%s); it is recorded at the next save", status.Code(err)))
	} else {
		state = setupStateName(s.configOf(v).State)
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	if state != "" {
		if err := store.UpsertTenantSetup(ctx, tx, id.Tenant, state, now); err != nil {
			return nil, err
		}
	}
	if err := store.InsertAudit(ctx, tx, id.Tenant, store.AuditEntry{Actor: actor(id), Action: "reset_providers", CreatedAt: now}); err != nil {
		return nil, err
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "google providers reset", "gmail", resp.GmailProvidersReset, "calendar", resp.CalendarProvidersReset,
		"connections", resp.ConnectionsCleared, "warnings", len(resp.Warnings))
	return resp, nil
}

func peerWarning(what string, err error) string {
	switch status.Code(err) {
	case codes.Unimplemented:
		return what + " providers were not reset: the " + what + " service does not support it yet"
	case codes.Unavailable, codes.DeadlineExceeded:
		return what + " providers were not reset: the " + what + " service is unavailable; run the reset again later"
	}
	return what + " providers were not reset: " + status.Convert(err).Message()
}
