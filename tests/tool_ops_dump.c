/* tool_ops_dump.c - runs the ops of act.c, norm.c, pool.c, shape.c, loss.c and lstm.c on seeded
 * random inputs and writes inputs, outputs and gradients to a file that tests/py_ops_torch.py
 * reads and checks against PyTorch. Not a test by itself (built by mk/ops.mk).
 *
 * File format (little endian): records until the end of the file, each
 *   char case[32], char tensor[32], int32 ndim, int64 shape[ndim], float32 data[numel].
 * Gradients are of L = sum(r * y) with the dumped r (backward_from), or of the scalar loss.
 * Usage: tool_ops_dump OUT_FILE. Exit status 0 on success. */
#include "nascent.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static FILE *out;
static const char *case_name;
static nas_rng rng;
static int failures;

static void put(const char *name, int ndim, const int64_t *shape, const float *data) {
    char buf[32];
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        n *= shape[i];
    }
    memset(buf, 0, sizeof buf);
    strncpy(buf, case_name, sizeof buf - 1);
    fwrite(buf, 1, sizeof buf, out);
    memset(buf, 0, sizeof buf);
    strncpy(buf, name, sizeof buf - 1);
    fwrite(buf, 1, sizeof buf, out);
    const int32_t nd = ndim;
    fwrite(&nd, sizeof nd, 1, out);
    fwrite(shape, sizeof(int64_t), (size_t)ndim, out);
    fwrite(data, sizeof(float), (size_t)n, out);
}

static void put_t(const char *name, const nas_tensor *t, const float *data) {
    int64_t shape[4];
    for (int i = 0; i < nas_tensor_ndim(t); i++) {
        shape[i] = nas_tensor_dim(t, i);
    }
    put(name, nas_tensor_ndim(t), shape, data);
}

static void ok(nas_ctx *ctx, nas_status st, const char *what) {
    if (st != NAS_OK) {
        fprintf(stderr, "%s: %s: %s\n", case_name, what, nas_errmsg(ctx));
        failures++;
    }
}

/* An input leaf with random data (kept alive until the graph is freed by the caller). */
static nas_tensor *rand_in(nas_graph *g, int ndim, const int64_t *shape, float lo, float hi,
                           int grad, float **keep) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        n *= shape[i];
    }
    float *x = malloc((size_t)n * sizeof(float));
    nas_rng_fill_uniform(&rng, x, n, lo, hi);
    *keep = x;
    return grad ? nas_input_grad(g, ndim, shape, x) : nas_input(g, ndim, shape, x);
}

/* forward, then backward with a random seed r for y; dumps r and y */
static void run_with_seed(nas_ctx *ctx, nas_graph *g, nas_tensor *y) {
    ok(ctx, nas_graph_status(g), "build");
    ok(ctx, nas_graph_forward(g), "forward");
    const int64_t n = nas_tensor_numel(y);
    float *r = malloc((size_t)n * sizeof(float));
    nas_rng_fill_uniform(&rng, r, n, -1, 1);
    ok(ctx, nas_graph_backward_from(g, y, r), "backward");
    put_t("r", y, r);
    put_t("y", y, nas_tensor_data(y));
    free(r);
}

#define MAXK 8

typedef struct scope {
    nas_ctx *ctx;
    nas_graph *g;
    float *keep[MAXK];
    int n_keep;
} scope;

static scope open_case(const char *name, int training) {
    case_name = name;
    scope s = {nas_ctx_new(), NULL, {0}, 0};
    s.g = nas_graph_new(s.ctx);
    nas_graph_set_training(s.g, training);
    return s;
}

static nas_tensor *in(scope *s, int ndim, const int64_t *shape, float lo, float hi, int grad) {
    return rand_in(s->g, ndim, shape, lo, hi, grad, &s->keep[s->n_keep++]);
}

static void close_case(scope *s) {
    for (int i = 0; i < s->n_keep; i++) {
        free(s->keep[i]);
    }
    nas_graph_free(s->g);
    nas_ctx_free(s->ctx);
}

static void dump_in(const char *name, const nas_tensor *t) {
    put_t(name, t, nas_tensor_data(t));
}

static void dump_grad(const char *name, const nas_tensor *t) {
    put_t(name, t, nas_tensor_grad(t));
}

/* ---- cases */

