/* pool.c - pooling ops over H, W of x [N, C, H, W]: max pool, avg pool (padding counted in the
 * divisor or not) and global average pool. Kernels: separable box sums for NB201's 3x3 stride 1
 * pad 1 average, a 2x2 stride 2 average (the reduction shortcut), and for every other shape
 * (and all max pooling) a kernel vectorised across the interior columns of each output row.
 * Each has a naive twin in pool_naive.c that tests compare it with on random shapes.
 * Output size is floor((H + 2 pad - k) / stride) + 1, as PyTorch's default (ceil_mode off).
 * Average and global average pooling also read blocked inputs (layout.c): per output pixel a
 * sum of the window's taps, the tile's channels in vector lanes. */
#include "layout_int.h"
#include "pool_int.h"
#include "simd_int.h"

#include <immintrin.h>
#include <math.h>

#define ROW_MAX 4096 /* widest row the separable 3x3 kernel handles on the stack */

/* ---- builders */

static nas_node *pool_build(nas_graph *g, nas_tensor *x, int op, int k, int stride, int pad,
                            int count_pad) {
    if (!nas_ops_sources_ok(g, 1, &x)) {
        return NULL;
    }
    const char *name = op == NAS_OP_MAX_POOL ? "max_pool" : "avg_pool";
    char a[64];
    if (x->ndim != 4) {
        return nas_graph_fail(g, NAS_ERR_SHAPE, "%s: input %s is not [N, C, H, W]", name,
                              nas_shape_str(x, a, sizeof a));
    }
    if (k < 1 || stride < 1 || pad < 0 || 2 * pad > k) {
        return nas_graph_fail(g, NAS_ERR_ARG,
                              "%s: kernel %d, stride %d, pad %d (need k >= 1, stride >= 1, "
                              "0 <= pad <= k / 2)",
                              name, k, stride, pad);
    }
    const int64_t Ho = (x->shape[2] + 2 * pad - k) / stride + 1;
    const int64_t Wo = (x->shape[3] + 2 * pad - k) / stride + 1;
    if (x->shape[2] + 2 * pad < k || x->shape[3] + 2 * pad < k) {
        return nas_graph_fail(g, NAS_ERR_SHAPE, "%s: kernel %d with pad %d does not fit input %s",
                              name, k, pad, nas_shape_str(x, a, sizeof a));
    }
    nas_node *n = nas_graph_append(g, op, 1, &x);
    if (n == NULL) {
        return NULL;
    }
    const int64_t shape[4] = {x->shape[0], x->shape[1], Ho, Wo};
    nas_node_set_shape(n, 4, shape);
    n->iparam[0] = k;
    n->iparam[1] = stride;
    n->iparam[2] = pad;
    n->iparam[3] = count_pad != 0;
    if (op == NAS_OP_MAX_POOL) {
        n->aux_bytes = (size_t)n->numel * sizeof(int32_t); /* argmax per output */
    }
    return n;
}

nas_tensor *nas_max_pool(nas_graph *g, nas_tensor *x, int k, int stride, int pad) {
    return pool_build(g, x, NAS_OP_MAX_POOL, k, stride, pad, 0);
}

nas_tensor *nas_avg_pool(nas_graph *g, nas_tensor *x, int k, int stride, int pad, int count_pad) {
    return pool_build(g, x, NAS_OP_AVG_POOL, k, stride, pad, count_pad);
}

static nas_pool_geom geom_of(const nas_node *n) {
    const nas_node *x = n->src[0];
    nas_pool_geom s = {x->shape[0] * x->shape[1],
                       x->shape[2],
                       x->shape[3],
                       n->shape[2],
                       n->shape[3],
                       n->iparam[0],
                       n->iparam[1],
                       n->iparam[2],
                       n->iparam[3]};
    return s;
}

/* [*ow0, *ow1): the output columns whose window lies inside the input's columns,
 * ow * stride - pad >= 0 and ow * stride - pad + k <= W. */
