package gateway

import (
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/radgate/radgate/audit"
	"github.com/radgate/radgate/audit/audittest"
	"github.com/radgate/radgate/auth"
	"github.com/radgate/radgate/auth/authtest"
	"github.com/radgate/radgate/internal/peertest"
	"github.com/radgate/radgate/phantom"
)

// sendPhantom sends a phantom CXR to g with DCMTK storescu, calling as
// MODALITY1.
func sendPhantom(t *testing.T, g *Gateway, storescu string, spec phantom.Spec) {
	t.Helper()
	ins, err := phantom.Generate(spec)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "cxr.dcm")
	if err := os.WriteFile(file, ins[0].Data, 0o644); err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(g.DIMSEAddr().String())
	peertest.Run(t, nil, storescu, "-aet", "MODALITY1", "-aec", "RADGATE", host, port, file)
}

// TestAuditTrail: a session with a real DCMTK sender, DICOMweb clients and
// a refused token leaves a trail of PS3.15 A.5 messages (each valid against
// the schema) naming the patient where PHI was touched; Verify passes on
// it untouched and fails once a byte is edited or the tail cut.
func TestAuditTrail(t *testing.T) {
	storescu := peertest.RequireTool(t, "storescu")
	rng := audittest.Schema(t)
	iss := authtest.NewIssuer(t)
	data := t.TempDir()
	g, cancel, done := startGateway(t, "RADGATE_DATA_DIR="+data, "RADGATE_STUDY_QUIET=1s", "RADGATE_STUDY_RELEASE_QUIET=200ms",
		"RADGATE_AUTH_JWKS="+iss.URL(), "RADGATE_AUTH_ISSUER="+iss.Issuer(), "RADGATE_AUTH_AUDIENCE="+authtest.Audience)
	dir := filepath.Join(data, auditDir)

	spec := phantom.Spec{Kind: phantom.KindCXR, Finding: phantom.Pneumothorax, Seed: 11}
	sendPhantom(t, g, storescu, spec)

	base := "http://" + g.HTTPAddr().String() + "/dicomweb"
	get := func(path, token string) int {
		req, _ := http.NewRequest("GET", base+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	reader := iss.Token(t, authtest.Claims{Subject: "dr.reader", Scopes: []string{auth.ScopeDICOMwebRead}})
	if code := get("/studies?PatientID=PH-cxr-11", reader); code != http.StatusOK {
		t.Fatalf("QIDO: %d", code)
	}
	if code := get("/studies/"+spec.StudyInstanceUID()+"/metadata", reader); code != http.StatusOK {
		t.Fatalf("WADO metadata: %d", code)
	}
	if code := get("/studies", "not-a-token"); code != http.StatusUnauthorized {
		t.Fatalf("a bad token: %d", code)
	}
	// The model finds the pneumothorax and raises the priority: a
	// Procedure Record update, read from the worklist's event log.
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(strings.Join(audittest.Messages(t, dir), "\n"), `csd-code="110111"`) {
		if time.Now().After(deadline) {
			t.Fatal("no priority change audited within 60 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	cancel()
	err := <-done
	done <- err // for startGateway's cleanup
	if err != nil {
		t.Fatal(err)
	}

	msgs := audittest.Messages(t, dir)
	want := map[string]string{ // a fragment of each message that must be there
		"start":     `csd-code="110120"`,
		"config":    `csd-code="110131"`,
		"received":  `EventActionCode="C"`,
		"query":     `csd-code="110112"`,
		"retrieved": `UserID="dr.reader"`,
		"auth":      `csd-code="110122"`,
		"priority":  `csd-code="110111"`,
		"stop":      `csd-code="110121"`,
	}
	all := strings.Join(msgs, "\n")
	for what, frag := range want {
		if !strings.Contains(all, frag) {
			t.Errorf("no %s message (%s) in the trail", what, frag)
		}
	}
	for _, m := range msgs {
		if strings.Contains(m, `EventActionCode="C"`) && (!strings.Contains(m, "PH-cxr-11") || !strings.Contains(m, `UserID="MODALITY1"`)) {
			t.Errorf("the received message names neither the patient nor the sender:\n%s", m)
		}
	}
	for i, m := range msgs {
		if err := audittest.Validate(t, rng, "msg", []byte(m)); err != nil {
			t.Errorf("message %d does not follow the PS3.15 A.5.1 schema: %v\n%s", i, err, m)
		}
	}
	rep, err := audit.Verify(dir)
	if err != nil || rep.Records != len(msgs) {
		t.Fatalf("Verify on the untouched trail: %+v, %v (want %d records)", rep, err, len(msgs))
	}

	// Edited: one byte of a record changed. Truncated: the last record cut.
	files, _ := filepath.Glob(filepath.Join(dir, "audit-*.jsonl"))
	last := files[len(files)-1]
	orig, err := os.ReadFile(last)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(orig), "PH-cxr-11", "PH-cxr-12", 1)
	if edited == string(orig) {
		t.Fatal("the patient ID is not in the last file")
	}
	lines := strings.SplitAfter(strings.TrimSuffix(string(orig), "\n"), "\n")
	for name, content := range map[string]string{"edited": edited, "truncated": strings.Join(lines[:len(lines)-1], "")} {
		if err := os.WriteFile(last, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := audit.Verify(dir); !errors.Is(err, audit.ErrTampered) && !errors.Is(err, audit.ErrTruncated) {
			t.Errorf("Verify on the %s trail: %v; want a break", name, err)
		}
	}
	if err := os.WriteFile(last, orig, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := audit.Verify(dir); err != nil {
		t.Errorf("Verify after restoring: %v", err)
	}
}
