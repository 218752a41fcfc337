package gateway

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	calendarv1 "github.com/algapsa/alga-google/gen/alga/calendar/v1"
	gmailv1 "github.com/algapsa/alga-google/gen/alga/gmail/v1"
	oauthv1 "github.com/algapsa/alga-google/gen/alga/oauth/v1"
	"github.com/algapsa/alga-google/services/platform/auth"
	"github.com/algapsa/alga-google/services/platform/text"
	"github.com/algapsa/alga-google/services/platform/urls"
)

// Metadata keys a service sets (grpc.SetHeader) to make the gateway answer with a cookie or a redirect.
const (
	// HeaderOAuthBinding carries the browser-binding value of a started OAuth flow.
	HeaderOAuthBinding = "x-alga-oauth-binding"
	// bindingCookiePath covers both OAuth callbacks and nothing else.
	bindingCookiePath = "/api/auth/google"
)

// bindingCookies are the HttpOnly cookies a callback must present again, one per flow kind, so a Gmail
// and a Calendar flow started in one browser do not overwrite each other's binding.
var bindingCookies = map[oauthv1.ProviderKind]string{
	oauthv1.ProviderKind_PROVIDER_KIND_GMAIL:    "alga_google_oauth_gmail",
	oauthv1.ProviderKind_PROVIDER_KIND_CALENDAR: "alga_google_oauth_calendar",
}

// flowKinds are the RPCs that start a flow, and the kind of flow each starts.
var flowKinds = map[string]oauthv1.ProviderKind{
	gmailv1.GmailProviderService_ConnectGmailProvider_FullMethodName:          oauthv1.ProviderKind_PROVIDER_KIND_GMAIL,
	calendarv1.CalendarProviderService_ConnectCalendarProvider_FullMethodName: oauthv1.ProviderKind_PROVIDER_KIND_CALENDAR,
}

// forwardResponse turns service metadata into HTTP side effects: the OAuth browser-binding cookie of
// the kind of flow the RPC started.
func (g *gateway) forwardResponse(ctx context.Context, w http.ResponseWriter, _ proto.Message) error {
	md, ok := runtime.ServerMetadataFromContext(ctx)
	if !ok {
		return nil
	}
	if v := md.HeaderMD.Get(HeaderOAuthBinding); len(v) > 0 && v[0] != "" {
		method, _ := runtime.RPCMethod(ctx)
		kind, ok := flowKinds[method]
		if !ok {
			g.deps.Logger.WarnContext(ctx, "an OAuth binding from an RPC that starts no known flow", "method", method)
			return nil
		}
		http.SetCookie(w, g.bindingCookie(kind, v[0], 600))
	}
	return nil
}

func (g *gateway) bindingCookie(kind oauthv1.ProviderKind, value string, maxAge int) *http.Cookie {
	return &http.Cookie{
		Name:     bindingCookies[kind],
		Value:    value,
		Path:     bindingCookiePath,
		MaxAge:   maxAge,
		HttpOnly: true,
		// Lax, not Strict: the callback is a top-level navigation coming back from Google.
		SameSite: http.SameSiteLaxMode,
		Secure:   strings.HasPrefix(g.deps.Base.String(), "https://"),
	}
}

func (g *gateway) mountRaw(mux *runtime.ServeMux) error {
	routes := []struct {
		method, path string
		h            runtime.HandlerFunc
	}{
		{http.MethodGet, urls.GmailCallbackPath, g.callback(oauthv1.ProviderKind_PROVIDER_KIND_GMAIL)},
		{http.MethodGet, urls.CalendarCallbackPath, g.callback(oauthv1.ProviderKind_PROVIDER_KIND_CALENDAR)},
		{http.MethodPost, urls.GmailWebhookPath, g.gmailWebhook},
		{http.MethodPost, urls.CalendarWebhookPath, g.calendarWebhook},
	}
	for _, r := range routes {
		if err := mux.HandlePath(r.method, r.path, r.h); err != nil {
			return err
		}
	}
	return nil
}

