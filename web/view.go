package web

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/radgate/radgate/inference"
	"github.com/radgate/radgate/store"
	"github.com/radgate/radgate/worklist"
)

// rowsData is the table body.
type rowsData struct {
	Rows []row
}

// row is one workitem as the table shows it.
type row struct {
	N             int // its place, 1 first
	UID, Href     string
	Priority      string // STAT, HIGH, ROUTINE
	PriorityClass string // its badge's CSS class
	Override      bool   // a person set it
	Reason        string
	Flags         []finding // positive findings
	AINote        string    // with no flag: why not
	Modality      string
	Description   string
	Waiting       string
	Since         string // RFC 3339
	SinceLocal    string
	State         string
	PatientName   string
	PatientID     string
	Thumb         *image
}

type finding struct {
	Model, Version, Label, Meaning string
	Probability, Threshold         string
	Positive                       bool
	SRUID                          string
	ShowLabel                      bool // the label says more than the meaning
}

type image struct {
	Src, Full, Alt string
}

func (s *Server) row(w store.Workitem, n int, now time.Time) row {
	p := worklist.Clinical(inference.Priority(w.Priority))
	ds := parseDataset(w.Dataset)
	desc := w.Description
	if desc == "" {
		desc = ds.str(tagProcedureStepLabel)
	}
	if desc == "" {
		desc = "Study without description"
	}
	r := row{
		N: n, UID: w.UID, Href: ItemsPath + url.PathEscape(w.UID),
		Priority: p, PriorityClass: "pri-" + strings.ToLower(p), Override: w.Override, Reason: w.Reason,
		Modality: strings.ReplaceAll(w.Modality, `\`, "/"), Description: desc,
		Waiting: waiting(now.Sub(w.ScheduledAt)), Since: w.ScheduledAt.UTC().Format(time.RFC3339),
		SinceLocal: w.ScheduledAt.Local().Format("2006-01-02 15:04"),
		State:      w.State, PatientName: personName(ds.pn(tagPatientName)), PatientID: ds.str(tagPatientID),
	}
	for _, f := range findings(w.Findings) {
		if f.Positive {
			r.Flags = append(r.Flags, f)
		}
	}
	switch {
	case len(r.Flags) > 0:
	case len(w.Findings) > 0:
		r.AINote = "No positive AI finding"
	default:
		r.AINote = "No AI result yet"
	}
	if st, se, sop, ok := thumbInstance(w.StudyInstanceUID, w.Modality, ds.series()); ok {
		which := "first image"
		if isCT(w.Modality) {
			which = "middle slice"
		}
		r.Thumb = &image{Src: s.rendered(st, se, sop, 96), Full: s.rendered(st, se, sop, 0), Alt: "Preview of " + desc + ", " + which}
	}
	return r
}

func findings(fs []store.WorkitemFinding) []finding {
	out := make([]finding, 0, len(fs))
	for _, f := range fs {
		meaning := f.Meaning
		if meaning == "" {
			meaning = f.Label
		}
		out = append(out, finding{Model: f.Model, Version: f.Version, Label: f.Label, Meaning: meaning,
			Probability: fmt.Sprintf("%.2f", f.Probability), Threshold: fmt.Sprintf("%.2f", f.Threshold),
			Positive: f.Positive, SRUID: f.SRUID, ShowLabel: !strings.EqualFold(f.Label, meaning)})
	}
	return out
}

// rendered is an instance's WADO-RS rendered URL, fitted to a square
// viewport of size (0: as it is).
func (s *Server) rendered(study, series, sop string, size int) string {
	u := s.cfg.DICOMweb + "/studies/" + url.PathEscape(study) + "/series/" + url.PathEscape(series) +
		"/instances/" + url.PathEscape(sop) + "/rendered"
	if size > 0 {
		u += fmt.Sprintf("?viewport=%d,%d", size, size)
	}
	return u
}

// maxKeyImages bounds the key images of one series on the study view.
const maxKeyImages = 8

// keyImages are thumbnails across each series: evenly spaced instances,
// the first, the middle and the last among them.
func (s *Server) keyImages(w store.Workitem) []image {
	if w.StudyInstanceUID == "" {
		return nil
	}
	var out []image
	ss := parseDataset(w.Dataset).series()
	for si, se := range ss {
		n := len(se.instances)
		for _, i := range spread(n, maxKeyImages) {
			out = append(out, image{
				Src:  s.rendered(w.StudyInstanceUID, se.uid, se.instances[i], 160),
				Full: s.rendered(w.StudyInstanceUID, se.uid, se.instances[i], 0),
				Alt:  fmt.Sprintf("Series %d of %d, image %d of %d", si+1, len(ss), i+1, n),
			})
		}
	}
	return out
}

// spread picks up to k of n indexes, evenly spaced, the middle one among
// them when k is odd or n small.
func spread(n, k int) []int {
	if n <= k {
		out := make([]int, n)
		for i := range out {
			out[i] = i
		}
		return out
	}
	out := make([]int, 0, k)
	for j := range k {
		out = append(out, j*(n-1)/(k-1))
	}
	return out
}

func isCT(modality string) bool {
	for m := range strings.SplitSeq(modality, `\`) {
		if m == "CT" {
			return true
		}
	}
	return false
}

// thumbInstance is the instance a row shows: the first of the first
// series with instances; for CT its middle slice (in the order the
// instances arrived, which senders keep in slice order).
func thumbInstance(study, modality string, ss []series) (string, string, string, bool) {
	if study == "" {
		return "", "", "", false
	}
	for _, se := range ss {
		if len(se.instances) == 0 {
			continue
		}
		i := 0
		if isCT(modality) {
			i = len(se.instances) / 2
		}
		return study, se.uid, se.instances[i], true
	}
	return "", "", "", false
}

// waiting is a wait as people read it.
func waiting(d time.Duration) string {
	switch {
	case d < time.Minute:
		return "under 1 min"
	case d < time.Hour:
		return fmt.Sprintf("%d min", int(d/time.Minute))
	case d < 24*time.Hour:
		return fmt.Sprintf("%d h %02d min", int(d/time.Hour), int(d%time.Hour/time.Minute))
	}
	return fmt.Sprintf("%d d %d h", int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour))
}

// personName is a PN's alphabetic group as people read it: "Family,
// Given Middle".
func personName(pn string) string {
	if pn == "" {
		return ""
	}
	parts := strings.Split(pn, "^")
	family := strings.TrimSpace(parts[0])
	var rest []string
	for _, p := range parts[1:] {
		if p = strings.TrimSpace(p); p != "" {
			rest = append(rest, p)
		}
	}
	if len(rest) == 0 {
		return family
	}
	if family == "" {
		return strings.Join(rest, " ")
	}
	return family + ", " + strings.Join(rest, " ")
}

// The attributes the page reads from a workitem's data set.
const (
	tagPatientName              = 0x00100010
	tagPatientID                = 0x00100020
	tagSeriesInstanceUID        = 0x0020000E
	tagReferencedSOPSequence    = 0x00081199
	tagReferencedSOPInstanceUID = 0x00081155
	tagInputInformationSequence = 0x00404021
	tagProcedureStepLabel       = 0x00741204
)

// dataset is a DICOM JSON data set read loosely: a value the page cannot
// read is left out, never an error (the page shows what it can).
type dataset map[string]struct {
	VR    string            `json:"vr"`
	Value []json.RawMessage `json:"Value"`
}

func parseDataset(b []byte) dataset {
	var d dataset
	_ = json.Unmarshal(b, &d)
	return d
}

func key(tag uint32) string { return fmt.Sprintf("%08X", tag) }

func (d dataset) str(tag uint32) string {
	a, ok := d[key(tag)]
	if !ok || len(a.Value) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(a.Value[0], &s) == nil {
		return s
	}
	return ""
}

func (d dataset) pn(tag uint32) string {
	a, ok := d[key(tag)]
	if !ok || len(a.Value) == 0 {
		return ""
	}
	var pn struct{ Alphabetic string }
	if json.Unmarshal(a.Value[0], &pn) == nil {
		return pn.Alphabetic
	}
	var s string
	_ = json.Unmarshal(a.Value[0], &s)
	return s
}

func (d dataset) items(tag uint32) []dataset {
	a, ok := d[key(tag)]
	if !ok {
		return nil
	}
	var out []dataset
	for _, v := range a.Value {
		var it dataset
		if json.Unmarshal(v, &it) == nil {
			out = append(out, it)
		}
	}
	return out
}

type series struct {
	uid       string
	instances []string
}

// series are the Input Information Sequence's series and their
// instances, in order.
func (d dataset) series() []series {
	var out []series
	for _, it := range d.items(tagInputInformationSequence) {
		se := series{uid: it.str(tagSeriesInstanceUID)}
		if se.uid == "" {
			continue
		}
		for _, ref := range it.items(tagReferencedSOPSequence) {
			if sop := ref.str(tagReferencedSOPInstanceUID); sop != "" {
				se.instances = append(se.instances, sop)
			}
		}
		out = append(out, se)
	}
	return out
}
