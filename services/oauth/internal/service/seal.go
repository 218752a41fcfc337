package service

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
)

// randomToken returns n random bytes, base64url without padding.
func randomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go ≥ 1.24)
	return base64.RawURLEncoding.EncodeToString(b)
}

func hashOf(domain, v string) []byte {
	h := sha256.New()
	h.Write([]byte(domain))
	h.Write([]byte{0})
	h.Write([]byte(v))
	return h.Sum(nil)
}

// stateHash is what the database keeps of a state.
func stateHash(state string) []byte { return hashOf("alga-google/oauth-state", state) }

// bindingHash is what the database keeps of a browser binding.
func bindingHash(binding string) []byte { return hashOf("alga-google/oauth-binding", binding) }

// sealVerifier encrypts the PKCE verifier with a key derived from the state, which only the browser holds
// (the database keeps a hash of it): a copy of the table alone does not reveal any verifier.
func sealVerifier(state, verifier string) ([]byte, error) {
	gcm, err := stateAEAD(state)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, gcm.NonceSize())
	_, _ = rand.Read(nonce)
	return gcm.Seal(nonce, nonce, []byte(verifier), stateHash(state)), nil
}

func openVerifier(state string, sealed []byte) (string, error) {
	gcm, err := stateAEAD(state)
	if err != nil {
		return "", err
	}
	if len(sealed) < gcm.NonceSize() {
		return "", errors.New("sealed verifier too short")
	}
	plain, err := gcm.Open(nil, sealed[:gcm.NonceSize()], sealed[gcm.NonceSize():], stateHash(state))
	return string(plain), err
}

func stateAEAD(state string) (cipher.AEAD, error) {
	key := hashOf("alga-google/pkce-verifier-key", state)
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}
