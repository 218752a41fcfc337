package sandbox

import (
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/algapsa/alga-google/services/googlesandbox/internal/api"
)

type faultState struct {
	api.Fault
	calls     int64 // matching calls seen
	remaining int   // for Times > 0
}

// faultDecision is what a fault asks a call to do.
type faultDecision struct {
	Latency    time.Duration
	Status     int    // 429 or 5xx, 0 = none
	RetryAfter int    // seconds for the Retry-After header of Status, 0 = none
	ForceError string // "" = none
	Drop       bool
}

func endpointMatches(pattern, endpoint string) bool {
	if pattern == "*" || pattern == endpoint {
		return true
	}
	if p, ok := strings.CutSuffix(pattern, "*"); ok {
		return strings.HasPrefix(endpoint, p)
	}
	return false
}

// fires reports whether a deterministic rate fires on call n (1-based): when ceil(n*rate) grows.
func fires(rate float64, n int64) bool {
	if rate <= 0 {
		return false
	}
	if rate >= 1 {
		return true
	}
	return math.Ceil(float64(n)*rate-1e-9) > math.Ceil(float64(n-1)*rate-1e-9)
}

// count records one call of endpoint by key (a client id, mailbox, subscription, ...). Caller holds s.mu.
func (s *Server) count(endpoint, key string) {
	s.counters[endpoint]++
	if key == "" {
		key = "-"
	}
	s.counters[endpoint+"|"+key]++
}

// decide evaluates the faults for one call known under one or more endpoint names. Caller holds s.mu.
func (s *Server) decide(clientID string, endpoints ...string) faultDecision {
	var d faultDecision
	kept := s.faults[:0]
	for _, f := range s.faults {
		match := false
		for _, e := range endpoints {
			if endpointMatches(f.Endpoint, e) {
				match = true
			}
		}
		if !match || (f.ClientID != "" && f.ClientID != clientID) {
			kept = append(kept, f)
			continue
		}
		f.calls++
		acted := false
		if f.Latency > d.Latency {
			d.Latency = f.Latency
			acted = true
		}
		if d.ForceError == "" && d.Status == 0 && !d.Drop {
			switch {
			case f.ForceError != "":
				d.ForceError = f.ForceError
				acted = true
			case f.DropNotifications:
				d.Drop = true
				acted = true
			case fires(f.Rate429, f.calls):
				d.Status, d.RetryAfter = 429, f.RetryAfterSeconds
				acted = true
			case fires(f.Rate5xx, f.calls):
				d.Status, d.RetryAfter = f.Status5xx, f.RetryAfterSeconds
				if d.Status < 500 || d.Status > 599 {
					d.Status = 503
				}
				acted = true
			}
		}
		if acted && f.Times > 0 {
			f.remaining--
			if f.remaining <= 0 {
				continue // used up
			}
		}
		kept = append(kept, f)
	}
	s.faults = kept
	return d
}

// setRetryAfter sends the Retry-After a fault asked for with its injected status.
func (d faultDecision) setRetryAfter(w http.ResponseWriter) {
	if d.Status != 0 && d.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(d.RetryAfter))
	}
}

func (s *Server) addFault(f api.Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &faultState{Fault: f, remaining: f.Times})
}

func (s *Server) clearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

func (s *Server) listFaults() []api.Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []api.Fault{}
	for _, f := range s.faults {
		ff := f.Fault
		if ff.Times > 0 {
			ff.Times = f.remaining
		}
		out = append(out, ff)
	}
	return out
}

func (s *Server) snapshotCounters() map[string]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int64, len(s.counters))
	for k, v := range s.counters {
		out[k] = v
	}
	return out
}

func (s *Server) resetCounters() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counters = map[string]int64{}
}

// forcedAPIStatus maps a ForceError value at an API endpoint to an HTTP status, reason and message.
func forcedAPIStatus(v string) (int, string, string) {
	switch strings.ToLower(v) {
	case "not_found", "notfound":
		return 404, "notFound", "Requested entity was not found."
	case "gone", "fullsyncrequired", "full_sync_required", "sync_token_expired":
		return 410, "fullSyncRequired", "Sync token is no longer valid, a full sync is required."
	case "unauthenticated", "invalid_token", "autherror":
		return 401, "authError", "Invalid Credentials"
	case "forbidden", "permission_denied":
		return 403, "forbidden", "The caller does not have permission"
	case "bad_request", "invalid", "invalid_argument":
		return 400, "invalid", "Invalid argument"
	case "rate_limited", "ratelimitexceeded", "rate_limit_exceeded":
		return 429, "rateLimitExceeded", "Rate Limit Exceeded"
	case "backend_error", "backenderror", "internal":
		return 500, "backendError", "Backend Error"
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 400 && n <= 599 {
		return n, "forced", "Forced error"
	}
	return 500, "backendError", "Backend Error (" + v + ")"
}

func sortedKeys[M ~map[string]V, V any](m M) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
