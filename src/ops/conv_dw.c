/* conv_dw.c - the depthwise fast path of conv2d (groups == C == O, MobileNet / DARTS sep and dil
 * convs): AVX2 kernels straight on our NCHW layout, one image plane at a time, so there are no
 * reorders. Each plane is copied into a zero-padded per-thread buffer (borders, and slack on the
 * right so 8-wide loads past the last column read zeros), which removes every bounds test from
 * the inner loops.
 *   forward      y[i, j] = b + sum_{a, b} w[a, b] P[i sh + a dh, j sw + b dw]; blocks of 4 output
 *                rows x 8 columns keep 4 independent FMA chains; stride 2 deinterleaves 16 loads.
 *   backward x   the forward kernel on dy spread by the stride and padded, with the flipped
 *                kernel (a transposed conv), accumulated; a scalar scatter when p > (K - 1) d.
 *   backward w   dw[a, b] += sum_{n, i, j} P[i sh + a dh, j sw + b dw] dy[i, j]: threads own
 *                channels and sum images in order, so results depend only on the thread count.
 * Only strides 1 and 2 along W are vectorised; other cases use the naive kernels. */
#include "conv_int.h"

#include <immintrin.h>

#define VEC 8

/* Padded plane geometry for a conv: rows, row stride (floats), and the offsets of the data. */
typedef struct pad_plane {
    int64_t rows, stride, top, left;
} pad_plane;

int nas_conv_is_depthwise(const nas_conv_geom *c) {
    return c->groups == c->C && c->O == c->C && c->groups > 1 && (c->sw == 1 || c->sw == 2) &&
           c->KH * c->KW <= 64;
}

/* Whether the kernels here beat oneDNN's (measured on the 2-core AVX2 machine): yes from 8
 * output columns up; below, half-empty vectors make oneDNN's channel-blocked kernel faster. */
int nas_conv_dw_preferred(const nas_conv_geom *c) {
    return nas_conv_is_depthwise(c) && c->OW >= 8;
}

static pad_plane plane_for(int64_t H, int64_t W, int64_t top, int64_t left, int64_t out_w,
                           int64_t sw, int64_t KW, int64_t dw, int64_t rows_needed) {
    pad_plane p;
    p.top = top;
    p.left = left;
    p.rows = nas_max_i64(H + top, rows_needed) + 1;
    /* widest read: vector starting at the last block of outputs, last tap, stride 2 reads 16 */
    const int64_t blocks = (out_w + VEC - 1) / VEC;
    const int64_t need = (blocks * VEC - 1) * sw + (KW - 1) * dw + 1 + VEC * sw;
    p.stride = (nas_max_i64(W + 2 * left, need) + 7) / 8 * 8;
    return p;
}

static void plane_zero(const pad_plane *p, float *buf) {
    memset(buf, 0, sizeof(float) * (size_t)(p->rows * p->stride));
}

/* Copy an H x W plane into the buffer at (top, left). The borders stay zero from plane_zero:
 * planes of one call all have the same geometry, so only the interior is ever written. */
static inline void copy_row(float *d, const float *s, int64_t W) {
    int64_t j = 0;
    for (; j + 8 <= W; j += 8) {
        _mm256_storeu_ps(d + j, _mm256_loadu_ps(s + j));
    }
    for (; j + 4 <= W; j += 4) {
        _mm_storeu_ps(d + j, _mm_loadu_ps(s + j));
    }
    for (; j < W; j++) {
        d[j] = s[j];
    }
}

static void plane_fill(const pad_plane *p, float *buf, const float *src, int64_t H, int64_t W) {
    for (int64_t i = 0; i < H; i++) {
        copy_row(buf + (i + p->top) * p->stride + p->left, src + i * W, W);
    }
}

/* 8 consecutive outputs' inputs: x[0], x[s], ..., x[7 s] for s = 1 or 2. */
static inline __m256 load_strided(const float *x, int64_t s) {
    if (s == 1) {
        return _mm256_loadu_ps(x);
    }
    const __m256 lo = _mm256_loadu_ps(x), hi = _mm256_loadu_ps(x + 8);
    const __m256 ev = _mm256_shuffle_ps(lo, hi, 0x88); /* lo0 lo2 hi0 hi2 | lo4 lo6 hi4 hi6 */
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(ev), 0xD8));
}

static inline void store_part(float *y, __m256 v, int64_t n, int accumulate) {
    if (n == VEC) {
        if (accumulate) {
            v = _mm256_add_ps(v, _mm256_loadu_ps(y));
        }
        _mm256_storeu_ps(y, v);
        return;
    }
    /* lanes k < n: mask from comparing k with n */
    const __m256i m =
        _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    if (accumulate) {
        v = _mm256_add_ps(v, _mm256_maskload_ps(y, m));
    }
    _mm256_maskstore_ps(y, m, v);
}

