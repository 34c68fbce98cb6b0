/* test_nets.c - the standard networks (src/nn/nets.c): parameter and MAC counts against the
 * published figures (NAS-Bench-201 paper / PyTorch peer counts in ../shared/PERF_NOTES.md and the
 * engine issue), clear errors for bad arguments and inputs, every NB201 cell shape building and
 * running (all-'none' cells, zero nodes feeding convs), reproducible initialisation, and a
 * training step on a graph rebuilt every step that does not touch the allocator once warm.
 * The numerical comparison with PyTorch is tests/py_nets_torch.py. */
#include "check.h"
#include "nascent.h"

#include <math.h>
#include <string.h>

static const nas_nb201_op ALLCONV[6] = {NAS_NB201_CONV3, NAS_NB201_CONV3, NAS_NB201_CONV3,
                                        NAS_NB201_CONV3, NAS_NB201_CONV3, NAS_NB201_CONV3};
static const nas_model_shape CIFAR = {3, 32, 32, 10};

static void counts(nas_model *m, int64_t *params, int64_t *macs) {
    *params = nas_model_n_params(m);
    *macs = -1;
    CHECK(nas_model_count(m, macs, NULL) == NAS_OK, "count failed");
}

/* Published: NB201 all-conv3x3 1,531,546 params / 220,119,680 MACs; the random cell of the peer
 * 344,346 / 47,104,640; MobileNetV2 (32x32) 2,236,682 / 87,976,448; fmnist-cnn 20,490. */
static void test_counts(void) {
    nas_ctx *ctx = nas_ctx_new();
    nas_model *m = NULL;
    int64_t p, macs;
    CHECK(nas_net_nb201(ctx, ALLCONV, 16, 5, CIFAR, &m) == NAS_OK, "%s", nas_errmsg(ctx));
    counts(m, &p, &macs);
    CHECK(p == 1531546 && macs == 220119680, "nb201 all-conv: %lld params, %lld MACs",
          (long long)p, (long long)macs);
    nas_model_free(m);
    const nas_nb201_op mix[6] = {NAS_NB201_NONE, NAS_NB201_SKIP, NAS_NB201_POOL3,
                                 NAS_NB201_CONV1, NAS_NB201_SKIP, NAS_NB201_CONV3};
    CHECK(nas_net_nb201(ctx, mix, 16, 5, CIFAR, &m) == NAS_OK, "%s", nas_errmsg(ctx));
    counts(m, &p, &macs);
    CHECK(p == 344346 && macs == 47104640, "nb201 mix: %lld params, %lld MACs", (long long)p,
          (long long)macs);
    nas_model_free(m);
    CHECK(nas_net_mobilenet_v2(ctx, 1.0, CIFAR, &m) == NAS_OK, "%s", nas_errmsg(ctx));
    counts(m, &p, &macs);
    CHECK(p == 2236682 && macs == 87976448, "mbv2: %lld params, %lld MACs", (long long)p,
          (long long)macs);
    nas_model_free(m);
    const nas_model_shape fm = {1, 28, 28, 10};
    CHECK(nas_net_fmnist_cnn(ctx, fm, &m) == NAS_OK, "%s", nas_errmsg(ctx));
    counts(m, &p, &macs);
    CHECK(p == 20490, "fmnist-cnn: %lld params", (long long)p);
    CHECK(strcmp(nas_model_kind(m), "fmnist-cnn") == 0, "kind %s", nas_model_kind(m));
    nas_model_free(m);
    nas_ctx_free(ctx);
}

