package auth_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/radgate/radgate/auth"
	"github.com/radgate/radgate/auth/authtest"
)

// The issuer in these tests is simulated (package authtest): no real OAuth
// authorization server can be installed here — Keycloak, Dex and the like
// are not packaged in Debian — while the Verifier under test is the real one.

// logRecorder is a slog.Handler that keeps every line, so tests can check
// that no token is ever logged, and signals each "JWK Set loaded".
type logRecorder struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	loaded chan struct{}
}

func newLogRecorder() *logRecorder { return &logRecorder{loaded: make(chan struct{}, 1)} }

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logRecorder) WithGroup(string) slog.Handler            { return l }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(&l.buf, "%s %s", r.Level, r.Message)
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&l.buf, " %s=%v", a.Key, a.Value)
		return true
	})
	l.buf.WriteByte('\n')
	if r.Message == "auth: JWK Set loaded" {
		select {
		case l.loaded <- struct{}{}:
		default:
		}
	}
	return nil
}

func (l *logRecorder) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// failures collects what OnFailure reports.
type failures struct {
	mu  sync.Mutex
	got []auth.Failure
}

func (f *failures) add(x auth.Failure) {
	f.mu.Lock()
	f.got = append(f.got, x)
	f.mu.Unlock()
}

// take returns the failures so far and forgets them.
func (f *failures) take() []auth.Failure {
	f.mu.Lock()
	defer f.mu.Unlock()
	got := f.got
	f.got = nil
	return got
}

// newVerifier starts a Verifier on iss's JWK Set, closed when t ends.
func newVerifier(t *testing.T, iss *authtest.Issuer, fs *failures, log *logRecorder) *auth.Verifier {
	t.Helper()
	if log == nil {
		log = newLogRecorder()
	}
	cfg := auth.Config{Issuer: iss.Issuer(), Audience: authtest.Audience, JWKS: iss.URL()}
	if fs != nil {
		cfg.OnFailure = fs.add
	}
	v, err := auth.New(t.Context(), cfg, slog.New(log), nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { v.Close() })
	return v
}

const (
	scopedService = "radgate.test.Scoped"
	scopedCheck   = "/" + scopedService + "/Check"
	scopedWatch   = "/" + scopedService + "/Watch"
)

// scopedDesc is a service that needs a scope: health's messages under
// another name. Its handlers answer SERVING only when a Principal is in
// their context, and send its subject in the "subject" header. (The
// generated health handlers cannot be renamed: they hard-code their
// FullMethod for interceptors.)
func scopedDesc() *grpc.ServiceDesc {
	answer := func(ctx context.Context) (*healthpb.HealthCheckResponse, error) {
		p, ok := auth.FromContext(ctx)
		if !ok {
			return nil, status.Error(codes.Internal, "no principal in the handler's context")
		}
		if err := grpc.SetHeader(ctx, metadata.Pairs("subject", p.Subject)); err != nil {
			return nil, err
		}
		return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
	}
	return &grpc.ServiceDesc{
		ServiceName: scopedService,
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{
			MethodName: "Check",
			Handler: func(srv any, ctx context.Context, dec func(any) error, in grpc.UnaryServerInterceptor) (any, error) {
				req := new(healthpb.HealthCheckRequest)
				if err := dec(req); err != nil {
					return nil, err
				}
				h := func(ctx context.Context, _ any) (any, error) { return answer(ctx) }
				if in == nil {
					return h(ctx, req)
				}
				return in(ctx, req, &grpc.UnaryServerInfo{Server: srv, FullMethod: scopedCheck}, h)
			},
		}},
		Streams: []grpc.StreamDesc{{
			StreamName:    "Watch",
			ServerStreams: true,
			Handler: func(_ any, stream grpc.ServerStream) error {
				if err := stream.RecvMsg(new(healthpb.HealthCheckRequest)); err != nil {
					return err
				}
				resp, err := answer(stream.Context())
				if err != nil {
					return err
				}
				return stream.SendMsg(resp)
			},
		}},
	}
}

// startGRPC serves the standard health service (open) and scopedDesc
// (needs dicomweb.read) behind v's interceptors on 127.0.0.1:0.
func startGRPC(t *testing.T, v *auth.Verifier) *grpc.ClientConn {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(v.ServerOptions(auth.OpenHealth(auth.ScopeDICOMwebRead))...)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	srv.RegisterService(scopedDesc(), struct{}{})
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// withToken adds the bearer token to an outgoing context ("" adds none).
func withToken(ctx context.Context, tok string) context.Context {
	if tok == "" {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok)
}

// callScoped calls the scoped unary method; it returns the subject the
// handler saw.
func callScoped(ctx context.Context, conn *grpc.ClientConn, tok string) (string, error) {
	var hdr metadata.MD
	resp := new(healthpb.HealthCheckResponse)
	err := conn.Invoke(withToken(ctx, tok), scopedCheck, &healthpb.HealthCheckRequest{}, resp, grpc.Header(&hdr))
	if err != nil {
		return "", err
	}
	if resp.Status != healthpb.HealthCheckResponse_SERVING {
		return "", fmt.Errorf("status %v", resp.Status)
	}
	return first(hdr.Get("subject")), nil
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}