/* Correlate a padded plane with one KH x KW kernel: out[i, j] (= or +=) b0 + sum w P[...],
 * for output rows i0 .. i0 + R - 1 (R = 4 or 1: independent FMA chains in registers). Always
 * inlined with constant R and SW so each variant is specialised. */
static inline __attribute__((always_inline)) void
corr_block(const float *P, int64_t ps, const float *wk, int64_t KH, int64_t KW, int64_t sh,
           const int64_t SW, int64_t dh, int64_t dw, float b0, float *out, int64_t OW, int64_t i0,
           const int R, int accumulate) {
    const int64_t rs = sh * ps;
    for (int64_t j0 = 0; j0 < OW; j0 += VEC) {
        __m256 a0 = _mm256_set1_ps(b0), a1 = a0, a2 = a0, a3 = a0;
        for (int64_t a = 0; a < KH; a++) {
            const float *base = P + (i0 * sh + a * dh) * ps + j0 * SW;
            const float *wr = wk + a * KW;
            for (int64_t b = 0; b < KW; b++) {
                const __m256 wv = _mm256_broadcast_ss(wr + b);
                const float *q = base + b * dw;
                a0 = _mm256_fmadd_ps(wv, load_strided(q, SW), a0);
                if (R == 4) {
                    a1 = _mm256_fmadd_ps(wv, load_strided(q + rs, SW), a1);
                    a2 = _mm256_fmadd_ps(wv, load_strided(q + 2 * rs, SW), a2);
                    a3 = _mm256_fmadd_ps(wv, load_strided(q + 3 * rs, SW), a3);
                }
            }
        }
        const int64_t n = nas_min_i64(VEC, OW - j0);
        float *o = out + i0 * OW + j0;
        store_part(o, a0, n, accumulate);
        if (R == 4) {
            store_part(o + OW, a1, n, accumulate);
            store_part(o + 2 * OW, a2, n, accumulate);
            store_part(o + 3 * OW, a3, n, accumulate);
        }
    }
}

#define CORR_VARIANT(NAME, R, SW)                                                                  \
    static void NAME(const float *P, int64_t ps, const float *wk, int64_t KH, int64_t KW,          \
                     int64_t sh, int64_t dh, int64_t dw, float b0, float *out, int64_t OW,         \
                     int64_t i0, int accumulate) {                                                 \
        corr_block(P, ps, wk, KH, KW, sh, SW, dh, dw, b0, out, OW, i0, R, accumulate);             \
    }
CORR_VARIANT(corr4_s1, 4, 1)
CORR_VARIANT(corr1_s1, 1, 1)
CORR_VARIANT(corr4_s2, 4, 2)
CORR_VARIANT(corr1_s2, 1, 2)

static void corr_plane(const float *P, int64_t ps, const float *wk, int64_t KH, int64_t KW,
                       int64_t sh, int64_t sw, int64_t dh, int64_t dw, float b0, float *out,
                       int64_t OH, int64_t OW, int accumulate) {
    int64_t i = 0;
    for (; i + 4 <= OH; i += 4) {
        (sw == 1 ? corr4_s1 : corr4_s2)(P, ps, wk, KH, KW, sh, dh, dw, b0, out, OW, i, accumulate);
    }
    for (; i < OH; i++) {
        (sw == 1 ? corr1_s1 : corr1_s2)(P, ps, wk, KH, KW, sh, dh, dw, b0, out, OW, i, accumulate);
    }
}

static pad_plane fwd_plane(const nas_conv_geom *c) {
    return plane_for(c->H, c->W, c->ph, c->pw, c->OW, c->sw, c->KW, c->dw,
                     (c->OH - 1) * c->sh + (c->KH - 1) * c->dh + 1);
}

/* Backward data as a correlation (transposed conv): dy spread out by the stride (zeros between,
 * so stride 2 costs 4x the FMAs but stays vectorised) and padded by (K - 1) d - p, correlated
 * with the flipped kernel at stride 1. Needs p <= (K - 1) d, true for every "same" conv. */
static int bwd_data_as_corr(const nas_conv_geom *c) {
    return c->ph <= c->dh * (c->KH - 1) && c->pw <= c->dw * (c->KW - 1);
}

static pad_plane bwd_plane(const nas_conv_geom *c) {
    if (bwd_data_as_corr(c)) {
        const int64_t top = c->dh * (c->KH - 1) - c->ph, left = c->dw * (c->KW - 1) - c->pw;
        return plane_for((c->OH - 1) * c->sh + 1, (c->OW - 1) * c->sw + 1, top, left, c->W, 1,
                         c->KW, c->dw, c->H + (c->KH - 1) * c->dh);
    }
    /* scatter target: the padded input plane */
    return fwd_plane(c);
}

