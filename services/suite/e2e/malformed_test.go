package e2e_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/algapsa/alga-google/gen/openapi"
	"github.com/algapsa/alga-google/services/googlesandbox"
	"github.com/algapsa/alga-google/services/platform/auth"
	"github.com/algapsa/alga-google/services/suite/harness"
)

// The malformed-input sweep: every operation of the OpenAPI document (gen/openapi, the document the
// gateway serves) and every raw route (OAuth callbacks, Gmail push, Calendar notifications, the UI's
// session routes) is sent malformed — wrong JSON types, unknown fields, invalid UTF-8 and NUL in body
// strings and path and query parameters, 1 MiB strings, 20 MiB bodies, non-JSON bodies, bad ids, wrong
// methods, bad Content-Types, missing/forged/expired/wrong-audience/client tokens, bad push tokens and
// channel headers, bad cookies and CSRF. Each malformed request starts from a valid one (real provider
// ids, a complete body), so a check that lets it through shows as a 2xx rather than hiding behind an
// earlier refusal. Then: no 5xx; every answer a 4xx whose body names the problem (the field, parameter,
// header or limit) — the webhooks too (the header or body part at fault, in the API's JSON error body) —
// except the OAuth callbacks, browser navigations that always redirect with an error status (checked),
// and webhook deliveries that are not ours, acknowledged with a 2xx (checked); the suite is alive; and the row count of every table of every service schema is what it was before.
func TestMalformedInputSweep(t *testing.T) {
	t.Parallel()
	e, _, trusted, other := newTrustedKeyEnv(t, "e2e-sweep-trusted", "e2e-sweep-other")
	ts := e.setupTenant(t, "tenant-sweep", "acme-sweep", setupOpts{})
	gp := e.connectGmail(t, ts, "inbox@sweep.test")
	d := e.diagnostics(t, ts, gp.ID)
	resp := ts.adminHTTP.Do(t, http.MethodPost, "/api/v1/calendar/providers", map[string]any{"display_name": "Sweep calendar"})
	require.Equal(t, http.StatusOK, resp.Status, resp.Errorf())
	var cal struct {
		Provider struct {
			ID string `json:"id"`
		} `json:"provider"`
	}
	require.NoError(t, resp.JSON(&cal))
	// Connected, so its push channel is real: the notification cases carry its id and resource id.
	const account = "tech@sweep.test"
	e.ensureUser(t, account)
	resp = ts.adminHTTP.Do(t, http.MethodPost, "/api/v1/calendar/providers/"+cal.Provider.ID+":connect", map[string]any{})
	require.Equal(t, http.StatusOK, resp.Status, resp.Errorf())
	var begun struct {
		AuthorizationURL string `json:"authorization_url"`
	}
	require.NoError(t, resp.JSON(&begun))
	cb, err := e.admin.Consent(e.ctx, begun.AuthorizationURL, account, true)
	require.NoError(t, err)
	st, _ := e.callback(t, ts.adminHTTP, cb.String())
	require.Equal(t, "connected", st)
	channel := liveChannel(t, e, account)
	e.waitSyncIdle(t)
	time.Sleep(500 * time.Millisecond) // the channel's initial sync message is in

	sw := &sweep{e: e, admin: ts.adminHTTP.Token, client: &http.Client{
		Timeout:       2 * time.Minute,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
	ids := map[string]string{"/api/v1/gmail/": gp.ID, "/api/v1/calendar/": cal.Provider.ID}
	sw.tokens(t)
	sw.api(t, ids)
	sw.gmailPush(t, d.Diagnostics.Subscription, d.Diagnostics.PushAudience, ts.saEmail, trusted, other)
	sw.calendarNotifications(channel)
	sw.callbacks()
	sw.ui()

	before := rowCounts(t, e)
	var failures []string
	for _, c := range sw.cases {
		if msg := sw.run(t, c); msg != "" {
			failures = append(failures, msg)
		}
	}
	t.Logf("%d malformed requests sent", len(sw.cases))
	require.GreaterOrEqual(t, len(sw.cases), 200)
	require.Empty(t, failures, "%d of %d malformed requests were not refused properly:\n%s", len(failures), len(sw.cases), strings.Join(failures, "\n"))

	// Alive, and nothing stored.
	h := e.s.HTTP("")
	require.Equal(t, http.StatusOK, h.Do(t, http.MethodGet, "/healthz", nil).Status)
	require.Equal(t, http.StatusOK, h.Do(t, http.MethodGet, "/readyz", nil).Status)
	r := ts.adminHTTP.Do(t, http.MethodGet, "/api/v1/gmail/providers/"+gp.ID, nil)
	require.Equal(t, http.StatusOK, r.Status, r.Errorf())
	after := rowCounts(t, e)
	var changed []string
	for table, n := range after {
		if before[table] != n {
			changed = append(changed, fmt.Sprintf("%s: %d → %d rows", table, before[table], n))
		}
	}
	sort.Strings(changed)
	require.Len(t, after, len(before))
	require.Empty(t, changed, "a refused request stored nothing (%d tables counted)", len(before))
	t.Logf("row counts of %d tables unchanged", len(before))
}

// sweepCase is one malformed request and what its answer must say.
type sweepCase struct {
	name   string
	method string
	path   string // with its query, already escaped as sent
	header http.Header
	body   []byte
	// want: the answer is a 4xx and its body contains one of these (case-insensitive).
	want []string
	// redirect: a browser navigation, answered 302 with an error status (not "connected").
	redirect bool
	// ack: a webhook delivery that is not ours (unknown subscription or channel), acknowledged with a
	// 2xx so Google stops redelivering — documented by gmail and calendar — and stored nowhere.
	ack bool
}

type sweep struct {
	e      *env
	admin  string
	client *http.Client
	cases  []sweepCase
	// forged, expired, wrongAudience, clientUser are user tokens the suite must refuse.
	forged, expired, wrongAudience, clientUser string
}

func (sw *sweep) add(c sweepCase) {
	if c.header == nil {
		c.header = http.Header{}
	}
	sw.cases = append(sw.cases, c)
}

func (sw *sweep) tokens(t *testing.T) {
	cfg := harness.TestConfig()
	mint := func(key, aud string, u auth.UserToken) string {
		s, err := auth.NewSigner([]byte(key), cfg.AuthIssuer, aud)
		require.NoError(t, err)
		tok, err := s.MintUser(u)
		require.NoError(t, err)
		return tok
	}
	admin := auth.UserToken{Subject: "admin-tenant-sweep", Tenant: "tenant-sweep", Permissions: []string{auth.PermSystemSettingsUpdate}}
	sw.forged = mint("not-the-suite-key-0123456789abcdef", cfg.AuthAudience, admin)
	expired := admin
	expired.TTL = -time.Hour
	sw.expired = mint(cfg.AuthHS256Key, cfg.AuthAudience, expired)
	sw.wrongAudience = mint(cfg.AuthHS256Key, "another-app", admin)
	sw.clientUser = sw.e.s.ClientUserToken("tenant-sweep", "customer", auth.PermSystemSettingsUpdate)
}

func bearerHeader(tok string) http.Header {
	return http.Header{"Authorization": {"Bearer " + tok}}
}

func jsonHeader(tok string) http.Header {
	h := bearerHeader(tok)
	h.Set("Content-Type", "application/json")
	return h
}

// swaggerDoc is the part of the OpenAPI v2 document the sweep reads.
type swaggerDoc struct {
	Paths       map[string]map[string]swaggerOp `json:"paths"`
	Definitions map[string]swaggerSchema        `json:"definitions"`
}

type swaggerOp struct {
	Parameters []struct {
		Name   string         `json:"name"`
		In     string         `json:"in"`
		Type   string         `json:"type"`
		Schema *swaggerSchema `json:"schema"`
	} `json:"parameters"`
}

type swaggerSchema struct {
	Ref        string                   `json:"$ref"`
	Type       string                   `json:"type"`
	Format     string                   `json:"format"`
	Enum       []string                 `json:"enum"`
	Items      *swaggerSchema           `json:"items"`
	Properties map[string]swaggerSchema `json:"properties"`
}

func (d *swaggerDoc) resolve(s swaggerSchema) swaggerSchema {
	for s.Ref != "" {
		s = d.Definitions[strings.TrimPrefix(s.Ref, "#/definitions/")]
	}
	return s
}

// validBodies are complete, valid requests of the operations with a body: each malformed body is one of
// these with one thing broken.
var validBodies = map[string]map[string]any{
	"POST /api/v1/calendar/providers":                 {"display_name": "Another calendar"},
	"PATCH /api/v1/calendar/providers/{id}":           {"display_name": "Renamed"},
	"POST /api/v1/gmail/providers":                    {"mailbox": "new@sweep.test", "display_name": "New"},
	"PATCH /api/v1/gmail/providers/{id}":              {"display_name": "Renamed"},
	"PUT /api/v1/google/config":                       {"project_id": "acme-sweep"},
	"POST /api/v1/secrets:batchPut":                   {"writes": []any{map[string]any{"name": "sweep_value", "value": "v"}}},
	"POST /api/v1/secrets:batchDelete":                {"names": []any{"sweep_value"}},
	"POST /api/v1/gmail/providers/{id}:connect":       {},
	"POST /api/v1/gmail/providers/{id}:refresh":       {},
	"POST /api/v1/calendar/providers/{id}:connect":    {},
	"POST /api/v1/calendar/providers/{id}:disconnect": {},
	"POST /api/v1/google/config:test":                 {},
	"POST /api/v1/google/maintenance:run":             {},
	"POST /api/v1/google/providers:reset":             {},
}

// missingRequired are the valid bodies above without a field the operation requires.
var missingRequired = map[string][]struct {
	field string
	body  map[string]any
}{
	"POST /api/v1/gmail/providers":     {{"mailbox", map[string]any{"display_name": "New"}}},
	"POST /api/v1/secrets:batchPut":    {{"name", map[string]any{"writes": []any{map[string]any{"value": "v"}}}}},
	"POST /api/v1/secrets:batchDelete": {{"names", map[string]any{}}},
}

const invalidUTF8 = "%F0%28%8C%28" // the example: a 4-byte lead followed by bytes that do not continue it

func (sw *sweep) api(t *testing.T, ids map[string]string) {
	var doc swaggerDoc
	require.NoError(t, json.Unmarshal(openapi.Document, &doc))
	paths := make([]string, 0, len(doc.Paths))
	for p := range doc.Paths {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	huge := strings.Repeat("a", 1<<20-4<<10) // a 1 MiB string that keeps the body under the 1 MiB limit
	for _, tmpl := range paths {
		ops := doc.Paths[tmpl]
		id := ""
		for prefix, v := range ids {
			if strings.HasPrefix(tmpl, prefix) {
				id = v
			}
		}
		withID := func(v string) string { return strings.Replace(tmpl, "{id}", v, 1) }
		path := withID(id)
		methods := make([]string, 0, len(ops))
		for m := range ops {
			methods = append(methods, strings.ToUpper(m))
		}
		sort.Strings(methods)
		for _, m := range methods {
			op := ops[strings.ToLower(m)]
			key := m + " " + tmpl
			var body []byte
			var bodySchema *swaggerSchema
			for _, p := range op.Parameters {
				if p.In == "body" {
					s := doc.resolve(*p.Schema)
					bodySchema = &s
				}
			}
			valid := validBodies[key]
			if bodySchema != nil {
				body, _ = json.Marshal(valid)
			}
			send := func(name, p string, h http.Header, b []byte, want ...string) {
				sw.add(sweepCase{name: key + ": " + name, method: m, path: p, header: h, body: b, want: want})
			}
			// Identity: every operation needs a verified internal user.
			authWant := []string{"token", "bearer", "authenticat"}
			send("no token", path, http.Header{"Content-Type": {"application/json"}}, body, authWant...)
			send("forged token", path, jsonHeader(sw.forged), body, authWant...)
			send("expired token", path, jsonHeader(sw.expired), body, authWant...)
			send("wrong-audience token", path, jsonHeader(sw.wrongAudience), body, authWant...)
			send("not a JWT", path, jsonHeader("not-a-jwt"), body, authWant...)
			send("client-portal user", path, jsonHeader(sw.clientUser), body, "client", "permission")
			send("Authorization not ASCII", path, http.Header{"Authorization": {"Bearer \xff\xfe"}}, body, "authorization")
			send("Cookie not ASCII", path, http.Header{"Authorization": {"Bearer " + sw.admin}, "Cookie": {"a=\xe9t\xe9"}}, body, "cookie")
			// Path ids.
			if strings.Contains(tmpl, "{id}") {
				send("id not a UUID", withID("not-a-uuid"), jsonHeader(sw.admin), body, "id")
				send("id too long", withID(strings.Repeat("0", 300)), jsonHeader(sw.admin), body, "id")
				send("id invalid UTF-8", withID(invalidUTF8), jsonHeader(sw.admin), body, "id")
				send("id with NUL", withID("%00"), jsonHeader(sw.admin), body, "id")
				send("id UUID with a NUL", withID(id[:35]+"%00"), jsonHeader(sw.admin), body, "id")
			}
			// Query parameters.
			for _, p := range op.Parameters {
				if p.In != "query" {
					continue
				}
				q := func(v string) string { return path + "?" + p.Name + "=" + v }
				send("query "+p.Name+" invalid UTF-8", q(invalidUTF8), bearerHeader(sw.admin), nil, p.Name)
				send("query "+p.Name+" NUL", q("%00"), bearerHeader(sw.admin), nil, p.Name)
				send("query "+p.Name+" 64 KiB", q(strings.Repeat("9", 64<<10)), bearerHeader(sw.admin), nil, p.Name)
				if p.Type == "integer" || p.Type == "boolean" {
					send("query "+p.Name+" wrong type", q("not-a-value"), bearerHeader(sw.admin), nil, p.Name)
				}
			}
			send("query malformed escape", path+"?x=%zz", bearerHeader(sw.admin), body, "query")
			if bodySchema == nil {
				continue
			}
			// Bodies.
			send("body not JSON", path, jsonHeader(sw.admin), []byte("this is not json"), "body")
			send("body truncated JSON", path, jsonHeader(sw.admin), body[:len(body)-1], "body")
			send("body a JSON array", path, jsonHeader(sw.admin), []byte("[1,2]"), "body")
			send("body invalid UTF-8", path, jsonHeader(sw.admin), []byte("{\"x\":\"\xf0\x28\x8c\x28\"}"), "body")
			send("body 20 MiB", path, jsonHeader(sw.admin), bytes.Repeat([]byte(" "), 20<<20), "limit")
			send("body 1 MiB + 1", path, jsonHeader(sw.admin), bytes.Repeat([]byte(" "), 1<<20+1), "limit")
			xml := jsonHeader(sw.admin)
			xml.Set("Content-Type", "text/xml")
			send("Content-Type text/xml", path, xml, []byte("<config/>"), "content-type")
			send("unknown field", path, jsonHeader(sw.admin), mutate(valid, "no_such_field", 1), "no_such_field")
			for _, m := range missingRequired[key] {
				b, _ := json.Marshal(m.body)
				send("missing "+m.field, path, jsonHeader(sw.admin), b, m.field)
			}
			sw.fields(doc, *bodySchema, valid, nil, func(name string, b []byte, want string) {
				send(name, path, jsonHeader(sw.admin), b, want)
			}, huge)
		}
		// A method the path does not serve.
		for _, m := range []string{http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodPost, http.MethodGet} {
			if _, ok := ops[strings.ToLower(m)]; !ok {
				sw.add(sweepCase{name: m + " " + tmpl + ": wrong method", method: m, path: path, header: bearerHeader(sw.admin), want: []string{"method", "id"}})
				break
			}
		}
	}
	sw.add(sweepCase{name: "unknown API route", method: http.MethodGet, path: "/api/v1/no/such/thing", header: bearerHeader(sw.admin), want: []string{"not found", "unknown", "pattern"}})
}

// fields adds, for each property of schema (nested messages included), a body that gives it a value of
// the wrong JSON type, and for strings one with a NUL and one of 1 MiB.
func (sw *sweep) fields(doc swaggerDoc, schema swaggerSchema, valid map[string]any, at []string, add func(name string, body []byte, want string), huge string) {
	names := make([]string, 0, len(schema.Properties))
	for n := range schema.Properties {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		prop := schema.Properties[n]
		path := append(append([]string(nil), at...), n)
		label := strings.Join(path, ".")
		set := func(v any) []byte { return mutatePath(valid, path, v) }
		p := doc.resolve(prop)
		switch {
		case p.Type == "array":
			add("field "+label+" not an array", set("x"), n)
			item := doc.resolve(*p.Items)
			if item.Type == "string" && len(item.Enum) == 0 {
				add("field "+label+" item with NUL", set([]any{"a\x00b"}), n)
				add("field "+label+" item of 1 MiB", set([]any{huge}), n)
			}
			if item.Type == "object" || len(item.Properties) > 0 {
				add("field "+label+" item not an object", set([]any{7}), n)
			}
		case len(p.Properties) > 0 || p.Type == "object":
			add("field "+label+" not an object", set(7), n)
			if len(at) == 0 {
				sw.fields(doc, p, valid, path, add, huge)
			}
		case len(p.Enum) > 0:
			add("field "+label+" unknown enum value", set("NO_SUCH_VALUE"), n)
		case p.Type == "boolean":
			add("field "+label+" not a boolean", set("maybe"), n)
		case p.Type == "integer" || p.Format == "int64" || p.Format == "uint64" || p.Format == "int32":
			add("field "+label+" not a number", set("not-a-number"), n)
		case p.Type == "string":
			add("field "+label+" not a string", set(12345), n)
			add("field "+label+" with NUL", set("a\x00b"), n)
			add("field "+label+" of 1 MiB", set(huge), n)
		}
	}
}

// mutate returns valid as JSON with one top-level key set.
func mutate(valid map[string]any, key string, v any) []byte {
	return mutatePath(valid, []string{key}, v)
}

// mutatePath returns valid as JSON with the value at path (objects created on the way) set to v.
func mutatePath(valid map[string]any, path []string, v any) []byte {
	var cp map[string]any
	b, _ := json.Marshal(valid)
	_ = json.Unmarshal(b, &cp)
	if cp == nil {
		cp = map[string]any{}
	}
	m := cp
	for _, k := range path[:len(path)-1] {
		next, ok := m[k].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[k] = next
		}
		m = next
	}
	m[path[len(path)-1]] = v
	out, _ := json.Marshal(cp)
	return out
}

// gmailPush: the Pub/Sub push webhook with bad tokens (signed by an unknown key, or by a trusted key with
// the wrong audience, email, issuer or expiry) and bad envelopes under a valid token.
func (sw *sweep) gmailPush(t *testing.T, subscription, audience, saEmail string, trusted, other *pushKey) {
	const path = "/api/email/webhooks/google"
	claims := func(mut func(map[string]any)) map[string]any {
		c := pushClaims(audience, saEmail)
		mut(c)
		return c
	}
	none := func(map[string]any) {}
	good := "Bearer " + trusted.sign(t, trusted.kid, claims(none))
	env := envelope(subscription, "sweep-1", "inbox@sweep.test", 999999)
	// want: what the refusal must name — the Authorization header's problem, or the envelope's field.
	push := func(name, authorization string, body []byte, want ...string) {
		h := http.Header{"Content-Type": {"application/json"}}
		if authorization != "" {
			h.Set("Authorization", authorization)
		}
		sw.add(sweepCase{name: "Gmail push: " + name, method: http.MethodPost, path: path, header: h, body: body, want: want})
	}
	notOurs := func(name string, body []byte) {
		push(name, good, body)
		sw.cases[len(sw.cases)-1].ack = true
	}
	push("no Authorization", "", env, "authorization: push token rejected: no bearer token")
	push("empty bearer", "Bearer ", env, "authorization: push token rejected: no bearer token")
	push("not a JWT", "Bearer not.a.jwt", env, "authorization: push token rejected: token is malformed")
	push("Basic auth", "Basic dXNlcjpwYXNz", env, "authorization: push token rejected: no bearer token")
	push("unknown signing key", "Bearer "+other.sign(t, other.kid, claims(none)), env, "authorization: push token rejected")
	push("trusted key, unknown kid", "Bearer "+trusted.sign(t, "no-such-kid", claims(none)), env, "authorization: push token rejected")
	push("wrong audience", "Bearer "+trusted.sign(t, trusted.kid, claims(func(c map[string]any) { c["aud"] = "https://evil.test/push" })), env, "authorization: push token rejected: token has invalid claims: token has invalid audience")
	push("wrong email", "Bearer "+trusted.sign(t, trusted.kid, claims(func(c map[string]any) { c["email"] = "stranger@evil.test" })), env, "authorization: push token rejected: email is not the subscription's service account")
	push("email not verified", "Bearer "+trusted.sign(t, trusted.kid, claims(func(c map[string]any) { c["email_verified"] = false })), env, "authorization: push token rejected: email missing or not verified")
	push("wrong issuer", "Bearer "+trusted.sign(t, trusted.kid, claims(func(c map[string]any) { c["iss"] = "https://evil.test" })), env, "authorization: push token rejected: issuer")
	push("expired", "Bearer "+trusted.sign(t, trusted.kid, claims(func(c map[string]any) { c["exp"] = time.Now().Add(-time.Hour).Unix() })), env, "authorization: push token rejected: token has invalid claims: token is expired")
	push("token of an unknown signing algorithm", "Bearer eyJhbGciOiJub25lIn0.eyJpc3MiOiJ4In0.", env, "authorization: push token rejected")
	// Refused at the edge (every header must be printable ASCII), before the gmail service sees it.
	push("Authorization not ASCII", "Bearer \xff", env, "header Authorization: must be printable ASCII")
	push("body not JSON", good, []byte("not json"), "body: malformed push envelope")
	push("body empty", good, nil, "body: malformed push envelope: empty")
	push("body a JSON array", good, []byte("[]"), "body: malformed push envelope")
	push("body invalid UTF-8", good, []byte("{\"subscription\":\"\xff\"}"), "body: malformed push envelope: no message")
	push("no message", good, []byte(`{"subscription":"`+subscription+`"}`), "body: malformed push envelope: no message")
	push("data not base64", good, []byte(`{"subscription":"`+subscription+`","message":{"data":"!!!","messageId":"sweep-2"}}`), "body: malformed push envelope: message.data is not base64")
	data := func(s string) []byte {
		return []byte(`{"subscription":"` + subscription + `","message":{"data":"` + base64.StdEncoding.EncodeToString([]byte(s)) + `","messageId":"sweep-3"}}`)
	}
	push("data not JSON", good, data("not json"), "body: malformed push envelope: message.data is not a Gmail notification")
	push("data without emailAddress", good, data(`{"historyId":5}`), "body: malformed push envelope: bad emailAddress")
	push("data with a wrong-typed historyId", good, data(`{"emailAddress":"inbox@sweep.test","historyId":{"x":1}}`), "body: malformed push envelope: bad historyId")
	push("data with NUL in emailAddress", good, data(`{"emailAddress":"inbox\u0000@sweep.test","historyId":5}`), "body: malformed push envelope: bad emailAddress")
	push("no messageId", good, []byte(`{"subscription":"`+subscription+`","message":{"data":"e30="}}`), "body: malformed push envelope: bad messageId")
	notOurs("unknown subscription", envelope("projects/acme-sweep/subscriptions/no-such", "sweep-4", "inbox@sweep.test", 999999))
	notOurs("subscription of another project", envelope("projects/other-project/subscriptions/sweep-x", "sweep-5", "inbox@sweep.test", 999999))
	sw.add(sweepCase{name: "Gmail push: 300 KiB body", method: http.MethodPost, path: path,
		header: http.Header{"Authorization": {good}, "Content-Type": {"application/json"}}, body: bytes.Repeat([]byte(" "), 300<<10), want: []string{"limit"}})
	sw.add(sweepCase{name: "Gmail push: GET", method: http.MethodGet, path: path, header: http.Header{"Authorization": {good}}, want: []string{"method"}})
}

// calendarNotifications: the Calendar webhook with missing, forged and malformed channel headers, on the
// suite's real channel (its true token where the point is a malformed header the parser must refuse).
func (sw *sweep) calendarNotifications(ch googlesandbox.Channel) {
	const path = "/api/calendar/webhooks/google"
	next := strconv.FormatInt(ch.MessageNumber+100, 10)
	base := map[string]string{
		"X-Goog-Channel-ID": ch.ID, "X-Goog-Channel-Token": ch.Token, "X-Goog-Resource-ID": ch.ResourceID,
		"X-Goog-Resource-State": "exists", "X-Goog-Message-Number": next, "X-Goog-Resource-URI": ch.ResourceURI,
		"X-Goog-Channel-Expiration": ch.Expiration.UTC().Format(http.TimeFormat),
	}
	note := func(name string, mut func(http.Header), body []byte, want ...string) sweepCase {
		h := http.Header{}
		for k, v := range base {
			h.Set(k, v)
		}
		mut(h)
		return sweepCase{name: "Calendar notification: " + name, method: http.MethodPost, path: path, header: h, body: body, want: want}
	}
	set := func(k, v string) func(http.Header) { return func(h http.Header) { h.Set(k, v) } }
	del := func(ks ...string) func(http.Header) {
		return func(h http.Header) {
			for _, k := range ks {
				h.Del(k)
			}
		}
	}
	sw.add(note("no headers", del("X-Goog-Channel-ID", "X-Goog-Channel-Token", "X-Goog-Resource-ID", "X-Goog-Resource-State", "X-Goog-Message-Number", "X-Goog-Resource-URI", "X-Goog-Channel-Expiration"), nil, "X-Goog-Channel-ID is missing"))
	sw.add(note("forged token", set("X-Goog-Channel-Token", "v1.forged"), nil, "X-Goog-Channel-Token: does not match the channel"))
	sw.add(note("no channel token", del("X-Goog-Channel-Token"), nil, "X-Goog-Channel-Token: missing"))
	sw.add(note("no channel id", del("X-Goog-Channel-ID"), nil, "X-Goog-Channel-ID is missing"))
	sw.add(note("another resource id", set("X-Goog-Resource-ID", "another-resource"), nil, "X-Goog-Resource-ID: does not match the channel"))
	sw.add(note("no message number", del("X-Goog-Message-Number"), nil, "X-Goog-Message-Number is missing"))
	sw.add(note("message number not a number", set("X-Goog-Message-Number", "seven"), nil, "X-Goog-Message-Number is not a number"))
	sw.add(note("negative message number", set("X-Goog-Message-Number", "-1"), nil, "X-Goog-Message-Number"))
	sw.add(note("message number overflows", set("X-Goog-Message-Number", "99999999999999999999999"), nil, "X-Goog-Message-Number"))
	sw.add(note("message number in exponent form", set("X-Goog-Message-Number", "1e9"), nil, "X-Goog-Message-Number"))
	sw.add(note("unknown resource state", set("X-Goog-Resource-State", "bogus"), nil, "X-Goog-Resource-State"))
	sw.add(note("no resource state", del("X-Goog-Resource-State"), nil, "X-Goog-Resource-State is missing"))
	sw.add(note("channel id invalid UTF-8", set("X-Goog-Channel-ID", "\xf0\x28\x8c\x28"), nil, "x-goog-channel-id"))
	sw.add(note("token invalid UTF-8", set("X-Goog-Channel-Token", "v1.\xff"), nil, "x-goog-channel-token"))
	sw.add(note("4 KiB channel id", set("X-Goog-Channel-ID", strings.Repeat("c", 4<<10)), nil, "X-Goog-Channel-ID is invalid"))
	// The expiration header is informational (channel.Parse ignores one it cannot read), so only the
	// forged token refuses this one.
	sw.add(note("bad expiration, forged token", func(h http.Header) {
		h.Set("X-Goog-Channel-Expiration", "not a date")
		h.Set("X-Goog-Channel-Token", "v1.forged")
	}, nil, "X-Goog-Channel-Token: does not match the channel"))
	sw.add(note("100 KiB body", func(http.Header) {}, bytes.Repeat([]byte("x"), 100<<10), "limit"))
	// A channel that is not ours is acknowledged so Google stops retrying (services/calendar); nothing is stored.
	unknown := note("unknown channel", set("X-Goog-Channel-ID", "00000000-0000-4000-8000-000000000000"), nil)
	unknown.ack = true
	sw.add(unknown)
	sw.add(sweepCase{name: "Calendar notification: GET", method: http.MethodGet, path: path, want: []string{"method"}})
}

// liveChannel is the sandbox's one live push channel of account.
func liveChannel(t *testing.T, e *env, account string) googlesandbox.Channel {
	t.Helper()
	all, err := e.admin.Channels(e.ctx)
	require.NoError(t, err)
	var live []googlesandbox.Channel
	for _, c := range all {
		if c.Owner == account && !c.Stopped && !c.Expired {
			live = append(live, c)
		}
	}
	require.Len(t, live, 1)
	return live[0]
}

// callbacks: the OAuth callbacks are browser navigations: a bad one redirects to the UI with an error
// status (never "connected"), and one whose parameters cannot be read is a 400 naming the parameter.
func (sw *sweep) callbacks() {
	for _, path := range []string{"/api/auth/google/callback", "/api/auth/google/calendar/callback"} {
		redirect := func(name, query string, h http.Header) {
			sw.add(sweepCase{name: path + ": " + name, method: http.MethodGet, path: path + query, header: h, redirect: true})
		}
		redirect("no parameters", "", nil)
		redirect("unknown state", "?state=forged&code=abc", nil)
		redirect("a 4 KiB state", "?state="+strings.Repeat("s", 4<<10)+"&code=abc", nil)
		redirect("Google error", "?error=access_denied&state=forged", nil)
		redirect("forged binding cookie", "?state=forged&code=abc", http.Header{"Cookie": {"alga_google_oauth_gmail=forged; alga_google_oauth_calendar=forged"}})
		sw.add(sweepCase{name: path + ": state invalid UTF-8", method: http.MethodGet, path: path + "?state=" + invalidUTF8 + "&code=x", want: []string{"state"}})
		sw.add(sweepCase{name: path + ": code with NUL", method: http.MethodGet, path: path + "?state=x&code=%00", want: []string{"code"}})
		sw.add(sweepCase{name: path + ": malformed query", method: http.MethodGet, path: path + "?state=%zz", want: []string{"query"}})
		sw.add(sweepCase{name: path + ": POST", method: http.MethodPost, path: path, want: []string{"method"}})
	}
}

// ui: the session routes and cookie-authenticated API calls with forged cookies, no CSRF token, or from
// another site.
func (sw *sweep) ui() {
	form := func(tok string) []byte { return []byte(url.Values{"token": {tok}}.Encode()) }
	formHeader := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
	sw.add(sweepCase{name: "UI sign-in: forged token (form)", method: http.MethodPost, path: "/ui/session", header: formHeader, body: form(sw.forged), want: []string{"token", "sign"}})
	sw.add(sweepCase{name: "UI sign-in: expired token (JSON)", method: http.MethodPost, path: "/ui/session", header: http.Header{"Content-Type": {"application/json"}}, body: []byte(`{"token":"` + sw.expired + `"}`), want: []string{"token", "expired"}})
	sw.add(sweepCase{name: "UI sign-in: client-portal user", method: http.MethodPost, path: "/ui/session", header: bearerHeader(sw.clientUser), want: []string{"client", "portal", "internal"}})
	sw.add(sweepCase{name: "UI sign-in: body not JSON", method: http.MethodPost, path: "/ui/session", header: http.Header{"Content-Type": {"application/json"}}, body: []byte("{"), want: []string{"token"}})
	sw.add(sweepCase{name: "UI sign-in: from another site", method: http.MethodPost, path: "/ui/session", header: http.Header{"Sec-Fetch-Site": {"cross-site"}, "Authorization": {"Bearer " + sw.admin}}, want: []string{"cross-site"}})
	sw.add(sweepCase{name: "UI sign-in: 100 KiB form", method: http.MethodPost, path: "/ui/session", header: formHeader, body: bytes.Repeat([]byte("a"), 100<<10), want: []string{"limit"}})
	sw.add(sweepCase{name: "UI sign-out: no CSRF token", method: http.MethodPost, path: "/ui/signout", header: http.Header{"Cookie": {"alga_session=" + sw.admin}}, want: []string{"refused"}})
	cookie := http.Header{"Cookie": {"alga_session=" + sw.admin}, "Content-Type": {"application/json"}}
	sw.add(sweepCase{name: "API write with the session cookie, no CSRF token", method: http.MethodPost, path: "/api/v1/gmail/providers", header: cookie, body: []byte(`{"mailbox":"csrf@sweep.test"}`), want: []string{"csrf"}})
	wrongCSRF := cookie.Clone()
	wrongCSRF.Set("X-Alga-CSRF", "forged")
	sw.add(sweepCase{name: "API write with the session cookie, forged CSRF token", method: http.MethodPost, path: "/api/v1/gmail/providers", header: wrongCSRF, body: []byte(`{"mailbox":"csrf@sweep.test"}`), want: []string{"csrf"}})
	sw.add(sweepCase{name: "API read with a forged session cookie", method: http.MethodGet, path: "/api/v1/gmail/providers", header: http.Header{"Cookie": {"alga_session=" + sw.forged}}, want: []string{"token", "bearer", "authenticat"}})
	sw.add(sweepCase{name: "API read with a garbage session cookie", method: http.MethodGet, path: "/api/v1/gmail/providers", header: http.Header{"Cookie": {"alga_session=garbage"}}, want: []string{"token", "bearer", "authenticat"}})
}

// run sends c and returns why its answer is wrong ("" when it is right).
func (sw *sweep) run(t *testing.T, c sweepCase) string {
	var body io.Reader
	if c.body != nil {
		body = bytes.NewReader(c.body)
	}
	req, err := http.NewRequestWithContext(sw.e.ctx, c.method, sw.e.s.BaseURL+c.path, body)
	if err != nil {
		return fmt.Sprintf("%s: cannot build the request: %v", c.name, err)
	}
	req.Header = c.header.Clone()
	resp, err := sw.client.Do(req)
	if err != nil {
		return fmt.Sprintf("%s: %v (no answer)", c.name, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	got := fmt.Sprintf("%s: %d %s", c.name, resp.StatusCode, clip(b))
	switch {
	case resp.StatusCode >= 500:
		return got + " (5xx)"
	case c.redirect:
		loc, err := url.Parse(resp.Header.Get("Location"))
		if resp.StatusCode != http.StatusFound || err != nil {
			return got + " (want a 302 to the UI)"
		}
		if s := loc.Query().Get("google_oauth"); s == "" || s == "connected" {
			return got + " (want an error status in " + resp.Header.Get("Location") + ")"
		}
		return ""
	case c.ack && resp.StatusCode >= 200 && resp.StatusCode < 300:
		return ""
	case resp.StatusCode < 400:
		return got + " (want a 4xx)"
	}
	lower := strings.ToLower(string(b))
	for _, w := range c.want {
		if strings.Contains(lower, strings.ToLower(w)) {
			return ""
		}
	}
	return got + fmt.Sprintf(" (the body names none of %q)", c.want)
}

func clip(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "…"
	}
	return string(b)
}

// rowCounts counts the rows of every table of every service schema (River's queue tables included:
// a refused notification enqueues no sync).
func rowCounts(t *testing.T, e *env) map[string]int {
	t.Helper()
	pool := e.s.App.Deps().Pool
	rows, err := pool.Query(e.ctx, `SELECT table_schema, table_name FROM information_schema.tables
		WHERE table_schema IN ('secrets', 'oauth', 'gmail', 'calendar', 'maintenance') AND table_type = 'BASE TABLE'
		ORDER BY 1, 2`)
	require.NoError(t, err)
	var tables [][2]string
	for rows.Next() {
		var s, n string
		require.NoError(t, rows.Scan(&s, &n))
		tables = append(tables, [2]string{s, n})
	}
	require.NoError(t, rows.Err())
	require.NotEmpty(t, tables)
	counts := map[string]int{}
	for _, tb := range tables {
		q := "SELECT count(*) FROM " + pgx.Identifier{tb[0], tb[1]}.Sanitize()
		switch tb[1] {
		case "river_leader":
			continue // River's leader lease, re-taken on its own schedule: not stored input
		case "river_job":
			// The periodic sweepers (every few seconds) insert their own runs: every other job counts.
			q += ` WHERE NOT metadata @> '{"periodic": true}'`
			if tb[0] == "maintenance" {
				// The scheduled pass's per-tenant jobs (the River tick runs on start, whenever the
				// leader is elected): a request can only cause a manual run, counted in runs.
				q += ` AND kind <> 'google_maintenance_tenant'`
			}
		case "runs":
			if tb[0] == "maintenance" {
				q += ` WHERE trigger = 'manual'` // scheduled runs are the worker's own, not input
			}
		case "run_providers", "run_steps":
			if tb[0] == "maintenance" {
				q += ` WHERE run_id IN (SELECT id FROM maintenance.runs WHERE trigger = 'manual')`
			}
		}
		var n int
		require.NoError(t, pool.QueryRow(e.ctx, q).Scan(&n))
		counts[tb[0]+"."+tb[1]] = n
	}
	return counts
}
