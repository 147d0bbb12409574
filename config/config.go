// Package config loads radgate's settings. Precedence, lowest first:
// built-in defaults < config file (YAML) < environment (RADGATE_*) <
// command-line flags. Every setting is declared once, in settings(), with
// its key, default and help; the file, the environment, the flags and the
// documentation are all derived from that table.
//
// Keys are lower case with underscores (dimse_max_associations); in the
// file, nesting is allowed and joined with "_" (dimse: {max_associations: 8}),
// in the environment they are upper case with the RADGATE_ prefix.
package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// ErrInvalid wraps every validation error.
var ErrInvalid = errors.New("config: invalid setting")

// EnvPrefix starts every environment variable radgate reads.
const EnvPrefix = "RADGATE_"

// Config is the validated set of settings.
type Config struct {
	DataDir         string
	AETitle         string
	DIMSEAddr       string
	HTTPAddr        string
	GRPCAddr        string
	BlobKeyFile     string
	BlobKMS         string
	AuditRetention  time.Duration
	AuditSyslog     string
	AuditSyslogCA   string
	AuditSyslogCert string
	AuditSyslogKey  string
	// OAuth 2 bearer tokens and the page's sign-in.
	AuthJWKS         string
	AuthIssuer       string
	AuthAudience     string
	AuthCA           string
	AuthAuthorizeURL string
	AuthTokenURL     string
	AuthClientID     string
	AuthIdleTimeout  time.Duration
	// TLS: one server identity for the DIMSE TLS port, HTTPS and gRPC.
	TLSCert      string
	TLSKey       string
	TLSClientCA  string
	TLSPeerCA    string
	DIMSETLSAddr string
	LogLevel     string
	LogFormat    string

	DIMSEMaxPDU          uint32
	DIMSEMaxAssociations int
	DIMSEARTIM           time.Duration
	DIMSEIdleTimeout     time.Duration
	DIMSEAllowedCalling  []string
	DIMSEAllowedPeers    []netip.Prefix
	DIMSEAnyCalledAE     bool

	MinFreeDisk      int64
	MaxInstanceBytes int64
	Duplicates       string
	ShutdownGrace    time.Duration
	PyroscopeURL     string

	ModelsDir         string
	ORTLib            string
	Device            string
	InferenceThreads  int
	InferenceWorkers  int
	InferenceMaxQueue int

	HTTPMaxHeader    int
	DICOMwebMaxBody  int64
	DICOMwebMaxParts int

	StudyQuiet          time.Duration
	StudyReleaseQuiet   time.Duration
	StudyRetention      time.Duration
	ResultsTo           []string
	WorklistHL7To       []string
	WorklistUPSTo       []string
	DeliveryMaxAttempts int
	DeliveryBackoff     time.Duration
	DeliveryBackoffMax  time.Duration
	JobWorkers          int

	PublicURL          string
	FHIRURL            string
	FHIRToken          string
	FHIRClientID       string
	FHIRKeyFile        string
	FHIRKeyID          string
	FHIRTokenURL       string
	FHIRScopes         []string
	FHIRTLSCert        string
	FHIRTLSKey         string
	FHIRTLSCA          string
	FHIRPatientSystem  string
	FHIRUnknownPatient string

	// Routes are the routing rules, from the config file's routes list
	// (empty: the built-in defaults).
	Routes []Route
}

// Route is one routing rule as the config file writes it (study.Compile
// checks and compiles it):
//
//	routes:
//	  - name: head-ct
//	    match: {modality: [CT], body_part: [HEAD, BRAIN], series_description: "(?i)axial", min_images: 10}
//	    models: [ct-ich]
//	    priority: HIGH
//	    quiet: 5s
//	    destinations: ["dimse://PACS@pacs.example:104"]
type Route struct {
	Name         string     `yaml:"name"`
	Match        RouteMatch `yaml:"match"`
	Models       []string   `yaml:"models"`
	Priority     string     `yaml:"priority"`     // LOW, ROUTINE (default), HIGH or STAT
	Quiet        string     `yaml:"quiet"`        // silence before the study counts as complete ("": study_quiet)
	Destinations []string   `yaml:"destinations"` // "": results_to
}

