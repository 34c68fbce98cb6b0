/* proxy_synflow.c - synflow (Tanaka et al., "Pruning neural networks without any data by
 * iteratively conserving synaptic flow", NeurIPS 2020; as zero-cost-nas measures/synflow.py with
 * bn=False): every parameter replaced by its absolute value, batch norm removed, one all-ones
 * input of batch 1, R = sum of the outputs, and
 *   score = sum over conv and linear weights W of sum |W * dR/dW|.
 * Higher = predicted better. Layers: every Conv2d and Linear weight (biases enter the forward
 * pass as |b| but are not summed), each counted once.
 *
 * Precision. Products of |W| over depth overflow float32 on deep networks, so the reference runs
 * the network in float64. Our engine is float32: this file interprets the model's batch-1
 * recording (the nodes nas_model_forward recorded) node by node in double precision with its own
 * kernels: im2col + cblas_dgemm convolutions, linear, pools, ReLU, sums, views, crops, permute,
 * batched matmul, softmax. BN nodes
 * pass their input through (bn=False). An op outside that set is NAS_ERR_UNSUPPORTED naming it.
 *
 * Weight gradients are not formed where they need not be. Every value and every dR/d(value) of
 * a network without softmax is >= 0 (ones input, |W|, |b|, ReLU, pooling, sums), so
 * |W * dR/dW| = W * dR/dW, and since a conv or linear output y = f(x, W) + b is linear in W,
 *   sum_W W * dR/dW = sum_y dR/dy * (y - b),
 * which needs only the activations and the gradients with respect to them (no weight-gradient
 * GEMM). A weight read by several nodes gets the sum of their terms, as its gradient would.
 * A softmax (the attention block: matmul, permute, softmax) makes some dR/d(value) negative
 * (dx = y (dy - sum y dy)), and everything upstream of it then has gradients of both signs: such
 * a graph forms every conv / linear weight gradient (dW = dy x^T, per parameter, summed over the
 * nodes that read it) and sums |W| |dR/dW| elementwise, as the reference does. */
#include "proxies_int.h"
#include "ops/conv_int.h"

#include <cblas.h>
#include <math.h>

/* Per node: offsets (in doubles) of its value and gradient in the workspace, -1 = none. */
typedef struct dnode {
    int64_t val, grad;
    int is_weight; /* a parameter leaf read as a conv / linear weight */
} dnode;

typedef struct synflow_ws {
    nas_graph *g;
    nas_params *p;
    double *mem;
    dnode *nd;
    double *col; /* im2col scratch */
    double score;
    int signed_grads; /* a softmax: weight gradients are formed (see the top of the file) */
} synflow_ws;

static double *val(const synflow_ws *w, const nas_node *n) {
    return w->mem + w->nd[n->index].val;
}

static double *grd(const synflow_ws *w, const nas_node *n) {
    return w->nd[n->index].grad >= 0 ? w->mem + w->nd[n->index].grad : NULL;
}

/* y[M, N] (ldc) = A[M, K] (lda) B[K, N] (ldb) + beta y, columns split across threads (each
 * output element is computed by one thread, so the result does not depend on the count). */
static void dgemm_nn(int64_t M, int64_t N, int64_t K, const double *A, int64_t lda, const double *B,
                     int64_t ldb, double beta, double *C, int64_t ldc) {
    const int parts = N >= 512 ? nas_max_threads() : 1;
    NAS_OMP_FOR_IF(parts > 1)
    for (int t = 0; t < parts; t++) {
        int64_t b, e;
        nas_split_range(N, parts, t, &b, &e);
        if (e > b) {
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)M, (int)(e - b), (int)K, 1.0,
                        A, (int)lda, B + b, (int)ldb, beta, C + b, (int)ldc);
        }
    }
}

/* C[M, N] += A^T B with A [K, M] (lda), B [K, N]: columns split across threads. */
static void dgemm_tn(int64_t M, int64_t N, int64_t K, const double *A, int64_t lda, const double *B,
                     int64_t ldb, double beta, double *C, int64_t ldc) {
    const int parts = N >= 512 ? nas_max_threads() : 1;
    NAS_OMP_FOR_IF(parts > 1)
    for (int t = 0; t < parts; t++) {
        int64_t b, e;
        nas_split_range(N, parts, t, &b, &e);
        if (e > b) {
            cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)M, (int)(e - b), (int)K, 1.0, A,
                        (int)lda, B + b, (int)ldb, beta, C + b, (int)ldc);
        }
    }
}

static int conv_direct(const nas_conv_geom *c) {
    return c->KH == 1 && c->KW == 1 && c->sh == 1 && c->sw == 1 && c->ph == 0 && c->pw == 0;
}

/* The outputs o in [0, n_out) whose input o * stride + offset lies in [0, n_in): [*lo, *hi). */
static void valid_outputs(int64_t n_out, int64_t stride, int64_t offset, int64_t n_in, int64_t *lo,
                          int64_t *hi) {
    int64_t l = offset >= 0 ? 0 : (-offset + stride - 1) / stride;
    int64_t h = n_in - 1 - offset < 0 ? 0 : (n_in - 1 - offset) / stride + 1;
    l = l < n_out ? l : n_out;
    h = h < n_out ? h : n_out;
    *lo = l;
    *hi = h > l ? h : l;
}

