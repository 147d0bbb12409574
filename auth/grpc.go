package auth

import (
	"context"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// healthPrefix is the gRPC health service (grpc/health/v1), which
// orchestrators probe without credentials.
const healthPrefix = "/grpc.health.v1.Health/"

// OpenHealth is a scopeFor for ServerOptions: the gRPC health service is
// open, every other method needs scope.
func OpenHealth(scope string) func(fullMethod string) (string, bool) {
	return func(fullMethod string) (string, bool) {
		return scope, strings.HasPrefix(fullMethod, healthPrefix)
	}
}

// ServerOptions returns unary and stream interceptors that let a call
// through only when scopeFor says its method is open or it carries
// "authorization: Bearer <token>" metadata with a valid token holding the
// scope scopeFor names. Refusals are Unauthenticated (no or bad token),
// PermissionDenied (scope) or Unavailable (no JWK Set loaded yet). The
// handler finds the Principal with FromContext. A nil scopeFor is
// OpenHealth(ScopeAdmin).
func (v *Verifier) ServerOptions(scopeFor func(fullMethod string) (scope string, open bool)) []grpc.ServerOption {
	if scopeFor == nil {
		scopeFor = OpenHealth(ScopeAdmin)
	}
	check := func(ctx context.Context, method string) (context.Context, error) {
		scope, open := scopeFor(method)
		if open {
			return ctx, nil
		}
		f := Failure{Method: method}
		if pr, ok := peer.FromContext(ctx); ok && pr.Addr != nil {
			f.Remote = pr.Addr.String()
		}
		md, _ := metadata.FromIncomingContext(ctx)
		p, err := v.authorize(ctx, md.Get("authorization"), scope, f)
		if err != nil {
			reason, desc := classify(err)
			code := codes.Unauthenticated
			switch reason {
			case ReasonScope:
				code = codes.PermissionDenied
			case ReasonNoKeys:
				code = codes.Unavailable
			}
			return nil, status.Error(code, desc)
		}
		return NewContext(ctx, p), nil
	}
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			ctx, err := check(ctx, info.FullMethod)
			if err != nil {
				return nil, err
			}
			return h(ctx, req)
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			ctx, err := check(ss.Context(), info.FullMethod)
			if err != nil {
				return err
			}
			return h(srv, &principalStream{ServerStream: ss, ctx: ctx})
		}),
	}
}

// principalStream is a ServerStream whose Context carries the Principal.
type principalStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *principalStream) Context() context.Context { return s.ctx }
