/* test_ops.c - forward behaviour of the op families in act.c, norm.c, pool.c, shape.c, loss.c and
 * lstm.c beyond gradients (test_ops_grad.c) and PyTorch values (py_ops_torch.py):
 * fast pooling kernels against their naive twins on random odd shapes, bad input giving an error
 * code and a message that names the shapes, reproducible dropout masks, BN running statistics
 * (momentum and the cumulative recalibration mode) against a double-precision reference,
 * bit-identical reductions for 1 and 2 threads, and the index maps of the shape ops. */
#include "check.h"
#include "nascent.h"
#include "ops/pool_int.h"

#include <math.h>
#include <string.h>

static float *rand_buf(nas_rng *r, int64_t n, float lo, float hi) {
    float *p = malloc((size_t)n * sizeof(float));
    nas_rng_fill_uniform(r, p, n, lo, hi);
    return p;
}

static double max_rel_diff(const float *a, const float *b, int64_t n) {
    double worst = 0.0;
    for (int64_t i = 0; i < n; i++) {
        worst = fmax(worst, fabs((double)a[i] - (double)b[i]) / fmax(1.0, fabs((double)b[i])));
    }
    return worst;
}

/* ---- fast pooling kernels vs the naive twins */

static void test_pool_fast_vs_naive(void) {
    nas_rng r = nas_rng_make(11, 0);
    for (int trial = 0; trial < 120; trial++) {
        /* 0, 1: 3x3 s1 p1 count_pad 0/1; 2: 2x2 s2; 3: any k, stride, pad, count mode */
        const int kind = trial % 4;
        nas_pool_geom s = {1 + nas_rng_below(&r, 5),
                           2 + nas_rng_below(&r, 14),
                           2 + nas_rng_below(&r, 14),
                           0,
                           0,
                           0,
                           0,
                           0,
                           0};
        s.k = kind < 2 ? 3 : 2;
        s.stride = kind < 2 ? 1 : 2;
        s.pad = kind < 2 ? 1 : 0;
        s.count_pad = kind == 1;
        if (kind == 3) {
            s.k = 1 + (int)nas_rng_below(&r, 5);
            s.stride = 1 + (int)nas_rng_below(&r, 3);
            s.pad = (int)nas_rng_below(&r, s.k / 2 + 1);
            s.count_pad = (int)nas_rng_below(&r, 2);
            if (s.H + 2 * s.pad < s.k || s.W + 2 * s.pad < s.k) {
                continue;
            }
        }
        s.Ho = (s.H + 2 * s.pad - s.k) / s.stride + 1;
        s.Wo = (s.W + 2 * s.pad - s.k) / s.stride + 1;
        const int64_t nx = s.planes * s.H * s.W, ny = s.planes * s.Ho * s.Wo;
        float *x = rand_buf(&r, nx, -2, 2), *dy = rand_buf(&r, ny, -1, 1);
        float *y1 = calloc((size_t)ny, 4), *y2 = calloc((size_t)ny, 4);
        float *dx1 = rand_buf(&r, nx, -1, 1), *dx2 = malloc((size_t)nx * 4);
        memcpy(dx2, dx1, (size_t)nx * 4); /* both accumulate onto the same values */
        nas_pool_avg_forward(&s, x, y1);
        nas_pool_avg_forward_naive(&s, x, y2);
        nas_pool_avg_backward(&s, dy, dx1);
        nas_pool_avg_backward_naive(&s, dy, dx2);
        const double ef = max_rel_diff(y1, y2, ny), eb = max_rel_diff(dx1, dx2, nx);
        CHECK(ef < 1e-6 && eb < 1e-6,
              "kind %d k %d s %d p %d cp %d planes %lld H %lld W %lld: forward %g backward %g",
              kind, s.k, s.stride, s.pad, s.count_pad, (long long)s.planes, (long long)s.H,
              (long long)s.W, ef, eb);
        const int special =
            (s.k == 3 && s.stride == 1 && s.pad == 1) || (s.k == 2 && s.stride == 2 && s.pad == 0);
        if (kind == 3 && !special) { /* the general kernel's forward sums in the naive order */
            CHECK(memcmp(y1, y2, (size_t)ny * 4) == 0, "general avg forward not bit-identical");
        }
        free(x), free(dy), free(y1), free(y2), free(dx1), free(dx2);
    }
}

/* Max pooling, every k / stride / pad: the vectorised kernel must match the naive one bit for
 * bit, values and argmax, including ties (values quantised to a few levels) and NaN. */
