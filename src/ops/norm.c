/* norm.c - batch normalisation over N, H, W per channel (x [N, C, H, W] or [N, C]).
 *
 * Modes, chosen at forward time from the graph:
 *   training, or no running statistics given: batch statistics (biased variance) normalise, and
 *     in training the running ones are updated as PyTorch does,
 *     r = (1 - momentum) r + momentum batch, with the unbiased variance for running_var;
 *     momentum < 0 is a cumulative average instead (BN recalibration, see nascent.h);
 *   eval with running statistics: y = (x - running_mean) / sqrt(running_var + eps) gamma + beta.
 * Forward keeps mean and 1/sqrt(var + eps) per channel in aux for backward, and records in
 * iparam[4] whether batch statistics were used (their gradient then flows through the mean and
 * variance as well).
 *
 * Reductions run per channel in double over vector lanes (omp simd) combined in a fixed order:
 * results do not depend on the thread count. Statistics are shifted by the
 * channel's first element so E[x^2] - E[x]^2 does not cancel. */
#include "ops_int.h"
#include "simd_int.h"

#include <math.h>

enum { BN_GAMMA = 0, BN_BETA, BN_MEAN, BN_VAR }; /* iparam slots: source index, 0 = absent */
#define BN_USED_BATCH 4                          /* iparam slot set by forward */

static int check_vec(nas_graph *g, const nas_node *v, int64_t C, const char *what,
                     const nas_node *x) {
    if (v != NULL && (v->ndim != 1 || v->shape[0] != C)) {
        char a[64], b[64];
        nas_graph_fail(g, NAS_ERR_SHAPE, "batch_norm: %s has shape %s, input %s needs [%lld]", what,
                       nas_shape_str(v, a, sizeof a), nas_shape_str(x, b, sizeof b), (long long)C);
        return 0;
    }
    return 1;
}

nas_tensor *nas_batch_norm(nas_graph *g, nas_tensor *x, nas_tensor *gamma, nas_tensor *beta,
                           nas_tensor *running_mean, nas_tensor *running_var, float momentum,
                           float eps) {
    if (!nas_ops_sources_ok(g, 1, &x)) {
        return NULL;
    }
    char a[64];
    if (x->ndim != 4 && x->ndim != 2) {
        return nas_graph_fail(g, NAS_ERR_SHAPE,
                              "batch_norm: input %s is not [N, C, H, W] or [N, C]",
                              nas_shape_str(x, a, sizeof a));
    }
    if ((running_mean == NULL) != (running_var == NULL)) {
        return nas_graph_fail(g, NAS_ERR_ARG,
                              "batch_norm: give both running_mean and running_var or neither");
    }
    if (!(eps > 0.0f) || !isfinite(momentum) || momentum > 1.0f) {
        return nas_graph_fail(g, NAS_ERR_ARG, "batch_norm: eps %g must be > 0, momentum %g <= 1",
                              (double)eps, (double)momentum);
    }
    const int64_t C = x->shape[1];
    nas_node *opt[4] = {gamma, beta, running_mean, running_var};
    const char *names[4] = {"gamma", "beta", "running_mean", "running_var"};
    nas_node *src[5] = {x};
    int n_src = 1;
    for (int i = 0; i < 4; i++) {
        if (!check_vec(g, opt[i], C, names[i], x)) {
            return NULL;
        }
        if (opt[i] != NULL) {
            src[n_src++] = opt[i];
        }
    }
    nas_node *n = nas_ops_append_like(g, NAS_OP_BATCH_NORM, n_src, src, x);
    if (n == NULL) {
        return NULL;
    }
    for (int i = 0, k = 1; i < 4; i++) {
        n->iparam[i] = opt[i] != NULL ? k++ : 0;
    }
    n->fparam[0] = momentum;
    n->fparam[1] = eps;
    n->aux_bytes = 2 * (size_t)C * sizeof(float);
    return n;
}

/* The optional source in slot `slot` (NULL when absent). */
static nas_node *bn_src(const nas_node *n, int slot) {
    return n->iparam[slot] ? n->src[n->iparam[slot]] : NULL;
}

