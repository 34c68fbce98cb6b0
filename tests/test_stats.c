/* test_stats.c - the estimator diagnostics (src/evaluators/stats.c) against hand-checked small
 * cases and against naive O(n^2) / textbook twins on random data with many ties. The comparison
 * with scipy.stats is tests/py_proxies_stats.py. */
#include "check.h"
#include "nascent.h"

#include <math.h>
#include <stdlib.h>

static int near(double a, double b, double tol) {
    return fabs(a - b) <= tol;
}

static void test_hand_cases(void) {
    nas_ctx *ctx = nas_ctx_new();
    /* b has one tied pair (7, 7): C = 8, D = 1, n0 = 10, ties_b = 1 -> tau_b = 7 / sqrt(90);
     * ranks of b are 1, 2, 3.5, 5, 3.5 -> rho = 8 / sqrt(95) (worked by hand) */
    const double a[5] = {1, 2, 3, 4, 5}, b[5] = {5, 6, 7, 8, 7};
    double tau = 0, rho = 0, r = 0;
    CHECK(nas_stats_kendall(ctx, a, b, 5, &tau) == NAS_OK, "%s", nas_errmsg(ctx));
    CHECK(near(tau, 7.0 / sqrt(90.0), 1e-12), "tau %.15g", tau);
    CHECK(nas_stats_spearman(ctx, a, b, 5, &rho) == NAS_OK, "%s", nas_errmsg(ctx));
    CHECK(near(rho, 8.0 / sqrt(95.0), 1e-12), "rho %.15g", rho);
    /* Pearson by hand: dx = -2..2, b mean 6.6, dy = -1.6 -0.6 0.4 1.4 0.4: sxy = 6, syy = 5.2 */
    CHECK(nas_stats_pearson(ctx, a, b, 5, &r) == NAS_OK, "%s", nas_errmsg(ctx));
    CHECK(near(r, 6.0 / sqrt(10.0 * 5.2), 1e-12), "r %.15g", r);

    const double rev[5] = {5, 4, 3, 2, 1};
    CHECK(nas_stats_kendall(ctx, a, rev, 5, &tau) == NAS_OK && near(tau, -1.0, 1e-15), "%g", tau);
    CHECK(nas_stats_spearman(ctx, a, rev, 5, &rho) == NAS_OK && near(rho, -1.0, 1e-15), "%g", rho);
    CHECK(nas_stats_kendall(ctx, a, a, 5, &tau) == NAS_OK && near(tau, 1.0, 1e-15), "%g", tau);

    /* constant side: undefined -> NaN */
    const double c[5] = {2, 2, 2, 2, 2};
    CHECK(nas_stats_kendall(ctx, a, c, 5, &tau) == NAS_OK && isnan(tau), "%g", tau);
    CHECK(nas_stats_spearman(ctx, a, c, 5, &rho) == NAS_OK && isnan(rho), "%g", rho);

    /* NaN and inf pairs are dropped: the rest is the first case */
    const double a2[7] = {1, NAN, 2, 3, 4, 9, 5}, b2[7] = {5, 1, 6, 7, 8, INFINITY, 7};
    nas_stats_report rep;
    const double ks[2] = {0.4, 1.0};
    CHECK(nas_stats_correlate(ctx, a2, b2, 7, 2, ks, &rep) == NAS_OK, "%s", nas_errmsg(ctx));
    CHECK(rep.n == 5 && rep.n_dropped == 2, "n %lld dropped %lld", (long long)rep.n,
          (long long)rep.n_dropped);
    CHECK(near(rep.kendall_tau, 7.0 / sqrt(90.0), 1e-12), "%g", rep.kendall_tau);
    CHECK(near(rep.spearman_rho, 8.0 / sqrt(95.0), 1e-12), "%g", rep.spearman_rho);
    /* K = 100%: everything is in both sets */
    CHECK(rep.at[1].k == 5 && rep.at[1].precision_top == 1.0 && rep.at[1].best_rank == 0.0 &&
          rep.at[1].worst_rank == 1.0, "k %lld", (long long)rep.at[1].k);
    nas_ctx_free(ctx);
}

static void test_at_k_hand(void) {
    nas_ctx *ctx = nas_ctx_new();
    /* est order (desc): 0, 1, 3, 2; truth order: 1, 2, 3, 0. k = 2:
     * top {0,1} vs {1,2} -> 1/2; bottom {3,2} vs {3,0} -> 1/2; true ranks of est's top:
     * item 0 -> 3, item 1 -> 0 -> best 0/3, worst 3/3. */
    const double est[4] = {0.9, 0.8, 0.1, 0.5}, truth[4] = {1, 4, 3, 2};
    nas_stats_at_k k;
    CHECK(nas_stats_at_k_compute(ctx, est, truth, 4, 0.5, &k) == NAS_OK, "%s", nas_errmsg(ctx));
    CHECK(k.k == 2, "k %lld", (long long)k.k);
    CHECK(k.precision_top == 0.5 && k.precision_bottom == 0.5, "%g %g", k.precision_top,
          k.precision_bottom);
    CHECK(k.best_rank == 0.0 && k.worst_rank == 1.0, "%g %g", k.best_rank, k.worst_rank);
    /* k = max(1, round(0.1 * 4)) = 1: est's best (item 0) is the true worst */
    CHECK(nas_stats_at_k_compute(ctx, est, truth, 4, 0.1, &k) == NAS_OK, "%s", nas_errmsg(ctx));
    CHECK(k.k == 1 && k.precision_top == 0.0 && k.best_rank == 1.0, "k %lld p %g br %g",
          (long long)k.k, k.precision_top, k.best_rank);
    /* bad K */
    CHECK(nas_stats_at_k_compute(ctx, est, truth, 4, 0.0, &k) == NAS_ERR_ARG, "K = 0 accepted");
    CHECK(nas_stats_at_k_compute(ctx, est, truth, 4, 1.5, &k) == NAS_ERR_ARG, "K = 1.5 accepted");
    nas_ctx_free(ctx);
}

