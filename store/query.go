package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/radgate/radgate/dcm"
)

// Searcher finds studies, series and instances by attribute matching, the
// way a C-FIND SCP (PS3.4 C.2.2.2) and a QIDO-RS origin server (PS3.18
// 10.6) do. Values are compared as stored: bytes in each instance's
// Specific Character Set, so a key with characters outside ISO 646 only
// matches values stored in UTF-8 (ISO_IR 192) or in the same bytes.
type Searcher interface {
	// Search returns the entities of q.Level every key of q matches, in
	// the order they were first indexed, q.Offset skipped and at most
	// q.Limit. Each Match holds every attribute of Attributes at or above
	// q.Level. A key the index cannot match, or a value that is not a
	// valid match for its VR, is an error wrapping ErrInvalidQuery.
	Search(ctx context.Context, q Query) ([]Match, error)
}

// Level is a query level (PS3.4 C.6.1.1.2; QIDO-RS has no patient level:
// the patient's attributes belong to the study).
type Level int

// Query levels.
const (
	StudyLevel Level = iota + 1
	SeriesLevel
	InstanceLevel
)

var levelNames = [...]string{StudyLevel: "study", SeriesLevel: "series", InstanceLevel: "instance"}

func (l Level) String() string {
	if l > 0 && int(l) < len(levelNames) {
		return levelNames[l]
	}
	return fmt.Sprintf("Level(%d)", int(l))
}

// Attributes the index derives rather than stores (PS3.6 Table 6-1).
const (
	ModalitiesInStudy              dcm.Tag = 0x00080061 // CS
	NumberOfStudyRelatedSeries     dcm.Tag = 0x00201206 // IS
	NumberOfStudyRelatedInstances  dcm.Tag = 0x00201208 // IS
	NumberOfSeriesRelatedInstances dcm.Tag = 0x00201209 // IS
)

// Query is a search: keys all of which must match (an empty Value is
// universal matching, PS3.4 C.2.2.2.3), offset and limit (0: no limit).
type Query struct {
	Level  Level
	Keys   []Key
	Offset int
	Limit  int
}

// Key is one matching key: a tag of Attributes and its value as in a
// C-FIND identifier. The value's form says the matching (PS3.4 C.2.2.2):
// a list of UIDs separated by "\" or "," (UI); a date or time range
// "a-b", "-b", "a-" (DA, TM); "*" and "?" wildcards (text VRs; PN
// case-insensitively, and also against the Alphabetic group alone);
// values separated by "\", any of which may match; otherwise single value
// matching. Trailing spaces are insignificant.
type Key struct {
	Tag   dcm.Tag
	Value string
}

// Match is one entity found: its attributes and those of the levels
// above, as stored (character set not decoded; multiple values separated
// by "\"; counts in decimal; "" where the attribute has no value).
type Match map[dcm.Tag]string

// Attribute is an attribute the index can return, and match unless it is
// derived (counts, Specific Character Set).
type Attribute struct {
	Tag      dcm.Tag
	Keyword  string // PS3.6 Table 6-1
	VR       string
	Level    Level // the level it describes; 0: every level (Specific Character Set)
	Matching bool  // usable as a matching key

	expr string // SQL expression over p, st, se, i (aliases of searchSQL)
}

// liveSeries is true of a series row (named se) that still has an
// instance: an instance moved to another series by a replacement leaves
// its former series row behind.
const liveSeries = `EXISTS (SELECT 1 FROM instance li WHERE li.series_pk = se.pk)`

