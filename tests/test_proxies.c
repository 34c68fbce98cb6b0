/* test_proxies.c - the zero-cost proxy driver: synflow and grad_norm against closed forms on a
 * small two-layer perceptron, synflow through the mobile activations and a squeeze-excite gate
 * against finite differences, reproducibility, the model left unchanged, flat workspace memory
 * across architectures, and clear errors on bad input. The comparison of every proxy with a
 * PyTorch implementation on NB201 networks is tests/py_proxies_torch.py. */
#include "check.h"
#include "nascent.h"
#include "evaluators/proxies_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { F = 8, H = 5, K = 3 };

typedef struct mlp {
    nas_param_id w1, b1, w2, b2;
} mlp;

/* x [N, 2, 2, 2] -> reshape [N, 8] -> linear 8->5 -> relu -> linear 5->3 */
static nas_tensor *mlp_forward(void *impl, nas_graph *g, nas_params *p, nas_tensor *x) {
    const mlp *m = impl;
    const int64_t shape[2] = {nas_tensor_dim(x, 0), F};
    nas_tensor *h = nas_linear(g, nas_reshape(g, x, 2, shape), nas_param(g, p, m->w1),
                               nas_param(g, p, m->b1));
    return nas_linear(g, nas_relu(g, h), nas_param(g, p, m->w2), nas_param(g, p, m->b2));
}

static void mlp_free(nas_ctx *ctx, void *impl) {
    nas_free(ctx, impl, sizeof(mlp));
}

static const nas_model_vt mlp_vt = {.kind = "test-mlp", .forward = mlp_forward, .free = mlp_free};

static nas_model *make_mlp(nas_ctx *ctx, uint64_t seed) {
    nas_params *p = nas_params_new(ctx);
    mlp *m = nas_malloc(ctx, sizeof(mlp));
    const int64_t s1[2] = {H, F}, s2[2] = {K, H}, h = H, k = K;
    nas_params_add(p, "w1", 2, s1, NAS_INIT_TORCH_DEFAULT, 0, 0, &m->w1);
    nas_params_add(p, "b1", 1, &h, NAS_INIT_TORCH_BIAS, 0, F, &m->b1);
    nas_params_add(p, "w2", 2, s2, NAS_INIT_TORCH_DEFAULT, 0, 0, &m->w2);
    nas_params_add(p, "b2", 1, &k, NAS_INIT_TORCH_BIAS, 0, H, &m->b2);
    nas_params_init(p, seed);
    nas_model *model = NULL;
    const nas_model_shape shape = {2, 2, 2, K};
    CHECK(nas_model_new(ctx, &mlp_vt, m, p, shape, &model) == NAS_OK, "%s", nas_errmsg(ctx));
    return model;
}

static const float *pdata(nas_model *m, const char *name) {
    nas_params *p = nas_model_params(m);
    return nas_params_data(p) + nas_param_offset(p, nas_params_find(p, name));
}

/* synflow closed form: ones input, |W|, |b|: h = |W1| 1 + |b1| (all >= 0, ReLU passes it),
 * R = sum_o (|W2| h + |b2|)_o, dR/dW2[o][j] = h_j, dR/dW1[j][f] = sum_o |W2[o][j]|. */
static double synflow_closed_form(nas_model *m) {
    const float *w1 = pdata(m, "w1"), *b1 = pdata(m, "b1"), *w2 = pdata(m, "w2");
    double score = 0.0, hj[H];
    for (int j = 0; j < H; j++) {
        hj[j] = fabs(b1[j]);
        for (int f = 0; f < F; f++) {
            hj[j] += fabs(w1[j * F + f]);
        }
    }
    for (int j = 0; j < H; j++) {
        double col = 0.0;
        for (int o = 0; o < K; o++) {
            col += fabs(w2[o * H + j]);
            score += fabs(w2[o * H + j]) * hj[j];
        }
        for (int f = 0; f < F; f++) {
            score += fabs(w1[j * F + f]) * col;
        }
    }
    return score;
}

static void make_batch(float *x, int32_t *y, int n, uint64_t seed) {
    nas_rng r = nas_rng_make(seed, 0);
    nas_rng_fill_normal(&r, x, (int64_t)n * F, 0.0f, 1.0f);
    for (int i = 0; i < n; i++) {
        y[i] = (int32_t)nas_rng_below(&r, K);
    }
}

