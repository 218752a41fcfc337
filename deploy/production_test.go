package deploy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/algapsa/alga-google/services/suite/app"
	"github.com/algapsa/alga-google/services/suite/harness"
)

// temporalPort is the port of the worker's TEMPORAL_ADDRESS (the binary's default when unset).
func temporalPort(t *testing.T, w *workload) int32 {
	t.Helper()
	_, p, err := net.SplitHostPort(w.setting("TEMPORAL_ADDRESS"))
	n, perr := strconv.ParseInt(p, 10, 32)
	if err != nil || perr != nil {
		t.Fatalf("%s: TEMPORAL_ADDRESS=%q is not host:port", w.name, w.setting("TEMPORAL_ADDRESS"))
	}
	return int32(n)
}

// The production overlay runs the worker on Temporal with exactly what the worker reads: the runner,
// Temporal's address and namespace (every Temporal setting provided is one `serve --help` documents;
// checkEnv checks the required ones), the address reachable through the worker's NetworkPolicy; it
// runs several replicas of each target, mutual TLS between them, and has /metrics scraped.
func TestProduction(t *testing.T) {
	r := render(t, "overlays/production")
	ws := workloads(t, r)
	if run := runner(t, ws); run != app.RunnerTemporal {
		t.Fatalf("ALGA_JOB_RUNNER=%s, want temporal", run)
	}
	for _, w := range ws {
		if w.kind != "Deployment" {
			continue
		}
		if w.runs("worker") {
			for _, alts := range app.RequiredSettings([]string{"worker"}, app.RunnerTemporal) {
				for _, n := range alts {
					if strings.Contains(n, "TEMPORAL") && w.env[n].value == "" {
						t.Errorf("worker: %s is not set (its default %q is a local dev server's)", n, bin.serve[n])
					}
				}
			}
			for n := range w.env {
				if strings.Contains(n, "TEMPORAL") && !bin.serve.knows(n) {
					t.Errorf("worker: %s is not a Temporal setting the binary reads", n)
				}
			}
			// Temporal Cloud's credentials are optional: self-hosted Temporal has no such Secret, and a
			// required reference to a missing one would keep the worker from starting.
			for n, e := range w.env {
				if strings.Contains(n, "TEMPORAL") && e.secret != nil && e.provided() {
					t.Errorf("worker: %s references Secret %s without optional: true", n, e.secret.Name)
				}
			}
			for _, v := range w.pod.Spec.Volumes {
				if v.Secret != nil && strings.Contains(v.Secret.SecretName, "temporal") && (v.Secret.Optional == nil || !*v.Secret.Optional) {
					t.Errorf("worker: volume %s of Secret %s is not optional", v.Name, v.Secret.SecretName)
				}
			}
			host, _, _ := net.SplitHostPort(w.setting("TEMPORAL_ADDRESS"))
			// Self-hosted in the cluster: the Service's namespace is the one the policy admits.
			if parts := strings.Split(host, "."); len(parts) < 2 || "ns:"+parts[1] != peerTemporal {
				t.Errorf("worker: TEMPORAL_ADDRESS host %s is not a Service of the namespace the NetworkPolicy admits (%s)", host, peerTemporal)
			}
		}
		if n := replicaFloor(r, w.name); n < 3 {
			t.Errorf("Deployment %s: %d replicas at least, want 3", w.name, n)
		}
		for _, n := range []string{"ALGA_GRPC_TLS_CERT", "ALGA_GRPC_TLS_KEY", "ALGA_GRPC_TLS_CA"} {
			if !w.env[n].provided() {
				t.Errorf("Deployment %s: %s unset: gRPC between targets must be mutual TLS", w.name, n)
			}
		}
		if w.pod.Annotations["prometheus.io/scrape"] != "true" {
			t.Errorf("Deployment %s: /metrics is not scraped", w.name)
		}
		for _, p := range []*probe{toProbe(w.c.ReadinessProbe), toProbe(w.c.LivenessProbe)} {
			if p != nil && p.grpc {
				t.Errorf("Deployment %s: kubelet's gRPC probe is plaintext, which a server under mTLS refuses", w.name)
			}
		}
		// Readiness is the target's health still: /readyz for the gateway, gRPC health over mTLS for
		// the others — never a mere open port.
		if p := toProbe(w.c.ReadinessProbe); p == nil || (p.httpPath == "" && p.exec == nil) {
			t.Errorf("Deployment %s: readiness does not ask the target's health", w.name)
		}
	}
}

// gateway is the gateway target of the binary, running on loopback ports.
type gateway struct {
	http, grpc, metrics string
	ctx                 context.Context
}