/* Parallel only over enough work: each region wakes the thread team (~10-50 us). */
#define COL_PAR(c, cn) (((cn) * (c)->KH * (c)->KW * (c)->OH * (c)->OW) >= NAS_PAR_MIN)

/* col[(ci * KH + a) * KW + b][oh * OW + ow] for input channels [c0, c0 + cn) of one image. The
 * padding's rows and columns are found once per tap, so the copy loop has no bounds tests. */
static void im2col(const nas_conv_geom *c, const double *x, int64_t c0, int64_t cn, double *col) {
    const int64_t P = c->OH * c->OW;
    NAS_OMP_FOR_IF(COL_PAR(c, cn))
    for (int64_t ci = 0; ci < cn; ci++) {
        const double *xc = x + (c0 + ci) * c->H * c->W;
        for (int64_t a = 0; a < c->KH; a++) {
            for (int64_t b = 0; b < c->KW; b++) {
                double *row = col + ((ci * c->KH + a) * c->KW + b) * P;
                const int64_t offw = b * c->dw - c->pw;
                int64_t lo, hi;
                valid_outputs(c->OW, c->sw, offw, c->W, &lo, &hi);
                for (int64_t oh = 0; oh < c->OH; oh++) {
                    const int64_t ih = oh * c->sh - c->ph + a * c->dh;
                    double *out = row + oh * c->OW;
                    if (ih < 0 || ih >= c->H) {
                        memset(out, 0, (size_t)c->OW * sizeof(double));
                        continue;
                    }
                    const double *in = xc + ih * c->W + offw;
                    for (int64_t ow = 0; ow < lo; ow++) {
                        out[ow] = 0.0;
                    }
                    for (int64_t ow = lo; ow < hi; ow++) {
                        out[ow] = in[ow * c->sw];
                    }
                    for (int64_t ow = hi; ow < c->OW; ow++) {
                        out[ow] = 0.0;
                    }
                }
            }
        }
    }
}

/* dx += col2im(col) for input channels [c0, c0 + cn). */
static void col2im_add(const nas_conv_geom *c, const double *col, int64_t c0, int64_t cn, double *dx) {
    const int64_t P = c->OH * c->OW;
    NAS_OMP_FOR_IF(COL_PAR(c, cn))
    for (int64_t ci = 0; ci < cn; ci++) {
        double *xc = dx + (c0 + ci) * c->H * c->W;
        for (int64_t a = 0; a < c->KH; a++) {
            for (int64_t b = 0; b < c->KW; b++) {
                const double *row = col + ((ci * c->KH + a) * c->KW + b) * P;
                const int64_t offw = b * c->dw - c->pw;
                int64_t lo, hi;
                valid_outputs(c->OW, c->sw, offw, c->W, &lo, &hi);
                for (int64_t oh = 0; oh < c->OH; oh++) {
                    const int64_t ih = oh * c->sh - c->ph + a * c->dh;
                    if (ih < 0 || ih >= c->H) {
                        continue;
                    }
                    double *in = xc + ih * c->W + offw;
                    const double *g = row + oh * c->OW;
                    for (int64_t ow = lo; ow < hi; ow++) {
                        in[ow * c->sw] += g[ow];
                    }
                }
            }
        }
    }
}

static void conv_forward(synflow_ws *w, const nas_node *n) {
    const nas_conv_geom c = nas_conv_geom_of(n);
    const double *x = val(w, n->src[0]), *wt = val(w, n->src[1]);
    double *y = val(w, n);
    const int64_t G = c.groups, Cg = c.C / G, Og = c.O / G, P = c.OH * c.OW;
    const int64_t Kc = Cg * c.KH * c.KW;
    for (int64_t b = 0; b < c.N; b++) {
        for (int64_t gi = 0; gi < G; gi++) {
            const double *src = x + (b * c.C + gi * Cg) * c.H * c.W;
            if (!conv_direct(&c)) {
                im2col(&c, x + b * c.C * c.H * c.W, gi * Cg, Cg, w->col);
                src = w->col;
            }
            dgemm_nn(Og, P, Kc, wt + gi * Og * Kc, Kc, src, P, 0.0, y + (b * c.O + gi * Og) * P, P);
        }
    }
    if (n->n_src > 2) {
        const double *bias = val(w, n->src[2]);
        for (int64_t b = 0; b < c.N; b++) {
            for (int64_t o = 0; o < c.O; o++) {
                double *yo = y + (b * c.O + o) * P;
                for (int64_t i = 0; i < P; i++) {
                    yo[i] += bias[o];
                }
            }
        }
    }
}

