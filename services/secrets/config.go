package secrets

import (
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/algapsa/alga-google/services/platform/config"
	"github.com/algapsa/alga-google/services/secrets/internal/envelope"
)

// Config is the secrets service's own settings. The binary binds them as flags and environment
// variables (Bind); tests and tools may fill one in directly (NewTargetWithConfig).
type Config struct {
	// KEKBase64 is the base64 of the 32-byte key-encryption key (ALGA_SECRETS_KEK); KEKFile names a
	// file holding it instead (ALGA_SECRETS_KEK_FILE). Read both through KEK().
	KEKBase64 string
	KEKFile   string
	// KEKID identifies the current KEK, recorded beside every data key it wraps (ALGA_SECRETS_KEK_ID).
	KEKID string
	// KEKPrevious lists older KEKs ("id:base64,...") still accepted while a rotation is under way
	// (ALGA_SECRETS_KEK_PREVIOUS). Read it through PreviousKEKs().
	KEKPrevious string
	// Backend is the secret store: postgres, filesystem, or a read chain like postgres,filesystem
	// (ALGA_SECRETS_BACKEND; empty means postgres).
	Backend string
	// FSBase is the base directory of the filesystem backend (ALGA_SECRETS_FS_BASE).
	FSBase string
}

// Bind declares the settings as flags with matching environment variables.
func (c *Config) Bind(b *config.Binder) {
	b.String(&c.KEKBase64, "secrets-kek", "ALGA_SECRETS_KEK", "", "base64 of the 32-byte key-encryption key of the secrets service")
	b.String(&c.KEKFile, "secrets-kek-file", "ALGA_SECRETS_KEK_FILE", "", "file holding the base64 KEK (Kubernetes secret mount)")
	b.String(&c.KEKID, "secrets-kek-id", "ALGA_SECRETS_KEK_ID", "kek-1", "identifier of the current KEK (recorded beside every wrapped data key)")
	b.String(&c.KEKPrevious, "secrets-kek-previous", "ALGA_SECRETS_KEK_PREVIOUS", "", "older KEKs still accepted during a rotation, as id:base64[,id:base64…]; rotate-kek re-wraps from them")
	b.String(&c.Backend, "secrets-backend", "ALGA_SECRETS_BACKEND", "postgres", "secret store: postgres, filesystem, or a read chain like postgres,filesystem")
	b.String(&c.FSBase, "secrets-fs-base", "ALGA_SECRETS_FS_BASE", "", "base directory of the filesystem backend (<base>/tenants/<tenant>/<name>)")
}

// KEK returns the decoded key-encryption key (ALGA_SECRETS_KEK, else the file ALGA_SECRETS_KEK_FILE).
func (c Config) KEK() ([]byte, error) {
	raw := c.KEKBase64
	if raw == "" && c.KEKFile != "" {
		b, err := os.ReadFile(c.KEKFile)
		if err != nil {
			return nil, fmt.Errorf("reading ALGA_SECRETS_KEK_FILE: %w", err)
		}
		raw = strings.TrimSpace(string(b))
	}
	if raw == "" {
		return nil, errors.New("ALGA_SECRETS_KEK or ALGA_SECRETS_KEK_FILE is required by the secrets target")
	}
	key, err := base64.StdEncoding.DecodeString(raw)
	if err != nil || len(key) != envelope.KeySize {
		return nil, errors.New("ALGA_SECRETS_KEK must be the base64 encoding of exactly 32 bytes")
	}
	return key, nil
}

// PreviousKEKs returns the decoded previous KEKs (key id → key) of ALGA_SECRETS_KEK_PREVIOUS; none when
// it is empty.
func (c Config) PreviousKEKs() (map[string][]byte, error) {
	keys, err := ParseKEKList(c.KEKPrevious)
	if err != nil {
		return nil, fmt.Errorf("ALGA_SECRETS_KEK_PREVIOUS: %w", err)
	}
	return keys, nil
}

// ParseKEKList parses previous KEKs written as "id:base64[,id:base64…]" (each key 32 bytes).
func ParseKEKList(s string) (map[string][]byte, error) {
	out := map[string][]byte{}
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		id, b64, ok := strings.Cut(item, ":")
		if !ok || id == "" {
			return nil, errors.New("a previous KEK is written id:base64")
		}
		key, err := base64.StdEncoding.DecodeString(b64)
		if err != nil || len(key) != envelope.KeySize {
			return nil, fmt.Errorf("previous KEK %q must be the base64 encoding of exactly 32 bytes", id)
		}
		if _, dup := out[id]; dup {
			return nil, fmt.Errorf("previous KEK id %q listed twice", id)
		}
		out[id] = key
	}
	return out, nil
}

// backendNames parses ALGA_SECRETS_BACKEND.
func (c Config) backendNames() ([]string, error) {
	list := c.Backend
	if strings.TrimSpace(list) == "" {
		list = "postgres"
	}
	seen := map[string]bool{}
	var out []string
	for _, n := range strings.Split(list, ",") {
		n = strings.ToLower(strings.TrimSpace(n))
		switch n {
		case "postgres", "filesystem":
		case "vault":
			return nil, errors.New("ALGA_SECRETS_BACKEND: the vault backend is not available in this build")
		default:
			return nil, fmt.Errorf("ALGA_SECRETS_BACKEND: unknown backend %q (use postgres, filesystem, or a comma list)", n)
		}
		if seen[n] {
			return nil, fmt.Errorf("ALGA_SECRETS_BACKEND: %q listed twice", n)
		}
		seen[n] = true
		out = append(out, n)
	}
	return out, nil
}
