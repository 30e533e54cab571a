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

PURE_SRCS  := src/tidal_utf8.c src/tidal_ws.c src/tidal_mcp.c src/tidal_state.c \
              src/tidal_tools.c
PURE_HDRS  := src/tidal_utf8.h src/tidal_ws.h src/tidal_mcp.h src/tidal_state.h \
              src/tidal_tools.h
MODULE_SRCS := ngx_tidal_module.c $(wildcard src/ngx_http_tidal*.c) \
               $(wildcard src/ngx_http_tidal*.h) $(PURE_SRCS) $(PURE_HDRS)

BUILD_PKGS := nginx nginx-dev libjansson-dev libssl-dev libpcre2-dev \
              zlib1g-dev build-essential pkg-config
TEST_PKGS  := clang libclang-rt-14-dev curl procps openssl

UNIT_CFLAGS := -std=c99 -D_GNU_SOURCE -Wall -Wextra -Werror -g -O1 \
               -fsanitize=address,undefined -fno-omit-frame-pointer -Isrc
FUZZ_CFLAGS := -g -O1 -fsanitize=fuzzer,address,undefined -Isrc
FUZZ_SECONDS ?= 30

.PHONY: all build deps test-deps run test unit fuzz integration asan \
        asan-build static-check clean

all: build

build: $(MODULE_SO)

# -- dependencies ----------------------------------------------------------

deps:
	@t/tools/apt-ensure $(BUILD_PKGS)

test-deps: deps
	@t/tools/apt-ensure $(TEST_PKGS)
	@command -v npm >/dev/null || t/tools/apt-ensure nodejs npm
	@cd t && { [ -d node_modules ] && [ node_modules/.package-lock.json -nt package-lock.json ] \
	    || npm ci --no-audit --no-fund --loglevel=error; }

# -- the dynamic module, against Debian's nginx-dev tree -------------------

$(DYN_TREE)/configured: config
	rm -rf $(DYN_TREE)
	mkdir -p $(BUILD)
	cp -r $(NGX_DEV) $(DYN_TREE)
	cd $(DYN_TREE) && . ./conf_flags \
	    && ./configure "$${NGX_CONF_FLAGS[@]}" \
	       --add-dynamic-module=$(CURDIR) >configure.log 2>&1 \
	    || { tail -30 configure.log; exit 1; }
	touch $@

$(MODULE_SO): $(DYN_TREE)/configured $(MODULE_SRCS)
	$(MAKE) -C $(DYN_TREE) -f objs/Makefile modules

# -- run -------------------------------------------------------------------

run: deps helper-deps build
	@mkdir -p $(RUN_DIR)/logs $(RUN_DIR)/modules $(RUN_DIR)/tmp
	@ln -sf $(MODULE_SO) $(RUN_DIR)/modules/ngx_tidal_module.so
	@$(NGINX_BIN) -t -q -p $(RUN_DIR)/ -c $(CURDIR)/conf-examples/tidal.conf
	@echo "ngx_tidal: listening on ws://127.0.0.1:8080/mcp (Ctrl-C stops);" \
	    "Tidal boots in the helper nginx starts and sends OSC to" \
	    "127.0.0.1:57120 (SuperDirt)"
	@echo "ngx_tidal: error log $(RUN_DIR)/logs/error.log"
	@exec $(NGINX_BIN) -p $(RUN_DIR)/ -c $(CURDIR)/conf-examples/tidal.conf \
	    -g 'daemon off;'

# -- tests -----------------------------------------------------------------

test: test-deps build
	$(MAKE) unit
	$(MAKE) fuzz
	$(MAKE) integration
	$(MAKE) asan

$(BUILD)/unit/%: t/unit/%.c t/unit/unit.h $(PURE_SRCS) $(PURE_HDRS)
	@mkdir -p $(@D)
	$(CC) $(UNIT_CFLAGS) -o $@ $< $(PURE_SRCS) -ljansson -lcrypto

UNIT_TESTS := $(patsubst t/unit/%.c,$(BUILD)/unit/%,$(wildcard t/unit/test_*.c))

unit: $(UNIT_TESTS)
	@t/tools/run-unit $(UNIT_TESTS)

