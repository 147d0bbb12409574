package radgate

import (
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	radgatev1 "github.com/radgate/radgate/api/radgate/v1"
	"github.com/radgate/radgate/inference"
	"github.com/radgate/radgate/worklist"
)

// WatchWorklist streams the worklist's changes from the index's event log
// (worklist.Service.Subscribe): each with its workitem as it is when sent.
// A watcher that falls too far behind is ended with Aborted, and resumes
// with after_seq.
func (s *Service) WatchWorklist(r *radgatev1.WatchWorklistRequest, stream grpc.ServerStreamingServer[radgatev1.WorklistChange]) error {
	if s.cfg.Worklist == nil {
		return status.Error(codes.Unimplemented, "this server has no worklist")
	}
	ctx := stream.Context()
	for e := range s.cfg.Worklist.Subscribe(ctx, r.GetAfterSeq()) {
		c := &radgatev1.WorklistChange{
			Seq: e.Seq, WorkitemUid: e.UID, StudyInstanceUid: e.StudyInstanceUID, Kind: e.Kind, Actor: e.Actor,
			From: e.From, To: e.To, Reason: e.Reason, At: e.At.UnixMilli(),
		}
		if w, err := s.cfg.Worklist.Get(ctx, e.UID); err == nil {
			ws := &radgatev1.WorkitemState{
				State: w.State, Priority: worklist.Clinical(inference.Priority(w.Priority)),
				UpsPriority: worklist.UPSPriority(inference.Priority(w.Priority)), Override: w.Override,
				Reason: w.Reason, Modality: w.Modality,
			}
			for _, f := range w.Findings {
				ws.Findings = append(ws.Findings, &radgatev1.WorkitemFinding{Model: f.Model, Version: f.Version, Label: f.Label,
					Meaning: f.Meaning, Probability: f.Probability, Threshold: f.Threshold, Positive: f.Positive, SrSopInstanceUid: f.SRUID})
			}
			c.Workitem = ws
		}
		if err := stream.Send(c); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return status.FromContextError(ctx.Err()).Err()
	}
	return status.Error(codes.Aborted, "the watcher fell behind the worklist; resume with after_seq")
}
