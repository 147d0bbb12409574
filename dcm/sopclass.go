package dcm

import "strings"

// storageRoot is the UID root under which PS3.6 registers the composite
// Storage SOP classes of PS3.4 Annex B.
const storageRoot = "1.2.840.10008.5.1.4.1.1."

// extraUIDs names SOP classes registered after the pydicom release that
// generated uidTable, with their storage flag. Read-only.
var extraUIDs = map[string]uidInfo{
	"1.2.840.10008.5.1.4.1.1.6.3":     {"Photoacoustic Image Storage", kindSOPClass, true},
	"1.2.840.10008.5.1.4.1.1.9.100.1": {"Waveform Presentation State Storage", kindSOPClass, true},
	"1.2.840.10008.5.1.4.1.1.9.100.2": {"Waveform Acquisition Presentation State Storage", kindSOPClass, true},
	"1.2.840.10008.5.1.4.1.1.11.12":   {"Variable Modality LUT Softcopy Presentation State Storage", kindSOPClass, true},
	"1.2.840.10008.5.1.4.1.1.66.7":    {"Label Map Segmentation Storage", kindSOPClass, true},
	"1.2.840.10008.5.1.4.1.1.66.8":    {"Height Map Segmentation Storage", kindSOPClass, true},
	"1.2.840.10008.5.1.4.1.1.77.1.8":  {"Confocal Microscopy Image Storage", kindSOPClass, true},
	"1.2.840.10008.5.1.4.1.1.77.1.9":  {"Confocal Microscopy Tiled Pyramidal Image Storage", kindSOPClass, true},
	"1.2.840.10008.5.1.4.1.1.88.77":   {"Waveform Annotation SR Storage", kindSOPClass, true},
	"1.2.840.10008.5.1.4.1.1.201.1":   {"Inventory Storage", kindSOPClass, false}, // non-patient (PS3.4 Annex GG)
	"1.2.840.10008.5.1.4.1.1.201.2":   {"Inventory - FIND", kindSOPClass, false},
	"1.2.840.10008.5.1.4.1.1.201.3":   {"Inventory - MOVE", kindSOPClass, false},
	"1.2.840.10008.5.1.4.1.1.201.4":   {"Inventory - GET", kindSOPClass, false},
	"1.2.840.10008.5.1.4.1.1.201.5":   {"Inventory Creation", kindSOPClass, false},
	"1.2.840.10008.5.1.4.1.1.201.6":   {"Repository Query", kindSOPClass, false},
	"1.2.840.10008.5.1.4.1.1.201.1.1": {"Storage Management SOP Instance", kindSOPClass, false},
}

// IsStorageSOPClass reports whether uid names a Storage SOP class (PS3.4
// Annex B, PS3.6 Table A-1), i.e. a composite instance radgate may receive
// by C-STORE or STOW-RS and index under a patient and study.
//
// The rule: a UID registered in PS3.6 is storage when PS3.4 Annex B lists it
// (this includes the RT delivery instruction classes under
// 1.2.840.10008.5.1.4.34); the Non-Patient Object Storage classes of Annex
// GG (hanging protocol, color palette, implant templates, defined procedure
// protocols, protocol approval, inventory), DICOMDIR, storage commitment,
// query/retrieve, worklist and print classes are not. A UID that PS3.6 did
// not register when the table was generated is storage exactly when it lies
// under the storage root 1.2.840.10008.5.1.4.1.1., where new Annex B classes
// are registered.
func IsStorageSOPClass(uid string) bool {
	if info, ok := uidTable[uid]; ok {
		return info.storage
	}
	if info, ok := extraUIDs[uid]; ok {
		return info.storage
	}
	return strings.HasPrefix(uid, storageRoot) && ValidUID(uid)
}
