/* test_layout.c - blocked layouts (nas_graph_set_blocked_layouts, src/ops/layout.c): NB201
 * networks of every op mix (conv 3x3 and 1x1, pools, skips, zeros, reduction blocks, global
 * pool), MobileNetV2 and the DARTS, OFA-MobileNetV3 and NAS-RL spaces' networks give the same
 * loss, logits, input and parameter gradients and running statistics with blocked layouts as
 * without (within the network's own float32 rounding noise), in training and in inference, and
 * the planner's rules hold: blocked regions exist, every blocked node's readers read that
 * layout, outputs stay plain, an op without blocked kernels forces its source plain; with
 * gradients on, batch norms (and their sum) fold into the ReLU after them (ops/fuse.c) and give
 * the unfolded values bit for bit.
 * test_layout_avx2.c runs the same with oneDNN limited to AVX2 (nChw8c instead of nChw16c). */
#include "check.h"
#include "nascent.h"
#include "ops/conv_int.h"

#include <math.h>
#include <string.h>

#ifdef LAYOUT_TEST_AVX2
#include <dnnl.h>
#endif

/* Everything one training step of a network produces. */
typedef struct step_out {
    float *logits, *dx, *dparams, *params; /* params after the step: running statistics */
    double loss;
    int64_t n_logits, n_x, n_params, blocked, folded;
    size_t arena;         /* the graph's arena bytes */
    int logits_grad_kept; /* nas_tensor_grad(logits) != NULL after backward */
} step_out;

/* run_step's variants (flags): every node's gradient retained (none reused), and a backward
 * started from the logits with a seed instead of from the loss. */
enum { STEP_RETAIN_ALL = 1, STEP_FROM_LOGITS = 2 };

static void step_free(step_out *o) {
    free(o->logits);
    free(o->dx);
    free(o->dparams);
    free(o->params);
}

static float *copy_of(const float *p, int64_t n) {
    float *c = malloc((size_t)n * sizeof(float));
    memcpy(c, p, (size_t)n * sizeof(float));
    return c;
}

/* The number of blocked nodes; *wrong_size counts those whose block is not the expected one
 * (8 under the AVX2 limit, else 8 or 16). */
static int64_t count_blocked(const nas_graph *g, int64_t *wrong_size) {
    int64_t k = 0;
    *wrong_size = 0;
    for (int64_t i = 0; i < g->n_nodes; i++) {
        const int b = nas_graph_node(g, i)->block;
        k += b != 0;
#ifdef LAYOUT_TEST_AVX2
        *wrong_size += b != 0 && b != 8;
#else
        *wrong_size += b != 0 && b != 8 && b != 16;
#endif
    }
    return k;
}

/* The readers of every blocked node read it in its layout; outputs are plain. */
static int64_t rule_violations(const nas_graph *g) {
    int64_t bad = 0;
    for (int64_t i = 0; i < g->n_nodes; i++) {
        const nas_node *s = nas_graph_node(g, i);
        if (s->block == 0) {
            continue;
        }
        int64_t readers = 0;
        for (int64_t j = i + 1; j < g->n_nodes; j++) {
            const nas_node *r = nas_graph_node(g, j);
            for (int k = 0; k < r->n_src; k++) {
                if (r->src[k] != s) {
                    continue;
                }
                readers++;
                const int ok = (r->op == NAS_OP_CONV2D && k == 0) ||
                               r->op == NAS_OP_GLOBAL_AVG_POOL || r->block == s->block;
                bad += !ok;
            }
        }
        bad += readers == 0;
    }
    return bad;
}

