package gateway

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	inferencev2 "github.com/radgate/radgate/api/kserve/v2"
	"github.com/radgate/radgate/config"
	"github.com/radgate/radgate/dcm"
	"github.com/radgate/radgate/dimse"
	"github.com/radgate/radgate/internal/peertest"
)

func modelsDir(t *testing.T) string {
	t.Helper()
	dir, err := peertest.ModelsDir()
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// testConfig is the settings of a test gateway: loopback ports, a fresh
// data directory, the reference models; env (RADGATE_*=…) wins.
func testConfig(t *testing.T, env ...string) *config.Config {
	t.Helper()
	env = append([]string{
		"RADGATE_DATA_DIR=" + t.TempDir(),
		"RADGATE_DIMSE_ADDR=127.0.0.1:0", "RADGATE_DIMSE_TLS_ADDR=127.0.0.1:0",
		"RADGATE_HTTP_ADDR=127.0.0.1:0", "RADGATE_GRPC_ADDR=127.0.0.1:0",
		"RADGATE_MIN_FREE_DISK=0",
		"RADGATE_ORT_LIB=" + peertest.ORTLibrary(t),
		"RADGATE_MODELS_DIR=" + modelsDir(t),
	}, env...)
	cfg, err := config.Load("", env, nil)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// startRefused checks that New refuses the settings with an error
// mentioning want.
func startRefused(t *testing.T, want string, env ...string) {
	t.Helper()
	g, err := New(context.Background(), testConfig(t, env...), peertest.Logger(t), "test")
	if err == nil || !strings.Contains(err.Error(), want) {
		if g != nil {
			g.closeAll()
		}
		t.Errorf("%v: New = %v; want an error with %q", env, err, want)
	}
}

func startGateway(t *testing.T, env ...string) (*Gateway, context.CancelFunc, chan error) {
	t.Helper()
	cfg := testConfig(t, env...)
	ctx, cancel := context.WithCancel(context.Background())
	g, err := New(ctx, cfg, peertest.Logger(t), "test")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return g, cancel, done
}

// element appends an explicit VR little endian element with a short length.
func element(b []byte, group, elem uint16, vr, v string) []byte {
	if len(v)%2 == 1 {
		v += "\x00"
	}
	b = binary.LittleEndian.AppendUint16(b, group)
	b = binary.LittleEndian.AppendUint16(b, elem)
	b = append(b, vr...)
	return binary.LittleEndian.AppendUint16(b, uint16(len(v))) // short-length VRs only
}

// writeInstance writes a minimal Secondary Capture Part 10 file.
func writeInstance(t *testing.T, dir, sopInstance string) string {
	t.Helper()
	const sc = "1.2.840.10008.5.1.4.1.1.7"
	var ds []byte
	add := func(g, e uint16, vr, v string) {
		ds = element(ds, g, e, vr, v)
		if len(v)%2 == 1 {
			v += "\x00"
		}
		ds = append(ds, v...)
	}
	add(0x0008, 0x0016, "UI", sc)
	add(0x0008, 0x0018, "UI", sopInstance)
	add(0x0008, 0x0060, "CS", "OT")
	add(0x0010, 0x0010, "PN", "PHANTOM^TEST")
	add(0x0010, 0x0020, "LO", "PID-1")
	add(0x0020, 0x000D, "UI", "1.2.826.0.1.3680043.2.1125.1")
	add(0x0020, 0x000E, "UI", "1.2.826.0.1.3680043.2.1125.1.1")
	var buf bytes.Buffer
	if err := dcm.WriteFileMeta(&buf, dcm.FileMeta{MediaStorageSOPClassUID: sc, MediaStorageSOPInstanceUID: sopInstance, TransferSyntaxUID: dcm.ExplicitVRLittleEndian}); err != nil {
		t.Fatal(err)
	}
	buf.Write(ds)
	p := filepath.Join(dir, sopInstance+".dcm")
	if err := os.WriteFile(p, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestGatewayEndToEnd(t *testing.T) {
	g, cancel, done := startGateway(t)
	base := "http://" + g.HTTPAddr().String()
	if code, _ := get(t, base+"/healthz"); code != 200 {
		t.Fatalf("/healthz = %d", code)
	}
	if code, body := get(t, base+"/readyz"); code != 200 {
		t.Fatalf("/readyz = %d %s", code, body)
	}
	banner := g.Banner(context.Background())
	for _, want := range []string{"AE title    RADGATE", g.DIMSEAddr().String(), g.HTTPAddr().String(),
		"cxr-triage@1.0.0 [cxr-triage]", "ct-ich@1.0.0 [ct-ich]", "ONNX Runtime 1.30.0"} {
		if !strings.Contains(banner, want) {
			t.Errorf("banner lacks %q:\n%s", want, banner)
		}
	}

	dir := t.TempDir()
	files := []string{writeInstance(t, dir, "1.2.826.0.1.3680043.2.1125.1.1.1"), writeInstance(t, dir, "1.2.826.0.1.3680043.2.1125.1.1.2")}
	sum, err := dimse.SendFiles(context.Background(), g.DIMSEAddr().String(), files, dimse.SendOptions{Client: dimse.ClientConfig{CallingAE: "TESTSCU", CalledAE: "RADGATE"}})
	if err != nil || sum.Stored != 2 {
		t.Fatalf("send: %+v %v", sum, err)
	}
	if n, err := g.store.CountInstances(context.Background()); err != nil || n != 2 {
		t.Fatalf("count = %d %v", n, err)
	}
	// Sending the same files again is idempotent.
	sum, err = dimse.SendFiles(context.Background(), g.DIMSEAddr().String(), files, dimse.SendOptions{Client: dimse.ClientConfig{CallingAE: "TESTSCU", CalledAE: "RADGATE"}})
	if err != nil || sum.Stored != 2 {
		t.Fatalf("resend: %+v %v", sum, err)
	}
	_, metrics := get(t, base+"/metrics")
	for _, want := range []string{`radgate_dimse_messages_total{command="C-STORE",status="success"} 4`, `radgate_dimse_associations_total{result="accepted"} 2`, "radgate_build_info"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	done <- nil // for the cleanup
}

// TestNotReadyWithABrokenModel: a model the repository holds but the
// engine refuses keeps /readyz at 503, naming it; the rest still serves.
func TestNotReadyWithABrokenModel(t *testing.T) {
	repo := t.TempDir()
	dir := filepath.Join(repo, "broken", "1.0.0")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "manifest.yaml"), []byte("name: broken\nversion: 1.0.0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	g, _, _ := startGateway(t, "RADGATE_MODELS_DIR="+repo)
	code, body := get(t, "http://"+g.HTTPAddr().String()+"/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "models:") || !strings.Contains(body, "broken") {
		t.Fatalf("/readyz = %d %q, want 503 naming the broken model", code, body)
	}
	if b := g.Banner(context.Background()); !strings.Contains(b, "NOT LOADED") {
		t.Errorf("banner does not say a model failed:\n%s", b)
	}
	// The operator removes it and sends SIGHUP (ReloadModels): ready.
	if err := os.RemoveAll(filepath.Join(repo, "broken")); err != nil {
		t.Fatal(err)
	}
	g.ReloadModels(context.Background())
	if code, body := get(t, "http://"+g.HTTPAddr().String()+"/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz after reload = %d %q", code, body)
	}
}

func TestLowDiskAnswersOutOfResources(t *testing.T) {
	g, _, _ := startGateway(t, "RADGATE_MIN_FREE_DISK=1000000TiB")
	f := writeInstance(t, t.TempDir(), "1.2.826.0.1.3680043.2.1125.9.9")
	var got dimse.Status
	sum, _ := dimse.SendFiles(context.Background(), g.DIMSEAddr().String(), []string{f}, dimse.SendOptions{
		Client:   dimse.ClientConfig{CallingAE: "TESTSCU", CalledAE: "RADGATE"},
		Progress: func(p dimse.SendProgress) { got = p.Status },
	})
	if sum.Failed != 1 || got.Code != dimse.StatusOutOfResources {
		t.Fatalf("summary %+v, status %v; want A700", sum, got)
	}
	if n, _ := g.store.CountInstances(context.Background()); n != 0 {
		t.Fatalf("%d instances stored", n)
	}
}

// TestBadDestinationStopsTheStart: a destination that cannot be used is an
// error at start, not a result dead-lettered later; the banner shows the
// routes and where results go.
func TestBadDestinationStopsTheStart(t *testing.T) {
	for _, dest := range []string{"dimse://127.0.0.1:104", "ftp://pacs"} {
		startRefused(t, "invalid destination", "RADGATE_RESULTS_TO="+dest)
	}
	startRefused(t, "not HL7", "RADGATE_RESULTS_TO=mllp://127.0.0.1:2575")
	startRefused(t, "worklist_ups_to", "RADGATE_WORKLIST_UPS_TO=ftp://manager")
	g, _, _ := startGateway(t, "RADGATE_RESULTS_TO=dimse://PACS@127.0.0.1:104")
	b := g.Banner(context.Background())
	for _, want := range []string{"route       head-ct: CT HEAD/BRAIN → ct-ich", "results to  dimse://PACS@127.0.0.1:104"} {
		if !strings.Contains(b, want) {
			t.Errorf("banner lacks %q:\n%s", want, b)
		}
	}
}

// TestFHIRSettings: the FHIR client is built from the settings (SMART
// Backend Services with an EC P-384 key here) and the banner says how it
// authenticates, without any secret; a key file that cannot be read stops
// the start.
func TestFHIRSettings(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "smart.pem")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	g, _, _ := startGateway(t, "RADGATE_FHIR_URL=http://127.0.0.1:1/fhir", "RADGATE_FHIR_CLIENT_ID=radgate-test",
		"RADGATE_FHIR_KEY_FILE="+keyFile, "RADGATE_FHIR_KEY_ID=k1")
	if b := g.Banner(context.Background()); !strings.Contains(b, "FHIR        http://127.0.0.1:1/fhir  (SMART Backend Services, client radgate-test; unknown patient: defer)") {
		t.Errorf("banner:\n%s", b)
	}
	startRefused(t, "/nonexistent/key.pem", "RADGATE_FHIR_URL=http://127.0.0.1:1/fhir", "RADGATE_FHIR_CLIENT_ID=x",
		"RADGATE_FHIR_KEY_ID=k", "RADGATE_FHIR_KEY_FILE=/nonexistent/key.pem")
}

// TestGRPCServed: the KServe v2 service answers on grpc_addr.
func TestGRPCServed(t *testing.T) {
	g, _, _ := startGateway(t)
	conn, err := grpc.NewClient(g.GRPCAddr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := inferencev2.NewGRPCInferenceServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if r, err := c.ServerReady(ctx, &inferencev2.ServerReadyRequest{}); err != nil || !r.Ready {
		t.Fatalf("ServerReady = %v, %v", r, err)
	}
	if r, err := c.ModelReady(ctx, &inferencev2.ModelReadyRequest{Name: "ct-ich"}); err != nil || !r.Ready {
		t.Fatalf("ModelReady(ct-ich) = %v, %v", r, err)
	}
}
