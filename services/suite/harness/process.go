package harness

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/algapsa/alga-google/services/googlesandbox"
	"github.com/algapsa/alga-google/services/platform/auth"
	"github.com/algapsa/alga-google/services/platform/config"
	"github.com/algapsa/alga-google/services/suite/app"
)

// processEnv carries a suite process's ProcessOptions (JSON) to the re-executed test binary.
const processEnv = "ALGA_HARNESS_PROCESS"

// ProcessOptions describe a suite run as a child OS process (the test binary re-executed), for tests
// that kill it (SIGKILL: nothing is shut down, River records nothing) and start it again.
type ProcessOptions struct {
	// Run is the test function of the same binary that calls RunProcess (e.g. "TestFaultSuiteProcess").
	Run string `json:"-"`
	// DatabaseURL is the database the suite runs on (it survives the process).
	DatabaseURL string `json:"database_url"`
	// HTTPAddr and GRPCAddr are fixed, so a restarted process answers where the push subscriptions
	// point (the base URL is derived from HTTPAddr).
	HTTPAddr string `json:"http_addr"`
	GRPCAddr string `json:"grpc_addr"`
	// GoogleAPIRoot and PubSubEmulatorHost: the sandbox, running in the test process.
	GoogleAPIRoot      string `json:"google_api_root"`
	PubSubEmulatorHost string `json:"pubsub_emulator_host"`
}

// Process is a suite running in a child process.
type Process struct {
	opts ProcessOptions
	cmd  *exec.Cmd
	logs *lockedBuffer
	done chan struct{}
}

// FreeAddr returns a loopback address nothing listens on now (for a process to listen on).
func FreeAddr(t testing.TB) string {
	t.Helper()
	l := Listen(t)
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

// ProcessOptionsFor returns the options of a suite process on databaseURL against sb (addresses picked
// by StartProcess), run by the test function named run.
func ProcessOptionsFor(sb *googlesandbox.Sandbox, run, databaseURL string) ProcessOptions {
	return ProcessOptions{Run: run, DatabaseURL: databaseURL, GoogleAPIRoot: sb.URL(), PubSubEmulatorHost: sb.PubSubAddr()}
}

// StartProcess starts the suite in a child process and waits until its /readyz answers 200. The
// process is killed when the test ends.
func StartProcess(t testing.TB, opts ProcessOptions) *Process {
	t.Helper()
	if opts.HTTPAddr == "" {
		opts.HTTPAddr = FreeAddr(t)
	}
	if opts.GRPCAddr == "" {
		opts.GRPCAddr = FreeAddr(t)
	}
	enc, err := json.Marshal(opts)
	if err != nil {
		t.Fatal(err)
	}
	p := &Process{opts: opts, logs: &lockedBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(os.Args[0], "-test.run=^"+opts.Run+"$", "-test.count=1", "-test.timeout=30m")
	p.cmd.Env = append(os.Environ(), processEnv+"="+string(enc))
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting the suite process: %v", err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("suite process (pid %d) output, last 8 KiB:\n%s", p.cmd.Process.Pid, p.logs.tail(8<<10))
		}
	})
	deadline := time.Now().Add(90 * time.Second)
	for {
		select {
		case <-p.done:
			t.Fatalf("the suite process exited before it was ready:\n%s", p.logs.tail(8<<10))
		default:
		}
		if p.Ready() {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("the suite process was not ready in time:\n%s", p.logs.tail(8<<10))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Ready reports whether the process's /readyz answers 200.
func (p *Process) Ready() bool {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + p.opts.HTTPAddr + "/readyz")
	if err != nil {
		return false
	}
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// Kill sends SIGKILL (no shutdown of any kind) and waits until the process is gone. Idempotent.
func (p *Process) Kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// Restart starts a new process with the same options (same database and addresses).
func (p *Process) Restart(t testing.TB) *Process {
	t.Helper()
	p.Kill()
	return StartProcess(t, p.opts)
}

// Options are the process's options (its addresses included).
func (p *Process) Options() ProcessOptions { return p.opts }

// Suite returns a client-side Suite for the process — base URL, configuration, tokens, gRPC connections
// (App is nil: nothing in this process) — so tests drive it as they drive an in-process suite.
func (p *Process) Suite(t testing.TB, sb *googlesandbox.Sandbox) *Suite {
	t.Helper()
	cfg := processConfig(p.opts)
	s := &Suite{Sandbox: sb, Config: cfg, BaseURL: cfg.BaseURL, DatabaseURL: p.opts.DatabaseURL, t: t, grpcAddr: p.opts.GRPCAddr, stopped: true}
	s.userSigner, _ = auth.NewSigner([]byte(cfg.AuthHS256Key), cfg.AuthIssuer, cfg.AuthAudience)
	s.serviceSigner, _ = auth.NewSigner(cfg.ServiceKey(), app.ServiceIssuer, cfg.AuthAudience)
	return s
}

// RunProcess is the body of the child's test function (ProcessOptions.Run): it starts the suite with
// the options its parent passed and serves until it is killed. Outside a child it skips the test.
func RunProcess(t *testing.T) {
	raw := os.Getenv(processEnv)
	if raw == "" {
		t.Skip("runs only as a suite process started by harness.StartProcess")
	}
	var opts ProcessOptions
	if err := json.Unmarshal([]byte(raw), &opts); err != nil {
		t.Fatal(err)
	}
	listen := func(addr string) net.Listener {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("listening on %s: %v", addr, err)
		}
		return l
	}
	Start(t, Options{DatabaseURL: opts.DatabaseURL, GoogleAPIRoot: opts.GoogleAPIRoot, PubSubEmulatorHost: opts.PubSubEmulatorHost,
		HTTPListener: listen(opts.HTTPAddr), GRPCListener: listen(opts.GRPCAddr), Logs: os.Stderr})
	fmt.Fprintln(os.Stderr, "suite process ready")
	select {} // until killed
}

// processConfig is the configuration Start gives a suite process (for the parent's clients).
func processConfig(opts ProcessOptions) config.Config {
	cfg := TestConfig()
	cfg.DatabaseURL = opts.DatabaseURL
	cfg.BaseURL = "http://" + opts.HTTPAddr
	cfg.HTTPAddr, cfg.GRPCAddr = opts.HTTPAddr, opts.GRPCAddr
	cfg.GoogleAPIRoot, cfg.PubSubEmulatorHost = opts.GoogleAPIRoot, opts.PubSubEmulatorHost
	return cfg
}

// lockedBuffer collects a process's output (written by exec's copying goroutines).
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) tail(n int) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.buf.String()
	if len(s) > n {
		s = s[len(s)-n:]
		if i := strings.IndexByte(s, '\n'); i >= 0 {
			s = s[i+1:]
		}
	}
	return s
}
