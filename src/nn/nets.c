/* nets.c - the standard networks: NAS-Bench-201's TinyNetwork for one cell, the Fashion-MNIST
 * sanity CNN and MobileNetV2 for 32x32 inputs, each a nas_model (parameters declared once here,
 * forward recorded into any graph).
 *
 * The layer structure, the order in which parameters are declared and their names follow the
 * PyTorch definitions in ../shared/peers (nb201_defs.py, fmnist_torch.py), so a weight file maps
 * one to one onto that model's state_dict ("0.weight", "2.ops.3.1.weight", ...; PyTorch's
 * num_batches_tracked is the only entry we do not have).
 *
 * Initialisation, per network:
 *   nb201       PyTorch defaults, as the reference code (no explicit init): convs and the linear
 *               U(-1/sqrt(fan_in), +), BN weight 1 bias 0.
 *   fmnist-cnn  PyTorch defaults with biases U(-1/sqrt(fan_in), +), as fmnist_torch.py.
 *   mbv2        torchvision's MobileNetV2 init: convs Kaiming normal fan_out, BN 1/0, classifier
 *               N(0, 0.01) with zero bias. */
#include "nn_int.h"

#include <stdio.h>

/* A parameter's initialiser, changed after the block declared it (the blocks pick one default). */
static void set_init(nas_params *p, nas_param_id id, nas_init init) {
    NAS_ASSERT(id >= 0 && id < p->n_entries);
    p->entries[id].init = init;
}

static int shape_ok(nas_ctx *ctx, const char *net, nas_model_shape *shape) {
    if (shape->in_c == 0 && shape->in_h == 0 && shape->in_w == 0 && shape->classes == 0) {
        *shape = (nas_model_shape){.in_c = 3, .in_h = 32, .in_w = 32, .classes = 10};
    }
    if (shape->in_c < 1 || shape->in_h < 1 || shape->in_w < 1 || shape->classes < 1) {
        nas_fail(ctx, NAS_ERR_ARG, "%s: bad input shape %dx%dx%d with %d classes", net, shape->in_c,
                 shape->in_h, shape->in_w, shape->classes);
        return 0;
    }
    return 1;
}

/* The input must be [N, in_c, in_h, in_w]: a clear error instead of a conv shape message. */
static int input_ok(nas_graph *g, const char *net, nas_model_shape shape, nas_tensor *x) {
    if (x == NULL || g->status != NAS_OK) {
        if (x == NULL && g->status == NAS_OK) {
            nas_graph_fail(g, NAS_ERR_ARG, "%s: input is NULL", net);
        }
        return 0;
    }
    if (x->ndim != 4 || x->shape[1] != shape.in_c || x->shape[2] != shape.in_h ||
        x->shape[3] != shape.in_w) {
        char a[64];
        nas_graph_fail(g, NAS_ERR_SHAPE, "%s: input %s does not fit the network's [N, %d, %d, %d]",
                       net, nas_shape_str(x, a, sizeof a), shape.in_c, shape.in_h, shape.in_w);
        return 0;
    }
    return 1;
}

/* conv (no bias) followed by BN, declared as "<prefix>.<ci>" and "<prefix>.<ci + 1>" (the ReLU in
 * front of NB201's ReLU-conv-BN is module <prefix>.0 and has no parameters). */
/* "<prefix>.<i>", or "<i>" for a top-level layer of the Sequential (empty prefix). */
static void layer_name(char *buf, size_t size, const char *prefix, int i) {
    if (prefix[0] != '\0') {
        snprintf(buf, size, "%s.%d", prefix, i);
    } else {
        snprintf(buf, size, "%d", i);
    }
}

typedef struct conv_bn {
    nas_conv_block conv;
    nas_bn_block bn;
} conv_bn;

static nas_status conv_bn_init(nas_params *p, const char *prefix, int ci, int64_t cin, int64_t cout,
                               int k, int stride, int groups, nas_init init, conv_bn *out) {
    char name[160];
    layer_name(name, sizeof name, prefix, ci);
    nas_status st = nas_nn_conv_init(p, name, cin, cout, k, stride, -1, 1, groups, 0, &out->conv);
    if (st != NAS_OK) {
        return st;
    }
    set_init(p, out->conv.w, init);
    layer_name(name, sizeof name, prefix, ci + 1);
    return nas_nn_bn_init(p, name, cout, 1, &out->bn);
}

