package harness

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// Postgres is a PostgreSQL cluster of one test's own (initdb in a temporary directory, a loopback TCP
// port), for tests that stop and start PostgreSQL — never the shared test cluster other tests use.
// As root, initdb and pg_ctl run as the postgres user (they refuse root).
type Postgres struct {
	bin, data, port string
	t               testing.TB
}

// StartPostgres creates and starts a cluster; it is stopped and removed when the test ends. The binaries
// are PG_BIN or the newest /usr/lib/postgresql/*/bin.
func StartPostgres(t testing.TB) *Postgres {
	t.Helper()
	bin := os.Getenv("PG_BIN")
	if bin == "" {
		dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
		sort.Slice(dirs, func(i, j int) bool { return pgMajor(dirs[i]) < pgMajor(dirs[j]) })
		if len(dirs) > 0 {
			bin = dirs[len(dirs)-1]
		}
	}
	if _, err := os.Stat(filepath.Join(bin, "initdb")); err != nil {
		t.Fatalf("PostgreSQL binaries not found (set PG_BIN): %v", err)
	}
	// Not t.TempDir: its parents are private to root, and the postgres user must reach the directory.
	dir, err := os.MkdirTemp("", "alga-harness-pg-")
	if err != nil {
		t.Fatal(err)
	}
	p := &Postgres{bin: bin, data: filepath.Join(dir, "data"), port: strings.TrimPrefix(FreeAddr(t), "127.0.0.1:"), t: t}
	if err := os.Mkdir(p.data, 0o700); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root needs the postgres user: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		for _, d := range []string{dir, p.data} {
			if err := os.Chown(d, uid, gid); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Cleanup(func() {
		_ = p.run("pg_ctl", "-D", p.data, "-m", "immediate", "-w", "stop")
		_ = os.RemoveAll(dir)
	})
	if err := p.run("initdb", "-D", p.data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"); err != nil {
		t.Fatal(err)
	}
	p.Start()
	return p
}

func pgMajor(dir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return n
}

// URL is the connection URL of the cluster's postgres database.
func (p *Postgres) URL() string {
	return "postgres://postgres@127.0.0.1:" + p.port + "/postgres?sslmode=disable"
}

// Start starts the (stopped) cluster on its port and waits until it accepts connections.
func (p *Postgres) Start() {
	p.t.Helper()
	if err := p.run("pg_ctl", "-D", p.data, "-l", filepath.Join(p.data, "server.log"), "-w", "-t", "60",
		"-o", "-p "+p.port+" -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c max_connections=100 -c fsync=off", "start"); err != nil {
		p.t.Fatal(err)
	}
}

// Stop stops the cluster the way an operator's restart does (pg_ctl stop -m fast: sessions are
// terminated, the port closes).
func (p *Postgres) Stop() {
	p.t.Helper()
	if err := p.run("pg_ctl", "-D", p.data, "-m", "fast", "-w", "stop"); err != nil {
		p.t.Fatal(err)
	}
}

func (p *Postgres) run(name string, args ...string) error {
	cmd := exec.Command(filepath.Join(p.bin, name), args...)
	if os.Geteuid() == 0 {
		cmd = exec.Command("runuser", append([]string{"-u", "postgres", "--", filepath.Join(p.bin, name)}, args...)...)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out)
	}
	return nil
}
