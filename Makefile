# C ABI of podnet: build, header, checks, install, C example, C tests, benchmark.
# `make help` lists the targets. Privileged targets (c-example, c-test, bench-c) need root and
# run each program inside a throwaway network + mount namespace (see WORLD below).

CARGO            ?= cargo
CC               ?= cc
CXX              ?= c++
CARGO_TARGET_DIR ?= target
export CARGO_TARGET_DIR

PREFIX       ?= /usr/local
LIBDIR       ?= $(PREFIX)/lib
INCLUDEDIR   ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
DESTDIR      ?=

# The version lives in the workspace Cargo.toml ([workspace.package]); the SONAME is
# libpodnet.so.$(SOVERSION): MAJOR.MINOR while the major is 0 (a 0.x minor release may change
# the ABI, the header's ABI policy), MAJOR alone from 1.0 on (ffi/build.rs sets it).
VERSION   := $(shell sed -n '/^\[workspace.package\]/,/^\[/ s/^version *= *"\([^"]*\)".*/\1/p' Cargo.toml)
MAJOR     := $(word 1,$(subst ., ,$(VERSION)))
SOVERSION := $(if $(filter 0,$(MAJOR)),$(MAJOR).$(word 2,$(subst ., ,$(VERSION))),$(MAJOR))
URL       := $(shell sed -n '/^\[workspace.package\]/,/^\[/ s/^repository *= *"\([^"]*\)".*/\1/p' Cargo.toml)
# What libpodnet.a needs besides itself (`rustc --print native-static-libs`).
LIBS_PRIVATE := -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc

RELEASE := $(CARGO_TARGET_DIR)/release
BUILD   := $(CARGO_TARGET_DIR)/podnet-c
# A private install used by the C example and tests: they build the way a consumer does,
# through pkg-config.
STAGE   := $(abspath $(BUILD)/stage)
PC      := PKG_CONFIG_PATH=$(STAGE)/lib/pkgconfig pkg-config

# cbindgen is pinned: a different version may format the header differently.
CBINDGEN_VERSION := 0.29.2
CBINDGEN_ROOT    ?= $(HOME)/.cache/podnet/cbindgen-$(CBINDGEN_VERSION)
CBINDGEN         := $(shell if cbindgen --version 2>/dev/null | grep -qx 'cbindgen $(CBINDGEN_VERSION)'; \
                      then command -v cbindgen; else echo '$(CBINDGEN_ROOT)/bin/cbindgen'; fi)

CWARN  := -std=c99 -Wall -Wextra -Wpedantic -Werror
CXXWARN := -std=c++11 -Wall -Wextra -Wpedantic -Werror
SAN    := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
VALGRIND := valgrind --quiet --leak-check=full --errors-for-leak-kinds=definite,possible \
            --error-exitcode=1 --suppressions=tests/c/valgrind.supp

# A throwaway world: a new network namespace (the node) and a private mount namespace with
# tmpfs on /run (so /run/netns pins and /run/podnet state vanish with it). Nothing on the
# machine's own network or /run changes.
WORLD := unshare --net --mount --propagation private -- \
         sh -c 'mount -t tmpfs podnet-world /run && exec "$$@"' world

BENCH_COUNT  ?= 500

.PHONY: help lib header header-check symbols-check install stage c-example c-example-build \
        c-test cxx-check bench-c cbindgen clean-c glue-count

help:
	@echo "make lib            cargo build --release -p podnet-ffi (libpodnet.so + libpodnet.a)"
	@echo "make header         regenerate include/podnet.h with cbindgen $(CBINDGEN_VERSION)"
	@echo "make header-check   fail if include/podnet.h differs from a fresh generation"
	@echo "make symbols-check  fail unless libpodnet.so exports exactly the header's podnet_* functions"
	@echo "make install PREFIX=/usr/local [DESTDIR=]   libraries, header, podnet.pc"
	@echo "make c-example      build and run examples/c/two_pods (root)"
	@echo "make c-test         C tests: ASan+UBSan build, valgrind run, static link (root)"
	@echo "make cxx-check      the header from two C++ translation units"
	@echo "make bench-c        sandbox create p50 through the C ABI vs the Rust API (root)"
	@echo "make glue-count     lines of C + Go glue per exported core record (ffi/glue-count.sh)"

lib:
	$(CARGO) build --release -p podnet-ffi

# ---- header -----------------------------------------------------------------------------

cbindgen:
	@test -x '$(CBINDGEN)' || { \
	  echo "installing cbindgen $(CBINDGEN_VERSION) into $(CBINDGEN_ROOT)"; \
	  env -u CARGO_TARGET_DIR $(CARGO) install cbindgen --version $(CBINDGEN_VERSION) --locked \
	    --root '$(CBINDGEN_ROOT)'; }

header: cbindgen
	'$(CBINDGEN)' --quiet --config cbindgen.toml --output include/podnet.h ffi

header-check: cbindgen
	@mkdir -p $(BUILD)
	'$(CBINDGEN)' --quiet --config cbindgen.toml --output $(BUILD)/podnet.h ffi
	@diff -u include/podnet.h $(BUILD)/podnet.h || { \
	  echo "header-check: include/podnet.h is stale: run 'make header' and commit it"; exit 1; }
	@echo "header-check: include/podnet.h is up to date"

# ---- exported symbols -------------------------------------------------------------------

