/* conv_wino.c - Winograd F(4x4, 3x3) for 3x3, stride-1, pad-1 convolutions whose activations the
 * planner has put in the 16-channel blocked layout (nChw16c: [N][C/16][H][W][16]), on AVX-512.
 *
 * Why our own: oneDNN 2.6's Winograd is built for wide layers and is 1.3-1.7x slower than its
 * direct kernels at 16 channels (conv_dnnl.c), while those direct kernels reach only ~60% of the
 * FMA peak there, because each broadcast input feeds a single 16-wide FMA. Here one 16-channel
 * block is exactly one zmm register: a 6x6 input tile is transformed (Bᵀ d B) with adds on 16
 * channels at once, the 36 transformed positions are multiplied by the transformed weights
 * (G g Gᵀ) as 36 small GEMMs (8 tiles at a time: 8 accumulators + 16 weight vectors stay in the
 * 32 registers), and Aᵀ m A gives the 4x4 output tile. That is 576 FMAs per tile and 16x16
 * channels against direct's 2304. Measured (bench/RESULTS.md), batch 64, 2 threads, ms:
 * 16 channels 32x32 forward 1.0 (oneDNN direct) -> 0.38, 32 channels 16x16 0.9 (oneDNN Winograd)
 * -> 0.47; 64 channels 8x8 0.68 (oneDNN Winograd) -> 0.79, so wider layers stay with oneDNN.
 *
 * The data gradient of such a conv is the same convolution of dy with the flipped, transposed
 * kernel, so it runs the same code. Results are deterministic (no reduction crosses threads in
 * the forward and data passes). Rounding differs from direct convolution by a few ulps of the
 * output's magnitude (F(4x4, 3x3)'s transforms have constants up to 8 and 1/24). */
#include "conv_int.h"

#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define WINO_AVX512 1
#define WINO_TARGET __attribute__((target("avx512f")))
#else
#define WINO_AVX512 0
#endif

enum {
    LANES = 16,          /* channels per block = floats per zmm register */
    POS = 36,            /* transformed positions of a 6x6 tile */
    TILES = 8,           /* tiles per GEMM step */
    BLOCK_FLOATS = POS * LANES * LANES, /* transformed weights of one 16x16 channel block pair */
    ALIGN_FLOATS = 16    /* 64 bytes */
};

int nas_conv_wino_suits(const nas_conv_geom *c, int has_bias) {
#if WINO_AVX512
    /* channels 16 and 32: where it beats oneDNN (see the header); output tiles cover the image
     * exactly (partial tiles waste up to 3/4 of a tile's work) */
    return !has_bias && c->groups == 1 && c->KH == 3 && c->KW == 3 && c->sh == 1 && c->sw == 1 &&
           c->ph == 1 && c->pw == 1 && c->dh == 1 && c->dw == 1 && c->OH == c->H &&
           c->OW == c->W && c->H % 4 == 0 && c->W % 4 == 0 && (c->C == 16 || c->C == 32) &&
           (c->O == 16 || c->O == 32) && __builtin_cpu_supports("avx512f");
#else
    (void)c;
    (void)has_bias;
    return 0;
#endif
}

/* Floats of one thread's tile buffers: V (transformed inputs of TILES tiles, all input blocks)
 * and M (their products for one output block), for a pass reading `in` channels. */
static int64_t thread_floats(int64_t in) {
    return (in / LANES) * POS * TILES * LANES + TILES * POS * LANES;
}

size_t nas_conv_wino_scratch_bytes(const nas_conv_geom *c) {
    const int64_t weights = (c->O / LANES) * (c->C / LANES) * BLOCK_FLOATS;
    const int64_t widest = c->C > c->O ? c->C : c->O;
    return (size_t)(weights + thread_floats(widest) * nas_max_threads() + ALIGN_FLOATS) *
           sizeof(float);
}

static float *align64(float *p) {
    return (float *)(((uintptr_t)p + 63) & ~(uintptr_t)63);
}

