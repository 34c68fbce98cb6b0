/* proxy_nwot.c - nwot, NASWOT (Mellor et al., "Neural Architecture Search without Training",
 * ICML 2021): log |det K| where, for the minibatch's examples i, j,
 *   K_ij = sum over ReLUs of (N_A - d_H(c_i, c_j)),
 * c_i the binary code (input > 0) of example i at that ReLU, N_A its number of units and d_H the
 * Hamming distance: the number of units on which the two examples agree. The reference code hooks
 * every nn.ReLU module and adds x x^T + (1 - x)(1 - x)^T per call, with the network in training
 * mode. Higher = predicted better.
 *
 * Matching the module count: our NB201 network shares one ReLU node between the conv edges that
 * leave the same cell node (each edge has its own nn.ReLU in PyTorch), and leaves the ReLU out
 * where its input is known to be zero. So a ReLU node counts once per node that reads it, and a
 * conv reading a zero node directly counts as a ReLU whose codes are all 0 (every pair agrees on
 * all its units, adding N_A to every entry).
 *
 * Kernel: codes are packed 64 units to a word and K_ij accumulates N_A - popcount(c_i xor c_j),
 * in integers (exact); log |det K| by LU with partial pivoting in double. */
#include "proxies_int.h"

#include <math.h>

/* Number of graph nodes reading node r. */
static int64_t readers(const nas_graph *g, const nas_node *r) {
    int64_t k = 0;
    for (int64_t i = r->index + 1; i < g->n_nodes; i++) {
        const nas_node *n = nas_graph_node(g, i);
        for (int s = 0; s < n->n_src; s++) {
            k += n->src[s] == r;
        }
    }
    return k;
}

/* Add mult * (agreements of the codes of x [B, D]) to K [B, B] (upper triangle). */
static void add_codes(const float *x, int64_t B, int64_t D, int64_t mult, uint64_t *bits,
                      int64_t *K) {
    const int64_t words = (D + 63) / 64;
    NAS_OMP_FOR
    for (int64_t b = 0; b < B; b++) {
        const float *xb = x + b * D;
        uint64_t *w = bits + b * words;
        for (int64_t k = 0; k < words; k++) {
            uint64_t v = 0;
            const int64_t end = nas_min_i64(64, D - k * 64);
            for (int64_t j = 0; j < end; j++) {
                v |= (uint64_t)(xb[k * 64 + j] > 0.0f) << j;
            }
            w[k] = v;
        }
    }
    NAS_OMP_FOR
    for (int64_t i = 0; i < B; i++) {
        for (int64_t j = i; j < B; j++) {
            const uint64_t *a = bits + i * words, *c = bits + j * words;
            int64_t diff = 0;
            for (int64_t k = 0; k < words; k++) {
                diff += __builtin_popcountll(a[k] ^ c[k]);
            }
            K[i * B + j] += mult * (D - diff);
        }
    }
}

/* log |det A| of the n x n matrix A (destroyed), by LU with partial pivoting; -inf if singular. */
static double log_abs_det(double *A, int64_t n) {
    double logdet = 0.0;
    for (int64_t c = 0; c < n; c++) {
        int64_t piv = c;
        for (int64_t r = c + 1; r < n; r++) {
            if (fabs(A[r * n + c]) > fabs(A[piv * n + c])) {
                piv = r;
            }
        }
        if (A[piv * n + c] == 0.0) {
            return -INFINITY;
        }
        if (piv != c) {
            for (int64_t k = 0; k < n; k++) {
                const double t = A[c * n + k];
                A[c * n + k] = A[piv * n + k];
                A[piv * n + k] = t;
            }
        }
        const double d = A[c * n + c];
        logdet += log(fabs(d));
        for (int64_t r = c + 1; r < n; r++) {
            const double f = A[r * n + c] / d;
            if (f != 0.0) {
                for (int64_t k = c + 1; k < n; k++) {
                    A[r * n + k] -= f * A[c * n + k];
                }
            }
        }
    }
    return logdet;
}

nas_status nas_proxy_nwot(nas_proxies *pr, const nas_proxy_pass *ps, double *out) {
    const nas_graph *g = ps->g;
    const int64_t B = ps->batch;
    int64_t max_words = 0;
    for (int64_t i = 0; i < g->n_nodes; i++) {
        const nas_node *n = nas_graph_node(g, i);
        if (n->op == NAS_OP_RELU) {
            max_words = nas_max_i64(max_words, (n->numel / B + 63) / 64);
        }
    }
    int64_t *K = nas_proxy_buf_reserve(pr->ctx, &pr->work[0], (size_t)(B * B) * sizeof(int64_t));
    uint64_t *bits = nas_proxy_buf_reserve(pr->ctx, &pr->work[1],
                                           (size_t)(B * (max_words > 0 ? max_words : 1)) * 8);
    double *A = nas_proxy_buf_reserve(pr->ctx, &pr->work[2], (size_t)(B * B) * sizeof(double));
    if (K == NULL || bits == NULL || A == NULL) {
        return NAS_ERR_NOMEM;
    }
    memset(K, 0, (size_t)(B * B) * sizeof(int64_t));
    int64_t n_relu = 0;
    for (int64_t i = 0; i < g->n_nodes; i++) {
        const nas_node *n = nas_graph_node(g, i);
        if (n->op == NAS_OP_RELU) {
            /* the codes from the output: y > 0 where x > 0, and x may be a sum or batch norm
             * folded into the ReLU, never written (ops/fuse.c) */
            add_codes(n->data, B, n->numel / B, readers(g, n), bits, K);
            n_relu++;
        } else if (n->op == NAS_OP_CONV2D && n->src[0]->op == NAS_OP_ZERO) {
            const int64_t D = n->src[0]->numel / B; /* relu(0): all codes 0, all agree */
            for (int64_t a = 0; a < B; a++) {
                for (int64_t b = a; b < B; b++) {
                    K[a * B + b] += D;
                }
            }
            n_relu++;
        }
    }
    if (n_relu == 0) {
        return nas_fail(pr->ctx, NAS_ERR_UNSUPPORTED, "nwot: the network has no ReLU");
    }
    for (int64_t a = 0; a < B; a++) {
        for (int64_t b = a; b < B; b++) {
            A[a * B + b] = A[b * B + a] = (double)K[a * B + b];
        }
    }
    *out = log_abs_det(A, B);
    return NAS_OK;
}