static void interior_cols(const nas_pool_geom *s, int64_t *ow0, int64_t *ow1) {
    *ow0 = nas_min_i64(s->Wo, (s->pad + s->stride - 1) / s->stride);
    *ow1 = nas_max_i64(*ow0, nas_min_i64(s->Wo, (s->W + s->pad - s->k) / s->stride + 1));
}

/* ---- max pool. Outputs whose window lies inside the input's columns (all but a border of about
 * pad / stride on each side) run vectorised across the output row: each tap, in the same
 * row-major order and with the same comparisons as the naive kernel, updates the whole row's
 * running maxima, so results are bit-identical to it; the border outputs use it directly. */

/* 8 outputs of a 2x2 stride-2 window row: taps in row-major order (r0 c0, r0 c1, r1 c0, r1 c1),
 * a later tap wins when greater or NaN, as the naive kernel. */
static inline void max2_vec(const float *r0, const float *r1, int32_t at0, int32_t W, float *y,
                            int32_t *idx) {
    const __m256i perm = _mm256_setr_epi32(0, 1, 4, 5, 2, 3, 6, 7);
    const __m256 a0 = _mm256_loadu_ps(r0), a1 = _mm256_loadu_ps(r0 + 8);
    const __m256 b0 = _mm256_loadu_ps(r1), b1 = _mm256_loadu_ps(r1 + 8);
    /* even / odd columns; the permute restores output order */
    const __m256 ae = _mm256_permutevar8x32_ps(_mm256_shuffle_ps(a0, a1, 0x88), perm);
    const __m256 ao = _mm256_permutevar8x32_ps(_mm256_shuffle_ps(a0, a1, 0xDD), perm);
    const __m256 be = _mm256_permutevar8x32_ps(_mm256_shuffle_ps(b0, b1, 0x88), perm);
    const __m256 bo = _mm256_permutevar8x32_ps(_mm256_shuffle_ps(b0, b1, 0xDD), perm);
    const __m256i base = _mm256_add_epi32(_mm256_set1_epi32(at0),
                                          _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14));
    __m256 best = ae;
    __m256i arg = base;
    const __m256 taps[3] = {ao, be, bo};
    const int32_t shift[3] = {1, W, W + 1};
    for (int t = 0; t < 3; t++) {
        const __m256 v = taps[t];
        const __m256 better = _mm256_or_ps(_mm256_cmp_ps(v, best, _CMP_GT_OQ),
                                           _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
        best = _mm256_blendv_ps(best, v, better);
        arg = _mm256_castps_si256(_mm256_blendv_ps(
            _mm256_castsi256_ps(arg),
            _mm256_castsi256_ps(_mm256_add_epi32(base, _mm256_set1_epi32(shift[t]))), better));
    }
    _mm256_storeu_ps(y, best);
    _mm256_storeu_si256((__m256i *)idx, arg);
}

/* 2x2 stride 2 without padding (the classic CNN pool): 8 outputs per step from two 16-float
 * row loads; the last (Wo % 8) columns of each row from zero-padded copies of the rows. */
static void max2_forward(const nas_pool_geom *s, const float *x, float *y, int32_t *idx) {
    const int64_t H = s->H, W = s->W, Ho = s->Ho, Wo = s->Wo;
    NAS_OMP_FOR_IF(s->planes * s->H * s->W >= NAS_PAR_MIN)
    for (int64_t p = 0; p < s->planes; p++) {
        const float *xp = x + p * H * W;
        for (int64_t oh = 0; oh < Ho; oh++) {
            float *yr = y + (p * Ho + oh) * Wo;
            int32_t *ir = idx + (p * Ho + oh) * Wo;
            int64_t ow = 0;
            for (; ow + 8 <= Wo && 2 * ow + 16 <= W; ow += 8) {
                const int32_t at0 = (int32_t)(2 * oh * W + 2 * ow);
                max2_vec(xp + at0, xp + at0 + W, at0, (int32_t)W, yr + ow, ir + ow);
            }
            if (ow < Wo) { /* the last columns through zero-padded copies of the two rows */
                const int64_t n = Wo - ow;
                float t0[16] = {0}, t1[16] = {0}, ty[8];
                int32_t ti[8];
                const int32_t at0 = (int32_t)(2 * oh * W + 2 * ow);
                memcpy(t0, xp + at0, sizeof(float) * (size_t)(2 * n));
                memcpy(t1, xp + at0 + W, sizeof(float) * (size_t)(2 * n));
                max2_vec(t0, t1, at0, (int32_t)W, ty, ti);
                memcpy(yr + ow, ty, sizeof(float) * (size_t)n);
                memcpy(ir + ow, ti, sizeof(int32_t) * (size_t)n);
            }
        }
    }
}

