package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/radgate/radgate/dcm"
	"github.com/radgate/radgate/internal/peertest"
	"github.com/radgate/radgate/store"
)

// The DICOMweb half of the ingest benchmark (issue 5): the same series
// stored by STOW-RS into radgate and into Orthanc's DICOMweb plugin, then
// retrieved back by WADO-RS, each from a fresh data directory.

const (
	targetStowRatio = 3.0 // radgate STOW-RS rate / Orthanc STOW-RS rate
	// stowBatch is how many instances one STOW-RS request carries: Orthanc
	// holds a request body in memory, so a whole series in one request
	// measures its allocator more than its storage.
	stowBatch = 50
)

// webResult is one DICOMweb run.
type webResult struct {
	Name       string  `json:"name"`
	Peer       string  `json:"peer"`
	Files      int     `json:"files"`
	Bytes      int64   `json:"bytes"`
	Seconds    float64 `json:"seconds"`
	MBPerSec   float64 `json:"mb_per_s"`
	InstPerSec float64 `json:"instances_per_s"`
	Arrived    int     `json:"arrived"`
}

func webMeasure(name, peer string, files int, bytes int64, d time.Duration, arrived int) webResult {
	s := d.Seconds()
	return webResult{Name: name, Peer: peer, Files: files, Bytes: bytes, Seconds: round(s, 3),
		MBPerSec: round(float64(bytes)/1e6/s, 1), InstPerSec: round(float64(files)/s, 1), Arrived: arrived}
}

// studyOf reads a file's Study Instance UID.
func studyOf(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	meta, data, err := dcm.OpenPart10(f)
	if err != nil {
		return "", err
	}
	ts, ok := dcm.LookupTransferSyntax(meta.TransferSyntaxUID)
	if !ok {
		return "", fmt.Errorf("%s: unknown transfer syntax", path)
	}
	a, err := dcm.ScanDataset(data, ts, []dcm.Tag{dcm.StudyInstanceUID})
	if err != nil {
		return "", err
	}
	return a[dcm.StudyInstanceUID], nil
}

// webRatios adds the STOW-RS ratio and its verdict.
func webRatios(rep *report) {
	var rg, orth *webResult
	for i := range rep.DICOMweb {
		switch r := &rep.DICOMweb[i]; r.Name {
		case "radgate STOW-RS":
			rg = r
		case "Orthanc STOW-RS":
			orth = r
		}
	}
	if rg != nil && orth != nil && orth.InstPerSec > 0 {
		v := round(rg.InstPerSec/orth.InstPerSec, 2)
		rep.Ratios["radgate_stow_rate_over_orthanc_stow_rate"] = v
		rep.Verdicts["radgate_stow_rate_over_orthanc_stow_rate"] = verdict(v >= targetStowRatio, fmt.Sprintf("target ≥ %.1f", targetStowRatio))
	}
}

func printDicomweb(w io.Writer, rep *report) {
	if len(rep.DICOMweb) == 0 {
		return
	}
	fmt.Fprintf(w, "\nDICOMweb (%d instances per STOW-RS request, streamed; WADO-RS retrieves the whole study; median of the repetitions)\n", stowBatch)
	fmt.Fprintf(w, "  %-26s %9s %10s %10s %8s\n", "run", "seconds", "MB/s", "inst/s", "arrived")
	for _, r := range rep.DICOMweb {
		fmt.Fprintf(w, "  %-26s %9.2f %10.1f %10.1f %8d\n", r.Name, r.Seconds, r.MBPerSec, r.InstPerSec, r.Arrived)
	}
	if v, ok := rep.Ratios["radgate_stow_rate_over_orthanc_stow_rate"]; ok {
		fmt.Fprintf(w, "  radgate STOW-RS rate / Orthanc STOW-RS rate: %.2f  %s\n", v, rep.Verdicts["radgate_stow_rate_over_orthanc_stow_rate"])
	}
}

// runDicomweb repeats the DICOMweb runs and keeps each one's median.
func (b *bench) runDicomweb(ctx context.Context, rep *report, series []peertest.Instance, study string) error {
	var all []webResult
	for i := range max(b.o.repeat, 1) {
		progress("[dicomweb] repetition %d/%d", i+1, max(b.o.repeat, 1))
		one := &report{}
		if err := b.dicomwebOnce(ctx, one, series, study); err != nil {
			return err
		}
		all = append(all, one.DICOMweb...)
		rep.Notes = append(rep.Notes, one.Notes...)
	}
	var names []string
	byName := map[string][]webResult{}
	for _, r := range all {
		if byName[r.Name] == nil {
			names = append(names, r.Name)
		}
		byName[r.Name] = append(byName[r.Name], r)
	}
	for _, n := range names {
		rs := byName[n]
		slices.SortFunc(rs, func(a, b webResult) int { return cmp.Compare(a.Seconds, b.Seconds) })
		rep.DICOMweb = append(rep.DICOMweb, rs[len(rs)/2])
	}
	return nil
}

