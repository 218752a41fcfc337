package sandbox

// Authorization endpoint: /o/oauth2/v2/auth and /o/oauth2/auth. GET renders the consent page, POST takes its
// form (the form posts back to the same URL, so the query still carries the request).
//
// An invalid request (parseAuthRequest) gets an HTML error page, as with Google, never a redirect: in
// particular the browser is never sent to an unregistered redirect_uri, which would be an open redirect. A
// denial or an injected error goes back to the client as ?error=. A testing-status project lets only its test users
// sign in (accountsFor). prompt=none issues a code without a page only when the login_hint account already has
// a grant for the client, else consent_required.

import (
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

type authRequest struct {
	client                          *oauthClient
	project                         *project
	redirectURI, state, loginHint   string
	scopes                          []string
	challenge, method, nonce        string
	offline, forceConsent, noPrompt bool
}

type authPageError struct {
	status int
	code   string
	msg    string
}

// parseAuthRequest validates the query of an authorization request. Caller holds s.mu.
func (s *Server) parseAuthRequest(q url.Values) (*authRequest, *authPageError) {
	cid := strings.TrimSpace(q.Get("client_id"))
	if cid == "" {
		return nil, &authPageError{400, "invalid_request", "Missing required parameter: client_id"}
	}
	c := s.clients[cid]
	if c == nil {
		return nil, &authPageError{401, "invalid_client", "The OAuth client was not found."}
	}
	if c.deleted {
		return nil, &authPageError{401, "deleted_client", "The OAuth client was deleted."}
	}
	ru := q.Get("redirect_uri")
	if ru == "" {
		return nil, &authPageError{400, "invalid_request", "Missing required parameter: redirect_uri"}
	}
	if !slices.Contains(c.redirectURIs, ru) {
		return nil, &authPageError{400, "redirect_uri_mismatch", "You can't sign in to this app because it doesn't comply with Google's OAuth 2.0 policy. redirect_uri=" + ru + " is not registered for this client."}
	}
	if rt := q.Get("response_type"); rt != "code" {
		return nil, &authPageError{400, "unsupported_response_type", "Invalid response_type: " + rt}
	}
	scopes := strings.Fields(q.Get("scope"))
	if len(scopes) == 0 {
		return nil, &authPageError{400, "invalid_request", "Missing required parameter: scope"}
	}
	for _, sc := range scopes {
		if !validScope(sc) {
			return nil, &authPageError{400, "invalid_scope", "Some requested scopes were invalid. {invalid=[" + sc + "]}"}
		}
	}
	ar := &authRequest{client: c, project: s.projects[c.projectID], redirectURI: ru, state: q.Get("state"),
		loginHint: q.Get("login_hint"), scopes: scopes, nonce: q.Get("nonce")}
	switch at := q.Get("access_type"); at {
	case "", "online":
	case "offline":
		ar.offline = true
	default:
		return nil, &authPageError{400, "invalid_request", "Invalid access_type: " + at}
	}
	for _, p := range strings.Fields(q.Get("prompt")) {
		switch p {
		case "consent":
			ar.forceConsent = true
		case "select_account":
		case "none":
			ar.noPrompt = true
		default:
			return nil, &authPageError{400, "invalid_request", "Invalid prompt: " + p}
		}
	}
	ar.challenge = q.Get("code_challenge")
	ar.method = q.Get("code_challenge_method")
	if ar.challenge != "" {
		if ar.method == "" {
			ar.method = "plain"
		}
		if ar.method != "S256" && ar.method != "plain" {
			return nil, &authPageError{400, "invalid_request", "Invalid code_challenge_method: " + ar.method}
		}
		if len(ar.challenge) < 43 || len(ar.challenge) > 128 {
			return nil, &authPageError{400, "invalid_request", "Invalid code_challenge."}
		}
	} else if ar.method != "" {
		return nil, &authPageError{400, "invalid_request", "code_challenge_method without code_challenge"}
	}
	return ar, nil
}

// accountsFor lists the accounts that may sign in to a project's app. Caller holds s.mu.
func (s *Server) accountsFor(p *project) []*user {
	var out []*user
	for _, email := range sortedKeys(s.users) {
		u := s.users[email]
		if p == nil || p.status == "production" || len(u.projects) == 0 || slices.Contains(u.projects, p.id) {
			out = append(out, u)
		}
	}
	return out
}

var consentPage = template.Must(template.New("consent").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in - Google Accounts (sandbox)</title>
<style>body{font-family:sans-serif;max-width:36rem;margin:3rem auto;color:#202124}
.box{border:1px solid #dadce0;border-radius:8px;padding:1.5rem}li{margin:.3rem 0}
button{padding:.5rem 1.2rem;margin-right:.5rem}code{font-size:.85em}</style></head>
<body><div class="box">
<h1>Google sandbox</h1>
<p><strong>{{.ProjectID}}</strong> wants to access your Google Account.</p>
<p>Client: <code>{{.ClientID}}</code>{{if .Testing}} (publishing status: testing){{end}}</p>
<form method="post" action="{{.Action}}">
<fieldset><legend>Choose an account</legend>
{{range .Accounts}}<label><input type="radio" name="account" value="{{.Email}}"{{if .Selected}} checked{{end}}> {{.Name}} &lt;{{.Email}}&gt;</label><br>
{{else}}<p>No test users can sign in to this app yet (create one with the admin API).</p>{{end}}
</fieldset>
<p>This will allow the app to:</p><ul>{{range .Scopes}}<li><code>{{.}}</code></li>{{end}}</ul>
<button type="submit" name="decision" value="approve" id="approve">Allow</button>
<button type="submit" name="decision" value="deny" id="deny">Cancel</button>
</form></div></body></html>
`))

var errorPage = template.Must(template.New("err").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Error {{.Status}} ({{.Code}})</title></head>
<body><h1>Access blocked: authorization error</h1><p id="error">Error {{.Status}}: {{.Code}}</p><p>{{.Msg}}</p></body></html>
`))

func writeAuthPageError(w http.ResponseWriter, e *authPageError) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("X-Sandbox-Error", e.code)
	w.WriteHeader(e.status)
	_ = errorPage.Execute(w, map[string]any{"Status": e.status, "Code": e.code, "Msg": e.msg})
}

func redirectWith(w http.ResponseWriter, r *http.Request, base string, params url.Values) {
	u, err := url.Parse(base)
	if err != nil {
		http.Error(w, "bad redirect_uri", http.StatusBadRequest)
		return
	}
	q := u.Query()
	for k, vs := range params {
		for _, v := range vs {
			if v != "" {
				q.Add(k, v)
			}
		}
	}
	u.RawQuery = q.Encode()
	http.Redirect(w, r, u.String(), http.StatusFound)
}

// handleAuthorize serves GET (consent page) and POST (the consent form, fields "account" and "decision")
// on /o/oauth2/v2/auth. The form posts back to the same URL, so the query carries the request.
func (s *Server) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	s.mu.Lock()
	s.count("oauth.authorize", q.Get("client_id"))
	d := s.decide(q.Get("client_id"), "oauth.authorize")
	ar, perr := s.parseAuthRequest(q)
	s.mu.Unlock()
	sleep(r.Context(), d.Latency)
	if perr != nil {
		writeAuthPageError(w, perr)
		return
	}
	if d.Status != 0 {
		http.Error(w, http.StatusText(d.Status), d.Status)
		return
	}
	if d.ForceError != "" {
		redirectWith(w, r, ar.redirectURI, url.Values{"error": {d.ForceError}, "state": {ar.state}})
		return
	}
	if r.Method == http.MethodGet {
		if ar.noPrompt {
			s.authorizeSilently(w, r, ar)
			return
		}
		s.renderConsent(w, r, ar)
		return
	}
	if err := r.ParseForm(); err != nil {
		writeAuthPageError(w, &authPageError{400, "invalid_request", "Malformed form."})
		return
	}
	switch r.PostForm.Get("decision") {
	case "deny":
		redirectWith(w, r, ar.redirectURI, url.Values{"error": {"access_denied"}, "state": {ar.state}})
		return
	case "approve":
	default:
		writeAuthPageError(w, &authPageError{400, "invalid_request", `The form field "decision" must be "approve" or "deny".`})
		return
	}
	account := strings.ToLower(strings.TrimSpace(r.PostForm.Get("account")))
	if account == "" {
		account = strings.ToLower(strings.TrimSpace(ar.loginHint))
	}
	s.mu.Lock()
	u := s.users[account]
	allowed := u != nil && slices.Contains(s.accountsFor(ar.project), u)
	if !allowed {
		s.mu.Unlock()
		if u != nil {
			writeAuthPageError(w, &authPageError{403, "access_denied", ar.project.id + " has not completed the Google verification process. The app is currently being tested, and can only be accessed by developer-approved testers."})
			return
		}
		writeAuthPageError(w, &authPageError{400, "invalid_request", "Unknown account: " + account})
		return
	}
	code := s.issueCode(ar, u)
	s.mu.Unlock()
	redirectWith(w, r, ar.redirectURI, url.Values{"state": {ar.state}, "code": {code}, "scope": {strings.Join(ar.scopes, " ")},
		"authuser": {"0"}, "prompt": {"consent"}, "iss": {Issuer}})
}

