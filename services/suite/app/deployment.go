package app

import (
	"log/slog"
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/algapsa/alga-google/services/platform/config"
	"github.com/algapsa/alga-google/services/platform/grpcserver"
	"github.com/algapsa/alga-google/services/platform/target"
)

// What a deployment of the binary must provide and allow, derived from the targets themselves, so the
// Kubernetes manifests (deploy/, and their test) are checked against the binary rather than against a
// list copied into the test.

// CallerUsers stands for browser users in Callers: they reach a target only through the gateway, which
// forwards their token.
const CallerUsers = "users"

// Callers returns, for each target serving gRPC, who its access table admits: service identities
// (auth.Svc*), and CallerUsers when some RPC is the browser's. It registers each target on a server of
// its own and reads the rule of every method the target registered, so it is what the running binary
// enforces. Targets without gRPC services (the gateway) are absent.
func Callers() map[string][]string {
	out := map[string][]string{}
	for _, name := range AllTargets {
		srv := grpcserver.New(grpcserver.Options{Logger: slog.New(slog.DiscardHandler), Registerer: prometheus.NewRegistry()})
		before := srv.GRPC.GetServiceInfo()
		Registry[name]().Register(srv)
		var callers []string
		for svc, info := range srv.GRPC.GetServiceInfo() {
			if _, ok := before[svc]; ok {
				continue // health and reflection, served by every process
			}
			for _, m := range info.Methods {
				rule, ok := srv.RuleOf("/" + svc + "/" + m.Name)
				if !ok {
					continue // refused to everyone
				}
				if rule.Users {
					callers = append(callers, CallerUsers)
				}
				callers = append(callers, rule.Services...)
			}
		}
		if len(callers) > 0 {
			slices.Sort(callers)
			out[name] = slices.Compact(callers)
		}
	}
	return out
}

// Peers returns the targets target name calls over gRPC: those whose access table admits its identity
// (target.Identity), and for the gateway also those admitting browser users, whose calls it forwards
// (and whose readiness /readyz checks). Sorted.
func Peers(name string) []string {
	var out []string
	for callee, callers := range Callers() {
		if callee == name {
			continue
		}
		if slices.Contains(callers, target.Identity(name)) || (name == target.Gateway && slices.Contains(callers, CallerUsers)) {
			out = append(out, callee)
		}
	}
	slices.Sort(out)
	return out
}

// Job runners (ALGA_JOB_RUNNER).
const (
	RunnerRiver    = "river"
	RunnerTemporal = "temporal"
)

// RequiredSettings lists the environment variables a process running targets names needs under the
// job runner given (river or temporal): each entry is a set of alternatives, one of which must be set.
// Settings with a usable default are not listed, except where the default only suits one process
// (peer addresses default to localhost; Temporal's address to a local dev server). Peers running in
// the same process need no address.
func RequiredSettings(names []string, runner string) [][]string {
	req := [][]string{
		{"ALGA_BASE_URL"},          // urls.Parse refuses an empty base URL
		{"ALGA_SERVICE_TOKEN_KEY"}, // outside --dev, CheckServiceKey refuses a missing key
		{"ALGA_AUTH_HS256_KEY", "ALGA_AUTH_JWKS"},
	}
	local := map[string]bool{}
	for _, n := range names {
		local[n] = true
	}
	database := false
	peers := map[string]bool{}
	for _, n := range names {
		if Registry[n]().Migrations() != nil {
			database = true
		}
		for _, p := range Peers(n) {
			if !local[p] {
				peers[p] = true
			}
		}
	}
	if database {
		req = append(req, []string{"DATABASE_URL"})
	}
	if local[target.Secrets] {
		req = append(req, []string{"ALGA_SECRETS_KEK", "ALGA_SECRETS_KEK_FILE"})
	}
	for _, p := range AllTargets {
		if peers[p] {
			req = append(req, []string{config.PeerAddrEnv(p)})
		}
	}
	// Under Temporal, oauth tells the worker of a saved setup and the worker runs the schedules: both
	// must be told the runner (its default is river), and the worker where Temporal is.
	if runner == RunnerTemporal && (local[target.Worker] || local[target.OAuth]) {
		req = append(req, []string{"ALGA_JOB_RUNNER"})
	}
	if runner == RunnerTemporal && local[target.Worker] {
		req = append(req, []string{"TEMPORAL_ADDRESS"}, []string{"TEMPORAL_NAMESPACE"})
	}
	return req
}
