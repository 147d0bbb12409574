package interop

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"

	"github.com/radgate/radgate/internal/peertest"
	"github.com/radgate/radgate/models"
	"github.com/radgate/radgate/phantom"
)

// Issue 4's acceptance: Orthanc is the PACS; its Lua auto-forward sends
// what it stores to radgate; radgate's SR (and KOS) come back into the
// same study with no manual step.

const (
	srClass  = "1.2.840.10008.5.1.4.1.1.88.33" // Comprehensive SR
	kosClass = "1.2.840.10008.5.1.4.1.1.88.59" // Key Object Selection
	ctSlices = 12
)

// phantoms writes a positive head CT series and a positive chest
// radiograph with radgate phantom, into dir/ct and dir/cxr.
func phantoms(t *testing.T, dir string) (ct, cxr string) {
	t.Helper()
	ct, cxr = filepath.Join(dir, "ct"), filepath.Join(dir, "cxr")
	for _, args := range [][]string{
		{"phantom", "--kind", "ct-head", "--finding", "hemorrhage", "--seed", "11", "--slices", strconv.Itoa(ctSlices), "--out", ct},
		{"phantom", "--kind", "cxr", "--finding", "pneumothorax", "--seed", "12", "--out", cxr},
	} {
		cmd := exec.Command(radgateBin(t), args...)
		cmd.Env = peertest.CleanEnv()
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("radgate %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	return ct, cxr
}

// pipelineEnv is radgate's configuration for the pipeline tests: short
// quiet periods and retries, results to the PACS at pacs (AE@host:port).
func pipelineEnv(pacs string) map[string]string {
	return map[string]string{
		"RADGATE_RESULTS_TO":            "dimse://" + pacs,
		"RADGATE_STUDY_QUIET":           "3s",
		"RADGATE_STUDY_RELEASE_QUIET":   "1s",
		"RADGATE_DELIVERY_BACKOFF":      "200ms",
		"RADGATE_DELIVERY_BACKOFF_MAX":  "1s",
		"RADGATE_DELIVERY_MAX_ATTEMPTS": "1000",
	}
}

// orthancObject is one instance Orthanc holds, by its main tags.
type orthancObject struct {
	ID       string
	SOPClass string
	SOPUID   string
	StudyUID string
}

// orthancObjects lists Orthanc's instances of a SOP class.
func orthancObjects(t *testing.T, o *peertest.Orthanc, sopClass string) []orthancObject {
	t.Helper()
	ctx := context.Background()
	body, _ := json.Marshal(map[string]any{"Level": "Instance", "Expand": true, "Query": map[string]string{"SOPClassUID": sopClass}})
	out, err := o.Do(ctx, http.MethodPost, "/tools/find", "application/json", body)
	if err != nil {
		t.Fatalf("Orthanc /tools/find: %v", err)
	}
	var found []struct{ ID string }
	if err := json.Unmarshal(out, &found); err != nil {
		t.Fatalf("Orthanc /tools/find: %v: %s", err, out)
	}
	var objs []orthancObject
	for _, f := range found {
		var tags map[string]any
		if err := o.GetJSON(ctx, "/instances/"+f.ID+"/simplified-tags", &tags); err != nil {
			t.Fatal(err)
		}
		get := func(k string) string { s, _ := tags[k].(string); return s }
		objs = append(objs, orthancObject{ID: f.ID, SOPClass: get("SOPClassUID"), SOPUID: get("SOPInstanceUID"), StudyUID: get("StudyInstanceUID")})
	}
	return objs
}

// waitObjects waits until Orthanc holds n instances of sopClass.
func waitObjects(t *testing.T, o *peertest.Orthanc, r *peertest.Radgate, sopClass string, n int, timeout time.Duration) []orthancObject {
	t.Helper()
	var objs []orthancObject
	err := waitFor(timeout, func() error {
		if objs = orthancObjects(t, o, sopClass); len(objs) < n {
			return fmt.Errorf("Orthanc holds %d instances of %s, want %d", len(objs), sopClass, n)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%v\nradgate log:\n%s", err, r.LogTail(40))
	}
	return objs
}

// download saves an Orthanc instance into dir.
func download(t *testing.T, o *peertest.Orthanc, id, dir string) string {
	t.Helper()
	b, err := o.Do(context.Background(), http.MethodGet, "/instances/"+id+"/file", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, id+".dcm")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// validate runs dciodvfy, dsrdump and dcentvfy on an SR or KOS and its
// source image.
func validate(t *testing.T, obj, source string, sr bool) {
	t.Helper()
	out, err := exec.Command("dciodvfy", obj).CombinedOutput()
	if err != nil || regexp.MustCompile(`(?m)^Error`).Match(out) {
		t.Errorf("dciodvfy %s: %v\n%s", filepath.Base(obj), err, out)
	}
	if sr {
		if out, err := exec.Command("dsrdump", "-q", obj).CombinedOutput(); err != nil {
			t.Errorf("dsrdump -q: %v\n%s", err, out)
		}
	}
	if out, err := exec.Command("dcentvfy", obj, source).CombinedOutput(); err != nil || regexp.MustCompile(`(?m)^Error`).Match(out) {
		t.Errorf("dcentvfy %s %s: %v\n%s", filepath.Base(obj), filepath.Base(source), err, out)
	}
}

// inferred runs radgate infer on a folder and returns its findings: label
// → probability, and the labels found positive.
func inferred(t *testing.T, r *peertest.Radgate, model, dir string) (map[string]float64, map[string]bool) {
	t.Helper()
	cmd := exec.Command(radgateBin(t), "infer", "--model", model, dir)
	cmd.Env = r.Config.Environ()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("radgate infer --model %s: %v", model, err)
	}
	var res struct {
		Findings []struct {
			Label       string
			Probability float64
			Positive    bool
		}
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("radgate infer output: %v\n%s", err, out)
	}
	p, pos := map[string]float64{}, map[string]bool{}
	for _, f := range res.Findings {
		p[f.Label] = f.Probability
		pos[f.Label] = f.Positive
	}
	return p, pos
}

// srFinding is one measurement group of an SR as read back: the finding's
// code meaning, the probability, and whether it was evaluated present.
type srFinding struct {
	probability float64
	positive    bool
}

// readSR reads the measurement groups of a TID 1500 SR with
// suyashkumar/dicom: every CONTAINER holding a NUM and a "Finding" CODE.
func readSR(t *testing.T, path string) map[string]srFinding {
	t.Helper()
	ds, err := dicom.ParseFile(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]srFinding{}
	var walk func(items []*dicom.Element)
	walk = func(els []*dicom.Element) {
		for _, e := range els {
			if e.Tag != tag.ContentSequence {
				continue
			}
			for _, it := range e.Value.GetValue().([]*dicom.SequenceItemValue) {
				child := it.GetValue().([]*dicom.Element)
				if str(child, tag.ValueType) == "CONTAINER" {
					if f, name, ok := group(child); ok {
						out[name] = f
					}
				}
				walk(child)
			}
		}
	}
	walk(ds.Elements)
	return out
}

// group reads a measurement group's finding, probability and evaluation.
func group(els []*dicom.Element) (srFinding, string, bool) {
	var f srFinding
	var name string
	var haveNum bool
	for _, e := range els {
		if e.Tag != tag.ContentSequence {
			continue
		}
		for _, it := range e.Value.GetValue().([]*dicom.SequenceItemValue) {
			c := it.GetValue().([]*dicom.Element)
			concept := codeMeaning(c, tag.ConceptNameCodeSequence)
			switch str(c, tag.ValueType) {
			case "CODE":
				value := codeMeaning(c, tag.ConceptCodeSequence)
				switch {
				case concept == "Finding":
					name = value
				case strings.Contains(strings.ToLower(value), "present"), strings.EqualFold(value, "Yes"), strings.EqualFold(value, "Positive"):
					f.positive = true
				}
			case "NUM":
				for _, m := range els2(c, tag.MeasuredValueSequence) {
					if v, err := strconv.ParseFloat(strings.TrimSpace(str(m, tag.NumericValue)), 64); err == nil {
						f.probability, haveNum = v, true
					}
				}
			}
		}
	}
	return f, name, name != "" && haveNum
}

func find(els []*dicom.Element, t tag.Tag) *dicom.Element {
	for _, e := range els {
		if e.Tag == t {
			return e
		}
	}
	return nil
}

func str(els []*dicom.Element, t tag.Tag) string {
	if e := find(els, t); e != nil {
		if v, ok := e.Value.GetValue().([]string); ok && len(v) > 0 {
			return v[0]
		}
	}
	return ""
}

func els2(els []*dicom.Element, t tag.Tag) [][]*dicom.Element {
	e := find(els, t)
	if e == nil {
		return nil
	}
	var out [][]*dicom.Element
	for _, it := range e.Value.GetValue().([]*dicom.SequenceItemValue) {
		out = append(out, it.GetValue().([]*dicom.Element))
	}
	return out
}

func codeMeaning(els []*dicom.Element, t tag.Tag) string {
	for _, it := range els2(els, t) {
		return str(it, tag.CodeMeaning)
	}
	return ""
}

// checkFindings compares an SR's findings with radgate infer's.
func checkFindings(t *testing.T, what string, got map[string]srFinding, prob map[string]float64, pos map[string]bool, meanings map[string]string) {
	t.Helper()
	if len(got) != len(prob) {
		t.Errorf("%s SR has %d findings %v, radgate infer %d", what, len(got), got, len(prob))
	}
	for label, p := range prob {
		f, ok := got[meanings[label]]
		if !ok {
			t.Errorf("%s SR lacks finding %s (%q): %v", what, label, meanings[label], got)
			continue
		}
		if math.Abs(f.probability-p) > 1e-4 || f.positive != pos[label] {
			t.Errorf("%s SR %s: probability %v positive %v; radgate infer says %v %v", what, label, f.probability, f.positive, p, pos[label])
		}
	}
}

// TestPipelineOrthanc — acceptance (issue 4): storescu a positive CT
// phantom and a positive chest phantom into Orthanc; the SRs (and the
// CT's KOS) appear in Orthanc in the same studies with no manual step;
// dciodvfy, dsrdump and dcentvfy accept them; the findings equal what
// radgate infer says.
func TestPipelineOrthanc(t *testing.T) {
	t.Parallel()
	peertest.Require(t, "Orthanc", "storescu", "dciodvfy", "dsrdump", "dcentvfy")
	dir := t.TempDir()
	ct, cxr := phantoms(t, dir)
	orthancPort := peertest.MustFreePort(t)
	r := startRadgate(t, pipelineEnv("ORTHANC@127.0.0.1:"+itoa(orthancPort)))
	o := peertest.StartOrthanc(t, t.TempDir(), peertest.OrthancConfig{
		Autoroute: true, DicomPort: orthancPort, GatewayAET: r.Config.AE, GatewayPort: r.Config.DIMSEPort,
	})
	args := []string{"-aet", "MODALITY", "-aec", o.AET, "+sd", "+r", "127.0.0.1", itoa(o.DicomPort), ct, cxr}
	if out, err := dcmtk(t, "storescu", args...); err != nil {
		t.Fatalf("storescu → Orthanc: %v\n%s", err, out)
	}
	srs := waitObjects(t, o, r, srClass, 2, 3*time.Minute)
	kos := waitObjects(t, o, r, kosClass, 1, time.Minute)

	ctStudy := phantom.Spec{Kind: phantom.KindCTHead, Finding: phantom.Hemorrhage, Seed: 11, Slices: ctSlices}.StudyInstanceUID()
	cxrStudy := phantom.Spec{Kind: phantom.KindCXR, Finding: phantom.Pneumothorax, Seed: 12}.StudyInstanceUID()
	byStudy := map[string]orthancObject{}
	for _, s := range srs {
		byStudy[s.StudyUID] = s
	}
	if len(srs) != 2 || byStudy[ctStudy].ID == "" || byStudy[cxrStudy].ID == "" {
		t.Fatalf("SRs in Orthanc %+v; want one in the CT study and one in the chest study", srs)
	}
	if len(kos) != 1 || kos[0].StudyUID != ctStudy {
		t.Errorf("KOS in Orthanc %+v; want one, in the CT study", kos)
	}

	files := t.TempDir()
	ctSource := firstFile(t, ct)
	cxrSource := firstFile(t, cxr)
	ctSR := download(t, o, byStudy[ctStudy].ID, files)
	cxrSR := download(t, o, byStudy[cxrStudy].ID, files)
	validate(t, ctSR, ctSource, true)
	validate(t, cxrSR, cxrSource, true)
	if len(kos) == 1 {
		validate(t, download(t, o, kos[0].ID, files), ctSource, false)
	}

	p, pos := inferred(t, r, "ct-ich", ct)
	checkFindings(t, "CT", readSR(t, ctSR), p, pos, manifestMeanings(t, "ct-ich"))
	if !pos["hemorrhage"] {
		t.Errorf("the positive CT phantom was not found positive: %v", p)
	}
	p, pos = inferred(t, r, "cxr-triage", cxr)
	checkFindings(t, "chest", readSR(t, cxrSR), p, pos, manifestMeanings(t, "cxr-triage"))

	for _, st := range []struct{ stage, model string }{{"complete", ""}, {"inferred", "ct-ich"}, {"inferred", "cxr-triage"}, {"delivered", ""}} {
		sel := `{model="` + st.model + `",stage="` + st.stage + `"}`
		sum, n := metric(t, r, "radgate_pipeline_latency_seconds_sum"+sel), metric(t, r, "radgate_pipeline_latency_seconds_count"+sel)
		t.Logf("latency from the last instance to %s %s: mean %.2fs over %v (study quiet 3s)", st.stage, st.model, sum/max(n, 1), n)
	}
	// Every stage was measured: three objects delivered, two jobs inferred.
	if got := metric(t, r, `radgate_pipeline_latency_seconds_count{model="",stage="delivered"}`); got != 3 {
		t.Errorf("delivered stage count %v, want 3", got)
	}
	for _, model := range []string{"ct-ich", "cxr-triage"} {
		if got := metric(t, r, `radgate_pipeline_latency_seconds_count{model="`+model+`",stage="inferred"}`); got != 1 {
			t.Errorf("inferred stage count for %s = %v, want 1", model, got)
		}
	}

	// A late slice (a copy under a new SOP Instance UID) makes revision 2:
	// a second SR in the same series, not a duplicate of the first.
	late := filepath.Join(t.TempDir(), "late.dcm")
	if err := copyFile(ctSource, late); err != nil {
		t.Fatal(err)
	}
	if out, err := dcmtk(t, "dcmodify", "-nb", "-gin", late); err != nil {
		t.Fatalf("dcmodify: %v\n%s", err, out)
	}
	if out, err := dcmtk(t, "storescu", "-aet", "MODALITY", "-aec", o.AET, "127.0.0.1", itoa(o.DicomPort), late); err != nil {
		t.Fatalf("storescu late slice → Orthanc: %v\n%s", err, out)
	}
	srs = waitObjects(t, o, r, srClass, 3, time.Minute)
	var rev2 orthancObject
	for _, s := range srs {
		if s.StudyUID == ctStudy && s.SOPUID != byStudy[ctStudy].SOPUID {
			rev2 = s
		}
	}
	if len(srs) != 3 || rev2.ID == "" {
		t.Fatalf("after a late slice Orthanc holds SRs %+v; want a second one in the CT study", srs)
	}
	var first, second struct{ ParentSeries string }
	o.GetJSON(context.Background(), "/instances/"+byStudy[ctStudy].ID, &first)
	o.GetJSON(context.Background(), "/instances/"+rev2.ID, &second)
	if first.ParentSeries == "" || first.ParentSeries != second.ParentSeries {
		t.Errorf("revision 2 is in series %q, revision 1 in %q; want the same", second.ParentSeries, first.ParentSeries)
	}
	validate(t, download(t, o, rev2.ID, files), ctSource, true)
	time.Sleep(time.Second)
	if n := len(orthancObjects(t, o, srClass)); n != 3 {
		t.Errorf("Orthanc holds %d SRs, want 3 (CT r1, CT r2, chest)", n)
	}
}

// manifestMeanings maps a reference model's labels to their concepts'
// code meanings, read from its manifest.
func manifestMeanings(t *testing.T, model string) map[string]string {
	t.Helper()
	dir, err := peertest.ModelsDir()
	if err != nil {
		t.Fatal(err)
	}
	m, err := models.ReadManifest(filepath.Join(dir, model, "1.0.0", models.ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, l := range m.Labels {
		out[l.Name] = l.Concept.Meaning
	}
	return out
}

func firstFile(t *testing.T, dir string) string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.dcm"))
	if err != nil || len(m) == 0 {
		t.Fatalf("no files in %s: %v", dir, err)
	}
	return m[0]
}

// TestPipelineOutageAndKill — acceptance (issue 4): with the PACS down
// while results are pending nothing is lost, and radgate killed between
// inference and delivery delivers after its restart, exactly once.
func TestPipelineOutageAndKill(t *testing.T) {
	t.Parallel()
	peertest.Require(t, "Orthanc", "storescu")
	dir := t.TempDir()
	ct, _ := phantoms(t, dir)
	orthancPort := peertest.MustFreePort(t)
	env := pipelineEnv("ORTHANC@127.0.0.1:" + itoa(orthancPort))
	env["RADGATE_STUDY_RELEASE_QUIET"] = "0" // the kill must come inside the quiet period
	env["RADGATE_STUDY_QUIET"] = "5s"
	r := startRadgate(t, env)

	// The PACS is down: the CT goes straight to radgate, which is killed
	// before the study's quiet period ends; the restart resumes it.
	if out, err := dcmtk(t, "storescu", "-aet", "MODALITY", "-aec", r.Config.AE, "+sd", "+r", "127.0.0.1", itoa(r.Config.DIMSEPort), ct); err != nil {
		t.Fatalf("storescu → radgate: %v\n%s", err, out)
	}
	r.Kill()
	if strings.Contains(r.Log(), "study: complete") {
		t.Fatal("the study completed before the kill; the test needs a longer quiet period")
	}
	r1, err := r.Relaunch()
	if err != nil {
		t.Fatal(err)
	}
	// Inference done, the SR and KOS pending and failing to deliver.
	if _, err := logLine(r1, 0, 2*time.Minute, "delivery: failed; will retry"); err != nil {
		t.Fatalf("no failed delivery attempt: %v\n%s", err, r1.LogTail(40))
	}
	if got := metric(t, r1, `radgate_outbox{state="pending"}`); got != 2 {
		t.Fatalf("outbox pending = %v, want 2 (SR and KOS)", got)
	}
	// Killed between inference and delivery.
	r1.Kill()
	r2, err := r1.Relaunch()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r2.Stop(peertest.StopTimeout) })
	if got := metric(t, r2, `radgate_outbox{state="pending"}`); got != 2 {
		t.Fatalf("after kill -9 and restart the outbox holds %v pending, want 2", got)
	}
	// The PACS comes back: both arrive, once.
	o := peertest.StartOrthanc(t, t.TempDir(), peertest.OrthancConfig{DicomPort: orthancPort, GatewayAET: r.Config.AE, GatewayPort: r.Config.DIMSEPort})
	waitObjects(t, o, r2, srClass, 1, time.Minute)
	waitObjects(t, o, r2, kosClass, 1, time.Minute)
	if err := waitFor(30*time.Second, func() error {
		if got := metric(t, r2, `radgate_outbox{state="delivered"}`); got != 2 {
			return fmt.Errorf("delivered %v", got)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // anything extra would arrive now
	if n, k := len(orthancObjects(t, o, srClass)), len(orthancObjects(t, o, kosClass)); n != 1 || k != 1 {
		t.Errorf("Orthanc holds %d SRs and %d KOS; want exactly one each", n, k)
	}
	if got := metric(t, r2, `radgate_jobs{state="done"}`); got != 1 {
		t.Errorf("jobs done = %v, want 1 (the job is not re-run after the restart)", got)
	}
}

// metric scrapes one sample from radgate's /metrics.
func metric(t *testing.T, r *peertest.Radgate, series string) float64 {
	t.Helper()
	resp, err := http.Get(r.HTTPURL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	for _, line := range strings.Split(buf.String(), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("metric %s: %q", series, line)
			}
			return f
		}
	}
	return 0
}

// stowFiles stores files into a DICOMweb server with one STOW-RS request.
func stowFiles(t *testing.T, base string, files ...string) {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		w, _ := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"application/dicom"}})
		w.Write(b)
	}
	mw.Close()
	req, _ := http.NewRequest(http.MethodPost, base+"/studies", &body)
	req.Header.Set("Content-Type", `multipart/related; type="application/dicom"; boundary=`+mw.Boundary())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("STOW-RS to %s: %s", base, resp.Status)
	}
}

