/* test_conv_direct.c - the direct stride-1 conv kernels (conv_direct.c) against the naive twin on
 * random odd shapes (channels 1..19, kernels 1..7 non-square, every padding below the kernel,
 * odd batch sizes so threads get unequal image ranges): forward, and the accumulating
 * backward of x, w and bias; the direct backward against central finite differences of a
 * double-precision loss; bit-identical reruns. NAS_TEST_LONG=1 runs more cases. */
#include "check.h"
#include "nascent.h"
#include "ops/conv_int.h"
#include "ops/pool_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static float *rnd(int64_t n, nas_rng *r) {
    float *p = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    nas_rng_fill_uniform(r, p, n, -1.0f, 1.0f);
    return p;
}

static float *copy_of(const float *p, int64_t n) {
    float *q = malloc(sizeof(float) * (size_t)n);
    memcpy(q, p, sizeof(float) * (size_t)n);
    return q;
}

static double max_rel(const float *a, const float *b, int64_t n) {
    double m = 0.0;
    for (int64_t i = 0; i < n; i++) {
        const double d = fabs((double)a[i] - (double)b[i]) / fmax(1.0, fabs((double)b[i]));
        m = d > m || d != d ? d : m;
    }
    return m;
}

static nas_conv_geom random_geom(nas_rng *r) {
    nas_conv_geom c;
    memset(&c, 0, sizeof c);
    c.N = 1 + (int64_t)nas_rng_below(r, 7);
    c.C = 1 + (int64_t)nas_rng_below(r, 19);
    c.O = 1 + (int64_t)nas_rng_below(r, 19);
    c.KH = 1 + (int64_t)nas_rng_below(r, 7);
    c.KW = nas_rng_below(r, 3) == 0 ? 1 + (int64_t)nas_rng_below(r, 7) : c.KH;
    c.ph = (int64_t)nas_rng_below(r, (uint64_t)c.KH);
    c.pw = (int64_t)nas_rng_below(r, (uint64_t)c.KW);
    c.H = c.KH + (int64_t)nas_rng_below(r, 20);
    c.W = c.KW + (int64_t)nas_rng_below(r, 33);
    c.sh = c.sw = c.dh = c.dw = c.groups = 1;
    c.OH = c.H + 2 * c.ph - c.KH + 1;
    c.OW = c.W + 2 * c.pw - c.KW + 1;
    return c;
}

static float *scratch_for(const nas_conv_geom *c, int backward) {
    return malloc(nas_conv_direct_scratch_bytes(c, backward));
}