/* One training step (or an inference pass) of model m on x, params restored first. */
static step_out run_step(nas_ctx *ctx, nas_model *m, const float *params0, float *x,
                         int32_t *labels, int64_t batch, int train, int blocked, int flags) {
    step_out o = {0};
    nas_params *p = nas_model_params(m);
    o.n_params = nas_params_total(p);
    memcpy(nas_params_data(p), params0, (size_t)o.n_params * sizeof(float));
    nas_params_zero_grad(p);
    nas_graph *g = nas_graph_new(ctx);
    nas_graph_set_training(g, train);
    nas_graph_set_grad_enabled(g, train);
    nas_graph_set_blocked_layouts(g, blocked);
    const nas_model_shape sh = nas_model_get_shape(m);
    const int64_t xs[4] = {batch, sh.in_c, sh.in_h, sh.in_w};
    o.n_x = batch * sh.in_c * sh.in_h * sh.in_w;
    nas_tensor *xt = train ? nas_input_grad(g, 4, xs, x) : nas_input(g, 4, xs, x);
    nas_tensor *logits = nas_model_forward(m, g, xt);
    nas_tensor *loss = nas_softmax_cross_entropy(g, logits, nas_labels(g, batch, labels), 0.0f);
    nas_status st = nas_graph_status(g);
    for (int64_t i = 0; st == NAS_OK && (flags & STEP_RETAIN_ALL) && i < g->n_nodes; i++) {
        nas_graph_retain_grad(g, nas_graph_node(g, i));
    }
    if (st == NAS_OK) {
        st = nas_graph_forward(g);
    }
    float seed[64];
    for (int i = 0; i < 64; i++) {
        seed[i] = (float)cos(0.9 * i);
    }
    if (st == NAS_OK && train) {
        st = (flags & STEP_FROM_LOGITS) && batch * nas_model_get_shape(m).classes <= 64
                 ? nas_graph_backward_from(g, logits, seed)
                 : nas_graph_backward(g, loss);
    }
    CHECK(st == NAS_OK, "step: %s", nas_errmsg(ctx));
    if (st != NAS_OK) {
        nas_graph_free(g);
        return o;
    }
    if (train) {
        o.dx = copy_of(nas_tensor_grad(xt), o.n_x);
        o.dparams = copy_of(nas_params_grad(p), o.n_params);
    }
    o.arena = nas_graph_arena_bytes(g);
    o.logits_grad_kept = train && nas_tensor_grad(logits) != NULL;
    o.loss = nas_tensor_data(loss)[0];
    o.n_logits = batch * sh.classes;
    o.logits = copy_of(nas_tensor_data(logits), o.n_logits);
    o.params = copy_of(nas_params_data(p), o.n_params);
    int64_t wrong_size;
    o.blocked = count_blocked(g, &wrong_size);
    for (int64_t i = 0; i < g->n_nodes; i++) {
        o.folded += nas_graph_node(g, i)->folded_into != NULL;
    }
    CHECK(wrong_size == 0, "%lld nodes have an unexpected block size", (long long)wrong_size);
    CHECK(rule_violations(g) == 0, "%lld blocked nodes break the reader rules",
          (long long)rule_violations(g));
    nas_graph_free(g);
    return o;
}

/* max |a - b| / max |b| */
static double normwise(const float *a, const float *b, int64_t n) {
    return check_normwise_err(a, b, n, 1e-30);
}

static const nas_nb201_op ALLCONV[6] = {NAS_NB201_CONV3, NAS_NB201_CONV3, NAS_NB201_CONV3,
                                        NAS_NB201_CONV3, NAS_NB201_CONV3, NAS_NB201_CONV3};
static const nas_nb201_op MIXED[6] = {NAS_NB201_CONV3, NAS_NB201_SKIP,  NAS_NB201_POOL3,
                                      NAS_NB201_NONE,  NAS_NB201_CONV1, NAS_NB201_CONV3};
static const nas_nb201_op POOLS[6] = {NAS_NB201_POOL3, NAS_NB201_SKIP,  NAS_NB201_POOL3,
                                      NAS_NB201_NONE,  NAS_NB201_POOL3, NAS_NB201_SKIP};
