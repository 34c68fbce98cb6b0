/* shape.c - ops that combine or rearrange tensors: weighted sum (DARTS mixed ops), concat along
 * channels, multiply with broadcast (squeeze-excite), channel shuffle (ShuffleNet), zero (NB201
 * `none`, DARTS Zero) and channel zero-padding (NAS-RL skips). Loops run over N*C planes or flat
 * ranges split across threads; reductions (weights' gradients) are summed in double over blocks
 * whose size depends only on the length (vector lanes inside a block), then combined in order, so
 * they do not depend on the thread count. */
#include "ops_int.h"
#include "simd_int.h"

#define RED_BLOCKS 256 /* at most this many partial sums per reduction */
#define MIN_BLOCK  2048

/* Blocks of a flat range for reductions: the size depends only on the length, so partial sums
 * (one per block, combined in block order) do not depend on the thread count. */
static int64_t block_size(int64_t len) {
    return nas_max_i64(MIN_BLOCK, (len + RED_BLOCKS - 1) / RED_BLOCKS);
}

/* ---- weighted_sum: y = sum_i w[i] x_i; dx_i += w[i] dy, dw[i] += sum dy x_i.
 * Sources: x_0 .. x_{n-1}, then w. */

nas_tensor *nas_weighted_sum(nas_graph *g, int n, nas_tensor *const *xs, nas_tensor *w) {
    if (g != NULL && g->status == NAS_OK && (n < 1 || n > NAS_MAX_SRC - 1 || xs == NULL)) {
        return nas_graph_fail(g, NAS_ERR_ARG, "weighted_sum: %d inputs (1..%d allowed)", n,
                              NAS_MAX_SRC - 1);
    }
    if (!nas_ops_sources_ok(g, n, xs) || !nas_ops_sources_ok(g, 1, &w)) {
        return NULL;
    }
    char a[64], b[64];
    for (int i = 1; i < n; i++) {
        if (!nas_same_shape(xs[0], xs[i])) {
            return nas_graph_fail(
                g, NAS_ERR_SHAPE, "weighted_sum: input %d has shape %s, input 0 has %s", i,
                nas_shape_str(xs[i], a, sizeof a), nas_shape_str(xs[0], b, sizeof b));
        }
    }
    if (w->numel != n) {
        return nas_graph_fail(g, NAS_ERR_SHAPE, "weighted_sum: weights %s for %d inputs",
                              nas_shape_str(w, a, sizeof a), n);
    }
    nas_node *src[NAS_MAX_SRC];
    for (int i = 0; i < n; i++) {
        src[i] = xs[i];
    }
    src[n] = w;
    return nas_ops_append_like(g, NAS_OP_WEIGHTED_SUM, n + 1, src, xs[0]);
}

/* One pass per block of the output (each block stays in cache while the inputs stream
 * through it); the per-element order of operations is fixed: w0 x0 + w1 x1 + ... */
static nas_status weighted_sum_forward(nas_graph *g, nas_node *n) {
    (void)g;
    const int k = n->n_src - 1;
    const float *w = n->src[k]->data;
    float *y = n->data;
    const int64_t len = n->numel, block = block_size(len), n_blocks = (len + block - 1) / block;
    NAS_OMP_FOR_IF(len >= NAS_PAR_MIN)
    for (int64_t b = 0; b < n_blocks; b++) {
        const int64_t begin = b * block, end = nas_min_i64(len, begin + block);
        const float *x0 = n->src[0]->data, w0 = w[0];
        NAS_SIMD
        for (int64_t i = begin; i < end; i++) {
            y[i] = w0 * x0[i];
        }
        for (int s = 1; s < k; s++) {
            const float *x = n->src[s]->data, ws = w[s];
            NAS_SIMD
            for (int64_t i = begin; i < end; i++) {
                y[i] += ws * x[i];
            }
        }
    }
    return NAS_OK;
}

/* Per block: dx_s += w_s dy and the block's partial of dw_s = sum dy x_s, in double; the
 * partials are then added in block order. */
