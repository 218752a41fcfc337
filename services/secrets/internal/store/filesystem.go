package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	secretsv1 "github.com/algapsa/alga-google/gen/alga/secrets/v1"
	"github.com/algapsa/alga-google/services/platform/errs"
)

// Filesystem is the backend compatible with the platform's layout: one plaintext file per secret at
// <base>/tenants/<tenant>/<name>. On read, surrounding whitespace is trimmed as the platform does.
//
// It is meant for on-prem installs whose base directory is a shared volume every replica mounts
// (otherwise a secret written by one replica is invisible to the others). Values are plaintext on that
// volume: protect it with file permissions (files 0600, directories 0700) and disk encryption.
//
// Names and tenants are checked against strict patterns and every path is checked to stay under the
// base directory; symbolic links are never followed for secret files. Each file is written atomically
// (temporary file in the same directory, fsync, rename). A batch is not atomic across files: conditional
// writes are all checked before any file is written, and versions are 1 for any present file (the layout
// has no version history), so expected_version is a presence check and not race-free across replicas.
// The audit trail is kept in Postgres (AuditLog).
type Filesystem struct {
	base  string
	audit *AuditLog
}

// NewFilesystem returns the filesystem backend rooted at base; audit may be nil (no audit trail).
func NewFilesystem(base string, audit *AuditLog) (*Filesystem, error) {
	if base == "" {
		return nil, errors.New("the filesystem secrets backend needs ALGA_SECRETS_FS_BASE")
	}
	abs, err := filepath.Abs(base)
	if err != nil {
		return nil, err
	}
	return &Filesystem{base: filepath.Clean(abs), audit: audit}, nil
}

// Name implements Backend.
func (f *Filesystem) Name() string { return "filesystem" }

// ErrPathRefused is returned for a tenant or name that could leave the base directory.
var ErrPathRefused = errors.New("filesystem: refused path outside the secrets base directory")

func (f *Filesystem) tenantDir(tenant string) (string, error) {
	if !ValidTenant(tenant) {
		return "", fmt.Errorf("%w (tenant %q)", ErrPathRefused, tenant)
	}
	return f.under(filepath.Join(f.base, "tenants", tenant))
}

func (f *Filesystem) path(tenant, name string) (string, error) {
	dir, err := f.tenantDir(tenant)
	if err != nil {
		return "", err
	}
	if secretsv1.ValidateName("name", name) != nil {
		return "", fmt.Errorf("%w (name %q)", ErrPathRefused, name)
	}
	return f.under(filepath.Join(dir, name))
}

// under checks that p, once cleaned, is strictly inside the base directory.
func (f *Filesystem) under(p string) (string, error) {
	clean := filepath.Clean(p)
	rel, err := filepath.Rel(f.base, clean)
	if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) || filepath.IsAbs(rel) {
		return "", ErrPathRefused
	}
	return clean, nil
}

type fileSecret struct {
	value string
	info  fs.FileInfo
}

// read returns the secret file, or ok=false when it does not exist. Anything but a regular file (a
// symbolic link, a directory) is refused.
func (f *Filesystem) read(tenant, name string) (fileSecret, bool, error) {
	p, err := f.path(tenant, name)
	if err != nil {
		return fileSecret{}, false, err
	}
	info, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return fileSecret{}, false, nil
	}
	if err != nil {
		return fileSecret{}, false, err
	}
	if !info.Mode().IsRegular() {
		return fileSecret{}, false, errs.FailedPrecondition("SECRET_FILE_REFUSED",
			"the secret file for %s is not a regular file (a symbolic link or directory); an operator must replace it", name).
			Wrap(ErrPathRefused)
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return fileSecret{}, false, nil
	}
	if err != nil {
		return fileSecret{}, false, err
	}
	return fileSecret{value: strings.TrimSpace(string(b)), info: info}, true, nil
}

