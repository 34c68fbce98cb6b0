/* conv_direct.c - the direct fast path of conv2d for stride-1 convs with few channels (the
 * Fashion-MNIST CNN's 1->16 and 16->32 3x3 convs): AVX2 kernels on our NCHW layout, one image
 * at a time, no reorders and no im2col. oneDNN handles these shapes poorly (Cin = 1 especially)
 * and its reorders to and from the blocked layout cost more than the arithmetic.
 *
 * The trick is the "flat" padded plane: each input plane is copied into a zero-padded buffer of
 * row stride Wp = W + pw (pw zero columns on the left, which are also the right padding of the
 * row above), and the output is computed at every flat position p = i Wp + j of that row
 * stride, j < Wp (the columns j >= OW are junk and dropped). Tap (kh, kw) of output p
 * then reads input p + kh Wp + kw, a fixed offset per tap, so the whole plane is one long vector
 * loop with no edge cases:
 *   forward      Y[o, p] = sum_{c, t} w[o, c, t] X[c, p + off t]; tiles of 4 output channels x 24
 *                positions keep 12 FMA chains in registers (7 loads per 12 FMAs).
 *   backward x   the same kernel on dy padded by K - 1 - p with the flipped, transposed weights
 *                (a transposed conv), accumulated into dx.
 *   backward w   dw[o, c, t] += sum_p dY[o, p] X[c, p + off t] with dY zero on the junk
 *                columns; tiles of 4 output channels x 3 (c, t) pairs.
 * Threads own contiguous ranges of images; the weight and bias gradients are summed per thread in
 * image order and the per-thread sums added in thread order, so results depend only on the
 * thread count. */
#include "conv_int.h"

#include "simd_int.h"

#include <immintrin.h>

#define VEC 8
#define TILE 24 /* positions per forward tile: 3 vectors */
#define OB 4    /* output channels per tile */

/* The flat geometry of one stride-1 correlation of C planes H x W padded by (ph, pw). */
typedef struct flat_geom {
    int64_t C, H, W, ph, pw, KH, KW;
    int64_t Wp, OH, OW; /* padded row stride, output rows and valid columns */
    int64_t P, Pt;      /* flat outputs OH Wp, rounded up to TILE */
    int64_t S_out;      /* floats per flat output plane: Pt and 16 of slack (zero in gradients)
                         * for the 16-wide row accesses of the pooling epilogue */
    int64_t S_in;       /* floats per padded input plane (with zero slack for the last tile and
                         * the pooling's 16-wide row stores) */
} flat_geom;

static flat_geom flat_of(int64_t C, int64_t H, int64_t W, int64_t ph, int64_t pw, int64_t KH,
                         int64_t KW) {
    flat_geom f;
    f.C = C;
    f.H = H;
    f.W = W;
    f.ph = ph;
    f.pw = pw;
    f.KH = KH;
    f.KW = KW;
    f.Wp = W + pw; /* a row's right padding is the next row's left padding */
    f.OH = H + 2 * ph - KH + 1;
    f.OW = W + 2 * pw - KW + 1; /* <= Wp as pw < KW */
    f.P = f.OH * f.Wp;
    f.Pt = (f.P + TILE - 1) / TILE * TILE;
    f.S_out = f.Pt + 16;
    const int64_t rows = H + 2 * ph, reach = f.Pt + (KH - 1) * f.Wp + KW - 1;
    f.S_in = (nas_max_i64(rows * f.Wp, reach) + 16 + 7) / 8 * 8;
    return f;
}

int nas_conv_is_direct(const nas_conv_geom *c) {
    return c->groups == 1 && c->sh == 1 && c->sw == 1 && c->dh == 1 && c->dw == 1 &&
           c->ph <= c->KH - 1 && c->pw <= c->KW - 1 && c->KH * c->KW <= 49;
}

/* Used under AUTO for one input channel (Fashion-MNIST stems), where oneDNN is worst: 2.7x faster
 * (3x3 1->8 at 28x28, batch 128, training step, 1 thread). It is also faster up to 8 channels
 * (1.3-1.7x) and even at 16 (0.94-1.15x), but those stay on oneDNN: its rounding is PyTorch's (the
 * same kernels), which the 10-step NB201 trajectory comparisons of py_nets_torch.py rely on (a
 * batch-2 trajectory there amplifies any rounding difference). */
int nas_conv_direct_preferred(const nas_conv_geom *c) {
    return nas_conv_is_direct(c) && c->C == 1 && c->O <= 64;
}

static int64_t round_ob(int64_t O) {
    return (O + OB - 1) / OB * OB;
}

