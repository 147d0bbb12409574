package dicomweb

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
)

// The fuzz targets drive the handlers in process (httptest.NewRecorder)
// over one store: whatever the input, a status from the expected set and
// no panic.

func fuzzServer(f *testing.F) http.Handler {
	return newTestServer(f, Config{MaxRequestBytes: 8 << 20, MaxParts: 8}).Config.Handler
}

// FuzzSTOW: arbitrary multipart bodies under a fixed boundary.
func FuzzSTOW(f *testing.F) {
	h := fuzzServer(f)
	slice := ctPhantom(f, 4, 1)[0]
	good, ct := stowBody(f, [][]byte{slice})
	boundary := ct[len(`multipart/related; type="application/dicom"; boundary=`):]
	f.Add(good)
	f.Add(good[:len(good)/3])
	f.Add([]byte("--" + boundary + "\r\nContent-Type: application/dicom\r\n\r\nDICM\r\n--" + boundary + "--\r\n"))
	f.Add([]byte("--" + boundary + "--\r\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest(http.MethodPost, Prefix+"/studies", bytes.NewReader(body))
		req.Header.Set("Content-Type", ct)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		switch w.Code {
		case http.StatusOK, http.StatusAccepted, http.StatusConflict, http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("status %d: %s", w.Code, w.Body.String())
		}
	})
}

// FuzzQIDO: arbitrary query strings on the study and instance searches.
func FuzzQIDO(f *testing.F) {
	h := fuzzServer(f)
	for _, q := range []string{"PatientID=PH*", "StudyDate=20010101-20201231", "StudyInstanceUID=1.2,1.3", "includefield=all&limit=2&offset=1",
		"00100010=Doe^*", "limit=-1", "StudyTime=-1100", "%zz", "ModalitiesInStudy=CT"} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, q string) {
		for _, path := range []string{"/studies", "/instances"} {
			req := httptest.NewRequest(http.MethodGet, Prefix+path, nil)
			req.URL.RawQuery = q
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != http.StatusOK && w.Code != http.StatusBadRequest {
				t.Fatalf("%s?%s: status %d: %s", path, url.QueryEscape(q), w.Code, w.Body.String())
			}
		}
	})
}

// FuzzAccept: arbitrary Accept headers on a metadata request.
func FuzzAccept(f *testing.F) {
	h := fuzzServer(f)
	for _, a := range []string{`multipart/related; type="application/dicom"; transfer-syntax=*`, "application/dicom+json", "*/*",
		`multipart/related; type="application/octet-stream"`, "image/png;q=0.5, image/jpeg", `a/b; q=2; x="`} {
		f.Add(a)
	}
	f.Fuzz(func(t *testing.T, accept string) {
		req := httptest.NewRequest(http.MethodGet, Prefix+"/studies/1.2.3/metadata", nil)
		req.Header.Set("Accept", accept)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		switch w.Code {
		case http.StatusNotFound, http.StatusBadRequest, http.StatusNotAcceptable:
		default:
			t.Fatalf("Accept %q: status %d: %s", accept, w.Code, w.Body.String())
		}
	})
}

// FuzzUPSSearch: any query string parses or is refused, never a crash.
func FuzzUPSSearch(f *testing.F) {
	f.Add("ProcedureStepState=SCHEDULED&limit=5")
	f.Add("ScheduledProcedureStepStartDateTime=20261202-20261203")
	f.Add("ScheduledProcedureStepPriority=HIGH&offset=2")
	f.Fuzz(func(t *testing.T, q string) {
		v, err := url.ParseQuery(q)
		if err != nil {
			return
		}
		if sq, err := parseUPSSearch(v, 100); err == nil && (sq.Limit < 0 || sq.Limit > 100) {
			t.Fatalf("limit %d", sq.Limit)
		}
	})
}
