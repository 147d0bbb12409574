package interop

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/radgate/radgate/internal/peertest"
)

// pydicomImagesAndSRs are the pydicom test files (python3-pydicom 2.3) that
// are valid Part 10 images or SRs: File Meta with SOP class and transfer
// syntax, a SOP Instance UID in the data set, and dcmdump reads them to the
// end. Left out, and why:
//
//   - no File Meta or no transfer syntax in it: ExplVR_BigEndNoMeta,
//     ExplVR_LitEndNoMeta, no_meta, meta_missing_tsyntax, nested_priv_SQ,
//     empty_charset_LEI, SC_rgb_jpeg, rtstruct;
//   - truncated on purpose: MR_truncated, rtplan_truncated;
//   - no SOP Class/Instance UID in the data set (storescu refuses them):
//     UN_sequence, priv_SQ, no_meta_group_length, and rtdose_rle and
//     rtdose_rle_1frame, whose every data element is encoded as UN;
//   - deliberately invalid VR: badVR;
//   - not an image or SR: rtplan (RT Plan), waveform_ecg (ECG waveform).
var pydicomImagesAndSRs = []string{
	"693_J2KI.dcm", "CT_small.dcm", "ExplVR_BigEnd.dcm", "GDCMJ2K_TextGBR.dcm",
	"J2K_pixelrep_mismatch.dcm", "JPEG-lossy.dcm", "JPEG2000-embedded-sequence-delimiter.dcm",
	"JPEG2000.dcm", "JPGExtended.dcm", "MR_small.dcm", "MR_small_RLE.dcm",
	"MR_small_bigendian.dcm", "MR_small_expb.dcm", "MR_small_implicit.dcm",
	"MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm", "MR_small_padded.dcm",
	"SC_jpeg_no_color_transform.dcm", "SC_jpeg_no_color_transform_2.dcm",
	"SC_rgb_dcmtk_+eb+cr.dcm", "SC_rgb_dcmtk_+eb+cy+n1.dcm", "SC_rgb_dcmtk_+eb+cy+n2.dcm",
	"SC_rgb_dcmtk_+eb+cy+np.dcm", "SC_rgb_dcmtk_+eb+cy+s2.dcm", "SC_rgb_dcmtk_+eb+cy+s4.dcm",
	"SC_rgb_gdcm_KY.dcm", "SC_rgb_jpeg_app14_dcmd.dcm", "SC_rgb_jpeg_dcmd.dcm",
	"SC_rgb_jpeg_dcmtk.dcm", "SC_rgb_jpeg_gdcm.dcm", "SC_rgb_jpeg_lossy_gdcm.dcm",
	"SC_rgb_rle.dcm", "SC_rgb_rle_16bit.dcm", "SC_rgb_rle_16bit_2frame.dcm",
	"SC_rgb_rle_2frame.dcm", "SC_rgb_rle_32bit.dcm", "SC_rgb_rle_32bit_2frame.dcm",
	"SC_rgb_small_odd.dcm", "SC_rgb_small_odd_jpeg.dcm", "SC_ybr_full_422_uncompressed.dcm",
	"image_dfl.dcm", "liver_1frame.dcm", "liver_expb_1frame.dcm",
	"reportsi.dcm", "reportsi_with_empty_number_tags.dcm", "rtdose.dcm", "rtdose_1frame.dcm",
	"rtdose_expb.dcm", "rtdose_expb_1frame.dcm",
	"test-SR.dcm",
}

// derivedSamples fill the transfer-syntax families no pydicom file has,
// made with DCMTK's own encoders from pydicom files.
var derivedSamples = []struct {
	name, from string
	tool       string
	args       []string // before IN OUT
}{
	{"derived_SC_jpegls_nearlossless.dcm", "SC_rgb_small_odd.dcm", "dcmcjpls", []string{"+en"}},
	{"derived_CT_jpeg_lossless_p14.dcm", "CT_small.dcm", "dcmcjpeg", []string{"+el"}},
	{"derived_SR_deflated.dcm", "test-SR.dcm", "dcmconv", []string{"+td"}},
}

