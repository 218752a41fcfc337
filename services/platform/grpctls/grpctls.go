// Package grpctls loads the TLS material of gRPC between targets in the distributed mode
// (ALGA_GRPC_TLS_CERT, ALGA_GRPC_TLS_KEY, ALGA_GRPC_TLS_CA): the certificate a target serves with and
// presents as a client, and the CA that verifies its peers. With a CA, both sides verify each other
// (mutual TLS): a server refuses a client without a certificate the CA signed. Calls between targets of
// one process stay on the in-process listener, which needs no TLS.
package grpctls

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"

	"google.golang.org/grpc/credentials"
)

// Config is loaded TLS material; the zero Config (nil) means plaintext gRPC.
type Config struct {
	cert tls.Certificate
	cas  *x509.CertPool
}

// Load reads the certificate and key (PEM files) and, when caFile is set, the CA bundle verifying peers.
// All empty: nil (plaintext). A CA without a certificate, or a certificate without its key, is an error.
func Load(certFile, keyFile, caFile string) (*Config, error) {
	if certFile == "" && keyFile == "" && caFile == "" {
		return nil, nil
	}
	if certFile == "" || keyFile == "" {
		return nil, errors.New("gRPC TLS needs both ALGA_GRPC_TLS_CERT and ALGA_GRPC_TLS_KEY")
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("gRPC TLS certificate: %w", err)
	}
	c := &Config{cert: cert}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("gRPC TLS CA: %w", err)
		}
		c.cas = x509.NewCertPool()
		if !c.cas.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("gRPC TLS CA: no certificate in %s", caFile)
		}
	}
	return c, nil
}

// Mutual reports whether peers are verified both ways (a CA is configured).
func (c *Config) Mutual() bool { return c != nil && c.cas != nil }

// Server is the server side: this certificate, and with a CA, a client certificate it signed required.
func (c *Config) Server() *tls.Config {
	if c == nil {
		return nil
	}
	t := &tls.Config{Certificates: []tls.Certificate{c.cert}, MinVersion: tls.VersionTLS12}
	if c.cas != nil {
		t.ClientCAs = c.cas
		t.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return t
}

// Client is the client side: servers verified with the CA (the system roots without one), this
// certificate presented.
func (c *Config) Client() *tls.Config {
	if c == nil {
		return nil
	}
	return &tls.Config{Certificates: []tls.Certificate{c.cert}, RootCAs: c.cas, MinVersion: tls.VersionTLS12}
}

// ServerCredentials are the gRPC server's transport credentials: TLS on network listeners, none on the
// in-process listener (bufconn), which only the process itself can reach.
func ServerCredentials(t *tls.Config) credentials.TransportCredentials {
	return &exceptInProcess{TransportCredentials: credentials.NewTLS(t)}
}

type exceptInProcess struct {
	credentials.TransportCredentials
}

// inProcess is the AuthInfo of a connection over the in-process listener.
type inProcess struct{ credentials.CommonAuthInfo }

func (inProcess) AuthType() string { return "in-process" }

func (e *exceptInProcess) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	if conn.LocalAddr().Network() == "bufconn" {
		return conn, inProcess{credentials.CommonAuthInfo{SecurityLevel: credentials.NoSecurity}}, nil
	}
	return e.TransportCredentials.ServerHandshake(conn)
}

func (e *exceptInProcess) Clone() credentials.TransportCredentials {
	return &exceptInProcess{TransportCredentials: e.TransportCredentials.Clone()}
}