static void test_max_pool_fast_vs_naive(void) {
    nas_rng r = nas_rng_make(12, 0);
    for (int trial = 0; trial < 80; trial++) {
        nas_pool_geom s = {1 + nas_rng_below(&r, 4),
                           1 + nas_rng_below(&r, 17),
                           1 + nas_rng_below(&r, 17),
                           0,
                           0,
                           0,
                           0,
                           0,
                           0};
        s.k = 1 + (int)nas_rng_below(&r, 4);
        s.stride = 1 + (int)nas_rng_below(&r, 3);
        s.pad = (int)nas_rng_below(&r, s.k / 2 + 1);
        if (s.H + 2 * s.pad < s.k || s.W + 2 * s.pad < s.k) {
            continue;
        }
        s.Ho = (s.H + 2 * s.pad - s.k) / s.stride + 1;
        s.Wo = (s.W + 2 * s.pad - s.k) / s.stride + 1;
        const int64_t nx = s.planes * s.H * s.W, ny = s.planes * s.Ho * s.Wo;
        float *x = rand_buf(&r, nx, -2, 2);
        for (int64_t i = 0; i < nx; i++) {
            x[i] = trial % 2 ? floorf(x[i]) : x[i]; /* ties on odd trials */
        }
        if (trial % 5 == 0) {
            x[nas_rng_below(&r, nx)] = NAN;
        }
        float *y1 = malloc((size_t)ny * 4), *y2 = malloc((size_t)ny * 4);
        int32_t *i1 = malloc((size_t)ny * 4), *i2 = malloc((size_t)ny * 4);
        nas_pool_max_forward(&s, x, y1, i1);
        nas_pool_max_forward_naive(&s, x, y2, i2);
        CHECK(memcmp(y1, y2, (size_t)ny * 4) == 0 && memcmp(i1, i2, (size_t)ny * 4) == 0,
              "k %d stride %d pad %d H %lld W %lld: fast and naive max pool differ", s.k, s.stride,
              s.pad, (long long)s.H, (long long)s.W);
        free(x), free(y1), free(y2), free(i1), free(i2);
    }
}

/* The vectorised 2x2 stride-2 max pool (8 outputs per step) on rows wide enough to use it,
 * odd widths and heights (dropped last row / column, scalar tail), ties and NaNs. */
static void test_max_pool_2x2_fast_vs_naive(void) {
    nas_rng r = nas_rng_make(31, 0);
    for (int trial = 0; trial < 40; trial++) {
        nas_pool_geom s = {1 + nas_rng_below(&r, 5), 2 + nas_rng_below(&r, 30),
                           16 + nas_rng_below(&r, 50), 0, 0, 2, 2, 0, 0};
        s.Ho = s.H / 2;
        s.Wo = s.W / 2;
        const int64_t nx = s.planes * s.H * s.W, ny = s.planes * s.Ho * s.Wo;
        float *x = rand_buf(&r, nx, -2, 2);
        for (int64_t i = 0; i < nx; i++) {
            x[i] = trial % 2 ? floorf(x[i]) : x[i]; /* ties on odd trials */
        }
        for (int k = 0; k < (trial % 3 == 0 ? 3 : 0); k++) {
            x[nas_rng_below(&r, nx)] = k == 1 ? -INFINITY : NAN;
        }
        float *y1 = malloc((size_t)ny * 4), *y2 = malloc((size_t)ny * 4);
        int32_t *i1 = malloc((size_t)ny * 4), *i2 = malloc((size_t)ny * 4);
        nas_pool_max_forward(&s, x, y1, i1);
        nas_pool_max_forward_naive(&s, x, y2, i2);
        CHECK(memcmp(y1, y2, (size_t)ny * 4) == 0 && memcmp(i1, i2, (size_t)ny * 4) == 0,
              "2x2 stride 2 H %lld W %lld: fast and naive max pool differ", (long long)s.H,
              (long long)s.W);
        free(x), free(y1), free(y2), free(i1), free(i2);
    }
}

/* ---- bad input */

static void expect_fail(nas_ctx *ctx, nas_graph *g, nas_tensor *t, nas_status code,
                        const char *must_contain, const char *what) {
    CHECK(t == NULL, "%s: builder must fail", what);
    CHECK(nas_graph_status(g) == code, "%s: status %s, want %s", what,
          nas_status_name(nas_graph_status(g)), nas_status_name(code));
    CHECK(strstr(nas_errmsg(ctx), must_contain) != NULL, "%s: message '%s' lacks '%s'", what,
          nas_errmsg(ctx), must_contain);
    nas_graph_reset(g);
}

