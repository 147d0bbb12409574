package dicomweb

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/radgate/radgate/dcm"
	"github.com/radgate/radgate/imaging"
	"github.com/radgate/radgate/store"
)

// Rendered resources (PS3.18 10.4.1.1.8, 8.3.5.1): one frame as a
// consumer image, windowed with the imaging package's VOI LUT and resized
// with its antialiased filter, so a thumbnail shows what a model sees.

// Rendered media types.
const (
	MediaJPEG = "image/jpeg"
	MediaPNG  = "image/png"
)

// defaultJPEGQuality is the quality when the request names none
// (PS3.18 8.3.5.1.4 leaves it to the server).
const defaultJPEGQuality = 90

// renderParams are the query parameters of a rendered request.
type renderParams struct {
	window   *imaging.Window // nil: the instance's own, else the frame's range
	vw, vh   int             // viewport; 0: the image's size
	quality  int
	frameIdx int // from 0
}

// parseRenderParams reads window, viewport and quality (PS3.18 8.3.5.1).
func parseRenderParams(r *http.Request) (renderParams, error) {
	p := renderParams{quality: defaultJPEGQuality}
	q := r.URL.Query()
	if v := q.Get("window"); v != "" {
		f := strings.Split(v, ",")
		if len(f) < 2 || len(f) > 3 {
			return p, errors.New("dicomweb: window is center,width,function")
		}
		c, err1 := strconv.ParseFloat(f[0], 64)
		wd, err2 := strconv.ParseFloat(f[1], 64)
		if err1 != nil || err2 != nil || wd < 1 || math.IsInf(c, 0) || math.IsNaN(c) || math.IsInf(wd, 0) {
			return p, errors.New("dicomweb: window center and width must be numbers, width at least 1")
		}
		if len(f) == 3 && !strings.EqualFold(f[2], "linear") {
			return p, errors.New("dicomweb: only the linear window function is supported")
		}
		p.window = &imaging.Window{Center: c, Width: wd}
	}
	if v := q.Get("viewport"); v != "" {
		f := strings.Split(v, ",")
		if len(f) != 2 {
			return p, errors.New("dicomweb: viewport is width,height")
		}
		var err1, err2 error
		p.vw, err1 = strconv.Atoi(f[0])
		p.vh, err2 = strconv.Atoi(f[1])
		if err1 != nil || err2 != nil || p.vw < 1 || p.vh < 1 || p.vw > imaging.MaxOutputSize || p.vh > imaging.MaxOutputSize {
			return p, fmt.Errorf("dicomweb: viewport width and height must be 1..%d", imaging.MaxOutputSize)
		}
	}
	if v := q.Get("quality"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			return p, errors.New("dicomweb: quality must be 1..100")
		}
		p.quality = n
	}
	if v := r.PathValue("frames"); v != "" {
		list, err := parseFrameList(v)
		if err != nil || len(list) != 1 {
			return p, errors.New("dicomweb: a rendered frame resource names one frame number")
		}
		p.frameIdx = list[0] - 1
	}
	return p, nil
}

// outputSize fits rows×cols into the viewport, keeping the aspect ratio
// and never enlarging.
func outputSize(rows, cols, vw, vh int) (h, w int) {
	if vw == 0 {
		return rows, cols
	}
	s := math.Min(1, math.Min(float64(vw)/float64(cols), float64(vh)/float64(rows)))
	return max(1, int(math.Round(float64(rows)*s))), max(1, int(math.Round(float64(cols)*s)))
}

// retrieveRendered serves .../rendered and .../frames/{n}/rendered.
func (s *Server) retrieveRendered(w http.ResponseWriter, r *http.Request) {
	in, ok := s.lookupOne(w, r)
	if !ok {
		return
	}
	p, err := parseRenderParams(r)
	if err != nil {
		s.fail(w, r, http.StatusBadRequest, err.Error())
		return
	}
	ranges, ok := s.acceptRanges(w, r)
	if !ok {
		return
	}
	o, ok := negotiate(ranges, false, []offer{{MediaJPEG, ""}, {MediaPNG, ""}})
	if !ok {
		s.fail(w, r, http.StatusNotAcceptable, "dicomweb: rendered as "+MediaJPEG+" or "+MediaPNG+" only")
		return
	}
	buf, _, err := s.readDataset(r.Context(), in)
	if err != nil {
		s.failPixels(w, r, in, err)
		return
	}
	out, err := render(buf, p, o.media)
	if errors.Is(err, errNoSuchFrame) {
		s.fail(w, r, http.StatusNotFound, err.Error())
		return
	}
	if err != nil {
		s.failRender(w, r, in, err)
		return
	}
	w.Header().Set("Content-Type", o.media)
	w.Header().Set("Content-Length", strconv.Itoa(out.Len()))
	_, _ = w.Write(out.Bytes())
}

// render decodes a Part 10 file and encodes one frame as media.
func render(buf []byte, p renderParams, media string) (*bytes.Buffer, error) {
	im, err := imaging.Load(bytes.NewReader(buf))
	if err != nil {
		return nil, err
	}
	if p.frameIdx >= im.Frames {
		return nil, fmt.Errorf("%w: the instance has %d frames", errNoSuchFrame, im.Frames)
	}
	oh, ow := outputSize(im.Rows, im.Cols, p.vw, p.vh)
	rec := imaging.Recipe{Size: [2]int{oh, ow}, Resize: imaging.ResizeStretch, Channels: []imaging.Channel{{Window: p.window}}}
	vals := make([]float32, rec.Len())
	if err := rec.Apply(im, p.frameIdx, vals); err != nil {
		return nil, err
	}
	g := image.NewGray(image.Rect(0, 0, ow, oh))
	for i, v := range vals {
		g.Pix[i] = uint8(v*255 + 0.5)
	}
	var out bytes.Buffer
	if media == MediaPNG {
		err = (&png.Encoder{CompressionLevel: png.BestSpeed}).Encode(&out, g)
	} else {
		err = jpeg.Encode(&out, g, &jpeg.Options{Quality: p.quality})
	}
	return &out, err
}

// failRender answers an error of decoding or rendering.
func (s *Server) failRender(w http.ResponseWriter, r *http.Request, in store.Instance, err error) {
	switch {
	case errors.Is(err, imaging.ErrNotImage):
		s.fail(w, r, http.StatusNotFound, "dicomweb: instance has no pixel data")
	case errors.Is(err, imaging.ErrUnsupportedTransferSyntax), errors.Is(err, imaging.ErrUnsupportedPixelFormat):
		s.fail(w, r, http.StatusNotAcceptable, "dicomweb: cannot render this instance's pixel data")
	default:
		s.log.Error("dicomweb: rendering failed", "sop_instance", dcm.UIDRef(in.SOPInstanceUID), "err", err)
		s.fail(w, r, http.StatusInternalServerError, "dicomweb: rendering failed")
	}
}
