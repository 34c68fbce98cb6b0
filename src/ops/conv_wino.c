/* conv_wino.c - Winograd F(4x4, 3x3) for 3x3, stride-1, pad-1 convolutions whose activations the
 * planner has put in the 16-channel blocked layout (nChw16c: [N][C/16][H][W][16]), on AVX-512:
 * forward, data gradient and weight gradient.
 *
 * Why our own: oneDNN 2.6's Winograd is built for wide layers and is 1.3-1.7x slower than its
 * direct kernels at 16 channels (conv_dnnl.c), while those direct kernels reach only ~55% of the
 * FMA peak there, because each broadcast input feeds a single 16-wide FMA. Here one 16-channel
 * block is exactly one zmm register: a 6x6 input tile is transformed (Bᵀ d B) with adds on 16
 * channels at once, the 36 transformed positions are multiplied by the transformed weights
 * (G g Gᵀ) as 36 small GEMMs (8 tiles at a time: 8 accumulators + 16 weight vectors stay in the
 * 32 registers), and Aᵀ m A gives the 4x4 output tile: 576 FMAs per tile and pair of 16-channel
 * blocks against direct's 2304. The data gradient is the same convolution of dy with the flipped,
 * transposed kernel, so it runs the same code. The weight gradient sums (A dY Aᵀ) ⊙ (Bᵀ d B) over
 * the tiles (per thread, 24 tiles in registers, 8 such batches to a partial sum) and ends with
 * Gᵀ dU G.
 *
 * Convs reading one x (NB201's edges from one node) run as a group (ops/conv.c): the forward
 * transforms each input tile once for all of them, and so does the leader's weight gradient;
 * data gradients stay per conv (each dy is in cache right after it is made).
 *
 * Threads share as little as they can: each transforms its own copy of the weights and keeps to
 * its half of the batch, the half the other ops give it, stealing only the tail of the other's
 * (chunk_share): at this host's far vCPU placements a line written by one thread and read by
 * the other costs ~450 ns, and sharing made the passes up to 2.4x slower there.
 *
 * Measured (bench/bench_conv.sh, bench/RESULTS.md), batch 64, 2 threads, buffers in cache, ms
 * forward / forward + both gradients: 16 channels 32x32 oneDNN 1.26 / 3.88, ours 0.32 / 0.98;
 * 32 channels 16x16 0.99 / 2.66 (oneDNN's Winograd in training), ours 0.26 / 0.77; 64 channels
 * 8x8 0.82 / 1.75, ours 0.24 / 0.73. Activations coming from memory (as inside a network) cost
 * no more once the next tiles' rows are fetched during the current tiles' GEMMs (fetch_plan:
 * before it, 16 channels from memory took 0.70 / 0.78 / 1.02 ms per pass against 0.37 / 0.39 /
 * 0.40 in cache; now ~0.40 either way); with few tiles per weight pair the weight transform
 * dominates and oneDNN is kept (see nas_conv_wino_suits).
 *
 * Results are deterministic for a given thread count (the weight gradient's per-thread sums are
 * added in thread order). Rounding: ~1e-6 of the largest output against ~1e-7 for direct
 * convolution (F(4x4, 3x3)'s transforms have constants up to 8 and 1/24). Deep networks at
 * initialisation amplify it: the NB201 all-conv3x3 cell's snip and grad_norm move by ~1.5e-3
 * relative (direct: ~7e-5), per-cell scores over a 1,000-cell sample by 2e-5 (median), and every
 * proxy's rank correlation is unchanged to 3 decimals. */
#include "conv_int.h"

#include <stdatomic.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define WINO_AVX512 1
#define WINO_TARGET __attribute__((target("avx512f")))
#else
#define WINO_AVX512 0
#endif

enum {
    LANES = 16,                         /* channels per block = floats per zmm register */
    POS = 36,                           /* transformed positions of a 6x6 tile */
    TILES = 8,                          /* tiles per GEMM step */
    BLOCK_FLOATS = POS * LANES * LANES, /* transformed weights of one 16x16 channel block pair */
    ALIGN_FLOATS = 16,                  /* 64 bytes */
    /* Weight gradient: tiles per accumulation batch, and the stride of a position's row of a
     * batch (padded by one vector: power-of-two strides between rows ran 1.5-2x slower). */
    WTILES = 24,
    WSTRIDE = WTILES * LANES + LANES,
    /* Batches summed in registers-then-memory before they are added to the running sum, so
     * rounding grows with the number of chunks, not of tiles. */
    CHUNK_BATCHES = 8,
    /* Tile groups a thread takes at a time (chunk_share: a static split left one of two threads
     * waiting ~10% of the passes on this shared host). */
    CLAIM_GROUPS = 4,
    /* The most 16x16 channel-block pairs of transformed weights one pass handles (a 64-channel
     * conv, or a group of convs sharing x whose blocks add up to as many): 16 x 36 KB, what the
     * tile GEMMs stream per group of tiles, and the weight gradient's per-thread sums. */
    MAX_BLOCK_PAIRS = 16,
    CHUNK_SHARE_FLOATS = 16 /* a thread's chunk_share: one cache line */
};

