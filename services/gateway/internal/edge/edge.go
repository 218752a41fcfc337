// Package edge refuses malformed HTTP input at the gateway before it reaches grpc-gateway or a service:
// request bodies over their route class's limit (413, after draining so the client reads the answer
// instead of a connection reset), path and query parameters that are not valid UTF-8 or hold NUL bytes
// (grpc-gateway would put them into a proto string, which then fails to marshal: a 500), header values
// gRPC metadata cannot carry, bodies that are not JSON. Every refusal is the API's usual error JSON:
// InvalidArgument with an INVALID_FIELD ErrorInfo naming the parameter, header, or "body".
package edge

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/algapsa/alga-google/gen/validation"
)

// BodyLimit is the largest body a class of routes accepts.
type BodyLimit struct {
	// Prefix selects the routes (longest matching prefix wins).
	Prefix string
	// Class names the routes in the 413 answer ("API", "Gmail push", …).
	Class string
	Limit int64
}

// DrainLimit is how much of an oversized body the gateway still reads (and discards) before it answers
// 413. A client that sends its whole body before reading the answer — most do — would otherwise see the
// connection reset: closing a socket with unread data makes the kernel send RST, which discards the 413
// the client has not read yet. Past DrainLimit the gateway answers and closes anyway (bounded work per
// request; ALGA_HTTP_READ_TIMEOUT bounds the time).
const DrainLimit = 32 << 20

// LimitBodies reads each request's body up to its class's limit before next sees it: a body over the
// limit is answered 413 naming the limit; one within it is handed on in memory (so no handler can read
// past the limit or be cut off halfway). Requests no limit's prefix matches pass untouched.
func LimitBodies(limits []BodyLimit, next http.Handler) http.Handler {
	sorted := append([]BodyLimit(nil), limits...)
	sort.Slice(sorted, func(i, j int) bool { return len(sorted[i].Prefix) > len(sorted[j].Prefix) })
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var l *BodyLimit
		for i := range sorted {
			if strings.HasPrefix(r.URL.Path, sorted[i].Prefix) {
				l = &sorted[i]
				break
			}
		}
		if l == nil || r.Body == nil || r.Body == http.NoBody {
			next.ServeHTTP(w, r)
			return
		}
		if r.ContentLength > l.Limit {
			tooLarge(w, r, l)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, l.Limit+1))
		if err != nil {
			// The client went away or was too slow (read timeout): there is no one to answer, but say why.
			WriteError(w, http.StatusBadRequest, validation.Invalid("body", "could not be read completely"))
			return
		}
		if int64(len(body)) > l.Limit {
			tooLarge(w, r, l)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		next.ServeHTTP(w, r)
	})
}

func tooLarge(w http.ResponseWriter, r *http.Request, l *BodyLimit) {
	// A client waiting for "100 Continue" has sent nothing yet: answer at once and it never sends.
	if !strings.EqualFold(r.Header.Get("Expect"), "100-continue") {
		n, _ := io.Copy(io.Discard, io.LimitReader(r.Body, DrainLimit))
		if n >= DrainLimit {
			w.Header().Set("Connection", "close")
		}
	}
	WriteError(w, http.StatusRequestEntityTooLarge, validation.Invalid("body",
		"is larger than the limit of %d bytes (%s) for %s requests", l.Limit, size(l.Limit), l.Class))
}

func size(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}

