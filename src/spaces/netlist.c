/* netlist.c - networks as data: the darts, mbnet, nasrl and JSON spaces describe their network
 * as a list of nodes (conv, BN, activation, pools, sums, concats, ...) with parameters declared
 * at construction; one generic forward pass records the list into a graph. Shapes are tracked
 * while building, so a bad template fails at build time with the node that does not fit. */
#include "spaces_int.h"

#include <math.h>
#include <stdio.h>

typedef struct snet_impl {
    nas_snode *nodes;
    int n, cap;
    nas_tensor **t; /* per-node outputs during one forward (reused) */
    int aux_out;    /* node of the auxiliary logits, -1 when none */
    nas_tensor *aux; /* the auxiliary logits the latest forward recorded (into aux_graph) */
    const nas_graph *aux_graph;
} snet_impl;

nas_status nas_snet_init(nas_snet *net, nas_ctx *ctx, const char *kind) {
    memset(net, 0, sizeof(*net));
    net->ctx = ctx;
    net->kind = kind;
    net->params = nas_params_new(ctx);
    net->status = net->params != NULL ? NAS_OK : NAS_ERR_NOMEM;
    net->aux_out = -1;
    return net->status;
}

void nas_snet_init_count(nas_snet *net, nas_ctx *ctx) {
    memset(net, 0, sizeof(*net));
    net->ctx = ctx;
    net->kind = "count";
    net->count_only = 1;
    net->aux_out = -1;
}

void nas_snet_deinit(nas_snet *net) {
    nas_params_free(net->params);
    nas_free(net->ctx, net->nodes, (size_t)net->cap * sizeof(nas_snode));
    memset(net, 0, sizeof(*net));
}

