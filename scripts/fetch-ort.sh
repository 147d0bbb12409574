#!/bin/sh
# fetch-ort.sh DEST — put the pinned ONNX Runtime shared library at DEST.
#
# The Linux x86-64 library comes from the npm package onnxruntime-node (the
# Go binding ships none): `npm pack` fetches the tarball from the npm
# registry, we extract the one file and refuse it unless its SHA-256 is the
# pinned one. Idempotent: a DEST with the right checksum is left alone.
# Called by `make build`; never commit the library.
set -eu

ORT_NPM="onnxruntime-node@1.30.0"
ORT_MEMBER="package/bin/napi-v6/linux/x64/libonnxruntime.so.1"
ORT_SHA256="ffb75a925ba05e47b235bb66e3e3911714a80b328a9c9425539feb204aa32a23"

dest=${1:?usage: fetch-ort.sh DEST}

sum() { sha256sum "$1" | cut -d' ' -f1; }

if [ -f "$dest" ] && [ "$(sum "$dest")" = "$ORT_SHA256" ]; then
	exit 0
fi
case "$(uname -s)-$(uname -m)" in
Linux-x86_64) ;;
*)
	echo "fetch-ort: no pinned ONNX Runtime for $(uname -s)-$(uname -m); set RADGATE_ORT_LIB to a libonnxruntime >= 1.24" >&2
	exit 0
	;;
esac
if ! command -v npm >/dev/null 2>&1; then
	echo "fetch-ort: npm is needed to fetch $ORT_NPM (Debian: apt-get install npm)" >&2
	exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "fetch-ort: fetching $ORT_NPM from the npm registry" >&2
(cd "$tmp" && npm pack --silent "$ORT_NPM" >/dev/null)
tar -xzf "$tmp"/onnxruntime-node-*.tgz -C "$tmp" "$ORT_MEMBER"
got=$(sum "$tmp/$ORT_MEMBER")
if [ "$got" != "$ORT_SHA256" ]; then
	echo "fetch-ort: checksum mismatch for $ORT_MEMBER: got $got, want $ORT_SHA256" >&2
	exit 1
fi
mkdir -p "$(dirname "$dest")"
mv "$tmp/$ORT_MEMBER" "$dest.tmp"
mv "$dest.tmp" "$dest"
echo "fetch-ort: $dest (ONNX Runtime 1.30.0, sha256 verified)" >&2