static nas_tensor *conv_bn_forward(nas_graph *g, nas_params *p, const conv_bn *c, nas_tensor *x) {
    return nas_nn_bn_forward(g, p, &c->bn, nas_nn_conv_forward(g, p, &c->conv, x));
}

/* ===================================================================== NAS-Bench-201 */

/* NB201 edge order: (to, from) = (1,0), (2,0), (2,1), (3,0), (3,1), (3,2). */
static const int nb201_to[6] = {1, 2, 2, 3, 3, 3};
static const int nb201_from[6] = {0, 0, 1, 0, 1, 2};

typedef struct nb201_cell {
    conv_bn edge[6]; /* used by the conv edges only */
} nb201_cell;

typedef struct nb201_res { /* ResNet basic block, stride 2, avg-pool + conv1x1 shortcut */
    conv_bn a, b;
    nas_conv_block down;
} nb201_res;

typedef struct nb201_net {
    size_t bytes; /* of this struct with its cells */
    nas_model_shape shape;
    nas_nb201_op ops[6];
    int C, N;
    conv_bn stem;
    nb201_res res[2];
    nas_bn_block last_bn;
    nas_linear_block fc;
    int n_cells;
    nb201_cell cells[]; /* 3 N */
} nb201_net;

static int is_conv(nas_nb201_op op) {
    return op == NAS_NB201_CONV1 || op == NAS_NB201_CONV3;
}

static nas_status nb201_cell_init(nas_params *p, nb201_net *net, int layer, int64_t C,
                                  nb201_cell *cell) {
    char prefix[64];
    for (int e = 0; e < 6; e++) {
        if (is_conv(net->ops[e])) {
            snprintf(prefix, sizeof prefix, "%d.ops.%d", layer, e);
            const int k = net->ops[e] == NAS_NB201_CONV3 ? 3 : 1;
            nas_status st = conv_bn_init(p, prefix, 1, C, C, k, 1, 1, NAS_INIT_TORCH_DEFAULT,
                                         &cell->edge[e]);
            if (st != NAS_OK) {
                return st;
            }
        }
    }
    return NAS_OK;
}

static nas_status nb201_res_init(nas_params *p, int layer, int64_t cin, int64_t cout,
                                 nb201_res *r) {
    char prefix[64];
    snprintf(prefix, sizeof prefix, "%d.a", layer);
    nas_status st = conv_bn_init(p, prefix, 1, cin, cout, 3, 2, 1, NAS_INIT_TORCH_DEFAULT, &r->a);
    if (st == NAS_OK) {
        snprintf(prefix, sizeof prefix, "%d.b", layer);
        st = conv_bn_init(p, prefix, 1, cout, cout, 3, 1, 1, NAS_INIT_TORCH_DEFAULT, &r->b);
    }
    if (st == NAS_OK) {
        snprintf(prefix, sizeof prefix, "%d.down.1", layer);
        st = nas_nn_conv_init(p, prefix, cin, cout, 1, 1, 0, 1, 1, 0, &r->down);
    }
    if (st == NAS_OK) {
        set_init(p, r->down.w, NAS_INIT_TORCH_DEFAULT);
    }
    return st;
}

/* Parameters in PyTorch's order: nn.Sequential(stem conv, stem BN, cells and reduction blocks,
 * last BN, ReLU, pool, flatten, linear); layer indices are the Sequential's. */
static nas_status nb201_declare(nas_params *p, nb201_net *net) {
    const int64_t C = net->C;
    nas_status st = conv_bn_init(p, "", 0, net->shape.in_c, C, 3, 1, 1, NAS_INIT_TORCH_DEFAULT,
                                 &net->stem);
    int layer = 2, cell = 0;
    for (int s = 0; s < 3 && st == NAS_OK; s++) {
        const int64_t c = C << s;
        if (s > 0) {
            st = nb201_res_init(p, layer++, c / 2, c, &net->res[s - 1]);
        }
        for (int i = 0; i < net->N && st == NAS_OK; i++) {
            st = nb201_cell_init(p, net, layer++, c, &net->cells[cell++]);
        }
    }
    if (st == NAS_OK) {
        char name[32];
        snprintf(name, sizeof name, "%d", layer);
        st = nas_nn_bn_init(p, name, 4 * C, 1, &net->last_bn);
        snprintf(name, sizeof name, "%d", layer + 4);
        if (st == NAS_OK) {
            st = nas_nn_linear_init(p, name, 4 * C, net->shape.classes, &net->fc);
        }
    }
    return st;
}

