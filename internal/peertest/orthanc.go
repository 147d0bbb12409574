package peertest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// OrthancConfig configures Orthanc as the PACS, from test/peers/orthanc.json
// with its fixed ports rewritten.
type OrthancConfig struct {
	Dir       string // config, storage and index; created if missing
	HTTPPort  int    // 0 = a free port (the template says 18042)
	DicomPort int    // 0 = a free port (the template says 11142)
	AET       string // Orthanc's own AE title; default "ORTHANC"
	// GatewayAET and GatewayPort define modality GATEWAY (radgate); the
	// template has RADGATE at 127.0.0.1:11112. GatewayPort 0 keeps 11112.
	GatewayAET  string
	GatewayPort int
	// GatewayDicomWeb is the DICOMweb base URL of server "gateway" (the
	// template has http://127.0.0.1:8080/dicomweb/); "" keeps the template's.
	GatewayDicomWeb string
	// Autoroute loads test/peers/orthanc-autoroute.lua: every instance
	// Orthanc stores is forwarded to GATEWAY, except what GATEWAY sent.
	Autoroute bool
	// NoDicomWeb drops the DICOMweb plugin (when orthanc-dicomweb is absent).
	NoDicomWeb bool
	Bindlo     string // LD_PRELOAD shim; "" listens on every interface
	LogPath    string // default: Dir/orthanc.log
	// Set overrides top-level configuration keys after templating.
	Set map[string]any
}

// Orthanc is a running Orthanc.
type Orthanc struct {
	*Proc
	AET        string
	HTTPPort   int
	DicomPort  int
	Dir        string
	ConfigPath string
	client     *http.Client
}

// URL is the REST base, without a trailing slash.
func (o *Orthanc) URL() string { return "http://127.0.0.1:" + strconv.Itoa(o.HTTPPort) }

// DicomAddr is the DICOM host:port.
func (o *Orthanc) DicomAddr() string { return "127.0.0.1:" + strconv.Itoa(o.DicomPort) }

// Target is AE@host:port, as radgate send takes it.
func (o *Orthanc) Target() string { return o.AET + "@" + o.DicomAddr() }

// WriteOrthancConfig writes the templated configuration (and the autoroute
// script, when asked) into cfg.Dir and returns the configuration's path and
// the filled-in cfg.
func WriteOrthancConfig(cfg OrthancConfig) (string, OrthancConfig, error) {
	peers, err := PeersDir()
	if err != nil {
		return "", cfg, err
	}
	if cfg.Dir, err = filepath.Abs(cfg.Dir); err != nil {
		return "", cfg, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return "", cfg, err
	}
	if cfg.AET == "" {
		cfg.AET = "ORTHANC"
	}
	if cfg.GatewayAET == "" {
		cfg.GatewayAET = "RADGATE"
	}
	if cfg.GatewayPort == 0 {
		cfg.GatewayPort = 11112
	}
	for _, p := range []*int{&cfg.HTTPPort, &cfg.DicomPort} {
		if *p == 0 {
			if *p, err = FreePort(); err != nil {
				return "", cfg, err
			}
		}
	}
	raw, err := os.ReadFile(filepath.Join(peers, "orthanc.json"))
	if err != nil {
		return "", cfg, err
	}
	// @DIR@ is the template's only placeholder; JSON-escape the path.
	dirJSON, _ := json.Marshal(cfg.Dir)
	raw = bytes.ReplaceAll(raw, []byte("@DIR@"), bytes.Trim(dirJSON, `"`))
	var conf map[string]any
	if err := json.Unmarshal(raw, &conf); err != nil {
		return "", cfg, fmt.Errorf("peertest: orthanc.json: %w", err)
	}
	conf["HttpPort"] = cfg.HTTPPort
	conf["DicomPort"] = cfg.DicomPort
	conf["DicomAet"] = cfg.AET
	mods, _ := conf["DicomModalities"].(map[string]any)
	if mods == nil {
		mods = map[string]any{}
		conf["DicomModalities"] = mods
	}
	gw, _ := mods["GATEWAY"].(map[string]any)
	if gw == nil {
		gw = map[string]any{"Host": "127.0.0.1", "AllowStore": true}
		mods["GATEWAY"] = gw
	}
	gw["AET"] = cfg.GatewayAET
	gw["Port"] = cfg.GatewayPort
	if dw, ok := conf["DicomWeb"].(map[string]any); ok {
		dw["Host"] = "127.0.0.1:" + strconv.Itoa(cfg.HTTPPort)
		if cfg.GatewayDicomWeb != "" {
			if srv, ok := dw["Servers"].(map[string]any); ok {
				srv["gateway"] = []any{cfg.GatewayDicomWeb}
			}
		}
	}
	if cfg.NoDicomWeb {
		delete(conf, "Plugins")
		delete(conf, "DicomWeb")
	}
	if cfg.Autoroute {
		lua, err := os.ReadFile(filepath.Join(peers, "orthanc-autoroute.lua"))
		if err != nil {
			return "", cfg, err
		}
		// The script skips what the gateway itself sent, by its AE title.
		lua = bytes.ReplaceAll(lua, []byte("'RADGATE'"), []byte("'"+strings.ReplaceAll(cfg.GatewayAET, "'", "")+"'"))
		luaPath := filepath.Join(cfg.Dir, "orthanc-autoroute.lua")
		if err := os.WriteFile(luaPath, lua, 0o644); err != nil {
			return "", cfg, err
		}
		conf["LuaScripts"] = []any{luaPath}
	} else {
		delete(conf, "LuaScripts")
	}
	for k, v := range cfg.Set {
		conf[k] = v
	}
	out, err := json.MarshalIndent(conf, "", "  ")
	if err != nil {
		return "", cfg, err
	}
	path := filepath.Join(cfg.Dir, "orthanc.json")
	if err := os.WriteFile(path, out, 0o644); err != nil {
		return "", cfg, err
	}
	return path, cfg, nil
}

