/* leaves.c - graph leaves (inputs, parameters, labels) and parameter slices (elastic width and
 * kernel size: a layer uses the first rows/columns and the centre taps of a larger weight). */
#include "ops_int.h"

static nas_node *leaf(nas_graph *g, int op, int ndim, const int64_t *shape) {
    if (g == NULL || g->status != NAS_OK) {
        return NULL;
    }
    if (ndim < 1 || ndim > NAS_MAX_DIMS || shape == NULL) {
        return nas_graph_fail(g, NAS_ERR_ARG, "%s: ndim %d outside 1..%d", nas_op_get(op)->name,
                              ndim, NAS_MAX_DIMS);
    }
    for (int i = 0; i < ndim; i++) {
        if (shape[i] <= 0) {
            return nas_graph_fail(g, NAS_ERR_SHAPE, "%s: dimension %d has size %lld",
                                  nas_op_get(op)->name, i, (long long)shape[i]);
        }
    }
    nas_node *n = nas_graph_append(g, op, 0, NULL);
    if (n != NULL) {
        nas_node_set_shape(n, ndim, shape);
    }
    return n;
}

nas_tensor *nas_input(nas_graph *g, int ndim, const int64_t *shape, float *data) {
    nas_node *n = leaf(g, NAS_OP_INPUT, ndim, shape);
    if (n != NULL) {
        n->data = data;
    }
    return n;
}

nas_tensor *nas_input_grad(nas_graph *g, int ndim, const int64_t *shape, float *data) {
    nas_node *n = nas_input(g, ndim, shape, data);
    if (n != NULL) {
        n->requires_grad = 1;
    }
    return n;
}

nas_tensor *nas_labels(nas_graph *g, int64_t count, const int32_t *labels) {
    nas_node *n = leaf(g, NAS_OP_LABELS, 1, &count);
    if (n != NULL) {
        n->labels = labels;
    }
    return n;
}

nas_tensor *nas_param(nas_graph *g, nas_params *p, nas_param_id id) {
    if (g != NULL && g->status == NAS_OK && (p == NULL || id < 0 || id >= p->n_entries)) {
        return nas_graph_fail(g, NAS_ERR_ARG, "param: no parameter %lld", (long long)id);
    }
    if (g == NULL || g->status != NAS_OK) {
        return NULL;
    }
    const nas_param_entry *e = &p->entries[id];
    nas_node *n = leaf(g, NAS_OP_PARAM, e->ndim, e->shape);
    if (n != NULL) {
        n->params = p;
        n->pid = id;
        n->requires_grad = (e->flags & NAS_PARAM_BUFFER) == 0;
        n->data = p->data + e->offset; /* refreshed before every forward: the block may move */
    }
    return n;
}

const nas_op_desc nas_op_input = {.name = "input"};
const nas_op_desc nas_op_param = {.name = "param"};
const nas_op_desc nas_op_labels = {.name = "labels"};

/* ---- param_slice: y[o, i, a, b] = W[o, i, a + off, b + off], off = (K - k) / 2 */

nas_tensor *nas_param_slice(nas_graph *g, nas_params *p, nas_param_id id, int64_t out, int64_t in,
                            int64_t k) {
    nas_node *w = nas_param(g, p, id);
    if (w == NULL) {
        return NULL;
    }
    const int64_t full_k = w->ndim == 4 ? w->shape[2] : 1;
    const int64_t full_in = w->ndim >= 2 ? w->shape[1] : 1;
    if (w->ndim == 4 && w->shape[2] != w->shape[3]) {
        return nas_graph_fail(g, NAS_ERR_SHAPE, "param_slice: %s is not square", p->entries[id].name);
    }
    if (out < 1 || out > w->shape[0] || in < 1 || in > full_in || k < 1 || k > full_k ||
        (full_k - k) % 2 != 0 || w->ndim == 3) {
        return nas_graph_fail(g, NAS_ERR_SHAPE,
                              "param_slice: slice %lld x %lld x %lld does not fit %s", (long long)out,
                              (long long)in, (long long)k, p->entries[id].name);
    }
    nas_node *n = nas_graph_append(g, NAS_OP_PARAM_SLICE, 1, &w);
    if (n == NULL) {
        return NULL;
    }
    int64_t shape[4] = {out, in, k, k};
    nas_node_set_shape(n, w->ndim, shape);
    n->params = p;
    n->pid = id;
    return n;
}

/* Visit every (slice index, full index) pair. */
#define SLICE_LOOP(n, BODY)                                                                        \
    do {                                                                                           \
        const nas_node *w_ = (n)->src[0];                                                          \
        const int64_t O_ = (n)->shape[0], I_ = (n)->ndim >= 2 ? (n)->shape[1] : 1;                \
        const int64_t k_ = (n)->ndim == 4 ? (n)->shape[2] : 1;                                     \
        const int64_t FI_ = w_->ndim >= 2 ? w_->shape[1] : 1;                                      \
        const int64_t FK_ = w_->ndim == 4 ? w_->shape[2] : 1, off_ = (FK_ - k_) / 2;               \
        for (int64_t o = 0; o < O_; o++)                                                           \
            for (int64_t i = 0; i < I_; i++)                                                       \
                for (int64_t a = 0; a < k_; a++)                                                   \
                    for (int64_t b = 0; b < k_; b++) {                                             \
                        const int64_t s = ((o * I_ + i) * k_ + a) * k_ + b;                        \
                        const int64_t f = ((o * FI_ + i) * FK_ + a + off_) * FK_ + b + off_;       \
                        BODY;                                                                      \
                    }                                                                              \
    } while (0)

static nas_status param_slice_forward(nas_graph *g, nas_node *n) {
    (void)g;
    const float *w = n->src[0]->data;
    float *y = n->data;
    SLICE_LOOP(n, y[s] = w[f]);
    return NAS_OK;
}

static void param_slice_backward(nas_graph *g, nas_node *n) {
    (void)g;
    float *dw = n->src[0]->grad;
    const float *dy = n->grad;
    if (dw == NULL) {
        return;
    }
    SLICE_LOOP(n, dw[f] += dy[s]);
}

const nas_op_desc nas_op_param_slice = {
    .name = "param_slice",
    .forward = param_slice_forward,
    .backward = param_slice_backward,
};