int nas_conv_wino_suits(const nas_conv_geom *c, int has_bias) {
#if WINO_AVX512
    /* 16 to 64 channels, where it beats oneDNN (see the header); output tiles cover the image
     * exactly (partial tiles waste up to 3/4 of a tile); at least 4 tiles per pair of 16-channel
     * blocks, to pay for the weight transform (64 channels 8x8 at batch 1, 4 tiles: 0.042 ms
     * against oneDNN's 0.023; 32 channels 16x16 at batch 1, 16 tiles: 0.012 against 0.018) */
    const int64_t tiles = c->N * (c->H / 4) * (c->W / 4);
    return !has_bias && c->groups == 1 && c->KH == 3 && c->KW == 3 && c->sh == 1 && c->sw == 1 &&
           c->ph == 1 && c->pw == 1 && c->dh == 1 && c->dw == 1 && c->OH == c->H && c->OW == c->W &&
           c->H % 4 == 0 && c->W % 4 == 0 && c->C % LANES == 0 && c->O % LANES == 0 && c->C <= 64 &&
           c->O <= 64 && tiles >= 4 * (c->C / LANES) * (c->O / LANES) &&
           __builtin_cpu_supports("avx512f");
#else
    (void)c;
    (void)has_bias;
    return 0;
#endif
}

/* Floats of one thread's tile buffers: V (transformed inputs of TILES tiles, `in` channels) and
 * M (their products for one output block). */
static int64_t thread_floats(int64_t in) {
    return (in / LANES) * POS * TILES * LANES + TILES * POS * LANES;
}

/* The weight gradient's per-thread buffers for `members` convs sharing x: the running sum of the
 * transformed gradients dU ([members OB][CB][36][16 in][16 out]), the partial sum of the current
 * chunk of tile batches, and the transformed inputs V and output gradients Ybar of one batch
 * ([blocks][36][WSTRIDE]). */
static int64_t weights_thread_floats(const nas_conv_geom *c, int members) {
    const int64_t CB = c->C / LANES, OB = members * c->O / LANES;
    return 2 * OB * CB * BLOCK_FLOATS + (CB + OB) * POS * WSTRIDE;
}

int nas_conv_wino_group_fits(const nas_conv_geom *c, int members) {
    return members >= 1 && members * (c->O / LANES) * (c->C / LANES) <= MAX_BLOCK_PAIRS;
}

size_t nas_conv_wino_scratch_bytes(const nas_conv_geom *c, int members) {
    const int64_t weights = members * (c->O / LANES) * (c->C / LANES) * BLOCK_FLOATS;
    const int64_t widest = c->C > c->O ? c->C : c->O;
    const int64_t data = (CHUNK_SHARE_FLOATS + weights + thread_floats(widest)) * nas_max_threads();
    const int64_t grad = weights_thread_floats(c, members) * nas_max_threads();
    return (size_t)((data > grad ? data : grad) + ALIGN_FLOATS) * sizeof(float);
}

#if WINO_AVX512
static float *align64(float *p) {
    return (float *)(((uintptr_t)p + 63) & ~(uintptr_t)63);
}

/* 1-D input transform Bᵀ d: 6 -> 6. */
#define WINO_BT(d0, d1, d2, d3, d4, d5, o0, o1, o2, o3, o4, o5)                                    \
    do {                                                                                           \
        const __m512 four = _mm512_set1_ps(4.f), five = _mm512_set1_ps(5.f);                       \
        const __m512 two = _mm512_set1_ps(2.f);                                                    \
        const __m512 s12 = _mm512_add_ps(d1, d2), s34 = _mm512_add_ps(d3, d4);                     \
        const __m512 m12 = _mm512_sub_ps(d1, d2), m43 = _mm512_sub_ps(d4, d3);                     \
        const __m512 m42 = _mm512_sub_ps(d4, d2), m31 = _mm512_sub_ps(d3, d1);                     \
        o0 = _mm512_add_ps(_mm512_fnmadd_ps(five, d2, _mm512_mul_ps(four, d0)), d4);               \
        o1 = _mm512_fnmadd_ps(four, s12, s34);                                                     \
        o2 = _mm512_fmadd_ps(four, m12, m43);                                                      \
        o3 = _mm512_fmadd_ps(two, m31, m42);                                                       \
        o4 = _mm512_fnmadd_ps(two, m31, m42);                                                      \
        o5 = _mm512_add_ps(_mm512_fnmadd_ps(five, d3, _mm512_mul_ps(four, d1)), d5);               \
    } while (0)

/* 1-D output transform Aᵀ m: 6 -> 4. */
#define WINO_AT(m0, m1, m2, m3, m4, m5, y0, y1, y2, y3)                                            \
    do {                                                                                           \
        const __m512 a12 = _mm512_add_ps(m1, m2), s12 = _mm512_sub_ps(m1, m2);                     \
        const __m512 a34 = _mm512_add_ps(m3, m4), s34 = _mm512_sub_ps(m3, m4);                     \
        y0 = _mm512_add_ps(_mm512_add_ps(m0, a12), a34);                                           \
        y1 = _mm512_fmadd_ps(_mm512_set1_ps(2.f), s34, s12);                                       \
        y2 = _mm512_fmadd_ps(_mm512_set1_ps(4.f), a34, a12);                                       \
        y3 = _mm512_add_ps(_mm512_fmadd_ps(_mm512_set1_ps(8.f), s34, s12), m5);                    \
    } while (0)