static const nas_nb201_op CONV1[6] = {NAS_NB201_CONV1, NAS_NB201_CONV1, NAS_NB201_NONE,
                                      NAS_NB201_CONV3, NAS_NB201_SKIP,  NAS_NB201_CONV1};

/* The bound for a blocked-vs-plain difference: 2e-5, or 3x the float32 rounding noise of the
 * network where that is larger. The noise is measured as the difference between two plain runs
 * whose convolutions round differently (oneDNN and the naive loops): batch norm over few values
 * per channel (MobileNet's 1x1 late stages at batch 4) amplifies rounding to 1e-3. */
static double bound(double noise) {
    return fmax(2e-5, 3.0 * noise);
}

/* Blocked and plain runs of model m (3 x hw x hw inputs, 10 classes; freed here) agree within
 * bound(), in training and inference; with `want_blocks` training must have blocked nodes, with
 * `want_folds` folded ones (ReLUs after batch norms: only when blocked and training). */
static void check_model(nas_ctx *ctx, nas_model *m, int64_t hw, int want_blocks, int want_folds,
                        const char *what) {
    nas_params *p = nas_model_params(m);
    nas_params_init(p, 7);
    float *params0 = copy_of(nas_params_data(p), nas_params_total(p));
    /* batch norm starts at gamma 1, beta 0: move every parameter so a channel mix-up shows */
    for (int64_t i = 0; i < nas_params_total(p); i++) {
        params0[i] += 0.05f * (float)sin(1.3 * (double)i);
    }
    const int64_t batch = 4, n_x = batch * 3 * hw * hw;
    float *x = malloc((size_t)n_x * sizeof(float));
    int32_t labels[4] = {3, 1, 4, 1};
    for (int64_t i = 0; i < n_x; i++) {
        x[i] = (float)sin(0.37 * (double)i) + 0.25f;
    }
    for (int train = 1; train >= 0; train--) {
        step_out plain = run_step(ctx, m, params0, x, labels, batch, train, 0, 0);
        step_out blk = run_step(ctx, m, params0, x, labels, batch, train, 1, 0);
        nas_conv_set_backend(ctx, NAS_CONV_NAIVE);
        step_out naive = run_step(ctx, m, params0, x, labels, batch, train, 0, 0);
        nas_conv_set_backend(ctx, NAS_CONV_AUTO);
        CHECK(plain.blocked == 0, "%s: %lld blocked nodes with blocked layouts off", what,
              (long long)plain.blocked);
        /* oneDNN may want plain (or NHWC) tensors for inference: blocks there are optional */
        CHECK(blk.blocked > 0 || !train || !want_blocks, "%s: no node blocked", what);
        CHECK(plain.folded == 0 && (train || blk.folded == 0),
              "%s: folds where they must not be (plain %lld, blocked inference %lld)", what,
              (long long)plain.folded, (long long)blk.folded);
        CHECK(blk.folded > 0 || !train || !want_folds, "%s: nothing folded", what);
        if (plain.logits != NULL && blk.logits != NULL && naive.logits != NULL) {
            const double loss_noise = fabs(naive.loss - plain.loss) / fabs(plain.loss);
            CHECK(fabs(blk.loss - plain.loss) <= bound(loss_noise) * fabs(plain.loss),
                  "%s: loss %.9g vs %.9g", what, blk.loss, plain.loss);
            const int64_t nl = plain.n_logits, np = plain.n_params;
            const double e_logits = normwise(blk.logits, plain.logits, nl);
            const double e_params = normwise(blk.params, plain.params, np);
            CHECK(e_logits <= bound(normwise(naive.logits, plain.logits, nl)),
                  "%s (train %d): logits differ by %.3g", what, train, e_logits);
            CHECK(e_params <= bound(normwise(naive.params, plain.params, np)),
                  "%s (train %d): running statistics differ by %.3g", what, train, e_params);
            if (train) {
                const double e_dx = normwise(blk.dx, plain.dx, plain.n_x);
                const double e_dp = normwise(blk.dparams, plain.dparams, np);
                CHECK(e_dx <= bound(normwise(naive.dx, plain.dx, plain.n_x)),
                      "%s: input gradient differs by %.3g", what, e_dx);
                CHECK(e_dp <= bound(normwise(naive.dparams, plain.dparams, np)),
                      "%s: parameter gradients differ by %.3g", what, e_dp);
            }
        }
        step_free(&plain);
        step_free(&blk);
        step_free(&naive);
    }
    free(x);
    free(params0);
    nas_model_free(m);
}

