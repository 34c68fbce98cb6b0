/* loss.c - softmax and the losses built on it: softmax cross-entropy with label smoothing
 * (PyTorch's CrossEntropyLoss(label_smoothing = eps), mean over the batch) and the distillation
 * KL divergence. Rows are small (K classes), so each row is done in double with a numerically
 * stable log-sum-exp (max subtracted first); losses sum the rows in order (deterministic).
 * Forward keeps the probabilities in aux for backward. */
#include "ops_int.h"
#include "simd_int.h"

#include <math.h>

/* p[k] = softmax(scale z)[k] for one row of K; returns log sum_k exp(scale z_k) (in double). */
static double softmax_row(const float *z, int64_t K, double scale, float *p) {
    double m = -INFINITY;
    for (int64_t k = 0; k < K; k++) {
        m = fmax(m, scale * (double)z[k]);
    }
    double s = 0.0;
    for (int64_t k = 0; k < K; k++) {
        s += exp(scale * (double)z[k] - m);
    }
    for (int64_t k = 0; k < K; k++) {
        p[k] = (float)(exp(scale * (double)z[k] - m) / s);
    }
    return m + log(s);
}

/* ---- softmax over the last dimension: dx = y (dy - sum_k dy_k y_k) */

nas_tensor *nas_softmax(nas_graph *g, nas_tensor *x) {
    if (!nas_ops_sources_ok(g, 1, &x)) {
        return NULL;
    }
    return nas_ops_append_like(g, NAS_OP_SOFTMAX, 1, &x, x);
}

static nas_status softmax_forward(nas_graph *g, nas_node *n) {
    (void)g;
    const int64_t K = n->shape[n->ndim - 1], rows = n->numel / K;
    const float *x = n->src[0]->data;
    NAS_OMP_FOR_IF(n->numel >= NAS_PAR_MIN / 8)
    for (int64_t r = 0; r < rows; r++) {
        softmax_row(x + r * K, K, 1.0, n->data + r * K);
    }
    return NAS_OK;
}

static void softmax_backward(nas_graph *g, nas_node *n) {
    (void)g;
    float *dx = n->src[0]->grad;
    if (dx == NULL) {
        return;
    }
    const int64_t K = n->shape[n->ndim - 1], rows = n->numel / K;
    NAS_OMP_FOR_IF(n->numel >= NAS_PAR_MIN / 8)
    for (int64_t r = 0; r < rows; r++) {
        const float *y = n->data + r * K, *dy = n->grad + r * K;
        double dot = 0.0;
        for (int64_t k = 0; k < K; k++) {
            dot += (double)dy[k] * (double)y[k];
        }
        for (int64_t k = 0; k < K; k++) {
            dx[r * K + k] += (float)((double)y[k] * ((double)dy[k] - dot));
        }
    }
}

const nas_op_desc nas_op_softmax = {
    .name = "softmax", .forward = softmax_forward, .backward = softmax_backward};

/* ---- softmax cross-entropy: loss = mean_n [lse(z_n) - sum_k t_nk z_nk],
 * t = (1 - eps) one_hot(label) + eps / K. dz = (softmax(z) - t) / N. Output [1]. */

nas_tensor *nas_softmax_cross_entropy(nas_graph *g, nas_tensor *logits, nas_tensor *labels,
                                      float label_smoothing) {
    nas_tensor *src[2] = {logits, labels};
    if (!nas_ops_sources_ok(g, 2, src)) {
        return NULL;
    }
    char a[64], b[64];
    if (labels->op != NAS_OP_LABELS) {
        return nas_graph_fail(g, NAS_ERR_ARG,
                              "softmax_cross_entropy: labels must come from "
                              "nas_labels, got a %s tensor",
                              nas_op_get(labels->op)->name);
    }
    if (logits->ndim != 2 || labels->numel != logits->shape[0]) {
        return nas_graph_fail(
            g, NAS_ERR_SHAPE, "softmax_cross_entropy: logits %s (want [N, K]) with %s labels",
            nas_shape_str(logits, a, sizeof a), nas_shape_str(labels, b, sizeof b));
    }
    if (!(label_smoothing >= 0.0f && label_smoothing <= 1.0f)) {
        return nas_graph_fail(g, NAS_ERR_ARG,
                              "softmax_cross_entropy: label smoothing %g outside "
                              "[0, 1]",
                              (double)label_smoothing);
    }
    const int64_t one = 1;
    nas_node *n = nas_graph_append(g, NAS_OP_SOFTMAX_CROSS_ENTROPY, 2, src);
    if (n != NULL) {
        nas_node_set_shape(n, 1, &one);
        n->fparam[0] = label_smoothing;
        n->aux_bytes = (size_t)logits->numel * sizeof(float); /* softmax(z) */
    }
    return n;
}