// callback completes an OAuth flow and redirects the browser to the UI with a status code only.
func (g *gateway) callback(kind oauthv1.ProviderKind) runtime.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request, _ map[string]string) {
		q := r.URL.Query()
		req := &oauthv1.CompleteAuthorizationRequest{
			CallbackKind: kind,
			State:        q.Get("state"),
			Code:         q.Get("code"),
			Error:        q.Get("error"),
		}
		if c, err := r.Cookie(bindingCookies[kind]); err == nil {
			req.BrowserBinding = c.Value
		}
		conn, err := g.deps.Peer("oauth")
		if err != nil {
			http.Error(w, "service unavailable", http.StatusServiceUnavailable)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 60*time.Second)
		defer cancel()
		resp, err := oauthv1.NewOAuthFlowServiceClient(conn).CompleteAuthorization(ctx, req)
		// The binding is single-use whatever the outcome (the other kind's flow keeps its own).
		http.SetCookie(w, g.bindingCookie(kind, "", -1))
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Referrer-Policy", "no-referrer")
		if err != nil {
			g.deps.Logger.ErrorContext(ctx, "oauth callback failed", "code", status.Code(err).String())
			http.Redirect(w, r, g.uiURL("error"), http.StatusFound)
			return
		}
		http.Redirect(w, r, resp.GetRedirectUrl(), http.StatusFound)
	}
}

// uiURL is the settings page with a status code, used when the oauth service could not be reached.
func (g *gateway) uiURL(statusCode string) string {
	base := g.deps.Config.UIBaseURL
	if base == "" {
		base = g.deps.Base.String()
	}
	return strings.TrimRight(base, "/") + urls.GoogleSettingsPath + "?google_oauth=" + statusCode
}

// gmailWebhook forwards a Pub/Sub push (its Authorization header and body, verbatim) to the gmail service,
// which verifies the OIDC token, stores the notification and enqueues the sync before we answer.
func (g *gateway) gmailWebhook(w http.ResponseWriter, r *http.Request, _ map[string]string) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 256<<10))
	if err != nil {
		writeWebhookStatus(w, http.StatusBadRequest, "body: cannot be read", nil)
		return
	}
	conn, err := g.deps.Peer("gmail")
	if err != nil {
		writeWebhookStatus(w, 0, "", err)
		return
	}
	resp, err := gmailv1.NewGmailProviderServiceClient(conn).HandleGmailPush(r.Context(), &gmailv1.HandleGmailPushRequest{
		Authorization: r.Header.Get("Authorization"),
		Body:          body,
	})
	writeWebhookStatus(w, resp.GetHttpStatus(), resp.GetReason(), err)
}

// calendarWebhook forwards a Calendar push-channel notification (headers only) to the calendar service.
func (g *gateway) calendarWebhook(w http.ResponseWriter, r *http.Request, _ map[string]string) {
	_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 64<<10))
	conn, err := g.deps.Peer("calendar")
	if err != nil {
		writeWebhookStatus(w, 0, "", err)
		return
	}
	h := r.Header
	resp, err := calendarv1.NewCalendarProviderServiceClient(conn).HandleCalendarNotification(r.Context(), &calendarv1.HandleCalendarNotificationRequest{
		ChannelId:         h.Get("X-Goog-Channel-ID"),
		ChannelToken:      h.Get("X-Goog-Channel-Token"),
		ResourceId:        h.Get("X-Goog-Resource-ID"),
		ResourceState:     h.Get("X-Goog-Resource-State"),
		ResourceUri:       h.Get("X-Goog-Resource-URI"),
		MessageNumber:     h.Get("X-Goog-Message-Number"),
		ChannelExpiration: h.Get("X-Goog-Channel-Expiration"),
	})
	writeWebhookStatus(w, resp.GetHttpStatus(), resp.GetReason(), err)
}

// webhookRetryAfter is the Retry-After of a webhook answered 503: the database or the service is
// coming back (the suite's readiness ping looks every 2 s).
const webhookRetryAfter = "5"

// webhookReasonLimit caps the reason of a refusal: a service's reason may quote a little of the
// request (a resource state, a key id), and an answer must not echo attacker input at length.
const webhookReasonLimit = 200

// webhookUnavailable is the message of a 503: what failed inside stays in the services' logs.
const webhookUnavailable = "the notification could not be stored; retry later"

