package radgate

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/radgate/radgate/api/kserve"
	radgatev1 "github.com/radgate/radgate/api/radgate/v1"
	"github.com/radgate/radgate/dcm"
	"github.com/radgate/radgate/inference"
	"github.com/radgate/radgate/results"
	"github.com/radgate/radgate/store"
	"github.com/radgate/radgate/study"
)

// Limits of InferStudy. A call holds its study in memory until it
// answers, so both the study and the calls doing so at once are bounded.
const (
	MaxStudyBytes      = 1 << 30 // one study, all instances
	MaxStudyInstances  = 4096
	maxStudiesInFlight = 4 // more wait their turn
)

// InferStudy receives a study, runs it, and answers with what the
// pipeline would make of it, without storing or sending anything.
func (s *Service) InferStudy(stream grpc.ClientStreamingServer[radgatev1.InferStudyRequest, radgatev1.InferStudyResponse]) error {
	ctx := stream.Context()
	select {
	case s.studies <- struct{}{}:
		defer func() { <-s.studies }()
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	}
	opts, files, err := receiveStudy(stream)
	if err != nil {
		return err
	}
	pri, err := priority(opts.GetPriority(), -1)
	if err != nil {
		return err
	}
	ins, err := describe(files)
	if err != nil {
		return err
	}
	resp := &radgatev1.InferStudyResponse{StudyInstanceUid: ins[0].StudyInstanceUID, Instances: int32(len(ins))}

	// What to run: the models named on the whole study, or as the
	// routing rules say, series by series.
	type unit struct {
		model, route string
		priority     inference.Priority
		ins          []store.Instance
	}
	var units []unit
	if len(opts.GetModels()) > 0 {
		for _, m := range opts.GetModels() {
			units = append(units, unit{model: m, priority: pri, ins: ins})
		}
	} else {
		routed, unrouted := study.Route(s.cfg.Rules, ins)
		resp.Unrouted = unrouted
		for _, r := range routed {
			var rins []store.Instance
			for _, se := range r.Series {
				rins = append(rins, se.Instances...)
			}
			p := r.Rule.Priority
			if pri >= 0 {
				p = pri
			}
			for _, m := range r.Rule.Models {
				units = append(units, unit{model: m, route: r.Rule.Name, priority: p, ins: rins})
			}
		}
	}

	a := results.Analyzer{Engine: s.eng, Equipment: s.cfg.Equipment}
	open := func(in store.Instance) func() (io.ReadCloser, error) {
		data := files[in.SOPInstanceUID]
		return func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }
	}
	now := time.Now()
	for _, u := range units {
		mr := &radgatev1.ModelResult{Model: u.model, Route: u.route}
		for _, in := range u.ins {
			if !slices.Contains(mr.SeriesInstanceUids, in.SeriesInstanceUID) {
				mr.SeriesInstanceUids = append(mr.SeriesInstanceUids, in.SeriesInstanceUID)
			}
		}
		resp.Results = append(resp.Results, mr)
		l, ok := s.eng.Lookup(u.model)
		if !ok {
			mr.Error = fmt.Sprintf("model %q not loaded", u.model)
			continue
		}
		mr.Model, mr.Version = l.Name, l.Version
		// Revision 1: the SR has the UIDs of the first evaluation the
		// pipeline would make of this study by this model version.
		res, docs, err := a.Analyze(ctx, l, results.Input{Instances: u.ins, Open: open, Priority: u.priority, Revision: 1, Time: now})
		if err != nil {
			if ctx.Err() != nil {
				return status.FromContextError(ctx.Err()).Err()
			}
			if errors.Is(err, inference.ErrQueueFull) || errors.Is(err, inference.ErrStopped) {
				return kserve.Status(err)
			}
			mr.Error = err.Error()
			continue
		}
		fillResult(mr, u.ins, res.Result, docs)
	}
	return stream.SendAndClose(resp)
}