/* dW += dy x^T per image and group (x through im2col): the signed case. */
static void conv_weight_grad(synflow_ws *w, const nas_node *n) {
    const nas_conv_geom c = nas_conv_geom_of(n);
    const double *x = val(w, n->src[0]), *dy = grd(w, n);
    double *dw = grd(w, n->src[1]);
    const int64_t G = c.groups, Cg = c.C / G, Og = c.O / G, P = c.OH * c.OW;
    const int64_t Kc = Cg * c.KH * c.KW;
    for (int64_t b = 0; dw != NULL && b < c.N; b++) {
        for (int64_t gi = 0; gi < G; gi++) {
            const double *src = x + (b * c.C + gi * Cg) * c.H * c.W;
            if (!conv_direct(&c)) {
                im2col(&c, x + b * c.C * c.H * c.W, gi * Cg, Cg, w->col);
                src = w->col;
            }
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)Og, (int)Kc, (int)P, 1.0,
                        dy + (b * c.O + gi * Og) * P, (int)P, src, (int)P, 1.0,
                        dw + gi * Og * Kc, (int)Kc);
        }
    }
}

static void conv_backward(synflow_ws *w, const nas_node *n) {
    const nas_conv_geom c = nas_conv_geom_of(n);
    const double *wt = val(w, n->src[1]), *y = val(w, n), *dy = grd(w, n);
    const double *bias = n->n_src > 2 ? val(w, n->src[2]) : NULL;
    double *dx = grd(w, n->src[0]);
    const int64_t G = c.groups, Cg = c.C / G, Og = c.O / G, P = c.OH * c.OW;
    const int64_t Kc = Cg * c.KH * c.KW;
    if (w->signed_grads) {
        conv_weight_grad(w, n);
    } else {
        double s = 0.0;
        for (int64_t b = 0; b < c.N; b++) {
            for (int64_t o = 0; o < c.O; o++) {
                const double bo = bias != NULL ? bias[o] : 0.0;
                const double *yo = y + (b * c.O + o) * P, *go = dy + (b * c.O + o) * P;
                for (int64_t i = 0; i < P; i++) {
                    s += go[i] * (yo[i] - bo);
                }
            }
        }
        w->score += s;
    }
    if (dx == NULL) {
        return;
    }
    for (int64_t b = 0; b < c.N; b++) {
        for (int64_t gi = 0; gi < G; gi++) {
            const double *gy = dy + (b * c.O + gi * Og) * P;
            if (conv_direct(&c)) {
                dgemm_tn(Kc, P, Og, wt + gi * Og * Kc, Kc, gy, P, 1.0,
                         dx + (b * c.C + gi * Cg) * c.H * c.W, P);
            } else {
                dgemm_tn(Kc, P, Og, wt + gi * Og * Kc, Kc, gy, P, 0.0, w->col, P);
                col2im_add(&c, w->col, gi * Cg, Cg, dx + b * c.C * c.H * c.W);
            }
        }
    }
}

static void linear_forward(synflow_ws *w, const nas_node *n) {
    const nas_node *xn = n->src[0];
    const int64_t N = xn->shape[0], F = xn->shape[1], O = n->shape[1];
    const double *x = val(w, xn), *wt = val(w, n->src[1]);
    double *y = val(w, n);
    for (int64_t b = 0; b < N; b++) {
        for (int64_t o = 0; o < O; o++) {
            double s = n->n_src > 2 ? val(w, n->src[2])[o] : 0.0;
            for (int64_t f = 0; f < F; f++) {
                s += x[b * F + f] * wt[o * F + f];
            }
            y[b * O + o] = s;
        }
    }
}

static void linear_backward(synflow_ws *w, const nas_node *n) {
    const nas_node *xn = n->src[0];
    const int64_t N = xn->shape[0], F = xn->shape[1], O = n->shape[1];
    const double *wt = val(w, n->src[1]), *y = val(w, n), *dy = grd(w, n);
    double *dx = grd(w, xn);
    const double *x = val(w, xn);
    double *dw = w->signed_grads ? grd(w, n->src[1]) : NULL;
    for (int64_t b = 0; b < N; b++) {
        for (int64_t o = 0; o < O; o++) {
            const double bo = n->n_src > 2 ? val(w, n->src[2])[o] : 0.0;
            if (!w->signed_grads) {
                w->score += dy[b * O + o] * (y[b * O + o] - bo);
            }
            for (int64_t f = 0; dw != NULL && f < F; f++) {
                dw[o * F + f] += dy[b * O + o] * x[b * F + f];
            }
            if (dx != NULL) {
                for (int64_t f = 0; f < F; f++) {
                    dx[b * F + f] += dy[b * O + o] * wt[o * F + f];
                }
            }
        }
    }
}

/* Pooling geometry of a pool node. */
typedef struct pool_g {
    int64_t planes, H, W, OH, OW, k, s, p, count_pad;
} pool_g;

static pool_g pool_of(const nas_node *n) {
    const nas_node *x = n->src[0];
    pool_g q = {x->shape[0] * x->shape[1], x->shape[2], x->shape[3], n->shape[2], n->shape[3],
                n->iparam[0], n->iparam[1], n->iparam[2], n->iparam[3]};
    return q;
}