static void test_bad_input(void) {
    nas_ctx *ctx = nas_ctx_new();
    nas_graph *g = nas_graph_new(ctx);
    const int64_t s4[4] = {2, 3, 4, 5}, s4b[4] = {2, 3, 6, 5}, c4[1] = {4}, nc[2] = {2, 4};
    const int64_t s5[4] = {2, 5, 4, 5}, logit_s[2] = {4, 10}, w3[1] = {3};
#define X(shape) nas_input(g, (int)(sizeof(shape) / sizeof(shape[0])), shape, NULL)
    expect_fail(ctx, g, nas_batch_norm(g, X(s4), X(c4), NULL, NULL, NULL, 0.1f, 1e-5f),
                NAS_ERR_SHAPE, "[2, 3, 4, 5]", "bn gamma");
    expect_fail(ctx, g, nas_batch_norm(g, X(nc), NULL, NULL, X(c4), NULL, 0.1f, 1e-5f), NAS_ERR_ARG,
                "running_var", "bn half running");
    expect_fail(ctx, g, nas_avg_pool(g, X(s4), 3, 1, 2, 0), NAS_ERR_ARG, "pad 2", "pool pad");
    expect_fail(ctx, g, nas_max_pool(g, X(nc), 2, 2, 0), NAS_ERR_SHAPE, "[2, 4]", "pool 2-d");
    expect_fail(ctx, g, nas_max_pool(g, X(s4), 7, 1, 0), NAS_ERR_SHAPE, "kernel 7", "pool big k");
    expect_fail(ctx, g, nas_global_avg_pool(g, X(nc)), NAS_ERR_SHAPE, "[2, 4]", "gap 2-d");
    nas_tensor *two[2];
    two[0] = X(s4);
    two[1] = X(s4b);
    expect_fail(ctx, g, nas_weighted_sum(g, 2, two, X(w3)), NAS_ERR_SHAPE, "[2, 3, 6, 5]",
                "wsum shapes");
    two[0] = X(s4);
    two[1] = X(s4);
    expect_fail(ctx, g, nas_weighted_sum(g, 2, two, X(w3)), NAS_ERR_SHAPE, "[3]", "wsum weights");
    two[0] = X(s4);
    two[1] = X(s4b);
    expect_fail(ctx, g, nas_concat(g, 2, two), NAS_ERR_SHAPE, "[2, 3, 6, 5]", "concat");
    expect_fail(ctx, g, nas_mul(g, X(s4), X(nc)), NAS_ERR_SHAPE, "[2, 4]", "mul");
    expect_fail(ctx, g, nas_channel_shuffle(g, X(s5), 2), NAS_ERR_SHAPE, "2 groups", "shuffle");
    expect_fail(ctx, g, nas_pad_channels(g, X(s4), 2), NAS_ERR_SHAPE, "2 channels", "pad");
    expect_fail(ctx, g, nas_zero(g, X(nc), 2), NAS_ERR_ARG, "stride 2", "zero");
    expect_fail(ctx, g, nas_dropout(g, X(s4), 1.0f), NAS_ERR_ARG, "probability 1", "dropout");
    const int32_t labels[4] = {1, 2, 10, 0};
    expect_fail(ctx, g, nas_softmax_cross_entropy(g, X(logit_s), nas_labels(g, 3, labels), 0.0f),
                NAS_ERR_SHAPE, "[4, 10]", "ce count");
    expect_fail(ctx, g, nas_softmax_cross_entropy(g, X(logit_s), X(c4), 0.0f), NAS_ERR_ARG,
                "nas_labels", "ce not labels");
    expect_fail(ctx, g, nas_kl_div(g, X(logit_s), X(nc), 2.0f), NAS_ERR_SHAPE, "[2, 4]", "kl");
    expect_fail(ctx, g, nas_kl_div(g, X(logit_s), X(logit_s), 0.0f), NAS_ERR_ARG, "temperature",
                "kl temperature");
    const int64_t xs[2] = {4, 3}, hs[2] = {4, 2}, wih_bad[2] = {8, 4}, whh[2] = {8, 2};
    nas_tensor *c_out = NULL;
    expect_fail(ctx, g, nas_lstm_cell(g, X(xs), X(hs), X(hs), X(wih_bad), X(whh), NULL, &c_out),
                NAS_ERR_SHAPE, "[8, 4]", "lstm w_ih");
    CHECK(c_out == NULL, "lstm failure leaves c_out NULL");
    /* NULL sources (an earlier failure) give NULL, not a crash */
    expect_fail(ctx, g, nas_relu6(g, NULL), NAS_ERR_ARG, "NULL", "null source");

    /* an out-of-range label is caught at forward with its index and value */
    float logits[40] = {0};
    nas_tensor *z = nas_input(g, 2, logit_s, logits);
    nas_tensor *loss = nas_softmax_cross_entropy(g, z, nas_labels(g, 4, labels), 0.1f);
    CHECK(loss != NULL, "ce builds: %s", nas_errmsg(ctx));
    CHECK(nas_graph_forward(g) == NAS_ERR_ARG, "bad label must fail forward");
    CHECK(strstr(nas_errmsg(ctx), "label 2 is 10") != NULL, "message: %s", nas_errmsg(ctx));
    nas_graph_reset(g);

    /* training BN on one value per channel is an error, not a NaN */
    const int64_t one[4] = {1, 2, 1, 1}, c2[1] = {2};
    float xv[2] = {1, 2}, rm[2] = {0, 0}, rv[2] = {1, 1};
    nas_graph_set_training(g, 1);
    nas_batch_norm(g, nas_input(g, 4, one, xv), NULL, NULL, nas_input(g, 1, c2, rm),
                   nas_input(g, 1, c2, rv), 0.1f, 1e-5f);
    CHECK(nas_graph_forward(g) == NAS_ERR_SHAPE, "BN on one value: %s", nas_errmsg(ctx));
#undef X
    nas_graph_free(g);
    nas_ctx_free(ctx);
}

