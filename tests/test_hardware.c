/* test_hardware.c - latency predictors, device tables and lookup tables.
 * Ground truths: synthetic latencies with a known additive structure (the linear predictor must
 * recover them), the published NB201 device tables (the predictor must rank held-out cells at
 * least as well as BRP-NAS in the HELP paper's Table 3), and LUT files written by the test. */
#include "check.h"
#include "nascent.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define TABLE "data/nb201_latency/nb201_latency_ms.csv"

/* y = exp(sum of one weight per (decision, choice)): log-additive, which ridge on one-hot
 * features represents exactly. */
static void make_additive(int64_t n, int dec, int ch, float *X, double *y, nas_rng *r) {
    double w[64];
    for (int k = 0; k < dec * ch; k++) {
        w[k] = 0.3 * nas_rng_uniform(r);
    }
    for (int64_t i = 0; i < n; i++) {
        double s = 0.1;
        memset(X + i * dec * ch, 0, (size_t)(dec * ch) * sizeof(float));
        for (int d = 0; d < dec; d++) {
            const int c = (int)nas_rng_below(r, ch);
            X[i * dec * ch + d * ch + c] = 1.0f;
            s += w[d * ch + c];
        }
        y[i] = exp(s);
    }
}

static void test_linear_recovers_additive(void) {
    nas_ctx *ctx = nas_ctx_new();
    nas_rng r = nas_rng_make(11, 0);
    enum { N = 400, DEC = 6, CH = 5 };
    static float X[N * DEC * CH];
    static double y[N];
    make_additive(N, DEC, CH, X, y, &r);
    nas_latpred *p = NULL;
    CHECK(nas_latpred_fit(ctx, NAS_LATPRED_LINEAR, X, y, 300, DEC * CH, 1, &p) == NAS_OK, "fit: %s",
          nas_errmsg(ctx));
    double max_rel = 0;
    for (int i = 300; p != NULL && i < N; i++) {
        double ms;
        nas_latpred_predict(p, X + i * DEC * CH, &ms);
        max_rel = fmax(max_rel, fabs(ms - y[i]) / y[i]);
    }
    CHECK(max_rel < 0.01, "held-out relative error %g", max_rel);
    /* save / load gives the same predictions */
    char path[] = "/tmp/nas_latpred_XXXXXX";
    const int fd = mkstemp(path);
    close(fd);
    CHECK(nas_latpred_save(p, path) == NAS_OK, "save");
    nas_latpred *q = NULL;
    CHECK(nas_latpred_load(ctx, path, &q) == NAS_OK, "load: %s", nas_errmsg(ctx));
    double a = 0, b = -1;
    if (q != NULL) {
        nas_latpred_predict(p, X, &a);
        nas_latpred_predict(q, X, &b);
    }
    CHECK(fabs(a - b) <= 1e-9 * fabs(a), "reloaded %g vs %g", b, a);
    FILE *f = fopen(path, "w");
    fputs("{\"format\": \"something-else\"}", f);
    fclose(f);
    nas_latpred *bad = NULL;
    CHECK(nas_latpred_load(ctx, path, &bad) == NAS_ERR_FORMAT && bad == NULL, "foreign file");
    CHECK(strstr(nas_errmsg(ctx), path) != NULL, "message names the file: %s", nas_errmsg(ctx));
    remove(path);
    nas_latpred_free(p);
    nas_latpred_free(q);
    const double bad_y[3] = {1.0, -2.0, 3.0};
    CHECK(nas_latpred_fit(ctx, NAS_LATPRED_LINEAR, X, bad_y, 3, DEC * CH, 1, &p) == NAS_ERR_NUMERIC,
          "negative latency rejected");
    nas_ctx_free(ctx);
}

