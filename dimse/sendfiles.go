package dimse

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/radgate/radgate/dcm"
)

// SendOptions configures SendFiles.
type SendOptions struct {
	Client   ClientConfig
	Priority Priority
	// Progress, when set, is called after each file with the running totals.
	Progress func(SendProgress)
}

// SendProgress reports one file's outcome during SendFiles.
type SendProgress struct {
	Path       string
	Done       int // files finished so far, this one included
	Total      int
	Bytes      int64 // bytes of the files finished so far
	TotalBytes int64
	Status     Status // the C-STORE status, when one came back
	Err        error  // why the file was not stored, if it was not
}

// SendSummary is the outcome of SendFiles.
type SendSummary struct {
	Files    int
	Stored   int // success
	Warnings int // stored with a warning status
	Failed   int // failure status, no context, unreadable, or not DICOM
	Bytes    int64
	Elapsed  time.Duration
}

// sendItem is a file scanned for what its C-STORE needs.
type sendItem struct {
	path                  string
	size                  int64
	sopClass, sopInst, ts string
	err                   error
}

// SendFiles stores DICOM files (folders are walked recursively) on the SCP
// at addr. Each distinct (SOP class, transfer syntax) pair gets its own
// presentation context, so data goes out as stored; one association carries
// up to 128 such pairs and is reused for all their files. A broken
// association is re-established for the remaining files. The returned
// error is set when files could not be sent at all; per-file failures are
// counted in the summary.
func SendFiles(ctx context.Context, addr string, paths []string, opt SendOptions) (SendSummary, error) {
	start := time.Now()
	items, err := scanFiles(paths)
	sum := SendSummary{Files: len(items)}
	if err != nil {
		return sum, err
	}
	var total int64
	for _, it := range items {
		total += it.size
	}
	done := 0
	report := func(it *sendItem, st Status, err error) {
		done++
		sum.Bytes += it.size
		switch {
		case err != nil || !st.OK():
			sum.Failed++
		case st.Class() == "warning":
			sum.Warnings++
		default:
			sum.Stored++
		}
		if opt.Progress != nil {
			opt.Progress(SendProgress{Path: it.path, Done: done, Total: len(items), Bytes: sum.Bytes, TotalBytes: total, Status: st, Err: err})
		}
	}

	var sendable []*sendItem
	for _, it := range items {
		if it.err != nil {
			report(it, Status{}, it.err)
			continue
		}
		sendable = append(sendable, it)
	}
	for _, batch := range batchByContext(sendable) {
		if err := sendBatch(ctx, addr, batch, opt, report); err != nil {
			sum.Elapsed = time.Since(start)
			return sum, err
		}
	}
	sum.Elapsed = time.Since(start)
	return sum, nil
}

// scanFiles expands folders and reads each file's meta information.
func scanFiles(paths []string) ([]*sendItem, error) {
	var items []*sendItem
	for _, p := range paths {
		err := filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() || !d.Type().IsRegular() {
				return nil
			}
			items = append(items, scanFile(path))
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("dimse: %w", err)
		}
	}
	if len(items) == 0 {
		return nil, fmt.Errorf("dimse: no files found in %v", paths)
	}
	return items, nil
}