/* 1-D weight transform G g: 3 taps -> 6 positions (in double: U is rounded once). */
static void weight_1d(const double g[3], double u[6]) {
    u[0] = g[0] / 4;
    u[1] = -(g[0] + g[1] + g[2]) / 6;
    u[2] = -(g[0] - g[1] + g[2]) / 6;
    u[3] = g[0] / 24 + g[1] / 12 + g[2] / 6;
    u[4] = g[0] / 24 - g[1] / 12 + g[2] / 6;
    u[5] = g[2];
}

/* U[ob][ib][pos][16 in][16 out] = G g Gᵀ for each (out, in) channel pair of w [O][C][3][3].
 * flip: the data gradient's kernel (out = C, in = O, taps reversed). */
static void weights_transform(const nas_conv_geom *c, const float *w, int flip, float *U) {
    const int64_t out = flip ? c->C : c->O, in = flip ? c->O : c->C, IB = in / LANES;
    for (int64_t a = 0; a < out; a++) {
        for (int64_t b = 0; b < in; b++) {
            const float *k = flip ? w + (b * c->C + a) * 9 : w + (a * c->C + b) * 9;
            double rows[6][3], u[6][6];
            for (int j = 0; j < 3; j++) {
                const double col[3] = {k[flip ? 8 - j : j], k[flip ? 5 - j : 3 + j],
                                       k[flip ? 2 - j : 6 + j]};
                double t[6];
                weight_1d(col, t);
                for (int i = 0; i < 6; i++) {
                    rows[i][j] = t[i];
                }
            }
            for (int i = 0; i < 6; i++) {
                weight_1d(rows[i], u[i]);
            }
            float *dst = U + ((a / LANES) * IB + b / LANES) * BLOCK_FLOATS + (b % LANES) * LANES +
                         a % LANES;
            for (int p = 0; p < POS; p++) {
                dst[p * LANES * LANES] = (float)u[p / 6][p % 6];
            }
        }
    }
}

