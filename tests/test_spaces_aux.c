/* test_spaces_aux.c - DARTS's auxiliary head and the attention block as the trainer and the
 * counters see them:
 *   - the trainer's loss graph (nas_train_graph_build) in training mode is CE(logits) +
 *     NAS_AUX_LOSS_WEIGHT CE(aux logits), recomputed here in double from the two outputs, and the
 *     gradient reaches every auxiliary head tensor; in evaluation mode there are no auxiliary
 *     logits and the loss is CE(logits);
 *   - counting: the head's parameters count (DARTS_V2 C=36 20 cells: 3,349,342 + 476,426, the
 *     reference code's figures), its MACs do not (inference cost), in the counter and the graph;
 *   - attention blocks of JSON spaces: counted params/MACs equal the built graph's, by-hand
 *     formulas, and bad head counts are errors naming the block;
 *   - FactorizedReduce on odd sizes (where the reference's halves differ) still builds and runs.
 * The values against PyTorch are in py_spaces_torch.py. */
#include "check.h"
#include "evaluators/train_int.h"
#include "nascent.h"
#include "spaces/spaces_int.h"

#include <math.h>
#include <string.h>

static nas_space *open_space(nas_ctx *ctx, const char *name) {
    nas_space *s = NULL;
    CHECK(nas_space_open(ctx, name, &s) == NAS_OK, "open %s: %s", name, nas_errmsg(ctx));
    return s;
}

/* Mean cross-entropy of rows z [n, k] against labels, in double. */
static double cross_entropy(const float *z, const int32_t *y, int n, int k) {
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        double m = -INFINITY, s = 0.0;
        for (int j = 0; j < k; j++) {
            m = fmax(m, (double)z[i * k + j]);
        }
        for (int j = 0; j < k; j++) {
            s += exp((double)z[i * k + j] - m);
        }
        sum += m + log(s) - (double)z[i * k + y[i]];
    }
    return sum / n;
}

/* The small DARTS evaluation network: DARTS_V2, C = 8, 5 cells, CIFAR shape. */
static nas_model *small_darts(nas_ctx *ctx, nas_space *s, int aux, const nas_model_shape *shape) {
    nas_arch a;
    nas_build_opts o;
    memset(&o, 0, sizeof o);
    o.search_net = 1;
    o.channels_mult = 0.5;
    o.cells = 5;
    o.aux_head = aux;
    if (shape != NULL) {
        o.shape = *shape;
    }
    nas_model *m = NULL;
    CHECK(nas_space_decode(ctx, s, "default", &a) == NAS_OK, "decode");
    CHECK(nas_space_build(ctx, s, &a, &o, &m) == NAS_OK, "build: %s", nas_errmsg(ctx));
    if (m != NULL) {
        nas_params_init(nas_model_params(m), 3);
    }
    return m;
}

