package deploy

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// The layouts operators apply (kubectl apply -k deploy/<dir>).
var layouts = []string{"base", "overlays/monolith", "overlays/production"}

// rendered is one layout, every object decoded into its official type.
type rendered struct {
	dir             string
	namespaces      []*corev1.Namespace
	configMaps      map[string]*corev1.ConfigMap
	services        []*corev1.Service
	deployments     []*appsv1.Deployment
	jobs            []*batchv1.Job
	pdbs            []*policyv1.PodDisruptionBudget
	hpas            []*autoscalingv2.HorizontalPodAutoscaler
	networkPolicies []*networkingv1.NetworkPolicy
	ingresses       []*networkingv1.Ingress
}

// kinds are the only objects the manifests may hold, by apiVersion/kind: anything else (a Secret with
// values, a CRD nobody installed, a typo in a kind) fails the render.
var kinds = map[string]func(r *rendered, data []byte) error{
	"v1/Namespace":                  decodeInto(func(r *rendered, o *corev1.Namespace) { r.namespaces = append(r.namespaces, o) }),
	"v1/ConfigMap":                  decodeInto(func(r *rendered, o *corev1.ConfigMap) { r.configMaps[o.Name] = o }),
	"v1/Service":                    decodeInto(func(r *rendered, o *corev1.Service) { r.services = append(r.services, o) }),
	"apps/v1/Deployment":            decodeInto(func(r *rendered, o *appsv1.Deployment) { r.deployments = append(r.deployments, o) }),
	"batch/v1/Job":                  decodeInto(func(r *rendered, o *batchv1.Job) { r.jobs = append(r.jobs, o) }),
	"policy/v1/PodDisruptionBudget": decodeInto(func(r *rendered, o *policyv1.PodDisruptionBudget) { r.pdbs = append(r.pdbs, o) }),
	"autoscaling/v2/HorizontalPodAutoscaler": decodeInto(func(r *rendered, o *autoscalingv2.HorizontalPodAutoscaler) {
		r.hpas = append(r.hpas, o)
	}),
	"networking.k8s.io/v1/NetworkPolicy": decodeInto(func(r *rendered, o *networkingv1.NetworkPolicy) {
		r.networkPolicies = append(r.networkPolicies, o)
	}),
	"networking.k8s.io/v1/Ingress": decodeInto(func(r *rendered, o *networkingv1.Ingress) { r.ingresses = append(r.ingresses, o) }),
}

// decodeInto decodes strictly, as the API server does: field names match case-sensitively, and a
// field the official type does not have is an error, as is a duplicate one. The object is kept.
func decodeInto[T any](keep func(*rendered, *T)) func(*rendered, []byte) error {
	return func(r *rendered, data []byte) error {
		j, err := yaml.YAMLToJSONStrict(data)
		if err != nil {
			return err
		}
		o := new(T)
		strict, err := sigsjson.UnmarshalStrict(j, o)
		if err != nil {
			return err
		}
		if err := errors.Join(strict...); err != nil {
			return err
		}
		keep(r, o)
		return nil
	}
}

// render builds a layout with the kustomize API, on the files of this directory only.
func render(t *testing.T, dir string) *rendered {
	t.Helper()
	checkLocal(t, dir)
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize %s: %v", dir, err)
	}
	r := &rendered{dir: dir, configMaps: map[string]*corev1.ConfigMap{}}
	for _, res := range m.Resources() {
		data, err := res.AsYAML()
		if err != nil {
			t.Fatalf("%s: %s: %v", dir, res.CurId(), err)
		}
		if err := decode(r, data); err != nil {
			t.Fatalf("%s: %s: %v", dir, res.CurId(), err)
		}
	}
	return r
}

func decode(r *rendered, data []byte) error {
	var head struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := yaml.Unmarshal(data, &head); err != nil {
		return err
	}
	d, ok := kinds[head.APIVersion+"/"+head.Kind]
	if !ok {
		return fmt.Errorf("%s %s is not a kind these manifests may hold", head.APIVersion, head.Kind)
	}
	return d(r, data)
}

// checkLocal refuses remote bases (kustomize would fetch them): every resource and component of every
// kustomization reached from dir is a file or directory of the repository.
func checkLocal(t *testing.T, dir string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k struct {
		Resources  []string `json:"resources"`
		Components []string `json:"components"`
	}
	if err := yaml.Unmarshal(data, &k); err != nil {
		t.Fatalf("%s/kustomization.yaml: %v", dir, err)
	}
	for _, ref := range append(k.Resources, k.Components...) {
		p := filepath.Join(dir, ref)
		fi, err := os.Stat(p)
		if strings.Contains(ref, "://") || err != nil {
			t.Fatalf("%s/kustomization.yaml: %q is not a local file or directory (remote bases are not allowed: the test and CI run offline)", dir, ref)
		}
		if fi.IsDir() {
			checkLocal(t, p)
		}
	}
}

// Strict decoding refuses what the official types do not have: a misspelt field fails the render
// instead of being dropped by kubectl's lenient client.
func TestDecodingIsStrict(t *testing.T) {
	r := &rendered{configMaps: map[string]*corev1.ConfigMap{}}
	for name, doc := range map[string]string{
		"unknown field":  "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {replica: 2}\n",
		"probe typo":     "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {ports: [{port: 80, targetport: http}]}\n",
		"unknown kind":   "apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata: {name: x}\n",
		"inlined secret": "apiVersion: v1\nkind: Secret\nmetadata: {name: x}\nstringData: {DATABASE_URL: postgres://u:p@db/x}\n",
	} {
		if err := decode(r, []byte(doc)); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
	if err := decode(r, []byte("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {replicas: 2}\n")); err != nil || len(r.deployments) != 1 {
		t.Fatalf("a valid Deployment: %v", err)
	}
}
