package config

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "radgate.yaml")
	if err := os.WriteFile(file, []byte("ae_title: FROMFILE\ndimse:\n  max_associations: 8\n  artim: 5s\nhttp_addr: 127.0.0.1:9000\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	RegisterFlags(fs)
	if err := fs.Parse([]string{"--http-addr", "127.0.0.1:9100"}); err != nil {
		t.Fatal(err)
	}
	env := []string{"RADGATE_DIMSE_MAX_ASSOCIATIONS=16", "PATH=/bin"}
	c, err := Load(file, env, fs)
	if err != nil {
		t.Fatal(err)
	}
	if c.AETitle != "FROMFILE" || c.DIMSEMaxAssociations != 16 || c.DIMSEARTIM != 5*time.Second || c.HTTPAddr != "127.0.0.1:9100" || c.DataDir != "./var" {
		t.Fatalf("got %+v", c)
	}
}

func TestValidationNamesSettingAndSource(t *testing.T) {
	tests := []struct {
		env, want string
	}{
		{"RADGATE_AE_TITLE=THIS_AE_TITLE_IS_TOO_LONG", "ae_title"},
		{"RADGATE_AE_TITLE=BAD\\AE", "ae_title"},
		{"RADGATE_DIMSE_ADDR=nonsense", "dimse_addr"},
		{"RADGATE_DIMSE_MAX_ASSOCIATIONS=0", "dimse_max_associations"},
		{"RADGATE_DIMSE_ARTIM=-1s", "dimse_artim"},
		{"RADGATE_MIN_FREE_DISK=lots", "min_free_disk"},
		{"RADGATE_DIMSE_ALLOWED_PEERS=10.0.0.0/33", "dimse_allowed_peers"},
		{"RADGATE_DUPLICATES=maybe", "duplicates"},
		{"RADGATE_LOG_LEVEL=loud", "log_level"},
		{"RADGATE_STUDY_RETENTION=-1h", "study_retention"},
		{"RADGATE_BLOB_KMS=vault://kek", "blob_kms"},
	}
	for _, tc := range tests {
		_, err := Load("", []string{tc.env}, nil)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "from env") {
			t.Errorf("%s: err = %v", tc.env, err)
		}
	}
}

func TestOneSourceOfKeys(t *testing.T) {
	_, err := Load("", []string{"RADGATE_BLOB_KEY_FILE=/k", "RADGATE_BLOB_KMS=pkcs11:token=t;object=o?module-path=m&pin-source=p"}, nil)
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "blob_key_file and blob_kms both set") {
		t.Errorf("err = %v", err)
	}
}

func TestUnknownFileKeyIsAnError(t *testing.T) {
	file := filepath.Join(t.TempDir(), "c.yaml")
	_ = os.WriteFile(file, []byte("ae_titel: X\n"), 0o600)
	if _, err := Load(file, nil, nil); err == nil || !strings.Contains(err.Error(), "ae_titel") {
		t.Fatalf("err = %v", err)
	}
	if got := UnknownEnv([]string{"RADGATE_AE_TITEL=X", "RADGATE_AE_TITLE=Y"}); len(got) != 1 || got[0] != "RADGATE_AE_TITEL" {
		t.Fatalf("UnknownEnv = %v", got)
	}
}

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]int64{"4096": 4096, "4MiB": 4 << 20, "1GiB": 1 << 30, "2GB": 2e9, "512 KiB": 512 << 10} {
		if got, err := ParseBytes(in); err != nil || got != want {
			t.Errorf("ParseBytes(%q) = %d, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "-1", "1XB", "99999999999TiB"} {
		if _, err := ParseBytes(bad); err == nil {
			t.Errorf("ParseBytes(%q) accepted", bad)
		}
	}
}

// The README's configuration table documents every setting.
func TestREADMEDocumentsEverySetting(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range Settings() {
		if !strings.Contains(string(b), "`"+s.Env()+"`") {
			t.Errorf("README.md does not document %s", s.Env())
		}
	}
}

func TestRoutesFromFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "radgate.yaml")
	doc := `study_quiet: 5s
routes:
  - name: head-ct
    match:
      modality: [CT]
      body_part: [HEAD, BRAIN]
      series_description: "(?i)axial"
      calling_ae: [ORTHANC]
      min_images: 10
    models: [ct-ich]
    priority: HIGH
    quiet: 3s
    destinations: ["dimse://PACS@127.0.0.1:104"]
  - name: chest
    match: {modality: [DX, CR]}
    models: [cxr-triage]
`
	if err := os.WriteFile(file, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(file, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []Route{
		{Name: "head-ct", Match: RouteMatch{Modality: []string{"CT"}, BodyPart: []string{"HEAD", "BRAIN"}, SeriesDescription: "(?i)axial",
			CallingAE: []string{"ORTHANC"}, MinImages: 10}, Models: []string{"ct-ich"}, Priority: "HIGH", Quiet: "3s",
			Destinations: []string{"dimse://PACS@127.0.0.1:104"}},
		{Name: "chest", Match: RouteMatch{Modality: []string{"DX", "CR"}}, Models: []string{"cxr-triage"}},
	}
	if diff := cmp.Diff(want, c.Routes); diff != "" {
		t.Errorf("routes (-want +got):\n%s", diff)
	}
	if c.StudyQuiet != 5*time.Second {
		t.Errorf("study_quiet %v", c.StudyQuiet)
	}
	// A misspelt key is an error, not a rule that matches everything.
	if err := os.WriteFile(file, []byte("routes:\n  - name: x\n    match: {modalty: [CT]}\n    models: [m]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(file, nil, nil); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "modalty") {
		t.Errorf("misspelt route key: %v", err)
	}
}
