# Build, run and test the NSQ clone. `make help` lists the targets.

SHELL := /bin/bash
GO    ?= go
BIN   ?= bin

# Every main under cmd/, apps/ and bench/ that exists now; nsqlookupd,
# nsqadmin and the apps are picked up as they appear.
MAIN_PATTERNS := $(foreach d,cmd apps bench,$(if $(wildcard $(d)/*/*.go),./$(d)/...))

FUZZTIME     ?= 10s
BENCH_RUNFOR ?= 10s
BENCH_SIZE   ?= 200
E2E_TIMEOUT  ?= 15m

.PHONY: all build run run-replicated test fmt-check vet unit e2e bench-compile bench fuzz clean help

all: build

help:
	@echo 'make build   build every main under cmd/, apps/, bench/ into $(BIN)/'
	@echo 'make run     build, then run nsqlookupd, nsqd and nsqadmin in the foreground (Ctrl-C stops them)'
	@echo 'make run-replicated  build, then run nsqlookupd, three nsqd as one replica set and nsqadmin'
	@echo 'make test    gofmt check, go vet, unit tests (-race -short), e2e tests (-race), benchmarks once'
	@echo 'make bench   build, start a fresh nsqd, run bench_writer then bench_reader'
	@echo 'make fuzz    run every Fuzz* target for FUZZTIME (default 10s) each'
	@echo 'make dist    release archives for DIST_PLATFORMS (default linux/amd64 linux/arm64) in $(DIST)/'
	@echo 'make clean   remove $(BIN)/, ./data/ and $(DIST)/'

build:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ $(MAIN_PATTERNS)

run: build
	BIN=$(BIN) scripts/run-cluster.sh

run-replicated: build
	BIN=$(BIN) scripts/run-replicated.sh

test: fmt-check vet unit e2e bench-compile

fmt-check:
	@files=$$(gofmt -l $$(find . -name '*.go' -not -path './.git/*' -not -path '*/testdata/*')); \
	if [ -n "$$files" ]; then echo "gofmt needed:"; echo "$$files"; exit 1; fi

vet:
	$(GO) vet ./...

unit:
	$(GO) test -race -short ./...

e2e:
	$(GO) test -race -count=1 -timeout=$(E2E_TIMEOUT) ./e2e/...

# Benchmarks run once so they keep compiling and working (e2e has none and
# would only rebuild the binaries); -short runs the long ones small.
bench-compile:
	$(GO) test -short -run='^$$' -bench=. -benchtime=1x $$($(GO) list ./... | grep -v '/e2e')

# A fresh nsqd on free loopback ports with a temporary data dir, loaded by
# bench_writer and then drained by bench_reader.
bench: build
	@set -euo pipefail; \
	dir=$$(mktemp -d); \
	inuse() { (exec 3<>/dev/tcp/127.0.0.1/$$1) 2>/dev/null; }; \
	freeport() { local p; while :; do p=$$((20000 + RANDOM % 40000)); if ! inuse $$p && [ "$$p" != "$${1:-}" ]; then echo $$p; return; fi; done; }; \
	tcp=$$(freeport); http=$$(freeport $$tcp); \
	$(BIN)/nsqd --tcp-address=127.0.0.1:$$tcp --http-address=127.0.0.1:$$http --data-path=$$dir >$$dir/nsqd.log 2>&1 & \
	pid=$$!; \
	trap 'kill -TERM $$pid 2>/dev/null || true; wait $$pid 2>/dev/null || true; rm -rf $$dir' EXIT; \
	for i in $$(seq 100); do inuse $$http && break; sleep 0.1; done; \
	inuse $$http || { echo "nsqd did not start:"; cat $$dir/nsqd.log; exit 1; }; \
	if command -v curl >/dev/null; then \
		curl -sf -X POST "http://127.0.0.1:$$http/topic/create?topic=sub_bench" >/dev/null; \
		curl -sf -X POST "http://127.0.0.1:$$http/channel/create?topic=sub_bench&channel=ch" >/dev/null; \
	fi; \
	echo "nsqd on 127.0.0.1:$$tcp, $(BENCH_SIZE)-byte messages, $(BENCH_RUNFOR) each"; \
	$(BIN)/bench_writer --nsqd-tcp-address=127.0.0.1:$$tcp --size=$(BENCH_SIZE) --runfor=$(BENCH_RUNFOR) | sed 's/^/PUB: /'; \
	$(BIN)/bench_reader --nsqd-tcp-address=127.0.0.1:$$tcp --size=$(BENCH_SIZE) --runfor=$(BENCH_RUNFOR) | sed 's/^/SUB: /'

# Each Fuzz* target in turn (go test -fuzz takes one target of one package).
fuzz:
	@set -euo pipefail; \
	for f in $$(grep -rl --include='*_test.go' '^func Fuzz' . | sort); do \
		for name in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' $$f); do \
			echo "== $$(dirname $$f) $$name"; \
			$(GO) test -run='^$$' -fuzz="^$$name\$$" -fuzztime=$(FUZZTIME) $$(dirname $$f); \
		done; \
	done

clean:
	rm -rf $(BIN) data $(DIST)

# bench-compare: our nsqd against NSQ 1.3.0's nsqd, side by side (bench/compare is its own module; see bench/README.md).
.PHONY: bench-compare
bench-compare:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/nsqd ./cmd/nsqd
	$(GO) build -C bench/compare -o $(abspath $(BIN))/baseline-nsqd ./cmd/baseline-nsqd
	$(GO) build -C bench/compare -o $(abspath $(BIN))/bench-compare ./cmd/bench-compare
	$(BIN)/bench-compare -ours $(BIN)/nsqd -baseline $(BIN)/baseline-nsqd $(BENCH_COMPARE_FLAGS)

# bench-compare-replicated: a replica set of three of our nsqd and --durable beside
# NATS JetStream R3 (nats-server v2.15.3 built in bench/compare; issue 15, see bench/README.md).
.PHONY: bench-compare-replicated
bench-compare-replicated:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/nsqd ./cmd/nsqd
	$(GO) build -C bench/compare -o $(abspath $(BIN))/nats-server ./cmd/nats-server
	$(GO) build -C bench/compare -o $(abspath $(BIN))/bench-compare ./cmd/bench-compare
	$(BIN)/bench-compare -replicated -ours $(BIN)/nsqd -nats $(BIN)/nats-server $(BENCH_COMPARE_FLAGS)

# dist: release archives laid out like NSQ's, one per platform in DIST_PLATFORMS:
# $(DIST)/nsq-<version>.<os>-<arch>.go<go version>.tar.gz holding
# nsq-<version>.<os>-<arch>.go<go version>/bin/<every main of `make build`>,
# each with a .sha256 file (`sha256sum -c` checks it). Static binaries
# (CGO_ENABLED=0) without build paths or debug symbols (-trimpath, -s -w;
# stack traces keep function names and lines), tar metadata fixed to the last
# commit's time and root ownership, so the same commit gives the same archive.
DIST           ?= dist
DIST_PLATFORMS ?= linux/amd64 linux/arm64
DIST_VERSION   := $(shell sed -n 's/^const Binary = "\(.*\)"/\1/p' internal/version/version.go)
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)

.PHONY: dist
dist:
	@set -euo pipefail; \
	test -n "$(DIST_VERSION)" || { echo "dist: no version in internal/version/version.go"; exit 1; }; \
	gover=$$($(GO) env GOVERSION); mkdir -p $(DIST); \
	for platform in $(DIST_PLATFORMS); do \
		os=$${platform%/*}; arch=$${platform#*/}; \
		name=nsq-$(DIST_VERSION).$$os-$$arch.$$gover; \
		stage=$$(mktemp -d); trap 'rm -rf "$$stage"' EXIT; \
		mkdir -p $$stage/$$name/bin; \
		echo "dist: $(DIST)/$$name.tar.gz"; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -trimpath -ldflags="-s -w" -o $$stage/$$name/bin/ $(MAIN_PATTERNS); \
		tar -C $$stage --sort=name --owner=0 --group=0 --numeric-owner --mtime=@$(SOURCE_DATE_EPOCH) \
			-czf $(DIST)/$$name.tar.gz $$name; \
		(cd $(DIST) && sha256sum $$name.tar.gz > $$name.tar.gz.sha256); \
		rm -rf "$$stage"; trap - EXIT; \
	done
