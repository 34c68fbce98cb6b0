# mk/spaces.mk - libFuzzer harnesses for the search spaces' parsers (tests/fuzz/fuzz_spaces.c).
#   make fuzz-spaces-build   build build/fuzz/fuzz_{nb201,darts,mbnet,nasrl,json} (clang)
#   make fuzz-spaces         run each for FUZZ_SECONDS (default 300) on a copy of its seed corpus
# The short run inside `make test` is tests/py_spaces_fuzz.py. Needs clang and
# libclang-rt-14-dev (libFuzzer). The library is rebuilt with clang + ASan under build/fuzz
# (no -Werror: other compilers' warnings are not the harness's business; no OpenMP: clang's
# runtime is not installed).

FUZZ_CC      ?= clang
FUZZ_DIR     := build/fuzz
FUZZ_SECONDS ?= 300
FUZZ_TARGETS := nb201 darts mbnet nasrl json
FUZZ_CFLAGS  := -std=c11 -D_GNU_SOURCE -Iinclude -Isrc -O1 -g -fno-omit-frame-pointer $(ARCH) \
                -fsanitize=address,fuzzer-no-link -Wno-unknown-pragmas
FUZZ_LIB_OBJ := $(LIB_SRC:%.c=$(FUZZ_DIR)/%.o)
FUZZ_BINS    := $(FUZZ_TARGETS:%=$(FUZZ_DIR)/fuzz_%)

.PHONY: fuzz-spaces fuzz-spaces-build

$(FUZZ_DIR)/src/%.o: src/%.c
	@mkdir -p $(dir $@)
	@$(FUZZ_CC) $(FUZZ_CFLAGS) -MMD -MP -c $< -o $@

$(FUZZ_DIR)/libnascent_fuzz.a: $(FUZZ_LIB_OBJ)
	@rm -f $@
	@ar rcs $@ $^

fuzz_target_id = $(if $(filter nb201,$1),0,$(if $(filter darts,$1),1,$(if $(filter mbnet,$1),2,$(if $(filter nasrl,$1),3,4))))

$(FUZZ_DIR)/fuzz_%: tests/fuzz/fuzz_spaces.c $(FUZZ_DIR)/libnascent_fuzz.a
	@echo "FUZZ $@"
	@$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -DFUZZ_TARGET=$(call fuzz_target_id,$*) $< \
	  $(FUZZ_DIR)/libnascent_fuzz.a $(LDLIBS) -o $@

fuzz-spaces-build: $(FUZZ_BINS)

fuzz-spaces: fuzz-spaces-build
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p $(FUZZ_DIR)/corpus/$$t && cp -n tests/fuzz/corpus/$$t/* $(FUZZ_DIR)/corpus/$$t/ ; \
	  echo "fuzzing $$t for $(FUZZ_SECONDS) s"; \
	  ASAN_OPTIONS=detect_leaks=1 $(FUZZ_DIR)/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) \
	    -max_len=8192 -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 \
	    -artifact_prefix=$(FUZZ_DIR)/crash_$$t- $(FUZZ_DIR)/corpus/$$t || exit 1; \
	done

-include $(FUZZ_LIB_OBJ:.o=.d)

# `make fuzz` (the Makefile's long-run target) includes the spaces harnesses.
fuzz: fuzz-spaces

# tool_spaces: a space's network, one batch through the trainer's loss graph, dumped for
# tests/py_spaces_torch.py (PyTorch comparison). Built with the tests by `make build`.
SPACES_TOOLS := $(BUILD)/tests/tool_spaces

build: $(SPACES_TOOLS)

$(SPACES_TOOLS): $(BUILD)/tests/%: tests/%.c $(LIB)
	@mkdir -p $(dir $@)
	@echo "CC $<"
	@$(CC) $(TEST_CFLAGS) -Itests $< $(LIB) $(LDFLAGS) $(LDLIBS) -o $@
