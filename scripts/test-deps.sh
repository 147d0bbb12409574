#!/bin/sh
# test-deps.sh — make sure the real peers the test suite talks to are installed.
#
# Checks for DCMTK, dicom3tools, Orthanc with its DICOMweb plugin, pydicom's
# sample files, Chromium (headless, for the worklist page's browser test),
# SoftHSM2 (a PKCS #11 token) and a C compiler (for test/peers/bindlo.c).
# When something is missing and we are root, runs `apt-get update` once and
# installs the Debian packages; when not root, says what is missing and
# carries on: the tests that need it skip with a message (or fail under
# RADGATE_REQUIRE_PEERS=1).
#
# With the argument `bench`, also what `make bench` needs to generate its
# models and run the Node baseline: python3-torch, python3-torchvision,
# python3-onnx, nodejs and npm.
#
# Idempotent; when everything is present it only tests for files (well under
# a second). Called by `make test` (and `make bench`).
set -u

PATH="$PATH:/usr/sbin:/sbin"

missing_pkgs=""
missing_what=""

need() { # need PACKAGE WHAT TEST...
	pkg=$1
	what=$2
	shift 2
	if ! "$@" >/dev/null 2>&1; then
		case " $missing_pkgs " in *" $pkg "*) ;; *) missing_pkgs="$missing_pkgs $pkg" ;; esac
		missing_what="$missing_what $what"
	fi
}

for tool in storescu storescp echoscu dcmdump dcmodify dcmconv dcmcjpeg dcmcjpls; do
	need dcmtk "$tool" command -v "$tool"
done
need dicom3tools dciodvfy command -v dciodvfy
need orthanc Orthanc command -v Orthanc
need orthanc-dicomweb libOrthancDicomWeb.so test -e /usr/share/orthanc/plugins/libOrthancDicomWeb.so
need python3-pydicom pydicom-test-files test -e /usr/lib/python3/dist-packages/pydicom/data/test_files/CT_small.dcm
need gcc cc command -v cc
need libc6-dev libdl test -e /usr/include/dlfcn.h
# pydicom decodes JPEG and JPEG 2000 references through Pillow.
need python3-pil pillow /usr/bin/python3 -c 'import PIL'
# The RIS stand-in of the HL7 tests (test/peers/hl7-server.py).
need python3-hl7 hl7 /usr/bin/python3 -c 'import hl7.mllp'
# Headless Chromium for the worklist page's browser test (web/, chromedp).
need chromium chromium command -v chromium
# The audit trail's schema check (xmllint --relaxng after trang) and its
# syslog collector over TLS (audit/).
need libxml2-utils xmllint command -v xmllint
need trang trang command -v trang
need rsyslog rsyslogd command -v rsyslogd
need rsyslog-gnutls rsyslog-gtls test -e /usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_gtls.so
# A real PKCS #11 token for the HSM key provider (kms/).
need softhsm2 softhsm2 test -e /usr/lib/softhsm/libsofthsm2.so
# The protobuf stubs' generator (scripts/gen-proto.sh; make check-generated).
need protobuf-compiler protoc command -v protoc
if [ "${1:-}" = bench ]; then
	need python3-torch torch /usr/bin/python3 -c 'import torch'
	need python3-torchvision torchvision /usr/bin/python3 -c 'import torchvision'
	need python3-onnx onnx /usr/bin/python3 -c 'import onnx'
	need nodejs node command -v node
	need npm npm command -v npm
fi

# Go tools the gRPC API's tests drive, built into bin/tools (gitignored) at
# pinned versions: grpcurl and ghz as peers, protoc's Go plugins for
# scripts/gen-proto.sh. Not root-only; a failed build (no module proxy)
# leaves the tests that need the tool to skip.
gobin="$(cd "$(dirname "$0")/.." && pwd)/bin/tools"
for mod in github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.4 github.com/bojand/ghz/cmd/ghz@v0.93.0 \
	google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12 google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2; do
	name=$(basename "${mod%@*}")
	if [ ! -x "$gobin/$name" ] || ! go version -m "$gobin/$name" 2>/dev/null | grep -q "[[:space:]]${mod#*@}[[:space:]]"; then
		echo "test-deps: go install $mod" >&2
		GOBIN="$gobin" GOFLAGS=-mod=mod go install "$mod" >&2 || echo "test-deps: $name not built; tests that need it will skip." >&2
	fi
done

if [ -z "$missing_pkgs" ]; then
	exit 0
fi

echo "test-deps: missing:$missing_what (Debian packages:$missing_pkgs)" >&2

if [ "$(id -u)" != 0 ]; then
	echo "test-deps: not root; not installing. Tests that need these will skip." >&2
	echo "test-deps: to install: sudo apt-get install -y --no-install-recommends$missing_pkgs" >&2
	exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
	echo "test-deps: no apt-get here; install the packages above by other means. Tests that need them will skip." >&2
	exit 0
fi

# The full peer set, so one install brings everything to the same state.
pkgs="dcmtk dicom3tools orthanc orthanc-dicomweb python3-pydicom python3-pil python3-hl7 chromium"
for p in $missing_pkgs; do
	case " $pkgs " in *" $p "*) ;; *) pkgs="$pkgs $p" ;; esac
done

export DEBIAN_FRONTEND=noninteractive
echo "test-deps: apt-get update" >&2
if ! apt-get update -qq >&2; then
	echo "test-deps: apt-get update failed; tests that need the packages will skip." >&2
	exit 0
fi
echo "test-deps: apt-get install$pkgs" >&2
# Orthanc's package starts a service when an init system runs; tests start
# their own instances on other ports, so that is harmless.
if ! apt-get install -y -qq --no-install-recommends $pkgs >&2; then
	echo "test-deps: apt-get install failed; tests that need the packages will skip." >&2
fi
exit 0
