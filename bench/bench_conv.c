/* bench_conv.c - times nascent's conv2d (forward inference, and a training forward + backward)
 * at NB201 and MobileNet shapes. Prints "time conv_<name> infer|train <ms>" lines (median of
 * runs) that bench_conv.sh pairs with PyTorch's. Built and run by bench/bench_conv.sh.
 * Usage: bench_conv [threads] */
#include "nascent.h"
#include "ops/conv_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Process CPU seconds: with one thread, a timing that other processes on a busy machine do not
 * inflate (printed alongside wall time). */
static double cpu_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static double cpu_med; /* median CPU ms of the last time_conv */

typedef struct shape {
    const char *name;
    int64_t N, C, O, H, K, stride, groups;
} shape;

static const shape shapes[] = {
    {"nb201_16_32x32_k3_b64", 64, 16, 16, 32, 3, 1, 1},
    {"nb201_32_16x16_k3_b64", 64, 32, 32, 16, 3, 1, 1},
    {"nb201_64_8x8_k3_b64", 64, 64, 64, 8, 3, 1, 1},
    {"nb201_16_32x32_k1_b64", 64, 16, 16, 32, 1, 1, 1},
    {"nb201_32_16x16_k1_b64", 64, 32, 32, 16, 1, 1, 1},
    {"nb201_64_8x8_k1_b64", 64, 64, 64, 8, 1, 1, 1},
    {"nb201_16_32x32_k3_b1", 1, 16, 16, 32, 3, 1, 1},
    {"nb201_32_16x16_k3_b1", 1, 32, 32, 16, 3, 1, 1},
    {"nb201_64_8x8_k3_b1", 1, 64, 64, 8, 3, 1, 1},
    {"nb201_16_32x32_k1_b1", 1, 16, 16, 32, 1, 1, 1},
    {"nb201_64_8x8_k1_b1", 1, 64, 64, 8, 1, 1, 1},
    {"dw_96_16x16_k3_b64", 64, 96, 96, 16, 3, 1, 96},
    {"dw_144_16x16_k5_s2_b64", 64, 144, 144, 16, 5, 2, 144},
    {"dw_240_8x8_k7_b64", 64, 240, 240, 8, 7, 1, 240},
    {"dw_480_4x4_k3_b64", 64, 480, 480, 4, 3, 1, 480},
    {"dw_960_4x4_k5_b1", 1, 960, 960, 4, 5, 1, 960},
    {"dw_96_32x32_k3_b1", 1, 96, 96, 32, 3, 1, 96},
    {"pw_96_24_16x16_b64", 64, 96, 24, 16, 1, 1, 1},
    {"grp_64_8x8_k3_g4_b64", 64, 64, 64, 8, 3, 1, 4},
};

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median ms of `reps` runs of forward (and backward when train). */
static double time_conv(const shape *s, int train, int reps) {
    nas_ctx *ctx = nas_ctx_new();
    nas_graph *g = nas_graph_new(ctx);
    nas_graph_set_grad_enabled(g, train);
    const int64_t xs[4] = {s->N, s->C, s->H, s->H}, ws[4] = {s->O, s->C / s->groups, s->K, s->K};
    const int64_t nx = xs[0] * xs[1] * xs[2] * xs[3], nw = ws[0] * ws[1] * ws[2] * ws[3];
    float *x = malloc(sizeof(float) * (size_t)nx), *w = malloc(sizeof(float) * (size_t)nw);
    nas_rng r = nas_rng_make(1, 0);
    nas_rng_fill_normal(&r, x, nx, 0.0f, 1.0f);
    nas_rng_fill_normal(&r, w, nw, 0.0f, 0.1f);
    nas_conv_args a = {0};
    a.stride_h = a.stride_w = (int)s->stride;
    a.pad_h = a.pad_w = (int)(s->K / 2);
    a.groups = (int)s->groups;
    nas_tensor *tx = train ? nas_input_grad(g, 4, xs, x) : nas_input(g, 4, xs, x);
    nas_tensor *tw = train ? nas_input_grad(g, 4, ws, w) : nas_input(g, 4, ws, w);
    nas_tensor *y = nas_conv2d(g, tx, tw, NULL, &a);
    float *seed = NULL;
    if (y == NULL) {
        fprintf(stderr, "%s: %s\n", s->name, nas_errmsg(ctx));
        exit(1);
    }
    if (train) {
        seed = malloc(sizeof(float) * (size_t)nas_tensor_numel(y));
        nas_rng_fill_normal(&r, seed, nas_tensor_numel(y), 0.0f, 1.0f);
    }
    double *t = malloc(sizeof(double) * (size_t)reps), *tc = malloc(sizeof(double) * (size_t)reps);
    for (int i = -3; i < reps; i++) {
        const double t0 = nas_now(), c0 = cpu_now();
        if (nas_graph_forward(g) != NAS_OK ||
            (train && nas_graph_backward_from(g, y, seed) != NAS_OK)) {
            fprintf(stderr, "%s: %s\n", s->name, nas_errmsg(ctx));
            exit(1);
        }
        if (i >= 0) {
            t[i] = nas_now() - t0;
            tc[i] = cpu_now() - c0;
        }
    }
    qsort(t, (size_t)reps, sizeof(double), cmp_double);
    qsort(tc, (size_t)reps, sizeof(double), cmp_double);
    const double med = t[reps / 2] * 1e3;
    cpu_med = tc[reps / 2] * 1e3;
    free(t);
    free(tc);
    free(x);
    free(w);
    free(seed);
    nas_graph_free(g);
    nas_ctx_free(ctx);
    return med;
}