/* 1-D weight transform G g: 3 taps -> 6 positions, on 16 output channels at once. */
#define WINO_G(g0, g1, g2, u)                                                                      \
    do {                                                                                           \
        const __m512 sixth = _mm512_set1_ps(1.f / 6), twelfth = _mm512_set1_ps(1.f / 12);          \
        const __m512 l24 = _mm512_set1_ps(1.f / 24);                                               \
        const __m512 outer = _mm512_add_ps(g0, g2);                                                \
        const __m512 near = _mm512_fmadd_ps(l24, g0, _mm512_mul_ps(sixth, g2));                    \
        u[0] = _mm512_mul_ps(_mm512_set1_ps(0.25f), g0);                                           \
        u[1] = _mm512_mul_ps(_mm512_set1_ps(-1.f / 6), _mm512_add_ps(outer, g1));                  \
        u[2] = _mm512_mul_ps(_mm512_set1_ps(-1.f / 6), _mm512_sub_ps(outer, g1));                  \
        u[3] = _mm512_fmadd_ps(twelfth, g1, near);                                                 \
        u[4] = _mm512_fnmadd_ps(twelfth, g1, near);                                                \
        u[5] = g2;                                                                                 \
    } while (0)

/* The transformed weights U[row][ib][pos][16 in][16 out] (G g Gᵀ) of one pass over `members`
 * convs of one geometry sharing x, w[m] [O][C][3][3]: rows are the members' output blocks in
 * turn. flip: the data gradient's (one member; kernels transposed, taps reversed). One row per
 * (member, output block, input channel), 16 output channels per vector with their taps
 * gathered. Each thread makes its own copy: a copy shared by the team, each thread making half
 * the rows, made each thread read the other half from the other core, which at the far
 * placements of this host (see chunk_share) cost more than making all of it (64 channels: 590
 * KB of U, ~10 us to make). */
WINO_TARGET static void weights_transform(const nas_conv_geom *c, const float *const *w,
                                          int members, int flip, float *U) {
    const int64_t out = flip ? c->C : c->O, in = flip ? c->O : c->C;
    const int64_t OBm = out / LANES, IB = in / LANES;
    /* lane stride of a tap: the next output channel's kernel */
    const __m512i lanes =
        _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                           _mm512_set1_epi32((int)(flip ? 9 : c->C * 9)));
    const int64_t rows = members * OBm * in;
    for (int64_t r = 0; r < rows; r++) {
        const int64_t m = r / (OBm * in), ob = r / in % OBm, b = r % in;
        const float *k = flip ? w[m] + (b * c->C + ob * LANES) * 9 + 8
                              : w[m] + (ob * LANES * c->C + b) * 9;
        __m512 tap[9], t[6][3], u[6];
        for (int i = 0; i < 9; i++) {
            tap[i] = _mm512_i32gather_ps(lanes, k + (flip ? -i : i), 4);
        }
        for (int j = 0; j < 3; j++) {
            WINO_G(tap[j], tap[3 + j], tap[6 + j], u);
            for (int i = 0; i < 6; i++) {
                t[i][j] = u[i];
            }
        }
        float *dst = U + ((m * OBm + ob) * IB + b / LANES) * BLOCK_FLOATS + (b % LANES) * LANES;
        for (int i = 0; i < 6; i++) {
            WINO_G(t[i][0], t[i][1], t[i][2], u);
            for (int j = 0; j < 6; j++) {
                _mm512_store_ps(dst + (i * 6 + j) * LANES * LANES, u[j]);
            }
        }
    }
}

/* Bᵀ d B of the 6x6 tile at (ih0, iw0) of one channel block's plane [H][W][16] (zeros outside);
 * position p goes to V[p * stride]. */
WINO_TARGET static void input_tile(const float *x, int64_t H, int64_t W, int64_t ih0, int64_t iw0,
                                   float *V, int64_t stride) {
    __m512 d[6][6], t[6][6];
    _Pragma("GCC unroll 6") for (int i = 0; i < 6; i++) {
        const int64_t ih = ih0 + i;
        _Pragma("GCC unroll 6") for (int j = 0; j < 6; j++) {
            const int64_t iw = iw0 + j;
            d[i][j] = ih >= 0 && ih < H && iw >= 0 && iw < W
                          ? _mm512_loadu_ps(x + (ih * W + iw) * LANES)
                          : _mm512_setzero_ps();
        }
    }
    _Pragma("GCC unroll 6") for (int j = 0; j < 6; j++) {
        WINO_BT(d[0][j], d[1][j], d[2][j], d[3][j], d[4][j], d[5][j], t[0][j], t[1][j], t[2][j],
                t[3][j], t[4][j], t[5][j]);
    }
    _Pragma("GCC unroll 6") for (int i = 0; i < 6; i++) {
        __m512 o[6];
        WINO_BT(t[i][0], t[i][1], t[i][2], t[i][3], t[i][4], t[i][5], o[0], o[1], o[2], o[3], o[4],
                o[5]);
        _Pragma("GCC unroll 6") for (int j = 0; j < 6; j++) {
            _mm512_store_ps(V + (i * 6 + j) * stride, o[j]);
        }
    }
}

/* Aᵀ M A of one tile's 36 products M[p][16] into the 4x4 outputs at (oh0, ow0) of a plane
 * [H][W][16], stored or added. */