$(BUILD)/fuzz/%: t/fuzz/%.c $(PURE_SRCS) $(PURE_HDRS)
	@mkdir -p $(@D)
	clang $(FUZZ_CFLAGS) -o $@ $< $(PURE_SRCS) -ljansson -lcrypto

FUZZERS := $(patsubst t/fuzz/%.c,$(BUILD)/fuzz/%,$(wildcard t/fuzz/fuzz_*.c))

fuzz: $(FUZZERS)
	@t/tools/run-fuzz $(FUZZ_SECONDS) $(FUZZERS)

integration: build
	cd t && NGINX_BIN=$(NGINX_BIN) TIDAL_MODULE_SO=$(MODULE_SO) \
	    node --test --test-reporter=spec

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

# -- the helper ------------------------------------------------------------
# tidal-helper (src/helper/) supervises GHCi running Tidal; `tidal-helper
# --stdio` is a standalone MCP server, and `--stdio --connect ws[s]://...` a
# bridge to a room (src/tidal_ws.c, libssl).  Running it needs ghc and
# Tidal (helper-deps); the sandbox (src/tidal_pattern.c) has its own unit test
# and fuzzer.

HELPER_BIN    := $(BUILD)/helper/tidal-helper
HELPER_BOOT   := $(CURDIR)/src/helper/BootTidal.hs
HELPER_SRCS   := $(wildcard src/helper/*.c) src/tidal_mcp.c src/tidal_state.c \
                 src/tidal_pattern.c src/tidal_utf8.c src/tidal_tools.c \
                 src/tidal_ws.c
HELPER_HDRS   := $(wildcard src/helper/*.h) src/tidal_mcp.h src/tidal_state.h \
                 src/tidal_pattern.h src/tidal_utf8.h src/tidal_tools.h \
                 src/tidal_ws.h
HELPER_CFLAGS := -std=c99 -D_GNU_SOURCE -O2 -g -Wall -Wextra -Werror \
                 -Wpointer-arith -Wno-unused-parameter -Isrc -Isrc/helper \
                 -DTIDAL_HELPER_BOOT='"$(HELPER_BOOT)"'
HELPER_PKGS   := ghc libghc-tidal-dev

.PHONY: helper helper-deps

build: $(HELPER_BIN)

helper: $(HELPER_BIN)

$(HELPER_BIN): $(HELPER_SRCS) $(HELPER_HDRS)
	@mkdir -p $(@D)
	$(CC) $(HELPER_CFLAGS) -o $@ $(HELPER_SRCS) -ljansson -lssl -lcrypto -lm

helper-deps:
	@t/tools/apt-ensure $(HELPER_PKGS)

test-deps: helper-deps

$(BUILD)/unit/test_pattern: t/unit/test_pattern.c t/unit/unit.h \
                            $(PURE_SRCS) $(PURE_HDRS) src/tidal_pattern.c \
                            src/tidal_pattern.h
	@mkdir -p $(@D)
	$(CC) $(UNIT_CFLAGS) -o $@ $< $(PURE_SRCS) src/tidal_pattern.c \
	    -ljansson -lcrypto

$(BUILD)/fuzz/fuzz_pattern: t/fuzz/fuzz_pattern.c $(PURE_SRCS) $(PURE_HDRS) \
                            src/tidal_pattern.c src/tidal_pattern.h
	@mkdir -p $(@D)
	clang $(FUZZ_CFLAGS) -o $@ $< $(PURE_SRCS) src/tidal_pattern.c \
	    -ljansson -lcrypto

# the relay's OSC reader (src/helper/tidal_osc.c) is pure too
$(BUILD)/unit/test_osc: t/unit/test_osc.c t/unit/unit.h src/helper/tidal_osc.c \
                        src/helper/tidal_osc.h
	@mkdir -p $(@D)
	$(CC) $(UNIT_CFLAGS) -Isrc/helper -o $@ $< src/helper/tidal_osc.c

$(BUILD)/fuzz/fuzz_osc: t/fuzz/fuzz_osc.c src/helper/tidal_osc.c \
                        src/helper/tidal_osc.h
	@mkdir -p $(@D)
	clang $(FUZZ_CFLAGS) -Isrc/helper -o $@ $< src/helper/tidal_osc.c