static void test_aux_loss(void) {
    nas_ctx *ctx = nas_ctx_new();
    nas_space *s = open_space(ctx, "darts");
    nas_model *m = s != NULL ? small_darts(ctx, s, 1, NULL) : NULL;
    if (m == NULL) {
        nas_space_free(s);
        nas_ctx_free(ctx);
        return;
    }
    enum { B = 4, K = 10 };
    float *x = malloc(sizeof(float) * B * 3 * 32 * 32);
    nas_rng r = nas_rng_make(11, 0);
    nas_rng_fill_uniform(&r, x, B * 3 * 32 * 32, -1, 1);
    const int32_t y[B] = {3, 7, 0, 9};
    nas_params *p = nas_model_params(m);
    for (int training = 1; training >= 0; training--) {
        nas_train_graph tg;
        memset(&tg, 0, sizeof tg);
        double loss = 0.0;
        int64_t correct = 0;
        CHECK(nas_train_graph_build(ctx, m, &tg, B, B, training, 0.0f) == NAS_OK, "build: %s",
              nas_errmsg(ctx));
        CHECK(nas_train_graph_run(&tg, x, y, B, &loss, &correct) == NAS_OK, "run: %s",
              nas_errmsg(ctx));
        nas_tensor *aux = nas_model_aux_logits(m, tg.g);
        const double ce = cross_entropy(nas_tensor_data(tg.logits), y, B, K);
        if (!training) {
            CHECK(aux == NULL, "evaluation mode records no auxiliary logits");
            CHECK(fabs(loss - ce) < 1e-5 * fmax(1.0, ce), "eval loss %.7f, CE %.7f", loss, ce);
            nas_train_graph_free(ctx, &tg);
            continue;
        }
        CHECK(aux != NULL && nas_tensor_ndim(aux) == 2 && nas_tensor_dim(aux, 0) == B &&
                  nas_tensor_dim(aux, 1) == K,
              "training mode: auxiliary logits [%d, %d]", B, K);
        if (aux != NULL) {
            const double want = ce + 0.4 * cross_entropy(nas_tensor_data(aux), y, B, K);
            CHECK(fabs(loss - want) < 1e-5 * fmax(1.0, want),
                  "loss %.7f, CE + 0.4 CE_aux %.7f (CE alone %.7f)", loss, want, ce);
            CHECK(fabs(want - ce) > 1e-3, "the auxiliary term is not negligible here");
        }
        nas_params_zero_grad(p);
        CHECK(nas_graph_backward(tg.g, tg.loss) == NAS_OK, "backward: %s", nas_errmsg(ctx));
        int n_aux = 0;
        for (int64_t i = 0; i < nas_params_count(p); i++) {
            if (strncmp(nas_param_name(p, i), "auxiliary_head.", 15) != 0 ||
                (nas_param_flags(p, i) & NAS_PARAM_BUFFER)) {
                continue;
            }
            double norm = 0.0;
            const float *gd = nas_params_grad(p) + nas_param_offset(p, i);
            for (int64_t j = 0; j < nas_param_numel(p, i); j++) {
                norm += (double)gd[j] * gd[j];
            }
            CHECK(norm > 0.0, "no gradient reaches %s", nas_param_name(p, i));
            n_aux++;
        }
        CHECK(n_aux == 8, "%d auxiliary head tensors with gradients (want 8)", n_aux);
        nas_train_graph_free(ctx, &tg);
    }
    /* a model without the head: no auxiliary logits in training mode either */
    nas_model *plain = small_darts(ctx, s, 0, NULL);
    nas_graph *g = nas_graph_new(ctx);
    nas_graph_set_training(g, 1);
    const int64_t xs[4] = {B, 3, 32, 32};
    nas_model_forward(plain, g, nas_input(g, 4, xs, x));
    CHECK(nas_graph_status(g) == NAS_OK && nas_model_aux_logits(plain, g) == NULL,
          "no head, no auxiliary logits");
    nas_model_forward(m, g, nas_input(g, 4, xs, x));
    CHECK(nas_model_aux_logits(m, g) != NULL, "recorded into g");
    nas_graph *g2 = nas_graph_new(ctx);
    CHECK(nas_model_aux_logits(m, g2) == NULL, "not for a graph the model was not recorded into");
    nas_graph_free(g2);
    nas_graph_free(g);
    nas_model_free(plain);
    free(x);
    nas_model_free(m);
    nas_space_free(s);
    nas_ctx_free(ctx);
}

static void test_aux_counts(void) {
    nas_ctx *ctx = nas_ctx_new();
    nas_space *s = open_space(ctx, "darts");
    nas_arch a;
    nas_build_opts o;
    memset(&o, 0, sizeof o);
    int64_t p0 = 0, m0 = 0, p1 = 0, m1 = 0, gm = 0;
    CHECK(s != NULL && nas_space_decode(ctx, s, "default", &a) == NAS_OK, "decode");
    CHECK(s != NULL && nas_space_count(ctx, s, &a, &o, &p0, &m0) == NAS_OK, "count");
    o.aux_head = 1;
    CHECK(s != NULL && nas_space_count(ctx, s, &a, &o, &p1, &m1) == NAS_OK, "count aux");
    CHECK(p0 == 3349342 && p1 == 3349342 + 476426, "DARTS_V2 params %lld / with aux %lld",
          (long long)p0, (long long)p1);
    CHECK(m1 == m0, "the auxiliary head's MACs are not inference MACs: %lld vs %lld", (long long)m1,
          (long long)m0);
    nas_model *m = NULL;
    CHECK(s != NULL && nas_space_build(ctx, s, &a, &o, &m) == NAS_OK, "build");
    if (m != NULL) {
        CHECK(nas_model_n_params(m) == p1, "built %lld params", (long long)nas_model_n_params(m));
        CHECK(nas_model_count(m, &gm, NULL) == NAS_OK && gm == m0, "graph MACs %lld, counted %lld",
              (long long)gm, (long long)m0);
        /* in a training graph the head runs: AuxiliaryHeadCIFAR at 8x8, C = 576 -> 2x2 pool,
         * 1x1 conv to 128, 2x2 conv to 768, linear to 10 */
        nas_graph *g = nas_graph_new(ctx);
        nas_graph_set_training(g, 1);
        const int64_t xs[4] = {1, 3, 32, 32};
        nas_model_forward(m, g, nas_input(g, 4, xs, NULL));
        const int64_t head = 4 * 576 * 128 + 128 * 768 * 4 + 768 * 10;
        CHECK(nas_graph_macs(g) == m0 + head, "training graph MACs %lld, want %lld + %lld",
              (long long)nas_graph_macs(g), (long long)m0, (long long)head);
        nas_graph_free(g);
        nas_model_free(m);
    }
    nas_space_free(s);
    nas_ctx_free(ctx);
}