WINO_TARGET static void output_tile(const float *M, float *y, int64_t W, int64_t oh0, int64_t ow0,
                                    int add) {
    __m512 t[4][6];
    _Pragma("GCC unroll 6") for (int j = 0; j < 6; j++) {
        __m512 m[6];
        _Pragma("GCC unroll 6") for (int i = 0; i < 6; i++) {
            m[i] = _mm512_load_ps(M + (i * 6 + j) * LANES);
        }
        WINO_AT(m[0], m[1], m[2], m[3], m[4], m[5], t[0][j], t[1][j], t[2][j], t[3][j]);
    }
    _Pragma("GCC unroll 4") for (int i = 0; i < 4; i++) {
        __m512 o[4];
        WINO_AT(t[i][0], t[i][1], t[i][2], t[i][3], t[i][4], t[i][5], o[0], o[1], o[2], o[3]);
        float *row = y + ((oh0 + i) * W + ow0) * LANES;
        _Pragma("GCC unroll 4") for (int j = 0; j < 4; j++) {
            if (add) {
                o[j] = _mm512_add_ps(o[j], _mm512_loadu_ps(row + j * LANES));
            }
            _mm512_storeu_ps(row + j * LANES, o[j]);
        }
    }
}

/* ---- fetching the next tiles' rows while the current ones multiply
 *
 * The tiles' six-row windows defeat the hardware prefetchers (tiles read from memory: 16 GB/s
 * against 57 row by row), so each group's GEMMs fetch the rows the next group will touch. A few
 * lines per GEMM step: the same prefetches issued at once, before the group, left a cold-input
 * forward 1.6x slower than a cached one (their misses held up the current tiles' loads); spread
 * over the steps the two run at the same speed (16 channels 32x32, batch 64). */
enum { MAX_SPANS = 64 }; /* more are dropped: a prefetch is only a hint */

typedef struct fetch_plan {
    const char *from[MAX_SPANS];
    int64_t bytes[MAX_SPANS];
    uint8_t write[MAX_SPANS];
    int spans, span;
    int64_t at;       /* next byte of the current span */
    int64_t per_step; /* lines per fetch_some */
} fetch_plan;

static void plan_start(fetch_plan *f) {
    f->spans = f->span = 0;
    f->at = f->per_step = 0;
}

/* Rows [r0, r1] (clamped to the plane) of `blocks` consecutive channel-block planes
 * [H][W][16]. */
static void plan_rows(fetch_plan *f, const float *planes, int64_t blocks, int64_t H, int64_t W,
                      int64_t r0, int64_t r1, int write) {
    r0 = r0 < 0 ? 0 : r0;
    r1 = r1 > H - 1 ? H - 1 : r1;
    const int64_t bytes = (r1 - r0 + 1) * W * LANES * (int64_t)sizeof(float);
    for (int64_t b = 0; b < blocks && bytes > 0 && f->spans < MAX_SPANS; b++, f->spans++) {
        f->from[f->spans] = (const char *)(planes + (b * H + r0) * W * LANES);
        f->bytes[f->spans] = bytes;
        f->write[f->spans] = (uint8_t)write;
    }
}

/* The rows `count` tiles from the (image, tile) index `first` on touch in each of `parts`
 * tensors [N][blocks][H][W][16], with `halo` rows above and below (an input window: 1). */
static void plan_tiles(fetch_plan *f, const float *const *part, int64_t parts, int64_t blocks,
                       int64_t H, int64_t W, int64_t first, int64_t count, int halo, int write) {
    const int64_t TW = W / 4, NT = (H / 4) * TW;
    for (int64_t g = first; g < first + count;) {
        const int64_t n = g / NT, left = first + count - g;
        const int64_t in_image = NT - g % NT < left ? NT - g % NT : left;
        const int64_t r0 = g % NT / TW * 4, r1 = (g + in_image - 1) % NT / TW * 4 + 3;
        for (int64_t p = 0; p < parts; p++) {
            plan_rows(f, part[p] + n * blocks * H * W * LANES, blocks, H, W, r0 - halo, r1 + halo,
                      write);
        }
        g += in_image;
    }
}

/* Spread the planned lines over `steps` calls of fetch_some. */
static void plan_pace(fetch_plan *f, int64_t steps) {
    int64_t lines = 0;
    for (int i = 0; i < f->spans; i++) {
        lines += (f->bytes[i] + 63) / 64;
    }
    f->per_step = (lines + steps - 1) / steps;
}

/* The next per_step lines of the plan. */
static inline __attribute__((always_inline)) void fetch_some(fetch_plan *f) {
    for (int64_t left = f->per_step; left > 0 && f->span < f->spans;) {
        const char *from = f->from[f->span] + f->at;
        const int64_t in_span = (f->bytes[f->span] - f->at + 63) / 64;
        const int64_t n = in_span < left ? in_span : left;
        if (f->write[f->span]) {
            for (int64_t i = 0; i < n; i++) {
                __builtin_prefetch(from + i * 64, 1, 3);
            }
        } else {
            for (int64_t i = 0; i < n; i++) {
                __builtin_prefetch(from + i * 64, 0, 3);
            }
        }
        left -= n;
        f->at += n * 64;
        if (n == in_span) {
            f->span++;
            f->at = 0;
        }
    }
}

/* M[t][p] = sum over input blocks and lanes of U[p][in][:] * V[p][t][in], for one output block;
 * a step of `f` per position. Kept out of line: inlined into the pass it ran ~5% slower. */
