package deploy

import (
	"encoding/base64"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/algapsa/alga-google/services/platform/config"
	"github.com/algapsa/alga-google/services/suite/app"
)

const namespace = "alga-google"

// TestLayouts renders each layout and checks it against the binary.
func TestLayouts(t *testing.T) {
	for _, dir := range layouts {
		t.Run(dir, func(t *testing.T) {
			r := render(t, dir)
			ws := workloads(t, r)
			if len(r.namespaces) != 1 || r.namespaces[0].Name != namespace {
				t.Fatalf("want the one namespace %s", namespace)
			}
			t.Run("every target deployed once", func(t *testing.T) { checkTargets(t, ws) })
			t.Run("environment", func(t *testing.T) { checkEnv(t, ws) })
			t.Run("peer addresses", func(t *testing.T) { checkPeers(t, r, ws) })
			t.Run("ports and probes", func(t *testing.T) { checkPortsAndProbes(t, ws) })
			t.Run("no secret inlined", func(t *testing.T) { checkNoInlinedSecret(t, r, ws) })
			t.Run("pod security", func(t *testing.T) { checkSecurity(t, ws) })
			t.Run("resources", func(t *testing.T) { checkResources(t, ws) })
			t.Run("disruption budgets and autoscalers", func(t *testing.T) { checkScaling(t, r, ws) })
			t.Run("ingress", func(t *testing.T) { checkIngress(t, r, ws) })
			t.Run("network policies", func(t *testing.T) { checkNetworkPolicies(t, r, ws) })
		})
	}
}

func checkTargets(t *testing.T, ws []*workload) {
	deployed := map[string]string{}
	for _, w := range ws {
		for _, tg := range w.targets {
			if other, dup := deployed[tg]; dup {
				t.Errorf("target %s runs in Deployment %s and %s", tg, other, w.name)
			}
			deployed[tg] = w.name
		}
	}
	for _, tg := range app.AllTargets {
		if _, ok := deployed[tg]; !ok {
			t.Errorf("target %s is deployed nowhere", tg)
		}
	}
	migrate := 0
	for _, w := range ws {
		if w.command == "migrate" {
			migrate++
		}
		if w.kind == "Deployment" && w.setting("ALGA_MIGRATE_ON_START") != "false" {
			t.Errorf("Deployment %s migrates on start: the migrate Job runs migrations before a rollout", w.name)
		}
	}
	if migrate != 1 {
		t.Errorf("%d migrate Jobs, want 1", migrate)
	}
}

// checkEnv: every variable the binary requires for the workload's targets is provided, and every one
// provided is a setting its command documents.
func checkEnv(t *testing.T, ws []*workload) {
	run := runner(t, ws)
	for _, w := range ws {
		documented := bin.serve
		required := app.RequiredSettings(w.targets, run)
		if w.command == "migrate" {
			documented, required = bin.migrate, [][]string{{"DATABASE_URL"}}
		}
		for name := range w.env {
			if !documented.knows(name) {
				t.Errorf("%s %s: %s is not a setting `alga-google %s --help` documents", w.kind, w.name, name, w.command)
			}
		}
		for _, alts := range required {
			if !slices.ContainsFunc(alts, func(n string) bool { return w.env[n].provided() }) {
				t.Errorf("%s %s (%s): none of %v is provided; the binary requires it", w.kind, w.name, strings.Join(w.targets, ","), alts)
			}
		}
		// File settings name files of mounted Secrets.
		for _, name := range []string{"ALGA_SECRETS_KEK_FILE", "ALGA_GRPC_TLS_CERT", "ALGA_GRPC_TLS_KEY", "ALGA_GRPC_TLS_CA"} {
			if v := w.setting(name); v != "" && !w.fileOnSecret(v) {
				t.Errorf("%s %s: %s=%s is not a file of a Secret mounted read-only", w.kind, w.name, name, v)
			}
		}
	}
}

// checkPeers: each target's peers that run elsewhere are reached at the Service of the Deployment that
// runs them, on the port its gRPC listener has.
func checkPeers(t *testing.T, r *rendered, ws []*workload) {
	for _, w := range ws {
		for _, tg := range w.targets {
			for _, p := range app.Peers(tg) {
				if w.runs(p) {
					continue
				}
				env := config.PeerAddrEnv(p)
				addr := w.setting(env)
				dst, port, err := serviceFor(t, r, ws, namespace, addr)
				if err != nil {
					t.Errorf("%s (%s calls %s): %s=%s: %v", w.name, tg, p, env, addr, err)
					continue
				}
				if !dst.runs(p) {
					t.Errorf("%s: %s=%s reaches Deployment %s, which does not run %s", w.name, env, addr, dst.name, p)
				}
				if port != dst.listenPort(t, "ALGA_GRPC_ADDR") {
					t.Errorf("%s: %s=%s reaches port %d of %s, whose gRPC listener is %s", w.name, env, addr, port, dst.name, dst.setting("ALGA_GRPC_ADDR"))
				}
			}
		}
	}
}

