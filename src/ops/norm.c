/* norm.c - batch normalisation over N, H, W per channel (x [N, C, H, W] or [N, C]).
 *
 * Modes, chosen at forward time from the graph:
 *   training, or no running statistics given: batch statistics (biased variance) normalise, and
 *     in training the running ones are updated as PyTorch does,
 *     r = (1 - momentum) r + momentum batch, with the unbiased variance for running_var;
 *     momentum < 0 is a cumulative average instead (BN recalibration, see nascent.h);
 *   eval with running statistics: y = (x - running_mean) / sqrt(running_var + eps) gamma + beta.
 * Forward keeps mean and 1/sqrt(var + eps) per channel in aux for backward (and, blocked, the
 * apply's scale and shift for a ReLU it may be folded into: rows NAS_BN_AUX_*), and records in
 * iparam[4] whether batch statistics were used (their gradient then flows through the mean and
 * variance as well).
 *
 * Reductions run per channel in double over vector lanes (omp simd) combined in a fixed order:
 * results do not depend on the thread count. Statistics are shifted by the
 * channel's first element so E[x^2] - E[x]^2 does not cancel.
 *
 * A blocked input (layout.c; output and gradients then blocked too) is read tile by tile, the B
 * channels of a tile in vector lanes: partial sums per example and channel in double, added in
 * example order. */
#include "layout_int.h"
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
    n->aux_bytes = NAS_BN_AUX_ROWS * (size_t)C * sizeof(float);
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

/* Save mean and 1 / sqrt(var + eps) of channel c in aux, from its shifted sums (batch
 * statistics; updates the running ones when asked) or from the running statistics; returns
 * 1 / sqrt(var + eps) unrounded. */
