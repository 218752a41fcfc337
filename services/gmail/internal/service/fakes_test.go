package service

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/iam/apiv1/iampb"
	"cloud.google.com/go/pubsub/v2/pstest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	oauthv1 "github.com/algapsa/alga-google/gen/alga/oauth/v1"
	secretsv1 "github.com/algapsa/alga-google/gen/alga/secrets/v1"
	"github.com/algapsa/alga-google/services/platform/auth"
	"github.com/algapsa/alga-google/services/platform/errs"
	"github.com/algapsa/alga-google/services/platform/logging"
)

// ---- Pub/Sub: pstest plus an IAM policy server ----

type fakeIAM struct {
	iampb.UnimplementedIAMPolicyServer
	mu       sync.Mutex
	policies map[string]*iampb.Policy
	version  int
	deny     bool
	// conflicts makes the next N SetIamPolicy calls fail with ABORTED (etag races).
	conflicts int
	// calls counts every IAM request.
	calls int
}

// revoke removes member's role binding from resource's policy (drift made behind our back).
func (f *fakeIAM) revoke(resource, role, member string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.policies[resource]
	if !ok {
		return
	}
	for _, b := range p.Bindings {
		if b.Role == role {
			b.Members = slices.DeleteFunc(b.Members, func(m string) bool { return m == member })
		}
	}
	f.version++
	p.Etag = []byte(strconv.Itoa(f.version))
}

// forget drops resource's policy, as Google does when the resource is deleted.
func (f *fakeIAM) forget(resource string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.policies, resource)
}

func (f *fakeIAM) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

func (f *fakeIAM) GetIamPolicy(_ context.Context, r *iampb.GetIamPolicyRequest) (*iampb.Policy, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	p, ok := f.policies[r.GetResource()]
	if !ok {
		return &iampb.Policy{Etag: []byte("0")}, nil
	}
	return &iampb.Policy{Etag: p.Etag, Bindings: clone(p.Bindings)}, nil
}

func clone(b []*iampb.Binding) []*iampb.Binding {
	var out []*iampb.Binding
	for _, x := range b {
		out = append(out, &iampb.Binding{Role: x.Role, Members: slices.Clone(x.Members)})
	}
	return out
}

func (f *fakeIAM) SetIamPolicy(_ context.Context, r *iampb.SetIamPolicyRequest) (*iampb.Policy, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.deny {
		return nil, status.Error(codes.PermissionDenied, "User not authorized to perform this action.")
	}
	if f.conflicts > 0 {
		f.conflicts--
		f.version++
		if p, ok := f.policies[r.GetResource()]; ok {
			p.Etag = []byte(strconv.Itoa(f.version))
		} else {
			f.policies[r.GetResource()] = &iampb.Policy{Etag: []byte(strconv.Itoa(f.version))}
		}
		return nil, status.Error(codes.Aborted, "etag mismatch")
	}
	cur := []byte("0")
	if p, ok := f.policies[r.GetResource()]; ok {
		cur = p.Etag
	}
	if string(r.GetPolicy().GetEtag()) != string(cur) {
		return nil, status.Error(codes.Aborted, "etag mismatch")
	}
	f.version++
	p := &iampb.Policy{Etag: []byte(strconv.Itoa(f.version)), Bindings: clone(r.GetPolicy().GetBindings())}
	f.policies[r.GetResource()] = p
	return p, nil
}

func (f *fakeIAM) TestIamPermissions(context.Context, *iampb.TestIamPermissionsRequest) (*iampb.TestIamPermissionsResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	return &iampb.TestIamPermissionsResponse{}, nil
}

// pubsubCalls counts the Pub/Sub admin requests pstest answers (a reactor that handles nothing).
type pubsubCalls struct {
	mu sync.Mutex
	n  map[string]int
}

type countReactor struct {
	c    *pubsubCalls
	name string
}

func (r countReactor) React(any) (bool, any, error) {
	r.c.mu.Lock()
	defer r.c.mu.Unlock()
	r.c.n[r.name]++
	return false, nil, nil
}

func (c *pubsubCalls) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.n {
		n += v
	}
	return n
}