// writeWebhookStatus answers a webhook. A push that could not be stored — the service unreachable or
// Unavailable (its database down), or any other failure — is 503 with Retry-After, so Pub/Sub and
// Calendar redeliver it: never a 2xx without storing, never a 500; a refused request keeps the status
// the service chose. A 2xx has no body (Pub/Sub and Google ignore it); a 4xx has the API's usual JSON
// error body (code, message, details) whose message is the service's reason — the header or body part
// at fault, never a token — and a 503 a generic one.
func writeWebhookStatus(w http.ResponseWriter, code int32, reason string, err error) {
	if err != nil {
		reason = status.Convert(err).Message()
		switch status.Code(err) {
		case codes.InvalidArgument:
			code = http.StatusBadRequest
		case codes.Unauthenticated:
			code = http.StatusUnauthorized
		case codes.PermissionDenied:
			code = http.StatusForbidden
		default:
			code = http.StatusServiceUnavailable
		}
	}
	if code < 200 || code >= 500 {
		code = http.StatusServiceUnavailable
	}
	if code < 400 {
		w.WriteHeader(int(code))
		return
	}
	grpcCode := webhookErrorCode(int(code))
	if code == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", webhookRetryAfter)
		reason = webhookUnavailable
	}
	reason, cut := text.CleanCut(reason, webhookReasonLimit)
	if cut {
		reason += "…"
	}
	if reason == "" {
		// A service that chose a 4xx without saying why (an older replica during a rollout).
		reason = "webhook refused: " + strings.ToLower(http.StatusText(int(code)))
	}
	body, merr := webhookErrorJSON.Marshal(status.New(grpcCode, reason).Proto())
	if merr != nil {
		w.WriteHeader(int(code))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(int(code))
	_, _ = w.Write(body)
}

// webhookErrorJSON marshals a webhook's error body as the grpc-gateway mux does every other error.
var webhookErrorJSON = protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}

// webhookErrorCode is the gRPC code a webhook's error body carries for its HTTP status (the inverse
// of grpc-gateway's mapping for the statuses the services choose).
func webhookErrorCode(httpStatus int) codes.Code {
	switch httpStatus {
	case http.StatusUnauthorized:
		return codes.Unauthenticated
	case http.StatusForbidden:
		return codes.PermissionDenied
	case http.StatusServiceUnavailable:
		return codes.Unavailable
	default:
		return codes.InvalidArgument
	}
}

func (g *gateway) checkPeer(ctx context.Context, name string) error {
	conn, err := g.deps.PeerRaw(name)
	if err != nil {
		return err
	}
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: name})
	if err != nil {
		return err
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return status.Error(codes.Unavailable, resp.GetStatus().String())
	}
	return nil
}

// devToken mints a user token for click-through development (only mounted with --dev).
func (g *gateway) devToken(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	tenant, user := q.Get("tenant"), q.Get("user")
	if tenant == "" {
		tenant = "tenant-dev"
	}
	if user == "" {
		user = "admin@dev"
	}
	perms := []string{auth.PermSystemSettingsUpdate}
	if q.Has("permissions") {
		perms = strings.FieldsFunc(q.Get("permissions"), func(r rune) bool { return r == ',' || r == ' ' })
	}
	tok, err := g.deps.UserSigner.MintUser(auth.UserToken{Subject: user, Tenant: tenant, Permissions: perms, TTL: 12 * time.Hour})
	if err != nil {
		http.Error(w, "cannot mint token", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(map[string]any{"token": tok, "tenant": tenant, "user": user, "permissions": perms})
}

// errorHandler is grpc-gateway's default error handler; kept as a named hook so every error response
// has the same JSON shape (code, message, details with ErrorInfo naming the field).
func errorHandler(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
	runtime.DefaultHTTPErrorHandler(ctx, mux, m, w, r, err)
}

// routingErrorHandler answers 405 (not grpc-gateway's 501) for a known path with the wrong method.
func routingErrorHandler(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, httpStatus int) {
	if httpStatus == http.StatusNotImplemented || httpStatus == http.StatusMethodNotAllowed {
		err := status.Error(codes.Unimplemented, "method not allowed")
		w.Header().Set("Allow", "")
		runtime.DefaultHTTPErrorHandler(ctx, mux, m, &statusOverride{ResponseWriter: w, code: http.StatusMethodNotAllowed}, r, err)
		return
	}
	runtime.DefaultRoutingErrorHandler(ctx, mux, m, w, r, httpStatus)
}

type statusOverride struct {
	http.ResponseWriter
	code int
}

func (s *statusOverride) WriteHeader(int) { s.ResponseWriter.WriteHeader(s.code) }
