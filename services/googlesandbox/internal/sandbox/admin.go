package sandbox

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	gcal "google.golang.org/api/calendar/v3"

	"github.com/algapsa/alga-google/services/googlesandbox/internal/api"
)

// Handler serves Google's paths and the admin API.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	// OAuth 2.0 / OIDC
	for _, p := range []string{"/o/oauth2/v2/auth", "/o/oauth2/auth"} {
		mux.HandleFunc("GET "+p, s.handleAuthorize)
		mux.HandleFunc("POST "+p, s.handleAuthorize)
	}
	mux.HandleFunc("POST /token", s.handleToken)
	mux.HandleFunc("POST /o/oauth2/token", s.handleToken)
	mux.HandleFunc("POST /revoke", s.handleRevoke)
	mux.HandleFunc("GET /revoke", s.handleRevoke)
	mux.HandleFunc("GET /oauth2/v2/userinfo", s.handleUserinfo("v2"))
	mux.HandleFunc("GET /oauth2/v1/userinfo", s.handleUserinfo("v2"))
	mux.HandleFunc("GET /oauth2/v3/userinfo", s.handleUserinfo("v3"))
	mux.HandleFunc("GET /oauth2/v3/tokeninfo", s.handleTokeninfo)
	mux.HandleFunc("POST /oauth2/v3/tokeninfo", s.handleTokeninfo)
	mux.HandleFunc("GET /oauth2/v3/certs", s.handleCerts)
	mux.HandleFunc("GET /.well-known/openid-configuration", s.handleDiscovery)
	// Gmail
	mux.HandleFunc("GET /gmail/v1/users/{userId}/profile", s.gmailProfile)
	mux.HandleFunc("GET /gmail/v1/users/{userId}/labels", s.gmailLabels)
	mux.HandleFunc("POST /gmail/v1/users/{userId}/watch", s.gmailWatch)
	mux.HandleFunc("POST /gmail/v1/users/{userId}/stop", s.gmailStop)
	mux.HandleFunc("GET /gmail/v1/users/{userId}/history", s.gmailHistory)
	mux.HandleFunc("GET /gmail/v1/users/{userId}/messages", s.gmailMessages)
	mux.HandleFunc("GET /gmail/v1/users/{userId}/messages/{id}", s.gmailMessage)
	mux.HandleFunc("GET /gmail/v1/users/{userId}/messages/{id}/attachments/{attachmentId}", s.gmailAttachment)
	// Calendar
	mux.HandleFunc("GET /calendar/v3/users/me/calendarList", s.calendarList)
	mux.HandleFunc("GET /calendar/v3/calendars/{calendarId}/events", s.eventsList)
	mux.HandleFunc("POST /calendar/v3/calendars/{calendarId}/events/watch", s.eventsWatch)
	mux.HandleFunc("POST /calendar/v3/channels/stop", s.channelsStop)
	// Admin
	a := "/sandbox/admin"
	mux.HandleFunc("POST "+a+"/projects", s.adminCreateProject)
	mux.HandleFunc("POST "+a+"/projects/{project}/publishingStatus", s.adminSetPublishing)
	mux.HandleFunc("POST "+a+"/projects/{project}/clients", s.adminCreateClient)
	mux.HandleFunc("DELETE "+a+"/clients/{clientId}", s.adminDeleteClient)
	mux.HandleFunc("POST "+a+"/projects/{project}/serviceAccounts", s.adminCreateSA)
	mux.HandleFunc("POST "+a+"/users", s.adminCreateUser)
	mux.HandleFunc("GET "+a+"/users/{email}", s.adminGetUser)
	mux.HandleFunc("POST "+a+"/users/{email}/messages", s.adminDeliver)
	mux.HandleFunc("POST "+a+"/users/{email}/labels", s.adminCreateLabel)
	mux.HandleFunc("GET "+a+"/users/{email}/watches", s.adminWatches)
	mux.HandleFunc("POST "+a+"/users/{email}/expireHistory", s.adminExpireHistory)
	mux.HandleFunc("POST "+a+"/users/{email}/calendars", s.adminCreateCalendar)
	mux.HandleFunc("DELETE "+a+"/users/{email}/calendars/{calendarId}", s.adminDeleteCalendar)
	mux.HandleFunc("POST "+a+"/users/{email}/calendars/{calendarId}/events", s.adminCreateEvent)
	mux.HandleFunc("PUT "+a+"/users/{email}/calendars/{calendarId}/events/{eventId}", s.adminUpdateEvent)
	mux.HandleFunc("DELETE "+a+"/users/{email}/calendars/{calendarId}/events/{eventId}", s.adminDeleteEvent)
	mux.HandleFunc("POST "+a+"/users/{email}/calendars/{calendarId}/invalidateSyncTokens", s.adminInvalidateSync)
	mux.HandleFunc("POST "+a+"/grants", s.adminSeedGrants)
	mux.HandleFunc("POST "+a+"/grants/revoke", s.adminRevokeGrant)
	mux.HandleFunc("GET "+a+"/clock", s.adminClock)
	mux.HandleFunc("POST "+a+"/clock/advance", s.adminAdvance)
	mux.HandleFunc("GET "+a+"/faults", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, s.listFaults()) })
	mux.HandleFunc("POST "+a+"/faults", s.adminAddFault)
	mux.HandleFunc("DELETE "+a+"/faults", func(w http.ResponseWriter, r *http.Request) { s.clearFaults(); w.WriteHeader(204) })
	mux.HandleFunc("GET "+a+"/counters", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, s.snapshotCounters()) })
	mux.HandleFunc("DELETE "+a+"/counters", func(w http.ResponseWriter, r *http.Request) { s.resetCounters(); w.WriteHeader(204) })
	mux.HandleFunc("GET "+a+"/channels", s.adminChannels)
	mux.HandleFunc("GET "+a+"/deliveries", s.adminDeliveries)
	mux.HandleFunc("DELETE "+a+"/deliveries", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.deliveries = nil
		s.mu.Unlock()
		w.WriteHeader(204)
	})
	mux.HandleFunc("GET "+a+"/pubsub/policy", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, s.topicPolicy(r.URL.Query().Get("resource")))
	})
	mux.HandleFunc("GET "+a+"/pubsub/subscription", func(w http.ResponseWriter, r *http.Request) {
		sub, err := s.subscriptionInfo(r.URL.Query().Get("name"))
		if err != nil {
			adminError(w, 404, "%v", err)
			return
		}
		writeJSON(w, 200, sub)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		apiError(w, 404, "notFound", "Not Found: "+r.Method+" "+r.URL.Path)
	})
	return s.recoverer(mux)
}