// checkPortsAndProbes: container ports are the binary's listeners; each probe asks a listener the
// workload has for what the binary serves there (HTTP paths: see TestProbePathsAreServed).
func checkPortsAndProbes(t *testing.T, ws []*workload) {
	for _, w := range ws {
		if w.kind != "Deployment" {
			continue
		}
		l := w.listeners(t)
		for _, cp := range w.c.Ports {
			if want, ok := l[cp.Name]; !ok || want != cp.ContainerPort {
				t.Errorf("Deployment %s: container port %s/%d is not a listener of its targets (%v)", w.name, cp.Name, cp.ContainerPort, l)
			}
		}
		if a := w.pod.Annotations; a["prometheus.io/scrape"] == "true" {
			if a["prometheus.io/port"] != itoa(l["metrics"]) || a["prometheus.io/path"] != "/metrics" {
				t.Errorf("Deployment %s: scraped at %s%s, the metrics listener is :%d/metrics", w.name, a["prometheus.io/port"], a["prometheus.io/path"], l["metrics"])
			}
		}
		for kind, p := range map[string]*probe{"readiness": toProbe(w.c.ReadinessProbe), "liveness": toProbe(w.c.LivenessProbe)} {
			if p == nil {
				t.Errorf("Deployment %s: no %s probe", w.name, kind)
				continue
			}
			if p.exec != nil {
				checkExecProbe(t, w, kind, p.exec)
				continue
			}
			port := w.containerPort(t, p.port)
			switch {
			case p.httpPath != "":
				if port != l["http"] || !w.runs("gateway") {
					t.Errorf("Deployment %s: %s probe GET %s on port %d, but the HTTP listener is %v", w.name, kind, p.httpPath, port, l)
				}
				if want := probePaths[kind]; p.httpPath != want {
					t.Errorf("Deployment %s: %s probe GET %s, want %s", w.name, kind, p.httpPath, want)
				}
			case p.grpc:
				if port != l["grpc"] || !w.runs(p.grpcService) {
					t.Errorf("Deployment %s: %s probe asks gRPC health of %q on port %d; it runs %v with gRPC on %d", w.name, kind, p.grpcService, port, w.targets, l["grpc"])
				}
			default: // tcpSocket
				if !slices.Contains(values(l), port) {
					t.Errorf("Deployment %s: %s probe connects to port %d, which no listener has (%v)", w.name, kind, port, l)
				}
			}
		}
	}
}

// checkExecProbe: an exec probe runs `alga-google probe` (the image has no shell), on a target the
// workload runs; TestProbePathsAreServed runs it against the binary.
func checkExecProbe(t *testing.T, w *workload, kind string, cmd []string) {
	if len(cmd) < 2 || cmd[0] != entrypoint(t) || cmd[1] != "probe" {
		t.Errorf("Deployment %s: %s probe runs %v, want %s probe", w.name, kind, cmd, entrypoint(t))
		return
	}
	for _, a := range cmd[2:] {
		if tg, ok := strings.CutPrefix(a, "--target="); ok && !w.runs(tg) {
			t.Errorf("Deployment %s: %s probe asks for %s, which it does not run", w.name, kind, tg)
		}
	}
}

// probePaths are what the gateway serves for each probe: /readyz (ready when every upstream is) and
// /healthz (live). TestProbePathsAreServed asks the binary.
var probePaths = map[string]string{"readiness": "/readyz", "liveness": "/healthz"}

// secretLike are settings whose values are secrets by their name (a key, a KEK and the older ones, a
// token, a password, the database URL with its credentials); a literal may only name a file of a
// mounted Secret (ALGA_GRPC_TLS_KEY is the path of one).
var secretLike = regexp.MustCompile(`(^|_)(KEY|SECRET|PASSWORD|TOKEN|KEK)(_PREVIOUS)?$|^DATABASE_URL$`)

// inlined are values that look like secrets wherever they appear: PEM blocks, credentials in URLs,
// long base64 (a 32-byte key is 44 characters).
var inlined = []*regexp.Regexp{
	regexp.MustCompile(`-----BEGIN`),
	regexp.MustCompile(`://[^/@\s]+:[^/@\s]+@`),
	regexp.MustCompile(`^[A-Za-z0-9+/]{43,}={0,2}$`),
}