static void check_network(const nas_nb201_op ops[6], int C, int64_t hw, const char *what) {
    nas_ctx *ctx = nas_ctx_new();
    nas_model *m = NULL;
    const nas_model_shape shape = {3, (int)hw, (int)hw, 10};
    CHECK(nas_net_nb201(ctx, ops, C, 1, shape, &m) == NAS_OK, "%s: %s", what, nas_errmsg(ctx));
    if (m != NULL) {
        check_model(ctx, m, hw, 1, 1, what); /* the stem and reduction blocks have BN -> ReLU */
    }
    nas_ctx_free(ctx);
}

static void test_nb201_allconv(void) {
    check_network(ALLCONV, 16, 16, "all-conv C=16");
    check_network(ALLCONV, 32, 8, "all-conv C=32");
}

static void test_nb201_mixed_ops(void) {
    check_network(MIXED, 16, 16, "mixed C=16");
    check_network(POOLS, 16, 12, "pools C=16");
    check_network(CONV1, 16, 16, "conv1x1 C=16");
}

/* Gradient buffers reused during the backward (autograd/exec.c) give the gradients of buffers
 * kept whole (every node retained) bit for bit, from the loss and from the logits with a seed
 * (a start whose buffer its reader would claim), plain and blocked; the arena shrinks, and an
 * intermediate gradient is readable only where retained. */
static void check_reuse(const nas_nb201_op ops[6], int C, int64_t hw, const char *what) {
    nas_ctx *ctx = nas_ctx_new();
    nas_model *m = NULL;
    const nas_model_shape shape = {3, (int)hw, (int)hw, 10};
    CHECK(nas_net_nb201(ctx, ops, C, 1, shape, &m) == NAS_OK, "%s: %s", what, nas_errmsg(ctx));
    if (m == NULL) {
        nas_ctx_free(ctx);
        return;
    }
    nas_params *p = nas_model_params(m);
    nas_params_init(p, 5);
    float *params0 = copy_of(nas_params_data(p), nas_params_total(p));
    const int64_t batch = 4, n_x = batch * 3 * hw * hw;
    float *x = malloc((size_t)n_x * sizeof(float));
    int32_t labels[4] = {2, 7, 1, 8};
    for (int64_t i = 0; i < n_x; i++) {
        x[i] = (float)sin(0.53 * (double)i);
    }
    for (int flags = 0; flags < 2 * STEP_FROM_LOGITS; flags += STEP_FROM_LOGITS) {
        for (int blocked = 0; blocked < 2; blocked++) {
            step_out reused = run_step(ctx, m, params0, x, labels, batch, 1, blocked, flags);
            step_out kept =
                run_step(ctx, m, params0, x, labels, batch, 1, blocked, flags | STEP_RETAIN_ALL);
            const char *how = flags ? "from the logits" : "from the loss";
            if (reused.dx != NULL && kept.dx != NULL) {
                CHECK(memcmp(reused.dx, kept.dx, (size_t)n_x * sizeof(float)) == 0 &&
                          memcmp(reused.dparams, kept.dparams,
                                 (size_t)kept.n_params * sizeof(float)) == 0,
                      "%s (blocked %d, %s): reused buffers change the gradients (dx %.3g, "
                      "params %.3g)", what, blocked, how, normwise(reused.dx, kept.dx, n_x),
                      normwise(reused.dparams, kept.dparams, kept.n_params));
                CHECK(reused.arena < kept.arena, "%s (blocked %d): arena %zu, not below %zu",
                      what, blocked, reused.arena, kept.arena);
                CHECK(!reused.logits_grad_kept && kept.logits_grad_kept,
                      "%s: the logits' gradient readable %d (not retained), %d (retained)",
                      what, reused.logits_grad_kept, kept.logits_grad_kept);
            }
            step_free(&reused);
            step_free(&kept);
        }
    }
    free(x);
    free(params0);
    nas_model_free(m);
    nas_ctx_free(ctx);
}