/* avg (max = 0) or max pool forward; backward when dy != NULL (accumulating into dx). */
static void pool_run(const nas_node *n, int is_max, const double *x, double *y, const double *dy,
                     double *dx) {
    const pool_g q = pool_of(n);
    NAS_OMP_FOR_IF(q.planes * q.OH * q.OW * q.k * q.k >= NAS_PAR_MIN)
    for (int64_t pl = 0; pl < q.planes; pl++) {
        const double *xp = x + pl * q.H * q.W;
        for (int64_t oh = 0; oh < q.OH; oh++) {
            for (int64_t ow = 0; ow < q.OW; ow++) {
                const int64_t h0 = oh * q.s - q.p, w0 = ow * q.s - q.p;
                double acc = is_max ? -(double)INFINITY : 0.0;
                int64_t cnt = 0, arg = -1;
                for (int64_t a = 0; a < q.k; a++) {
                    for (int64_t b = 0; b < q.k; b++) {
                        const int64_t ih = h0 + a, iw = w0 + b;
                        if (ih < 0 || ih >= q.H || iw < 0 || iw >= q.W) {
                            continue;
                        }
                        const double v = xp[ih * q.W + iw];
                        if (is_max) {
                            if (v > acc || arg < 0) {
                                acc = v;
                                arg = ih * q.W + iw;
                            }
                        } else {
                            acc += v;
                        }
                        cnt++;
                    }
                }
                const double div = q.count_pad ? (double)(q.k * q.k) : (double)(cnt > 0 ? cnt : 1);
                const int64_t o = pl * q.OH * q.OW + oh * q.OW + ow;
                if (dy == NULL) {
                    y[o] = is_max ? acc : acc / div;
                    continue;
                }
                double *dxp = dx + pl * q.H * q.W;
                if (is_max) {
                    if (arg >= 0) {
                        dxp[arg] += dy[o];
                    }
                    continue;
                }
                for (int64_t a = 0; a < q.k; a++) {
                    for (int64_t b = 0; b < q.k; b++) {
                        const int64_t ih = h0 + a, iw = w0 + b;
                        if (ih >= 0 && ih < q.H && iw >= 0 && iw < q.W) {
                            dxp[ih * q.W + iw] += dy[o] / div;
                        }
                    }
                }
            }
        }
    }
}

/* Channel offset of source s within a concat's output channels. */
static int64_t concat_offset(const nas_node *n, int s) {
    int64_t c = 0;
    for (int i = 0; i < s; i++) {
        c += n->src[i]->shape[1];
    }
    return c;
}

static int64_t plane_of(const nas_node *n) {
    int64_t p = 1;
    for (int i = 2; i < n->ndim; i++) {
        p *= n->shape[i];
    }
    return p;
}

/* crop (DARTS FactorizedReduce's shift): y[p, i, j] = x[p, top + i, left + j], 0 outside x;
 * forward copies (dx NULL), backward adds dy back to where each element came from. */
static void crop_run(const nas_node *n, const double *x, double *y, const double *dy, double *dx) {
    const nas_node *xn = n->src[0];
    const int64_t planes = n->shape[0] * n->shape[1], h = n->shape[2], wd = n->shape[3];
    const int64_t H = xn->shape[2], W = xn->shape[3];
    for (int64_t p = 0; p < planes; p++) {
        for (int64_t i = 0; i < h; i++) {
            for (int64_t j = 0; j < wd; j++) {
                const int64_t r = n->iparam[0] + i, c = n->iparam[1] + j, o = (p * h + i) * wd + j;
                const int inside = r >= 0 && r < H && c >= 0 && c < W;
                if (dx == NULL) {
                    y[o] = inside ? x[(p * H + r) * W + c] : 0.0;
                } else if (inside) {
                    dx[(p * H + r) * W + c] += dy[o];
                }
            }
        }
    }
}

/* The smooth activations of the mobile spaces, in double: value and derivative at x. Every
 * input here is >= 0 (see the header), where each is non-negative and non-decreasing, so the
 * all-positive identity of the header still holds. */
static double clampd(double v, double lo, double hi) {
    return v < lo ? lo : (v > hi ? hi : v);
}

static double act_value(int op, double v) {
    switch (op) {
        case NAS_OP_HSWISH: return v * clampd(v + 3.0, 0.0, 6.0) / 6.0;
        case NAS_OP_HSIGMOID: return clampd(v + 3.0, 0.0, 6.0) / 6.0;
        case NAS_OP_SIGMOID: return 1.0 / (1.0 + exp(-v));
        case NAS_OP_SWISH: return v / (1.0 + exp(-v));
        default: return tanh(v); /* NAS_OP_TANH */
    }
}

static double act_deriv(int op, double v) {
    switch (op) {
        case NAS_OP_HSWISH: return v < -3.0 ? 0.0 : (v > 3.0 ? 1.0 : (2.0 * v + 3.0) / 6.0);
        case NAS_OP_HSIGMOID: return v > -3.0 && v < 3.0 ? 1.0 / 6.0 : 0.0;
        case NAS_OP_SIGMOID: {
            const double sg = 1.0 / (1.0 + exp(-v));
            return sg * (1.0 - sg);
        }
        case NAS_OP_SWISH: {
            const double sg = 1.0 / (1.0 + exp(-v));
            return sg * (1.0 + v * (1.0 - sg));
        }
        default: {
            const double t = tanh(v);
            return 1.0 - t * t;
        }
    }
}

