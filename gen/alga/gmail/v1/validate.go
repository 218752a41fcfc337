// Hand-written validation for the gmail API, run by the server's validation interceptor (unary and
// stream calls) before any handler sees a request. Not generated: `make generate` only replaces *.pb.go
// files.
//
// Errors are *FieldError values carrying their own gRPC status: InvalidArgument with an ErrorInfo
// (reason INVALID_FIELD, domain "alga-google", metadata field=<path>) and a BadRequest field violation —
// validation.FieldError, the suite's one field-error type, which the platform's errs.InvalidField returns too.

package gmailv1

import (
	"fmt"
	"net/mail"
	"strings"
	"unicode/utf8"

	"github.com/algapsa/alga-google/gen/validation"
)

// Limits of the gmail API.
const (
	MaxDisplayName    = 200
	MaxLabelFilters   = 20
	MaxLabelName      = 225
	MaxDefaultID      = 200
	MaxPageSize       = 500
	MaxCursor         = 200
	MaxAcknowledge    = 500
	MaxPushBody       = 256 << 10
	MaxMailboxAddress = 254
)

// FieldError is bad input in one request field (shared by every API: see gen/validation).
type FieldError = validation.FieldError

func invalid(field, format string, args ...any) *FieldError {
	return validation.Invalid(field, format, args...)
}

// ValidateID checks a provider, message or change id (a UUID).
func ValidateID(field, id string) error { return validation.ValidateID(field, id) }

// IsUUID reports whether s is a canonical UUID.
func IsUUID(s string) bool { return validation.IsUUID(s) }

// NormalizeMailbox trims and lowercases a mailbox address.
func NormalizeMailbox(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// ValidateMailbox checks a bare email address (no display name).
func ValidateMailbox(field, s string) error {
	s = strings.TrimSpace(s)
	if s == "" {
		return invalid(field, "is required")
	}
	if len(s) > MaxMailboxAddress || !utf8.ValidString(s) {
		return invalid(field, "is not a valid email address")
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Name != "" || a.Address != s || !strings.Contains(s[strings.LastIndexByte(s, '@')+1:], ".") {
		return invalid(field, "is not a valid email address (expected e.g. support@example.com)")
	}
	return nil
}

func validateText(field, s string, max int) error {
	if !utf8.ValidString(s) {
		return invalid(field, "must be valid UTF-8")
	}
	if utf8.RuneCountInString(s) > max {
		return invalid(field, "must be at most %d characters", max)
	}
	if strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 && r != '\t' }) {
		return invalid(field, "must not contain control characters")
	}
	return nil
}

// ValidateLabelFilters checks Gmail label names.
func ValidateLabelFilters(field string, labels []string) error {
	if len(labels) > MaxLabelFilters {
		return invalid(field, "at most %d labels", MaxLabelFilters)
	}
	seen := map[string]bool{}
	for i, l := range labels {
		f := fmt.Sprintf("%s[%d]", field, i)
		if strings.TrimSpace(l) == "" {
			return invalid(f, "must not be empty")
		}
		if err := validateText(f, l, MaxLabelName); err != nil {
			return err
		}
		k := strings.ToLower(strings.TrimSpace(l))
		if seen[k] {
			return invalid(f, "duplicate label %q", l)
		}
		seen[k] = true
	}
	return nil
}

func (d *InboundDefaults) validate(field string) error {
	if d == nil {
		return nil
	}
	for name, v := range map[string]string{"board_id": d.BoardId, "status_id": d.StatusId, "priority_id": d.PriorityId,
		"client_id": d.ClientId, "category_id": d.CategoryId} {
		if err := validateText(field+"."+name, v, MaxDefaultID); err != nil {
			return err
		}
	}
	return nil
}

func (r *CreateGmailProviderRequest) Validate() error {
	if err := ValidateMailbox("mailbox", r.GetMailbox()); err != nil {
		return err
	}
	if err := validateText("display_name", r.GetDisplayName(), MaxDisplayName); err != nil {
		return err
	}
	if err := ValidateLabelFilters("label_filters", r.GetLabelFilters()); err != nil {
		return err
	}
	return r.GetInboundDefaults().validate("inbound_defaults")
}

