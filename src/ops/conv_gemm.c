/* conv_gemm.c - the 1x1 fast path of conv2d (stride 1, no padding, one group) on our NCHW layout
 * directly: per image y[n] (O x HW) = W (O x C) x[n] (C x HW). Pointwise convs are memory-bound,
 * so skipping oneDNN's reorders to and from its blocked layout is worth more than its blocked
 * kernel. (Direct AVX2 kernels for few channels were tried: no faster than sgemm within this
 * machine's noise, and slower for the weight gradient.) Threads split images (or, for fewer
 * images than threads, column blocks of one image); every output element is computed by one
 * single-threaded sgemm call in a fixed order, so results depend only on the thread count.
 * Backward: dx[n] += W^T dy[n]; dW += sum_n dy[n] x[n]^T (threads own rows of dW); db += sum dy. */
#include "conv_int.h"

#include <cblas.h>

int nas_conv_is_pointwise(const nas_conv_geom *c) {
    return c->KH == 1 && c->KW == 1 && c->sh == 1 && c->sw == 1 && c->ph == 0 && c->pw == 0 &&
           c->groups == 1 && c->OH == c->H && c->OW == c->W;
}

/* Work item i of n_items covers image *n, columns [*j0, *j1). */
static void work_item(int64_t i, int64_t chunks, int64_t HW, int64_t *n, int64_t *j0, int64_t *j1) {
    *n = i / chunks;
    const int64_t k = i % chunks;
    /* column blocks rounded to 16 floats so each starts on a cache line */
    const int64_t per = ((HW + chunks - 1) / chunks + 15) / 16 * 16;
    *j0 = nas_min_i64(HW, k * per);
    *j1 = nas_min_i64(HW, *j0 + per);
}

static int64_t column_chunks(int64_t N, int64_t HW) {
    const int64_t t = nas_max_threads();
    return N >= t || HW < 64 ? 1 : t;
}

void nas_conv_gemm_forward(const nas_conv_geom *c, const float *x, const float *w,
                           const float *bias, float *y) {
    const int64_t HW = c->H * c->W, C = c->C, O = c->O;
    const int64_t chunks = column_chunks(c->N, HW), items = c->N * chunks;
    NAS_OMP_FOR
    for (int64_t i = 0; i < items; i++) {
        int64_t n, j0, j1;
        work_item(i, chunks, HW, &n, &j0, &j1);
        if (j1 <= j0) {
            continue;
        }
        float *yn = y + n * O * HW + j0;
        if (bias != NULL) {
            for (int64_t o = 0; o < O; o++) {
                for (int64_t j = 0; j < j1 - j0; j++) {
                    yn[o * HW + j] = bias[o];
                }
            }
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)O, (int)(j1 - j0), (int)C, 1.0f,
                    w, (int)C, x + n * C * HW + j0, (int)HW, bias != NULL ? 1.0f : 0.0f, yn,
                    (int)HW);
    }
}

void nas_conv_gemm_backward_data(const nas_conv_geom *c, const float *dy, const float *w,
                                 float *dx) {
    const int64_t HW = c->H * c->W, C = c->C, O = c->O;
    const int64_t chunks = column_chunks(c->N, HW), items = c->N * chunks;
    NAS_OMP_FOR
    for (int64_t i = 0; i < items; i++) {
        int64_t n, j0, j1;
        work_item(i, chunks, HW, &n, &j0, &j1);
        if (j1 <= j0) {
            continue;
        }
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)C, (int)(j1 - j0), (int)O, 1.0f,
                    w, (int)C, dy + n * O * HW + j0, (int)HW, 1.0f, dx + n * C * HW + j0, (int)HW);
    }
}

void nas_conv_gemm_backward_weights(const nas_conv_geom *c, const float *x, const float *dy,
                                    float *dw, float *db) {
    const int64_t HW = c->H * c->W, C = c->C, O = c->O;
    if (dw != NULL) {
        NAS_OMP_PARALLEL {
            int64_t o0, o1;
            nas_split_range(O, nas_thread_count(), nas_thread_id(), &o0, &o1);
            for (int64_t n = 0; n < c->N && o1 > o0; n++) {
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)(o1 - o0), (int)C,
                            (int)HW, 1.0f, dy + (n * O + o0) * HW, (int)HW, x + n * C * HW, (int)HW,
                            1.0f, dw + o0 * C, (int)C);
            }
        }
    }
    if (db != NULL) {
        nas_conv_bias_grad(c, dy, db);
    }
}
