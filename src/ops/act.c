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

/* ---- relu6: y = min(max(x, 0), 6); dy/dx = [0 < x < 6] */

nas_tensor *nas_relu6(nas_graph *g, nas_tensor *x) {
    return unary(g, x, NAS_OP_RELU6);
}

static nas_status relu6_forward(nas_graph *g, nas_node *n) {
    (void)g;
    const float *x = n->src[0]->data;
    float *y = n->data;
    const int64_t len = n->numel;
    NAS_OMP_FOR_SIMD_IF(len >= NAS_PAR_MIN)
    for (int64_t i = 0; i < len; i++) {
        y[i] = clampf(x[i], 0.0f, 6.0f);
    }
    return NAS_OK;
}

static void relu6_backward(nas_graph *g, nas_node *n) {
    (void)g;
    float *dx = n->src[0]->grad;
    if (dx == NULL) {
        return;
    }
    const float *x = n->src[0]->data, *dy = n->grad;
    const int64_t len = n->numel;
    NAS_OMP_FOR_SIMD_IF(len >= NAS_PAR_MIN)
    for (int64_t i = 0; i < len; i++) {
        dx[i] += (x[i] > 0.0f && x[i] < 6.0f) ? dy[i] : 0.0f;
    }
}

const nas_op_desc nas_op_relu6 = {
    .name = "relu6", .forward = relu6_forward, .backward = relu6_backward};

/* ---- hsigmoid (MobileNetV3): y = relu6(x + 3) / 6; dy/dx = [-3 < x < 3] / 6 */

nas_tensor *nas_hsigmoid(nas_graph *g, nas_tensor *x) {
    return unary(g, x, NAS_OP_HSIGMOID);
}

static nas_status hsigmoid_forward(nas_graph *g, nas_node *n) {
    (void)g;
    const float *x = n->src[0]->data;
    float *y = n->data;
    const int64_t len = n->numel;
    NAS_OMP_FOR_SIMD_IF(len >= NAS_PAR_MIN)
    for (int64_t i = 0; i < len; i++) {
        y[i] = clampf(x[i] + 3.0f, 0.0f, 6.0f) / 6.0f;
    }
    return NAS_OK;
}

static void hsigmoid_backward(nas_graph *g, nas_node *n) {
    (void)g;
    float *dx = n->src[0]->grad;
    if (dx == NULL) {
        return;
    }
    const float *x = n->src[0]->data, *dy = n->grad;
    const int64_t len = n->numel;
    NAS_OMP_FOR_SIMD_IF(len >= NAS_PAR_MIN)
    for (int64_t i = 0; i < len; i++) {
        dx[i] += (x[i] > -3.0f && x[i] < 3.0f) ? dy[i] / 6.0f : 0.0f;
    }
}

const nas_op_desc nas_op_hsigmoid = {
    .name = "hsigmoid", .forward = hsigmoid_forward, .backward = hsigmoid_backward};

/* ---- hswish (MobileNetV3): y = x relu6(x + 3) / 6;
 * dy/dx = 0 for x <= -3, 1 for x >= 3, (2x + 3) / 6 between (PyTorch's convention at the kinks). */

nas_tensor *nas_hswish(nas_graph *g, nas_tensor *x) {
    return unary(g, x, NAS_OP_HSWISH);
}

static nas_status hswish_forward(nas_graph *g, nas_node *n) {
    (void)g;
    const float *x = n->src[0]->data;
    float *y = n->data;
    const int64_t len = n->numel;
    NAS_OMP_FOR_SIMD_IF(len >= NAS_PAR_MIN)
    for (int64_t i = 0; i < len; i++) {
        y[i] = x[i] * clampf(x[i] + 3.0f, 0.0f, 6.0f) / 6.0f;
    }
    return NAS_OK;
}

static void hswish_backward(nas_graph *g, nas_node *n) {
    (void)g;
    float *dx = n->src[0]->grad;
    if (dx == NULL) {
        return;
    }
    const float *x = n->src[0]->data, *dy = n->grad;
    const int64_t len = n->numel;
    NAS_OMP_FOR_SIMD_IF(len >= NAS_PAR_MIN)
    for (int64_t i = 0; i < len; i++) {
        const float v = x[i];
        const float d = v < -3.0f ? 0.0f : (v > 3.0f ? 1.0f : (2.0f * v + 3.0f) / 6.0f);
        dx[i] += d * dy[i];
    }
}