static void weighted_sum_backward(nas_graph *g, nas_node *n) {
    (void)g;
    const int k = n->n_src - 1;
    const nas_node *wn = n->src[k];
    const float *dy = n->grad;
    const int64_t len = n->numel, block = block_size(len), n_blocks = (len + block - 1) / block;
    double part[NAS_MAX_SRC][RED_BLOCKS];
    NAS_OMP_FOR_IF(len >= NAS_PAR_MIN)
    for (int64_t b = 0; b < n_blocks; b++) {
        const int64_t begin = b * block, end = nas_min_i64(len, begin + block);
        for (int s = 0; s < k; s++) {
            if (wn->grad != NULL) {
                const float *x = n->src[s]->data;
                double acc = 0.0;
                NAS_SIMD_SUM1(acc)
                for (int64_t i = begin; i < end; i++) {
                    acc += (double)dy[i] * (double)x[i];
                }
                part[s][b] = acc;
            }
            float *dx = n->src[s]->grad;
            if (dx != NULL) {
                const float ws = wn->data[s];
                NAS_SIMD
                for (int64_t i = begin; i < end; i++) {
                    dx[i] += ws * dy[i];
                }
            }
        }
    }
    if (wn->grad != NULL) {
        for (int s = 0; s < k; s++) {
            double acc = 0.0;
            for (int64_t b = 0; b < n_blocks; b++) {
                acc += part[s][b];
            }
            wn->grad[s] += (float)acc;
        }
    }
}

const nas_op_desc nas_op_weighted_sum = {
    .name = "weighted_sum", .forward = weighted_sum_forward, .backward = weighted_sum_backward};

/* ---- concat along C: inputs [N, C_i, H, W] (or [N, C_i]) -> [N, sum C_i, H, W] */

nas_tensor *nas_concat(nas_graph *g, int n, nas_tensor *const *xs) {
    if (g != NULL && g->status == NAS_OK && (n < 1 || n > NAS_MAX_SRC || xs == NULL)) {
        return nas_graph_fail(g, NAS_ERR_ARG, "concat: %d inputs (1..%d allowed)", n, NAS_MAX_SRC);
    }
    if (!nas_ops_sources_ok(g, n, xs)) {
        return NULL;
    }
    char a[64], b[64];
    int64_t C = 0;
    for (int i = 0; i < n; i++) {
        int fits = xs[i]->ndim == xs[0]->ndim && xs[i]->ndim >= 2;
        for (int d = 0; fits && d < xs[0]->ndim; d++) {
            fits = d == 1 || xs[i]->shape[d] == xs[0]->shape[d];
        }
        if (!fits) {
            return nas_graph_fail(
                g, NAS_ERR_SHAPE,
                "concat: input %d has shape %s, input 0 has %s (only C may differ)", i,
                nas_shape_str(xs[i], a, sizeof a), nas_shape_str(xs[0], b, sizeof b));
        }
        C += xs[i]->shape[1];
    }
    nas_node *node = nas_graph_append(g, NAS_OP_CONCAT, n, xs);
    if (node != NULL) {
        int64_t shape[NAS_MAX_DIMS];
        memcpy(shape, xs[0]->shape, sizeof shape);
        shape[1] = C;
        nas_node_set_shape(node, xs[0]->ndim, shape);
    }
    return node;
}

/* Elements per (n, c) plane. */
static int64_t plane_size(const nas_node *t) {
    return t->numel / (t->shape[0] * t->shape[1]);
}

static nas_status concat_forward(nas_graph *g, nas_node *n) {
    (void)g;
    const int64_t N = n->shape[0], P = plane_size(n), out_row = n->shape[1] * P;
    int64_t c0 = 0;
    for (int s = 0; s < n->n_src; s++) {
        const nas_node *x = n->src[s];
        const int64_t row = x->shape[1] * P;
        NAS_OMP_FOR_IF(n->numel >= NAS_PAR_MIN)
        for (int64_t b = 0; b < N; b++) {
            memcpy(n->data + b * out_row + c0 * P, x->data + b * row, (size_t)row * sizeof(float));
        }
        c0 += x->shape[1];
    }
    return NAS_OK;
}