/* Copy H x W plane src into the padded plane (borders and slack must already be zero). */
static void fill_plane(const flat_geom *f, float *dst, const float *src) {
    for (int64_t i = 0; i < f->H; i++) {
        memcpy(dst + (i + f->ph) * f->Wp + f->pw, src + i * f->W, (size_t)f->W * sizeof(float));
    }
}

static void tap_offsets(const flat_geom *f, int64_t *off) {
    for (int64_t a = 0; a < f->KH; a++) {
        for (int64_t b = 0; b < f->KW; b++) {
            off[a * f->KW + b] = a * f->Wp + b;
        }
    }
}

/* Y[o, p] for o < Ob (a multiple of OB), p < Pt: X holds C padded planes of S_in floats, wpk the
 * weights as [o / OB][c][t][OB], Y planes of S_out floats. */
static void flat_corr(const flat_geom *f, const float *X, const float *wpk, int64_t Ob,
                      const int64_t *off, float *Y) {
    const int64_t T = f->KH * f->KW, C = f->C;
    for (int64_t ob = 0; ob < Ob / OB; ob++) {
        for (int64_t p0 = 0; p0 < f->Pt; p0 += TILE) {
            __m256 a00 = _mm256_setzero_ps(), a01 = a00, a02 = a00, a10 = a00, a11 = a00,
                   a12 = a00, a20 = a00, a21 = a00, a22 = a00, a30 = a00, a31 = a00, a32 = a00;
            for (int64_t c = 0; c < C; c++) {
                const float *xc = X + c * f->S_in + p0;
                const float *wc = wpk + (ob * C + c) * T * OB;
                for (int64_t t = 0; t < T; t++) {
                    const float *q = xc + off[t];
                    const __m256 x0 = _mm256_loadu_ps(q), x1 = _mm256_loadu_ps(q + 8),
                                 x2 = _mm256_loadu_ps(q + 16);
                    const float *wt = wc + t * OB;
                    __m256 w = _mm256_broadcast_ss(wt);
                    a00 = _mm256_fmadd_ps(w, x0, a00);
                    a01 = _mm256_fmadd_ps(w, x1, a01);
                    a02 = _mm256_fmadd_ps(w, x2, a02);
                    w = _mm256_broadcast_ss(wt + 1);
                    a10 = _mm256_fmadd_ps(w, x0, a10);
                    a11 = _mm256_fmadd_ps(w, x1, a11);
                    a12 = _mm256_fmadd_ps(w, x2, a12);
                    w = _mm256_broadcast_ss(wt + 2);
                    a20 = _mm256_fmadd_ps(w, x0, a20);
                    a21 = _mm256_fmadd_ps(w, x1, a21);
                    a22 = _mm256_fmadd_ps(w, x2, a22);
                    w = _mm256_broadcast_ss(wt + 3);
                    a30 = _mm256_fmadd_ps(w, x0, a30);
                    a31 = _mm256_fmadd_ps(w, x1, a31);
                    a32 = _mm256_fmadd_ps(w, x2, a32);
                }
            }
            float *y = Y + ob * OB * f->S_out + p0;
            _mm256_storeu_ps(y, a00);
            _mm256_storeu_ps(y + 8, a01);
            _mm256_storeu_ps(y + 16, a02);
            y += f->S_out;
            _mm256_storeu_ps(y, a10);
            _mm256_storeu_ps(y + 8, a11);
            _mm256_storeu_ps(y + 16, a12);
            y += f->S_out;
            _mm256_storeu_ps(y, a20);
            _mm256_storeu_ps(y + 8, a21);
            _mm256_storeu_ps(y + 16, a22);
            y += f->S_out;
            _mm256_storeu_ps(y, a30);
            _mm256_storeu_ps(y + 8, a31);
            _mm256_storeu_ps(y + 16, a32);
        }
    }
}

static inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* part[o, ct] += sum_p dY[o, p] X[c, p + off t] for ct = c T + t, o < Ob; dY planes of S_out
 * floats (zero on junk columns and past P), X padded planes of S_in floats. */