typedef struct bn_dims {
    int64_t N, C, HW, M; /* M = N * HW values per channel */
} bn_dims;

static bn_dims dims_of(const nas_node *x) {
    bn_dims d = {x->shape[0], x->shape[1], x->ndim == 4 ? x->shape[2] * x->shape[3] : 1, 0};
    d.M = d.N * d.HW;
    return d;
}

/* s1 += sum (x - shift), s2 += sum (x - shift)^2 over len values, in double (vector lanes). */
static void sums_shifted(const float *x, int64_t len, double shift, double *s1, double *s2) {
    double a = 0.0, b = 0.0;
    NAS_SIMD_SUM2(a, b)
    for (int64_t i = 0; i < len; i++) {
        const double d = (double)x[i] - shift;
        a += d;
        b += d * d;
    }
    *s1 += a;
    *s2 += b;
}

/* s1 += sum dy, s2 += sum dy (x - mean) over len values, in double (vector lanes). */
static void sums_grad(const float *dy, const float *x, int64_t len, double mean, double *s1,
                      double *s2) {
    double a = 0.0, b = 0.0;
    NAS_SIMD_SUM2(a, b)
    for (int64_t i = 0; i < len; i++) {
        const double d = (double)dy[i];
        a += d;
        b += d * ((double)x[i] - mean);
    }
    *s1 += a;
    *s2 += b;
}

/* y = (x - mean) scale + shift over one channel's N planes (centred first: no cancellation when
 * the mean is large). */
static void apply_affine(const float *x, float *y, bn_dims d, int64_t c, float mean, float scale,
                         float shift) {
    for (int64_t s = 0; s < d.N; s++) {
        const float *xp = x + (s * d.C + c) * d.HW;
        float *yp = y + (s * d.C + c) * d.HW;
        NAS_SIMD
        for (int64_t i = 0; i < d.HW; i++) {
            yp[i] = (xp[i] - mean) * scale + shift;
        }
    }
}

/* The weight the batch gets in the running average: momentum, or 1 / (k + 1) for the k-th
 * forward of the graph since its seed was set (cumulative average) when momentum < 0. */
static double running_factor(const nas_graph *g, float momentum) {
    return momentum >= 0.0f ? (double)momentum : 1.0 / ((double)g->step + 1.0);
}

/* r[c] = (1 - factor) r[c] + factor value. A running statistic that is a slice of a larger
 * buffer (elastic width: nas_param_slice of a 1-d buffer, its first C entries) is a copy made by
 * the slice op, so the update is written through to the shared buffer as well. */
static void update_running(nas_node *r, int64_t c, double factor, double value) {
    const float v = (float)((1.0 - factor) * (double)r->data[c] + factor * value);
    r->data[c] = v;
    if (r->op == NAS_OP_PARAM_SLICE && r->ndim == 1) {
        r->src[0]->data[c] = v;
    }
}