static void test_bad_args(void) {
    nas_ctx *ctx = nas_ctx_new();
    nas_model *m = (nas_model *)1;
    nas_nb201_op bad[6] = {NAS_NB201_CONV3, NAS_NB201_CONV3, (nas_nb201_op)7,
                           NAS_NB201_CONV3, NAS_NB201_CONV3, NAS_NB201_CONV3};
    CHECK(nas_net_nb201(ctx, bad, 16, 5, CIFAR, &m) == NAS_ERR_ARG && m == NULL, "bad op");
    CHECK(strstr(nas_errmsg(ctx), "edge 2") != NULL, "message: %s", nas_errmsg(ctx));
    CHECK(nas_net_nb201(ctx, ALLCONV, 0, 5, CIFAR, &m) == NAS_ERR_ARG, "C = 0");
    const nas_model_shape neg = {3, -1, 32, 10};
    CHECK(nas_net_nb201(ctx, ALLCONV, 16, 5, neg, &m) == NAS_ERR_ARG, "bad shape");
    CHECK(nas_net_mobilenet_v2(ctx, 0.0, CIFAR, &m) == NAS_ERR_ARG, "width 0");
    const nas_model_shape tiny = {1, 3, 3, 10};
    CHECK(nas_net_fmnist_cnn(ctx, tiny, &m) == NAS_ERR_ARG, "3x3 input for two pools");
    CHECK(strstr(nas_errmsg(ctx), "fmnist-cnn") != NULL, "message: %s", nas_errmsg(ctx));
    /* an input of the wrong shape is a graph error naming the network, not an abort */
    CHECK(nas_net_nb201(ctx, ALLCONV, 4, 1, CIFAR, &m) == NAS_OK, "%s", nas_errmsg(ctx));
    nas_graph *g = nas_graph_new(ctx);
    const int64_t xs[4] = {2, 1, 28, 28};
    CHECK(nas_model_forward(m, g, nas_input(g, 4, xs, NULL)) == NULL, "wrong input accepted");
    CHECK(nas_graph_status(g) == NAS_ERR_SHAPE, "status %d", (int)nas_graph_status(g));
    CHECK(strstr(nas_errmsg(ctx), "nb201") != NULL, "message: %s", nas_errmsg(ctx));
    nas_graph_free(g);
    nas_model_free(m);
    nas_ctx_free(ctx);
}

/* Build, forward, backward of a small NB201 net; returns the loss (NaN on failure). */
static double run_small(nas_ctx *ctx, const nas_nb201_op ops[6], int training) {
    const nas_model_shape sh = {2, 8, 8, 5};
    nas_model *m = NULL;
    if (nas_net_nb201(ctx, ops, 4, 1, sh, &m) != NAS_OK) {
        return NAN;
    }
    nas_params_init(nas_model_params(m), 3);
    float x[4 * 2 * 8 * 8];
    int32_t y[4] = {0, 1, 2, 4};
    nas_rng r = nas_rng_make(5, 0);
    nas_rng_fill_normal(&r, x, 4 * 2 * 8 * 8, 0.0f, 1.0f);
    nas_graph *g = nas_graph_new(ctx);
    nas_graph_set_training(g, training);
    const int64_t xs[4] = {4, 2, 8, 8};
    nas_tensor *logits = nas_model_forward(m, g, nas_input(g, 4, xs, x));
    nas_tensor *loss = nas_softmax_cross_entropy(g, logits, nas_labels(g, 4, y), 0.0f);
    double out = NAN;
    if (nas_graph_status(g) == NAS_OK && nas_graph_forward(g) == NAS_OK &&
        nas_graph_backward(g, loss) == NAS_OK) {
        out = nas_tensor_data(loss)[0];
    }
    nas_graph_free(g);
    nas_model_free(m);
    return out;
}

/* Every op on every edge, all-'none' cells, a zero node feeding a conv (BN of zeros), eval mode. */
static void test_all_cells_run(void) {
    nas_ctx *ctx = nas_ctx_new();
    for (int op = 0; op < 5; op++) {
        nas_nb201_op ops[6];
        for (int e = 0; e < 6; e++) {
            ops[e] = (nas_nb201_op)op;
        }
        const double l = run_small(ctx, ops, 1);
        CHECK(isfinite(l) && l > 0, "all-%d cell: loss %g (%s)", op, l, nas_errmsg(ctx));
    }
    nas_rng r = nas_rng_make(11, 0);
    for (int t = 0; t < 20; t++) {
        nas_nb201_op ops[6];
        for (int e = 0; e < 6; e++) {
            ops[e] = (nas_nb201_op)nas_rng_below(&r, 5);
        }
        const double l = run_small(ctx, ops, t % 2);
        CHECK(isfinite(l) && l > 0, "random cell %d: loss %g (%s)", t, l, nas_errmsg(ctx));
    }
    const nas_nb201_op zero_node[6] = {NAS_NB201_NONE, NAS_NB201_CONV1, NAS_NB201_CONV3,
                                       NAS_NB201_POOL3, NAS_NB201_SKIP, NAS_NB201_CONV3};
    CHECK(isfinite(run_small(ctx, zero_node, 1)), "zero node: %s", nas_errmsg(ctx));
    nas_ctx_free(ctx);
}