// WriteError answers err in the JSON shape grpc-gateway gives every API error (code, message, details
// with the ErrorInfo naming the field), with the HTTP status code.
func WriteError(w http.ResponseWriter, code int, err *validation.FieldError) {
	b, merr := protojson.MarshalOptions{UseProtoNames: true}.Marshal(err.GRPCStatus().Proto())
	if merr != nil {
		b = []byte(`{"code":3,"message":"invalid request"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write(b)
}

// Request is what CheckRequest inspects besides the URL.
type Request struct {
	// PathParams are the route's decoded path parameters by name.
	PathParams map[string]string
	// Metadata reports the gRPC metadata key a header is forwarded as (grpc-gateway's header matcher).
	Metadata func(header string) (string, bool)
	// JSONBody: the route decodes its body as JSON (the grpc-gateway API routes, not the raw webhooks).
	JSONBody bool
}

// CheckRequest returns the first malformed part of r: a path or query parameter that is not valid UTF-8
// or holds a NUL byte, a header forwarded as gRPC metadata that is not printable ASCII, a Google
// header (X-Goog-*) that is not valid UTF-8, or — for JSON routes — a body that is not valid UTF-8 JSON
// or has a Content-Type that is not JSON. r.Body must be re-readable (LimitBodies made it so).
func CheckRequest(r *http.Request, req Request) *validation.FieldError {
	names := make([]string, 0, len(req.PathParams))
	for name := range req.PathParams {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if !cleanText(req.PathParams[name]) {
			return validation.Invalid(name, "must be valid UTF-8 without NUL bytes (path parameter)")
		}
	}
	query, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return validation.Invalid("query", "is not a well-formed URL query (bad %%-escape or separator)")
	}
	keys := make([]string, 0, len(query))
	for k := range query {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !cleanText(k) || len(k) > 128 {
			return validation.Invalid("query", "has a parameter name that is not valid UTF-8, holds NUL bytes or is longer than 128 bytes")
		}
		for _, v := range query[k] {
			if !cleanText(v) {
				return validation.Invalid(k, "must be valid UTF-8 without NUL bytes (query parameter)")
			}
		}
	}
	headers := make([]string, 0, len(r.Header))
	for h := range r.Header {
		headers = append(headers, h)
	}
	sort.Strings(headers)
	for _, h := range headers {
		forwarded := false
		if req.Metadata != nil {
			_, forwarded = req.Metadata(h)
		}
		google := strings.HasPrefix(http.CanonicalHeaderKey(h), "X-Goog-")
		for _, v := range r.Header[h] {
			if forwarded && !printableASCII(v) {
				return validation.Invalid("header "+http.CanonicalHeaderKey(h), "must be printable ASCII")
			}
			if google && !cleanText(v) {
				return validation.Invalid("header "+http.CanonicalHeaderKey(h), "must be valid UTF-8 without NUL bytes")
			}
		}
	}
	if req.JSONBody && r.Body != nil && r.Body != http.NoBody {
		return checkJSONBody(r)
	}
	return nil
}

func checkJSONBody(r *http.Request) *validation.FieldError {
	body, err := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	if err != nil {
		return validation.Invalid("body", "could not be read completely")
	}
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return nil // grpc-gateway reads an empty body as an empty request
	}
	if ct := r.Header.Get("Content-Type"); ct != "" && !jsonContentType(ct) {
		return validation.Invalid("header Content-Type", "must be application/json")
	}
	if !utf8.Valid(body) {
		return validation.Invalid("body", "must be valid UTF-8")
	}
	if !json.Valid(body) {
		return validation.Invalid("body", "is not valid JSON")
	}
	if trimmed[0] != '{' {
		// Every request message is a JSON object (grpc-gateway would answer "unexpected token [").
		return validation.Invalid("body", "must be a JSON object")
	}
	return nil
}

// jsonContentType accepts JSON media types, and curl's default for -d (the README's examples send JSON
// that way), which grpc-gateway decodes as JSON too.
func jsonContentType(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	return mt == "application/json" || strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json") ||
		mt == "application/x-www-form-urlencoded"
}

// cleanText: valid UTF-8 and no NUL byte (which no text field of the API can mean, and which PostgreSQL
// text refuses).
func cleanText(s string) bool {
	return utf8.ValidString(s) && strings.IndexByte(s, 0) < 0
}

// printableASCII is what gRPC accepts in a non-binary metadata value (grpc-go refuses the call otherwise,
// with Internal).
func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 0x20 && c != '\t') || c > 0x7e {
			return false
		}
	}
	return true
}