static double channel_stats(nas_node *n, int64_t c, bn_dims d, int batch, int update, double eps,
                            double factor, double shift, double s1, double s2) {
    nas_node *rm = bn_src(n, BN_MEAN), *rv = bn_src(n, BN_VAR);
    double mean, var;
    if (batch) {
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
    float *save_mean = (float *)n->aux + NAS_BN_AUX_MEAN * d.C;
    float *save_invstd = (float *)n->aux + NAS_BN_AUX_INVSTD * d.C;
    save_mean[c] = (float)mean;
    save_invstd[c] = (float)invstd;
    return invstd;
}

/* Sums of one blocked tile [HW][B] (B a constant where inlined: the accumulators stay in
 * registers): out1[b] = sum (x - sh[b]), out2[b] = sum (x - sh[b])^2, in double. */
NAS_ALWAYS_INLINE void tile_sums(const float *xt, int64_t HW, const int64_t B, const double *sh,
                                 double *out1, double *out2) {
    double s1[NAS_BLOCK_MAX] = {0}, s2[NAS_BLOCK_MAX] = {0};
    for (int64_t p = 0; p < HW; p++) {
        NAS_SIMD
        for (int64_t b = 0; b < B; b++) {
            const double v = (double)xt[p * B + b] - sh[b];
            s1[b] += v;
            s2[b] += v * v;
        }
    }
    for (int64_t b = 0; b < B; b++) {
        out1[b] = s1[b];
        out2[b] = s2[b];
    }
}

/* Per-example partial sums of a blocked x: part[n C + c] = sum over the example's pixels of
 * (x - shift[c]) and part[N C + n C + c] of its square. */
NAS_AVX512_CLONES static void blocked_sums(const float *x, bn_dims d, int64_t B,
                                           const double *shift, double *part) {
    const int64_t CB = d.C / B;
    NAS_OMP_FOR_IF(d.M * d.C >= NAS_PAR_MIN)
    for (int64_t t = 0; t < d.N * CB; t++) {
        const float *xt = x + t * B * d.HW;
        const double *sh = shift + (t % CB) * B;
        if (B == 16) {
            tile_sums(xt, d.HW, 16, sh, part + t * B, part + d.N * d.C + t * B);
        } else {
            tile_sums(xt, d.HW, 8, sh, part + t * B, part + d.N * d.C + t * B);
        }
    }
}

/* y = (x - mean) scale + shift over one blocked tile, per-lane coefficients. */
NAS_ALWAYS_INLINE void tile_apply(const float *xt, float *yt, int64_t HW, const int64_t B,
                                  const float *mean, const float *scale, const float *shift) {
    for (int64_t p = 0; p < HW; p++) {
        NAS_SIMD
        for (int64_t b = 0; b < B; b++) {
            yt[p * B + b] = (xt[p * B + b] - mean[b]) * scale[b] + shift[b];
        }
    }
}

static void blocked_apply(const float *x, float *y, bn_dims d, int64_t B, const float *mean,
                          const float *scale, const float *shift) {
    const int64_t CB = d.C / B;
    NAS_OMP_FOR_IF(d.M * d.C >= NAS_PAR_MIN)
    for (int64_t t = 0; t < d.N * CB; t++) {
        const int64_t c0 = (t % CB) * B, at = t * B * d.HW;
        if (B == 16) {
            tile_apply(x + at, y + at, d.HW, 16, mean + c0, scale + c0, shift + c0);
        } else {
            tile_apply(x + at, y + at, d.HW, 8, mean + c0, scale + c0, shift + c0);
        }
    }
}

static nas_status bn_forward_blocked(nas_graph *g, nas_node *n, bn_dims d, int batch, int update,
                                     double eps, double factor) {
    const nas_node *xn = n->src[0];
    const int64_t B = xn->block;
    const nas_node *gm = bn_src(n, BN_GAMMA), *bt = bn_src(n, BN_BETA);
    /* scratch: [shift C][partial sums 2 N C] doubles, then 4 C floats; as large as the
     * backward's, which finds it in place (scratch only grows) */
    double *shift = nas_graph_scratch(g, (size_t)d.C * (1 + 2 * d.N) * sizeof(double) +
                                             4 * (size_t)d.C * sizeof(float));
    if (shift == NULL) {
        return nas_fail(g->ctx, NAS_ERR_NOMEM, "batch_norm: out of memory for scratch");
    }
    double *part = shift + d.C;
    /* kept in aux for a ReLU this apply is folded into (ops/fuse.c) */
    float *scale = (float *)n->aux + NAS_BN_AUX_SCALE * d.C;
    float *beta = (float *)n->aux + NAS_BN_AUX_SHIFT * d.C;
    for (int64_t c = 0; c < d.C; c++) {
        shift[c] = (double)xn->data[(c / B) * B * d.HW + c % B]; /* example 0, pixel 0 */
    }
    if (batch) {
        blocked_sums(xn->data, d, B, shift, part);
    }
    for (int64_t c = 0; c < d.C; c++) {
        double s1 = 0.0, s2 = 0.0;
        for (int64_t s = 0; batch && s < d.N; s++) {
            s1 += part[s * d.C + c];
            s2 += part[d.N * d.C + s * d.C + c];
        }
        const double invstd = channel_stats(n, c, d, batch, update, eps, factor, shift[c], s1, s2);
        const double gam = gm != NULL ? (double)gm->data[c] : 1.0;
        scale[c] = (float)(gam * invstd);
        beta[c] = bt != NULL ? bt->data[c] : 0.0f;
    }
    if (n->folded_into == NULL) {
        blocked_apply(xn->data, n->data, d, B, n->aux, scale, beta);
    }
    return NAS_OK;
}

static nas_status bn_forward(nas_graph *g, nas_node *n) {
    const nas_node *xn = n->src[0];
    const bn_dims d = dims_of(xn);
    const nas_node *gm = bn_src(n, BN_GAMMA), *bt = bn_src(n, BN_BETA);
    const nas_node *rm = bn_src(n, BN_MEAN);
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
    if (xn->block != 0) {
        return bn_forward_blocked(g, n, d, batch, update, eps, factor);
    }
    const float *x = xn->data;
    const float *save_mean = n->aux;
    NAS_OMP_FOR_IF(d.M * d.C >= NAS_PAR_MIN)
    for (int64_t c = 0; c < d.C; c++) {
        double shift = 0.0, s1 = 0.0, s2 = 0.0;
        if (batch) {
            shift = (double)x[c * d.HW];
            for (int64_t s = 0; s < d.N; s++) {
                sums_shifted(x + (s * d.C + c) * d.HW, d.HW, shift, &s1, &s2);
            }
        }
        const double invstd = channel_stats(n, c, d, batch, update, eps, factor, shift, s1, s2);
        const double gam = gm != NULL ? (double)gm->data[c] : 1.0;
        const double bet = bt != NULL ? (double)bt->data[c] : 0.0;
        apply_affine(x, n->data, d, c, save_mean[c], (float)(gam * invstd), (float)bet);
    }
    return NAS_OK;
}

/* One blocked tile: out1[b] = sum dy, out2[b] = sum dy (x - m[b]) (double). */
NAS_ALWAYS_INLINE void tile_grad_sums(const float *xt, const float *dyt, int64_t HW,
                                      const int64_t B, const float *m, double *out1,
                                      double *out2) {
    double s1[NAS_BLOCK_MAX] = {0}, s2[NAS_BLOCK_MAX] = {0};
    for (int64_t p = 0; p < HW; p++) {
        NAS_SIMD
        for (int64_t b = 0; b < B; b++) {
            const double g = (double)dyt[p * B + b];
            s1[b] += g;
            s2[b] += g * ((double)xt[p * B + b] - (double)m[b]);
        }
    }
    for (int64_t b = 0; b < B; b++) {
        out1[b] = s1[b];
        out2[b] = s2[b];
    }
}

/* Per-example partial sums for blocked x and dy: part[n C + c] = sum dy and
 * part[N C + n C + c] = sum dy (x - mean) over the example's pixels (double). */
NAS_AVX512_CLONES static void blocked_grad_sums(const float *x, const float *dy, bn_dims d,
                                                int64_t B, const float *mean, double *part) {
    const int64_t CB = d.C / B;
    NAS_OMP_FOR_IF(d.M * d.C >= NAS_PAR_MIN)
    for (int64_t t = 0; t < d.N * CB; t++) {
        const int64_t at = t * B * d.HW;
        const float *m = mean + (t % CB) * B;
        double *s1 = part + t * B, *s2 = part + d.N * d.C + t * B;
        if (B == 16) {
            tile_grad_sums(x + at, dy + at, d.HW, 16, m, s1, s2);
        } else {
            tile_grad_sums(x + at, dy + at, d.HW, 8, m, s1, s2);
        }
    }
}

/* One blocked tile: dx (+)= a dy + k (x - mean) + b; coef[i C] + c holds a, k, b, mean. With
 * `fresh` (a constant where inlined) dx is stored, not added to (nas_grad_first). */
NAS_ALWAYS_INLINE void tile_dx(const float *xt, const float *dyt, float *dxt, int64_t HW,
                               const int64_t B, const float *coef, int64_t C, const int fresh) {
    const float *a = coef, *k = a + C, *bb = k + C, *m = bb + C;
    for (int64_t p = 0; p < HW; p++) {
        NAS_SIMD
        for (int64_t b = 0; b < B; b++) {
            const int64_t i = p * B + b;
            const float v = a[b] * dyt[i] + k[b] * (xt[i] - m[b]) + bb[b];
            dxt[i] = fresh ? v : dxt[i] + v;
        }
    }
}

static void blocked_dx(const float *x, const float *dy, float *dx, bn_dims d, int64_t B,
                       const float *coef, int fresh) {
    const int64_t CB = d.C / B;
    NAS_OMP_FOR_IF(d.M * d.C >= NAS_PAR_MIN)
    for (int64_t t = 0; t < d.N * CB; t++) {
        const int64_t at = t * B * d.HW, c0 = (t % CB) * B;
        const float *xt = x + at, *dyt = dy + at, *ct = coef + c0;
        float *dxt = dx + at;
        if (B == 16) {
            fresh ? tile_dx(xt, dyt, dxt, d.HW, 16, ct, d.C, 1)
                  : tile_dx(xt, dyt, dxt, d.HW, 16, ct, d.C, 0);
        } else {
            fresh ? tile_dx(xt, dyt, dxt, d.HW, 8, ct, d.C, 1)
                  : tile_dx(xt, dyt, dxt, d.HW, 8, ct, d.C, 0);
        }
    }
}

/* The gradients of channel c from its sums sdy = sum dy, sdyx = sum dy (x - mean): dgamma and
 * dbeta accumulate; out gets a, k, b and the mean of dx += a dy + k (x - mean) + b. With xh = (x - mean) invstd, batch statistics give
 * dx = gamma invstd (dy - mean(dy) - xh mean(dy xh)), so k = -a invstd^2 sdyx / M and
 * b = -a sdy / M; running statistics give dx = gamma invstd dy. dgamma = sum dy xh,
 * dbeta = sum dy. */
static void channel_grad(const nas_node *n, int64_t c, bn_dims d, double sdy, double sdyx,
                         float out[4]) {
    const nas_node *gm = bn_src(n, BN_GAMMA), *bt = bn_src(n, BN_BETA);
    const float *save_mean = (const float *)n->aux + NAS_BN_AUX_MEAN * d.C;
    const float *save_invstd = (const float *)n->aux + NAS_BN_AUX_INVSTD * d.C;
    const double invstd = (double)save_invstd[c];
    if (gm != NULL && gm->grad != NULL) {
        gm->grad[c] += (float)(sdyx * invstd);
    }
    if (bt != NULL && bt->grad != NULL) {
        bt->grad[c] += (float)sdy;
    }
    const double a = (gm != NULL ? (double)gm->data[c] : 1.0) * invstd;
    double k = 0.0, b = 0.0;
    if (n->iparam[BN_USED_BATCH]) {
        k = -a * invstd * invstd * sdyx / (double)d.M;
        b = -a * sdy / (double)d.M;
    }
    out[0] = (float)a;
    out[1] = (float)k;
    out[2] = (float)b;
    out[3] = save_mean[c];
}

/* Whether the backward needs the sums (only dx with running statistics does not). */
static int needs_sums(const nas_node *n) {
    const nas_node *gm = bn_src(n, BN_GAMMA), *bt = bn_src(n, BN_BETA);
    return (gm != NULL && gm->grad != NULL) || (bt != NULL && bt->grad != NULL) ||
           (n->iparam[BN_USED_BATCH] && n->src[0]->grad != NULL);
}

static void bn_backward_blocked(nas_graph *g, nas_node *n, bn_dims d) {
    const nas_node *xn = n->src[0];
    /* the forward reserved this much scratch: [partial sums 2 N C doubles][coef 4 C floats] */
    double *part = nas_graph_scratch(g, 2 * (size_t)d.N * d.C * sizeof(double) +
                                            4 * (size_t)d.C * sizeof(float));
    NAS_ASSERT(part != NULL);
    float *coef = (float *)(part + 2 * d.N * d.C);
    const int sums = needs_sums(n);
    if (sums) {
        blocked_grad_sums(xn->data, n->grad, d, xn->block, n->aux, part);
    }
    for (int64_t c = 0; c < d.C; c++) {
        double sdy = 0.0, sdyx = 0.0;
        for (int64_t s = 0; sums && s < d.N; s++) {
            sdy += part[s * d.C + c];
            sdyx += part[d.N * d.C + s * d.C + c];
        }
        float out[4];
        channel_grad(n, c, d, sdy, sdyx, out);
        for (int i = 0; i < 4; i++) {
            coef[i * d.C + c] = out[i];
        }
    }
    if (xn->grad != NULL) {
        blocked_dx(xn->data, n->grad, xn->grad, d, xn->block, coef, nas_grad_first(n, 0));
    }
}

static void bn_backward(nas_graph *g, nas_node *n) {
    const nas_node *xn = n->src[0];
    const bn_dims d = dims_of(xn);
    if (xn->block != 0) {
        bn_backward_blocked(g, n, d);
        return;
    }
    float *dx = xn->grad;
    const float *x = xn->data, *dy = n->grad;
    const int sums = needs_sums(n), first = nas_grad_first(n, 0);
    NAS_OMP_FOR_IF(d.M * d.C >= NAS_PAR_MIN)
    for (int64_t c = 0; c < d.C; c++) {
        const float *save_mean = n->aux;
        double sdy = 0.0, sdyx = 0.0;
        for (int64_t s = 0; sums && s < d.N; s++) {
            const int64_t off = (s * d.C + c) * d.HW;
            sums_grad(dy + off, x + off, d.HW, (double)save_mean[c], &sdy, &sdyx);
        }
        float coef[4];
        channel_grad(n, c, d, sdy, sdyx, coef);
        if (dx == NULL) {
            continue;
        }
        const float af = coef[0], kf = coef[1], bf = coef[2], mf = coef[3];
        for (int64_t s = 0; s < d.N; s++) {
            const int64_t off = (s * d.C + c) * d.HW;
            NAS_SIMD
            for (int64_t i = 0; i < d.HW; i++) {
                dx[off + i] =
                    (first ? 0.0f : dx[off + i]) + af * dy[off + i] + kf * (x[off + i] - mf) + bf;
            }
        }
    }
}

const nas_op_desc nas_op_batch_norm = {
    .name = "batch_norm", .forward = bn_forward, .backward = bn_backward, .stores_first = 1u};