static void bn_case(const char *name, int training, int affine) {
    scope s = open_case(name, training);
    const int64_t xs[4] = {4, 6, 5, 7}, cs[1] = {6};
    nas_tensor *x = in(&s, 4, xs, -1.5f, 4.0f, 1);
    nas_tensor *gm = in(&s, 1, cs, 0.5f, 1.5f, 1), *bt = in(&s, 1, cs, -1, 1, 1);
    nas_tensor *rm = in(&s, 1, cs, -1, 1, 0), *rv = in(&s, 1, cs, 0.5f, 2, 0);
    dump_in("x", x), dump_in("gamma", gm), dump_in("beta", bt);
    dump_in("rm0", rm), dump_in("rv0", rv);
    nas_tensor *y =
        nas_batch_norm(s.g, x, affine ? gm : NULL, affine ? bt : NULL, rm, rv, 0.1f, 1e-5f);
    run_with_seed(s.ctx, s.g, y);
    dump_in("rm1", rm), dump_in("rv1", rv);
    dump_grad("dx", x);
    if (affine) {
        dump_grad("dgamma", gm), dump_grad("dbeta", bt);
    }
    close_case(&s);
}

/* three training forwards with momentum -1 (cumulative average) */
static void bn_cumulative_case(void) {
    scope s = open_case("bn_cumulative", 1);
    nas_graph_set_seed(s.g, 3);
    const int64_t xs[4] = {4, 6, 5, 7}, cs[1] = {6};
    nas_tensor *x = in(&s, 4, xs, -1, 1, 0);
    nas_tensor *rm = in(&s, 1, cs, -1, 1, 0), *rv = in(&s, 1, cs, 0.5f, 2, 0);
    nas_batch_norm(s.g, x, NULL, NULL, rm, rv, -1.0f, 1e-5f);
    float *xd = nas_tensor_data(x);
    const char *names[3] = {"x0", "x1", "x2"};
    for (int k = 0; k < 3; k++) {
        nas_rng_fill_normal(&rng, xd, 4 * 6 * 5 * 7, (float)k - 1.0f, 1.0f + 0.5f * (float)k);
        dump_in(names[k], x);
        ok(s.ctx, nas_graph_forward(s.g), "forward");
    }
    dump_in("rm", rm), dump_in("rv", rv);
    close_case(&s);
}

static void pool_case(const char *name, int max, int k, int stride, int pad, int count_pad) {
    scope s = open_case(name, 0);
    const int64_t xs[4] = {3, 5, 9, 11};
    nas_tensor *x = in(&s, 4, xs, -2, 2, 1);
    dump_in("x", x);
    nas_tensor *y = k == 0 ? nas_global_avg_pool(s.g, x)
                    : max  ? nas_max_pool(s.g, x, k, stride, pad)
                           : nas_avg_pool(s.g, x, k, stride, pad, count_pad);
    run_with_seed(s.ctx, s.g, y);
    dump_grad("dx", x);
    close_case(&s);
}

static void unary_case(const char *name, nas_tensor *(*fn)(nas_graph *, nas_tensor *)) {
    scope s = open_case(name, 0);
    const int64_t xs[2] = {40, 25};
    nas_tensor *x = in(&s, 2, xs, -7, 8, 1);
    dump_in("x", x);
    nas_tensor *y = fn(s.g, x);
    run_with_seed(s.ctx, s.g, y);
    dump_grad("dx", x);
    close_case(&s);
}

static void ce_case(const char *name, float eps) {
    scope s = open_case(name, 0);
    const int64_t zs[2] = {6, 10};
    nas_tensor *z = in(&s, 2, zs, -4, 4, 1);
    int32_t labels[6];
    float labels_f[6];
    for (int i = 0; i < 6; i++) {
        labels[i] = (int32_t)nas_rng_below(&rng, 10);
        labels_f[i] = (float)labels[i];
    }
    dump_in("z", z);
    const int64_t ls[1] = {6}, one[1] = {1};
    put("labels", 1, ls, labels_f);
    put("eps", 1, one, &eps);
    nas_tensor *loss = nas_softmax_cross_entropy(s.g, z, nas_labels(s.g, 6, labels), eps);
    ok(s.ctx, nas_graph_status(s.g), "build");
    ok(s.ctx, nas_graph_forward(s.g), "forward");
    ok(s.ctx, nas_graph_backward(s.g, loss), "backward");
    dump_in("loss", loss);
    dump_grad("dz", z);
    close_case(&s);
}