/* One cell. A node is NULL while it is known to be all zeros: 'none' edges and skip/pool edges
 * out of a zero node add nothing (adding zeros is exact), so they record no op at all. A conv
 * edge out of a zero node is still computed (BN of zeros gives its bias), on a zero tensor.
 * Conv edges leaving the same node share one ReLU (same values; gradients add up the same). */
static nas_tensor *nb201_cell_forward(nas_graph *g, nas_params *p, const nb201_net *net,
                                      const nb201_cell *cell, nas_tensor *x) {
    nas_tensor *node[4] = {x, NULL, NULL, NULL}, *relu[4] = {NULL, NULL, NULL, NULL};
    nas_tensor *zeros = NULL;
    for (int to = 1; to <= 3; to++) {
        nas_tensor *terms[3];
        int n_terms = 0;
        for (int e = 0; e < 6; e++) {
            if (nb201_to[e] != to) {
                continue;
            }
            nas_tensor *src = node[nb201_from[e]];
            const nas_nb201_op op = net->ops[e];
            if (op == NAS_NB201_NONE || (src == NULL && !is_conv(op))) {
                continue;
            }
            if (op == NAS_NB201_SKIP) {
                terms[n_terms++] = src;
            } else if (op == NAS_NB201_POOL3) {
                terms[n_terms++] = nas_avg_pool(g, src, 3, 1, 1, 0);
            } else {
                nas_tensor *in;
                if (src == NULL) {
                    zeros = zeros != NULL ? zeros : nas_zero(g, x, 1);
                    in = zeros; /* relu(0) = 0 */
                } else {
                    const int j = nb201_from[e];
                    relu[j] = relu[j] != NULL ? relu[j] : nas_relu(g, src);
                    in = relu[j];
                }
                terms[n_terms++] = conv_bn_forward(g, p, &cell->edge[e], in);
            }
        }
        node[to] = n_terms == 0 ? NULL : n_terms == 1 ? terms[0] : nas_sum(g, n_terms, terms);
    }
    return node[3] != NULL ? node[3] : nas_zero(g, x, 1);
}

static nas_tensor *nb201_res_forward(nas_graph *g, nas_params *p, const nb201_res *r,
                                     nas_tensor *x) {
    nas_tensor *a = conv_bn_forward(g, p, &r->a, nas_relu(g, x));
    nas_tensor *b = conv_bn_forward(g, p, &r->b, nas_relu(g, a));
    nas_tensor *down = nas_nn_conv_forward(g, p, &r->down, nas_avg_pool(g, x, 2, 2, 0, 1));
    return nas_add(g, down, b);
}

static nas_tensor *nb201_forward(void *impl, nas_graph *g, nas_params *p, nas_tensor *x) {
    const nb201_net *net = impl;
    if (!input_ok(g, "nb201", net->shape, x)) {
        return NULL;
    }
    x = conv_bn_forward(g, p, &net->stem, x);
    int cell = 0;
    for (int s = 0; s < 3; s++) {
        if (s > 0) {
            x = nb201_res_forward(g, p, &net->res[s - 1], x);
        }
        for (int i = 0; i < net->N; i++) {
            x = nb201_cell_forward(g, p, net, &net->cells[cell++], x);
        }
    }
    x = nas_relu(g, nas_nn_bn_forward(g, p, &net->last_bn, x));
    return nas_nn_linear_forward(g, p, &net->fc, nas_global_avg_pool(g, x));
}

static void nb201_free(nas_ctx *ctx, void *impl) {
    if (impl != NULL) {
        nas_free(ctx, impl, ((nb201_net *)impl)->bytes);
    }
}

static const nas_model_vt nb201_vt = {.kind = "nb201", .forward = nb201_forward, .free = nb201_free};

