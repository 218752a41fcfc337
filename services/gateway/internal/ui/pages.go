package ui

import (
	"net/http"
	"net/url"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	oauthv1 "github.com/algapsa/alga-google/gen/alga/oauth/v1"
)

type signInData struct {
	Dev, Expired, SignedOut bool
	Error, Next             string
}

func (s *Server) signInPage(w http.ResponseWriter, r *http.Request) {
	if sess, _ := s.readSession(r); sess != nil && r.URL.Query().Get("expired") == "" {
		http.Redirect(w, r, safeNext(r.URL.Query().Get("next")), http.StatusSeeOther)
		return
	}
	s.renderSignIn(w, r, "")
}

func (s *Server) renderSignIn(w http.ResponseWriter, r *http.Request, msg string) {
	q := r.URL.Query()
	next := q.Get("next")
	if r.Method == http.MethodPost {
		next = r.PostFormValue("next")
	}
	s.render(w, "signin", &view{Title: "Sign in", Data: signInData{
		Dev: s.opt.Dev && s.opt.UserSigner != nil, Expired: q.Get("expired") != "", SignedOut: q.Get("signed_out") != "",
		Error: msg, Next: safeNext(next),
	}})
}

// callFailed turns a failed page read into what the user sees; it answers true when it has already
// answered the request (a session the services no longer accept goes back to the sign-in page).
func (s *Server) callFailed(w http.ResponseWriter, r *http.Request, v *view, what string, err error) bool {
	st := status.Convert(err)
	switch st.Code() {
	case codes.Unauthenticated:
		http.SetCookie(w, s.sessionCookie("", -1))
		http.Redirect(w, r, SignInPath+"?"+url.Values{"expired": {"1"}, "next": {r.URL.RequestURI()}}.Encode(), http.StatusSeeOther)
		return true
	case codes.PermissionDenied:
		v.Notices = append(v.Notices, notice{Kind: "warn", Title: "Not allowed.", Text: st.Message()})
	case codes.Unavailable, codes.DeadlineExceeded:
		v.Notices = append(v.Notices, notice{Kind: "error", Title: what + " is not available right now.", Text: "Try again in a moment."})
	default:
		s.opt.Logger.WarnContext(r.Context(), "ui: page read failed", "what", what, "code", st.Code().String())
		v.Notices = append(v.Notices, notice{Kind: "error", Title: what + " could not be read.", Text: st.Message()})
	}
	return false
}

// doneNotices are the confirmations of an action the page's script finished (?done=…).
var doneNotices = map[string]string{
	"saved":        "The Google setup was saved.",
	"created":      "The provider was created. Connect it to Google next.",
	"updated":      "The provider was updated.",
	"deleted":      "The provider was deleted; its watch or channel was stopped at Google.",
	"refreshed":    "Provisioning was verified and the watch renewed.",
	"disconnected": "The calendar was disconnected; its channel was stopped and its tokens cleared.",
}

func doneNotice(r *http.Request) []notice {
	if msg, ok := doneNotices[r.URL.Query().Get("done")]; ok {
		return []notice{{Kind: "ok", Text: msg}}
	}
	return nil
}

