/* act.c - element-wise activations (ReLU6, h-swish, h-sigmoid, sigmoid, swish, tanh) and
 * dropout. Each is one flat loop over the tensor, any shape, split across threads (above
 * NAS_PAR_MIN elements); the piecewise-linear ones are branch-free selects that vectorise (AVX2,
 * `omp simd`), sigmoid, swish and tanh call libm per element. Backward needs only x (or y for
 * sigmoid and tanh, kept because every activation is kept while gradients are on), so forward
 * saves nothing, except dropout which keeps its mask. ReLU lives in basic.c. */
#include "ops_int.h"
#include "simd_int.h"

#include <math.h>

static nas_tensor *unary(nas_graph *g, nas_tensor *x, int op) {
    if (!nas_ops_sources_ok(g, 1, &x)) {
        return NULL;
    }
    return nas_ops_append_like(g, op, 1, &x, x);
}

static inline float clampf(float v, float lo, float hi) {
    return v < lo ? lo : (v > hi ? hi : v);
}

/* One element-wise activation: its builder, forward y = FWD with v = x[i], and backward
 * dx += dy * DERIV where DERIV may use v (the input) and o (the output). FWD_LOOP / BWD_LOOP pick
 * each loop's parallel form: the piecewise-linear ones vectorise; libm calls (expf, tanhf) do not,
 * so those loops go parallel at 1/8 the size. */
#define DEFINE_ACTIVATION(lower, UPPER, FWD, DERIV, FWD_LOOP, BWD_LOOP)                            \
    nas_tensor *nas_##lower(nas_graph *g, nas_tensor *x) {                                         \
        return unary(g, x, NAS_OP_##UPPER);                                                        \
    }                                                                                              \
    static nas_status lower##_forward(nas_graph *g, nas_node *n) {                                 \
        (void)g;                                                                                   \
        const float *x = n->src[0]->data;                                                          \
        float *y = n->data;                                                                        \
        const int64_t len = n->numel;                                                              \
        FWD_LOOP                                                                                   \
        for (int64_t i = 0; i < len; i++) {                                                        \
            const float v = x[i];                                                                  \
            y[i] = (FWD);                                                                          \
        }                                                                                          \
        return NAS_OK;                                                                             \
    }                                                                                              \
    static void lower##_backward(nas_graph *g, nas_node *n) {                                      \
        (void)g;                                                                                   \
        float *dx = n->src[0]->grad;                                                               \
        if (dx == NULL) {                                                                          \
            return;                                                                                \
        }                                                                                          \
        const float *x = n->src[0]->data, *y = n->data, *dy = n->grad;                             \
        const int64_t len = n->numel;                                                              \
        BWD_LOOP                                                                                   \
        for (int64_t i = 0; i < len; i++) {                                                        \
            const float v = x[i], o = y[i];                                                        \
            (void)v;                                                                               \
            (void)o;                                                                               \
            dx[i] += dy[i] * (DERIV);                                                              \
        }                                                                                          \
    }                                                                                              \
    const nas_op_desc nas_op_##lower = {                                                           \
        .name = #lower, .forward = lower##_forward, .backward = lower##_backward};

#define LINEAR_LOOP NAS_OMP_FOR_SIMD_IF(len >= NAS_PAR_MIN)
#define LIBM_LOOP   NAS_OMP_FOR_IF(len >= NAS_PAR_MIN / 8)

static inline float sigmoidf(float v) {
    return 1.0f / (1.0f + expf(-v));
}

/* relu6: y = min(max(x, 0), 6); dy/dx = [0 < x < 6] */
DEFINE_ACTIVATION(relu6, RELU6, clampf(v, 0.0f, 6.0f), (v > 0.0f && v < 6.0f) ? 1.0f : 0.0f,
                  LINEAR_LOOP, LINEAR_LOOP)

/* hsigmoid (MobileNetV3): y = relu6(x + 3) / 6; dy/dx = [-3 < x < 3] / 6 */
DEFINE_ACTIVATION(hsigmoid, HSIGMOID, clampf(v + 3.0f, 0.0f, 6.0f) / 6.0f,
                  (v > -3.0f && v < 3.0f) ? 1.0f / 6.0f : 0.0f, LINEAR_LOOP, LINEAR_LOOP)

/* hswish (MobileNetV3): y = x relu6(x + 3) / 6; dy/dx = 0 for x <= -3, 1 for x >= 3,
 * (2x + 3) / 6 between (PyTorch's convention at the kinks). */