static void check_case(const nas_conv_geom *c, nas_rng *r, int with_bias) {
    const int64_t nx = c->N * c->C * c->H * c->W, nw = c->O * c->C * c->KH * c->KW;
    const int64_t ny = c->N * c->O * c->OH * c->OW;
    CHECK(nas_conv_is_direct(c), "case not direct");
    float *x = rnd(nx, r), *w = rnd(nw, r), *b = rnd(c->O, r), *dy = rnd(ny, r);
    float *y0 = rnd(ny, r), *y1 = rnd(ny, r);
    /* grads start random: both backward kernels must accumulate */
    float *dx0 = rnd(nx, r), *dw0 = rnd(nw, r), *db0 = rnd(c->O, r);
    float *dx1 = copy_of(dx0, nx), *dw1 = copy_of(dw0, nw), *db1 = copy_of(db0, c->O);
    float *sf = scratch_for(c, 0), *sb = scratch_for(c, 1);
    const float *bias = with_bias ? b : NULL;
    nas_conv_naive_forward(c, x, w, bias, y0);
    nas_conv_direct_forward(c, x, w, bias, y1, sf);
    nas_conv_naive_backward_data(c, dy, w, dx0);
    nas_conv_direct_backward_data(c, dy, w, dx1, sb);
    nas_conv_naive_backward_weights(c, x, dy, dw0, with_bias ? db0 : NULL);
    nas_conv_direct_backward_weights(c, x, dy, dw1, with_bias ? db1 : NULL, sb);
    char name[160];
    snprintf(name, sizeof name, "N%lld C%lld %lldx%lld O%lld k%lldx%lld p%lld,%lld bias %d",
             (long long)c->N, (long long)c->C, (long long)c->H, (long long)c->W, (long long)c->O,
             (long long)c->KH, (long long)c->KW, (long long)c->ph, (long long)c->pw, with_bias);
    const double tol = 2e-5 * (double)(c->C * c->KH * c->KW + c->N * c->OH * c->OW) / 8.0 + 1e-5;
    CHECK(max_rel(y1, y0, ny) < 1e-4, "%s: forward differs by %g", name, max_rel(y1, y0, ny));
    CHECK(max_rel(dx1, dx0, nx) < 1e-4, "%s: dx differs by %g", name, max_rel(dx1, dx0, nx));
    CHECK(max_rel(dw1, dw0, nw) < tol, "%s: dw differs by %g", name, max_rel(dw1, dw0, nw));
    CHECK(max_rel(db1, db0, c->O) < tol, "%s: db differs by %g", name, max_rel(db1, db0, c->O));
    /* a rerun gives the same bits */
    float *y2 = rnd(ny, r), *dw2 = copy_of(dw0, nw);
    memcpy(dw2, dw1, sizeof(float) * (size_t)nw);
    nas_conv_direct_forward(c, x, w, bias, y2, sf);
    CHECK(memcmp(y1, y2, sizeof(float) * (size_t)ny) == 0, "%s: forward rerun differs", name);
    free(x), free(w), free(b), free(dy), free(y0), free(y1), free(y2);
    free(dx0), free(dw0), free(db0), free(dx1), free(dw1), free(db1), free(dw2);
    free(sf), free(sb);
}

static void test_vs_naive_random(void) {
    nas_rng r = nas_rng_make(77, 1);
    const int n = getenv("NAS_TEST_LONG") != NULL ? 300 : 40;
    for (int t = 0; t < n; t++) {
        const nas_conv_geom c = random_geom(&r);
        check_case(&c, &r, t % 2);
    }
}

/* The Fashion-MNIST CNN's two convs at a small batch. */
static void test_fmnist_shapes(void) {
    nas_rng r = nas_rng_make(5, 2);
    nas_conv_geom c = {.N = 5, .C = 1, .H = 28, .W = 28, .O = 16, .KH = 3, .KW = 3, .OH = 28,
                       .OW = 28, .sh = 1, .sw = 1, .ph = 1, .pw = 1, .dh = 1, .dw = 1, .groups = 1};
    check_case(&c, &r, 1);
    c = (nas_conv_geom){.N = 3, .C = 16, .H = 14, .W = 14, .O = 32, .KH = 3, .KW = 3, .OH = 14,
                        .OW = 14, .sh = 1, .sw = 1, .ph = 1, .pw = 1, .dh = 1, .dw = 1, .groups = 1};
    check_case(&c, &r, 1);
    CHECK(nas_conv_is_direct(&c), "the fmnist conv 16->32 should fit the direct kernels");
}

/* L = sum(r * y) in double, y from the NAIVE forward; the direct backward's gradients must
 * match central differences of it. */
static double loss(const nas_conv_geom *c, const float *x, const float *w, const float *b,
                   const float *rr, float *y) {
    nas_conv_naive_forward(c, x, w, b, y);
    double l = 0.0;
    for (int64_t i = 0; i < c->N * c->O * c->OH * c->OW; i++) {
        l += (double)rr[i] * (double)y[i];
    }
    return l;
}

