/* rng.c - Philox4x32-10 (Salmon et al., SC 2011): a counter-based generator, so draw i is a
 * pure function of (seed, stream, i) and parallel fills do not depend on the thread count. */
#include "core_int.h"

#include <math.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif
#include <string.h>

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
static double normal_from_words(uint32_t w0, uint32_t w1, uint32_t w2, uint32_t w3) {
    const double u1 = 1.0 - u53(w1, w0); /* (0, 1] so log is finite */
    const double u2 = u53(w3, w2);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

static double normal_from_block(const uint32_t b[4]) {
    return normal_from_words(b[0], b[1], b[2], b[3]);
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

/* Philox's ten rounds on vectors c0..c3 holding the four counter words of every lane (V the
 * vector type; MULHILO, XOR and SET1 its operations), keyed by the 64-bit `key`. */
#define PHILOX_ROUNDS(V, MULHILO, XOR, SET1, c0, c1, c2, c3, key)                                \
    do {                                                                                         \
        const V m0_ = SET1((int)PHILOX_M0), m1_ = SET1((int)PHILOX_M1);                          \
        uint32_t k0_ = (uint32_t)(key), k1_ = (uint32_t)((key) >> 32);                           \
        for (int round_ = 0; round_ < 10; round_++) {                                            \
            V lo0_, hi0_, lo1_, hi1_;                                                            \
            MULHILO(c0, m0_, &lo0_, &hi0_);                                                      \
            MULHILO(c2, m1_, &lo1_, &hi1_);                                                      \
            const V n0_ = XOR(XOR(hi1_, c1), SET1((int)k0_));                                    \
            const V n2_ = XOR(XOR(hi0_, c3), SET1((int)k1_));                                    \
            c1 = lo1_;                                                                           \
            c3 = lo0_;                                                                           \
            c0 = n0_;                                                                            \
            c2 = n2_;                                                                            \
            k0_ += PHILOX_W0;                                                                    \
            k1_ += PHILOX_W1;                                                                    \
        }                                                                                        \
    } while (0)

#if defined(__AVX2__)
/* (lo, hi) 32-bit halves of the 32x32-bit products a[j] * m for the 8 lanes of a. */
static inline void mulhilo8(__m256i a, __m256i m, __m256i *lo, __m256i *hi) {
    const __m256i even = _mm256_mul_epu32(a, m);
    const __m256i odd = _mm256_mul_epu32(_mm256_srli_epi64(a, 32), m);
    *lo = _mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0xAA);
    *hi = _mm256_blend_epi32(_mm256_srli_epi64(even, 32), odd, 0xAA);
}
#endif

/* The Philox blocks of the 8 consecutive counters first .. first + 7 (same stream): out[w][j]
 * is word w of block first + j. Equal to 8 calls of nas_philox4x32; the AVX2 path runs the
 * rounds on all 8 lanes at once, which is what makes weight initialisation cheap (one block per
 * float: 1M parameters took ~35 ms one block at a time). */
void nas_philox4x32_x8(uint64_t key, uint64_t counter_hi, uint64_t first, uint32_t out[4][8]) {
#if defined(__AVX2__)
    uint32_t lo[8], hi[8];
    for (int j = 0; j < 8; j++) {
        lo[j] = (uint32_t)(first + (uint64_t)j);
        hi[j] = (uint32_t)((first + (uint64_t)j) >> 32);
    }
    __m256i c0 = _mm256_loadu_si256((const __m256i *)lo);
    __m256i c1 = _mm256_loadu_si256((const __m256i *)hi);
    __m256i c2 = _mm256_set1_epi32((int)(uint32_t)counter_hi);
    __m256i c3 = _mm256_set1_epi32((int)(uint32_t)(counter_hi >> 32));
    PHILOX_ROUNDS(__m256i, mulhilo8, _mm256_xor_si256, _mm256_set1_epi32, c0, c1, c2, c3, key);
    _mm256_storeu_si256((__m256i *)out[0], c0);
    _mm256_storeu_si256((__m256i *)out[1], c1);
    _mm256_storeu_si256((__m256i *)out[2], c2);
    _mm256_storeu_si256((__m256i *)out[3], c3);
#else
    for (int j = 0; j < 8; j++) {
        uint32_t b[4];
        nas_philox4x32(key, counter_hi, first + (uint64_t)j, b);
        for (int w = 0; w < 4; w++) {
            out[w][j] = b[w];
        }
    }
#endif
}

#if defined(__x86_64__) && defined(__GNUC__)
#define PHILOX_AVX512 1
/* (lo, hi) 32-bit halves of the 32x32-bit products a[j] * m for the 16 lanes of a. */
__attribute__((target("avx512f"))) static inline void mulhilo16(__m512i a, __m512i m, __m512i *lo,
                                                                __m512i *hi) {
    const __m512i even = _mm512_mul_epu32(a, m);
    const __m512i odd = _mm512_mul_epu32(_mm512_srli_epi64(a, 32), m);
    *lo = _mm512_mask_blend_epi32(0xAAAA, even, _mm512_slli_epi64(odd, 32));
    *hi = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(even, 32), odd);
}

