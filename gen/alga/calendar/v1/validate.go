// Hand-written validation for the calendar API, run by the server's validation interceptor before any
// handler sees a request. Not generated: `make generate` only replaces *.pb.go files.
//
// Errors are *FieldError values carrying their own gRPC status: InvalidArgument with an ErrorInfo
// (reason INVALID_FIELD, domain "alga-google", metadata field=<path>) and a BadRequest field violation,
// the shape of the platform's errs.InvalidField (which this module cannot import).

package calendarv1

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/algapsa/alga-google/gen/validation"
)

// Limits of the calendar API.
const (
	MaxDisplayName  = 200
	MaxCalendarID   = 1024
	MaxAccountEmail = 254
	MaxPageSize     = 500
	// MaxCursor bounds a cursor's length; what a cursor means is the feed's to check (it is opaque).
	MaxCursor      = 200
	MaxAcknowledge = 500
	// MaxHeaderValue bounds each forwarded X-Goog-* header (the service parses them itself, answering 400).
	MaxHeaderValue = 4096
)

// FieldError is bad input in one request field (shared by every API: see gen/validation).
type FieldError = validation.FieldError

func invalid(field, format string, args ...any) *FieldError {
	return validation.Invalid(field, format, args...)
}

// ValidateID checks a provider, message or change id (a UUID).
func ValidateID(field, id string) error { return validation.ValidateID(field, id) }

func validateText(field, s string, max int) error {
	if !utf8.ValidString(s) {
		return invalid(field, "must be valid UTF-8")
	}
	if utf8.RuneCountInString(s) > max {
		return invalid(field, "must be at most %d characters", max)
	}
	if strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return invalid(field, "must not contain control characters")
	}
	return nil
}

// validateCalendarID checks a Google calendar id ("primary" or an address-like id); empty means default.
func validateCalendarID(field, s string) error {
	if err := validateText(field, s, MaxCalendarID); err != nil {
		return err
	}
	if strings.ContainsAny(s, "/?#") || strings.ContainsFunc(s, func(r rune) bool { return r == ' ' }) {
		return invalid(field, "must be a Google calendar id such as primary or team@group.calendar.google.com")
	}
	return nil
}

func validateDirection(field string, d SyncDirection) error {
	if _, ok := SyncDirection_name[int32(d)]; !ok {
		return invalid(field, "unknown sync direction %d", int32(d))
	}
	return nil
}

// validateCursor bounds a cursor only: cursors are opaque, and the service's feed decodes them (a bad
// one is InvalidArgument naming after_cursor there).
func validateCursor(field, c string) error {
	if len(c) > MaxCursor {
		return invalid(field, "is not a cursor returned by this API")
	}
	return nil
}

func validateOptionalID(field, id string) error {
	if id == "" {
		return nil
	}
	return ValidateID(field, id)
}

func (r *CreateCalendarProviderRequest) Validate() error {
	if err := validateText("display_name", r.GetDisplayName(), MaxDisplayName); err != nil {
		return err
	}
	if err := validateCalendarID("calendar_id", strings.TrimSpace(r.GetCalendarId())); err != nil {
		return err
	}
	return validateDirection("sync_direction", r.GetSyncDirection())
}

func (r *GetCalendarProviderRequest) Validate() error { return ValidateID("id", r.GetId()) }

func (r *ListCalendarProvidersRequest) Validate() error { return nil }

func (r *UpdateCalendarProviderRequest) Validate() error {
	if err := ValidateID("id", r.GetId()); err != nil {
		return err
	}
	if r.DisplayName != nil {
		if err := validateText("display_name", r.GetDisplayName(), MaxDisplayName); err != nil {
			return err
		}
	}
	if r.CalendarId != nil {
		if err := validateCalendarID("calendar_id", strings.TrimSpace(r.GetCalendarId())); err != nil {
			return err
		}
	}
	return validateDirection("sync_direction", r.GetSyncDirection())
}

func (r *DeleteCalendarProviderRequest) Validate() error { return ValidateID("id", r.GetId()) }

func (r *ConnectCalendarProviderRequest) Validate() error { return ValidateID("id", r.GetId()) }

func (r *DisconnectCalendarProviderRequest) Validate() error { return ValidateID("id", r.GetId()) }

func (r *GetCalendarProviderDiagnosticsRequest) Validate() error { return ValidateID("id", r.GetId()) }

// Limits of GetCalendarProviderActivity.
const (
	MaxActivityDays  = 31
	MaxRecentChanges = 50
)

func (r *GetCalendarProviderActivityRequest) Validate() error {
	if err := ValidateID("id", r.GetId()); err != nil {
		return err
	}
	if d := r.GetDays(); d < 0 || d > MaxActivityDays {
		return invalid("days", "must be between 0 and %d (0 means 7)", MaxActivityDays)
	}
	if n := r.GetChangeCount(); n < 0 || n > MaxRecentChanges {
		return invalid("change_count", "must be between 0 and %d (0 means 10)", MaxRecentChanges)
	}
	return nil
}

func (r *ActivateCalendarProviderRequest) Validate() error {
	if err := ValidateID("id", r.GetId()); err != nil {
		return err
	}
	if e := r.GetAccountEmail(); e != "" {
		if err := validateText("account_email", e, MaxAccountEmail); err != nil {
			return err
		}
		if !strings.Contains(e, "@") {
			return invalid("account_email", "is not an email address")
		}
	}
	return nil
}

func (r *ResetCalendarProvidersRequest) Validate() error { return nil }

// Validate bounds the forwarded headers only: their content is checked by the service, which answers
// with the HTTP status Google should see (400 for a malformed notification).
func (r *HandleCalendarNotificationRequest) Validate() error {
	for _, f := range []struct{ name, v string }{
		{"channel_id", r.GetChannelId()}, {"channel_token", r.GetChannelToken()},
		{"resource_id", r.GetResourceId()}, {"resource_state", r.GetResourceState()},
		{"resource_uri", r.GetResourceUri()}, {"message_number", r.GetMessageNumber()},
		{"channel_expiration", r.GetChannelExpiration()},
	} {
		if len(f.v) > MaxHeaderValue {
			return invalid(f.name, "is longer than %d bytes", MaxHeaderValue)
		}
	}
	return nil
}

func (r *RenewCalendarChannelRequest) Validate() error {
	return ValidateID("provider_id", r.GetProviderId())
}

func (r *VerifyCalendarChannelRequest) Validate() error {
	return ValidateID("provider_id", r.GetProviderId())
}

func (r *ListCalendarChangesRequest) Validate() error {
	if err := validateOptionalID("provider_id", r.GetProviderId()); err != nil {
		return err
	}
	if err := validateCursor("after_cursor", r.GetAfterCursor()); err != nil {
		return err
	}
	if r.GetPageSize() < 0 || r.GetPageSize() > MaxPageSize {
		return invalid("page_size", "must be between 0 and %d", MaxPageSize)
	}
	return nil
}

func (r *StreamCalendarChangesRequest) Validate() error {
	if err := validateOptionalID("provider_id", r.GetProviderId()); err != nil {
		return err
	}
	return validateCursor("after_cursor", r.GetAfterCursor())
}

func (r *AcknowledgeCalendarChangesRequest) Validate() error {
	ids := r.GetChangeIds()
	if len(ids) == 0 {
		return invalid("change_ids", "is required")
	}
	if len(ids) > MaxAcknowledge {
		return invalid("change_ids", "at most %d ids per call", MaxAcknowledge)
	}
	for i, id := range ids {
		if err := ValidateID(fmt.Sprintf("change_ids[%d]", i), id); err != nil {
			return err
		}
	}
	return nil
}
