# ember — build, check and test.
#
#   make build     static bin/ember
#   make check     gofmt, vet, staticcheck, go mod tidy, unit tests with -race
#   make test      host packages (as root), unit tests, integration tests on a
#                  private containerd — the command CI runs
#   make release   static binaries for linux/amd64, arm64 and arm (v7) in dist/
#   make bench     benchmarks on a private containerd (root): one Markdown
#                  table; BENCH_OUT=FILE also writes JSON, BENCH_SHORT=1 runs
#                  tiny counts with no timing assertions (as `make test` does),
#                  BENCH_ONLY=autoscale,autoscale-fixed runs only those scenarios,
#                  BENCH_PROFILE=DIR saves the daemons' profiles there
#   make examples  examples/hello.tar, the example function's image for
#                  `ember import` (built from source: no Docker, no registry)

GO ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
PKGS := ./...
# Integration tests start containerd, CNI bridges and tasks: one package
# at a time keeps the 2-core machines they run on responsive.
ITEST_FLAGS ?= -count=1 -p 1 -timeout 40m

export CGO_ENABLED := 0
# Tests run `go` themselves (to build images from source): make sure the one
# found above is on their PATH too.
export PATH := $(dir $(GO)):$(PATH)

.PHONY: all build check test unit integration deps release examples clean bench bench-short

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/ember ./cmd/ember

check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) vet -tags integration $(PKGS)
	$(GO) tool staticcheck $(PKGS)
	$(GO) tool staticcheck -tags integration $(PKGS)
	$(GO) mod tidy -diff
	CGO_ENABLED=1 $(GO) test -race -count=1 $(PKGS)

deps:
	./install.sh --test-deps

unit:
	$(GO) test -count=1 $(PKGS)

integration:
	CI=$${CI:-} EMBER_REQUIRE_INTEGRATION=1 $(GO) test -tags integration $(ITEST_FLAGS) $(PKGS)

# The README's test command: everything a fresh Debian 12 machine needs, then
# every test. Integration tests fail (never skip) here when the host lacks
# what they need.
test: deps unit bench-short integration

BENCH_OUT ?=
BENCH_SHORT ?=
BENCH_ONLY ?=
BENCH_PROFILE ?=
BENCH_FLAGS = $(if $(filter-out 0 false,$(BENCH_SHORT)),-short) $(if $(BENCH_OUT),-out '$(BENCH_OUT)') $(if $(BENCH_ONLY),-only '$(BENCH_ONLY)') $(if $(BENCH_PROFILE),-profile '$(BENCH_PROFILE)')

bench: deps
	$(GO) build -o bin/ember-bench ./internal/bench/cmd/bench
	bin/ember-bench $(BENCH_FLAGS)

# Keeps `make bench` working in CI: every scenario, tiny counts.
bench-short: deps
	$(GO) build -o bin/ember-bench ./internal/bench/cmd/bench
	bin/ember-bench -short $(if $(BENCH_OUT),-out '$(BENCH_OUT)')

release:
	rm -rf dist && mkdir -p dist
	GOOS=linux GOARCH=amd64 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o dist/ember-linux-amd64 ./cmd/ember
	GOOS=linux GOARCH=arm64 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o dist/ember-linux-arm64 ./cmd/ember
	GOOS=linux GOARCH=arm GOARM=7 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o dist/ember-linux-armv7 ./cmd/ember
	cd dist && sha256sum ember-* > SHA256SUMS
	@# Static or nothing: the binary is also bind-mounted into containers
	@# as their probe, where no libc may exist.
	@if command -v file >/dev/null; then file dist/ember-*; ! file dist/ember-* | grep -v 'statically linked'; fi

# Always rebuilt: compiled binaries are cached, and the image is
# reproducible, so an unchanged source gives the same archive.
examples:
	$(GO) run ./internal/imagebuild/mkimage -pkg ./examples/hello -ref localhost/hello:v1 -o examples/hello.tar

clean:
	rm -rf bin dist examples/*.tar