static void test_gradient_reuse(void) {
    check_reuse(ALLCONV, 16, 16, "all-conv C=16");
    check_reuse(MIXED, 16, 12, "mixed C=16");
}

/* Sizes whose last stage is odd (12 -> 6 -> 3, 20 -> 10 -> 5): pooling windows at every border.
 * (NB201's reduction block needs sizes divisible by 4.) */
static void test_nb201_odd_sizes(void) {
    check_network(MIXED, 16, 12, "mixed C=16 12x12");
    check_network(POOLS, 32, 20, "pools C=32 20x20");
}

/* The other spaces' networks: MobileNetV2 (1x1 and depthwise convs, ReLU6, residual adds),
 * DARTS cells (separable and dilated convs, max pools, concatenation), the OFA MobileNetV3 space
 * (h-swish, squeeze-excitation products) and NAS-RL (concatenated skip inputs): regions end at
 * the ops without blocked kernels, and the results still match. */
static void test_other_networks(void) {
    nas_ctx *ctx = nas_ctx_new();
    nas_model *m = NULL;
    const nas_model_shape shape = {3, 16, 16, 10};
    CHECK(nas_net_mobilenet_v2(ctx, 0.5, shape, &m) == NAS_OK, "mbv2: %s", nas_errmsg(ctx));
    if (m != NULL) {
        check_model(ctx, m, 16, 1, 0, "mobilenet-v2 x0.5");
    }
    const char *spaces[3] = {"darts", "mbnet", "nasrl"};
    for (int k = 0; k < 3; k++) {
        nas_space *s = NULL;
        nas_arch a;
        m = NULL;
        nas_build_opts o = {.shape = shape, .channels_mult = 0.5, .cells = 2};
        CHECK(nas_space_open(ctx, spaces[k], &s) == NAS_OK, "%s: %s", spaces[k], nas_errmsg(ctx));
        if (s != NULL && nas_space_decode(ctx, s, "default", &a) == NAS_OK &&
            nas_space_build(ctx, s, &a, &o, &m) == NAS_OK) {
            check_model(ctx, m, 16, 0, 0, spaces[k]);
        } else {
            CHECK(0, "%s: %s", spaces[k], nas_errmsg(ctx));
        }
        nas_space_free(s);
    }
    nas_ctx_free(ctx);
}

/* Rules on small graphs: a conv read by an op without blocked kernels (max_pool), or read as
 * the graph's output, stays plain; the same conv read by batch norm and a ReLU is blocked. */
