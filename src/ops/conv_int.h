/* conv_int.h - internals of the conv2d op shared by its files: the geometry of one convolution,
 * the naive twin (conv_naive.c: the reference for tests and the fallback), the oneDNN fast path
 * (conv_dnnl.c) and the AVX2 depthwise kernel (conv_dw.c), and the backend switch tests use to
 * force one path. Nothing here is public API. */
#ifndef NAS_CONV_INT_H
#define NAS_CONV_INT_H

#include "ops_int.h"

/* iparam slots of a conv2d node (set by the builder). */
enum {
    NAS_CONV_IP_SH = 0,
    NAS_CONV_IP_SW,
    NAS_CONV_IP_PH,
    NAS_CONV_IP_PW,
    NAS_CONV_IP_DH,
    NAS_CONV_IP_DW,
    NAS_CONV_IP_GROUPS,
    NAS_CONV_IP_AUX_SRC /* set by forward: 1 when aux holds the fast path's blocked src */
};

/* One convolution: x [N, C, H, W] * w [O, C/groups, KH, KW] -> y [N, O, OH, OW]. */
typedef struct nas_conv_geom {
    int64_t N, C, H, W;
    int64_t O, KH, KW, OH, OW;
    int64_t sh, sw, ph, pw, dh, dw;
    int64_t groups;
} nas_conv_geom;

/* The geometry of a built conv2d node. */
nas_conv_geom nas_conv_geom_of(const nas_node *n);

/* Naive twin (plain loops, every case). forward overwrites y (bias may be NULL); the backward
 * kernels ACCUMULATE into dx, dw, db (db may be NULL). Deterministic for any thread count. */
void nas_conv_naive_forward(const nas_conv_geom *c, const float *x, const float *w,
                            const float *bias, float *y);
void nas_conv_naive_backward_data(const nas_conv_geom *c, const float *dy, const float *w,
                                  float *dx);
void nas_conv_naive_backward_weights(const nas_conv_geom *c, const float *x, const float *dy,
                                     float *dw, float *db);
/* db[o] += sum over n, i, j of dy[n, o, i, j] (in double per channel, fixed order). */
void nas_conv_bias_grad(const nas_conv_geom *c, const float *dy, float *db);

/* 1x1 fast path (conv_gemm.c): sgemm on NCHW for 1x1, stride 1, no padding, one group.
 * Same contracts as the naive kernels (forward overwrites, backward accumulates; dw or db may be
 * NULL in backward_weights). */
int nas_conv_is_pointwise(const nas_conv_geom *c);
void nas_conv_gemm_forward(const nas_conv_geom *c, const float *x, const float *w,
                           const float *bias, float *y);
void nas_conv_gemm_backward_data(const nas_conv_geom *c, const float *dy, const float *w,
                                 float *dx);
void nas_conv_gemm_backward_weights(const nas_conv_geom *c, const float *x, const float *dy,
                                    float *dw, float *db);

/* Depthwise fast path (conv_dw.c): groups == C == O, stride along W 1 or 2, kernels up to 8x8.
 * `scratch` holds nas_conv_dw_scratch_bytes (per-thread padded planes). Same contracts as the
 * naive kernels. */
int nas_conv_is_depthwise(const nas_conv_geom *c);
/* The depthwise kernels are used (under AUTO) where they beat oneDNN: 8 output columns and up. */
int nas_conv_dw_preferred(const nas_conv_geom *c);
size_t nas_conv_dw_scratch_bytes(const nas_conv_geom *c);
void nas_conv_dw_forward(const nas_conv_geom *c, const float *x, const float *w, const float *bias,
                         float *y, float *scratch);
void nas_conv_dw_backward_data(const nas_conv_geom *c, const float *dy, const float *w, float *dx,
                               float *scratch);
void nas_conv_dw_backward_weights(const nas_conv_geom *c, const float *x, const float *dy,
                                  float *dw, float *db, float *scratch);

/* Direct fast path (conv_direct.c): groups 1, stride 1, dilation 1, padding below the kernel
 * size, kernels up to 7x7, on "flat" zero-padded planes. `scratch` holds
 * nas_conv_direct_scratch_bytes (packed weights and per-thread planes). Same contracts as the
 * naive kernels (forward overwrites, backward accumulates; dw or db may be NULL). */
int nas_conv_is_direct(const nas_conv_geom *c);
/* Used under AUTO where it beats oneDNN: few input channels. */
int nas_conv_direct_preferred(const nas_conv_geom *c);
size_t nas_conv_direct_scratch_bytes(const nas_conv_geom *c, int backward);
void nas_conv_direct_forward(const nas_conv_geom *c, const float *x, const float *w,
                             const float *bias, float *y, float *scratch);
void nas_conv_direct_backward_data(const nas_conv_geom *c, const float *dy, const float *w,
                                   float *dx, float *scratch);
void nas_conv_direct_backward_weights(const nas_conv_geom *c, const float *x, const float *dy,
                                      float *dw, float *db, float *scratch);

/* Winograd F(4x4, 3x3) on AVX-512 (conv_wino.c) for 3x3 stride-1 pad-1 convs without bias,
 * 16 to 64 channels in and out (multiples of 16), outputs a multiple of 4 high and wide, x and y
 * in the 16-channel blocked layout (nChw16c). The forward and the weight gradient take
 * `members` convs of geometry c reading one x (1, or a group: nas_conv_wino_group_fits) and read
 * x once for all: the forward stores y[m] = conv(x, w[m]), the weight gradient adds to dw[m].
 * The data gradient stores dx, or adds to it when `add`. `scratch` holds
 * nas_conv_wino_scratch_bytes(c, members) (any alignment; enough for every pass). */
