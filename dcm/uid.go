package dcm

import (
	"crypto/sha256"
	"encoding/hex"
	"math/big"
	"strings"
)

//go:generate sh -c "/usr/bin/python3 gen_uidtable.py > uidtable.go && gofmt -w uidtable.go"

// TransferSyntax describes how a dataset is encoded (PS3.5 Section 10).
type TransferSyntax struct {
	UID          string
	Name         string // e.g. "Explicit VR Little Endian"
	Explicit     bool   // explicit VR
	BigEndian    bool
	Deflated     bool // whole dataset deflated (RFC 1951) after the file meta
	Encapsulated bool // pixel data in fragments (compressed)
}

// Well-known UIDs.
const (
	ImplicitVRLittleEndian         = "1.2.840.10008.1.2"
	ExplicitVRLittleEndian         = "1.2.840.10008.1.2.1"
	DeflatedExplicitVRLittleEndian = "1.2.840.10008.1.2.1.99"
	ExplicitVRBigEndian            = "1.2.840.10008.1.2.2"
	VerificationSOPClass           = "1.2.840.10008.1.1"
	// ImplementationClassUID and ImplementationVersionName identify radgate
	// in A-ASSOCIATE and in the file meta information it writes.
	ImplementationClassUID    = "2.25.85511737830401325643770704672791524446" // PS3.5 B.2 UUID-derived UID
	ImplementationVersionName = "RADGATE_0"
)

// Compressed and video transfer syntaxes (PS3.5 Section 10, Annex A.4).
const (
	EncapsulatedUncompressedExplicitVRLittleEndian = "1.2.840.10008.1.2.1.98"
	JPEGBaseline8Bit                               = "1.2.840.10008.1.2.4.50"
	JPEGExtended12Bit                              = "1.2.840.10008.1.2.4.51"
	JPEGLossless                                   = "1.2.840.10008.1.2.4.57"
	JPEGLosslessSV1                                = "1.2.840.10008.1.2.4.70"
	JPEGLSLossless                                 = "1.2.840.10008.1.2.4.80"
	JPEGLSNearLossless                             = "1.2.840.10008.1.2.4.81"
	JPEG2000Lossless                               = "1.2.840.10008.1.2.4.90"
	JPEG2000                                       = "1.2.840.10008.1.2.4.91"
	JPEG2000MCLossless                             = "1.2.840.10008.1.2.4.92"
	JPEG2000MC                                     = "1.2.840.10008.1.2.4.93"
	MPEG2MPML                                      = "1.2.840.10008.1.2.4.100"
	MPEG2MPHL                                      = "1.2.840.10008.1.2.4.101"
	MPEG4HP41                                      = "1.2.840.10008.1.2.4.102"
	MPEG4HP41BD                                    = "1.2.840.10008.1.2.4.103"
	MPEG4HP422D                                    = "1.2.840.10008.1.2.4.104"
	MPEG4HP423D                                    = "1.2.840.10008.1.2.4.105"
	MPEG4HP42Stereo                                = "1.2.840.10008.1.2.4.106"
	HEVCMP51                                       = "1.2.840.10008.1.2.4.107"
	HEVCM10P51                                     = "1.2.840.10008.1.2.4.108"
	HTJ2KLossless                                  = "1.2.840.10008.1.2.4.201"
	HTJ2KLosslessRPCL                              = "1.2.840.10008.1.2.4.202"
	HTJ2K                                          = "1.2.840.10008.1.2.4.203"
	RLELossless                                    = "1.2.840.10008.1.2.5"
)