void nas_pool_max_forward(const nas_pool_geom *s, const float *x, float *y, int32_t *idx) {
    const int64_t H = s->H, W = s->W, Ho = s->Ho, Wo = s->Wo, k = s->k, st = s->stride;
    if (k == 2 && st == 2 && s->pad == 0) {
        max2_forward(s, x, y, idx);
        return;
    }
    int64_t ow0, ow1;
    interior_cols(s, &ow0, &ow1);
    NAS_OMP_FOR_IF(s->planes * s->H * s->W >= NAS_PAR_MIN)
    for (int64_t p = 0; p < s->planes; p++) {
        const float *xp = x + p * H * W;
        float *yp = y + p * Ho * Wo;
        int32_t *ip = idx + p * Ho * Wo;
        for (int64_t oh = 0; oh < Ho; oh++) {
            for (int64_t ow = 0; ow < ow0; ow++) {
                nas_pool_max_at(s, xp, oh, ow, &yp[oh * Wo + ow], &ip[oh * Wo + ow]);
            }
            for (int64_t ow = ow1; ow < Wo; ow++) {
                nas_pool_max_at(s, xp, oh, ow, &yp[oh * Wo + ow], &ip[oh * Wo + ow]);
            }
            const int64_t h0 = nas_max_i64(oh * st - s->pad, 0);
            const int64_t h1 = nas_min_i64(oh * st - s->pad + k, H);
            float *best = yp + oh * Wo;
            int32_t *arg = ip + oh * Wo;
            NAS_SIMD
            for (int64_t ow = ow0; ow < ow1; ow++) {
                best[ow] = -INFINITY;
                arg[ow] = (int32_t)(h0 * W + ow * st - s->pad);
            }
            /* taps in row-major order, each one across the whole row of outputs */
            for (int64_t h = h0; h < h1; h++) {
                for (int64_t kw = 0; kw < k; kw++) {
                    const int32_t base = (int32_t)(h * W - s->pad + kw);
                    NAS_SIMD
                    for (int64_t ow = ow0; ow < ow1; ow++) {
                        const int32_t at = base + (int32_t)(ow * st);
                        const float v = xp[at];
                        const int better = v > best[ow] || v != v;
                        best[ow] = better ? v : best[ow];
                        arg[ow] = better ? at : arg[ow];
                    }
                }
            }
        }
    }
}

static nas_status max_pool_forward(nas_graph *g, nas_node *n) {
    (void)g;
    const nas_pool_geom s = geom_of(n);
    nas_pool_max_forward(&s, n->src[0]->data, n->data, n->aux);
    return NAS_OK;
}

static void max_pool_backward(nas_graph *g, nas_node *n) {
    (void)g;
    if (n->src[0]->grad == NULL) {
        return;
    }
    const nas_pool_geom s = geom_of(n);
    nas_pool_max_backward(&s, n->aux, n->grad, n->src[0]->grad);
}

const nas_op_desc nas_op_max_pool = {
    .name = "max_pool", .forward = max_pool_forward, .backward = max_pool_backward};