static void fd(float *v, const float *ana, int64_t n, const char *what, const nas_conv_geom *c,
               const float *x, const float *w, const float *b, const float *rr, float *y) {
    const int64_t step = n > 40 ? n / 40 : 1;
    for (int64_t i = 0; i < n; i += step) {
        const float v0 = v[i];
        v[i] = v0 + 1e-2f;
        const double lp = loss(c, x, w, b, rr, y);
        v[i] = v0 - 1e-2f;
        const double lm = loss(c, x, w, b, rr, y);
        v[i] = v0;
        const double num = (lp - lm) / (double)((v0 + 1e-2f) - (v0 - 1e-2f));
        const double err = fabs(num - (double)ana[i]) / fmax(1.0, fabs(num));
        CHECK(err < 1e-3, "d%s[%lld]: direct %g, finite differences %g", what, (long long)i,
              (double)ana[i], num);
    }
}

static void test_finite_differences(void) {
    nas_rng r = nas_rng_make(9, 4);
    for (int t = 0; t < 4; t++) {
        const nas_conv_geom c = random_geom(&r);
        const int64_t nx = c.N * c.C * c.H * c.W, nw = c.O * c.C * c.KH * c.KW;
        const int64_t ny = c.N * c.O * c.OH * c.OW;
        float *x = rnd(nx, &r), *w = rnd(nw, &r), *b = rnd(c.O, &r), *rr = rnd(ny, &r);
        float *y = malloc(sizeof(float) * (size_t)ny), *s = scratch_for(&c, 1);
        float *dx = calloc((size_t)nx, sizeof(float)), *dw = calloc((size_t)nw, sizeof(float)),
              *db = calloc((size_t)c.O, sizeof(float));
        nas_conv_direct_backward_data(&c, rr, w, dx, s);
        nas_conv_direct_backward_weights(&c, x, rr, dw, db, s);
        fd(x, dx, nx, "x", &c, x, w, b, rr, y);
        fd(w, dw, nw, "w", &c, x, w, b, rr, y);
        fd(b, db, c.O, "b", &c, x, w, b, rr, y);
        free(x), free(w), free(b), free(rr), free(y), free(s), free(dx), free(dw), free(db);
    }
}

/* conv + bias + ReLU + 2x2 max pool fused, against the naive conv, the ReLU rule and the naive
 * max pool in a row; backward against the naive kernels fed the gradient the unfused chain
 * passes back (to the pool's winning tap where the ReLU output is positive). */