func (s *Server) recoverer(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("sandbox handler panic", "path", r.URL.Path, "panic", fmt.Sprint(v))
				apiError(w, 500, "backendError", "Backend Error")
			}
		}()
		r.Body = http.MaxBytesReader(w, r.Body, 64<<20)
		s.log.Debug("sandbox request", "method", r.Method, "path", r.URL.Path)
		h.ServeHTTP(w, r)
	})
}

func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		adminError(w, 400, "reading body: %v", err)
		return false
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return true
	}
	if err := json.Unmarshal(b, v); err != nil {
		adminError(w, 400, "invalid JSON: %v", err)
		return false
	}
	return true
}

var projectIDRE = regexp.MustCompile(`^[a-z][a-z0-9-]{4,28}[a-z0-9]$`)
var saNameRE = regexp.MustCompile(`^[a-z][a-z0-9-]{4,28}[a-z0-9]$`)

func validRedirects(uris []string) error {
	for _, u := range uris {
		if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
			return fmt.Errorf("redirect URI %q must be http(s)", u)
		}
	}
	return nil
}

func (s *Server) adminCreateProject(w http.ResponseWriter, r *http.Request) {
	var req api.CreateProjectRequest
	if !readJSON(w, r, &req) {
		return
	}
	if !projectIDRE.MatchString(req.ProjectID) {
		adminError(w, 400, "projectId %q: 6-30 characters, lowercase letters, digits and hyphens, starting with a letter", req.ProjectID)
		return
	}
	st := req.PublishingStatus
	if st == "" {
		st = api.PublishingTesting
	}
	if st != api.PublishingTesting && st != api.PublishingProduction {
		adminError(w, 400, "publishingStatus must be testing or production")
		return
	}
	if err := validRedirects(req.RedirectURIs); err != nil {
		adminError(w, 400, "%v", err)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.projects[req.ProjectID] != nil {
		adminError(w, 409, "project %q already exists", req.ProjectID)
		return
	}
	p := &project{id: req.ProjectID, number: randDigits(12), status: st}
	s.projects[p.id] = p
	c := s.newClient(p, req.RedirectURIs)
	writeJSON(w, 200, api.Project{ProjectID: p.id, ProjectNumber: p.number, PublishingStatus: st, ClientID: c.id,
		ClientSecret: c.secret, RedirectURIs: slices.Clone(c.redirectURIs)})
}

func (s *Server) adminSetPublishing(w http.ResponseWriter, r *http.Request) {
	var req api.SetPublishingStatusRequest
	if !readJSON(w, r, &req) {
		return
	}
	if req.PublishingStatus != api.PublishingTesting && req.PublishingStatus != api.PublishingProduction {
		adminError(w, 400, "publishingStatus must be testing or production")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.projects[r.PathValue("project")]
	if p == nil {
		adminError(w, 404, "no such project")
		return
	}
	p.status = req.PublishingStatus
	w.WriteHeader(204)
}

func (s *Server) adminCreateClient(w http.ResponseWriter, r *http.Request) {
	var req api.CreateOAuthClientRequest
	if !readJSON(w, r, &req) {
		return
	}
	if err := validRedirects(req.RedirectURIs); err != nil {
		adminError(w, 400, "%v", err)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.projects[r.PathValue("project")]
	if p == nil {
		adminError(w, 404, "no such project")
		return
	}
	c := s.newClient(p, req.RedirectURIs)
	writeJSON(w, 200, api.OAuthClient{ProjectID: p.id, ClientID: c.id, ClientSecret: c.secret, RedirectURIs: slices.Clone(c.redirectURIs)})
}

func (s *Server) adminDeleteClient(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.clients[r.PathValue("clientId")]
	if c == nil || c.deleted {
		adminError(w, 404, "no such client")
		return
	}
	c.deleted = true
	w.WriteHeader(204)
}

func (s *Server) adminCreateSA(w http.ResponseWriter, r *http.Request) {
	var req api.CreateServiceAccountRequest
	if !readJSON(w, r, &req) {
		return
	}
	if !saNameRE.MatchString(req.Name) {
		adminError(w, 400, "name %q: 6-30 characters, lowercase letters, digits and hyphens", req.Name)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.projects[r.PathValue("project")]
	if p == nil {
		adminError(w, 404, "no such project")
		return
	}
	sa, err := s.createServiceAccount(p, req.Name)
	if err != nil {
		adminError(w, 409, "%v", err)
		return
	}
	writeJSON(w, 200, api.ServiceAccount{Email: sa.email, ClientID: sa.clientID, KeyID: sa.keyID, Key: sa.keyJSON})
}

var emailRE = regexp.MustCompile(`^[^@\s]+@[^@\s]+\.[^@\s]+$`)

func (s *Server) adminCreateUser(w http.ResponseWriter, r *http.Request) {
	var req api.CreateTestUserRequest
	if !readJSON(w, r, &req) {
		return
	}
	email := strings.ToLower(strings.TrimSpace(req.Email))
	if !emailRE.MatchString(email) {
		adminError(w, 400, "invalid email %q", req.Email)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.users[email] != nil {
		adminError(w, 409, "user %q already exists", email)
		return
	}
	u := s.newUser(email, req.Name, req.Projects, req.SecondCalendar)
	writeJSON(w, 200, s.userView(u))
}

// newUser creates an account (email already normalized and free): a mailbox and a primary calendar, a
// secondary one when asked. Caller holds s.mu.
func (s *Server) newUser(email, name string, projects []string, secondCalendar bool) *user {
	if name == "" {
		local, _, _ := strings.Cut(email, "@")
		name = strings.ToUpper(local[:1]) + local[1:] + " Tester"
	}
	u := &user{email: email, name: name, id: randDigits(21), projects: slices.Clone(projects)}
	u.mb = newMailbox(uint64(1000 + len(s.users)*100))
	u.calendars = []*calendar{newCalendar(u, email, email, true)}
	if secondCalendar {
		u.calendars = append(u.calendars, newCalendar(u, randString(lowerAlnum, 26)+"@group.calendar.google.com", "Team", false))
	}
	s.users[email] = u
	return u
}

// adminSeedGrants stores, for each account, what an approved offline consent with prompt=consent and its
// code exchange leave behind (consentTokens: the grant, a refresh token, an access token) and answers the
// token responses, without the consent page and the token request: how tests and benchmarks arrange
// thousands of connected accounts. Missing accounts are created as test users of the client's project.
// Nothing is counted — no Google endpoint was called. The request is checked whole before anything is
// stored.
func (s *Server) adminSeedGrants(w http.ResponseWriter, r *http.Request) {
	var req api.SeedGrantsRequest
	if !readJSON(w, r, &req) {
		return
	}
	if len(req.Accounts) == 0 || len(req.Accounts) > api.MaxSeedGrants {
		adminError(w, 400, "accounts: 1 to %d email addresses", api.MaxSeedGrants)
		return
	}
	if len(req.Scopes) == 0 {
		adminError(w, 400, "scopes: at least one scope is required")
		return
	}
	for _, sc := range req.Scopes {
		if !validScope(sc) {
			adminError(w, 400, "invalid scope %q", sc)
			return
		}
	}
	emails := make([]string, len(req.Accounts))
	seen := map[string]bool{}
	for i, a := range req.Accounts {
		email := strings.ToLower(strings.TrimSpace(a))
		if !emailRE.MatchString(email) {
			adminError(w, 400, "invalid email %q", a)
			return
		}
		if seen[email] {
			adminError(w, 400, "account %q is listed twice", email)
			return
		}
		seen[email] = true
		emails[i] = email
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.clients[req.ClientID]
	if c == nil || c.deleted {
		adminError(w, 404, "no such client")
		return
	}
	p := s.projects[c.projectID]
	for _, email := range emails {
		// As on the consent page: an app in testing admits its test users only.
		if u := s.users[email]; u != nil && p != nil && p.status != "production" && len(u.projects) > 0 && !slices.Contains(u.projects, p.id) {
			adminError(w, 403, "account %s is not a test user of project %s (publishing status %s)", email, p.id, p.status)
			return
		}
	}
	out := api.SeedGrantsResponse{Grants: make([]api.SeededGrant, 0, len(emails))}
	for _, email := range emails {
		u := s.users[email]
		if u == nil {
			u = s.newUser(email, "", []string{c.projectID}, false)
		}
		t := s.consentTokens(u, c, slices.Clone(req.Scopes), true, true)
		out.Grants = append(out.Grants, api.SeededGrant{Email: email, AccessToken: t.AccessToken, RefreshToken: t.RefreshToken,
			ExpiresIn: t.ExpiresIn, Scope: t.Scope, TokenType: t.TokenType})
	}
	writeJSON(w, 200, out)
}

func (s *Server) userView(u *user) api.User {
	out := api.User{Email: u.email, Name: u.name, ID: u.id, Projects: slices.Clone(u.projects)}
	for _, c := range u.calendars {
		if !c.deleted {
			out.Calendars = append(out.Calendars, api.Calendar{ID: c.id, Summary: c.summary, Primary: c.primary})
		}
	}
	return out
}

func (s *Server) adminGetUser(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.users[strings.ToLower(r.PathValue("email"))]
	if u == nil {
		adminError(w, 404, "no such user")
		return
	}
	writeJSON(w, 200, s.userView(u))
}

func (s *Server) adminDeliver(w http.ResponseWriter, r *http.Request) {
	var req api.Email
	if !readJSON(w, r, &req) {
		return
	}
	out, err := s.deliver(r.PathValue("email"), req)
	if err != nil {
		adminError(w, 400, "%v", err)
		return
	}
	writeJSON(w, 200, out)
}

func (s *Server) adminCreateLabel(w http.ResponseWriter, r *http.Request) {
	var req api.CreateLabelRequest
	if !readJSON(w, r, &req) {
		return
	}
	if strings.TrimSpace(req.Name) == "" {
		adminError(w, 400, "name is required")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.users[strings.ToLower(r.PathValue("email"))]
	if u == nil {
		adminError(w, 404, "no such user")
		return
	}
	writeJSON(w, 200, *u.mb.createLabel(strings.TrimSpace(req.Name)))
}

func (s *Server) adminWatches(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.users[strings.ToLower(r.PathValue("email"))]
	if u == nil {
		adminError(w, 404, "no such user")
		return
	}
	out := []api.GmailWatch{}
	if wt := u.mb.watch; wt != nil {
		out = append(out, api.GmailWatch{EmailAddress: u.email, TopicName: wt.topic, LabelIDs: slices.Clone(wt.labelIDs),
			LabelFilterBehavior: wt.behavior, HistoryID: wt.historyID, Expiration: wt.expiration, ClientID: wt.clientID,
			Active: s.now().Before(wt.expiration), Calls: u.mb.watchCalls, Stops: u.mb.stopCalls})
	} else if u.mb.watchCalls > 0 || u.mb.stopCalls > 0 {
		out = append(out, api.GmailWatch{EmailAddress: u.email, Calls: u.mb.watchCalls, Stops: u.mb.stopCalls})
	}
	writeJSON(w, 200, out)
}

func (s *Server) adminExpireHistory(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.users[strings.ToLower(r.PathValue("email"))]
	if u == nil {
		adminError(w, 404, "no such user")
		return
	}
	u.mb.history = nil
	u.mb.historyFloor = u.mb.historyID
	w.WriteHeader(204)
}

func (s *Server) adminCreateCalendar(w http.ResponseWriter, r *http.Request) {
	var req api.CreateCalendarRequest
	if !readJSON(w, r, &req) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.users[strings.ToLower(r.PathValue("email"))]
	if u == nil {
		adminError(w, 404, "no such user")
		return
	}
	if req.Summary == "" {
		req.Summary = "Calendar"
	}
	c := newCalendar(u, randString(lowerAlnum, 26)+"@group.calendar.google.com", req.Summary, false)
	u.calendars = append(u.calendars, c)
	writeJSON(w, 200, api.Calendar{ID: c.id, Summary: c.summary})
}

func (s *Server) adminDeleteCalendar(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.calendarOf(r.PathValue("email"), r.PathValue("calendarId"))
	if err != nil {
		adminError(w, 404, "%v", err)
		return
	}
	if c.primary {
		adminError(w, 400, "the primary calendar cannot be deleted")
		return
	}
	s.notifyChannels(c, "not_exists")
	c.deleted = true
	for _, ch := range s.channels {
		if ch.cal == c {
			ch.stopped = true
		}
	}
	w.WriteHeader(204)
}

func (s *Server) adminCreateEvent(w http.ResponseWriter, r *http.Request) {
	var ev gcal.Event
	if !readJSON(w, r, &ev) {
		return
	}
	out, err := s.createEvent(r.PathValue("email"), r.PathValue("calendarId"), &ev)
	if err != nil {
		adminError(w, 400, "%v", err)
		return
	}
	writeJSON(w, 200, out)
}

func (s *Server) adminUpdateEvent(w http.ResponseWriter, r *http.Request) {
	var ev gcal.Event
	if !readJSON(w, r, &ev) {
		return
	}
	ev.Id = r.PathValue("eventId")
	out, err := s.updateEvent(r.PathValue("email"), r.PathValue("calendarId"), &ev)
	if err != nil {
		adminError(w, 404, "%v", err)
		return
	}
	writeJSON(w, 200, out)
}

func (s *Server) adminDeleteEvent(w http.ResponseWriter, r *http.Request) {
	if err := s.deleteEvent(r.PathValue("email"), r.PathValue("calendarId"), r.PathValue("eventId")); err != nil {
		adminError(w, 404, "%v", err)
		return
	}
	w.WriteHeader(204)
}

func (s *Server) adminInvalidateSync(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.calendarOf(r.PathValue("email"), r.PathValue("calendarId"))
	if err != nil {
		adminError(w, 404, "%v", err)
		return
	}
	c.generation++
	w.WriteHeader(204)
}

func (s *Server) adminRevokeGrant(w http.ResponseWriter, r *http.Request) {
	var req api.RevokeGrantRequest
	if !readJSON(w, r, &req) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.revokeGrant(strings.ToLower(req.Email), req.ClientID) {
		adminError(w, 404, "no grant from %s to %s", req.Email, req.ClientID)
		return
	}
	w.WriteHeader(204)
}

func (s *Server) clockView() api.Clock {
	return api.Clock{Now: s.now(), Offset: s.clockOffset.String()}
}

func (s *Server) adminClock(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	writeJSON(w, 200, s.clockView())
}

func (s *Server) adminAdvance(w http.ResponseWriter, r *http.Request) {
	var req api.AdvanceClockRequest
	if !readJSON(w, r, &req) {
		return
	}
	d, err := time.ParseDuration(req.Duration)
	if err != nil || d < 0 {
		adminError(w, 400, "duration must be a non-negative Go duration (e.g. \"168h\")")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clockOffset += d
	writeJSON(w, 200, s.clockView())
}

func (s *Server) adminAddFault(w http.ResponseWriter, r *http.Request) {
	var f api.Fault
	if !readJSON(w, r, &f) {
		return
	}
	if f.Endpoint == "" {
		adminError(w, 400, "endpoint is required")
		return
	}
	if f.Rate429 < 0 || f.Rate429 > 1 || f.Rate5xx < 0 || f.Rate5xx > 1 || f.Times < 0 || f.Latency < 0 {
		adminError(w, 400, "rates must be in [0,1]; times and latency non-negative")
		return
	}
	if f.Status5xx != 0 && (f.Status5xx < 500 || f.Status5xx > 599) {
		adminError(w, 400, "status5xx must be 5xx")
		return
	}
	s.addFault(f)
	w.WriteHeader(204)
}

func (s *Server) adminChannels(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []api.Channel{}
	for _, id := range sortedKeys(s.channels) {
		ch := s.channels[id]
		out = append(out, api.Channel{ID: ch.id, ResourceID: ch.resourceID, ResourceURI: ch.resourceURI, Token: ch.token,
			Address: ch.address, Expiration: ch.expiration, ClientID: ch.clientID, Owner: ch.cal.owner.email,
			CalendarID: ch.cal.id, Stopped: ch.stopped, Expired: !s.now().Before(ch.expiration), MessageNumber: ch.msgNum})
	}
	writeJSON(w, 200, out)
}

func (s *Server) adminDeliveries(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := slices.Clone(s.deliveries)
	if out == nil {
		out = []api.Delivery{}
	}
	writeJSON(w, 200, out)
}