var attributes = []Attribute{
	{Tag: dcm.SpecificCharacterSet, Keyword: "SpecificCharacterSet", VR: "CS"},
	{dcm.StudyDate, "StudyDate", "DA", StudyLevel, true, "st.study_date"},
	{dcm.StudyTime, "StudyTime", "TM", StudyLevel, true, "st.study_time"},
	{dcm.AccessionNumber, "AccessionNumber", "SH", StudyLevel, true, "st.accession_number"},
	{ModalitiesInStudy, "ModalitiesInStudy", "CS", StudyLevel, true, `(SELECT group_concat(modality, '\') FROM
	(SELECT DISTINCT se.modality FROM series se WHERE se.study_pk = st.pk AND se.modality <> '' AND ` + liveSeries + `
	ORDER BY se.modality))`},
	{dcm.ReferringPhysicianName, "ReferringPhysicianName", "PN", StudyLevel, true, "st.referring_physician_name"},
	{dcm.StudyDescription, "StudyDescription", "LO", StudyLevel, true, "st.study_description"},
	{dcm.PatientName, "PatientName", "PN", StudyLevel, true, "p.patient_name"},
	{dcm.PatientID, "PatientID", "LO", StudyLevel, true, "p.patient_id"},
	{dcm.PatientBirthDate, "PatientBirthDate", "DA", StudyLevel, true, "p.birth_date"},
	{dcm.PatientSex, "PatientSex", "CS", StudyLevel, true, "p.sex"},
	{dcm.StudyInstanceUID, "StudyInstanceUID", "UI", StudyLevel, true, "st.study_instance_uid"},
	{dcm.StudyID, "StudyID", "SH", StudyLevel, true, "st.study_id"},
	{NumberOfStudyRelatedSeries, "NumberOfStudyRelatedSeries", "IS", StudyLevel, false,
		`(SELECT COUNT(*) FROM series se WHERE se.study_pk = st.pk AND ` + liveSeries + `)`},
	{NumberOfStudyRelatedInstances, "NumberOfStudyRelatedInstances", "IS", StudyLevel, false,
		`(SELECT COUNT(*) FROM series se JOIN instance ci ON ci.series_pk = se.pk WHERE se.study_pk = st.pk)`},

	{dcm.Modality, "Modality", "CS", SeriesLevel, true, "se.modality"},
	{dcm.SeriesDescription, "SeriesDescription", "LO", SeriesLevel, true, "se.series_description"},
	{dcm.SeriesNumber, "SeriesNumber", "IS", SeriesLevel, true, "se.series_number"},
	{dcm.SeriesInstanceUID, "SeriesInstanceUID", "UI", SeriesLevel, true, "se.series_instance_uid"},
	{dcm.BodyPartExamined, "BodyPartExamined", "CS", SeriesLevel, true, "se.body_part_examined"},
	{NumberOfSeriesRelatedInstances, "NumberOfSeriesRelatedInstances", "IS", SeriesLevel, false,
		`(SELECT COUNT(*) FROM instance ci WHERE ci.series_pk = se.pk)`},

	{dcm.SOPClassUID, "SOPClassUID", "UI", InstanceLevel, true, "i.sop_class_uid"},
	{dcm.SOPInstanceUID, "SOPInstanceUID", "UI", InstanceLevel, true, "i.sop_instance_uid"},
	{dcm.InstanceNumber, "InstanceNumber", "IS", InstanceLevel, true, "i.instance_number"},
	{dcm.NumberOfFrames, "NumberOfFrames", "IS", InstanceLevel, true, "NULLIF(i.number_of_frames, 0)"},
	{dcm.Rows, "Rows", "US", InstanceLevel, true, "NULLIF(i.image_rows, 0)"},
	{dcm.Columns, "Columns", "US", InstanceLevel, true, "NULLIF(i.image_columns, 0)"},
}

// Attributes lists what the index can return and match, study level
// first.
func Attributes() []Attribute { return append([]Attribute(nil), attributes...) }

// level is what searchSQL needs per level: the rows, the Specific
// Character Set (the most recently indexed instance's: the stored values
// of a level are those of its most recent instance), a filter and the
// order.
type level struct {
	from, charset, where, order string
}

var levels = map[Level]level{
	StudyLevel: {
		from: `study st JOIN patient p ON p.pk = st.patient_pk`,
		charset: `(SELECT ci.specific_character_set FROM series cs JOIN instance ci ON ci.series_pk = cs.pk
	WHERE cs.study_pk = st.pk ORDER BY ci.seq DESC LIMIT 1)`,
		where: `EXISTS (SELECT 1 FROM series se WHERE se.study_pk = st.pk AND ` + liveSeries + `)`,
		order: "st.pk",
	},
	SeriesLevel: {
		from: `series se JOIN study st ON st.pk = se.study_pk JOIN patient p ON p.pk = st.patient_pk`,
		charset: `(SELECT ci.specific_character_set FROM instance ci WHERE ci.series_pk = se.pk
	ORDER BY ci.seq DESC LIMIT 1)`,
		where: liveSeries,
		order: "se.pk",
	},
	InstanceLevel: {
		from: `instance i JOIN series se ON se.pk = i.series_pk JOIN study st ON st.pk = se.study_pk
	JOIN patient p ON p.pk = st.patient_pk`,
		charset: "i.specific_character_set",
		where:   "1",
		order:   "i.pk",
	},
}

