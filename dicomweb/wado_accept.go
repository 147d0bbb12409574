package dicomweb

import (
	"fmt"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// Content negotiation of the WADO-RS resources (PS3.18 8.7.3.5).

// maxAcceptRanges bounds the media ranges of one Accept header.
const maxAcceptRanges = 64

// mediaRange is one entry of an Accept header.
type mediaRange struct {
	typ    string            // lower case, e.g. "multipart/related", "*/*"
	params map[string]string // keys lower case; "q" removed
	q      float64
}

// parseAccept returns the media ranges of the Accept header values, the
// most preferred first (ties in header order); none at all means "*/*".
// Ranges with q=0 are dropped.
func parseAccept(values []string) ([]mediaRange, error) {
	var out []mediaRange
	for _, v := range values {
		for _, item := range splitRanges(v) {
			if strings.TrimSpace(item) == "" {
				continue
			}
			if len(out) == maxAcceptRanges {
				return nil, fmt.Errorf("dicomweb: Accept has more than %d media ranges", maxAcceptRanges)
			}
			typ, params, err := mime.ParseMediaType(item)
			if err != nil {
				return nil, fmt.Errorf("dicomweb: malformed Accept media range: %v", err)
			}
			m := mediaRange{typ: typ, params: params, q: 1}
			if qs, ok := params["q"]; ok {
				q, err := strconv.ParseFloat(qs, 64)
				if err != nil || q < 0 || q > 1 {
					return nil, fmt.Errorf("dicomweb: malformed Accept quality value")
				}
				m.q = q
				delete(params, "q")
			}
			if m.q > 0 {
				out = append(out, m)
			}
		}
	}
	if len(out) == 0 && !hasRanges(values) {
		out = append(out, mediaRange{typ: "*/*", q: 1})
	}
	slices.SortStableFunc(out, func(a, b mediaRange) int {
		switch {
		case a.q > b.q:
			return -1
		case a.q < b.q:
			return 1
		}
		return 0
	})
	return out, nil
}

func hasRanges(values []string) bool {
	for _, v := range values {
		if strings.TrimSpace(v) != "" {
			return true
		}
	}
	return false
}

// splitRanges splits an Accept value at the commas outside quoted strings
// (type="application/dicom" holds none, but a transfer-syntax list might).
func splitRanges(v string) []string {
	var out []string
	quoted, start := false, 0
	for i := 0; i < len(v); i++ {
		switch v[i] {
		case '"':
			quoted = !quoted
		case '\\':
			i++
		case ',':
			if !quoted {
				out = append(out, v[start:i])
				start = i + 1
			}
		}
	}
	return append(out, v[start:])
}

// offer is a representation the server can produce: a media type (for
// multipart responses the type of the parts) and its transfer syntax.
type offer struct {
	media, ts string
}

// negotiate picks the first offer, in the order given (the server's
// preference), that the client's most preferred acceptable range admits.
// For multipart resources a range admits an offer when it is */* or
// multipart/*, or multipart/related with a type parameter matching the
// offer's media type (absent: any); for single-part ones when its type
// matches. A transfer-syntax parameter, when present and not "*", must
// name the offer's.
func negotiate(ranges []mediaRange, multipartResp bool, offers []offer) (offer, bool) {
	for _, m := range ranges {
		for _, o := range offers {
			if ts := m.params["transfer-syntax"]; ts != "" && ts != "*" && ts != o.ts {
				continue
			}
			if !multipartResp {
				if matchType(m.typ, o.media) {
					return o, true
				}
				continue
			}
			switch m.typ {
			case "*/*", "multipart/*":
				return o, true
			case "multipart/related":
				if inner := m.params["type"]; inner == "" || matchType(strings.ToLower(inner), o.media) {
					return o, true
				}
			}
		}
	}
	return offer{}, false
}

// matchType reports whether a media range (possibly "*/*" or "image/*")
// covers the media type t.
func matchType(rng, t string) bool {
	if rng == "*/*" || rng == t {
		return true
	}
	if major, ok := strings.CutSuffix(rng, "/*"); ok {
		return strings.HasPrefix(t, major+"/")
	}
	return false
}

// acceptRanges is parseAccept of the request's Accept header; it has
// answered 400 when ok is false.
func (s *Server) acceptRanges(w http.ResponseWriter, r *http.Request) (_ []mediaRange, ok bool) {
	ranges, err := parseAccept(r.Header.Values("Accept"))
	if err != nil {
		s.fail(w, r, http.StatusBadRequest, err.Error())
		return nil, false
	}
	return ranges, true
}
