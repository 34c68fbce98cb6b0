/* test_conv.c - conv2d: the fast paths against the naive twin on random odd shapes (stride,
 * padding, dilation, groups, depthwise, 1x1, 5x5, 7x7, bias on/off; forward and all three
 * gradients) and on the shapes oneDNN runs as Winograd, the naive backward against central
 * finite differences (loss in double), bit-identical reruns, shape errors, primitive-cache hits,
 * a steady state without allocation, and forward + gradients against PyTorch (float64,
 * /usr/bin/python3 run from the test).
 * NAS_TEST_LONG=1 runs more random cases, NAS_TEST_ASAN=1 fewer. */
#include "check.h"
#include "nascent.h"
#include "ops/conv_int.h"

#include <dnnl.h>

#include <math.h>
#include <string.h>
#include <unistd.h>

typedef struct conv_case {
    int64_t N, C, H, W, O, KH, KW;
    nas_conv_args a;
    int bias;
} conv_case;

/* Everything one run produces. */
typedef struct conv_run {
    float *y, *dx, *dw, *db;
    int64_t ny, nx, nw, nb;
} conv_run;

static int64_t out_dim(int64_t in, int64_t k, int s, int p, int d) {
    return (in + 2 * p - d * (k - 1) - 1) / s + 1;
}

static void fill(float *p, int64_t n, uint64_t seed) {
    nas_rng r = nas_rng_make(seed, 3);
    nas_rng_fill_uniform(&r, p, n, -1.0f, 1.0f);
}

static void run_free(conv_run *r) {
    free(r->y);
    free(r->dx);
    free(r->dw);
    free(r->db);
    memset(r, 0, sizeof(*r));
}

/* Whether conv_exec's contexts let oneDNN use Winograd (the default) */
static int exec_winograd = 1;

/* Forward and backward (seed gradient dy random) of one case on a fresh context with the given
 * backend. Returns 0 on failure (message printed through CHECK). */
static int conv_exec(const conv_case *cc, nas_conv_backend be, int training, conv_run *out) {
    memset(out, 0, sizeof(*out));
    const int groups = cc->a.groups ? cc->a.groups : 1;
    const int s_h = cc->a.stride_h ? cc->a.stride_h : 1, s_w = cc->a.stride_w ? cc->a.stride_w : 1;
    const int d_h = cc->a.dilation_h ? cc->a.dilation_h : 1;
    const int d_w = cc->a.dilation_w ? cc->a.dilation_w : 1;
    const int64_t OH = out_dim(cc->H, cc->KH, s_h, cc->a.pad_h, d_h);
    const int64_t OW = out_dim(cc->W, cc->KW, s_w, cc->a.pad_w, d_w);
    int64_t xs[4] = {cc->N, cc->C, cc->H, cc->W}, ws[4] = {cc->O, cc->C / groups, cc->KH, cc->KW};
    int64_t bs[1] = {cc->O};
    out->nx = cc->N * cc->C * cc->H * cc->W;
    out->nw = ws[0] * ws[1] * ws[2] * ws[3];
    out->nb = cc->O;
    out->ny = cc->N * cc->O * OH * OW;
    float *x = malloc(sizeof(float) * (size_t)out->nx),
          *w = malloc(sizeof(float) * (size_t)out->nw);
    float *b = malloc(sizeof(float) * (size_t)out->nb),
          *dy = malloc(sizeof(float) * (size_t)out->ny);
    fill(x, out->nx, 1);
    fill(w, out->nw, 2);
    fill(b, out->nb, 3);
    fill(dy, out->ny, 4);
    nas_ctx *ctx = nas_ctx_new();
    nas_conv_set_backend(ctx, be);
    nas_conv_set_winograd(ctx, exec_winograd);
    nas_graph *g = nas_graph_new(ctx);
    nas_graph_set_grad_enabled(g, training);
    nas_tensor *tx = training ? nas_input_grad(g, 4, xs, x) : nas_input(g, 4, xs, x);
    nas_tensor *tw = training ? nas_input_grad(g, 4, ws, w) : nas_input(g, 4, ws, w);
    nas_tensor *tb = NULL;
    if (cc->bias) {
        tb = training ? nas_input_grad(g, 1, bs, b) : nas_input(g, 1, bs, b);
    }
    nas_tensor *y = nas_conv2d(g, tx, tw, tb, &cc->a);
    int ok = nas_graph_status(g) == NAS_OK && nas_graph_forward(g) == NAS_OK;
    CHECK(ok, "build/forward: %s", nas_errmsg(ctx));
    if (ok) {
        CHECK(nas_tensor_dim(y, 2) == OH && nas_tensor_dim(y, 3) == OW, "output %lldx%lld",
              (long long)nas_tensor_dim(y, 2), (long long)nas_tensor_dim(y, 3));
        out->y = malloc(sizeof(float) * (size_t)out->ny);
        memcpy(out->y, nas_tensor_data(y), sizeof(float) * (size_t)out->ny);
    }
    if (ok && training) {
        ok = nas_graph_backward_from(g, y, dy) == NAS_OK;
        CHECK(ok, "backward: %s", nas_errmsg(ctx));
        if (ok) {
            out->dx = malloc(sizeof(float) * (size_t)out->nx);
            out->dw = malloc(sizeof(float) * (size_t)out->nw);
            memcpy(out->dx, nas_tensor_grad(tx), sizeof(float) * (size_t)out->nx);
            memcpy(out->dw, nas_tensor_grad(tw), sizeof(float) * (size_t)out->nw);
            if (cc->bias) {
                out->db = malloc(sizeof(float) * (size_t)out->nb);
                memcpy(out->db, nas_tensor_grad(tb), sizeof(float) * (size_t)out->nb);
            }
        }
    }
    nas_graph_free(g);
    nas_ctx_free(ctx);
    free(x);
    free(w);
    free(b);
    free(dy);
    return ok;
}

/* max |a - b| / max(max |b|, 1e-3) */
static double rel_err(const float *a, const float *b, int64_t n) {
    return check_normwise_err(a, b, n, 1e-3);
}

