/* test_graph.c - the graph machinery: building, planning, forward/backward on a small MLP against
 * a hand-written double-precision reference (and with parameter gradients off), sticky builder
 * errors, arena reuse without allocation in steady state, views, and the inference planner's
 * memory reuse; gradients stored by their first writer instead of zeroed and added to: a
 * backward from an inner node, after a full one, against the same backward on a graph with
 * nothing after that node (test_ops_grad checks such gradients against finite differences). */
#include "check.h"
#include "nascent.h"
#include "ops/conv_int.h"

#include <math.h>
#include <string.h>

/* y = mean(relu(x W^T + b)); check dL/dW, dL/db, dL/dx against a double reference. */
static void test_mlp_grad(void) {
    nas_ctx *ctx = nas_ctx_new();
    nas_params *P = nas_params_new(ctx);
    const int64_t N = 5, F = 7, O = 3;
    nas_param_id wid, bid;
    int64_t ws[2] = {O, F}, bs[1] = {O};
    CHECK(nas_params_add(P, "w", 2, ws, NAS_INIT_TORCH_DEFAULT, 0, 0, &wid) == NAS_OK, "add w");
    CHECK(nas_params_add(P, "b", 1, bs, NAS_INIT_TORCH_BIAS, 0, F, &bid) == NAS_OK, "add b");
    nas_params_init(P, 42);
    float x[35];
    nas_rng r = nas_rng_make(7, 0);
    nas_rng_fill_normal(&r, x, N * F, 0.0f, 1.0f);
    nas_graph *g = nas_graph_new(ctx);
    int64_t xs[2] = {N, F};
    nas_tensor *xin = nas_input_grad(g, 2, xs, x);
    nas_tensor *y = nas_linear(g, xin, nas_param(g, P, wid), nas_param(g, P, bid));
    nas_tensor *loss = nas_mean_all(g, nas_relu(g, y));
    CHECK(nas_graph_status(g) == NAS_OK, "build: %s", nas_errmsg(ctx));
    nas_params_zero_grad(P);
    CHECK(nas_graph_forward(g) == NAS_OK, "forward: %s", nas_errmsg(ctx));
    CHECK(nas_graph_backward(g, loss) == NAS_OK, "backward: %s", nas_errmsg(ctx));
    const float *W = nas_params_data(P) + nas_param_offset(P, wid);
    const float *B = nas_params_data(P) + nas_param_offset(P, bid);
    const float *dW = nas_params_grad(P) + nas_param_offset(P, wid);
    const float *dB = nas_params_grad(P) + nas_param_offset(P, bid);
    double ref_loss = 0, ref_dw[21] = {0}, ref_db[3] = {0}, ref_dx[35] = {0};
    for (int n = 0; n < N; n++) {
        for (int o = 0; o < O; o++) {
            double z = B[o];
            for (int f = 0; f < F; f++) {
                z += (double)x[n * F + f] * W[o * F + f];
            }
            if (z > 0) {
                ref_loss += z / (double)(N * O);
                ref_db[o] += 1.0 / (double)(N * O);
                for (int f = 0; f < F; f++) {
                    ref_dw[o * F + f] += x[n * F + f] / (double)(N * O);
                    ref_dx[n * F + f] += W[o * F + f] / (double)(N * O);
                }
            }
        }
    }
    CHECK(fabs(nas_tensor_data(loss)[0] - ref_loss) < 1e-5, "loss %g vs %g",
          (double)nas_tensor_data(loss)[0], ref_loss);
    for (int i = 0; i < O * F; i++) {
        CHECK(fabs(dW[i] - ref_dw[i]) < 1e-5, "dW[%d] %g vs %g", i, (double)dW[i], ref_dw[i]);
    }
    for (int i = 0; i < O; i++) {
        CHECK(fabs(dB[i] - ref_db[i]) < 1e-5, "dB[%d]", i);
    }
    for (int i = 0; i < N * F; i++) {
        CHECK(fabs(nas_tensor_grad(xin)[i] - ref_dx[i]) < 1e-5, "dx[%d]", i);
    }
    /* parameter gradients off: the same dx, the parameters' grad block untouched */
    float dx_on[35];
    memcpy(dx_on, nas_tensor_grad(xin), sizeof dx_on);
    for (int64_t i = 0; i < nas_params_total(P); i++) {
        nas_params_grad(P)[i] = 7.0f;
    }
    nas_graph_set_param_grads(g, 0);
    CHECK(nas_graph_forward(g) == NAS_OK, "forward without parameter gradients: %s",
          nas_errmsg(ctx));
    CHECK(nas_graph_backward(g, loss) == NAS_OK, "backward without parameter gradients: %s",
          nas_errmsg(ctx));
    CHECK(memcmp(dx_on, nas_tensor_grad(xin), sizeof dx_on) == 0,
          "dx changes without parameter grads");
    int64_t touched = 0;
    for (int64_t i = 0; i < nas_params_total(P); i++) {
        touched += nas_params_grad(P)[i] != 7.0f;
    }
    CHECK(touched == 0, "%lld parameter gradients written with parameter gradients off",
          (long long)touched);
    nas_graph_free(g);
    nas_params_free(P);
    nas_ctx_free(ctx);
}