/* mul (squeeze-excite's scaling): y = a b with b of a's shape or one factor per plane; forward
 * (dy NULL) or backward, accumulating da += dy b and db += dy a (summed over the plane). */
static void mul_run(synflow_ws *w, const nas_node *n, const double *dy) {
    const double *a = val(w, n->src[0]), *b = val(w, n->src[1]);
    double *y = val(w, n), *da = grd(w, n->src[0]), *db = grd(w, n->src[1]);
    const int64_t P = n->iparam[0] ? n->shape[2] * n->shape[3] : 1;
    const int64_t planes = n->numel / P;
    for (int64_t p = 0; p < planes; p++) {
        for (int64_t i = p * P; i < (p + 1) * P; i++) {
            if (dy == NULL) {
                y[i] = a[i] * b[p];
                continue;
            }
            if (da != NULL) {
                da[i] += dy[i] * b[p];
            }
            if (db != NULL) {
                db[p] += dy[i] * a[i];
            }
        }
    }
}

/* permute (iparam = the axes, padded to 4 with trailing 1s as in src/ops/crop.c): forward
 * y = x permuted (dy NULL), or backward dx += dy sent back to where each element came from. */
static void permute_run(const nas_node *n, const double *x, double *y, const double *dy,
                        double *dx) {
    const nas_node *xn = n->src[0];
    int64_t xs[4], st[4];
    xs[3] = 1;
    for (int i = 2; i >= 0; i--) {
        xs[i] = xs[i + 1] * (i + 1 < xn->ndim ? xn->shape[i + 1] : 1);
    }
    int64_t d[4];
    for (int i = 0; i < 4; i++) {
        st[i] = xs[n->iparam[i]];
        d[i] = i < n->ndim ? n->shape[i] : 1;
    }
    int64_t o = 0;
    for (int64_t i0 = 0; i0 < d[0]; i0++) {
        for (int64_t i1 = 0; i1 < d[1]; i1++) {
            for (int64_t i2 = 0; i2 < d[2]; i2++) {
                for (int64_t i3 = 0; i3 < d[3]; i3++, o++) {
                    const int64_t xi = i0 * st[0] + i1 * st[1] + i2 * st[2] + i3 * st[3];
                    if (dy == NULL) {
                        y[o] = x[xi];
                    } else {
                        dx[xi] += dy[o];
                    }
                }
            }
        }
    }
}

/* Batched matmul as src/ops/matmul.c (iparam 0 trans_a, 1 trans_b; fparam[0] alpha):
 * y = alpha op(a) op(b); backward d op(a) = alpha dy op(b)^T, d op(b) = alpha op(a)^T dy, in the
 * stored layouts. Attention matrices at batch 1 are small, so plain loops. */
static void matmul_run(synflow_ws *w, const nas_node *n, const double *dy) {
    const nas_node *an = n->src[0], *bn = n->src[1];
    const int nd = n->ndim, ta = n->iparam[0], tb = n->iparam[1];
    const int64_t M = n->shape[nd - 2], N = n->shape[nd - 1];
    const int64_t K = ta ? an->shape[nd - 2] : an->shape[nd - 1];
    const int64_t batch = n->numel / (M * N);
    const double alpha = (double)n->fparam[0];
    const double *A = val(w, an), *B = val(w, bn);
    double *Y = val(w, n);
    double *dA = dy != NULL ? grd(w, an) : NULL, *dB = dy != NULL ? grd(w, bn) : NULL;
    for (int64_t t = 0; t < batch; t++) {
        const double *a = A + t * M * K, *b = B + t * K * N;
        for (int64_t i = 0; i < M; i++) {
            for (int64_t j = 0; j < N; j++) {
                double acc = 0.0;
                const double g = dy != NULL ? alpha * dy[t * M * N + i * N + j] : 0.0;
                for (int64_t k = 0; k < K; k++) {
                    const int64_t ai = ta ? k * M + i : i * K + k, bi = tb ? j * K + k : k * N + j;
                    if (dy == NULL) {
                        acc += a[ai] * b[bi];
                        continue;
                    }
                    if (dA != NULL) {
                        dA[t * M * K + ai] += g * b[bi];
                    }
                    if (dB != NULL) {
                        dB[t * K * N + bi] += g * a[ai];
                    }
                }
                if (dy == NULL) {
                    Y[t * M * N + i * N + j] = alpha * acc;
                }
            }
        }
    }
}

/* softmax over the last dimension (max subtracted); backward dx += y (dy - sum_k y_k dy_k). */
static void softmax_run(synflow_ws *w, const nas_node *n, const double *dy) {
    const int64_t K = n->shape[n->ndim - 1], rows = n->numel / K;
    const double *x = val(w, n->src[0]);
    double *y = val(w, n), *dx = grd(w, n->src[0]);
    for (int64_t r = 0; r < rows; r++) {
        double *yr = y + r * K;
        if (dy == NULL) {
            double m = -(double)INFINITY, sum = 0.0;
            for (int64_t k = 0; k < K; k++) {
                m = fmax(m, x[r * K + k]);
            }
            for (int64_t k = 0; k < K; k++) {
                yr[k] = exp(x[r * K + k] - m);
                sum += yr[k];
            }
            for (int64_t k = 0; k < K; k++) {
                yr[k] /= sum;
            }
        } else if (dx != NULL) {
            double dot = 0.0;
            for (int64_t k = 0; k < K; k++) {
                dot += yr[k] * dy[r * K + k];
            }
            for (int64_t k = 0; k < K; k++) {
                dx[r * K + k] += yr[k] * (dy[r * K + k] - dot);
            }
        }
    }
}