/* log y = additive + an interaction the linear model cannot see; the MLP must rank well. */
static void test_mlp_fits_interaction(void) {
    nas_ctx *ctx = nas_ctx_new();
    nas_rng r = nas_rng_make(12, 0);
    enum { N = 600, DEC = 6, CH = 5 };
    static float X[N * DEC * CH];
    static double y[N], est[N], truth[N];
    make_additive(N, DEC, CH, X, y, &r);
    for (int i = 0; i < N; i++) {
        if (X[i * DEC * CH + 0] == 1.0f && X[i * DEC * CH + CH + 1] == 1.0f) {
            y[i] *= 1.8; /* decision 0 = choice 0 and decision 1 = choice 1 together cost more */
        }
    }
    nas_latpred *p = NULL;
    CHECK(nas_latpred_fit(ctx, NAS_LATPRED_MLP, X, y, 450, DEC * CH, 3, &p) == NAS_OK, "fit: %s",
          nas_errmsg(ctx));
    for (int i = 450; p != NULL && i < N; i++) {
        nas_latpred_predict(p, X + i * DEC * CH, &est[i - 450]);
        truth[i - 450] = y[i];
    }
    double rho = 0;
    nas_stats_spearman(ctx, est, truth, N - 450, &rho);
    CHECK(rho > 0.95, "MLP held-out spearman %g", rho);
    nas_latpred_free(p);
    nas_ctx_free(ctx);
}

static void test_device_table_errors(void) {
    nas_ctx *ctx = nas_ctx_new();
    char path[] = "/tmp/nas_devtab_XXXXXX";
    const int fd = mkstemp(path);
    close(fd);
    FILE *f = fopen(path, "w");
    fputs("index,arch_str,cpu\n0,a,1.5\n1,b,oops\n", f);
    fclose(f);
    nas_device_table *t = NULL;
    CHECK(nas_device_table_load(ctx, path, "arch_str", "cpu", &t) == NAS_ERR_FORMAT && t == NULL,
          "non-numeric value");
    CHECK(strstr(nas_errmsg(ctx), ":3:") != NULL, "message names line 3: %s", nas_errmsg(ctx));
    CHECK(nas_device_table_load(ctx, path, "arch_str", "gpu", &t) == NAS_ERR_FORMAT,
          "missing column");
    CHECK(strstr(nas_errmsg(ctx), "gpu") != NULL, "message names the column: %s", nas_errmsg(ctx));
    CHECK(nas_device_table_load(ctx, "/nonexistent/x.csv", "a", "b", &t) == NAS_ERR_IO, "no file");
    remove(path);
    nas_ctx_free(ctx);
}

/* HELP Table 3, BRP-NAS with 900 samples: Spearman 0.796 on Xeon Gold 6226, 0.847 on Raspi4,
 * 0.801 on FPGA, 0.814 on Titan RTX b256. Our ridge on the one-hot cell must reach it. */
static void test_nb201_predictor_vs_brpnas(void) {
    nas_ctx *ctx = nas_ctx_new();
    nas_space *space = NULL;
    CHECK(nas_space_open(ctx, "nb201", &space) == NAS_OK, "nb201: %s", nas_errmsg(ctx));
    const char *cols[4] = {"gold_6226", "raspi4", "fpga", "titan_rtx_256"};
    const double brp[4] = {0.796, 0.847, 0.801, 0.814};
    for (int c = 0; space != NULL && c < 4; c++) {
        nas_device_table *t = NULL;
        CHECK(nas_device_table_load(ctx, TABLE, "arch_str", cols[c], &t) == NAS_OK, "%s: %s",
              cols[c], nas_errmsg(ctx));
        if (t == NULL) {
            continue;
        }
        CHECK(nas_device_table_rows(t) == 15625, "rows %lld", (long long)nas_device_table_rows(t));
        nas_latency_error e;
        CHECK(nas_latpred_evaluate_table(ctx, space, t, NAS_LATPRED_LINEAR, 900, 1, NULL, &e) ==
                  NAS_OK, "evaluate: %s", nas_errmsg(ctx));
        printf("  %-14s linear, 900 samples: spearman %.3f (BRP-NAS %.3f), MAPE %.1f%%\n", cols[c],
               e.spearman, brp[c], e.mape);
        CHECK(e.spearman > brp[c], "%s spearman %.3f not above BRP-NAS %.3f", cols[c], e.spearman,
              brp[c]);
        nas_device_table_free(t);
    }
    nas_space_free(space);
    nas_ctx_free(ctx);
}