/* Same seed, same parameters; names follow the PyTorch state_dict. */
static void test_init_and_names(void) {
    nas_ctx *ctx = nas_ctx_new();
    nas_model *a = NULL, *b = NULL;
    CHECK(nas_net_nb201(ctx, ALLCONV, 8, 2, CIFAR, &a) == NAS_OK, "%s", nas_errmsg(ctx));
    CHECK(nas_net_nb201(ctx, ALLCONV, 8, 2, CIFAR, &b) == NAS_OK, "%s", nas_errmsg(ctx));
    nas_params *pa = nas_model_params(a), *pb = nas_model_params(b);
    nas_params_init(pa, 42);
    nas_params_init(pb, 42);
    CHECK(nas_params_total(pa) == nas_params_total(pb) &&
              memcmp(nas_params_data(pa), nas_params_data(pb),
                     (size_t)nas_params_total(pa) * sizeof(float)) == 0,
          "same seed, different parameters");
    CHECK(nas_params_find(pa, "0.weight") >= 0 && nas_params_find(pa, "2.ops.5.1.weight") >= 0 &&
              nas_params_find(pa, "4.down.1.weight") >= 0 && nas_params_find(pa, "10.running_var") >= 0 &&
                  nas_params_find(pa, "14.bias") >= 0,
          "PyTorch names missing");
    /* PyTorch default conv init: |w| <= 1/sqrt(fan_in) = 1/sqrt(8*9) */
    const nas_param_id w = nas_params_find(pa, "2.ops.0.1.weight");
    const float *wd = nas_params_data(pa) + nas_param_offset(pa, w);
    float mx = 0.0f;
    for (int64_t i = 0; i < nas_param_numel(pa, w); i++) {
        mx = fabsf(wd[i]) > mx ? fabsf(wd[i]) : mx;
    }
    CHECK(mx <= 1.0f / sqrtf(72.0f) && mx > 0.5f / sqrtf(72.0f), "conv init bound %g", mx);
    nas_model_free(a);
    nas_model_free(b);
    nas_ctx_free(ctx);
}

/* A model's parameters as built and initialised (seed 9) in `ctx` with `threads` threads:
 * data and gradient blocks copied out (caller frees); the allocator calls building took. */
typedef struct built {
    float *data, *grad;
    int64_t total;
    long build_calls;
} built;

static built build_nb201(nas_ctx *ctx, check_alloc_counter *ca, int C, int N, int threads) {
    built b = {0};
    nas_set_threads(threads);
    nas_model *m = NULL;
    const long before = ca->calls;
    CHECK(nas_net_nb201(ctx, ALLCONV, C, N, CIFAR, &m) == NAS_OK, "%s", nas_errmsg(ctx));
    b.build_calls = ca->calls - before;
    if (m != NULL) {
        nas_params *p = nas_model_params(m);
        nas_params_init(p, 9);
        b.total = nas_params_total(p);
        b.data = malloc((size_t)b.total * sizeof(float));
        b.grad = malloc((size_t)b.total * sizeof(float));
        memcpy(b.data, nas_params_data(p), (size_t)b.total * sizeof(float));
        memcpy(b.grad, nas_params_grad(p), (size_t)b.total * sizeof(float));
        for (int64_t k = 0; k < b.total; k++) { /* as a backward leaves them */
            nas_params_grad(p)[k] = 0.5f;
        }
        nas_model_free(m);
    }
    nas_set_threads(2);
    return b;
}

static int same_params(const built *a, const built *b) {
    return a->total == b->total && a->data != NULL && b->data != NULL &&
           memcmp(a->data, b->data, (size_t)a->total * sizeof(float)) == 0 &&
           memcmp(a->grad, b->grad, (size_t)a->total * sizeof(float)) == 0;
}