// RouteMatch is what a series must be for a route to take it. Empty fields
// match anything; lists match any of their values (case-insensitive for
// codes and AE titles).
type RouteMatch struct {
	Modality          []string `yaml:"modality"`
	BodyPart          []string `yaml:"body_part"`
	SOPClass          []string `yaml:"sop_class"`
	SeriesDescription string   `yaml:"series_description"` // a regular expression (RE2)
	CalledAE          []string `yaml:"called_ae"`
	CallingAE         []string `yaml:"calling_ae"`
	MinImages         int      `yaml:"min_images"`
	MaxImages         int      `yaml:"max_images"` // 0: no maximum
}

// Setting describes one configurable value.
type Setting struct {
	Key     string // lower_snake
	Default string
	Help    string
	set     func(c *Config, v string) error
}

// Env is the environment variable name of the setting.
func (s Setting) Env() string { return EnvPrefix + strings.ToUpper(s.Key) }

// Flag is the command-line flag name of the setting.
func (s Setting) Flag() string { return strings.ReplaceAll(s.Key, "_", "-") }

// Settings lists every setting, in documentation order.
func Settings() []Setting {
	return []Setting{
		{"data_dir", "./var", "folder for the instance log (`segments/`, 256 MiB of it made ahead at start), the index and the audit trail", func(c *Config, v string) error {
			c.DataDir = v
			return nonEmpty(v)
		}},
		{"ae_title", "RADGATE", "our DICOM AE title (1-16 characters, no backslash or control characters)", func(c *Config, v string) error {
			c.AETitle = v
			return aeTitle(v)
		}},
		{"dimse_addr", ":11112", "DIMSE (DICOM upper layer) listen address", func(c *Config, v string) error {
			c.DIMSEAddr = v
			return hostPort(v)
		}},
		{"http_addr", ":8080", "HTTP listen address: DICOMweb (/dicomweb), /healthz, /readyz, /metrics", func(c *Config, v string) error {
			c.HTTPAddr = v
			return hostPort(v)
		}},
		{"grpc_addr", ":50051", "gRPC listen address: the KServe v2 inference protocol (inference.GRPCInferenceService), radgate.v1.Gateway, health and reflection", func(c *Config, v string) error {
			c.GRPCAddr = v
			return hostPort(v)
		}},
		{"tls_cert", "", "server certificate chain (PEM) for TLS 1.2+ under the BCP 195 profile (PS3.15 B.12): when set, HTTP and gRPC serve TLS only and DIMSE also listens on dimse_tls_addr; reloaded when the file changes (empty: no TLS)", func(c *Config, v string) error {
			c.TLSCert = v
			return nil
		}},
		{"tls_key", "", "private key (PEM) of tls_cert", func(c *Config, v string) error {
			c.TLSKey = v
			return nil
		}},
		{"tls_client_ca", "", "CA certificates (PEM) that sign DIMSE peers' client certificates: when set, a peer on dimse_tls_addr must present a valid one (node authentication)", func(c *Config, v string) error {
			c.TLSClientCA = v
			return nil
		}},
		{"tls_peer_ca", "", "CA certificates (PEM) that dimse+tls:// result destinations' certificates must chain to (empty: the system's); radgate presents tls_cert when the peer asks for a client certificate", func(c *Config, v string) error {
			c.TLSPeerCA = v
			return nil
		}},
		{"dimse_tls_addr", ":2762", "DIMSE over TLS listen address (the DICOM TLS port; used when tls_cert is set)", func(c *Config, v string) error {
			c.DIMSETLSAddr = v
			return hostPort(v)
		}},
		{"blob_key_file", "", "key file (made by radgate keys init; mode 0600) whose key-encryption keys wrap a fresh AES-256-GCM data key per stored instance: every new instance is encrypted at rest (empty: stored in clear — the index, which holds patient names and IDs, is not encrypted by radgate either way)", func(c *Config, v string) error {
			c.BlobKeyFile = v
			return nil
		}},
		{"blob_kms", "", "PKCS #11 token (an HSM) whose AES key wraps each stored instance's data key instead of blob_key_file's keys, the key never leaving the token: an RFC 7512 URI pkcs11:token=LABEL;object=KEY?module-path=LIB&pin-source=PINFILE (made by radgate keys init --pkcs11 URI; rotate by making a new object and pointing this at it, keeping the old ones on the token)", func(c *Config, v string) error {
			c.BlobKMS = v
			if v != "" && !strings.HasPrefix(v, "pkcs11:") {
				return errors.New("want a PKCS #11 URI, pkcs11:token=…;object=…?module-path=…&pin-source=…")
			}
			return nil
		}},
		{"audit_retention", "52608h", "how long the audit trail (data_dir/audit: PS3.15 A.5 messages, hash-chained) keeps its records; the default is six years counted generously (6×365 days + 2 leap days)", func(c *Config, v string) (err error) {
			c.AuditRetention, err = positiveDuration(v)
			return err
		}},
		{"audit_syslog", "", "also forward every audit record to a syslog collector (RFC 5424): tls://HOST:6514 (RFC 5425) or tcp://HOST:514; from the durable trail, so none is lost while it is down (empty: off)", func(c *Config, v string) error {
			c.AuditSyslog = v
			if v != "" && !strings.HasPrefix(v, "tls://") && !strings.HasPrefix(v, "tcp://") {
				return errors.New("want tls://HOST:PORT or tcp://HOST:PORT")
			}
			return nil
		}},
		{"audit_syslog_ca", "", "CA certificates (PEM) the syslog collector's certificate must chain to (empty: the system's)", func(c *Config, v string) error {
			c.AuditSyslogCA = v
			return nil
		}},
		{"audit_syslog_cert", "", "client certificate (PEM) for a collector that authenticates its senders", func(c *Config, v string) error {
			c.AuditSyslogCert = v
			return nil
		}},
		{"audit_syslog_key", "", "private key (PEM) of audit_syslog_cert", func(c *Config, v string) error {
			c.AuditSyslogKey = v
			return nil
		}},
		{"auth_jwks", "", "OAuth 2 authorization server's JWK Set (an https URL or a file): when set, every HTTP and gRPC call but health needs a bearer JWT it signed, with the scope the call needs (empty: authentication OFF, for a development machine only)", func(c *Config, v string) error {
			c.AuthJWKS = v
			return nil
		}},
		{"auth_issuer", "", "the tokens' issuer (iss) — required with auth_jwks", func(c *Config, v string) error {
			c.AuthIssuer = v
			return nil
		}},
		{"auth_audience", "radgate", "the audience (aud) tokens must name", func(c *Config, v string) error {
			c.AuthAudience = v
			return nonEmpty(v)
		}},
		{"auth_ca", "", "CA certificates (PEM) the JWK Set's and token endpoint's https certificates must chain to (empty: the system's)", func(c *Config, v string) error {
			c.AuthCA = v
			return nil
		}},
		{"auth_authorize_url", "", "authorization endpoint for the worklist page's sign-in (OAuth 2 authorization code with PKCE; empty: the page takes bearer tokens only, e.g. from a reverse proxy)", func(c *Config, v string) error {
			c.AuthAuthorizeURL = v
			return httpURL(v)
		}},
		{"auth_token_url", "", "token endpoint for the page's sign-in", func(c *Config, v string) error {
			c.AuthTokenURL = v
			return httpURL(v)
		}},
		{"auth_client_id", "radgate-worklist", "OAuth 2 client ID of the worklist page (a public client)", func(c *Config, v string) error {
			c.AuthClientID = v
			return nil
		}},
		{"auth_idle_timeout", "15m", "the page signs a user out after this long without a request", func(c *Config, v string) (err error) {
			c.AuthIdleTimeout, err = positiveDuration(v)
			return err
		}},
		{"log_level", "info", "debug, info, warn or error", func(c *Config, v string) error {
			c.LogLevel = v
			return oneOf(v, "debug", "info", "warn", "error")
		}},
		{"log_format", "text", "text or json", func(c *Config, v string) error {
			c.LogFormat = v
			return oneOf(v, "text", "json")
		}},
		{"dimse_max_pdu", "4MiB", "largest P-DATA-TF PDU we accept (advertised in A-ASSOCIATE)", func(c *Config, v string) error {
			n, err := ParseBytes(v)
			if err == nil && (n < 4096 || n > 1<<32-1) {
				err = fmt.Errorf("%d is outside 4KiB to 4GiB", n)
			}
			c.DIMSEMaxPDU = uint32(n)
			return err
		}},
		{"dimse_max_associations", "64", "concurrent associations; more are rejected with local-limit-exceeded", func(c *Config, v string) (err error) {
			c.DIMSEMaxAssociations, err = atLeast(v, 1)
			return err
		}},
		{"dimse_artim", "30s", "ARTIM timer: wait for A-ASSOCIATE-RQ after connect, and for close after release or abort", func(c *Config, v string) (err error) {
			c.DIMSEARTIM, err = positiveDuration(v)
			return err
		}},
		{"dimse_idle_timeout", "5m", "abort an established association silent this long", func(c *Config, v string) (err error) {
			c.DIMSEIdleTimeout, err = positiveDuration(v)
			return err
		}},
		{"dimse_allowed_calling", "", "comma list of calling AE titles allowed to associate (empty: any)", func(c *Config, v string) error {
			c.DIMSEAllowedCalling = list(v)
			for _, ae := range c.DIMSEAllowedCalling {
				if err := aeTitle(ae); err != nil {
					return err
				}
			}
			return nil
		}},
		{"dimse_allowed_peers", "", "comma list of addresses or CIDR prefixes allowed to connect (empty: any)", func(c *Config, v string) error {
			c.DIMSEAllowedPeers = nil
			for _, s := range list(v) {
				p, err := parsePrefix(s)
				if err != nil {
					return err
				}
				c.DIMSEAllowedPeers = append(c.DIMSEAllowedPeers, p)
			}
			return nil
		}},
		{"dimse_any_called_ae", "false", "accept associations whatever Called AE Title they name", func(c *Config, v string) (err error) {
			c.DIMSEAnyCalledAE, err = strconv.ParseBool(v)
			return err
		}},
		{"min_free_disk", "1GiB", "refuse instances (status A700 out of resources) when the data folder's free space falls below this", func(c *Config, v string) (err error) {
			c.MinFreeDisk, err = ParseBytes(v)
			return err
		}},
		{"max_instance_size", "0", "largest instance accepted (0: no limit)", func(c *Config, v string) (err error) {
			c.MaxInstanceBytes, err = ParseBytes(v)
			return err
		}},
		{"duplicates", "keep-first", "same SOP Instance UID with different content: keep-first (answer a warning), replace, or reject", func(c *Config, v string) error {
			c.Duplicates = v
			return oneOf(v, "keep-first", "replace", "reject")
		}},
		{"shutdown_grace", "30s", "on SIGTERM, how long in-flight associations may finish before they are aborted", func(c *Config, v string) (err error) {
			c.ShutdownGrace, err = positiveDuration(v)
			return err
		}},
		{"models_dir", "./models", "model repository: NAME/VERSION/manifest.yaml with the ONNX file and model card", func(c *Config, v string) error {
			c.ModelsDir = v
			return nonEmpty(v)
		}},
		{"ort_lib", "", "ONNX Runtime shared library (empty: lib/libonnxruntime.so.1 next to the radgate binary, where make build puts it)", func(c *Config, v string) error {
			c.ORTLib = v
			return nil
		}},
		{"device", "cpu", "where models run: cpu, cuda or tensorrt (falls back to cpu, with one log line, where the device or provider is missing)", func(c *Config, v string) error {
			c.Device = v
			return oneOf(v, "cpu", "cuda", "tensorrt")
		}},
		{"inference_threads", "0", "cores inference uses in all (0: every core)", func(c *Config, v string) (err error) {
			c.InferenceThreads, err = atLeast(v, 0)
			return err
		}},
		{"inference_workers", "1", "batches run at once; each gets inference_threads/inference_workers threads", func(c *Config, v string) (err error) {
			c.InferenceWorkers, err = atLeast(v, 1)
			return err
		}},
		{"inference_max_queue", "1024", "frames waiting per model and priority before requests are refused (backpressure)", func(c *Config, v string) (err error) {
			c.InferenceMaxQueue, err = atLeast(v, 1)
			return err
		}},
		{"study_quiet", "10s", "silence after the last instance of a study before it counts as complete and runs (a route may set its own)", func(c *Config, v string) (err error) {
			c.StudyQuiet, err = positiveDuration(v)
			return err
		}},
		{"study_release_quiet", "2s", "silence after a DIMSE association that carried a study is released before the study counts as complete (0: ignore releases)", func(c *Config, v string) (err error) {
			c.StudyReleaseQuiet, err = nonNegativeDuration(v)
			return err
		}},
		{"study_retention", "0", "how long a study is kept once settled — every instance evaluated, its results delivered, its workitem not in progress, nothing changed since — before it is purged and its stored instances erased, audited as DICOM Study Deleted (a study whose delivery gave up is kept); 0: studies are kept until an administrator deletes them (DELETE /dicomweb/studies/{study})", func(c *Config, v string) (err error) {
			c.StudyRetention, err = nonNegativeDuration(v)
			return err
		}},
		{"http_max_header", "64KiB", "largest HTTP request header block accepted (431 beyond)", func(c *Config, v string) error {
			n, err := ParseBytes(v)
			if err == nil && (n < 4096 || n > 16<<20) {
				err = fmt.Errorf("%d is outside 4KiB to 16MiB", n)
			}
			c.HTTPMaxHeader = int(n)
			return err
		}},
		{"dicomweb_max_body", "4GiB", "largest STOW-RS request body (413 beyond; instances before the limit stay stored)", func(c *Config, v string) (err error) {
			c.DICOMwebMaxBody, err = ParseBytes(v)
			if err == nil && c.DICOMwebMaxBody < 1<<20 {
				err = errors.New("must be at least 1MiB")
			}
			return err
		}},
		{"dicomweb_max_parts", "10000", "most instances in one STOW-RS request (413 beyond)", func(c *Config, v string) (err error) {
			c.DICOMwebMaxParts, err = atLeast(v, 1)
			return err
		}},
		{"results_to", "", "comma list of result destinations: dimse://AE@HOST:PORT (C-STORE), dimse+tls://AE@HOST:PORT (C-STORE over TLS; tls_peer_ca, tls_cert) or a DICOMweb base URL http(s)://HOST/PATH (STOW-RS); routes may name their own", func(c *Config, v string) error {
			c.ResultsTo = list(v)
			return nil
		}},
		{"worklist_hl7_to", "", "comma list of HL7 v2.5 receivers (a RIS), mllp://HOST:PORT: each gets an OMI^O23 when a workitem's priority changes and an ORU^R01 (preliminary) for each AI result, through the outbox", func(c *Config, v string) error {
			c.WorklistHL7To = list(v)
			return nil
		}},
		{"worklist_ups_to", "", "comma list of external UPS-RS worklist managers (DICOMweb base URLs, e.g. another radgate's http://HOST:8080/dicomweb): each workitem is created there and kept updated (priority, findings) through the outbox", func(c *Config, v string) error {
			c.WorklistUPSTo = list(v)
			return nil
		}},
		{"delivery_max_attempts", "12", "attempts at delivering a result before it is dead-lettered", func(c *Config, v string) (err error) {
			c.DeliveryMaxAttempts, err = atLeast(v, 1)
			return err
		}},
		{"delivery_backoff", "5s", "wait after a delivery's first failed attempt; doubled after each (with jitter)", func(c *Config, v string) (err error) {
			c.DeliveryBackoff, err = positiveDuration(v)
			return err
		}},
		{"delivery_backoff_max", "10m", "longest wait between delivery attempts", func(c *Config, v string) (err error) {
			c.DeliveryBackoffMax, err = positiveDuration(v)
			return err
		}},
		{"job_workers", "2", "inference jobs (studies) run at once; the scheduler still batches and orders their frames by priority", func(c *Config, v string) (err error) {
			c.JobWorkers, err = atLeast(v, 1)
			return err
		}},
		{"public_url", "", "radgate's HTTP base URL as others reach it, for the FHIR Endpoint of its WADO-RS (empty: http://HOSTNAME:PORT of http_addr)", func(c *Config, v string) error {
			c.PublicURL = strings.TrimSuffix(v, "/")
			return httpURL(v)
		}},
		{"fhir_url", "", "FHIR R4 base URL of the EHR: ImagingStudy when a study is complete, DiagnosticReport + Observations for AI results (empty: off)", func(c *Config, v string) error {
			c.FHIRURL = strings.TrimSuffix(v, "/")
			return httpURL(v)
		}},
		{"fhir_token", "", "static bearer token for the FHIR server (prefer SMART Backend Services: fhir_client_id and fhir_key_file)", func(c *Config, v string) error {
			c.FHIRToken = v
			return nil
		}},
		{"fhir_client_id", "", "SMART Backend Services client ID (with fhir_key_file: client_credentials with a private_key_jwt assertion)", func(c *Config, v string) error {
			c.FHIRClientID = v
			return nil
		}},
		{"fhir_key_file", "", "PEM private key of the SMART client: RSA (RS384) or EC P-384 (ES384)", func(c *Config, v string) error {
			c.FHIRKeyFile = v
			return nil
		}},
		{"fhir_key_id", "", "kid of the SMART client's key, as registered with the EHR (its JWKS)", func(c *Config, v string) error {
			c.FHIRKeyID = v
			return nil
		}},
		{"fhir_token_url", "", "SMART token endpoint (empty: discovered from FHIR_URL/.well-known/smart-configuration)", func(c *Config, v string) error {
			c.FHIRTokenURL = v
			return httpURL(v)
		}},
		{"fhir_scopes", "system/ImagingStudy.write,system/DiagnosticReport.write,system/Observation.write,system/Device.write,system/Endpoint.write,system/Patient.read", "SMART scopes requested", func(c *Config, v string) error {
			c.FHIRScopes = list(v)
			return nil
		}},
		{"fhir_tls_cert", "", "client certificate (PEM) for mutual TLS with the FHIR server", func(c *Config, v string) error {
			c.FHIRTLSCert = v
			return nil
		}},
		{"fhir_tls_key", "", "private key (PEM) of fhir_tls_cert", func(c *Config, v string) error {
			c.FHIRTLSKey = v
			return nil
		}},
		{"fhir_tls_ca", "", "CA certificates (PEM) the FHIR server's certificate must chain to (empty: the system's)", func(c *Config, v string) error {
			c.FHIRTLSCA = v
			return nil
		}},
		{"fhir_patient_system", "", "identifier system of DICOM Patient ID in the EHR, used to find the Patient (empty: urn:radgate:patient-id)", func(c *Config, v string) error {
			c.FHIRPatientSystem = v
			return nil
		}},
		{"fhir_unknown_patient", "defer", "no Patient with the study's identifier: defer (retry; the EHR may register the patient) or create (from the DICOM demographics)", func(c *Config, v string) error {
			c.FHIRUnknownPatient = v
			return oneOf(v, "defer", "create")
		}},
		{"pyroscope_url", "", "Pyroscope server URL for continuous profiling (empty: off)", func(c *Config, v string) error {
			c.PyroscopeURL = v
			if v != "" && !strings.HasPrefix(v, "http://") && !strings.HasPrefix(v, "https://") {
				return errors.New("must be an http(s) URL")
			}
			return nil
		}},
	}
}

