package gateway

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/radgate/radgate/audit/audittest"
	"github.com/radgate/radgate/auth"
	"github.com/radgate/radgate/auth/authtest"
	"github.com/radgate/radgate/internal/peertest"
	"github.com/radgate/radgate/kms"
	"github.com/radgate/radgate/phantom"
	"github.com/radgate/radgate/store"
)

// secureEnv is a production-like configuration: TLS on every port and
// OAuth 2 tokens from iss, with the page's sign-in at publicURL.
func secureEnv(pki *peertest.PKI, iss *authtest.Issuer, extra ...string) []string {
	return append([]string{
		"RADGATE_TLS_CERT=" + pki.ServerCert, "RADGATE_TLS_KEY=" + pki.ServerKey,
		"RADGATE_AUTH_JWKS=" + iss.URL(), "RADGATE_AUTH_ISSUER=" + iss.Issuer(), "RADGATE_AUTH_AUDIENCE=" + authtest.Audience,
	}, extra...)
}

// tokenCase is one kind of credential and what it must get.
type tokenCase struct {
	name  string
	token func(scope string) string // "" sends no Authorization header
	http  int                       // 0: anything but 401/403
	grpc  codes.Code                // codes.OK: anything but Unauthenticated/PermissionDenied
}

func tokenCases(t *testing.T, iss *authtest.Issuer) []tokenCase {
	other := func(scope string) string {
		if scope == auth.ScopeModelsInfer {
			return auth.ScopeDICOMwebRead
		}
		return auth.ScopeModelsInfer
	}
	return []tokenCase{
		{"missing", func(string) string { return "" }, http.StatusUnauthorized, codes.Unauthenticated},
		{"expired", func(s string) string {
			return iss.Token(t, authtest.Claims{Scopes: []string{s}, Expiry: time.Now().Add(-10 * time.Minute), IssuedAt: time.Now().Add(-20 * time.Minute)})
		}, http.StatusUnauthorized, codes.Unauthenticated},
		{"wrong audience", func(s string) string {
			return iss.Token(t, authtest.Claims{Scopes: []string{s}, Audience: []string{"some-other-service"}})
		}, http.StatusUnauthorized, codes.Unauthenticated},
		{"wrong scope", func(s string) string { return iss.Token(t, authtest.Claims{Scopes: []string{other(s)}}) }, http.StatusForbidden, codes.PermissionDenied},
		{"right scope", func(s string) string { return iss.Token(t, authtest.Claims{Scopes: []string{s}}) }, 0, codes.OK},
	}
}

