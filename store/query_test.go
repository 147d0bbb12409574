package store

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/radgate/radgate/dcm"
)

const (
	queryStudyB  = "1.2.826.0.1.3680043.10.999.2"
	queryStudyC  = "1.2.826.0.1.3680043.10.999.3"
	querySeriesM = testStudyUID + ".2" // study A's MR series
	injectionID  = "'; DROP TABLE patient; --"
)

// seedQuery stores three studies:
//
//	A (testStudyUID) 20240131  Doe^Jane           PID-0001  CT series (3 instances), MR series (1)
//	B                20200615  Smith[x]^Bob       injectionID  CT (1)
//	C                20201231  SMITH^ANNA=X^Y     PID-0003  CT (1)
func seedQuery(t *testing.T) *Store {
	t.Helper()
	s := openTest(t, Config{})
	put := func(d ds, date string) {
		t.Helper()
		// StudyDate is the data set's first "20240131" (the birth date
		// differs), so the same length swapped in changes it alone.
		b := bytes.Replace(d.bytes(), []byte("20240131"), []byte(date), 1)
		if _, err := s.Ingest(context.Background(), d.incoming(), bytes.NewReader(b)); err != nil {
			t.Fatalf("Ingest %s: %v", d.sop, err)
		}
	}
	for n := range 3 {
		put(ds{sop: testSeriesUID + "." + string(rune('1'+n)), instanceNumber: string(rune('1' + n))}, "20240131")
	}
	put(ds{sop: querySeriesM + ".1", series: querySeriesM, modality: "MR", class: mrImageStorage}, "20240131")
	put(ds{sop: queryStudyB + ".1.1", study: queryStudyB, series: queryStudyB + ".1",
		patientID: injectionID, patientName: "Smith[x]^Bob"}, "20200615")
	put(ds{sop: queryStudyC + ".1.1", study: queryStudyC, series: queryStudyC + ".1",
		patientID: "PID-0003", patientName: "SMITH^ANNA=X^Y"}, "20201231")
	return s
}

func search(t *testing.T, s *Store, q Query) []Match {
	t.Helper()
	got, err := s.Search(context.Background(), q)
	if err != nil {
		t.Fatalf("Search(%+v): %v", q, err)
	}
	return got
}

// uids lists the UIDs of the level's entities found.
func uids(l Level, ms []Match) []string {
	t := map[Level]dcm.Tag{StudyLevel: dcm.StudyInstanceUID, SeriesLevel: dcm.SeriesInstanceUID, InstanceLevel: dcm.SOPInstanceUID}[l]
	out := []string{}
	for _, m := range ms {
		out = append(out, m[t])
	}
	return out
}