WINO_TARGET __attribute__((noinline)) static void tile_products(const float *U, const float *V,
                                                                int64_t IB, float *M,
                                                                fetch_plan *f) {
    for (int p = 0; p < POS; p++) {
        fetch_some(f);
        __m512 acc[TILES];
        _Pragma("GCC unroll 8") for (int t = 0; t < TILES; t++) {
            acc[t] = _mm512_setzero_ps();
        }
        for (int64_t ib = 0; ib < IB; ib++) {
            const float *u = U + ib * BLOCK_FLOATS + p * LANES * LANES;
            const float *v = V + (ib * POS + p) * TILES * LANES;
            _Pragma("GCC unroll 16") for (int i = 0; i < LANES; i++) {
                const __m512 uw = _mm512_load_ps(u + i * LANES);
                _Pragma("GCC unroll 8") for (int t = 0; t < TILES; t++) {
                    acc[t] = _mm512_fmadd_ps(uw, _mm512_set1_ps(v[t * LANES + i]), acc[t]);
                }
            }
        }
        _Pragma("GCC unroll 8") for (int t = 0; t < TILES; t++) {
            _mm512_store_ps(M + (t * POS + p) * LANES, acc[t]);
        }
    }
}

/* A group's outputs, or their gradients: `parts` tensors [N][blocks][H][W][16] taken as one
 * tensor of parts * blocks channel blocks. */
typedef struct in_planes {
    const float *const *part;
    int64_t blocks;
} in_planes;

typedef struct out_planes {
    float *const *part;
    int64_t blocks;
} out_planes;

/* Block b of image n of a pass's side (planes of `plane` floats). */
static const float *in_block(in_planes s, int64_t n, int64_t b, int64_t plane) {
    return s.part[b / s.blocks] + (n * s.blocks + b % s.blocks) * plane;
}

static float *out_block(out_planes s, int64_t n, int64_t b, int64_t plane) {
    return s.part[b / s.blocks] + (n * s.blocks + b % s.blocks) * plane;
}

/* A thread's share of a pass's chunks of tile groups, [lo, hi) packed in one word on its own
 * cache line: the owner takes chunks from the front; a thread done with its own takes from the
 * back of another's. So each thread keeps the contiguous images it owns in every other pass
 * (batch norms, ReLUs and the weight gradient split the batch in halves too), and stealing the
 * tail keeps the balance one shared counter gave. Why it matters: this shared host sometimes
 * places our two vCPUs far apart (a cache line between them takes ~450 ns against ~100), and
 * then every line one thread reads after the other wrote it is slow. The 16-channel forward in
 * cache (bench_conv) at such placements: tiles from one shared counter and a weight transform
 * shared by the team 0.79-0.82 ms, tiles split statically 0.58-0.62, with the shares and each
 * thread's own transformed weights (weights_transform) 0.34, as fast as at close placements. */
typedef struct chunk_share {
    _Atomic uint64_t range;
    char pad[CHUNK_SHARE_FLOATS * sizeof(float) - sizeof(uint64_t)];
} chunk_share;
_Static_assert(sizeof(chunk_share) == CHUNK_SHARE_FLOATS * sizeof(float), "one line per share");

static void share_init(chunk_share *s, int64_t chunks, int sharers, int me) {
    int64_t lo, hi;
    nas_split_range(chunks, sharers, me, &lo, &hi);
    atomic_store_explicit(&s->range, (uint64_t)hi << 32 | (uint64_t)lo, memory_order_relaxed);
}

/* Take the front (or, `back`, the back) chunk of a share; -1 when it is empty. */
static int64_t share_take(chunk_share *s, int back) {
    uint64_t r = atomic_load_explicit(&s->range, memory_order_relaxed);
    for (;;) {
        const uint64_t lo = r & 0xffffffffu, hi = r >> 32;
        if (lo >= hi) {
            return -1;
        }
        const uint64_t want = back ? (hi - 1) << 32 | lo : hi << 32 | (lo + 1);
        if (atomic_compare_exchange_weak_explicit(&s->range, &r, want, memory_order_relaxed,
                                                  memory_order_relaxed)) {
            return (int64_t)(back ? hi - 1 : lo);
        }
    }
}

/* The calling thread's next chunk: its own share's first, else the last of the next non-empty
 * share (of `sharers`: one per thread the team may have; a smaller team takes the missing
 * threads' shares this way too). */
static int64_t next_chunk(chunk_share *shares, int sharers, int me) {
    int64_t c = share_take(&shares[me], 0);
    for (int k = 1; c < 0 && k < sharers; k++) {
        c = share_take(&shares[(me + k) % sharers], 1);
    }
    return c;
}

/* Transformed inputs of the `nt` tiles from (image, tile) index g0 of x [N][IB][H][W][16] into
 * V [IB][36][TILES][16]; the slots of a short last group are zeroed (they multiply zeros). */
WINO_TARGET static void group_inputs(const float *x, int64_t IB, int64_t H, int64_t W, int64_t g0,
                                     int64_t nt, float *V) {
    const int64_t TW = W / 4, NT = (H / 4) * TW, plane = H * W * LANES;
    for (int64_t t = 0; t < nt; t++) {
        const int64_t n = (g0 + t) / NT, tile = (g0 + t) % NT;
        for (int64_t ib = 0; ib < IB; ib++) {
            input_tile(x + (n * IB + ib) * plane, H, W, tile / TW * 4 - 1, tile % TW * 4 - 1,
                       V + (ib * POS * TILES + t) * LANES, TILES * LANES);
        }
    }
    for (int64_t rest = nt * LANES; nt < TILES && rest < IB * POS * TILES * LANES;
         rest += TILES * LANES) {
        memset(V + rest, 0, sizeof(float) * (size_t)((TILES - nt) * LANES));
    }
}