func startPubSub(t *testing.T) (*pstest.Server, *fakeIAM, *pubsubCalls) {
	iam := &fakeIAM{policies: map[string]*iampb.Policy{}}
	calls := &pubsubCalls{n: map[string]int{}}
	var opts []pstest.ServerReactorOption
	for _, name := range []string{"CreateTopic", "GetTopic", "UpdateTopic", "DeleteTopic", "CreateSubscription", "GetSubscription",
		"UpdateSubscription", "DeleteSubscription"} {
		opts = append(opts, pstest.ServerReactorOption{FuncName: name, Reactor: countReactor{c: calls, name: name}})
	}
	srv := pstest.NewServerWithCallback(0, func(s *grpc.Server) { iampb.RegisterIAMPolicyServer(s, iam) }, opts...)
	t.Cleanup(func() { _ = srv.Close() })
	return srv, iam, calls
}

// ---- Gmail ----

type fakeMsg struct {
	id, thread string
	labels     []string
	raw        []byte
	// bodySize, when set, makes raw a text/plain mail with a body of that many bytes, generated per
	// request (a large backlog without holding it in the test process).
	bodySize   int
	internalMs int64
	historyID  uint64
}

// rawBytes is the message as Gmail's format=raw has it.
func (m *fakeMsg) rawBytes() []byte {
	if m.bodySize == 0 {
		return m.raw
	}
	head := "From: Sender <sender@example.com>\r\nSubject: large " + m.id + "\r\nMessage-ID: <" + m.id +
		"@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
	line := []byte(strings.Repeat("large mail body ", 4) + "\r\n")
	raw := make([]byte, 0, len(head)+m.bodySize+len(line))
	raw = append(raw, head...)
	for len(raw) < len(head)+m.bodySize {
		raw = append(raw, line...)
	}
	return raw
}

type fakeMailbox struct {
	email        string
	historyID    uint64
	staleBefore  uint64
	msgs         []*fakeMsg
	watches      int
	watchLabels  []string
	stops        int
	historyCalls int
	getCalls     map[string]int
}

type fakeGmail struct {
	mu        sync.Mutex
	boxes     map[string]*fakeMailbox
	srv       *httptest.Server
	seq       int
	failNext  int // answer the next N history calls with 503
	failWatch int // answer the next N watch calls with 503
	pageSize  int
	listPage  int
	labelList []map[string]string
	// reject holds access tokens answered 401: revoked (or invalidated) before they expired.
	reject map[string]bool
	// watchExpiration is what users.watch answers (zero: 7 days ahead).
	watchExpiration time.Time
	// requests counts every request, tokens seen every access token presented.
	requests int
	tokens   map[string]int
}

func startGmail(t *testing.T) *fakeGmail {
	g := &fakeGmail{boxes: map[string]*fakeMailbox{}, reject: map[string]bool{}, tokens: map[string]int{}, pageSize: 2, listPage: 3, labelList: []map[string]string{
		{"id": "INBOX", "name": "INBOX", "type": "system"}, {"id": "SENT", "name": "SENT", "type": "system"},
		{"id": "DRAFT", "name": "DRAFT", "type": "system"}, {"id": "Label_7", "name": "Tickets", "type": "user"},
	}}
	g.srv = httptest.NewServer(http.HandlerFunc(g.serve))
	t.Cleanup(g.srv.Close)
	return g
}

func (g *fakeGmail) boxLocked(email string) *fakeMailbox {
	b, ok := g.boxes[email]
	if !ok {
		b = &fakeMailbox{email: email, historyID: 1000, getCalls: map[string]int{}}
		g.boxes[email] = b
	}
	return b
}

// deliver adds a message to a mailbox and returns its id.
func (g *fakeGmail) deliver(email, subject string, labels ...string) string {
	g.mu.Lock()
	defer g.mu.Unlock()
	b := g.boxLocked(email)
	g.seq++
	b.historyID += 7
	id := fmt.Sprintf("m%05d", g.seq)
	if len(labels) == 0 {
		labels = []string{"INBOX", "UNREAD"}
	}
	raw := "From: Customer <customer@example.com>\r\nTo: " + email + "\r\nSubject: " + subject +
		"\r\nMessage-ID: <" + id + "@example.com>\r\nIn-Reply-To: <parent@example.com>\r\nReferences: <root@example.com> <parent@example.com>\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nHello " + subject +
		"\r\n--b\r\nContent-Type: text/html\r\n\r\n<p>Hello " + subject + "</p>\r\n--b--\r\n"
	b.msgs = append(b.msgs, &fakeMsg{id: id, thread: "t" + id, labels: labels, raw: []byte(raw),
		internalMs: time.Now().UnixMilli(), historyID: b.historyID})
	return id
}