// receiveStudy reads the stream to its end: the options, and each
// instance's bytes by SOP Instance UID (from its file meta).
func receiveStudy(stream grpc.ClientStreamingServer[radgatev1.InferStudyRequest, radgatev1.InferStudyResponse]) (*radgatev1.InferStudyOptions, map[string][]byte, error) {
	var (
		opts    *radgatev1.InferStudyOptions
		files   = map[string][]byte{}
		cur     []byte
		total   int
		n, msgs int
	)
	for {
		m, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, err
		}
		msgs++
		if m.GetOptions() != nil {
			if msgs > 1 {
				return nil, nil, status.Errorf(codes.InvalidArgument, "message %d: options are only for the first message", msgs)
			}
			opts = m.GetOptions()
		}
		total += len(m.GetData())
		if total > MaxStudyBytes {
			return nil, nil, status.Errorf(codes.ResourceExhausted, "the study exceeds %d bytes", MaxStudyBytes)
		}
		cur = append(cur, m.GetData()...)
		if m.GetContinued() {
			continue
		}
		if len(cur) == 0 {
			if m.GetOptions() != nil {
				continue // options alone
			}
			return nil, nil, status.Errorf(codes.InvalidArgument, "message %d: no data", msgs)
		}
		n++
		if n > MaxStudyInstances {
			return nil, nil, status.Errorf(codes.ResourceExhausted, "more than %d instances", MaxStudyInstances)
		}
		meta, _, err := dcm.OpenPart10(bytes.NewReader(cur))
		if err != nil {
			return nil, nil, status.Errorf(codes.InvalidArgument, "instance %d: %v", n, err)
		}
		if _, dup := files[meta.MediaStorageSOPInstanceUID]; dup {
			return nil, nil, status.Errorf(codes.InvalidArgument, "instance %d: SOP instance %s sent twice", n, dcm.UIDRef(meta.MediaStorageSOPInstanceUID))
		}
		files[meta.MediaStorageSOPInstanceUID] = cur
		cur = nil
	}
	if len(cur) > 0 {
		return nil, nil, status.Error(codes.InvalidArgument, "the stream ended inside an instance (its last message has continued set)")
	}
	if len(files) == 0 {
		return nil, nil, status.Error(codes.InvalidArgument, "no instance sent")
	}
	return opts, files, nil
}

// describe reads each file's index record; all must be of one study.
// They come ordered by series, then instance number.
func describe(files map[string][]byte) ([]store.Instance, error) {
	var ins []store.Instance
	for uid, data := range files {
		in, err := store.Describe(bytes.NewReader(data))
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "instance %s: %v", dcm.UIDRef(uid), err)
		}
		if len(ins) > 0 && in.StudyInstanceUID != ins[0].StudyInstanceUID {
			return nil, status.Error(codes.InvalidArgument, "the instances are of more than one study")
		}
		ins = append(ins, in)
	}
	num := func(is string) int { n, _ := strconv.Atoi(is); return n }
	slices.SortFunc(ins, func(a, b store.Instance) int {
		return cmp.Or(
			cmp.Compare(num(a.SeriesNumber), num(b.SeriesNumber)), cmp.Compare(a.SeriesInstanceUID, b.SeriesInstanceUID),
			cmp.Compare(num(a.InstanceNumber), num(b.InstanceNumber)), cmp.Compare(a.SOPInstanceUID, b.SOPInstanceUID))
	})
	return ins, nil
}

// fillResult copies a result into its answer. The engine names an
// instance by its hashed UID (dcm.UIDRef, for logs); the client gets the
// UIDs it sent.
func fillResult(mr *radgatev1.ModelResult, ins []store.Instance, res *inference.Result, docs []results.Document) {
	byUID := make(map[string]store.Instance, len(ins))
	byRef := make(map[string]string, len(ins))
	for _, in := range ins {
		byUID[in.SOPInstanceUID] = in
		byRef[dcm.UIDRef(in.SOPInstanceUID)] = in.SOPInstanceUID
	}
	mr.Priority = res.Priority
	for _, f := range res.Findings {
		pf := &radgatev1.Finding{
			Label: f.Label, Probability: f.Probability, Threshold: f.Threshold, Positive: f.Positive,
			Concept: &radgatev1.Code{Scheme: f.Concept.Scheme, Value: f.Concept.Code, Meaning: f.Concept.Meaning},
		}
		for _, k := range f.KeyFrames {
			fr := res.Frames[k]
			ref := &radgatev1.ImageRef{SopInstanceUid: fr.SOPInstanceUID}
			if byUID[fr.SOPInstanceUID].NumberOfFrames > 1 {
				ref.Frame = int32(fr.Frame + 1) // PS3.3 C.10.9: from 1
			}
			pf.KeyImages = append(pf.KeyImages, ref)
		}
		mr.Findings = append(mr.Findings, pf)
	}
	for _, e := range res.Errors {
		mr.Errors = append(mr.Errors, &radgatev1.InstanceError{SopInstanceUid: byRef[e.Source], Error: e.Error})
	}
	t := res.Timing
	mr.Timing = &radgatev1.StageTimes{DecodeMs: ms(t.Decode), PreprocessMs: ms(t.Preprocess), QueueMs: ms(t.Queue),
		InferenceMs: ms(t.Inference), TotalMs: ms(t.Total)}
	for _, d := range docs {
		mr.Objects = append(mr.Objects, &radgatev1.DicomObject{Kind: d.Kind, SopClassUid: d.SOPClassUID, SopInstanceUid: d.SOPInstanceUID, Data: d.Data})
	}
}