/* Models built one after another in one context (as the proxies score architectures) reuse the
 * last one's parameter blocks (nas_keep_spare) and get the parameters, and zero gradients, of
 * a model built in a fresh context; initialisation gives the same values on one thread as on
 * two (small tensors fill in parallel with each other, large ones one after another). */
static void test_rebuilt_models(void) {
    check_alloc_counter fresh_ca = {0}, ca = {0};
    nas_ctx *fresh = nas_ctx_new_with_allocator(check_counting_alloc, &fresh_ca);
    built want_big = build_nb201(fresh, &fresh_ca, 16, 5, 1);
    built want_small = build_nb201(fresh, &fresh_ca, 8, 2, 1);
    nas_ctx_free(fresh);
    nas_ctx *ctx = nas_ctx_new_with_allocator(check_counting_alloc, &ca);
    built runs[4] = {build_nb201(ctx, &ca, 16, 5, 2), build_nb201(ctx, &ca, 8, 2, 2),
                     build_nb201(ctx, &ca, 16, 5, 2), build_nb201(ctx, &ca, 16, 5, 2)};
    const built *want[4] = {&want_big, &want_small, &want_big, &want_big};
    for (int i = 0; i < 4; i++) {
        int64_t nonzero = 0;
        for (int64_t k = 0; runs[i].grad != NULL && k < runs[i].total; k++) {
            nonzero += runs[i].grad[k] != 0.0f;
        }
        CHECK(same_params(&runs[i], want[i]) && nonzero == 0,
              "model %d: parameters differ from a fresh context's on one thread (%lld nonzero "
              "gradients)", i, (long long)nonzero);
        free(runs[i].data);
        free(runs[i].grad);
    }
    CHECK(runs[3].build_calls < runs[0].build_calls,
          "a rebuilt model allocated as often as the first (%ld vs %ld calls)",
          runs[3].build_calls, runs[0].build_calls);
    free(want_big.data);
    free(want_big.grad);
    free(want_small.data);
    free(want_small.grad);
    nas_ctx_free(ctx);
}

/* The NAS use case: a new graph recorded for every step (on the same nas_graph) must not call
 * the allocator once the first steps have sized the arenas. */
static void test_rebuild_no_alloc(void) {
    check_alloc_counter ca = {0};
    nas_ctx *ctx = nas_ctx_new_with_allocator(check_counting_alloc, &ca);
    const nas_model_shape sh = {3, 16, 16, 10};
    nas_model *m = NULL;
    CHECK(nas_net_nb201(ctx, ALLCONV, 4, 2, sh, &m) == NAS_OK, "%s", nas_errmsg(ctx));
    float x[2 * 3 * 16 * 16];
    int32_t y[2] = {3, 7};
    nas_rng r = nas_rng_make(1, 0);
    nas_rng_fill_normal(&r, x, 2 * 3 * 16 * 16, 0.0f, 1.0f);
    nas_graph *g = nas_graph_new(ctx);
    nas_graph_set_training(g, 1);
    long before = 0;
    for (int step = 0; step < 5; step++) {
        if (step == 3) {
            before = ca.calls;
        }
        nas_graph_reset(g);
        const int64_t xs[4] = {2, 3, 16, 16};
        nas_tensor *logits = nas_model_forward(m, g, nas_input(g, 4, xs, x));
        nas_tensor *loss = nas_softmax_cross_entropy(g, logits, nas_labels(g, 2, y), 0.0f);
        nas_params_zero_grad(nas_model_params(m));
        CHECK(nas_graph_status(g) == NAS_OK && nas_graph_forward(g) == NAS_OK &&
                  nas_graph_backward(g, loss) == NAS_OK,
              "step %d: %s", step, nas_errmsg(ctx));
    }
    CHECK(ca.calls == before, "%ld allocator calls in steady-state rebuilt steps", ca.calls - before);
    nas_graph_free(g);
    nas_model_free(m);
    nas_ctx_free(ctx);
}

int main(void) {
    nas_set_threads(2);
    RUN_TEST(test_counts);
    RUN_TEST(test_bad_args);
    RUN_TEST(test_all_cells_run);
    RUN_TEST(test_init_and_names);
    RUN_TEST(test_rebuild_no_alloc);
    RUN_TEST(test_rebuilt_models);
    return check_report("test_nets");
}