static void flat_wgrad(const flat_geom *f, const float *X, const float *dY, int64_t Ob,
                       const int64_t *off, float *part) {
    const int64_t T = f->KH * f->KW, CT = f->C * T, Pt = f->Pt;
    for (int64_t ob = 0; ob < Ob / OB; ob++) {
        const float *d0 = dY + ob * OB * f->S_out, *d1 = d0 + f->S_out, *d2 = d1 + f->S_out,
                    *d3 = d2 + f->S_out;
        float *pr = part + ob * OB * CT;
        int64_t ct = 0;
        for (; ct + 3 <= CT; ct += 3) {
            const float *q0 = X + (ct / T) * f->S_in + off[ct % T];
            const float *q1 = X + ((ct + 1) / T) * f->S_in + off[(ct + 1) % T];
            const float *q2 = X + ((ct + 2) / T) * f->S_in + off[(ct + 2) % T];
            __m256 a00 = _mm256_setzero_ps(), a01 = a00, a02 = a00, a10 = a00, a11 = a00,
                   a12 = a00, a20 = a00, a21 = a00, a22 = a00, a30 = a00, a31 = a00, a32 = a00;
            for (int64_t p = 0; p < Pt; p += VEC) {
                const __m256 x0 = _mm256_loadu_ps(q0 + p), x1 = _mm256_loadu_ps(q1 + p),
                             x2 = _mm256_loadu_ps(q2 + p);
                __m256 d = _mm256_loadu_ps(d0 + p);
                a00 = _mm256_fmadd_ps(d, x0, a00);
                a01 = _mm256_fmadd_ps(d, x1, a01);
                a02 = _mm256_fmadd_ps(d, x2, a02);
                d = _mm256_loadu_ps(d1 + p);
                a10 = _mm256_fmadd_ps(d, x0, a10);
                a11 = _mm256_fmadd_ps(d, x1, a11);
                a12 = _mm256_fmadd_ps(d, x2, a12);
                d = _mm256_loadu_ps(d2 + p);
                a20 = _mm256_fmadd_ps(d, x0, a20);
                a21 = _mm256_fmadd_ps(d, x1, a21);
                a22 = _mm256_fmadd_ps(d, x2, a22);
                d = _mm256_loadu_ps(d3 + p);
                a30 = _mm256_fmadd_ps(d, x0, a30);
                a31 = _mm256_fmadd_ps(d, x1, a31);
                a32 = _mm256_fmadd_ps(d, x2, a32);
            }
            pr[ct] += hsum(a00);
            pr[ct + 1] += hsum(a01);
            pr[ct + 2] += hsum(a02);
            pr[CT + ct] += hsum(a10);
            pr[CT + ct + 1] += hsum(a11);
            pr[CT + ct + 2] += hsum(a12);
            pr[2 * CT + ct] += hsum(a20);
            pr[2 * CT + ct + 1] += hsum(a21);
            pr[2 * CT + ct + 2] += hsum(a22);
            pr[3 * CT + ct] += hsum(a30);
            pr[3 * CT + ct + 1] += hsum(a31);
            pr[3 * CT + ct + 2] += hsum(a32);
        }
        for (; ct < CT; ct++) {
            const float *q = X + (ct / T) * f->S_in + off[ct % T];
            __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
            for (int64_t p = 0; p < Pt; p += VEC) {
                const __m256 x = _mm256_loadu_ps(q + p);
                a0 = _mm256_fmadd_ps(_mm256_loadu_ps(d0 + p), x, a0);
                a1 = _mm256_fmadd_ps(_mm256_loadu_ps(d1 + p), x, a1);
                a2 = _mm256_fmadd_ps(_mm256_loadu_ps(d2 + p), x, a2);
                a3 = _mm256_fmadd_ps(_mm256_loadu_ps(d3 + p), x, a3);
            }
            pr[ct] += hsum(a0);
            pr[CT + ct] += hsum(a1);
            pr[2 * CT + ct] += hsum(a2);
            pr[3 * CT + ct] += hsum(a3);
        }
    }
}

/* dst[j] = src[j] + b0, dst[j] += src[j], dst[j] = src[j] returning the sum (lanes added in a
 * fixed order): the per-row moves between our NCHW rows and the flat planes. */
static void row_bias(float *restrict dst, const float *restrict src, int64_t n, float b0) {
    NAS_SIMD
    for (int64_t j = 0; j < n; j++) {
        dst[j] = src[j] + b0;
    }
}

static void row_acc(float *restrict dst, const float *restrict src, int64_t n) {
    NAS_SIMD
    for (int64_t j = 0; j < n; j++) {
        dst[j] += src[j];
    }
}

static float row_copy_sum(float *restrict dst, const float *restrict src, int64_t n) {
    float s = 0.0f;
    NAS_SIMD_SUM1(s)
    for (int64_t j = 0; j < n; j++) {
        dst[j] = src[j];
        s += src[j];
    }
    return s;
}

/* [n0, n1): the images thread tid of nt owns. */
static void thread_range(int64_t N, int tid, int nt, int64_t *n0, int64_t *n1) {
    *n0 = N * tid / nt;
    *n1 = N * (tid + 1) / nt;
}

static flat_geom fwd_geom(const nas_conv_geom *c) {
    return flat_of(c->C, c->H, c->W, c->ph, c->pw, c->KH, c->KW);
}