nas_status nas_net_nb201(nas_ctx *ctx, const nas_nb201_op ops[6], int C, int N,
                         nas_model_shape shape, nas_model **out) {
    NAS_CHECK_ARG(ctx, out != NULL);
    *out = NULL;
    NAS_CHECK_ARG(ctx, ops != NULL);
    for (int e = 0; e < 6; e++) {
        if ((int)ops[e] < (int)NAS_NB201_NONE || (int)ops[e] > (int)NAS_NB201_POOL3) {
            return nas_fail(ctx, NAS_ERR_ARG, "nb201: edge %d has unknown op %d (0..4 allowed)", e,
                            (int)ops[e]);
        }
    }
    if (C < 1 || C > (1 << 20) || N < 0 || N > 1000) {
        return nas_fail(ctx, NAS_ERR_ARG, "nb201: C = %d and N = %d (want C >= 1, 0 <= N <= 1000)",
                        C, N);
    }
    if (!shape_ok(ctx, "nb201", &shape)) {
        return NAS_ERR_ARG;
    }
    const size_t bytes = sizeof(nb201_net) + (size_t)(3 * N) * sizeof(nb201_cell);
    nb201_net *net = nas_calloc(ctx, 1, bytes);
    nas_params *p = nas_params_new(ctx);
    if (net == NULL || p == NULL) {
        nas_free(ctx, net, net != NULL ? bytes : 0);
        nas_params_free(p);
        return NAS_ERR_NOMEM;
    }
    net->bytes = bytes;
    net->shape = shape;
    memcpy(net->ops, ops, sizeof(net->ops));
    net->C = C;
    net->N = N;
    net->n_cells = 3 * N;
    nas_status st = nb201_declare(p, net);
    if (st != NAS_OK) {
        nb201_free(ctx, net);
        nas_params_free(p);
        return st;
    }
    nas_params_init(p, 0);
    return nas_model_new(ctx, &nb201_vt, net, p, shape, out);
}

/* ===================================================================== Fashion-MNIST CNN */

typedef struct fmnist_net {
    nas_model_shape shape;
    nas_conv_block conv1, conv2;
    nas_linear_block fc;
    int64_t features; /* 32 * (H / 4) * (W / 4) */
} fmnist_net;

/* conv 3x3 pad 1 + ReLU + max pool 2 as the one fused op (same values and gradients as the three
 * ops; per image in cache, no full-size activations: see src/ops/conv_fused.c). */
static nas_tensor *fmnist_block(nas_graph *g, nas_params *p, const nas_conv_block *c,
                                nas_tensor *x) {
    return nas_conv2d_relu_maxpool(g, x, nas_param(g, p, c->w), nas_param(g, p, c->b),
                                   c->args.pad_h, c->args.pad_w);
}

static nas_tensor *fmnist_forward(void *impl, nas_graph *g, nas_params *p, nas_tensor *x) {
    const fmnist_net *net = impl;
    if (!input_ok(g, "fmnist-cnn", net->shape, x)) {
        return NULL;
    }
    const int64_t batch = x->shape[0];
    x = fmnist_block(g, p, &net->conv1, x);
    x = fmnist_block(g, p, &net->conv2, x);
    const int64_t flat[2] = {batch, net->features};
    return nas_nn_linear_forward(g, p, &net->fc, nas_reshape(g, x, 2, flat));
}

static void fmnist_free(nas_ctx *ctx, void *impl) {
    nas_free(ctx, impl, impl != NULL ? sizeof(fmnist_net) : 0);
}

static const nas_model_vt fmnist_vt = {
    .kind = "fmnist-cnn", .forward = fmnist_forward, .free = fmnist_free};

/* nn.Sequential(conv 0, ReLU 1, pool 2, conv 3, ReLU 4, pool 5, flatten 6, linear 7). */
static nas_status fmnist_declare(nas_params *p, fmnist_net *net) {
    nas_status st = nas_nn_conv_init(p, "0", net->shape.in_c, 16, 3, 1, 1, 1, 1, 1, &net->conv1);
    if (st == NAS_OK) {
        st = nas_nn_conv_init(p, "3", 16, 32, 3, 1, 1, 1, 1, 1, &net->conv2);
    }
    if (st == NAS_OK) {
        st = nas_nn_linear_init(p, "7", net->features, net->shape.classes, &net->fc);
    }
    if (st == NAS_OK) {
        const nas_conv_block *convs[2] = {&net->conv1, &net->conv2};
        for (int i = 0; i < 2; i++) {
            set_init(p, convs[i]->w, NAS_INIT_TORCH_DEFAULT);
            set_init(p, convs[i]->b, NAS_INIT_TORCH_BIAS); /* fan_in hint set by the block */
        }
    }
    return st;
}

