package dicomweb

import (
	"bytes"
	"errors"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"

	"github.com/radgate/radgate/dcm"
	"github.com/radgate/radgate/imaging"
	"github.com/radgate/radgate/internal/dicomjson"
	"github.com/radgate/radgate/store"
)

// Bulk data and frame resources (PS3.18 10.4.1.1.5, 10.4.1.1.6).

// maxFrameList bounds the frame numbers of one request.
const maxFrameList = imaging.MaxFrames

var (
	errNoPixelData = errors.New("dicomweb: instance has no pixel data")
	errNoSuchFrame = errors.New("dicomweb: frame number out of range")
)

// frameMedia is the media type of a frame in an encapsulated transfer
// syntax (PS3.18 Table 8.7.3-5); others travel as application/octet-stream
// with their transfer-syntax parameter.
var frameMedia = map[string]string{
	"1.2.840.10008.1.2.4.50":  "image/jpeg",
	"1.2.840.10008.1.2.4.51":  "image/jpeg",
	"1.2.840.10008.1.2.4.57":  "image/jpeg",
	"1.2.840.10008.1.2.4.70":  "image/jpeg",
	"1.2.840.10008.1.2.4.80":  "image/jls",
	"1.2.840.10008.1.2.4.81":  "image/jls",
	"1.2.840.10008.1.2.4.90":  "image/jp2",
	"1.2.840.10008.1.2.4.91":  "image/jp2",
	"1.2.840.10008.1.2.4.92":  "image/jpx",
	"1.2.840.10008.1.2.4.93":  "image/jpx",
	"1.2.840.10008.1.2.4.201": "image/jphc",
	"1.2.840.10008.1.2.4.202": "image/jphc",
	"1.2.840.10008.1.2.4.203": "image/jphc",
	"1.2.840.10008.1.2.5":     "image/dicom-rle",
}

// pixelOffers are the representations of an instance's frames, the
// server's preference first: native frames as explicit VR little endian
// octets; encapsulated ones as their compressed bit stream.
func pixelOffers(ts string) []offer {
	if !encapsulatedTS(ts) {
		return []offer{{MediaOctet, tsExplicitLE}}
	}
	if m, ok := frameMedia[ts]; ok {
		return []offer{{m, ts}, {MediaOctet, ts}}
	}
	return []offer{{MediaOctet, ts}}
}

// loadPixels reads and parses one instance whole and returns its frames:
// native frames as little endian slices of Pixel Data, encapsulated ones
// as their fragments' bytes. ts is the data set's syntax as parsed
// (explicit VR little endian for a deflated one).
func (s *Server) loadPixels(r *http.Request, in store.Instance) (ds dicom.Dataset, frames [][]byte, ts string, err error) {
	buf, ts, err := s.readDataset(r.Context(), in)
	if err != nil {
		return ds, nil, "", err
	}
	if ds, err = parseWhole(buf, ts); err != nil {
		return ds, nil, "", err
	}
	if ts == tsExplicitBE {
		pixelDataToLE(&ds)
	}
	frames, err = splitFrames(&ds)
	return ds, frames, ts, err
}

// splitFrames cuts top-level Pixel Data into NumberOfFrames frames.
func splitFrames(ds *dicom.Dataset) ([][]byte, error) {
	e, err := ds.FindElementByTag(tag.PixelData)
	if err != nil || e.Value.ValueType() != dicom.PixelData {
		return nil, errNoPixelData
	}
	n := max(1, intValue(ds, tag.NumberOfFrames))
	info := dicom.MustGetPixelDataInfo(e.Value)
	if info.IntentionallyUnprocessed {
		raw := info.UnprocessedValueData
		bits := intValue(ds, tag.Rows) * intValue(ds, tag.Columns) * max(1, intValue(ds, tag.SamplesPerPixel)) *
			intValue(ds, tag.BitsAllocated)
		if bits <= 0 || bits%8 != 0 {
			return nil, fmt.Errorf("%w: frames of %d bits are not whole bytes", errUnsupported, bits)
		}
		size := bits / 8
		if len(raw)/size < n {
			return nil, fmt.Errorf("dicomweb: pixel data holds %d bytes, %d frames need %d", len(raw), n, n*size)
		}
		out := make([][]byte, n)
		for i := range out {
			out[i] = raw[i*size : (i+1)*size : (i+1)*size]
		}
		return out, nil
	}
	var frags [][]byte
	for _, f := range info.Frames {
		frags = append(frags, f.EncapsulatedData.Data)
	}
	return groupFragments(frags, n)
}

// groupFragments assigns the fragments of encapsulated Pixel Data to n
// frames (PS3.5 A.4). The parser drops the Basic Offset Table, so: one
// fragment per frame when the counts agree; all fragments for a single
// frame; otherwise a frame starts at each fragment that opens with a JPEG
// SOI or a JPEG 2000 SOC marker.
func groupFragments(frags [][]byte, n int) ([][]byte, error) {
	switch {
	case len(frags) == n:
		return frags, nil
	case n == 1 && len(frags) > 0:
		return [][]byte{bytes.Join(frags, nil)}, nil
	}
	var out [][]byte
	for _, f := range frags {
		if len(out) == 0 || bytes.HasPrefix(f, []byte{0xFF, 0xD8}) || bytes.HasPrefix(f, []byte{0xFF, 0x4F, 0xFF, 0x51}) {
			out = append(out, nil)
		}
		out[len(out)-1] = append(out[len(out)-1], f...)
	}
	if len(out) != n {
		return nil, fmt.Errorf("%w: cannot tell the frames of %d fragments apart (%d frames)", errUnsupported, len(frags), n)
	}
	return out, nil
}

