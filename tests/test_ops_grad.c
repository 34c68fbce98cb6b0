/* test_ops_grad.c - every op family of act.c, norm.c, pool.c, shape.c, loss.c and lstm.c, and
 * basic.c's relu_frozen: analytic backward against central finite differences on random odd
 * shapes (the harness and how it avoids kinks: fd_check.h); and a small network whose gradients
 * have several writers (shared readers, a view, a repeated source), where the first writer of each
 * stores instead of adding, or one gradient is another's (autograd/exec.c). */
#include "fd_check.h"
#include "ops/ops_int.h"

#include <math.h>
#include <string.h>

/* ---- builders */

typedef nas_tensor *(*unary_fn)(nas_graph *, nas_tensor *);

static nas_tensor *b_unary(nas_graph *g, nas_tensor **in, const void *arg) {
    return (*(const unary_fn *)arg)(g, in[0]);
}

static nas_tensor *b_dropout(nas_graph *g, nas_tensor **in, const void *arg) {
    (void)arg;
    return nas_dropout(g, in[0], 0.3f);
}

typedef struct bn_arg {
    int affine, running;
    float momentum;
} bn_arg;

/* inputs: x, gamma, beta, running_mean, running_var */
static nas_tensor *b_bn(nas_graph *g, nas_tensor **in, const void *arg) {
    const bn_arg *a = arg;
    return nas_batch_norm(g, in[0], a->affine ? in[1] : NULL, a->affine ? in[2] : NULL,
                          a->running ? in[3] : NULL, a->running ? in[4] : NULL, a->momentum, 1e-5f);
}

typedef struct pool_arg {
    int max, k, stride, pad, count_pad;
} pool_arg;

static nas_tensor *b_pool(nas_graph *g, nas_tensor **in, const void *arg) {
    const pool_arg *a = arg;
    return a->max ? nas_max_pool(g, in[0], a->k, a->stride, a->pad)
                  : nas_avg_pool(g, in[0], a->k, a->stride, a->pad, a->count_pad);
}

static nas_tensor *b_gap(nas_graph *g, nas_tensor **in, const void *arg) {
    (void)arg;
    return nas_global_avg_pool(g, in[0]);
}

static nas_tensor *b_wsum(nas_graph *g, nas_tensor **in, const void *arg) {
    (void)arg;
    return nas_weighted_sum(g, 3, in, in[3]);
}

static nas_tensor *b_concat(nas_graph *g, nas_tensor **in, const void *arg) {
    (void)arg;
    return nas_concat(g, 3, in);
}

static nas_tensor *b_mul(nas_graph *g, nas_tensor **in, const void *arg) {
    (void)arg;
    return nas_mul(g, in[0], in[1]);
}

static nas_tensor *b_shuffle(nas_graph *g, nas_tensor **in, const void *arg) {
    (void)arg;
    return nas_channel_shuffle(g, in[0], 3);
}

static nas_tensor *b_pad(nas_graph *g, nas_tensor **in, const void *arg) {
    (void)arg;
    return nas_pad_channels(g, in[0], 7);
}

/* relu_frozen (grasp's ReLU with a fixed mask): y = x m, the mask a leaf without gradient */
static nas_tensor *b_relu_frozen(nas_graph *g, nas_tensor **in, const void *arg) {
    (void)arg;
    nas_tensor *r = nas_relu(g, in[0]);
    if (r != NULL) {
        nas_relu_freeze(r, in[1]);
    }
    return r;
}

/* zero contributes nothing: y = x + zero(x) must have dy/dx = 1 */
/* a = relu(x) read by two convs and a sigmoid; s = view(b) + c + b + c + sigmoid(a) (the
 * sigmoid's gradient is the sum's own, grad_host); y = tanh(s) */
static nas_tensor *b_shared(nas_graph *g, nas_tensor **in, const void *arg) {
    (void)arg;
    nas_conv_args pad = {0};
    pad.pad_h = pad.pad_w = 1;
    nas_tensor *a = nas_relu(g, in[0]);
    nas_tensor *b = nas_conv2d(g, a, in[1], NULL, &pad), *c = nas_conv2d(g, a, in[2], NULL, &pad);
    nas_tensor *parts[5] = {nas_identity(g, b), c, b, c, nas_sigmoid(g, a)};
    return nas_tanh(g, nas_sum(g, 5, parts));
}