/* ---- avg pool, specialised 3x3 stride 1 pad 1 (Ho = H, Wo = W): separable box sums.
 * inv_w[w] and inv_h[h] are 1/3 or 1/2 (count_pad 0: taps inside the input) or 1/3 (count_pad 1),
 * so the divisor of output (h, w) is 1 / (inv_h[h] inv_w[w]). */

static void inv_counts(int64_t len, int count_pad, float *inv) {
    for (int64_t i = 0; i < len; i++) {
        const int taps = count_pad ? 3 : 1 + (i > 0) + (i + 1 < len);
        inv[i] = 1.0f / (float)taps;
    }
}

/* out[w] = v[w - 1] + v[w] + v[w + 1] with zeros outside [0, W); vp = v shifted by one with
 * vp[0] = vp[W + 1] = 0. */
static void box_row(const float *vp, int64_t W, float *out, const float *scale, float row_scale) {
    NAS_SIMD
    for (int64_t w = 0; w < W; w++) {
        out[w] = (vp[w] + vp[w + 1] + vp[w + 2]) * (scale[w] * row_scale);
    }
}

static void avg3_forward(const nas_pool_geom *s, const float *x, float *y) {
    const int64_t H = s->H, W = s->W;
    float inv_w[ROW_MAX], inv_h[ROW_MAX];
    inv_counts(W, s->count_pad, inv_w);
    inv_counts(H, s->count_pad, inv_h);
    NAS_OMP_FOR_IF(s->planes * s->H * s->W >= NAS_PAR_MIN)
    for (int64_t p = 0; p < s->planes; p++) {
        float vp[ROW_MAX + 2];
        const float *xp = x + p * H * W;
        float *yp = y + p * H * W;
        vp[0] = 0.0f;
        vp[W + 1] = 0.0f;
        for (int64_t h = 0; h < H; h++) {
            const float *r1 = xp + h * W;
            const float *r0 = h > 0 ? r1 - W : NULL, *r2 = h + 1 < H ? r1 + W : NULL;
            if (r0 != NULL && r2 != NULL) {
                NAS_SIMD
                for (int64_t w = 0; w < W; w++) {
                    vp[w + 1] = r0[w] + r1[w] + r2[w];
                }
            } else {
                const float *other = r0 != NULL ? r0 : r2;
                NAS_SIMD
                for (int64_t w = 0; w < W; w++) {
                    vp[w + 1] = r1[w] + (other != NULL ? other[w] : 0.0f);
                }
            }
            box_row(vp, W, yp + h * W, inv_w, inv_h[h]);
        }
    }
}

/* dx[h, w] += sum over the 3x3 outputs around (h, w) of dy / divisor: the same box sum applied to
 * dy scaled by the inverse divisors. */
static void avg3_backward(const nas_pool_geom *s, const float *dy, float *dx) {
    const int64_t H = s->H, W = s->W;
    float inv_w[ROW_MAX], inv_h[ROW_MAX];
    inv_counts(W, s->count_pad, inv_w);
    inv_counts(H, s->count_pad, inv_h);
    NAS_OMP_FOR_IF(s->planes * s->H * s->W >= NAS_PAR_MIN)
    for (int64_t p = 0; p < s->planes; p++) {
        float vp[ROW_MAX + 2], row[ROW_MAX];
        const float *dyp = dy + p * H * W;
        float *dxp = dx + p * H * W;
        vp[0] = 0.0f;
        vp[W + 1] = 0.0f;
        for (int64_t h = 0; h < H; h++) {
            NAS_SIMD
            for (int64_t w = 0; w < W; w++) {
                vp[w + 1] = dyp[h * W + w] * inv_h[h];
            }
            if (h > 0) {
                NAS_SIMD
                for (int64_t w = 0; w < W; w++) {
                    vp[w + 1] += dyp[(h - 1) * W + w] * inv_h[h - 1];
                }
            }
            if (h + 1 < H) {
                NAS_SIMD
                for (int64_t w = 0; w < W; w++) {
                    vp[w + 1] += dyp[(h + 1) * W + w] * inv_h[h + 1];
                }
            }
            NAS_SIMD
            for (int64_t w = 0; w < W; w++) {
                vp[w + 1] *= inv_w[w];
            }
            NAS_SIMD
            for (int64_t w = 0; w < W; w++) {
                row[w] = vp[w] + vp[w + 1] + vp[w + 2];
            }
            NAS_SIMD
            for (int64_t w = 0; w < W; w++) {
                dxp[h * W + w] += row[w];
            }
        }
    }
}