/* backward data: dy (O planes OH x OW) padded by K - 1 - p gives H x W outputs */
static flat_geom bwd_geom(const nas_conv_geom *c) {
    return flat_of(c->O, c->OH, c->OW, c->KH - 1 - c->ph, c->KW - 1 - c->pw, c->KH, c->KW);
}

static int64_t fwd_thread_floats(const nas_conv_geom *c) {
    const flat_geom f = fwd_geom(c);
    return (f.C * f.S_in + round_ob(c->O) * f.S_out + 15) / 16 * 16;
}

static int64_t bwd_thread_floats(const nas_conv_geom *c) {
    const flat_geom f = fwd_geom(c), b = bwd_geom(c);
    const int64_t Ob = round_ob(c->O), T = c->KH * c->KW;
    const int64_t wgrad = f.C * f.S_in + Ob * f.S_out + Ob * c->C * T + Ob;
    const int64_t dgrad = b.C * b.S_in + round_ob(c->C) * b.S_out;
    return (nas_max_i64(wgrad, dgrad) + 15) / 16 * 16;
}

size_t nas_conv_direct_scratch_bytes(const nas_conv_geom *c, int backward) {
    const int64_t T = c->KH * c->KW;
    const int64_t packed = (nas_max_i64(round_ob(c->O) * c->C, round_ob(c->C) * c->O) * T + 15) /
                           16 * 16;
    const int64_t per = backward ? bwd_thread_floats(c) : fwd_thread_floats(c);
    return sizeof(float) * (size_t)(packed + per * nas_max_threads() + 16);
}

static float *align64(float *p) {
    return (float *)(((uintptr_t)p + 63) & ~(uintptr_t)63);
}

/* The image loop of the forward and input-gradient convolutions: each thread takes its share of
 * the N images, pads the image's f->C planes of `in` into its own X, correlates them with the
 * packed weights wpk (Cout_b rounded outputs) into Y, and moves the Cout valid planes of
 * f->OH x f->OW into `out`: written with the bias added (accumulate = 0, bias may be NULL) or
 * added to what is there (accumulate = 1). */
static void flat_conv_images(const flat_geom *f, int64_t N, const float *in, const float *wpk,
                             int64_t Cout_b, int64_t Cout, const int64_t *off, float *base,
                             int64_t per, const float *bias, int accumulate, float *out) {
    const int64_t in_plane = f->H * f->W, out_plane = f->OH * f->OW;
    NAS_OMP_PARALLEL
    {
        const int tid = nas_thread_id(), nt = nas_thread_count();
        int64_t n0, n1;
        thread_range(N, tid, nt, &n0, &n1);
        float *X = base + per * tid, *Y = X + f->C * f->S_in;
        memset(X, 0, sizeof(float) * (size_t)(f->C * f->S_in));
        for (int64_t n = n0; n < n1; n++) {
            for (int64_t ci = 0; ci < f->C; ci++) {
                fill_plane(f, X + ci * f->S_in, in + (n * f->C + ci) * in_plane);
            }
            flat_corr(f, X, wpk, Cout_b, off, Y);
            for (int64_t o = 0; o < Cout; o++) {
                float *dst = out + (n * Cout + o) * out_plane;
                const float *src = Y + o * f->S_out;
                for (int64_t i = 0; i < f->OH; i++) {
                    if (accumulate) {
                        row_acc(dst + i * f->OW, src + i * f->Wp, f->OW);
                    } else {
                        row_bias(dst + i * f->OW, src + i * f->Wp, f->OW,
                                 bias != NULL ? bias[o] : 0.0f);
                    }
                }
            }
        }
    }
}

void nas_conv_direct_forward(const nas_conv_geom *c, const float *x, const float *w,
                             const float *bias, float *y, float *scratch) {
    const flat_geom f = fwd_geom(c);
    const int64_t T = c->KH * c->KW, C = c->C, O = c->O, Ob = round_ob(O);
    float *wpk = align64(scratch);
    for (int64_t o = 0; o < Ob; o++) {
        for (int64_t ci = 0; ci < C; ci++) {
            for (int64_t t = 0; t < T; t++) {
                wpk[((o / OB * C + ci) * T + t) * OB + o % OB] =
                    o < O ? w[(o * C + ci) * T + t] : 0.0f;
            }
        }
    }
    float *base = wpk + (nas_max_i64(Ob * C, round_ob(C) * O) * T + 15) / 16 * 16;
    const int64_t per = fwd_thread_floats(c);
    int64_t off[49];
    tap_offsets(&f, off);
    flat_conv_images(&f, c->N, x, wpk, Ob, O, off, base, per, bias, 0, y);
}