/* ---- dropout */

static void dropout_run(int threads, uint64_t seed, int steps, float *out, int64_t n) {
    nas_set_threads(threads);
    nas_ctx *ctx = nas_ctx_new();
    nas_graph *g = nas_graph_new(ctx);
    nas_graph_set_training(g, 1);
    nas_graph_set_seed(g, seed);
    float *x = malloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++) {
        x[i] = 1.0f;
    }
    const int64_t shape[4] = {4, 8, 9, n / (4 * 8 * 9)};
    nas_tensor *y = nas_dropout(g, nas_input(g, 4, shape, x), 0.25f);
    for (int s = 0; s < steps; s++) {
        CHECK(nas_graph_forward(g) == NAS_OK, "forward");
    }
    memcpy(out, nas_tensor_data(y), (size_t)n * sizeof(float));
    free(x);
    nas_graph_free(g);
    nas_ctx_free(ctx);
}

static void test_dropout(void) {
    const int64_t n = 4 * 8 * 9 * 64; /* above the one-thread cut-off */
    float *a = malloc(n * 4), *b = malloc(n * 4), *c = malloc(n * 4), *d = malloc(n * 4);
    dropout_run(1, 42, 1, a, n);
    dropout_run(2, 42, 1, b, n);
    dropout_run(2, 42, 2, c, n);
    dropout_run(2, 43, 1, d, n);
    CHECK(memcmp(a, b, n * 4) == 0, "same seed, 1 vs 2 threads: masks differ");
    CHECK(memcmp(b, c, n * 4) != 0, "the next step must draw a new mask");
    CHECK(memcmp(b, d, n * 4) != 0, "another seed must draw another mask");
    int64_t dropped = 0, bad = 0;
    for (int64_t i = 0; i < n; i++) {
        dropped += a[i] == 0.0f;
        bad += a[i] != 0.0f && fabsf(a[i] - 1.0f / 0.75f) > 1e-6f;
    }
    const double frac = (double)dropped / (double)n, sd = sqrt(0.25 * 0.75 / (double)n);
    CHECK(fabs(frac - 0.25) < 4 * sd, "dropped fraction %g, want 0.25", frac);
    CHECK(bad == 0, "%lld kept values are not x / (1 - p)", (long long)bad);
    /* eval mode: identity */
    nas_ctx *ctx = nas_ctx_new();
    nas_graph *g = nas_graph_new(ctx);
    const int64_t shape[1] = {n};
    nas_tensor *y = nas_dropout(g, nas_input(g, 1, shape, a), 0.5f);
    CHECK(nas_graph_forward(g) == NAS_OK && memcmp(nas_tensor_data(y), a, n * 4) == 0,
          "eval dropout must copy");
    nas_graph_free(g);
    nas_ctx_free(ctx);
    free(a), free(b), free(c), free(d);
}

/* ---- batch norm running statistics */