static void case_str(const conv_case *c, char *buf, size_t size) {
    snprintf(buf, size,
             "x[%lld,%lld,%lld,%lld] w[%lld,%lld,%lld,%lld] s%d,%d p%d,%d d%d,%d g%d bias%d",
             (long long)c->N, (long long)c->C, (long long)c->H, (long long)c->W, (long long)c->O,
             (long long)(c->C / (c->a.groups ? c->a.groups : 1)), (long long)c->KH,
             (long long)c->KW, c->a.stride_h, c->a.stride_w, c->a.pad_h, c->a.pad_w,
             c->a.dilation_h, c->a.dilation_w, c->a.groups, c->bias);
}

static void compare_case(const conv_case *cc, nas_conv_backend fast) {
    char name[256];
    case_str(cc, name, sizeof name);
    for (int training = 0; training <= 1; training++) {
        conv_run ref, got;
        const int ok1 = conv_exec(cc, NAS_CONV_NAIVE, training, &ref);
        const int ok2 = conv_exec(cc, fast, training, &got);
        if (ok1 && ok2) {
            const double tol = 1e-4;
            double e = rel_err(got.y, ref.y, ref.ny);
            CHECK(e < tol, "%s train%d: y rel err %g", name, training, e);
            if (training) {
                e = rel_err(got.dx, ref.dx, ref.nx);
                CHECK(e < tol, "%s: dx rel err %g", name, e);
                e = rel_err(got.dw, ref.dw, ref.nw);
                CHECK(e < tol, "%s: dw rel err %g", name, e);
                if (cc->bias) {
                    e = rel_err(got.db, ref.db, ref.nb);
                    CHECK(e < tol, "%s: db rel err %g", name, e);
                }
            }
        }
        run_free(&ref);
        run_free(&got);
    }
}

static conv_case make_case(int64_t N, int64_t C, int64_t H, int64_t W, int64_t O, int64_t K, int s,
                           int p, int d, int groups, int bias) {
    conv_case c;
    memset(&c, 0, sizeof c);
    c.N = N;
    c.C = C;
    c.H = H;
    c.W = W;
    c.O = O;
    c.KH = c.KW = K;
    c.a.stride_h = c.a.stride_w = s;
    c.a.pad_h = c.a.pad_w = p;
    c.a.dilation_h = c.a.dilation_w = d;
    c.a.groups = groups;
    c.bias = bias;
    return c;
}