// Put implements Backend.
func (f *Filesystem) Put(ctx context.Context, tenant string, actor Actor, writes []Write, deletes []string) ([]Description, error) {
	dir, err := f.tenantDir(tenant)
	if err != nil {
		return nil, err
	}
	for _, w := range writes {
		if w.ExpectedVersion == nil {
			continue
		}
		_, present, err := f.read(tenant, w.Name)
		if err != nil {
			return nil, err
		}
		current := int64(0)
		if present {
			current = 1
		}
		if *w.ExpectedVersion != current {
			return nil, versionConflict(w.Name, *w.ExpectedVersion, current)
		}
	}
	if len(writes) > 0 {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
	}
	out := make([]Description, 0, len(writes))
	for _, w := range writes {
		p, err := f.path(tenant, w.Name)
		if err != nil {
			return nil, err
		}
		if err := writeAtomic(dir, p, []byte(w.Value)); err != nil {
			return nil, err
		}
		info, err := os.Lstat(p)
		if err != nil {
			return nil, err
		}
		if err := f.record(ctx, tenant, w.Name, ActionPut, actor, 1); err != nil {
			return nil, err
		}
		out = append(out, Description{Name: w.Name, Present: true, Version: 1, UpdateTime: info.ModTime(), Hint: Hint(w.Name, strings.TrimSpace(w.Value))})
	}
	if len(deletes) > 0 {
		if _, err := f.Delete(ctx, tenant, actor, deletes); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// writeAtomic replaces p with data: a temporary file in the same directory, fsynced, then renamed.
func writeAtomic(dir, p string, data []byte) (err error) {
	tmp, err := os.CreateTemp(dir, ".tmp-"+filepath.Base(p)+"-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = os.Remove(tmp.Name())
		}
	}()
	if err = tmp.Chmod(0o600); err != nil {
		_ = tmp.Close()
		return err
	}
	if _, err = tmp.Write(data); err != nil {
		_ = tmp.Close()
		return err
	}
	if err = tmp.Sync(); err != nil {
		_ = tmp.Close()
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp.Name(), p); err != nil {
		return err
	}
	if d, derr := os.Open(dir); derr == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

func (f *Filesystem) record(ctx context.Context, tenant, name, action string, actor Actor, version int64) error {
	if f.audit == nil {
		return nil
	}
	return f.audit.Record(ctx, tenant, name, action, actor, version)
}

// Describe implements Backend.
func (f *Filesystem) Describe(ctx context.Context, tenant string, names []string) ([]Description, error) {
	list := names
	if list == nil {
		var err error
		if list, err = f.list(tenant); err != nil {
			return nil, err
		}
	}
	found := map[string]Description{}
	for _, n := range list {
		s, ok, err := f.read(tenant, n)
		if err != nil {
			return nil, err
		}
		if ok {
			found[n] = Description{Name: n, Present: true, Version: 1, UpdateTime: s.info.ModTime(), Hint: Hint(n, s.value)}
		}
	}
	return orderDescriptions(names, found), nil
}

// list returns the names of the tenant's secret files (other entries, such as temporary files, are skipped).
func (f *Filesystem) list(tenant string) ([]string, error) {
	dir, err := f.tenantDir(tenant)
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if e.Type().IsRegular() && secretsv1.ValidateName("name", e.Name()) == nil {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out, nil
}

// Get implements Backend.
func (f *Filesystem) Get(ctx context.Context, tenant string, actor Actor, names []string) ([]Value, error) {
	var out []Value
	for _, n := range names {
		s, ok, err := f.read(tenant, n)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		if err := f.record(ctx, tenant, n, ActionGet, actor, 1); err != nil {
			return nil, err
		}
		out = append(out, Value{Name: n, Value: s.value, Version: 1})
	}
	return out, nil
}

// Delete implements Backend.
func (f *Filesystem) Delete(ctx context.Context, tenant string, actor Actor, names []string) ([]string, error) {
	out := []string{}
	for _, n := range names {
		p, err := f.path(tenant, n)
		if err != nil {
			return nil, err
		}
		err = os.Remove(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if err := f.record(ctx, tenant, n, ActionDelete, actor, 1); err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}