// Search implements Searcher. The SQL is built from the fixed fragments
// of attributes and levels only; every value is a parameter.
func (x *SQLiteIndex) Search(ctx context.Context, q Query) ([]Match, error) {
	lv, ok := levels[q.Level]
	if !ok {
		return nil, fmt.Errorf("%w: level %v", ErrInvalidQuery, q.Level)
	}
	if q.Offset < 0 || q.Limit < 0 {
		return nil, fmt.Errorf("%w: negative offset or limit", ErrInvalidQuery)
	}
	var cols []Attribute
	var sb strings.Builder
	sb.WriteString("SELECT ")
	for _, a := range attributes {
		if a.Level > q.Level {
			continue
		}
		expr := a.expr
		if a.Level == 0 {
			expr = lv.charset
		}
		if len(cols) > 0 {
			sb.WriteString(",\n\t")
		}
		sb.WriteString("COALESCE(CAST(" + expr + " AS TEXT), '')")
		cols = append(cols, a)
	}
	sb.WriteString("\nFROM " + lv.from + "\nWHERE " + lv.where)
	var args []any
	for _, k := range q.Keys {
		cond, kargs, err := condition(q.Level, k)
		if err != nil {
			return nil, err
		}
		if cond != "" {
			sb.WriteString("\n\tAND " + cond)
			args = append(args, kargs...)
		}
		if len(args) > 2*maxKeyValues {
			return nil, fmt.Errorf("%w: more than %d values in all", ErrInvalidQuery, maxKeyValues)
		}
	}
	limit := int64(q.Limit)
	if limit == 0 {
		limit = -1 // SQLite: no limit
	}
	sb.WriteString("\nORDER BY " + lv.order + " LIMIT ? OFFSET ?")
	args = append(args, limit, q.Offset)

	rows, err := x.r.QueryContext(ctx, sb.String(), args...)
	if err != nil {
		return nil, fmt.Errorf("store: search: %w", err)
	}
	defer rows.Close()
	vals := make([]string, len(cols))
	dst := make([]any, len(cols))
	for i := range vals {
		dst[i] = &vals[i]
	}
	var out []Match
	for rows.Next() {
		if err := rows.Scan(dst...); err != nil {
			return nil, fmt.Errorf("store: search: %w", err)
		}
		m := make(Match, len(cols))
		for i, a := range cols {
			m[a.Tag] = vals[i]
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: search: %w", err)
	}
	return out, nil
}

func lookupAttribute(t dcm.Tag) (Attribute, bool) {
	for _, a := range attributes {
		if a.Tag == t {
			return a, true
		}
	}
	return Attribute{}, false
}

// condition is the SQL for one key at level l ("" for universal
// matching) and its parameters.
func condition(l Level, k Key) (string, []any, error) {
	a, ok := lookupAttribute(k.Tag)
	if !ok {
		return "", nil, fmt.Errorf("%w: %v is not an attribute the index holds", ErrInvalidQuery, k.Tag)
	}
	if a.Level > l {
		return "", nil, fmt.Errorf("%w: %s is not a key at the %v level", ErrInvalidQuery, a.Keyword, l)
	}
	v := strings.TrimRight(k.Value, " ")
	if v == "" || v == "*" {
		return "", nil, nil // universal matching (PS3.4 C.2.2.2.3, C.2.2.2.4)
	}
	if !a.Matching {
		return "", nil, fmt.Errorf("%w: %s is a return key only", ErrInvalidQuery, a.Keyword)
	}
	sep := `\`
	if a.VR == "UI" {
		// PS3.18 8.3.4.1: a UID list may also be separated by commas.
		v = strings.ReplaceAll(v, ",", sep)
	}
	values := strings.Split(v, sep)
	if len(values) > maxKeyValues {
		return "", nil, fmt.Errorf("%w: %s: more than %d values", ErrInvalidQuery, a.Keyword, maxKeyValues)
	}
	col := a.expr
	if a.Tag == ModalitiesInStudy {
		col = "ms.modality"
	}
	var conds []string
	var args []any
	for _, v := range values {
		c, cargs, err := valueCondition(a, col, strings.TrimRight(v, " "))
		if err != nil {
			return "", nil, err
		}
		conds = append(conds, c)
		args = append(args, cargs...)
	}
	cond := "(" + strings.Join(conds, " OR ") + ")"
	if a.VR == "UI" {
		// PS3.4 C.2.2.2.2 List of UID matching.
		cond = col + " IN (?" + strings.Repeat(", ?", len(args)-1) + ")"
	}
	if a.Tag == ModalitiesInStudy {
		// Any of the study's series.
		cond = `EXISTS (SELECT 1 FROM series ms WHERE ms.study_pk = st.pk AND ` + cond + `)`
	}
	return cond, args, nil
}

// valueCondition matches one value (PS3.4 C.2.2.2.1 single value, .4
// wildcard, .5 range).
func valueCondition(a Attribute, col, v string) (string, []any, error) {
	bad := func(what string) error {
		return fmt.Errorf("%w: %s: not %s", ErrInvalidQuery, a.Keyword, what)
	}
	switch a.VR {
	case "UI":
		if !dcm.ValidUID(v) {
			return "", nil, bad("a UID or a list of UIDs")
		}
		return "", []any{v}, nil
	case "DA", "TM":
		valid, what := validDate, "a date YYYYMMDD or a range of dates"
		if a.VR == "TM" {
			valid, what = validTime, "a time HHMMSS.FFFFFF (or shorter) or a range of times"
		}
		lo, hi, isRange := strings.Cut(v, "-")
		if !isRange {
			if !valid(v) {
				return "", nil, bad(what)
			}
			return col + " = ?", []any{v}, nil
		}
		if (lo == "" && hi == "") || (lo != "" && !valid(lo)) || (hi != "" && !valid(hi)) {
			return "", nil, bad(what)
		}
		if a.VR == "TM" || hi == "" {
			// "~" sorts after every digit and ".": an upper time "1100"
			// includes 11:00:30, and an open range has no upper bound.
			hi += "~"
		}
		if lo > hi {
			return "", nil, bad(what)
		}
		return "(" + col + " <> '' AND " + col + " >= ? AND " + col + " <= ?)", []any{lo, hi}, nil
	case "IS", "US":
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return "", nil, bad("an integer")
		}
		return col + " = ?", []any{n}, nil
	case "PN":
		// Case-insensitive (PS3.4 C.2.2.2.1.1 allows it), against the
		// whole name or its Alphabetic group alone.
		p := globPattern(v)
		return "(lower(" + col + ") GLOB lower(?) OR lower(" + col + ") GLOB lower(?))", []any{p, p + "=*"}, nil
	}
	if strings.ContainsAny(v, "*?") {
		return col + " GLOB ?", []any{globPattern(v)}, nil
	}
	return col + " = ?", []any{v}, nil
}

// globPattern turns a DICOM wildcard value into a SQLite GLOB pattern:
// "*" and "?" are GLOB's too, and "[", GLOB's only other special
// character outside a set, becomes the set "[[]".
func globPattern(v string) string { return strings.ReplaceAll(v, "[", "[[]") }

// validDate: DA, YYYYMMDD (PS3.5 6.2), a real day.
func validDate(s string) bool {
	_, err := time.Parse("20060102", s)
	return len(s) == 8 && err == nil
}

// validTime: TM, HH[MM[SS[.F{1,6}]]] (PS3.5 6.2).
func validTime(s string) bool {
	whole, frac, dot := strings.Cut(s, ".")
	if dot && (len(whole) != 6 || len(frac) < 1 || len(frac) > 6 || !digits(frac)) {
		return false
	}
	if len(whole)%2 != 0 || len(whole) < 2 || len(whole) > 6 || !digits(whole) {
		return false
	}
	limits := []int{23, 59, 60} // 60: a leap second
	for i := 0; i < len(whole); i += 2 {
		if n, _ := strconv.Atoi(whole[i : i+2]); n > limits[i/2] {
			return false
		}
	}
	return true
}

func digits(s string) bool {
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// Search finds studies, series or instances (see Searcher), once the
// instances acknowledged before the call are indexed.
func (s *Store) Search(ctx context.Context, q Query) ([]Match, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, ErrClosed
	}
	if err := s.ix.flush(); err != nil {
		return nil, err
	}
	return s.index.Search(ctx, q)
}