static void test_synflow_closed_form(void) {
    nas_ctx *ctx = nas_ctx_new();
    nas_proxies *pr = NULL;
    CHECK(nas_proxies_new(ctx, &pr) == NAS_OK, "%s", nas_errmsg(ctx));
    for (uint64_t seed = 1; seed <= 3; seed++) {
        nas_model *m = make_mlp(ctx, seed);
        double s[NAS_PROXY_COUNT] = {0};
        const uint32_t mask = (1u << NAS_PROXY_SYNFLOW) | (1u << NAS_PROXY_PARAMS) | (1u << NAS_PROXY_MACS);
        CHECK(nas_proxies_score(pr, m, NULL, NULL, 0, mask, s) == NAS_OK, "%s", nas_errmsg(ctx));
        const double want = synflow_closed_form(m);
        CHECK(fabs(s[NAS_PROXY_SYNFLOW] - want) <= 1e-12 * want, "synflow %.17g want %.17g",
              s[NAS_PROXY_SYNFLOW], want);
        CHECK(s[NAS_PROXY_PARAMS] == H * F + H + K * H + K, "params %g", s[NAS_PROXY_PARAMS]);
        CHECK(s[NAS_PROXY_MACS] == H * F + K * H, "macs %g", s[NAS_PROXY_MACS]);
        nas_model_free(m);
    }
    nas_proxies_free(pr);
    nas_ctx_free(ctx);
}

/* A squeeze-excite-like gated net with the mobile activations, for synflow's double pass:
 * x [N, 2, 2, 2] -> a = hswish(x); s = sigmoid(linear 2->2 (global_avg_pool(a))); t = a * s
 * (one factor per channel) -> reshape [N, 8] -> swish -> linear 8->3. */
typedef struct gated {
    nas_param_id g1, gb1, w2, b2;
} gated;

static nas_tensor *gated_forward(void *impl, nas_graph *g, nas_params *p, nas_tensor *x) {
    const gated *m = impl;
    nas_tensor *a = nas_hswish(g, x);
    nas_tensor *sc = nas_sigmoid(g, nas_linear(g, nas_global_avg_pool(g, a), nas_param(g, p, m->g1),
                                               nas_param(g, p, m->gb1)));
    const int64_t shape[2] = {nas_tensor_dim(x, 0), F};
    nas_tensor *r = nas_swish(g, nas_reshape(g, nas_mul(g, a, sc), 2, shape));
    return nas_linear(g, r, nas_param(g, p, m->w2), nas_param(g, p, m->b2));
}

static void gated_free(nas_ctx *ctx, void *impl) {
    nas_free(ctx, impl, sizeof(gated));
}

static const nas_model_vt gated_vt = {.kind = "test-gated", .forward = gated_forward, .free = gated_free};

static nas_model *make_gated(nas_ctx *ctx, uint64_t seed) {
    nas_params *p = nas_params_new(ctx);
    gated *m = nas_malloc(ctx, sizeof(gated));
    const int64_t s1[2] = {2, 2}, s2[2] = {K, F}, two = 2, k = K;
    nas_params_add(p, "g1", 2, s1, NAS_INIT_TORCH_DEFAULT, 0, 0, &m->g1);
    nas_params_add(p, "gb1", 1, &two, NAS_INIT_TORCH_BIAS, 0, 2, &m->gb1);
    nas_params_add(p, "w2", 2, s2, NAS_INIT_TORCH_DEFAULT, 0, 0, &m->w2);
    nas_params_add(p, "b2", 1, &k, NAS_INIT_TORCH_BIAS, 0, F, &m->b2);
    nas_params_init(p, seed);
    nas_model *model = NULL;
    const nas_model_shape shape = {2, 2, 2, K};
    CHECK(nas_model_new(ctx, &gated_vt, m, p, shape, &model) == NAS_OK, "%s", nas_errmsg(ctx));
    return model;
}

/* R of the gated net on a ones input with weights w (|.| taken here), written out in double. */
static double gated_R(const double *g1, const double *gb1, const double *w2, const double *b2) {
    const double a = 1.0 * (1.0 + 3.0) / 6.0; /* hswish(1) */
    double u[F], R = 0.0;
    for (int c = 0; c < 2; c++) {
        const double z = fabs(g1[c * 2]) * a + fabs(g1[c * 2 + 1]) * a + fabs(gb1[c]);
        const double t = a / (1.0 + exp(-z));
        for (int i = 0; i < 4; i++) {
            u[c * 4 + i] = t / (1.0 + exp(-t));
        }
    }
    for (int o = 0; o < K; o++) {
        R += fabs(b2[o]);
        for (int f = 0; f < F; f++) {
            R += fabs(w2[o * F + f]) * u[f];
        }
    }
    return R;
}