/* One pass: y (= or +=) conv(x, U) for x [N][IB][H][W][16] over `members` convs of geometry c
 * (the forward, or with `flip` the data gradient, see weights_transform). Each thread
 * transforms the weights, then takes the (image, tile) pairs, numbered across the batch so
 * groups stay full where an image has few tiles (8x8: four), TILES at a time, CLAIM_GROUPS
 * groups per chunk from the shares (chunk_share, one per possible thread, set before the team
 * starts); each group's GEMMs fetch the next group's rows, across chunks too. */
WINO_TARGET static void wino_run(const nas_conv_geom *c, const float *const *w, int members,
                                 int flip, const float *x, out_planes y, int add, float *scratch) {
    const int64_t H = c->H, W = c->W, TW = W / 4, NT = (H / 4) * TW, plane = H * W * LANES;
    const int64_t IB = (flip ? c->O : c->C) / LANES, OB = members * y.blocks;
    const int64_t total = c->N * NT, groups = (total + TILES - 1) / TILES;
    const int64_t per = OB * IB * BLOCK_FLOATS + thread_floats(IB * LANES);
    const int sharers = nas_max_threads();
    chunk_share *shares = (chunk_share *)align64(scratch);
    float *buffers = (float *)(shares + sharers);
    const int64_t chunks = (groups + CLAIM_GROUPS - 1) / CLAIM_GROUPS;
    for (int k = 0; k < sharers; k++) {
        share_init(&shares[k], chunks, sharers, k);
    }
    NAS_OMP_PARALLEL {
        const int me = nas_thread_id();
        float *U = buffers + per * me, *V = U + OB * IB * BLOCK_FLOATS;
        float *M = V + IB * POS * TILES * LANES;
        weights_transform(c, w, members, flip, U);
        fetch_plan f;
        for (int64_t chunk = next_chunk(shares, sharers, me); chunk >= 0;) {
            const int64_t i0 = chunk * CLAIM_GROUPS;
            const int64_t i1 = i0 + CLAIM_GROUPS < groups ? i0 + CLAIM_GROUPS : groups;
            for (int64_t group = i0; group < i1; group++) {
                int64_t ahead = group + 1;
                if (ahead == i1) {
                    chunk = next_chunk(shares, sharers, me);
                    ahead = chunk >= 0 ? chunk * CLAIM_GROUPS : groups;
                }
                plan_start(&f);
                if (ahead < groups) {
                    const int64_t a0 = ahead * TILES, an = total - a0 < TILES ? total - a0 : TILES;
                    plan_tiles(&f, &x, 1, IB, H, W, a0, an, 1, 0);
                    plan_tiles(&f, (const float *const *)y.part, members, y.blocks, H, W, a0, an, 0,
                               1);
                }
                plan_pace(&f, OB * POS);
                const int64_t g0 = group * TILES, nt = total - g0 < TILES ? total - g0 : TILES;
                group_inputs(x, IB, H, W, g0, nt, V);
                for (int64_t ob = 0; ob < OB; ob++) {
                    tile_products(U + ob * IB * BLOCK_FLOATS, V, IB, M, &f);
                    for (int64_t t = 0; t < nt; t++) {
                        const int64_t n = (g0 + t) / NT, tile = (g0 + t) % NT;
                        output_tile(M + t * POS * LANES, out_block(y, n, ob, plane), W,
                                    tile / TW * 4, tile % TW * 4, add);
                    }
                }
            }
        }
    }
}

/* ---- weight gradient: dU[o][c] = sum over tiles of (A dY Aᵀ)[o] ⊙ (Bᵀ d B)[c], dw += Gᵀ dU G */

/* 1-D output-gradient transform A dy: 4 -> 6 (A is Aᵀ transposed). */
#define WINO_A(y0, y1, y2, y3, m0, m1, m2, m3, m4, m5)                                             \
    do {                                                                                           \
        const __m512 even = _mm512_add_ps(y0, y2), odd = _mm512_add_ps(y1, y3);                    \
        const __m512 even4 = _mm512_fmadd_ps(_mm512_set1_ps(4.f), y2, y0);                         \
        const __m512 odd4 =                                                                        \
            _mm512_mul_ps(_mm512_set1_ps(2.f), _mm512_fmadd_ps(_mm512_set1_ps(4.f), y3, y1));      \
        m0 = y0;                                                                                   \
        m1 = _mm512_add_ps(even, odd);                                                             \
        m2 = _mm512_sub_ps(even, odd);                                                             \
        m3 = _mm512_add_ps(even4, odd4);                                                           \
        m4 = _mm512_sub_ps(even4, odd4);                                                           \
        m5 = y3;                                                                                   \
    } while (0)

/* A dY Aᵀ of the 4x4 gradient tile at (oh0, ow0) of a plane [H][W][16] (inside the plane: the
 * tiles cover it exactly); position p goes to Yb[p * stride]. */
