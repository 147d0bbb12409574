package dicomweb

import (
	"bytes"
	"cmp"
	"compress/flate"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"slices"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"

	"github.com/radgate/radgate/imaging"
	"github.com/radgate/radgate/store"
)

// parseDICOM runs suyashkumar/dicom over one stored Part 10 stream of size
// bytes (-1: up to EOF). The library may panic on input it does not expect (MustGet* on a
// value of another type); the recover keeps that to this request.
func parseDICOM(r io.Reader, size int64, opts ...dicom.ParseOption) (ds dicom.Dataset, err error) {
	defer func() {
		if p := recover(); p != nil {
			ds, err = dicom.Dataset{}, fmt.Errorf("dicomweb: DICOM parser panicked: %v", p)
		}
	}()
	opts = append(opts, dicom.AllowUnknownSpecificCharacterSet())
	if size < 0 {
		return dicom.ParseUntilEOF(r, nil, opts...)
	}
	return dicom.Parse(r, size, nil, opts...)
}

// parseWhole parses a stored instance held in memory, keeping the raw
// bytes of native Pixel Data (PixelDataInfo.UnprocessedValueData).
func parseWhole(buf []byte, ts string) (dicom.Dataset, error) {
	if !nativeTS(ts) && !encapsulatedTS(ts) {
		return dicom.Dataset{}, fmt.Errorf("%w: transfer syntax %s", errUnsupported, ts)
	}
	return parseDICOM(bytes.NewReader(buf), int64(len(buf)), dicom.SkipProcessingPixelDataValue())
}

// encapsulatedTS reports whether ts encodes Pixel Data in fragments (PS3.5
// A.4): every syntax but the native ones and deflate.
func encapsulatedTS(ts string) bool { return !nativeTS(ts) && ts != tsDeflatedLE }

// toExplicitLE re-encodes a native Part 10 file in explicit VR little
// endian with a new File Meta Information (PS3.10 7.1). The library
// converts every value it decodes to the target byte order, OW values
// included; native Pixel Data stays raw, so big endian words are swapped
// here.
func toExplicitLE(buf []byte, ts string) ([]byte, error) {
	ds, err := parseWhole(buf, ts)
	if err != nil {
		return nil, err
	}
	if ts == tsExplicitBE {
		pixelDataToLE(&ds)
	}
	els := ds.Elements[:0:0]
	for _, e := range ds.Elements {
		if e.Tag == tag.FileMetaInformationGroupLength || e.Tag == tag.TransferSyntaxUID {
			continue // the writer computes the length; the syntax is new
		}
		els = append(els, e)
	}
	tsEl, err := dicom.NewElement(tag.TransferSyntaxUID, []string{tsExplicitLE})
	if err != nil {
		return nil, err
	}
	els = append(els, tsEl)
	sortByTag(els)
	var out bytes.Buffer
	out.Grow(len(buf) + 1024)
	if err := writeDICOM(&out, dicom.Dataset{Elements: els}); err != nil {
		return nil, fmt.Errorf("dicomweb: transcode: %w", err)
	}
	return out.Bytes(), nil
}

func writeDICOM(w io.Writer, ds dicom.Dataset) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("DICOM writer panicked: %v", p)
		}
	}()
	return dicom.Write(w, ds, dicom.SkipVRVerification())
}

// sortByTag orders a data set's top-level elements (PS3.5 7.1); the parser
// keeps the stream's order, which only the replaced file meta disturbs.
func sortByTag(els []*dicom.Element) {
	slices.SortStableFunc(els, func(a, b *dicom.Element) int {
		return cmp.Compare(a.Tag.Uint32(), b.Tag.Uint32())
	})
}

// pixelDataToLE swaps the words of raw native Pixel Data read from a big
// endian data set (PS3.5 A.3: OW with BitsAllocated > 8 is byte swapped).
func pixelDataToLE(ds *dicom.Dataset) {
	raw, ok := rawPixelData(ds)
	if !ok {
		return
	}
	switch intValue(ds, tag.BitsAllocated) {
	case 16:
		for i := 0; i+1 < len(raw); i += 2 {
			binary.LittleEndian.PutUint16(raw[i:], binary.BigEndian.Uint16(raw[i:]))
		}
	case 32:
		for i := 0; i+3 < len(raw); i += 4 {
			binary.LittleEndian.PutUint32(raw[i:], binary.BigEndian.Uint32(raw[i:]))
		}
	}
}