// TestEveryEndpointNeedsItsToken is the acceptance table: over TLS, every
// HTTP route and every gRPC method but health refuses a missing, expired,
// wrong-audience or wrong-scope token, and serves the right one. The gRPC
// methods come from the server itself, so a new one cannot be missed.
func TestEveryEndpointNeedsItsToken(t *testing.T) {
	pki := peertest.NewPKI(t)
	iss := authtest.NewIssuer(t)
	g, _, _ := startGateway(t, secureEnv(pki, iss)...)
	if b := g.Banner(context.Background()); !strings.Contains(b, "OAuth 2 bearer JWTs from "+iss.Issuer()) || !strings.Contains(b, "TLS, bearer JWT") {
		t.Errorf("banner does not say how calls are authenticated:\n%s", b)
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pki.Pool(t)}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	base := "https://" + g.HTTPAddr().String()
	const study = "1.2.826.0.1.3680043.8.498.1"
	routes := []struct{ method, path, scope string }{
		{"GET", "/metrics", auth.ScopeAdmin},
		{"GET", "/dicomweb/studies", auth.ScopeDICOMwebRead},
		{"GET", "/dicomweb/studies/" + study, auth.ScopeDICOMwebRead},
		{"GET", "/dicomweb/studies/" + study + "/metadata", auth.ScopeDICOMwebRead},
		{"GET", "/dicomweb/studies/" + study + "/series", auth.ScopeDICOMwebRead},
		{"GET", "/dicomweb/instances", auth.ScopeDICOMwebRead},
		{"GET", "/dicomweb/studies/" + study + "/series/1.2/instances/1.3/frames/1", auth.ScopeDICOMwebRead},
		{"GET", "/dicomweb/studies/" + study + "/series/1.2/instances/1.3/rendered", auth.ScopeDICOMwebRead},
		{"POST", "/dicomweb/studies", auth.ScopeDICOMwebWrite},
		{"POST", "/dicomweb/studies/" + study, auth.ScopeDICOMwebWrite},
		{"DELETE", "/dicomweb/studies/" + study, auth.ScopeAdmin},
		{"GET", "/dicomweb/workitems", auth.ScopeWorklistRead},
		{"GET", "/dicomweb/workitems/" + study, auth.ScopeWorklistRead},
		{"POST", "/dicomweb/workitems", auth.ScopeWorklistWrite},
		{"POST", "/dicomweb/workitems/" + study, auth.ScopeWorklistWrite},
		{"PUT", "/dicomweb/workitems/" + study + "/state", auth.ScopeWorklistWrite},
		{"POST", "/dicomweb/workitems/" + study + "/cancelrequest", auth.ScopeWorklistWrite},
		{"POST", "/dicomweb/workitems/1.2.840.10008.5.1.4.34.5/subscribers/PACS", auth.ScopeWorklistWrite},
		{"DELETE", "/dicomweb/workitems/1.2.840.10008.5.1.4.34.5/subscribers/PACS", auth.ScopeWorklistWrite},
		{"GET", "/dicomweb/subscribers/PACS", auth.ScopeWorklistRead},
		{"GET", "/", auth.ScopeWorklistRead},
		{"GET", "/worklist/rows", auth.ScopeWorklistRead},
		{"GET", "/worklist/items/" + study, auth.ScopeWorklistRead},
		{"POST", "/worklist/items/" + study + "/priority", auth.ScopeWorklistWrite},
		{"GET", "/worklist/static/style.css", auth.ScopeWorklistRead},
		{"GET", "/no/such/route", auth.ScopeWorklistRead}, // a route added later is closed by default
	}
	cases := tokenCases(t, iss)
	for _, rt := range routes {
		for _, c := range cases {
			t.Run(fmt.Sprintf("HTTP %s %s/%s", rt.method, rt.path, c.name), func(t *testing.T) {
				req, _ := http.NewRequest(rt.method, base+rt.path, strings.NewReader(""))
				if tok := c.token(rt.scope); tok != "" {
					req.Header.Set("Authorization", "Bearer "+tok)
				}
				resp, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				switch {
				case c.http != 0 && resp.StatusCode != c.http:
					t.Errorf("%s, want %d", resp.Status, c.http)
				case c.http == 0 && (resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden):
					t.Errorf("%s with a token holding %s", resp.Status, rt.scope)
				case c.http == http.StatusUnauthorized && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer"):
					t.Errorf("401 without a Bearer challenge: %q", resp.Header.Get("WWW-Authenticate"))
				}
			})
		}
	}
	for _, open := range []string{"/healthz", "/readyz"} {
		resp, err := client.Get(base + open)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s without a token: %s", open, resp.Status)
		}
	}

	conn, err := grpc.NewClient(g.GRPCAddr().String(), grpc.WithTransportCredentials(credentials.NewClientTLSFromCert(pki.Pool(t), "")))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	methods := 0
	for svc, info := range g.grpc.GetServiceInfo() {
		for _, m := range info.Methods {
			method := "/" + svc + "/" + m.Name
			scope, open := grpcScope(method)
			if open {
				continue
			}
			methods++
			for _, c := range cases {
				t.Run(fmt.Sprintf("gRPC %s/%s", method, c.name), func(t *testing.T) {
					ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
					defer cancel()
					if tok := c.token(scope); tok != "" {
						ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok)
					}
					code := status.Code(call(ctx, conn, method, m.IsClientStream || m.IsServerStream))
					switch {
					case c.grpc != codes.OK && code != c.grpc:
						t.Errorf("%v, want %v", code, c.grpc)
					case c.grpc == codes.OK && (code == codes.Unauthenticated || code == codes.PermissionDenied):
						t.Errorf("%v with a token holding %s", code, scope)
					}
				})
			}
		}
	}
	if methods < 12 {
		t.Errorf("only %d protected gRPC methods found", methods)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if r, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil || r.Status != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("gRPC health without a token: %v, %v", r, err)
	}
}

// call invokes a method with an empty message, as a stream where it is
// one; its error is what the server answered (authentication comes first).
func call(ctx context.Context, conn *grpc.ClientConn, method string, stream bool) error {
	if !stream {
		return conn.Invoke(ctx, method, &emptypb.Empty{}, &emptypb.Empty{})
	}
	s, err := conn.NewStream(ctx, &grpc.StreamDesc{ClientStreams: true, ServerStreams: true}, method)
	if err != nil {
		return err
	}
	_ = s.SendMsg(&emptypb.Empty{})
	_ = s.CloseSend()
	err = s.RecvMsg(&emptypb.Empty{})
	if errors.Is(err, io.EOF) {
		return nil
	}
	return err
}

