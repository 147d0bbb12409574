package dcm

import (
	"math/big"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestTransferSyntaxes(t *testing.T) {
	all := TransferSyntaxes()
	if all[0].UID != ExplicitVRLittleEndian || all[1].UID != ImplicitVRLittleEndian {
		t.Errorf("preference order starts %s, %s", all[0].UID, all[1].UID)
	}
	all[0].UID = "changed"
	if TransferSyntaxes()[0].UID != ExplicitVRLittleEndian {
		t.Error("TransferSyntaxes returned the package table, not a copy")
	}
	seen := map[string]bool{}
	for _, ts := range TransferSyntaxes() {
		if seen[ts.UID] {
			t.Errorf("%s listed twice", ts.UID)
		}
		seen[ts.UID] = true
		if !ValidUID(ts.UID) || ts.Name == "" {
			t.Errorf("bad entry %+v", ts)
		}
		if got, ok := LookupTransferSyntax(ts.UID); !ok || got != ts {
			t.Errorf("LookupTransferSyntax(%s) = %+v, %v", ts.UID, got, ok)
		}
		if UIDName(ts.UID) != ts.Name {
			t.Errorf("UIDName(%s) = %q, want %q", ts.UID, UIDName(ts.UID), ts.Name)
		}
		// Names agree with PS3.6 as pydicom lists it (ours add "(Retired)").
		if info, ok := uidTable[ts.UID]; ok && info.name != ts.Name {
			t.Errorf("%s: name %q, registry %q", ts.UID, ts.Name, info.name)
		}
		if info, ok := uidTable[ts.UID]; ok && info.kind != kindTransferSyntax {
			t.Errorf("%s is not a transfer syntax in the registry", ts.UID)
		}
	}
	for _, uid := range []string{
		"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99",
		"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70",
		"1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81", "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91",
		"1.2.840.10008.1.2.4.92", "1.2.840.10008.1.2.4.93", "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202",
		"1.2.840.10008.1.2.4.203", "1.2.840.10008.1.2.5", "1.2.840.10008.1.2.4.100", "1.2.840.10008.1.2.4.101",
		"1.2.840.10008.1.2.4.102", "1.2.840.10008.1.2.4.103", "1.2.840.10008.1.2.4.104", "1.2.840.10008.1.2.4.105",
		"1.2.840.10008.1.2.4.106", "1.2.840.10008.1.2.4.107", "1.2.840.10008.1.2.4.108",
	} {
		if !seen[uid] {
			t.Errorf("%s not accepted", uid)
		}
	}
	want := map[string]TransferSyntax{
		ImplicitVRLittleEndian:         {UID: ImplicitVRLittleEndian, Name: "Implicit VR Little Endian"},
		ExplicitVRBigEndian:            {UID: ExplicitVRBigEndian, Name: "Explicit VR Big Endian (Retired)", Explicit: true, BigEndian: true},
		DeflatedExplicitVRLittleEndian: {UID: DeflatedExplicitVRLittleEndian, Name: "Deflated Explicit VR Little Endian", Explicit: true, Deflated: true},
		RLELossless:                    {UID: RLELossless, Name: "RLE Lossless", Explicit: true, Encapsulated: true},
	}
	for uid, w := range want {
		got, _ := LookupTransferSyntax(uid)
		if diff := cmp.Diff(w, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", uid, diff)
		}
	}
	if _, ok := LookupTransferSyntax("1.2.840.10008.1.2.4.94"); ok {
		t.Error("JPIP accepted")
	}
}

func TestIsStorageSOPClass(t *testing.T) {
	storage := []string{
		"1.2.840.10008.5.1.4.1.1.1",        // CR
		"1.2.840.10008.5.1.4.1.1.1.1",      // DX for presentation
		"1.2.840.10008.5.1.4.1.1.1.2",      // MG
		"1.2.840.10008.5.1.4.1.1.2",        // CT
		"1.2.840.10008.5.1.4.1.1.2.1",      // Enhanced CT
		"1.2.840.10008.5.1.4.1.1.3.1",      // US multi-frame
		"1.2.840.10008.5.1.4.1.1.4",        // MR
		"1.2.840.10008.5.1.4.1.1.4.1",      // Enhanced MR
		"1.2.840.10008.5.1.4.1.1.6.1",      // US
		"1.2.840.10008.5.1.4.1.1.7",        // SC
		"1.2.840.10008.5.1.4.1.1.7.4",      // MF true color SC
		"1.2.840.10008.5.1.4.1.1.9.1.1",    // 12-lead ECG
		"1.2.840.10008.5.1.4.1.1.11.1",     // GSPS
		"1.2.840.10008.5.1.4.1.1.12.1",     // XA
		"1.2.840.10008.5.1.4.1.1.12.2",     // RF
		"1.2.840.10008.5.1.4.1.1.13.1.3",   // breast tomo
		"1.2.840.10008.5.1.4.1.1.20",       // NM
		"1.2.840.10008.5.1.4.1.1.30",       // parametric map
		"1.2.840.10008.5.1.4.1.1.66",       // raw data
		"1.2.840.10008.5.1.4.1.1.66.1",     // spatial registration
		"1.2.840.10008.5.1.4.1.1.66.4",     // segmentation
		"1.2.840.10008.5.1.4.1.1.66.5",     // surface segmentation
		"1.2.840.10008.5.1.4.1.1.67",       // RWV mapping
		"1.2.840.10008.5.1.4.1.1.77.1.5.4", // ophthalmic tomography
		"1.2.840.10008.5.1.4.1.1.77.1.6",   // WSI
		"1.2.840.10008.5.1.4.1.1.88.11",    // basic text SR
		"1.2.840.10008.5.1.4.1.1.88.22",    // enhanced SR
		"1.2.840.10008.5.1.4.1.1.88.33",    // comprehensive SR
		"1.2.840.10008.5.1.4.1.1.88.34",    // comprehensive 3D SR
		"1.2.840.10008.5.1.4.1.1.88.35",    // extensible SR
		"1.2.840.10008.5.1.4.1.1.88.50",    // mammo CAD
		"1.2.840.10008.5.1.4.1.1.88.59",    // KOS
		"1.2.840.10008.5.1.4.1.1.88.65",    // chest CAD
		"1.2.840.10008.5.1.4.1.1.88.67",    // X-ray dose SR
		"1.2.840.10008.5.1.4.1.1.104.1",    // PDF
		"1.2.840.10008.5.1.4.1.1.104.2",    // CDA
		"1.2.840.10008.5.1.4.1.1.104.3",    // STL
		"1.2.840.10008.5.1.4.1.1.104.4",    // OBJ
		"1.2.840.10008.5.1.4.1.1.104.5",    // MTL
		"1.2.840.10008.5.1.4.1.1.128",      // PET
		"1.2.840.10008.5.1.4.1.1.130",      // enhanced PET
		"1.2.840.10008.5.1.4.1.1.481.1",    // RT image
		"1.2.840.10008.5.1.4.1.1.481.2",    // RT dose
		"1.2.840.10008.5.1.4.1.1.481.3",    // RT structure set
		"1.2.840.10008.5.1.4.1.1.481.5",    // RT plan
		"1.2.840.10008.5.1.4.1.1.481.8",    // RT ion plan
		"1.2.840.10008.5.1.4.34.7",         // RT beams delivery instruction
		"1.2.840.10008.5.1.4.34.10",        // RT brachy application setup delivery instruction
		"1.2.840.10008.5.1.4.1.1.200.2",    // CT performed procedure protocol
		"1.2.840.10008.5.1.4.1.1.88.77",    // waveform annotation SR (not in the generated table)
		"1.2.840.10008.5.1.4.1.1.999.1",    // unregistered, under the storage root
	}
	notStorage := []string{
		VerificationSOPClass,
		"1.2.840.10008.1.2.1",           // a transfer syntax
		"1.2.840.10008.1.3.10",          // DICOMDIR
		"1.2.840.10008.1.20.1",          // storage commitment
		"1.2.840.10008.5.1.4.1.2.1.1",   // patient root FIND
		"1.2.840.10008.5.1.4.1.2.2.2",   // study root MOVE
		"1.2.840.10008.5.1.4.1.2.2.3",   // study root GET
		"1.2.840.10008.5.1.4.31",        // modality worklist
		"1.2.840.10008.5.1.1.9",         // basic grayscale print
		"1.2.840.10008.5.1.1.27",        // stored print (retired)
		"1.2.840.10008.3.1.2.3.3",       // MPPS
		"1.2.840.10008.5.1.4.34.6.1",    // UPS push
		"1.2.840.10008.5.1.4.38.1",      // hanging protocol (non-patient)
		"1.2.840.10008.5.1.4.39.1",      // color palette (non-patient)
		"1.2.840.10008.5.1.4.43.1",      // generic implant template (non-patient)
		"1.2.840.10008.5.1.4.1.1.200.1", // CT defined procedure protocol (non-patient)
		"1.2.840.10008.5.1.4.1.1.200.4", // protocol approval FIND
		"1.2.840.10008.5.1.4.1.1.201.2", // inventory FIND
		"1.2.840.10008.5.1.4.1.1.",      // the root itself
		"1.2.840.10008.5.1.4.1.1.2.x",   // not a UID
		"",
	}
	for _, uid := range storage {
		if !IsStorageSOPClass(uid) {
			t.Errorf("IsStorageSOPClass(%s %q) = false", uid, UIDName(uid))
		}
	}
	for _, uid := range notStorage {
		if IsStorageSOPClass(uid) {
			t.Errorf("IsStorageSOPClass(%s %q) = true", uid, UIDName(uid))
		}
	}
	// Every registered storage class in the table is under one of the two
	// storage roots.
	for uid, info := range uidTable {
		if info.storage && !strings.HasPrefix(uid, storageRoot) && !strings.HasPrefix(uid, "1.2.840.10008.5.1.4.34.") {
			t.Errorf("%s %q marked storage outside the storage roots", uid, info.name)
		}
	}
}

func TestUIDName(t *testing.T) {
	for uid, want := range map[string]string{
		"1.2.840.10008.5.1.4.1.1.2":     "CT Image Storage",
		VerificationSOPClass:            "Verification SOP Class",
		ExplicitVRLittleEndian:          "Explicit VR Little Endian",
		HTJ2K:                           "High-Throughput JPEG 2000 Image Compression",
		"1.2.840.10008.5.1.4.1.1.88.11": "Basic Text SR Storage",
		"1.2.840.10008.5.1.4.1.1.66.7":  "Label Map Segmentation Storage",
		"1.2.3.4":                       "1.2.3.4",
	} {
		if got := UIDName(uid); got != want {
			t.Errorf("UIDName(%s) = %q, want %q", uid, got, want)
		}
	}
}

func TestValidUID(t *testing.T) {
	for s, want := range map[string]bool{
		"1.2.840.10008.1.2": true, "0": true, "1.0.2": true, ImplementationClassUID: true,
		"": false, ".1": false, "1.": false, "1..2": false, "1.02": false, "1.2a": false, "1.2 ": false,
		"1." + strings.Repeat("2", 62): true, "1." + strings.Repeat("2", 63): false,
	} {
		if got := ValidUID(s); got != want {
			t.Errorf("ValidUID(%q) = %v", s, got)
		}
	}
}

// TestHashUID checks HashUID against values computed apart (Python's
// hashlib and uuid) and the properties PS3.5 B.2 asks of a 2.25 UID.
func TestHashUID(t *testing.T) {
	for _, c := range []struct {
		parts []string
		want  string
	}{
		// the phantom generator's implementation class UID
		{[]string{"radgate phantom implementation"}, "2.25.227550520144625376382156499636955826079"},
		// the study of phantom.Spec{KindCTHead, Hemorrhage, Seed 1, 6 slices}
		{[]string{"ct-head", "hemorrhage", "1", "6", "study", "0"}, "2.25.158332027421524366854547081237026697990"},
		// UUID c14cddc0-33f6-4b9d-aa80-ea675cf280a0
		{[]string{"a", "b"}, "2.25.256940115388148508466544500248960729248"},
	} {
		if got := HashUID(c.parts...); got != c.want {
			t.Errorf("HashUID(%q) = %s, want %s", c.parts, got, c.want)
		}
	}
	seen := map[string][]string{}
	for _, parts := range [][]string{{}, {"x"}, {"x", ""}, {"x", "y"}, {"y", "x"}, {"1.2.3", "model", "1", "sr"}, {"1.2.3", "model", "2", "sr"}} {
		uid := HashUID(parts...)
		if prev, dup := seen[uid]; dup {
			t.Errorf("HashUID(%q) = HashUID(%q) = %s", parts, prev, uid)
		}
		seen[uid] = parts
		if !ValidUID(uid) || !strings.HasPrefix(uid, "2.25.") || len(uid) > 44 {
			t.Errorf("HashUID(%q) = %q: not a 2.25 UID of at most 44 characters", parts, uid)
		}
		n, ok := new(big.Int).SetString(strings.TrimPrefix(uid, "2.25."), 10)
		if !ok || n.BitLen() > 128 {
			t.Fatalf("HashUID(%q) = %q: not a 128-bit integer", parts, uid)
		}
		// UUID version nibble (bits 76-79) 4, variant bits (62-63) 10
		if v := new(big.Int).Rsh(n, 76).Uint64() & 0xf; v != 4 {
			t.Errorf("HashUID(%q): version %d, want 4", parts, v)
		}
		if v := new(big.Int).Rsh(n, 62).Uint64() & 0x3; v != 2 {
			t.Errorf("HashUID(%q): variant bits %b, want 10", parts, v)
		}
	}
}
