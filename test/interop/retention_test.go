package interop

import (
	"bytes"
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/radgate/radgate/audit/audittest"
	"github.com/radgate/radgate/internal/peertest"
	"github.com/radgate/radgate/phantom"
)

// Issue 9's retention and purge: once a study's results are delivered to
// a real PACS (Orthanc), radgate purges it after study_retention, or when
// an administrator deletes it over DICOMweb; either way the study is gone
// from DICOMweb and from the disk, and the audit trail says so (DICOM
// Study Deleted, PS3.15 A.5.3.8).

// cxrPatientID is the patient of phantoms' chest radiograph (seed 12); the
// tests check that the study is that phantom's.
const cxrPatientID = "PH-cxr-12"

// purgeRig is a radgate whose results go to an Orthanc PACS (started by
// pacs, once wanted), and phantoms' chest radiograph to send it.
type purgeRig struct {
	r        *peertest.Radgate
	cxr      string
	pacsPort int
}

// newPurgeRig starts radgate with the pipeline tests' settings and extra.
func newPurgeRig(t *testing.T, extra map[string]string) *purgeRig {
	t.Helper()
	peertest.Require(t, "Orthanc", "storescu")
	_, cxr := phantoms(t, t.TempDir())
	p := &purgeRig{cxr: cxr, pacsPort: peertest.MustFreePort(t)}
	env := pipelineEnv("ORTHANC@127.0.0.1:" + itoa(p.pacsPort))
	maps.Copy(env, extra)
	p.r = startRadgate(t, env)
	return p
}

// send sends the chest radiograph to radgate with storescu; it returns
// its study.
func (p *purgeRig) send(t *testing.T) string {
	t.Helper()
	if out, err := dcmtk(t, "storescu", "-aet", "MODALITY", "-aec", p.r.Config.AE, "+sd", "+r", "127.0.0.1", itoa(p.r.Config.DIMSEPort), p.cxr); err != nil {
		t.Fatalf("storescu → radgate: %v\n%s", err, out)
	}
	return phantom.Spec{Kind: phantom.KindCXR, Finding: phantom.Pneumothorax, Seed: 12}.StudyInstanceUID()
}

// pacs starts the PACS and waits until the study's SR reached it.
func (p *purgeRig) pacs(t *testing.T) *peertest.Orthanc {
	t.Helper()
	o := peertest.StartOrthanc(t, t.TempDir(), peertest.OrthancConfig{DicomPort: p.pacsPort, GatewayAET: p.r.Config.AE, GatewayPort: p.r.Config.DIMSEPort})
	waitObjects(t, o, p.r, srClass, 1, 2*time.Minute)
	return o
}

// studyGone checks that r no longer has the study: QIDO-RS finds nothing,
// WADO-RS answers 404, and no log segment holds the patient's ID.
func studyGone(t *testing.T, r *peertest.Radgate, study string) {
	t.Helper()
	resp, err := http.Get(r.HTTPURL() + "/dicomweb/studies?PatientID=" + cxrPatientID)
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	body.ReadFrom(resp.Body)
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK && strings.TrimSpace(body.String()) != "[]" || resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNoContent {
		t.Errorf("QIDO-RS after the purge: %s %s", resp.Status, body.String())
	}
	if resp, err = http.Get(r.HTTPURL() + "/dicomweb/studies/" + study + "/metadata"); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("WADO-RS after the purge: %s, want 404", resp.Status)
	}
	segs, _ := filepath.Glob(filepath.Join(r.DataDir(), "segments", "*.seg"))
	for _, p := range segs {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(cxrPatientID)) {
			t.Errorf("segment %s still holds the purged patient's ID", filepath.Base(p))
		}
	}
}

