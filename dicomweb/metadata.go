package dicomweb

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"

	"github.com/radgate/radgate/dcm"
	"github.com/radgate/radgate/internal/dicomjson"
	"github.com/radgate/radgate/store"
)

// maxInlineBinary is the largest binary value (OB, OW, UN ...) a metadata
// response carries inline (PS3.18 F.2.7); larger ones, and Pixel Data
// always, become a BulkDataURI (F.2.6).
const maxInlineBinary = 1024

// retrieveMetadata serves the metadata resources (PS3.18 10.4.1.1.4 and
// Annex F): a JSON array with one DICOM JSON data set per instance,
// written instance by instance.
func (s *Server) retrieveMetadata(w http.ResponseWriter, r *http.Request) {
	ins, ok := s.lookup(w, r)
	if !ok {
		return
	}
	ranges, ok := s.acceptRanges(w, r)
	if !ok {
		return
	}
	if _, ok := negotiate(ranges, false, []offer{{MediaDICOMJSON, ""}, {"application/json", ""}}); !ok {
		s.fail(w, r, http.StatusNotAcceptable, "dicomweb: metadata is available as "+MediaDICOMJSON+" only")
		return
	}
	base := baseURL(r)
	for i, in := range ins {
		ds, err := s.instanceMetadata(r, in, base)
		if err != nil {
			if i == 0 {
				s.fail(w, r, http.StatusInternalServerError, "dicomweb: reading an instance's metadata failed")
				return
			}
			s.log.Error("dicomweb: metadata aborted", "sop_instance", dcm.UIDRef(in.SOPInstanceUID), "err", err)
			return // the array stays open: the client sees invalid JSON, not a short list
		}
		b, err := json.Marshal(ds)
		if err != nil {
			s.log.Error("dicomweb: metadata encoding failed", "sop_instance", dcm.UIDRef(in.SOPInstanceUID), "err", err)
			return
		}
		sep := ","
		if i == 0 {
			w.Header().Set("Content-Type", MediaDICOMJSON)
			w.WriteHeader(http.StatusOK)
			sep = "["
		}
		if _, err := fmt.Fprintf(w, "%s%s", sep, b); err != nil {
			return
		}
	}
	_, _ = w.Write([]byte("]\n"))
}

// instanceMetadata parses one stored instance without its Pixel Data and
// converts it to the JSON model.
func (s *Server) instanceMetadata(r *http.Request, in store.Instance, base string) (dicomjson.Dataset, error) {
	rc, size, _, err := s.openDataset(r.Context(), in)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	br := bufio.NewReaderSize(rc, 64<<10)
	ds, err := parseDICOM(br, size, dicom.SkipPixelData())
	if err != nil {
		return nil, err
	}
	uri := base + "/studies/" + in.StudyInstanceUID + "/series/" + in.SeriesInstanceUID +
		"/instances/" + in.SOPInstanceUID + "/bulkdata/"
	return metadataOf(ds.Elements, uri, ""), nil
}

// metadataOf converts elements to the DICOM JSON model (PS3.18 F.2).
// The File Meta Information and group lengths are left out. bulk is the
// instance's bulk data URI prefix, path the tag path of the enclosing
// item ("" at the top level; see bulkPath).
func metadataOf(els []*dicom.Element, bulk, path string) dicomjson.Dataset {
	out := dicomjson.Dataset{}
	for _, e := range els {
		if e.Tag.Group == tag.MetadataGroup || e.Tag.Element == 0 {
			continue
		}
		p := path + dicomjson.Key(e.Tag.Uint32())
		if a := jsonAttribute(e, bulk, p); a != nil {
			out[dicomjson.Key(e.Tag.Uint32())] = a
		}
	}
	return out
}

// jsonAttribute converts one element (PS3.18 Table F.2.3-1); nil skips it.
func jsonAttribute(e *dicom.Element, bulk, path string) *dicomjson.Attribute {
	vr := jsonVR(e)
	a := &dicomjson.Attribute{VR: vr}
	if e.Value == nil {
		return a
	}
	switch v := e.Value.GetValue().(type) {
	case []string:
		if len(v) == 1 && v[0] == "" {
			return a // F.2.5: an empty value has no Value
		}
		switch vr {
		case "LT", "ST", "UT", "UR":
			// Single-valued VRs whose text may hold a backslash (PS3.5
			// 6.2): the parser split them anyway.
			v = []string{strings.Join(v, `\`)}
		}
		for _, s := range v {
			a.Value = append(a.Value, stringValue(vr, s))
		}
	case []int:
		if vr == "AT" {
			for i := 0; i+1 < len(v); i += 2 {
				a.Value = append(a.Value, fmt.Sprintf("%04X%04X", v[i], v[i+1]))
			}
			break
		}
		for _, n := range v {
			a.Value = append(a.Value, n)
		}
	case []float64:
		for _, f := range v {
			if math.IsNaN(f) || math.IsInf(f, 0) {
				a.Value = append(a.Value, nil) // JSON has no NaN or infinity
				continue
			}
			a.Value = append(a.Value, f)
		}
	case []byte:
		if len(v) > maxInlineBinary {
			a.BulkDataURI = bulk + path
		} else if len(v) > 0 {
			a.InlineBinary = base64.StdEncoding.EncodeToString(v)
		}
	case []*dicom.SequenceItemValue:
		a.VR = "SQ"
		for i, it := range v {
			items, _ := it.GetValue().([]*dicom.Element)
			a.Value = append(a.Value, metadataOf(items, bulk, path+"/"+strconv.Itoa(i)+"/"))
		}
	case dicom.PixelDataInfo:
		a.BulkDataURI = bulk + path
	default:
		return nil
	}
	return a
}

// stringValue is one value of a string VR: PN as a dicomjson.PersonName, IS and DS
// as numbers (when they parse), an empty value as null (F.2.5).
func stringValue(vr, s string) any {
	if s == "" {
		return nil
	}
	switch vr {
	case "IS":
		if n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64); err == nil {
			return n
		}
	case "DS":
		if f, err := strconv.ParseFloat(strings.TrimSpace(s), 64); err == nil && !math.IsInf(f, 0) && !math.IsNaN(f) {
			return f
		}
		return s
	}
	return dicomjson.Value(vr, s)
}

// jsonVR is the element's VR as JSON wants it: two letters. Implicit VR
// data sets get the dictionary's VR, which may read "US or SS" or "OB or
// OW"; the first is as good as any for the value the parser decoded.
func jsonVR(e *dicom.Element) string {
	vr := e.RawValueRepresentation
	if e.Tag == tag.PixelData {
		if vr != "OB" {
			return "OW"
		}
		return vr
	}
	if len(vr) > 2 {
		vr = vr[:2]
	}
	if len(vr) != 2 {
		return "UN"
	}
	return vr
}
