// Hand-written validation for the maintenance API, run by the server's validation interceptor before
// any handler sees a request. Not generated: `make generate` only replaces *.pb.go files.
//
// Errors are *FieldError values carrying their own gRPC status (see gen/validation): InvalidArgument
// naming the field.

package maintenancev1

import (
	"unicode/utf8"

	"github.com/algapsa/alga-google/gen/validation"
)

// Limits of the maintenance API.
const (
	MaxRunsPageSize = 100
	MaxErrorCode    = 100
	MaxOutcomeText  = 2000
)

// FieldError is bad input in one request field (shared by every API: see gen/validation).
type FieldError = validation.FieldError

func invalid(field, format string, args ...any) *FieldError {
	return validation.Invalid(field, format, args...)
}

func validateOptionalID(field, id string) error {
	if id == "" {
		return nil
	}
	return validation.ValidateID(field, id)
}

func validateText(field, s string, max int) error {
	if !utf8.ValidString(s) {
		return invalid(field, "must be valid UTF-8")
	}
	if len(s) > max {
		return invalid(field, "must be at most %d bytes", max)
	}
	return nil
}

// validateOutcome checks an outcome passed in a request (a token failure to record).
func validateOutcome(field string, o *Outcome) error {
	if _, ok := OutcomeStatus_name[int32(o.GetStatus())]; !ok {
		return invalid(field+".status", "unknown status %d", int32(o.GetStatus()))
	}
	if _, ok := FailureClass_name[int32(o.GetFailureClass())]; !ok {
		return invalid(field+".failure_class", "unknown failure class %d", int32(o.GetFailureClass()))
	}
	if err := validateText(field+".error_code", o.GetErrorCode(), MaxErrorCode); err != nil {
		return err
	}
	if err := validateText(field+".message", o.GetMessage(), MaxOutcomeText); err != nil {
		return err
	}
	return validateText(field+".remedy", o.GetRemedy(), MaxOutcomeText)
}

// validateTokenFailure checks the token_failure of a Maintain request: a FAILED outcome with a class
// and a code.
func validateTokenFailure(o *Outcome) error {
	if err := validateOutcome("token_failure", o); err != nil {
		return err
	}
	if o.GetStatus() != OutcomeStatus_OUTCOME_STATUS_FAILED {
		return invalid("token_failure.status", "must be OUTCOME_STATUS_FAILED")
	}
	if o.GetFailureClass() == FailureClass_FAILURE_CLASS_UNSPECIFIED {
		return invalid("token_failure.failure_class", "is required")
	}
	if o.GetErrorCode() == "" {
		return invalid("token_failure.error_code", "is required")
	}
	return nil
}

func (r *RunGoogleMaintenanceRequest) Validate() error { return nil }

func (r *GetGoogleMaintenanceRequest) Validate() error {
	if r.GetPageSize() < 0 || r.GetPageSize() > MaxRunsPageSize {
		return invalid("page_size", "must be between 0 and %d", MaxRunsPageSize)
	}
	return nil
}

func (r *SyncGoogleMaintenanceScheduleRequest) Validate() error { return nil }

func (r *ListGmailUpkeepRequest) Validate() error { return nil }

// Validate requires a provider and at least one step; a token failure to record excludes the others.
func (r *MaintainGmailProviderRequest) Validate() error {
	if err := validation.ValidateID("provider_id", r.GetProviderId()); err != nil {
		return err
	}
	if err := validateOptionalID("run_id", r.GetRunId()); err != nil {
		return err
	}
	steps := r.GetVerifyProvisioning() || r.GetRenewWatch() || r.GetReconcile()
	if r.TokenFailure != nil {
		if steps {
			return invalid("token_failure", "excludes verify_provisioning, renew_watch and reconcile")
		}
		return validateTokenFailure(r.GetTokenFailure())
	}
	if !steps {
		return invalid("renew_watch", "at least one of verify_provisioning, renew_watch, reconcile or token_failure is required")
	}
	return nil
}

func (r *ListCalendarUpkeepRequest) Validate() error { return nil }

// Validate requires a provider and at least one step; RENEW names the channel to replace.
func (r *MaintainCalendarProviderRequest) Validate() error {
	if err := validation.ValidateID("provider_id", r.GetProviderId()); err != nil {
		return err
	}
	if err := validateOptionalID("run_id", r.GetRunId()); err != nil {
		return err
	}
	action := r.GetChannelAction()
	if _, ok := ChannelAction_name[int32(action)]; !ok {
		return invalid("channel_action", "unknown channel action %d", int32(action))
	}
	if err := validateText("channel_id", r.GetChannelId(), 200); err != nil {
		return err
	}
	if action == ChannelAction_CHANNEL_ACTION_RENEW && r.GetChannelId() == "" {
		return invalid("channel_id", "is required to renew a channel")
	}
	steps := action == ChannelAction_CHANNEL_ACTION_RENEW || action == ChannelAction_CHANNEL_ACTION_RECREATE || r.GetDeltaSync()
	if r.TokenFailure != nil {
		if steps {
			return invalid("token_failure", "excludes channel_action and delta_sync")
		}
		return validateTokenFailure(r.GetTokenFailure())
	}
	if !steps {
		return invalid("channel_action", "at least one of channel_action, delta_sync or token_failure is required")
	}
	return nil
}

func (r *ListTokenUpkeepRequest) Validate() error { return nil }

func (r *RefreshConnectionRequest) Validate() error {
	if err := validation.ValidateID("connection_id", r.GetConnectionId()); err != nil {
		return err
	}
	return validateOptionalID("run_id", r.GetRunId())
}

func (r *ListConfiguredTenantsRequest) Validate() error { return nil }