// deliverLarge adds a text mail with a body of size bytes to a mailbox and returns its id.
func (g *fakeGmail) deliverLarge(email string, size int) string {
	g.mu.Lock()
	defer g.mu.Unlock()
	b := g.boxLocked(email)
	g.seq++
	b.historyID += 7
	id := fmt.Sprintf("m%05d", g.seq)
	b.msgs = append(b.msgs, &fakeMsg{id: id, thread: "t" + id, labels: []string{"INBOX"}, bodySize: size,
		internalMs: time.Now().UnixMilli(), historyID: b.historyID})
	return id
}

func (g *fakeGmail) snapshot(email string) fakeMailbox {
	g.mu.Lock()
	defer g.mu.Unlock()
	return *g.boxLocked(email)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func gerr(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"code": code, "message": msg}})
}

// calls returns how many requests the fake has answered.
func (g *fakeGmail) calls() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.requests
}

func (g *fakeGmail) serve(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.requests++
	token, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	g.tokens[token]++
	email, ok := strings.CutPrefix(token, "tok:")
	if !ok || g.reject[token] {
		gerr(w, 401, "Request had invalid authentication credentials.")
		return
	}
	email, _, _ = strings.Cut(email, "#") // "tok:<mailbox>#<generation>"
	path, ok := strings.CutPrefix(r.URL.Path, "/gmail/v1/users/me/")
	if !ok {
		gerr(w, 404, "no such path "+r.URL.Path)
		return
	}
	b := g.boxLocked(email)
	q := r.URL.Query()
	switch {
	case path == "labels":
		writeJSON(w, map[string]any{"labels": g.labelList})
	case path == "watch":
		var req struct {
			TopicName string   `json:"topicName"`
			LabelIDs  []string `json:"labelIds"`
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		if g.failWatch > 0 {
			g.failWatch--
			gerr(w, 503, "backend error")
			return
		}
		b.watches++
		b.watchLabels = req.LabelIDs
		exp := g.watchExpiration
		if exp.IsZero() {
			exp = time.Now().Add(7 * 24 * time.Hour)
		}
		writeJSON(w, map[string]any{"historyId": strconv.FormatUint(b.historyID, 10), "expiration": strconv.FormatInt(exp.UnixMilli(), 10)})
	case path == "stop":
		b.stops++
		w.WriteHeader(204)
	case path == "profile":
		writeJSON(w, map[string]any{"emailAddress": email, "historyId": strconv.FormatUint(b.historyID, 10)})
	case path == "history":
		b.historyCalls++
		if g.failNext > 0 {
			g.failNext--
			gerr(w, 503, "backend error")
			return
		}
		start, _ := strconv.ParseUint(q.Get("startHistoryId"), 10, 64)
		if start < b.staleBefore {
			gerr(w, 404, "Requested entity was not found.")
			return
		}
		var recs []map[string]any
		for _, m := range b.msgs {
			if m.historyID > start && (q.Get("labelId") == "" || slices.Contains(m.labels, q.Get("labelId"))) {
				recs = append(recs, map[string]any{"id": strconv.FormatUint(m.historyID, 10), "messagesAdded": []any{
					map[string]any{"message": map[string]any{"id": m.id, "threadId": m.thread, "labelIds": m.labels}}}})
			}
		}
		off, _ := strconv.Atoi(q.Get("pageToken"))
		end := min(off+g.pageSize, len(recs))
		resp := map[string]any{"history": recs[min(off, len(recs)):end], "historyId": strconv.FormatUint(b.historyID, 10)}
		if end < len(recs) {
			resp["nextPageToken"] = strconv.Itoa(end)
		}
		writeJSON(w, resp)
	case path == "messages":
		after := int64(0)
		if v, ok := strings.CutPrefix(q.Get("q"), "after:"); ok {
			after, _ = strconv.ParseInt(v, 10, 64)
		}
		var ids []map[string]any
		for i := len(b.msgs) - 1; i >= 0; i-- {
			m := b.msgs[i]
			if m.internalMs/1000 > after && (q.Get("labelIds") == "" || slices.Contains(m.labels, q.Get("labelIds"))) {
				ids = append(ids, map[string]any{"id": m.id, "threadId": m.thread})
			}
		}
		off, _ := strconv.Atoi(q.Get("pageToken"))
		end := min(off+g.listPage, len(ids))
		resp := map[string]any{"messages": ids[min(off, len(ids)):end]}
		if end < len(ids) {
			resp["nextPageToken"] = strconv.Itoa(end)
		}
		writeJSON(w, resp)
	case strings.HasPrefix(path, "messages/"):
		id := strings.TrimPrefix(path, "messages/")
		b.getCalls[id]++
		for _, m := range b.msgs {
			if m.id == id {
				writeJSON(w, map[string]any{"id": m.id, "threadId": m.thread, "labelIds": m.labels,
					"historyId": strconv.FormatUint(m.historyID, 10), "internalDate": strconv.FormatInt(m.internalMs, 10),
					"raw": base64.URLEncoding.EncodeToString(m.rawBytes())})
				return
			}
		}
		gerr(w, 404, "not found")
	default:
		gerr(w, 404, "no such path "+path)
	}
}

// ---- peers (the oauth and secrets services) ----

type fakePeers struct {
	oauthv1.TokenServiceClient
	oauthv1.OAuthFlowServiceClient
	oauthv1.GoogleSetupServiceClient
	secretsv1.SecretsServiceClient

	mu          sync.Mutex
	accounts    map[string]string // provider id → mailbox
	broken      map[string]bool
	deleted     []string
	gmailReady  bool
	secrets     map[string]map[string]string // tenant → name → value
	tenantsSeen []string
	// status is a broken connection's status (REVOKED when unset).
	status map[string]oauthv1.ConnectionStatus
	// gen is a connection's access-token generation: a forced refresh issues a new token.
	gen map[string]int
	// forceFails is what a forced refresh finds at Google: the connection breaks with that status
	// (TRANSIENT_ERROR: Google's token endpoint is unavailable and nothing breaks).
	forceFails map[string]oauthv1.ConnectionStatus
	// forced lists the providers whose token was force-refreshed.
	forced []string
}

func newPeers() *fakePeers {
	return &fakePeers{accounts: map[string]string{}, broken: map[string]bool{}, secrets: map[string]map[string]string{}, gmailReady: true,
		status: map[string]oauthv1.ConnectionStatus{}, gen: map[string]int{}, forceFails: map[string]oauthv1.ConnectionStatus{}}
}

// connectionTexts are the status message and remedy the oauth service records for a broken grant.
var connectionTexts = map[oauthv1.ConnectionStatus][2]string{
	oauthv1.ConnectionStatus_CONNECTION_STATUS_REVOKED: {"Access was revoked in the Google account.", "Connect the mailbox again."},
	oauthv1.ConnectionStatus_CONNECTION_STATUS_EXPIRED_TESTING: {"The grant expired 7.0 days after consent: the OAuth consent screen is most likely in Testing.",
		"Publish the app to Production, then reconnect the mailbox."},
	oauthv1.ConnectionStatus_CONNECTION_STATUS_REAUTH_REQUIRED: {"Google requires the account to sign in again (reauthentication policy of the Google Workspace domain).",
		"Reconnect the Gmail provider (Connect)."},
	oauthv1.ConnectionStatus_CONNECTION_STATUS_CLIENT_INVALID: {"Google no longer accepts the OAuth client this account was connected with.",
		"Update the OAuth client ID and secret in the Google setup, then reconnect."},
}

func (f *fakePeers) statusOf(id string) oauthv1.ConnectionStatus {
	if st, ok := f.status[id]; ok {
		return st
	}
	return oauthv1.ConnectionStatus_CONNECTION_STATUS_REVOKED
}

// token is the access token the fake issues for a provider's current generation.
func (f *fakePeers) token(id string) string {
	t := "tok:" + f.accounts[id]
	if g := f.gen[id]; g > 0 {
		t += "#" + strconv.Itoa(g)
	}
	return t
}

func (f *fakePeers) peers() Peers {
	return Peers{Tokens: f, Flow: f, Setup: f, Secrets: f}
}

func tenantOf(ctx context.Context) string {
	id, _ := auth.FromContext(ctx)
	return id.Tenant
}

func (f *fakePeers) GetAccessToken(ctx context.Context, r *oauthv1.GetAccessTokenRequest, _ ...grpc.CallOption) (*oauthv1.GetAccessTokenResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tenantsSeen = append(f.tenantsSeen, tenantOf(ctx))
	id := r.GetProviderId()
	if r.GetForceRefresh() && !f.broken[id] {
		f.forced = append(f.forced, id)
		switch st, ok := f.forceFails[id]; {
		case ok && st == oauthv1.ConnectionStatus_CONNECTION_STATUS_TRANSIENT_ERROR:
			return nil, errs.Rewrite(ctx, logging.Discard(), errs.Unavailable("GOOGLE_UNAVAILABLE", "Google's token endpoint is unavailable; retry later").
				With("status", st.String()))
		case ok:
			f.broken[id], f.status[id] = true, st
		default:
			f.gen[id]++
		}
	}
	if f.broken[id] {
		// As the oauth service answers: the status in the ErrorInfo, the texts on the connection.
		return nil, errs.Rewrite(ctx, logging.Discard(), errs.FailedPrecondition("REAUTHORIZATION_REQUIRED", "the grant was revoked").
			With("status", f.statusOf(id).String()).With("provider_id", id))
	}
	email, ok := f.accounts[id]
	if !ok {
		return nil, errs.Rewrite(ctx, logging.Discard(), errs.NotFound("connection"))
	}
	return &oauthv1.GetAccessTokenResponse{AccessToken: f.token(id), AccountEmail: email, ClientId: "123-abc.apps.googleusercontent.com"}, nil
}

func (f *fakePeers) GetConnection(ctx context.Context, r *oauthv1.GetConnectionRequest, _ ...grpc.CallOption) (*oauthv1.GetConnectionResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.broken[r.GetProviderId()] {
		st := f.statusOf(r.GetProviderId())
		texts := connectionTexts[st]
		return &oauthv1.GetConnectionResponse{Connection: &oauthv1.Connection{Status: st, StatusMessage: texts[0], Remedy: texts[1]}}, nil
	}
	if _, ok := f.accounts[r.GetProviderId()]; !ok {
		return nil, errs.Rewrite(ctx, logging.Discard(), errs.NotFound("connection"))
	}
	return &oauthv1.GetConnectionResponse{Connection: &oauthv1.Connection{Status: oauthv1.ConnectionStatus_CONNECTION_STATUS_CONNECTED}}, nil
}

func (f *fakePeers) DeleteConnection(_ context.Context, r *oauthv1.DeleteConnectionRequest, _ ...grpc.CallOption) (*oauthv1.DeleteConnectionResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deleted = append(f.deleted, r.GetProviderId())
	delete(f.accounts, r.GetProviderId())
	return &oauthv1.DeleteConnectionResponse{Deleted: true}, nil
}

func (f *fakePeers) BeginAuthorization(_ context.Context, r *oauthv1.BeginAuthorizationRequest, _ ...grpc.CallOption) (*oauthv1.BeginAuthorizationResponse, error) {
	return &oauthv1.BeginAuthorizationResponse{AuthorizationUrl: "https://accounts.example/auth?login_hint=" + r.GetLoginHint(), BrowserBinding: "binding-123"}, nil
}

func (f *fakePeers) GetGoogleConfig(context.Context, *oauthv1.GetGoogleConfigRequest, ...grpc.CallOption) (*oauthv1.GetGoogleConfigResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.gmailReady {
		return &oauthv1.GetGoogleConfigResponse{Config: &oauthv1.GoogleConfig{Missing: []string{"google_client_secret"}}}, nil
	}
	return &oauthv1.GetGoogleConfigResponse{Config: &oauthv1.GoogleConfig{GmailReady: true}}, nil
}

func (f *fakePeers) GetSecrets(ctx context.Context, r *secretsv1.GetSecretsRequest, _ ...grpc.CallOption) (*secretsv1.GetSecretsResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	resp := &secretsv1.GetSecretsResponse{}
	for _, n := range r.GetNames() {
		if v, ok := f.secrets[tenantOf(ctx)][n]; ok {
			resp.Secrets = append(resp.Secrets, &secretsv1.SecretValue{Name: n, Value: v, Version: 1})
		}
	}
	return resp, nil
}

func serviceAccountKey(project, email string) string {
	b, _ := json.Marshal(map[string]string{"type": "service_account", "project_id": project, "client_email": email,
		"private_key": "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n", "private_key_id": "k1"})
	return string(b)
}