static void concat_backward(nas_graph *g, nas_node *n) {
    (void)g;
    const int64_t N = n->shape[0], P = plane_size(n), out_row = n->shape[1] * P;
    int64_t c0 = 0;
    for (int s = 0; s < n->n_src; s++) {
        const nas_node *x = n->src[s];
        const int64_t row = x->shape[1] * P;
        if (x->grad != NULL) {
            NAS_OMP_FOR_IF(n->numel >= NAS_PAR_MIN)
            for (int64_t b = 0; b < N; b++) {
                const float *dy = n->grad + b * out_row + c0 * P;
                float *dx = x->grad + b * row;
                NAS_SIMD
                for (int64_t i = 0; i < row; i++) {
                    dx[i] += dy[i];
                }
            }
        }
        c0 += x->shape[1];
    }
}

const nas_op_desc nas_op_concat = {
    .name = "concat", .forward = concat_forward, .backward = concat_backward};

/* ---- mul: y = a b. Either b has a's shape, or a is [N, C, H, W] and b is [N, C] or
 * [N, C, 1, 1] (one factor per plane). iparam[0] = 1 for the broadcast form.
 * Backward: da += dy b; db += dy a (same shape) or sum over the plane of dy a (broadcast). */

nas_tensor *nas_mul(nas_graph *g, nas_tensor *a, nas_tensor *b) {
    nas_tensor *src[2] = {a, b};
    if (!nas_ops_sources_ok(g, 2, src)) {
        return NULL;
    }
    int bcast = 0;
    if (!nas_same_shape(a, b)) {
        bcast = a->ndim == 4 &&
                (b->ndim == 2 || (b->ndim == 4 && b->shape[2] == 1 && b->shape[3] == 1)) &&
                b->shape[0] == a->shape[0] && b->shape[1] == a->shape[1];
        if (!bcast) {
            char sa[64], sb[64];
            return nas_graph_fail(g, NAS_ERR_SHAPE,
                                  "mul: %s times %s (b must have a's shape, or be [N, C] or "
                                  "[N, C, 1, 1] for a [N, C, H, W])",
                                  nas_shape_str(a, sa, sizeof sa), nas_shape_str(b, sb, sizeof sb));
        }
    }
    nas_node *n = nas_ops_append_like(g, NAS_OP_MUL, 2, src, a);
    if (n != NULL) {
        n->iparam[0] = bcast;
    }
    return n;
}

static nas_status mul_forward(nas_graph *g, nas_node *n) {
    (void)g;
    const float *a = n->src[0]->data, *b = n->src[1]->data;
    float *y = n->data;
    if (!n->iparam[0]) {
        const int64_t len = n->numel;
        NAS_OMP_FOR_SIMD_IF(len >= NAS_PAR_MIN)
        for (int64_t i = 0; i < len; i++) {
            y[i] = a[i] * b[i];
        }
        return NAS_OK;
    }
    const int64_t planes = n->shape[0] * n->shape[1], P = n->shape[2] * n->shape[3];
    NAS_OMP_FOR_IF(n->numel >= NAS_PAR_MIN)
    for (int64_t p = 0; p < planes; p++) {
        const float s = b[p];
        NAS_SIMD
        for (int64_t i = 0; i < P; i++) {
            y[p * P + i] = a[p * P + i] * s;
        }
    }
    return NAS_OK;
}