// startGateway runs `serve --target=gateway` (it needs no database) with extra settings, until the
// test ends; it returns once /healthz answers.
func startGateway(t *testing.T, env ...string) gateway {
	t.Helper()
	g := gateway{http: freeAddr(t), grpc: freeAddr(t), metrics: freeAddr(t)}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	g.ctx = ctx
	cmd := exec.CommandContext(ctx, bin.path, "serve", "--target=gateway")
	cmd.Env = append(append(cleanEnv(),
		"ALGA_BASE_URL=https://helpdesk.example.com", "ALGA_SERVICE_TOKEN_KEY="+randomKey(t), "ALGA_AUTH_HS256_KEY="+randomKey(t),
		"ALGA_HTTP_ADDR="+g.http, "ALGA_GRPC_ADDR="+g.grpc, "ALGA_METRICS_ADDR="+g.metrics), env...)
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	deadline := time.Now().Add(90 * time.Second) // a loaded CI machine starts slowly
	for {
		if code, err := get("http://" + g.http + probePaths["liveness"]); err == nil {
			if code != http.StatusOK {
				t.Fatalf("GET %s: %d, want 200", probePaths["liveness"], code)
			}
			return g
		}
		if time.Now().After(deadline) {
			t.Fatalf("the gateway did not listen on %s:\n%s", g.http, logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func get(url string) (int, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// Under mutual TLS (production) `alga-google probe` reaches the pod's gRPC health with the pod's
// certificate; without it the server refuses the probe, as it refuses kubelet's plaintext gRPC probe.
func TestProbeUnderMutualTLS(t *testing.T) {
	tls := harness.NewTLS(t)
	files := []string{"ALGA_GRPC_TLS_CERT=" + tls.Cert, "ALGA_GRPC_TLS_KEY=" + tls.Key, "ALGA_GRPC_TLS_CA=" + tls.CA}
	g := startGateway(t, files...)
	for name, env := range map[string][]string{"with the certificate": files, "plaintext": nil} {
		p := exec.CommandContext(g.ctx, bin.path, "probe")
		p.Env = append(append(cleanEnv(), "ALGA_GRPC_ADDR="+g.grpc), env...)
		out, err := p.CombinedOutput()
		if want := env != nil; (err == nil) != want {
			t.Errorf("alga-google probe %s: %v %s, want success %v", name, err, out, want)
		}
	}
}

// freeAddr is a loopback address with a port nobody listens on (for the binary under test).
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func randomKey(t *testing.T) string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// The HTTP paths the probes ask are served by the binary on the gateway's HTTP listener, the
// metrics path on the metrics listener, and gRPC health answers per target by the target's name: the
// gateway target, which needs no database, runs here on loopback ports.
func TestProbePathsAreServed(t *testing.T) {
	g := startGateway(t)
	httpAddr, grpcAddr, metricsAddr, ctx := g.http, g.grpc, g.metrics, g.ctx
	// Without its upstreams the gateway is not ready: served, and 503.
	if code, err := get("http://" + httpAddr + probePaths["readiness"]); err != nil || code != http.StatusServiceUnavailable {
		t.Errorf("GET %s: %d %v, want 503 while no upstream answers", probePaths["readiness"], code, err)
	}
	if code, err := get("http://" + metricsAddr + "/metrics"); err != nil || code != http.StatusOK {
		t.Errorf("GET /metrics on the metrics listener: %d %v", code, err)
	}
	if code, err := get("http://" + httpAddr + "/metrics"); err == nil && code == http.StatusOK {
		t.Errorf("/metrics is served on the public listener")
	}
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	h := healthpb.NewHealthClient(conn)
	res, err := h.Check(ctx, &healthpb.HealthCheckRequest{Service: "gateway"})
	if err != nil || res.Status != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("gRPC health of the gateway target: %v %v, want SERVING", res, err)
	}
	if _, err := h.Check(ctx, &healthpb.HealthCheckRequest{Service: "secrets"}); err == nil {
		t.Errorf("gRPC health knows secrets, which does not run in this process")
	}
	// The exec probe asks the same health at the pod's own gRPC listener.
	for args, ok := range map[string]bool{"probe": true, "probe --target=gateway": true, "probe --target=secrets": false} {
		p := exec.CommandContext(ctx, bin.path, strings.Fields(args)...)
		p.Env = append(cleanEnv(), "ALGA_GRPC_ADDR="+grpcAddr)
		out, err := p.CombinedOutput()
		if (err == nil) != ok {
			t.Errorf("alga-google %s: %v %s, want success %v", args, err, out, ok)
		}
	}
}
