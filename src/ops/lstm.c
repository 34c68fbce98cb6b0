/* lstm.c - one LSTM cell step (the RL controller of NAS-RL / ENAS), PyTorch's LSTMCell:
 *   a = x w_ih^T + h w_hh^T + b            [N, 4H], gate blocks i, f, g, o
 *   i = s(a_i), f = s(a_f), g = tanh(a_g), o = s(a_o)      (s = sigmoid)
 *   c' = f c + i g,  h' = o tanh(c')
 * The node's output is [2, N, H]: h' then c'; the builder returns a view of each half.
 * aux keeps the activated gates [N, 4H] and tanh(c') [N, H] for backward:
 *   dc~ = dc' + dh' o (1 - tanh^2 c'),  do = dh' tanh c',  di = dc~ g,  dg = dc~ i,  df = dc~ c,
 *   dc += dc~ f, and through the activations da = (di i(1-i), df f(1-f), dg (1-g^2), do o(1-o));
 *   dx += da w_ih, dw_ih += da^T x, dh += da w_hh, dw_hh += da^T h, db += sum_n da.
 * The matrix products go through OpenBLAS. Sources: x, h, c, w_ih, w_hh [, b]. */
#include "ops_int.h"

#include <cblas.h>
#include <math.h>

static int check_2d(nas_graph *g, const nas_node *t, int64_t rows, int64_t cols, const char *what) {
    if (t->ndim != 2 || t->shape[0] != rows || t->shape[1] != cols) {
        char a[64];
        nas_graph_fail(g, NAS_ERR_SHAPE, "lstm_cell: %s has shape %s, want [%lld, %lld]", what,
                       nas_shape_str(t, a, sizeof a), (long long)rows, (long long)cols);
        return 0;
    }
    return 1;
}

nas_tensor *nas_lstm_cell(nas_graph *g, nas_tensor *x, nas_tensor *h, nas_tensor *c,
                          nas_tensor *w_ih, nas_tensor *w_hh, nas_tensor *b, nas_tensor **c_out) {
    if (c_out != NULL) {
        *c_out = NULL;
    }
    nas_tensor *src[6] = {x, h, c, w_ih, w_hh, b};
    if (!nas_ops_sources_ok(g, 5, src)) {
        return NULL;
    }
    char a[64], a2[64];
    if (x->ndim != 2 || h->ndim != 2) {
        return nas_graph_fail(g, NAS_ERR_SHAPE, "lstm_cell: input %s and hidden %s must be 2-d",
                              nas_shape_str(x, a, sizeof a), nas_shape_str(h, a2, sizeof a2));
    }
    const int64_t N = x->shape[0], In = x->shape[1], H = h->shape[1];
    if (!check_2d(g, h, N, H, "h") || !check_2d(g, c, N, H, "c") ||
        !check_2d(g, w_ih, 4 * H, In, "w_ih") || !check_2d(g, w_hh, 4 * H, H, "w_hh")) {
        return NULL;
    }
    if (b != NULL && (b->ndim != 1 || b->shape[0] != 4 * H)) {
        return nas_graph_fail(g, NAS_ERR_SHAPE, "lstm_cell: bias has shape %s, want [%lld]",
                              nas_shape_str(b, a, sizeof a), (long long)(4 * H));
    }
    nas_node *n = nas_graph_append(g, NAS_OP_LSTM_CELL, b != NULL ? 6 : 5, src);
    if (n == NULL) {
        return NULL;
    }
    const int64_t both[3] = {2, N, H}, half[2] = {N, H};
    nas_node_set_shape(n, 3, both);
    n->aux_bytes = (size_t)(5 * N * H) * sizeof(float);
    nas_tensor *h_new = nas_view_part(g, n, 0, 2, half);
    if (c_out != NULL) {
        *c_out = nas_view_part(g, n, N * H, 2, half);
    }
    return h_new;
}

static inline float sigm(float v) {
    return 1.0f / (1.0f + expf(-v));
}