/* ---- avg pool, specialised 2x2 stride 2 pad 0 (the reduction shortcut): no padding, so both
 * count modes divide by 4. */

static void avg2_forward(const nas_pool_geom *s, const float *x, float *y) {
    const int64_t H = s->H, W = s->W, Ho = s->Ho, Wo = s->Wo;
    NAS_OMP_FOR_IF(s->planes * s->H * s->W >= NAS_PAR_MIN)
    for (int64_t p = 0; p < s->planes; p++) {
        for (int64_t oh = 0; oh < Ho; oh++) {
            const float *r0 = x + p * H * W + 2 * oh * W, *r1 = r0 + W;
            float *yr = y + (p * Ho + oh) * Wo;
            NAS_SIMD
            for (int64_t ow = 0; ow < Wo; ow++) {
                yr[ow] = ((r0[2 * ow] + r0[2 * ow + 1]) + (r1[2 * ow] + r1[2 * ow + 1])) * 0.25f;
            }
        }
    }
}

static void avg2_backward(const nas_pool_geom *s, const float *dy, float *dx) {
    const int64_t H = s->H, W = s->W, Ho = s->Ho, Wo = s->Wo;
    NAS_OMP_FOR_IF(s->planes * s->H * s->W >= NAS_PAR_MIN)
    for (int64_t p = 0; p < s->planes; p++) {
        for (int64_t oh = 0; oh < Ho; oh++) {
            float *r0 = dx + p * H * W + 2 * oh * W, *r1 = r0 + W;
            const float *dr = dy + (p * Ho + oh) * Wo;
            for (int64_t ow = 0; ow < Wo; ow++) {
                const float d = dr[ow] * 0.25f;
                r0[2 * ow] += d;
                r0[2 * ow + 1] += d;
                r1[2 * ow] += d;
                r1[2 * ow + 1] += d;
            }
        }
    }
}

/* ---- avg pool, any k / stride / pad: like max pool, the outputs whose window lies inside the
 * input's columns run vectorised across the row, tap by tap in row-major order (forward sums in
 * the naive kernel's order, so it is bit-identical to it); border columns use the naive code.
 * Interior outputs divide by k * k (count_pad) or by (rows inside) * k. */

static void avg_general_forward(const nas_pool_geom *s, const float *x, float *y) {
    const int64_t H = s->H, W = s->W, Ho = s->Ho, Wo = s->Wo, k = s->k, st = s->stride;
    int64_t ow0, ow1;
    interior_cols(s, &ow0, &ow1);
    NAS_OMP_FOR_IF(s->planes * s->H * s->W >= NAS_PAR_MIN)
    for (int64_t p = 0; p < s->planes; p++) {
        const float *xp = x + p * H * W;
        float *yp = y + p * Ho * Wo;
        for (int64_t oh = 0; oh < Ho; oh++) {
            float *yr = yp + oh * Wo;
            for (int64_t ow = 0; ow < ow0; ow++) {
                yr[ow] = nas_pool_avg_at(s, xp, oh, ow);
            }
            for (int64_t ow = ow1; ow < Wo; ow++) {
                yr[ow] = nas_pool_avg_at(s, xp, oh, ow);
            }
            const int64_t h0 = nas_max_i64(oh * st - s->pad, 0);
            const int64_t h1 = nas_min_i64(oh * st - s->pad + k, H);
            const float div = s->count_pad ? (float)(k * k) : (float)((h1 - h0) * k);
            NAS_SIMD
            for (int64_t ow = ow0; ow < ow1; ow++) {
                yr[ow] = 0.0f;
            }
            for (int64_t h = h0; h < h1; h++) {
                for (int64_t kw = 0; kw < k; kw++) {
                    const float *xr = xp + h * W - s->pad + kw;
                    NAS_SIMD
                    for (int64_t ow = ow0; ow < ow1; ow++) {
                        yr[ow] += xr[ow * st];
                    }
                }
            }
            NAS_SIMD
            for (int64_t ow = ow0; ow < ow1; ow++) {
                yr[ow] = yr[ow] / div;
            }
        }
    }
}