static nas_status node_forward(synflow_ws *w, const nas_node *n) {
    double *y = val(w, n);
    const int64_t m = n->numel;
    switch (n->op) {
        case NAS_OP_INPUT:
            for (int64_t i = 0; i < m; i++) {
                y[i] = 1.0;
            }
            return NAS_OK;
        case NAS_OP_PARAM: {
            const float *d = nas_params_data(n->params) + nas_param_offset(n->params, n->pid);
            for (int64_t i = 0; i < m; i++) {
                y[i] = fabs((double)d[i]);
            }
            return NAS_OK;
        }
        case NAS_OP_CONV2D:
            conv_forward(w, n);
            return NAS_OK;
        case NAS_OP_LINEAR:
            linear_forward(w, n);
            return NAS_OK;
        case NAS_OP_BATCH_NORM: /* removed: bn=False */
        case NAS_OP_IDENTITY:
        case NAS_OP_DROPOUT:
            memcpy(y, val(w, n->src[0]), (size_t)m * sizeof(double));
            return NAS_OK;
        case NAS_OP_VIEW:
            memcpy(y, val(w, n->src[0]) + n->alias_offset, (size_t)m * sizeof(double));
            return NAS_OK;
        case NAS_OP_RELU:
        case NAS_OP_RELU6: {
            const double *x = val(w, n->src[0]), hi = n->op == NAS_OP_RELU6 ? 6.0 : (double)INFINITY;
            for (int64_t i = 0; i < m; i++) {
                y[i] = x[i] > 0.0 ? (x[i] < hi ? x[i] : hi) : 0.0;
            }
            return NAS_OK;
        }
        case NAS_OP_HSWISH:
        case NAS_OP_HSIGMOID:
        case NAS_OP_SIGMOID:
        case NAS_OP_SWISH:
        case NAS_OP_TANH: {
            const double *x = val(w, n->src[0]);
            for (int64_t i = 0; i < m; i++) {
                y[i] = act_value(n->op, x[i]);
            }
            return NAS_OK;
        }
        case NAS_OP_MUL:
            mul_run(w, n, NULL);
            return NAS_OK;
        case NAS_OP_AVG_POOL:
        case NAS_OP_MAX_POOL:
            pool_run(n, n->op == NAS_OP_MAX_POOL, val(w, n->src[0]), y, NULL, NULL);
            return NAS_OK;
        case NAS_OP_GLOBAL_AVG_POOL: {
            const nas_node *x = n->src[0];
            const int64_t P = x->shape[2] * x->shape[3];
            const double *xv = val(w, x);
            for (int64_t i = 0; i < m; i++) {
                double s = 0.0;
                for (int64_t j = 0; j < P; j++) {
                    s += xv[i * P + j];
                }
                y[i] = s / (double)P;
            }
            return NAS_OK;
        }
        case NAS_OP_ADD:
        case NAS_OP_SUM:
            memset(y, 0, (size_t)m * sizeof(double));
            for (int s = 0; s < n->n_src; s++) {
                if (n->src[s]->numel != m) {
                    return NAS_ERR_UNSUPPORTED; /* broadcasting add */
                }
                const double *x = val(w, n->src[s]);
                for (int64_t i = 0; i < m; i++) {
                    y[i] += x[i];
                }
            }
            return NAS_OK;
        case NAS_OP_ZERO:
            memset(y, 0, (size_t)m * sizeof(double));
            return NAS_OK;
        case NAS_OP_CROP:
            crop_run(n, val(w, n->src[0]), y, NULL, NULL);
            return NAS_OK;
        case NAS_OP_PERMUTE:
            permute_run(n, val(w, n->src[0]), y, NULL, NULL);
            return NAS_OK;
        case NAS_OP_MATMUL:
            matmul_run(w, n, NULL);
            return NAS_OK;
        case NAS_OP_SOFTMAX:
            softmax_run(w, n, NULL);
            return NAS_OK;
        case NAS_OP_SCALE: {
            const double s = (double)n->fparam[0];
            if (s < 0.0) {
                return NAS_ERR_UNSUPPORTED; /* would break the all-positive identity */
            }
            const double *x = val(w, n->src[0]);
            for (int64_t i = 0; i < m; i++) {
                y[i] = s * x[i];
            }
            return NAS_OK;
        }
        case NAS_OP_CONCAT:
        case NAS_OP_PAD_CHANNELS: {
            const int64_t N = n->shape[0], P = plane_of(n), C = n->shape[1];
            memset(y, 0, (size_t)m * sizeof(double));
            for (int s = 0; s < n->n_src; s++) {
                const nas_node *x = n->src[s];
                const int64_t Cs = x->shape[1], c0 = concat_offset(n, s);
                for (int64_t b = 0; b < N; b++) {
                    memcpy(y + (b * C + c0) * P, val(w, x) + b * Cs * P, (size_t)(Cs * P) * sizeof(double));
                }
            }
            return NAS_OK;
        }
        default:
            return NAS_ERR_UNSUPPORTED;
    }
}