WINO_TARGET static void gradient_tile(const float *dy, int64_t W, int64_t oh0, int64_t ow0,
                                      float *Yb, int64_t stride) {
    __m512 t[6][4];
    const float *at = dy + (oh0 * W + ow0) * LANES;
    _Pragma("GCC unroll 4") for (int j = 0; j < 4; j++) {
        const __m512 y0 = _mm512_loadu_ps(at + j * LANES),
                     y1 = _mm512_loadu_ps(at + (W + j) * LANES),
                     y2 = _mm512_loadu_ps(at + (2 * W + j) * LANES),
                     y3 = _mm512_loadu_ps(at + (3 * W + j) * LANES);
        WINO_A(y0, y1, y2, y3, t[0][j], t[1][j], t[2][j], t[3][j], t[4][j], t[5][j]);
    }
    _Pragma("GCC unroll 6") for (int i = 0; i < 6; i++) {
        __m512 o[6];
        WINO_A(t[i][0], t[i][1], t[i][2], t[i][3], o[0], o[1], o[2], o[3], o[4], o[5]);
        _Pragma("GCC unroll 6") for (int j = 0; j < 6; j++) {
            _mm512_store_ps(Yb + (i * 6 + j) * stride, o[j]);
        }
    }
}

/* dU[16 in][16 out] = (init) or += the sum over a batch's nt tiles of Yb[t][out] * V[t][in]:
 * 16 accumulators stay in registers through the batch. */
WINO_TARGET static void accumulate(float *restrict dU, const float *restrict Yb,
                                   const float *restrict V, int64_t nt, int init) {
    __m512 acc[LANES];
    _Pragma("GCC unroll 16") for (int i = 0; i < LANES; i++) {
        acc[i] = init ? _mm512_setzero_ps() : _mm512_load_ps(dU + i * LANES);
    }
    for (int64_t t = 0; t < nt; t++) {
        const __m512 g = _mm512_load_ps(Yb + t * LANES);
        const float *v = V + t * LANES;
        _Pragma("GCC unroll 16") for (int i = 0; i < LANES; i++) {
            acc[i] = _mm512_fmadd_ps(g, _mm512_set1_ps(v[i]), acc[i]);
        }
    }
    _Pragma("GCC unroll 16") for (int i = 0; i < LANES; i++) {
        _mm512_store_ps(dU + i * LANES, acc[i]);
    }
}

/* Each thread sums dU over its contiguous share of the (image, tile) pairs into its own buffer:
 * batches of WTILES tiles, CHUNK_BATCHES batches to a partial sum, partial sums to the running
 * sum. The members' output gradients dy are one side of dy.blocks-block parts (their dU rows in
 * turn); x is transformed once for all. Returns the team size (the buffers weights_finish
 * reduces). */
WINO_TARGET static int weights_accumulate(const nas_conv_geom *c, const float *x, in_planes dy,
                                          int members, float *scratch) {
    const int64_t CB = c->C / LANES, OB = members * dy.blocks, H = c->H, W = c->W, TW = W / 4;
    const int64_t NT = (H / 4) * TW, DU = OB * CB * BLOCK_FLOATS, plane = H * W * LANES;
    const int64_t per = weights_thread_floats(c, members);
    int team = 1;
    NAS_OMP_PARALLEL {
        const int tid = nas_thread_id();
        if (tid == 0) {
            team = nas_thread_count();
        }
        float *sum = scratch + per * tid, *part = sum + DU, *V = part + DU;
        float *Yb = V + CB * POS * WSTRIDE;
        fetch_plan f;
        int64_t g0, g1;
        nas_split_range(c->N * NT, nas_thread_count(), tid, &g0, &g1);
        if (g0 == g1) {
            memset(sum, 0, sizeof(float) * (size_t)DU);
        }
        for (int64_t gb = g0, batch = 0; gb < g1; gb += WTILES, batch++) {
            const int64_t nt = g1 - gb < WTILES ? g1 - gb : WTILES;
            for (int64_t t = 0; t < nt; t++) {
                const int64_t n = (gb + t) / NT, oh0 = (gb + t) % NT / TW * 4;
                const int64_t ow0 = (gb + t) % TW * 4;
                for (int64_t ib = 0; ib < CB; ib++) {
                    input_tile(x + (n * CB + ib) * plane, H, W, oh0 - 1, ow0 - 1,
                               V + ib * POS * WSTRIDE + t * LANES, WSTRIDE);
                }
                for (int64_t ob = 0; ob < OB; ob++) {
                    gradient_tile(in_block(dy, n, ob, plane), W, oh0, ow0,
                                  Yb + ob * POS * WSTRIDE + t * LANES, WSTRIDE);
                }
            }
            plan_start(&f);
            if (gb + nt < g1) {
                const int64_t ahead = g1 - gb - nt < WTILES ? g1 - gb - nt : WTILES;
                plan_tiles(&f, &x, 1, CB, H, W, gb + nt, ahead, 1, 0);
                plan_tiles(&f, dy.part, members, dy.blocks, H, W, gb + nt, ahead, 0, 0);
            }
            plan_pace(&f, POS);
            float *into = batch < CHUNK_BATCHES ? sum : part;
            const int first = batch % CHUNK_BATCHES == 0;
            for (int p = 0; p < POS; p++) {
                fetch_some(&f);
                for (int64_t ob = 0; ob < OB; ob++) {
                    for (int64_t ib = 0; ib < CB; ib++) {
                        accumulate(into + ((ob * CB + ib) * POS + p) * LANES * LANES,
                                   Yb + (ob * POS + p) * WSTRIDE, V + (ib * POS + p) * WSTRIDE, nt,
                                   first);
                    }
                }
            }
            const int chunk_done = batch % CHUNK_BATCHES == CHUNK_BATCHES - 1 || gb + nt >= g1;
            if (into == part && chunk_done) {
                for (int64_t i = 0; i < DU; i += LANES) {
                    _mm512_store_ps(
                        sum + i, _mm512_add_ps(_mm512_load_ps(sum + i), _mm512_load_ps(part + i)));
                }
            }
        }
    }
    return team;
}