void nas_conv_direct_backward_data(const nas_conv_geom *c, const float *dy, const float *w,
                                   float *dx, float *scratch) {
    const flat_geom b = bwd_geom(c);
    const int64_t T = c->KH * c->KW, C = c->C, O = c->O, Cb = round_ob(C);
    float *wpk = align64(scratch);
    /* transposed conv: output channel ci, input channel o, flipped taps */
    for (int64_t ci = 0; ci < Cb; ci++) {
        for (int64_t o = 0; o < O; o++) {
            for (int64_t t = 0; t < T; t++) {
                wpk[((ci / OB * O + o) * T + t) * OB + ci % OB] =
                    ci < C ? w[(o * C + ci) * T + (T - 1 - t)] : 0.0f;
            }
        }
    }
    float *base = wpk + (nas_max_i64(round_ob(O) * C, Cb * O) * T + 15) / 16 * 16;
    const int64_t per = bwd_thread_floats(c);
    int64_t off[49];
    tap_offsets(&b, off);
    flat_conv_images(&b, c->N, dy, wpk, Cb, C, off, base, per, NULL, 1, dx);
}

void nas_conv_direct_backward_weights(const nas_conv_geom *c, const float *x, const float *dy,
                                      float *dw, float *db, float *scratch) {
    const flat_geom f = fwd_geom(c);
    const int64_t T = c->KH * c->KW, C = c->C, O = c->O, Ob = round_ob(O), CT = C * T;
    float *base = align64(scratch) + (nas_max_i64(Ob * C, round_ob(C) * O) * T + 15) / 16 * 16;
    const int64_t per = bwd_thread_floats(c);
    int64_t off[49];
    tap_offsets(&f, off);
    int used = 1;
    NAS_OMP_PARALLEL
    {
        const int tid = nas_thread_id(), nt = nas_thread_count();
        if (tid == 0) {
            used = nt;
        }
        int64_t n0, n1;
        thread_range(c->N, tid, nt, &n0, &n1);
        float *X = base + per * tid, *D = X + C * f.S_in, *part = D + Ob * f.S_out,
              *pb = part + Ob * CT;
        memset(X, 0, sizeof(float) * (size_t)(C * f.S_in + Ob * f.S_out + Ob * CT + Ob));
        for (int64_t n = n0; n < n1; n++) {
            for (int64_t ci = 0; ci < C; ci++) {
                fill_plane(&f, X + ci * f.S_in, x + (n * C + ci) * c->H * c->W);
            }
            for (int64_t o = 0; o < O; o++) {
                const float *src = dy + (n * O + o) * c->OH * c->OW;
                float *d = D + o * f.S_out;
                float s = 0.0f;
                for (int64_t i = 0; i < c->OH; i++) {
                    s += row_copy_sum(d + i * f.Wp, src + i * c->OW, c->OW);
                }
                pb[o] += s;
            }
            flat_wgrad(&f, X, D, Ob, off, part);
        }
    }
    /* per-thread sums in thread order */
    for (int tid = 0; tid < used; tid++) {
        const float *part = base + per * tid + C * f.S_in + Ob * f.S_out, *pb = part + Ob * CT;
        if (dw != NULL) {
            for (int64_t i = 0; i < O * CT; i++) {
                dw[i] += part[i];
            }
        }
        if (db != NULL) {
            for (int64_t o = 0; o < O; o++) {
                db[o] += pb[o];
            }
        }
    }
}

/* ---- conv + bias + ReLU + 2x2 stride-2 max pool in one pass (the Fashion-MNIST CNN's blocks).
 * Per image the conv output stays in the thread's flat plane (L1/L2) and only the pooled values
 * and the winning tap per output leave it; backward scatters the pooled gradient straight into
 * the flat planes the two gradient kernels read, so the full-size conv and ReLU outputs and their
 * gradients are never stored, zeroed or reread. */

static int64_t fused_bwd_thread_floats(const nas_conv_geom *c) {
    const flat_geom f = fwd_geom(c), b = bwd_geom(c);
    const int64_t Ob = round_ob(c->O), T = c->KH * c->KW;
    const int64_t wgrad = f.C * f.S_in + Ob * f.S_out + Ob * c->C * T + Ob;
    const int64_t dgrad = b.C * b.S_in + round_ob(c->C) * b.S_out;
    return (wgrad + dgrad + 31) / 16 * 16;
}

size_t nas_conv_relu_pool_scratch_bytes(const nas_conv_geom *c, int backward) {
    const int64_t T = c->KH * c->KW;
    const int64_t packed = (nas_max_i64(round_ob(c->O) * c->C, round_ob(c->C) * c->O) * T + 15) /
                           16 * 16;
    const int64_t per = backward ? fused_bwd_thread_floats(c) : fwd_thread_floats(c);
    return sizeof(float) * (size_t)(packed + per * nas_max_threads() + 16);
}

