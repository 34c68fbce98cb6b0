/* proxy_grasp.c - grasp (Wang et al., "Picking Winning Tickets Before Training by Preserving
 * Gradient Flow", ICLR 2020; as zero-cost-nas measures/grasp.py): with g = dL/dW the gradient of
 * the mean cross-entropy over the conv and linear weights W (training mode) and H the Hessian of
 * L with respect to all parameters,
 *   score = -sum over conv/linear weights of  W * (H g)
 * (the reference takes the gradient of z = g(W) . stopgrad(g) by a second backward; only the
 * conv/linear weights enter g and the score). Higher = predicted better.
 *
 * Our engine has no double backward, so H g comes from central finite differences of the
 * gradient along g (the conv/linear weights moved, everything else fixed):
 *   H g ~ [ -g(W + 2 e g) + 8 g(W + e g) - 8 g(W - e g) + g(W - 2 e g) ] / (12 e),
 * a fourth-order stencil, e ||g|| = REL_STEP ||W|| = 3e-4 ||W||. Measured against PyTorch's
 * double backward on small NB201 networks (tests/py_proxies_torch.py): the truncation error
 * grows as e^4 (3e-3: 1-3%, 1e-3: 4e-4) and float32 rounding as 1/e (1e-4: 2e-4); 3e-4 gives
 * 2e-5 .. 1.5e-4 relative, the floor of a float32 difference quotient. Four extra forward and
 * backward passes.
 *
 * ReLU masks are frozen. Autograd's double backward treats ReLU'' as 0; a finite difference of
 * the gradient does not: every unit whose input crosses 0 inside the step adds a jump, and with
 * tens of thousands of units near 0 those jumps do not vanish as the step shrinks (the
 * difference quotient measures the distributional Hessian, kinks included). So for the perturbed
 * passes every ReLU node is turned into a multiplication by its 0/1 mask at the unperturbed
 * weights (relu_frozen, the node rewritten in place, the masks appended as input leaves in the
 * layout the ReLU's input has, undone afterwards).
 * The network is then smooth in W (conv, BN with batch statistics, softmax) and the difference
 * converges to the autograd value. Other kinks (max pool, ReLU6, hard swish) are not frozen.
 * The driver restores the weights afterwards. */
#include "proxies_int.h"

#include <math.h>

#define REL_STEP 3e-4

static const double stencil_at[4] = {2.0, 1.0, -1.0, -2.0};
static const double stencil_w[4] = {-1.0, 8.0, -8.0, 1.0};
#define STENCIL_DIV 12.0

/* Turn every ReLU node of g into relu_frozen with mask = [x > 0] now; returns the number of
 * mask leaves appended (-1 on allocation failure). */
static int64_t freeze_relus(nas_proxies *pr, nas_graph *g) {
    const int64_t n0 = g->n_nodes;
    int64_t total = 0;
    for (int64_t i = 0; i < n0; i++) {
        const nas_node *n = nas_graph_node(g, i);
        total += n->op == NAS_OP_RELU ? n->numel : 0;
    }
    float *mask = nas_proxy_buf_reserve(pr->ctx, &pr->work[2], (size_t)(total > 0 ? total : 1) * sizeof(float));
    if (mask == NULL) {
        return -1;
    }
    int64_t at = 0;
    for (int64_t i = 0; i < n0; i++) {
        nas_node *n = nas_graph_node(g, i);
        if (n->op != NAS_OP_RELU) {
            continue;
        }
        const float *y = n->data; /* y > 0 where x > 0; x may be folded (ops/fuse.c) */
        float *m = mask + at;
        NAS_OMP_FOR_IF(n->numel >= NAS_PAR_MIN)
        for (int64_t k = 0; k < n->numel; k++) {
            m[k] = y[k] > 0.0f ? 1.0f : 0.0f;
        }
        nas_node *leaf = nas_input(g, n->ndim, n->shape, m);
        if (leaf == NULL) {
            return -1;
        }
        nas_relu_freeze(nas_graph_node(g, i), leaf);
        at += n->numel;
    }
    g->planned = 0;
    return g->n_nodes - n0;
}