/* synflow = sum |W dR/dW| over the two linear weights, dR/dW by central differences of gated_R. */
static void test_synflow_mobile_activations(void) {
    nas_ctx *ctx = nas_ctx_new();
    nas_proxies *pr = NULL;
    CHECK(nas_proxies_new(ctx, &pr) == NAS_OK, "%s", nas_errmsg(ctx));
    for (uint64_t seed = 1; seed <= 3; seed++) {
        nas_model *m = make_gated(ctx, seed);
        double s[NAS_PROXY_COUNT] = {0};
        CHECK(nas_proxies_score(pr, m, NULL, NULL, 0, 1u << NAS_PROXY_SYNFLOW, s) == NAS_OK, "%s",
              nas_errmsg(ctx));
        double w[4][F * K];
        const char *names[4] = {"g1", "gb1", "w2", "b2"};
        const int sizes[4] = {4, 2, K * F, K};
        for (int t = 0; t < 4; t++) {
            for (int i = 0; i < sizes[t]; i++) {
                w[t][i] = fabs((double)pdata(m, names[t])[i]);
            }
        }
        double want = 0.0;
        for (int t = 0; t < 4; t += 2) { /* the weights, not the biases */
            for (int i = 0; i < sizes[t]; i++) {
                const double w0 = w[t][i], h = 1e-5;
                w[t][i] = w0 + h;
                const double rp = gated_R(w[0], w[1], w[2], w[3]);
                w[t][i] = w0 - h;
                const double rm = gated_R(w[0], w[1], w[2], w[3]);
                w[t][i] = w0;
                want += fabs(w0 * (rp - rm) / (2.0 * h));
            }
        }
        CHECK(fabs(s[NAS_PROXY_SYNFLOW] - want) <= 1e-7 * want, "synflow %.17g want %.17g",
              s[NAS_PROXY_SYNFLOW], want);
        nas_model_free(m);
    }
    nas_proxies_free(pr);
    nas_ctx_free(ctx);
}

/* grad_norm by central differences of the loss in double-checked float (independent of the
 * backward pass): dL/dw ~ (L(w + h) - L(w - h)) / 2h per weight. */
static double loss_at(nas_ctx *ctx, nas_model *m, float *x, int32_t *y, int n) {
    nas_graph *g = nas_graph_new(ctx);
    nas_graph_set_training(g, 1);
    const int64_t shape[4] = {n, 2, 2, 2};
    nas_tensor *loss = nas_softmax_cross_entropy(
        g, nas_model_forward(m, g, nas_input(g, 4, shape, x)), nas_labels(g, n, y), 0.0f);
    nas_graph_forward(g);
    const double l = nas_tensor_data(loss)[0];
    nas_graph_free(g);
    return l;
}

static void test_grad_norm_snip_fd(void) {
    nas_ctx *ctx = nas_ctx_new();
    nas_proxies *pr = NULL;
    CHECK(nas_proxies_new(ctx, &pr) == NAS_OK, "%s", nas_errmsg(ctx));
    nas_model *m = make_mlp(ctx, 9);
    enum { N = 6 };
    float x[N * F];
    int32_t y[N];
    make_batch(x, y, N, 5);
    double s[NAS_PROXY_COUNT] = {0};
    const uint32_t mask = (1u << NAS_PROXY_GRAD_NORM) | (1u << NAS_PROXY_SNIP);
    CHECK(nas_proxies_score(pr, m, x, y, N, mask, s) == NAS_OK, "%s", nas_errmsg(ctx));
    nas_params *p = nas_model_params(m);
    double norm = 0.0, snip = 0.0;
    const char *names[2] = {"w1", "w2"};
    for (int t = 0; t < 2; t++) {
        const nas_param_id id = nas_params_find(p, names[t]);
        float *w = nas_params_data(p) + nas_param_offset(p, id);
        double ss = 0.0;
        for (int64_t i = 0; i < nas_param_numel(p, id); i++) {
            const float w0 = w[i], h = 1e-2f;
            w[i] = w0 + h;
            const double lp = loss_at(ctx, m, x, y, N);
            w[i] = w0 - h;
            const double lm = loss_at(ctx, m, x, y, N);
            w[i] = w0;
            const double gi = (lp - lm) / (2.0 * h);
            ss += gi * gi;
            snip += fabs(gi * w0);
        }
        norm += sqrt(ss);
    }
    CHECK(fabs(s[NAS_PROXY_GRAD_NORM] - norm) <= 2e-3 * norm, "grad_norm %g fd %g",
          s[NAS_PROXY_GRAD_NORM], norm);
    CHECK(fabs(s[NAS_PROXY_SNIP] - snip) <= 2e-3 * snip, "snip %g fd %g", s[NAS_PROXY_SNIP], snip);
    nas_model_free(m);
    nas_proxies_free(pr);
    nas_ctx_free(ctx);
}

