package deploy

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/algapsa/alga-google/services/suite/app"
)

// The calls between targets that issue #14 lists: "gateway → oauth, gmail, calendar; services →
// secrets and oauth; worker → … the services". "Services → secrets and oauth" is read as the targets
// that do call them (the others' calls would be refused by the callee's access table anyway).
var issueCalls = [][2]string{
	{"gateway", "oauth"}, {"gateway", "gmail"}, {"gateway", "calendar"},
	{"gateway", "secrets"}, {"oauth", "secrets"}, {"gmail", "secrets"},
	{"gmail", "oauth"}, {"calendar", "oauth"}, {"worker", "oauth"},
	{"worker", "gmail"}, {"worker", "calendar"},
}

// beyondIssue are calls the issue's list leaves out that the binary makes; without them the product
// breaks:
//   - gateway → worker: the maintenance API (POST /api/v1/google/maintenance:run, GET …) and /readyz;
//   - oauth → gmail, calendar: a callback activates the provider, Reset providers stops watches;
//   - oauth → worker: a saved setup updates the tenant's Temporal schedule.
var beyondIssue = [][2]string{{"gateway", "worker"}, {"oauth", "gmail"}, {"oauth", "calendar"}, {"oauth", "worker"}}

// Peers outside the namespace, as the policies name them (namespace label kubernetes.io/metadata.name).
const (
	peerIngress    = "ns:ingress-nginx"                 // the ingress controller: browsers and Google
	peerPlatform   = "ns:alga-psa"                      // the PSA platform, reading the inbound feeds
	peerMonitoring = "ns:monitoring"                    // Prometheus
	peerDNS        = "ns:kube-system[k8s-app=kube-dns]" // cluster DNS
	peerTemporal   = "ns:temporal"                      // Temporal's frontend
	peerInternet   = "internet"                         // public addresses only: Google's APIs
	peerAny        = "any"                              // a rule without peers: the external PostgreSQL
	postgresPort   = 5432
)

// externalCallers maps the service identities of the access tables that are not targets to the peer
// their calls come from; "" for none over the network (the operator's `alga-google maintenance`
// command runs inside a worker pod: kubectl exec, at localhost).
var externalCallers = map[string]string{"platform": peerPlatform, "cli": "", app.CallerUsers: ""}

// The call graph of the test is the binary's: each call the access tables admit, and no other.
func TestCallGraphIsTheBinarys(t *testing.T) {
	var want, got []string
	for _, c := range append(slices.Clone(issueCalls), beyondIssue...) {
		want = append(want, c[0]+" -> "+c[1])
	}
	for _, a := range app.AllTargets {
		for _, p := range app.Peers(a) {
			got = append(got, a+" -> "+p)
		}
	}
	diff(t, "calls between targets", want, got)
	targets := map[string]bool{}
	for _, tg := range app.AllTargets {
		targets[tg] = true
	}
	for callee, callers := range app.Callers() {
		for _, c := range callers {
			if _, ok := externalCallers[c]; !ok && !targets[c] && c != "maintenance" {
				t.Errorf("%s admits %s, which is neither a target nor a known outside caller", callee, c)
			}
		}
	}
}

// checkNetworkPolicies: the policies admit exactly the expected graph, ingress and egress.
func checkNetworkPolicies(t *testing.T, r *rendered, ws []*workload) {
	wantIn, wantOut := expectedGraph(t, ws)
	gotIn, gotOut := policyGraph(t, r, ws)
	diff(t, "ingress", wantIn, gotIn)
	diff(t, "egress", wantOut, gotOut)
}

// expectedGraph is the issue's list (plus beyondIssue) on this layout's workloads: a call between two
// targets of one workload stays in the process.
func expectedGraph(t *testing.T, ws []*workload) (ingress, egress []string) {
	node := map[string]*workload{}
	for _, w := range ws {
		for _, tg := range w.targets {
			node[tg] = w
		}
	}
	edge := func(from, to string, port int32, proto string) string {
		return fmt.Sprintf("%s -> %s:%d/%s", from, to, port, proto)
	}
	for _, c := range append(slices.Clone(issueCalls), beyondIssue...) {
		a, b := node[c[0]], node[c[1]]
		if a == b {
			continue
		}
		port := b.listenPort(t, "ALGA_GRPC_ADDR")
		egress = append(egress, edge(a.component, b.component, port, "TCP"))
		ingress = append(ingress, edge(a.component, b.component, port, "TCP"))
	}
	gw := node["gateway"]
	ingress = append(ingress, edge(peerIngress, gw.component, gw.listenPort(t, "ALGA_HTTP_ADDR"), "TCP"))
	for callee, callers := range app.Callers() {
		if slices.Contains(callers, "platform") {
			ingress = append(ingress, edge(peerPlatform, node[callee].component, node[callee].listenPort(t, "ALGA_GRPC_ADDR"), "TCP"))
		}
	}
	run := runner(t, ws)
	for _, w := range ws {
		egress = append(egress, edge(w.component, peerDNS, 53, "UDP"), edge(w.component, peerDNS, 53, "TCP"))
		needsDB := w.command == "migrate"
		for _, alts := range app.RequiredSettings(w.targets, run) {
			needsDB = needsDB || slices.Contains(alts, "DATABASE_URL")
		}
		if needsDB {
			egress = append(egress, edge(w.component, peerAny, postgresPort, "TCP"))
		}
		if w.command != "serve" {
			continue
		}
		ingress = append(ingress, edge(peerMonitoring, w.component, w.listenPort(t, "ALGA_METRICS_ADDR"), "TCP"))
		egress = append(egress, edge(w.component, peerInternet, 443, "TCP"))
		if w.runs("worker") && run == app.RunnerTemporal {
			egress = append(egress, edge(w.component, peerTemporal, temporalPort(t, w), "TCP"))
		}
	}
	return ingress, egress
}