static void check_fused(const nas_conv_geom *c, nas_rng *r, int with_bias) {
    const int64_t nx = c->N * c->C * c->H * c->W, nw = c->O * c->C * c->KH * c->KW;
    const int64_t nz = c->N * c->O * c->OH * c->OW, PH = c->OH / 2, PW = c->OW / 2;
    const int64_t np = c->N * c->O * PH * PW;
    float *x = rnd(nx, r), *w = rnd(nw, r), *b = rnd(c->O, r), *dy = rnd(np, r);
    float *z = malloc(sizeof(float) * (size_t)nz), *dz = calloc((size_t)nz, sizeof(float));
    float *y0 = malloc(sizeof(float) * (size_t)np), *y1 = malloc(sizeof(float) * (size_t)np);
    int32_t *i0 = malloc(sizeof(int32_t) * (size_t)np), *i1 = malloc(sizeof(int32_t) * (size_t)np);
    float *dx0 = rnd(nx, r), *dw0 = rnd(nw, r), *db0 = rnd(c->O, r);
    float *dx1 = copy_of(dx0, nx), *dw1 = copy_of(dw0, nw), *db1 = copy_of(db0, c->O);
    float *dw_start = copy_of(dw0, nw);
    const float *bias = with_bias ? b : NULL;
    nas_conv_naive_forward(c, x, w, bias, z);
    for (int64_t i = 0; i < nz; i++) {
        z[i] = z[i] < 0.0f ? 0.0f : z[i];
    }
    const nas_pool_geom pg = {c->N * c->O, c->OH, c->OW, PH, PW, 2, 2, 0, 0};
    nas_pool_max_forward_naive(&pg, z, y0, i0);
    for (int64_t k = 0; k < np; k++) { /* pool backward then relu backward (z > 0 <=> y > 0) */
        const int64_t plane = k / (PH * PW);
        if (y0[k] > 0.0f) {
            dz[plane * c->OH * c->OW + i0[k]] += dy[k];
        }
    }
    nas_conv_naive_backward_data(c, dz, w, dx0);
    nas_conv_naive_backward_weights(c, x, dz, dw0, with_bias ? db0 : NULL);
    float *s = malloc(nas_conv_relu_pool_scratch_bytes(c, 1));
    nas_conv_relu_pool_forward(c, x, w, bias, y1, i1, s);
    nas_conv_relu_pool_backward(c, x, w, y1, i1, dy, dx1, dw1, with_bias ? db1 : NULL, s);
    char name[160];
    snprintf(name, sizeof name, "fused N%lld C%lld %lldx%lld O%lld k%lldx%lld p%lld,%lld bias %d",
             (long long)c->N, (long long)c->C, (long long)c->H, (long long)c->W, (long long)c->O,
             (long long)c->KH, (long long)c->KW, (long long)c->ph, (long long)c->pw, with_bias);
    const double tol = 2e-5 * (double)(c->C * c->KH * c->KW + c->N * c->OH * c->OW) / 8.0 + 1e-5;
    int64_t idx_diff = 0;
    for (int64_t k = 0; k < np; k++) {
        idx_diff += i0[k] != i1[k] && y0[k] > 0.0f;
    }
    CHECK(max_rel(y1, y0, np) < 1e-4, "%s: forward differs by %g", name, max_rel(y1, y0, np));
    CHECK(idx_diff == 0, "%s: %lld winning taps differ", name, (long long)idx_diff);
    CHECK(max_rel(dx1, dx0, nx) < 1e-4, "%s: dx differs by %g", name, max_rel(dx1, dx0, nx));
    CHECK(max_rel(dw1, dw0, nw) < tol, "%s: dw differs by %g", name, max_rel(dw1, dw0, nw));
    CHECK(max_rel(db1, db0, c->O) < tol, "%s: db differs by %g", name, max_rel(db1, db0, c->O));
    /* no dx nor db wanted (the first conv): the same dw bits */
    float *dw2 = malloc(sizeof(float) * (size_t)nw);
    memcpy(dw2, dw_start, sizeof(float) * (size_t)nw);
    nas_conv_relu_pool_backward(c, x, w, y1, i1, dy, NULL, dw2, NULL, s);
    CHECK(memcmp(dw2, dw1, sizeof(float) * (size_t)nw) == 0, "%s: dw without dx differs", name);
    free(dw_start);
    free(x), free(w), free(b), free(dy), free(z), free(dz), free(y0), free(y1), free(i0), free(i1);
    free(dx0), free(dw0), free(db0), free(dx1), free(dw1), free(db1), free(dw2), free(s);
}

static void test_fused_vs_naive(void) {
    nas_rng r = nas_rng_make(123, 7);
    nas_conv_geom f1 = {.N = 5, .C = 1, .H = 28, .W = 28, .O = 16, .KH = 3, .KW = 3, .OH = 28,
                        .OW = 28, .sh = 1, .sw = 1, .ph = 1, .pw = 1, .dh = 1, .dw = 1, .groups = 1};
    check_fused(&f1, &r, 1);
    nas_conv_geom f2 = {.N = 3, .C = 16, .H = 14, .W = 14, .O = 32, .KH = 3, .KW = 3, .OH = 14,
                        .OW = 14, .sh = 1, .sw = 1, .ph = 1, .pw = 1, .dh = 1, .dw = 1, .groups = 1};
    check_fused(&f2, &r, 1);
    const int n = getenv("NAS_TEST_LONG") != NULL ? 200 : 30;
    for (int t = 0; t < n; t++) {
        nas_conv_geom c = random_geom(&r);
        if (c.OH < 2 || c.OW < 2) {
            continue;
        }
        check_fused(&c, &r, t % 2);
    }
}

int main(void) {
    RUN_TEST(test_fmnist_shapes);
    RUN_TEST(test_vs_naive_random);
    RUN_TEST(test_finite_differences);
    RUN_TEST(test_fused_vs_naive);
    return check_report("conv_direct");
}
