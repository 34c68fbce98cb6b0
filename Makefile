# nascent - neural architecture search in C.
#   make            build bin/nascent and lib/libnascent.a (installs missing Debian packages first)
#   make run        the main job: a NAS run on the embedded default data
#   make test       the test suite (ends with "N passed, N failed")
#   make test-asan  the suite under AddressSanitizer + UBSan
#   make bench      benchmarks against PyTorch run in the same session (bench/RESULTS.md)
#   make bench-long, make test-long, make fuzz: the long runs
# Modules may add rules in mk/*.mk (included at the end).

VARIANT ?= release
CC      ?= gcc
ARCH    ?= -march=x86-64-v3
WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wdouble-promotion -Wundef -Wwrite-strings -Wvla
BASEFLAGS := -std=c11 -D_GNU_SOURCE $(WARN) -fvisibility=hidden -fopenmp -Iinclude -Isrc -MMD -MP

ifeq ($(VARIANT),asan)
BUILD   := build/asan
BIN     := build/asan/bin
LIBDIR  := build/asan/lib
OPT     := -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
else
BUILD   := build/release
BIN     := bin
LIBDIR  := lib
OPT     := -O2 -g
endif

CFLAGS  += $(BASEFLAGS) $(OPT) $(ARCH)
LDFLAGS += $(OPT) -fopenmp
# Tests compute references in double freely.
TEST_CFLAGS = $(filter-out -Wdouble-promotion,$(CFLAGS))
LDLIBS  := -ldnnl -lopenblas -ljansson -lsqlite3 -lz -lpthread -lm

LIB_SRC  := $(sort $(filter-out src/cli/%,$(wildcard src/*/*.c)))
CLI_SRC  := $(sort $(wildcard src/cli/*.c))
TEST_SRC := $(sort $(wildcard tests/test_*.c))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/%.o)
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
LIB      := $(LIBDIR)/libnascent.a
NASCENT  := $(BIN)/nascent
# Files generated at build time (e.g. the NB201 binary table); modules append in mk/*.mk,
# included here so their additions are seen by the rules below.
GENERATED :=
-include $(wildcard mk/*.mk)

.PHONY: all deps build run test test-asan test-inner bench bench-long test-long fuzz clean format
.DEFAULT_GOAL := all

all: deps
	@$(MAKE) --no-print-directory build

deps:
	@tools/deps.sh

build: $(NASCENT) $(LIB) $(TEST_BIN) $(GENERATED)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "CC $<"
	@$(CC) $(CFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	@rm -f $@
	@ar rcs $@ $^

$(NASCENT): $(CLI_OBJ) $(LIB)
	@mkdir -p $(dir $@)
	@echo "LD $@"
	@$(CC) $(LDFLAGS) $(CLI_OBJ) $(LIB) $(LDLIBS) -o $@

$(BUILD)/tests/%: tests/%.c $(LIB) $(wildcard tests/*.h)
	@mkdir -p $(dir $@)
	@echo "CC $<"
	@$(CC) $(TEST_CFLAGS) -Itests $< $(LIB) $(LDFLAGS) $(LDLIBS) -o $@

run: all
	@tools/run_default.sh

test: deps
	@$(MAKE) --no-print-directory build
	@tests/run_tests.sh $(BUILD) $(FILTER)

test-asan: deps
	@$(MAKE) --no-print-directory VARIANT=asan build
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
	  NAS_TEST_ASAN=1 tests/run_tests.sh build/asan $(FILTER)

bench: all
	@bench/run_bench.sh

bench-long: all
	@bench/run_bench.sh --long

test-long: all
	@NAS_TEST_LONG=1 tests/run_tests.sh $(BUILD) $(FILTER)

clean:
	rm -rf build bin lib

format:
	clang-format -i include/*.h src/*/*.c src/*/*.h tests/*.c tests/*.h bench/*.c

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(TEST_BIN:=.d)
