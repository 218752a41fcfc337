package deploy

import (
	"fmt"
	"net"
	"path"
	"slices"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/algapsa/alga-google/services/suite/app"
)

// workload is one pod template running alga-google (a Deployment or the migrate Job).
type workload struct {
	kind, name string
	component  string // app.kubernetes.io/component
	pod        *corev1.PodTemplateSpec
	c          *corev1.Container
	command    string   // serve or migrate
	targets    []string // what serve --target runs (app.ExpandTargets)
	env        map[string]envVar
}

// envVar is one resolved environment variable: a literal (inline or from a ConfigMap) or a reference
// to a Secret's key.
type envVar struct {
	value  string
	secret *corev1.SecretKeySelector
}

// provided reports whether the variable is certainly set: a literal, or a Secret key that is required.
func (e envVar) provided() bool {
	if e.secret != nil {
		return e.secret.Optional == nil || !*e.secret.Optional
	}
	return e.value != ""
}

func (w *workload) runs(target string) bool { return slices.Contains(w.targets, target) }

// setting is the value of a literal setting: the manifest's, else the binary's default.
func (w *workload) setting(env string) string {
	if v, ok := w.env[env]; ok && v.secret == nil {
		return v.value
	}
	return bin.serve[env]
}

// listenPort is the port of a listen address setting (":9090").
func (w *workload) listenPort(t *testing.T, env string) int32 {
	t.Helper()
	_, p, err := net.SplitHostPort(w.setting(env))
	if err != nil {
		t.Fatalf("%s %s: %s=%q: %v", w.kind, w.name, env, w.setting(env), err)
	}
	n, err := strconv.ParseInt(p, 10, 32)
	if err != nil {
		t.Fatalf("%s %s: %s=%q: %v", w.kind, w.name, env, w.setting(env), err)
	}
	return int32(n)
}

// listeners are the ports the binary opens for this workload, by name: gRPC always, HTTP with the
// gateway target, metrics unless ALGA_METRICS_ADDR is empty.
func (w *workload) listeners(t *testing.T) map[string]int32 {
	l := map[string]int32{"grpc": w.listenPort(t, "ALGA_GRPC_ADDR")}
	if w.runs("gateway") {
		l["http"] = w.listenPort(t, "ALGA_HTTP_ADDR")
	}
	if w.setting("ALGA_METRICS_ADDR") != "" {
		l["metrics"] = w.listenPort(t, "ALGA_METRICS_ADDR")
	}
	return l
}

// containerPort resolves a probe's or Service's port (number or name) to the container's port number.
func (w *workload) containerPort(t *testing.T, p intstr.IntOrString) int32 {
	t.Helper()
	if p.Type == intstr.Int {
		return p.IntVal
	}
	for _, cp := range w.c.Ports {
		if cp.Name == p.StrVal {
			return cp.ContainerPort
		}
	}
	t.Errorf("%s %s: no container port named %q", w.kind, w.name, p.StrVal)
	return 0
}

// fileOnSecret reports whether an absolute path lies under a read-only mount of a Secret volume (and,
// when the volume lists items, is one of them).
func (w *workload) fileOnSecret(file string) bool {
	for _, m := range w.c.VolumeMounts {
		rel, ok := strings.CutPrefix(file, strings.TrimSuffix(m.MountPath, "/")+"/")
		if !ok || !m.ReadOnly {
			continue
		}
		for _, v := range w.pod.Spec.Volumes {
			if v.Name != m.Name || v.Secret == nil {
				continue
			}
			if len(v.Secret.Items) == 0 {
				return !strings.Contains(rel, "/")
			}
			for _, it := range v.Secret.Items {
				if it.Path == rel {
					return true
				}
			}
		}
	}
	return false
}