/* Lanes k < n of 8 (a mask for maskload / maskstore). */
static inline __m256i lanes_below(int64_t n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* Even and odd floats of p[0..16), each in order. */
static inline void deinterleave(const float *p, __m256 *even, __m256 *odd) {
    const __m256i perm = _mm256_setr_epi32(0, 1, 4, 5, 2, 3, 6, 7);
    const __m256 a = _mm256_loadu_ps(p), b = _mm256_loadu_ps(p + 8);
    *even = _mm256_permutevar8x32_ps(_mm256_shuffle_ps(a, b, 0x88), perm);
    *odd = _mm256_permutevar8x32_ps(_mm256_shuffle_ps(a, b, 0xDD), perm);
}

/* relu(v + b): max(., 0) with NaN kept, as the relu op */
static inline __m256 relu_bias(__m256 v, __m256 b) {
    v = _mm256_add_ps(v, b);
    return _mm256_blendv_ps(v, _mm256_setzero_ps(), _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_LT_OQ));
}

/* Pool one flat conv output plane Z (row stride Wp, bias not yet added) into PH x PW outputs,
 * 8 windows per step: taps in row-major window order, ReLU first (NaN kept), a later tap wins
 * when greater or NaN, exactly as relu followed by max_pool; idx gets the winner's offset in the
 * OH x OW conv output. Reads up to 16 floats past a row's last window (slack of S_out). */
