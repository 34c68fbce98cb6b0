/* test_spaces_ops.c - the ops the spaces added (matmul, permute, crop: src/ops/matmul.c, crop.c).
 * Forward against naive twins written here (loops in double); backward against central finite
 * differences of L = sum(r * y) on random odd shapes, every transpose combination, windows that
 * leave the input on each side, and a whole attention chain (q k^T, softmax, attn v, permutes).
 * Bad shapes must fail with a message, never abort. */
#include "fd_check.h"

#include <math.h>
#include <string.h>

/* ---- builders (arg: the op's integer arguments) */

static nas_tensor *b_matmul(nas_graph *g, nas_tensor **in, const void *args) {
    const int *arg = args;
    return nas_matmul(g, in[0], in[1], arg[0], arg[1], 0.7f);
}

static nas_tensor *b_permute(nas_graph *g, nas_tensor **in, const void *args) {
    const int *arg = args;
    return nas_permute(g, in[0], arg);
}

static nas_tensor *b_crop(nas_graph *g, nas_tensor **in, const void *args) {
    const int *arg = args;
    return nas_crop(g, in[0], arg[0], arg[1], arg[2], arg[3]);
}

/* Attention core on q, k, v [B, L, d] given as [L, B, d] (permuted first, as heads are):
 * softmax(q k^T / sqrt(d)) v, then back to [L, B, d]. */
static nas_tensor *b_attention(nas_graph *g, nas_tensor **in, const void *args) {
    (void)args;
    const int p[3] = {1, 0, 2};
    nas_tensor *q = nas_permute(g, in[0], p), *k = nas_permute(g, in[1], p);
    nas_tensor *v = nas_permute(g, in[2], p);
    const double d = (double)nas_tensor_dim(in[0], 2);
    nas_tensor *s = nas_softmax(g, nas_matmul(g, q, k, 0, 1, (float)(1.0 / sqrt(d))));
    return nas_permute(g, nas_matmul(g, s, v, 0, 0, 1.0f), p);
}

/* Every element of every input checked, inputs uniform in [-1, 1]. */
#define U(shape) {shape, 1, -1, 1, 0}
#define CASE(name, build, arg, n_in, ...) {name, n_in, {__VA_ARGS__}, build, arg, 0, NULL, 0, 1e-4}

static void test_fd(void) {
    static const int mm00[] = {0, 0}, mm10[] = {1, 0}, mm01[] = {0, 1}, mm11[] = {1, 1};
    static const int p021[] = {0, 2, 1}, p1203[] = {1, 2, 0, 3}, p3102[] = {3, 1, 0, 2};
    static const int shift[] = {1, 1, 5, 7}, inside[] = {2, 1, 3, 3}, pad[] = {-2, -1, 7, 9},
                     half[] = {3, -4, 5, 5};
    static const fd_case cases[] = {
        CASE("matmul 2d", b_matmul, mm00, 2, U(V2(5, 3)), U(V2(3, 7))),
        CASE("matmul 3d", b_matmul, mm00, 2, U(V3(3, 5, 3)), U(V3(3, 3, 7))),
        CASE("matmul 3d a^T", b_matmul, mm10, 2, U(V3(3, 3, 5)), U(V3(3, 3, 7))),
        CASE("matmul 3d b^T", b_matmul, mm01, 2, U(V3(3, 5, 3)), U(V3(3, 7, 3))),
        CASE("matmul 4d a^T b^T", b_matmul, mm11, 2, U(X4(2, 3, 3, 5)), U(X4(2, 3, 7, 3))),
        CASE("permute 3d (0 2 1)", b_permute, p021, 1, U(V3(3, 5, 7))),
        CASE("permute 4d (1 2 0 3)", b_permute, p1203, 1, U(X4(3, 2, 5, 3))),
        CASE("permute 4d (3 1 0 2)", b_permute, p3102, 1, U(X4(3, 2, 5, 3))),
        CASE("crop shift (1, 1)", b_crop, shift, 1, U(X4(2, 3, 5, 7))),
        CASE("crop inside", b_crop, inside, 1, U(X4(2, 3, 7, 5))),
        CASE("crop pad all sides", b_crop, pad, 1, U(X4(1, 2, 3, 5))),
        CASE("crop half outside", b_crop, half, 1, U(X4(1, 3, 5, 5))),
        CASE("attention chain", b_attention, NULL, 3, U(V3(7, 3, 5)), U(V3(7, 3, 5)),
             U(V3(7, 3, 5))),
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        run_case_checks(&cases[i], 0);
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