static void test_planner_rules(void) {
    nas_ctx *ctx = nas_ctx_new();
    nas_params *p = nas_params_new(ctx);
    nas_param_id w = -1;
    const int64_t ws[4] = {16, 16, 3, 3};
    CHECK(nas_params_add(p, "w", 4, ws, NAS_INIT_KAIMING_NORMAL_FAN_OUT, NAS_PARAM_TRAINABLE, 0,
                         &w) == NAS_OK,
          "%s", nas_errmsg(ctx));
    nas_params_init(p, 1);
    const int64_t xs[4] = {2, 16, 8, 8};
    float *x = calloc(2 * 16 * 8 * 8, sizeof(float));
    for (int k = 0; k < 3; k++) {
        nas_graph *g = nas_graph_new(ctx);
        nas_graph_set_blocked_layouts(g, 1);
        nas_tensor *in = nas_input_grad(g, 4, xs, x);
        nas_tensor *c = nas_conv2d(g, nas_relu(g, in), nas_param(g, p, w), NULL,
                                   &(nas_conv_args){.pad_h = 1, .pad_w = 1});
        nas_tensor *out = NULL;
        if (k == 0) {
            out = nas_max_pool(g, c, 3, 1, 1); /* no blocked max pool */
        } else if (k == 1) {
            out = c; /* the graph's output */
        } else {
            out = nas_global_avg_pool(
                g, nas_relu(g, nas_batch_norm(g, c, NULL, NULL, NULL, NULL, 0.1f, 1e-5f)));
        }
        nas_tensor *loss = nas_sum_all(g, out);
        CHECK(nas_graph_forward(g) == NAS_OK, "case %d: %s", k, nas_errmsg(ctx));
        CHECK(nas_graph_backward(g, loss) == NAS_OK, "case %d: %s", k, nas_errmsg(ctx));
        CHECK((c->block != 0) == (k == 2), "case %d: conv block %d", k, (int)c->block);
        CHECK(in->block == 0 && loss->block == 0, "case %d: inputs and outputs stay plain", k);
        CHECK(rule_violations(g) == 0, "case %d: reader rules", k);
        nas_graph_free(g);
    }
    free(x);
    nas_params_free(p);
    nas_ctx_free(ctx);
}

/* relu(bn(conv)) and relu(bn(conv) + bn(conv)) fold into the ReLU and give the values of the
 * same graph kept unfolded (the batch norms' outputs also read by the loss), bit for bit, with
 * the same gradients; running statistics still update. */
