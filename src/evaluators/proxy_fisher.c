/* proxy_fisher.c - fisher (Theis et al. 2018, Turner et al. 2020, as zero-cost-nas
 * measures/fisher.py): for the output activation a [N, K, H, W] of every conv2d (and [N, K] of
 * every linear) node, with g = dL/da (L the mean cross-entropy, training mode),
 *   fisher_k = 0.5 * mean_n ( sum_hw a[n,k,h,w] g[n,k,h,w] )^2
 * per output channel k. zero-cost-nas then broadcasts each channel's value over that channel's
 * weights (weight.shape[1:]) before summing, so the score is
 *   sum over conv/linear nodes, channels k of fisher_k * numel(W) / K.
 * The activation includes the bias (F.conv2d / F.linear with bias, before BN). A layer run twice
 * adds its two terms, as the reference's accumulation does. Higher = predicted better.
 * Reads the activations and their gradients kept by the driver's backward of the loss; a conv
 * output in a blocked layout (src/ops/layout.c) is read tile by tile, its channels in lanes. */
#include "proxies_int.h"

#include "ops/layout_int.h"
#include "ops/simd_int.h"

/* fisher_k * numel(W) / K of one output channel k of conv/linear node n. */
static double channel_fisher(const nas_node *n, int64_t k, double per_channel) {
    const int64_t N = n->shape[0], K = n->shape[1];
    const int64_t HW = n->ndim == 4 ? n->shape[2] * n->shape[3] : 1;
    double sq = 0.0;
    for (int64_t b = 0; b < N; b++) {
        const float *a = n->data + (b * K + k) * HW, *g = n->grad + (b * K + k) * HW;
        double s = 0.0;
        NAS_SIMD_SUM1(s)
        for (int64_t i = 0; i < HW; i++) {
            s += (double)a[i] * (double)g[i];
        }
        sq += s * s;
    }
    return 0.5 * sq / (double)N * per_channel;
}

/* out[b] = sum over the pixels of one blocked tile [HW][B] of a g in lane b (B a constant where
 * inlined: the sums stay in registers). */
NAS_ALWAYS_INLINE void tile_sums(const float *a, const float *g, int64_t HW, const int64_t B,
                                 double *out) {
    double s[NAS_BLOCK_MAX] = {0};
    for (int64_t i = 0; i < HW; i++) {
        NAS_SIMD
        for (int64_t b = 0; b < B; b++) {
            s[b] += (double)a[i * B + b] * (double)g[i * B + b];
        }
    }
    for (int64_t b = 0; b < B; b++) {
        out[b] = s[b];
    }
}

/* sums[b K + k] = sum_hw a g of example b, channel k, for a blocked node (tile t = (b, k / B)
 * holds [HW][B], channel k in lane k mod B; block sizes 8 and 16). */
static void blocked_sums(const nas_node *n, double *sums) {
    const int64_t B = n->block, HW = n->shape[2] * n->shape[3];
    NAS_OMP_FOR_IF(n->numel >= NAS_PAR_MIN)
    for (int64_t t = 0; t < n->numel / (B * HW); t++) {
        const float *a = n->data + t * B * HW, *g = n->grad + t * B * HW;
        if (B == 16) {
            tile_sums(a, g, HW, 16, sums + t * B);
        } else {
            tile_sums(a, g, HW, 8, sums + t * B);
        }
    }
}

/* The channels run in parallel (each node's activation and gradient are read once, tens of MB
 * per network); their terms are summed in channel order, so the score does not depend on the
 * thread count. terms holds N K doubles. */
static double node_fisher(const nas_node *n, const nas_params *p, double *terms) {
    const int64_t N = n->shape[0], K = n->shape[1];
    const nas_param_id w = nas_proxy_weight_of(n);
    const double per_channel = (double)nas_param_numel(p, w) / (double)nas_param_dim(p, w, 0);
    if (n->block != 0) {
        blocked_sums(n, terms);
        for (int64_t k = 0; k < K; k++) { /* as channel_fisher: squares added in example order */
            double sq = 0.0;
            for (int64_t b = 0; b < N; b++) {
                sq += terms[b * K + k] * terms[b * K + k];
            }
            terms[k] = 0.5 * sq / (double)N * per_channel;
        }
    } else {
        NAS_OMP_FOR_IF(n->numel >= NAS_PAR_MIN)
        for (int64_t k = 0; k < K; k++) {
            terms[k] = channel_fisher(n, k, per_channel);
        }
    }
    double total = 0.0;
    for (int64_t k = 0; k < K; k++) {
        total += terms[k];
    }
    return total;
}

nas_status nas_proxy_fisher(nas_proxies *pr, const nas_proxy_pass *ps, double *out) {
    double score = 0.0;
    for (int64_t i = 0; i < ps->g->n_nodes; i++) {
        const nas_node *n = nas_graph_node(ps->g, i);
        if (nas_proxy_weight_of(n) < 0 || n->grad == NULL || n->data == NULL) {
            continue;
        }
        /* grows only for a node wider than every earlier one */
        double *terms = nas_proxy_buf_reserve(pr->ctx, &pr->work[0],
                                              (size_t)(n->shape[0] * n->shape[1]) * sizeof(double));
        if (terms == NULL) {
            return NAS_ERR_NOMEM;
        }
        score += node_fisher(n, ps->p, terms);
    }
    *out = score;
    return NAS_OK;
}