symbols-check: lib
	@so=$(RELEASE)/libpodnet.so; mkdir -p $(BUILD); \
	nm -D --defined-only $$so | awk '{print $$NF}' | sed 's/@.*//' | sort -u > $(BUILD)/exported.txt; \
	bad=$$(grep -v '^podnet_' $(BUILD)/exported.txt || true); \
	if [ -n "$$bad" ]; then echo "symbols-check: exported symbols outside podnet_*:"; echo "$$bad"; exit 1; fi; \
	grep -v '^ *\*\|^/\*\|^#' include/podnet.h | grep -o '\bpodnet_[a-z0-9_]*(' | tr -d '(' \
	  | sort -u > $(BUILD)/declared.txt; \
	if ! diff -u $(BUILD)/declared.txt $(BUILD)/exported.txt; then \
	  echo "symbols-check: header declarations (-) and exports (+) differ"; exit 1; fi; \
	soname=$$(readelf -d $$so | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p'); \
	if [ "$$soname" != "libpodnet.so.$(SOVERSION)" ]; then \
	  echo "symbols-check: SONAME is '$$soname', want libpodnet.so.$(SOVERSION)"; exit 1; fi; \
	echo "symbols-check: $$(wc -l < $(BUILD)/exported.txt) podnet_* symbols, all declared; SONAME $$soname"

# ---- install ----------------------------------------------------------------------------

install: lib
	install -d '$(DESTDIR)$(LIBDIR)' '$(DESTDIR)$(INCLUDEDIR)' '$(DESTDIR)$(PKGCONFIGDIR)'
	install -m 0755 $(RELEASE)/libpodnet.so '$(DESTDIR)$(LIBDIR)/libpodnet.so.$(VERSION)'
	ln -sfn libpodnet.so.$(VERSION) '$(DESTDIR)$(LIBDIR)/libpodnet.so.$(SOVERSION)'
	ln -sfn libpodnet.so.$(SOVERSION) '$(DESTDIR)$(LIBDIR)/libpodnet.so'
	install -m 0644 $(RELEASE)/libpodnet.a '$(DESTDIR)$(LIBDIR)/libpodnet.a'
	install -m 0644 include/podnet.h '$(DESTDIR)$(INCLUDEDIR)/podnet.h'
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' \
	    -e 's|@VERSION@|$(VERSION)|' -e 's|@URL@|$(URL)|' -e 's|@LIBS_PRIVATE@|$(LIBS_PRIVATE)|' \
	    ffi/podnet.pc.in > '$(DESTDIR)$(PKGCONFIGDIR)/podnet.pc'

stage:
	@$(MAKE) --no-print-directory install PREFIX='$(STAGE)' LIBDIR='$(STAGE)/lib' \
	  INCLUDEDIR='$(STAGE)/include' PKGCONFIGDIR='$(STAGE)/lib/pkgconfig' DESTDIR= >/dev/null

# Flags a consumer gets from pkg-config (expanded when a recipe runs, after `stage`).
PODNET_CFLAGS = $(shell $(PC) --cflags podnet)
PODNET_LIBS   = $(shell $(PC) --libs podnet) -Wl,-rpath,$(STAGE)/lib

# ---- C example --------------------------------------------------------------------------

c-example-build: stage
	@mkdir -p $(BUILD)
	$(CC) $(CWARN) -O2 -g $(PODNET_CFLAGS) examples/c/two_pods.c -o $(BUILD)/two_pods $(PODNET_LIBS)

c-example: c-example-build
	$(WORLD) $(BUILD)/two_pods

# ---- C tests ----------------------------------------------------------------------------

TEST_SRC := tests/c/test_main.c tests/c/test_node.c tests/c/test_cluster.c tests/c/test_multinode.c tests/c/test_agent.c \
            tests/c/test_services.c
TEST_DEFS := -DEXPECTED_VERSION='"$(VERSION)"'

c-test: stage
	@mkdir -p $(BUILD)
	$(CC) $(CWARN) $(SAN) -O1 -g $(TEST_DEFS) $(PODNET_CFLAGS) $(TEST_SRC) \
	  -o $(BUILD)/test_podnet_san $(PODNET_LIBS) -lpthread
	$(CC) $(CWARN) -O1 -g $(TEST_DEFS) $(PODNET_CFLAGS) $(TEST_SRC) \
	  -o $(BUILD)/test_podnet $(PODNET_LIBS) -lpthread
	$(CC) $(CWARN) -O1 -g $(TEST_DEFS) $(PODNET_CFLAGS) tests/c/test_static.c \
	  -o $(BUILD)/test_static $(STAGE)/lib/libpodnet.a $(shell $(PC) --static --libs-only-l podnet | sed 's/-lpodnet//')
	@echo "== static link"
	$(BUILD)/test_static
	@echo "== ASan + UBSan"
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  $(WORLD) $(BUILD)/test_podnet_san
	@echo "== valgrind"
	$(WORLD) $(VALGRIND) $(BUILD)/test_podnet

cxx-check: stage
	@mkdir -p $(BUILD)
	$(CXX) $(CXXWARN) -O1 $(PODNET_CFLAGS) tests/c/cxx_a.cpp tests/c/cxx_b.cpp \
	  -o $(BUILD)/cxx_check $(PODNET_LIBS)
	$(BUILD)/cxx_check

# ---- benchmark --------------------------------------------------------------------------

bench-c: stage
	@mkdir -p $(BUILD)
	$(CC) $(CWARN) -O2 $(PODNET_CFLAGS) tests/c/bench_sandbox.c -o $(BUILD)/bench_sandbox $(PODNET_LIBS)
	$(CARGO) build --release -p podnet-ffi --example bench_rust
	$(WORLD) sh tests/c/bench.sh $(BUILD)/bench_sandbox $(RELEASE)/examples/bench_rust \
	  $(STAGE)/lib/libpodnet.so $(BENCH_COUNT)

glue-count:
	@sh ffi/glue-count.sh

clean-c:
	rm -rf $(BUILD)
