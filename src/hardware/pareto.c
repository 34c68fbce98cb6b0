/* pareto.c - Pareto utilities for multi-objective search: non-dominated sorting and crowding
 * distance (Deb et al. 2002, the two halves of NSGA-II's selection), the 2-D front of cost
 * against value and its hypervolume (the measure the tests compare fronts by). All objectives
 * of nas_pareto_rank / _crowding are minimised; NAN counts as +infinity. */
#include "hardware_int.h"

#include <math.h>
#include <stdlib.h>

static double clean(double v) {
    return isnan(v) ? (double)INFINITY : v;
}

/* Does a dominate b (no worse in every objective, better in one)? */
static int dominates(const double *a, const double *b, int m) {
    int better = 0;
    for (int k = 0; k < m; k++) {
        const double x = clean(a[k]), y = clean(b[k]);
        if (x > y) {
            return 0;
        }
        better |= x < y;
    }
    return better;
}

/* qsort context: sort indices by (obj0, obj1, index); qsort_r is GNU. */
typedef struct sort_ctx {
    const double *a, *b; /* primary and secondary keys, NULL b: none */
    int b_desc;
} sort_ctx;

static int cmp_idx(const void *x, const void *y, void *arg) {
    const sort_ctx *c = arg;
    const int64_t i = *(const int64_t *)x, j = *(const int64_t *)y;
    const double ai = clean(c->a[i]), aj = clean(c->a[j]);
    if (ai != aj) {
        return ai < aj ? -1 : 1;
    }
    if (c->b != NULL) {
        double bi = c->b[i], bj = c->b[j];
        bi = isnan(bi) ? (c->b_desc ? -(double)INFINITY : (double)INFINITY) : bi;
        bj = isnan(bj) ? (c->b_desc ? -(double)INFINITY : (double)INFINITY) : bj;
        if (bi != bj) {
            return (bi < bj) == !c->b_desc ? -1 : 1;
        }
    }
    return (i > j) - (i < j);
}

/* Two objectives: sweep points sorted by (f0, f1); front r keeps its last member, and a point
 * joins the first front whose last member does not dominate it (an earlier member of that front
 * has a larger f1, so it cannot either). k0, k1, last0, last1: n doubles of scratch each. */
static int rank2(const double *obj, int64_t n, int *rank, int64_t *order, double *k0, double *k1,
                 double *last0, double *last1) {
    for (int64_t i = 0; i < n; i++) {
        order[i] = i;
        k0[i] = clean(obj[2 * i]);
        k1[i] = clean(obj[2 * i + 1]);
    }
    sort_ctx c = {k0, k1, 0};
    qsort_r(order, (size_t)n, sizeof(int64_t), cmp_idx, &c);
    int fronts = 0;
    for (int64_t s = 0; s < n; s++) {
        const double p[2] = {k0[order[s]], k1[order[s]]};
        int r = 0;
        while (r < fronts) {
            const double q[2] = {last0[r], last1[r]};
            if (!dominates(q, p, 2)) {
                break;
            }
            r++;
        }
        if (r == fronts) {
            fronts++;
        }
        last0[r] = p[0];
        last1[r] = p[1];
        rank[order[s]] = r;
    }
    return fronts;
}

int nas_pareto_rank(nas_ctx *ctx, const double *obj, int64_t n, int m, int *rank) {
    if (ctx == NULL || obj == NULL || rank == NULL || n < 0 || m < 1) {
        return ctx != NULL ? nas_fail(ctx, NAS_ERR_ARG, "pareto: bad arguments") : -1;
    }
    if (n == 0) {
        return 0;
    }
    if (m == 2) {
        int64_t *order = nas_malloc(ctx, (size_t)n * sizeof(int64_t));
        double *scratch = nas_malloc(ctx, (size_t)(4 * n) * sizeof(double));
        const int fronts = order && scratch ? rank2(obj, n, rank, order, scratch, scratch + n,
                                                    scratch + 2 * n, scratch + 3 * n)
                                            : -1;
        nas_free(ctx, order, order ? (size_t)n * sizeof(int64_t) : 0);
        nas_free(ctx, scratch, scratch ? (size_t)(4 * n) * sizeof(double) : 0);
        return fronts < 0 ? nas_fail(ctx, NAS_ERR_NOMEM, "pareto: out of memory") : fronts;
    }
    /* General m: peel fronts; a point is in the current front when no unranked point
     * dominates it. O(fronts * n^2 * m), fine for populations. */
    for (int64_t i = 0; i < n; i++) {
        rank[i] = -1;
    }
    int64_t left = n;
    int front = 0;
    for (; left > 0; front++) {
        for (int64_t i = 0; i < n; i++) {
            if (rank[i] != -1) {
                continue;
            }
            int dominated = 0; /* by a point still unranked this round (-1 or -2) */
            for (int64_t j = 0; j < n && !dominated; j++) {
                dominated = j != i && rank[j] < 0 && dominates(obj + j * m, obj + i * m, m);
            }
            if (!dominated) {
                rank[i] = -2; /* provisional member of this front */
            }
        }
        for (int64_t i = 0; i < n; i++) {
            if (rank[i] == -2) {
                rank[i] = front;
                left--;
            }
        }
    }
    return front;
}