/* Hand-picked cases covering every feature, both fast backends. */
static void test_fast_vs_naive_fixed(void) {
    const conv_case cases[] = {
        make_case(3, 5, 9, 7, 6, 3, 1, 1, 1, 1, 1),     /* odd everything */
        make_case(2, 16, 11, 11, 16, 3, 1, 1, 1, 1, 0), /* NB201 conv, blocked channels */
        make_case(3, 7, 13, 9, 5, 3, 2, 1, 1, 1, 1),    /* stride 2 */
        make_case(2, 6, 11, 12, 4, 3, 1, 2, 2, 1, 0),   /* dilation 2 */
        make_case(3, 8, 9, 9, 8, 3, 1, 1, 1, 8, 1),     /* depthwise */
        make_case(2, 24, 8, 8, 24, 5, 2, 2, 1, 24, 0),  /* depthwise 5x5 stride 2 */
        make_case(2, 16, 9, 9, 16, 7, 1, 3, 1, 16, 1),  /* depthwise 7x7 */
        make_case(2, 12, 7, 9, 18, 3, 1, 1, 1, 3, 1),   /* grouped */
        make_case(3, 13, 7, 5, 11, 1, 1, 0, 1, 1, 1),   /* 1x1 */
        make_case(2, 32, 8, 8, 16, 1, 2, 0, 1, 1, 0),   /* 1x1 stride 2 */
        make_case(2, 3, 15, 15, 16, 5, 1, 2, 1, 1, 1),  /* 5x5, 3 input channels */
        make_case(1, 4, 11, 10, 6, 7, 2, 3, 1, 1, 0),   /* 7x7 stride 2 */
        make_case(1, 5, 6, 6, 7, 3, 1, 0, 1, 1, 1),     /* no padding */
        make_case(2, 6, 8, 8, 6, 3, 1, 2, 2, 6, 0),     /* dilated depthwise (DARTS dil_conv) */
        make_case(1, 3, 5, 5, 4, 5, 3, 3, 1, 1, 1),     /* padding 3, stride 3 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        compare_case(&cases[i], NAS_CONV_AUTO);
        compare_case(&cases[i], NAS_CONV_DNNL);
    }
    /* asymmetric stride/padding/dilation per axis */
    conv_case c = make_case(2, 5, 9, 12, 7, 3, 1, 1, 1, 1, 1);
    c.KW = 5;
    c.a.stride_w = 2;
    c.a.pad_w = 3;
    c.a.dilation_h = 2;
    compare_case(&c, NAS_CONV_AUTO);
}

/* The shapes oneDNN's training passes run with Winograd on AVX-512 (3x3 stride 1, >= 32
 * channels, >= 64 for the weight gradient, outputs a multiple of 4 high and wide, batch >= 16;
 * direct kernels elsewhere, so some cases mix the two), against the naive twin;
 * and, where the machine has AVX-512, proof the Winograd kernels ran: their results differ from
 * the direct kernels' in the last bits. (Without AVX-512, or with ONEDNN_MAX_CPU_ISA=AVX2, oneDNN
 * has no Winograd kernels and these cases test the fallback to the direct ones.) */
static void test_winograd(void) {
    const conv_case cases[] = {
        make_case(16, 32, 12, 16, 32, 3, 1, 1, 1, 1, 1), /* bias; weight gradient direct */
        make_case(16, 64, 8, 8, 48, 3, 1, 1, 1, 1, 0),   /* O != C */
        make_case(17, 64, 6, 10, 64, 3, 1, 0, 1, 1, 1),  /* no padding, odd batch, all three */
        make_case(16, 33, 8, 8, 40, 3, 1, 1, 1, 1, 0),   /* channels padded to 48 */
        make_case(16, 32, 14, 14, 32, 3, 1, 1, 1, 1, 0), /* 14 x 14: direct */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        compare_case(&cases[i], NAS_CONV_DNNL);
    }
    const dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    if ((isa & dnnl_cpu_isa_avx512_core) != dnnl_cpu_isa_avx512_core) {
        return;
    }
    conv_run wino, direct;
    const int ok1 = conv_exec(&cases[2], NAS_CONV_DNNL, 1, &wino);
    exec_winograd = 0;
    const int ok2 = conv_exec(&cases[2], NAS_CONV_DNNL, 1, &direct);
    exec_winograd = 1;
    if (ok1 && ok2) {
        CHECK(memcmp(wino.y, direct.y, sizeof(float) * (size_t)wino.ny) != 0 &&
                  memcmp(wino.dx, direct.dx, sizeof(float) * (size_t)wino.nx) != 0 &&
                  memcmp(wino.dw, direct.dw, sizeof(float) * (size_t)wino.nw) != 0,
              "Winograd on and off gave identical results: the Winograd kernels did not run");
    }
    run_free(&wino);
    run_free(&direct);
}

/* Our Winograd (conv_wino.c: 3x3 stride-1 pad-1 convs with 16 to 64 channels whose input and
 * output the planner keeps blocked) inside a blocked region: x -> conv_a -> relu -> conv_b,
 * conv_c and conv_e (sharing the relu: a group whose leader's forward computes all three and
 * whose leader's backward makes all three weight gradients; each member's data pass stores or
 * adds to the relu's gradient) -> sum -> relu -> conv_d (plain output). Output and every
 * gradient against the same graph on the naive backend; on AVX-512 machines also proof the
 * kernels ran (results differ in the last bits from the run with Winograd off) and the group
 * formed. Sizes not a multiple of 4 take oneDNN's direct kernels. With `partial`, the backward
 * starts at conv_f (another conv of conv_c's output, made between conv_c and conv_e, plain
 * output like conv_d's): the leader's weight pass takes conv_b and conv_c, conv_e's stays
 * zero. */
typedef struct region_case {
    int64_t N, C, H, W, O;
} region_case;

enum { REGION_TENSORS = 7 }; /* the output, dx, dw_a, dw_b, dw_c, dw_e, dw_d */

typedef struct region_run {
    float *out[REGION_TENSORS];
    int64_t numel[REGION_TENSORS];
    int grouped; /* conv_c and conv_e were members of conv_b's group */
} region_run;

static int region_exec(const region_case *rc, nas_conv_backend be, int winograd, int partial,
                       region_run *run) {
    const int64_t xs[4] = {rc->N, rc->C, rc->H, rc->W}, wa[4] = {rc->C, rc->C, 3, 3},
                  wb[4] = {rc->O, rc->C, 3, 3}, wd[4] = {rc->C, rc->O, 3, 3};
    int64_t *numel = run->numel;
    numel[0] = numel[1] = rc->N * rc->C * rc->H * rc->W;
    numel[2] = rc->C * rc->C * 9;
    numel[3] = numel[4] = numel[5] = numel[6] = rc->O * rc->C * 9;
    float *data[6];
    for (int i = 0; i < 6; i++) {
        data[i] = malloc(sizeof(float) * (size_t)numel[i + 1]);
        fill(data[i], numel[i + 1], 10 + (uint64_t)i);
    }
    float *seed = malloc(sizeof(float) * (size_t)numel[0]);
    fill(seed, numel[0], 20);
    nas_ctx *ctx = nas_ctx_new();
    nas_conv_set_backend(ctx, be);
    nas_conv_set_winograd(ctx, winograd);
    nas_graph *g = nas_graph_new(ctx);
    nas_graph_set_grad_enabled(g, 1);
    nas_graph_set_blocked_layouts(g, 1);
    nas_tensor *x = nas_input_grad(g, 4, xs, data[0]), *w_a = nas_input_grad(g, 4, wa, data[1]);
    nas_tensor *w_b = nas_input_grad(g, 4, wb, data[2]), *w_c = nas_input_grad(g, 4, wb, data[3]);
    nas_tensor *w_e = nas_input_grad(g, 4, wb, data[4]), *w_d = nas_input_grad(g, 4, wd, data[5]);
    nas_conv_args a = {0};
    a.pad_h = a.pad_w = 1;
    nas_tensor *r = nas_relu(g, nas_conv2d(g, x, w_a, NULL, &a));
    nas_tensor *three[3] = {nas_conv2d(g, r, w_b, NULL, &a), nas_conv2d(g, r, w_c, NULL, &a)};
    nas_tensor *f = nas_conv2d(g, three[1], w_d, NULL, &a);
    three[2] = nas_conv2d(g, r, w_e, NULL, &a);
    nas_tensor *y = nas_conv2d(g, nas_relu(g, nas_sum(g, 3, three)), w_d, NULL, &a);
    nas_tensor *top = partial ? f : y;
    int ok = nas_graph_status(g) == NAS_OK && nas_graph_forward(g) == NAS_OK &&
             nas_graph_backward_from(g, top, seed) == NAS_OK;
    CHECK(ok, "region run: %s", nas_errmsg(ctx));
    run->grouped = ok && three[1]->group_leader == three[0] && three[2]->group_leader == three[0];
    const nas_tensor *from[REGION_TENSORS] = {top, x, w_a, w_b, w_c, w_e, w_d};
    for (int i = 0; i < REGION_TENSORS; i++) {
        run->out[i] = malloc(sizeof(float) * (size_t)numel[i]);
        const float *src =
            ok ? (i == 0 ? nas_tensor_data(from[i]) : nas_tensor_grad(from[i])) : NULL;
        if (src != NULL) {
            memcpy(run->out[i], src, sizeof(float) * (size_t)numel[i]);
        } else {
            memset(run->out[i], 0, sizeof(float) * (size_t)numel[i]);
        }
    }
    nas_graph_free(g);
    nas_ctx_free(ctx);
    for (int i = 0; i < 6; i++) {
        free(data[i]);
    }
    free(seed);
    return ok;
}

static void region_free(region_run *run) {
    for (int t = 0; t < REGION_TENSORS; t++) {
        free(run->out[t]);
    }
}

static int all_zero(const float *p, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        if (p[i] != 0.0f) {
            return 0;
        }
    }
    return 1;
}

