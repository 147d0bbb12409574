package sr

import (
	"strconv"

	"github.com/radgate/radgate/internal/dsbuild"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// The coded concepts the documents use (PS3.16 Annex D for DCM; SNOMED CT
// for SCT; UCUM and RFC 5646 as PS3.16 8 lists them).
var (
	// TID 1500 row 1, CID 7021 "Measurement Report Document Title".
	codeImagingMeasurementReport = Code{"DCM", "126000", "Imaging Measurement Report"}
	// TID 1204 row 1: the language, CID 5000 "Language".
	codeLanguage  = Code{"DCM", "121049", "Language of Content Item and Descendants"}
	codeEnglishUS = Code{"RFC5646", "en-US", "English (United States)"}
	// TID 1002 row 1 with CID 270 "Observer Type"; TID 1004 rows 1-5.
	codeObserverType         = Code{"DCM", "121005", "Observer Type"}
	codeDevice               = Code{"DCM", "121007", "Device"}
	codeDeviceObserverUID    = Code{"DCM", "121012", "Device Observer UID"}
	codeDeviceObserverName   = Code{"DCM", "121013", "Device Observer Name"}
	codeDeviceManufacturer   = Code{"DCM", "121014", "Device Observer Manufacturer"}
	codeDeviceModelName      = Code{"DCM", "121015", "Device Observer Model Name"}
	codeDeviceSerialNumber   = Code{"DCM", "121016", "Device Observer Serial Number"}
	codeProcedureReported    = Code{"DCM", "121058", "Procedure reported"} // TID 1500 row 4
	codeImageLibrary         = Code{"DCM", "111028", "Image Library"}      // TID 1600 row 1
	codeImageLibraryGroup    = Code{"DCM", "126200", "Image Library Group"}
	codeImagingMeasurements  = Code{"DCM", "126010", "Imaging Measurements"} // TID 1500 row 6
	codeMeasurementGroup     = Code{"DCM", "125007", "Measurement Group"}    // TID 1501 row 1
	codeTrackingID           = Code{"DCM", "112039", "Tracking Identifier"}  // TID 4108
	codeTrackingUID          = Code{"DCM", "112040", "Tracking Unique Identifier"}
	codeFinding              = Code{"DCM", "121071", "Finding"}              // TID 1501
	codeAlgorithmName        = Code{"DCM", "111001", "Algorithm Name"}       // TID 4019 row 1
	codeAlgorithmVersion     = Code{"DCM", "111003", "Algorithm Version"}    // TID 4019 row 2
	codeAlgorithmParameters  = Code{"DCM", "111002", "Algorithm Parameters"} // TID 4019 row 3
	codeSource               = Code{"SCT", "260753009", "Source"}            // TID 1501: the images of the group
	codeComment              = Code{"DCM", "121106", "Comment"}
	codeOfInterest           = Code{"DCM", "113000", "Of Interest"}            // CID 7010 "Key Object Selection Document Title"
	codeKeyObjectDescription = Code{"DCM", "113012", "Key Object Description"} // TID 2010 row 4
	// codeCertainty names the model's probability: "the likelihood
	// that the finding detected is in fact the type of finding identified"
	// (PS3.16 Annex D, DCM 111012; CID 6048). The CAD templates give it in
	// percent (TID 4104 row 12); here it is the model's own 0-1 output,
	// so its unit is UCUM "1".
	codeCertainty = Code{"DCM", "111012", "Certainty of Finding"}
	codeNoUnits   = Code{"UCUM", "1", "no units"}
	// CID 240 "Present-Absent": the finding's qualitative evaluation.
	codePresent = Code{"SCT", "52101004", "Present"}
	codeAbsent  = Code{"SCT", "2667000", "Absent"}
)

// Template identification (PS3.3 Table C.18.8-1 Container Macro, Content
// Template Sequence): the templates live in DCMR, the DICOM Content
// Mapping Resource.
const (
	mappingDCMR    = "DCMR"
	uidDCMR        = "1.2.840.10008.8.1.1"
	tidMeasurement = "1500"
	tidKeyObject   = "2010"
)

// Relationship types (PS3.3 C.17.3.2.4).
const (
	relContains   = "CONTAINS"
	relObsContext = "HAS OBS CONTEXT"
	relConceptMod = "HAS CONCEPT MOD"
)

func (c Code) item() *dsbuild.Builder { return dsbuild.CodeItem(c.Value, c.Scheme, c.Meaning) }

// item starts a content item (PS3.3 Table C.17-6 Document Relationship
// Macro, Table C.17-5 Document Content Macro): its relationship with its
// parent, its value type and concept name; IMAGE items may go unnamed.
func item(rel, valueType string, name *Code) *dsbuild.Builder {
	it := &dsbuild.Builder{}
	it.Str(tag.RelationshipType, rel)
	it.Str(tag.ValueType, valueType)
	if name != nil {
		it.Seq(tag.ConceptNameCodeSequence, name.item())
	}
	return it
}

func textItem(rel string, name Code, v string) *dsbuild.Builder {
	return stringItem(rel, "TEXT", name, tag.TextValue, v)
}

func uidItem(rel string, name Code, uid string) *dsbuild.Builder {
	return stringItem(rel, "UIDREF", name, tag.UID, uid)
}

// stringItem is an item whose value is the one string element t.
func stringItem(rel, valueType string, name Code, t tag.Tag, v string) *dsbuild.Builder {
	it := item(rel, valueType, &name)
	it.Str(t, v)
	return it
}

func codeItem(rel string, name, v Code) *dsbuild.Builder {
	it := item(rel, "CODE", &name)
	it.Seq(tag.ConceptCodeSequence, v.item())
	return it
}

// numItem is a NUM item (PS3.3 Table C.18.1-1 Numeric Measurement Macro):
// the Decimal String rounds to 10 significant digits, Floating Point Value
// keeps the exact value.
func numItem(rel string, name Code, v float64, unit Code) *dsbuild.Builder {
	it := item(rel, "NUM", &name)
	mv := &dsbuild.Builder{}
	mv.Seq(tag.MeasurementUnitsCodeSequence, unit.item())
	mv.Str(tag.NumericValue, strconv.FormatFloat(v, 'g', 10, 64))
	mv.Floats(tag.FloatingPointValue, v)
	it.Seq(tag.MeasuredValueSequence, mv)
	return it
}

// imageItem is an IMAGE item (PS3.3 Table C.18.4-1 Image Reference Macro).
func imageItem(rel string, name *Code, ref ImageRef) *dsbuild.Builder {
	it := item(rel, "IMAGE", name)
	it.Seq(tag.ReferencedSOPSequence, ref.sopItem())
	return it
}

// containerItem is a CONTAINER item whose children are separate
// statements (PS3.3 C.18.8: Continuity of Content SEPARATE).
func containerItem(rel string, name Code, children []*dsbuild.Builder) *dsbuild.Builder {
	it := item(rel, "CONTAINER", &name)
	it.Str(tag.ContinuityOfContent, "SEPARATE")
	it.Seq(tag.ContentSequence, children...)
	return it
}

// root adds the SR Document Content Module (PS3.3 C.17.3): the root
// CONTAINER, its title, the template it follows and its content.
func root(b *dsbuild.Builder, title Code, template string, children []*dsbuild.Builder) {
	b.Str(tag.ValueType, "CONTAINER")
	b.Seq(tag.ConceptNameCodeSequence, title.item())
	b.Str(tag.ContinuityOfContent, "SEPARATE")
	tpl := &dsbuild.Builder{}
	tpl.Str(tag.MappingResource, mappingDCMR)
	tpl.Str(tag.MappingResourceUID, uidDCMR)
	tpl.Str(tag.TemplateIdentifier, template)
	b.Seq(tag.ContentTemplateSequence, tpl)
	b.Seq(tag.ContentSequence, children...)
}

// sopItem is a Referenced SOP Sequence item (PS3.3 Table 10-11 SOP
// Instance Reference Macro), with the frame when the reference is to one.
func (r ImageRef) sopItem() *dsbuild.Builder {
	it := &dsbuild.Builder{}
	it.Str(tag.ReferencedSOPClassUID, r.SOPClassUID)
	it.Str(tag.ReferencedSOPInstanceUID, r.SOPInstanceUID)
	if r.Frame > 0 {
		it.Str(tag.ReferencedFrameNumber, strconv.Itoa(r.Frame))
	}
	return it
}

// series is the instances of one series a document references.
type series struct {
	uid  string
	refs []ImageRef
}

// bySeries groups refs by series in the order each series first appears,
// each instance once (a second reference to an instance, to another frame
// say, adds nothing at instance level).
func bySeries(refs []ImageRef) []series {
	var out []series
	at := map[string]int{}
	seen := map[string]bool{}
	for _, r := range refs {
		if seen[r.SOPInstanceUID] {
			continue
		}
		seen[r.SOPInstanceUID] = true
		i, ok := at[r.SeriesInstanceUID]
		if !ok {
			i = len(out)
			at[r.SeriesInstanceUID] = i
			out = append(out, series{uid: r.SeriesInstanceUID})
		}
		ref := r
		ref.Frame = 0
		out[i].refs = append(out[i].refs, ref)
	}
	return out
}

// studyRefs is an item of the Hierarchical SOP Instance Reference Macro
// (PS3.3 Table C.17-3): the study, its series, their instances.
func studyRefs(study string, groups []series) *dsbuild.Builder {
	it := &dsbuild.Builder{}
	it.Str(tag.StudyInstanceUID, study)
	items := make([]*dsbuild.Builder, len(groups))
	for i, g := range groups {
		s := &dsbuild.Builder{}
		s.Str(tag.SeriesInstanceUID, g.uid)
		sops := make([]*dsbuild.Builder, len(g.refs))
		for j, r := range g.refs {
			sops[j] = r.sopItem()
		}
		s.Seq(tag.ReferencedSOPSequence, sops...)
		items[i] = s
	}
	it.Seq(tag.ReferencedSeriesSequence, items...)
	return it
}
