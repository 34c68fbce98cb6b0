/* latency.c - latency of a network in nascent's own engine on this machine: build the inference
 * graph once, warm up (oneDNN creates its primitives on the first run), then time `repeats`
 * forward passes and report the median and spread. Peak memory is the graph's arena plus the
 * input, i.e. what inference really holds. */
#include "hardware_int.h"

#include <stdlib.h>

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double nas_hw_quantile_sorted(const double *x, int64_t n, double q) {
    if (n <= 0) {
        return 0.0;
    }
    const double pos = q * (double)(n - 1);
    const int64_t lo = (int64_t)pos;
    const int64_t hi = lo + 1 < n ? lo + 1 : lo;
    return x[lo] + (pos - (double)lo) * (x[hi] - x[lo]);
}

double nas_hw_median(double *x, int64_t n) {
    qsort(x, (size_t)n, sizeof(double), cmp_double);
    return nas_hw_quantile_sorted(x, n, 0.5);
}

nas_status nas_latency_measure(nas_ctx *ctx, nas_model *m, int batch, int repeats, int warmup,
                               nas_latency_result *out) {
    NAS_CHECK_ARG(ctx, m != NULL && out != NULL && batch >= 1 && repeats >= 1 && warmup >= 0);
    memset(out, 0, sizeof(*out));
    const nas_model_shape ms = nas_model_get_shape(m);
    const int64_t shape[4] = {batch, ms.in_c, ms.in_h, ms.in_w};
    const int64_t numel = shape[0] * shape[1] * shape[2] * shape[3];
    float *x = nas_malloc(ctx, (size_t)numel * sizeof(float));
    double *times = nas_malloc(ctx, (size_t)repeats * sizeof(double));
    nas_graph *g = nas_graph_new(ctx);
    nas_status st = (x == NULL || times == NULL || g == NULL) ? NAS_ERR_NOMEM : NAS_OK;
    if (st == NAS_OK) {
        nas_rng r = nas_rng_make(0x1a7e, 0);
        nas_rng_fill_normal(&r, x, numel, 0.0f, 1.0f);
        nas_graph_set_training(g, 0);
        nas_graph_set_grad_enabled(g, 0);
        nas_model_forward(m, g, nas_input(g, 4, shape, x));
        st = nas_graph_status(g);
    }
    for (int i = 0; st == NAS_OK && i < warmup + repeats; i++) {
        const double t0 = nas_now();
        st = nas_graph_forward(g);
        if (i >= warmup) {
            times[i - warmup] = (nas_now() - t0) * 1e3;
        }
    }
    if (st == NAS_OK) {
        out->median_ms = nas_hw_median(times, repeats);
        out->p10_ms = nas_hw_quantile_sorted(times, repeats, 0.1);
        out->p90_ms = nas_hw_quantile_sorted(times, repeats, 0.9);
        out->min_ms = times[0];
        out->repeats = repeats;
        out->batch = batch;
        out->peak_bytes = nas_graph_arena_bytes(g) + (size_t)numel * sizeof(float);
    }
    nas_graph_free(g);
    nas_free(ctx, times, (size_t)repeats * sizeof(double));
    nas_free(ctx, x, (size_t)numel * sizeof(float));
    return st;
}
