# selfdock: build, test and install. README.md documents `make check` as the one test command.
#
#   make                  build build/selfdock (static, cgo against musl: scripts/gobuild)
#   sudo make install     build, then install setuid root into $(DESTDIR)$(PREFIX)/bin
#   make check            Debian packages, gofmt, go vet, staticcheck, every test (as CI runs it)
#   make test             unit tests only, quick (go test ./...)
#   make integration      the end-to-end tests in tests/, verbose
#   sudo make vmtest      the qemu tests in tests/vm: selfdock boot on a VM's PID 1 (x86-64, arm64)
#   make fuzz             each Fuzz target under policy/ and cmd/ for $(FUZZTIME)
#   sudo make bench       bench/run.sh: timings against bubblewrap, writes bench/REPORT.md
#   make clean            remove build/

# sudo resets PATH; Debian's golang package is too old, so prefer /usr/local/go.
export PATH := /usr/local/go/bin:$(PATH)
SHELL := /bin/bash

GO       ?= go
PREFIX   ?= /usr/local
BINDIR   ?= $(PREFIX)/bin
DESTDIR  ?=
FUZZTIME ?= 20s

BUILD := build
BIN   := $(BUILD)/selfdock
BIN_ARM64 := $(BUILD)/selfdock-arm64
# GOBIN for tools the checks use, kept out of the caller's GOPATH.
TOOLS := $(CURDIR)/$(BUILD)/bin

STATICCHECK_VERSION := v0.8.2
STATICCHECK := $(TOOLS)/staticcheck

# scripts/gobuild builds every copy of selfdock the same way: cgo, fully static (a setuid binary
# must not load shared libraries chosen by the caller's environment, and it must run inside any
# --rootfs), osusergo/netgo (no NSS), natively against musl (a faster start than static glibc).
# `selfdock --version` prints VERSION (git describe; "dev" outside a git checkout).
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
GO_BUILD := GO=$(GO) scripts/gobuild

# Debian packages. Build: cgo linked statically against musl (musl-tools; linux-libc-dev, which
# libc6-dev pulls in, has the kernel headers). libseccomp-dev builds the seccomp programs at
# `go generate` time and is vetted and tested with the rest. Check: what the end-to-end tests and
# the benchmark use on top of that.
BUILD_DEPS := gcc libc6-dev musl-tools pkg-config libseccomp-dev
CHECK_DEPS := $(BUILD_DEPS) gcc-i686-linux-gnu libc6-dev-i386-cross busybox-static bubblewrap hyperfine squashfs-tools squashfs-tools-ng squashfuse uidmap mmdebstrap procps util-linux passwd \
	qemu-system-x86 qemu-system-arm gcc-aarch64-linux-gnu libc6-dev-arm64-cross

# apt_ensure PACKAGES: install those not yet installed. dpkg-query keeps the common case (all
# present) to a few milliseconds; `apt-get update` runs only when something must be installed.
define apt_ensure
	@missing=; \
	for p in $(1); do \
		dpkg-query -W -f='$${db:Status-Abbrev}' "$$p" 2>/dev/null | grep -q '^ii' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		if ! command -v apt-get >/dev/null; then \
			echo "missing packages:$$missing (not a Debian system: install them by hand)" >&2; exit 1; \
		fi; \
		if [ "$$(id -u)" != 0 ]; then \
			echo "missing Debian packages:$$missing; run: sudo make deps" >&2; exit 1; \
		fi; \
		echo "apt-get install:$$missing"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -qq </dev/null && apt-get install -y -qq $$missing </dev/null; \
	fi
endef

# Go parallelises its own work; steps here must run in the order written (check: deps first).
.NOTPARALLEL:

.PHONY: all build build-arm64 build-deps deps test check fmt-check vet staticcheck integration vmtest fuzz \
	bench install uninstall clean

all: build

build: build-deps
	@mkdir -p $(BUILD)
	$(GO_BUILD) $(BIN) '' '-X main.version=$(VERSION)'

build-deps:
	$(call apt_ensure,$(BUILD_DEPS))

deps:
	$(call apt_ensure,$(CHECK_DEPS))

test: build-deps
	$(GO) test ./...

# The one command for all tests (README.md, .ci/run). SELFDOCK_MUST_WORK=1 turns every skip of a
# test that needs root or a capability into a failure.
# The fuzz targets run for a short, bounded time after the tests.
check: deps fmt-check vet staticcheck build
	SELFDOCK_MUST_WORK=1 $(GO) test -count=1 -timeout 20m $$($(GO) list ./... | grep -v '/tests$$\|/tests/vm$$')
	@echo "end-to-end suite (alone: it checks that the machine is left as it was):"
	SELFDOCK_MUST_WORK=1 $(GO) test -count=1 -timeout 20m ./tests/
	@echo "end-to-end suite again on the ptrace start-up path (procfs pidns, -tags sdptrace):"
	@# Not TestAttackSignalsDuringSetup there: it finds that path's known window (a selfdock killed
	@# between Go's fork and the child's PR_SET_PDEATHSIG leaves the child stopped, traced by the
	@# reaper; SECURITY.md), which is why that path is not the default.
	SELFDOCK_MUST_WORK=1 SELFDOCK_TEST_TAGS=sdptrace $(GO) test -count=1 -timeout 20m -skip '^TestAttackSignalsDuringSetup$$' ./tests/
	@echo "boot in qemu (software emulation, a Debian kernel, a busybox initramfs):"
	SELFDOCK_MUST_WORK=1 $(MAKE) --no-print-directory vmtest
	$(MAKE) --no-print-directory fuzz FUZZTIME=10s