// privateRanges must be excepted from the internet rule: the cluster's own networks and the cloud
// metadata address are no business of a pod talking to Google.
var privateRanges = []string{"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"}

// policyGraph evaluates the rendered NetworkPolicies on the layout's workloads.
func policyGraph(t *testing.T, r *rendered, ws []*workload) (ingress, egress []string) {
	governed := map[string]map[networkingv1.PolicyType]bool{}
	for _, np := range r.networkPolicies {
		sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
		if err != nil {
			t.Fatalf("NetworkPolicy %s: %v", np.Name, err)
		}
		var selected []*workload
		for _, w := range ws {
			if sel.Matches(labels.Set(w.pod.Labels)) {
				selected = append(selected, w)
			}
		}
		if len(selected) == 0 {
			t.Errorf("NetworkPolicy %s selects no pod", np.Name)
		}
		for _, w := range selected {
			if governed[w.component] == nil {
				governed[w.component] = map[networkingv1.PolicyType]bool{}
			}
			for _, pt := range np.Spec.PolicyTypes {
				governed[w.component][pt] = true
			}
		}
		for _, rule := range np.Spec.Ingress {
			for _, peer := range peerNames(t, np.Name, ws, rule.From) {
				for _, port := range portNames(t, np.Name, rule.Ports) {
					for _, w := range selected {
						ingress = append(ingress, peer+" -> "+w.component+":"+port)
					}
				}
			}
		}
		for _, rule := range np.Spec.Egress {
			for _, peer := range peerNames(t, np.Name, ws, rule.To) {
				for _, port := range portNames(t, np.Name, rule.Ports) {
					for _, w := range selected {
						egress = append(egress, w.component+" -> "+peer+":"+port)
					}
				}
			}
		}
	}
	for _, w := range ws {
		if !governed[w.component][networkingv1.PolicyTypeIngress] || !governed[w.component][networkingv1.PolicyTypeEgress] {
			t.Errorf("%s %s: not governed by policies of both types (anything not denied is allowed)", w.kind, w.name)
		}
	}
	return ingress, egress
}

func peerNames(t *testing.T, policy string, ws []*workload, peers []networkingv1.NetworkPolicyPeer) []string {
	if len(peers) == 0 {
		return []string{peerAny}
	}
	var out []string
	for _, p := range peers {
		switch {
		case p.IPBlock != nil:
			if p.IPBlock.CIDR != "0.0.0.0/0" {
				out = append(out, "cidr:"+p.IPBlock.CIDR)
				continue
			}
			for _, r := range privateRanges {
				if !slices.Contains(p.IPBlock.Except, r) {
					t.Errorf("NetworkPolicy %s: 0.0.0.0/0 without excepting %s", policy, r)
				}
			}
			out = append(out, peerInternet)
		case p.NamespaceSelector != nil:
			ns := p.NamespaceSelector
			name, ok := ns.MatchLabels["kubernetes.io/metadata.name"]
			if !ok || len(ns.MatchLabels) != 1 || len(ns.MatchExpressions) != 0 {
				t.Errorf("NetworkPolicy %s: a namespace is named by kubernetes.io/metadata.name alone", policy)
			}
			peer := "ns:" + name
			if p.PodSelector != nil {
				var kv []string
				for k, v := range p.PodSelector.MatchLabels {
					kv = append(kv, k+"="+v)
				}
				sort.Strings(kv)
				peer += "[" + strings.Join(kv, ",") + "]"
			}
			out = append(out, peer)
		case p.PodSelector != nil:
			sel, err := metav1.LabelSelectorAsSelector(p.PodSelector)
			if err != nil {
				t.Fatalf("NetworkPolicy %s: %v", policy, err)
			}
			n := 0
			for _, w := range ws {
				if sel.Matches(labels.Set(w.pod.Labels)) {
					out = append(out, w.component)
					n++
				}
			}
			if n == 0 {
				out = append(out, "pods:"+sel.String()) // selects nothing: shown in the diff
			}
		}
	}
	return out
}

func portNames(t *testing.T, policy string, ports []networkingv1.NetworkPolicyPort) []string {
	if len(ports) == 0 {
		return []string{"*"}
	}
	var out []string
	for _, p := range ports {
		proto := "TCP"
		if p.Protocol != nil {
			proto = string(*p.Protocol)
		}
		if p.Port == nil || p.Port.Type != intstr.Int || p.EndPort != nil {
			t.Errorf("NetworkPolicy %s: ports are single numbers here", policy)
			continue
		}
		out = append(out, fmt.Sprintf("%d/%s", p.Port.IntVal, proto))
	}
	return out
}

// diff fails with what is missing and what is extra.
func diff(t *testing.T, what string, want, got []string) {
	t.Helper()
	w, g := set(want), set(got)
	var missing, extra []string
	for k := range w {
		if !g[k] {
			missing = append(missing, k)
		}
	}
	for k := range g {
		if !w[k] {
			extra = append(extra, k)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing)+len(extra) > 0 {
		t.Errorf("%s: missing %d:\n  %s\nextra %d:\n  %s", what, len(missing), strings.Join(missing, "\n  "), len(extra), strings.Join(extra, "\n  "))
	}
}

func set(xs []string) map[string]bool {
	m := map[string]bool{}
	for _, x := range xs {
		m[x] = true
	}
	return m
}