// parseFrameList parses a frame list (PS3.18 10.4.1.1.6): comma-separated
// frame numbers from 1.
func parseFrameList(s string) ([]int, error) {
	parts := strings.Split(s, ",")
	if len(parts) > maxFrameList {
		return nil, fmt.Errorf("dicomweb: more than %d frame numbers", maxFrameList)
	}
	out := make([]int, len(parts))
	for i, p := range parts {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("dicomweb: malformed frame list (comma-separated numbers from 1)")
		}
		out[i] = n
	}
	return out, nil
}

// retrieveFrames serves .../frames/{list}.
func (s *Server) retrieveFrames(w http.ResponseWriter, r *http.Request) {
	in, ok := s.lookupOne(w, r)
	if !ok {
		return
	}
	list, err := parseFrameList(r.PathValue("frames"))
	if err != nil {
		s.fail(w, r, http.StatusBadRequest, err.Error())
		return
	}
	_, frames, ts, err := s.loadPixels(r, in)
	if err != nil {
		s.failPixels(w, r, in, err)
		return
	}
	for _, n := range list {
		if n > len(frames) {
			s.fail(w, r, http.StatusNotFound, fmt.Sprintf("%v: the instance has %d frames", errNoSuchFrame, len(frames)))
			return
		}
	}
	sel := make([][]byte, len(list))
	for i, n := range list {
		sel[i] = frames[n-1]
	}
	s.writeOctetParts(w, r, pixelOffers(ts), sel)
}

// failPixels answers an error of loadPixels.
func (s *Server) failPixels(w http.ResponseWriter, r *http.Request, in store.Instance, err error) {
	switch {
	case errors.Is(err, errNoPixelData):
		s.fail(w, r, http.StatusNotFound, err.Error())
	case errors.Is(err, errUnsupported):
		s.fail(w, r, http.StatusNotAcceptable, err.Error())
	default:
		s.log.Error("dicomweb: reading pixel data failed", "sop_instance", dcm.UIDRef(in.SOPInstanceUID), "err", err)
		s.fail(w, r, http.StatusInternalServerError, "dicomweb: reading the instance failed")
	}
}

// writeOctetParts negotiates among offers and answers the values, one
// part each.
func (s *Server) writeOctetParts(w http.ResponseWriter, r *http.Request, offers []offer, values [][]byte) {
	ranges, ok := s.acceptRanges(w, r)
	if !ok {
		return
	}
	o, ok := negotiate(ranges, true, offers)
	if !ok {
		s.fail(w, r, http.StatusNotAcceptable, fmt.Sprintf("dicomweb: available as multipart/related; type=%q; transfer-syntax=%s only",
			offers[0].media, offers[0].ts))
		return
	}
	mw := multipart.NewWriter(w)
	w.Header().Set("Content-Type", `multipart/related; type="`+o.media+`"; boundary=`+mw.Boundary())
	w.WriteHeader(http.StatusOK)
	h := textproto.MIMEHeader{}
	h.Set("Content-Type", o.media+"; transfer-syntax="+o.ts)
	for _, v := range values {
		pw, err := mw.CreatePart(h)
		if err != nil {
			return
		}
		if _, err := pw.Write(v); err != nil {
			return
		}
	}
	_ = mw.Close()
}

// retrieveBulkdata serves .../bulkdata/{path}: the value a BulkDataURI of
// the metadata names. The path is a tag, or sequence tag / item index
// (from 0) / tag ... (see metadataOf). Pixel Data answers all its
// frames, as the frames resource would.
func (s *Server) retrieveBulkdata(w http.ResponseWriter, r *http.Request) {
	in, ok := s.lookupOne(w, r)
	if !ok {
		return
	}
	path := strings.Split(r.PathValue("path"), "/")
	if len(path)%2 == 0 {
		s.fail(w, r, http.StatusNotFound, "dicomweb: no such bulk data")
		return
	}
	if len(path) == 1 && strings.EqualFold(path[0], dicomjson.Key(tag.PixelData.Uint32())) {
		_, frames, ts, err := s.loadPixels(r, in)
		if err != nil {
			s.failPixels(w, r, in, err)
			return
		}
		s.writeOctetParts(w, r, pixelOffers(ts), frames)
		return
	}
	buf, ts, err := s.readDataset(r.Context(), in)
	var ds dicom.Dataset
	if err == nil {
		ds, err = parseWhole(buf, ts)
	}
	if err != nil {
		s.failPixels(w, r, in, err)
		return
	}
	v, ok := findBulk(ds.Elements, path)
	if !ok {
		s.fail(w, r, http.StatusNotFound, "dicomweb: no such bulk data")
		return
	}
	s.writeOctetParts(w, r, []offer{{MediaOctet, tsExplicitLE}}, [][]byte{v})
}

// findBulk follows a bulk data path to a binary value.
func findBulk(els []*dicom.Element, path []string) ([]byte, bool) {
	t, err := strconv.ParseUint(path[0], 16, 32)
	if err != nil || len(path[0]) != 8 {
		return nil, false
	}
	var e *dicom.Element
	for _, x := range els {
		if x.Tag.Uint32() == uint32(t) {
			e = x
			break
		}
	}
	if e == nil || e.Value == nil {
		return nil, false
	}
	if len(path) == 1 {
		b, ok := e.Value.GetValue().([]byte)
		return b, ok
	}
	items, ok := e.Value.GetValue().([]*dicom.SequenceItemValue)
	i, err := strconv.Atoi(path[1])
	if !ok || err != nil || i < 0 || i >= len(items) {
		return nil, false
	}
	sub, _ := items[i].GetValue().([]*dicom.Element)
	return findBulk(sub, path[2:])
}
