package worklist

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/radgate/radgate/inference"
	"github.com/radgate/radgate/internal/dicomjson"
	"github.com/radgate/radgate/store"
)

// UPS attributes (PS3.4 Table CC.2.5-3) and the module attributes they
// carry.
const (
	tagSpecificCharacterSet      = 0x00080005
	tagSOPClassUID               = 0x00080016
	tagSOPInstanceUID            = 0x00080018
	tagAccessionNumber           = 0x00080050
	tagModality                  = 0x00080060
	tagReferencedSOPSequence     = 0x00081199
	tagTransactionUID            = 0x00081195
	tagPatientName               = 0x00100010
	tagPatientID                 = 0x00100020
	tagPatientBirthDate          = 0x00100030
	tagPatientSex                = 0x00100040
	tagStudyInstanceUID          = 0x0020000D
	tagSeriesInstanceUID         = 0x0020000E
	tagRequestedProcedureDesc    = 0x00321060
	tagCommentsOnSPS             = 0x00400400
	tagSPSStartDateTime          = 0x00404005
	tagSPSModificationDateTime   = 0x00404010
	tagInputInformationSequence  = 0x00404021
	tagInputReadinessState       = 0x00404041
	tagReferencedRequestSequence = 0x0040A370
	tagProcedureStepState        = 0x00741000
	tagWorklistLabel             = 0x00741202
	tagSPSPriority               = 0x00741200
	tagProcedureStepLabel        = 0x00741204
	tagReferencedSOPClassUID     = 0x00081150
	tagReferencedSOPInstanceUID  = 0x00081155
	tagRetrieveAETitle           = 0x00080054
)

// UPSPushSOPClass is the SOP Class of every workitem.
const UPSPushSOPClass = "1.2.840.10008.5.1.4.34.6.1"

// WorklistLabel is (0074,1202) of the workitems radgate makes.
const WorklistLabel = "radgate reading"

// dtLayout is DT without fraction or offset, in UTC (+0000).
const dtLayout = "20060102150405-0700"

