package authclient_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/wsmq/wsmq/pkg/testenv"
	"github.com/wsmq/wsmq/pkg/tlsconf"
	"github.com/wsmq/wsmq/services/gateway/internal/authclient"
	"github.com/wsmq/wsmq/services/gateway/internal/config"
)

// pki is a throwaway CA with a server and a client certificate, as files.
type pki struct {
	ca, serverCert, serverKey, clientCert, clientKey string
}

func newPKI(t *testing.T) pki {
	t.Helper()
	dir := t.TempDir()
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	caKey := key()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "wsmq test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	issue := func(serial int64, usage x509.ExtKeyUsage, name string) (string, string) {
		k := key()
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kb, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return write(name+".pem", "CERTIFICATE", der), write(name+"-key.pem", "EC PRIVATE KEY", kb)
	}
	p := pki{ca: write("ca.pem", "CERTIFICATE", caDER)}
	p.serverCert, p.serverKey = issue(2, x509.ExtKeyUsageServerAuth, "server")
	p.clientCert, p.clientKey = issue(3, x509.ExtKeyUsageClientAuth, "client")
	return p
}

// startAuth runs the auth binary (dev mode) with extra environment and
// returns its gRPC address once its admin listener is ready.
func startAuth(t *testing.T, env ...string) string {
	t.Helper()
	m := testenv.StartMongo(t)
	bin := testenv.Build(t, "github.com/wsmq/wsmq/services/auth")
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	admin := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	p := testenv.StartProcess(t, "auth", bin, append([]string{"WSMQ_DEV=1", "WSMQ_MONGO_URI=" + m.URI(),
		"WSMQ_AUTH_LISTEN=" + addr, "WSMQ_AUTH_METRICS_LISTEN=" + admin, "WSMQ_BCRYPT_COST=4"}, env...), "serve")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p.WaitHTTP(ctx, "http://"+admin+"/readyz")
	return addr
}

func dialTLS(t *testing.T, addr string, f *tlsconf.Files) *authclient.Client {
	t.Helper()
	o := authclient.Options{Addr: addr, Timeout: 5 * time.Second}
	if f != nil {
		tc, err := tlsconf.Client(*f)
		if err != nil {
			t.Fatal(err)
		}
		o.TLS = tc
	}
	c, err := authclient.DialWith(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// login proves a working channel: the dev user logs in and its JWT
// verifies, with the session id the gateway tracks revocations by.
func login(c *authclient.Client) error {
	ctx := context.Background()
	s, err := c.Authenticate(ctx, "demo", "demo", "203.0.113.7")
	if err != nil {
		return err
	}
	id, err := c.Verify(ctx, s.Token, "")
	if err != nil {
		return err
	}
	if id.SessionID == "" || id.UserID != s.UserID || id.IssuedAt == 0 {
		return fmt.Errorf("identity %+v lacks the session", id)
	}
	return nil
}

func TestGatewayReachesAuthOverTLSAndRefusesPlaintext(t *testing.T) {
	p := newPKI(t)
	addr := startAuth(t, "WSMQ_AUTH_TLS_CERT="+p.serverCert, "WSMQ_AUTH_TLS_KEY="+p.serverKey)
	if err := login(dialTLS(t, addr, &tlsconf.Files{CA: p.ca})); err != nil {
		t.Fatalf("over TLS: %v", err)
	}
	if err := login(dialTLS(t, addr, nil)); !errors.Is(err, authclient.ErrUnavailable) {
		t.Fatalf("plaintext to a TLS auth: %v, want unavailable", err)
	}
	// A server certificate from another CA is refused.
	other := newPKI(t)
	if err := login(dialTLS(t, addr, &tlsconf.Files{CA: other.ca})); !errors.Is(err, authclient.ErrUnavailable) {
		t.Fatalf("TLS with the wrong CA: %v, want unavailable", err)
	}
}

func TestMutualTLSRequiresTheGatewaysClientCertificate(t *testing.T) {
	p := newPKI(t)
	addr := startAuth(t, "WSMQ_AUTH_TLS_CERT="+p.serverCert, "WSMQ_AUTH_TLS_KEY="+p.serverKey, "WSMQ_AUTH_TLS_CLIENT_CA="+p.ca)
	if err := login(dialTLS(t, addr, &tlsconf.Files{CA: p.ca})); !errors.Is(err, authclient.ErrUnavailable) {
		t.Fatalf("mTLS without a client certificate: %v, want unavailable", err)
	}
	f := &tlsconf.Files{CA: p.ca, Cert: p.clientCert, Key: p.clientKey}
	if err := login(dialTLS(t, addr, f)); err != nil {
		t.Fatalf("mTLS with the client certificate: %v", err)
	}
}

// TestLoginsCountAgainstAuthsLimitPerClientAddressWithTheGatewayCredential:
// through one connection, the users behind a gateway do not share auth's
// per-address login limit when the gateway holds its credential: a flood
// from one client address leaves another alone. Without the credential
// the client address is not sent and the gateway is one address.
func TestLoginsCountAgainstAuthsLimitPerClientAddressWithTheGatewayCredential(t *testing.T) {
	addr := startAuth(t, "WSMQ_AUTH_LOGIN_RATE=1") // burst 2
	dial := func(token string) *authclient.Client {
		c, err := authclient.DialWith(authclient.Options{Addr: addr, Timeout: 5 * time.Second, WatchToken: token})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	ctx := context.Background()
	floodUntilLimited := func(c *authclient.Client, from func(i int) string) {
		t.Helper()
		for i := range 10 {
			_, err := c.Authenticate(ctx, "demo", "demo", from(i))
			switch {
			case err == nil:
			case errors.Is(err, authclient.ErrLimited):
				return
			default:
				t.Fatalf("login %d: %v", i, err)
			}
		}
		t.Fatal("10 logins at 1/s (burst 2) were never limited")
	}
	gw := dial(config.DevAuthGatewayToken) // the auth service in dev mode holds the same
	// A peer address that is not an IP is not sent: the login works, keyed
	// on the gateway.
	if _, err := gw.Authenticate(ctx, "demo", "demo", "pipe"); err != nil {
		t.Fatalf("client address that is not an IP: %v", err)
	}
	floodUntilLimited(gw, func(int) string { return "203.0.113.1" })
	if _, err := gw.Authenticate(ctx, "demo", "demo", "203.0.113.2"); err != nil {
		t.Fatalf("another client address behind the same gateway: %v", err)
	}

	bare := dial("")
	floodUntilLimited(bare, func(i int) string { return fmt.Sprintf("198.51.100.%d", i+1) })
	if _, err := bare.Authenticate(ctx, "demo", "demo", "198.51.100.200"); !errors.Is(err, authclient.ErrLimited) {
		t.Fatalf("without the gateway credential, a fresh client address: %v, want limited (the gateway is one address)", err)
	}
}