static void test_own_winograd(void) {
    static const char *names[REGION_TENSORS] = {"out", "dx",   "dw_a", "dw_b",
                                                "dw_c", "dw_e", "dw_d"};
    const region_case cases[] = {
        {2, 16, 8, 12, 16},  {3, 32, 12, 8, 16}, {2, 16, 16, 16, 32},
        {16, 64, 8, 8, 32},  /* 64 channels: the widest ours takes (enough tiles for it) */
        {9, 16, 32, 32, 16}, /* enough tiles per thread for several chunks of batches */
        {2, 16, 10, 9, 16},  /* not a multiple of 4: oneDNN */
    };
    /* ours runs where the blocks are 16 channels: oneDNN's layouts with AVX-512 (not under
     * ONEDNN_MAX_CPU_ISA=AVX2, where they are 8) */
    const int avx512 =
        __builtin_cpu_supports("avx512f") &&
        (dnnl_get_effective_cpu_isa() & dnnl_cpu_isa_avx512_core) == dnnl_cpu_isa_avx512_core;
    for (int partial = 0; partial < 2; partial++) {
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            const region_case *rc = &cases[i];
            region_run ref, got, off;
            const int ok = region_exec(rc, NAS_CONV_NAIVE, 1, partial, &ref) &
                           region_exec(rc, NAS_CONV_AUTO, 1, partial, &got) &
                           region_exec(rc, NAS_CONV_AUTO, 0, partial, &off);
            int differs = 0;
            for (int t = 0; ok && t < REGION_TENSORS; t++) {
                const double e = rel_err(got.out[t], ref.out[t], ref.numel[t]);
                CHECK(e < 1e-4, "%sN%lld C%lld %lldx%lld O%lld: %s rel err %g",
                      partial ? "from conv_f: " : "", (long long)rc->N, (long long)rc->C,
                      (long long)rc->H, (long long)rc->W, (long long)rc->O, names[t], e);
                differs |= memcmp(got.out[t], off.out[t], sizeof(float) * (size_t)ref.numel[t]);
            }
            const int expect_ours = avx512 && rc->H % 4 == 0 && rc->W % 4 == 0;
            /* 64 -> 3 x 32 channels is 24 block pairs, more than a pass takes */
            const int expect_group = expect_ours && rc->C < 64;
            CHECK(!ok || (differs != 0) == expect_ours,
                  "N%lld C%lld %lldx%lld: Winograd on and off %s", (long long)rc->N,
                  (long long)rc->C, (long long)rc->H, (long long)rc->W,
                  differs ? "differ where our kernels should not run"
                          : "identical: ours did not run");
            CHECK(!ok || got.grouped == expect_group, "N%lld C%lld %lldx%lld: group %s",
                  (long long)rc->N, (long long)rc->C, (long long)rc->H, (long long)rc->W,
                  got.grouped ? "formed where it should not" : "not formed");
            CHECK(!ok || !partial || all_zero(got.out[5], ref.numel[5]),
                  "from conv_f: conv_e's weight gradient is not zero");
            region_free(&ref);
            region_free(&got);
            region_free(&off);
        }
    }
}

/* Random odd shapes. */
static void test_fast_vs_naive_random(void) {
    nas_rng r = nas_rng_make(2024, 0);
    const int n_cases = getenv("NAS_TEST_LONG") != NULL   ? 200
                        : getenv("NAS_TEST_ASAN") != NULL ? 10
                                                          : 24;
    const int ks[4] = {1, 3, 5, 7};
    for (int t = 0; t < n_cases; t++) {
        conv_case c;
        memset(&c, 0, sizeof c);
        const int kind = (int)nas_rng_below(&r, 4); /* 0 dense, 1 depthwise, 2 grouped, 3 1x1 */
        const int64_t groups = kind == 1   ? 1 + nas_rng_below(&r, 24)
                               : kind == 2 ? 2 + nas_rng_below(&r, 3)
                                           : 1;
        c.a.groups = (int)groups;
        c.C = kind == 1 ? groups : groups * (1 + nas_rng_below(&r, 9));
        c.O = kind == 1 ? groups : groups * (1 + nas_rng_below(&r, 9));
        c.N = 1 + nas_rng_below(&r, 4);
        c.KH = kind == 3 ? 1 : ks[nas_rng_below(&r, 4)];
        c.KW = nas_rng_below(&r, 4) == 0 ? ks[nas_rng_below(&r, 4)] : c.KH;
        c.a.stride_h = 1 + (int)nas_rng_below(&r, 2);
        c.a.stride_w = nas_rng_below(&r, 3) == 0 ? 1 + (int)nas_rng_below(&r, 2) : c.a.stride_h;
        c.a.dilation_h = c.a.dilation_w = nas_rng_below(&r, 4) == 0 ? 2 : 1;
        c.a.pad_h = (int)nas_rng_below(&r, 4);
        c.a.pad_w = nas_rng_below(&r, 3) == 0 ? (int)nas_rng_below(&r, 4) : c.a.pad_h;
        c.H = c.a.dilation_h * (c.KH - 1) + 1 + nas_rng_below(&r, 12);
        c.W = c.a.dilation_w * (c.KW - 1) + 1 + nas_rng_below(&r, 12);
        c.bias = (int)nas_rng_below(&r, 2);
        compare_case(&c, NAS_CONV_AUTO);
    }
}

/* Central differences of L = sum(r * y) (accumulated in double) against the naive backward. */
static double loss_of(const nas_conv_geom *g, const float *x, const float *w, const float *b,
                      const float *r, float *y, int64_t ny) {
    nas_conv_naive_forward(g, x, w, b, y);
    double l = 0.0;
    for (int64_t i = 0; i < ny; i++) {
        l += (double)r[i] * (double)y[i];
    }
    return l;
}

static void fd_check(float *v, const float *ana, int64_t n, const char *what, const char *name,
                     const nas_conv_geom *g, float *x, float *w, float *b, const float *r, float *y,
                     int64_t ny) {
    const int64_t step = n > 60 ? n / 60 : 1;
    for (int64_t i = 0; i < n; i += step) {
        const float v0 = v[i], vp = v0 + 1e-2f, vm = v0 - 1e-2f;
        v[i] = vp;
        const double lp = loss_of(g, x, w, b, r, y, ny);
        v[i] = vm;
        const double lm = loss_of(g, x, w, b, r, y, ny);
        v[i] = v0;
        const double num = (lp - lm) / ((double)vp - (double)vm);
        const double err = fabs(num - (double)ana[i]) / fmax(1.0, fabs(num) + fabs((double)ana[i]));
        CHECK(err < 1e-3, "%s d%s[%lld]: analytic %g numeric %g", name, what, (long long)i,
              (double)ana[i], num);
    }
}