// rawPixelData returns the unprocessed bytes of native top-level Pixel Data.
func rawPixelData(ds *dicom.Dataset) ([]byte, bool) {
	e, err := ds.FindElementByTag(tag.PixelData)
	if err != nil || e.Value.ValueType() != dicom.PixelData {
		return nil, false
	}
	info := dicom.MustGetPixelDataInfo(e.Value)
	if !info.IntentionallyUnprocessed {
		return nil, false
	}
	return info.UnprocessedValueData, true
}

// intValue is the first value of an integer (US, UL ...) or IS attribute;
// 0 when absent or malformed.
func intValue(ds *dicom.Dataset, t tag.Tag) int {
	e, err := ds.FindElementByTag(t)
	if err != nil {
		return 0
	}
	switch e.Value.ValueType() {
	case dicom.Ints:
		if v := e.Value.GetValue().([]int); len(v) > 0 {
			return v[0]
		}
	case dicom.Strings:
		if v := e.Value.GetValue().([]string); len(v) > 0 {
			var n int
			if _, err := fmt.Sscan(v[0], &n); err == nil {
				return n
			}
		}
	}
	return 0
}

// openDataset opens a stored instance as a Part 10 stream the parser
// reads: the blob itself, or for deflated data sets (PS3.5 A.5) the
// inflated data set behind a file meta declaring explicit VR little
// endian. It returns the stream's transfer syntax and its size (-1:
// unknown, read to EOF).
func (s *Server) openDataset(ctx context.Context, in store.Instance) (io.ReadCloser, int64, string, error) {
	rc, err := s.store.OpenBlob(ctx, in.BlobKey)
	if err != nil {
		return nil, 0, "", err
	}
	if in.TransferSyntaxUID != tsDeflatedLE {
		return rc, in.Size, in.TransferSyntaxUID, nil
	}
	if _, err := io.CopyN(io.Discard, rc, in.DatasetOffset); err != nil {
		rc.Close()
		return nil, 0, "", err
	}
	tsEl, err := dicom.NewElement(tag.TransferSyntaxUID, []string{tsExplicitLE})
	if err != nil {
		rc.Close()
		return nil, 0, "", err
	}
	var meta bytes.Buffer
	if err := writeDICOM(&meta, dicom.Dataset{Elements: []*dicom.Element{tsEl}}); err != nil {
		rc.Close()
		return nil, 0, "", err
	}
	zr := flate.NewReader(rc)
	return blobReader{io.MultiReader(&meta, io.LimitReader(zr, imaging.MaxInstanceBytes)), func() error {
		zr.Close()
		return rc.Close()
	}}, -1, tsExplicitLE, nil
}

type blobReader struct {
	io.Reader
	close func() error
}

func (r blobReader) Close() error { return r.close() }

// readDataset reads what openDataset opens into memory (at most
// imaging.MaxInstanceBytes), for the resources that parse an instance
// whole: bulk data, frames, transcoding.
func (s *Server) readDataset(ctx context.Context, in store.Instance) ([]byte, string, error) {
	if in.Size > imaging.MaxInstanceBytes {
		return nil, "", fmt.Errorf("dicomweb: instance of %d bytes exceeds %d", in.Size, imaging.MaxInstanceBytes)
	}
	rc, _, ts, err := s.openDataset(ctx, in)
	if err != nil {
		return nil, "", err
	}
	defer rc.Close()
	buf := bytes.NewBuffer(make([]byte, 0, in.Size+bytes.MinRead))
	if _, err := buf.ReadFrom(io.LimitReader(rc, imaging.MaxInstanceBytes+1)); err != nil {
		return nil, "", err
	}
	if buf.Len() > imaging.MaxInstanceBytes {
		return nil, "", fmt.Errorf("dicomweb: data set exceeds %d bytes", imaging.MaxInstanceBytes)
	}
	return buf.Bytes(), ts, nil
}
