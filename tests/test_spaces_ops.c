/* test_spaces_ops.c - the ops the spaces added (matmul, permute, crop: src/ops/matmul.c, crop.c).
 * Forward against naive twins written here (loops in double); backward against central finite
 * differences of L = sum(r * y) on random odd shapes, every transpose combination, windows that
 * leave the input on each side, and a whole attention chain (q k^T, softmax, attn v, permutes).
 * Bad shapes must fail with a message, never abort. */
#include "check.h"
#include "nascent.h"

#include <math.h>
#include <string.h>

#define MAX_IN  4
#define FD_STEP 1e-2

typedef nas_tensor *(*build_fn)(nas_graph *g, nas_tensor **in, const int *arg);

typedef struct fd_case {
    const char *name;
    int n_in;
    int ndim[MAX_IN];
    int64_t shape[MAX_IN][4];
    build_fn build;
    int arg[8];
} fd_case;

static int64_t numel(int ndim, const int64_t *shape) {
    int64_t n = 1;
    for (int d = 0; d < ndim; d++) {
        n *= shape[d];
    }
    return n;
}

static double loss_of(nas_graph *g, nas_tensor *y, const float *r) {
    if (nas_graph_forward(g) != NAS_OK) {
        return NAN;
    }
    const float *yd = nas_tensor_data(y);
    double acc = 0.0;
    for (int64_t i = 0; i < nas_tensor_numel(y); i++) {
        acc += (double)r[i] * (double)yd[i];
    }
    return acc;
}

/* Analytic gradients of every input against central differences at every element. */
static void run_fd(const fd_case *c) {
    nas_ctx *ctx = nas_ctx_new();
    nas_graph *g = nas_graph_new(ctx);
    nas_rng rng = nas_rng_make(77, 0);
    float *x[MAX_IN];
    nas_tensor *t[MAX_IN];
    for (int k = 0; k < c->n_in; k++) {
        const int64_t n = numel(c->ndim[k], c->shape[k]);
        x[k] = malloc((size_t)n * sizeof(float));
        nas_rng_fill_uniform(&rng, x[k], n, -1.0f, 1.0f);
        t[k] = nas_input_grad(g, c->ndim[k], c->shape[k], x[k]);
    }
    nas_tensor *y = c->build(g, t, c->arg);
    CHECK(y != NULL && nas_graph_status(g) == NAS_OK, "%s: build: %s", c->name, nas_errmsg(ctx));
    if (y != NULL) {
        const int64_t ny = nas_tensor_numel(y);
        float *r = malloc((size_t)ny * sizeof(float));
        nas_rng_fill_uniform(&rng, r, ny, -1.0f, 1.0f);
        CHECK(nas_graph_forward(g) == NAS_OK, "%s: forward", c->name);
        CHECK(nas_graph_backward_from(g, y, r) == NAS_OK, "%s: backward: %s", c->name,
              nas_errmsg(ctx));
        for (int k = 0; k < c->n_in; k++) {
            const int64_t n = numel(c->ndim[k], c->shape[k]);
            float *ana = malloc((size_t)n * sizeof(float));
            memcpy(ana, nas_tensor_grad(t[k]), (size_t)n * sizeof(float));
            double worst = 0.0;
            for (int64_t i = 0; i < n; i++) {
                const float x0 = x[k][i], xp = x0 + (float)FD_STEP, xm = x0 - (float)FD_STEP;
                x[k][i] = xp;
                const double lp = loss_of(g, y, r);
                x[k][i] = xm;
                const double lm = loss_of(g, y, r);
                x[k][i] = x0;
                const double num = (lp - lm) / ((double)xp - (double)xm);
                worst = fmax(worst, fabs(num - ana[i]) / fmax(1.0, fabs(num) + fabs(ana[i])));
            }
            CHECK(worst < 1e-4, "%s: input %d: worst relative error %.3g", c->name, k, worst);
            if (getenv("NAS_TEST_VERBOSE") != NULL) {
                printf("  %-28s input %d: worst relative error %.2e\n", c->name, k, worst);
            }
            free(ana);
        }
        free(r);
    }
    for (int k = 0; k < c->n_in; k++) {
        free(x[k]);
    }
    nas_graph_free(g);
    nas_ctx_free(ctx);
}

/* ---- builders (arg: the op's integer arguments) */

static nas_tensor *b_matmul(nas_graph *g, nas_tensor **in, const int *arg) {
    return nas_matmul(g, in[0], in[1], arg[0], arg[1], 0.7f);
}

static nas_tensor *b_permute(nas_graph *g, nas_tensor **in, const int *arg) {
    return nas_permute(g, in[0], arg);
}

