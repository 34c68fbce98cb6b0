/* sched.c - learning-rate schedules and gradient clipping, the two per-step scalars a training
 * loop applies around nas_optim_step.
 *
 * Schedules are closed forms of PyTorch 1.13's torch.optim.lr_scheduler (constant, StepLR,
 * CosineAnnealingLR) evaluated in double, optionally times a linear warm-up factor equal to
 * LinearLR(start_factor = 1/W, end_factor = 1, total_iters = W - 1) chained with the schedule.
 * nas_clip_grad_norm is torch.nn.utils.clip_grad_norm_ (norm_type 2) with the norm accumulated
 * in double over fixed chunks combined in order, so it does not depend on the thread count. */
#include "tensor/tensor_int.h"

#include <math.h>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define CLIP_AVX2 1
#else
#define CLIP_AVX2 0
#endif

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

static double base_value(const nas_sched *s, int64_t step) {
    switch (s->kind) {
        case NAS_SCHED_CONSTANT:
            return (double)s->base_lr;
        case NAS_SCHED_COSINE: {
            /* eta_min + (base - eta_min) (1 + cos(pi t / T)) / 2, held at eta_min after T */
            const double lo = (double)s->min_lr, hi = (double)s->base_lr;
            if (s->total_steps <= 0 || step >= s->total_steps) {
                return s->total_steps <= 0 ? hi : lo;
            }
            const double t = (double)step / (double)s->total_steps;
            return lo + (hi - lo) * (1.0 + cos(M_PI * t)) / 2.0;
        }
        case NAS_SCHED_STEP: {
            /* base * gamma^(floor(t / step_size)) */
            if (s->step_size <= 0) {
                return (double)s->base_lr;
            }
            return (double)s->base_lr * pow((double)s->gamma, (double)(step / s->step_size));
        }
    }
    return (double)s->base_lr;
}

float nas_sched_lr(const nas_sched *s, int64_t step) {
    if (step < 0) {
        step = 0;
    }
    double lr = base_value(s, step);
    if (s->warmup_steps > 1 && step < s->warmup_steps) {
        lr *= (double)(step + 1) / (double)s->warmup_steps;
    }
    return (float)lr;
}

/* ------------------------------------------------------------------------- gradient clipping */

#define CLIP_CHUNK      4096 /* floats per partial sum */
#define CLIP_MAX_CHUNKS 256  /* partial sums live on the stack: no allocation */

static int clip_matches(int flags, int mask, int value) {
    return (flags & NAS_PARAM_BUFFER) == 0 && (flags & mask) == value;
}

/* Sum of squares of x[0..n) in double. The order (8 lanes, then the lanes in a fixed order,
 * then the tail) depends only on n, so the result does not depend on threads. */
static double sum_squares(const float *x, int64_t n) {
    int64_t k = 0;
    double acc = 0.0;
#if CLIP_AVX2
    __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd();
    for (; k + 8 <= n; k += 8) {
        const __m256 v = _mm256_loadu_ps(x + k);
        const __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(v));
        const __m256d hi = _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1));
        a0 = _mm256_fmadd_pd(lo, lo, a0); /* a float squared is exact in double */
        a1 = _mm256_fmadd_pd(hi, hi, a1);
    }
    double lanes[4];
    _mm256_storeu_pd(lanes, _mm256_add_pd(a0, a1));
    acc = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
#endif
    for (; k < n; k++) {
        acc += (double)x[k] * (double)x[k];
    }
    return acc;
}

static void scale(float *x, int64_t n, float coef) {
    int64_t k = 0;
#if CLIP_AVX2
    const __m256 c = _mm256_set1_ps(coef);
    for (; k + 8 <= n; k += 8) {
        _mm256_storeu_ps(x + k, _mm256_mul_ps(_mm256_loadu_ps(x + k), c));
    }
#endif
    for (; k < n; k++) {
        x[k] *= coef;
    }
}

/* Over the matching gradient floats with compact index in [b, e), entry by entry: mode 0
 * returns their sum of squares (in double, in a fixed order), mode 1 scales them by coef. */
static double clip_range(nas_params *p, int mask, int value, int64_t b, int64_t e, int mode,
                         float coef) {
    double acc = 0.0;
    int64_t at = 0;
    for (int64_t i = 0; i < p->n_entries && at < e; i++) {
        const nas_param_entry *en = &p->entries[i];
        if (!clip_matches(en->flags, mask, value)) {
            continue;
        }
        const int64_t i0 = nas_max_i64(b - at, 0), i1 = nas_min_i64(en->numel, e - at);
        if (i1 > i0) {
            float *g = p->grad + en->offset + i0;
            if (mode == 0) {
                acc += sum_squares(g, i1 - i0);
            } else {
                scale(g, i1 - i0, coef);
            }
        }
        at += en->numel;
    }
    return acc;
}

double nas_clip_grad_norm(nas_params *p, int flags_mask, int flags_value, double max_norm) {
    int64_t n = 0;
    for (int64_t i = 0; i < p->n_entries; i++) {
        n += clip_matches(p->entries[i].flags, flags_mask, flags_value) ? p->entries[i].numel : 0;
    }
    if (n <= 0) {
        return 0.0;
    }
    /* Chunk boundaries depend on n only, so the sum does too. */
    int64_t n_chunks = (n + CLIP_CHUNK - 1) / CLIP_CHUNK;
    n_chunks = nas_min_i64(n_chunks, CLIP_MAX_CHUNKS);
    double partial[CLIP_MAX_CHUNKS];
    NAS_OMP_FOR
    for (int64_t c = 0; c < n_chunks; c++) {
        int64_t b, e;
        nas_split_range(n, (int)n_chunks, (int)c, &b, &e);
        partial[c] = clip_range(p, flags_mask, flags_value, b, e, 0, 1.0f);
    }
    double sq = 0.0;
    for (int64_t c = 0; c < n_chunks; c++) {
        sq += partial[c];
    }
    const double norm = sqrt(sq);
    /* clip_coef = max_norm / (total_norm + 1e-6), clamped to at most 1; torch multiplies even
     * when the coefficient is 1, which changes nothing, so skip that case. */
    const float coef = (float)max_norm / ((float)norm + 1e-6f);
    if (coef < 1.0f || isnan(coef)) {
        NAS_OMP_FOR
        for (int64_t c = 0; c < n_chunks; c++) {
            int64_t b, e;
            nas_split_range(n, (int)n_chunks, (int)c, &b, &e);
            clip_range(p, flags_mask, flags_value, b, e, 1, coef);
        }
    }
    return norm;
}