// tsFamily maps dcmdump's transfer syntax names to the families issue 2
// lists; every family must be exercised.
var tsFamily = map[string]string{
	"LittleEndianExplicit":                             "explicit VR little endian",
	"BigEndianExplicit":                                "explicit VR big endian",
	"LittleEndianImplicit":                             "implicit VR little endian",
	"DeflatedLittleEndianExplicit":                     "deflate",
	"JPEGBaseline":                                     "JPEG baseline",
	"JPEGExtended:Process2+4":                          "JPEG extended",
	"JPEGLossless:Non-hierarchical-1stOrderPrediction": "JPEG lossless SV1",
	"JPEGLossless:Non-hierarchical:Process14":          "JPEG lossless process 14",
	"JPEGLSLossless":                                   "JPEG-LS lossless",
	"JPEGLSLossy":                                      "JPEG-LS near-lossless",
	"JPEG2000LosslessOnly":                             "JPEG 2000 lossless",
	"JPEG2000":                                         "JPEG 2000",
	"RLELossless":                                      "RLE",
}

// uncompressed are the syntaxes storescu may convert between when one
// presentation context proposes all three (storescu-all.cfg).
var uncompressed = map[string]bool{"LittleEndianExplicit": true, "BigEndianExplicit": true, "LittleEndianImplicit": true}

// sample is one file the tests send, with its dcmdump.
type sample struct {
	name string // pydicom file name, or derived_*
	path string
	dump peertest.Dump
}

// prepareSamples copies the pydicom files and derives the missing families
// into dir. Files that share a SOP Instance UID with an earlier one (pydicom
// keeps one data set in several encodings) get a new UID with `dcmodify -nb
// -gin`, so each stored instance maps to exactly one sent file.
func prepareSamples(t *testing.T, dir string) []sample {
	t.Helper()
	peertest.Require(t, "pydicom", "dcmdump", "dcmodify", "dcmconv", "dcmcjpeg", "dcmcjpls")
	ctx := context.Background()
	var out []sample
	seen := map[string]bool{}
	add := func(name, path string) {
		d, err := peertest.DumpDataset(ctx, path)
		if err != nil {
			t.Fatalf("sample %s: %v", name, err)
		}
		if d.SOPInstanceUID == "" || d.SOPClass == "" {
			t.Logf("sample %s has no SOP Class/Instance UID in its data set; not sent", name)
			return
		}
		if seen[d.SOPInstanceUID] {
			if o, err := dcmtk(t, "dcmodify", "-nb", "-gin", path); err != nil {
				t.Fatalf("dcmodify -gin %s: %v\n%s", name, err, o)
			}
			if d, err = peertest.DumpDataset(ctx, path); err != nil {
				t.Fatalf("sample %s after dcmodify: %v", name, err)
			}
		}
		seen[d.SOPInstanceUID] = true
		out = append(out, sample{name: name, path: path, dump: d})
	}
	for _, name := range pydicomImagesAndSRs {
		src := filepath.Join(peertest.PydicomTestFiles, name)
		if _, err := os.Stat(src); err != nil {
			t.Logf("pydicom sample %s not installed; skipping it", name)
			continue
		}
		dst := filepath.Join(dir, name)
		if err := copyFile(src, dst); err != nil {
			t.Fatal(err)
		}
		add(name, dst)
	}
	for _, d := range derivedSamples {
		dst := filepath.Join(dir, d.name)
		args := append(append([]string{}, d.args...), filepath.Join(peertest.PydicomTestFiles, d.from), dst)
		if o, err := dcmtk(t, d.tool, args...); err != nil {
			t.Fatalf("%s %s: %v\n%s", d.tool, strings.Join(args, " "), err, o)
		}
		// A new UID: the source file is sent too.
		if o, err := dcmtk(t, "dcmodify", "-nb", "-gin", dst); err != nil {
			t.Fatalf("dcmodify -gin %s: %v\n%s", d.name, err, o)
		}
		add(d.name, dst)
	}
	return out
}

func paths(samples []sample) []string {
	p := make([]string, len(samples))
	for i, s := range samples {
		p[i] = s.path
	}
	return p
}