// httpURL accepts "" or an absolute http(s) URL.
func httpURL(v string) error {
	if v == "" {
		return nil
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("must be an http(s) URL")
	}
	return nil
}

// loader collects values from the sources in precedence order.
type loader struct {
	values map[string]string // key → raw value
	origin map[string]string // key → where the value came from
	routes []Route
}

// Load builds the configuration: defaults, then the file (if path is not
// empty), then the environment, then the flags set on fs (registered with
// RegisterFlags). Any bad value is an error naming the setting and its
// source.
func Load(path string, environ []string, fs *flag.FlagSet) (*Config, error) {
	l := &loader{values: map[string]string{}, origin: map[string]string{}}
	for _, s := range Settings() {
		l.values[s.Key], l.origin[s.Key] = s.Default, "default"
	}
	if path != "" {
		if err := l.file(path); err != nil {
			return nil, err
		}
	}
	if err := l.env(environ); err != nil {
		return nil, err
	}
	if fs != nil {
		fs.Visit(func(f *flag.Flag) {
			key := strings.ReplaceAll(f.Name, "-", "_")
			if _, ok := l.values[key]; ok {
				l.values[key], l.origin[key] = f.Value.String(), "flag --"+f.Name
			}
		})
	}
	c := &Config{Routes: l.routes}
	var errs []error
	for _, s := range Settings() {
		if err := s.set(c, l.values[s.Key]); err != nil {
			errs = append(errs, fmt.Errorf("%w: %s=%q (from %s): %v", ErrInvalid, s.Key, l.values[s.Key], l.origin[s.Key], err))
		}
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, fmt.Errorf("%w: tls_cert and tls_key are set together", ErrInvalid))
	}
	if c.AuthJWKS != "" && c.AuthIssuer == "" {
		errs = append(errs, fmt.Errorf("%w: auth_jwks needs auth_issuer (the iss tokens carry)", ErrInvalid))
	}
	if (c.AuthAuthorizeURL == "") != (c.AuthTokenURL == "") || c.AuthAuthorizeURL != "" && c.AuthJWKS == "" {
		errs = append(errs, fmt.Errorf("%w: the page's sign-in needs auth_authorize_url, auth_token_url and auth_jwks together", ErrInvalid))
	}
	if c.BlobKeyFile != "" && c.BlobKMS != "" {
		errs = append(errs, fmt.Errorf("%w: blob_key_file and blob_kms both set; the key-encryption keys come from one of them", ErrInvalid))
	}
	if c.TLSClientCA != "" && c.TLSCert == "" {
		errs = append(errs, fmt.Errorf("%w: tls_client_ca needs tls_cert (client certificates are checked on the DIMSE TLS port)", ErrInvalid))
	}
	return c, errors.Join(errs...)
}