nas_status nas_pareto_crowding(nas_ctx *ctx, const double *obj, int64_t n, int m,
                               const int *rank, double *dist) {
    NAS_CHECK_ARG(ctx, obj != NULL && rank != NULL && dist != NULL && n >= 0 && m >= 1);
    int64_t *order = nas_malloc(ctx, (size_t)(n > 0 ? n : 1) * sizeof(int64_t));
    double *key = nas_malloc(ctx, (size_t)(n > 0 ? n : 1) * sizeof(double));
    if (order == NULL || key == NULL) {
        nas_free(ctx, order, order ? (size_t)(n > 0 ? n : 1) * sizeof(int64_t) : 0);
        nas_free(ctx, key, key ? (size_t)(n > 0 ? n : 1) * sizeof(double) : 0);
        return NAS_ERR_NOMEM;
    }
    int max_rank = -1;
    for (int64_t i = 0; i < n; i++) {
        dist[i] = 0.0;
        max_rank = rank[i] > max_rank ? rank[i] : max_rank;
    }
    for (int r = 0; r <= max_rank; r++) {
        for (int k = 0; k < m; k++) {
            int64_t cnt = 0;
            for (int64_t i = 0; i < n; i++) {
                key[i] = clean(obj[i * m + k]);
                if (rank[i] == r) {
                    order[cnt++] = i;
                }
            }
            if (cnt == 0) {
                break;
            }
            sort_ctx c = {key, NULL, 0};
            qsort_r(order, (size_t)cnt, sizeof(int64_t), cmp_idx, &c);
            const double lo = key[order[0]], hi = key[order[cnt - 1]];
            dist[order[0]] = INFINITY;
            dist[order[cnt - 1]] = INFINITY;
            if (!(hi > lo) || !isfinite(hi - lo)) {
                continue;
            }
            for (int64_t s = 1; s + 1 < cnt; s++) {
                dist[order[s]] += (key[order[s + 1]] - key[order[s - 1]]) / (hi - lo);
            }
        }
    }
    nas_free(ctx, order, (size_t)(n > 0 ? n : 1) * sizeof(int64_t));
    nas_free(ctx, key, (size_t)(n > 0 ? n : 1) * sizeof(double));
    return NAS_OK;
}

int64_t nas_pareto_front2(nas_ctx *ctx, const double *cost, const double *value, int64_t n,
                          int64_t *idx) {
    if (ctx == NULL || cost == NULL || value == NULL || idx == NULL || n <= 0) {
        return 0;
    }
    int64_t *order = nas_malloc(ctx, (size_t)n * sizeof(int64_t));
    if (order == NULL) {
        return 0;
    }
    for (int64_t i = 0; i < n; i++) {
        order[i] = i;
    }
    sort_ctx c = {cost, value, 1}; /* cost ascending, value descending, index ascending */
    qsort_r(order, (size_t)n, sizeof(int64_t), cmp_idx, &c);
    int64_t k = 0;
    double best = -INFINITY;
    for (int64_t s = 0; s < n; s++) {
        const int64_t i = order[s];
        if (isnan(cost[i]) || isnan(value[i])) {
            continue;
        }
        if (value[i] > best) {
            idx[k++] = i;
            best = value[i];
        }
    }
    nas_free(ctx, order, (size_t)n * sizeof(int64_t));
    return k;
}

double nas_pareto_hypervolume2(nas_ctx *ctx, const double *cost, const double *value, int64_t n,
                               double ref_cost, double ref_value) {
    if (n <= 0) {
        return 0.0;
    }
    int64_t *idx = nas_malloc(ctx, (size_t)n * sizeof(int64_t));
    if (idx == NULL) {
        return NAN;
    }
    const int64_t k = nas_pareto_front2(ctx, cost, value, n, idx);
    /* The front by ascending cost has ascending value: the best value at cost <= x is that of
     * the last front point at or below x. */
    double hv = 0.0;
    for (int64_t s = 0; s < k; s++) {
        const int64_t i = idx[s];
        if (!(cost[i] < ref_cost) || !(value[i] > ref_value)) {
            continue;
        }
        const double next = s + 1 < k && cost[idx[s + 1]] < ref_cost ? cost[idx[s + 1]] : ref_cost;
        hv += (next - cost[i]) * (value[i] - ref_value);
    }
    nas_free(ctx, idx, (size_t)n * sizeof(int64_t));
    return hv;
}
