package dicomweb

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/radgate/radgate/audit"
	"github.com/radgate/radgate/dcm"
	"github.com/radgate/radgate/internal/dicomjson"
	"github.com/radgate/radgate/store"
)

// QIDO-RS (PS3.18 10.6): the search resources of the study, series and
// instance levels, answered from the store's index (store.Searcher).
//
// Every result carries the level's required return attributes (PS3.18
// Tables 10.6.3-3, -4, -5) that the index holds, those of the levels
// above when the resource is not under them (a search for series in all
// studies returns each series' study attributes too), every matching key
// of the query, and the includefield attributes. Text values are decoded
// from each instance's Specific Character Set into UTF-8 (dcm.Charset),
// so Specific Character Set says "ISO_IR 192" wherever it had a value.
//
// No match is 200 with an empty array "[]" (PS3.18 10.6.3.2 allows it in
// place of 204): a client then reads every answer the same way. A query
// key the index cannot match, a malformed value, limit or offset is 400
// with a message naming the key, never its value.

// tagInstanceAvailability is returned beside what the index holds, and
// tagRetrieveURL (stow.go) (PS3.6 Table 6-1).
const tagInstanceAvailability = 0x00080056 // CS

// Query parameters that are not attribute keys (PS3.18 8.3.4).
const (
	paramIncludeField  = "includefield"
	paramLimit         = "limit"
	paramOffset        = "offset"
	paramFuzzyMatching = "fuzzymatching"
)

// qidoWarning is PS3.18 8.3.4.4's warning that a response stopped at the
// server's maximum (Config.MaxResults) with more to be had.
const qidoWarning = `299 radgate: "The number of results exceeded the maximum supported by the server. Additional results can be requested."`

// required are the return attributes of PS3.18 Tables 10.6.3-3 to -5 the
// index holds, by level (Retrieve URL and Instance Availability are
// added to each result).
var required = map[store.Level][]dcm.Tag{
	store.StudyLevel: {dcm.SpecificCharacterSet, dcm.StudyDate, dcm.StudyTime, dcm.AccessionNumber,
		store.ModalitiesInStudy, dcm.ReferringPhysicianName, dcm.PatientName, dcm.PatientID, dcm.PatientBirthDate,
		dcm.PatientSex, dcm.StudyInstanceUID, dcm.StudyID, store.NumberOfStudyRelatedSeries,
		store.NumberOfStudyRelatedInstances},
	store.SeriesLevel: {dcm.SpecificCharacterSet, dcm.StudyInstanceUID, dcm.Modality, dcm.SeriesDescription,
		dcm.SeriesNumber, dcm.SeriesInstanceUID, dcm.BodyPartExamined, store.NumberOfSeriesRelatedInstances},
	store.InstanceLevel: {dcm.SpecificCharacterSet, dcm.StudyInstanceUID, dcm.SeriesInstanceUID, dcm.SOPClassUID,
		dcm.SOPInstanceUID, dcm.InstanceNumber, dcm.Rows, dcm.Columns, dcm.NumberOfFrames},
}

func (s *Server) qidoRoutes(mux *http.ServeMux) {
	for _, rt := range []struct {
		path  string
		level store.Level
	}{
		{"/studies", store.StudyLevel},
		{"/studies/{study}/series", store.SeriesLevel},
		{"/series", store.SeriesLevel},
		{"/studies/{study}/series/{series}/instances", store.InstanceLevel},
		{"/studies/{study}/instances", store.InstanceLevel},
		{"/instances", store.InstanceLevel},
	} {
		s.handle(mux, "GET "+Prefix+rt.path, "qido", func(w http.ResponseWriter, r *http.Request) {
			s.search(w, r, rt.level)
		})
	}
}

