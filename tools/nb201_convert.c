/* nb201_convert.c - build-time tool: reads the NAS-Bench-201 CSV (data/nasbench201/
 * nb201_accuracy.csv) and writes the compact binary table the `table:` evaluator loads
 * (format in src/evaluators/table_nb201.c). Run by mk/search.mk.
 * Usage: nb201_convert IN.csv OUT.bin */
#include "nascent.h"

#include <stdio.h>

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: nb201_convert IN.csv OUT.bin\n");
        return 2;
    }
    nas_ctx *ctx = nas_ctx_new();
    if (ctx == NULL) {
        return 1;
    }
    nas_nb201_table *t = NULL;
    nas_status st = nas_nb201_table_load(ctx, argv[1], &t);
    if (st == NAS_OK) {
        st = nas_nb201_table_save(ctx, t, argv[2]);
    }
    if (st != NAS_OK) {
        fprintf(stderr, "nb201_convert: %s\n", nas_errmsg(ctx));
    }
    nas_nb201_table_free(t);
    nas_ctx_free(ctx);
    return st == NAS_OK ? 0 : 1;
}
