/* nn_int.h - building blocks for networks: each block declares its parameters in a nas_params
 * at construction (an *_init function filling a small struct of ids) and records its forward
 * pass into a graph later (*_forward), so a model's parameters exist once and any number of
 * graphs (training steps, sampled supernet paths) use them. */
#ifndef NAS_NN_INT_H
#define NAS_NN_INT_H

#include "ops/ops_int.h"

/* Conv2d with optional bias. */
typedef struct nas_conv_block {
    nas_param_id w, b; /* b = -1 when there is no bias */
    nas_conv_args args;
} nas_conv_block;

/* Declares name.weight [cout, cin/groups, k, k] (Kaiming normal, fan_out, as torchvision and the
 * NB201 code) and, if bias, name.bias. pad -1 means "same" padding: dilation * (k - 1) / 2. */
nas_status nas_nn_conv_init(nas_params *p, const char *name, int64_t cin, int64_t cout, int k,
                            int stride, int pad, int dilation, int groups, int bias,
                            nas_conv_block *out);
nas_tensor *nas_nn_conv_forward(nas_graph *g, nas_params *p, const nas_conv_block *c,
                                nas_tensor *x);

/* Batch norm with running statistics; affine may be off (DARTS search cells). */
typedef struct nas_bn_block {
    nas_param_id gamma, beta; /* -1 when affine is off */
    nas_param_id mean, var;   /* buffers */
    float momentum, eps;
} nas_bn_block;

nas_status nas_nn_bn_init(nas_params *p, const char *name, int64_t channels, int affine,
                          nas_bn_block *out);
nas_tensor *nas_nn_bn_forward(nas_graph *g, nas_params *p, const nas_bn_block *bn, nas_tensor *x);

/* Linear with bias (PyTorch default initialisation). */
typedef struct nas_linear_block {
    nas_param_id w, b;
} nas_linear_block;

nas_status nas_nn_linear_init(nas_params *p, const char *name, int64_t in, int64_t out,
                              nas_linear_block *blk);
nas_tensor *nas_nn_linear_forward(nas_graph *g, nas_params *p, const nas_linear_block *blk,
                                  nas_tensor *x);

/* Activation by name, for data-driven builders. */
typedef enum nas_act {
    NAS_ACT_NONE = 0,
    NAS_ACT_RELU,
    NAS_ACT_RELU6,
    NAS_ACT_HSWISH,
    NAS_ACT_HSIGMOID,
    NAS_ACT_SIGMOID,
    NAS_ACT_SWISH,
    NAS_ACT_TANH
} nas_act;

nas_tensor *nas_nn_act(nas_graph *g, nas_act act, nas_tensor *x);
/* "relu" -> NAS_ACT_RELU etc.; -1 if unknown. */
int nas_nn_act_from_name(const char *name);

/* Format "prefix.name" into buf (size >= 128) and return buf. */
const char *nas_nn_name(char *buf, size_t size, const char *prefix, const char *name);

#endif
