package interop

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/radgate/radgate/internal/peertest"
)

// orthancSamples are sent into Orthanc: uncompressed, JPEG 2000, RLE,
// deflate, an SR — with distinct SOP Instance UIDs (MR_small and
// MR_small_RLE share one, and Orthanc would keep only one of them).
var orthancSamples = []string{"CT_small.dcm", "MR_small_RLE.dcm", "693_J2KI.dcm", "image_dfl.dcm", "test-SR.dcm"}

// TestOrthancDeliversToRadgate — acceptance (issue 2): "Orthanc's
// /modalities/…/store and its Lua auto-forward (test/peers) deliver to
// radgate". Orthanc is the PACS; its modality GATEWAY is radgate.
func TestOrthancDeliversToRadgate(t *testing.T) {
	t.Parallel()
	peertest.Require(t, "Orthanc", "orthanc-dicomweb", "storescu", "dcmdump", "pydicom")
	files, dumps := orthancFiles(t)

	t.Run("lua-autoroute", func(t *testing.T) {
		r := startRadgate(t, nil)
		o := peertest.StartOrthanc(t, t.TempDir(), peertest.OrthancConfig{
			Autoroute: true, GatewayAET: r.Config.AE, GatewayPort: r.Config.DIMSEPort,
		})
		peers, _ := peertest.PeersDir()
		args := append([]string{"-aet", "MODALITY", "-aec", o.AET, "-xf", filepath.Join(peers, "storescu-all.cfg"), "Gateway",
			"127.0.0.1", itoa(o.DicomPort)}, files...)
		if out, err := dcmtk(t, "storescu", args...); err != nil {
			t.Fatalf("storescu → Orthanc: %v\n%s", err, out)
		}
		waitDelivered(t, r, dumps, 60*time.Second)
		compareDelivered(t, r, files, dumps)
	})

	t.Run("modalities-store", func(t *testing.T) {
		ctx := context.Background()
		r := startRadgate(t, nil)
		o := peertest.StartOrthanc(t, t.TempDir(), peertest.OrthancConfig{
			GatewayAET: r.Config.AE, GatewayPort: r.Config.DIMSEPort,
		})
		var ids []string
		for _, f := range files {
			id, err := o.Upload(ctx, f)
			if err != nil {
				t.Fatalf("upload %s to Orthanc: %v", filepath.Base(f), err)
			}
			ids = append(ids, id)
		}
		// One instance by ID, as the acceptance says, then the rest in one job.
		for _, body := range []any{ids[0], map[string]any{"Resources": ids[1:], "Synchronous": true}} {
			b, _ := json.Marshal(body)
			out, err := o.Do(ctx, http.MethodPost, "/modalities/GATEWAY/store", "application/json", b)
			if err != nil {
				t.Fatalf("POST /modalities/GATEWAY/store %s: %v", b, err)
			}
			var res struct {
				FailedInstancesCount int
				InstancesCount       int
			}
			if err := json.Unmarshal(out, &res); err != nil {
				t.Fatalf("store answer %s: %v", out, err)
			}
			if res.FailedInstancesCount != 0 || res.InstancesCount == 0 {
				t.Errorf("POST /modalities/GATEWAY/store %s: %s", b, out)
			}
		}
		waitDelivered(t, r, dumps, 30*time.Second)
		compareDelivered(t, r, files, dumps)
	})
}

// orthancFiles copies orthancSamples (they are sent as they are) and dumps
// them.
func orthancFiles(t *testing.T) ([]string, []peertest.Dump) {
	t.Helper()
	dir := t.TempDir()
	var files []string
	var dumps []peertest.Dump
	for _, name := range orthancSamples {
		dst := filepath.Join(dir, name)
		if err := copyFile(filepath.Join(peertest.PydicomTestFiles, name), dst); err != nil {
			t.Fatal(err)
		}
		d, err := peertest.DumpDataset(context.Background(), dst)
		if err != nil {
			t.Fatal(err)
		}
		for _, prev := range dumps {
			if prev.SOPInstanceUID == d.SOPInstanceUID {
				t.Fatalf("orthancSamples: %s repeats SOP Instance UID %s", name, d.SOPInstanceUID)
			}
		}
		files = append(files, dst)
		dumps = append(dumps, d)
	}
	return files, dumps
}

// waitDelivered polls radgate's index until every instance is there.
func waitDelivered(t *testing.T, r *peertest.Radgate, dumps []peertest.Dump, timeout time.Duration) {
	t.Helper()
	err := waitFor(timeout, func() error {
		uids, err := peertest.IndexedUIDs(r.DataDir())
		if err != nil {
			return err
		}
		var missing []string
		for _, d := range dumps {
			if !uids[d.SOPInstanceUID] {
				missing = append(missing, d.SOPInstanceUID)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("%d of %d not in radgate's index: %s", len(missing), len(dumps), strings.Join(missing, ", "))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// compareDelivered checks each delivered blob against the file Orthanc was
// given (normalised dcmdump, same transfer syntax).
func compareDelivered(t *testing.T, r *peertest.Radgate, files []string, dumps []peertest.Dump) {
	t.Helper()
	stored := storedByUID(t, r.DataDir())
	for i, d := range dumps {
		blob, ok := stored[d.SOPInstanceUID]
		if !ok {
			t.Errorf("%s: indexed but no blob", filepath.Base(files[i]))
			continue
		}
		got, err := peertest.DumpDataset(context.Background(), blob)
		if err != nil {
			t.Error(err)
			continue
		}
		if got.TransferSyntax != d.TransferSyntax {
			t.Logf("%s: Orthanc delivered %s (sent to it as %s)", filepath.Base(files[i]), got.TransferSyntax, d.TransferSyntax)
		}
		if diff := peertest.DiffLines(d.Text, got.Text, 5); diff != "" {
			t.Errorf("%s: delivered data set differs from the original (dcmdump, normalised):\n%s", filepath.Base(files[i]), diff)
		}
	}
}
