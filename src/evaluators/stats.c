/* stats.c - estimator diagnostics: how well one score ranks items against another (Ning et al.,
 * "Evaluating Efficient Performance Estimators of Neural Architectures", NeurIPS 2021).
 *
 * Kendall tau-b (ties in either variable handled as scipy.stats.kendalltau, variant 'b') by
 * Knight's O(n log n) algorithm; Spearman rho as the Pearson correlation of average ranks
 * (scipy.stats.spearmanr); Pearson r; precision at top/bottom K%; best/worst true ranking of the
 * estimator's top K%. Pairs where either value is NaN or infinite are dropped (counted in
 * n_dropped). Higher is better in both arrays. Sums are done in a fixed order, so results do not
 * depend on threads. */
#include "core/core_int.h"

#include <math.h>
#include <stdlib.h>

typedef struct pair {
    double a, b;
    int64_t idx;
} pair;

static int cmp_ab(const void *x, const void *y) {
    const pair *p = x, *q = y;
    if (p->a != q->a) {
        return p->a < q->a ? -1 : 1;
    }
    if (p->b != q->b) {
        return p->b < q->b ? -1 : 1;
    }
    return p->idx < q->idx ? -1 : (p->idx > q->idx);
}

/* Sort `v` (descending by value; ties by ascending index so the order is deterministic). */
static int cmp_desc(const void *x, const void *y) {
    const pair *p = x, *q = y;
    if (p->a != q->a) {
        return p->a > q->a ? -1 : 1;
    }
    return p->idx < q->idx ? -1 : (p->idx > q->idx);
}

/* Copy the finite pairs into a new array; *m gets their count. */
static pair *finite_pairs(nas_ctx *ctx, const double *a, const double *b, int64_t n, int64_t *m) {
    pair *p = nas_malloc(ctx, (size_t)(n > 0 ? n : 1) * sizeof(pair));
    if (p == NULL) {
        return NULL;
    }
    int64_t k = 0;
    for (int64_t i = 0; i < n; i++) {
        if (isfinite(a[i]) && isfinite(b[i])) {
            p[k++] = (pair){a[i], b[i], i};
        }
    }
    *m = k;
    return p;
}

/* Tied pairs sum t (t - 1) / 2 over runs of equal values of v (sorted) with stride. */
static double tie_pairs_b(const pair *p, int64_t n) {
    double ties = 0.0;
    int64_t run = 1;
    for (int64_t i = 1; i <= n; i++) {
        if (i < n && p[i].b == p[i - 1].b) {
            run++;
        } else {
            ties += 0.5 * (double)run * (double)(run - 1);
            run = 1;
        }
    }
    return ties;
}

/* Merge sort of p by b, returning the number of strict inversions (b[i] > b[j], i < j). */
static double sort_count_swaps(pair *p, pair *tmp, int64_t n) {
    if (n < 2) {
        return 0.0;
    }
    const int64_t h = n / 2;
    double swaps = sort_count_swaps(p, tmp, h) + sort_count_swaps(p + h, tmp, n - h);
    int64_t i = 0, j = h, k = 0;
    while (i < h && j < n) {
        if (p[j].b < p[i].b) {
            swaps += (double)(h - i); /* p[j] jumps ahead of every remaining left element */
            tmp[k++] = p[j++];
        } else {
            tmp[k++] = p[i++];
        }
    }
    while (i < h) {
        tmp[k++] = p[i++];
    }
    while (j < n) {
        tmp[k++] = p[j++];
    }
    memcpy(p, tmp, (size_t)n * sizeof(pair));
    return swaps;
}

static double kendall_sorted(nas_ctx *ctx, pair *p, int64_t n, nas_status *st) {
    *st = NAS_OK;
    if (n < 2) {
        return NAN;
    }
    qsort(p, (size_t)n, sizeof(pair), cmp_ab);
    /* ties in a (n1) and joint ties in (a, b) (n3) */
    double n1 = 0.0, n3 = 0.0;
    int64_t run_a = 1, run_ab = 1;
    for (int64_t i = 1; i <= n; i++) {
        const int same_a = i < n && p[i].a == p[i - 1].a;
        const int same_ab = same_a && p[i].b == p[i - 1].b;
        if (same_a) {
            run_a++;
        } else {
            n1 += 0.5 * (double)run_a * (double)(run_a - 1);
            run_a = 1;
        }
        if (same_ab) {
            run_ab++;
        } else {
            n3 += 0.5 * (double)run_ab * (double)(run_ab - 1);
            run_ab = 1;
        }
    }
    pair *tmp = nas_malloc(ctx, (size_t)n * sizeof(pair));
    if (tmp == NULL) {
        *st = NAS_ERR_NOMEM;
        return NAN;
    }
    const double swaps = sort_count_swaps(p, tmp, n);
    nas_free(ctx, tmp, (size_t)n * sizeof(pair));
    const double n2 = tie_pairs_b(p, n); /* p is sorted by b now */
    const double n0 = 0.5 * (double)n * (double)(n - 1);
    const double denom = sqrt((n0 - n1) * (n0 - n2));
    if (!(denom > 0.0)) {
        return NAN; /* one variable is constant */
    }
    return (n0 - n1 - n2 + n3 - 2.0 * swaps) / denom;
}