static void avg_general_backward(const nas_pool_geom *s, const float *dy, float *dx) {
    const int64_t H = s->H, W = s->W, Ho = s->Ho, Wo = s->Wo, k = s->k, st = s->stride;
    int64_t ow0, ow1;
    interior_cols(s, &ow0, &ow1);
    NAS_OMP_FOR_IF(s->planes * s->H * s->W >= NAS_PAR_MIN)
    for (int64_t p = 0; p < s->planes; p++) {
        float *dxp = dx + p * H * W;
        const float *dyp = dy + p * Ho * Wo;
        for (int64_t oh = 0; oh < Ho; oh++) {
            const float *dr = dyp + oh * Wo;
            for (int64_t ow = 0; ow < ow0; ow++) {
                nas_pool_avg_at_backward(s, dxp, oh, ow, dr[ow]);
            }
            for (int64_t ow = ow1; ow < Wo; ow++) {
                nas_pool_avg_at_backward(s, dxp, oh, ow, dr[ow]);
            }
            const int64_t h0 = nas_max_i64(oh * st - s->pad, 0);
            const int64_t h1 = nas_min_i64(oh * st - s->pad + k, H);
            const float div = s->count_pad ? (float)(k * k) : (float)((h1 - h0) * k);
            for (int64_t h = h0; h < h1; h++) {
                for (int64_t kw = 0; kw < k; kw++) {
                    float *xr = dxp + h * W - s->pad + kw;
                    /* distinct ow touch distinct elements (stride >= 1): no conflicts */
                    NAS_SIMD
                    for (int64_t ow = ow0; ow < ow1; ow++) {
                        xr[ow * st] += dr[ow] / div;
                    }
                }
            }
        }
    }
}

static int is_avg3(const nas_pool_geom *s) {
    return s->k == 3 && s->stride == 1 && s->pad == 1 && s->W <= ROW_MAX && s->H <= ROW_MAX;
}

static int is_avg2(const nas_pool_geom *s) {
    return s->k == 2 && s->stride == 2 && s->pad == 0;
}

void nas_pool_avg_forward(const nas_pool_geom *s, const float *x, float *y) {
    if (is_avg3(s)) {
        avg3_forward(s, x, y);
    } else if (is_avg2(s)) {
        avg2_forward(s, x, y);
    } else {
        avg_general_forward(s, x, y);
    }
}

void nas_pool_avg_backward(const nas_pool_geom *s, const float *dy, float *dx) {
    if (is_avg3(s)) {
        avg3_backward(s, dy, dx);
    } else if (is_avg2(s)) {
        avg2_backward(s, dy, dx);
    } else {
        avg_general_backward(s, dy, dx);
    }
}

/* ---- blocked average pooling: planes are tiles [H][W][B] (layout_int.h) */

/* The window of output (oh, ow) clipped to the input: rows [*h0, *h1), columns [*w0, *w1);
 * returns the divisor. */
static float window_of(const nas_pool_geom *s, int64_t oh, int64_t ow, int64_t *h0, int64_t *h1,
                       int64_t *w0, int64_t *w1) {
    *h0 = nas_max_i64(oh * s->stride - s->pad, 0);
    *h1 = nas_min_i64(oh * s->stride - s->pad + s->k, s->H);
    *w0 = nas_max_i64(ow * s->stride - s->pad, 0);
    *w1 = nas_min_i64(ow * s->stride - s->pad + s->k, s->W);
    return s->count_pad ? (float)(s->k * s->k) : (float)((*h1 - *h0) * (*w1 - *w0));
}