static void test_reproducible_and_unchanged(void) {
    nas_ctx *ctx = nas_ctx_new();
    nas_proxies *pr = NULL;
    CHECK(nas_proxies_new(ctx, &pr) == NAS_OK, "%s", nas_errmsg(ctx));
    nas_model *m = make_mlp(ctx, 4);
    enum { N = 8 };
    float x[N * F];
    int32_t y[N];
    make_batch(x, y, N, 6);
    nas_params *p = nas_model_params(m);
    const int64_t total = nas_params_total(p);
    float *before = malloc((size_t)total * sizeof(float));
    memcpy(before, nas_params_data(p), (size_t)total * sizeof(float));
    double a[NAS_PROXY_COUNT] = {0}, b[NAS_PROXY_COUNT] = {0};
    CHECK(nas_proxies_score(pr, m, x, y, N, NAS_PROXY_ALL, a) == NAS_OK, "%s", nas_errmsg(ctx));
    CHECK(memcmp(before, nas_params_data(p), (size_t)total * sizeof(float)) == 0,
          "scoring changed the parameters");
    const size_t arena = nas_graph_arena_bytes(pr->g);
    CHECK(nas_proxies_score(pr, m, x, y, N, NAS_PROXY_ALL, b) == NAS_OK, "%s", nas_errmsg(ctx));
    for (int i = 0; i < NAS_PROXY_COUNT; i++) {
        CHECK(a[i] == b[i] || (isnan(a[i]) && isnan(b[i])), "%s: %.17g then %.17g",
              nas_proxy_name((nas_proxy)i), a[i], b[i]);
    }
    CHECK(nas_graph_arena_bytes(pr->g) == arena, "the workspace grew on the same network: %zu -> %zu",
          arena, nas_graph_arena_bytes(pr->g));
    free(before);
    nas_model_free(m);
    nas_proxies_free(pr);
    nas_ctx_free(ctx);
}

static void test_bad_input(void) {
    nas_ctx *ctx = nas_ctx_new();
    nas_proxies *pr = NULL;
    CHECK(nas_proxies_new(ctx, &pr) == NAS_OK, "%s", nas_errmsg(ctx));
    nas_model *m = make_mlp(ctx, 4);
    enum { N = 4 };
    float x[N * F];
    int32_t y[N];
    make_batch(x, y, N, 6);
    double s[NAS_PROXY_COUNT];
    CHECK(nas_proxies_score(pr, m, NULL, NULL, 0, 1u << NAS_PROXY_SNIP, s) == NAS_ERR_ARG,
          "snip without data accepted");
    y[2] = K;
    CHECK(nas_proxies_score(pr, m, x, y, N, 1u << NAS_PROXY_SNIP, s) == NAS_ERR_ARG &&
              strstr(nas_errmsg(ctx), "label") != NULL, "bad label: %s", nas_errmsg(ctx));
    CHECK(nas_proxies_score(pr, m, x, y, N, 1u << 30, s) == NAS_ERR_ARG, "unknown proxy bit");
    CHECK(nas_proxy_from_name("synflow") == NAS_PROXY_SYNFLOW && nas_proxy_from_name("nope") == -1,
          "names");
    nas_model_free(m);
    nas_proxies_free(pr);
    nas_ctx_free(ctx);
}

int main(void) {
    nas_set_threads(1);
    RUN_TEST(test_synflow_closed_form);
    RUN_TEST(test_synflow_mobile_activations);
    RUN_TEST(test_grad_norm_snip_fd);
    RUN_TEST(test_reproducible_and_unchanged);
    RUN_TEST(test_bad_input);
    return check_report("test_proxies");
}
