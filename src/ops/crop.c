/* crop.c - ops that move elements without arithmetic: a spatial window of [N, C, H, W] with zero
 * fill outside the input (DARTS FactorizedReduce's x[:, :, 1:, 1:]), and a permutation of the
 * axes (torch.permute, copied; the attention block's token and head layouts). Both backward
 * passes scatter dy to where each element came from: every input element feeds at most one
 * output element, so there are no races and no reductions. */
#include "ops_int.h"
#include "simd_int.h"

/* ---- crop: y [N, C, h, w], y[n, c, i, j] = x[n, c, top + i, left + j] (0 outside x).
 * iparam: 0 top, 1 left. */

nas_tensor *nas_crop(nas_graph *g, nas_tensor *x, int top, int left, int h, int w) {
    if (!nas_ops_sources_ok(g, 1, &x)) {
        return NULL;
    }
    if (x->ndim != 4 || h < 1 || w < 1) {
        char a[64];
        return nas_graph_fail(
            g, NAS_ERR_SHAPE,
            "crop: %dx%d window of %s (want [N, C, H, W] and a window of at least "
            "1x1)",
            h, w, nas_shape_str(x, a, sizeof a));
    }
    nas_node *n = nas_graph_append(g, NAS_OP_CROP, 1, &x);
    if (n != NULL) {
        const int64_t shape[4] = {x->shape[0], x->shape[1], h, w};
        nas_node_set_shape(n, 4, shape);
        n->iparam[0] = top;
        n->iparam[1] = left;
    }
    return n;
}

/* The output columns [*j0, *j1) whose source column lies inside x (the rest are zero). */
static void inside_cols(const nas_node *n, int64_t *j0, int64_t *j1) {
    const int64_t left = n->iparam[1], W = n->src[0]->shape[3], w = n->shape[3];
    *j0 = nas_min_i64(w, nas_max_i64(0, -left));
    *j1 = nas_max_i64(*j0, nas_min_i64(w, W - left));
}

static nas_status crop_forward(nas_graph *g, nas_node *n) {
    (void)g;
    const nas_node *x = n->src[0];
    const int64_t planes = n->shape[0] * n->shape[1], h = n->shape[2], w = n->shape[3];
    const int64_t H = x->shape[2], W = x->shape[3], top = n->iparam[0], left = n->iparam[1];
    int64_t j0, j1;
    inside_cols(n, &j0, &j1);
    NAS_OMP_FOR_IF(n->numel >= NAS_PAR_MIN)
    for (int64_t p = 0; p < planes; p++) {
        for (int64_t i = 0; i < h; i++) {
            float *y = n->data + (p * h + i) * w;
            const int64_t r = top + i;
            memset(y, 0, (size_t)w * sizeof(float));
            if (r >= 0 && r < H && j1 > j0) {
                memcpy(y + j0, x->data + (p * H + r) * W + left + j0,
                       (size_t)(j1 - j0) * sizeof(float));
            }
        }
    }
    return NAS_OK;
}

static void crop_backward(nas_graph *g, nas_node *n) {
    (void)g;
    const nas_node *x = n->src[0];
    if (x->grad == NULL) {
        return;
    }
    const int64_t planes = n->shape[0] * n->shape[1], h = n->shape[2], w = n->shape[3];
    const int64_t H = x->shape[2], W = x->shape[3], top = n->iparam[0], left = n->iparam[1];
    int64_t j0, j1;
    inside_cols(n, &j0, &j1);
    NAS_OMP_FOR_IF(n->numel >= NAS_PAR_MIN)
    for (int64_t p = 0; p < planes; p++) {
        for (int64_t i = 0; i < h; i++) {
            const int64_t r = top + i;
            if (r < 0 || r >= H) {
                continue;
            }
            const float *dy = n->grad + (p * h + i) * w;
            float *dx = x->grad + (p * H + r) * W + left;
            NAS_SIMD
            for (int64_t j = j0; j < j1; j++) {
                dx[j] += dy[j];
            }
        }
    }
}