// TestPipelineSTOW — issue 5 with issue 4: a study stored by STOW-RS feeds
// the same pipeline as C-STORE, and its SR goes back to the PACS by
// STOW-RS (Orthanc's DICOMweb plugin as the destination).
func TestPipelineSTOW(t *testing.T) {
	t.Parallel()
	peertest.Require(t, "Orthanc", "orthanc-dicomweb")
	o := peertest.StartOrthanc(t, t.TempDir(), peertest.OrthancConfig{})
	r := startRadgate(t, map[string]string{
		"RADGATE_RESULTS_TO":  o.URL() + "/dicom-web",
		"RADGATE_STUDY_QUIET": "2s",
	})
	dir := t.TempDir()
	_, cxr := phantoms(t, dir)
	stowFiles(t, r.HTTPURL()+"/dicomweb", firstFile(t, cxr))
	srs := waitObjects(t, o, r, srClass, 1, 2*time.Minute)
	want := phantom.Spec{Kind: phantom.KindCXR, Finding: phantom.Pneumothorax, Seed: 12}.StudyInstanceUID()
	if srs[0].StudyUID != want {
		t.Errorf("SR filed in study %s, want the chest study %s", srs[0].StudyUID, want)
	}
	if _, err := logLine(r, 0, 10*time.Second, "delivery: delivered", "kind=sr", "/dicom-web"); err != nil {
		t.Errorf("no STOW-RS delivery logged: %v", err)
	}
}