/* batch mean and unbiased variance of channel c of x [N, C, HW], in double */
static void channel_stats(const float *x, int64_t N, int64_t C, int64_t HW, int64_t c, double *mean,
                          double *var) {
    double s = 0.0, ss = 0.0;
    for (int64_t n = 0; n < N; n++) {
        for (int64_t i = 0; i < HW; i++) {
            s += x[(n * C + c) * HW + i];
        }
    }
    *mean = s / (double)(N * HW);
    for (int64_t n = 0; n < N; n++) {
        for (int64_t i = 0; i < HW; i++) {
            const double d = x[(n * C + c) * HW + i] - *mean;
            ss += d * d;
        }
    }
    *var = ss / (double)(N * HW - 1);
}

static void bn_running_case(float momentum) {
    enum { N = 3, C = 4, H = 5, W = 7, STEPS = 4 };
    nas_ctx *ctx = nas_ctx_new();
    nas_graph *g = nas_graph_new(ctx);
    nas_graph_set_training(g, 1);
    nas_graph_set_grad_enabled(g, 0);
    nas_graph_set_seed(g, 1);
    nas_rng r = nas_rng_make(5, 5);
    float x[N * C * H * W], rm[C], rv[C];
    double ref_m[C], ref_v[C];
    for (int c = 0; c < C; c++) {
        rm[c] = 0.5f; /* the cumulative mode must forget these */
        rv[c] = 3.0f;
        ref_m[c] = momentum < 0 ? 0.0 : 0.5;
        ref_v[c] = momentum < 0 ? 0.0 : 3.0;
    }
    const int64_t xs[4] = {N, C, H, W}, cs[1] = {C};
    nas_batch_norm(g, nas_input(g, 4, xs, x), NULL, NULL, nas_input(g, 1, cs, rm),
                   nas_input(g, 1, cs, rv), momentum, 1e-5f);
    for (int step = 0; step < STEPS; step++) {
        nas_rng_fill_normal(&r, x, N * C * H * W, (float)step, 1.0f + (float)step);
        CHECK(nas_graph_forward(g) == NAS_OK, "forward: %s", nas_errmsg(ctx));
        for (int c = 0; c < C; c++) {
            double m, v;
            channel_stats(x, N, C, H * W, c, &m, &v);
            if (momentum < 0) {
                ref_m[c] += (m - ref_m[c]) / (step + 1);
                ref_v[c] += (v - ref_v[c]) / (step + 1);
            } else {
                ref_m[c] = (1 - momentum) * ref_m[c] + momentum * m;
                ref_v[c] = (1 - momentum) * ref_v[c] + momentum * v;
            }
        }
    }
    for (int c = 0; c < C; c++) {
        CHECK(fabs(rm[c] - ref_m[c]) < 1e-5 * fmax(1, fabs(ref_m[c])) &&
                  fabs(rv[c] - ref_v[c]) < 1e-5 * fmax(1, ref_v[c]),
              "momentum %g channel %d: mean %g vs %g, var %g vs %g", (double)momentum, c,
              (double)rm[c], ref_m[c], (double)rv[c], ref_v[c]);
    }
    /* eval mode normalises with the running statistics */
    nas_graph_reset(g);
    nas_graph_set_training(g, 0);
    nas_tensor *y = nas_batch_norm(g, nas_input(g, 4, xs, x), NULL, NULL, nas_input(g, 1, cs, rm),
                                   nas_input(g, 1, cs, rv), momentum, 1e-5f);
    CHECK(nas_graph_forward(g) == NAS_OK, "eval forward");
    double worst = 0;
    for (int64_t i = 0; i < N * C * H * W; i++) {
        const int64_t c = (i / (H * W)) % C;
        const double ref = (x[i] - (double)rm[c]) / sqrt((double)rv[c] + 1e-5);
        worst = fmax(worst, fabs(nas_tensor_data(y)[i] - ref));
    }
    CHECK(worst < 1e-5, "eval output off by %g", worst);
    nas_graph_free(g);
    nas_ctx_free(ctx);
}

/* Elastic width: running statistics taken as a slice (first 3 of 5 channels) of shared buffers
 * are updated in the shared buffers; the other channels are untouched. */
