/* proxy_jacob_cov.c - jacob_cov (Mellor et al., "Neural Architecture Search without Training",
 * arXiv v1 2020; zero-cost-nas measures/jacob_cov.py): J = dR/dx for the minibatch x [B, ...],
 * R = sum of all logits (backward of ones), network in training mode, so row b of J is example
 * b's input gradient. C = corrcoef(J) (B x B: rows are the variables, as numpy.corrcoef),
 * eigenvalues v of C, and
 *   score = -sum_i [ log(v_i + k) + 1 / (v_i + k) ],  k = 1e-5.
 * Higher = predicted better. The correlation and the eigenvalues (LAPACK dsyev, C is symmetric)
 * are in double. A constant row makes C undefined: the score is then NaN, as numpy gives. */
#include "proxies_int.h"

#include <cblas.h>
#include <math.h>

/* LAPACK (OpenBLAS ships it): eigenvalues of a symmetric matrix. The trailing lengths are the
 * Fortran hidden string lengths of jobz and uplo. */
extern void dsyev_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda,
                   double *w, double *work, const int *lwork, int *info, size_t, size_t);

nas_status nas_proxy_jacob_cov(nas_proxies *pr, const nas_proxy_pass *ps, double *out) {
    nas_ctx *ctx = pr->ctx;
    const int64_t B = ps->batch, D = ps->x->numel / B;
    const int64_t nl = ps->logits->numel;
    float *ones = nas_proxy_buf_reserve(ctx, &pr->work[0], (size_t)nl * sizeof(float));
    double *J = nas_proxy_buf_reserve(ctx, &pr->work[1], (size_t)(B * D) * sizeof(double));
    const int lwork = (int)(8 * B + 64);
    double *C = nas_proxy_buf_reserve(ctx, &pr->work[2],
                                      (size_t)(B * B + B + lwork) * sizeof(double));
    if (ones == NULL || J == NULL || C == NULL) {
        return NAS_ERR_NOMEM;
    }
    for (int64_t i = 0; i < nl; i++) {
        ones[i] = 1.0f;
    }
    nas_params_zero_grad(ps->p);
    nas_status st = nas_graph_backward_from(ps->g, ps->logits, ones);
    if (st != NAS_OK) {
        return st;
    }
    const float *gx = nas_tensor_grad(ps->x);
    if (gx == NULL) {
        return nas_fail(ctx, NAS_ERR_STATE, "jacob_cov: no input gradient");
    }
    /* centre each row; the correlation is the normalised Gram matrix of the centred rows */
    for (int64_t b = 0; b < B; b++) {
        double mean = 0.0;
        for (int64_t i = 0; i < D; i++) {
            mean += (double)gx[b * D + i];
        }
        mean /= (double)D;
        for (int64_t i = 0; i < D; i++) {
            J[b * D + i] = (double)gx[b * D + i] - mean;
        }
    }
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, (int)B, (int)D, 1.0, J, (int)D, 0.0, C,
                (int)B);
    for (int64_t i = 0; i < B; i++) {
        for (int64_t j = i + 1; j < B; j++) {
            double c = C[i * B + j] / sqrt(C[i * B + i] * C[j * B + j]);
            c = c > 1.0 ? 1.0 : (c < -1.0 ? -1.0 : c);
            C[i * B + j] = C[j * B + i] = c;
        }
    }
    for (int64_t i = 0; i < B; i++) {
        const double d = C[i * B + i];
        C[i * B + i] = d / d; /* 1, or NaN for a constant row */
    }
    for (int64_t i = 0; i < B * B; i++) {
        if (!isfinite(C[i])) {
            *out = NAN;
            return NAS_OK;
        }
    }
    double *w = C + B * B, *work = w + B;
    const int n = (int)B;
    int info = 0;
    dsyev_("N", "U", &n, C, &n, w, work, &lwork, &info, 1, 1);
    if (info != 0) {
        return nas_fail(ctx, NAS_ERR_NUMERIC, "jacob_cov: eigenvalues did not converge (info %d)",
                        info);
    }
    const double k = 1e-5;
    double score = 0.0;
    for (int64_t i = 0; i < B; i++) {
        score += log(w[i] + k) + 1.0 / (w[i] + k);
    }
    *out = -score;
    return NAS_OK;
}