// LaunchOrthanc starts Orthanc with the templated configuration and waits
// until its REST API answers GET /system. The caller stops it.
func LaunchOrthanc(cfg OrthancConfig) (*Orthanc, error) {
	bin, err := Tool("Orthanc")
	if err != nil {
		return nil, err
	}
	path, cfg, err := WriteOrthancConfig(cfg)
	if err != nil {
		return nil, err
	}
	if cfg.LogPath == "" {
		cfg.LogPath = filepath.Join(cfg.Dir, "orthanc.log")
	}
	p, err := Launch(bin, []string{path}, PeerEnv(cfg.Bindlo), cfg.Dir, cfg.LogPath)
	if err != nil {
		return nil, err
	}
	p.Name = "Orthanc"
	o := &Orthanc{Proc: p, AET: cfg.AET, HTTPPort: cfg.HTTPPort, DicomPort: cfg.DicomPort,
		Dir: cfg.Dir, ConfigPath: path, client: &http.Client{Timeout: 60 * time.Second}}
	if err := p.WaitHTTP(o.URL()+"/system", http.StatusOK, ReadyTimeout); err != nil {
		_ = p.Stop(StopTimeout)
		return nil, err
	}
	if err := p.WaitTCP(o.DicomAddr(), ReadyTimeout); err != nil {
		_ = p.Stop(StopTimeout)
		return nil, err
	}
	return o, nil
}

// StartOrthanc starts Orthanc for a test, in dir, bound to loopback, stopped
// when the test ends.
func StartOrthanc(t testing.TB, dir string, cfg OrthancConfig) *Orthanc {
	t.Helper()
	Require(t, "Orthanc")
	if !cfg.NoDicomWeb {
		Require(t, "orthanc-dicomweb")
	}
	cfg.Dir = dir
	if cfg.Bindlo == "" {
		cfg.Bindlo = Bindlo(t)
	}
	o, err := LaunchOrthanc(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cleanupProc(t, o.Proc)
	return o
}

// Do calls the REST API and returns the body, failing on a non-2xx status.
func (o *Orthanc) Do(ctx context.Context, method, path, contentType string, body []byte) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, o.URL()+path, rd)
	if err != nil {
		return nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := o.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		return b, fmt.Errorf("orthanc %s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(b))
	}
	return b, nil
}

// GetJSON GETs path and decodes the JSON answer into v.
func (o *Orthanc) GetJSON(ctx context.Context, path string, v any) error {
	b, err := o.Do(ctx, http.MethodGet, path, "", nil)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// Upload stores a Part 10 file through POST /instances and returns its
// Orthanc ID.
func (o *Orthanc) Upload(ctx context.Context, file string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	out, err := o.Do(ctx, http.MethodPost, "/instances", "application/dicom", b)
	if err != nil {
		return "", err
	}
	var r struct{ ID string }
	if err := json.Unmarshal(out, &r); err != nil {
		return "", err
	}
	return r.ID, nil
}

// Instances lists the Orthanc IDs of every stored instance.
func (o *Orthanc) Instances(ctx context.Context) ([]string, error) {
	var ids []string
	err := o.GetJSON(ctx, "/instances", &ids)
	return ids, err
}

// SOPInstanceUIDs maps the SOP Instance UID of every stored instance to its
// Orthanc ID.
func (o *Orthanc) SOPInstanceUIDs(ctx context.Context) (map[string]string, error) {
	var list []struct {
		ID            string
		MainDicomTags map[string]string
	}
	if err := o.GetJSON(ctx, "/instances?expand", &list); err != nil {
		return nil, err
	}
	m := make(map[string]string, len(list))
	for _, it := range list {
		m[it.MainDicomTags["SOPInstanceUID"]] = it.ID
	}
	return m, nil
}