#if WINO_AVX512
/* 1-D input transform Bᵀ d: 6 -> 6. */
#define WINO_BT(d0, d1, d2, d3, d4, d5, o0, o1, o2, o3, o4, o5)                                    \
    do {                                                                                           \
        const __m512 four = _mm512_set1_ps(4.f), five = _mm512_set1_ps(5.f);                      \
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

/* Bᵀ d B of the 6x6 tile at (ih0, iw0) of one channel block's plane [H][W][16] (zeros outside);
 * position p goes to V[p * stride]. */
WINO_TARGET static void input_tile(const float *x, int64_t H, int64_t W, int64_t ih0, int64_t iw0,
                                   float *V, int64_t stride) {
    __m512 d[6][6], t[6][6];
    for (int i = 0; i < 6; i++) {
        const int64_t ih = ih0 + i;
        for (int j = 0; j < 6; j++) {
            const int64_t iw = iw0 + j;
            d[i][j] = ih >= 0 && ih < H && iw >= 0 && iw < W
                          ? _mm512_loadu_ps(x + (ih * W + iw) * LANES)
                          : _mm512_setzero_ps();
        }
    }
    for (int j = 0; j < 6; j++) {
        WINO_BT(d[0][j], d[1][j], d[2][j], d[3][j], d[4][j], d[5][j], t[0][j], t[1][j], t[2][j],
                t[3][j], t[4][j], t[5][j]);
    }
    for (int i = 0; i < 6; i++) {
        __m512 o[6];
        WINO_BT(t[i][0], t[i][1], t[i][2], t[i][3], t[i][4], t[i][5], o[0], o[1], o[2], o[3], o[4],
                o[5]);
        for (int j = 0; j < 6; j++) {
            _mm512_store_ps(V + (i * 6 + j) * stride, o[j]);
        }
    }
}

/* Aᵀ M A of one tile's 36 products M[p][16] into the 4x4 outputs at (oh0, ow0) of a plane
 * [H][W][16], stored or added. */
WINO_TARGET static void output_tile(const float *M, float *y, int64_t W, int64_t oh0, int64_t ow0,
                                    int add) {
    __m512 t[4][6];
    for (int j = 0; j < 6; j++) {
        __m512 m[6];
        for (int i = 0; i < 6; i++) {
            m[i] = _mm512_load_ps(M + (i * 6 + j) * LANES);
        }
        WINO_AT(m[0], m[1], m[2], m[3], m[4], m[5], t[0][j], t[1][j], t[2][j], t[3][j]);
    }
    for (int i = 0; i < 4; i++) {
        __m512 o[4];
        WINO_AT(t[i][0], t[i][1], t[i][2], t[i][3], t[i][4], t[i][5], o[0], o[1], o[2], o[3]);
        float *row = y + ((oh0 + i) * W + ow0) * LANES;
        for (int j = 0; j < 4; j++) {
            if (add) {
                o[j] = _mm512_add_ps(o[j], _mm512_loadu_ps(row + j * LANES));
            }
            _mm512_storeu_ps(row + j * LANES, o[j]);
        }
    }
}

/* M[t][p] = sum over input blocks and lanes of U[p][in][:] * V[p][t][in], for one output block. */
WINO_TARGET static void tile_products(const float *U, const float *V, int64_t IB, float *M) {
    for (int p = 0; p < POS; p++) {
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

/* y (= or +=) conv(x, U) for blocked x [N][in/16][H][W][16] and y [N][out/16][H][W][16]. */
WINO_TARGET static void wino_run(const float *x, const float *U, float *y, int64_t N, int64_t in,
                                 int64_t out, int64_t H, int64_t W, int add, float *scratch) {
    const int64_t IB = in / LANES, OB = out / LANES, TW = W / 4, NT = (H / 4) * TW;
    const int64_t groups = (NT + TILES - 1) / TILES, per = thread_floats(in);
    NAS_OMP_PARALLEL {
        float *V = scratch + per * nas_thread_id(), *M = V + IB * POS * TILES * LANES;
        int64_t i0, i1;
        nas_split_range(N * groups, nas_thread_count(), nas_thread_id(), &i0, &i1);
        for (int64_t item = i0; item < i1; item++) {
            const int64_t n = item / groups, t0 = item % groups * TILES;
            const int64_t nt = NT - t0 < TILES ? NT - t0 : TILES;
            for (int64_t ib = 0; ib < IB; ib++) {
                const float *plane = x + (n * IB + ib) * H * W * LANES;
                for (int64_t t = 0; t < nt; t++) {
                    input_tile(plane, H, W, (t0 + t) / TW * 4 - 1, (t0 + t) % TW * 4 - 1,
                               V + (ib * POS * TILES + t) * LANES, TILES * LANES);
                }
            }
            for (int64_t ob = 0; ob < OB; ob++) {
                tile_products(U + ob * IB * BLOCK_FLOATS, V, IB, M);
                float *plane = y + (n * OB + ob) * H * W * LANES;
                for (int64_t t = 0; t < nt; t++) {
                    output_tile(M + t * POS * LANES, plane, W, (t0 + t) / TW * 4,
                                (t0 + t) % TW * 4, add);
                }
            }
        }
    }
}
#endif

/* Transformed weights first, 64-byte aligned; the threads' tile buffers after them. */
static void conv_with(const nas_conv_geom *c, const float *in_data, const float *w, int flip,
                      float *out_data, int add, float *scratch) {
#if WINO_AVX512
    float *U = align64(scratch);
    weights_transform(c, w, flip, U);
    const int64_t in = flip ? c->O : c->C, out = flip ? c->C : c->O;
    wino_run(in_data, U, out_data, c->N, in, out, c->H, c->W, add,
             U + (c->O / LANES) * (c->C / LANES) * BLOCK_FLOATS);
#else
    (void)c, (void)in_data, (void)w, (void)flip, (void)out_data, (void)add, (void)scratch;
#endif
}

void nas_conv_wino_forward(const nas_conv_geom *c, const float *x, const float *w, float *y,
                           float *scratch) {
    conv_with(c, x, w, 0, y, 0, scratch);
}

void nas_conv_wino_backward_data(const nas_conv_geom *c, const float *dy, const float *w,
                                 float *dx, int add, float *scratch) {
    conv_with(c, dy, w, 1, dx, add, scratch);
}
