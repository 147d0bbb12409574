package fhir

import (
	"fmt"
	"strconv"
	"strings"
)

// Code systems and identifier systems.
const (
	sysDCM            = "http://dicom.nema.org/resources/ontology/DCM"
	sysSCT            = "http://snomed.info/sct"
	sysLOINC          = "http://loinc.org"
	sysUCUM           = "http://unitsofmeasure.org"
	sysURI            = "urn:ietf:rfc:3986"
	sysV2IdentType    = "http://terminology.hl7.org/CodeSystem/v2-0203"
	sysV2DiagService  = "http://terminology.hl7.org/CodeSystem/v2-0074"
	sysObsCategory    = "http://terminology.hl7.org/CodeSystem/observation-category"
	sysInterpretation = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
	sysConnType       = "http://terminology.hl7.org/CodeSystem/endpoint-connection-type"
	sysPayloadType    = "http://terminology.hl7.org/CodeSystem/endpoint-payload-type"

	// sysDICOMUID: the ImagingStudy identifier of FHIR R4 ImagingStudy
	// notes, a DICOM UID as an OID URN.
	sysDICOMUID = "urn:dicom:uid"
	// DefaultPatientSystem is the identifier system of the DICOM Patient ID
	// when Config.PatientSystem is empty: radgate cannot know the issuer
	// (Issuer of Patient ID is not indexed), so a site sets the system its
	// EHR uses for the MRN the modalities send.
	DefaultPatientSystem = "urn:radgate:patient-id"
	idEndpoint           = "urn:radgate:endpoint"
	idDevice             = "urn:radgate:device"
	idObservation        = "urn:radgate:observation"
	idReport             = "urn:radgate:diagnostic-report"
	tagSystem            = "urn:radgate"
)

// Disclaimer goes with every report and AI observation.
const Disclaimer = "preliminary, AI-generated, needs radiologist review"

// phantomNote is the Device note of a model trained on phantoms.
const phantomNote = "Trained on synthetic phantoms only: not for clinical use."

// obj is a FHIR JSON object.
type obj = map[string]any

// ident is a resource's business identifier: what the conditional update
// searches by.
type ident struct{ system, value string }

