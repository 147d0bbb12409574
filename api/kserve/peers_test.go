package kserve

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/radgate/radgate/internal/peertest"
)

// inferJSON is a ModelInfer request in protobuf JSON, raw contents base64.
func inferJSON(t *testing.T, f *fixture, model string) []byte {
	t.Helper()
	l := f.model(t, model)
	shape, ks := items(l, 1)
	b, err := json.Marshal(map[string]any{
		"model_name":         l.Name,
		"inputs":             []map[string]any{{"name": l.Input.Name, "datatype": "FP32", "shape": shape}},
		"raw_input_contents": []string{base64.StdEncoding.EncodeToString(encodeFP32(scale(ks, 1.0/256)))},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestGrpcurl(t *testing.T) {
	grpcurl := peertest.RequireTool(t, "grpcurl")
	f := serve(t)
	if out := peertest.Run(t, nil, grpcurl, "-plaintext", f.addr, "list"); !bytes.Contains(out, []byte(ServiceName+"\n")) {
		t.Fatalf("grpcurl list:\n%s", out)
	}
	out := peertest.Run(t, nil, grpcurl, "-plaintext", "-d", `{"name":"cxr-triage"}`, f.addr, ServiceName+"/ModelMetadata")
	var md struct {
		Name, Platform string
		Inputs         []struct{ Name, Datatype string }
	}
	if err := json.Unmarshal(out, &md); err != nil || md.Name != "cxr-triage" || md.Platform != platform || len(md.Inputs) != 1 || md.Inputs[0].Datatype != "FP32" {
		t.Fatalf("ModelMetadata: %v\n%s", err, out)
	}
	// The body goes on stdin: a radiograph in base64 is over the 128 KiB
	// a single command-line argument may hold.
	out = peertest.Run(t, inferJSON(t, f, "cxr-triage"), grpcurl, "-plaintext", "-d", "@", f.addr, ServiceName+"/ModelInfer")
	var resp struct {
		ModelName         string   `json:"modelName"`
		RawOutputContents []string `json:"rawOutputContents"`
	}
	if err := json.Unmarshal(out, &resp); err != nil || resp.ModelName != "cxr-triage" || len(resp.RawOutputContents) != 1 {
		t.Fatalf("ModelInfer: %v\n%s", err, out)
	}
	if raw, err := base64.StdEncoding.DecodeString(resp.RawOutputContents[0]); err != nil || len(raw) != 4*len(f.model(t, "cxr-triage").Labels) {
		t.Fatalf("raw output %q: %v", resp.RawOutputContents[0], err)
	}
}

// TestGhz: ghz (through server reflection) at concurrency 1, 4 and 16, no
// errors. Not a timed assertion: ghz's figures are only logged.
func TestGhz(t *testing.T) {
	ghz := peertest.RequireTool(t, "ghz")
	f := serve(t)
	data := filepath.Join(t.TempDir(), "infer.json")
	if err := os.WriteFile(data, inferJSON(t, f, "ct-ich"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"1", "4", "16"} {
		out := peertest.Run(t, nil, ghz, "--insecure", "--call", ServiceName+"/ModelInfer", "-D", data, "-n", "50", "-c", c, "--format", "json", f.addr)
		var rep struct {
			Count             int
			Average           float64
			ErrorDistribution map[string]int
			StatusCodeDist    map[string]int `json:"statusCodeDistribution"`
		}
		if err := json.Unmarshal(out, &rep); err != nil {
			t.Fatalf("ghz -c %s: %v\n%s", c, err, out)
		}
		if rep.Count != 50 || len(rep.ErrorDistribution) > 0 || rep.StatusCodeDist["OK"] != 50 {
			t.Fatalf("ghz -c %s: %d requests, errors %v, codes %v", c, rep.Count, rep.ErrorDistribution, rep.StatusCodeDist)
		}
		t.Logf("ghz -c %s: 50 requests, mean %.2f ms", c, rep.Average/1e6)
	}
}