// oauthResults are the messages of every status the OAuth callbacks redirect with (?google_oauth=…).
var oauthResults = map[string]notice{
	"connected":            {Kind: "ok", Title: "Connected.", Text: "The Google account is connected."},
	"denied":               {Kind: "warn", Title: "Consent cancelled.", Text: "Nothing was connected because the consent on Google's page was cancelled. Choose Connect again and select Allow."},
	"wrong_account":        {Kind: "error", Title: "Wrong Google account.", Text: "You signed in to Google with another account than this mailbox's. Nothing was stored: connect again and choose the mailbox's own Google account."},
	"config_missing":       {Kind: "error", Title: "Google is not configured.", Text: "This tenant's Google OAuth client is missing: save it on the Google setup page, then connect again.", Link: GooglePath, LinkText: "Open the Google setup"},
	"config_changed":       {Kind: "warn", Title: "The Google setup changed.", Text: "The tenant's OAuth client was changed while you were on Google's page. Connect again."},
	"state_invalid":        {Kind: "error", Title: "Expired or already used.", Text: "This Google sign-in link expired (links last 10 minutes) or was already used. Start Connect again."},
	"browser_mismatch":     {Kind: "error", Title: "Different browser.", Text: "The connection was started in another browser, or its cookie was blocked. Start Connect again in this browser."},
	"google_error":         {Kind: "error", Title: "Google reported an error.", Text: "Google ended the sign-in with an error. Try again; if it persists, run Test configuration on the Google setup page."},
	"exchange_failed":      {Kind: "error", Title: "Code exchange failed.", Text: "Google refused to exchange the authorization code: check that the client secret is current and that both redirect URIs are registered on the OAuth client."},
	"client_invalid":       {Kind: "error", Title: "OAuth client rejected.", Text: "Google does not accept the tenant's OAuth client (deleted, or a wrong secret). Update the client ID and secret on the Google setup page.", Link: GooglePath, LinkText: "Open the Google setup"},
	"google_unavailable":   {Kind: "warn", Title: "Google unavailable.", Text: "Google could not be reached. Try again in a few minutes."},
	"no_refresh_token":     {Kind: "error", Title: "No refresh token.", Text: "Google returned no refresh token. Remove the app's access in the Google account (myaccount.google.com → Security → Third-party access) and connect again."},
	"provider_not_found":   {Kind: "error", Title: "Provider gone.", Text: "The provider was deleted while you were on Google's page."},
	"provider_unavailable": {Kind: "warn", Title: "Connected, activation pending.", Text: "The account was connected but the provider service could not be reached to activate it. Use Refresh in a moment."},
	"activation_failed":    {Kind: "error", Title: "Activation failed.", Text: "The Google account was connected, but activating the provider failed: see its status and diagnostics below."},
	"error":                {Kind: "error", Title: "Sign-in not completed.", Text: "The service that completes Google sign-ins was unavailable. Try again."},
}

// oauthNotice is the message of a ?google_oauth= status.
func oauthNotice(r *http.Request) []notice {
	code := r.URL.Query().Get("google_oauth")
	if code == "" {
		return nil
	}
	n, ok := oauthResults[code]
	if !ok {
		n = notice{Kind: "error", Title: "Unknown result.", Text: "The Google sign-in ended with an unknown result (" + code + ")."}
	}
	return []notice{n}
}

func (s *Server) googleConfig(r *http.Request, sess *session) (*oauthv1.GoogleConfig, error) {
	conn := s.conn(PeerOAuth)
	if conn == nil {
		return nil, status.Error(codes.Unavailable, "the oauth service is not served here")
	}
	ctx, cancel := callCtx(r.Context())
	defer cancel()
	resp, err := oauthv1.NewGoogleSetupServiceClient(conn).GetGoogleConfig(sess.outgoing(ctx), &oauthv1.GetGoogleConfigRequest{})
	if err != nil {
		return nil, err
	}
	return resp.GetConfig(), nil
}

// consoleStep is one step of the Google Cloud guidance.
type consoleStep struct {
	Title string
	Text  string
	Links []consoleLink
}

type consoleLink struct{ Text, URL string }

type googleData struct {
	Config  *oauthv1.GoogleConfig
	CanEdit bool
	Steps   []consoleStep
	State   string
	Scopes  []scopeRow
}

type scopeRow struct{ Integration, Scope string }

func consoleURL(path, project string) string {
	u := "https://console.cloud.google.com/" + path
	if project != "" {
		u += "?project=" + url.QueryEscape(project)
	}
	return u
}

