# tests/fuzz/fuzz.mk: libFuzzer targets (clang), included by the Makefile.
#
#   make fuzz                  build, then run every target FUZZ_SECONDS (60) on its corpus, two at
#                              a time; any crash, leak, timeout or sanitizer report fails it
#   make fuzz-regress          replay the committed corpora once (seconds): they must pass; and
#                              every input of tests/fuzz/open-bugs/ must still fail (strict
#                              xfail: when one passes, its bug is fixed: move it to corpus/)
#   make fuzz-build            only build build/fuzz/fuzz_*
#   make fuzz-run-rules ...    one target (fuzz-run-proc, fuzz-run-inotify, fuzz-run-http,
#                              fuzz-run-hosts, fuzz-run-cmreload)
#
# The library objects are built with the Makefile's flags, clang and
# -fsanitize=fuzzer-no-link,address,undefined into build/fuzz/; each target links them with
# -fsanitize=fuzzer. New inputs go to build/fuzz/corpus/<target>/ (never into the committed seeds
# under tests/fuzz/corpus/<target>/), crash inputs to build/fuzz/artifacts/. A crash that is
# fixed becomes a seed: copy its artifact into tests/fuzz/corpus/<target>/; one not fixed yet goes
# to tests/fuzz/open-bugs/<target>/ (and its README). FUZZ_SKIP_OPEN_BUGS=1 makes the targets step
# around the open bugs, to hunt for others meanwhile.