// deletedMessage returns the trail's DICOM Study Deleted message, checked
// against the PS3.15 A.5.1 schema, once the trail is verified intact with
// radgate audit verify.
func deletedMessage(t *testing.T, r *peertest.Radgate) string {
	t.Helper()
	dir := filepath.Join(r.DataDir(), "audit")
	cmd := exec.Command(radgateBin(t), "audit", "verify", "--data-dir", r.DataDir())
	cmd.Env = peertest.CleanEnv()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("radgate audit verify: %v\n%s", err, out)
	}
	rng := audittest.Schema(t)
	var found []string
	for _, m := range audittest.Messages(t, dir) {
		if strings.Contains(m, `csd-code="110105"`) {
			if err := audittest.Validate(t, rng, "deleted", []byte(m)); err != nil {
				t.Errorf("Study Deleted does not follow the schema: %v\n%s", err, m)
			}
			found = append(found, m)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d Study Deleted messages in the trail, want 1", len(found))
	}
	if m := found[0]; !strings.Contains(m, cxrPatientID) || !strings.Contains(m, `EventActionCode="D"`) {
		t.Errorf("Study Deleted names no patient or no action D:\n%s", m)
	}
	return found[0]
}

// TestRetentionPurgesDeliveredStudy: with study_retention set, a study is
// purged once its SR reached the PACS and the period passed.
func TestRetentionPurgesDeliveredStudy(t *testing.T) {
	t.Parallel()
	p := newPurgeRig(t, map[string]string{"RADGATE_STUDY_RETENTION": "2s"})
	r := p.r
	study := p.send(t)
	o := p.pacs(t)
	delivered := time.Now()
	if _, err := logLine(r, 0, time.Minute, "store: study purged"); err != nil {
		t.Fatalf("not purged: %v\n%s", err, r.LogTail(30))
	}
	if waited := time.Since(delivered); waited < time.Second {
		t.Errorf("purged %s after delivery; the retention is 2s", waited)
	}
	if got := metric(t, r, "radgate_store_purged_studies_total"); got != 1 {
		t.Errorf("radgate_store_purged_studies_total = %v, want 1", got)
	}
	studyGone(t, r, study)
	if n := len(orthancObjects(t, o, srClass)); n != 1 {
		t.Errorf("the PACS holds %d SRs after the purge, want 1 (results are the PACS's to keep)", n)
	}
	if err := r.Stop(peertest.StopTimeout); err != nil {
		t.Fatal(err)
	}
	if m := deletedMessage(t, r); !strings.Contains(m, `UserID="`+r.Config.AE+` retention"`) {
		t.Errorf("Study Deleted does not name radgate's retention as who deleted:\n%s", m)
	}
}

// TestDeleteStudy: DELETE /dicomweb/studies/{study} refuses a study still
// being worked on (409), purges a delivered one (204), then finds nothing
// (404); a malformed UID is 400.
func TestDeleteStudy(t *testing.T) {
	t.Parallel()
	p := newPurgeRig(t, map[string]string{
		"RADGATE_STUDY_RELEASE_QUIET": "0",
		"RADGATE_STUDY_QUIET":         "5s", // the first DELETE comes inside it
	})
	r := p.r
	del := func(study string) (int, string) {
		req, _ := http.NewRequest(http.MethodDelete, r.HTTPURL()+"/dicomweb/studies/"+study, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		return resp.StatusCode, resp.Header.Get("Retry-After")
	}
	study := p.send(t)
	if code, retry := del(study); code != http.StatusConflict || retry == "" {
		t.Fatalf("DELETE of a study not yet evaluated: %d (Retry-After %q), want 409 with Retry-After", code, retry)
	}
	p.pacs(t)
	if err := waitFor(30*time.Second, func() error {
		if code, _ := del(study); code != http.StatusNoContent {
			return fmt.Errorf("DELETE: %d", code)
		}
		return nil
	}); err != nil {
		t.Fatalf("%v\n%s", err, r.LogTail(30))
	}
	if code, _ := del(study); code != http.StatusNotFound {
		t.Errorf("DELETE of a purged study: %d, want 404", code)
	}
	if code, _ := del("1.2.x"); code != http.StatusBadRequest {
		t.Errorf("DELETE of a malformed UID: %d, want 400", code)
	}
	studyGone(t, r, study)
	if err := r.Stop(peertest.StopTimeout); err != nil {
		t.Fatal(err)
	}
	if m := deletedMessage(t, r); !strings.Contains(m, `NetworkAccessPointID="127.0.0.1"`) {
		t.Errorf("Study Deleted does not name the client that asked:\n%s", m)
	}
}