static int fail(nas_snet *net, nas_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(nas_snet *net, nas_status st, const char *fmt, ...) {
    if (net->status == NAS_OK) {
        va_list ap;
        va_start(ap, fmt);
        net->status = nas_vfail(net->ctx, st, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* Append a node of `kind` on inputs xs (all valid); returns its index or -1. */
static int append(nas_snet *net, nas_snode_kind kind, int n_in, const int *xs) {
    if (net->status != NAS_OK) {
        return -1;
    }
    if (n_in > NAS_SN_MAX_IN) {
        return fail(net, NAS_ERR_UNSUPPORTED, "network node with %d inputs (at most %d)", n_in,
                    NAS_SN_MAX_IN);
    }
    for (int i = 0; i < n_in; i++) {
        if (xs[i] < 0 || xs[i] >= net->n) {
            return fail(net, NAS_ERR_ARG, "network node input %d is not a node", xs[i]);
        }
        if (net->nodes[xs[i]].aux && !net->in_aux) {
            return fail(net, NAS_ERR_ARG, "network node reads node %d of the auxiliary branch",
                        xs[i]);
        }
    }
    if (net->n >= 1000000) {
        return fail(net, NAS_ERR_UNSUPPORTED, "network of more than 1,000,000 nodes");
    }
    if (net->n == net->cap) {
        const int cap = net->cap ? 2 * net->cap : 64;
        nas_snode *nodes = nas_realloc(net->ctx, net->nodes, (size_t)net->cap * sizeof(nas_snode),
                                       (size_t)cap * sizeof(nas_snode));
        if (nodes == NULL) {
            return fail(net, NAS_ERR_NOMEM, "out of memory building a network");
        }
        net->nodes = nodes;
        net->cap = cap;
    }
    nas_snode *n = &net->nodes[net->n];
    memset(n, 0, sizeof(*n));
    n->kind = kind;
    n->aux = net->in_aux;
    n->n_in = n_in;
    for (int i = 0; i < n_in; i++) {
        n->in[i] = xs[i];
    }
    if (n_in > 0) {
        const nas_snode *a = &net->nodes[xs[0]];
        n->c = a->c;
        n->h = a->h;
        n->w = a->w;
        n->flat = a->flat;
    }
    return net->n++;
}

/* *acc += a * b * c + d without overflow (all non-negative); 0 if it would overflow. */
static int count_add(int64_t *acc, int64_t a, int64_t b, int64_t c, int64_t d) {
    int64_t t;
    if (__builtin_mul_overflow(a, b, &t) || __builtin_mul_overflow(t, c, &t) ||
        __builtin_add_overflow(t, d, &t) || __builtin_add_overflow(*acc, t, &t)) {
        return 0;
    }
    *acc = t;
    return 1;
}

static int check_st(nas_snet *net, nas_status st) {
    if (st != NAS_OK && net->status == NAS_OK) {
        net->status = st;
    }
    return st == NAS_OK;
}

int nas_snet_input(nas_snet *net, int c, int h, int w) {
    const int i = append(net, NAS_SN_INPUT, 0, NULL);
    if (i >= 0) {
        net->nodes[i].c = c;
        net->nodes[i].h = h;
        net->nodes[i].w = w;
    }
    return i;
}

static int conv_out(int in, int k, int stride, int pad, int dilation) {
    return (in + 2 * pad - dilation * (k - 1) - 1) / stride + 1;
}

int nas_snet_conv(nas_snet *net, int x, int cout, int k, int stride, int pad, int dilation,
                  int groups, int bias, const char *name) {
    const int i = append(net, NAS_SN_CONV, 1, &x);
    if (i < 0) {
        return -1;
    }
    nas_snode *n = &net->nodes[i];
    if (n->flat) {
        return fail(net, NAS_ERR_SHAPE, "%s: convolution of a flat (pooled) tensor", name);
    }
    if (dilation <= 0) {
        dilation = 1;
    }
    if (k < 1 || stride < 1 || groups < 1 || cout < 1) {
        return fail(net, NAS_ERR_SHAPE, "%s: conv with kernel %d, stride %d, groups %d, %d outputs",
                    name, k, stride, groups, cout);
    }
    if (pad < 0) {
        pad = dilation * (k - 1) / 2;
    }
    const int h = conv_out(n->h, k, stride, pad, dilation), w = conv_out(n->w, k, stride, pad,
                                                                         dilation);
    if (h < 1 || w < 1 || cout < 1 || k < 1 || stride < 1) {
        return fail(net, NAS_ERR_SHAPE, "%s: %dx%d conv stride %d on %dx%d input gives %dx%d",
                    name, k, k, stride, n->h, n->w, h, w);
    }
    if (groups < 1 || n->c % groups != 0 || cout % groups != 0) {
        return fail(net, NAS_ERR_SHAPE, "%s: %d -> %d channels do not split into %d groups", name,
                    n->c, cout, groups);
    }
    n->k = k;
    n->stride = stride;
    n->groups = groups;
    if (net->count_only) {
        const int64_t taps = (int64_t)(n->c / groups) * k * k;
        if (!count_add(&net->n_params, cout, taps, 1, bias ? cout : 0) ||
            !count_add(&net->macs, cout, taps, (int64_t)h * w, 0)) {
            return fail(net, NAS_ERR_UNSUPPORTED, "%s: network too large to count", name);
        }
    } else if (!check_st(net, nas_nn_conv_init(net->params, name, n->c, cout, k, stride, pad,
                                               dilation, groups, bias, &n->conv))) {
        return -1;
    }
    n->c = cout;
    n->h = h;
    n->w = w;
    return i;
}

int nas_snet_conv_rect(nas_snet *net, int x, int cout, int kh, int kw, int stride,
                       const char *name) {
    const int i = append(net, NAS_SN_CONV, 1, &x);
    if (i < 0) {
        return -1;
    }
    nas_snode *n = &net->nodes[i];
    if (kh < 1 || kw < 1 || stride < 1) {
        return fail(net, NAS_ERR_SHAPE, "%s: %dx%d conv stride %d", name, kh, kw, stride);
    }
    const int ph = (kh - 1) / 2, pw = (kw - 1) / 2;
    n->k = kh > kw ? kh : kw;
    n->stride = stride;
    n->groups = 1;
    const int h = conv_out(n->h, kh, stride, ph, 1), w = conv_out(n->w, kw, stride, pw, 1);
    if (n->flat || h < 1 || w < 1 || cout < 1 || stride < 1) {
        return fail(net, NAS_ERR_SHAPE, "%s: %dx%d conv stride %d does not fit a %dx%d input", name,
                    kh, kw, stride, n->h, n->w);
    }
    char buf[256];
    const int64_t shape[4] = {cout, n->c, kh, kw};
    if (net->count_only) {
        const int64_t taps = (int64_t)n->c * kh * kw;
        if (!count_add(&net->n_params, cout, taps, 1, 0) ||
            !count_add(&net->macs, cout, taps, (int64_t)h * w, 0)) {
            return fail(net, NAS_ERR_UNSUPPORTED, "%s: network too large to count", name);
        }
    } else if (!check_st(net, nas_params_add(net->params, nas_nn_name(buf, sizeof buf, name, "weight"), 4,
                                      shape, NAS_INIT_KAIMING_NORMAL_FAN_OUT, NAS_PARAM_TRAINABLE,
                                      0, &n->conv.w))) {
        return -1;
    }
    n->conv.b = -1;
    n->conv.args.stride_h = n->conv.args.stride_w = stride;
    n->conv.args.pad_h = ph;
    n->conv.args.pad_w = pw;
    n->conv.args.dilation_h = n->conv.args.dilation_w = 1;
    n->conv.args.groups = 1;
    n->c = cout;
    n->h = h;
    n->w = w;
    return i;
}

int nas_snet_bn(nas_snet *net, int x, int affine, const char *name) {
    const int i = append(net, NAS_SN_BN, 1, &x);
    if (i >= 0 && net->count_only) {
        net->n_params += affine ? 2 * (int64_t)net->nodes[i].c : 0;
    } else if (i >= 0 && !check_st(net, nas_nn_bn_init(net->params, name, net->nodes[i].c, affine,
                                                &net->nodes[i].bn))) {
        return -1;
    }
    return i;
}

int nas_snet_act(nas_snet *net, int x, nas_act act) {
    if (act == NAS_ACT_NONE) {
        return net->status == NAS_OK ? x : -1;
    }
    const int i = append(net, NAS_SN_ACT, 1, &x);
    if (i >= 0) {
        net->nodes[i].act = act;
    }
    return i;
}

static int pool(nas_snet *net, nas_snode_kind kind, int x, int k, int stride, int pad,
                int count_pad) {
    const int i = append(net, kind, 1, &x);
    if (i < 0) {
        return -1;
    }
    nas_snode *n = &net->nodes[i];
    if (k < 1 || stride < 1 || pad < 0 || 2 * pad > k) {
        return fail(net, NAS_ERR_SHAPE, "pool with kernel %d, stride %d, padding %d", k, stride,
                    pad);
    }
    n->k = k;
    n->stride = stride;
    n->pad = pad;
    n->count_pad = count_pad;
    n->h = conv_out(n->h, k, stride, pad, 1);
    n->w = conv_out(n->w, k, stride, pad, 1);
    if (n->h < 1 || n->w < 1 || n->flat) {
        return fail(net, NAS_ERR_SHAPE, "%dx%d pool stride %d does not fit its input", k, k,
                    stride);
    }
    return i;
}

int nas_snet_max_pool(nas_snet *net, int x, int k, int stride, int pad) {
    return pool(net, NAS_SN_MAX_POOL, x, k, stride, pad, 0);
}

int nas_snet_avg_pool(nas_snet *net, int x, int k, int stride, int pad, int count_pad) {
    return pool(net, NAS_SN_AVG_POOL, x, k, stride, pad, count_pad);
}

int nas_snet_gap(nas_snet *net, int x) {
    const int i = append(net, NAS_SN_GAP, 1, &x);
    if (i >= 0) {
        net->nodes[i].h = net->nodes[i].w = 1;
    }
    return i;
}

int nas_snet_flatten(nas_snet *net, int x) {
    const int i = append(net, NAS_SN_FLATTEN, 1, &x);
    if (i >= 0) {
        nas_snode *n = &net->nodes[i];
        n->c = n->c * n->h * n->w;
        n->h = n->w = 1;
        n->flat = 1;
    }
    return i;
}

static int same_shapes(nas_snet *net, int n, const int *xs, int check_c, const char *what) {
    const nas_snode *a = &net->nodes[xs[0]];
    for (int j = 1; j < n; j++) {
        const nas_snode *b = &net->nodes[xs[j]];
        if ((check_c && b->c != a->c) || b->h != a->h || b->w != a->w || b->flat != a->flat) {
            fail(net, NAS_ERR_SHAPE, "%s of [%d, %d, %d] and [%d, %d, %d]", what, a->c, a->h,
                 a->w, b->c, b->h, b->w);
            return 0;
        }
    }
    return 1;
}

int nas_snet_sum(nas_snet *net, int n, const int *xs) {
    if (n == 1) {
        return net->status == NAS_OK ? xs[0] : -1;
    }
    const int i = append(net, NAS_SN_SUM, n, xs);
    if (i >= 0 && n < 1) {
        return fail(net, NAS_ERR_ARG, "sum of no inputs");
    }
    return i >= 0 && same_shapes(net, n, xs, 1, "sum") ? i : -1;
}

int nas_snet_add(nas_snet *net, int a, int b) {
    const int xs[2] = {a, b};
    return nas_snet_sum(net, 2, xs);
}

int nas_snet_concat(nas_snet *net, int n, const int *xs) {
    if (n == 1) {
        return net->status == NAS_OK ? xs[0] : -1;
    }
    const int i = append(net, NAS_SN_CONCAT, n, xs);
    if (i < 0 || n < 1 || !same_shapes(net, n, xs, 0, "concat")) {
        return fail(net, NAS_ERR_SHAPE, "bad concat");
    }
    int c = 0;
    for (int j = 0; j < n; j++) {
        c += net->nodes[xs[j]].c;
    }
    net->nodes[i].c = c;
    return i;
}

int nas_snet_mul(nas_snet *net, int x, int gate) {
    const int xs[2] = {x, gate};
    const int i = append(net, NAS_SN_MUL, 2, xs);
    if (i >= 0 && (net->nodes[gate].c != net->nodes[x].c || net->nodes[gate].h != 1)) {
        return fail(net, NAS_ERR_SHAPE, "gate of %d channels for %d", net->nodes[gate].c,
                    net->nodes[x].c);
    }
    return i;
}

int nas_snet_zero(nas_snet *net, int x, int stride, int cout) {
    const int i = append(net, NAS_SN_ZERO, 1, &x);
    if (i < 0) {
        return -1;
    }
    nas_snode *n = &net->nodes[i];
    if (stride < 1) {
        return fail(net, NAS_ERR_SHAPE, "zero op with stride %d", stride);
    }
    n->stride = stride;
    n->h = (n->h + stride - 1) / stride;
    n->w = (n->w + stride - 1) / stride;
    if (cout != n->c) {
        return fail(net, NAS_ERR_SHAPE, "zero op from %d to %d channels", n->c, cout);
    }
    return i;
}

int nas_snet_shuffle(nas_snet *net, int x, int groups) {
    const int i = append(net, NAS_SN_SHUFFLE, 1, &x);
    if (i >= 0) {
        net->nodes[i].groups = groups;
        if (groups < 1 || net->nodes[i].c % groups != 0) {
            return fail(net, NAS_ERR_SHAPE, "channel shuffle of %d channels in %d groups",
                        net->nodes[i].c, groups);
        }
    }
    return i;
}

int nas_snet_pad_channels(nas_snet *net, int x, int cout) {
    if (net->status == NAS_OK && x >= 0 && net->nodes[x].c == cout) {
        return x;
    }
    const int i = append(net, NAS_SN_PAD_CHANNELS, 1, &x);
    if (i >= 0) {
        if (cout < net->nodes[i].c) {
            return fail(net, NAS_ERR_SHAPE, "pad %d channels to %d", net->nodes[i].c, cout);
        }
        net->nodes[i].c = cout;
    }
    return i;
}

int nas_snet_dropout(nas_snet *net, int x, float p) {
    if (p <= 0.0f) {
        return net->status == NAS_OK ? x : -1;
    }
    const int i = append(net, NAS_SN_DROPOUT, 1, &x);
    if (i >= 0) {
        net->nodes[i].p = p;
    }
    return i;
}

int nas_snet_linear(nas_snet *net, int x, int out, const char *name) {
    if (net->status == NAS_OK && x >= 0 && !net->nodes[x].flat) {
        x = nas_snet_flatten(net, x);
    }
    const int i = append(net, NAS_SN_LINEAR, 1, &x);
    if (i >= 0 && net->count_only) {
        if (!count_add(&net->n_params, net->nodes[i].c, out, 1, out) ||
            !count_add(&net->macs, net->nodes[i].c, out, 1, 0)) {
            return fail(net, NAS_ERR_UNSUPPORTED, "%s: network too large to count", name);
        }
    } else if (i >= 0 && !check_st(net, nas_nn_linear_init(net->params, name, net->nodes[i].c, out,
                                                    &net->nodes[i].lin))) {
        return -1;
    }
    if (i >= 0) {
        net->nodes[i].c = out;
    }
    return i;
}

int nas_snet_conv_bn(nas_snet *net, int x, int cout, int k, int stride, int groups, nas_act act,
                     const char *name) {
    char buf[200];
    x = nas_snet_conv(net, x, cout, k, stride, -1, 1, groups, 0, nas_nn_name(buf, sizeof buf, name,
                                                                             "conv"));
    x = nas_snet_bn(net, x, 1, nas_nn_name(buf, sizeof buf, name, "bn"));
    return nas_snet_act(net, x, act);
}

int nas_snet_se(nas_snet *net, int x, int mid, nas_act gate, const char *name) {
    char buf[200];
    if (net->status != NAS_OK) {
        return -1;
    }
    const int c = net->nodes[x].c;
    int y = nas_snet_gap(net, x);
    y = nas_snet_conv(net, y, mid, 1, 1, 0, 1, 1, 1, nas_nn_name(buf, sizeof buf, name, "reduce"));
    y = nas_snet_act(net, y, NAS_ACT_RELU);
    y = nas_snet_conv(net, y, c, 1, 1, 0, 1, 1, 1, nas_nn_name(buf, sizeof buf, name, "expand"));
    y = nas_snet_act(net, y, gate);
    return nas_snet_mul(net, x, y);
}

/* One C -> C projection with bias, initialised as torch.nn.MultiheadAttention's (weights
 * U(-1/sqrt(C), 1/sqrt(C)), biases zero). */
static int attention_proj(nas_snet *net, int C, const char *name, const char *which,
                          nas_linear_block *blk) {
    char buf[256], full[200];
    const int64_t w[2] = {C, C}, b = C;
    nas_nn_name(full, sizeof full, name, which);
    nas_status st = nas_params_add(net->params, nas_nn_name(buf, sizeof buf, full, "weight"), 2, w,
                                   NAS_INIT_TORCH_DEFAULT, NAS_PARAM_TRAINABLE, 0, &blk->w);
    if (st == NAS_OK) {
        st = nas_params_add(net->params, nas_nn_name(buf, sizeof buf, full, "bias"), 1, &b,
                            NAS_INIT_ZEROS, NAS_PARAM_TRAINABLE, 0, &blk->b);
    }
    return check_st(net, st);
}

int nas_snet_attention(nas_snet *net, int x, int heads, const char *name) {
    const int i = append(net, NAS_SN_ATTENTION, 1, &x);
    if (i < 0) {
        return -1;
    }
    nas_snode *n = &net->nodes[i];
    const int C = n->c;
    if (n->flat || heads < 1 || C % heads != 0) {
        return fail(net, NAS_ERR_SHAPE, "%s: attention with %d heads on [%d, %d, %d]%s (heads "
                    "must divide the channels)", name, heads, n->c, n->h, n->w,
                    n->flat ? " flattened" : "");
    }
    n->heads = heads;
    const int64_t L = (int64_t)n->h * n->w;
    if (net->count_only) {
        if (!count_add(&net->n_params, 4, C, C, 4 * (int64_t)C) ||
            !count_add(&net->macs, 4 * L, C, C, 0) || !count_add(&net->macs, 2 * L, L, C, 0)) {
            return fail(net, NAS_ERR_UNSUPPORTED, "%s: network too large to count", name);
        }
        return i;
    }
    if (!attention_proj(net, C, name, "q_proj", &n->q) ||
        !attention_proj(net, C, name, "k_proj", &n->kp) ||
        !attention_proj(net, C, name, "v_proj", &n->v) ||
        !attention_proj(net, C, name, "out_proj", &n->lin)) {
        return -1;
    }
    return i;
}

int nas_snet_crop(nas_snet *net, int x, int top, int left, int h, int w) {
    const int i = append(net, NAS_SN_CROP, 1, &x);
    if (i < 0) {
        return -1;
    }
    nas_snode *n = &net->nodes[i];
    if (n->flat || h < 1 || w < 1) {
        return fail(net, NAS_ERR_SHAPE, "crop of %dx%d from [%d, %d, %d]", h, w, n->c, n->h,
                    n->w);
    }
    n->top = top;
    n->left = left;
    n->h = h;
    n->w = w;
    return i;
}

void nas_snet_aux_begin(nas_snet *net) {
    net->in_aux = 1;
    net->macs_before_aux = net->macs;
}

void nas_snet_aux_end(nas_snet *net, int logits) {
    net->in_aux = 0;
    net->macs = net->macs_before_aux;
    if (net->status == NAS_OK && (logits < 0 || !net->nodes[logits].aux ||
                                  !net->nodes[logits].flat)) {
        fail(net, NAS_ERR_ARG, "the auxiliary branch does not end in flat logits");
        return;
    }
    net->aux_out = logits;
}

/* ------------------------------------------------------------------------ the model */

/* Tokens [N * L, C] -> heads [N, heads, L, C / heads] (a projection's output split). */
static nas_tensor *split_heads(nas_graph *g, nas_tensor *t, int64_t N, int64_t L, int heads,
                               int64_t d) {
    static const int perm[4] = {0, 2, 1, 3};
    const int64_t shape[4] = {N, L, heads, d};
    return nas_permute(g, nas_reshape(g, t, 4, shape), perm);
}

/* See nas_snet_attention: x [N, C, H, W] -> x + attention, in the layout of PyTorch's
 * MultiheadAttention(batch_first=True) on tokens t[n, l, c] = x[n, c, l] (l = h W + w). */
static nas_tensor *attention_forward(nas_graph *g, nas_params *p, const nas_snode *n,
                                     nas_tensor *x) {
    if (x == NULL) {
        return NULL;
    }
    static const int swap12[3] = {0, 2, 1};
    static const int merge[4] = {0, 2, 1, 3};
    const int64_t N = nas_tensor_dim(x, 0), C = n->c, L = (int64_t)n->h * n->w;
    const int64_t d = C / n->heads;
    const int64_t ncl[3] = {N, C, L}, tok[2] = {N * L, C}, nlc[3] = {N, L, C};
    const int64_t nchw[4] = {N, C, n->h, n->w};
    nas_tensor *t = nas_reshape(g, nas_permute(g, nas_reshape(g, x, 3, ncl), swap12), 2, tok);
    nas_tensor *q = split_heads(g, nas_nn_linear_forward(g, p, &n->q, t), N, L, n->heads, d);
    nas_tensor *k = split_heads(g, nas_nn_linear_forward(g, p, &n->kp, t), N, L, n->heads, d);
    nas_tensor *v = split_heads(g, nas_nn_linear_forward(g, p, &n->v, t), N, L, n->heads, d);
    nas_tensor *a = nas_softmax(g, nas_matmul(g, q, k, 0, 1, (float)(1.0 / sqrt((double)d))));
    nas_tensor *o = nas_reshape(g, nas_permute(g, nas_matmul(g, a, v, 0, 0, 1.0f), merge), 2, tok);
    o = nas_reshape(g, nas_nn_linear_forward(g, p, &n->lin, o), 3, nlc);
    o = nas_reshape(g, nas_permute(g, o, swap12), 4, nchw);
    return nas_add(g, x, o);
}

static nas_tensor *node_forward(nas_graph *g, nas_params *p, const nas_snode *n,
                                nas_tensor *const *t, nas_tensor *x) {
    nas_tensor *ins[NAS_SN_MAX_IN];
    for (int j = 0; j < n->n_in; j++) {
        ins[j] = t[n->in[j]];
    }
    nas_tensor *a = n->n_in > 0 ? ins[0] : NULL;
    switch (n->kind) {
        case NAS_SN_INPUT: return x;
        case NAS_SN_CONV: return nas_nn_conv_forward(g, p, &n->conv, a);
        case NAS_SN_BN: return nas_nn_bn_forward(g, p, &n->bn, a);
        case NAS_SN_ACT: return nas_nn_act(g, n->act, a);
        case NAS_SN_MAX_POOL: return nas_max_pool(g, a, n->k, n->stride, n->pad);
        case NAS_SN_AVG_POOL: return nas_avg_pool(g, a, n->k, n->stride, n->pad, n->count_pad);
        case NAS_SN_GAP: {
            nas_tensor *y = nas_global_avg_pool(g, a);
            const int64_t shape[4] = {y ? nas_tensor_dim(y, 0) : 1, n->c, 1, 1};
            return nas_reshape(g, y, 4, shape);
        }
        case NAS_SN_FLATTEN: {
            const int64_t shape[2] = {a ? nas_tensor_dim(a, 0) : 1, n->c};
            return nas_reshape(g, a, 2, shape);
        }
        case NAS_SN_SUM: return nas_sum(g, n->n_in, ins);
        case NAS_SN_CONCAT: return nas_concat(g, n->n_in, ins);
        case NAS_SN_MUL: return nas_mul(g, a, ins[1]);
        case NAS_SN_ZERO: return nas_zero(g, a, n->stride);
        case NAS_SN_SHUFFLE: return nas_channel_shuffle(g, a, n->groups);
        case NAS_SN_PAD_CHANNELS: return nas_pad_channels(g, a, n->c);
        case NAS_SN_DROPOUT: return nas_dropout(g, a, n->p);
        case NAS_SN_LINEAR: return nas_nn_linear_forward(g, p, &n->lin, a);
        case NAS_SN_ATTENTION: return attention_forward(g, p, n, a);
        case NAS_SN_CROP: return nas_crop(g, a, n->top, n->left, n->h, n->w);
        case NAS_SN_COUNT: break;
    }
    return nas_graph_fail(g, NAS_ERR_ARG, "unknown network node kind %d", (int)n->kind);
}

/* The auxiliary branch is recorded in training mode only (DARTS: `if self._auxiliary and
 * self.training`); its output is kept for nas_model_aux_logits. */
static nas_tensor *snet_forward(void *impl, nas_graph *g, nas_params *p, nas_tensor *x) {
    snet_impl *m = impl;
    const int training = nas_graph_training(g);
    m->aux = NULL;
    m->aux_graph = g;
    for (int i = 0; i < m->n; i++) {
        if (m->nodes[i].aux && !training) {
            m->t[i] = NULL;
            continue;
        }
        m->t[i] = node_forward(g, p, &m->nodes[i], m->t, x);
        if (m->t[i] == NULL) {
            if (nas_graph_status(g) == NAS_OK) {
                nas_graph_fail(g, NAS_ERR_ARG, "network node %d (kind %d) failed", i,
                               (int)m->nodes[i].kind);
            }
            return NULL;
        }
    }
    if (m->aux_out >= 0 && training) {
        m->aux = m->t[m->aux_out];
    }
    return m->n > 0 ? m->t[m->n - 1] : NULL;
}

static nas_tensor *snet_aux_logits(void *impl, const nas_graph *g) {
    const snet_impl *m = impl;
    return m->aux_graph == g ? m->aux : NULL;
}

static void snet_free(nas_ctx *ctx, void *impl) {
    snet_impl *m = impl;
    if (m == NULL) {
        return;
    }
    nas_free(ctx, m->nodes, (size_t)m->cap * sizeof(nas_snode));
    nas_free(ctx, m->t, (size_t)(m->n > 0 ? m->n : 1) * sizeof(nas_tensor *));
    nas_free(ctx, m, sizeof(snet_impl));
}

/* One vtable per model kind so nas_model_kind names the space. */
#define SNET_VT(name)                                                                              \
    static const nas_model_vt snet_vt_##name = {                                                   \
        .kind = #name, .forward = snet_forward, .free = snet_free, .aux_logits = snet_aux_logits};
SNET_VT(nb201)
SNET_VT(darts)
SNET_VT(mbnet)
SNET_VT(nasrl)
SNET_VT(json)
#undef SNET_VT

static const nas_model_vt *vt_for(const char *kind) {
    if (strcmp(kind, "nb201") == 0) {
        return &snet_vt_nb201;
    }
    if (strcmp(kind, "darts") == 0) {
        return &snet_vt_darts;
    }
    if (strcmp(kind, "mbnet") == 0) {
        return &snet_vt_mbnet;
    }
    if (strcmp(kind, "nasrl") == 0) {
        return &snet_vt_nasrl;
    }
    return &snet_vt_json;
}

nas_status nas_snet_model(nas_snet *net, nas_model_shape shape, nas_model **out) {
    *out = NULL;
    nas_ctx *ctx = net->ctx;
    nas_status st = net->status;
    if (st == NAS_OK && (net->n == 0 || !net->nodes[net->n - 1].flat)) {
        st = nas_fail(ctx, NAS_ERR_SHAPE, "network does not end in a flat [classes] output");
    }
    snet_impl *m = st == NAS_OK ? nas_calloc(ctx, 1, sizeof(snet_impl)) : NULL;
    if (st == NAS_OK && m == NULL) {
        st = NAS_ERR_NOMEM;
    }
    if (st == NAS_OK) {
        m->t = nas_calloc(ctx, (size_t)net->n, sizeof(nas_tensor *));
        if (m->t == NULL) {
            nas_free(ctx, m, sizeof(snet_impl));
            st = NAS_ERR_NOMEM;
        }
    }
    if (st != NAS_OK) {
        nas_snet_deinit(net);
        return st;
    }
    m->nodes = net->nodes;
    m->n = net->n;
    m->cap = net->cap;
    m->aux_out = net->aux_out;
    nas_params *params = net->params;
    const char *kind = net->kind;
    memset(net, 0, sizeof(*net));
    return nas_model_new(ctx, vt_for(kind), m, params, shape, out);
}
