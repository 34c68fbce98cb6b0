/* pool_int.h - raw pooling kernels shared by pool.c (the ops) and pool_naive.c (the reference
 * twins), exposed so tests can compare the fast kernels with the naive ones on random shapes.
 * Buffers are `planes` contiguous H x W input planes and Ho x Wo output planes; backward kernels
 * accumulate (+=) into dx. */
#ifndef NAS_POOL_INT_H
#define NAS_POOL_INT_H

#include <stdint.h>

typedef struct nas_pool_geom {
    int64_t planes, H, W, Ho, Wo;
    int k, stride, pad;
    int count_pad; /* avg: 1 divides by k * k, 0 by the taps inside the input */
} nas_pool_geom;

/* Max pooling; idx[o] is the winning tap's offset inside its input plane (padding never wins;
 * the first of equal values in row-major window order wins, as PyTorch; NaN propagates). The
 * fast kernel vectorises the outputs whose window lies inside the input's columns and gives
 * bit-identical results to the naive one. */
void nas_pool_max_at(const nas_pool_geom *s, const float *xp, int64_t oh, int64_t ow, float *y,
                     int32_t *idx); /* one output of plane xp */
void nas_pool_max_forward_naive(const nas_pool_geom *s, const float *x, float *y, int32_t *idx);
void nas_pool_max_forward(const nas_pool_geom *s, const float *x, float *y, int32_t *idx);
void nas_pool_max_backward(const nas_pool_geom *s, const int32_t *idx, const float *dy, float *dx);

/* One output of plane xp / the backward of one output into plane dxp (naive, any position). */
float nas_pool_avg_at(const nas_pool_geom *s, const float *xp, int64_t oh, int64_t ow);
void nas_pool_avg_at_backward(const nas_pool_geom *s, float *dxp, int64_t oh, int64_t ow, float dy);
void nas_pool_avg_forward_naive(const nas_pool_geom *s, const float *x, float *y);
void nas_pool_avg_backward_naive(const nas_pool_geom *s, const float *dy, float *dx);
/* Dispatch to a specialised kernel (3x3 stride 1 pad 1, 2x2 stride 2 pad 0) or the general one
 * (vectorised across the interior columns of each output row, naive at the borders). */
void nas_pool_avg_forward(const nas_pool_geom *s, const float *x, float *y);
void nas_pool_avg_backward(const nas_pool_geom *s, const float *dy, float *dx);

#endif