static void add_to(double *dx, const double *dy, int64_t m, double s) {
    if (dx != NULL) {
        for (int64_t i = 0; i < m; i++) {
            dx[i] += s * dy[i];
        }
    }
}

static void node_backward(synflow_ws *w, const nas_node *n) {
    const double *dy = grd(w, n);
    const int64_t m = n->numel;
    switch (n->op) {
        case NAS_OP_CONV2D:
            conv_backward(w, n);
            return;
        case NAS_OP_LINEAR:
            linear_backward(w, n);
            return;
        case NAS_OP_BATCH_NORM:
        case NAS_OP_IDENTITY:
        case NAS_OP_DROPOUT:
            add_to(grd(w, n->src[0]), dy, m, 1.0);
            return;
        case NAS_OP_VIEW: {
            double *dx = grd(w, n->src[0]);
            add_to(dx != NULL ? dx + n->alias_offset : NULL, dy, m, 1.0);
            return;
        }
        case NAS_OP_RELU:
        case NAS_OP_RELU6: {
            double *dx = grd(w, n->src[0]);
            const double *x = val(w, n->src[0]), hi = n->op == NAS_OP_RELU6 ? 6.0 : (double)INFINITY;
            if (dx != NULL) {
                for (int64_t i = 0; i < m; i++) {
                    dx[i] += x[i] > 0.0 && x[i] < hi ? dy[i] : 0.0;
                }
            }
            return;
        }
        case NAS_OP_HSWISH:
        case NAS_OP_HSIGMOID:
        case NAS_OP_SIGMOID:
        case NAS_OP_SWISH:
        case NAS_OP_TANH: {
            double *dx = grd(w, n->src[0]);
            const double *x = val(w, n->src[0]);
            for (int64_t i = 0; dx != NULL && i < m; i++) {
                dx[i] += act_deriv(n->op, x[i]) * dy[i];
            }
            return;
        }
        case NAS_OP_MUL:
            mul_run(w, n, dy);
            return;
        case NAS_OP_AVG_POOL:
        case NAS_OP_MAX_POOL:
            if (grd(w, n->src[0]) != NULL) {
                pool_run(n, n->op == NAS_OP_MAX_POOL, val(w, n->src[0]), NULL, dy, grd(w, n->src[0]));
            }
            return;
        case NAS_OP_GLOBAL_AVG_POOL: {
            const nas_node *x = n->src[0];
            const int64_t P = x->shape[2] * x->shape[3];
            double *dx = grd(w, x);
            if (dx != NULL) {
                for (int64_t i = 0; i < m; i++) {
                    for (int64_t j = 0; j < P; j++) {
                        dx[i * P + j] += dy[i] / (double)P;
                    }
                }
            }
            return;
        }
        case NAS_OP_ADD:
        case NAS_OP_SUM:
            for (int s = 0; s < n->n_src; s++) {
                add_to(grd(w, n->src[s]), dy, m, 1.0);
            }
            return;
        case NAS_OP_SCALE:
            add_to(grd(w, n->src[0]), dy, m, (double)n->fparam[0]);
            return;
        case NAS_OP_CROP:
            if (grd(w, n->src[0]) != NULL) {
                crop_run(n, NULL, NULL, dy, grd(w, n->src[0]));
            }
            return;
        case NAS_OP_PERMUTE:
            if (grd(w, n->src[0]) != NULL) {
                permute_run(n, NULL, NULL, dy, grd(w, n->src[0]));
            }
            return;
        case NAS_OP_MATMUL:
            matmul_run(w, n, dy);
            return;
        case NAS_OP_SOFTMAX:
            softmax_run(w, n, dy);
            return;
        case NAS_OP_CONCAT:
        case NAS_OP_PAD_CHANNELS: {
            const int64_t N = n->shape[0], P = plane_of(n), C = n->shape[1];
            for (int s = 0; s < n->n_src; s++) {
                const nas_node *x = n->src[s];
                double *dx = grd(w, x);
                const int64_t Cs = x->shape[1], c0 = concat_offset(n, s);
                for (int64_t b = 0; dx != NULL && b < N; b++) {
                    add_to(dx + b * Cs * P, dy + (b * C + c0) * P, Cs * P, 1.0);
                }
            }
            return;
        }
        default:
            return; /* leaves, zero */
    }
}

/* Offsets of every node's value and gradient; returns the total doubles (values, grads; the
 * im2col scratch of *col_size follows). Marks the weight leaves and, when the graph has a
 * softmax, sets *signed_grads and gives the weight leaves gradients too. */
