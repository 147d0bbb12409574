package audit

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// writePKI makes a test CA and a server certificate for 127.0.0.1 and
// returns the PEM file paths.
func writePKI(t *testing.T, dir string) (ca, cert, key string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "radgate test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	srvKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srvTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(srvKey)
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return write("ca.pem", "CERTIFICATE", caDER), write("cert.pem", "CERTIFICATE", srvDER), write("key.pem", "PRIVATE KEY", keyDER)
}

// collector is rsyslogd (Debian rsyslog + rsyslog-gnutls) as a child
// process: imtcp with the gtls stream driver on 127.0.0.1, writing each
// message's raw form to a file.
type collector struct {
	dir, out string
	port     int
	cmd      *exec.Cmd
}

func startCollector(t *testing.T, dir string, port int) *collector {
	t.Helper()
	bin, err := exec.LookPath("rsyslogd")
	if err != nil {
		t.Skip("rsyslogd not installed (Debian packages rsyslog and rsyslog-gnutls): syslog forwarding test skipped")
	}
	if _, err := os.Stat("/usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_gtls.so"); err != nil {
		if m, _ := filepath.Glob("/usr/lib/*/rsyslog/lmnsd_gtls.so"); len(m) == 0 {
			t.Skip("rsyslog gtls driver not installed (Debian package rsyslog-gnutls): syslog forwarding test skipped")
		}
	}
	ca, cert, key := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	c := &collector{dir: dir, out: filepath.Join(dir, "received.log")}
	portFile := filepath.Join(dir, "port")
	os.Remove(portFile)
	conf := fmt.Sprintf(`global(workDirectory=%q
  defaultNetstreamDriver="gtls"
  defaultNetstreamDriverCAFile=%q defaultNetstreamDriverCertFile=%q defaultNetstreamDriverKeyFile=%q)
module(load="imtcp" streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon")
input(type="imtcp" address="127.0.0.1" port="%d" listenPortFileName=%q)
template(name="raw" type="string" string="%%rawmsg%%\n")
action(type="omfile" file=%q template="raw" flushOnTXEnd="on")
`, dir, ca, cert, key, port, portFile, c.out)
	confPath := filepath.Join(dir, "rsyslog.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	c.cmd = exec.Command(bin, "-n", "-f", confPath, "-i", filepath.Join(dir, "rsyslog.pid"))
	c.cmd.Stdout, c.cmd.Stderr = t.Output(), t.Output()
	// If the test binary dies (a -timeout panic skips Cleanup), the
	// collector goes with it rather than linger.
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.stop)
	// rsyslog writes the port it bound to listenPortFileName when asked for
	// port 0; for a fixed port (a restart) it is ready once it accepts.
	c.port = port
	waitFor(t, "rsyslog listening", func() bool {
		if c.port == 0 {
			b, err := os.ReadFile(portFile)
			if err != nil {
				return false
			}
			fmt.Sscan(string(b), &c.port)
			return false
		}
		conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", c.port))
		if err == nil {
			conn.Close()
		}
		return err == nil
	})
	return c
}

func (c *collector) stop() {
	if c.cmd.Process != nil && c.cmd.ProcessState == nil {
		c.cmd.Process.Signal(syscall.SIGTERM)
		c.cmd.Wait()
	}
}

func (c *collector) lines() []string {
	b, _ := os.ReadFile(c.out)
	return strings.FieldsFunc(string(b), func(r rune) bool { return r == '\n' })
}

// waitFor polls cond: the peer signals through files, not a channel.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var syslogLine = regexp.MustCompile(`^<(\d+)>1 (\S+) (\S+) radgate (\d+) IHE\+RFC-3881 - \x{FEFF}(<\?xml .*</AuditMessage>)$`)

func TestSyslogForwardingToRsyslog(t *testing.T) {
	pki := t.TempDir()
	ca, _, _ := writePKI(t, pki)
	col := startCollector(t, pki, 0)
	dir := t.TempDir()
	opt := Options{Syslog: fmt.Sprintf("tls://127.0.0.1:%d", col.port), SyslogCA: ca, SyslogHostname: "gw.test"}
	ctx := context.Background()

	tr := open(t, dir, opt)
	recordN(t, tr, 0, 2)
	fail := AuthenticationFailed(AuthEvent{Header: Header{Description: "expired token"}, User: Node{ID: "c", Addr: "127.0.0.1"}, Node: Node{ID: "g"}})
	if err := tr.Record(ctx, fail); err != nil {
		t.Fatal(err)
	}
	if err := tr.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "3 messages at the collector", func() bool { return len(col.lines()) >= 3 })

	var pris []string
	for _, l := range col.lines() {
		m := syslogLine.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("not an RFC 5424 audit message: %q", l)
		}
		pris = append(pris, m[1])
		if m[3] != "gw.test" {
			t.Errorf("HOSTNAME %q", m[3])
		}
		if _, err := Unmarshal([]byte(m[5])); err != nil {
			t.Errorf("MSG is not an audit message: %v", err)
		}
	}
	// authpriv (10): notice (5) = 85, the failed login warning (4) = 84.
	if strings.Join(pris, ",") != "85,85,84" {
		t.Errorf("PRI values %v, want 85,85,84", pris)
	}

	// The collector goes down; records keep coming, and are sent once it is back.
	col.stop()
	recordN(t, tr, 10, 2)
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	col = startCollector(t, pki, col.port)
	tr = open(t, dir, opt)
	recordN(t, tr, 20, 1)
	if err := tr.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "all 6 messages", func() bool { return len(col.lines()) >= 6 })
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	col.stop()
	if n := len(col.lines()); n != 6 {
		t.Errorf("collector has %d messages, want exactly 6 (cursor resumed, nothing resent)", n)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, cursorFile)); string(bytes.TrimSpace(b)) != "6" {
		t.Errorf("cursor %q, want 6", b)
	}
}

func TestSyslogOptionErrors(t *testing.T) {
	for _, s := range []string{"udp://h:514", "tls://nohost", "::"} {
		if _, err := Open(t.TempDir(), Options{Syslog: s}, testLogger(t)); err == nil {
			t.Errorf("Open accepted Syslog %q", s)
		}
	}
}