const nas_op_desc nas_op_crop = {
    .name = "crop", .forward = crop_forward, .backward = crop_backward};

/* ---- permute: y.shape[i] = x.shape[perm[i]]; y[i0, i1, i2, i3] = x at index i_k on axis
 * perm[k]. iparam[0..ndim) = perm. Shapes are padded to 4 dims with trailing 1s. */

nas_tensor *nas_permute(nas_graph *g, nas_tensor *x, const int *perm) {
    if (!nas_ops_sources_ok(g, 1, &x)) {
        return NULL;
    }
    int seen = 0, ok = perm != NULL;
    for (int i = 0; ok && i < x->ndim; i++) {
        ok = perm[i] >= 0 && perm[i] < x->ndim && !(seen & (1 << perm[i]));
        seen |= ok ? 1 << perm[i] : 0;
    }
    if (!ok) {
        char a[64];
        return nas_graph_fail(g, NAS_ERR_ARG,
                              "permute: the axes given for %s are not a permutation of 0..%d",
                              nas_shape_str(x, a, sizeof a), x->ndim - 1);
    }
    nas_node *n = nas_graph_append(g, NAS_OP_PERMUTE, 1, &x);
    if (n != NULL) {
        int64_t shape[NAS_MAX_DIMS];
        for (int i = 0; i < x->ndim; i++) {
            shape[i] = x->shape[perm[i]];
            n->iparam[i] = perm[i];
        }
        for (int i = x->ndim; i < NAS_MAX_DIMS; i++) {
            n->iparam[i] = i;
        }
        nas_node_set_shape(n, x->ndim, shape);
    }
    return n;
}

/* Element strides of x along the output's axes (x's 4-d strides, permuted). */
static void permuted_strides(const nas_node *n, int64_t st[NAS_MAX_DIMS]) {
    const nas_node *x = n->src[0];
    int64_t xs[NAS_MAX_DIMS];
    xs[NAS_MAX_DIMS - 1] = 1;
    for (int i = NAS_MAX_DIMS - 2; i >= 0; i--) {
        xs[i] = xs[i + 1] * x->shape[i + 1];
    }
    for (int i = 0; i < NAS_MAX_DIMS; i++) {
        st[i] = xs[n->iparam[i]];
    }
}

/* Copy (forward, to_x 0) or accumulate back (backward, to_x 1) along the output order. */
static void permute_walk(nas_node *n, const float *from, float *to, int to_x) {
    int64_t st[NAS_MAX_DIMS];
    permuted_strides(n, st);
    const int64_t d0 = n->shape[0], d1 = n->shape[1], d2 = n->shape[2], d3 = n->shape[3];
    NAS_OMP_FOR_IF(n->numel >= NAS_PAR_MIN)
    for (int64_t i01 = 0; i01 < d0 * d1; i01++) {
        const int64_t i0 = i01 / d1, i1 = i01 % d1;
        for (int64_t i2 = 0; i2 < d2; i2++) {
            const int64_t yoff = ((i0 * d1 + i1) * d2 + i2) * d3;
            const int64_t xoff = i0 * st[0] + i1 * st[1] + i2 * st[2];
            if (to_x) {
                for (int64_t i3 = 0; i3 < d3; i3++) {
                    to[xoff + i3 * st[3]] += from[yoff + i3];
                }
            } else {
                for (int64_t i3 = 0; i3 < d3; i3++) {
                    to[yoff + i3] = from[xoff + i3 * st[3]];
                }
            }
        }
    }
}

static nas_status permute_forward(nas_graph *g, nas_node *n) {
    (void)g;
    permute_walk(n, n->src[0]->data, n->data, 0);
    return NAS_OK;
}

static void permute_backward(nas_graph *g, nas_node *n) {
    (void)g;
    if (n->src[0]->grad != NULL) {
        permute_walk(n, n->grad, n->src[0]->grad, 1);
    }
}

const nas_op_desc nas_op_permute = {
    .name = "permute", .forward = permute_forward, .backward = permute_backward};