static nas_tensor *b_zero(nas_graph *g, nas_tensor **in, const void *arg) {
    (void)arg;
    return nas_add(g, in[0], nas_zero(g, in[0], 1));
}

static nas_tensor *b_softmax(nas_graph *g, nas_tensor **in, const void *arg) {
    (void)arg;
    return nas_softmax(g, in[0]);
}

static const int32_t ce_labels[5] = {3, 0, 6, 2, 6};

static nas_tensor *b_ce(nas_graph *g, nas_tensor **in, const void *arg) {
    return nas_softmax_cross_entropy(g, in[0], nas_labels(g, 5, ce_labels), *(const float *)arg);
}

static nas_tensor *b_kl(nas_graph *g, nas_tensor **in, const void *arg) {
    return nas_kl_div(g, in[0], in[1], *(const float *)arg);
}

/* inputs: x, h, c, w_ih, w_hh, b; output concat(h', c') so both halves are checked */
static nas_tensor *b_lstm(nas_graph *g, nas_tensor **in, const void *arg) {
    const int bias = *(const int *)arg;
    nas_tensor *c_new = NULL;
    nas_tensor *h_new =
        nas_lstm_cell(g, in[0], in[1], in[2], in[3], in[4], bias ? in[5] : NULL, &c_new);
    nas_tensor *both[2] = {h_new, c_new};
    return nas_concat(g, 2, both);
}

/* ---- cases */

static const float kinks_relu6[] = {0.0f, 6.0f}, kinks_h[] = {-3.0f, 3.0f}, kinks_0[] = {0.0f};

static void test_activations(void) {
    static const unary_fn fns[] = {nas_relu6, nas_hswish, nas_hsigmoid, nas_sigmoid,
                                   nas_swish, nas_tanh,   nas_relu};
    static const char *names[] = {"relu6", "hswish", "hsigmoid", "sigmoid",
                                  "swish", "tanh",   "relu"};
    const float *kinks[] = {kinks_relu6, kinks_h, kinks_h, NULL, NULL, NULL, kinks_0};
    const int n_kinks[] = {2, 2, 2, 0, 0, 0, 1};
    const float lo[] = {-2, -5, -5, -4, -4, -3, -2}, hi[] = {8, 5, 5, 4, 4, 3, 2};
    for (int i = 0; i < 7; i++) {
        fd_case c = {names[i], 1,          {IN(X4(3, 5, 7, 9), 1, lo[i], hi[i])},
                     b_unary,  &fns[i],    0,
                     kinks[i], n_kinks[i], 5e-4};
        run_case(&c);
    }
    fd_case d = {"dropout", 1, {IN(X4(3, 5, 7, 9), 1, -2, 2)}, b_dropout, NULL, 1, NULL, 0, 5e-4};
    run_case(&d);
}

static void test_batch_norm(void) {
    static const bn_arg args[] = {{1, 1, 0.1f}, {0, 1, 0.1f}, {1, 0, 0.1f}, {1, 1, -1.0f}};
    static const char *names[] = {"bn_train_affine", "bn_train_plain", "bn_train_no_running",
                                  "bn_train_cumulative"};
    for (int i = 0; i < 4; i++) {
        fd_case c = {names[i],
                     5,
                     {IN(X4(3, 5, 7, 9), 1, -1, 3), IN(V1(5), 1, 0.5f, 1.5f), IN(V1(5), 1, -1, 1),
                      IN(V1(5), 0, -1, 1), IN(V1(5), 0, 0.5f, 2)},
                     b_bn,
                     &args[i],
                     1,
                     NULL,
                     0,
                     1e-3};
        run_case(&c);
    }
    /* eval mode with running statistics, and eval without them (batch statistics) */
    static const bn_arg eval_args[] = {{1, 1, 0.1f}, {1, 0, 0.1f}};
    fd_case e = {"bn_eval",
                 5,
                 {IN(X4(3, 5, 7, 9), 1, -1, 3), IN(V1(5), 1, 0.5f, 1.5f), IN(V1(5), 1, -1, 1),
                  IN(V1(5), 0, -1, 1), IN(V1(5), 0, 0.5f, 2)},
                 b_bn,
                 &eval_args[0],
                 0,
                 NULL,
                 0,
                 5e-4};
    run_case(&e);
    e.name = "bn_eval_no_running";
    e.arg = &eval_args[1];
    run_case(&e);
    /* [N, C] input (BN after a linear layer) */
    fd_case f = {"bn_2d",
                 5,
                 {IN(V2(7, 5), 1, -1, 3), IN(V1(5), 1, 0.5f, 1.5f), IN(V1(5), 1, -1, 1),
                  IN(V1(5), 0, -1, 1), IN(V1(5), 0, 0.5f, 2)},
                 b_bn,
                 &args[0],
                 1,
                 NULL,
                 0,
                 1e-3};
    run_case(&f);
}

