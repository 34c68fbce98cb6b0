/* basic.c - structural and reduction ops: ReLU, add, n-ary sum, identity, reshape view, sums of
 * all elements, scale. ReLU lives here (not act.c) because every other module's first graph needs
 * it; the rest of the activations are in act.c. */
#include "ops_int.h"
#include "simd_int.h"

/* ---- relu: y = max(x, 0), NaN kept (as PyTorch: a NaN must reach the loss check);
 * dy/dx = [x > 0] = [y > 0] (the backward reads y: x may be a sum or batch norm folded into the
 * ReLU and never written, ops/fuse.c) */

nas_tensor *nas_relu(nas_graph *g, nas_tensor *x) {
    if (!nas_ops_sources_ok(g, 1, &x)) {
        return NULL;
    }
    return nas_ops_append_like(g, NAS_OP_RELU, 1, &x, x);
}

static nas_status relu_forward(nas_graph *g, nas_node *n) {
    if (n->src[0]->folded_into == n) {
        return nas_relu_forward_folded(g, n);
    }
    const float *x = n->src[0]->data;
    float *y = n->data;
    const int64_t len = n->numel;
    NAS_OMP_FOR_SIMD
    for (int64_t i = 0; i < len; i++) {
        y[i] = x[i] < 0.0f ? 0.0f : x[i];
    }
    return NAS_OK;
}

static void relu_backward(nas_graph *g, nas_node *n) {
    (void)g;
    float *dx = n->src[0]->grad;
    if (dx == NULL) {
        return;
    }
    const float *y = n->data, *dy = n->grad;
    const int64_t len = n->numel;
    if (nas_grad_first(n, 0)) {
        NAS_OMP_FOR_SIMD
        for (int64_t i = 0; i < len; i++) {
            dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
        }
        return;
    }
    NAS_OMP_FOR_SIMD
    for (int64_t i = 0; i < len; i++) {
        dx[i] += y[i] > 0.0f ? dy[i] : 0.0f;
    }
}

const nas_op_desc nas_op_relu = {
    .name = "relu", .forward = relu_forward, .backward = relu_backward, .stores_first = 1u};

/* ---- relu_frozen: y = x m, dy/dx = m, for a 0/1 mask m taken from an earlier forward (src[1],
 * a leaf that gets no gradient). A relu node is turned into one in place by
 * nas_relu_freeze (grasp's finite differences need the network smooth in its weights). The
 * mask is in the layout x had when it was taken (iparam[0] = its block); the planner keeps x in
 * that layout (the op follows src[0] alone), and forward checks it did. */

void nas_relu_freeze(nas_node *relu, nas_node *mask) {
    relu->op = NAS_OP_RELU_FROZEN;
    relu->n_src = 2;
    relu->src[1] = mask;
    relu->iparam[0] = relu->src[0]->block;
}

void nas_relu_thaw(nas_node *frozen) {
    frozen->op = NAS_OP_RELU;
    frozen->n_src = 1;
    frozen->src[1] = NULL;
}

static nas_status relu_frozen_forward(nas_graph *g, nas_node *n) {
    if (n->src[0]->block != n->iparam[0]) {
        return nas_fail(g->ctx, NAS_ERR_STATE,
                        "relu_frozen (node %lld): the input's layout changed since the mask was "
                        "taken", (long long)n->index);
    }
    const float *x = n->src[0]->data, *m = n->src[1]->data;
    float *y = n->data;
    const int64_t len = n->numel;
    NAS_OMP_FOR_SIMD
    for (int64_t i = 0; i < len; i++) {
        y[i] = x[i] * m[i];
    }
    return NAS_OK;
}

static void relu_frozen_backward(nas_graph *g, nas_node *n) {
    (void)g;
    float *dx = n->src[0]->grad;
    if (dx == NULL) {
        return;
    }
    const float *m = n->src[1]->data, *dy = n->grad;
    const int64_t len = n->numel;
    const int first = nas_grad_first(n, 0);
    NAS_OMP_FOR_SIMD
    for (int64_t i = 0; i < len; i++) {
        dx[i] = (first ? 0.0f : dx[i]) + dy[i] * m[i];
    }
}

const nas_op_desc nas_op_relu_frozen = {.name = "relu_frozen",
                                        .forward = relu_frozen_forward,
                                        .backward = relu_frozen_backward,
                                        .stores_first = 1u};

/* ---- sum of n same-shaped inputs (add is the n = 2 case): dy/dx_i = 1 */

