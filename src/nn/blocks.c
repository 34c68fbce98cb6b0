/* blocks.c - conv, batch norm, linear and activation blocks: parameters declared once,
 * forward recorded per graph. */
#include "nn_int.h"

#include <stdio.h>

const char *nas_nn_name(char *buf, size_t size, const char *prefix, const char *name) {
    snprintf(buf, size, "%s.%s", prefix, name);
    return buf;
}

nas_status nas_nn_conv_init(nas_params *p, const char *name, int64_t cin, int64_t cout, int k,
                            int stride, int pad, int dilation, int groups, int bias,
                            nas_conv_block *out) {
    char buf[256];
    if (groups <= 0) {
        groups = 1;
    }
    if (dilation <= 0) {
        dilation = 1;
    }
    if (cin % groups != 0 || cout % groups != 0) {
        return nas_fail(p->ctx, NAS_ERR_SHAPE, "%s: %lld -> %lld channels do not split into %d groups",
                        name, (long long)cin, (long long)cout, groups);
    }
    const int64_t shape[4] = {cout, cin / groups, k, k};
    nas_status st = nas_params_add(p, nas_nn_name(buf, sizeof buf, name, "weight"), 4, shape,
                                   NAS_INIT_KAIMING_NORMAL_FAN_OUT, NAS_PARAM_TRAINABLE, 0, &out->w);
    if (st != NAS_OK) {
        return st;
    }
    out->b = -1;
    if (bias) {
        st = nas_params_add(p, nas_nn_name(buf, sizeof buf, name, "bias"), 1, &cout,
                            NAS_INIT_ZEROS, NAS_PARAM_TRAINABLE, (cin / groups) * k * k, &out->b);
        if (st != NAS_OK) {
            return st;
        }
    }
    memset(&out->args, 0, sizeof(out->args));
    out->args.stride_h = out->args.stride_w = stride;
    out->args.pad_h = out->args.pad_w = pad >= 0 ? pad : dilation * (k - 1) / 2;
    out->args.dilation_h = out->args.dilation_w = dilation;
    out->args.groups = groups;
    return NAS_OK;
}

nas_tensor *nas_nn_conv_forward(nas_graph *g, nas_params *p, const nas_conv_block *c,
                                nas_tensor *x) {
    nas_tensor *b = c->b >= 0 ? nas_param(g, p, c->b) : NULL;
    return nas_conv2d(g, x, nas_param(g, p, c->w), b, &c->args);
}

nas_status nas_nn_bn_init(nas_params *p, const char *name, int64_t channels, int affine,
                          nas_bn_block *out) {
    char buf[256];
    nas_status st = NAS_OK;
    out->gamma = out->beta = -1;
    out->momentum = 0.1f;
    out->eps = 1e-5f;
    if (affine) {
        st = nas_params_add(p, nas_nn_name(buf, sizeof buf, name, "weight"), 1, &channels,
                            NAS_INIT_ONES, NAS_PARAM_TRAINABLE, 0, &out->gamma);
        if (st == NAS_OK) {
            st = nas_params_add(p, nas_nn_name(buf, sizeof buf, name, "bias"), 1, &channels,
                                NAS_INIT_ZEROS, NAS_PARAM_TRAINABLE, 0, &out->beta);
        }
    }
    if (st == NAS_OK) {
        st = nas_params_add(p, nas_nn_name(buf, sizeof buf, name, "running_mean"), 1, &channels,
                            NAS_INIT_ZEROS, NAS_PARAM_BUFFER, 0, &out->mean);
    }
    if (st == NAS_OK) {
        st = nas_params_add(p, nas_nn_name(buf, sizeof buf, name, "running_var"), 1, &channels,
                            NAS_INIT_ONES, NAS_PARAM_BUFFER, 0, &out->var);
    }
    return st;
}

nas_tensor *nas_nn_bn_forward(nas_graph *g, nas_params *p, const nas_bn_block *bn, nas_tensor *x) {
    nas_tensor *gamma = bn->gamma >= 0 ? nas_param(g, p, bn->gamma) : NULL;
    nas_tensor *beta = bn->beta >= 0 ? nas_param(g, p, bn->beta) : NULL;
    return nas_batch_norm(g, x, gamma, beta, nas_param(g, p, bn->mean), nas_param(g, p, bn->var),
                          bn->momentum, bn->eps);
}

nas_status nas_nn_linear_init(nas_params *p, const char *name, int64_t in, int64_t out,
                              nas_linear_block *blk) {
    char buf[256];
    const int64_t shape[2] = {out, in};
    nas_status st = nas_params_add(p, nas_nn_name(buf, sizeof buf, name, "weight"), 2, shape,
                                   NAS_INIT_TORCH_DEFAULT, NAS_PARAM_TRAINABLE, 0, &blk->w);
    if (st == NAS_OK) {
        st = nas_params_add(p, nas_nn_name(buf, sizeof buf, name, "bias"), 1, &out,
                            NAS_INIT_TORCH_BIAS, NAS_PARAM_TRAINABLE, in, &blk->b);
    }
    return st;
}

nas_tensor *nas_nn_linear_forward(nas_graph *g, nas_params *p, const nas_linear_block *blk,
                                  nas_tensor *x) {
    return nas_linear(g, x, nas_param(g, p, blk->w), nas_param(g, p, blk->b));
}

nas_tensor *nas_nn_act(nas_graph *g, nas_act act, nas_tensor *x) {
    switch (act) {
        case NAS_ACT_NONE: return x;
        case NAS_ACT_RELU: return nas_relu(g, x);
        case NAS_ACT_RELU6: return nas_relu6(g, x);
        case NAS_ACT_HSWISH: return nas_hswish(g, x);
        case NAS_ACT_HSIGMOID: return nas_hsigmoid(g, x);
        case NAS_ACT_SIGMOID: return nas_sigmoid(g, x);
        case NAS_ACT_SWISH: return nas_swish(g, x);
        case NAS_ACT_TANH: return nas_tanh(g, x);
    }
    return nas_graph_fail(g, NAS_ERR_ARG, "unknown activation %d", (int)act);
}

int nas_nn_act_from_name(const char *name) {
    static const char *const names[] = {"none", "relu", "relu6", "hswish", "hsigmoid",
                                        "sigmoid", "swish", "tanh"};
    for (int i = 0; i < (int)(sizeof(names) / sizeof(names[0])); i++) {
        if (strcmp(name, names[i]) == 0) {
            return i;
        }
    }
    return -1;
}