// workloads resolves every Deployment and Job of a layout: its one container, command, targets and
// environment (ConfigMaps looked up in the rendered output).
func workloads(t *testing.T, r *rendered) []*workload {
	t.Helper()
	var out []*workload
	add := func(kind, name string, pod *corev1.PodTemplateSpec) {
		w := &workload{kind: kind, name: name, component: pod.Labels["app.kubernetes.io/component"], pod: pod, env: map[string]envVar{}}
		if len(pod.Spec.Containers) != 1 || len(pod.Spec.InitContainers) != 0 {
			t.Fatalf("%s %s: want exactly one container, alga-google", kind, name)
		}
		w.c = &pod.Spec.Containers[0]
		if len(w.c.Command) != 0 || len(w.c.Args) == 0 {
			t.Fatalf("%s %s: the image's entrypoint is alga-google; args name the command", kind, name)
		}
		w.command = w.c.Args[0]
		switch w.command {
		case "serve":
			var list string
			for _, a := range w.c.Args[1:] {
				if v, ok := strings.CutPrefix(a, "--target="); ok {
					list = v
				}
			}
			names, err := app.ExpandTargets(list)
			if err != nil {
				t.Fatalf("%s %s: --target=%q: %v", kind, name, list, err)
			}
			w.targets = names
		case "migrate":
		default:
			t.Fatalf("%s %s: command %q, want serve or migrate", kind, name, w.command)
		}
		for _, from := range w.c.EnvFrom {
			if from.ConfigMapRef == nil || from.Prefix != "" {
				t.Fatalf("%s %s: envFrom may only name a ConfigMap, without prefix (Secret keys are referenced one by one, so the test sees them)", kind, name)
			}
			cm, ok := r.configMaps[from.ConfigMapRef.Name]
			if !ok {
				t.Fatalf("%s %s: envFrom ConfigMap %q is not in the layout", kind, name, from.ConfigMapRef.Name)
			}
			for k, v := range cm.Data {
				w.env[k] = envVar{value: v}
			}
		}
		for _, e := range w.c.Env {
			switch {
			case e.ValueFrom == nil:
				w.env[e.Name] = envVar{value: e.Value}
			case e.ValueFrom.SecretKeyRef != nil:
				w.env[e.Name] = envVar{secret: e.ValueFrom.SecretKeyRef}
			default:
				t.Fatalf("%s %s: %s: only literals and Secret key references", kind, name, e.Name)
			}
		}
		out = append(out, w)
	}
	for _, d := range r.deployments {
		add("Deployment", d.Name, &d.Spec.Template)
		if !labels.SelectorFromSet(d.Spec.Selector.MatchLabels).Matches(labels.Set(d.Spec.Template.Labels)) {
			t.Errorf("Deployment %s: its selector does not match its pods", d.Name)
		}
	}
	for _, j := range r.jobs {
		add("Job", j.Name, &j.Spec.Template)
	}
	return out
}

// runner is the job runner the layout configures (ALGA_JOB_RUNNER), the same in every workload: oauth
// and the worker must agree (under Temporal, oauth updates the worker's schedules).
func runner(t *testing.T, ws []*workload) string {
	t.Helper()
	seen := map[string]bool{}
	for _, w := range ws {
		if w.command == "serve" {
			seen[w.setting("ALGA_JOB_RUNNER")] = true
		}
	}
	if len(seen) != 1 {
		t.Fatalf("ALGA_JOB_RUNNER differs between Deployments: %v", seen)
	}
	for r := range seen {
		return r
	}
	return ""
}

// serviceFor resolves a peer address (host:port, the host a Service of the namespace in any of its DNS
// forms) to the workload the Service selects and the container port it forwards to.
func serviceFor(t *testing.T, r *rendered, ws []*workload, namespace, addr string) (*workload, int32, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, 0, err
	}
	name, ns, _ := strings.Cut(host, ".")
	if ns != "" && ns != namespace && ns != namespace+".svc" && ns != namespace+".svc.cluster.local" {
		return nil, 0, fmt.Errorf("%s is not a Service of namespace %s", host, namespace)
	}
	for _, s := range r.services {
		if s.Name != name {
			continue
		}
		for _, sp := range s.Spec.Ports {
			if strconv.Itoa(int(sp.Port)) != port {
				continue
			}
			for _, w := range ws {
				if w.kind == "Deployment" && labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(w.pod.Labels)) {
					return w, w.containerPort(t, sp.TargetPort), nil
				}
			}
			return nil, 0, fmt.Errorf("Service %s selects no Deployment", name)
		}
		return nil, 0, fmt.Errorf("Service %s has no port %s", name, port)
	}
	return nil, 0, fmt.Errorf("no Service %s", name)
}

func isAbs(p string) bool { return path.IsAbs(p) }