static nas_tensor *b_crop(nas_graph *g, nas_tensor **in, const int *arg) {
    return nas_crop(g, in[0], arg[0], arg[1], arg[2], arg[3]);
}

/* Attention core on q, k, v [B, L, d] given as [L, B, d] (permuted first, as heads are):
 * softmax(q k^T / sqrt(d)) v, then back to [L, B, d]. */
static nas_tensor *b_attention(nas_graph *g, nas_tensor **in, const int *arg) {
    (void)arg;
    const int p[3] = {1, 0, 2};
    nas_tensor *q = nas_permute(g, in[0], p), *k = nas_permute(g, in[1], p);
    nas_tensor *v = nas_permute(g, in[2], p);
    const double d = (double)nas_tensor_dim(in[0], 2);
    nas_tensor *s = nas_softmax(g, nas_matmul(g, q, k, 0, 1, (float)(1.0 / sqrt(d))));
    return nas_permute(g, nas_matmul(g, s, v, 0, 0, 1.0f), p);
}

static void test_fd(void) {
    static const fd_case cases[] = {
        {"matmul 2d", 2, {2, 2}, {{5, 3}, {3, 7}}, b_matmul, {0, 0}},
        {"matmul 3d", 2, {3, 3}, {{3, 5, 3}, {3, 3, 7}}, b_matmul, {0, 0}},
        {"matmul 3d a^T", 2, {3, 3}, {{3, 3, 5}, {3, 3, 7}}, b_matmul, {1, 0}},
        {"matmul 3d b^T", 2, {3, 3}, {{3, 5, 3}, {3, 7, 3}}, b_matmul, {0, 1}},
        {"matmul 4d a^T b^T", 2, {4, 4}, {{2, 3, 3, 5}, {2, 3, 7, 3}}, b_matmul, {1, 1}},
        {"permute 3d (0 2 1)", 1, {3}, {{3, 5, 7}}, b_permute, {0, 2, 1}},
        {"permute 4d (1 2 0 3)", 1, {4}, {{3, 2, 5, 3}}, b_permute, {1, 2, 0, 3}},
        {"permute 4d (3 1 0 2)", 1, {4}, {{3, 2, 5, 3}}, b_permute, {3, 1, 0, 2}},
        {"crop shift (1, 1)", 1, {4}, {{2, 3, 5, 7}}, b_crop, {1, 1, 5, 7}},
        {"crop inside", 1, {4}, {{2, 3, 7, 5}}, b_crop, {2, 1, 3, 3}},
        {"crop pad all sides", 1, {4}, {{1, 2, 3, 5}}, b_crop, {-2, -1, 7, 9}},
        {"crop half outside", 1, {4}, {{1, 3, 5, 5}}, b_crop, {3, -4, 5, 5}},
        {"attention chain", 3, {3, 3, 3}, {{7, 3, 5}, {7, 3, 5}, {7, 3, 5}}, b_attention, {0}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        run_fd(&cases[i]);
    }
}

/* ---- forward against naive twins */

static void test_matmul_naive(void) {
    nas_ctx *ctx = nas_ctx_new();
    nas_rng rng = nas_rng_make(5, 0);
    const int B = 3, M = 17, K = 13, N = 11;
    for (int ta = 0; ta < 2; ta++) {
        for (int tb = 0; tb < 2; tb++) {
            nas_graph *g = nas_graph_new(ctx);
            const int64_t sa[3] = {B, ta ? K : M, ta ? M : K}, sb[3] = {B, tb ? N : K, tb ? K : N};
            float *a = malloc(sizeof(float) * B * M * K), *b = malloc(sizeof(float) * B * K * N);
            nas_rng_fill_uniform(&rng, a, (int64_t)B * M * K, -1, 1);
            nas_rng_fill_uniform(&rng, b, (int64_t)B * K * N, -1, 1);
            nas_tensor *y =
                nas_matmul(g, nas_input(g, 3, sa, a), nas_input(g, 3, sb, b), ta, tb, -1.5f);
            CHECK(nas_graph_forward(g) == NAS_OK, "forward: %s", nas_errmsg(ctx));
            CHECK(nas_tensor_dim(y, 0) == B && nas_tensor_dim(y, 1) == M &&
                      nas_tensor_dim(y, 2) == N,
                  "shape");
            CHECK(nas_graph_macs(g) == (int64_t)B * M * N * K, "MACs %lld",
                  (long long)nas_graph_macs(g));
            double worst = 0.0;
            for (int z = 0; z < B; z++) {
                for (int i = 0; i < M; i++) {
                    for (int j = 0; j < N; j++) {
                        double acc = 0.0;
                        for (int k = 0; k < K; k++) {
                            const double av = a[z * M * K + (ta ? k * M + i : i * K + k)];
                            const double bv = b[z * K * N + (tb ? j * K + k : k * N + j)];
                            acc += av * bv;
                        }
                        acc *= -1.5;
                        worst = fmax(worst, fabs(acc - nas_tensor_data(y)[(z * M + i) * N + j]));
                    }
                }
            }
            CHECK(worst < 1e-5, "trans %d %d: max difference %.3g", ta, tb, worst);
            free(a);
            free(b);
            nas_graph_free(g);
        }
    }
    nas_ctx_free(ctx);
}

static void test_permute_crop_naive(void) {
    nas_ctx *ctx = nas_ctx_new();
    nas_graph *g = nas_graph_new(ctx);
    const int64_t s[4] = {2, 3, 5, 7};
    float x[2 * 3 * 5 * 7];
    for (int i = 0; i < 210; i++) {
        x[i] = (float)i;
    }
    nas_tensor *in = nas_input(g, 4, s, x);
    const int perm[4] = {2, 0, 3, 1};
    nas_tensor *p = nas_permute(g, in, perm);
    nas_tensor *c = nas_crop(g, in, 1, -1, 5, 4); /* rows 1..5 (5 is outside), cols -1..2 */
    CHECK(nas_graph_forward(g) == NAS_OK, "forward: %s", nas_errmsg(ctx));
    CHECK(nas_tensor_dim(p, 0) == 5 && nas_tensor_dim(p, 1) == 2 && nas_tensor_dim(p, 2) == 7 &&
              nas_tensor_dim(p, 3) == 3,
          "permuted shape");
    int bad = 0;
    for (int a = 0; a < 5; a++) {
        for (int b = 0; b < 2; b++) {
            for (int cc = 0; cc < 7; cc++) {
                for (int d = 0; d < 3; d++) {
                    /* y[a, b, cc, d] = x[b, d, a, cc] */
                    bad += nas_tensor_data(p)[((a * 2 + b) * 7 + cc) * 3 + d] !=
                           x[((b * 3 + d) * 5 + a) * 7 + cc];
                }
            }
        }
    }
    CHECK(bad == 0, "permute: %d wrong", bad);
    bad = 0;
    for (int n = 0; n < 6; n++) {
        for (int i = 0; i < 5; i++) {
            for (int j = 0; j < 4; j++) {
                const int r = 1 + i, q = j - 1;
                const float want = r < 5 && q >= 0 ? x[(n * 5 + r) * 7 + q] : 0.0f;
                bad += nas_tensor_data(c)[(n * 5 + i) * 4 + j] != want;
            }
        }
    }
    CHECK(bad == 0, "crop: %d wrong", bad);
    nas_graph_free(g);
    nas_ctx_free(ctx);
}

static void test_errors(void) {
    nas_ctx *ctx = nas_ctx_new();
    const int64_t a[3] = {2, 3, 4}, b[3] = {3, 4, 5}, c[3] = {2, 5, 4}, v[2] = {3, 4};
    struct {
        const char *what;
        int which;
    } cases[] = {{"batch dims differ", 0}, {"inner dims differ", 1}, {"dims differ", 2},
                 {"not a permutation", 3}, {"crop of 3 dims", 4},    {"empty crop", 5}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        nas_graph *g = nas_graph_new(ctx);
        nas_tensor *x = nas_input(g, 3, a, NULL);
        nas_tensor *y = NULL;
        const int bad_perm[3] = {0, 0, 2};
        switch (cases[i].which) {
            case 0:
                y = nas_matmul(g, x, nas_input(g, 3, b, NULL), 0, 1, 1.0f);
                break;
            case 1:
                y = nas_matmul(g, x, nas_input(g, 3, c, NULL), 0, 0, 1.0f);
                break;
            case 2:
                y = nas_matmul(g, x, nas_input(g, 2, v, NULL), 0, 0, 1.0f);
                break;
            case 3:
                y = nas_permute(g, x, bad_perm);
                break;
            case 4:
                y = nas_crop(g, x, 0, 0, 1, 1);
                break;
            default: {
                const int64_t s4[4] = {1, 2, 3, 3};
                y = nas_crop(g, nas_input(g, 4, s4, NULL), 0, 0, 0, 2);
            }
        }
        CHECK(y == NULL && nas_graph_status(g) != NAS_OK && strlen(nas_errmsg(ctx)) > 10,
              "%s: should fail with a message (%s)", cases[i].what, nas_errmsg(ctx));
        nas_graph_free(g);
    }
    nas_ctx_free(ctx);
}

int main(void) {
    nas_set_threads(2);
    RUN_TEST(test_matmul_naive);
    RUN_TEST(test_permute_crop_naive);
    RUN_TEST(test_fd);
    RUN_TEST(test_errors);
    return check_report("spaces_ops");
}