// transferSyntaxes is radgate's accepted list in preference order: the
// uncompressed syntaxes first (explicit before implicit, PS3.5 10.1 makes
// implicit VR little endian the default every peer supports), then
// lossless before lossy compression, then video. Read-only.
var transferSyntaxes = [...]TransferSyntax{
	{UID: ExplicitVRLittleEndian, Name: "Explicit VR Little Endian", Explicit: true},
	{UID: ImplicitVRLittleEndian, Name: "Implicit VR Little Endian"},
	{UID: DeflatedExplicitVRLittleEndian, Name: "Deflated Explicit VR Little Endian", Explicit: true, Deflated: true},
	{UID: ExplicitVRBigEndian, Name: "Explicit VR Big Endian (Retired)", Explicit: true, BigEndian: true},
	{UID: EncapsulatedUncompressedExplicitVRLittleEndian, Name: "Encapsulated Uncompressed Explicit VR Little Endian", Explicit: true, Encapsulated: true},
	{UID: JPEGLosslessSV1, Name: "JPEG Lossless, Non-Hierarchical, First-Order Prediction (Process 14 [Selection Value 1])", Explicit: true, Encapsulated: true},
	{UID: JPEGLossless, Name: "JPEG Lossless, Non-Hierarchical (Process 14)", Explicit: true, Encapsulated: true},
	{UID: JPEGLSLossless, Name: "JPEG-LS Lossless Image Compression", Explicit: true, Encapsulated: true},
	{UID: JPEG2000Lossless, Name: "JPEG 2000 Image Compression (Lossless Only)", Explicit: true, Encapsulated: true},
	{UID: JPEG2000MCLossless, Name: "JPEG 2000 Part 2 Multi-component Image Compression (Lossless Only)", Explicit: true, Encapsulated: true},
	{UID: HTJ2KLossless, Name: "High-Throughput JPEG 2000 Image Compression (Lossless Only)", Explicit: true, Encapsulated: true},
	{UID: HTJ2KLosslessRPCL, Name: "High-Throughput JPEG 2000 with RPCL Options Image Compression (Lossless Only)", Explicit: true, Encapsulated: true},
	{UID: RLELossless, Name: "RLE Lossless", Explicit: true, Encapsulated: true},
	{UID: JPEGBaseline8Bit, Name: "JPEG Baseline (Process 1)", Explicit: true, Encapsulated: true},
	{UID: JPEGExtended12Bit, Name: "JPEG Extended (Process 2 and 4)", Explicit: true, Encapsulated: true},
	{UID: JPEGLSNearLossless, Name: "JPEG-LS Lossy (Near-Lossless) Image Compression", Explicit: true, Encapsulated: true},
	{UID: JPEG2000, Name: "JPEG 2000 Image Compression", Explicit: true, Encapsulated: true},
	{UID: JPEG2000MC, Name: "JPEG 2000 Part 2 Multi-component Image Compression", Explicit: true, Encapsulated: true},
	{UID: HTJ2K, Name: "High-Throughput JPEG 2000 Image Compression", Explicit: true, Encapsulated: true},
	{UID: MPEG2MPML, Name: "MPEG2 Main Profile / Main Level", Explicit: true, Encapsulated: true},
	{UID: MPEG2MPHL, Name: "MPEG2 Main Profile / High Level", Explicit: true, Encapsulated: true},
	{UID: MPEG4HP41, Name: "MPEG-4 AVC/H.264 High Profile / Level 4.1", Explicit: true, Encapsulated: true},
	{UID: MPEG4HP41BD, Name: "MPEG-4 AVC/H.264 BD-compatible High Profile / Level 4.1", Explicit: true, Encapsulated: true},
	{UID: MPEG4HP422D, Name: "MPEG-4 AVC/H.264 High Profile / Level 4.2 For 2D Video", Explicit: true, Encapsulated: true},
	{UID: MPEG4HP423D, Name: "MPEG-4 AVC/H.264 High Profile / Level 4.2 For 3D Video", Explicit: true, Encapsulated: true},
	{UID: MPEG4HP42Stereo, Name: "MPEG-4 AVC/H.264 Stereo High Profile / Level 4.2", Explicit: true, Encapsulated: true},
	{UID: HEVCMP51, Name: "HEVC/H.265 Main Profile / Level 5.1", Explicit: true, Encapsulated: true},
	{UID: HEVCM10P51, Name: "HEVC/H.265 Main 10 Profile / Level 5.1", Explicit: true, Encapsulated: true},
}

// LookupTransferSyntax returns the known transfer syntax for uid.
func LookupTransferSyntax(uid string) (TransferSyntax, bool) {
	for i := range transferSyntaxes {
		if transferSyntaxes[i].UID == uid {
			return transferSyntaxes[i], true
		}
	}
	return TransferSyntax{}, false
}

// TransferSyntaxes lists every transfer syntax radgate accepts, in
// preference order. The slice is a fresh copy the caller may modify.
func TransferSyntaxes() []TransferSyntax {
	out := make([]TransferSyntax, len(transferSyntaxes))
	copy(out, transferSyntaxes[:])
	return out
}

type uidKind uint8

const (
	kindSOPClass uidKind = iota + 1
	kindTransferSyntax
)

type uidInfo struct {
	name    string
	kind    uidKind
	storage bool
}

// UIDName returns a human name for a known UID ("CT Image Storage"), or uid
// itself. It knows the UIDs of PS3.6 Table A-1 that are SOP classes or
// transfer syntaxes.
func UIDName(uid string) string {
	if ts, ok := LookupTransferSyntax(uid); ok {
		return ts.Name
	}
	if info, ok := uidTable[uid]; ok {
		return info.name
	}
	if info, ok := extraUIDs[uid]; ok {
		return info.name
	}
	return uid
}

// ValidUID reports whether s is a syntactically valid UID (PS3.5 9.1): at
// most 64 characters, dot-separated numeric components without leading
// zeros.
func ValidUID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '.' {
			n := i - start
			if n == 0 || (n > 1 && s[start] == '0') {
				return false
			}
			start = i + 1
			continue
		}
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// UIDRef is a stable, non-identifying stand-in for a UID in logs and error
// messages: UIDs can be linked to patients, so they are never logged as is.
func UIDRef(uid string) string {
	sum := sha256.Sum256([]byte(uid))
	return "uid#" + hex.EncodeToString(sum[:6])
}

// HashUID derives a UID under the root 2.25 from parts: PS3.5 B.2 makes a
// UUID written as one decimal integer a UID of its own ("2.25." and at
// most 39 digits, so at most 44 characters). The UUID is the first 128
// bits of the SHA-256 of the parts joined by "/", with the version (4) and
// variant (RFC 9562 4.1) bits set, so the same parts always give the same
// UID: a retry that derives its UIDs this way finds the instances it wrote
// before instead of making new ones. Parts that contain "/" can collide
// with other splits of the same text; callers keep "/" out of them or fix
// their number.
func HashUID(parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "/")))
	h[6] = h[6]&0x0f | 0x40
	h[8] = h[8]&0x3f | 0x80
	return "2.25." + new(big.Int).SetBytes(h[:16]).String()
}
