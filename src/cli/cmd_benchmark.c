/* cmd_benchmark.c - `nascent benchmark`: many seeded searches per strategy on a benchmark table;
 * prints the mean ± std of the found architecture's (the incumbent's) test accuracy at three
 * query counts and the runs per second.
 *   nascent benchmark --space nb201 --evaluator table:cifar10 --strategies random,re,...
 *                     --queries 150 --seeds 100 [--first-seed S] [--params K=V,...]
 *                     [--threads N] [--json] */
#include "cli_int.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out) {
    fprintf(out,
        "usage: nascent benchmark [--space nb201] [--evaluator table:cifar10]\n"
        "                         [--strategies random,re,reinforce,ls,bo] [--queries 150]\n"
        "                         [--seeds 100] [--first-seed 0] [--params K=V,...]\n"
        "                         [--threads N] [--json]\n"
        "  Runs SEEDS searches per strategy and reports the mean and std of the incumbent's\n"
        "  test accuracy at 1/3, 2/3 and all of the queries, and runs per second.\n");
}

static int parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out) {
    char *end = NULL;
    const long long v = strtoll(s, &end, 10);
    if (end == s || *end != '\0' || v < lo || v > hi) {
        return 0;
    }
    *out = v;
    return 1;
}

/* Mean and sample std of the finite values of column k. */
static void column_stats(const double *v, int64_t rows, int ncp, int k, double *mean,
                         double *std) {
    double s = 0.0, s2 = 0.0;
    int64_t n = 0;
    for (int64_t i = 0; i < rows; i++) {
        const double x = v[i * ncp + k];
        if (isfinite(x)) {
            s += x;
            n++;
        }
    }
    *mean = n > 0 ? s / (double)n : (double)NAN;
    for (int64_t i = 0; i < rows; i++) {
        const double x = v[i * ncp + k];
        if (isfinite(x)) {
            s2 += (x - *mean) * (x - *mean);
        }
    }
    *std = n > 1 ? sqrt(s2 / (double)(n - 1)) : 0.0;
}

