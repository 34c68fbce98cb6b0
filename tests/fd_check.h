/* fd_check.h - the finite-difference harness of the op tests (test_ops_grad.c,
 * test_spaces_ops.c): an op's analytic backward against central differences of
 * L = sum(r * y), r fixed random, so dL/dy = r (seeded through nas_graph_backward_from); the loss
 * is accumulated in double. Inputs are drawn away from the kinks of relu-like ops and, for max
 * pooling, as distinct values spaced wider than the step, so no difference crosses a kink. The
 * graph seed is reset before every forward so dropout draws the same mask each time (masks do
 * not depend on the thread count, so the analytic pass may use all threads and the
 * finite-difference passes one). Shapes are written with the X4 / V1 / V2 / V3 macros inside IN. */
#ifndef NAS_TEST_FD_CHECK_H
#define NAS_TEST_FD_CHECK_H

#include "check.h"
#include "nascent.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_IN           8
#define FD_STEP          1e-2
#define CHECKS_PER_INPUT 40

typedef nas_tensor *(*build_fn)(nas_graph *g, nas_tensor **in, const void *arg);

typedef struct fd_input {
    int ndim;
    int64_t shape[4];
    int grad;     /* 1: requires a gradient and is checked */
    float lo, hi; /* uniform range */
    int distinct; /* 1: distinct values 0.05 apart (max pooling) */
} fd_input;

typedef struct fd_case {
    const char *name;
    int n_in;
    fd_input in[MAX_IN];
    build_fn build;
    const void *arg;
    int training;
    const float *kinks; /* values inputs stay 0.05 away from; NULL-terminated by n_kinks */
    int n_kinks;
    double tol;
} fd_case;

static int64_t numel_of(const fd_input *in) {
    int64_t n = 1;
    for (int d = 0; d < in->ndim; d++) {
        n *= in->shape[d];
    }
    return n;
}

static void fill_input(const fd_case *c, int k, float *x, int64_t n, nas_rng *r) {
    const fd_input *in = &c->in[k];
    if (in->distinct) {
        int64_t *perm = malloc((size_t)n * sizeof(int64_t));
        for (int64_t i = 0; i < n; i++) {
            perm[i] = i;
        }
        nas_rng_shuffle(r, perm, n);
        for (int64_t i = 0; i < n; i++) {
            x[i] = (float)(perm[i] - n / 2) * 0.05f;
        }
        free(perm);
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        for (;;) {
            x[i] = in->lo + (in->hi - in->lo) * (float)nas_rng_uniform(r);
            int near = 0;
            for (int q = 0; q < c->n_kinks; q++) {
                near |= fabsf(x[i] - c->kinks[q]) < 0.05f;
            }
            if (!near) {
                break;
            }
        }
    }
}

static double loss_of(nas_graph *g, nas_tensor *y, const float *r) {
    nas_graph_set_seed(g, 99);
    if (nas_graph_forward(g) != NAS_OK) {
        return NAN;
    }
    const float *yd = nas_tensor_data(y);
    double acc = 0.0;
    for (int64_t i = 0; i < nas_tensor_numel(y); i++) {
        acc += (double)r[i] * (double)yd[i];
    }
    return acc;
}

/* About `checks` elements of each input (evenly spaced), or every element when checks is 0. */
static void run_case_checks(const fd_case *c, int64_t checks) {
    nas_ctx *ctx = nas_ctx_new();
    nas_graph *g = nas_graph_new(ctx);
    nas_graph_set_training(g, c->training);
    nas_rng rng = nas_rng_make(1234, 0);
    float *x[MAX_IN];
    nas_tensor *t[MAX_IN];
    for (int k = 0; k < c->n_in; k++) {
        const int64_t n = numel_of(&c->in[k]);
        x[k] = malloc((size_t)n * sizeof(float));
        fill_input(c, k, x[k], n, &rng);
        t[k] = c->in[k].grad ? nas_input_grad(g, c->in[k].ndim, c->in[k].shape, x[k])
                             : nas_input(g, c->in[k].ndim, c->in[k].shape, x[k]);
    }
    nas_tensor *y = c->build(g, t, c->arg);
    CHECK(y != NULL && nas_graph_status(g) == NAS_OK, "%s: build: %s", c->name, nas_errmsg(ctx));
    if (y == NULL) {
        goto done;
    }
    const int64_t ny = nas_tensor_numel(y);
    float *r = malloc((size_t)ny * sizeof(float));
    nas_rng_fill_uniform(&rng, r, ny, -1.0f, 1.0f);
    nas_set_threads(0); /* the analytic pass runs the parallel kernels */
    nas_graph_set_seed(g, 99);
    CHECK(nas_graph_forward(g) == NAS_OK, "%s: forward: %s", c->name, nas_errmsg(ctx));
    CHECK(nas_graph_backward_from(g, y, r) == NAS_OK, "%s: backward: %s", c->name, nas_errmsg(ctx));
    nas_set_threads(1); /* the many small finite-difference forwards run faster on one */
    for (int k = 0; k < c->n_in; k++) {
        if (!c->in[k].grad) {
            continue;
        }
        const int64_t n = numel_of(&c->in[k]);
        float *ana = malloc((size_t)n * sizeof(float));
        memcpy(ana, nas_tensor_grad(t[k]), (size_t)n * sizeof(float));
        const int64_t step = checks > 0 && n > checks ? n / checks : 1;
        int bad = 0;
        double worst = 0.0;
        for (int64_t i = (step > 1 ? (int64_t)k % step : 0); i < n; i += step) {
            const float x0 = x[k][i], xp = x0 + (float)FD_STEP, xm = x0 - (float)FD_STEP;
            x[k][i] = xp;
            const double lp = loss_of(g, y, r);
            x[k][i] = xm;
            const double lm = loss_of(g, y, r);
            x[k][i] = x0;
            const double num = (lp - lm) / ((double)xp - (double)xm);
            const double err = fabs(num - ana[i]) / fmax(1.0, fabs(num) + fabs(ana[i]));
            worst = fmax(worst, err);
            if (!(err < c->tol) && bad++ < 3) {
                CHECK(err < c->tol, "%s: input %d [%lld]: analytic %.6g numeric %.6g", c->name, k,
                      (long long)i, (double)ana[i], num);
            }
        }
        CHECK(bad == 0, "%s: input %d: %d bad, worst relative error %.3g", c->name, k, bad, worst);
        if (getenv("NAS_TEST_VERBOSE") != NULL) {
            printf("  %-20s input %d: worst relative error %.2e\n", c->name, k, worst);
        }
        free(ana);
    }
    free(r);
done:
    for (int k = 0; k < c->n_in; k++) {
        free(x[k]);
    }
    nas_graph_free(g);
    nas_ctx_free(ctx);
}

static inline void run_case(const fd_case *c) {
    run_case_checks(c, CHECKS_PER_INPUT);
}

#define X4(n, c, h, w)                                                                             \
    4, {                                                                                           \
        n, c, h, w                                                                                 \
    }
#define V1(n)                                                                                      \
    1, {                                                                                           \
        n                                                                                          \
    }
#define V2(a, b)                                                                                   \
    2, {                                                                                           \
        a, b                                                                                       \
    }
#define V3(a, b, c)                                                                                \
    3, {                                                                                           \
        a, b, c                                                                                    \
    }
#define IN(shape, grad, lo, hi)                                                                    \
    { shape, grad, lo, hi, 0 }

#endif