# gofmt -l lists files whose formatting differs; any listed file fails the check.
fmt-check:
	@files=$$(find . \( -name .git -o -name $(BUILD) -o -name testdata -o -name '_*' \) -prune \
		-o -name '*.go' -print); \
	[ -z "$$files" ] && exit 0; \
	bad=$$(gofmt -l $$files); \
	if [ -n "$$bad" ]; then echo "gofmt: these files need gofmt -w:" >&2; echo "$$bad" >&2; exit 1; fi

vet: build-deps
	$(GO) vet ./...

staticcheck: build-deps
	@if ! "$(STATICCHECK)" -version 2>/dev/null | grep -qF '($(STATICCHECK_VERSION:v%=%))'; then \
		echo "installing staticcheck $(STATICCHECK_VERSION) into $(TOOLS)"; \
		GOBIN="$(TOOLS)" $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION); \
	fi
	"$(STATICCHECK)" ./...

# The end-to-end packages under tests/, except the qemu tests (make vmtest).
integration: build
	@pkgs=$$($(GO) list ./tests/... 2>/dev/null | grep -v '/tests/vm\(/\|$$\)'); \
	if [ -z "$$pkgs" ]; then echo "integration: no packages under tests/ yet"; exit 0; fi; \
	echo "$(GO) test -count=1 -v -timeout 20m $$pkgs"; \
	$(GO) test -count=1 -v -timeout 20m $$pkgs

# Needs root: the VM runs `selfdock boot` on its own PID 1 (never this machine's). It installs
# qemu-system-x86 and downloads Debian's kernel package once (cached in /var/tmp).
vmtest: build build-arm64
	$(call apt_ensure,qemu-system-x86 qemu-system-arm busybox-static)
	SELFDOCK_BIN=$(CURDIR)/$(BIN) SELFDOCK_BIN_ARM64=$(CURDIR)/$(BIN_ARM64) \
		$(GO) test -count=1 -v -timeout 30m ./tests/vm/...

# selfdock for arm64 (cross-built, static), for the arm64 VM test.
build-arm64: build-deps
	$(call apt_ensure,gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
	@mkdir -p $(BUILD)
	GOARCH=arm64 CC=aarch64-linux-gnu-gcc $(GO_BUILD) $(BIN_ARM64) '' '-X main.version=$(VERSION)'

# Every `func FuzzXxx(` in a _test.go file under policy/ and cmd/, each for $(FUZZTIME).
# A run that fails with the Go fuzzing engine's own "context deadline exceeded" and no failing
# input (a flake of the engine when a worker is still minimizing at the deadline) is run again,
# up to three runs in all.
fuzz: build-deps
	@set -eo pipefail; n=0; \
	for f in $$(grep -rl --include='*_test.go' '^func Fuzz' policy cmd image oci 2>/dev/null); do \
		for fn in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' "$$f"); do \
			n=$$((n + 1)); \
			echo "$(GO) test -run='^\$$' -fuzz='^$$fn\$$' -fuzztime=$(FUZZTIME) ./$$(dirname "$$f")"; \
			log=$$(mktemp); tries=0; \
			until $(GO) test -run='^$$' -fuzz="^$$fn\$$" -fuzztime=$(FUZZTIME) -fuzzminimizetime=3s "./$$(dirname "$$f")" 2>&1 | tee "$$log"; do \
				tries=$$((tries + 1)); \
				if [ $$tries -ge 3 ] || ! grep -q 'context deadline exceeded' "$$log" || grep -q 'Failing input written' "$$log"; then \
					rm -f "$$log"; exit 1; \
				fi; \
				echo "fuzz: $$fn: the fuzzing engine's own deadline error on a busy machine, no failing input: again"; \
			done; \
			rm -f "$$log"; \
		done; \
	done; \
	echo "fuzz: $$n target(s) run"

# Needs root: it installs setuid copies in a scratch directory and adds a system user.
bench:
	bash bench/run.sh

# `install -o root` needs root. A packager's unprivileged staging install (DESTDIR set, not root)
# still gets the file with mode 4755; the package sets the owner.
install: build
	@dst="$(DESTDIR)$(BINDIR)/selfdock"; \
	if install -D -o root -g root -m 4755 $(BIN) "$$dst"; then \
		echo "installed $$dst (root:root 4755)"; \
	elif [ -n "$(DESTDIR)" ] && [ "$$(id -u)" != 0 ]; then \
		install -D -m 4755 $(BIN) "$$dst"; \
		echo "installed $$dst with mode 4755 but owned by $$(id -un): the package must make it root:root"; \
	else \
		echo "install: cannot install $$dst setuid root; run: sudo make install" >&2; exit 1; \
	fi

uninstall:
	rm -f "$(DESTDIR)$(BINDIR)/selfdock"

clean:
	rm -rf $(BUILD)
