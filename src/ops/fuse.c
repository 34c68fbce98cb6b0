/* fuse.c - work the planner merges across nodes, decided once the layouts are set
 * (nas_ops_plan_fusions, called by autograd/exec.c before buffers are placed):
 *
 * - convs reading one x run as a group on our Winograd (ops/conv.c, nas_conv_plan_groups);
 * - batch norms folded into the ReLU after them: relu(bn(a)) and relu(bn_1(a_1) + ... +
 *   bn_k(a_k)), the ReLUConvBN edges of NB201 and DARTS cells meeting at a node. The ReLU
 *   computes max(0, sum of (a_i - mean_i) scale_i + shift_i) from the convs' outputs and the
 *   statistics each batch norm's forward left in its aux; the batch norms' outputs and the sum
 *   are never written. That saves, per node of three edges, the norms' writes, the sum's reads
 *   and write and the ReLU's read: 16 of the 31 passes over a 4 MB activation an NB201 cell's
 *   forward makes at batch 64. Nothing reads those values later: a batch norm's backward reads
 *   its input, a sum's none, a ReLU's its own output. Same values as the unfolded ops, bit for
 *   bit (same float operations in the same order).
 *
 * Both only with gradients on, where every node keeps its own buffer to the end (exec.c): in
 * inference a released buffer is reused, and a group member's output, or a folded norm's input
 * read at the ReLU's place, could meet one still live. Folds only in blocked regions (the
 * planner's blocked layouts): those intermediate tensors are already not for reading (see
 * nas_graph_set_blocked_layouts). */
#include "conv_int.h"
#include "layout_int.h"
#include "simd_int.h"

enum { FOLD_MAX = 16 }; /* batch norms one ReLU takes */

/* Whether batch norm b, read by one node only, can be folded into ReLU r: blocked like r (its
 * forward's blocked path keeps the apply's coefficients in aux). */
static int foldable_norm(const nas_node *b, const nas_node *r) {
    return b->op == NAS_OP_BATCH_NORM && b->readers == 1 && b->block == r->block &&
           b->src[0]->block == r->block;
}

/* Fold into ReLU r what it can take: a batch norm, or a sum (add) of batch norms, that only r
 * reads. */
static void plan_relu_fold(nas_node *r) {
    nas_node *s = r->src[0];
    if (r->block == 0 || s->readers != 1 || s->block != r->block) {
        return;
    }
    if (foldable_norm(s, r)) {
        s->folded_into = r;
        return;
    }
    if ((s->op != NAS_OP_SUM && s->op != NAS_OP_ADD) || s->n_src > FOLD_MAX) {
        return;
    }
    for (int k = 0; k < s->n_src; k++) {
        if (!foldable_norm(s->src[k], r)) {
            return;
        }
    }
    s->folded_into = r;
    for (int k = 0; k < s->n_src; k++) {
        s->src[k]->folded_into = r;
    }
}

void nas_ops_plan_fusions(nas_graph *g) {
    nas_conv_plan_groups(g);
    for (int64_t i = 0; i < g->n_nodes; i++) {
        nas_graph_node(g, i)->folded_into = NULL;
    }
    if (!g->grad_enabled) {
        return;
    }
    for (int64_t i = 0; i < g->n_nodes; i++) {
        nas_node *n = nas_graph_node(g, i);
        if (n->op == NAS_OP_RELU) {
            plan_relu_fold(n);
        }
    }
}

/* One blocked tile [HW][B] (B a constant where inlined): y = max(0, sum over the k norms of
 * (a_i - mean_i) scale_i + shift_i), in the order the sum adds them; coef[i] is norm i's aux at
 * the tile's first channel (rows of C: NAS_BN_AUX_*). */
NAS_ALWAYS_INLINE void tile_folded(const float *const *a, int k, const float *const *coef,
                                   int64_t C, int64_t at, float *y, int64_t HW, const int64_t B) {
    for (int64_t p = 0; p < HW; p++) {
        float v[NAS_BLOCK_MAX];
        const float *a0 = a[0] + at + p * B, *m0 = coef[0] + NAS_BN_AUX_MEAN * C;
        const float *s0 = coef[0] + NAS_BN_AUX_SCALE * C, *h0 = coef[0] + NAS_BN_AUX_SHIFT * C;
        NAS_SIMD
        for (int64_t b = 0; b < B; b++) {
            v[b] = (a0[b] - m0[b]) * s0[b] + h0[b];
        }
        for (int i = 1; i < k; i++) {
            const float *ai = a[i] + at + p * B, *mi = coef[i] + NAS_BN_AUX_MEAN * C;
            const float *si = coef[i] + NAS_BN_AUX_SCALE * C, *hi = coef[i] + NAS_BN_AUX_SHIFT * C;
            NAS_SIMD
            for (int64_t b = 0; b < B; b++) {
                v[b] += (ai[b] - mi[b]) * si[b] + hi[b];
            }
        }
        float *yp = y + at + p * B;
        NAS_SIMD
        for (int64_t b = 0; b < B; b++) {
            yp[b] = v[b] < 0.0f ? 0.0f : v[b];
        }
    }
}

nas_status nas_relu_forward_folded(nas_graph *g, nas_node *r) {
    (void)g;
    const nas_node *s = r->src[0];
    const nas_node *const *norms = s->op == NAS_OP_BATCH_NORM ? &s : (const nas_node *const *)s->src;
    const int k = s->op == NAS_OP_BATCH_NORM ? 1 : s->n_src;
    const float *a[FOLD_MAX], *aux[FOLD_MAX];
    for (int i = 0; i < k; i++) {
        a[i] = norms[i]->src[0]->data;
        aux[i] = norms[i]->aux;
    }
    const int64_t N = r->shape[0], C = r->shape[1], HW = r->shape[2] * r->shape[3];
    const int64_t B = r->block, CB = C / B;
    NAS_OMP_FOR_IF(r->numel >= NAS_PAR_MIN)
    for (int64_t t = 0; t < N * CB; t++) {
        const int64_t c0 = (t % CB) * B;
        const float *coef[FOLD_MAX];
        for (int i = 0; i < k; i++) {
            coef[i] = aux[i] + c0;
        }
        if (B == 16) {
            tile_folded(a, k, coef, C, t * B * HW, r->data, HW, 16);
        } else {
            tile_folded(a, k, coef, C, t * B * HW, r->data, HW, 8);
        }
    }
    return NAS_OK;
}
