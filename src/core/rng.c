/* rng.c - Philox4x32-10 (Salmon et al., SC 2011): a counter-based generator, so draw i is a
 * pure function of (seed, stream, i) and parallel fills do not depend on the thread count. */
#include "core_int.h"

#include <math.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

void nas_philox4x32(uint64_t key, uint64_t counter_hi, uint64_t counter_lo, uint32_t out[4]) {
    uint32_t c0 = (uint32_t)counter_lo, c1 = (uint32_t)(counter_lo >> 32);
    uint32_t c2 = (uint32_t)counter_hi, c3 = (uint32_t)(counter_hi >> 32);
    uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
    for (int round = 0; round < 10; round++) {
        const uint64_t p0 = (uint64_t)PHILOX_M0 * c0, p1 = (uint64_t)PHILOX_M1 * c2;
        const uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0, n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        c1 = (uint32_t)p1;
        c3 = (uint32_t)p0;
        c0 = n0;
        c2 = n2;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

nas_rng nas_rng_make(uint64_t seed, uint64_t stream) {
    nas_rng r = {seed, stream, 0};
    return r;
}

/* One draw = one Philox block; only the words needed are used (simple and stateless). */
static void block_at(const nas_rng *r, uint64_t i, uint32_t out[4]) {
    nas_philox4x32(r->seed, r->stream, i, out);
}

uint32_t nas_rng_u32(nas_rng *r) {
    uint32_t b[4];
    block_at(r, r->counter++, b);
    return b[0];
}

uint64_t nas_rng_u64(nas_rng *r) {
    uint32_t b[4];
    block_at(r, r->counter++, b);
    return ((uint64_t)b[1] << 32) | b[0];
}

static double u53(uint32_t hi, uint32_t lo) {
    return (double)((((uint64_t)hi << 32) | lo) >> 11) * (1.0 / 9007199254740992.0);
}

double nas_rng_uniform(nas_rng *r) {
    uint32_t b[4];
    block_at(r, r->counter++, b);
    return u53(b[1], b[0]);
}

/* Box-Muller on the block's two 53-bit uniforms; the first sample only. */
static double normal_from_block(const uint32_t b[4]) {
    const double u1 = 1.0 - u53(b[1], b[0]); /* (0, 1] so log is finite */
    const double u2 = u53(b[3], b[2]);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

double nas_rng_normal(nas_rng *r) {
    uint32_t b[4];
    block_at(r, r->counter++, b);
    return normal_from_block(b);
}

int64_t nas_rng_below(nas_rng *r, int64_t n) {
    NAS_ASSERT(n > 0);
    /* Rejection sampling avoids modulo bias. */
    const uint64_t un = (uint64_t)n, limit = UINT64_MAX - UINT64_MAX % un;
    for (;;) {
        const uint64_t v = nas_rng_u64(r);
        if (v < limit) {
            return (int64_t)(v % un);
        }
    }
}

void nas_rng_fill_uniform(nas_rng *r, float *out, int64_t n, float lo, float hi) {
    const nas_rng base = *r;
    NAS_OMP_FOR
    for (int64_t i = 0; i < n; i++) {
        uint32_t b[4];
        block_at(&base, base.counter + (uint64_t)i, b);
        out[i] = lo + (hi - lo) * (float)u53(b[1], b[0]);
    }
    r->counter += (uint64_t)n;
}

void nas_rng_fill_normal(nas_rng *r, float *out, int64_t n, float mean, float std) {
    const nas_rng base = *r;
    NAS_OMP_FOR
    for (int64_t i = 0; i < n; i++) {
        uint32_t b[4];
        block_at(&base, base.counter + (uint64_t)i, b);
        out[i] = mean + std * (float)normal_from_block(b);
    }
    r->counter += (uint64_t)n;
}

void nas_rng_shuffle(nas_rng *r, int64_t *idx, int64_t n) {
    for (int64_t i = n - 1; i > 0; i--) {
        const int64_t j = nas_rng_below(r, i + 1);
        const int64_t t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
    }
}
