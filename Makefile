# sigreload: plain make with pkg-config. `make help` lists the targets.
VERSION := 0.1.0
PREFIX ?= /usr/local
DESTDIR ?=
CC ?= cc
PYTHON ?= /usr/bin/python3
PKG_CONFIG ?= pkg-config
PKGS := yaml-0.1 libcrypto libmicrohttpd libseccomp libcurl

CFLAGS ?= -O2 -g
WARNINGS := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 \
	-Wformat-security -Wnull-dereference -Wvla -Wpointer-arith -Wundef
ifeq ($(CI),true)
WARNINGS += -Werror
endif
HARDEN := -D_FORTIFY_SOURCE=2 -fstack-protector-strong -fPIE
ALL_CFLAGS := -std=gnu11 -D_GNU_SOURCE -DSIGRELOAD_VERSION='"$(VERSION)"' $(WARNINGS) $(HARDEN) \
	$(shell $(PKG_CONFIG) --cflags $(PKGS)) $(CFLAGS)
ALL_LDFLAGS := -pie -Wl,-z,relro,-z,now $(LDFLAGS)
LIBS := $(shell $(PKG_CONFIG) --libs $(PKGS))

B ?= build
BIN ?= sigreload
SRC := $(wildcard src/*.c)
LIB_OBJ := $(patsubst src/%.c,$(B)/%.o,$(filter-out src/main.c,$(SRC)))
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(patsubst tests/unit/%.c,$(B)/unit/%,$(UNIT_SRC))
HELPER_SRC := $(wildcard tests/helpers/*.c)
HELPER_BIN := $(patsubst tests/helpers/%.c,$(B)/helpers/%,$(HELPER_SRC))
# Go helpers (a Go program's signal handling is the runtime's): built where go is installed.
GO ?= go
ifneq ($(shell command -v $(GO) 2>/dev/null),)
HELPER_BIN += $(patsubst tests/helpers/%.go,$(B)/helpers/%,$(wildcard tests/helpers/*.go))
endif

# Debian packages for building, testing and linting; `make deps` installs the missing ones.
DEBIAN_PACKAGES := gcc make pkg-config libyaml-dev libssl-dev libcmocka-dev python3 \
	libmicrohttpd-dev python3-pytest mandoc util-linux procps coreutils nginx curl inotify-tools \
	openssl prometheus unzip yamllint python3-yaml libcap2-bin libseccomp-dev clang \
	libclang-rt-14-dev llvm valgrind golang-go
# The daemons tests/system/test_daemons.py reloads with config/*.yaml. Under systemd they start
# their own services on install; the tests never use those (each daemon runs in a pod of its
# own, on a free loopback port, with its files in a temporary directory).
DEBIAN_PACKAGES += haproxy postgresql php-fpm apache2 gunicorn python3-setproctitle
# HTTP actions: libcurl's headers and library; Alertmanager, reloaded by their tests
DEBIAN_PACKAGES += libcurl4-openssl-dev prometheus-alertmanager
# `make bench`: system calls counted by strace, pictures drawn by matplotlib
DEBIAN_PACKAGES += strace python3-matplotlib
# `make format-check` (part of `make test`)
DEBIAN_PACKAGES += clang-format

.PHONY: all asan bench demo static test test-unit test-system asan format install clean deps helpers help
.PHONY: test-package format-check
.PHONY: soak-schedules

all: $(BIN)

$(BIN): $(B)/main.o $(LIB_OBJ)
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

$(B)/%.o: src/%.c $(wildcard src/*.h) Makefile
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(B)/unit/%: tests/unit/%.c $(LIB_OBJ) tests/unit/unit.h
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -Isrc $(ALL_LDFLAGS) -o $@ $< $(LIB_OBJ) $(LIBS) -lcmocka

$(B)/helpers/%: tests/helpers/%.c $(wildcard tests/helpers/*.h)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $<

# The HTTP client on sigreload's loop, driven from the tests: it links the library objects.
$(B)/helpers/fetch_driver: tests/helpers/fetch_driver.c $(LIB_OBJ)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -Isrc $(ALL_LDFLAGS) -o $@ $< $(LIB_OBJ) $(LIBS)

# Standard library only, offline: no modules, no proxy, the build cache under $(B).
$(B)/helpers/%: tests/helpers/%.go
	@mkdir -p $(@D)
	GO111MODULE=off GOPROXY=off GOFLAGS= CGO_ENABLED=0 GOCACHE=$(CURDIR)/$(B)/go-cache \
		$(GO) build -o $@ $<

helpers: $(HELPER_BIN)

# Benchmarks, side by side with what users run today; not part of `make test`.
# BENCH_BIN is the binary measured: `make image-binary bench BENCH_BIN=build/image/sigreload`.
BENCH_BIN ?= $(BIN)
bench: $(BIN) helpers
	SIGRELOAD_BIN=$(abspath $(BENCH_BIN)) SIGRELOAD_HELPERS=$(CURDIR)/$(B)/helpers \
		$(PYTHON) bench/run.py $(BENCH_ARGS)

.PHONY: bench-quick bench-readme
bench-quick:
	$(MAKE) bench BENCH_ARGS="--quick $(BENCH_ARGS)"

# The README's Performance section from a results JSON (the newest by default), never by hand.
BENCH_RESULTS ?= $(lastword $(sort $(wildcard bench/results/*.json)))
bench-readme:
	@test -n "$(BENCH_RESULTS)" || { echo "no bench/results/*.json: run make bench"; exit 1; }
	$(PYTHON) bench/readme.py --write $(BENCH_RESULTS) $(if $(wildcard bench/notes.md),--notes bench/notes.md)

# sigreload's main job on the bundled example: real nginx reloaded in a PID namespace.
demo: $(BIN)
	config/demo/run.sh

# The format first: a file clang-format would change fails at once, not after the suite.
test: format-check test-unit test-system test-package

test-unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; SIGRELOAD_TESTS=$(CURDIR)/tests $$t; done

test-system: $(BIN) helpers
	SIGRELOAD_BIN=$(CURDIR)/$(BIN) SIGRELOAD_HELPERS=$(CURDIR)/$(B)/helpers \
		$(PYTHON) -m pytest -q -p no:cacheprovider tests/system $(PYTEST_ARGS)

# What ships beside the binary: the chart, the image (podman) and the docs (man pages, examples).
test-package: $(BIN) helpers
	SIGRELOAD_BIN=$(CURDIR)/$(BIN) SIGRELOAD_HELPERS=$(CURDIR)/$(B)/helpers \
		$(PYTHON) -m pytest -q -p no:cacheprovider tests/package $(PYTEST_ARGS)

# The seeded scheduler of interleavings (tests/system/test_schedules.py) for a long soak; `make
# test` runs 200 schedules of it. SIGRELOAD_SCHEDULE_SEED=S replays one batch.
SCHEDULES ?= 10000
soak-schedules: $(BIN) helpers
	SIGRELOAD_SCHEDULES=$(SCHEDULES) SIGRELOAD_BIN=$(CURDIR)/$(BIN) \
		SIGRELOAD_HELPERS=$(CURDIR)/$(B)/helpers \
		$(PYTHON) -m pytest -q -p no:cacheprovider tests/system/test_schedules.py $(PYTEST_ARGS)

# A static binary for an image FROM scratch: the image's build links it against musl and the
# libraries it builds for musl (Dockerfile: `make static CC=x86_64-linux-musl-gcc`). Each
# function and object in a section of its own, so that the link keeps only what is called (the
# image builds its libraries the same way); -Os, for size. The link map beside the binary
# (build/static/sigreload.map) says what weighs what: tests/tools/mapsize.py.
STATIC_CFLAGS ?= -Os -g -ffunction-sections -fdata-sections
static:
	$(MAKE) B=build/static CFLAGS="$(STATIC_CFLAGS)" build/static/sigreload

build/static/sigreload: $(B)/main.o $(LIB_OBJ)
	$(CC) $(ALL_CFLAGS) -static -Wl,--gc-sections -Wl,-Map,$@.map -Wl,-z,relro,-z,now \
		-o $@ $^ \
		$(shell $(PKG_CONFIG) --static --libs $(PKGS))
	@# Debian's own libcurl.a needs libraries Debian ships no static archive of (libssh2,
	@# librtmp, ...): linked anyway, the binary would crash in curl_global_init. The image's
	@# build (Dockerfile, its own CC) makes a libcurl that needs none of them.
	@if [ "$(CC)" = cc ] && nm $@ | grep -q ' U '; then rm -f $@; \
		echo "$@: left with undefined symbols: this machine's static libcurl needs archives it" \
			"does not have; the image's binary is the static one: make image-binary" >&2; \
		exit 1; fi

# The image's binary, copied out of the image: what `make bench BENCH_BIN=build/image/sigreload`
# measures for the memory goal, and what SIGRELOAD_BIN=build/image/sigreload runs the system
# tests on. Without its file capability, as the development build: valgrind refuses a binary
# that has one, and the tests give capabilities as they need.
.PHONY: image-binary
image-binary: image
	@mkdir -p build/image
	c=$$(podman create $(IMAGE)) && podman cp $$c:/usr/local/bin/sigreload build/image/sigreload \
		&& podman rm $$c >/dev/null
	setcap -r build/image/sigreload

# The image (Dockerfile), built with podman: for this machine's architecture, or for PLATFORM
# (linux/amd64 or linux/arm64, cross-compiled, never emulated); image-multiarch makes the
# manifest list IMAGE of PLATFORMS, from the images IMAGE-amd64 and IMAGE-arm64. The Debian
# mirror is the one this machine's apt uses (tests/tools/apt_mirror.py), or DEBIAN_MIRROR=URL
# [DEBIAN_SECURITY_MIRROR=URL].
IMAGE ?= localhost/sigreload:$(VERSION)
PLATFORM ?=
PLATFORMS ?= linux/amd64,linux/arm64
comma := ,
# A build stage instead of the image, e.g. IMAGE_STAGE=build to look inside the build.
IMAGE_STAGE ?=
# The base image (debian:bookworm-slim) is not pulled: `make deps` makes it offline
# (tests/tools/base-image.sh). PULL=missing lets podman pull it from a registry instead.
PULL ?= never
MIRROR_ARGS = $(if $(DEBIAN_MIRROR),echo --build-arg=DEBIAN_MIRROR=$(DEBIAN_MIRROR) \
	$(if $(DEBIAN_SECURITY_MIRROR),--build-arg=DEBIAN_SECURITY_MIRROR=$(DEBIAN_SECURITY_MIRROR)),\
	$(PYTHON) tests/tools/apt_mirror.py --format build-args)

.PHONY: image image-multiarch
image:
	args=$$($(MIRROR_ARGS)) && podman build --pull=$(PULL) --layers $$args \
		--build-arg=VERSION=$(VERSION) \
		--build-arg=BUILDPLATFORM=$$(podman info --format '{{.Host.OS}}/{{.Host.Arch}}') \
		$(if $(PLATFORM),--platform=$(PLATFORM)) $(if $(IMAGE_STAGE),--target=$(IMAGE_STAGE)) \
		-t $(IMAGE) .

# One `make image` a platform, then the list: in one `--platform a,b --manifest` build,
# podman 4.3 uses its layer cache for the first platform only.
image-multiarch:
	if podman manifest exists $(IMAGE); then podman manifest rm $(IMAGE); fi
	podman manifest create $(IMAGE)
	set -e; for p in $(subst $(comma), ,$(PLATFORMS)); do \
		$(MAKE) --no-print-directory image PLATFORM=$$p IMAGE=$(IMAGE)-$${p##*/}; \
		podman manifest add $(IMAGE) containers-storage:$(IMAGE)-$${p##*/}; \
	done
	podman manifest inspect $(IMAGE)

# The whole suite on an ASan + UBSan build (LeakSanitizer included): any report fails it.
SAN := -fsanitize=address,undefined -fno-sanitize-recover=all
# (The chart and image tests run no sigreload code that `make test` did not: left out here.)
asan:
	$(MAKE) B=build/asan BIN=build/asan/sigreload CFLAGS="-O1 -g -fno-omit-frame-pointer $(SAN)" \
		LDFLAGS="$(SAN)" ASAN_OPTIONS=abort_on_error=1:detect_leaks=1 SIGRELOAD_SANITIZED=1 \
		PYTEST_ARGS="--ignore=tests/package/test_chart.py --ignore=tests/package/test_image.py" test

# libFuzzer targets (clang): tests/fuzz/fuzz.mk defines them and the `fuzz` target.
-include tests/fuzz/fuzz.mk

FORMATTED = src/*.c src/*.h tests/unit/*.c tests/unit/*.h tests/helpers/*.c bench/*.c
format:
	clang-format -i $(FORMATTED)

format-check:
	clang-format --dry-run --Werror $(FORMATTED)

install: $(BIN)
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/sigreload
	install -D -m 0644 man/sigreload.8 $(DESTDIR)$(PREFIX)/share/man/man8/sigreload.8
	install -D -m 0644 man/sigreload.yaml.5 $(DESTDIR)$(PREFIX)/share/man/man5/sigreload.yaml.5

clean:
	rm -rf build sigreload

deps:
	@missing=$$(for p in $(DEBIAN_PACKAGES); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	command -v npm >/dev/null || missing="$$missing nodejs npm"; \
	if [ -n "$$missing" ]; then \
		echo "installing:" $$missing; \
		sudo=; [ "$$(id -u)" = 0 ] || sudo=sudo; \
		$$sudo apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends $$missing; \
	else echo "all Debian packages present"; fi
	bash tests/tools/install-k8s-tools.sh
	bash tests/tools/setup-podman.sh

help:
	@echo "make [target]; CI runs: make deps && make test asan fuzz (.ci/run, with CI=true)"
	@echo "  all              sigreload (CI=true: warnings are errors)"
	@echo "  test             format-check, test-unit, test-system, test-package"
	@echo "  format-check     fails when clang-format would change a C file"
	@echo "  format           clang-format the C files in place"
	@echo "  test-unit        the cmocka tests of the pure modules (tests/unit)"
	@echo "  test-system      the binary against real files, processes and daemons (tests/system)"
	@echo "  test-package     the chart, the image and the docs (tests/package)"
	@echo "  asan             make test (not the chart and image) on an ASan+UBSan build"
	@echo "  fuzz             every libFuzzer target for FUZZ_SECONDS (tests/fuzz)"
	@echo "  fuzz-regress     every committed fuzz input once, and the open bugs still open"
	@echo "  soak-schedules   SCHEDULES=N seeded interleavings (make test runs 200)"
	@echo "  bench            sigreload beside the shell loops users run (bench/README.md)"
	@echo "  bench-quick      bench, shorter"
	@echo "  bench-readme     the README's Performance section from bench/results/*.json"
	@echo "  demo             nginx reloaded by sigreload in a PID namespace"
	@echo "  static           a static binary, build/static/sigreload (the image's build uses it)"
	@echo "  image-binary     the image's binary copied out of it, build/image/sigreload"
	@echo "  image            the image, with podman [PLATFORM=linux/arm64] [IMAGE=name]"
	@echo "  image-multiarch  the manifest list IMAGE of PLATFORMS"
	@echo "  helpers          the test helpers (build/helpers)"
	@echo "  install          sigreload and its man pages under DESTDIR PREFIX"
	@echo "  clean            remove build/ and sigreload"
	@echo "  deps             the Debian packages, chart tools, podman and base image"