// newWorkitem is a study's workitem: SCHEDULED, the patient and request
// attributes of its instances, its series as input.
func newWorkitem(studyUID string, ins []store.Instance, pri inference.Priority, reason string) store.Workitem {
	w := store.Workitem{UID: UID(studyUID), StudyInstanceUID: studyUID, State: Scheduled,
		Priority: int(pri), BasePriority: int(pri), Reason: reason}
	if len(ins) == 0 {
		w.Dataset = []byte("{}")
		return w
	}
	first := ins[0]
	var modalities []string
	var series []string
	sched := first.ReceivedAt
	for _, in := range ins {
		if in.Modality != "" && !slices.Contains(modalities, in.Modality) {
			modalities = append(modalities, in.Modality)
		}
		if !slices.Contains(series, in.SeriesInstanceUID) {
			series = append(series, in.SeriesInstanceUID)
		}
		if !in.ReceivedAt.IsZero() && in.ReceivedAt.Before(sched) {
			sched = in.ReceivedAt
		}
	}
	w.Modality = strings.Join(modalities, `\`)
	w.Description = first.StudyDescription
	w.ScheduledAt = sched
	d := dicomjson.Dataset{}
	if first.SpecificCharacterSet != "" {
		d.Set(tagSpecificCharacterSet, "CS", strings.Split(first.SpecificCharacterSet, `\`)...)
	}
	d.Set(tagPatientName, "PN", first.PatientName)
	d.Set(tagPatientID, "LO", first.PatientID)
	d.Set(tagPatientBirthDate, "DA", first.PatientBirthDate)
	d.Set(tagPatientSex, "CS", first.PatientSex)
	d.Set(tagStudyInstanceUID, "UI", studyUID)
	d.Set(tagModality, "CS", modalities...)
	label := first.StudyDescription
	if label == "" {
		label = "Read " + w.Modality + " study"
	}
	d.Set(tagProcedureStepLabel, "LO", label)
	d.Set(tagWorklistLabel, "LO", WorklistLabel)
	d.Set(tagSPSStartDateTime, "DT", sched.UTC().Format(dtLayout))
	d.Set(tagInputReadinessState, "CS", "READY")
	req := dicomjson.Dataset{}
	req.Set(tagAccessionNumber, "SH", first.AccessionNumber)
	req.Set(tagStudyInstanceUID, "UI", studyUID)
	req.Set(tagRequestedProcedureDesc, "LO", first.StudyDescription)
	d.SetItems(tagReferencedRequestSequence, req)
	var inputs []dicomjson.Dataset
	for _, se := range series {
		it := dicomjson.Dataset{}
		it.Set(tagStudyInstanceUID, "UI", studyUID)
		it.Set(tagSeriesInstanceUID, "UI", se)
		var refs []dicomjson.Dataset
		for _, in := range ins {
			if in.SeriesInstanceUID == se {
				r := dicomjson.Dataset{}
				r.Set(tagReferencedSOPClassUID, "UI", in.SOPClassUID)
				r.Set(tagReferencedSOPInstanceUID, "UI", in.SOPInstanceUID)
				refs = append(refs, r)
			}
		}
		it.SetItems(tagReferencedSOPSequence, refs...)
		inputs = append(inputs, it)
	}
	d.SetItems(tagInputInformationSequence, inputs...)
	w.Dataset, _ = json.Marshal(d)
	return w
}

// Dataset is the workitem as UPS-RS returns it (PS3.18 F.2): its stored
// attributes with the current state, priority, modification time and a
// comment carrying the priority's reason and the AI findings. The
// Transaction UID is never returned (PS3.4 CC.2.5.1.2).
func Dataset(w store.Workitem) (dicomjson.Dataset, error) {
	d := dicomjson.Dataset{}
	if err := json.Unmarshal(w.Dataset, &d); err != nil {
		return nil, fmt.Errorf("worklist: workitem %s dataset: %w", w.UID, err)
	}
	delete(d, dicomjson.Key(tagTransactionUID))
	d.Set(tagSOPClassUID, "UI", UPSPushSOPClass)
	d.Set(tagSOPInstanceUID, "UI", w.UID)
	d.Set(tagProcedureStepState, "CS", w.State)
	d.Set(tagSPSPriority, "CS", UPSPriority(inference.Priority(w.Priority)))
	d.Set(tagSPSModificationDateTime, "DT", w.UpdatedAt.UTC().Format(dtLayout))
	if c := Comment(w); c != "" {
		d.Set(tagCommentsOnSPS, "LT", c)
	}
	return d, nil
}

// Comment is the workitem's clinical priority, why, and its AI findings,
// as one text: (0040,0400) Comments on the Scheduled Procedure Step.
func Comment(w store.Workitem) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Priority %s: %s.", Clinical(inference.Priority(w.Priority)), w.Reason)
	for _, f := range w.Findings {
		mark := "negative"
		if f.Positive {
			mark = "POSITIVE"
		}
		fmt.Fprintf(&b, " AI %s@%s: %s %.2f (threshold %.2f) %s.", f.Model, f.Version, f.Meaning, f.Probability, f.Threshold, mark)
	}
	if len(w.Findings) > 0 {
		b.WriteString(" AI findings are preliminary and need a radiologist's review.")
	}
	return b.String()
}

// value is the first value of tag in d as a string ("" when absent).
func value(d dicomjson.Dataset, tag uint32) string {
	a := d[dicomjson.Key(tag)]
	if a == nil || len(a.Value) == 0 {
		return ""
	}
	switch v := a.Value[0].(type) {
	case string:
		return v
	case map[string]any: // a PN read back from JSON
		s, _ := v["Alphabetic"].(string)
		return s
	}
	return fmt.Sprint(a.Value[0])
}

// ParseDataset reads a UPS-RS request body: one data set, or an array of
// exactly one (PS3.18 F.2).
func ParseDataset(body []byte) (dicomjson.Dataset, error) {
	body = []byte(strings.TrimSpace(string(body)))
	var d dicomjson.Dataset
	if len(body) > 0 && body[0] == '[' {
		var arr []dicomjson.Dataset
		if err := json.Unmarshal(body, &arr); err != nil {
			return nil, fmt.Errorf("%w: not DICOM JSON: %v", ErrInvalid, err)
		}
		if len(arr) != 1 {
			return nil, fmt.Errorf("%w: %d data sets, want one", ErrInvalid, len(arr))
		}
		d = arr[0]
	} else if err := json.Unmarshal(body, &d); err != nil {
		return nil, fmt.Errorf("%w: not DICOM JSON: %v", ErrInvalid, err)
	}
	for k, a := range d {
		if a == nil || a.VR == "" || len(k) != 8 {
			return nil, fmt.Errorf("%w: attribute %q has no VR", ErrInvalid, k)
		}
	}
	return d, nil
}

// fromDataset is a workitem a UPS-RS create asks for (PS3.4 CC.2.5.1.1:
// SCHEDULED, with a priority, a label and a start time; no Transaction
// UID).
func fromDataset(uid string, d dicomjson.Dataset) (store.Workitem, error) {
	d = maps.Clone(d)
	if st := value(d, tagProcedureStepState); st != Scheduled {
		return store.Workitem{}, fmt.Errorf("%w: Procedure Step State %q: a new workitem is SCHEDULED", ErrInvalid, st)
	}
	if value(d, tagTransactionUID) != "" {
		return store.Workitem{}, fmt.Errorf("%w: a new workitem has no Transaction UID", ErrInvalid)
	}
	pri := inference.Routine
	if s := value(d, tagSPSPriority); s != "" {
		p, err := ParseUPSPriority(s)
		if err != nil {
			return store.Workitem{}, err
		}
		pri = p
	}
	if value(d, tagProcedureStepLabel) == "" {
		return store.Workitem{}, fmt.Errorf("%w: no Procedure Step Label (0074,1204)", ErrInvalid)
	}
	if uid == "" {
		uid = value(d, tagSOPInstanceUID)
	}
	if uid == "" {
		return store.Workitem{}, fmt.Errorf("%w: no workitem UID (query parameter or SOP Instance UID)", ErrInvalid)
	}
	w := store.Workitem{UID: uid, StudyInstanceUID: value(d, tagStudyInstanceUID), State: Scheduled,
		Priority: int(pri), BasePriority: int(pri), Reason: "as created over UPS-RS",
		Modality: value(d, tagModality), Description: value(d, tagProcedureStepLabel)}
	if t, err := time.Parse(dtLayout, value(d, tagSPSStartDateTime)); err == nil {
		w.ScheduledAt = t
	}
	for _, t := range []uint32{tagSOPClassUID, tagSOPInstanceUID, tagProcedureStepState, tagSPSPriority} {
		delete(d, dicomjson.Key(t))
	}
	w.Dataset, _ = json.Marshal(d)
	return w, nil
}