// TestTLSOnEveryPort: with tls_cert, gRPC and HTTP serve TLS only (HTTP/2),
// DIMSE gains its TLS port, and plaintext is refused on the TLS ports.
func TestTLSOnEveryPort(t *testing.T) {
	pki := peertest.NewPKI(t)
	g, _, _ := startGateway(t, "RADGATE_TLS_CERT="+pki.ServerCert, "RADGATE_TLS_KEY="+pki.ServerKey)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := grpc.NewClient(g.GRPCAddr().String(), grpc.WithTransportCredentials(credentials.NewClientTLSFromCert(pki.Pool(t), "")))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if r, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil || r.Status != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("gRPC health over TLS: %v, %v", r, err)
	}
	plain, err := grpc.NewClient(g.GRPCAddr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if _, err := healthpb.NewHealthClient(plain).Check(ctx, &healthpb.HealthCheckRequest{}); err == nil {
		t.Error("a plaintext gRPC call to the TLS port succeeded")
	}
	https := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pki.Pool(t)}, ForceAttemptHTTP2: true}}
	resp, err := https.Get("https://" + g.HTTPAddr().String() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
		t.Errorf("GET /healthz over TLS: %s %s", resp.Proto, resp.Status)
	}
	if resp, err := http.Get("http://" + g.HTTPAddr().String() + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("plain HTTP on the HTTPS port was served")
		}
	}
	// The DICOM TLS port next to the plain one (no client CA configured:
	// DCMTK's anonymous TLS is enough).
	echoscu := peertest.RequireTool(t, "echoscu")
	host, port, _ := net.SplitHostPort(g.DIMSETLSAddr().String())
	peertest.Run(t, nil, echoscu, "+tla", "+cf", pki.CA, "-aec", "RADGATE", host, port)
	if b := g.Banner(context.Background()); !strings.Contains(b, "DIMSE TLS   "+g.DIMSETLSAddr().String()) || !strings.Contains(b, "HTTPS") || !strings.Contains(b, "auth        OFF") {
		t.Errorf("banner lacks the TLS ports or the authentication warning:\n%s", b)
	}
}

// TestPageSignIn: the radiologist's browser signs in through the
// authorization code flow (the issuer is simulated: no OAuth server can be
// installed here), gets a session cookie, sees who is signed in and may set
// priorities; an ML engineer sees the worklist but no priority form.
func TestPageSignIn(t *testing.T) {
	pki := peertest.NewPKI(t)
	iss := authtest.NewIssuer(t)
	port, err := peertest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	public := "https://127.0.0.1:" + strconv.Itoa(port)
	g, _, _ := startGateway(t, secureEnv(pki, iss, "RADGATE_HTTP_ADDR=127.0.0.1:"+strconv.Itoa(port), "RADGATE_PUBLIC_URL="+public,
		"RADGATE_AUTH_AUTHORIZE_URL="+iss.AuthorizeURL(), "RADGATE_AUTH_TOKEN_URL="+iss.TokenURL(), "RADGATE_AUTH_CLIENT_ID="+authtest.ClientID)...)
	if b := g.Banner(context.Background()); !strings.Contains(b, "page sign-in via "+iss.AuthorizeURL()+", idle timeout 15m0s") {
		t.Errorf("banner:\n%s", b)
	}
	for _, c := range []struct {
		name, role string
		scopes     []string
		form       bool
	}{
		{"Dr Reader", "radiologist", []string{auth.ScopeWorklistRead, auth.ScopeWorklistWrite}, true},
		{"ml.engineer", "ML engineer", []string{auth.ScopeWorklistRead, auth.ScopeModelsInfer}, false},
	} {
		t.Run(c.role, func(t *testing.T) {
			iss.SetLogin(authtest.Claims{Name: c.name, Scopes: c.scopes})
			jar, _ := cookiejar.New(nil)
			browser := &http.Client{Jar: jar, Timeout: 10 * time.Second,
				Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pki.Pool(t)}}}
			get := func(url string) (int, string) {
				req, _ := http.NewRequest("GET", url, nil)
				req.Header.Set("Accept", "text/html")
				resp, err := browser.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				return resp.StatusCode, string(b)
			}
			// / → /login → the issuer → /login/callback (a page that
			// continues to / once the session cookie is set).
			if code, body := get(public + "/"); code != http.StatusOK || !strings.Contains(body, "Continue") {
				t.Fatalf("sign-in round trip: %d\n%s", code, body)
			}
			code, body := get(public + "/")
			if code != http.StatusOK || !strings.Contains(body, "Signed in as <strong>"+c.name+"</strong> ("+c.role+")") || !strings.Contains(body, "Sign out") {
				t.Fatalf("page after sign-in: %d\n%s", code, body)
			}
		})
	}
}