/* One tile's pooling (backward a constant where inlined). Forward: src = x [H][W][B],
 * dst = y [Ho][Wo][B]. Backward: src = dy [Ho][Wo][B], dst = dx [H][W][B], added to. */
NAS_ALWAYS_INLINE void avg_tile(const nas_pool_geom *s, const float *src, float *dst,
                                const int64_t B, const int backward) {
    for (int64_t oh = 0; oh < s->Ho; oh++) {
        for (int64_t ow = 0; ow < s->Wo; ow++) {
            int64_t h0, h1, w0, w1;
            const float div = window_of(s, oh, ow, &h0, &h1, &w0, &w1);
            const int64_t at = (oh * s->Wo + ow) * B;
            float acc[NAS_BLOCK_MAX] = {0};
            for (int64_t h = h0; h < h1; h++) {
                for (int64_t w = w0; w < w1; w++) {
                    const int64_t tap = (h * s->W + w) * B;
                    NAS_SIMD
                    for (int64_t b = 0; b < B; b++) {
                        if (backward) {
                            dst[tap + b] += src[at + b] / div;
                        } else {
                            acc[b] += src[tap + b];
                        }
                    }
                }
            }
            if (!backward) {
                NAS_SIMD
                for (int64_t b = 0; b < B; b++) {
                    dst[at + b] = acc[b] / div;
                }
            }
        }
    }
}

/* s->planes counts channels: tiles = planes / B (src and dst as avg_tile). */
static void avg_blocked(const nas_pool_geom *s, int64_t B, const float *src, float *dst,
                        int backward) {
    const int64_t in = s->H * s->W * B, out = s->Ho * s->Wo * B;
    const int64_t src_tile = backward ? out : in, dst_tile = backward ? in : out;
    NAS_OMP_FOR_IF(s->planes * s->H * s->W >= NAS_PAR_MIN)
    for (int64_t t = 0; t < s->planes / B; t++) {
        const float *st = src + t * src_tile;
        float *dt = dst + t * dst_tile;
        if (B == 16) {
            backward ? avg_tile(s, st, dt, 16, 1) : avg_tile(s, st, dt, 16, 0);
        } else {
            backward ? avg_tile(s, st, dt, 8, 1) : avg_tile(s, st, dt, 8, 0);
        }
    }
}

static nas_status avg_pool_forward(nas_graph *g, nas_node *n) {
    (void)g;
    const nas_pool_geom s = geom_of(n);
    if (n->block != 0) {
        avg_blocked(&s, n->block, n->src[0]->data, n->data, 0);
    } else {
        nas_pool_avg_forward(&s, n->src[0]->data, n->data);
    }
    return NAS_OK;
}

static void avg_pool_backward(nas_graph *g, nas_node *n) {
    (void)g;
    if (n->src[0]->grad == NULL) {
        return;
    }
    const nas_pool_geom s = geom_of(n);
    if (n->block != 0) {
        avg_blocked(&s, n->block, n->grad, n->src[0]->grad, 1);
    } else {
        nas_pool_avg_backward(&s, n->grad, n->src[0]->grad);
    }
}

const nas_op_desc nas_op_avg_pool = {
    .name = "avg_pool", .forward = avg_pool_forward, .backward = avg_pool_backward};

/* ---- global average pool: y[n, c] = mean over H, W; dx = dy / (H W) */

nas_tensor *nas_global_avg_pool(nas_graph *g, nas_tensor *x) {
    if (!nas_ops_sources_ok(g, 1, &x)) {
        return NULL;
    }
    if (x->ndim != 4) {
        char a[64];
        return nas_graph_fail(g, NAS_ERR_SHAPE, "global_avg_pool: input %s is not [N, C, H, W]",
                              nas_shape_str(x, a, sizeof a));
    }
    nas_node *n = nas_graph_append(g, NAS_OP_GLOBAL_AVG_POOL, 1, &x);
    if (n != NULL) {
        const int64_t shape[2] = {x->shape[0], x->shape[1]};
        nas_node_set_shape(n, 2, shape);
    }
    return n;
}