func checkNoInlinedSecret(t *testing.T, r *rendered, ws []*workload) {
	for _, cm := range r.configMaps {
		for k, v := range cm.Data {
			if secretLike.MatchString(k) && !isAbs(v) {
				t.Errorf("ConfigMap %s: %s is a secret setting", cm.Name, k)
			}
			checkValue(t, "ConfigMap "+cm.Name+" "+k, v)
		}
		if len(cm.BinaryData) > 0 {
			t.Errorf("ConfigMap %s: binaryData", cm.Name)
		}
	}
	for _, w := range ws {
		for name, e := range w.env {
			if e.secret != nil {
				continue
			}
			if secretLike.MatchString(name) && !(isAbs(e.value) && w.fileOnSecret(e.value)) {
				t.Errorf("%s %s: %s is set to a literal; reference a Secret key (or a file of a mounted Secret)", w.kind, w.name, name)
			}
			checkValue(t, w.kind+" "+w.name+" "+name, e.value)
		}
	}
}

func checkValue(t *testing.T, where, v string) {
	for _, re := range inlined {
		if re.MatchString(v) {
			t.Errorf("%s: the value looks like an inlined secret", where)
		}
	}
	if b, err := base64.StdEncoding.DecodeString(v); err == nil && len(b) >= 32 {
		t.Errorf("%s: the value is a base64 key", where)
	}
}

func checkSecurity(t *testing.T, ws []*workload) {
	for _, w := range ws {
		ps, cs := w.pod.Spec.SecurityContext, w.c.SecurityContext
		nonRoot := (ps != nil && ps.RunAsNonRoot != nil && *ps.RunAsNonRoot) || (cs != nil && cs.RunAsNonRoot != nil && *cs.RunAsNonRoot)
		if !nonRoot {
			t.Errorf("%s %s: runAsNonRoot is not true", w.kind, w.name)
		}
		for _, uid := range []*int64{ptrUser(ps), ptrUserC(cs)} {
			if uid != nil && *uid == 0 {
				t.Errorf("%s %s: runs as uid 0", w.kind, w.name)
			}
		}
		if cs == nil || cs.ReadOnlyRootFilesystem == nil || !*cs.ReadOnlyRootFilesystem {
			t.Errorf("%s %s: the root filesystem is not read-only", w.kind, w.name)
		}
		if cs == nil || cs.AllowPrivilegeEscalation == nil || *cs.AllowPrivilegeEscalation {
			t.Errorf("%s %s: privilege escalation is not refused", w.kind, w.name)
		}
		if cs != nil && cs.Privileged != nil && *cs.Privileged {
			t.Errorf("%s %s: privileged", w.kind, w.name)
		}
		if cs == nil || cs.Capabilities == nil || !slices.Contains(cs.Capabilities.Drop, "ALL") || len(cs.Capabilities.Add) > 0 {
			t.Errorf("%s %s: capabilities are not all dropped", w.kind, w.name)
		}
		if w.pod.Spec.AutomountServiceAccountToken == nil || *w.pod.Spec.AutomountServiceAccountToken {
			t.Errorf("%s %s: mounts a service-account token it never uses", w.kind, w.name)
		}
		if w.pod.Spec.HostNetwork || w.pod.Spec.HostPID || w.pod.Spec.HostIPC {
			t.Errorf("%s %s: shares a host namespace", w.kind, w.name)
		}
	}
}

func checkResources(t *testing.T, ws []*workload) {
	for _, w := range ws {
		res := w.c.Resources
		for _, name := range []string{"cpu", "memory"} {
			rq, okr := res.Requests[corev1ResourceName(name)]
			lm, okl := res.Limits[corev1ResourceName(name)]
			if !okr || !okl || rq.Cmp(lm) > 0 || rq.IsZero() {
				t.Errorf("%s %s: %s request %v and limit %v, want both, request <= limit", w.kind, w.name, name, rq.String(), lm.String())
			}
		}
	}
}

