# oc-recover: build, unit tests and static checks for the root module.

GO ?= go

# Everything is built and tested as releases are built (pure Go, no cgo), so
# the unit tests, the plugin the end-to-end tests run and its archive share
# one compilation of the plugin's packages.
export CGO_ENABLED := 0

VERSION_PKG := github.com/oc-recover/oc-recover/pkg/version

# Build metadata; override on the command line (make build GIT_VERSION=v1.2.3).
# `git describe` fails in a repository without commits, hence the fallbacks.
GIT_VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo v0.0.0-dev)
GIT_COMMIT  ?= $(shell git rev-parse --verify --quiet HEAD 2>/dev/null || echo unknown)
BUILD_DATE  ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)

LDFLAGS := -X $(VERSION_PKG).gitVersion=$(GIT_VERSION) \
           -X $(VERSION_PKG).gitCommit=$(GIT_COMMIT) \
           -X $(VERSION_PKG).buildDate=$(BUILD_DATE)

.PHONY: build test test-unit test-e2e vet fmt-check demo bench generate plugins.yaml docs release

# One binary, installed under both plugin names: oc finds oc-recover,
# kubectl finds kubectl-recover. The help text adapts to the name used.
build:
	$(GO) build -ldflags '$(LDFLAGS)' -o bin/oc-recover ./cmd/oc-recover
	ln -f bin/oc-recover bin/kubectl-recover

# --- release -------------------------------------------------------------------
# dist/: one archive per platform (tar.gz; zip on windows) holding
# kubectl-recover and oc-recover, LICENSE, README.md and plugin.yaml, each with
# a .sha256 file, and recover.yaml: .krew.yaml rendered with the version, the
# archives' URIs and sha256s. krew wants a semantic version: a tag vX.Y.Z, or
# make release RELEASE_VERSION=v0.1.0. PLATFORMS=linux/amd64 builds one.
RELEASE_VERSION ?= $(shell git describe --tags --match 'v[0-9]*' --dirty 2>/dev/null || echo v0.0.0-dev)
PLATFORMS ?= all
DIST ?= dist

release:
	rm -rf $(DIST)
	SOURCE_DATE_EPOCH=$$(git log -1 --format=%ct 2>/dev/null || date +%s) \
		$(GO) run ./hack/release -version $(RELEASE_VERSION) -commit $(GIT_COMMIT) \
		-date $(BUILD_DATE) -platforms $(PLATFORMS) -dist $(DIST)

# --- generated from the command tree ----------------------------------------
# Checked in; tests in hack/gendocs fail when they are out of date. Run after
# adding or changing a command or flag: make generate (or make plugins.yaml docs).
generate: plugins.yaml docs

# The legacy plugin descriptor for kubectl 1.8-1.11 and oc 3.x.
plugins.yaml:
	$(GO) run ./hack/gendocs -plugins plugins.yaml

# The Markdown reference of every command, docs/oc_recover*.md.
docs:
	$(GO) run ./hack/gendocs -docs docs

test-unit:
	$(GO) test ./...

vet:
	$(GO) vet ./...
	cd test && $(GO) vet ./...

fmt-check:
	@out="$$(gofmt -l .)"; if [ -n "$$out" ]; then \
		echo "gofmt needed on:"; echo "$$out"; exit 1; fi

# --- the cluster-in-a-box: test, demo -----------------------------------------
# test/ is its own Go module (the in-process apiserver and etcd server are
# heavy), so the plugin's go.mod stays lean.

# All tests: the plugin's unit tests, then the end-to-end tests that drive the
# built plugin and a third-party kubectl against the cluster-in-a-box.
test: vet fmt-check test-unit test-e2e

test-e2e:
	cd test && $(GO) vet ./... && $(GO) test -count=1 -timeout 45m ./...

# Benchmarks against the tools an administrator would otherwise use, in the
# same run, on the cluster-in-a-box; ratios are printed as metrics (x-...).
# BENCH_SNAPSHOT_MIB sets the etcd data size (default 1024), BENCH_LINK_MIBPS
# the WAN link's rate (default 50), BENCH_RESTORE_VERSION the restored box's
# release (default 4.14).
BENCH_TIME ?= 3x
bench:
	cd test && $(GO) test -run '^$$' -bench . -benchtime $(BENCH_TIME) -timeout 120m ./bench

# Build the plugin, start the cluster-in-a-box, run the plugin against it and
# keep the box up until Ctrl-C.
DEMO_BACKUP := ../bin/demo-backups/backup-$(shell date +%Y%m%d-%H%M%S)
demo: build
	cd test && $(GO) run ./cmd/box --kubeconfig-out ../bin/box.kubeconfig $(DEMO_FLAGS) -- \
		../bin/kubectl-recover version ';' \
		../bin/kubectl-recover backup --output-dir $(DEMO_BACKUP) ';' \
		../bin/kubectl-recover backup list ../bin/demo-backups ';' \
		../bin/kubectl-recover member status ';' \
		../bin/kubectl-recover restore --dry-run $(DEMO_BACKUP)