static nas_status lstm_forward(nas_graph *g, nas_node *n) {
    const nas_node *x = n->src[0], *h = n->src[1], *c = n->src[2];
    const nas_node *w_ih = n->src[3], *w_hh = n->src[4], *b = n->n_src == 6 ? n->src[5] : NULL;
    const int N = (int)x->shape[0], In = (int)x->shape[1], H = (int)h->shape[1];
    float *gates = n->aux, *tc = gates + (int64_t)N * 4 * H;
    /* reserve backward's scratch here, where a failure can be reported */
    if (nas_graph_scratch(g, (size_t)N * 4 * (size_t)H * sizeof(float)) == NULL) {
        return nas_fail(g->ctx, NAS_ERR_NOMEM, "lstm_cell: out of memory for scratch");
    }
    for (int s = 0; s < N; s++) {
        float *row = gates + (int64_t)s * 4 * H;
        for (int j = 0; j < 4 * H; j++) {
            row[j] = b != NULL ? b->data[j] : 0.0f;
        }
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, 4 * H, In, 1.0f, x->data, In,
                w_ih->data, In, 1.0f, gates, 4 * H);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, 4 * H, H, 1.0f, h->data, H, w_hh->data,
                H, 1.0f, gates, 4 * H);
    float *h_new = n->data, *c_new = n->data + (int64_t)N * H;
    for (int s = 0; s < N; s++) {
        float *gi = gates + (int64_t)s * 4 * H, *gf = gi + H, *gg = gf + H, *go = gg + H;
        for (int j = 0; j < H; j++) {
            gi[j] = sigm(gi[j]);
            gf[j] = sigm(gf[j]);
            gg[j] = tanhf(gg[j]);
            go[j] = sigm(go[j]);
            const int64_t k = (int64_t)s * H + j;
            c_new[k] = gf[j] * c->data[k] + gi[j] * gg[j];
            tc[k] = tanhf(c_new[k]);
            h_new[k] = go[j] * tc[k];
        }
    }
    return NAS_OK;
}

static void lstm_backward(nas_graph *g, nas_node *n) {
    const nas_node *x = n->src[0], *h = n->src[1], *c = n->src[2];
    const nas_node *w_ih = n->src[3], *w_hh = n->src[4], *b = n->n_src == 6 ? n->src[5] : NULL;
    const int N = (int)x->shape[0], In = (int)x->shape[1], H = (int)h->shape[1];
    const float *gates = n->aux, *tc = gates + (int64_t)N * 4 * H;
    const float *dh_new = n->grad, *dc_new = n->grad + (int64_t)N * H;
    /* forward reserved this much scratch and scratch never shrinks: no allocation here */
    float *da = nas_graph_scratch(g, (size_t)N * 4 * (size_t)H * sizeof(float));
    NAS_ASSERT(da != NULL);
    for (int s = 0; s < N; s++) {
        const float *gi = gates + (int64_t)s * 4 * H, *gf = gi + H, *gg = gf + H, *go = gg + H;
        float *di = da + (int64_t)s * 4 * H, *df = di + H, *dg = df + H, *dout = dg + H;
        for (int j = 0; j < H; j++) {
            const int64_t k = (int64_t)s * H + j;
            const float dct = dc_new[k] + dh_new[k] * go[j] * (1.0f - tc[k] * tc[k]);
            dout[j] = dh_new[k] * tc[k] * go[j] * (1.0f - go[j]);
            di[j] = dct * gg[j] * gi[j] * (1.0f - gi[j]);
            dg[j] = dct * gi[j] * (1.0f - gg[j] * gg[j]);
            df[j] = dct * c->data[k] * gf[j] * (1.0f - gf[j]);
            if (c->grad != NULL) {
                c->grad[k] += dct * gf[j];
            }
        }
    }
    if (x->grad != NULL) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, In, 4 * H, 1.0f, da, 4 * H,
                    w_ih->data, In, 1.0f, x->grad, In);
    }
    if (w_ih->grad != NULL) {
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, 4 * H, In, N, 1.0f, da, 4 * H, x->data,
                    In, 1.0f, w_ih->grad, In);
    }
    if (h->grad != NULL) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, H, 4 * H, 1.0f, da, 4 * H,
                    w_hh->data, H, 1.0f, h->grad, H);
    }
    if (w_hh->grad != NULL) {
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, 4 * H, H, N, 1.0f, da, 4 * H, h->data,
                    H, 1.0f, w_hh->grad, H);
    }
    if (b != NULL && b->grad != NULL) {
        for (int j = 0; j < 4 * H; j++) {
            double acc = 0.0;
            for (int s = 0; s < N; s++) {
                acc += (double)da[(int64_t)s * 4 * H + j];
            }
            b->grad[j] += (float)acc;
        }
    }
}

static int64_t lstm_macs(const nas_node *n) {
    const int64_t N = n->src[0]->shape[0], In = n->src[0]->shape[1], H = n->src[1]->shape[1];
    return N * 4 * H * (In + H);
}

const nas_op_desc nas_op_lstm_cell = {
    .name = "lstm_cell", .forward = lstm_forward, .backward = lstm_backward, .macs = lstm_macs};