static void test_sticky_errors(void) {
    nas_ctx *ctx = nas_ctx_new();
    nas_graph *g = nas_graph_new(ctx);
    int64_t a[2] = {2, 3}, b[2] = {2, 4};
    nas_tensor *x = nas_input(g, 2, a, NULL), *y = nas_input(g, 2, b, NULL);
    nas_tensor *s = nas_add(g, x, y);
    CHECK(s == NULL, "mismatched add must fail");
    CHECK(nas_graph_status(g) == NAS_ERR_SHAPE, "status %d", nas_graph_status(g));
    CHECK(strstr(nas_errmsg(ctx), "[2, 4]") != NULL, "message names the shape: %s", nas_errmsg(ctx));
    CHECK(nas_relu(g, s) == NULL, "builders after an error return NULL");
    CHECK(nas_graph_forward(g) != NAS_OK, "forward refuses a broken graph");
    nas_graph_reset(g);
    CHECK(nas_graph_status(g) == NAS_OK, "reset clears the error");
    nas_graph_free(g);
    nas_ctx_free(ctx);
}

/* Rebuilding the same graph and stepping it calls the allocator zero times after warm-up. */
static void test_steady_state_no_alloc(void) {
    check_alloc_counter counter = {0};
    nas_ctx *ctx = nas_ctx_new_with_allocator(check_counting_alloc, &counter);
    nas_params *P = nas_params_new(ctx);
    nas_param_id wid;
    int64_t ws[2] = {16, 32};
    nas_params_add(P, "w", 2, ws, NAS_INIT_TORCH_DEFAULT, 0, 0, &wid);
    nas_params_init(P, 1);
    float x[8 * 32];
    for (int i = 0; i < 8 * 32; i++) {
        x[i] = (float)(i % 7) - 3.0f;
    }
    nas_graph *g = nas_graph_new(ctx);
    long after_warmup = 0;
    for (int step = 0; step < 5; step++) {
        if (step == 2) {
            after_warmup = counter.calls;
        }
        nas_graph_reset(g);
        int64_t xs[2] = {8, 32};
        nas_tensor *h = nas_relu(g, nas_linear(g, nas_input(g, 2, xs, x), nas_param(g, P, wid), NULL));
        nas_tensor *loss = nas_mean_all(g, h);
        nas_params_zero_grad(P);
        CHECK(nas_graph_forward(g) == NAS_OK, "forward");
        CHECK(nas_graph_backward(g, loss) == NAS_OK, "backward");
    }
    CHECK(counter.calls == after_warmup, "steady state allocated %ld times",
          counter.calls - after_warmup);
    nas_graph_free(g);
    nas_params_free(P);
    nas_ctx_free(ctx);
}

/* A chain of 10 relus: inference keeps at most two buffers live. */
static void test_inference_reuse(void) {
    nas_ctx *ctx = nas_ctx_new();
    nas_graph *g = nas_graph_new(ctx);
    int64_t s[1] = {1000};
    float x[1000] = {0};
    nas_tensor *t = nas_input(g, 1, s, x);
    for (int i = 0; i < 10; i++) {
        t = nas_relu(g, t);
    }
    const size_t peak = nas_graph_activation_peak(g);
    CHECK(peak == 2 * 4032, "peak %zu (two 4000-byte buffers, 64-aligned)", peak);
    nas_graph_set_grad_enabled(g, 0);
    CHECK(nas_graph_forward(g) == NAS_OK, "forward");
    CHECK(nas_graph_arena_bytes(g) < 5 * 4032, "arena %zu", nas_graph_arena_bytes(g));
    nas_graph_free(g);
    nas_ctx_free(ctx);
}

/* x -> a = relu(x) read by two convs b, c, a sigmoid and (full graph only) a later node;
 * s = view(b) + c + b + c + sigmoid(a); m = relu(s). The full graph goes on to
 * loss = sum((m + a)^2). */
typedef struct first_writer_net {
    nas_tensor *x, *w1, *w2, *m, *loss;
} first_writer_net;

static first_writer_net first_writer_build(nas_graph *g, float *x, float *w1, float *w2, int full) {
    const int64_t xs[4] = {2, 16, 6, 6}, ws[4] = {16, 16, 3, 3};
    first_writer_net n = {0};
    n.x = nas_input_grad(g, 4, xs, x);
    n.w1 = nas_input_grad(g, 4, ws, w1);
    n.w2 = nas_input_grad(g, 4, ws, w2);
    nas_conv_args pad = {0};
    pad.pad_h = pad.pad_w = 1;
    nas_tensor *a = nas_relu(g, n.x);
    nas_tensor *b = nas_conv2d(g, a, n.w1, NULL, &pad), *c = nas_conv2d(g, a, n.w2, NULL, &pad);
    nas_tensor *parts[5] = {nas_identity(g, b), c, b, c, nas_sigmoid(g, a)};
    n.m = nas_relu(g, nas_sum(g, 5, parts));
    if (full) {
        nas_tensor *t = nas_add(g, n.m, a);
        n.loss = nas_sum_all(g, nas_mul(g, t, t));
    }
    return n;
}