/* Gᵀ u for one column of six transformed taps: 6 -> 3. */
#define WINO_GT(u, r0, r1, r2)                                                                     \
    do {                                                                                           \
        const __m512 quarter = _mm512_set1_ps(1.f / 4), sixth = _mm512_set1_ps(1.f / 6);           \
        const __m512 twelfth = _mm512_set1_ps(1.f / 12), l24 = _mm512_set1_ps(1.f / 24);           \
        const __m512 s12 = _mm512_add_ps(u[1], u[2]), d21 = _mm512_sub_ps(u[2], u[1]);             \
        const __m512 s34 = _mm512_add_ps(u[3], u[4]), d34 = _mm512_sub_ps(u[3], u[4]);             \
        r0 = _mm512_fmadd_ps(quarter, u[0], _mm512_fmsub_ps(l24, s34, _mm512_mul_ps(sixth, s12))); \
        r1 = _mm512_fmadd_ps(sixth, d21, _mm512_mul_ps(twelfth, d34));                             \
        r2 = _mm512_fmadd_ps(sixth, _mm512_sub_ps(s34, s12), u[5]);                                \
    } while (0)

/* dw[m] += Gᵀ (sum over the team's buffers, in thread order) G for each member m, one (in
 * channel, 16 out channels) row at a time. */
WINO_TARGET static void weights_finish(const nas_conv_geom *c, const float *scratch, int team,
                                       float *const *dw, int members) {
    const int64_t CB = c->C / LANES, OBm = c->O / LANES, OB = members * OBm;
    const int64_t per = weights_thread_floats(c, members);
    NAS_OMP_FOR
    for (int64_t r = 0; r < OB * CB * LANES; r++) {
        const int64_t ob = r / (CB * LANES), ib = r / LANES % CB, lane = r % LANES;
        const float *row = scratch + (ob * CB + ib) * BLOCK_FLOATS + lane * LANES;
        __m512 cols[3][6];
        _Pragma("GCC unroll 6") for (int j = 0; j < 6; j++) {
            __m512 u[6];
            _Pragma("GCC unroll 6") for (int i = 0; i < 6; i++) {
                u[i] = _mm512_load_ps(row + (i * 6 + j) * LANES * LANES);
                for (int k = 1; k < team; k++) {
                    u[i] = _mm512_add_ps(
                        u[i], _mm512_load_ps(row + k * per + (i * 6 + j) * LANES * LANES));
                }
            }
            WINO_GT(u, cols[0][j], cols[1][j], cols[2][j]);
        }
        float taps[9][LANES] __attribute__((aligned(64)));
        _Pragma("GCC unroll 3") for (int k = 0; k < 3; k++) {
            __m512 r0, r1, r2;
            WINO_GT(cols[k], r0, r1, r2);
            _mm512_store_ps(taps[k * 3], r0);
            _mm512_store_ps(taps[k * 3 + 1], r1);
            _mm512_store_ps(taps[k * 3 + 2], r2);
        }
        for (int o = 0; o < LANES; o++) {
            float *d = dw[ob / OBm] + ((ob % OBm * LANES + o) * c->C + ib * LANES + lane) * 9;
            for (int k = 0; k < 9; k++) {
                d[k] += taps[k][o];
            }
        }
    }
}
#endif

void nas_conv_wino_forward(const nas_conv_geom *c, const float *x, const float *const *w,
                           float *const *y, int members, float *scratch) {
#if WINO_AVX512
    const out_planes out = {y, c->O / LANES};
    wino_run(c, w, members, 0, x, out, 0, scratch);
#else
    (void)c, (void)x, (void)w, (void)y, (void)members, (void)scratch;
#endif
}

void nas_conv_wino_backward_data(const nas_conv_geom *c, const float *dy, const float *w,
                                 float *dx, int add, float *scratch) {
#if WINO_AVX512
    const out_planes out = {&dx, c->C / LANES};
    wino_run(c, &w, 1, 1, dy, out, add, scratch);
#else
    (void)c, (void)dy, (void)w, (void)dx, (void)add, (void)scratch;
#endif
}

void nas_conv_wino_backward_weights(const nas_conv_geom *c, const float *x,
                                    const float *const *dy, float *const *dw, int members,
                                    float *scratch) {
#if WINO_AVX512
    float *buffers = align64(scratch);
    const in_planes grads = {dy, c->O / LANES};
    const int team = weights_accumulate(c, x, grads, members, buffers);
    weights_finish(c, buffers, team, dw, members);
#else
    (void)c, (void)x, (void)dy, (void)dw, (void)members, (void)scratch;
#endif
}
