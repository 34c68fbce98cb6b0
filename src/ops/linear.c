/* linear.c - fully connected layer through OpenBLAS sgemm.
 * x [N, F], w [O, F], b [O] (optional): y [N, O] = x w^T + b.
 * Backward: dx += dy w, dw += dy^T x, db += sum_n dy. */
#include "ops_int.h"

#include <cblas.h>

nas_tensor *nas_linear(nas_graph *g, nas_tensor *x, nas_tensor *w, nas_tensor *bias) {
    nas_tensor *src[3] = {x, w, bias};
    if (!nas_ops_sources_ok(g, 2, src)) {
        return NULL;
    }
    if (bias != NULL && g->status != NAS_OK) {
        return NULL;
    }
    char a[64], b[64];
    if (x->ndim != 2 || w->ndim != 2 || x->shape[1] != w->shape[1]) {
        return nas_graph_fail(g, NAS_ERR_SHAPE, "linear: input %s does not fit weight %s (want [N, F] "
                              "and [O, F])", nas_shape_str(x, a, sizeof a), nas_shape_str(w, b, sizeof b));
    }
    if (bias != NULL && (bias->ndim != 1 || bias->shape[0] != w->shape[0])) {
        return nas_graph_fail(g, NAS_ERR_SHAPE, "linear: bias %s does not fit weight %s",
                              nas_shape_str(bias, a, sizeof a), nas_shape_str(w, b, sizeof b));
    }
    nas_node *n = nas_graph_append(g, NAS_OP_LINEAR, bias != NULL ? 3 : 2, src);
    if (n != NULL) {
        const int64_t shape[2] = {x->shape[0], w->shape[0]};
        nas_node_set_shape(n, 2, shape);
    }
    return n;
}

static nas_status linear_forward(nas_graph *g, nas_node *n) {
    (void)g;
    const nas_node *x = n->src[0], *w = n->src[1];
    const int N = (int)x->shape[0], F = (int)x->shape[1], O = (int)w->shape[0];
    float *y = n->data;
    if (n->n_src == 3) {
        const float *b = n->src[2]->data;
        for (int i = 0; i < N; i++) {
            memcpy(y + (int64_t)i * O, b, (size_t)O * sizeof(float));
        }
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, O, F, 1.0f, x->data, F, w->data, F,
                n->n_src == 3 ? 1.0f : 0.0f, y, O);
    return NAS_OK;
}

static void linear_backward(nas_graph *g, nas_node *n) {
    (void)g;
    const nas_node *x = n->src[0], *w = n->src[1];
    const int N = (int)x->shape[0], F = (int)x->shape[1], O = (int)w->shape[0];
    const float *dy = n->grad;
    if (x->grad != NULL) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, F, O, 1.0f, dy, O, w->data, F,
                    1.0f, x->grad, F);
    }
    if (w->grad != NULL) {
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, O, F, N, 1.0f, dy, O, x->data, F, 1.0f,
                    w->grad, F);
    }
    if (n->n_src == 3 && n->src[2]->grad != NULL) {
        float *db = n->src[2]->grad;
        for (int o = 0; o < O; o++) {
            double acc = 0.0;
            for (int i = 0; i < N; i++) {
                acc += (double)dy[(int64_t)i * O + o];
            }
            db[o] += (float)acc;
        }
    }
}

static int64_t linear_macs(const nas_node *n) {
    return n->src[0]->shape[0] * n->src[0]->shape[1] * n->src[1]->shape[0];
}

const nas_op_desc nas_op_linear = {
    .name = "linear", .forward = linear_forward, .backward = linear_backward, .macs = linear_macs};