static void test_first_writer(void) {
    enum { NX = 2 * 16 * 36, NW = 16 * 16 * 9 };
    float *x = malloc(NX * sizeof(float)), *w1 = malloc(NW * sizeof(float));
    float *w2 = malloc(NW * sizeof(float)), *r = malloc(NX * sizeof(float));
    float *want = malloc((NX + 2 * NW) * sizeof(float));
    nas_rng rng = nas_rng_make(11, 0);
    nas_rng_fill_uniform(&rng, x, NX, -1.0f, 1.0f);
    nas_rng_fill_uniform(&rng, w1, NW, -0.3f, 0.3f);
    nas_rng_fill_uniform(&rng, w2, NW, -0.3f, 0.3f);
    nas_rng_fill_uniform(&rng, r, NX, -1.0f, 1.0f);
    const nas_conv_backend backends[2] = {NAS_CONV_AUTO, NAS_CONV_NAIVE};
    for (int bi = 0; bi < 2; bi++) {
        nas_ctx *ctx = nas_ctx_new();
        nas_conv_set_backend(ctx, backends[bi]);
        /* reference: nothing reads past m */
        nas_graph *g = nas_graph_new(ctx);
        first_writer_net n = first_writer_build(g, x, w1, w2, 0);
        CHECK(nas_graph_forward(g) == NAS_OK && nas_graph_backward_from(g, n.m, r) == NAS_OK,
              "reference: %s", nas_errmsg(ctx));
        memcpy(want, nas_tensor_grad(n.x), NX * sizeof(float));
        memcpy(want + NX, nas_tensor_grad(n.w1), NW * sizeof(float));
        memcpy(want + NX + NW, nas_tensor_grad(n.w2), NW * sizeof(float));
        nas_graph_free(g);
        /* full graph: a backward from the loss leaves every gradient non-zero, then the one from
         * m must not see any of it (a's last reader does not run) */
        g = nas_graph_new(ctx);
        n = first_writer_build(g, x, w1, w2, 1);
        CHECK(nas_graph_forward(g) == NAS_OK && nas_graph_backward(g, n.loss) == NAS_OK &&
                  nas_graph_backward_from(g, n.m, r) == NAS_OK,
              "full: %s", nas_errmsg(ctx));
        const float *got[3] = {nas_tensor_grad(n.x), nas_tensor_grad(n.w1), nas_tensor_grad(n.w2)};
        const int64_t at[3] = {0, NX, NX + NW}, len[3] = {NX, NW, NW};
        for (int k = 0; k < 3; k++) {
            int64_t bad = 0;
            for (int64_t i = 0; i < len[k]; i++) {
                bad += got[k][i] != want[at[k] + i];
            }
            CHECK(bad == 0, "backend %d gradient %d: %lld of %lld values differ from the reference",
                  bi, k, (long long)bad, (long long)len[k]);
        }
        nas_graph_free(g);
        nas_ctx_free(ctx);
    }
    free(x);
    free(w1);
    free(w2);
    free(r);
    free(want);
}

static void test_rng(void) {
    nas_rng a = nas_rng_make(5, 1), b = nas_rng_make(5, 1), c = nas_rng_make(5, 2);
    CHECK(nas_rng_u64(&a) == nas_rng_u64(&b), "same seed, same stream");
    CHECK(nas_rng_u64(&a) != nas_rng_u64(&c), "other stream differs");
    double mean = 0, var = 0;
    nas_rng r = nas_rng_make(9, 0);
    for (int i = 0; i < 20000; i++) {
        const double v = nas_rng_normal(&r);
        mean += v / 20000;
        var += v * v / 20000;
    }
    CHECK(fabs(mean) < 0.03 && fabs(var - 1) < 0.05, "normal mean %g var %g", mean, var);
    float f1[1000], f2[1000];
    nas_rng r1 = nas_rng_make(3, 3), r2 = nas_rng_make(3, 3);
    nas_set_threads(1);
    nas_rng_fill_uniform(&r1, f1, 1000, -1, 1);
    nas_set_threads(2);
    nas_rng_fill_uniform(&r2, f2, 1000, -1, 1);
    CHECK(memcmp(f1, f2, sizeof f1) == 0, "fill independent of thread count");
}

int main(void) {
    RUN_TEST(test_mlp_grad);
    RUN_TEST(test_sticky_errors);
    RUN_TEST(test_steady_state_no_alloc);
    RUN_TEST(test_inference_reuse);
    RUN_TEST(test_first_writer);
    RUN_TEST(test_rng);
    return check_report("graph");
}