func guidance(project string) []consoleStep {
	return []consoleStep{
		{Title: "Create or choose a Google Cloud project",
			Text:  "Use a project your organization owns. Its project ID (not its name or number) goes into the form below.",
			Links: []consoleLink{{"Create a project", "https://console.cloud.google.com/projectcreate"}, {"Choose an existing project", "https://console.cloud.google.com/cloud-resource-manager"}}},
		{Title: "Enable the Gmail, Google Calendar and Pub/Sub APIs",
			Text: "All three are needed: Gmail and Calendar for the mailboxes and calendars, Pub/Sub for Gmail's push notifications.",
			Links: []consoleLink{{"Gmail API", consoleURL("apis/library/gmail.googleapis.com", project)},
				{"Google Calendar API", consoleURL("apis/library/calendar-json.googleapis.com", project)},
				{"Cloud Pub/Sub API", consoleURL("apis/library/pubsub.googleapis.com", project)}}},
		{Title: "Configure the OAuth consent screen",
			Text: "Choose Internal for a Google Workspace domain (only your users can connect), or External and then publish the app (In production). " +
				"Warning: while an External app is in Testing, Google expires every refresh token 7 days after consent and every mailbox and calendar disconnects.",
			Links: []consoleLink{{"OAuth consent screen", consoleURL("apis/credentials/consent", project)}}},
		{Title: "Create a Web application OAuth client",
			Text:  "Application type: Web application. Add both redirect URIs shown below under Authorized redirect URIs, then copy the client ID and client secret into the form.",
			Links: []consoleLink{{"Create an OAuth client ID", consoleURL("apis/credentials/oauthclient", project)}, {"Credentials", consoleURL("apis/credentials", project)}}},
		{Title: "Create a service account for Pub/Sub",
			Text: "Grant it Pub/Sub Admin (roles/pubsub.admin) on the project — or at least the permissions to create and read topics and subscriptions and to set a topic's IAM policy — " +
				"then create a JSON key and upload it below.",
			Links: []consoleLink{{"Service accounts", consoleURL("iam-admin/serviceaccounts", project)}, {"IAM", consoleURL("iam-admin/iam", project)}}},
		{Title: "Gmail push publisher grant — done for you",
			Text:  "Gmail publishes notifications as gmail-api-push@system.gserviceaccount.com. When a mailbox connects, the product creates the topic and grants that account Pub/Sub Publisher on it with your service account; nothing to do here.",
			Links: []consoleLink{{"Pub/Sub topics", consoleURL("cloudpubsub/topic/list", project)}}},
	}
}

func stateName(c *oauthv1.GoogleConfig) string {
	switch c.GetState() {
	case oauthv1.GoogleConfigState_GOOGLE_CONFIG_STATE_CONFIGURED:
		return "configured"
	case oauthv1.GoogleConfigState_GOOGLE_CONFIG_STATE_PARTIAL:
		return "partial"
	}
	return "missing"
}

func (s *Server) googlePage(w http.ResponseWriter, r *http.Request, sess *session) {
	q := r.URL.Query()
	// A Gmail connection's result comes back here (the Gmail callback's redirect): show it beside the mailbox.
	if q.Get("google_oauth") != "" && q.Get("provider") != "" {
		http.Redirect(w, r, EmailPath+"?"+q.Encode(), http.StatusSeeOther)
		return
	}
	v := &view{Title: "Google", Nav: "google", Session: sess}
	v.Notices = append(oauthNotice(r), doneNotice(r)...)
	cfg, err := s.googleConfig(r, sess)
	if err != nil && s.callFailed(w, r, v, "The Google setup", err) {
		return
	}
	d := googleData{Config: cfg, CanEdit: sess.canEdit(), Steps: guidance(cfg.GetProjectId()), State: stateName(cfg)}
	for _, sc := range cfg.GetGmailScopes() {
		d.Scopes = append(d.Scopes, scopeRow{"Gmail", sc})
	}
	for _, sc := range cfg.GetCalendarScopes() {
		d.Scopes = append(d.Scopes, scopeRow{"Calendar", sc})
	}
	v.Data = d
	s.render(w, "google", v)
}