int cmd_benchmark(int argc, char **argv) {
    const char *space_name = "nb201", *evaluator = "table:cifar10", *params = NULL;
    const char *strategies = "random,re,reinforce,ls,bo";
    int64_t queries = 150, seeds = 100, first_seed = 0, threads = 0;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = 0;
        if (strcmp(o, "--help") == 0 || strcmp(o, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(o, "--json") == 0) {
            json = 1;
            continue;
        } else if (v == NULL) {
            fprintf(stderr, "nascent benchmark: %s needs a value (or is unknown; see --help)\n", o);
            return 2;
        } else if (strcmp(o, "--space") == 0) {
            space_name = v;
        } else if (strcmp(o, "--evaluator") == 0) {
            evaluator = v;
        } else if (strcmp(o, "--strategies") == 0) {
            strategies = v;
        } else if (strcmp(o, "--params") == 0) {
            params = v;
        } else if (strcmp(o, "--queries") == 0) {
            bad = !parse_i64(v, 1, 10000000, &queries);
        } else if (strcmp(o, "--seeds") == 0) {
            bad = !parse_i64(v, 1, 100000000, &seeds);
        } else if (strcmp(o, "--first-seed") == 0) {
            bad = !parse_i64(v, 0, INT64_MAX / 2, &first_seed);
        } else if (strcmp(o, "--threads") == 0) {
            bad = !parse_i64(v, 0, 1024, &threads);
        } else {
            fprintf(stderr, "nascent benchmark: unknown option %s (see --help)\n", o);
            return 2;
        }
        if (bad) {
            fprintf(stderr, "nascent benchmark: bad value '%s' for %s\n", v, o);
            return 2;
        }
        i++;
    }
    if (threads > 0) {
        nas_set_threads((int)threads);
    }
    int64_t cps[3] = {queries / 3, 2 * queries / 3, queries};
    int ncp = 0;
    for (int k = 0; k < 3; k++) { /* drop empty or repeated checkpoints (tiny budgets) */
        if (cps[k] > 0 && (ncp == 0 || cps[k] != cps[ncp - 1])) {
            cps[ncp++] = cps[k];
        }
    }
    nas_ctx *ctx = nas_ctx_new();
    nas_space *space = NULL;
    nas_evaluator *eval = NULL;
    double *test = NULL, *valid = NULL;
    const size_t cells = (size_t)seeds * (size_t)ncp;
    int exit_code = 2;
    nas_status st = ctx != NULL ? nas_space_open(ctx, space_name, &space) : NAS_ERR_NOMEM;
    nas_eval_opts eo;
    memset(&eo, 0, sizeof(eo));
    if (st == NAS_OK) {
        st = nas_evaluator_open(ctx, evaluator, space, &eo, &eval);
    }
    if (st == NAS_OK) {
        test = nas_malloc(ctx, cells * sizeof(double));
        valid = nas_malloc(ctx, cells * sizeof(double));
        st = test != NULL && valid != NULL ? NAS_OK : NAS_ERR_NOMEM;
    }
    /* Every name and parameter checked before the first (long) run. */
    char check[1024];
    snprintf(check, sizeof(check), "%s", strategies);
    for (char *save = NULL, *name = strtok_r(check, ",", &save); st == NAS_OK && name != NULL;
         name = strtok_r(NULL, ",", &save)) {
        nas_strategy *probe = NULL;
        const nas_strategy_opts po = {(uint64_t)first_seed, queries, params};
        st = nas_strategy_new(ctx, name, space, &po, &probe);
        nas_strategy_free(probe);
    }
    json_t *rows = json_array();
    if (st == NAS_OK && !json) {
        printf("benchmark: space %s, evaluator %s, %lld seeds x %lld queries\n", space_name,
               evaluator, (long long)seeds, (long long)queries);
        printf("%-10s %8s %18s %12s %12s\n", "strategy", "queries", "test mean +- std",
               "valid mean", "runs/s");
    }
    char list[1024];
    snprintf(list, sizeof(list), "%s", strategies);
    for (char *save = NULL, *name = strtok_r(list, ",", &save); st == NAS_OK && name != NULL;
         name = strtok_r(NULL, ",", &save)) {
        const nas_bench_opts bo = {queries, seeds, (uint64_t)first_seed, params, ncp, cps};
        double secs = 0.0;
        st = nas_benchmark_run(ctx, space, name, eval, &bo, test, valid, &secs);
        if (st != NAS_OK) {
            break;
        }
        const double rps = (double)seeds / (secs > 0.0 ? secs : 1e-9);
        for (int k = 0; k < ncp; k++) {
            double mt, sdt, mv, sdv;
            column_stats(test, seeds, ncp, k, &mt, &sdt);
            column_stats(valid, seeds, ncp, k, &mv, &sdv);
            if (json) {
                json_t *r = json_object();
                json_object_set_new(r, "strategy", json_string(name));
                json_object_set_new(r, "queries", json_integer(cps[k]));
                json_object_set_new(r, "mean_test", json_real(mt));
                json_object_set_new(r, "std_test", json_real(sdt));
                json_object_set_new(r, "mean_valid", json_real(mv));
                json_object_set_new(r, "std_valid", json_real(sdv));
                json_object_set_new(r, "seeds", json_integer(seeds));
                json_object_set_new(r, "runs_per_second", json_real(rps));
                json_array_append_new(rows, r);
            } else {
                printf("%-10s %8lld %10.2f +- %5.2f %12.2f %12.1f\n", name, (long long)cps[k],
                       mt, sdt, mv, rps);
            }
        }
        fflush(stdout);
    }
    if (st == NAS_OK) {
        exit_code = 0;
        if (json) {
            char *s = json_dumps(rows, JSON_REAL_PRECISION(8));
            printf("%s\n", s != NULL ? s : "[]");
            free(s);
        }
    } else {
        fprintf(stderr, "nascent benchmark: %s\n", ctx != NULL ? nas_errmsg(ctx) : "out of memory");
        exit_code = st == NAS_ERR_ARG ? 2 : 1;
    }
    json_decref(rows);
    nas_free(ctx, test, cells * sizeof(double));
    nas_free(ctx, valid, cells * sizeof(double));
    nas_evaluator_free(eval);
    nas_space_free(space);
    nas_ctx_free(ctx);
    return exit_code;
}
