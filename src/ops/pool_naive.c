/* pool_naive.c - reference pooling kernels: every output visits its window tap by tap, clipped
 * to the input. They serve the shapes without a specialised kernel and are the twins the fast
 * kernels of pool.c are tested against. Planes run in parallel (they never overlap). */
#include "pool_int.h"

#include "simd_int.h"

#include <math.h>

/* The window of output (oh, ow) clipped to the input: rows [*h0, *h1), columns [*w0, *w1). */
static void window(const nas_pool_geom *s, int64_t oh, int64_t ow, int64_t *h0, int64_t *h1,
                   int64_t *w0, int64_t *w1) {
    const int64_t hs = oh * s->stride - s->pad, ws = ow * s->stride - s->pad;
    *h0 = nas_max_i64(hs, 0);
    *h1 = nas_min_i64(hs + s->k, s->H);
    *w0 = nas_max_i64(ws, 0);
    *w1 = nas_min_i64(ws + s->k, s->W);
}

void nas_pool_max_at(const nas_pool_geom *s, const float *xp, int64_t oh, int64_t ow, float *y,
                     int32_t *idx) {
    int64_t h0, h1, w0, w1;
    window(s, oh, ow, &h0, &h1, &w0, &w1);
    float best = -INFINITY;
    int64_t arg = h0 * s->W + w0;
    for (int64_t h = h0; h < h1; h++) {
        for (int64_t w = w0; w < w1; w++) {
            const float v = xp[h * s->W + w];
            if (v > best || isnan(v)) { /* NaN propagates, as in PyTorch */
                best = v;
                arg = h * s->W + w;
            }
        }
    }
    *y = best;
    *idx = (int32_t)arg;
}

void nas_pool_max_forward_naive(const nas_pool_geom *s, const float *x, float *y, int32_t *idx) {
    const int64_t in_plane = s->H * s->W, out_plane = s->Ho * s->Wo;
    NAS_OMP_FOR_IF(s->planes * s->H * s->W >= NAS_PAR_MIN)
    for (int64_t p = 0; p < s->planes; p++) {
        for (int64_t oh = 0; oh < s->Ho; oh++) {
            for (int64_t ow = 0; ow < s->Wo; ow++) {
                const int64_t o = p * out_plane + oh * s->Wo + ow;
                nas_pool_max_at(s, x + p * in_plane, oh, ow, &y[o], &idx[o]);
            }
        }
    }
}

void nas_pool_max_backward(const nas_pool_geom *s, const int32_t *idx, const float *dy, float *dx) {
    const int64_t in_plane = s->H * s->W, out_plane = s->Ho * s->Wo;
    NAS_OMP_FOR_IF(s->planes * s->H * s->W >= NAS_PAR_MIN)
    for (int64_t p = 0; p < s->planes; p++) {
        float *dxp = dx + p * in_plane;
        for (int64_t o = 0; o < out_plane; o++) {
            dxp[idx[p * out_plane + o]] += dy[p * out_plane + o];
        }
    }
}

static float divisor(const nas_pool_geom *s, int64_t h0, int64_t h1, int64_t w0, int64_t w1) {
    return s->count_pad ? (float)(s->k * s->k) : (float)((h1 - h0) * (w1 - w0));
}

float nas_pool_avg_at(const nas_pool_geom *s, const float *xp, int64_t oh, int64_t ow) {
    int64_t h0, h1, w0, w1;
    window(s, oh, ow, &h0, &h1, &w0, &w1);
    float acc = 0.0f;
    for (int64_t h = h0; h < h1; h++) {
        for (int64_t w = w0; w < w1; w++) {
            acc += xp[h * s->W + w];
        }
    }
    return acc / divisor(s, h0, h1, w0, w1);
}

void nas_pool_avg_at_backward(const nas_pool_geom *s, float *dxp, int64_t oh, int64_t ow,
                              float dy) {
    int64_t h0, h1, w0, w1;
    window(s, oh, ow, &h0, &h1, &w0, &w1);
    const float d = dy / divisor(s, h0, h1, w0, w1);
    for (int64_t h = h0; h < h1; h++) {
        for (int64_t w = w0; w < w1; w++) {
            dxp[h * s->W + w] += d;
        }
    }
}

void nas_pool_avg_forward_naive(const nas_pool_geom *s, const float *x, float *y) {
    const int64_t in_plane = s->H * s->W, out_plane = s->Ho * s->Wo;
    NAS_OMP_FOR_IF(s->planes * s->H * s->W >= NAS_PAR_MIN)
    for (int64_t p = 0; p < s->planes; p++) {
        for (int64_t oh = 0; oh < s->Ho; oh++) {
            for (int64_t ow = 0; ow < s->Wo; ow++) {
                y[p * out_plane + oh * s->Wo + ow] = nas_pool_avg_at(s, x + p * in_plane, oh, ow);
            }
        }
    }
}

void nas_pool_avg_backward_naive(const nas_pool_geom *s, const float *dy, float *dx) {
    const int64_t in_plane = s->H * s->W, out_plane = s->Ho * s->Wo;
    NAS_OMP_FOR_IF(s->planes * s->H * s->W >= NAS_PAR_MIN)
    for (int64_t p = 0; p < s->planes; p++) {
        for (int64_t oh = 0; oh < s->Ho; oh++) {
            for (int64_t ow = 0; ow < s->Wo; ow++) {
                nas_pool_avg_at_backward(s, dx + p * in_plane, oh, ow,
                                         dy[p * out_plane + oh * s->Wo + ow]);
            }
        }
    }
}
