package radgate

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/radgate/radgate/inference"
	"github.com/radgate/radgate/internal/peertest"
	"github.com/radgate/radgate/phantom"
	"github.com/radgate/radgate/worklist"
)

// TestGrpcurl: grpcurl, through server reflection alone, lists the
// service and calls each of its RPCs: unary, client streaming (a study
// as JSON messages on stdin) and server streaming.
func TestGrpcurl(t *testing.T) {
	grpcurl := peertest.RequireTool(t, "grpcurl")
	f := serve(t, Config{})
	call := func(stdin []byte, method string) []byte {
		return peertest.Run(t, stdin, grpcurl, "-plaintext", "-max-msg-sz", "67108864", "-d", "@", f.addr, ServiceName+"/"+method)
	}
	if out := peertest.Run(t, nil, grpcurl, "-plaintext", f.addr, "describe", ServiceName); !bytes.Contains(out, []byte("rpc InferStudy ( stream .radgate.v1.InferStudyRequest )")) {
		t.Fatalf("grpcurl describe:\n%s", out)
	}

	var models struct{ Models []struct{ ID string } }
	if out := call([]byte(`{}`), "ListModels"); json.Unmarshal(out, &models) != nil || len(models.Models) != len(f.eng.Models()) {
		t.Fatalf("ListModels:\n%s", out)
	}

	// A positive head CT, one message per slice.
	var stdin bytes.Buffer
	ins := generate(t, phantom.Spec{Kind: phantom.KindCTHead, Finding: phantom.Hemorrhage, Seed: 5, Slices: 8})
	for i, in := range ins {
		m := map[string]any{"data": base64.StdEncoding.EncodeToString(in.Data)}
		if i == 0 {
			m["options"] = map[string]any{"priority": "high"}
		}
		b, _ := json.Marshal(m)
		stdin.Write(append(b, '\n'))
	}
	var study struct {
		Instances int
		Results   []struct {
			Model    string
			Findings []struct{ Positive bool }
			Objects  []struct{ Kind, Data string }
		}
	}
	out := call(stdin.Bytes(), "InferStudy")
	if err := json.Unmarshal(out, &study); err != nil || study.Instances != 8 || len(study.Results) != 1 ||
		study.Results[0].Model != "ct-ich" || len(study.Results[0].Objects) != 2 || !study.Results[0].Findings[0].Positive {
		t.Fatalf("InferStudy: %v\n%.2000s", err, out)
	}

	out = call([]byte(`{"model":"ct-ich","phantom":{"kind":"ct-head","slices":2},"concurrency":[1,2],"runs":4}`), "Benchmark")
	// One JSON object per streamed message; the last has the result.
	dec := json.NewDecoder(bytes.NewReader(out))
	var last struct {
		Result struct {
			Steps []struct {
				Ok        int
				Histogram []struct{ Count int }
			}
		}
	}
	n := 0
	for dec.More() {
		if err := dec.Decode(&last); err != nil {
			t.Fatalf("Benchmark message %d: %v\n%s", n+1, err, out)
		}
		n++
	}
	if n < 3 || len(last.Result.Steps) != 2 || last.Result.Steps[1].Ok != 4 || len(last.Result.Steps[1].Histogram) == 0 {
		t.Fatalf("Benchmark: %d messages\n%s", n, out)
	}

	// WatchWorklist, server streaming without end: grpcurl prints the
	// change a priority setting makes, then its deadline ends the call.
	wl := newWorklist(t)
	g := serve(t, Config{Worklist: wl})
	d, _ := worklist.ParseDataset([]byte(`{"00741000":{"vr":"CS","Value":["SCHEDULED"]},"00741204":{"vr":"LO","Value":["Read"]}}`))
	if _, err := wl.Create(t.Context(), "2.25.56", d, "ups-rs"); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), grpcurl, "-plaintext", "-max-time", "3", "-d", "{}", g.addr, ServiceName+"/WatchWorklist")
	var watched bytes.Buffer
	cmd.Stdout = &watched
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // grpcurl connects and subscribes
	if _, err := wl.SetPriority(t.Context(), "2.25.56", inference.Stat, "page", "test"); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait() // DeadlineExceeded by design
	if !bytes.Contains(watched.Bytes(), []byte(`"kind": "priority"`)) || !bytes.Contains(watched.Bytes(), []byte(`"to": "STAT"`)) {
		t.Fatalf("WatchWorklist:\n%s", watched.Bytes())
	}

	var stats struct {
		ModelStats []struct {
			Name           string
			InferenceCount string // uint64: a JSON string
		}
	}
	out = call([]byte(`{"name":"ct-ich"}`), "ModelStatistics")
	if err := json.Unmarshal(out, &stats); err != nil || len(stats.ModelStats) != 1 || stats.ModelStats[0].InferenceCount == "" ||
		strings.HasPrefix(stats.ModelStats[0].InferenceCount, "0") {
		t.Fatalf("ModelStatistics: %v\n%s", err, out)
	}
}