func (s *Server) authorizeSilently(w http.ResponseWriter, r *http.Request, ar *authRequest) {
	s.mu.Lock()
	var u *user
	if ar.loginHint != "" {
		u = s.users[strings.ToLower(ar.loginHint)]
	}
	if u == nil || s.grants[grantKey{u.email, ar.client.id}] == nil {
		s.mu.Unlock()
		redirectWith(w, r, ar.redirectURI, url.Values{"error": {"consent_required"}, "state": {ar.state}})
		return
	}
	code := s.issueCode(ar, u)
	s.mu.Unlock()
	redirectWith(w, r, ar.redirectURI, url.Values{"state": {ar.state}, "code": {code}, "scope": {strings.Join(ar.scopes, " ")}, "iss": {Issuer}})
}

func (s *Server) issueCode(ar *authRequest, u *user) string {
	code := "4/0A" + randString(lowerAlnum+"ABCDEFGHIJKLMNOPQRSTUVWXYZ_-", 70)
	s.codes[code] = &authCode{code: code, clientID: ar.client.id, redirectURI: ar.redirectURI, email: u.email,
		challenge: ar.challenge, method: ar.method, nonce: ar.nonce, scopes: ar.scopes, offline: ar.offline,
		forceConsent: ar.forceConsent, expires: s.now().Add(AuthCodeTTL)}
	return code
}

func (s *Server) renderConsent(w http.ResponseWriter, r *http.Request, ar *authRequest) {
	type acct struct {
		Email, Name string
		Selected    bool
	}
	s.mu.Lock()
	var accts []acct
	users := s.accountsFor(ar.project)
	for i, u := range users {
		sel := strings.EqualFold(u.email, ar.loginHint) || (ar.loginHint == "" && i == 0)
		accts = append(accts, acct{u.email, u.name, sel})
	}
	testing := ar.project != nil && ar.project.status == "testing"
	pid := ""
	if ar.project != nil {
		pid = ar.project.id
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = consentPage.Execute(w, map[string]any{"ProjectID": pid, "ClientID": ar.client.id, "Testing": testing,
		"Action": r.URL.RequestURI(), "Accounts": accts, "Scopes": ar.scopes})
}