static void test_naive_finite_differences(void) {
    const conv_case cases[] = {
        make_case(2, 3, 7, 6, 4, 3, 1, 1, 1, 1, 1), make_case(1, 4, 9, 8, 5, 3, 2, 1, 1, 1, 1),
        make_case(2, 3, 9, 9, 2, 3, 1, 2, 2, 1, 0), make_case(1, 6, 7, 7, 6, 3, 1, 1, 1, 6, 1),
        make_case(1, 6, 6, 7, 4, 3, 2, 0, 1, 2, 1), make_case(1, 5, 5, 5, 3, 1, 1, 0, 1, 1, 1),
        make_case(1, 2, 9, 9, 3, 5, 2, 2, 1, 1, 1),
    };
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        const conv_case *cc = &cases[t];
        char name[256];
        case_str(cc, name, sizeof name);
        nas_conv_geom g = {.N = cc->N,
                           .C = cc->C,
                           .H = cc->H,
                           .W = cc->W,
                           .O = cc->O,
                           .KH = cc->KH,
                           .KW = cc->KW,
                           .sh = cc->a.stride_h,
                           .sw = cc->a.stride_w,
                           .ph = cc->a.pad_h,
                           .pw = cc->a.pad_w,
                           .dh = cc->a.dilation_h,
                           .dw = cc->a.dilation_w,
                           .groups = cc->a.groups};
        g.OH = out_dim(g.H, g.KH, (int)g.sh, (int)g.ph, (int)g.dh);
        g.OW = out_dim(g.W, g.KW, (int)g.sw, (int)g.pw, (int)g.dw);
        const int64_t nx = g.N * g.C * g.H * g.W, nw = g.O * (g.C / g.groups) * g.KH * g.KW;
        const int64_t ny = g.N * g.O * g.OH * g.OW;
        float *x = calloc((size_t)nx, 4), *w = calloc((size_t)nw, 4), *b = calloc((size_t)g.O, 4);
        float *r = calloc((size_t)ny, 4), *y = calloc((size_t)ny, 4);
        float *dx = calloc((size_t)nx, 4), *dw = calloc((size_t)nw, 4),
              *db = calloc((size_t)g.O, 4);
        fill(x, nx, 11);
        fill(w, nw, 12);
        fill(b, g.O, 13);
        fill(r, ny, 14);
        /* start the grads at 1 so "+=" (not "=") is checked too */
        for (int64_t i = 0; i < nx; i++) {
            dx[i] = 1.0f;
        }
        for (int64_t i = 0; i < nw; i++) {
            dw[i] = 1.0f;
        }
        for (int64_t i = 0; i < g.O; i++) {
            db[i] = 1.0f;
        }
        nas_conv_naive_backward_data(&g, r, w, dx);
        nas_conv_naive_backward_weights(&g, x, r, dw, cc->bias ? db : NULL);
        for (int64_t i = 0; i < nx; i++) {
            dx[i] -= 1.0f;
        }
        for (int64_t i = 0; i < nw; i++) {
            dw[i] -= 1.0f;
        }
        for (int64_t i = 0; i < g.O; i++) {
            db[i] -= 1.0f;
        }
        const float *bb = cc->bias ? b : NULL;
        fd_check(x, dx, nx, "x", name, &g, x, w, (float *)bb, r, y, ny);
        fd_check(w, dw, nw, "w", name, &g, x, w, (float *)bb, r, y, ny);
        if (cc->bias) {
            fd_check(b, db, g.O, "b", name, &g, x, w, b, r, y, ny);
        }
        free(x);
        free(w);
        free(b);
        free(r);
        free(y);
        free(dx);
        free(dw);
        free(db);
    }
}

/* Naive forward against a direct double-precision formula (independent of the loop order). */
static void test_naive_forward_direct(void) {
    const conv_case cc = make_case(2, 6, 7, 8, 4, 3, 2, 1, 2, 2, 1);
    nas_conv_geom g = {.N = cc.N,
                       .C = cc.C,
                       .H = cc.H,
                       .W = cc.W,
                       .O = cc.O,
                       .KH = 3,
                       .KW = 3,
                       .sh = 2,
                       .sw = 2,
                       .ph = 1,
                       .pw = 1,
                       .dh = 2,
                       .dw = 2,
                       .groups = 2};
    g.OH = out_dim(g.H, 3, 2, 1, 2);
    g.OW = out_dim(g.W, 3, 2, 1, 2);
    float x[2 * 6 * 7 * 8], w[4 * 3 * 9], b[4], y[2 * 4 * 3 * 3];
    fill(x, 2 * 6 * 7 * 8, 21);
    fill(w, 4 * 3 * 9, 22);
    fill(b, 4, 23);
    nas_conv_naive_forward(&g, x, w, b, y);
    CHECK(g.OH == 3 && g.OW == 3, "out %lldx%lld", (long long)g.OH, (long long)g.OW);
    for (int n = 0; n < 2; n++)
        for (int o = 0; o < 4; o++)
            for (int i = 0; i < 3; i++)
                for (int j = 0; j < 3; j++) {
                    double s = b[o];
                    const int grp = o / 2;
                    for (int c = 0; c < 3; c++)
                        for (int a = 0; a < 3; a++)
                            for (int bb = 0; bb < 3; bb++) {
                                const int ih = i * 2 - 1 + a * 2, iw = j * 2 - 1 + bb * 2;
                                if (ih >= 0 && ih < 7 && iw >= 0 && iw < 8) {
                                    s += (double)x[((n * 6 + grp * 3 + c) * 7 + ih) * 8 + iw] *
                                         w[((o * 3 + c) * 3 + a) * 3 + bb];
                                }
                            }
                    const float got = y[((n * 4 + o) * 3 + i) * 3 + j];
                    CHECK(fabs(got - s) < 1e-5, "y[%d,%d,%d,%d] %g vs %g", n, o, i, j, (double)got,
                          s);
                }
}