// search answers one QIDO-RS request at level.
func (s *Server) search(w http.ResponseWriter, r *http.Request, level store.Level) {
	ranges, err := parseAccept(r.Header.Values("Accept"))
	if err != nil {
		s.fail(w, r, http.StatusBadRequest, err.Error())
		return
	}
	if _, ok := negotiate(ranges, false, []offer{{media: MediaDICOMJSON}, {media: "application/json"}}); !ok {
		s.fail(w, r, http.StatusNotAcceptable, "dicomweb: QIDO-RS answers "+MediaDICOMJSON+" only")
		return
	}
	sq, err := parseSearch(r, level, s.cfg.MaxResults)
	if err != nil {
		s.fail(w, r, http.StatusBadRequest, err.Error())
		return
	}
	s.auditQuery(r, audit.SOPClassStudyRootFind)
	// One more than the page, to tell a response cut at MaxResults.
	q := sq.query
	q.Limit++
	matches, err := s.store.Search(r.Context(), q)
	switch {
	case errors.Is(err, store.ErrInvalidQuery):
		s.fail(w, r, http.StatusBadRequest, "dicomweb: "+err.Error())
		return
	case errors.Is(err, store.ErrClosed):
		s.fail(w, r, http.StatusServiceUnavailable, "dicomweb: store closed")
		return
	case err != nil:
		s.fail(w, r, http.StatusInternalServerError, "dicomweb: search failed")
		return
	}
	if len(matches) > sq.query.Limit {
		matches = matches[:sq.query.Limit]
		if sq.capped {
			w.Header().Set("Warning", qidoWarning)
		}
	}
	base := baseURL(r)
	out := make([]dicomjson.Dataset, 0, len(matches))
	for _, m := range matches {
		out = append(out, sq.dataset(m, base))
	}
	writeJSON(w, http.StatusOK, out)
}

// searchQuery is a parsed request: the store query (Limit the page size)
// and the attributes to return.
type searchQuery struct {
	query  store.Query
	capped bool // the page size is MaxResults, not what the client asked
	attrs  []store.Attribute
}

// parseSearch reads the path's UIDs and the query parameters (PS3.18
// 8.3.4, 10.6.1.2).
func parseSearch(r *http.Request, level store.Level, maxResults int) (searchQuery, error) {
	params, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return searchQuery{}, errors.New("dicomweb: malformed query string")
	}
	known := store.Attributes()
	sq := searchQuery{query: store.Query{Level: level, Limit: maxResults}, capped: true}
	ret := map[dcm.Tag]bool{}
	for _, t := range required[level] {
		ret[t] = true
	}
	for _, p := range []struct {
		name  string
		tag   dcm.Tag
		above store.Level // the level whose attributes return when the path does not name it
	}{{"study", dcm.StudyInstanceUID, store.StudyLevel}, {"series", dcm.SeriesInstanceUID, store.SeriesLevel}} {
		if p.above >= level {
			continue
		}
		uid := r.PathValue(p.name)
		if uid == "" {
			for _, t := range required[p.above] {
				ret[t] = true
			}
			continue
		}
		if !dcm.ValidUID(uid) {
			return searchQuery{}, fmt.Errorf("dicomweb: the %s in the path is not a UID", p.name)
		}
		sq.query.Keys = append(sq.query.Keys, store.Key{Tag: p.tag, Value: uid})
	}
	for name, values := range params {
		switch name {
		case paramFuzzyMatching:
			// PS3.18 8.3.4.2: fuzzy matching of names is optional; PN
			// matching is case-insensitive anyway.
		case paramLimit, paramOffset:
			if len(values) != 1 {
				return searchQuery{}, fmt.Errorf("dicomweb: %s given more than once", name)
			}
			n, err := strconv.Atoi(values[0])
			if err != nil || n < 0 || (name == paramLimit && n == 0) {
				return searchQuery{}, fmt.Errorf("dicomweb: %s must be a non-negative integer (limit: positive)", name)
			}
			if name == paramOffset {
				sq.query.Offset = n
			} else if n <= maxResults {
				sq.query.Limit, sq.capped = n, false
			}
		case paramIncludeField:
			for _, v := range values {
				for _, f := range strings.Split(v, ",") {
					if f == "all" {
						for _, a := range known {
							ret[a.Tag] = true
						}
						continue
					}
					// Attributes the index does not hold are left out
					// (PS3.18 8.3.4.3: a field the server does not
					// support is ignored); a malformed one is refused.
					a, ok, err := attributeID(known, f)
					if err != nil {
						return searchQuery{}, err
					}
					if ok && a.Level <= level {
						ret[a.Tag] = true
					}
				}
			}
		default:
			a, ok, err := attributeID(known, name)
			if err != nil {
				return searchQuery{}, err
			}
			if !ok {
				return searchQuery{}, fmt.Errorf("dicomweb: unsupported query key %q (supported: %s and %s, %s, %s, %s)",
					name, keywords(known), paramIncludeField, paramLimit, paramOffset, paramFuzzyMatching)
			}
			if len(values) > 1 && a.VR != "UI" {
				return searchQuery{}, fmt.Errorf("dicomweb: query key %s given more than once", a.Keyword)
			}
			sq.query.Keys = append(sq.query.Keys, store.Key{Tag: a.Tag, Value: strings.Join(values, ",")})
			ret[a.Tag] = true // a matching key is returned (PS3.4 C.2.2.1)
		}
	}
	for _, a := range known {
		if ret[a.Tag] && a.Level <= level {
			sq.attrs = append(sq.attrs, a)
		}
	}
	return sq, nil
}