static void kl_case(float T) {
    scope s = open_case(T == 1.0f ? "kl_t1" : "kl_t4", 0);
    const int64_t zs[2] = {6, 10}, one[1] = {1};
    nas_tensor *st = in(&s, 2, zs, -4, 4, 1), *te = in(&s, 2, zs, -4, 4, 1);
    dump_in("s", st), dump_in("t", te);
    put("T", 1, one, &T);
    nas_tensor *loss = nas_kl_div(s.g, st, te, T);
    ok(s.ctx, nas_graph_status(s.g), "build");
    ok(s.ctx, nas_graph_forward(s.g), "forward");
    ok(s.ctx, nas_graph_backward(s.g, loss), "backward");
    dump_in("loss", loss);
    dump_grad("ds", st);
    dump_grad("dt", te); /* must stay zero */
    close_case(&s);
}

static void lstm_case(void) {
    scope s = open_case("lstm_cell", 0);
    const int64_t xs[2] = {3, 5}, hs[2] = {3, 4}, wi[2] = {16, 5}, wh[2] = {16, 4}, bs[1] = {16};
    nas_tensor *x = in(&s, 2, xs, -1, 1, 1), *h = in(&s, 2, hs, -1, 1, 1);
    nas_tensor *c = in(&s, 2, hs, -1, 1, 1), *w_ih = in(&s, 2, wi, -0.8f, 0.8f, 1);
    nas_tensor *w_hh = in(&s, 2, wh, -0.8f, 0.8f, 1), *b = in(&s, 1, bs, -0.5f, 0.5f, 1);
    dump_in("x", x), dump_in("h", h), dump_in("c", c);
    dump_in("w_ih", w_ih), dump_in("w_hh", w_hh), dump_in("b", b);
    nas_tensor *c_new = NULL;
    nas_tensor *h_new = nas_lstm_cell(s.g, x, h, c, w_ih, w_hh, b, &c_new);
    nas_tensor *both[2] = {h_new, c_new};
    run_with_seed(s.ctx, s.g, nas_concat(s.g, 2, both)); /* y = [h' | c'] along dim 1 */
    dump_grad("dx", x), dump_grad("dh", h), dump_grad("dc", c);
    dump_grad("dw_ih", w_ih), dump_grad("dw_hh", w_hh), dump_grad("db", b);
    close_case(&s);
}

static void softmax_case(void) {
    scope s = open_case("softmax", 0);
    const int64_t xs[2] = {5, 7};
    nas_tensor *x = in(&s, 2, xs, -5, 5, 1);
    dump_in("x", x);
    run_with_seed(s.ctx, s.g, nas_softmax(s.g, x));
    dump_grad("dx", x);
    close_case(&s);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: tool_ops_dump OUT_FILE\n");
        return 2;
    }
    out = fopen(argv[1], "wb");
    if (out == NULL) {
        perror(argv[1]);
        return 1;
    }
    rng = nas_rng_make(2024, 0);
    bn_case("bn_train_affine", 1, 1);
    bn_case("bn_train_plain", 1, 0);
    bn_case("bn_eval", 0, 1);
    bn_cumulative_case();
    pool_case("max_k3s2p1", 1, 3, 2, 1, 0);
    pool_case("max_k2s2p0", 1, 2, 2, 0, 0);
    pool_case("avg_k3s1p1_c0", 0, 3, 1, 1, 0);
    pool_case("avg_k3s1p1_c1", 0, 3, 1, 1, 1);
    pool_case("avg_k3s2p1_c0", 0, 3, 2, 1, 0);
    pool_case("avg_k3s2p1_c1", 0, 3, 2, 1, 1);
    pool_case("avg_k2s2p0_c0", 0, 2, 2, 0, 0);
    pool_case("gap", 0, 0, 0, 0, 0);
    unary_case("relu6", nas_relu6);
    unary_case("hswish", nas_hswish);
    unary_case("hsigmoid", nas_hsigmoid);
    unary_case("sigmoid", nas_sigmoid);
    unary_case("swish", nas_swish);
    unary_case("tanh", nas_tanh);
    softmax_case();
    ce_case("ce", 0.0f);
    ce_case("ce_smooth", 0.1f);
    kl_case(1.0f);
    kl_case(4.0f);
    lstm_case();
    if (fclose(out) != 0) {
        perror(argv[1]);
        return 1;
    }
    return failures == 0 ? 0 : 1;
}
