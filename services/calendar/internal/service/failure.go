package service

import (
	"context"
	"errors"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/status"

	maintenancev1 "github.com/algapsa/alga-google/gen/alga/maintenance/v1"
	oauthv1 "github.com/algapsa/alga-google/gen/alga/oauth/v1"
	"github.com/algapsa/alga-google/services/calendar/internal/gcal"
	"github.com/algapsa/alga-google/services/calendar/internal/store"
	"github.com/algapsa/alga-google/services/platform/errs"
)

// providerError is a status shown to the user with what to do about it, and how scheduled
// maintenance classifies it. Its texts are fixed: never a token, a secret or a raw Google answer.
type providerError struct {
	code, message, remedy string
	class                 maintenancev1.FailureClass
}

const (
	classTransient      = maintenancev1.FailureClass_FAILURE_CLASS_TRANSIENT
	classPermanent      = maintenancev1.FailureClass_FAILURE_CLASS_PERMANENT
	classRevoked        = maintenancev1.FailureClass_FAILURE_CLASS_REVOKED
	classTestingExpiry  = maintenancev1.FailureClass_FAILURE_CLASS_TESTING_EXPIRY
	classInvalidRapt    = maintenancev1.FailureClass_FAILURE_CLASS_INVALID_RAPT
	classClientReplaced = maintenancev1.FailureClass_FAILURE_CLASS_CLIENT_REPLACED
	classNotConfigured  = maintenancev1.FailureClass_FAILURE_CLASS_NOT_CONFIGURED
)

const reconnect = "Reconnect the calendar (Connect) and approve Google's consent screen again."

var (
	// errReauth: Google refuses the calendar's authorization although the oauth service handed out a
	// token (a removed scope, a token refused even after a forced refresh).
	errReauth = providerError{"reauthorization_required",
		"Google no longer accepts this calendar's authorization.",
		"Reconnect the calendar (Connect) to authorize again.", classPermanent}
	// errGrantGone: the oauth service needs a new consent and did not say why (or has no connection).
	errGrantGone = providerError{"reauthorization_required",
		"Google no longer accepts this calendar's authorization.",
		"Reconnect the calendar (Connect) to authorize again.", classRevoked}
	errTokenRevoked = providerError{"token_revoked",
		"The Google account's grant for this calendar was revoked or has expired.",
		reconnect, classRevoked}
	errTokenTestingExpiry = providerError{"token_expired_testing",
		"The calendar's grant expired 7 days after consent: the tenant's OAuth consent screen is most likely in Testing, where Google limits refresh tokens to 7 days.",
		"In Google Cloud Console → APIs & Services → OAuth consent screen, publish the app to Production; then reconnect the calendar (Connect).", classTestingExpiry}
	errTokenReauthenticate = providerError{"token_reauth_required",
		"Google requires the account to sign in again before the calendar can be used (a reauthentication policy of the Google Workspace domain).",
		reconnect, classInvalidRapt}
	errClientReplaced = providerError{"token_client_invalid",
		"Google no longer accepts the OAuth client this calendar was connected with (the client was replaced, deleted or changed in the Google setup).",
		"An administrator checks the Calendar OAuth client in Settings → Integrations → Communication → Google; then reconnect the calendar (Connect).", classClientReplaced}
	errTokenUnavailable = providerError{"token_unavailable",
		"The calendar's access token could not be obtained right now (the oauth service or Google's token endpoint did not answer).",
		"No action needed: it is retried automatically. If it persists, check Google's status dashboard.", classTransient}
	errNotConfigured = providerError{"google_not_configured",
		"Google is not configured for this tenant.",
		"Ask an administrator to complete Settings → Integrations → Communication → Google, then reconnect.", classNotConfigured}
	errCalendarMissing = providerError{"calendar_not_found",
		"The selected calendar does not exist in the connected Google account.",
		"Pick one of the available calendars, or reconnect with the right account.", classPermanent}
	errChannelFailed = providerError{"channel_failed",
		"Google did not accept the push channel, so calendar changes are not received.",
		"Check that the suite's public URL is reachable from Google over HTTPS, then reconnect.", classPermanent}
	errGoogleUnavailable = providerError{"google_unavailable",
		"Google Calendar did not answer.",
		"No action needed: it is retried automatically. If it persists, check Google's status dashboard.", classTransient}
	errInternal = providerError{"internal_error",
		"The calendar service could not complete the step.",
		"No action needed: it is retried at the next run.", classTransient}
)

func (e providerError) transient() providerError { e.class = classTransient; return e }

// failure is an error already classified (and, unless transient, recorded on the provider): the
// domain error callers see, and the provider error maintenance reports.
type failure struct {
	pe  providerError
	err *errs.Error
}

func (f *failure) Error() string { return f.err.Error() }
func (f *failure) Unwrap() error { return f.err }

// classified returns the provider error behind err: its failure, or a transient internal error.
func classified(err error) providerError {
	var f *failure
	if errors.As(err, &f) {
		return f.pe
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || gcal.IsTransient(err) {
		return errGoogleUnavailable
	}
	return errInternal
}

func (s *Service) setError(ctx context.Context, p *store.Provider, e providerError) {
	if _, err := store.SetState(context.WithoutCancel(ctx), s.deps.Pool, p.Tenant, p.ID, store.StateError, e.code, e.message, e.remedy); err != nil {
		s.log.ErrorContext(ctx, "recording provider error", "provider", p.ID, "err", err)
	}
}

// ErrorInfo metadata keys of the oauth service's GetAccessToken failures: the connection's status and
// the maintenance FailureClass it stands for.
const (
	errorStatus = "status"
	errorClass  = "failure_class"
)

// errorMeta returns the ErrorInfo metadata of a status error (nil when it has none).
func errorMeta(err error) map[string]string {
	st, ok := status.FromError(err)
	if !ok {
		return nil
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info.GetMetadata()
		}
	}
	return nil
}