/* A LUT read from a file: the estimate is the sum of the entries of the model's layers, and a
 * model with a layer the LUT lacks is an error naming it. */
static void test_lut_file(void) {
    nas_ctx *ctx = nas_ctx_new();
    nas_space *space = NULL;
    CHECK(nas_space_open(ctx, "nb201", &space) == NAS_OK, "nb201: %s", nas_errmsg(ctx));
    if (space == NULL) {
        nas_ctx_free(ctx);
        return;
    }
    nas_lut *lut = NULL;
    const nas_build_opts opts = {.shape = {3, 32, 32, 10}, .channels_mult = 0.5, .cells = 1};
    CHECK(nas_lut_build(ctx, space, &opts, 1, 12, 4, 1, 5, &lut) == NAS_OK, "build: %s",
          nas_errmsg(ctx));
    if (lut == NULL) {
        nas_space_free(space);
        nas_ctx_free(ctx);
        return;
    }
    char path[] = "/tmp/nas_lut_XXXXXX";
    const int fd = mkstemp(path);
    close(fd);
    CHECK(nas_lut_save(lut, path) == NAS_OK, "save");
    nas_lut *back = NULL;
    CHECK(nas_lut_load(ctx, path, &back) == NAS_OK, "load: %s", nas_errmsg(ctx));
    CHECK(back != NULL && nas_lut_size(back) == nas_lut_size(lut), "size");
    nas_arch a;
    nas_space_decode(ctx, space, "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|", &a);
    nas_model *m = NULL;
    CHECK(nas_space_build(ctx, space, &a, &opts, &m) == NAS_OK, "build model");
    double e1 = -1, e2 = -2;
    if (m != NULL && back != NULL) {
        /* the all-conv cell's layers are covered when the LUT saw conv3x3 in every stage; if
         * not, the error must say which layer is missing */
        const nas_status s1 = nas_lut_estimate(lut, m, &e1);
        const nas_status s2 = nas_lut_estimate(back, m, &e2);
        CHECK(s1 == s2, "same status from the LUT and its file");
        if (s1 == NAS_OK) {
            CHECK(fabs(e1 - e2) <= 1e-6 * e1 && e1 > 0, "estimate %g vs reloaded %g", e1, e2);
        } else {
            CHECK(strstr(nas_errmsg(ctx), "no entry for layer") != NULL, "%s", nas_errmsg(ctx));
        }
    }
    nas_model_free(m);
    /* a network at another input size has layers the LUT never saw */
    const nas_build_opts other = {.shape = {3, 16, 16, 10}, .channels_mult = 0.5, .cells = 1};
    CHECK(nas_space_build(ctx, space, &a, &other, &m) == NAS_OK, "build model 16x16");
    double e3;
    CHECK(m != NULL && nas_lut_estimate(lut, m, &e3) == NAS_ERR_STATE, "missing layers");
    CHECK(strstr(nas_errmsg(ctx), "no entry for layer") != NULL, "%s", nas_errmsg(ctx));
    nas_model_free(m);
    /* evaluating against measured latency: covered architectures are timed and compared; a LUT
     * that covers nothing of the input size is a clear error after a bounded number of draws */
    nas_latency_error le;
    CHECK(nas_lut_evaluate(lut, ctx, space, &opts, 3, 1, 9, &le) == NAS_OK && le.n_test == 3 &&
              le.mape >= 0 && fabs(le.spearman) <= 1,
          "evaluate: %s", nas_errmsg(ctx));
    CHECK(nas_lut_evaluate(lut, ctx, space, &other, 2, 1, 9, &le) == NAS_ERR_STATE &&
              strstr(nas_errmsg(ctx), "no entry for layer") != NULL && le.n_uncovered >= 2,
          "uncovered input size: %s", nas_errmsg(ctx));
    FILE *f = fopen(path, "w");
    fputs("{\"format\": \"nascent-lut-1\", \"batch\": 1, \"entries\": {\"x\": \"fast\"}}", f);
    fclose(f);
    nas_lut *bad = NULL;
    CHECK(nas_lut_load(ctx, path, &bad) == NAS_ERR_FORMAT && bad == NULL, "bad entry");
    CHECK(strstr(nas_errmsg(ctx), "\"x\"") != NULL, "names the entry: %s", nas_errmsg(ctx));
    remove(path);
    nas_lut_free(lut);
    nas_lut_free(back);
    nas_space_free(space);
    nas_ctx_free(ctx);
}

