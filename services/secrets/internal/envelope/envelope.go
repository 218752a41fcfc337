// Package envelope is the secret store's cryptography: AES-256-GCM envelope encryption with one random
// data key per tenant, wrapped by a key-encryption key (KEK) that is identified by a key id.
//
// Every ciphertext is bound by its additional authenticated data to where it belongs:
//   - a wrapped data key to (tenant, KEK id),
//   - a secret value to (tenant, name, version),
//
// so a ciphertext copied to another row, tenant, name or version fails to open — an error, never the
// wrong plaintext.
package envelope

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
)

// KeySize is the size of every key: AES-256.
const KeySize = 32

// ErrUnknownKEK is returned when a data key was wrapped by a KEK id the keyring does not hold.
var ErrUnknownKEK = errors.New("envelope: data key is wrapped by a KEK that is not configured")

// ErrOpen is returned when a ciphertext does not authenticate: wrong key, or moved to another place.
var ErrOpen = errors.New("envelope: ciphertext does not authenticate (wrong key, or moved between rows or tenants)")

// Keyring holds the current KEK (used to wrap new data keys) and any previous KEKs still accepted for
// unwrapping, so a database in the middle of a rotation stays readable.
type Keyring struct {
	currentID string
	keys      map[string][]byte
}

// NewKeyring returns a keyring whose current KEK is current (id currentID); previous maps older key
// ids to keys that may still unwrap data keys.
func NewKeyring(currentID string, current []byte, previous map[string][]byte) (*Keyring, error) {
	if currentID == "" {
		return nil, errors.New("envelope: the current KEK needs a key id")
	}
	if len(current) != KeySize {
		return nil, fmt.Errorf("envelope: the KEK must be %d bytes", KeySize)
	}
	k := &Keyring{currentID: currentID, keys: map[string][]byte{currentID: clone(current)}}
	for id, key := range previous {
		if id == "" || len(key) != KeySize {
			return nil, fmt.Errorf("envelope: previous KEK %q must have an id and be %d bytes", id, KeySize)
		}
		if id == currentID {
			return nil, fmt.Errorf("envelope: previous KEK id %q is also the current key id", id)
		}
		k.keys[id] = clone(key)
	}
	return k, nil
}

// CurrentID is the id of the KEK that wraps new data keys.
func (k *Keyring) CurrentID() string { return k.currentID }

// Has reports whether the keyring holds a KEK with this id.
func (k *Keyring) Has(id string) bool { _, ok := k.keys[id]; return ok }

// IDs lists the key ids held, sorted.
func (k *Keyring) IDs() []string {
	out := make([]string, 0, len(k.keys))
	for id := range k.keys {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

// NewDataKey returns a fresh random data key wrapped by the current KEK for tenant.
func (k *Keyring) NewDataKey(tenant string) (dek, wrapped []byte, kekID string, err error) {
	dek = make([]byte, KeySize)
	if _, err := rand.Read(dek); err != nil {
		return nil, nil, "", err
	}
	wrapped, err = WrapDataKey(k.keys[k.currentID], k.currentID, tenant, dek)
	if err != nil {
		return nil, nil, "", err
	}
	return dek, wrapped, k.currentID, nil
}

// Unwrap opens a tenant's wrapped data key with the KEK of the recorded id.
func (k *Keyring) Unwrap(tenant, kekID string, wrapped []byte) ([]byte, error) {
	kek, ok := k.keys[kekID]
	if !ok {
		return nil, fmt.Errorf("%w (key id %q)", ErrUnknownKEK, kekID)
	}
	return UnwrapDataKey(kek, kekID, tenant, wrapped)
}

// WrapDataKey seals dek with kek; the result is nonce||ciphertext, bound to (tenant, kekID).
func WrapDataKey(kek []byte, kekID, tenant string, dek []byte) ([]byte, error) {
	return seal(kek, dek, aad("alga-secrets/data-key/v1", tenant, kekID))
}

// UnwrapDataKey opens a data key wrapped by WrapDataKey.
func UnwrapDataKey(kek []byte, kekID, tenant string, wrapped []byte) ([]byte, error) {
	dek, err := open(kek, wrapped, aad("alga-secrets/data-key/v1", tenant, kekID))
	if err != nil {
		return nil, err
	}
	if len(dek) != KeySize {
		return nil, ErrOpen
	}
	return dek, nil
}

// SealValue encrypts a secret value with the tenant's data key, bound to (tenant, name, version).
// It returns the random nonce and the ciphertext separately.
func SealValue(dek []byte, tenant, name string, version int64, plaintext []byte) (nonce, ciphertext []byte, err error) {
	gcm, err := newGCM(dek)
	if err != nil {
		return nil, nil, err
	}
	nonce = make([]byte, gcm.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, nil, err
	}
	return nonce, gcm.Seal(nil, nonce, plaintext, valueAAD(tenant, name, version)), nil
}

// OpenValue decrypts a value sealed by SealValue; any mismatch of key, tenant, name or version is ErrOpen.
func OpenValue(dek []byte, tenant, name string, version int64, nonce, ciphertext []byte) ([]byte, error) {
	gcm, err := newGCM(dek)
	if err != nil {
		return nil, err
	}
	if len(nonce) != gcm.NonceSize() {
		return nil, ErrOpen
	}
	pt, err := gcm.Open(nil, nonce, ciphertext, valueAAD(tenant, name, version))
	if err != nil {
		return nil, ErrOpen
	}
	return pt, nil
}

func valueAAD(tenant, name string, version int64) []byte {
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], uint64(version))
	return aad("alga-secrets/value/v1", tenant, name, string(v[:]))
}

// aad length-prefixes every part so that no two different tuples encode the same bytes.
func aad(parts ...string) []byte {
	var out []byte
	for _, p := range parts {
		out = binary.BigEndian.AppendUint32(out, uint32(len(p)))
		out = append(out, p...)
	}
	return out
}

func seal(key, plaintext, ad []byte) ([]byte, error) {
	gcm, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, gcm.NonceSize(), gcm.NonceSize()+len(plaintext)+gcm.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return gcm.Seal(nonce, nonce, plaintext, ad), nil
}

func open(key, sealed, ad []byte) ([]byte, error) {
	gcm, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	if len(sealed) < gcm.NonceSize()+gcm.Overhead() {
		return nil, ErrOpen
	}
	pt, err := gcm.Open(nil, sealed[:gcm.NonceSize()], sealed[gcm.NonceSize():], ad)
	if err != nil {
		return nil, ErrOpen
	}
	return pt, nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("envelope: key must be %d bytes", KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }
