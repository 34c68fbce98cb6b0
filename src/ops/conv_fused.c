/* conv_fused.c - the conv2d_relu_maxpool op: conv2d (stride 1, one group, no dilation) + bias +
 * ReLU + 2x2 stride-2 max pool as one node, the block of small classic CNNs (the Fashion-MNIST
 * sanity net). Same values as the three ops in a row (the pooled ReLU output; the winning tap
 * of each window as max_pool picks it), but computed per image in cache by the direct kernels
 * of conv_direct.c: the full-size conv and ReLU activations and their gradients never exist.
 * x [N, C, H, W], w [O, C, KH, KW], bias [O] or NULL -> y [N, O, OH / 2, OW / 2] with
 * OH = H + 2 pad_h - KH + 1 (same for W); aux holds the winning tap per output. */
#include "conv_int.h"

#include <stdio.h>

enum { IP_PH = 0, IP_PW = 1 };

nas_tensor *nas_conv2d_relu_maxpool(nas_graph *g, nas_tensor *x, nas_tensor *w, nas_tensor *bias,
                                    int pad_h, int pad_w) {
    nas_tensor *src[3] = {x, w, bias};
    if (!nas_ops_sources_ok(g, 2, src)) {
        return NULL;
    }
    char xs[64], ws[64];
    nas_shape_str(x, xs, sizeof xs);
    nas_shape_str(w, ws, sizeof ws);
    if (x->ndim != 4 || w->ndim != 4 || w->shape[1] != x->shape[1]) {
        return nas_graph_fail(g, NAS_ERR_SHAPE,
                              "conv2d_relu_maxpool: input %s and weight %s must be [N, C, H, W] "
                              "and [O, C, KH, KW]",
                              xs, ws);
    }
    if (pad_h < 0 || pad_w < 0 || pad_h >= w->shape[2] || pad_w >= w->shape[3] ||
        w->shape[2] * w->shape[3] > 49) {
        return nas_graph_fail(g, NAS_ERR_ARG,
                              "conv2d_relu_maxpool: padding %d,%d with kernel %s (want kernels up "
                              "to 7x7 and 0 <= pad < kernel size)",
                              pad_h, pad_w, ws);
    }
    const int64_t oh = x->shape[2] + 2 * pad_h - w->shape[2] + 1;
    const int64_t ow = x->shape[3] + 2 * pad_w - w->shape[3] + 1;
    if (oh < 2 || ow < 2) {
        return nas_graph_fail(g, NAS_ERR_SHAPE,
                              "conv2d_relu_maxpool: input %s gives a %lldx%lld conv output, too "
                              "small for the 2x2 pool",
                              xs, (long long)oh, (long long)ow);
    }
    if (bias != NULL && (bias->ndim != 1 || bias->shape[0] != w->shape[0])) {
        char bs[64];
        return nas_graph_fail(g, NAS_ERR_SHAPE,
                              "conv2d_relu_maxpool: bias %s does not fit weight %s",
                              nas_shape_str(bias, bs, sizeof bs), ws);
    }
    nas_node *n = nas_graph_append(g, NAS_OP_CONV2D_RELU_MAXPOOL, bias != NULL ? 3 : 2, src);
    if (n == NULL) {
        return NULL;
    }
    const int64_t shape[4] = {x->shape[0], w->shape[0], oh / 2, ow / 2};
    nas_node_set_shape(n, 4, shape);
    n->iparam[IP_PH] = pad_h;
    n->iparam[IP_PW] = pad_w;
    n->aux_bytes = (size_t)n->numel * sizeof(int32_t);
    return n;
}

static nas_conv_geom geom(const nas_node *n) {
    const nas_node *x = n->src[0], *w = n->src[1];
    nas_conv_geom c = {.N = x->shape[0], .C = x->shape[1], .H = x->shape[2], .W = x->shape[3],
                       .O = w->shape[0], .KH = w->shape[2], .KW = w->shape[3],
                       .sh = 1, .sw = 1, .ph = n->iparam[IP_PH], .pw = n->iparam[IP_PW],
                       .dh = 1, .dw = 1, .groups = 1};
    c.OH = c.H + 2 * c.ph - c.KH + 1;
    c.OW = c.W + 2 * c.pw - c.KW + 1;
    return c;
}

static nas_status fused_forward(nas_graph *g, nas_node *n) {
    const nas_conv_geom c = geom(n);
    /* the backward's size already: the scratch only grows, so backward finds it in place */
    float *scratch = nas_graph_scratch(g, nas_conv_relu_pool_scratch_bytes(&c, 1));
    if (scratch == NULL) {
        return nas_fail(g->ctx, NAS_ERR_NOMEM, "conv2d_relu_maxpool: out of memory for scratch");
    }
    nas_conv_relu_pool_forward(&c, n->src[0]->data, n->src[1]->data,
                               n->n_src == 3 ? n->src[2]->data : NULL, n->data, n->aux, scratch);
    return NAS_OK;
}

static void fused_backward(nas_graph *g, nas_node *n) {
    const nas_conv_geom c = geom(n);
    float *dx = n->src[0]->grad, *dw = n->src[1]->grad;
    float *db = n->n_src == 3 ? n->src[2]->grad : NULL;
    if (dx == NULL && dw == NULL && db == NULL) {
        return;
    }
    float *scratch = nas_graph_scratch(g, nas_conv_relu_pool_scratch_bytes(&c, 1));
    NAS_ASSERT(scratch != NULL); /* the forward reserved this size */
    nas_conv_relu_pool_backward(&c, n->src[0]->data, n->src[1]->data, n->data, n->aux, n->grad,
                                dx, dw, db, scratch);
}

static int64_t fused_macs(const nas_node *n) {
    const nas_conv_geom c = geom(n);
    return c.N * c.O * c.OH * c.OW * c.C * c.KH * c.KW;
}

const nas_op_desc nas_op_conv2d_relu_maxpool = {.name = "conv2d_relu_maxpool",
                                                .forward = fused_forward,
                                                .backward = fused_backward,
                                                .macs = fused_macs};