// attributeID finds a query key or include field: a keyword, or a tag as
// eight hex digits (PS3.18 8.3.4.1). ok is false for a well-formed one
// the index does not hold; a sequence path or other syntax is an error.
func attributeID(known []store.Attribute, id string) (_ store.Attribute, ok bool, err error) {
	var tag uint64
	isTag := len(id) == 8
	if isTag {
		tag, err = strconv.ParseUint(id, 16, 32)
		isTag = err == nil
	}
	if !isTag && !isKeyword(id) {
		return store.Attribute{}, false, fmt.Errorf("dicomweb: %q is neither an attribute keyword nor a tag (sequence paths are not supported)", clip(id))
	}
	for _, a := range known {
		if (isTag && a.Tag == dcm.Tag(tag)) || (!isTag && a.Keyword == id) {
			return a, true, nil
		}
	}
	return store.Attribute{}, false, nil
}

// isKeyword: a PS3.6 keyword is letters and digits, starting with a letter.
func isKeyword(s string) bool {
	if s == "" || len(s) > 64 || !(s[0] >= 'A' && s[0] <= 'Z' || s[0] >= 'a' && s[0] <= 'z') {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// clip bounds what of a client's key an error message repeats.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

func keywords(known []store.Attribute) string {
	var k []string
	for _, a := range known {
		if a.Matching {
			k = append(k, a.Keyword)
		}
	}
	return strings.Join(k, ", ")
}

// dataset is one result in the DICOM JSON model (PS3.18 F.2).
func (sq searchQuery) dataset(m store.Match, base string) dicomjson.Dataset {
	cs := dcm.ParseCharset(m[dcm.SpecificCharacterSet])
	d := dicomjson.Dataset{}
	for _, a := range sq.attrs {
		v := m[a.Tag]
		switch {
		case v == "":
			d.Set(uint32(a.Tag), a.VR)
		case a.Tag == dcm.SpecificCharacterSet:
			d.Set(uint32(a.Tag), a.VR, "ISO_IR 192")
		default:
			// Decoded before splitting: in ISO 2022 sets a "\" byte may
			// be half of a character.
			d.Set(uint32(a.Tag), a.VR, strings.Split(cs.Decode(v), `\`)...)
		}
	}
	retrieve := base + "/studies/" + m[dcm.StudyInstanceUID]
	switch sq.query.Level {
	case store.SeriesLevel:
		retrieve += "/series/" + m[dcm.SeriesInstanceUID]
	case store.InstanceLevel:
		retrieve += "/series/" + m[dcm.SeriesInstanceUID] + "/instances/" + m[dcm.SOPInstanceUID]
	}
	d.Set(tagRetrieveURL, "UR", retrieve)
	d.Set(tagInstanceAvailability, "CS", "ONLINE")
	return d
}
