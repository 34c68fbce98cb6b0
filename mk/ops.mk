# mk/ops.mk - the ops module's helper programs, built with the tests by `make build`:
#   tool_ops_dump   writes op inputs, outputs and gradients that tests/py_ops_torch.py checks
#                   against PyTorch;
#   tool_ops_bench  times the hot non-conv ops for bench/bench_ops.py.
OPS_TOOLS := $(BUILD)/tests/tool_ops_dump $(BUILD)/tests/tool_ops_bench

build: $(OPS_TOOLS)

$(OPS_TOOLS): $(BUILD)/tests/%: tests/%.c $(LIB)
	@mkdir -p $(dir $@)
	@echo "CC $<"
	@$(CC) $(TEST_CFLAGS) -Itests $< $(LIB) $(LDFLAGS) $(LDLIBS) -o $@
