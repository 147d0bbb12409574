// Package dicomjson is the DICOM JSON model (PS3.18 F.2) as radgate writes
// it: DICOMweb responses, UPS workitems.
package dicomjson

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Dataset is one data set in the DICOM JSON model (PS3.18 F.2): attributes
// keyed by their tag as eight upper-case hex digits, which encoding/json
// writes in ascending tag order (it sorts map keys).
type Dataset map[string]*Attribute

// Attribute is one attribute (PS3.18 F.2.2): its VR and either Value (a
// list, possibly empty), a BulkDataURI or InlineBinary.
type Attribute struct {
	VR           string `json:"vr"`
	Value        []any  `json:"Value,omitempty"`
	BulkDataURI  string `json:"BulkDataURI,omitempty"`
	InlineBinary string `json:"InlineBinary,omitempty"`
}

// PersonName is a PN value (PS3.18 F.2.2): its component groups.
type PersonName struct {
	Alphabetic  string `json:"Alphabetic,omitempty"`
	Ideographic string `json:"Ideographic,omitempty"`
	Phonetic    string `json:"Phonetic,omitempty"`
}

// Key is a tag as a Dataset key.
func Key(tag uint32) string { return fmt.Sprintf("%08X", tag) }

// Set sets an attribute with string values, as the VR wants them: a PN
// becomes PersonName objects (split at "=" into its groups), IS and DS
// numbers (left as strings when they do not parse, which a reader can
// still use), everything else strings. No values: an empty attribute
// (PS3.18 F.2.5: Value absent).
func (d Dataset) Set(tag uint32, vr string, values ...string) {
	a := &Attribute{VR: vr}
	for _, v := range values {
		a.Value = append(a.Value, Value(vr, v))
	}
	d[Key(tag)] = a
}

// SetItems sets a sequence attribute (SQ) of the items.
func (d Dataset) SetItems(tag uint32, items ...Dataset) {
	a := &Attribute{VR: "SQ"}
	for _, it := range items {
		a.Value = append(a.Value, it)
	}
	d[Key(tag)] = a
}

// Value is one value of a string VR as DICOM JSON holds it: a PN as a
// PersonName, numbers as numbers, the rest as strings.
func Value(vr, v string) any {
	switch vr {
	case "PN":
		g := strings.SplitN(v, "=", 3)
		pn := PersonName{Alphabetic: g[0]}
		if len(g) > 1 {
			pn.Ideographic = g[1]
		}
		if len(g) > 2 {
			pn.Phonetic = g[2]
		}
		return pn
	case "IS", "DS", "US", "SS", "UL", "SL", "FL", "FD", "UV", "SV":
		// Numbers (PS3.18 F.2.3). The integers are exact: an UV beyond
		// 2^53 keeps its digits.
		v = strings.TrimSpace(v)
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			return json.Number(strconv.FormatInt(n, 10))
		}
		if n, err := strconv.ParseUint(v, 10, 64); err == nil {
			return json.Number(strconv.FormatUint(n, 10))
		}
		if f, err := strconv.ParseFloat(v, 64); err == nil && !math.IsInf(f, 0) && !math.IsNaN(f) {
			return f
		}
	}
	return v
}