static void test_folds(void) {
    nas_ctx *ctx = nas_ctx_new();
    nas_params *p = nas_params_new(ctx);
    nas_param_id w[2] = {-1, -1}, rm = -1, rv = -1;
    const int64_t ws[4] = {16, 16, 3, 3}, cs[1] = {16};
    for (int k = 0; k < 2; k++) {
        CHECK(nas_params_add(p, k ? "w1" : "w0", 4, ws, NAS_INIT_KAIMING_NORMAL_FAN_OUT,
                             NAS_PARAM_TRAINABLE, 0, &w[k]) == NAS_OK,
              "%s", nas_errmsg(ctx));
    }
    CHECK(nas_params_add(p, "rm", 1, cs, NAS_INIT_ZEROS, NAS_PARAM_BUFFER, 0, &rm) == NAS_OK &&
              nas_params_add(p, "rv", 1, cs, NAS_INIT_ONES, NAS_PARAM_BUFFER, 0, &rv) == NAS_OK,
          "%s", nas_errmsg(ctx));
    nas_params_init(p, 3);
    const int64_t xs[4] = {2, 16, 8, 8}, n_x = 2 * 16 * 8 * 8;
    float *x = malloc((size_t)n_x * sizeof(float));
    for (int64_t i = 0; i < n_x; i++) {
        x[i] = (float)sin(0.7 * (double)i) + 0.1f;
    }
    for (int two = 0; two < 2; two++) {
        float *y[2] = {NULL, NULL}, *dx[2] = {NULL, NULL}, *stats[2] = {NULL, NULL};
        int64_t folded[2] = {0, 0};
        for (int keep = 0; keep < 2; keep++) {
            nas_params_zero_grad(p);
            float *mean = nas_params_data(p) + nas_param_offset(p, rm);
            float *var = nas_params_data(p) + nas_param_offset(p, rv);
            for (int c = 0; c < 16; c++) {
                mean[c] = 0.0f, var[c] = 1.0f; /* the same start for both runs */
            }
            nas_graph *g = nas_graph_new(ctx);
            nas_graph_set_training(g, 1);
            nas_graph_set_blocked_layouts(g, 1);
            nas_tensor *in = nas_input_grad(g, 4, xs, x);
            const nas_conv_args a = {.pad_h = 1, .pad_w = 1};
            nas_tensor *bn[2];
            for (int k = 0; k <= two; k++) {
                nas_tensor *c = nas_conv2d(g, in, nas_param(g, p, w[k]), NULL, &a);
                bn[k] = nas_batch_norm(g, c, NULL, NULL, k ? NULL : nas_param(g, p, rm),
                                       k ? NULL : nas_param(g, p, rv), 0.1f, 1e-5f);
            }
            nas_tensor *r = nas_relu(g, two ? nas_sum(g, 2, bn) : bn[0]);
            nas_tensor *loss = nas_sum_all(g, nas_global_avg_pool(g, r));
            if (keep) { /* a second reader of the norm's output keeps it unfolded (in the same
                         * layouts: a ReLU and a global pool, as the first) */
                nas_tensor *other = nas_global_avg_pool(g, nas_relu(g, bn[0]));
                nas_tensor *l2[2] = {loss, nas_scale(g, nas_sum_all(g, other), 0.0f)};
                loss = nas_sum(g, 2, l2);
            }
            CHECK(nas_graph_forward(g) == NAS_OK && nas_graph_backward(g, loss) == NAS_OK,
                  "folds: %s", nas_errmsg(ctx));
            for (int64_t i = 0; i < g->n_nodes; i++) {
                folded[keep] += nas_graph_node(g, i)->folded_into != NULL;
            }
            y[keep] = copy_of(nas_tensor_data(r), nas_tensor_numel(r));
            dx[keep] = copy_of(nas_tensor_grad(in), n_x);
            stats[keep] = malloc(32 * sizeof(float));
            memcpy(stats[keep], mean, 16 * sizeof(float));
            memcpy(stats[keep] + 16, var, 16 * sizeof(float));
            nas_graph_free(g);
        }
        const size_t ny = (size_t)2 * 16 * 8 * 8 * sizeof(float);
        CHECK(folded[0] == (two ? 3 : 1) && folded[1] == 0, "%s: %lld folded, %lld kept",
              two ? "sum of two" : "one norm", (long long)folded[0], (long long)folded[1]);
        CHECK(memcmp(y[0], y[1], ny) == 0, "%s: folded ReLU output differs",
              two ? "sum of two" : "one norm");
        CHECK(normwise(dx[0], dx[1], n_x) < 1e-6, "%s: input gradient differs",
              two ? "sum of two" : "one norm");
        CHECK(memcmp(stats[0], stats[1], 32 * sizeof(float)) == 0 && stats[0][0] != 0.0f,
              "%s: running statistics differ or did not update", two ? "sum of two" : "one norm");
        for (int k = 0; k < 2; k++) {
            free(y[k]);
            free(dx[k]);
            free(stats[k]);
        }
    }
    free(x);
    nas_params_free(p);
    nas_ctx_free(ctx);
}

int main(void) {
#ifdef LAYOUT_TEST_AVX2
    /* before any primitive exists: oneDNN then picks nChw8c */
    if (dnnl_set_max_cpu_isa(dnnl_cpu_isa_avx2) != dnnl_success) {
        printf("oneDNN refused the AVX2 limit\n");
    }
#endif
    RUN_TEST(test_nb201_allconv);
    RUN_TEST(test_nb201_mixed_ops);
    RUN_TEST(test_nb201_odd_sizes);
    RUN_TEST(test_other_networks);
    RUN_TEST(test_planner_rules);
    RUN_TEST(test_folds);
    RUN_TEST(test_gradient_reuse);
#ifdef LAYOUT_TEST_AVX2
    return check_report("test_layout_avx2");
#else
    return check_report("test_layout");
#endif
}
