# mk/nets.mk - the standard networks' helper programs (owner: nets).
#   $(BUILD)/tests/tool_nets     driven by tests/py_nets_torch.py (PyTorch comparison)
#   $(BUILD)/bench/bench_engine  the engine benchmark run by bench/bench_engine.sh
NETS_TOOLS := $(BUILD)/tests/tool_nets $(BUILD)/bench/bench_engine

build: $(NETS_TOOLS)

$(BUILD)/tests/tool_nets: tests/tool_nets.c $(LIB)
	@mkdir -p $(dir $@)
	@echo "CC $<"
	@$(CC) $(TEST_CFLAGS) $< $(LIB) $(LDFLAGS) $(LDLIBS) -o $@

$(BUILD)/bench/bench_engine: bench/bench_engine.c $(LIB)
	@mkdir -p $(dir $@)
	@echo "CC $<"
	@$(CC) $(TEST_CFLAGS) $< $(LIB) $(LDFLAGS) $(LDLIBS) -o $@