static void bn_slice_case(void) {
    nas_ctx *ctx = nas_ctx_new();
    nas_params *P = nas_params_new(ctx);
    const int64_t five[1] = {5};
    nas_param_id mid, vid;
    CHECK(nas_params_add(P, "bn.running_mean", 1, five, NAS_INIT_ZEROS, NAS_PARAM_BUFFER, 0,
                         &mid) == NAS_OK &&
              nas_params_add(P, "bn.running_var", 1, five, NAS_INIT_ONES, NAS_PARAM_BUFFER, 0,
                             &vid) == NAS_OK,
          "params: %s", nas_errmsg(ctx));
    nas_params_init(P, 1);
    nas_graph *g = nas_graph_new(ctx);
    nas_graph_set_training(g, 1);
    float x[2 * 3 * 4];
    for (int i = 0; i < 24; i++) {
        x[i] = (float)(i % 7) + (float)(i / 4 % 3); /* channel c = i / 4 % 3 */
    }
    const int64_t xs[4] = {2, 3, 2, 2};
    nas_batch_norm(g, nas_input(g, 4, xs, x), NULL, NULL, nas_param_slice(g, P, mid, 3, 1, 1),
                   nas_param_slice(g, P, vid, 3, 1, 1), 1.0f, 1e-5f);
    CHECK(nas_graph_forward(g) == NAS_OK, "forward: %s", nas_errmsg(ctx));
    const float *mean = nas_params_data(P) + nas_param_offset(P, mid);
    const float *var = nas_params_data(P) + nas_param_offset(P, vid);
    for (int c = 0; c < 3; c++) {
        double m, v;
        channel_stats(x, 2, 3, 4, c, &m, &v);
        CHECK(fabs(mean[c] - m) < 1e-5 && fabs(var[c] - v) < 1e-5,
              "channel %d: shared buffer %g %g, batch %g %g", c, (double)mean[c], (double)var[c], m,
              v);
    }
    CHECK(mean[3] == 0.0f && mean[4] == 0.0f && var[3] == 1.0f && var[4] == 1.0f,
          "channels outside the slice changed");
    nas_graph_free(g);
    nas_params_free(P);
    nas_ctx_free(ctx);
}

static void test_bn_running_stats(void) {
    bn_running_case(0.1f);
    bn_running_case(-1.0f);
    bn_slice_case();
}

/* ---- determinism across thread counts: shapes above the one-thread cut-off (NAS_PAR_MIN
 * elements), so the parallel paths run; 1 and 2 threads must agree bit for bit. */

enum { DN = 8, DC = 6, DH = 27, DW = 29, DLEN = DN * DC * DH * DW };

typedef struct det_out {
    float y[DLEN], dx[DLEN], dx2[DLEN], dg[DC], db[DC], dw[3], dse[DN * DC];
} det_out;

static void det_run(int threads, det_out *o) {
    nas_set_threads(threads);
    nas_ctx *ctx = nas_ctx_new();
    nas_graph *g = nas_graph_new(ctx);
    nas_graph_set_training(g, 1);
    nas_graph_set_seed(g, 5);
    nas_rng r = nas_rng_make(77, 0);
    float *x = malloc(DLEN * 4), *x2 = malloc(DLEN * 4), *seed = malloc(DLEN * 4);
    float ga[DC], be[DC], w[3], se[DN * DC];
    nas_rng_fill_normal(&r, x, DLEN, 1.0f, 2.0f);
    nas_rng_fill_normal(&r, x2, DLEN, 0.0f, 1.0f);
    nas_rng_fill_uniform(&r, ga, DC, 0.5f, 1.5f);
    nas_rng_fill_uniform(&r, be, DC, -1, 1);
    nas_rng_fill_uniform(&r, w, 3, 0, 1);
    nas_rng_fill_uniform(&r, se, DN * DC, 0, 1);
    nas_rng_fill_uniform(&r, seed, DLEN, -1, 1);
    const int64_t xs[4] = {DN, DC, DH, DW}, cs[1] = {DC}, ws[1] = {3}, ses[2] = {DN, DC};
    nas_tensor *xin = nas_input_grad(g, 4, xs, x), *x2in = nas_input_grad(g, 4, xs, x2);
    nas_tensor *gin = nas_input_grad(g, 1, cs, ga), *bin = nas_input_grad(g, 1, cs, be);
    nas_tensor *win = nas_input_grad(g, 1, ws, w), *sein = nas_input_grad(g, 2, ses, se);
    nas_tensor *bn = nas_hswish(g, nas_batch_norm(g, xin, gin, bin, NULL, NULL, 0.1f, 1e-5f));
    nas_tensor *three[3] = {bn, nas_avg_pool(g, x2in, 3, 1, 1, 0), nas_max_pool(g, x2in, 3, 1, 1)};
    nas_tensor *mix = nas_weighted_sum(g, 3, three, win);
    nas_tensor *y = nas_dropout(g, nas_mul(g, mix, nas_sigmoid(g, sein)), 0.1f);
    CHECK(nas_graph_forward(g) == NAS_OK && nas_graph_backward_from(g, y, seed) == NAS_OK,
          "run: %s", nas_errmsg(ctx));
    memcpy(o->y, nas_tensor_data(y), sizeof o->y);
    memcpy(o->dx, nas_tensor_grad(xin), sizeof o->dx);
    memcpy(o->dx2, nas_tensor_grad(x2in), sizeof o->dx2);
    memcpy(o->dg, nas_tensor_grad(gin), sizeof o->dg);
    memcpy(o->db, nas_tensor_grad(bin), sizeof o->db);
    memcpy(o->dw, nas_tensor_grad(win), sizeof o->dw);
    memcpy(o->dse, nas_tensor_grad(sein), sizeof o->dse);
    free(x), free(x2), free(seed);
    nas_graph_free(g);
    nas_ctx_free(ctx);
}

