package interop

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/radgate/radgate/internal/peertest"
	"github.com/radgate/radgate/phantom"
)

// fhirSearch runs a FHIR search and returns the bundle's resources.
func fhirSearch(t *testing.T, base, query string) []map[string]any {
	t.Helper()
	resp, err := http.Get(base + "/" + query)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b struct {
		Entry []struct{ Resource map[string]any }
	}
	if err := json.NewDecoder(resp.Body).Decode(&b); err != nil {
		t.Fatalf("search %s: %v", query, err)
	}
	var out []map[string]any
	for _, e := range b.Entry {
		out = append(out, e.Resource)
	}
	return out
}

// TestPipelineFHIR — acceptance (issue 7): with the FHIR server down while
// a positive CT study completes and is inferred, nothing is lost: once it
// is up, the ImagingStudy, the DiagnosticReport and its Observation
// arrive, exactly once each (a search by identifier returns one).
func TestPipelineFHIR(t *testing.T) {
	t.Parallel()
	peertest.Require(t, "storescu", "node", "npm")
	mods := peertest.NodeModules(t, peertest.FHIRPackages...)
	fhirPort := peertest.MustFreePort(t)
	base := "http://127.0.0.1:" + strconv.Itoa(fhirPort) + "/fhir"
	r := startRadgate(t, map[string]string{
		"RADGATE_FHIR_URL":              base,
		"RADGATE_FHIR_UNKNOWN_PATIENT":  "create",
		"RADGATE_STUDY_QUIET":           "2s",
		"RADGATE_DELIVERY_BACKOFF":      "200ms",
		"RADGATE_DELIVERY_BACKOFF_MAX":  "1s",
		"RADGATE_DELIVERY_MAX_ATTEMPTS": "1000",
	})
	dir := t.TempDir()
	spec := phantom.Spec{Kind: phantom.KindCTHead, Finding: phantom.Hemorrhage, Seed: 31, Slices: 8}
	cmd := exec.Command(radgateBin(t), "phantom", "--kind", "ct-head", "--finding", "hemorrhage", "--seed", "31", "--slices", "8", "--out", dir)
	cmd.Env = peertest.CleanEnv()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("radgate phantom: %v\n%s", err, out)
	}
	if out, err := dcmtk(t, "storescu", "-aet", "MODALITY", "-aec", r.Config.AE, "+sd", "+r", "127.0.0.1", itoa(r.Config.DIMSEPort), dir); err != nil {
		t.Fatalf("storescu → radgate: %v\n%s", err, out)
	}
	// Both notifications fail while the EHR is down.
	for _, kind := range []string{"kind=fhir-imagingstudy", "kind=fhir-report"} {
		if _, err := logLine(r, 0, 2*time.Minute, "delivery: failed; will retry", kind); err != nil {
			t.Fatalf("no failed %s attempt: %v\n%s", kind, err, r.LogTail(30))
		}
	}
	f, err := peertest.LaunchFHIR(mods, fhirPort, t.TempDir()+"/fhir-server.log")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Stop(peertest.StopTimeout) })
	if err := waitFor(time.Minute, func() error {
		if got := metric(t, r, `radgate_outbox{state="delivered"}`); got != 2 {
			return fmt.Errorf("%v of 2 notifications delivered", got)
		}
		return nil
	}); err != nil {
		t.Fatalf("%v\nradgate log:\n%s\nFHIR server log:\n%s", err, r.LogTail(30), f.LogTail(30))
	}
	time.Sleep(2 * time.Second) // a duplicate would arrive now
	uid := spec.StudyInstanceUID()
	studies := fhirSearch(t, base, "ImagingStudy?identifier="+url.QueryEscape("urn:dicom:uid|urn:oid:"+uid))
	if len(studies) != 1 {
		t.Fatalf("ImagingStudy with the study's identifier: %d, want exactly 1", len(studies))
	}
	if n := studies[0]["numberOfInstances"]; n != float64(8) {
		t.Errorf("ImagingStudy numberOfInstances %v, want 8", n)
	}
	reports := fhirSearch(t, base, "DiagnosticReport?_count=100")
	if len(reports) != 1 || reports[0]["status"] != "preliminary" {
		t.Fatalf("DiagnosticReports %v; want one, preliminary", reports)
	}
	if res, _ := reports[0]["result"].([]any); len(res) != 1 {
		t.Errorf("DiagnosticReport results %v; want one Observation (hemorrhage)", reports[0]["result"])
	}
	if obs := fhirSearch(t, base, "Observation?_count=100"); len(obs) != 1 {
		t.Errorf("Observations: %d, want 1", len(obs))
	}
	if pts := fhirSearch(t, base, "Patient?_count=100"); len(pts) != 1 {
		t.Errorf("Patients: %d, want 1 (created once, per fhir_unknown_patient=create)", len(pts))
	}
}
