#!/bin/sh
# gen-proto.sh — regenerate the Go code of radgate's protobuf APIs.
#
# The KServe v2 predict protocol (api/kserve/v2/grpc_predict_v2.proto,
# copied from github.com/kserve/kserve@v0.15.0; see api/README.md) into
# api/kserve/v2/*.pb.go, and radgate's own API (api/radgate/v1/
# gateway.proto) into api/radgate/v1/*.pb.go.
#
# The output carries the versions of its generators in its header, so every
# one is pinned: protoc is Debian's protobuf-compiler (3.21.12 in bookworm
# and trixie; scripts/test-deps.sh installs it as root), the plugins are
# built with `go install` at the versions below into bin/tools (gitignored).
#
#   sh scripts/gen-proto.sh          regenerate in place (make generate)
#   sh scripts/gen-proto.sh -check   regenerate into a temporary folder and
#                                    fail when it differs from the tree
#                                    (make check-generated)
#   sh scripts/gen-proto.sh -tools   exit 0 when protoc is the pinned one,
#                                    after installing the plugins
set -eu

PROTOC_VERSION="libprotoc 3.21.12"
PROTOC_GEN_GO=google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
PROTOC_GEN_GO_GRPC=google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2

cd "$(dirname "$0")/.."
root=$(pwd)
tools="$root/bin/tools"
GO=${GO:-go}

# tool PATH_IN_MODULE@VERSION: build a plugin into bin/tools unless the
# binary there is already that version (go version -m reads its build info).
tool() {
	name=$(basename "${1%@*}")
	want=${1#*@}
	if [ -x "$tools/$name" ] && "$GO" version -m "$tools/$name" 2>/dev/null | grep -q "[[:space:]]mod[[:space:]].*[[:space:]]$want[[:space:]]"; then
		return 0
	fi
	echo "gen-proto: go install $1" >&2
	GOBIN="$tools" GOFLAGS=-mod=mod "$GO" install "$1"
}

check_protoc() {
	if ! command -v protoc >/dev/null 2>&1; then
		echo "gen-proto: protoc not found (Debian: apt-get install protobuf-compiler)" >&2
		return 1
	fi
	have=$(protoc --version)
	if [ "$have" != "$PROTOC_VERSION" ]; then
		echo "gen-proto: protoc is $have, want $PROTOC_VERSION (the generated headers name it)" >&2
		return 1
	fi
}

mode=${1:-}
check_protoc
tool "$PROTOC_GEN_GO"
tool "$PROTOC_GEN_GO_GRPC"
[ "$mode" = -tools ] && exit 0

# APIS: each API's folder and proto file.
APIS="api/kserve/v2:grpc_predict_v2.proto api/radgate/v1:gateway.proto"

# gen OUTDIR: generate every API into OUTDIR (the repository root or a copy
# of its layout).
gen() {
	for api in $APIS; do
		dir=${api%%:*}
		mkdir -p "$1/$dir"
		# --proto_path is the proto's folder so that the header's "source:"
		# line does not depend on where the repository is checked out.
		PATH="$tools:$PATH" protoc --proto_path="$dir" \
			--go_out="$1/$dir" --go_opt=paths=source_relative \
			--go-grpc_out="$1/$dir" --go-grpc_opt=paths=source_relative \
			"${api#*:}"
	done
}

case "$mode" in
"")
	gen "$root"
	;;
-check)
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	gen "$tmp"
	for api in $APIS; do
		dir=${api%%:*}
		if ! diff -r -x '*.proto' -x doc.go "$tmp/$dir" "$root/$dir" >&2; then
			echo "gen-proto: generated code differs from $dir: run make generate and commit it" >&2
			exit 1
		fi
	done
	;;
*)
	echo "usage: $0 [-check|-tools]" >&2
	exit 2
	;;
esac