// RegisterFlags adds one flag per setting to fs. Their values are read by
// Load only when set on the command line.
func RegisterFlags(fs *flag.FlagSet) {
	for _, s := range Settings() {
		fs.String(s.Flag(), s.Default, s.Help+" (env "+s.Env()+")")
	}
}

func (l *loader) file(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return fmt.Errorf("config: %s: %w", path, err)
	}
	if r, ok := doc["routes"]; ok {
		delete(doc, "routes")
		if err := l.routesFrom(r); err != nil {
			return fmt.Errorf("%w: %s: routes: %v", ErrInvalid, path, err)
		}
	}
	flat := map[string]string{}
	if err := flatten("", doc, flat); err != nil {
		return fmt.Errorf("config: %s: %w", path, err)
	}
	var unknown []string
	for k, v := range flat {
		if _, ok := l.values[k]; !ok {
			unknown = append(unknown, k)
			continue
		}
		l.values[k], l.origin[k] = v, "file "+path
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return fmt.Errorf("%w: %s: unknown settings %s", ErrInvalid, path, strings.Join(unknown, ", "))
	}
	return nil
}

// routesFrom decodes the file's routes list strictly: a misspelt key is
// an error, not a rule that silently matches everything.
func (l *loader) routesFrom(v any) error {
	raw, err := yaml.Marshal(v)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	var routes []Route
	if err := dec.Decode(&routes); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	l.routes = routes
	return nil
}