/* Write dy[i, j] at (top + i sh, left + j sw); the zeros between stay from plane_zero. */
static void plane_fill_spread(const pad_plane *p, float *buf, const float *dy,
                              const nas_conv_geom *c) {
    if (c->sw == 1) {
        for (int64_t i = 0; i < c->OH; i++) {
            copy_row(buf + (p->top + i * c->sh) * p->stride + p->left, dy + i * c->OW, c->OW);
        }
        return;
    }
    for (int64_t i = 0; i < c->OH; i++) {
        float *d = buf + (p->top + i * c->sh) * p->stride + p->left;
        for (int64_t j = 0; j < c->OW; j++) {
            d[j * c->sw] = dy[i * c->OW + j];
        }
    }
}

/* Floats of scratch one thread uses (a multiple of 16, so each thread's part is aligned). */
static int64_t per_thread(const nas_conv_geom *c) {
    const pad_plane f = fwd_plane(c), b = bwd_plane(c);
    const int64_t dy_pad = c->OH * ((c->OW + VEC - 1) / VEC * VEC);
    return (nas_max_i64(f.rows * f.stride + dy_pad, b.rows * b.stride) + 15) / 16 * 16;
}

size_t nas_conv_dw_scratch_bytes(const nas_conv_geom *c) {
    return (size_t)(per_thread(c) * nas_max_threads()) * sizeof(float);
}

void nas_conv_dw_forward(const nas_conv_geom *c, const float *x, const float *w, const float *bias,
                         float *y, float *scratch) {
    const pad_plane p = fwd_plane(c);
    const int64_t NC = c->N * c->C, taps = c->KH * c->KW, per = per_thread(c);
    NAS_OMP_PARALLEL {
        float *buf = scratch + per * nas_thread_id();
        const int64_t nt = nas_thread_count(), t = nas_thread_id();
        int64_t b0, b1;
        nas_split_range(NC, (int)nt, (int)t, &b0, &b1);
        plane_zero(&p, buf);
        for (int64_t nc = b0; nc < b1; nc++) {
            const int64_t ch = nc % c->C;
            plane_fill(&p, buf, x + nc * c->H * c->W, c->H, c->W);
            corr_plane(buf, p.stride, w + ch * taps, c->KH, c->KW, c->sh, c->sw, c->dh, c->dw,
                       bias != NULL ? bias[ch] : 0.0f, y + nc * c->OH * c->OW, c->OH, c->OW, 0);
        }
    }
}

void nas_conv_dw_backward_data(const nas_conv_geom *c, const float *dy, const float *w, float *dx,
                               float *scratch) {
    const pad_plane p = bwd_plane(c);
    const int64_t NC = c->N * c->C, taps = c->KH * c->KW;
    const int corr = bwd_data_as_corr(c);
    const int64_t per = per_thread(c);
    NAS_OMP_PARALLEL {
        float *buf = scratch + per * nas_thread_id();
        float flipped[64];
        float *fw = taps <= 64 ? flipped : NULL;
        const int64_t nt = nas_thread_count(), t = nas_thread_id();
        int64_t b0, b1;
        nas_split_range(NC, (int)nt, (int)t, &b0, &b1);
        plane_zero(&p, buf);
        for (int64_t nc = b0; nc < b1; nc++) {
            const int64_t ch = nc % c->C;
            const float *wk = w + ch * taps;
            const float *dyp = dy + nc * c->OH * c->OW;
            float *dxp = dx + nc * c->H * c->W;
            if (corr && fw != NULL) {
                for (int64_t k = 0; k < taps; k++) {
                    fw[k] = wk[taps - 1 - k];
                }
                plane_fill_spread(&p, buf, dyp, c);
                corr_plane(buf, p.stride, fw, c->KH, c->KW, 1, 1, c->dh, c->dw, 0.0f, dxp, c->H,
                           c->W, 1);
                continue;
            }
            /* scatter into the zeroed padded input plane, then add its interior */
            memset(buf, 0, sizeof(float) * (size_t)(p.rows * p.stride));
            for (int64_t i = 0; i < c->OH; i++) {
                for (int64_t a = 0; a < c->KH; a++) {
                    float *row = buf + (i * c->sh + a * c->dh) * p.stride;
                    for (int64_t b = 0; b < c->KW; b++) {
                        const float wv = wk[a * c->KW + b];
                        float *q = row + b * c->dw;
                        for (int64_t j = 0; j < c->OW; j++) {
                            q[j * c->sw] += wv * dyp[i * c->OW + j];
                        }
                    }
                }
            }
            for (int64_t i = 0; i < c->H; i++) {
                const float *q = buf + (i + p.top) * p.stride + p.left;
                for (int64_t j = 0; j < c->W; j++) {
                    dxp[i * c->W + j] += q[j];
                }
            }
        }
    }
}