/* Same input twice (same thread count) gives bit-identical outputs and gradients. */
static void test_bit_identical(void) {
    const conv_case cases[] = {make_case(4, 16, 12, 12, 16, 3, 1, 1, 1, 1, 1),
                               make_case(3, 24, 9, 9, 24, 3, 2, 1, 1, 24, 0)};
    for (size_t t = 0; t < 2; t++) {
        for (int be = 0; be < 2; be++) {
            conv_run a, b;
            const nas_conv_backend back = be ? NAS_CONV_NAIVE : NAS_CONV_AUTO;
            if (conv_exec(&cases[t], back, 1, &a) && conv_exec(&cases[t], back, 1, &b)) {
                CHECK(memcmp(a.y, b.y, sizeof(float) * (size_t)a.ny) == 0, "y differs (case %zu)",
                      t);
                CHECK(memcmp(a.dx, b.dx, sizeof(float) * (size_t)a.nx) == 0, "dx differs");
                CHECK(memcmp(a.dw, b.dw, sizeof(float) * (size_t)a.nw) == 0, "dw differs");
            }
            run_free(&a);
            run_free(&b);
        }
    }
}

static nas_status build_status(nas_ctx *ctx, const int64_t *xs, const int64_t *ws, int64_t nb,
                               const nas_conv_args *a) {
    nas_graph *g = nas_graph_new(ctx);
    nas_tensor *x = nas_input(g, 4, xs, NULL);
    nas_tensor *w = nas_input(g, 4, ws, NULL);
    nas_tensor *b = nb > 0 ? nas_input(g, 1, &nb, NULL) : NULL;
    nas_tensor *y = nas_conv2d(g, x, w, b, a);
    const nas_status st = nas_graph_status(g);
    CHECK((y == NULL) == (st != NAS_OK), "NULL result iff error");
    nas_graph_free(g);
    return st;
}

static void test_shape_errors(void) {
    nas_ctx *ctx = nas_ctx_new();
    const int64_t x[4] = {2, 6, 8, 8};
    nas_conv_args g4 = {0};
    g4.groups = 4;
    const int64_t w_ok[4] = {4, 6, 3, 3}, w_c[4] = {4, 5, 3, 3}, w_big[4] = {4, 6, 11, 11};
    const int64_t w_g[4] = {8, 1, 3, 3}, w_g3[4] = {6, 2, 3, 3};
    CHECK(build_status(ctx, x, w_ok, 0, NULL) == NAS_OK, "valid conv: %s", nas_errmsg(ctx));
    CHECK(build_status(ctx, x, w_c, 0, NULL) == NAS_ERR_SHAPE, "channel mismatch");
    CHECK(strstr(nas_errmsg(ctx), "[2, 6, 8, 8]") && strstr(nas_errmsg(ctx), "[4, 5, 3, 3]"),
          "message names the shapes: %s", nas_errmsg(ctx));
    CHECK(build_status(ctx, x, w_big, 0, NULL) == NAS_ERR_SHAPE, "kernel bigger than input");
    CHECK(strstr(nas_errmsg(ctx), "bigger") != NULL, "message: %s", nas_errmsg(ctx));
    CHECK(build_status(ctx, x, w_g, 0, &g4) == NAS_ERR_SHAPE, "4 groups do not divide 6");
    CHECK(strstr(nas_errmsg(ctx), "groups") != NULL, "message: %s", nas_errmsg(ctx));
    nas_conv_args g3 = {0};
    g3.groups = 3;
    CHECK(build_status(ctx, x, w_g3, 0, &g3) == NAS_OK, "3 groups: %s", nas_errmsg(ctx));
    CHECK(build_status(ctx, x, w_ok, 5, NULL) == NAS_ERR_SHAPE, "bias of 5 for 4 outputs");
    CHECK(strstr(nas_errmsg(ctx), "bias") != NULL, "message: %s", nas_errmsg(ctx));
    nas_conv_args neg = {0};
    neg.pad_h = -1;
    CHECK(build_status(ctx, x, w_ok, 0, &neg) == NAS_ERR_ARG, "negative padding");
    const int64_t x3[3] = {2, 6, 8};
    nas_graph *g = nas_graph_new(ctx);
    CHECK(nas_conv2d(g, nas_input(g, 3, x3, NULL), nas_input(g, 4, w_ok, NULL), NULL, NULL) ==
                  NULL &&
              nas_graph_status(g) == NAS_ERR_SHAPE,
          "3-d input");
    nas_graph_reset(g);
    CHECK(nas_conv2d(g, NULL, nas_input(g, 4, w_ok, NULL), NULL, NULL) == NULL &&
              nas_graph_status(g) == NAS_ERR_ARG,
          "NULL input");
    nas_graph_free(g);
    /* dilation makes the kernel too big */
    nas_conv_args dil = {0};
    dil.dilation_h = dil.dilation_w = 4;
    CHECK(build_status(ctx, x, w_ok, 0, &dil) == NAS_ERR_SHAPE, "dilated kernel too big");
    dil.pad_h = dil.pad_w = 1;
    CHECK(build_status(ctx, x, w_ok, 0, &dil) == NAS_OK, "dilated kernel fits with padding: %s",
          nas_errmsg(ctx));
    nas_ctx_free(ctx);
}