nas_tensor *nas_sum(nas_graph *g, int n, nas_tensor *const *xs) {
    if (g != NULL && g->status == NAS_OK && (n < 1 || n > NAS_MAX_SRC || xs == NULL)) {
        return nas_graph_fail(g, NAS_ERR_ARG, "sum: %d inputs (1..%d allowed)", n, NAS_MAX_SRC);
    }
    if (!nas_ops_sources_ok(g, n, xs)) {
        return NULL;
    }
    for (int i = 1; i < n; i++) {
        if (!nas_same_shape(xs[0], xs[i])) {
            char a[64], b[64];
            return nas_graph_fail(g, NAS_ERR_SHAPE, "sum: input %d has shape %s, input 0 has %s", i,
                                  nas_shape_str(xs[i], a, sizeof a), nas_shape_str(xs[0], b, sizeof b));
        }
    }
    return nas_ops_append_like(g, NAS_OP_SUM, n, xs, xs[0]);
}

nas_tensor *nas_add(nas_graph *g, nas_tensor *a, nas_tensor *b) {
    nas_tensor *xs[2] = {a, b};
    nas_tensor *y = nas_sum(g, 2, xs);
    if (y != NULL) {
        y->op = NAS_OP_ADD;
    }
    return y;
}

/* Sums run chunk by chunk (a chunk of y stays in L1 while every input is added to it, in
 * source order): each tensor crosses memory once instead of once per input. */
#define SUM_CHUNK 2048

static nas_status sum_forward(nas_graph *g, nas_node *n) {
    (void)g;
    if (n->folded_into != NULL) { /* its ReLU adds the sources (ops/fuse.c) */
        return NAS_OK;
    }
    float *y = n->data;
    const int64_t len = n->numel, chunks = (len + SUM_CHUNK - 1) / SUM_CHUNK;
    NAS_OMP_FOR_IF(len >= NAS_PAR_MIN)
    for (int64_t c = 0; c < chunks; c++) {
        const int64_t lo = c * SUM_CHUNK, hi = nas_min_i64(len, lo + SUM_CHUNK);
        const float *x0 = n->src[0]->data;
        NAS_SIMD
        for (int64_t i = lo; i < hi; i++) {
            y[i] = x0[i];
        }
        for (int s = 1; s < n->n_src; s++) {
            const float *x = n->src[s]->data;
            NAS_SIMD
            for (int64_t i = lo; i < hi; i++) {
                y[i] += x[i];
            }
        }
    }
    return NAS_OK;
}

/* A source whose gradient is this sum's own (grad_host, autograd/exec.c) has it already. */
static int sum_writes(const nas_node *n, int s) {
    return n->src[s]->grad != NULL && n->src[s]->grad != n->grad;
}

static void sum_backward(nas_graph *g, nas_node *n) {
    (void)g;
    int writes = 0;
    for (int s = 0; s < n->n_src; s++) {
        writes += sum_writes(n, s);
    }
    if (writes == 0) {
        return;
    }
    const float *dy = n->grad;
    const int64_t len = n->numel, chunks = (len + SUM_CHUNK - 1) / SUM_CHUNK;
    NAS_OMP_FOR_IF(len >= NAS_PAR_MIN)
    for (int64_t c = 0; c < chunks; c++) {
        const int64_t lo = c * SUM_CHUNK, hi = nas_min_i64(len, lo + SUM_CHUNK);
        for (int s = 0; s < n->n_src; s++) {
            float *dx = n->src[s]->grad;
            if (!sum_writes(n, s)) {
                continue;
            }
            if (nas_grad_first(n, s)) {
                NAS_SIMD
                for (int64_t i = lo; i < hi; i++) {
                    dx[i] = dy[i];
                }
            } else {
                NAS_SIMD
                for (int64_t i = lo; i < hi; i++) {
                    dx[i] += dy[i];
                }
            }
        }
    }
}

const nas_op_desc nas_op_sum = {
    .name = "sum", .forward = sum_forward, .backward = sum_backward, .stores_first = ~0u};
const nas_op_desc nas_op_add = {
    .name = "add", .forward = sum_forward, .backward = sum_backward, .stores_first = ~0u};

/* ---- identity and reshape: views of the source, no copy, gradient shared */

nas_tensor *nas_identity(nas_graph *g, nas_tensor *x) {
    if (!nas_ops_sources_ok(g, 1, &x)) {
        return NULL;
    }
    return nas_ops_append_like(g, NAS_OP_IDENTITY, 1, &x, x);
}

nas_tensor *nas_reshape(nas_graph *g, nas_tensor *x, int ndim, const int64_t *shape) {
    if (!nas_ops_sources_ok(g, 1, &x)) {
        return NULL;
    }
    int64_t numel = 1;
    for (int i = 0; i < ndim && shape != NULL; i++) {
        numel *= shape[i];
    }
    if (shape == NULL || ndim < 1 || ndim > NAS_MAX_DIMS || numel != x->numel) {
        char a[64];
        return nas_graph_fail(g, NAS_ERR_SHAPE, "reshape: %s cannot become %d dims of %lld elements",
                              nas_shape_str(x, a, sizeof a), ndim, (long long)numel);
    }
    nas_node *n = nas_graph_append(g, NAS_OP_VIEW, 1, &x);
    if (n != NULL) {
        nas_node_set_shape(n, ndim, shape);
    }
    return n;
}

