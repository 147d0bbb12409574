#!/bin/sh
# build-deps.sh — make sure what `make build` needs is installed: a C
# compiler (cgo: inference/ort, imaging/codec), the codec libraries'
# headers (OpenJPEG, CharLS) and npm (to fetch ONNX Runtime).
#
# When something is missing and we are root with apt-get, installs the
# Debian packages; otherwise says what to install and fails, as the build
# cannot succeed without them. Idempotent and quiet when all is present.
set -u

missing=""
need() { # need PACKAGE TEST...
	pkg=$1
	shift
	"$@" >/dev/null 2>&1 || missing="$missing $pkg"
}
need gcc command -v cc
need libc6-dev test -e /usr/include/dlfcn.h
need libopenjp2-7-dev test -e /usr/include/openjpeg-2.5/openjpeg.h
need libcharls-dev test -e /usr/include/charls/charls.h
need pkg-config command -v pkg-config
need npm command -v npm

[ -z "$missing" ] && exit 0
echo "build-deps: missing Debian packages:$missing" >&2
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
	echo "build-deps: install them (sudo apt-get install -y --no-install-recommends$missing) and run make again" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2 && apt-get install -y -qq --no-install-recommends $missing >&2