static void test_thread_determinism(void) {
    det_out *a = calloc(1, sizeof(det_out)), *b = calloc(1, sizeof(det_out));
    det_run(1, a);
    det_run(2, b);
    CHECK(memcmp(a->y, b->y, sizeof a->y) == 0, "forward differs between 1 and 2 threads");
    CHECK(memcmp(a->dx, b->dx, sizeof a->dx) == 0 && memcmp(a->dx2, b->dx2, sizeof a->dx2) == 0,
          "input gradients differ between 1 and 2 threads");
    CHECK(memcmp(a->dg, b->dg, sizeof a->dg) == 0 && memcmp(a->db, b->db, sizeof a->db) == 0 &&
              memcmp(a->dw, b->dw, sizeof a->dw) == 0 && memcmp(a->dse, b->dse, sizeof a->dse) == 0,
          "reduced gradients (BN affine, mixing weights, SE factors) differ");
    free(a), free(b);
    nas_set_threads(0);
}

/* ---- index maps of the shape ops */

static void test_shape_forward(void) {
    nas_ctx *ctx = nas_ctx_new();
    nas_graph *g = nas_graph_new(ctx);
    enum { N = 2, C = 6, H = 7, W = 9 };
    static float x[N * C * H * W], se[N * C];
    for (int i = 0; i < N * C * H * W; i++) {
        x[i] = (float)i;
    }
    for (int i = 0; i < N * C; i++) {
        se[i] = 0.5f * (float)i - 1.0f;
    }
    const int64_t xs[4] = {N, C, H, W}, ss[2] = {N, C};
    nas_tensor *xin = nas_input(g, 4, xs, x);
    nas_tensor *sh = nas_channel_shuffle(g, xin, 2);
    nas_tensor *zero = nas_zero(g, xin, 2);
    nas_tensor *pad = nas_pad_channels(g, xin, 8);
    nas_tensor *mul = nas_mul(g, xin, nas_input(g, 2, ss, se));
    CHECK(nas_graph_forward(g) == NAS_OK, "forward: %s", nas_errmsg(ctx));
    CHECK(nas_tensor_dim(zero, 2) == 4 && nas_tensor_dim(zero, 3) == 5,
          "zero stride 2 shape %lld"
          " x %lld, want ceil(7/2) x ceil(9/2)",
          (long long)nas_tensor_dim(zero, 2), (long long)nas_tensor_dim(zero, 3));
    int bad_zero = 0, bad_sh = 0, bad_pad = 0, bad_mul = 0;
    for (int64_t i = 0; i < nas_tensor_numel(zero); i++) {
        bad_zero += nas_tensor_data(zero)[i] != 0.0f;
    }
    for (int n = 0; n < N; n++) {
        for (int c = 0; c < C; c++) {
            /* torch: x.view(N, 2, 3, H, W).transpose(1, 2): out channel c = in (c % 2) * 3 + c / 2
             */
            const int src_c = (c % 2) * 3 + c / 2;
            for (int i = 0; i < H * W; i++) {
                bad_sh +=
                    nas_tensor_data(sh)[(n * C + c) * H * W + i] != x[(n * C + src_c) * H * W + i];
                bad_mul += nas_tensor_data(mul)[(n * C + c) * H * W + i] !=
                           x[(n * C + c) * H * W + i] * se[n * C + c];
            }
        }
        for (int c = 0; c < 8; c++) {
            for (int i = 0; i < H * W; i++) {
                const float want = c < C ? x[(n * C + c) * H * W + i] : 0.0f;
                bad_pad += nas_tensor_data(pad)[(n * 8 + c) * H * W + i] != want;
            }
        }
    }
    CHECK(bad_zero == 0 && bad_sh == 0 && bad_pad == 0 && bad_mul == 0,
          "zero %d, shuffle %d, pad %d, mul %d wrong elements", bad_zero, bad_sh, bad_pad, bad_mul);
    nas_graph_free(g);
    nas_ctx_free(ctx);
}