const nas_op_desc nas_op_hswish = {
    .name = "hswish", .forward = hswish_forward, .backward = hswish_backward};

/* ---- sigmoid: y = 1 / (1 + e^-x); dy/dx = y (1 - y), from the saved output */

nas_tensor *nas_sigmoid(nas_graph *g, nas_tensor *x) {
    return unary(g, x, NAS_OP_SIGMOID);
}

static inline float sigmoidf(float v) {
    return 1.0f / (1.0f + expf(-v));
}

static nas_status sigmoid_forward(nas_graph *g, nas_node *n) {
    (void)g;
    const float *x = n->src[0]->data;
    float *y = n->data;
    const int64_t len = n->numel;
    NAS_OMP_FOR_IF(len >= NAS_PAR_MIN / 8)
    for (int64_t i = 0; i < len; i++) {
        y[i] = sigmoidf(x[i]);
    }
    return NAS_OK;
}

static void sigmoid_backward(nas_graph *g, nas_node *n) {
    (void)g;
    float *dx = n->src[0]->grad;
    if (dx == NULL) {
        return;
    }
    const float *y = n->data, *dy = n->grad;
    const int64_t len = n->numel;
    NAS_OMP_FOR_SIMD_IF(len >= NAS_PAR_MIN)
    for (int64_t i = 0; i < len; i++) {
        dx[i] += dy[i] * y[i] * (1.0f - y[i]);
    }
}

const nas_op_desc nas_op_sigmoid = {
    .name = "sigmoid", .forward = sigmoid_forward, .backward = sigmoid_backward};

/* ---- swish / SiLU: y = x s(x), s = sigmoid; dy/dx = s (1 + x (1 - s)) */

nas_tensor *nas_swish(nas_graph *g, nas_tensor *x) {
    return unary(g, x, NAS_OP_SWISH);
}

static nas_status swish_forward(nas_graph *g, nas_node *n) {
    (void)g;
    const float *x = n->src[0]->data;
    float *y = n->data;
    const int64_t len = n->numel;
    NAS_OMP_FOR_IF(len >= NAS_PAR_MIN / 8)
    for (int64_t i = 0; i < len; i++) {
        y[i] = x[i] * sigmoidf(x[i]);
    }
    return NAS_OK;
}

static void swish_backward(nas_graph *g, nas_node *n) {
    (void)g;
    float *dx = n->src[0]->grad;
    if (dx == NULL) {
        return;
    }
    const float *x = n->src[0]->data, *dy = n->grad;
    const int64_t len = n->numel;
    NAS_OMP_FOR_IF(len >= NAS_PAR_MIN / 8)
    for (int64_t i = 0; i < len; i++) {
        const float s = sigmoidf(x[i]);
        dx[i] += dy[i] * s * (1.0f + x[i] * (1.0f - s));
    }
}

const nas_op_desc nas_op_swish = {
    .name = "swish", .forward = swish_forward, .backward = swish_backward};

/* ---- tanh: dy/dx = 1 - y^2, from the saved output */

nas_tensor *nas_tanh(nas_graph *g, nas_tensor *x) {
    return unary(g, x, NAS_OP_TANH);
}

static nas_status tanh_forward(nas_graph *g, nas_node *n) {
    (void)g;
    const float *x = n->src[0]->data;
    float *y = n->data;
    const int64_t len = n->numel;
    NAS_OMP_FOR_IF(len >= NAS_PAR_MIN / 8)
    for (int64_t i = 0; i < len; i++) {
        y[i] = tanhf(x[i]);
    }
    return NAS_OK;
}

static void tanh_backward(nas_graph *g, nas_node *n) {
    (void)g;
    float *dx = n->src[0]->grad;
    if (dx == NULL) {
        return;
    }
    const float *y = n->data, *dy = n->grad;
    const int64_t len = n->numel;
    NAS_OMP_FOR_SIMD_IF(len >= NAS_PAR_MIN)
    for (int64_t i = 0; i < len; i++) {
        dx[i] += dy[i] * (1.0f - y[i] * y[i]);
    }
}

const nas_op_desc nas_op_tanh = {
    .name = "tanh", .forward = tanh_forward, .backward = tanh_backward};

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