/* A view of part of x: `numel` elements from element `offset`, with the given shape (used for
 * ops with two outputs such as the LSTM cell). */
nas_tensor *nas_view_part(nas_graph *g, nas_tensor *x, int64_t offset, int ndim,
                          const int64_t *shape);
nas_tensor *nas_view_part(nas_graph *g, nas_tensor *x, int64_t offset, int ndim,
                          const int64_t *shape) {
    if (!nas_ops_sources_ok(g, 1, &x)) {
        return NULL;
    }
    nas_node *n = nas_graph_append(g, NAS_OP_VIEW, 1, &x);
    if (n == NULL) {
        return NULL;
    }
    nas_node_set_shape(n, ndim, shape);
    NAS_ASSERT(offset >= 0 && offset + n->numel <= x->numel);
    n->alias_offset = offset;
    return n;
}

const nas_op_desc nas_op_identity = {.name = "identity", .alias = 1};
const nas_op_desc nas_op_view = {.name = "view", .alias = 1};

/* ---- scale: y = s x */

nas_tensor *nas_scale(nas_graph *g, nas_tensor *x, float s) {
    if (!nas_ops_sources_ok(g, 1, &x)) {
        return NULL;
    }
    nas_node *n = nas_ops_append_like(g, NAS_OP_SCALE, 1, &x, x);
    if (n != NULL) {
        n->fparam[0] = s;
    }
    return n;
}

static nas_status scale_forward(nas_graph *g, nas_node *n) {
    (void)g;
    const float *x = n->src[0]->data, s = n->fparam[0];
    float *y = n->data;
    const int64_t len = n->numel;
    NAS_OMP_FOR_SIMD
    for (int64_t i = 0; i < len; i++) {
        y[i] = s * x[i];
    }
    return NAS_OK;
}

static void scale_backward(nas_graph *g, nas_node *n) {
    (void)g;
    float *dx = n->src[0]->grad;
    if (dx == NULL) {
        return;
    }
    const float *dy = n->grad, s = n->fparam[0];
    const int64_t len = n->numel;
    NAS_OMP_FOR_SIMD
    for (int64_t i = 0; i < len; i++) {
        dx[i] += s * dy[i];
    }
}

const nas_op_desc nas_op_scale = {.name = "scale", .forward = scale_forward, .backward = scale_backward};

/* ---- sum_all / mean_all: y = c * sum x, c = 1 or 1/numel. Summed in double, in fixed order. */

static nas_tensor *reduce_all(nas_graph *g, nas_tensor *x, int op) {
    if (!nas_ops_sources_ok(g, 1, &x)) {
        return NULL;
    }
    const int64_t one = 1;
    nas_node *n = nas_graph_append(g, op, 1, &x);
    if (n != NULL) {
        nas_node_set_shape(n, 1, &one);
    }
    return n;
}

nas_tensor *nas_sum_all(nas_graph *g, nas_tensor *x) {
    return reduce_all(g, x, NAS_OP_SUM_ALL);
}

nas_tensor *nas_mean_all(nas_graph *g, nas_tensor *x) {
    return reduce_all(g, x, NAS_OP_MEAN_ALL);
}

static double reduce_scale(const nas_node *n) {
    return n->op == NAS_OP_MEAN_ALL ? 1.0 / (double)n->src[0]->numel : 1.0;
}

static nas_status reduce_all_forward(nas_graph *g, nas_node *n) {
    (void)g;
    const float *x = n->src[0]->data;
    double acc = 0.0;
    for (int64_t i = 0; i < n->src[0]->numel; i++) {
        acc += (double)x[i];
    }
    n->data[0] = (float)(acc * reduce_scale(n));
    return NAS_OK;
}

static void reduce_all_backward(nas_graph *g, nas_node *n) {
    (void)g;
    float *dx = n->src[0]->grad;
    if (dx == NULL) {
        return;
    }
    const float d = (float)((double)n->grad[0] * reduce_scale(n));
    const int64_t len = n->src[0]->numel;
    NAS_OMP_FOR_SIMD
    for (int64_t i = 0; i < len; i++) {
        dx[i] += d;
    }
}

const nas_op_desc nas_op_sum_all = {
    .name = "sum_all", .forward = reduce_all_forward, .backward = reduce_all_backward};
const nas_op_desc nas_op_mean_all = {
    .name = "mean_all", .forward = reduce_all_forward, .backward = reduce_all_backward};