/* nas_philox4x32_x8's rounds on 16 lanes (a function of its own: the build targets AVX2). */
__attribute__((target("avx512f"))) static void
philox_x16_avx512(uint64_t key, uint64_t counter_hi, uint64_t first, uint32_t out[4][16]) {
    uint32_t lo[16], hi[16];
    for (int j = 0; j < 16; j++) {
        lo[j] = (uint32_t)(first + (uint64_t)j);
        hi[j] = (uint32_t)((first + (uint64_t)j) >> 32);
    }
    __m512i c0 = _mm512_loadu_si512(lo), c1 = _mm512_loadu_si512(hi);
    __m512i c2 = _mm512_set1_epi32((int)(uint32_t)counter_hi);
    __m512i c3 = _mm512_set1_epi32((int)(uint32_t)(counter_hi >> 32));
    PHILOX_ROUNDS(__m512i, mulhilo16, _mm512_xor_si512, _mm512_set1_epi32, c0, c1, c2, c3, key);
    _mm512_storeu_si512(out[0], c0);
    _mm512_storeu_si512(out[1], c1);
    _mm512_storeu_si512(out[2], c2);
    _mm512_storeu_si512(out[3], c3);
}
#else
#define PHILOX_AVX512 0
#endif

void nas_philox4x32_x16(uint64_t key, uint64_t counter_hi, uint64_t first, uint32_t out[4][16]) {
#if PHILOX_AVX512
    if (__builtin_cpu_supports("avx512f")) {
        philox_x16_avx512(key, counter_hi, first, out);
        return;
    }
#endif
    uint32_t half[4][8];
    for (int h = 0; h < 2; h++) {
        nas_philox4x32_x8(key, counter_hi, first + (uint64_t)(8 * h), half);
        for (int w = 0; w < 4; w++) {
            memcpy(&out[w][8 * h], half[w], sizeof half[w]);
        }
    }
}

/* Fill draws counter .. counter + n - 1, one block each, 16 blocks at a time; out[i] = f(block). */
#define FILL_BY_BLOCKS(r, n, EXPR)                                                           \
    do {                                                                                     \
        const nas_rng base_ = *(r);                                                          \
        const int64_t groups_ = ((n) + 15) / 16;                                             \
        NAS_OMP_FOR_IF((n) >= NAS_PAR_MIN)                                                   \
        for (int64_t g_ = 0; g_ < groups_; g_++) {                                           \
            uint32_t b[4][16];                                                               \
            const uint64_t first_ = base_.counter + (uint64_t)(16 * g_);                     \
            nas_philox4x32_x16(base_.seed, base_.stream, first_, b);                         \
            const int64_t end_ = nas_min_i64((n), 16 * g_ + 16);                             \
            for (int64_t i = 16 * g_; i < end_; i++) {                                       \
                const int j = (int)(i - 16 * g_);                                            \
                out[i] = (EXPR);                                                             \
            }                                                                                \
        }                                                                                    \
        (r)->counter += (uint64_t)(n);                                                       \
    } while (0)

NAS_AVX512_CLONES void nas_rng_fill_uniform(nas_rng *r, float *out, int64_t n, float lo, float hi) {
    FILL_BY_BLOCKS(r, n, lo + (hi - lo) * (float)u53(b[1][j], b[0][j]));
}

void nas_rng_fill_normal(nas_rng *r, float *out, int64_t n, float mean, float std) {
    FILL_BY_BLOCKS(r, n, mean + std * (float)normal_from_words(b[0][j], b[1][j], b[2][j], b[3][j]));
}

void nas_rng_shuffle(nas_rng *r, int64_t *idx, int64_t n) {
    for (int64_t i = n - 1; i > 0; i--) {
        const int64_t j = nas_rng_below(r, i + 1);
        const int64_t t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
    }
}
