package interop

import (
	"context"
	"encoding/json"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/radgate/radgate/internal/peertest"
	"github.com/radgate/radgate/phantom"
)

// Issue 5's acceptance: Orthanc's DICOMweb client pushes a study into
// radgate (chunked and not) and retrieves it back; the npm dicomweb-client
// stores, searches and retrieves against radgate.

// orthancWithGateway starts Orthanc whose DICOMweb servers "gateway"
// (chunked transfers) and "gateway-plain" (not) are radgate.
func orthancWithGateway(t *testing.T, r *peertest.Radgate) *peertest.Orthanc {
	t.Helper()
	port := peertest.MustFreePort(t)
	base := r.HTTPURL() + "/dicomweb/"
	return peertest.StartOrthanc(t, t.TempDir(), peertest.OrthancConfig{
		HTTPPort: port, GatewayAET: r.Config.AE, GatewayPort: r.Config.DIMSEPort,
		Set: map[string]any{"DicomWeb": map[string]any{
			"Enable": true, "Root": "/dicom-web/", "EnableWado": true, "Host": "127.0.0.1:" + itoa(port),
			"Servers": map[string]any{
				"gateway":       map[string]any{"Url": base, "ChunkedTransfers": true},
				"gateway-plain": map[string]any{"Url": base, "ChunkedTransfers": false},
			},
		}},
	})
}

func orthancPost(t *testing.T, o *peertest.Orthanc, path string, body any) map[string]any {
	t.Helper()
	b, _ := json.Marshal(body)
	out, err := o.Do(context.Background(), http.MethodPost, path, "application/json", b)
	if err != nil {
		t.Fatalf("POST %s %s: %v", path, b, err)
	}
	var res map[string]any
	json.Unmarshal(out, &res)
	return res
}

// TestOrthancDICOMweb — acceptance (issue 5): Orthanc's DICOMweb client
// stores a study into radgate with STOW-RS, chunked and with a length,
// and reports success; then retrieves it back from radgate (QIDO-RS and
// WADO-RS) into an empty Orthanc.
func TestOrthancDICOMweb(t *testing.T) {
	t.Parallel()
	peertest.Require(t, "Orthanc", "orthanc-dicomweb")
	ctx := context.Background()
	for _, server := range []string{"gateway", "gateway-plain"} {
		t.Run(server, func(t *testing.T) {
			r := startRadgate(t, nil)
			o := orthancWithGateway(t, r)
			dir := t.TempDir()
			cmd := exec.Command(radgateBin(t), "phantom", "--kind", "ct-head", "--finding", "none", "--seed", "21", "--slices", "6", "--out", dir)
			cmd.Env = peertest.CleanEnv()
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("radgate phantom: %v\n%s", err, out)
			}
			files, _ := filepath.Glob(filepath.Join(dir, "*.dcm"))
			var study string
			for _, f := range files {
				id, err := o.Upload(ctx, f)
				if err != nil {
					t.Fatal(err)
				}
				var st struct{ ID string }
				if err := o.GetJSON(ctx, "/instances/"+id+"/study", &st); err != nil {
					t.Fatal(err)
				}
				study = st.ID
			}
			// Orthanc answers an error status (and Do fails) unless radgate's
			// STOW-RS response lists every instance.
			orthancPost(t, o, "/dicom-web/servers/"+server+"/stow", map[string]any{"Resources": []string{study}, "Synchronous": true})
			chunked := "chunked=" + strconv.FormatBool(server == "gateway")
			if _, err := logLine(r, 0, 5*time.Second, "dicomweb: STOW-RS", "status=200", chunked); err != nil {
				t.Errorf("no STOW-RS request with %s: %v", chunked, err)
			}
			if got := len(storedByUID(t, r.DataDir())); got != len(files) {
				t.Fatalf("radgate holds %d instances after Orthanc's STOW-RS, want %d\n%s", got, len(files), r.LogTail(20))
			}

			// Retrieve back into an Orthanc that has nothing.
			o2 := orthancWithGateway(t, r)
			uid := phantom.Spec{Kind: phantom.KindCTHead, Finding: phantom.None, Seed: 21, Slices: 6}.StudyInstanceUID()
			res := orthancPost(t, o2, "/dicom-web/servers/"+server+"/retrieve", map[string]any{
				"Resources": []map[string]string{{"Study": uid}}, "Synchronous": true})
			if err := waitFor(30*time.Second, func() error {
				var st struct{ CountInstances int }
				if err := o2.GetJSON(ctx, "/statistics", &st); err != nil {
					return err
				}
				if st.CountInstances != len(files) {
					return &countError{st.CountInstances, len(files)}
				}
				return nil
			}); err != nil {
				t.Fatalf("Orthanc retrieved from radgate: %v (answer %s)\nradgate log:\n%s", err, jsonString(res), r.LogTail(20))
			}
		})
	}
}

type countError struct{ got, want int }

func (e *countError) Error() string { return "instances " + itoa(e.got) + ", want " + itoa(e.want) }

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestDicomwebClient — acceptance (issue 5): the npm dicomweb-client
// library stores, searches and retrieves against radgate.
func TestDicomwebClient(t *testing.T) {
	t.Parallel()
	mods := peertest.NodeModules(t, "dicomweb-client@0.11.3", "xhr2@0.2.1")
	r := startRadgate(t, nil)
	dir := t.TempDir()
	cmd := exec.Command(radgateBin(t), "phantom", "--kind", "ct-head", "--finding", "none", "--seed", "22", "--slices", "3", "--out", dir)
	cmd.Env = peertest.CleanEnv()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("radgate phantom: %v\n%s", err, out)
	}
	root, _ := peertest.RepoRoot()
	files, _ := filepath.Glob(filepath.Join(dir, "*.dcm"))
	uid := phantom.Spec{Kind: phantom.KindCTHead, Finding: phantom.None, Seed: 22, Slices: 3}.StudyInstanceUID()
	node := exec.Command("node", append([]string{filepath.Join(root, "test", "peers", "dicomweb-client.js"), r.HTTPURL() + "/dicomweb", uid}, files...)...)
	node.Env = append(peertest.CleanEnv(), "NODE_PATH="+mods)
	out, err := node.CombinedOutput()
	if err != nil {
		t.Fatalf("dicomweb-client against radgate: %v\n%s\nradgate log:\n%s", err, out, r.LogTail(20))
	}
	t.Logf("dicomweb-client: %s", strings.TrimSpace(string(out)))
}