// TestBlobsEncryptedAtRest: with blob_key_file an instance received over
// DIMSE is stored sealed — its patient's name is nowhere in the segment
// files — and WADO-RS still serves it as sent.
// sendSealed sends the CXR phantom of seed to g with storescu, reads it
// back over WADO-RS, and checks that no segment file under data holds its
// patient's name in clear.
func sendSealed(t *testing.T, g *Gateway, storescu, data string, seed uint64) {
	t.Helper()
	spec := phantom.Spec{Kind: phantom.KindCXR, Finding: phantom.Effusion, Seed: seed}
	sendPhantom(t, g, storescu, spec)
	// The index follows the acknowledgement by a moment.
	var resp *http.Response
	var body []byte
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		r, err := http.Get("http://" + g.HTTPAddr().String() + "/dicomweb/studies/" + spec.StudyInstanceUID())
		if err != nil {
			t.Fatal(err)
		}
		resp = r
		body, _ = io.ReadAll(r.Body)
		r.Body.Close()
		if r.StatusCode != http.StatusNotFound || time.Now().After(deadline) {
			break
		}
	}
	name := fmt.Sprintf("PHANTOM^CXR^%d", seed)
	if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte(name)) {
		t.Fatalf("WADO-RS of the sealed study: %s, %d bytes", resp.Status, len(body))
	}
	segs, _ := filepath.Glob(filepath.Join(data, "segments", "*.seg"))
	if len(segs) == 0 {
		t.Fatal("no segment files")
	}
	for _, s := range segs {
		raw, err := os.ReadFile(s)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(raw, []byte(name)) {
			t.Errorf("%s holds the patient's name in clear", s)
		}
	}
}

// TestBlobsSealedByHSM: with blob_kms, the data keys are wrapped by a key
// on a real PKCS #11 token (SoftHSM2) made by radgate keys init --pkcs11;
// a DCMTK-sent instance reads back and is sealed on disk, and a restart
// opens the store again through the token.
func TestBlobsSealedByHSM(t *testing.T) {
	storescu := peertest.RequireTool(t, "storescu")
	h := peertest.NewSoftHSM(t)
	uri := h.URI("kek-2026")
	u, err := kms.ParseURI(uri)
	if err != nil {
		t.Fatal(err)
	}
	if err := kms.GenerateKey(u); err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	g, cancel, done := startGateway(t, "RADGATE_DATA_DIR="+data, "RADGATE_BLOB_KMS="+uri)
	if b := g.Banner(context.Background()); !strings.Contains(b, "key-encryption key kek-2026 on PKCS #11 token radgate") {
		t.Errorf("banner:\n%s", b)
	}
	sendSealed(t, g, storescu, data, 22)
	cancel()
	err = <-done
	done <- err // for startGateway's cleanup
	if err != nil {
		t.Fatal(err)
	}
	g, _, _ = startGateway(t, "RADGATE_DATA_DIR="+data, "RADGATE_BLOB_KMS="+uri)
	sendSealed(t, g, storescu, data, 23)
	before := phantom.Spec{Kind: phantom.KindCXR, Finding: phantom.Effusion, Seed: 22}.StudyInstanceUID()
	r, err := http.Get("http://" + g.HTTPAddr().String() + "/dicomweb/studies/" + before)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusOK {
		t.Errorf("WADO-RS after the restart of what was sealed before it: %s", r.Status)
	}
}

func TestBlobsEncryptedAtRest(t *testing.T) {
	storescu := peertest.RequireTool(t, "storescu")
	keyFile := filepath.Join(t.TempDir(), "radgate.keys")
	if _, err := store.GenerateKeyFile(keyFile); err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	g, _, _ := startGateway(t, "RADGATE_DATA_DIR="+data, "RADGATE_BLOB_KEY_FILE="+keyFile)
	if b := g.Banner(context.Background()); !strings.Contains(b, "instances AES-256-GCM, keys "+keyFile) {
		t.Errorf("banner:\n%s", b)
	}
	sendSealed(t, g, storescu, data, 21)

	// radgate keys rotate while radgate runs: the new key is taken within
	// seconds, and audited.
	cli, err := store.OpenKeyFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	kek, err := cli.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); g.keys.Current() != kek; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the rotated key was not taken within 10 s: sealing under %q, not %q", g.keys.Current(), kek)
		}
	}
	fp := base64.StdEncoding.EncodeToString([]byte("kek:" + kek))
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(strings.Join(audittest.Messages(t, filepath.Join(data, auditDir)), "\n"), fp); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the key rotation is not in the audit trail")
		}
	}
}