static nas_status bn_forward(nas_graph *g, nas_node *n) {
    const nas_node *xn = n->src[0];
    const bn_dims d = dims_of(xn);
    const nas_node *gm = bn_src(n, BN_GAMMA), *bt = bn_src(n, BN_BETA);
    nas_node *rm = bn_src(n, BN_MEAN), *rv = bn_src(n, BN_VAR);
    const int batch = g->training || rm == NULL;
    const int update = g->training && rm != NULL;
    const double eps = (double)n->fparam[1], factor = running_factor(g, n->fparam[0]);
    if (batch && d.M < 2 && update) {
        return nas_fail(g->ctx, NAS_ERR_SHAPE,
                        "batch_norm (node %lld): training needs more than one value per channel, "
                        "input has %lld",
                        (long long)n->index, (long long)d.M);
    }
    n->iparam[BN_USED_BATCH] = batch;
    const float *x = xn->data;
    float *y = n->data, *save_mean = n->aux, *save_invstd = save_mean + d.C;
    NAS_OMP_FOR_IF(d.M * d.C >= NAS_PAR_MIN)
    for (int64_t c = 0; c < d.C; c++) {
        double mean, var;
        if (batch) {
            const double shift = (double)x[c * d.HW];
            double s1 = 0.0, s2 = 0.0;
            for (int64_t s = 0; s < d.N; s++) {
                sums_shifted(x + (s * d.C + c) * d.HW, d.HW, shift, &s1, &s2);
            }
            const double m1 = s1 / (double)d.M;
            mean = shift + m1;
            var = fmax(s2 / (double)d.M - m1 * m1, 0.0);
            if (update) {
                const double unbiased = var * (double)d.M / (double)(d.M - 1);
                update_running(rm, c, factor, mean);
                update_running(rv, c, factor, unbiased);
            }
        } else {
            mean = (double)rm->data[c];
            var = (double)rv->data[c];
        }
        const double invstd = 1.0 / sqrt(var + eps);
        save_mean[c] = (float)mean;
        save_invstd[c] = (float)invstd;
        const double gam = gm != NULL ? (double)gm->data[c] : 1.0;
        const double bet = bt != NULL ? (double)bt->data[c] : 0.0;
        const double scale = gam * invstd;
        apply_affine(x, y, d, c, (float)mean, (float)scale, (float)bet);
    }
    return NAS_OK;
}

/* Batch statistics: with xh = (x - mean) invstd and g = dy gamma,
 * dx = gamma invstd (dy - mean(dy) - xh mean(dy xh)), dgamma = sum dy xh, dbeta = sum dy.
 * Running statistics: dx = gamma invstd dy. */
static void bn_backward(nas_graph *g, nas_node *n) {
    (void)g;
    const nas_node *xn = n->src[0];
    const bn_dims d = dims_of(xn);
    const nas_node *gm = bn_src(n, BN_GAMMA), *bt = bn_src(n, BN_BETA);
    float *dx = xn->grad;
    float *dgamma = gm != NULL ? gm->grad : NULL, *dbeta = bt != NULL ? bt->grad : NULL;
    const float *x = xn->data, *dy = n->grad;
    const float *save_mean = n->aux, *save_invstd = save_mean + d.C;
    const int batch = n->iparam[BN_USED_BATCH];
    NAS_OMP_FOR_IF(d.M * d.C >= NAS_PAR_MIN)
    for (int64_t c = 0; c < d.C; c++) {
        const double mean = (double)save_mean[c], invstd = (double)save_invstd[c];
        double sdy = 0.0, sdyx = 0.0; /* sum dy, sum dy (x - mean) */
        if (dgamma != NULL || dbeta != NULL || (batch && dx != NULL)) {
            for (int64_t s = 0; s < d.N; s++) {
                const int64_t off = (s * d.C + c) * d.HW;
                sums_grad(dy + off, x + off, d.HW, mean, &sdy, &sdyx);
            }
        }
        if (dgamma != NULL) {
            dgamma[c] += (float)(sdyx * invstd);
        }
        if (dbeta != NULL) {
            dbeta[c] += (float)sdy;
        }
        if (dx == NULL) {
            continue;
        }
        const double a = (gm != NULL ? (double)gm->data[c] : 1.0) * invstd;
        /* dx += a dy + k (x - mean) + b: batch mode k = -a invstd^2 sdyx / M, b = -a sdy / M */
        double k = 0.0, b = 0.0;
        if (batch) {
            k = -a * invstd * invstd * sdyx / (double)d.M;
            b = -a * sdy / (double)d.M;
        }
        const float af = (float)a, kf = (float)k, bf = (float)b, mf = (float)mean;
        for (int64_t s = 0; s < d.N; s++) {
            const int64_t off = (s * d.C + c) * d.HW;
            NAS_SIMD
            for (int64_t i = 0; i < d.HW; i++) {
                dx[off + i] += af * dy[off + i] + kf * (x[off + i] - mf) + bf;
            }
        }
    }
}

const nas_op_desc nas_op_batch_norm = {
    .name = "batch_norm", .forward = bn_forward, .backward = bn_backward};