// classifyToken classifies an oauth GetAccessToken failure by its ErrorInfo reason and, for a
// connection that needs a new consent, the connection status the oauth service reports with it. The
// codes are the oauth service's ("token_" and the connection status), so a provider shows the same
// code whichever path found the failure; the failure class the oauth service reports wins.
func classifyToken(err error) providerError {
	pe := tokenProblem(err)
	if c, ok := maintenancev1.FailureClass_value[errorMeta(err)[errorClass]]; ok && c != 0 {
		pe.class = maintenancev1.FailureClass(c)
	}
	return pe
}

func tokenProblem(err error) providerError {
	switch errs.ReasonOf(err) {
	case "REAUTHORIZATION_REQUIRED":
		switch errorMeta(err)[errorStatus] {
		case oauthv1.ConnectionStatus_CONNECTION_STATUS_REVOKED.String():
			return errTokenRevoked
		case oauthv1.ConnectionStatus_CONNECTION_STATUS_EXPIRED_TESTING.String():
			return errTokenTestingExpiry
		case oauthv1.ConnectionStatus_CONNECTION_STATUS_REAUTH_REQUIRED.String():
			return errTokenReauthenticate
		case oauthv1.ConnectionStatus_CONNECTION_STATUS_CLIENT_INVALID.String():
			return errClientReplaced
		}
		return errGrantGone
	case "NOT_FOUND":
		// No connection (any more): only a new consent brings one.
		return errGrantGone
	case "GOOGLE_NOT_CONFIGURED":
		return errNotConfigured
	}
	return errTokenUnavailable
}

// tokenError turns an access-token failure into a failure: a permanent one is recorded on the provider
// (ERROR with its remedy) and answered FailedPrecondition; a transient one is Unavailable.
func (s *Service) tokenError(ctx context.Context, p *store.Provider, err error) error {
	pe := classifyToken(err)
	switch pe.class {
	case classTransient:
		return &failure{pe, errs.Unavailable("TOKEN_UNAVAILABLE", "the calendar's access token could not be obtained; retry shortly").Wrap(err)}
	case classNotConfigured:
		s.setError(ctx, p, pe)
		return &failure{pe, errs.GoogleNotConfigured("the Calendar OAuth client").Wrap(err)}
	}
	s.setError(ctx, p, pe)
	return &failure{pe, errs.FailedPrecondition("REAUTHORIZATION_REQUIRED", "%s %s", pe.message, pe.remedy).Wrap(err)}
}

// googleError maps a Calendar API failure to a failure, recording permanent ones (and any refused
// channel) on the provider. A failure already classified passes through.
func (s *Service) googleError(ctx context.Context, p *store.Provider, step string, err error) error {
	var f *failure
	if errors.As(err, &f) {
		return err
	}
	switch {
	case errors.Is(err, gcal.ErrUnauthorized):
		s.setError(ctx, p, errReauth)
		return &failure{errReauth, errs.FailedPrecondition("REAUTHORIZATION_REQUIRED", "%s %s", errReauth.message, errReauth.remedy).Wrap(err)}
	case errors.Is(err, gcal.ErrNotFound) && step != "watch":
		s.setError(ctx, p, errCalendarMissing)
		return &failure{errCalendarMissing, errs.FailedPrecondition("CALENDAR_NOT_FOUND", "%s %s", errCalendarMissing.message, errCalendarMissing.remedy).Wrap(err)}
	case step == "watch":
		pe := errChannelFailed
		if classified(err).class == classTransient {
			pe = pe.transient()
		}
		s.setError(ctx, p, pe)
		return &failure{pe, errs.Unavailable("CHANNEL_FAILED", "%s %s", pe.message, pe.remedy).Wrap(err)}
	}
	return &failure{errGoogleUnavailable, errs.Unavailable("GOOGLE_UNAVAILABLE", "Google Calendar did not answer (%s); retry shortly", step).Wrap(err)}
}

// withGoogle runs call with a Calendar client on the provider's access token. When Google refuses the
// token (401: a grant revoked, or a token invalidated, before it expired) the oauth service is asked
// once to refresh it at Google: when that fails the failure is classified and recorded on the
// provider (tokenError); when it succeeds call runs once more with the new token. Other errors of
// call are returned as they are (the caller maps them with googleError).
func (s *Service) withGoogle(ctx context.Context, p *store.Provider, call func(Token, *gcal.Client) error) error {
	tok, err := s.deps.OAuth.AccessToken(ctx, p.Tenant, p.ID)
	if err != nil {
		return s.tokenError(ctx, p, err)
	}
	cl, err := s.client(ctx, p.Tenant, tok)
	if err != nil {
		return err
	}
	err = call(tok, cl)
	if !errors.Is(err, gcal.ErrUnauthorized) {
		return err
	}
	s.log.InfoContext(ctx, "google refused the calendar's access token: forcing a refresh", "provider", p.ID)
	if tok, err = s.deps.OAuth.RefreshAccessToken(ctx, p.Tenant, p.ID); err != nil {
		return s.tokenError(ctx, p, err)
	}
	if cl, err = s.client(ctx, p.Tenant, tok); err != nil {
		return err
	}
	return call(tok, cl)
}

func (s *Service) client(ctx context.Context, tenant string, tok Token) (*gcal.Client, error) {
	return gcal.New(ctx, s.deps.Google, tok.AccessToken, s.deps.Retry, tenant)
}