static void relu_pool_plane(const float *Z, int64_t Wp, float b0, int64_t OW, int64_t PH,
                            int64_t PW, float *y, int32_t *idx) {
    const __m256 bv = _mm256_set1_ps(b0);
    const __m256i two_lane = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
    const __m256i s1 = _mm256_set1_epi32(1), sw = _mm256_set1_epi32((int)OW),
                  sw1 = _mm256_set1_epi32((int)OW + 1);
    for (int64_t i = 0; i < PH; i++) {
        const float *z0 = Z + 2 * i * Wp, *z1 = z0 + Wp;
        for (int64_t j = 0; j < PW; j += 8) {
            __m256 t[4];
            deinterleave(z0 + 2 * j, &t[0], &t[1]);
            deinterleave(z1 + 2 * j, &t[2], &t[3]);
            const __m256i base =
                _mm256_add_epi32(_mm256_set1_epi32((int)(2 * i * OW + 2 * j)), two_lane);
            const __m256i at[4] = {base, _mm256_add_epi32(base, s1), _mm256_add_epi32(base, sw),
                                   _mm256_add_epi32(base, sw1)};
            __m256 best = relu_bias(t[0], bv);
            __m256 arg = _mm256_castsi256_ps(at[0]);
            for (int k = 1; k < 4; k++) {
                const __m256 v = relu_bias(t[k], bv);
                const __m256 better = _mm256_or_ps(_mm256_cmp_ps(v, best, _CMP_GT_OQ),
                                                   _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
                best = _mm256_blendv_ps(best, v, better);
                arg = _mm256_blendv_ps(arg, _mm256_castsi256_ps(at[k]), better);
            }
            /* whole-vector stores (masked stores are slow on AMD): lanes past the row land in
             * the next row, written after; only the plane's last vector goes through a copy */
            const int64_t k = i * PW + j;
            if (k + 8 <= PH * PW) {
                _mm256_storeu_ps(y + k, best);
                _mm256_storeu_si256((__m256i *)(idx + k), _mm256_castps_si256(arg));
            } else {
                float tb[8];
                int32_t ta[8];
                _mm256_storeu_ps(tb, best);
                _mm256_storeu_si256((__m256i *)ta, _mm256_castps_si256(arg));
                memcpy(y + k, tb, sizeof(float) * (size_t)(PH * PW - k));
                memcpy(idx + k, ta, sizeof(int32_t) * (size_t)(PH * PW - k));
            }
        }
    }
}

/* The pooled gradient of one plane back onto the 2x2 windows, 8 windows per step: g = dy where
 * the pooled ReLU output is positive, at the winning tap, zero at the other three. Writes full
 * 16-float rows in two layouts: the flat conv-output plane dz (row stride wz) and the padded
 * plane dd of the transposed conv (row stride wd, data at row td, column ld); what it writes
 * past a row's last window is zero and lands in junk columns, pads or slack, or at the start of
 * the next row, which is written after. Returns the sum of g (the bias gradient; lanes added in
 * a fixed order). */
static float unpool_plane(const float *y, const int32_t *idx, const float *dy, int64_t OW,
                          int64_t PH, int64_t PW, float *dz, int64_t wz, float *dd, int64_t wd,
                          int64_t td, int64_t ld) {
    const __m256i two_lane = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
    const __m256i s1 = _mm256_set1_epi32(1), sw = _mm256_set1_epi32((int)OW),
                  sw1 = _mm256_set1_epi32((int)OW + 1);
    __m256 sum = _mm256_setzero_ps();
    for (int64_t i = 0; i < PH; i++) {
        /* last chunk first: its spill past the row end is overwritten by chunk 0 of the next row
         * (spills are under 16 floats: 2 j + 16 <= OW + 14) */
        for (int64_t j = (PW - 1) / 8 * 8; j >= 0; j -= 8) {
            const __m256i m = lanes_below(PW - j);
            const int64_t k = i * PW + j;
            const int whole = k + 8 <= PH * PW; /* else masked loads at the plane's end */
            const __m256 yv = whole ? _mm256_loadu_ps(y + k) : _mm256_maskload_ps(y + k, m);
            const __m256 gv = whole ? _mm256_loadu_ps(dy + k) : _mm256_maskload_ps(dy + k, m);
            const __m256i iv = whole ? _mm256_loadu_si256((const __m256i *)(idx + k))
                                     : _mm256_maskload_epi32(idx + k, m);
            const __m256i d = _mm256_sub_epi32(
                iv,
                _mm256_add_epi32(_mm256_set1_epi32((int)(2 * i * OW + 2 * j)), two_lane));
            const __m256 g = _mm256_and_ps(
                gv, _mm256_and_ps(_mm256_castsi256_ps(m),
                                  _mm256_cmp_ps(yv, _mm256_setzero_ps(), _CMP_GT_OQ)));
            sum = _mm256_add_ps(sum, g);
            const __m256 v00 = _mm256_and_ps(g, _mm256_castsi256_ps(_mm256_cmpeq_epi32(d, _mm256_setzero_si256())));
            const __m256 v01 = _mm256_and_ps(g, _mm256_castsi256_ps(_mm256_cmpeq_epi32(d, s1)));
            const __m256 v10 = _mm256_and_ps(g, _mm256_castsi256_ps(_mm256_cmpeq_epi32(d, sw)));
            const __m256 v11 = _mm256_and_ps(g, _mm256_castsi256_ps(_mm256_cmpeq_epi32(d, sw1)));
            /* interleave (v00, v01) into row 2i and (v10, v11) into row 2i + 1 */
            const __m256 lo0 = _mm256_unpacklo_ps(v00, v01), hi0 = _mm256_unpackhi_ps(v00, v01);
            const __m256 lo1 = _mm256_unpacklo_ps(v10, v11), hi1 = _mm256_unpackhi_ps(v10, v11);
            const __m256 r0a = _mm256_permute2f128_ps(lo0, hi0, 0x20),
                         r0b = _mm256_permute2f128_ps(lo0, hi0, 0x31);
            const __m256 r1a = _mm256_permute2f128_ps(lo1, hi1, 0x20),
                         r1b = _mm256_permute2f128_ps(lo1, hi1, 0x31);
            float *z0 = dz + 2 * i * wz + 2 * j, *z1 = z0 + wz;
            _mm256_storeu_ps(z0, r0a);
            _mm256_storeu_ps(z0 + 8, r0b);
            _mm256_storeu_ps(z1, r1a);
            _mm256_storeu_ps(z1 + 8, r1b);
            if (dd != NULL) {
                float *e0 = dd + (2 * i + td) * wd + ld + 2 * j, *e1 = e0 + wd;
                _mm256_storeu_ps(e0, r0a);
                _mm256_storeu_ps(e0 + 8, r0b);
                _mm256_storeu_ps(e1, r1a);
                _mm256_storeu_ps(e1 + 8, r1b);
            }
        }
    }
    return hsum(sum);
}

void nas_conv_relu_pool_forward(const nas_conv_geom *c, const float *x, const float *w,
                                const float *bias, float *y, int32_t *idx, float *scratch) {
    const flat_geom f = fwd_geom(c);
    const int64_t T = c->KH * c->KW, C = c->C, O = c->O, Ob = round_ob(O);
    const int64_t PH = c->OH / 2, PW = c->OW / 2;
    float *wpk = align64(scratch);
    for (int64_t o = 0; o < Ob; o++) {
        for (int64_t ci = 0; ci < C; ci++) {
            for (int64_t t = 0; t < T; t++) {
                wpk[((o / OB * C + ci) * T + t) * OB + o % OB] =
                    o < O ? w[(o * C + ci) * T + t] : 0.0f;
            }
        }
    }
    float *base = wpk + (nas_max_i64(Ob * C, round_ob(C) * O) * T + 15) / 16 * 16;
    const int64_t per = fwd_thread_floats(c);
    int64_t off[49];
    tap_offsets(&f, off);
    NAS_OMP_PARALLEL
    {
        const int tid = nas_thread_id(), nt = nas_thread_count();
        int64_t n0, n1;
        thread_range(c->N, tid, nt, &n0, &n1);
        float *X = base + per * tid, *Y = X + C * f.S_in;
        memset(X, 0, sizeof(float) * (size_t)(C * f.S_in));
        for (int64_t n = n0; n < n1; n++) {
            for (int64_t ci = 0; ci < C; ci++) {
                fill_plane(&f, X + ci * f.S_in, x + (n * C + ci) * c->H * c->W);
            }
            flat_corr(&f, X, wpk, Ob, off, Y);
            for (int64_t o = 0; o < O; o++) {
                const int64_t at = (n * O + o) * PH * PW;
                relu_pool_plane(Y + o * f.S_out, f.Wp, bias != NULL ? bias[o] : 0.0f, c->OW, PH, PW,
                                y + at, idx + at);
            }
        }
    }
}

void nas_conv_relu_pool_backward(const nas_conv_geom *c, const float *x, const float *w,
                                 const float *y, const int32_t *idx, const float *dy, float *dx,
                                 float *dw, float *db, float *scratch) {
    const flat_geom f = fwd_geom(c), b = bwd_geom(c);
    const int64_t T = c->KH * c->KW, C = c->C, O = c->O, Ob = round_ob(O), Cb = round_ob(C);
    const int64_t CT = C * T, PH = c->OH / 2, PW = c->OW / 2, HW = c->H * c->W;
    const int weights = dw != NULL || db != NULL;
    float *wpk = align64(scratch);
    if (dx != NULL) { /* transposed conv: output channel ci, input channel o, flipped taps */
        for (int64_t ci = 0; ci < Cb; ci++) {
            for (int64_t o = 0; o < O; o++) {
                for (int64_t t = 0; t < T; t++) {
                    wpk[((ci / OB * O + o) * T + t) * OB + ci % OB] =
                        ci < C ? w[(o * C + ci) * T + (T - 1 - t)] : 0.0f;
                }
            }
        }
    }
    float *base = wpk + (nas_max_i64(Ob * C, Cb * O) * T + 15) / 16 * 16;
    const int64_t per = fused_bwd_thread_floats(c);
    int64_t off[49], off_b[49];
    tap_offsets(&f, off);
    tap_offsets(&b, off_b);
    int used = 1;
    NAS_OMP_PARALLEL
    {
        const int tid = nas_thread_id(), nt = nas_thread_count();
        if (tid == 0) {
            used = nt;
        }
        int64_t n0, n1;
        thread_range(c->N, tid, nt, &n0, &n1);
        float *X = base + per * tid, *Dz = X + C * f.S_in, *part = Dz + Ob * f.S_out,
              *pb = part + Ob * CT, *D = pb + Ob, *Yt = D + O * b.S_in;
        memset(X, 0, sizeof(float) * (size_t)(C * f.S_in + Ob * f.S_out + Ob * CT + Ob + O * b.S_in));
        for (int64_t n = n0; n < n1; n++) {
            /* the pooled gradient onto the windows, in the flat conv-output planes (weights)
             * and the padded planes of the transposed conv (dx) */
            for (int64_t o = 0; o < O; o++) {
                const int64_t at = (n * O + o) * PH * PW;
                pb[o] += unpool_plane(y + at, idx + at, dy + at, c->OW, PH, PW, Dz + o * f.S_out,
                                      f.Wp, dx != NULL ? D + o * b.S_in : NULL, b.Wp, b.ph, b.pw);
            }
            if (weights) {
                for (int64_t ci = 0; ci < C; ci++) {
                    fill_plane(&f, X + ci * f.S_in, x + (n * C + ci) * HW);
                }
                flat_wgrad(&f, X, Dz, Ob, off, part);
            }
            if (dx != NULL) {
                flat_corr(&b, D, wpk, Cb, off_b, Yt);
                for (int64_t ci = 0; ci < C; ci++) {
                    float *d = dx + (n * C + ci) * HW;
                    for (int64_t i = 0; i < c->H; i++) {
                        row_acc(d + i * c->W, Yt + ci * b.S_out + i * b.Wp, c->W);
                    }
                }
            }
        }
    }
    for (int tid = 0; tid < used; tid++) {
        const float *part = base + per * tid + C * f.S_in + Ob * f.S_out, *pb = part + Ob * CT;
        if (dw != NULL) {
            for (int64_t i = 0; i < O * CT; i++) {
                dw[i] += part[i];
            }
        }
        if (db != NULL) {
            for (int64_t o = 0; o < O; o++) {
                db[o] += pb[o];
            }
        }
    }
}