nas_status nas_net_fmnist_cnn(nas_ctx *ctx, nas_model_shape shape, nas_model **out) {
    NAS_CHECK_ARG(ctx, out != NULL);
    *out = NULL;
    if (shape.in_c == 0 && shape.in_h == 0 && shape.in_w == 0 && shape.classes == 0) {
        shape = (nas_model_shape){.in_c = 1, .in_h = 28, .in_w = 28, .classes = 10};
    }
    if (!shape_ok(ctx, "fmnist-cnn", &shape)) {
        return NAS_ERR_ARG;
    }
    if (shape.in_h < 4 || shape.in_w < 4) {
        return nas_fail(ctx, NAS_ERR_ARG, "fmnist-cnn: input %dx%d is smaller than 4x4 (two 2x2 pools)",
                        shape.in_h, shape.in_w);
    }
    fmnist_net *net = nas_calloc(ctx, 1, sizeof(fmnist_net));
    nas_params *p = nas_params_new(ctx);
    if (net == NULL || p == NULL) {
        fmnist_free(ctx, net);
        nas_params_free(p);
        return NAS_ERR_NOMEM;
    }
    net->shape = shape;
    net->features = 32 * (int64_t)(shape.in_h / 4) * (shape.in_w / 4);
    nas_status st = fmnist_declare(p, net);
    if (st != NAS_OK) {
        fmnist_free(ctx, net);
        nas_params_free(p);
        return st;
    }
    nas_params_init(p, 0);
    return nas_model_new(ctx, &fmnist_vt, net, p, shape, out);
}

/* ===================================================================== MobileNetV2 */

/* (expand t, channels c, repeats n, stride s): the ImageNet table with the stem and stage 2 at
 * stride 1 for 32x32 inputs (spatial 32-32-32-16-8-8-4-4), as peers/nb201_defs.py. */
static const int mbv2_cfg[7][4] = {{1, 16, 1, 1}, {6, 24, 2, 1}, {6, 32, 3, 2}, {6, 64, 4, 2},
                                   {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1}};
#define MBV2_MAX_BLOCKS 17

typedef struct mbv2_block {
    int expand;   /* t != 1: a 1x1 expansion conv first */
    int residual; /* stride 1 and cin == cout */
    conv_bn pw1, dw, pw2;
} mbv2_block;

typedef struct mbv2_net {
    nas_model_shape shape;
    conv_bn stem;
    int n_blocks;
    mbv2_block blocks[MBV2_MAX_BLOCKS];
    conv_bn head;
    nas_linear_block fc;
} mbv2_net;

/* Round channels to a multiple of 8, not below 90% of v (torchvision's _make_divisible). */
static int64_t mbv2_div(double v) {
    const int64_t d = 8;
    int64_t n = (int64_t)(v + 4.0) / d * d;
    n = n > d ? n : d;
    return (double)n < 0.9 * v ? n + d : n;
}

static nas_status mbv2_block_init(nas_params *p, int layer, int64_t cin, int64_t cout, int stride,
                                  int t, mbv2_block *b) {
    char prefix[32];
    snprintf(prefix, sizeof prefix, "%d.conv", layer);
    const int64_t hid = cin * t;
    const nas_init ki = NAS_INIT_KAIMING_NORMAL_FAN_OUT;
    int ci = 0;
    nas_status st = NAS_OK;
    b->expand = t != 1;
    b->residual = stride == 1 && cin == cout;
    if (b->expand) {
        st = conv_bn_init(p, prefix, ci, cin, hid, 1, 1, 1, ki, &b->pw1);
        ci += 3;
    }
    if (st == NAS_OK) {
        st = conv_bn_init(p, prefix, ci, hid, hid, 3, stride, (int)hid, ki, &b->dw);
        ci += 3;
    }
    if (st == NAS_OK) {
        st = conv_bn_init(p, prefix, ci, hid, cout, 1, 1, 1, ki, &b->pw2);
    }
    return st;
}

/* nn.Sequential(stem conv 0, BN 1, ReLU6 2, blocks 3.., head conv, BN, ReLU6, pool, flatten,
 * linear). */