static void test_pools(void) {
    static const pool_arg args[] = {
        {1, 3, 2, 1, 0}, {1, 2, 2, 0, 0}, {1, 3, 1, 1, 0},                  /* max */
        {0, 3, 1, 1, 0}, {0, 3, 1, 1, 1}, {0, 2, 2, 0, 0},                  /* avg, fast paths */
        {0, 3, 2, 1, 0}, {0, 3, 2, 1, 1}, {0, 5, 2, 2, 0}, {0, 4, 3, 1, 1}, /* avg, naive */
    };
    static const char *names[] = {
        "max_k3s2p1", "max_k2s2",         "max_k3s1p1",     "avg_k3s1p1_nopad", "avg_k3s1p1_pad",
        "avg_k2s2",   "avg_k3s2p1_nopad", "avg_k3s2p1_pad", "avg_k5s2p2_nopad", "avg_k4s3p1_pad"};
    for (int i = 0; i < 10; i++) {
        fd_case c = {names[i], 1,        {{X4(3, 5, 7, 9), 1, -2, 2, args[i].max}},
                     b_pool,   &args[i], 0,
                     NULL,     0,        5e-4};
        run_case(&c);
    }
    fd_case gap = {
        "global_avg_pool", 1, {IN(X4(3, 5, 7, 9), 1, -2, 2)}, b_gap, NULL, 0, NULL, 0, 5e-4};
    run_case(&gap);
}

static void test_shape_ops(void) {
    fd_case ws = {"weighted_sum",
                  4,
                  {IN(X4(3, 5, 7, 9), 1, -2, 2), IN(X4(3, 5, 7, 9), 1, -2, 2),
                   IN(X4(3, 5, 7, 9), 1, -2, 2), IN(V1(3), 1, -1, 1)},
                  b_wsum,
                  NULL,
                  0,
                  NULL,
                  0,
                  5e-4};
    run_case(&ws);
    fd_case cat = {
        "concat",
        3,
        {IN(X4(3, 2, 5, 7), 1, -2, 2), IN(X4(3, 5, 5, 7), 1, -2, 2), IN(X4(3, 1, 5, 7), 1, -2, 2)},
        b_concat,
        NULL,
        0,
        NULL,
        0,
        5e-4};
    run_case(&cat);
    fd_case mul = {"mul_same", 2,    {IN(X4(3, 5, 7, 9), 1, -2, 2), IN(X4(3, 5, 7, 9), 1, -2, 2)},
                   b_mul,      NULL, 0,
                   NULL,       0,    5e-4};
    run_case(&mul);
    fd_case mul2 = {"mul_bcast_nc", 2,    {IN(X4(3, 5, 7, 9), 1, -2, 2), IN(V2(3, 5), 1, -2, 2)},
                    b_mul,          NULL, 0,
                    NULL,           0,    5e-4};
    run_case(&mul2);
    fd_case mul4 = {"mul_bcast_nc11",
                    2,
                    {IN(X4(3, 5, 7, 9), 1, -2, 2), IN(X4(3, 5, 1, 1), 1, -2, 2)},
                    b_mul,
                    NULL,
                    0,
                    NULL,
                    0,
                    5e-4};
    run_case(&mul4);
    fd_case sh = {
        "channel_shuffle", 1, {IN(X4(3, 9, 5, 7), 1, -2, 2)}, b_shuffle, NULL, 0, NULL, 0, 5e-4};
    run_case(&sh);
    fd_case pad = {
        "pad_channels", 1, {IN(X4(3, 5, 5, 7), 1, -2, 2)}, b_pad, NULL, 0, NULL, 0, 5e-4};
    run_case(&pad);
    fd_case zero = {"zero", 1, {IN(X4(3, 5, 5, 7), 1, -2, 2)}, b_zero, NULL, 0, NULL, 0, 5e-4};
    run_case(&zero);
    fd_case frozen = {"relu_frozen",
                      2,
                      {IN(X4(3, 5, 5, 7), 1, -2, 2), IN(X4(3, 5, 5, 7), 0, 0, 1)},
                      b_relu_frozen,
                      NULL,
                      0,
                      NULL,
                      0,
                      5e-4};
    run_case(&frozen);
}