static void mul_backward(nas_graph *g, nas_node *n) {
    (void)g;
    const float *a = n->src[0]->data, *b = n->src[1]->data, *dy = n->grad;
    float *da = n->src[0]->grad, *db = n->src[1]->grad;
    if (!n->iparam[0]) {
        const int64_t len = n->numel;
        if (da != NULL) {
            NAS_OMP_FOR_SIMD_IF(len >= NAS_PAR_MIN)
            for (int64_t i = 0; i < len; i++) {
                da[i] += dy[i] * b[i];
            }
        }
        if (db != NULL) {
            NAS_OMP_FOR_SIMD_IF(len >= NAS_PAR_MIN)
            for (int64_t i = 0; i < len; i++) {
                db[i] += dy[i] * a[i];
            }
        }
        return;
    }
    const int64_t planes = n->shape[0] * n->shape[1], P = n->shape[2] * n->shape[3];
    NAS_OMP_FOR_IF(n->numel >= NAS_PAR_MIN)
    for (int64_t p = 0; p < planes; p++) {
        if (da != NULL) {
            const float s = b[p];
            NAS_SIMD
            for (int64_t i = 0; i < P; i++) {
                da[p * P + i] += dy[p * P + i] * s;
            }
        }
        if (db != NULL) {
            double acc = 0.0;
            NAS_SIMD_SUM1(acc)
            for (int64_t i = 0; i < P; i++) {
                acc += (double)dy[p * P + i] * (double)a[p * P + i];
            }
            db[p] += (float)acc;
        }
    }
}

const nas_op_desc nas_op_mul = {.name = "mul", .forward = mul_forward, .backward = mul_backward};

/* ---- channel_shuffle (ShuffleNet): view C as [groups, C / groups], transpose to
 * [C / groups, groups]: output channel j * groups + i is input channel i * (C / groups) + j. */

nas_tensor *nas_channel_shuffle(nas_graph *g, nas_tensor *x, int groups) {
    if (!nas_ops_sources_ok(g, 1, &x)) {
        return NULL;
    }
    if (x->ndim != 4 || groups < 1 || x->shape[1] % groups != 0) {
        char a[64];
        return nas_graph_fail(g, NAS_ERR_SHAPE,
                              "channel_shuffle: input %s cannot split its channels into %d groups",
                              nas_shape_str(x, a, sizeof a), groups);
    }
    nas_node *n = nas_ops_append_like(g, NAS_OP_CHANNEL_SHUFFLE, 1, &x, x);
    if (n != NULL) {
        n->iparam[0] = groups;
    }
    return n;
}

/* The input channel that output channel c reads. */
static int64_t shuffle_src(int64_t c, int64_t C, int64_t groups) {
    const int64_t per = C / groups;
    return (c % groups) * per + c / groups;
}

static nas_status channel_shuffle_forward(nas_graph *g, nas_node *n) {
    (void)g;
    const int64_t N = n->shape[0], C = n->shape[1], P = n->shape[2] * n->shape[3];
    const float *x = n->src[0]->data;
    NAS_OMP_FOR_COLLAPSE2
    for (int64_t b = 0; b < N; b++) {
        for (int64_t c = 0; c < C; c++) {
            memcpy(n->data + (b * C + c) * P, x + (b * C + shuffle_src(c, C, n->iparam[0])) * P,
                   (size_t)P * sizeof(float));
        }
    }
    return NAS_OK;
}

static void channel_shuffle_backward(nas_graph *g, nas_node *n) {
    (void)g;
    float *dx = n->src[0]->grad;
    if (dx == NULL) {
        return;
    }
    const int64_t N = n->shape[0], C = n->shape[1], P = n->shape[2] * n->shape[3];
    NAS_OMP_FOR_COLLAPSE2
    for (int64_t b = 0; b < N; b++) {
        for (int64_t c = 0; c < C; c++) {
            float *d = dx + (b * C + shuffle_src(c, C, n->iparam[0])) * P;
            const float *dy = n->grad + (b * C + c) * P;
            NAS_SIMD
            for (int64_t i = 0; i < P; i++) {
                d[i] += dy[i];
            }
        }
    }
}

const nas_op_desc nas_op_channel_shuffle = {.name = "channel_shuffle",
                                            .forward = channel_shuffle_forward,
                                            .backward = channel_shuffle_backward};