/* A predictor fitted on latency measured here: the counts it reports, a fitted predictor whose
 * estimates are positive and finite, and clear errors for too few architectures (a space with
 * fewer distinct architectures than asked, too few training or test ones). Figures of merit
 * depend on the machine: they are in bench/bench_hardware.sh, not here. */
static void test_predictor_on_measured(void) {
    nas_ctx *ctx = nas_ctx_new();
    nas_space *space = NULL;
    CHECK(nas_space_open(ctx, "nb201", &space) == NAS_OK, "nb201: %s", nas_errmsg(ctx));
    if (space == NULL) {
        nas_ctx_free(ctx);
        return;
    }
    const nas_build_opts opts = {.shape = {1, 12, 12, 10}, .channels_mult = 0.25, .cells = 1};
    nas_latency_error e;
    nas_latpred *p = NULL;
    CHECK(nas_latpred_evaluate_measured(ctx, space, &opts, NAS_LATPRED_LINEAR, 12, 6, 1, 3, &p, &e) ==
              NAS_OK, "measured: %s", nas_errmsg(ctx));
    CHECK(e.n_train == 12 && e.n_test == 6 && p != NULL, "train %lld test %lld",
          (long long)e.n_train, (long long)e.n_test);
    if (p != NULL) {
        float x[64] = {0};
        CHECK(nas_latpred_n_features(p) == nas_space_n_features(space) &&
                  nas_space_n_features(space) <= 64, "features %lld", (long long)nas_latpred_n_features(p));
        nas_arch a;
        CHECK(nas_space_decode(ctx, space, "default", &a) == NAS_OK, "%s", nas_errmsg(ctx));
        nas_space_features(space, &a, x);
        double ms = -1.0;
        CHECK(nas_latpred_predict(p, x, &ms) == NAS_OK && ms > 0.0 && isfinite(ms), "predicted %g", ms);
        nas_latpred_free(p);
    }
    CHECK(nas_latpred_evaluate_measured(ctx, space, &opts, NAS_LATPRED_LINEAR, 1, 6, 1, 3, NULL, &e) ==
              NAS_ERR_ARG && strstr(nas_errmsg(ctx), "training") != NULL, "1 training: %s",
          nas_errmsg(ctx));
    CHECK(nas_latpred_evaluate_measured(ctx, space, &opts, NAS_LATPRED_LINEAR, 10000, 10000, 1, 3,
                                        NULL, &e) == NAS_ERR_ARG &&
              strstr(nas_errmsg(ctx), "distinct") != NULL, "more than the space: %s", nas_errmsg(ctx));
    nas_space_free(space);
    nas_ctx_free(ctx);
}

int main(void) {
    nas_set_threads(1); /* tiny MLPs: two OpenMP threads only add barrier waits */
    RUN_TEST(test_linear_recovers_additive);
    RUN_TEST(test_mlp_fits_interaction);
    RUN_TEST(test_device_table_errors);
    RUN_TEST(test_nb201_predictor_vs_brpnas);
    RUN_TEST(test_lut_file);
    RUN_TEST(test_predictor_on_measured);
    return check_report("hardware");
}