/* Average ranks (1-based) of v[0..n) into r. */
static nas_status average_ranks(nas_ctx *ctx, const double *v, int64_t n, double *r) {
    pair *p = nas_malloc(ctx, (size_t)(n > 0 ? n : 1) * sizeof(pair));
    if (p == NULL) {
        return NAS_ERR_NOMEM;
    }
    for (int64_t i = 0; i < n; i++) {
        p[i] = (pair){v[i], 0.0, i};
    }
    qsort(p, (size_t)n, sizeof(pair), cmp_ab);
    for (int64_t i = 0; i < n;) {
        int64_t j = i;
        while (j + 1 < n && p[j + 1].a == p[i].a) {
            j++;
        }
        const double avg = 0.5 * (double)(i + j) + 1.0;
        for (int64_t k = i; k <= j; k++) {
            r[p[k].idx] = avg;
        }
        i = j + 1;
    }
    nas_free(ctx, p, (size_t)(n > 0 ? n : 1) * sizeof(pair));
    return NAS_OK;
}

static double pearson_raw(const double *x, const double *y, int64_t n) {
    if (n < 2) {
        return NAN;
    }
    double mx = 0.0, my = 0.0;
    for (int64_t i = 0; i < n; i++) {
        mx += x[i];
        my += y[i];
    }
    mx /= (double)n;
    my /= (double)n;
    double sxy = 0.0, sxx = 0.0, syy = 0.0;
    for (int64_t i = 0; i < n; i++) {
        const double dx = x[i] - mx, dy = y[i] - my;
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    if (!(sxx > 0.0 && syy > 0.0)) {
        return NAN;
    }
    double r = sxy / sqrt(sxx * syy);
    return r > 1.0 ? 1.0 : (r < -1.0 ? -1.0 : r);
}

nas_status nas_stats_kendall(nas_ctx *ctx, const double *a, const double *b, int64_t n,
                             double *tau) {
    NAS_CHECK_ARG(ctx, n >= 0 && tau != NULL && (n == 0 || (a != NULL && b != NULL)));
    int64_t m;
    pair *p = finite_pairs(ctx, a, b, n, &m);
    if (p == NULL) {
        return NAS_ERR_NOMEM;
    }
    nas_status st;
    *tau = kendall_sorted(ctx, p, m, &st);
    nas_free(ctx, p, (size_t)(n > 0 ? n : 1) * sizeof(pair));
    return st;
}

/* Work arrays for the finite pairs of a and b: x, y (values), rx, ry (ranks), m the count. */
typedef struct finite_cols {
    double *x, *y, *rx, *ry;
    int64_t m;
    size_t bytes;
} finite_cols;

static nas_status finite_cols_make(nas_ctx *ctx, const double *a, const double *b, int64_t n,
                                   finite_cols *c) {
    c->bytes = (size_t)(n > 0 ? n : 1) * 4 * sizeof(double);
    c->x = nas_malloc(ctx, c->bytes);
    if (c->x == NULL) {
        return NAS_ERR_NOMEM;
    }
    const int64_t stride = n > 0 ? n : 1;
    c->y = c->x + stride;
    c->rx = c->y + stride;
    c->ry = c->rx + stride;
    c->m = 0;
    for (int64_t i = 0; i < n; i++) {
        if (isfinite(a[i]) && isfinite(b[i])) {
            c->x[c->m] = a[i];
            c->y[c->m] = b[i];
            c->m++;
        }
    }
    nas_status st = average_ranks(ctx, c->x, c->m, c->rx);
    if (st == NAS_OK) {
        st = average_ranks(ctx, c->y, c->m, c->ry);
    }
    if (st != NAS_OK) {
        nas_free(ctx, c->x, c->bytes);
        c->x = NULL;
    }
    return st;
}

/* Pearson r of the finite pairs, on their average ranks (Spearman) or their values. */
static nas_status correlation(nas_ctx *ctx, const double *a, const double *b, int64_t n,
                              int ranked, double *out) {
    NAS_CHECK_ARG(ctx, n >= 0 && out != NULL && (n == 0 || (a != NULL && b != NULL)));
    finite_cols c;
    const nas_status st = finite_cols_make(ctx, a, b, n, &c);
    if (st != NAS_OK) {
        return st;
    }
    *out = ranked ? pearson_raw(c.rx, c.ry, c.m) : pearson_raw(c.x, c.y, c.m);
    nas_free(ctx, c.x, c.bytes);
    return NAS_OK;
}

nas_status nas_stats_spearman(nas_ctx *ctx, const double *a, const double *b, int64_t n,
                              double *rho) {
    return correlation(ctx, a, b, n, 1, rho);
}

nas_status nas_stats_pearson(nas_ctx *ctx, const double *a, const double *b, int64_t n,
                             double *r) {
    return correlation(ctx, a, b, n, 0, r);
}

/* The K% figures on m finite pairs: k = max(1, round(frac * m)) items. */
static nas_status at_k(nas_ctx *ctx, const double *x, const double *y, int64_t m, double frac,
                       nas_stats_at_k *out) {
    out->k_frac = frac;
    out->k = (int64_t)floor(frac * (double)m + 0.5);
    out->k = out->k < 1 ? 1 : (out->k > m ? m : out->k);
    out->precision_top = out->precision_bottom = out->best_rank = out->worst_rank = NAN;
    if (m < 1) {
        out->k = 0;
        return NAS_OK;
    }
    const size_t bytes = (size_t)m * (2 * sizeof(pair) + sizeof(int64_t) + 2);
    char *mem = nas_malloc(ctx, bytes);
    if (mem == NULL) {
        return NAS_ERR_NOMEM;
    }
    pair *by_est = (pair *)mem, *by_true = by_est + m;
    int64_t *true_rank = (int64_t *)(by_true + m);
    unsigned char *est_top = (unsigned char *)(true_rank + m), *est_bottom = est_top + m;
    for (int64_t i = 0; i < m; i++) {
        by_est[i] = (pair){x[i], 0.0, i};
        by_true[i] = (pair){y[i], 0.0, i};
    }
    qsort(by_est, (size_t)m, sizeof(pair), cmp_desc);
    qsort(by_true, (size_t)m, sizeof(pair), cmp_desc);
    memset(est_top, 0, (size_t)m * 2);
    for (int64_t i = 0; i < m; i++) {
        true_rank[by_true[i].idx] = i; /* 0 = best */
        est_top[by_est[i].idx] = i < out->k;
        est_bottom[by_est[i].idx] = i >= m - out->k;
    }
    int64_t hit_top = 0, hit_bottom = 0, best = m, worst = -1;
    for (int64_t i = 0; i < out->k; i++) {
        hit_top += est_top[by_true[i].idx];
        hit_bottom += est_bottom[by_true[m - 1 - i].idx];
        const int64_t r = true_rank[by_est[i].idx];
        best = r < best ? r : best;
        worst = r > worst ? r : worst;
    }
    out->precision_top = (double)hit_top / (double)out->k;
    out->precision_bottom = (double)hit_bottom / (double)out->k;
    /* rank percentiles: 0 = the best item, 1 = the worst (Ning et al.'s BR@K / WR@K) */
    const double scale = m > 1 ? 1.0 / (double)(m - 1) : 0.0;
    out->best_rank = (double)best * scale;
    out->worst_rank = (double)worst * scale;
    nas_free(ctx, mem, bytes);
    return NAS_OK;
}

nas_status nas_stats_at_k_compute(nas_ctx *ctx, const double *est, const double *truth, int64_t n,
                                  double k_frac, nas_stats_at_k *out) {
    NAS_CHECK_ARG(ctx, n >= 0 && out != NULL && (n == 0 || (est != NULL && truth != NULL)));
    if (!(k_frac > 0.0 && k_frac <= 1.0)) {
        return nas_fail(ctx, NAS_ERR_ARG, "stats: K must be a fraction in (0, 1], got %g", k_frac);
    }
    finite_cols c;
    nas_status st = finite_cols_make(ctx, est, truth, n, &c);
    if (st != NAS_OK) {
        return st;
    }
    st = at_k(ctx, c.x, c.y, c.m, k_frac, out);
    nas_free(ctx, c.x, c.bytes);
    return st;
}

nas_status nas_stats_correlate(nas_ctx *ctx, const double *est, const double *truth, int64_t n,
                               int n_k, const double *k_fracs, nas_stats_report *out) {
    NAS_CHECK_ARG(ctx, n >= 0 && out != NULL && (n == 0 || (est != NULL && truth != NULL)));
    NAS_CHECK_ARG(ctx, n_k >= 0 && n_k <= NAS_STATS_MAX_K && (n_k == 0 || k_fracs != NULL));
    for (int i = 0; i < n_k; i++) {
        if (!(k_fracs[i] > 0.0 && k_fracs[i] <= 1.0)) {
            return nas_fail(ctx, NAS_ERR_ARG, "stats: K must be a fraction in (0, 1], got %g",
                            k_fracs[i]);
        }
    }
    memset(out, 0, sizeof(*out));
    finite_cols c;
    nas_status st = finite_cols_make(ctx, est, truth, n, &c);
    if (st != NAS_OK) {
        return st;
    }
    out->n = c.m;
    out->n_dropped = n - c.m;
    out->spearman_rho = pearson_raw(c.rx, c.ry, c.m);
    out->pearson_r = pearson_raw(c.x, c.y, c.m);
    out->n_k = n_k;
    for (int i = 0; i < n_k && st == NAS_OK; i++) {
        st = at_k(ctx, c.x, c.y, c.m, k_fracs[i], &out->at[i]);
    }
    if (st == NAS_OK) {
        st = nas_stats_kendall(ctx, c.x, c.y, c.m, &out->kendall_tau);
    }
    nas_free(ctx, c.x, c.bytes);
    return st;
}