func (r *GetGmailProviderRequest) Validate() error { return ValidateID("id", r.GetId()) }

func (r *ListGmailProvidersRequest) Validate() error { return nil }

func (r *UpdateGmailProviderRequest) Validate() error {
	if err := ValidateID("id", r.GetId()); err != nil {
		return err
	}
	if r.DisplayName != nil {
		if err := validateText("display_name", r.GetDisplayName(), MaxDisplayName); err != nil {
			return err
		}
	}
	if !r.GetHasLabelFilters() && len(r.GetLabelFilters()) > 0 {
		return invalid("has_label_filters", "must be true to replace label_filters")
	}
	if err := ValidateLabelFilters("label_filters", r.GetLabelFilters()); err != nil {
		return err
	}
	return r.GetInboundDefaults().validate("inbound_defaults")
}

func (r *DeleteGmailProviderRequest) Validate() error { return ValidateID("id", r.GetId()) }

func (r *ConnectGmailProviderRequest) Validate() error { return ValidateID("id", r.GetId()) }

func (r *GetGmailProviderDiagnosticsRequest) Validate() error { return ValidateID("id", r.GetId()) }

func (r *RefreshGmailProviderRequest) Validate() error { return ValidateID("id", r.GetId()) }

// Limits of GetGmailProviderActivity.
const (
	MaxActivityDays   = 31
	MaxRecentMessages = 50
)

func (r *GetGmailProviderActivityRequest) Validate() error {
	if err := ValidateID("id", r.GetId()); err != nil {
		return err
	}
	if d := r.GetDays(); d < 0 || d > MaxActivityDays {
		return invalid("days", "must be between 0 and %d (0 means 7)", MaxActivityDays)
	}
	if n := r.GetMessageCount(); n < 0 || n > MaxRecentMessages {
		return invalid("message_count", "must be between 0 and %d (0 means 10)", MaxRecentMessages)
	}
	return nil
}

func (r *ActivateGmailProviderRequest) Validate() error {
	if err := ValidateID("id", r.GetId()); err != nil {
		return err
	}
	return ValidateMailbox("account_email", r.GetAccountEmail())
}

func (r *ResetGmailProvidersRequest) Validate() error { return nil }

// Validate of a push only bounds its size: a missing or bad token is answered 401 and a malformed
// envelope 400 by the handler itself (HTTP statuses Pub/Sub understands).
func (r *HandleGmailPushRequest) Validate() error {
	if len(r.GetBody()) > MaxPushBody {
		return invalid("body", "must be at most %d bytes", MaxPushBody)
	}
	if len(r.GetAuthorization()) > 32<<10 {
		return invalid("authorization", "too long")
	}
	return nil
}

func validateCursor(field, c string) error {
	if len(c) > MaxCursor {
		return invalid(field, "is not a cursor returned by this API")
	}
	return nil
}

func (r *ListInboundMessagesRequest) Validate() error {
	if r.GetProviderId() != "" {
		if err := ValidateID("provider_id", r.GetProviderId()); err != nil {
			return err
		}
	}
	if r.GetPageSize() < 0 || r.GetPageSize() > MaxPageSize {
		return invalid("page_size", "must be between 0 and %d", MaxPageSize)
	}
	return validateCursor("after_cursor", r.GetAfterCursor())
}

func (r *StreamInboundMessagesRequest) Validate() error {
	if r.GetProviderId() != "" {
		if err := ValidateID("provider_id", r.GetProviderId()); err != nil {
			return err
		}
	}
	return validateCursor("after_cursor", r.GetAfterCursor())
}

func (r *AcknowledgeInboundMessagesRequest) Validate() error {
	if len(r.GetMessageIds()) == 0 {
		return invalid("message_ids", "is required")
	}
	if len(r.GetMessageIds()) > MaxAcknowledge {
		return invalid("message_ids", "at most %d ids per call", MaxAcknowledge)
	}
	for i, id := range r.GetMessageIds() {
		if err := ValidateID(fmt.Sprintf("message_ids[%d]", i), id); err != nil {
			return err
		}
	}
	return nil
}
