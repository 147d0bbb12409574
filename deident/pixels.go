package deident

import (
	"fmt"
	"strings"
)

// SafePixels reports whether pixel data of an instance with these
// attribute values may leave the site after de-identification: the Basic
// Profile does not touch pixels (PS3.15 E.1.1 Note 5), and this package
// implements no Clean Pixel Data Option. It returns ErrBurnedIn when
// Burned In Annotation (0028,0301) is YES, or when it is absent (or not
// NO) and the modality or SOP class routinely burns text in — ultrasound,
// secondary capture, photographs and video, scanned documents. An explicit
// NO is trusted. The gateway uses it to refuse sending such images to a
// remote inference backend.
func SafePixels(modality, sopClassUID, burnedIn string) error {
	switch strings.ToUpper(strings.TrimSpace(burnedIn)) {
	case "YES":
		return fmt.Errorf("%w: Burned In Annotation is YES", ErrBurnedIn)
	case "NO":
		return nil
	}
	m := strings.ToUpper(strings.TrimSpace(modality))
	if burnsInModality(m) {
		return fmt.Errorf("%w: modality %s without Burned In Annotation NO", ErrBurnedIn, m)
	}
	if burnsInSOPClass(strings.TrimSpace(sopClassUID)) {
		return fmt.Errorf("%w: SOP class %s without Burned In Annotation NO", ErrBurnedIn, sopClassUID)
	}
	return nil
}

// burnsInModality: modalities (PS3.3 C.7.3.1.1.1) whose images commonly
// carry the patient's name or ID in the pixels: US and IVUS screens,
// secondary capture (OT, and the non-standard SC), endoscopy, external
// camera, microscopy, ophthalmic photography and documents.
func burnsInModality(m string) bool {
	switch m {
	case "US", "IVUS", "OT", "SC", "XC", "ES", "GM", "SM", "OP", "DOC":
		return true
	}
	return false
}

// burnsInSOPClass: the storage SOP classes (PS3.4 B.5) of the same kinds,
// for instances whose Modality is missing or says something else.
func burnsInSOPClass(uid string) bool {
	switch uid {
	case "1.2.840.10008.5.1.4.1.1.6", "1.2.840.10008.5.1.4.1.1.6.1", // Ultrasound Image (retired, current)
		"1.2.840.10008.5.1.4.1.1.3", "1.2.840.10008.5.1.4.1.1.3.1", // Ultrasound Multi-frame Image
		"1.2.840.10008.5.1.4.1.1.7", "1.2.840.10008.5.1.4.1.1.7.1", "1.2.840.10008.5.1.4.1.1.7.2",
		"1.2.840.10008.5.1.4.1.1.7.3", "1.2.840.10008.5.1.4.1.1.7.4", // Secondary Capture family
		"1.2.840.10008.5.1.4.1.1.104.1": // Encapsulated PDF
		return true
	}
	// Visible Light (endoscopic, microscopic, photographic, video).
	return strings.HasPrefix(uid, "1.2.840.10008.5.1.4.1.1.77.1.")
}