func scanFile(path string) *sendItem {
	it := &sendItem{path: path}
	f, err := os.Open(path)
	if err != nil {
		it.err = err
		return it
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil {
		it.size = fi.Size()
	}
	meta, data, err := dcm.OpenPart10(f)
	if err != nil {
		it.err = err
		return it
	}
	ts, ok := dcm.LookupTransferSyntax(meta.TransferSyntaxUID)
	if !ok {
		it.err = fmt.Errorf("dcm: %s: unknown transfer syntax %q", path, meta.TransferSyntaxUID)
		return it
	}
	// The data set is authoritative for what the instance is (the file
	// meta can disagree with it); walking it also refuses a corrupt file
	// before anything is sent.
	attrs, err := dcm.ScanDataset(data, ts, []dcm.Tag{dcm.SOPClassUID, dcm.SOPInstanceUID})
	if err != nil {
		it.err = fmt.Errorf("%s: %w", path, err)
		return it
	}
	it.sopClass, it.sopInst, it.ts = cmp.Or(attrs[dcm.SOPClassUID], meta.MediaStorageSOPClassUID),
		cmp.Or(attrs[dcm.SOPInstanceUID], meta.MediaStorageSOPInstanceUID), ts.UID
	if it.sopClass == "" || it.sopInst == "" {
		it.err = fmt.Errorf("dcm: %s has no SOP Class or SOP Instance UID", path)
	}
	return it
}

// batchByContext splits items so each batch needs at most 128 presentation
// contexts, keeping file order within a batch.
func batchByContext(items []*sendItem) [][]*sendItem {
	type pair struct{ class, ts string }
	var batches [][]*sendItem
	var seen []map[pair]bool
	for _, it := range items {
		p := pair{it.sopClass, it.ts}
		placed := false
		for i := range batches {
			if seen[i][p] || len(seen[i]) < maxPresentationContexts {
				seen[i][p] = true
				batches[i] = append(batches[i], it)
				placed = true
				break
			}
		}
		if !placed {
			seen = append(seen, map[pair]bool{p: true})
			batches = append(batches, []*sendItem{it})
		}
	}
	return batches
}

// proposalsFor proposes each (SOP class, transfer syntax) pair of a batch.
func proposalsFor(batch []*sendItem) []Proposal {
	seen := map[[2]string]bool{}
	var props []Proposal
	for _, it := range batch {
		k := [2]string{it.sopClass, it.ts}
		if !seen[k] {
			seen[k] = true
			props = append(props, Proposal{AbstractSyntax: it.sopClass, TransferSyntaxes: []string{it.ts}})
		}
	}
	return props
}

// maxRedials bounds how often a batch re-establishes a broken association.
const maxRedials = 3

func sendBatch(ctx context.Context, addr string, batch []*sendItem, opt SendOptions, report func(*sendItem, Status, error)) error {
	props := proposalsFor(batch)
	var c *Client
	defer func() {
		if c != nil {
			_ = c.Release(context.WithoutCancel(ctx))
		}
	}()
	redials := 0
	for i, it := range batch {
		if c == nil {
			var err error
			c, err = Dial(ctx, addr, opt.Client, props)
			if err != nil {
				for _, rest := range batch[i:] {
					report(rest, Status{}, err)
				}
				return err
			}
		}
		st, err := storeFile(ctx, c, it, opt.Priority)
		report(it, st, err)
		if err != nil && !errors.Is(err, ErrNoContext) && !isFileError(err) {
			// The association is gone; continue on a new one.
			c = nil
			if redials++; redials > maxRedials || ctx.Err() != nil {
				for _, rest := range batch[i+1:] {
					report(rest, Status{}, err)
				}
				return err
			}
		}
	}
	return nil
}

// fileError marks a failure to read a local file, which leaves the
// association usable only if nothing was sent yet.
type fileError struct{ err error }

func (e *fileError) Error() string { return e.err.Error() }
func (e *fileError) Unwrap() error { return e.err }

func isFileError(err error) bool {
	var fe *fileError
	return errors.As(err, &fe)
}

func storeFile(ctx context.Context, c *Client, it *sendItem, prio Priority) (Status, error) {
	if !c.Accepts(it.sopClass, it.ts) {
		return Status{}, fmt.Errorf("%w: the peer did not accept %s in %s", ErrNoContext, dcm.UIDName(it.sopClass), dcm.UIDName(it.ts))
	}
	f, err := os.Open(it.path)
	if err != nil {
		return Status{}, &fileError{err}
	}
	defer f.Close()
	_, data, err := dcm.OpenPart10(f)
	if err != nil {
		return Status{}, &fileError{err}
	}
	return c.Store(ctx, it.sopClass, it.sopInst, it.ts, prio, data)
}