static void test_odd_factorized_reduce(void) {
    nas_ctx *ctx = nas_ctx_new();
    nas_space *s = open_space(ctx, "darts");
    const nas_model_shape shape = {3, 31, 29, 10};
    nas_model *m = s != NULL ? small_darts(ctx, s, 0, &shape) : NULL;
    if (m != NULL) {
        nas_graph *g = nas_graph_new(ctx);
        const int64_t xs[4] = {2, 3, 31, 29};
        float *x = calloc(2 * 3 * 31 * 29, sizeof(float));
        nas_tensor *y = nas_model_forward(m, g, nas_input(g, 4, xs, x));
        CHECK(y != NULL && nas_graph_forward(g) == NAS_OK, "31x29 input: %s", nas_errmsg(ctx));
        free(x);
        nas_graph_free(g);
        nas_model_free(m);
    }
    nas_space_free(s);
    nas_ctx_free(ctx);
}

static const char *attn_json =
    "{\"input\": [5, 7, 3], \"classes\": 3,\n"
    " \"decisions\": [{\"name\": \"h\", \"choices\": [1, 3, 2, 0]},\n"
    "               {\"name\": \"c\", \"choices\": [6, 12]}],\n"
    " \"network\": [{\"block\": \"conv\", \"out\": \"$c\", \"kernel\": 1},\n"
    "             {\"block\": \"attention\", \"heads\": \"$h\", \"repeat\": 2}]}\n";

static void test_attention_counts(void) {
    nas_ctx *ctx = nas_ctx_new();
    nas_space *s = NULL;
    CHECK(nas_spaces_open_json_string(ctx, attn_json, &s) == NAS_OK, "open: %s", nas_errmsg(ctx));
    for (int c = 0; s != NULL && c < 2; c++) {
        for (int h = 0; h < 4; h++) {
            char text[64];
            const int heads = h == 0 ? 1 : h == 1 ? 3 : h == 2 ? 2 : 0, C = c ? 12 : 6;
            snprintf(text, sizeof text, "h=%d,c=%d", heads, C);
            nas_arch a;
            CHECK(nas_space_decode(ctx, s, text, &a) == NAS_OK, "%s: %s", text, nas_errmsg(ctx));
            int64_t p = 0, macs = 0;
            const nas_status st = nas_space_count(ctx, s, &a, NULL, &p, &macs);
            if (heads == 0) {
                CHECK(st != NAS_OK && strstr(nas_errmsg(ctx), "attention") != NULL &&
                          strstr(nas_errmsg(ctx), "layers.1") != NULL,
                      "0 heads must fail naming the block: %s", nas_errmsg(ctx));
                continue;
            }
            const int64_t L = 21;
            const int64_t want_p = (5 * C) + 2 * (4 * C * C + 4 * C) + 2 * C + C * 3 + 3;
            const int64_t want_m = L * C * 5 + 2 * (4 * L * C * C + 2 * L * L * C) + C * 3;
            CHECK(st == NAS_OK && p == want_p && macs == want_m,
                  "%s: %lld params (want %lld), %lld MACs (want %lld): %s", text, (long long)p,
                  (long long)want_p, (long long)macs, (long long)want_m, nas_errmsg(ctx));
            nas_model *m = NULL;
            int64_t gm = 0;
            CHECK(nas_space_build(ctx, s, &a, NULL, &m) == NAS_OK, "build %s", text);
            CHECK(m != NULL && nas_model_n_params(m) == p &&
                      nas_model_count(m, &gm, NULL) == NAS_OK && gm == macs,
                  "%s: built graph %lld MACs", text, (long long)gm);
            nas_model_free(m);
        }
    }
    nas_space_free(s);
    /* heads not dividing the channels */
    const char *bad = "{\"decisions\": [{\"name\": \"h\", \"choices\": [5]}],\n"
                      " \"network\": [{\"block\": \"conv\", \"out\": 8},\n"
                      "             {\"block\": \"attention\", \"heads\": \"$h\"}]}";
    s = NULL;
    CHECK(nas_spaces_open_json_string(ctx, bad, &s) == NAS_OK, "open: %s", nas_errmsg(ctx));
    nas_arch a;
    int64_t p = 0;
    CHECK(s != NULL && nas_space_decode(ctx, s, "default", &a) == NAS_OK, "decode");
    CHECK(s != NULL && nas_space_count(ctx, s, &a, NULL, &p, NULL) == NAS_ERR_SHAPE &&
              strstr(nas_errmsg(ctx), "5 heads") != NULL,
          "5 heads on 8 channels: %s", nas_errmsg(ctx));
    nas_space_free(s);
    nas_ctx_free(ctx);
}

int main(void) {
    nas_set_threads(2);
    RUN_TEST(test_aux_loss);
    RUN_TEST(test_aux_counts);
    RUN_TEST(test_odd_factorized_reduce);
    RUN_TEST(test_attention_counts);
    return check_report("spaces_aux");
}