static nas_status ce_forward(nas_graph *g, nas_node *n) {
    const nas_node *z = n->src[0];
    const int32_t *labels = n->src[1]->labels;
    const int64_t N = z->shape[0], K = z->shape[1];
    const double eps = (double)n->fparam[0];
    if (labels == NULL) {
        return nas_fail(g->ctx, NAS_ERR_STATE, "softmax_cross_entropy: the labels have no data");
    }
    for (int64_t i = 0; i < N; i++) {
        if (labels[i] < 0 || labels[i] >= K) {
            return nas_fail(g->ctx, NAS_ERR_ARG,
                            "softmax_cross_entropy: label %lld is %d, outside [0, %lld)",
                            (long long)i, (int)labels[i], (long long)K);
        }
    }
    float *p = n->aux;
    double total = 0.0;
    for (int64_t i = 0; i < N; i++) {
        const float *row = z->data + i * K;
        const double lse = softmax_row(row, K, 1.0, p + i * K);
        double zsum = 0.0;
        for (int64_t k = 0; k < K; k++) {
            zsum += (double)row[k];
        }
        total += lse - (1.0 - eps) * (double)row[labels[i]] - eps / (double)K * zsum;
    }
    n->data[0] = (float)(total / (double)N);
    return NAS_OK;
}

static void ce_backward(nas_graph *g, nas_node *n) {
    (void)g;
    float *dz = n->src[0]->grad;
    if (dz == NULL) {
        return;
    }
    const int32_t *labels = n->src[1]->labels;
    const int64_t N = n->src[0]->shape[0], K = n->src[0]->shape[1];
    const float eps = n->fparam[0], *p = n->aux;
    const float scale = n->grad[0] / (float)N, off = eps / (float)K;
    for (int64_t i = 0; i < N; i++) {
        for (int64_t k = 0; k < K; k++) {
            const float t = (k == labels[i] ? 1.0f - eps : 0.0f) + off;
            dz[i * K + k] += scale * (p[i * K + k] - t);
        }
    }
}

const nas_op_desc nas_op_softmax_cross_entropy = {
    .name = "softmax_cross_entropy", .forward = ce_forward, .backward = ce_backward};

/* ---- distillation KL: with q = softmax(s / T), p = softmax(t / T),
 * loss = T^2 / N sum_n sum_k p (log p - log q); ds = T / N (q - p). Output [1].
 * aux holds q then p. The teacher gets no gradient even if it has one. */

nas_tensor *nas_kl_div(nas_graph *g, nas_tensor *student_logits, nas_tensor *teacher_logits,
                       float temperature) {
    nas_tensor *src[2] = {student_logits, teacher_logits};
    if (!nas_ops_sources_ok(g, 2, src)) {
        return NULL;
    }
    char a[64], b[64];
    if (student_logits->ndim != 2 || !nas_same_shape(student_logits, teacher_logits)) {
        return nas_graph_fail(
            g, NAS_ERR_SHAPE, "kl_div: student %s and teacher %s (want both [N, K])",
            nas_shape_str(student_logits, a, sizeof a), nas_shape_str(teacher_logits, b, sizeof b));
    }
    if (!(temperature > 0.0f) || !isfinite(temperature)) {
        return nas_graph_fail(g, NAS_ERR_ARG, "kl_div: temperature %g must be > 0",
                              (double)temperature);
    }
    const int64_t one = 1;
    nas_node *n = nas_graph_append(g, NAS_OP_KL_DIV, 2, src);
    if (n != NULL) {
        nas_node_set_shape(n, 1, &one);
        n->fparam[0] = temperature;
        n->aux_bytes = 2 * (size_t)student_logits->numel * sizeof(float);
    }
    return n;
}

static nas_status kl_forward(nas_graph *g, nas_node *n) {
    (void)g;
    const nas_node *s = n->src[0], *t = n->src[1];
    const int64_t N = s->shape[0], K = s->shape[1];
    const double T = (double)n->fparam[0];
    float *q = n->aux, *p = q + N * K;
    double total = 0.0;
    for (int64_t i = 0; i < N; i++) {
        const double lse_s = softmax_row(s->data + i * K, K, 1.0 / T, q + i * K);
        const double lse_t = softmax_row(t->data + i * K, K, 1.0 / T, p + i * K);
        for (int64_t k = 0; k < K; k++) {
            const double log_p = (double)t->data[i * K + k] / T - lse_t;
            const double log_q = (double)s->data[i * K + k] / T - lse_s;
            total += exp(log_p) * (log_p - log_q);
        }
    }
    n->data[0] = (float)(total * T * T / (double)N);
    return NAS_OK;
}

static void kl_backward(nas_graph *g, nas_node *n) {
    (void)g;
    float *ds = n->src[0]->grad;
    if (ds == NULL) {
        return;
    }
    const int64_t len = n->src[0]->numel, N = n->src[0]->shape[0];
    const float *q = n->aux, *p = q + len;
    const float scale = n->grad[0] * n->fparam[0] / (float)N;
    for (int64_t i = 0; i < len; i++) {
        ds[i] += scale * (q[i] - p[i]);
    }
}

const nas_op_desc nas_op_kl_div = {
    .name = "kl_div", .forward = kl_forward, .backward = kl_backward};