/* Undo freeze_relus: the appended leaves are the last `added` nodes. */
static void thaw_relus(nas_graph *g, int64_t added) {
    const int64_t n0 = g->n_nodes - added;
    for (int64_t i = 0; i < n0; i++) {
        nas_node *n = nas_graph_node(g, i);
        if (n->op == NAS_OP_RELU_FROZEN) {
            nas_relu_thaw(n);
        }
    }
    g->n_nodes = n0;
    g->planned = 0;
}

nas_status nas_proxy_grasp(nas_proxies *pr, const nas_proxy_pass *ps, double *out) {
    nas_params *p = ps->p;
    const int64_t total = nas_params_total(p), np = nas_params_count(p);
    const float *w0 = pr->snapshot.p, *g0 = pr->grad0.p;
    double *hg = nas_proxy_buf_reserve(pr->ctx, &pr->work[3], (size_t)total * sizeof(double));
    if (hg == NULL) {
        return NAS_ERR_NOMEM;
    }
    double ww = 0.0, gg = 0.0;
    for (nas_param_id id = 0; id < np; id++) {
        if (!ps->is_weight[id]) {
            continue;
        }
        const int64_t off = nas_param_offset(p, id);
        for (int64_t i = 0, n = nas_param_numel(p, id); i < n; i++) {
            ww += (double)w0[off + i] * (double)w0[off + i];
            gg += (double)g0[off + i] * (double)g0[off + i];
            hg[off + i] = 0.0;
        }
    }
    if (!(gg > 0.0)) {
        *out = 0.0; /* no gradient reaches the weights: H g = 0 */
        return NAS_OK;
    }
    const double eps = REL_STEP * sqrt(ww) / sqrt(gg);
    const int64_t added = freeze_relus(pr, ps->g);
    if (added < 0) {
        return NAS_ERR_NOMEM;
    }
    float *w = nas_params_data(p);
    const float *grad = nas_params_grad(p);
    nas_status st = NAS_OK;
    for (int s = 0; s < 4 && st == NAS_OK; s++) {
        const double step = stencil_at[s] * eps;
        for (nas_param_id id = 0; id < np; id++) {
            if (ps->is_weight[id]) {
                const int64_t off = nas_param_offset(p, id), n = nas_param_numel(p, id);
                NAS_OMP_FOR_IF(n >= NAS_PAR_MIN)
                for (int64_t i = off; i < off + n; i++) {
                    w[i] = (float)((double)w0[i] + step * (double)g0[i]);
                }
            }
        }
        st = nas_graph_forward(ps->g);
        if (st == NAS_OK) {
            nas_params_zero_grad(p);
            st = nas_graph_backward(ps->g, ps->loss);
        }
        for (nas_param_id id = 0; id < np; id++) {
            if (ps->is_weight[id]) {
                const int64_t off = nas_param_offset(p, id), n = nas_param_numel(p, id);
                NAS_OMP_FOR_IF(n >= NAS_PAR_MIN)
                for (int64_t i = off; i < off + n; i++) {
                    hg[i] += stencil_w[s] * (double)grad[i];
                }
            }
        }
    }
    thaw_relus(ps->g, added);
    if (st != NAS_OK) {
        return st;
    }
    double score = 0.0;
    for (nas_param_id id = 0; id < np; id++) {
        if (ps->is_weight[id]) {
            const int64_t off = nas_param_offset(p, id);
            for (int64_t i = 0, n = nas_param_numel(p, id); i < n; i++) {
                score -= (double)w0[off + i] * hg[off + i] / (STENCIL_DIV * eps);
            }
        }
    }
    *out = score;
    return NAS_OK;
}