/* Our Winograd kernels (src/ops/conv_wino.c) alone, on blocked (nChw16c) buffers as the planner
 * gives them inside a network: median ms of the forward, and of forward + data + weight passes,
 * printed as "time conv_<name>_wino infer F train T" (compared with PyTorch's times for <name>
 * by bench_conv_ratio.sh). The buffers stay in cache between repetitions; inside a network
 * they come from memory and each pass is slower (bench/RESULTS.md). */
static void time_wino(const shape *s, int reps) {
    nas_conv_geom c = {0};
    c.N = s->N;
    c.C = s->C;
    c.O = s->O;
    c.H = c.W = c.OH = c.OW = s->H;
    c.KH = c.KW = 3;
    c.sh = c.sw = c.ph = c.pw = c.dh = c.dw = c.groups = 1;
    if (s->K != 3 || s->stride != 1 || s->groups != 1 || !nas_conv_wino_suits(&c, 0)) {
        return;
    }
    const int64_t nx = c.N * c.C * c.H * c.W, ny = c.N * c.O * c.H * c.W, nw = c.O * c.C * 9;
    float *x = malloc(sizeof(float) * (size_t)nx), *y = malloc(sizeof(float) * (size_t)ny);
    float *dx = malloc(sizeof(float) * (size_t)nx), *w = malloc(sizeof(float) * (size_t)nw);
    float *dw = calloc((size_t)nw, sizeof(float));
    float *scratch = malloc(nas_conv_wino_scratch_bytes(&c, 1));
    nas_rng r = nas_rng_make(1, 0);
    nas_rng_fill_normal(&r, x, nx, 0.0f, 1.0f);
    nas_rng_fill_normal(&r, w, nw, 0.0f, 0.1f);
    const float *wp[1] = {w}, *dyp[1] = {y};
    double *tf = malloc(sizeof(double) * (size_t)reps), *tt = malloc(sizeof(double) * (size_t)reps);
    for (int i = -3; i < reps; i++) {
        const double t0 = nas_now();
        nas_conv_wino_forward(&c, x, wp, &y, 1, scratch);
        const double t1 = nas_now();
        nas_conv_wino_backward_data(&c, y, w, dx, 0, scratch); /* y stands in for dy */
        nas_conv_wino_backward_weights(&c, x, dyp, &dw, 1, scratch);
        if (i >= 0) {
            tf[i] = t1 - t0;
            tt[i] = nas_now() - t0;
        }
    }
    qsort(tf, (size_t)reps, sizeof(double), cmp_double);
    qsort(tt, (size_t)reps, sizeof(double), cmp_double);
    const double flops = 2.0 * (double)(nw * c.N * c.H * c.W);
    printf("time conv_%s_wino infer %.4f train %.4f  (%.1f / %.1f GFLOP/s direct-equivalent)\n",
           s->name, tf[reps / 2] * 1e3, tt[reps / 2] * 1e3, flops / tf[reps / 2] / 1e9,
           3 * flops / tt[reps / 2] / 1e9);
    fflush(stdout);
    free(tf);
    free(tt);
    free(x);
    free(y);
    free(dx);
    free(w);
    free(dw);
    free(scratch);
}

int main(int argc, char **argv) {
    nas_set_threads(argc > 1 ? atoi(argv[1]) : 2);
    const char *only = argc > 2 ? argv[2] : NULL;
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const shape *s = &shapes[i];
        if (only != NULL && strstr(s->name, only) == NULL) {
            continue;
        }
        const double flops = 2.0 * (double)(s->N * s->O * (s->H / s->stride) * (s->H / s->stride) *
                                            (s->C / s->groups) * s->K * s->K);
        const int reps = flops > 1e8 ? 15 : flops > 1e7 ? 50 : 200;
        const double inf = time_conv(s, 0, reps), inf_cpu = cpu_med;
        const double tr = time_conv(s, 1, reps), tr_cpu = cpu_med;
        printf("time conv_%s infer %.4f train %.4f  (%.1f / %.1f GFLOP/s; cpu ms %.4f / %.4f)\n",
               s->name, inf, tr, flops / inf / 1e6, 3 * flops / tr / 1e6, inf_cpu, tr_cpu);
        fflush(stdout);
        time_wino(s, 100);
    }
    return 0;
}