static int64_t layout(const nas_graph *g, dnode *nd, int64_t *col_size, int *signed_grads) {
    int64_t at = 0;
    *col_size = 1;
    *signed_grads = 0;
    for (int64_t i = 0; i < g->n_nodes; i++) {
        nd[i].is_weight = 0;
    }
    for (int64_t i = 0; i < g->n_nodes; i++) {
        const nas_node *n = nas_graph_node(g, i);
        nd[i].val = at;
        at += n->numel;
        nd[i].grad = -1;
        if (n->op == NAS_OP_CONV2D) {
            const nas_conv_geom c = nas_conv_geom_of(n);
            *col_size = nas_max_i64(*col_size, (c.C / c.groups) * c.KH * c.KW * c.OH * c.OW);
        }
        if ((n->op == NAS_OP_CONV2D || n->op == NAS_OP_LINEAR) && n->src[1]->op == NAS_OP_PARAM) {
            nd[n->src[1]->index].is_weight = 1;
        }
        *signed_grads |= n->op == NAS_OP_SOFTMAX;
    }
    for (int64_t i = 0; i < g->n_nodes; i++) {
        const nas_node *n = nas_graph_node(g, i);
        if ((n->op != NAS_OP_INPUT && n->op != NAS_OP_PARAM && n->op != NAS_OP_LABELS) ||
            (*signed_grads && nd[i].is_weight)) {
            nd[i].grad = at;
            at += n->numel;
        }
    }
    return at;
}

/* The signed case: sum over weight parameters of |W| |dR/dW|, each parameter's gradient summed
 * over the leaves that read it first (gsum: one double per float of the parameter block). */
static nas_status signed_score(nas_proxies *pr, const synflow_ws *w, double *out) {
    const nas_graph *g = w->g;
    const int64_t total = nas_params_total(w->p), np = nas_params_count(w->p);
    double *gsum = nas_proxy_buf_reserve(pr->ctx, &pr->work[1],
                                         (size_t)(total > 0 ? total : 1) * sizeof(double));
    unsigned char *used = nas_proxy_buf_reserve(pr->ctx, &pr->work[2], (size_t)(np > 0 ? np : 1));
    if (gsum == NULL || used == NULL) {
        return NAS_ERR_NOMEM;
    }
    memset(gsum, 0, (size_t)total * sizeof(double));
    memset(used, 0, (size_t)np);
    for (int64_t i = 0; i < g->n_nodes; i++) {
        const nas_node *n = nas_graph_node(g, i);
        if (n->op == NAS_OP_PARAM && w->nd[i].is_weight) {
            add_to(gsum + nas_param_offset(w->p, n->pid), grd(w, n), n->numel, 1.0);
            used[n->pid] = 1;
        }
    }
    double score = 0.0;
    for (nas_param_id id = 0; id < np; id++) {
        if (!used[id]) {
            continue;
        }
        const int64_t off = nas_param_offset(w->p, id), m = nas_param_numel(w->p, id);
        const float *W = nas_params_data(w->p) + off;
        for (int64_t j = 0; j < m; j++) {
            score += fabs((double)W[j]) * fabs(gsum[off + j]);
        }
    }
    *out = score;
    return NAS_OK;
}

nas_status nas_proxy_synflow(nas_proxies *pr, nas_params *p, nas_graph *g1, double *out) {
    nas_ctx *ctx = pr->ctx;
    if (g1->n_nodes == 0) {
        return nas_fail(ctx, NAS_ERR_STATE, "synflow: empty network");
    }
    dnode *nd = nas_proxy_buf_reserve(ctx, &pr->work[0], (size_t)g1->n_nodes * sizeof(dnode));
    if (nd == NULL) {
        return NAS_ERR_NOMEM;
    }
    int64_t col_size;
    int signed_grads;
    const int64_t total = layout(g1, nd, &col_size, &signed_grads);
    double *mem = nas_proxy_buf_reserve(ctx, &pr->dbl, (size_t)(total + col_size) * sizeof(double));
    if (mem == NULL) {
        return NAS_ERR_NOMEM;
    }
    synflow_ws w = {g1, p, mem, nd, mem + total, 0.0, signed_grads};
    for (int64_t i = 0; i < g1->n_nodes; i++) {
        const nas_node *n = nas_graph_node(g1, i);
        if (n->op == NAS_OP_PARAM_SLICE || node_forward(&w, n) != NAS_OK) {
            return nas_fail(ctx, NAS_ERR_UNSUPPORTED,
                            "synflow: the double-precision pass does not support op '%s' (node %lld)",
                            nas_tensor_op_name(n), (long long)i);
        }
    }
    /* gradients: zero, then dR/d(output) = 1 for R = sum of the last node (the logits) */
    const nas_node *last = nas_graph_node(g1, g1->n_nodes - 1);
    for (int64_t i = 0; i < g1->n_nodes; i++) {
        const nas_node *n = nas_graph_node(g1, i);
        if (nd[i].grad >= 0) {
            memset(mem + nd[i].grad, 0, (size_t)n->numel * sizeof(double));
        }
    }
    double *seed = grd(&w, last);
    for (int64_t i = 0; i < last->numel; i++) {
        seed[i] = 1.0;
    }
    for (int64_t i = g1->n_nodes - 1; i >= 0; i--) {
        node_backward(&w, nas_graph_node(g1, i));
    }
    if (signed_grads) {
        return signed_score(pr, &w, out);
    }
    *out = w.score;
    return NAS_OK;
}
