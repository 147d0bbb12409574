package auth_test

import (
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/radgate/radgate/auth"
	"github.com/radgate/radgate/auth/authtest"
)

// TestGRPCHealthOpenAndStreams: the standard health service answers
// without a token; a streaming method needs one and its handler finds the
// Principal in the stream's context.
func TestGRPCHealthOpenAndStreams(t *testing.T) {
	iss := authtest.NewIssuer(t)
	fs := &failures{}
	v := newVerifier(t, iss, fs, nil)
	conn := startGRPC(t, v)

	resp, err := healthpb.NewHealthClient(conn).Check(t.Context(), &healthpb.HealthCheckRequest{})
	if err != nil || resp.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health without a token: %v, %v", resp, err)
	}
	if got := fs.take(); len(got) != 0 {
		t.Errorf("health reported failures %+v", got)
	}

	watch := func(tok string) (string, error) {
		st, err := conn.NewStream(withToken(t.Context(), tok), &grpc.StreamDesc{ServerStreams: true}, scopedWatch)
		if err != nil {
			return "", err
		}
		if err := st.SendMsg(&healthpb.HealthCheckRequest{}); err != nil {
			return "", err
		}
		if err := st.CloseSend(); err != nil {
			return "", err
		}
		if err := st.RecvMsg(new(healthpb.HealthCheckResponse)); err != nil {
			return "", err
		}
		var hdr metadata.MD
		if hdr, err = st.Header(); err != nil {
			return "", err
		}
		return first(hdr.Get("subject")), nil
	}
	if _, err := watch(""); status.Code(err) != codes.Unauthenticated {
		t.Errorf("stream without a token: %v, want Unauthenticated", err)
	}
	if _, err := watch(iss.Token(t, authtest.Claims{Scopes: []string{auth.ScopeModelsInfer}})); status.Code(err) != codes.PermissionDenied {
		t.Errorf("stream without the scope: %v, want PermissionDenied", err)
	}
	if got := fs.take(); len(got) != 2 || got[0].Method != scopedWatch || got[1].Reason != auth.ReasonScope || got[1].Remote == "" {
		t.Errorf("stream failures %+v", got)
	}
	sub, err := watch(iss.Token(t, authtest.Claims{Subject: "ml-engineer", Scopes: []string{auth.ScopeDICOMwebRead}}))
	if err != nil || sub != "ml-engineer" {
		t.Errorf("stream with the scope: subject %q, %v", sub, err)
	}
}