/* Blocked input: y[n, c0 + b] = mean over the tile's pixels of lane b (double). */
NAS_ALWAYS_INLINE void gap_tile_forward(const float *xt, int64_t HW, const int64_t B, float *y) {
    double acc[NAS_BLOCK_MAX] = {0};
    for (int64_t p = 0; p < HW; p++) {
        NAS_SIMD
        for (int64_t b = 0; b < B; b++) {
            acc[b] += (double)xt[p * B + b];
        }
    }
    for (int64_t b = 0; b < B; b++) {
        y[b] = (float)(acc[b] / (double)HW);
    }
}

NAS_ALWAYS_INLINE void gap_tile_backward(const float *dy, int64_t HW, const int64_t B,
                                         float *dxt) {
    float d[NAS_BLOCK_MAX];
    for (int64_t b = 0; b < B; b++) {
        d[b] = dy[b] / (float)HW;
    }
    for (int64_t p = 0; p < HW; p++) {
        NAS_SIMD
        for (int64_t b = 0; b < B; b++) {
            dxt[p * B + b] += d[b];
        }
    }
}

/* The tiles of a blocked input: tile t holds y's entries t B .. t B + B - 1. */
static void gap_blocked(const nas_node *n, int backward) {
    const nas_node *x = n->src[0];
    const int64_t B = x->block, HW = x->shape[2] * x->shape[3];
    NAS_OMP_FOR_IF(x->numel >= NAS_PAR_MIN)
    for (int64_t t = 0; t < n->numel / B; t++) {
        if (backward) {
            if (B == 16) {
                gap_tile_backward(n->grad + t * B, HW, 16, x->grad + t * B * HW);
            } else {
                gap_tile_backward(n->grad + t * B, HW, 8, x->grad + t * B * HW);
            }
        } else if (B == 16) {
            gap_tile_forward(x->data + t * B * HW, HW, 16, n->data + t * B);
        } else {
            gap_tile_forward(x->data + t * B * HW, HW, 8, n->data + t * B);
        }
    }
}

static nas_status gap_forward(nas_graph *g, nas_node *n) {
    (void)g;
    if (n->src[0]->block != 0) {
        gap_blocked(n, 0);
        return NAS_OK;
    }
    const float *x = n->src[0]->data;
    float *y = n->data;
    const int64_t planes = n->numel, HW = n->src[0]->shape[2] * n->src[0]->shape[3];
    NAS_OMP_FOR_IF(planes * HW >= NAS_PAR_MIN)
    for (int64_t p = 0; p < planes; p++) {
        const float *xp = x + p * HW;
        double acc = 0.0;
        NAS_SIMD_SUM1(acc)
        for (int64_t i = 0; i < HW; i++) {
            acc += (double)xp[i];
        }
        y[p] = (float)(acc / (double)HW);
    }
    return NAS_OK;
}

static void gap_backward(nas_graph *g, nas_node *n) {
    (void)g;
    float *dx = n->src[0]->grad;
    if (dx == NULL) {
        return;
    }
    if (n->src[0]->block != 0) {
        gap_blocked(n, 1);
        return;
    }
    const float *dy = n->grad;
    const int64_t planes = n->numel, HW = n->src[0]->shape[2] * n->src[0]->shape[3];
    NAS_OMP_FOR_IF(planes * HW >= NAS_PAR_MIN)
    for (int64_t p = 0; p < planes; p++) {
        const float d = dy[p] / (float)HW;
        NAS_SIMD
        for (int64_t i = 0; i < HW; i++) {
            dx[p * HW + i] += d;
        }
    }
}

const nas_op_desc nas_op_global_avg_pool = {
    .name = "global_avg_pool", .forward = gap_forward, .backward = gap_backward};