// query is the search for a conditional update: identifier=system|value,
// with the value's separators escaped (FHIR R4 3.1.1.4.7: \, \| \$).
func (id ident) query() string {
	esc := strings.NewReplacer(`\`, `\\`, `|`, `\|`, `,`, `\,`, `$`, `\$`)
	return "identifier=" + esc.Replace(id.system) + "|" + esc.Replace(id.value)
}

func (id ident) json() obj { return obj{"system": id.system, "value": id.value} }

func studyIdent(uid string) ident { return ident{sysDICOMUID, "urn:oid:" + uid} }

func endpointIdent(wadoBase string) ident { return ident{idEndpoint, wadoBase} }

func deviceIdent(a Algorithm) ident { return ident{idDevice, a.Name + "/" + a.Version} }

// resultKey names one result: study, model, version, revision.
func resultKey(n Notification) string {
	r := n.Report
	return n.Study.UID + "/" + r.Algorithm.Name + "/" + r.Algorithm.Version + "/" + strconv.Itoa(r.Revision)
}

func observationIdent(n Notification, label string) ident {
	return ident{idObservation, resultKey(n) + "/" + label}
}

func reportIdent(n Notification) ident { return ident{idReport, resultKey(n)} }

func coding(system, code, display string) obj {
	c := obj{"code": code}
	if system != "" {
		c["system"] = system
	}
	if display != "" {
		c["display"] = display
	}
	return c
}

func concept(c obj, text string) obj {
	cc := obj{"coding": []obj{c}}
	if text != "" {
		cc["text"] = text
	}
	return cc
}

func ref(resourceType, id string) obj { return obj{"reference": resourceType + "/" + id} }

func endpointResource(n Notification) obj {
	return obj{
		"resourceType":    "Endpoint",
		"identifier":      []obj{endpointIdent(n.Endpoint).json()},
		"status":          "active",
		"name":            "radgate DICOMweb",
		"connectionType":  coding(sysConnType, "dicom-wado-rs", "DICOM WADO-RS"),
		"payloadType":     []obj{concept(coding(sysPayloadType, "any", "Any"), "DICOM")},
		"payloadMimeType": []string{"application/dicom"},
		"address":         n.Endpoint,
	}
}

// patientResource is the Patient created from the DICOM demographics, tagged
// so the EHR can tell it from a registered one.
func patientResource(p PatientData, system string) obj {
	r := obj{
		"resourceType": "Patient",
		"meta":         obj{"tag": []obj{coding(tagSystem, "created-from-dicom", "Created by radgate from DICOM demographics")}},
		"identifier":   []obj{{"system": system, "value": p.ID}},
	}
	name := obj{}
	if p.Family != "" {
		name["family"] = p.Family
	}
	if len(p.Given) > 0 {
		name["given"] = p.Given
	}
	if p.Prefix != "" {
		name["prefix"] = []string{p.Prefix}
	}
	if p.Suffix != "" {
		name["suffix"] = []string{p.Suffix}
	}
	if len(name) > 0 {
		name["use"] = "official"
		r["name"] = []obj{name}
	}
	if p.Gender != "" {
		r["gender"] = p.Gender
	}
	if p.BirthDate != "" {
		r["birthDate"] = p.BirthDate
	}
	return r
}

// bodySites maps Body Part Examined to SNOMED CT (PS3.16 Annex L, CID
// 4031) for the parts radgate's models see; others go as text.
var bodySites = map[string][2]string{
	"HEAD":  {"69536005", "Head"},
	"BRAIN": {"12738006", "Brain"},
	"NECK":  {"45048000", "Neck"},
	"CHEST": {"43799004", "Chest"},
}

func bodySite(part string) obj {
	if c, ok := bodySites[strings.ToUpper(part)]; ok {
		return coding(sysSCT, c[0], c[1])
	}
	return obj{"display": part}
}

func imagingStudyResource(n Notification, patientID, endpointID string) obj {
	s := n.Study
	ids := []obj{studyIdent(s.UID).json()}
	if s.Accession != "" {
		ids = append(ids, obj{"type": concept(coding(sysV2IdentType, "ACSN", "Accession ID"), ""), "value": s.Accession})
	}
	var modalities []obj
	seenModality := map[string]bool{}
	var series []obj
	instances := 0
	for _, se := range s.Series {
		if se.Modality != "" && !seenModality[se.Modality] {
			seenModality[se.Modality] = true
			modalities = append(modalities, coding(sysDCM, se.Modality, ""))
		}
		var ins []obj
		for _, in := range se.Instances {
			i := obj{"uid": in.UID, "sopClass": coding(sysURI, "urn:oid:"+in.SOPClass, "")}
			if in.Number != nil {
				i["number"] = *in.Number
			}
			ins = append(ins, i)
		}
		instances += len(se.Instances)
		o := obj{"uid": se.UID, "modality": coding(sysDCM, se.Modality, ""), "numberOfInstances": len(se.Instances), "instance": ins}
		if se.Number != nil {
			o["number"] = *se.Number
		}
		if se.Description != "" {
			o["description"] = se.Description
		}
		if se.BodyPart != "" {
			o["bodySite"] = bodySite(se.BodyPart)
		}
		series = append(series, o)
	}
	r := obj{
		"resourceType":      "ImagingStudy",
		"identifier":        ids,
		"status":            "available",
		"subject":           ref("Patient", patientID),
		"endpoint":          []obj{ref("Endpoint", endpointID)},
		"numberOfSeries":    len(s.Series),
		"numberOfInstances": instances,
		"series":            series,
	}
	if len(modalities) > 0 {
		r["modality"] = modalities
	}
	if s.Started != "" {
		r["started"] = s.Started
	}
	if s.Description != "" {
		r["description"] = s.Description
	}
	return r
}

func deviceResource(a Algorithm) obj {
	versions := []obj{{"value": a.Version}}
	if a.SHA256 != "" {
		versions = append(versions, obj{"type": obj{"text": "SHA-256 of the model file"}, "value": a.SHA256})
	}
	r := obj{
		"resourceType": "Device",
		"identifier":   []obj{deviceIdent(a).json()},
		"status":       "active",
		"deviceName":   []obj{{"name": a.Name, "type": "model-name"}},
		"type":         obj{"text": "AI image analysis software"},
		"version":      versions,
	}
	if a.Manufacturer != "" {
		r["manufacturer"] = a.Manufacturer
	}
	if a.TrainedOnPhantoms {
		r["note"] = []obj{{"text": phantomNote}}
	}
	return r
}

// findingCode is the finding's concept: SNOMED CT, LOINC or DICOM by its
// coding scheme designator (PS3.16 8.1), else text alone.
func findingCode(f FindingData) obj {
	text := f.Meaning
	if text == "" {
		text = f.Label
	}
	system := map[string]string{"SCT": sysSCT, "SRT": sysSCT, "LN": sysLOINC, "DCM": sysDCM}[f.Scheme]
	if system == "" || f.Code == "" {
		return obj{"text": text}
	}
	return concept(coding(system, f.Code, f.Meaning), text)
}

// observationResource: the finding as code, present/absent as the value
// (SNOMED CT 52101004 Present, 2667000 Absent) with POS/NEG
// interpretation, and the model's probability and threshold as unitless
// UCUM components.
func observationResource(n Notification, f FindingData, patientID, deviceID, studyID string) obj {
	value := concept(coding(sysSCT, "2667000", "Absent"), "absent")
	interp := coding(sysInterpretation, "NEG", "Negative")
	if f.Positive {
		value = concept(coding(sysSCT, "52101004", "Present"), "present")
		interp = coding(sysInterpretation, "POS", "Positive")
	}
	unitless := func(v float64) obj {
		return obj{"value": v, "unit": "1", "system": sysUCUM, "code": "1"}
	}
	return obj{
		"resourceType":         "Observation",
		"identifier":           []obj{observationIdent(n, f.Label).json()},
		"status":               "preliminary",
		"category":             []obj{concept(coding(sysObsCategory, "imaging", "Imaging"), "")},
		"code":                 findingCode(f),
		"subject":              ref("Patient", patientID),
		"issued":               n.Report.Issued,
		"valueCodeableConcept": value,
		"interpretation":       []obj{concept(interp, "")},
		"device":               ref("Device", deviceID),
		"derivedFrom":          []obj{ref("ImagingStudy", studyID)},
		"note":                 []obj{{"text": Disclaimer}},
		"component": []obj{
			{"code": obj{"text": "AI model probability"}, "valueQuantity": unitless(f.Probability)},
			{"code": obj{"text": "AI model decision threshold"}, "valueQuantity": unitless(f.Threshold)},
		},
	}
}

// reportResource: LOINC 18748-4 Diagnostic imaging study, named after the
// model in text; R4 DiagnosticReport.performer cannot be a Device, so the
// algorithm is only each Observation's device.
func reportResource(n Notification, patientID, studyID string, observationIDs []string) obj {
	a := n.Report.Algorithm
	results := make([]obj, len(observationIDs))
	for i, id := range observationIDs {
		results[i] = ref("Observation", id)
	}
	r := obj{
		"resourceType": "DiagnosticReport",
		"identifier":   []obj{reportIdent(n).json()},
		"status":       "preliminary",
		"category":     []obj{concept(coding(sysV2DiagService, "RAD", "Radiology"), "")},
		"code":         concept(coding(sysLOINC, "18748-4", "Diagnostic imaging study"), "AI analysis: "+a.Name+" "+a.Version),
		"subject":      ref("Patient", patientID),
		"issued":       n.Report.Issued,
		"imagingStudy": []obj{ref("ImagingStudy", studyID)},
		"result":       results,
		"conclusion":   conclusion(n.Report),
	}
	if n.Study.Started != "" {
		r["effectiveDateTime"] = n.Study.Started
	}
	var codes []obj
	for _, f := range n.Report.Findings {
		if c := findingCode(f); f.Positive && c["coding"] != nil {
			codes = append(codes, c)
		}
	}
	if len(codes) > 0 {
		r["conclusionCode"] = codes
	}
	return r
}

// conclusion lists the positive findings with their probabilities, then
// the disclaimer.
func conclusion(r *ReportData) string {
	var pos []string
	for _, f := range r.Findings {
		if f.Positive {
			name := f.Meaning
			if name == "" {
				name = f.Label
			}
			pos = append(pos, fmt.Sprintf("%s (probability %.2f, threshold %.2f)", name, f.Probability, f.Threshold))
		}
	}
	s := "No finding above the model's threshold"
	if len(pos) > 0 {
		s = "Positive: " + strings.Join(pos, "; ")
	}
	s += " — " + Disclaimer + "."
	if r.Algorithm.TrainedOnPhantoms {
		s += " " + phantomNote
	}
	return s
}