func TestQueryMatching(t *testing.T) {
	s := seedQuery(t)
	const a, b, c = testStudyUID, queryStudyB, queryStudyC
	key := func(t dcm.Tag, v string) []Key { return []Key{{t, v}} }
	for _, tc := range []struct {
		name string
		q    Query
		want []string
	}{
		{"all studies", Query{Level: StudyLevel}, []string{a, b, c}},
		{"universal matching", Query{Level: StudyLevel, Keys: key(dcm.PatientName, "")}, []string{a, b, c}},
		{"universal wildcard", Query{Level: StudyLevel, Keys: key(dcm.PatientID, "*")}, []string{a, b, c}},
		{"PN single value, any case", Query{Level: StudyLevel, Keys: key(dcm.PatientName, "doe^jane")}, []string{a}},
		{"PN Alphabetic group", Query{Level: StudyLevel, Keys: key(dcm.PatientName, "Smith^Anna")}, []string{c}},
		{"PN wildcard", Query{Level: StudyLevel, Keys: key(dcm.PatientName, "sm*")}, []string{b, c}},
		{"[ is a literal", Query{Level: StudyLevel, Keys: key(dcm.PatientName, "Smith[x]*")}, []string{b}},
		{"? is one character", Query{Level: StudyLevel, Keys: key(dcm.PatientID, "PID-000?")}, []string{a, c}},
		{"single value is exact", Query{Level: StudyLevel, Keys: key(dcm.PatientID, "PID-000")}, []string{}},
		{"injection is a literal", Query{Level: StudyLevel, Keys: key(dcm.PatientID, injectionID)}, []string{b}},
		{"quote is a literal", Query{Level: StudyLevel, Keys: key(dcm.PatientID, "' OR '1'='1")}, []string{}},
		{"trailing spaces", Query{Level: StudyLevel, Keys: key(dcm.PatientID, "PID-0003  ")}, []string{c}},
		{"multiple values", Query{Level: StudyLevel, Keys: key(dcm.PatientID, `PID-0001\PID-0003`)}, []string{a, c}},
		{"date", Query{Level: StudyLevel, Keys: key(dcm.StudyDate, "20240131")}, []string{a}},
		{"date range", Query{Level: StudyLevel, Keys: key(dcm.StudyDate, "20200101-20201231")}, []string{b, c}},
		{"date up to", Query{Level: StudyLevel, Keys: key(dcm.StudyDate, "-20201231")}, []string{b, c}},
		{"date from", Query{Level: StudyLevel, Keys: key(dcm.StudyDate, "20201231-")}, []string{a, c}},
		{"time range, shorter bounds", Query{Level: StudyLevel, Keys: key(dcm.StudyTime, "10-1015")}, []string{a, b, c}},
		{"time range, before", Query{Level: StudyLevel, Keys: key(dcm.StudyTime, "-1014")}, []string{}},
		{"UID list, commas", Query{Level: StudyLevel, Keys: key(dcm.StudyInstanceUID, a+","+c)}, []string{a, c}},
		{"UID list, backslashes", Query{Level: StudyLevel, Keys: key(dcm.StudyInstanceUID, b+`\`+c)}, []string{b, c}},
		{"modalities in study", Query{Level: StudyLevel, Keys: key(ModalitiesInStudy, "MR")}, []string{a}},
		{"modalities wildcard", Query{Level: StudyLevel, Keys: key(ModalitiesInStudy, "C?")}, []string{a, b, c}},
		{"keys combine", Query{Level: StudyLevel, Keys: []Key{{dcm.PatientName, "s*"}, {dcm.StudyDate, "20201231"}}}, []string{c}},
		{"limit", Query{Level: StudyLevel, Limit: 2}, []string{a, b}},
		{"offset and limit", Query{Level: StudyLevel, Offset: 1, Limit: 1}, []string{b}},
		{"offset past the end", Query{Level: StudyLevel, Offset: 5}, []string{}},

		{"series of a study", Query{Level: SeriesLevel, Keys: key(dcm.StudyInstanceUID, a)}, []string{testSeriesUID, querySeriesM}},
		{"series by modality", Query{Level: SeriesLevel, Keys: key(dcm.Modality, "MR")}, []string{querySeriesM}},
		{"series by patient", Query{Level: SeriesLevel, Keys: key(dcm.PatientID, "PID-0003")}, []string{c + ".1"}},
		{"series number", Query{Level: SeriesLevel, Keys: key(dcm.SeriesNumber, "2"), Limit: 1}, []string{testSeriesUID}},

		{"instances of a series", Query{Level: InstanceLevel, Keys: key(dcm.SeriesInstanceUID, testSeriesUID)},
			[]string{testSeriesUID + ".1", testSeriesUID + ".2", testSeriesUID + ".3"}},
		{"instance number", Query{Level: InstanceLevel, Keys: []Key{{dcm.StudyInstanceUID, a}, {dcm.InstanceNumber, "2"}}},
			[]string{testSeriesUID + ".2"}},
		{"SOP class", Query{Level: InstanceLevel, Keys: key(dcm.SOPClassUID, mrImageStorage)}, []string{querySeriesM + ".1"}},
		{"rows", Query{Level: InstanceLevel, Keys: key(dcm.Rows, "512"), Offset: 5}, []string{c + ".1.1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, uids(tc.q.Level, search(t, s, tc.q))); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
	// The injection-looking key left every table in place.
	if n, err := s.CountInstances(context.Background()); err != nil || n != 6 {
		t.Errorf("CountInstances = %d, %v; want 6", n, err)
	}
}

// TestQueryValues: what a match holds at each level, counts and
// Modalities in Study derived from the child rows.
func TestQueryValues(t *testing.T) {
	s := seedQuery(t)
	study := Match{
		dcm.SpecificCharacterSet: "ISO_IR 100", dcm.StudyDate: "20240131", dcm.StudyTime: "101500",
		dcm.AccessionNumber: "ACC123", ModalitiesInStudy: `CT\MR`, dcm.ReferringPhysicianName: "Ref^Doc",
		dcm.StudyDescription: "CT HEAD", dcm.PatientName: "Doe^Jane", dcm.PatientID: "PID-0001",
		dcm.PatientBirthDate: "19700101", dcm.PatientSex: "F", dcm.StudyInstanceUID: testStudyUID, dcm.StudyID: "S1",
		NumberOfStudyRelatedSeries: "2", NumberOfStudyRelatedInstances: "4",
	}
	got := search(t, s, Query{Level: StudyLevel, Limit: 1})
	if diff := cmp.Diff([]Match{study}, got); diff != "" {
		t.Errorf("study (-want +got)\n%s", diff)
	}

	series := Match{
		dcm.Modality: "CT", dcm.SeriesDescription: "AXIAL", dcm.SeriesNumber: "2", dcm.SeriesInstanceUID: testSeriesUID,
		dcm.BodyPartExamined: "HEAD", NumberOfSeriesRelatedInstances: "3",
	}
	for k, v := range study {
		series[k] = v
	}
	got = search(t, s, Query{Level: SeriesLevel, Limit: 1})
	if diff := cmp.Diff([]Match{series}, got); diff != "" {
		t.Errorf("series (-want +got)\n%s", diff)
	}

	instance := Match{
		dcm.SOPClassUID: ctImageStorage, dcm.SOPInstanceUID: testSeriesUID + ".3", dcm.InstanceNumber: "3",
		dcm.NumberOfFrames: "", dcm.Rows: "512", dcm.Columns: "512",
	}
	for k, v := range series {
		instance[k] = v
	}
	got = search(t, s, Query{Level: InstanceLevel, Keys: []Key{{dcm.InstanceNumber, "3"}}})
	if diff := cmp.Diff([]Match{instance}, got); diff != "" {
		t.Errorf("instance (-want +got)\n%s", diff)
	}
}

// TestQueryInvalid: keys the index cannot match, and values that are no
// valid matching for their VR, are ErrInvalidQuery whose message names
// the attribute and never the value.
func TestQueryInvalid(t *testing.T) {
	s := seedQuery(t)
	for _, tc := range []struct {
		name string
		q    Query
	}{
		{"no level", Query{}},
		{"negative offset", Query{Level: StudyLevel, Offset: -1}},
		{"not indexed", Query{Level: StudyLevel, Keys: []Key{{dcm.InstitutionName, "X"}}}},
		{"below the level", Query{Level: StudyLevel, Keys: []Key{{dcm.SOPInstanceUID, "1.2.3"}}}},
		{"return key only", Query{Level: StudyLevel, Keys: []Key{{NumberOfStudyRelatedSeries, "2"}}}},
		{"UID wildcard", Query{Level: StudyLevel, Keys: []Key{{dcm.StudyInstanceUID, "1.2.*"}}}},
		{"UID list with a bad UID", Query{Level: StudyLevel, Keys: []Key{{dcm.StudyInstanceUID, "1.2,1.02"}}}},
		{"too many UIDs", Query{Level: StudyLevel, Keys: []Key{{dcm.StudyInstanceUID, strings.Repeat("1.2,", maxKeyValues) + "1.3"}}}},
		{"too many values in all", Query{Level: StudyLevel, Keys: []Key{
			{dcm.PatientName, strings.Repeat(`a\`, maxKeyValues-1) + "a"}, {dcm.PatientID, "b"}}}},
		{"date, no day", Query{Level: StudyLevel, Keys: []Key{{dcm.StudyDate, "202001"}}}},
		{"date, no such day", Query{Level: StudyLevel, Keys: []Key{{dcm.StudyDate, "20200230"}}}},
		{"date, wildcard", Query{Level: StudyLevel, Keys: []Key{{dcm.StudyDate, "2020*"}}}},
		{"date range, no bounds", Query{Level: StudyLevel, Keys: []Key{{dcm.StudyDate, "-"}}}},
		{"date range, reversed", Query{Level: StudyLevel, Keys: []Key{{dcm.StudyDate, "20201231-20200101"}}}},
		{"date range, bad bound", Query{Level: StudyLevel, Keys: []Key{{dcm.StudyDate, "20200101-2020"}}}},
		{"time, hour 25", Query{Level: StudyLevel, Keys: []Key{{dcm.StudyTime, "25"}}}},
		{"time, odd digits", Query{Level: StudyLevel, Keys: []Key{{dcm.StudyTime, "101"}}}},
		{"time range, reversed", Query{Level: StudyLevel, Keys: []Key{{dcm.StudyTime, "12-11"}}}},
		{"integer", Query{Level: InstanceLevel, Keys: []Key{{dcm.InstanceNumber, "1*"}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Search(context.Background(), tc.q)
			if !errors.Is(err, ErrInvalidQuery) {
				t.Fatalf("err = %v, want ErrInvalidQuery", err)
			}
			for _, k := range tc.q.Keys {
				if len(k.Value) > 2 && strings.Contains(err.Error(), k.Value) {
					t.Errorf("error %q quotes the value", err)
				}
			}
		})
	}
}

// TestQueryClosed: a closed Store refuses.
func TestQueryClosed(t *testing.T) {
	s := openTest(t, Config{})
	s.Close()
	if _, err := s.Search(context.Background(), Query{Level: StudyLevel}); !errors.Is(err, ErrClosed) {
		t.Errorf("err = %v, want ErrClosed", err)
	}
}