// dicomwebOnce stores the series into radgate and Orthanc by STOW-RS and
// retrieves it by WADO-RS.
func (b *bench) dicomwebOnce(ctx context.Context, rep *report, series []peertest.Instance, study string) error {
	var size int64
	for _, in := range series {
		size += in.Size
	}
	// radgate
	data := filepath.Join(b.runs, "radgate-stow")
	_ = os.RemoveAll(data)
	rg, err := peertest.LaunchRadgate(peertest.RadgateConfig{Bin: b.radgate, DataDir: data, LogPath: filepath.Join(b.logs, "radgate-stow.log")})
	if err != nil {
		return err
	}
	b.track(rg.Proc)
	settle()
	progress("[dicomweb] STOW-RS %d instances into radgate…", len(series))
	d, err := stowSeries(ctx, rg.HTTPURL()+"/dicomweb", series)
	if err != nil {
		b.stop(rg.Proc)
		return fmt.Errorf("radgate STOW-RS: %w (log %s)", err, rg.LogPath)
	}
	keys, err := store.LogRecords(data)
	if err != nil {
		b.stop(rg.Proc)
		return err
	}
	rep.DICOMweb = append(rep.DICOMweb, webMeasure("radgate STOW-RS", "radgate", len(series), size, d, len(keys)))
	progress("[dicomweb] WADO-RS retrieve of the study from radgate…")
	d, n, got, err := retrieve(ctx, rg.HTTPURL()+"/dicomweb/studies/"+study)
	b.stop(rg.Proc)
	_ = os.RemoveAll(data)
	if err != nil {
		return fmt.Errorf("radgate WADO-RS: %w", err)
	}
	rep.DICOMweb = append(rep.DICOMweb, webMeasure("radgate WADO-RS study", "radgate", n, got, d, n))

	// Orthanc
	if len(peertest.Missing("Orthanc", "orthanc-dicomweb")) > 0 {
		rep.Notes = append(rep.Notes, "Orthanc or its DICOMweb plugin not installed: the STOW-RS comparison is skipped")
		return nil
	}
	odata := filepath.Join(b.runs, "orthanc-stow")
	_ = os.RemoveAll(odata)
	defer func() { _ = os.RemoveAll(odata) }()
	o, err := peertest.LaunchOrthanc(peertest.OrthancConfig{Dir: odata, Bindlo: b.bindlo, LogPath: filepath.Join(b.logs, "orthanc-stow.log")})
	if err != nil {
		return err
	}
	b.track(o.Proc)
	defer b.stop(o.Proc)
	settle()
	progress("[dicomweb] STOW-RS %d instances into Orthanc…", len(series))
	d, err = stowSeries(ctx, o.URL()+"/dicom-web", series)
	if err != nil {
		return fmt.Errorf("Orthanc STOW-RS: %w", err)
	}
	var st struct{ CountInstances int }
	if err := o.GetJSON(ctx, "/statistics", &st); err != nil {
		return err
	}
	rep.DICOMweb = append(rep.DICOMweb, webMeasure("Orthanc STOW-RS", "orthanc", len(series), size, d, st.CountInstances))
	progress("[dicomweb] WADO-RS retrieve of the study from Orthanc…")
	d, n, got, err = retrieve(ctx, o.URL()+"/dicom-web/studies/"+study)
	if err != nil {
		return fmt.Errorf("Orthanc WADO-RS: %w", err)
	}
	rep.DICOMweb = append(rep.DICOMweb, webMeasure("Orthanc WADO-RS study", "orthanc", n, got, d, n))
	return nil
}

// stowSeries stores the files by STOW-RS, stowBatch per request, each
// request body streamed (chunked) from the files.
func stowSeries(ctx context.Context, base string, series []peertest.Instance) (time.Duration, error) {
	start := time.Now()
	for i := 0; i < len(series); i += stowBatch {
		batch := series[i:min(i+stowBatch, len(series))]
		pr, pw := io.Pipe()
		mw := multipart.NewWriter(pw)
		go func() {
			for _, in := range batch {
				w, err := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"application/dicom"}})
				if err == nil {
					err = copyFile(w, in.Path)
				}
				if err != nil {
					pw.CloseWithError(err)
					return
				}
			}
			pw.CloseWithError(mw.Close())
		}()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/studies", pr)
		if err != nil {
			return 0, err
		}
		req.Header.Set("Content-Type", `multipart/related; type="application/dicom"; boundary=`+mw.Boundary())
		req.Header.Set("Accept", "application/dicom+json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return 0, fmt.Errorf("STOW-RS answered %s", resp.Status)
		}
	}
	return time.Since(start), nil
}

func copyFile(w io.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(w, f)
	return err
}

// retrieve reads a WADO-RS study retrieval to its end: parts and bytes.
func retrieve(ctx context.Context, url string) (time.Duration, int, int64, error) {
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, 0, 0, err
	}
	req.Header.Set("Accept", `multipart/related; type="application/dicom"; transfer-syntax=*`)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, 0, 0, fmt.Errorf("WADO-RS answered %s", resp.Status)
	}
	_, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil {
		return 0, 0, 0, err
	}
	mr := multipart.NewReader(resp.Body, params["boundary"])
	var parts int
	var bytes int64
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, 0, 0, err
		}
		n, err := io.Copy(io.Discard, p)
		if err != nil {
			return 0, 0, 0, err
		}
		parts++
		bytes += n
	}
	return time.Since(start), parts, bytes, nil
}