static inline float hsum(__m256 v) {
    float l[VEC];
    _mm256_storeu_ps(l, v);
    return ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
}

static inline __attribute__((always_inline)) __m256 tap_dot_s(const float *P, int64_t ps,
                                                              const float *dyb, int64_t OWr,
                                                              const nas_conv_geom *c, int64_t a,
                                                              int64_t b, const int64_t SW) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    const float *q0 = P + a * c->dh * ps + b * c->dw;
    const int64_t rs = c->sh * ps;
    int64_t i = 0;
    for (; i + 4 <= c->OH; i += 4) {
        const float *q = q0 + i * rs, *g = dyb + i * OWr;
        for (int64_t j0 = 0; j0 < OWr; j0 += VEC) {
            a0 = _mm256_fmadd_ps(load_strided(q + j0 * SW, SW), _mm256_loadu_ps(g + j0), a0);
            a1 = _mm256_fmadd_ps(load_strided(q + rs + j0 * SW, SW), _mm256_loadu_ps(g + OWr + j0),
                                 a1);
            a2 = _mm256_fmadd_ps(load_strided(q + 2 * rs + j0 * SW, SW),
                                 _mm256_loadu_ps(g + 2 * OWr + j0), a2);
            a3 = _mm256_fmadd_ps(load_strided(q + 3 * rs + j0 * SW, SW),
                                 _mm256_loadu_ps(g + 3 * OWr + j0), a3);
        }
    }
    for (; i < c->OH; i++) {
        const float *q = q0 + i * rs, *g = dyb + i * OWr;
        for (int64_t j0 = 0; j0 < OWr; j0 += VEC) {
            a0 = _mm256_fmadd_ps(load_strided(q + j0 * SW, SW), _mm256_loadu_ps(g + j0), a0);
        }
    }
    return _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3));
}

/* sum over i, j of P[i sh + a dh, j sw + b dw] dy[i, j] for one tap (dy rows padded to OWr),
 * as 8 lane partial sums. */
static __m256 tap_dot(const float *P, int64_t ps, const float *dyb, int64_t OWr,
                      const nas_conv_geom *c, int64_t a, int64_t b) {
    return c->sw == 1 ? tap_dot_s(P, ps, dyb, OWr, c, a, b, 1)
                      : tap_dot_s(P, ps, dyb, OWr, c, a, b, 2);
}

void nas_conv_dw_backward_weights(const nas_conv_geom *c, const float *x, const float *dy,
                                  float *dw, float *db, float *scratch) {
    const pad_plane p = fwd_plane(c);
    const int64_t taps = c->KH * c->KW, OWr = (c->OW + VEC - 1) / VEC * VEC, per = per_thread(c);
    if (dw != NULL) {
        NAS_OMP_PARALLEL {
            float *buf = scratch + per * nas_thread_id(), *dyb = buf + p.rows * p.stride;
            const int64_t nt = nas_thread_count(), t = nas_thread_id();
            int64_t c0, c1;
            nas_split_range(c->C, (int)nt, (int)t, &c0, &c1);
            __m256 vacc[64];
            plane_zero(&p, buf);
            /* dy rows padded with zeros to whole vectors, so slack columns add nothing */
            memset(dyb, 0, sizeof(float) * (size_t)(c->OH * OWr));
            for (int64_t ch = c0; ch < c1 && taps <= 64; ch++) {
                for (int64_t k = 0; k < taps; k++) {
                    vacc[k] = _mm256_setzero_ps();
                }
                for (int64_t n = 0; n < c->N; n++) {
                    const int64_t nc = n * c->C + ch;
                    plane_fill(&p, buf, x + nc * c->H * c->W, c->H, c->W);
                    for (int64_t i = 0; i < c->OH; i++) {
                        copy_row(dyb + i * OWr, dy + nc * c->OH * c->OW + i * c->OW, c->OW);
                    }
                    for (int64_t k = 0; k < taps; k++) {
                        vacc[k] = _mm256_add_ps(
                            vacc[k], tap_dot(buf, p.stride, dyb, OWr, c, k / c->KW, k % c->KW));
                    }
                }
                for (int64_t k = 0; k < taps; k++) {
                    dw[ch * taps + k] += hsum(vacc[k]);
                }
            }
        }
    }
    if (db != NULL) {
        nas_conv_bias_grad(c, dy, db);
    }
}