/* Rebuilding and rerunning a two-conv graph hits the primitive cache and allocates nothing. */
static void test_cache_and_no_alloc(void) {
    check_alloc_counter cnt = {0};
    nas_ctx *ctx = nas_ctx_new_with_allocator(check_counting_alloc, &cnt);
    nas_conv_set_backend(ctx, NAS_CONV_AUTO);
    nas_graph *g = nas_graph_new(ctx);
    const int64_t xs[4] = {4, 16, 10, 10}, ws[4] = {16, 16, 3, 3}, dws[4] = {16, 1, 5, 5};
    const int64_t numel = 4 * 16 * 10 * 10; /* of x and of both outputs */
    float *x = calloc(numel, 4), *w = calloc(16 * 16 * 9, 4), *dw = calloc(16 * 25, 4);
    float *seed = calloc(numel, 4);
    fill(x, numel, 1);
    fill(w, 16 * 16 * 9, 2);
    fill(dw, 16 * 25, 3);
    fill(seed, numel, 4);
    nas_conv_args a = {0}, d = {0};
    a.pad_h = a.pad_w = 1;
    d.pad_h = d.pad_w = 2;
    d.groups = 16;
    long calls_before = 0;
    int64_t cache_before = 0;
    for (int step = 0; step < 4; step++) {
        nas_graph_reset(g);
        nas_tensor *tx = nas_input_grad(g, 4, xs, x);
        nas_tensor *y = nas_conv2d(g, tx, nas_input_grad(g, 4, ws, w), NULL, &a);
        y = nas_conv2d(g, y, nas_input_grad(g, 4, dws, dw), NULL, &d);
        CHECK(nas_graph_forward(g) == NAS_OK, "forward: %s", nas_errmsg(ctx));
        CHECK(nas_graph_backward_from(g, y, seed) == NAS_OK, "backward: %s", nas_errmsg(ctx));
        if (step == 1) {
            calls_before = cnt.calls;
            cache_before = nas_conv_dnnl_cache_size(ctx);
        }
    }
    CHECK(cnt.calls == calls_before, "steady state allocated %ld times", cnt.calls - calls_before);
    CHECK(nas_conv_dnnl_cache_size(ctx) == cache_before && cache_before > 0,
          "cache grew from %lld to %lld", (long long)cache_before,
          (long long)nas_conv_dnnl_cache_size(ctx));
    nas_graph_free(g);
    nas_ctx_free(ctx);
    free(x);
    free(w);
    free(dw);
    free(seed);
}

/* Gradients accumulate: running backward twice without zeroing doubles dW (parameter grads
 * live outside the arena), checked on the fast path. */
static void test_accumulates(void) {
    nas_ctx *ctx = nas_ctx_new();
    nas_params *P = nas_params_new(ctx);
    const int64_t ws[4] = {8, 8, 3, 3}, bs[1] = {8}, xs[4] = {2, 8, 6, 6};
    nas_param_id wid, bid;
    nas_params_add(P, "w", 4, ws, NAS_INIT_TORCH_DEFAULT, 0, 0, &wid);
    nas_params_add(P, "b", 1, bs, NAS_INIT_TORCH_BIAS, 0, 72, &bid);
    nas_params_init(P, 5);
    float x[2 * 8 * 36];
    fill(x, 2 * 8 * 36, 9);
    nas_graph *g = nas_graph_new(ctx);
    nas_conv_args a = {0};
    a.pad_h = a.pad_w = 1;
    nas_tensor *y =
        nas_conv2d(g, nas_input(g, 4, xs, x), nas_param(g, P, wid), nas_param(g, P, bid), &a);
    nas_tensor *loss = nas_mean_all(g, y);
    nas_params_zero_grad(P);
    CHECK(nas_graph_forward(g) == NAS_OK && nas_graph_backward(g, loss) == NAS_OK, "%s",
          nas_errmsg(ctx));
    const int64_t total = nas_params_total(P);
    float *once = malloc(sizeof(float) * (size_t)total);
    memcpy(once, nas_params_grad(P), sizeof(float) * (size_t)total);
    CHECK(nas_graph_backward(g, loss) == NAS_OK, "%s", nas_errmsg(ctx));
    const float *twice = nas_params_grad(P);
    for (int64_t i = 0; i < total; i++) {
        CHECK(fabsf(twice[i] - 2.0f * once[i]) <= 1e-6f * (1.0f + fabsf(once[i])),
              "grad %lld: %g vs 2 x %g", (long long)i, (double)twice[i], (double)once[i]);
    }
    /* db of mean(y) is OH*OW*N / numel = 1/8 per channel */
    const float *db = once + nas_param_offset(P, bid);
    for (int o = 0; o < 8; o++) {
        CHECK(fabsf(db[o] - 0.125f) < 1e-6f, "db[%d] = %g", o, (double)db[o]);
    }
    CHECK(nas_graph_macs(g) == 2 * 8 * 36 * 8 * 9, "macs %lld", (long long)nas_graph_macs(g));
    free(once);
    nas_graph_free(g);
    nas_params_free(P);
    nas_ctx_free(ctx);
}

/* PyTorch reference (Debian's python3-torch): the script reads a case (config ints, then x, w,
 * b, dy as float32), runs F.conv2d and autograd in float64 and writes y, dx, dw, db (float64). */
static const char *torch_script =
    "import sys, numpy as np, torch, torch.nn.functional as F\n"
    "def run(src, dst):\n"
    "  raw = open(src, 'rb').read()\n"
    "  cfg = np.frombuffer(raw[:64], dtype=np.int32)\n"
    "  N, C, H, W, O, KH, KW, sh, sw, ph, pw, dh, dw, g, bias, _ = [int(v) for v in cfg]\n"
    "  f = np.frombuffer(raw[64:], dtype=np.float32).astype(np.float64)\n"
    "  OH = (H + 2*ph - dh*(KH-1) - 1)//sh + 1; OW = (W + 2*pw - dw*(KW-1) - 1)//sw + 1\n"
    "  sizes = [N*C*H*W, O*(C//g)*KH*KW, O, N*O*OH*OW]; parts = []; at = 0\n"
    "  for n in sizes: parts.append(f[at:at+n]); at += n\n"
    "  x = torch.tensor(parts[0].reshape(N, C, H, W), requires_grad=True)\n"
    "  w = torch.tensor(parts[1].reshape(O, C//g, KH, KW), requires_grad=True)\n"
    "  b = torch.tensor(parts[2], requires_grad=True) if bias else None\n"
    "  y = F.conv2d(x, w, b, (sh, sw), (ph, pw), (dh, dw), g)\n"
    "  y.backward(torch.tensor(parts[3].reshape(N, O, OH, OW)))\n"
    "  db = b.grad.numpy() if bias else np.zeros(O)\n"
    "  out = np.concatenate([y.detach().numpy().ravel(), x.grad.numpy().ravel(),\n"
    "                        w.grad.numpy().ravel(), db.ravel()])\n"
    "  out.astype(np.float64).tofile(dst)\n"
    "for i in range(1, len(sys.argv), 2): run(sys.argv[i], sys.argv[i + 1])\n";

/* The inputs conv_exec used (same seeds). */
static void fill_case_inputs(float *x, float *w, float *b, float *dy, const conv_run *r) {
    fill(x, r->nx, 1);
    fill(w, r->nw, 2);
    fill(b, r->nb, 3);
    fill(dy, r->ny, 4);
}

