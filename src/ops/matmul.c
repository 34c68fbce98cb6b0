/* matmul.c - batched matrix product through OpenBLAS sgemm (the attention block's q k^T and
 * attn v). a [..., M, K] (trans_a: stored [..., K, M]), b [..., K, N] (trans_b: [..., N, K]):
 * y [..., M, N] = alpha op(a) op(b) for every index of the leading (batch) dims, which must be
 * equal (no broadcasting). iparam: 0 trans_a, 1 trans_b; fparam[0] alpha.
 * Backward (G = dy): d op(a) = alpha G op(b)^T, d op(b) = alpha op(a)^T G, written back in the
 * stored layout (transposed where the operand was). One sgemm per batch entry, in order, so the
 * result does not depend on how the batches are split. */
#include "ops_int.h"

#include <cblas.h>

typedef struct mm_dims {
    int64_t batch;
    int M, N, K;
} mm_dims;

static mm_dims dims_of(const nas_node *n) {
    const nas_node *a = n->src[0], *b = n->src[1];
    const int nd = n->ndim;
    mm_dims d;
    d.batch = n->numel / (n->shape[nd - 2] * n->shape[nd - 1]);
    d.M = (int)n->shape[nd - 2];
    d.N = (int)n->shape[nd - 1];
    d.K = (int)(n->iparam[0] ? a->shape[nd - 2] : a->shape[nd - 1]);
    (void)b;
    return d;
}

nas_tensor *nas_matmul(nas_graph *g, nas_tensor *a, nas_tensor *b, int trans_a, int trans_b,
                       float alpha) {
    nas_tensor *src[2] = {a, b};
    if (!nas_ops_sources_ok(g, 2, src)) {
        return NULL;
    }
    char sa[64], sb[64];
    const int nd = a->ndim;
    int fits = nd >= 2 && b->ndim == nd;
    for (int i = 0; fits && i < nd - 2; i++) {
        fits = a->shape[i] == b->shape[i];
    }
    const int64_t M = fits ? a->shape[nd - (trans_a ? 1 : 2)] : 0;
    const int64_t Ka = fits ? a->shape[nd - (trans_a ? 2 : 1)] : 0;
    const int64_t Kb = fits ? b->shape[nd - (trans_b ? 1 : 2)] : 0;
    const int64_t N = fits ? b->shape[nd - (trans_b ? 2 : 1)] : 0;
    if (!fits || Ka != Kb || M > INT32_MAX || N > INT32_MAX || Ka > INT32_MAX) {
        return nas_graph_fail(
            g, NAS_ERR_SHAPE,
            "matmul: %s%s times %s%s (want [..., M, K] and [..., K, N] with equal "
            "leading dims, 2..4 dims)",
            nas_shape_str(a, sa, sizeof sa), trans_a ? "^T" : "", nas_shape_str(b, sb, sizeof sb),
            trans_b ? "^T" : "");
    }
    nas_node *n = nas_graph_append(g, NAS_OP_MATMUL, 2, src);
    if (n != NULL) {
        int64_t shape[NAS_MAX_DIMS];
        memcpy(shape, a->shape, sizeof shape);
        shape[nd - 2] = M;
        shape[nd - 1] = N;
        nas_node_set_shape(n, nd, shape);
        n->iparam[0] = trans_a != 0;
        n->iparam[1] = trans_b != 0;
        n->fparam[0] = alpha;
    }
    return n;
}

static CBLAS_TRANSPOSE tr(int t) {
    return t ? CblasTrans : CblasNoTrans;
}

static nas_status matmul_forward(nas_graph *g, nas_node *n) {
    (void)g;
    const mm_dims d = dims_of(n);
    const int ta = n->iparam[0], tb = n->iparam[1];
    const float *a = n->src[0]->data, *b = n->src[1]->data;
    const int lda = ta ? d.M : d.K, ldb = tb ? d.K : d.N;
    for (int64_t i = 0; i < d.batch; i++) {
        cblas_sgemm(CblasRowMajor, tr(ta), tr(tb), d.M, d.N, d.K, n->fparam[0], a + i * d.M * d.K,
                    lda, b + i * d.K * d.N, ldb, 0.0f, n->data + i * d.M * d.N, d.N);
    }
    return NAS_OK;
}

static void matmul_backward(nas_graph *g, nas_node *n) {
    (void)g;
    const mm_dims d = dims_of(n);
    const int ta = n->iparam[0], tb = n->iparam[1];
    const nas_node *an = n->src[0], *bn = n->src[1];
    const float alpha = n->fparam[0];
    const int lda = ta ? d.M : d.K, ldb = tb ? d.K : d.N;
    for (int64_t i = 0; i < d.batch; i++) {
        const float *G = n->grad + i * d.M * d.N;
        const float *a = an->data + i * d.M * d.K, *b = bn->data + i * d.K * d.N;
        if (an->grad != NULL) {
            float *da = an->grad + i * d.M * d.K;
            if (!ta) { /* da [M, K] += G [M, N] op(b)^T */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, tr(!tb), d.M, d.K, d.N, alpha, G, d.N, b,
                            ldb, 1.0f, da, lda);
            } else { /* da [K, M] += op(b) [K, N] G^T */
                cblas_sgemm(CblasRowMajor, tr(tb), CblasTrans, d.K, d.M, d.N, alpha, b, ldb, G, d.N,
                            1.0f, da, lda);
            }
        }
        if (bn->grad != NULL) {
            float *db = bn->grad + i * d.K * d.N;
            if (!tb) { /* db [K, N] += op(a)^T [K, M] G */
                cblas_sgemm(CblasRowMajor, tr(!ta), CblasNoTrans, d.K, d.N, d.M, alpha, a, lda, G,
                            d.N, 1.0f, db, ldb);
            } else { /* db [N, K] += G^T [N, M] op(a) */
                cblas_sgemm(CblasRowMajor, CblasTrans, tr(ta), d.N, d.K, d.M, alpha, G, d.N, a, lda,
                            1.0f, db, ldb);
            }
        }
    }
}

static int64_t matmul_macs(const nas_node *n) {
    const mm_dims d = dims_of(n);
    return d.batch * d.M * d.N * d.K;
}

const nas_op_desc nas_op_matmul = {
    .name = "matmul", .forward = matmul_forward, .backward = matmul_backward, .macs = matmul_macs};
