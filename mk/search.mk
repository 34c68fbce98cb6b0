# search.mk - build rules of the search module (included by the Makefile):
# the NAS-Bench-201 binary table, converted from the CSV at build time by tools/nb201_convert.
NB201_CSV   := data/nasbench201/nb201_accuracy.csv
NB201_TABLE := build/data/nb201.bin
NB201_CONV  := $(BUILD)/tools/nb201_convert

$(NB201_CONV): tools/nb201_convert.c $(LIB)
	@mkdir -p $(dir $@)
	@echo "CC $<"
	@$(CC) $(CFLAGS) $< $(LIB) $(LDFLAGS) $(LDLIBS) -o $@

$(NB201_TABLE): $(NB201_CSV) $(NB201_CONV)
	@mkdir -p $(dir $@)
	@echo "GEN $@"
	@$(NB201_CONV) $(NB201_CSV) $@

GENERATED += $(NB201_TABLE)