/* ---- zero: zeros of x's shape, or [N, C, ceil(H / s), ceil(W / s)] with stride s > 1 (DARTS's
 * Zero: x[:, :, ::s, ::s].mul(0)). No gradient flows back (it is zero). */

nas_tensor *nas_zero(nas_graph *g, nas_tensor *x, int stride) {
    if (!nas_ops_sources_ok(g, 1, &x)) {
        return NULL;
    }
    if (stride < 1 || (stride > 1 && x->ndim != 4)) {
        char a[64];
        return nas_graph_fail(g, NAS_ERR_ARG,
                              "zero: stride %d for input %s (stride >= 1; > 1 "
                              "needs [N, C, H, W])",
                              stride, nas_shape_str(x, a, sizeof a));
    }
    nas_node *n = nas_ops_append_like(g, NAS_OP_ZERO, 1, &x, x);
    if (n != NULL && stride > 1) {
        int64_t shape[4] = {x->shape[0], x->shape[1], (x->shape[2] + stride - 1) / stride,
                            (x->shape[3] + stride - 1) / stride};
        nas_node_set_shape(n, 4, shape);
    }
    return n;
}

static nas_status zero_forward(nas_graph *g, nas_node *n) {
    (void)g;
    memset(n->data, 0, (size_t)n->numel * sizeof(float));
    return NAS_OK;
}

const nas_op_desc nas_op_zero = {.name = "zero", .forward = zero_forward};

/* ---- pad_channels: [N, C, ...] -> [N, c_out, ...], channels C .. c_out - 1 are zero */

nas_tensor *nas_pad_channels(nas_graph *g, nas_tensor *x, int64_t c_out) {
    if (!nas_ops_sources_ok(g, 1, &x)) {
        return NULL;
    }
    if (x->ndim < 2 || c_out < x->shape[1]) {
        char a[64];
        return nas_graph_fail(g, NAS_ERR_SHAPE,
                              "pad_channels: input %s cannot pad to %lld channels",
                              nas_shape_str(x, a, sizeof a), (long long)c_out);
    }
    nas_node *n = nas_graph_append(g, NAS_OP_PAD_CHANNELS, 1, &x);
    if (n != NULL) {
        int64_t shape[NAS_MAX_DIMS];
        memcpy(shape, x->shape, sizeof shape);
        shape[1] = c_out;
        nas_node_set_shape(n, x->ndim, shape);
    }
    return n;
}

static nas_status pad_channels_forward(nas_graph *g, nas_node *n) {
    (void)g;
    const nas_node *x = n->src[0];
    const int64_t N = n->shape[0], P = plane_size(n);
    const int64_t in_row = x->shape[1] * P, out_row = n->shape[1] * P;
    NAS_OMP_FOR_IF(n->numel >= NAS_PAR_MIN)
    for (int64_t b = 0; b < N; b++) {
        memcpy(n->data + b * out_row, x->data + b * in_row, (size_t)in_row * sizeof(float));
        memset(n->data + b * out_row + in_row, 0, (size_t)(out_row - in_row) * sizeof(float));
    }
    return NAS_OK;
}

static void pad_channels_backward(nas_graph *g, nas_node *n) {
    (void)g;
    const nas_node *x = n->src[0];
    if (x->grad == NULL) {
        return;
    }
    const int64_t N = n->shape[0], P = plane_size(n);
    const int64_t in_row = x->shape[1] * P, out_row = n->shape[1] * P;
    NAS_OMP_FOR_IF(n->numel >= NAS_PAR_MIN)
    for (int64_t b = 0; b < N; b++) {
        NAS_SIMD
        for (int64_t i = 0; i < in_row; i++) {
            x->grad[b * in_row + i] += n->grad[b * out_row + i];
        }
    }
}

const nas_op_desc nas_op_pad_channels = {
    .name = "pad_channels", .forward = pad_channels_forward, .backward = pad_channels_backward};