DEFINE_ACTIVATION(hswish, HSWISH, v * clampf(v + 3.0f, 0.0f, 6.0f) / 6.0f,
                  v < -3.0f ? 0.0f : (v > 3.0f ? 1.0f : (2.0f * v + 3.0f) / 6.0f), LINEAR_LOOP,
                  LINEAR_LOOP)

/* sigmoid: y = 1 / (1 + e^-x); dy/dx = y (1 - y), from the saved output */
DEFINE_ACTIVATION(sigmoid, SIGMOID, sigmoidf(v), o * (1.0f - o), LIBM_LOOP, LINEAR_LOOP)

/* swish / SiLU: y = x s(x), s = sigmoid; dy/dx = s (1 + x (1 - s)) */
DEFINE_ACTIVATION(swish, SWISH, v * sigmoidf(v),
                  sigmoidf(v) * (1.0f + v * (1.0f - sigmoidf(v))), LIBM_LOOP, LIBM_LOOP)

/* tanh: dy/dx = 1 - y^2, from the saved output */
DEFINE_ACTIVATION(tanh, TANH, tanhf(v), 1.0f - o * o, LIBM_LOOP, LINEAR_LOOP)

/* ---- dropout (inverted): training y = x m / (1 - p), m ~ Bernoulli(1 - p); eval y = x.
 * The mask comes from Philox keyed by the graph's seed, with the stream made of the forward
 * step and the node index, so a rerun with the same seed draws the same masks whatever the
 * thread count. It is kept in aux (one byte per element) for backward: dx = dy m / (1 - p).
 * iparam[0] records whether the last forward applied a mask (training) or copied. */

nas_tensor *nas_dropout(nas_graph *g, nas_tensor *x, float p) {
    if (!nas_ops_sources_ok(g, 1, &x)) {
        return NULL;
    }
    if (!(p >= 0.0f && p < 1.0f)) {
        return nas_graph_fail(g, NAS_ERR_ARG, "dropout: probability %g outside [0, 1)", (double)p);
    }
    nas_node *n = nas_ops_append_like(g, NAS_OP_DROPOUT, 1, &x, x);
    if (n != NULL) {
        n->fparam[0] = p;
        n->aux_bytes = (size_t)n->numel;
    }
    return n;
}

static nas_status dropout_forward(nas_graph *g, nas_node *n) {
    const float *x = n->src[0]->data;
    float *y = n->data;
    uint8_t *mask = n->aux;
    const int64_t len = n->numel;
    const float p = n->fparam[0];
    n->iparam[0] = g->training && p > 0.0f;
    if (!n->iparam[0]) {
        memcpy(y, x, (size_t)len * sizeof(float));
        return NAS_OK;
    }
    /* keep when the 32-bit word >= p * 2^32 (probability 1 - p) */
    const uint32_t threshold = (uint32_t)fmin((double)p * 4294967296.0, 4294967295.0);
    const uint64_t stream = (g->step << 24) ^ (uint64_t)n->index;
    const float scale = 1.0f / (1.0f - p);
    const int64_t blocks = (len + 3) / 4;
    NAS_OMP_FOR_IF(len >= NAS_PAR_MIN / 4)
    for (int64_t b = 0; b < blocks; b++) {
        uint32_t words[4];
        nas_philox4x32(g->seed, stream, (uint64_t)b, words);
        const int64_t end = nas_min_i64(len, 4 * b + 4);
        for (int64_t i = 4 * b; i < end; i++) {
            mask[i] = words[i - 4 * b] >= threshold;
            y[i] = mask[i] ? x[i] * scale : 0.0f;
        }
    }
    return NAS_OK;
}

static void dropout_backward(nas_graph *g, nas_node *n) {
    (void)g;
    float *dx = n->src[0]->grad;
    if (dx == NULL) {
        return;
    }
    const float *dy = n->grad;
    const uint8_t *mask = n->aux;
    const int64_t len = n->numel;
    if (!n->iparam[0]) {
        NAS_OMP_FOR_SIMD_IF(len >= NAS_PAR_MIN)
        for (int64_t i = 0; i < len; i++) {
            dx[i] += dy[i];
        }
        return;
    }
    const float scale = 1.0f / (1.0f - n->fparam[0]);
    NAS_OMP_FOR_SIMD_IF(len >= NAS_PAR_MIN)
    for (int64_t i = 0; i < len; i++) {
        dx[i] += mask[i] ? dy[i] * scale : 0.0f;
    }
}

const nas_op_desc nas_op_dropout = {
    .name = "dropout", .forward = dropout_forward, .backward = dropout_backward};
