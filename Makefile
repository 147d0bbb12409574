# radgate — see README.md. Targets are part of the operator contract
# (CONTRACT.md): build, run, test, bench, generate, lint, fuzz.

GO       ?= go
BIN      := bin/radgate
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
LDFLAGS  := -X main.version=$(VERSION)
# Each fuzz target runs this long under `make fuzz`.
FUZZTIME ?= 60s
# The pinned ONNX Runtime library (scripts/fetch-ort.sh), next to the binary
# where `radgate serve` looks for it by default.
ORT_LIB  := bin/lib/libonnxruntime.so.1
# Tests load the same library; go test binaries do not live in bin/.
export RADGATE_ORT_LIB ?= $(CURDIR)/$(ORT_LIB)
# NVML's header marks old entry points deprecated; cgo would print them all.
export CGO_CFLAGS ?= -O2 -g -Wno-deprecated-declarations

.PHONY: build build-deps run test test-deps check-generated bench generate lint fuzz clean

build: build-deps $(ORT_LIB)
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/radgate

build-deps:
	@sh scripts/build-deps.sh

$(ORT_LIB):
	@sh scripts/fetch-ort.sh $@

# The gateway on its embedded default: data in ./var, DIMSE :11112, HTTP :8080.
run: build
	./$(BIN) serve

# Installs the real peers when missing (Debian packages when root), then the
# whole suite with the race detector, peers included.
test: build test-deps lint check-generated
	$(GO) test -race -count=1 -timeout 25m ./...
	@# The reference models on held-out phantoms, without -race (it would
	@# take minutes): prints sensitivity and specificity.
	@out=$$($(GO) test -count=1 -run '^TestReferenceModels$$' -v ./models 2>&1); s=$$?; \
		echo "$$out" | grep -E 'sensitivity|specificity|balanced|^(ok|FAIL|--- )'; exit $$s

test-deps:
	@sh scripts/test-deps.sh

# Generated code must match its generator byte for byte. The UID table's
# generator needs Debian's python3-pydicom (test-deps installs it as root);
# without it the check is skipped, except in CI.
check-generated:
	@if /usr/bin/python3 -c 'import pydicom' 2>/dev/null; then \
		$(MAKE) --no-print-directory generate && \
		{ git diff --exit-code --stat -- $$(git grep -l '^// Code generated .* DO NOT EDIT\.$$' -- '*.go') || \
			{ echo "make generate changed generated files: commit them"; exit 1; }; }; \
	elif [ -n "$$RADGATE_REQUIRE_PEERS" ]; then echo "check-generated: python3-pydicom missing"; exit 1; \
	else echo "check-generated: skipped (python3-pydicom not installed)"; fi
	@# The protobuf stubs: regenerated into a temporary folder and compared
	@# with the tree. protoc comes from Debian's protobuf-compiler (test-deps
	@# installs it as root), the plugins from go install into bin/tools.
	@if command -v protoc >/dev/null 2>&1; then GO='$(GO)' sh scripts/gen-proto.sh -check; \
	elif [ -n "$$RADGATE_REQUIRE_PEERS" ]; then echo "check-generated: protoc missing"; exit 1; \
	else echo "check-generated: protobuf stubs skipped (protobuf-compiler not installed)"; fi

generate:
	$(GO) generate ./...
	@# Without protoc (Debian protobuf-compiler) the stubs stay as committed.
	@if command -v protoc >/dev/null 2>&1 || [ -n "$$RADGATE_REQUIRE_PEERS" ]; then GO='$(GO)' sh scripts/gen-proto.sh; \
	else echo "generate: protobuf stubs skipped (protobuf-compiler not installed)"; fi

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# Side-by-side ingest benchmark against DCMTK storescp and Orthanc; prints ratios.
bench: build
	@sh scripts/test-deps.sh bench
	$(GO) run ./bench -radgate $(BIN)

fuzz:
	$(GO) test ./dimse -run '^$$' -fuzz '^FuzzReadPDU$$' -fuzztime $(FUZZTIME)
	$(GO) test ./dimse -run '^$$' -fuzz '^FuzzDecodeCommand$$' -fuzztime $(FUZZTIME)
	$(GO) test ./dimse -run '^$$' -fuzz '^FuzzServerAssociation$$' -fuzztime $(FUZZTIME)
	$(GO) test ./dcm -run '^$$' -fuzz '^FuzzOpenPart10$$' -fuzztime $(FUZZTIME)
	$(GO) test ./dcm -run '^$$' -fuzz '^FuzzScanDataset$$' -fuzztime $(FUZZTIME)
	$(GO) test ./dcm -run '^$$' -fuzz '^FuzzCharsetDecode$$' -fuzztime $(FUZZTIME)
	$(GO) test ./store -run '^$$' -fuzz '^FuzzWalkSegment$$' -fuzztime $(FUZZTIME)
	$(GO) test ./dicomweb -run '^$$' -fuzz '^FuzzSTOW$$' -fuzztime $(FUZZTIME)
	$(GO) test ./dicomweb -run '^$$' -fuzz '^FuzzQIDO$$' -fuzztime $(FUZZTIME)
	$(GO) test ./dicomweb -run '^$$' -fuzz '^FuzzAccept$$' -fuzztime $(FUZZTIME)
	$(GO) test ./dicomweb -run '^$$' -fuzz '^FuzzUPSSearch$$' -fuzztime $(FUZZTIME)
	$(GO) test ./worklist -run '^$$' -fuzz '^FuzzParseDataset$$' -fuzztime $(FUZZTIME)
	$(GO) test ./imaging -run '^$$' -fuzz '^FuzzLoad$$' -fuzztime $(FUZZTIME)
	$(GO) test ./imaging/codec -run '^$$' -fuzz '^FuzzRLE$$' -fuzztime $(FUZZTIME)
	$(GO) test ./imaging/codec -run '^$$' -fuzz '^FuzzJPEG$$' -fuzztime $(FUZZTIME)
	$(GO) test ./imaging/codec -run '^$$' -fuzz '^FuzzJPEGLS$$' -fuzztime $(FUZZTIME)
	$(GO) test ./imaging/codec -run '^$$' -fuzz '^FuzzJ2K$$' -fuzztime $(FUZZTIME)
	$(GO) test ./kms -run '^$$' -fuzz '^FuzzParseURI$$' -fuzztime $(FUZZTIME)

clean:
	rm -rf bin