// flatten joins nested keys with "_" and renders scalar values as strings;
// lists become comma lists.
func flatten(prefix string, m map[string]any, out map[string]string) error {
	for k, v := range m {
		key := strings.ToLower(k)
		if prefix != "" {
			key = prefix + "_" + key
		}
		switch v := v.(type) {
		case map[string]any:
			if err := flatten(key, v, out); err != nil {
				return err
			}
		case []any:
			parts := make([]string, len(v))
			for i, e := range v {
				parts[i] = fmt.Sprint(e)
			}
			out[key] = strings.Join(parts, ",")
		case nil:
			out[key] = ""
		default:
			out[key] = fmt.Sprint(v)
		}
	}
	return nil
}

func (l *loader) env(environ []string) error {
	byEnv := map[string]string{}
	for _, s := range Settings() {
		byEnv[s.Env()] = s.Key
	}
	for _, kv := range environ {
		name, v, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, EnvPrefix) {
			continue
		}
		if key, known := byEnv[name]; known {
			l.values[key], l.origin[key] = v, "env "+name
		}
	}
	return nil
}

// UnknownEnv lists RADGATE_* variables that name no setting (likely typos,
// or settings of a later version); the caller logs them.
func UnknownEnv(environ []string) []string {
	known := map[string]bool{}
	for _, s := range Settings() {
		known[s.Env()] = true
	}
	var out []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, EnvPrefix) && !known[name] {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

func nonEmpty(v string) error {
	if strings.TrimSpace(v) == "" {
		return errors.New("must not be empty")
	}
	return nil
}

// aeTitle validates an AE title (PS3.5 6.2, VR AE): 1–16 characters of the
// default repertoire, no backslash, no control characters, not all spaces.
func aeTitle(v string) error {
	if strings.TrimSpace(v) == "" || len(v) > 16 {
		return errors.New("must be 1 to 16 characters")
	}
	for _, r := range v {
		if r < 0x20 || r > 0x7e || r == '\\' {
			return fmt.Errorf("character %q is not allowed in an AE title", r)
		}
	}
	if v != strings.TrimSpace(v) {
		return errors.New("leading or trailing spaces are not significant; remove them")
	}
	return nil
}

func hostPort(v string) error {
	_, port, err := net.SplitHostPort(v)
	if err != nil {
		return err
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("bad port %q", port)
	}
	return nil
}

func oneOf(v string, allowed ...string) error {
	if slices.Contains(allowed, v) {
		return nil
	}
	return fmt.Errorf("must be one of %s", strings.Join(allowed, ", "))
}

func nonNegativeDuration(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err == nil && d < 0 {
		err = errors.New("must not be negative")
	}
	return d, err
}

func positiveDuration(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err == nil && d <= 0 {
		err = errors.New("must be positive")
	}
	return d, err
}

func list(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		return netip.ParsePrefix(s)
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// ParseBytes parses a size such as 4096, 512KiB, 4MiB, 1GiB, 2GB.
func ParseBytes(v string) (int64, error) {
	s := strings.TrimSpace(v)
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("%q is not a size (e.g. 4096, 512KiB, 4MiB, 1GiB)", v)
	}
	return n * mult, nil
}

// atLeast parses an integer no smaller than lo.
func atLeast(v string, lo int) (int, error) {
	n, err := strconv.Atoi(v)
	if err == nil && n < lo {
		err = fmt.Errorf("must be at least %d", lo)
	}
	return n, err
}
