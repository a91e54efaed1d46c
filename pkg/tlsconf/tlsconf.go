// Package tlsconf builds TLS configurations for wsmq's gRPC listeners and
// their clients from PEM files, naming the setting that held a bad file.
package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// Files names the PEM files of one side of a connection and the settings
// (environment variables) they came from, for error messages.
type Files struct {
	// Cert and Key are this side's certificate and private key; for a
	// client they are optional (mTLS) and go together.
	Cert, Key string
	// CA is the bundle that verifies the other side: for a server, client
	// certificates (setting it requires them: mTLS); for a client, the
	// server's certificate (empty: the system roots).
	CA string
	// CertVar, KeyVar and CAVar name the settings (e.g. WSMQ_TLS_CERT).
	CertVar, KeyVar, CAVar string
}

// Server loads a certificate and key, and when CA is set, requires and
// verifies client certificates signed by that CA bundle (mTLS).
func Server(f Files) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return nil, fmt.Errorf("tls: load %s %s / %s %s: %w", f.CertVar, f.Cert, f.KeyVar, f.Key, err)
	}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
	}
	if f.CA != "" {
		pool, err := loadPool(f.CA, f.CAVar)
		if err != nil {
			return nil, err
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// Client verifies the server against CA (the system roots when empty) and,
// when Cert and Key are set, presents that client certificate (mTLS).
func Client(f Files) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if f.CA != "" {
		pool, err := loadPool(f.CA, f.CAVar)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	if (f.Cert == "") != (f.Key == "") {
		return nil, fmt.Errorf("tls: %s and %s must be set together", f.CertVar, f.KeyVar)
	}
	if f.Cert != "" {
		cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
		if err != nil {
			return nil, fmt.Errorf("tls: load %s %s / %s %s: %w", f.CertVar, f.Cert, f.KeyVar, f.Key, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

func loadPool(file, name string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("tls: read %s: %w", name, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, errors.New("tls: " + name + " holds no PEM certificate")
	}
	return pool, nil
}
