package deploy

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/algapsa/alga-google/services/platform/config"
	"github.com/algapsa/alga-google/services/suite/app"
)

// The binary is the truth the manifests are checked against: TestMain builds alga-google the way
// deploy/Dockerfile does (the same -X version symbol, read from the Dockerfile), and the tests read
// what `serve --help` and `migrate --help` document.
var bin struct {
	path    string
	version string // stamped at build time, printed by --version
	serve   settings
	migrate settings
}

// settings are the environment variables a command documents, with their defaults ("" when none).
type settings map[string]string

func (s settings) knows(env string) bool { _, ok := s[env]; return ok }

func TestMain(m *testing.M) {
	os.Exit(func() int {
		dir, err := os.MkdirTemp("", "deploy-test-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		if err := buildBinary(dir); err != nil {
			fmt.Fprintln(os.Stderr, "building alga-google:", err)
			return 1
		}
		return m.Run()
	}())
}

// versionSymbol is the -X flag of the Dockerfile's go build: the variable --version prints.
var versionSymbol = regexp.MustCompile(`-X (main\.[A-Za-z_]+)=\$\{VERSION\}`)

func buildBinary(dir string) error {
	df, err := os.ReadFile("Dockerfile")
	if err != nil {
		return err
	}
	m := versionSymbol.FindSubmatch(df)
	if m == nil {
		return fmt.Errorf("deploy/Dockerfile: no -X main.<var>=${VERSION} in its go build")
	}
	bin.path = filepath.Join(dir, "alga-google")
	bin.version = "deploy-test-v0.0.0"
	// Only the link flags differ from a plain build (make build), so the compiled packages come from
	// the build cache: -trimpath and CGO_ENABLED=0, the image's, would rebuild every dependency.
	build := exec.Command("go", "build", "-ldflags", "-X "+string(m[1])+"="+bin.version, "-o", bin.path, "./cmd/alga-google")
	build.Dir = filepath.Join("..", "services", "suite")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("%w: %s", err, out)
	}
	if bin.serve, err = helpSettings("serve"); err != nil {
		return err
	}
	bin.migrate, err = helpSettings("migrate")
	return err
}

// cleanEnv runs the binary without the test's environment: a setting's environment value becomes its
// flag's default, which would change what --help says.
func cleanEnv() []string { return []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.TempDir()} }

// helpLine matches one setting of a command's --help: "(env NAME)", then the default if any.
var helpLine = regexp.MustCompile(`\(env ([A-Z][A-Z0-9_]*)\)(?: \(default "?([^")]*)"?\))?`)

func helpSettings(command string) (settings, error) {
	cmd := exec.Command(bin.path, command, "--help")
	cmd.Env = cleanEnv()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s --help: %w: %s", command, err, out.String())
	}
	s := settings{}
	for _, m := range helpLine.FindAllStringSubmatch(out.String(), -1) {
		s[m[1]] = m[2]
	}
	if len(s) < 5 {
		return nil, fmt.Errorf("%s --help documents %d settings: the help format changed?\n%s", command, len(s), out.String())
	}
	return s, nil
}

// The flag name the Dockerfile stamps is the variable --version prints.
func TestVersionIsStamped(t *testing.T) {
	out, err := exec.Command(bin.path, "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("--version: %v: %s", err, out)
	}
	if got := strings.TrimSpace(string(out)); got != "alga-google "+bin.version {
		t.Fatalf("--version printed %q, want the stamped %q", got, "alga-google "+bin.version)
	}
}

// The help parser reads what the manifests are compared with: a few settings every deployment uses.
func TestHelpIsRead(t *testing.T) {
	for env, def := range map[string]string{"ALGA_GRPC_ADDR": ":9090", "ALGA_HTTP_ADDR": ":8080", "ALGA_METRICS_ADDR": ":9091", "ALGA_JOB_RUNNER": "river", "DATABASE_URL": ""} {
		if got, ok := bin.serve[env]; !ok || got != def {
			t.Errorf("serve --help: %s default %q (documented: %v), want %q", env, got, ok, def)
		}
	}
	if !bin.migrate.knows("DATABASE_URL") || bin.migrate.knows("ALGA_SECRETS_BACKEND") {
		t.Errorf("migrate --help: DATABASE_URL documented %v, ALGA_SECRETS_BACKEND documented %v", bin.migrate.knows("DATABASE_URL"), bin.migrate.knows("ALGA_SECRETS_BACKEND"))
	}
}

// What the suite's app package says a deployment needs is spelled as the binary documents it.
func TestRequirementsAreDocumented(t *testing.T) {
	for _, run := range []string{app.RunnerRiver, app.RunnerTemporal} {
		for _, alts := range app.RequiredSettings(app.AllTargets, run) {
			for _, n := range alts {
				if !bin.serve.knows(n) {
					t.Errorf("app.RequiredSettings names %s, which serve --help does not document", n)
				}
			}
		}
	}
	for _, tg := range app.AllTargets {
		for _, p := range app.Peers(tg) {
			if n := config.PeerAddrEnv(p); !bin.serve.knows(n) {
				t.Errorf("%s calls %s, whose address setting %q serve --help does not document", tg, p, n)
			}
		}
	}
}

var dockerEntrypoint = regexp.MustCompile(`(?m)^ENTRYPOINT \["([^"]+)"\]`)

// entrypoint is the image's ENTRYPOINT: the path of alga-google in the container.
func entrypoint(t *testing.T) string {
	t.Helper()
	df, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	m := dockerEntrypoint.FindSubmatch(df)
	if m == nil {
		t.Fatal("deploy/Dockerfile: no ENTRYPOINT [\"/path\"]")
	}
	return string(m[1])
}

var dockerUser = regexp.MustCompile(`(?m)^USER\s+(\S+)\s*$`)

// The image runs as a numeric non-root user (runAsNonRoot can verify a number, not a name).
func TestDockerfileUser(t *testing.T) {
	df, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	users := dockerUser.FindAllSubmatch(df, -1)
	if len(users) == 0 {
		t.Fatal("deploy/Dockerfile sets no USER")
	}
	last := string(users[len(users)-1][1])
	uid, _, _ := strings.Cut(last, ":")
	if !regexp.MustCompile(`^[0-9]+$`).MatchString(uid) || strings.TrimLeft(uid, "0") == "" {
		t.Fatalf("deploy/Dockerfile: USER %s, want a numeric non-zero uid", last)
	}
	if !bytes.Contains(df, []byte("CGO_ENABLED=0")) || !bytes.Contains(df, []byte("-trimpath")) {
		t.Fatal("deploy/Dockerfile: the build must be static (CGO_ENABLED=0) and -trimpath")
	}
}
