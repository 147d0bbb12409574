package deident

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// kept says, from the table and the documented behaviour of C, whether
// row r keeps its value under opt: some enabled option column says K, or
// the Modified Dates option's C applies to a time or time zone, which a
// whole-day offset leaves as it is (a binary timestamp, which cannot be
// shifted, is removed).
func kept(r Rule, opt Options) bool {
	if vr := vrOf(r.Tag); opt.RetainLongModifiedDates && r.ModifiedDates == C && (vr == "TM" || vr == "SH") {
		return true
	}
	for _, c := range []struct {
		on bool
		a  Action
	}{
		{opt.RetainUIDs, r.UIDs}, {opt.RetainDeviceIdentity, r.Device}, {opt.RetainInstitutionIdentity, r.Institution},
		{opt.RetainPatientCharacteristics, r.PatientChars}, {opt.RetainLongFullDates, r.FullDates},
		{opt.RetainLongModifiedDates, r.ModifiedDates}, {opt.CleanDescriptors, r.CleanDesc},
	} {
		if c.on && c.a == K {
			return true
		}
	}
	return false
}

// TestAcceptance de-identifies an instance carrying every attribute of
// Table E.1-1 under each option and reads the result with pydicom: no
// attribute of the table holds an original value anywhere unless an
// enabled option keeps it, what is kept is unchanged, the private,
// curve and overlay groups are gone, and the method is recorded.
func TestAcceptance(t *testing.T) {
	in, origs := everyAttribute(t)
	cases := []struct {
		name      string
		opt       Options
		codes     []string
		mustKeep  []tag.Tag // asserted by name as well as by the table
		datesMode string
	}{
		{"basic", Options{}, []string{"113100"}, nil, "REMOVED"},
		{"retain-uids", Options{RetainUIDs: true}, []string{"113100", "113110"},
			[]tag.Tag{tag.StudyInstanceUID, tag.SeriesInstanceUID, tag.SOPInstanceUID, tag.FrameOfReferenceUID, tag.ReferencedSOPInstanceUID}, "REMOVED"},
		{"retain-device", Options{RetainDeviceIdentity: true}, []string{"113100", "113109"},
			[]tag.Tag{tag.DeviceSerialNumber, tag.StationName}, "REMOVED"},
		{"retain-institution", Options{RetainInstitutionIdentity: true}, []string{"113100", "113112"},
			[]tag.Tag{tag.InstitutionName, tag.InstitutionAddress}, "REMOVED"},
		{"retain-patient-characteristics", Options{RetainPatientCharacteristics: true}, []string{"113100", "113108"},
			[]tag.Tag{tag.PatientSex, tag.PatientAge, tag.PatientSize, tag.PatientWeight}, "REMOVED"},
		{"retain-full-dates", Options{RetainLongFullDates: true}, []string{"113100", "113106"},
			[]tag.Tag{tag.StudyDate, tag.SeriesDate, tag.AcquisitionDateTime}, "UNMODIFIED"},
		{"retain-modified-dates", Options{RetainLongModifiedDates: true}, []string{"113100", "113107"}, nil, "MODIFIED"},
		{"clean-descriptors", Options{CleanDescriptors: true}, []string{"113100", "113105"}, nil, "REMOVED"},
		{"all", Options{RetainUIDs: true, RetainDeviceIdentity: true, RetainInstitutionIdentity: true,
			RetainPatientCharacteristics: true, RetainLongModifiedDates: true, CleanDescriptors: true},
			[]string{"113100", "113110", "113109", "113112", "113108", "113107", "113105"}, []tag.Tag{tag.PatientSex, tag.SOPInstanceUID}, "MODIFIED"},
	}
	dir := t.TempDir()
	m := openMap(t, filepath.Join(dir, "map"))
	var files []string
	for _, tc := range cases {
		out, _ := deidBytes(t, newDeid(t, tc.opt, m), in)
		p := filepath.Join(dir, tc.name+".dcm")
		if err := os.WriteFile(p, out, 0o600); err != nil {
			t.Fatal(err)
		}
		files = append(files, p)
	}
	dumps := pydicomDump(t, files...)
	rows := map[tag.Tag]Rule{}
	for _, r := range Table() {
		rows[r.Tag] = r
	}
	// A date not in the table is handled as the table's X/D date rows.
	rows[tag.InstanceCreationDate] = Rule{Tag: tag.InstanceCreationDate, Name: "Instance Creation Date (by VR)", Basic: XD, FullDates: K, ModifiedDates: C}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			els := dumps[files[i]]
			top := map[tag.Tag]string{}
			var codes []string
			for _, e := range els {
				et := e.tag()
				if e.depth() == 0 {
					top[et] = e.Value
				}
				if et.Group%2 == 1 || et.Group&0xFF00 == 0x5000 || et.Group&0xFF00 == 0x6000 {
					t.Errorf("%s %s survived (private, curve or overlay)", e.Path, e.Value)
				}
				if strings.HasPrefix(e.Path, "00120064/") && et == tag.CodeValue {
					codes = append(codes, e.Value)
				}
				r, inTable := rows[et]
				if !inTable || e.VR == "SQ" || kept(r, tc.opt) {
					continue
				}
				if slices.Contains(origs[et], e.Value) {
					t.Errorf("%s (%s) still holds its original value", e.Path, r.Name)
				}
			}
			for _, r := range Table() {
				if r.Tag.Group == tag.MetadataGroup || vrOf(r.Tag) == "SQ" || !kept(r, tc.opt) {
					continue
				}
				if top[r.Tag] != origValue(r) {
					t.Errorf("%s (%s) = %q, want it kept: %q", tag.DebugString(r.Tag), r.Name, top[r.Tag], origValue(r))
				}
			}
			for _, mt := range tc.mustKeep {
				if !kept(rows[mt], tc.opt) {
					t.Errorf("the table does not keep %s under %s", tag.DebugString(mt), tc.name)
				}
			}
			if got := top[tag.InstanceCreationDate]; (got == instanceCreationDate) != tc.opt.RetainLongFullDates {
				t.Errorf("Instance Creation Date = %q under %+v", got, tc.opt)
			}
			if top[tag.PatientIdentityRemoved] != "YES" {
				t.Errorf("PatientIdentityRemoved = %q", top[tag.PatientIdentityRemoved])
			}
			if diff := cmp.Diff(tc.codes, codes); diff != "" {
				t.Errorf("De-identification Method Code Sequence (-want +got):\n%s", diff)
			}
			if got := top[tag.LongitudinalTemporalInformationModified]; got != tc.datesMode {
				t.Errorf("LongitudinalTemporalInformationModified = %q, want %q", got, tc.datesMode)
			}
			if top[tag.MediaStorageSOPInstanceUID] != top[tag.SOPInstanceUID] || top[tag.SOPInstanceUID] == "" {
				t.Errorf("MediaStorageSOPInstanceUID %q, SOPInstanceUID %q", top[tag.MediaStorageSOPInstanceUID], top[tag.SOPInstanceUID])
			}
			if top[tag.SourceApplicationEntityTitle] != "" || top[tag.Manufacturer] != "KEEPMANUFACTURER" {
				t.Errorf("SourceApplicationEntityTitle %q (want the meta replaced), Manufacturer %q (not in the table: kept)",
					top[tag.SourceApplicationEntityTitle], top[tag.Manufacturer])
			}
			if tc.opt.RetainLongModifiedDates {
				checkShift(t, top)
			}
		})
	}
}

// checkShift: under Modified Dates, dates move back by one per-patient
// offset, the same for every date row.
func checkShift(t *testing.T, top map[tag.Tag]string) {
	t.Helper()
	shift := func(tg tag.Tag) int {
		r := profileTable[rowIndex(tg)]
		o, err1 := time.Parse("20060102", origValue(r)[:8])
		n, err2 := time.Parse("20060102", top[tg][:min(8, len(top[tg]))])
		if err1 != nil || err2 != nil {
			t.Fatalf("%s: %q → %q", r.Name, origValue(r), top[tg])
		}
		return int(o.Sub(n).Hours() / 24)
	}
	study := shift(tag.StudyDate)
	if study < 1 || study > MaxDateShiftDays {
		t.Errorf("Study Date moved %d days", study)
	}
	for _, tg := range []tag.Tag{tag.SeriesDate, tag.ContentDate, tag.AcquisitionDateTime} {
		if s := shift(tg); s != study {
			t.Errorf("%s moved %d days, Study Date %d", tag.DebugString(tg), s, study)
		}
	}
}