static double rel_err_d(const float *a, const double *b, int64_t n) {
    double d = 0.0, m = 1e-3;
    for (int64_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - b[i]));
        m = fmax(m, fabs(b[i]));
    }
    return d / m;
}

#define TORCH_CASES 6

static void test_against_torch(void) {
    const conv_case cases[TORCH_CASES] = {
        make_case(3, 16, 11, 9, 16, 3, 1, 1, 1, 1, 1),  /* oneDNN */
        make_case(2, 12, 9, 10, 12, 5, 2, 2, 1, 12, 1), /* depthwise stride 2 */
        make_case(2, 8, 12, 12, 8, 3, 1, 2, 2, 8, 0),   /* dilated depthwise */
        make_case(3, 10, 7, 7, 6, 1, 1, 0, 1, 1, 1),    /* 1x1 (sgemm) */
        make_case(2, 12, 7, 8, 9, 3, 2, 1, 1, 3, 1),    /* grouped, stride 2 */
        make_case(1, 24, 4, 4, 24, 3, 1, 1, 1, 24, 0),  /* small-plane depthwise (oneDNN) */
    };
    char paths[2 * TORCH_CASES + 1][64];
    conv_run got[TORCH_CASES];
    char cmd[4096];
    int len = snprintf(paths[0], sizeof paths[0], "/tmp/nas_conv_torch_XXXXXX");
    int fd = mkstemp(paths[0]);
    CHECK(fd >= 0 && len > 0, "temp file");
    FILE *py = fdopen(fd, "w");
    fputs(torch_script, py);
    fclose(py);
    len = snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s", paths[0]);
    for (int t = 0; t < TORCH_CASES; t++) {
        const conv_case *cc = &cases[t];
        const int ok = conv_exec(cc, NAS_CONV_AUTO, 1, &got[t]);
        CHECK(ok, "case %d", t);
        const int g = cc->a.groups ? cc->a.groups : 1;
        const int32_t cfg[16] = {(int32_t)cc->N,
                                 (int32_t)cc->C,
                                 (int32_t)cc->H,
                                 (int32_t)cc->W,
                                 (int32_t)cc->O,
                                 (int32_t)cc->KH,
                                 (int32_t)cc->KW,
                                 cc->a.stride_h ? cc->a.stride_h : 1,
                                 cc->a.stride_w ? cc->a.stride_w : 1,
                                 cc->a.pad_h,
                                 cc->a.pad_w,
                                 cc->a.dilation_h ? cc->a.dilation_h : 1,
                                 cc->a.dilation_w ? cc->a.dilation_w : 1,
                                 g,
                                 cc->bias,
                                 0};
        float *x = malloc(4 * (size_t)got[t].nx), *w = malloc(4 * (size_t)got[t].nw);
        float *b = malloc(4 * (size_t)got[t].nb), *dy = malloc(4 * (size_t)got[t].ny);
        fill_case_inputs(x, w, b, dy, &got[t]);
        for (int k = 1; k <= 2; k++) {
            snprintf(paths[2 * t + k], sizeof paths[0], "/tmp/nas_conv_torch_XXXXXX");
            const int f2 = mkstemp(paths[2 * t + k]);
            if (f2 >= 0) {
                close(f2);
            }
            len += snprintf(cmd + len, sizeof cmd - (size_t)len, " %s", paths[2 * t + k]);
        }
        FILE *f = fopen(paths[2 * t + 1], "wb");
        if (f != NULL) {
            fwrite(cfg, sizeof cfg, 1, f);
            fwrite(x, 4, (size_t)got[t].nx, f);
            fwrite(w, 4, (size_t)got[t].nw, f);
            fwrite(b, 4, (size_t)got[t].nb, f);
            fwrite(dy, 4, (size_t)got[t].ny, f);
            fclose(f);
        }
        free(x);
        free(w);
        free(b);
        free(dy);
    }
    const int rc = system(cmd); /* one interpreter for all cases: importing torch is slow */
    CHECK(rc == 0, "torch script failed (%d): %s", rc, cmd);
    for (int t = 0; t < TORCH_CASES; t++) {
        char name[256];
        case_str(&cases[t], name, sizeof name);
        const conv_run *r = &got[t];
        const int64_t n_ref = r->ny + r->nx + r->nw + r->nb;
        double *ref = malloc(sizeof(double) * (size_t)n_ref);
        FILE *f = fopen(paths[2 * t + 2], "rb");
        const size_t nread = f != NULL ? fread(ref, sizeof(double), (size_t)n_ref, f) : 0;
        if (f != NULL) {
            fclose(f);
        }
        CHECK(nread == (size_t)n_ref, "%s: read %zu of %lld reference values", name, nread,
              (long long)n_ref);
        if (nread == (size_t)n_ref && r->dx != NULL) {
            double e = rel_err_d(r->y, ref, r->ny);
            CHECK(e < 1e-4, "%s: y vs torch rel err %g", name, e);
            e = rel_err_d(r->dx, ref + r->ny, r->nx);
            CHECK(e < 1e-4, "%s: dx vs torch rel err %g", name, e);
            e = rel_err_d(r->dw, ref + r->ny + r->nx, r->nw);
            CHECK(e < 1e-4, "%s: dw vs torch rel err %g", name, e);
            if (cases[t].bias) {
                e = rel_err_d(r->db, ref + r->ny + r->nx + r->nw, r->nb);
                CHECK(e < 1e-4, "%s: db vs torch rel err %g", name, e);
            }
        }
        free(ref);
        run_free(&got[t]);
        unlink(paths[2 * t + 1]);
        unlink(paths[2 * t + 2]);
    }
    unlink(paths[0]);
}

int main(void) {
    nas_set_threads(2);
    RUN_TEST(test_naive_forward_direct);
    RUN_TEST(test_naive_finite_differences);
    RUN_TEST(test_fast_vs_naive_fixed);
    RUN_TEST(test_fast_vs_naive_random);
    RUN_TEST(test_winograd);
    RUN_TEST(test_own_winograd);
    RUN_TEST(test_bit_identical);
    RUN_TEST(test_shape_errors);
    RUN_TEST(test_cache_and_no_alloc);
    RUN_TEST(test_accumulates);
    RUN_TEST(test_against_torch);
    return check_report("conv");
}