/* ---- a steady-state step of these ops never calls the allocator */

static check_alloc_counter alloc_counter;

static void test_steady_state_no_alloc(void) {
    nas_ctx *ctx = nas_ctx_new_with_allocator(check_counting_alloc, &alloc_counter);
    nas_graph *g = nas_graph_new(ctx);
    nas_graph_set_training(g, 1);
    enum { N = 4, C = 6, H = 9 };
    static float x[N * C * H * H], vec[4 * C], w[3], hx[N * 2 * C], wih[16 * C], whh[16 * 4];
    nas_rng r = nas_rng_make(3, 3);
    nas_rng_fill_uniform(&r, x, N * C * H * H, -1, 1);
    nas_rng_fill_uniform(&r, vec, 4 * C, 0.5f, 1.5f);
    nas_rng_fill_uniform(&r, w, 3, 0, 1);
    nas_rng_fill_uniform(&r, hx, N * 2 * C, -1, 1);
    nas_rng_fill_uniform(&r, wih, 16 * C, -1, 1);
    nas_rng_fill_uniform(&r, whh, 16 * 4, -1, 1);
    const int32_t labels[N] = {0, 3, 1, 2};
    long warm = 0;
    for (int step = 0; step < 5; step++) {
        if (step == 2) {
            warm = alloc_counter.calls;
        }
        nas_graph_reset(g);
        const int64_t xs[4] = {N, C, H, H}, cs[1] = {C}, ws[1] = {3};
        nas_tensor *xin = nas_input_grad(g, 4, xs, x);
        nas_tensor *bn = nas_batch_norm(
            g, xin, nas_input_grad(g, 1, cs, vec), nas_input_grad(g, 1, cs, vec + C),
            nas_input(g, 1, cs, vec + 2 * C), nas_input(g, 1, cs, vec + 3 * C), 0.1f, 1e-5f);
        nas_tensor *ops[3] = {nas_avg_pool(g, bn, 3, 1, 1, 0), nas_max_pool(g, bn, 3, 1, 1),
                              nas_zero(g, bn, 1)};
        nas_tensor *mix = nas_weighted_sum(g, 3, ops, nas_input_grad(g, 1, ws, w));
        nas_tensor *feat = nas_dropout(g, nas_global_avg_pool(g, nas_hswish(g, mix)), 0.2f);
        const int64_t hs[2] = {N, 4}, wis[2] = {16, C}, whs[2] = {16, 4};
        nas_tensor *c_new = NULL;
        nas_tensor *h_new = nas_lstm_cell(
            g, feat, nas_input_grad(g, 2, hs, hx), nas_input_grad(g, 2, hs, hx + N * 4),
            nas_input_grad(g, 2, wis, wih), nas_input_grad(g, 2, whs, whh), NULL, &c_new);
        nas_tensor *loss = nas_softmax_cross_entropy(g, h_new, nas_labels(g, N, labels), 0.1f);
        CHECK(nas_graph_status(g) == NAS_OK, "build: %s", nas_errmsg(ctx));
        CHECK(nas_graph_forward(g) == NAS_OK, "forward: %s", nas_errmsg(ctx));
        CHECK(nas_graph_backward(g, loss) == NAS_OK, "backward: %s", nas_errmsg(ctx));
    }
    CHECK(alloc_counter.calls == warm, "steady state allocated %ld times", alloc_counter.calls - warm);
    nas_graph_free(g);
    nas_ctx_free(ctx);
}

int main(void) {
    RUN_TEST(test_pool_fast_vs_naive);
    RUN_TEST(test_max_pool_fast_vs_naive);
    RUN_TEST(test_max_pool_2x2_fast_vs_naive);
    RUN_TEST(test_bad_input);
    RUN_TEST(test_dropout);
    RUN_TEST(test_bn_running_stats);
    RUN_TEST(test_thread_determinism);
    RUN_TEST(test_shape_forward);
    RUN_TEST(test_steady_state_no_alloc);
    return check_report("ops");
}