/* Naive twins: tau-b by counting every pair; rho as Pearson of average ranks found by counting. */
static double naive_tau_b(const double *a, const double *b, int n) {
    double con = 0, dis = 0, ta = 0, tb = 0;
    for (int i = 0; i < n; i++) {
        for (int j = i + 1; j < n; j++) {
            const double s = (a[i] - a[j]) * (b[i] - b[j]);
            if (a[i] == a[j] && b[i] == b[j]) {
                ta++, tb++;
            } else if (a[i] == a[j]) {
                ta++;
            } else if (b[i] == b[j]) {
                tb++;
            } else if (s > 0) {
                con++;
            } else {
                dis++;
            }
        }
    }
    const double n0 = 0.5 * n * (n - 1);
    return (con - dis) / sqrt((n0 - ta) * (n0 - tb));
}

static void naive_ranks(const double *v, int n, double *r) {
    for (int i = 0; i < n; i++) {
        int less = 0, eq = 0;
        for (int j = 0; j < n; j++) {
            less += v[j] < v[i];
            eq += v[j] == v[i];
        }
        r[i] = less + 0.5 * (eq + 1);
    }
}

static double naive_pearson(const double *x, const double *y, int n) {
    double mx = 0, my = 0, sxy = 0, sxx = 0, syy = 0;
    for (int i = 0; i < n; i++) {
        mx += x[i] / n;
        my += y[i] / n;
    }
    for (int i = 0; i < n; i++) {
        sxy += (x[i] - mx) * (y[i] - my);
        sxx += (x[i] - mx) * (x[i] - mx);
        syy += (y[i] - my) * (y[i] - my);
    }
    return sxy / sqrt(sxx * syy);
}

static void test_random_vs_naive(void) {
    nas_ctx *ctx = nas_ctx_new();
    nas_rng rng = nas_rng_make(7, 0);
    enum { N = 400 };
    double a[N], b[N], ra[N], rb[N];
    for (int trial = 0; trial < 20; trial++) {
        const int n = 2 + (int)nas_rng_below(&rng, N - 1);
        const int levels = 2 + trial * 3; /* few levels -> many ties */
        for (int i = 0; i < n; i++) {
            a[i] = (double)nas_rng_below(&rng, levels);
            b[i] = trial % 2 ? a[i] + (double)nas_rng_below(&rng, 4) : (double)nas_rng_below(&rng, levels);
        }
        double tau, rho;
        CHECK(nas_stats_kendall(ctx, a, b, n, &tau) == NAS_OK, "%s", nas_errmsg(ctx));
        CHECK(nas_stats_spearman(ctx, a, b, n, &rho) == NAS_OK, "%s", nas_errmsg(ctx));
        const double want_tau = naive_tau_b(a, b, n);
        naive_ranks(a, n, ra);
        naive_ranks(b, n, rb);
        const double want_rho = naive_pearson(ra, rb, n);
        CHECK(near(tau, want_tau, 1e-12) || (isnan(tau) && isnan(want_tau)),
              "trial %d n %d: tau %.15g want %.15g", trial, n, tau, want_tau);
        CHECK(near(rho, want_rho, 1e-12) || (isnan(rho) && isnan(want_rho)),
              "trial %d n %d: rho %.15g want %.15g", trial, n, rho, want_rho);
    }
    nas_ctx_free(ctx);
}

static void test_bad_args(void) {
    nas_ctx *ctx = nas_ctx_new();
    double tau;
    CHECK(nas_stats_kendall(ctx, NULL, NULL, 3, &tau) == NAS_ERR_ARG, "NULL arrays accepted");
    CHECK(nas_stats_kendall(ctx, NULL, NULL, 0, &tau) == NAS_OK && isnan(tau), "empty");
    nas_stats_report rep;
    const double x[2] = {1, 2}, k = 2.0;
    CHECK(nas_stats_correlate(ctx, x, x, 2, 1, &k, &rep) == NAS_ERR_ARG, "K = 200%% accepted");
    CHECK(nas_stats_correlate(ctx, x, x, 2, NAS_STATS_MAX_K + 1, &k, &rep) == NAS_ERR_ARG,
          "too many K accepted");
    nas_ctx_free(ctx);
}

int main(void) {
    RUN_TEST(test_hand_cases);
    RUN_TEST(test_at_k_hand);
    RUN_TEST(test_random_vs_naive);
    RUN_TEST(test_bad_args);
    return check_report("test_stats");
}