// checkScaling: several replicas of a Deployment have a disruption budget; the stateless targets (all
// but the worker) scale on an autoscaler aimed at their Deployment. A Deployment an autoscaler manages
// sets no spec.replicas (every kubectl apply would reset the count the autoscaler chose); any other
// states its count.
func checkScaling(t *testing.T, r *rendered, ws []*workload) {
	for _, w := range ws {
		if w.kind != "Deployment" {
			continue
		}
		d := deploymentNamed(r, w.name)
		hpas := hpasOf(r, w.name)
		switch {
		case len(hpas) > 1:
			t.Errorf("Deployment %s: %d HorizontalPodAutoscalers, want at most 1", w.name, len(hpas))
		case len(hpas) == 1 && d.Spec.Replicas != nil:
			t.Errorf("Deployment %s: spec.replicas %d, but HorizontalPodAutoscaler %s manages its count: every apply would reset it", w.name, *d.Spec.Replicas, hpas[0].Name)
		case len(hpas) == 0 && d.Spec.Replicas == nil:
			t.Errorf("Deployment %s: no spec.replicas and no HorizontalPodAutoscaler", w.name)
		}
		for _, h := range hpas {
			if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas < 1 || h.Spec.MaxReplicas < *h.Spec.MinReplicas {
				t.Errorf("HorizontalPodAutoscaler %s: min %v max %d", h.Name, h.Spec.MinReplicas, h.Spec.MaxReplicas)
			}
		}
		if replicas := replicaFloor(r, w.name); replicas > 1 {
			n := 0
			for _, p := range r.pdbs {
				sel, err := metav1LabelSelector(p.Spec.Selector)
				if err == nil && sel.Matches(labels.Set(w.pod.Labels)) {
					n++
				}
			}
			if n != 1 {
				t.Errorf("Deployment %s: %d replicas, %d PodDisruptionBudgets (want 1)", w.name, replicas, n)
			}
		}
		if len(w.targets) == 1 && !w.runs("worker") && len(hpas) == 0 {
			t.Errorf("Deployment %s (stateless) has no HorizontalPodAutoscaler", w.name)
		}
	}
	for _, h := range r.hpas {
		if deploymentNamed(r, h.Spec.ScaleTargetRef.Name) == nil {
			t.Errorf("HorizontalPodAutoscaler %s scales %s, which is not deployed", h.Name, h.Spec.ScaleTargetRef.Name)
		}
	}
}

// hpasOf returns the autoscalers aimed at Deployment name.
func hpasOf(r *rendered, name string) []*autoscalingv2.HorizontalPodAutoscaler {
	var out []*autoscalingv2.HorizontalPodAutoscaler
	for _, h := range r.hpas {
		if h.Spec.ScaleTargetRef.Kind == "Deployment" && h.Spec.ScaleTargetRef.Name == name {
			out = append(out, h)
		}
	}
	return out
}

// replicaFloor is the fewest replicas Deployment name runs: its autoscaler's minimum, else its
// spec.replicas (1 when unset, as Kubernetes defaults it).
func replicaFloor(r *rendered, name string) int32 {
	if h := hpasOf(r, name); len(h) > 0 && h[0].Spec.MinReplicas != nil {
		return *h[0].Spec.MinReplicas
	}
	if d := deploymentNamed(r, name); d != nil && d.Spec.Replicas != nil {
		return *d.Spec.Replicas
	}
	return 1
}

// checkIngress: the Ingress reaches the gateway's HTTP listener, and only it.
func checkIngress(t *testing.T, r *rendered, ws []*workload) {
	if len(r.ingresses) != 1 {
		t.Fatalf("%d Ingresses, want 1 (the gateway's)", len(r.ingresses))
	}
	// Google calls back and pushes to ALGA_BASE_URL's host: the Ingress serves it, over TLS.
	base, err := url.Parse(ws[0].setting("ALGA_BASE_URL"))
	if err != nil || base.Scheme != "https" {
		t.Fatalf("ALGA_BASE_URL=%q: want an https URL", ws[0].setting("ALGA_BASE_URL"))
	}
	ing := r.ingresses[0]
	if len(ing.Spec.TLS) == 0 || !slices.Contains(ing.Spec.TLS[0].Hosts, base.Hostname()) || ing.Spec.TLS[0].SecretName == "" {
		t.Errorf("Ingress: no TLS for %s (ALGA_BASE_URL)", base.Hostname())
	}
	if len(ing.Spec.Rules) != 1 || ing.Spec.Rules[0].Host != base.Hostname() {
		t.Errorf("Ingress: want one rule, for host %s (ALGA_BASE_URL)", base.Hostname())
	}
	for _, rule := range ing.Spec.Rules {
		for _, p := range rule.HTTP.Paths {
			svc := p.Backend.Service
			if svc == nil {
				t.Fatalf("Ingress path %s has no Service backend", p.Path)
			}
			var addr string
			for _, s := range r.services {
				if s.Name != svc.Name {
					continue
				}
				for _, sp := range s.Spec.Ports {
					if sp.Name == svc.Port.Name || (svc.Port.Name == "" && sp.Port == svc.Port.Number) {
						addr = s.Name + ":" + itoa(sp.Port)
					}
				}
			}
			dst, port, err := serviceFor(t, r, ws, namespace, addr)
			if err != nil {
				t.Fatalf("Ingress backend %s: %v", svc.Name, err)
			}
			if !dst.runs("gateway") || port != dst.listenPort(t, "ALGA_HTTP_ADDR") {
				t.Errorf("Ingress reaches %s port %d, not the gateway's HTTP listener", dst.name, port)
			}
		}
	}
}