static nas_status mbv2_declare(nas_params *p, double width, mbv2_net *net) {
    int64_t cin = mbv2_div(32.0 * width);
    const int64_t last = mbv2_div(1280.0 * (width > 1.0 ? width : 1.0));
    nas_status st = conv_bn_init(p, "", 0, net->shape.in_c, cin, 3, 1, 1,
                                 NAS_INIT_KAIMING_NORMAL_FAN_OUT, &net->stem);
    int layer = 3;
    for (int s = 0; s < 7 && st == NAS_OK; s++) {
        const int64_t cout = mbv2_div(mbv2_cfg[s][1] * width);
        for (int i = 0; i < mbv2_cfg[s][2] && st == NAS_OK; i++) {
            st = mbv2_block_init(p, layer, cin, cout, i == 0 ? mbv2_cfg[s][3] : 1, mbv2_cfg[s][0],
                                 &net->blocks[net->n_blocks++]);
            layer++;
            cin = cout;
        }
    }
    if (st == NAS_OK) {
        char prefix[16];
        st = conv_bn_init(p, "", layer, cin, last, 1, 1, 1, NAS_INIT_KAIMING_NORMAL_FAN_OUT,
                          &net->head);
        snprintf(prefix, sizeof prefix, "%d", layer + 5);
        if (st == NAS_OK) {
            st = nas_nn_linear_init(p, prefix, last, net->shape.classes, &net->fc);
        }
    }
    if (st == NAS_OK) {
        set_init(p, net->fc.w, NAS_INIT_NORMAL_001);
        set_init(p, net->fc.b, NAS_INIT_ZEROS);
    }
    return st;
}

static nas_tensor *mbv2_block_forward(nas_graph *g, nas_params *p, const mbv2_block *b,
                                      nas_tensor *x) {
    nas_tensor *h = x;
    if (b->expand) {
        h = nas_relu6(g, conv_bn_forward(g, p, &b->pw1, h));
    }
    h = nas_relu6(g, conv_bn_forward(g, p, &b->dw, h));
    h = conv_bn_forward(g, p, &b->pw2, h);
    return b->residual ? nas_add(g, x, h) : h;
}

static nas_tensor *mbv2_forward(void *impl, nas_graph *g, nas_params *p, nas_tensor *x) {
    const mbv2_net *net = impl;
    if (!input_ok(g, "mobilenet-v2", net->shape, x)) {
        return NULL;
    }
    x = nas_relu6(g, conv_bn_forward(g, p, &net->stem, x));
    for (int i = 0; i < net->n_blocks; i++) {
        x = mbv2_block_forward(g, p, &net->blocks[i], x);
    }
    x = nas_relu6(g, conv_bn_forward(g, p, &net->head, x));
    return nas_nn_linear_forward(g, p, &net->fc, nas_global_avg_pool(g, x));
}

static void mbv2_free(nas_ctx *ctx, void *impl) {
    nas_free(ctx, impl, impl != NULL ? sizeof(mbv2_net) : 0);
}

static const nas_model_vt mbv2_vt = {.kind = "mobilenet-v2", .forward = mbv2_forward, .free = mbv2_free};

nas_status nas_net_mobilenet_v2(nas_ctx *ctx, double width, nas_model_shape shape,
                                nas_model **out) {
    NAS_CHECK_ARG(ctx, out != NULL);
    *out = NULL;
    if (!(width >= 0.05 && width <= 8.0)) {
        return nas_fail(ctx, NAS_ERR_ARG, "mobilenet-v2: width multiplier %g (want 0.05..8)", width);
    }
    if (!shape_ok(ctx, "mobilenet-v2", &shape)) {
        return NAS_ERR_ARG;
    }
    mbv2_net *net = nas_calloc(ctx, 1, sizeof(mbv2_net));
    nas_params *p = nas_params_new(ctx);
    if (net == NULL || p == NULL) {
        mbv2_free(ctx, net);
        nas_params_free(p);
        return NAS_ERR_NOMEM;
    }
    net->shape = shape;
    nas_status st = mbv2_declare(p, width, net);
    if (st != NAS_OK) {
        mbv2_free(ctx, net);
        nas_params_free(p);
        return st;
    }
    nas_params_init(p, 0);
    return nas_model_new(ctx, &mbv2_vt, net, p, shape, out);
}