#define NAS_CONV_GROUP_MAX 16 /* members: each has at least one of the 16 block pairs a pass takes */
int nas_conv_wino_suits(const nas_conv_geom *c, int has_bias);
int nas_conv_wino_group_fits(const nas_conv_geom *c, int members);
size_t nas_conv_wino_scratch_bytes(const nas_conv_geom *c, int members);
void nas_conv_wino_forward(const nas_conv_geom *c, const float *x, const float *const *w,
                           float *const *y, int members, float *scratch);
void nas_conv_wino_backward_data(const nas_conv_geom *c, const float *dy, const float *w,
                                 float *dx, int add, float *scratch);
void nas_conv_wino_backward_weights(const nas_conv_geom *c, const float *x,
                                    const float *const *dy, float *const *dw, int members,
                                    float *scratch);

/* conv + bias + ReLU + 2x2 stride-2 max pool per image (the conv2d_relu_maxpool op,
 * conv_fused.c); c is the conv's geometry (must pass nas_conv_is_direct), y and idx are
 * [N, O, OH / 2, OW / 2] (idx: the winning tap's offset in its OH x OW conv-output plane).
 * Backward accumulates into the non-NULL dx, dw, db from the pooled gradient dy. */
size_t nas_conv_relu_pool_scratch_bytes(const nas_conv_geom *c, int backward);
void nas_conv_relu_pool_forward(const nas_conv_geom *c, const float *x, const float *w,
                                const float *bias, float *y, int32_t *idx, float *scratch);
void nas_conv_relu_pool_backward(const nas_conv_geom *c, const float *x, const float *w,
                                 const float *y, const int32_t *idx, const float *dy, float *dx,
                                 float *dw, float *db, float *scratch);

/* Which implementation conv2d uses. AUTO = the fastest path per case (sgemm for 1x1, the AVX2
 * kernel for depthwise, oneDNN for the rest), falling back to naive when oneDNN rejects a case.
 * The default comes from the environment variable NAS_CONV_BACKEND
 * (auto | naive | dnnl) read once per context; tests override it per context. */
typedef enum nas_conv_backend {
    NAS_CONV_AUTO = 0,
    NAS_CONV_NAIVE,
    NAS_CONV_DNNL /* oneDNN for every case it implements (1x1 and depthwise included) */
} nas_conv_backend;

void nas_conv_set_backend(nas_ctx *ctx, nas_conv_backend b);
nas_conv_backend nas_conv_get_backend(nas_ctx *ctx);
/* Whether oneDNN's training passes may use Winograd for the 3x3 stride-1 shapes it suits (on by
 * default; the environment variable NAS_CONV_WINOGRAD=0 turns it off; conv_dnnl.c says where). */
void nas_conv_set_winograd(nas_ctx *ctx, int on);

/* oneDNN fast path. forward fills n->data (and aux when it holds the blocked src); backward
 * accumulates into the non-NULL grads of x, w and bias. NAS_ERR_UNSUPPORTED when oneDNN has no
 * implementation for the case (the caller falls back to naive, no message kept); other errors
 * set the message. */
nas_status nas_conv_dnnl_forward(nas_graph *g, nas_node *n);
/* *done gets bit 0 when dx was accumulated, bit 1 when dw and db were: on an error the caller
 * computes the rest with the naive kernels. */
nas_status nas_conv_dnnl_backward(nas_graph *g, nas_node *n, unsigned *done);
/* Group the convs that read one x (our Winograd reads x once for all of them: their forwards,
 * and their weight gradients in the leader's backward) and link them (nas_node.group_next,
 * group_leader); clears every other node's links (nas_ops_plan_fusions calls it). */
void nas_conv_plan_groups(nas_graph *g);
/* Groups (nas_conv_plan_groups): whether conv node n runs our Winograd (the passes a group can
 * share); a leader's forward of every member; a member's backward: its data gradient (dy is
 * fresh in cache now) and, in the leader's, the weight gradients of every member in the
 * running backward. NAS_ERR_UNSUPPORTED, with no message, when our Winograd does not run n now:
 * the caller runs each member's passes alone. */
int nas_conv_dnnl_wino_node(nas_graph *g, const nas_node *n);
nas_status nas_conv_dnnl_group_forward(nas_graph *g, nas_node *leader);
nas_status nas_conv_dnnl_group_backward(nas_graph *g, nas_node *leader);
/* Bytes of aux a training node needs to keep the blocked x from forward to backward (0 when
 * the primitive reads x as it is). Creates the forward primitive (cached) to find out. */
size_t nas_conv_dnnl_aux_bytes(nas_graph *g, const nas_conv_geom *c, int has_bias);
/* The block size (8 or 16) of oneDNN's nChw{B}c layout when every pass conv node n runs in g
 * (forward, and with gradients on both backward passes) wants its x side (y_side 0) or its y
 * side (y_side 1) in that one layout with no channel padding; 0 otherwise. Creates the
 * primitives (cached). The planner's question (ops/layout.c). */
int64_t nas_conv_dnnl_block(nas_graph *g, const nas_node *n, int y_side);
/* 1 when conv node n runs on the oneDNN path under the context's backend setting. */
int nas_conv_uses_dnnl(nas_graph *g, const nas_node *n);
/* Number of cached primitive sets in ctx (tests check cache hits). */
int64_t nas_conv_dnnl_cache_size(nas_ctx *ctx);

#endif