FUZZ_CC ?= clang
FUZZ_SECONDS ?= 60
FUZZ_JOBS ?= 2
FUZZ_B := build/fuzz
FUZZ_TARGETS := rules proc inotify http hosts cmreload
FUZZ_SAN := -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all
FUZZ_CFLAGS := -O1 -g -fno-omit-frame-pointer $(FUZZ_SAN)
FUZZ_OBJ := $(patsubst src/%.c,$(FUZZ_B)/%.o,$(filter-out src/main.c,$(wildcard src/*.c)))
FUZZ_BIN := $(patsubst %,$(FUZZ_B)/fuzz_%,$(FUZZ_TARGETS))
# libFuzzer's options per target: -max_len keeps inputs to what the code path can get (a rule file
# is read whole, a /proc file is read into 4 KiB, one inotify read() is 16 KiB, a request's headers
# must fit MHD's 16 KiB pool; a hosts file and argv need no more than a few KiB to reach every
# branch), -timeout makes a hang a failure.
FUZZ_OPTS := -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
FUZZ_OPTS_rules := -max_len=65536 -dict=tests/fuzz/rules.dict
FUZZ_OPTS_proc := -max_len=4096
FUZZ_OPTS_inotify := -max_len=16384
FUZZ_OPTS_http := -max_len=20000 -dict=tests/fuzz/http.dict
FUZZ_OPTS_hosts := -max_len=8192
FUZZ_OPTS_cmreload := -max_len=4096
# The process's own environment for the targets (ASan's leak checker on, abort on UBSan).
FUZZ_SKIP_OPEN_BUGS ?= 0
FUZZ_SAN_ENV := ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:allocator_may_return_null=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
FUZZ_ENV := $(FUZZ_SAN_ENV) FUZZ_SKIP_OPEN_BUGS=$(FUZZ_SKIP_OPEN_BUGS)

.PHONY: fuzz fuzz-build fuzz-regress $(patsubst %,fuzz-run-%,$(FUZZ_TARGETS)) \
	$(patsubst %,fuzz-regress-%,$(FUZZ_TARGETS))

fuzz-build: $(FUZZ_BIN)

# The library objects: the Makefile's own flags (ALL_CFLAGS) with clang and the sanitizers.
# Warnings stay on but are not errors here: clang's -Wformat=2 is stricter than gcc's, and the
# gcc build is the one CI holds to -Werror.
$(FUZZ_B)/%.o: src/%.c $(wildcard src/*.h) Makefile tests/fuzz/fuzz.mk
	@mkdir -p $(@D)
	$(FUZZ_CC) $(filter-out -Werror,$(ALL_CFLAGS)) $(FUZZ_CFLAGS) -c -o $@ $<

# kept: they are only reached through the pattern rule below, which would make them intermediate
.SECONDARY: $(FUZZ_OBJ)

$(FUZZ_B)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h $(FUZZ_OBJ)
	$(FUZZ_CC) $(ALL_CFLAGS) $(FUZZ_CFLAGS) -Isrc -fsanitize=fuzzer -o $@ $< $(FUZZ_OBJ) $(LIBS)

fuzz: fuzz-build
	@$(MAKE) --no-print-directory -j$(FUZZ_JOBS) $(patsubst %,fuzz-run-%,$(FUZZ_TARGETS))

# One rule per target (pattern rules never apply to .PHONY targets).
define FUZZ_RUN_RULE
fuzz-run-$(1): $(FUZZ_B)/fuzz_$(1)
	@mkdir -p $(FUZZ_B)/corpus/$(1) $(FUZZ_B)/artifacts
	@echo "== fuzz_$(1) for $(FUZZ_SECONDS)s"
	@$(FUZZ_ENV) $(FUZZ_B)/fuzz_$(1) $(FUZZ_OPTS) $(FUZZ_OPTS_$(1)) -max_total_time=$(FUZZ_SECONDS) \
		-artifact_prefix=$(FUZZ_B)/artifacts/$(1)- $(FUZZ_B)/corpus/$(1) tests/fuzz/corpus/$(1) \
		> $(FUZZ_B)/fuzz_$(1).log 2>&1 \
		|| { tail -60 $(FUZZ_B)/fuzz_$(1).log; echo "fuzz_$(1): FAILED (log: $(FUZZ_B)/fuzz_$(1).log)"; exit 1; }
	@grep -E '^(#[0-9]+\s+DONE|stat::number_of_executed_units|stat::peak_rss_mb|Done [0-9]+ runs)' \
		$(FUZZ_B)/fuzz_$(1).log | sed 's/^/fuzz_$(1): /'
endef
$(foreach t,$(FUZZ_TARGETS),$(eval $(call FUZZ_RUN_RULE,$(t))))

# Every committed input once, no mutation: what a fixed crash must keep passing.
fuzz-regress: fuzz-build
	@$(MAKE) --no-print-directory -j$(FUZZ_JOBS) $(patsubst %,fuzz-regress-%,$(FUZZ_TARGETS))

define FUZZ_REGRESS_RULE
fuzz-regress-$(1): $(FUZZ_B)/fuzz_$(1)
	@$(FUZZ_ENV) $(FUZZ_B)/fuzz_$(1) $(FUZZ_OPTS) $(FUZZ_OPTS_$(1)) -runs=0 tests/fuzz/corpus/$(1) \
		> $(FUZZ_B)/regress_$(1).log 2>&1 \
		|| { tail -60 $(FUZZ_B)/regress_$(1).log; echo "fuzz_$(1): regression FAILED"; exit 1; }
	@echo "fuzz_$(1): $$$$(ls tests/fuzz/corpus/$(1) | wc -l) committed inputs pass"
	@set -e; for f in $$$$(ls tests/fuzz/open-bugs/$(1) 2>/dev/null); do \
		if $(FUZZ_SAN_ENV) FUZZ_SKIP_OPEN_BUGS=0 $(FUZZ_B)/fuzz_$(1) -timeout=3 \
			-rss_limit_mb=2048 tests/fuzz/open-bugs/$(1)/$$$$f >/dev/null 2>&1; then \
			echo "fuzz_$(1): open-bugs/$(1)/$$$$f passes now: its bug is fixed, move it to corpus/$(1)/"; \
			exit 1; \
		fi; \
	done; n=$$$$(ls tests/fuzz/open-bugs/$(1) 2>/dev/null | wc -l); \
	[ $$$$n = 0 ] || echo "fuzz_$(1): $$$$n open-bug inputs still fail, as expected"
endef
$(foreach t,$(FUZZ_TARGETS),$(eval $(call FUZZ_REGRESS_RULE,$(t))))