static void test_losses(void) {
    fd_case sm = {"softmax", 1, {IN(V2(5, 7), 1, -3, 3)}, b_softmax, NULL, 0, NULL, 0, 5e-4};
    run_case(&sm);
    static const float eps[] = {0.0f, 0.1f}, temps[] = {1.0f, 4.0f};
    for (int i = 0; i < 2; i++) {
        fd_case ce = {
            i ? "ce_smooth" : "ce", 1, {IN(V2(5, 7), 1, -3, 3)}, b_ce, &eps[i], 0, NULL, 0, 5e-4};
        run_case(&ce);
        fd_case kl = {i ? "kl_t4" : "kl_t1",
                      2,
                      {IN(V2(5, 7), 1, -3, 3), IN(V2(5, 7), 0, -3, 3)},
                      b_kl,
                      &temps[i],
                      0,
                      NULL,
                      0,
                      5e-4};
        run_case(&kl);
    }
}

static void test_lstm(void) {
    static const int with_bias = 1, no_bias = 0;
    /* N 3, input 5, hidden 4 */
    fd_case c = {"lstm_cell",
                 6,
                 {IN(V2(3, 5), 1, -1, 1), IN(V2(3, 4), 1, -1, 1), IN(V2(3, 4), 1, -1, 1),
                  IN(V2(16, 5), 1, -1, 1), IN(V2(16, 4), 1, -1, 1), IN(V1(16), 1, -1, 1)},
                 b_lstm,
                 &with_bias,
                 0,
                 NULL,
                 0,
                 5e-4};
    run_case(&c);
    c.name = "lstm_cell_no_bias";
    c.n_in = 5;
    c.arg = &no_bias;
    run_case(&c);
}

/* The conv backends store dx differently (oneDNN's data pass, the naive kernels after clearing);
 * the harness's contexts read NAS_CONV_BACKEND when they make their first convolution. */
static void test_shared_gradients(void) {
    const char *saved = getenv("NAS_CONV_BACKEND");
    for (int i = 0; i < 2; i++) {
        setenv("NAS_CONV_BACKEND", i == 0 ? "auto" : "naive", 1);
        fd_case c = {i == 0 ? "shared_readers" : "shared_readers_naive_conv",
                     3,
                     {IN(X4(2, 16, 5, 7), 1, -2, 2), IN(X4(16, 16, 3, 3), 1, -0.12f, 0.12f),
                      IN(X4(16, 16, 3, 3), 1, -0.12f, 0.12f)},
                     b_shared,
                     NULL,
                     0,
                     kinks_0,
                     1,
                     2e-3}; /* float forward over 144-term sums: FD noise ~5e-4 */
        run_case(&c);
    }
    if (saved != NULL) {
        setenv("NAS_CONV_BACKEND", saved, 1);
    } else {
        unsetenv("NAS_CONV_BACKEND");
    }
}

int main(void) {
    RUN_TEST(test_activations);
    RUN_TEST(test_batch_norm);
    RUN_TEST(test_pools);
    RUN_TEST(test_shape_ops);
    RUN_TEST(test_losses);
    RUN_TEST(test_lstm);
    RUN_TEST(test_shared_gradients);
    return check_report("ops_grad");
}
