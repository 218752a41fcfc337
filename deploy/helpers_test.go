package deploy

import (
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// probe is what a probe asks, whatever its handler.
type probe struct {
	port        intstr.IntOrString
	httpPath    string
	grpc        bool
	grpcService string
	exec        []string
}

func toProbe(p *corev1.Probe) *probe {
	switch {
	case p == nil:
		return nil
	case p.HTTPGet != nil:
		return &probe{port: p.HTTPGet.Port, httpPath: p.HTTPGet.Path}
	case p.GRPC != nil:
		s := ""
		if p.GRPC.Service != nil {
			s = *p.GRPC.Service
		}
		return &probe{port: intstr.FromInt32(p.GRPC.Port), grpc: true, grpcService: s}
	case p.TCPSocket != nil:
		return &probe{port: p.TCPSocket.Port}
	case p.Exec != nil:
		return &probe{exec: p.Exec.Command}
	}
	return nil
}

func itoa(n int32) string { return strconv.Itoa(int(n)) }

func values(m map[string]int32) []int32 {
	out := make([]int32, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

func ptrUser(s *corev1.PodSecurityContext) *int64 {
	if s == nil {
		return nil
	}
	return s.RunAsUser
}

func ptrUserC(s *corev1.SecurityContext) *int64 {
	if s == nil {
		return nil
	}
	return s.RunAsUser
}

func corev1ResourceName(n string) corev1.ResourceName { return corev1.ResourceName(n) }

func deploymentNamed(r *rendered, name string) *appsv1.Deployment {
	for _, d := range r.deployments {
		if d.Name == name {
			return d
		}
	}
	return nil
}

func metav1LabelSelector(s *metav1.LabelSelector) (labels.Selector, error) {
	return metav1.LabelSelectorAsSelector(s)
}
