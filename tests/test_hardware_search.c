/* test_hardware_search.c - costs, budgets, Pareto utilities, NSGA-II and constrained search.
 * Ground truths: naive twins of the Pareto sort and hypervolume; the latency CSV read directly;
 * the exact Pareto front and feasible optima from enumerating all 15,625 NB201 cells; the HELP
 * paper's Table 4 picks (REFERENCE_NUMBERS.md section 5: NB201 index, latency, test accuracy). */
#include "check.h"
#include "nascent.h"
#include "strategies/strategies_int.h" /* a recording strategy to watch the wrapper's tells */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LAT_CSV "data/nb201_latency/nb201_latency_ms.csv"
#define N_CELLS 15625

/* ------------------------------------------------------------------ Pareto twins */

static int naive_dominates(const double *a, const double *b, int m) {
    int better = 0;
    for (int k = 0; k < m; k++) {
        if (a[k] > b[k]) {
            return 0;
        }
        better |= a[k] < b[k];
    }
    return better;
}

/* rank = length of the longest chain of dominators (the front number), by peeling. */
static void naive_rank(const double *obj, int n, int m, int *rank) {
    for (int i = 0; i < n; i++) {
        rank[i] = -1;
    }
    for (int f = 0, left = n; left > 0; f++) {
        int mark[512];
        for (int i = 0; i < n; i++) {
            mark[i] = 0;
            if (rank[i] != -1) {
                continue;
            }
            int dom = 0;
            for (int j = 0; j < n; j++) {
                dom |= rank[j] == -1 && naive_dominates(obj + j * m, obj + i * m, m);
            }
            mark[i] = !dom;
        }
        for (int i = 0; i < n; i++) {
            if (mark[i]) {
                rank[i] = f;
                left--;
            }
        }
    }
}

static void test_pareto_vs_naive(void) {
    nas_ctx *ctx = nas_ctx_new();
    nas_rng r = nas_rng_make(3, 0);
    enum { N = 300 };
    static double obj2[N * 2], obj3[N * 3], cost[N], value[N];
    static int rank[N], want[N];
    for (int i = 0; i < N; i++) {
        obj2[2 * i] = (double)nas_rng_below(&r, 40); /* integer grid: ties and duplicates */
        obj2[2 * i + 1] = (double)nas_rng_below(&r, 40);
        for (int k = 0; k < 3; k++) {
            obj3[3 * i + k] = (double)nas_rng_below(&r, 12);
        }
        cost[i] = obj2[2 * i];
        value[i] = -obj2[2 * i + 1];
    }
    const int f2 = nas_pareto_rank(ctx, obj2, N, 2, rank);
    naive_rank(obj2, N, 2, want);
    int bad = 0, max_want = 0;
    for (int i = 0; i < N; i++) {
        bad += rank[i] != want[i];
        max_want = want[i] > max_want ? want[i] : max_want;
    }
    CHECK(bad == 0 && f2 == max_want + 1, "2-D ranks: %d differ, %d fronts vs %d", bad, f2,
          max_want + 1);
    const int f3 = nas_pareto_rank(ctx, obj3, N, 3, rank);
    naive_rank(obj3, N, 3, want);
    bad = 0;
    max_want = 0;
    for (int i = 0; i < N; i++) {
        bad += rank[i] != want[i];
        max_want = want[i] > max_want ? want[i] : max_want;
    }
    CHECK(bad == 0 && f3 == max_want + 1, "3-D ranks: %d differ", bad);
    /* front2 = the distinct points of rank 0 (first index of duplicates) */
    static int64_t idx[N];
    const int64_t k = nas_pareto_front2(ctx, cost, value, N, idx);
    naive_rank(obj2, N, 2, want);
    int64_t distinct0 = 0;
    for (int i = 0; i < N; i++) {
        int dup = 0;
        for (int j = 0; j < i; j++) {
            dup |= cost[j] == cost[i] && value[j] == value[i];
        }
        distinct0 += want[i] == 0 && !dup;
    }
    CHECK(k == distinct0, "front2 has %lld points, naive %lld", (long long)k, (long long)distinct0);
    for (int64_t s = 0; s < k; s++) {
        CHECK(want[idx[s]] == 0, "front2 point %lld not on the first front", (long long)idx[s]);
        CHECK(s == 0 || cost[idx[s]] > cost[idx[s - 1]], "front2 not by ascending cost");
    }
    /* hypervolume vs counting unit cells of the grid [0, 40) x (-40, 0] */
    const double hv = nas_pareto_hypervolume2(ctx, cost, value, N, 40.0, -40.0);
    double cells = 0;
    for (int x = 0; x < 40; x++) {
        for (int y = -40; y < 0; y++) {
            /* cell [x, x+1] x [y, y+1] is dominated when a point has c <= x, v >= y + 1 */
            int dom = 0;
            for (int i = 0; i < N && !dom; i++) {
                dom = cost[i] <= x && value[i] >= y + 1;
            }
            cells += dom;
        }
    }
    CHECK(fabs(hv - cells) < 1e-9, "hypervolume %g vs %g cells", hv, cells);
    /* crowding: boundary points infinite, interior finite and non-negative */
    static double dist[N];
    nas_pareto_rank(ctx, obj2, N, 2, rank);
    CHECK(nas_pareto_crowding(ctx, obj2, N, 2, rank, dist) == NAS_OK, "crowding");
    int inf0 = 0;
    for (int i = 0; i < N; i++) {
        CHECK(dist[i] >= 0, "negative crowding");
        inf0 += rank[i] == 0 && isinf(dist[i]);
    }
    CHECK(inf0 >= 2 || k < 2, "front boundary points are infinitely far: %d", inf0);
    nas_ctx_free(ctx);
}

/* ------------------------------------------------------------------ NB201 data */

typedef struct nb201_data {
    nas_ctx *ctx;
    nas_space *space;
    nas_evaluator *eval; /* table:cifar100: reward = sz_cifar100_val_200ep, test = test_200ep */
    nas_nb201_table *table;
    float *val, *test; /* by enumeration index */
} nb201_data;

static int nb201_open(nb201_data *d) {
    memset(d, 0, sizeof(*d));
    d->ctx = nas_ctx_new();
    if (nas_space_open(d->ctx, "nb201", &d->space) != NAS_OK ||
        nas_evaluator_open(d->ctx, "table:cifar100", d->space, NULL, &d->eval) != NAS_OK ||
        nas_nb201_table_load(d->ctx, NULL, &d->table) != NAS_OK) {
        CHECK(0, "nb201 data: %s", nas_errmsg(d->ctx));
        return 0;
    }
    d->val = malloc(N_CELLS * sizeof(float));
    d->test = malloc(N_CELLS * sizeof(float));
    for (int64_t i = 0; i < N_CELLS; i++) {
        nas_arch a;
        nas_eval_result r;
        nas_space_enumerate(d->space, i, &a);
        nas_evaluator_eval(d->eval, &a, &r);
        d->val[i] = (float)r.reward;
        d->test[i] = (float)r.test;
    }
    return 1;
}

static void nb201_close(nb201_data *d) {
    free(d->val);
    free(d->test);
    nas_nb201_table_free(d->table);
    nas_evaluator_free(d->eval);
    nas_space_free(d->space);
    nas_ctx_free(d->ctx);
}

/* Latency of every cell (enumeration order) from a cost model on a device column. */
static nas_cost_model *latencies(nb201_data *d, const char *column, double *lat) {
    char src[128];
    snprintf(src, sizeof src, "table:%s", column);
    nas_cost_model *cm = NULL;
    if (nas_cost_model_new(d->ctx, d->space, NULL, src, &cm) != NAS_OK) {
        CHECK(0, "cost model %s: %s", src, nas_errmsg(d->ctx));
        return NULL;
    }
    for (int64_t i = 0; i < N_CELLS; i++) {
        nas_arch a;
        nas_cost c;
        nas_space_enumerate(d->space, i, &a);
        nas_cost_eval(cm, &a, NAS_COST_LATENCY, &c);
        lat[i] = c.latency_ms;
    }
    return cm;
}

/* The table index against the CSV read here: every row's arch_str and column value. */
static void test_latency_table_index(void) {
    nb201_data d;
    if (!nb201_open(&d)) {
        nb201_close(&d);
        return;
    }
    nas_cost_model *cm = NULL;
    CHECK(nas_cost_model_new(d.ctx, d.space, NULL, "table:fpga", &cm) == NAS_OK, "%s",
          nas_errmsg(d.ctx));
    FILE *f = fopen(LAT_CSV, "r");
    CHECK(f != NULL, "open %s", LAT_CSV);
    static char line[4096];
    int col = -1, rows = 0, bad = 0;
    if (f != NULL && fgets(line, sizeof line, f) != NULL) {
        int c = 0;
        for (char *tok = strtok(line, ",\n"); tok != NULL; tok = strtok(NULL, ",\n"), c++) {
            col = strcmp(tok, "fpga") == 0 ? c : col;
        }
    }
    while (cm != NULL && f != NULL && fgets(line, sizeof line, f) != NULL) {
        char *fields[40];
        int n = 0;
        for (char *tok = strtok(line, ",\n"); tok != NULL && n < 40; tok = strtok(NULL, ",\n")) {
            fields[n++] = tok;
        }
        nas_arch a;
        nas_cost c;
        if (n <= col || nas_space_decode(d.ctx, d.space, fields[1], &a) != NAS_OK ||
            nas_cost_eval(cm, &a, NAS_COST_LATENCY, &c) != NAS_OK ||
            fabs(c.latency_ms - strtod(fields[col], NULL)) > 1e-12) {
            bad++;
        }
        rows++;
    }
    if (f != NULL) {
        fclose(f);
    }
    CHECK(rows == N_CELLS && bad == 0, "%d rows, %d mismatches", rows, bad);
    nas_cost c;
    CHECK(cm != NULL && nas_cost_eval(cm, &(nas_arch){.n = 6}, NAS_COST_LATENCY, &c) == NAS_OK,
          "all-none cell has a row");
    nas_cost_model_free(cm);
    CHECK(nas_cost_model_new(d.ctx, d.space, NULL, "table:no_such_device", &cm) == NAS_ERR_FORMAT &&
              strstr(nas_errmsg(d.ctx), "no_such_device") != NULL,
          "unknown column: %s", nas_errmsg(d.ctx));
    CHECK(nas_cost_model_new(d.ctx, d.space, NULL, "stopwatch", &cm) == NAS_ERR_ARG,
          "unknown source");
    nb201_close(&d);
}

/* ------------------------------------------------------------------ budgets */

static void test_budget_check(void) {
    nb201_data d;
    if (!nb201_open(&d)) {
        nb201_close(&d);
        return;
    }
    static double lat[N_CELLS];
    nas_cost_model *cm = latencies(&d, "gold_6226", lat);
    double lo = INFINITY;
    for (int i = 0; i < N_CELLS; i++) {
        lo = fmin(lo, lat[i]);
    }
    nas_budget b = {.max_latency_ms = 0.999 * lo};
    nas_arch w;
    CHECK(cm != NULL && nas_budget_check(cm, &b, 1, &w) == NAS_ERR_INFEASIBLE,
          "below the fastest cell: infeasible");
    CHECK(strstr(nas_errmsg(d.ctx), "latency") != NULL, "message: %s", nas_errmsg(d.ctx));
    b.max_latency_ms = lo;
    nas_cost c;
    CHECK(cm != NULL && nas_budget_check(cm, &b, 1, &w) == NAS_OK, "the fastest cell fits: %s",
          nas_errmsg(d.ctx));
    CHECK(cm != NULL && nas_cost_eval(cm, &w, NAS_COST_LATENCY, &c) == NAS_OK &&
              c.latency_ms <= lo, "witness latency %g", c.latency_ms);
    nas_cost_model_free(cm);
    /* params through the network (small build for speed): impossible and possible limits */
    const nas_build_opts small = {.shape = {3, 32, 32, 10}, .channels_mult = 0.25, .cells = 1};
    CHECK(nas_cost_model_new(d.ctx, d.space, &small, NULL, &cm) == NAS_OK, "%s", nas_errmsg(d.ctx));
    nas_budget p = {.max_params = 1000};
    CHECK(cm != NULL && nas_budget_check(cm, &p, 1, &w) == NAS_ERR_INFEASIBLE, "1000 params");
    printf("  %s\n", nas_errmsg(d.ctx));
    /* the all-'none' cell has the fewest parameters; a limit just above it is feasible */
    nas_model *m = NULL;
    CHECK(nas_space_build(d.ctx, d.space, &(nas_arch){.n = 6}, &small, &m) == NAS_OK, "build");
    p.max_params = m != NULL ? (double)nas_model_n_params(m) : 1;
    nas_model_free(m);
    CHECK(cm != NULL && nas_budget_check(cm, &p, 2, &w) == NAS_OK, "min params fits: %s",
          nas_errmsg(d.ctx));
    CHECK(nas_space_build(d.ctx, d.space, &w, &small, &m) == NAS_OK &&
              (double)nas_model_n_params(m) <= p.max_params, "witness within the limit");
    nas_model_free(m);
    nas_budget none = {0};
    CHECK(nas_budget_what(&none) == 0 && nas_budget_feasible(&none, &c), "no limits");
    nas_budget l = {.max_latency_ms = 5};
    CHECK(cm != NULL && nas_budget_check(cm, &l, 1, &w) == NAS_ERR_ARG, "latency without source");
    nas_cost_model_free(cm);
    nb201_close(&d);
}

/* Params and MACs of the cost model (counted from the network description, no weights) against
 * a built network's own counts, on sampled architectures of two spaces. */
static void test_cost_counts_vs_build(void) {
    nas_ctx *ctx = nas_ctx_new();
    static const char *const spaces[] = {"nb201", "mbnet32"};
    const nas_build_opts small = {.shape = {3, 32, 32, 10}, .channels_mult = 0.25, .cells = 1},
                         plain = {.no_init = 1}; /* counting needs no weights */
    for (int k = 0; k < 2; k++) {
        nas_space *sp = NULL;
        nas_cost_model *cm = NULL;
        const nas_build_opts *bo = k == 0 ? &small : &plain;
        CHECK(nas_space_open(ctx, spaces[k], &sp) == NAS_OK &&
                  nas_cost_model_new(ctx, sp, bo, NULL, &cm) == NAS_OK,
              "%s: %s", spaces[k], nas_errmsg(ctx));
        nas_rng r = nas_rng_make(5, (uint64_t)k);
        int bad = 0;
        for (int i = 0; cm != NULL && i < 4; i++) {
            nas_arch a;
            nas_space_sample(sp, &r, &a);
            nas_cost c;
            nas_model *m = NULL;
            int64_t macs = -1;
            if (nas_cost_eval(cm, &a, NAS_COST_PARAMS | NAS_COST_MACS, &c) != NAS_OK ||
                nas_space_build(ctx, sp, &a, bo, &m) != NAS_OK ||
                nas_model_count(m, &macs, NULL) != NAS_OK) {
                CHECK(0, "%s: %s", spaces[k], nas_errmsg(ctx));
            } else {
                bad += c.params != (double)nas_model_n_params(m) || c.macs != (double)macs;
            }
            nas_model_free(m);
        }
        CHECK(bad == 0, "%s: %d architectures whose counted params/MACs differ from the build's",
              spaces[k], bad);
        nas_cost_model_free(cm);
        nas_space_free(sp);
    }
    nas_ctx_free(ctx);
}

/* ------------------------------------------------------------------ NSGA-II */

typedef struct front_ref {
    double hv_space, hv_front; /* exact hypervolumes at the two reference points */
    double ref_cost_space, ref_val_space, ref_cost_front, ref_val_front;
} front_ref;

static void test_nsga2_front(void) {
    nb201_data d;
    if (!nb201_open(&d)) {
        nb201_close(&d);
        return;
    }
    const char *devices[2] = {"gold_6226", "eyeriss"};
    const int seeds = getenv("NAS_TEST_LONG") ? 10 : 3;
    static double lat[N_CELLS], val[N_CELLS];
    static int64_t idx[N_CELLS];
    for (int dv = 0; dv < 2; dv++) {
        nas_cost_model *cm = latencies(&d, devices[dv], lat);
        if (cm == NULL) {
            continue;
        }
        front_ref fr = {.ref_cost_space = -INFINITY, .ref_val_space = INFINITY};
        for (int i = 0; i < N_CELLS; i++) {
            val[i] = d.val[i];
            fr.ref_cost_space = fmax(fr.ref_cost_space, lat[i]);
            fr.ref_val_space = fmin(fr.ref_val_space, val[i]);
        }
        const int64_t k = nas_pareto_front2(d.ctx, lat, val, N_CELLS, idx);
        fr.ref_cost_front = lat[idx[k - 1]]; /* the nadir of the exact front */
        fr.ref_val_front = val[idx[0]];
        fr.hv_space = nas_pareto_hypervolume2(d.ctx, lat, val, N_CELLS, fr.ref_cost_space,
                                              fr.ref_val_space);
        fr.hv_front = nas_pareto_hypervolume2(d.ctx, lat, val, N_CELLS, fr.ref_cost_front,
                                              fr.ref_val_front);
        double worst = 1, sum = 0, sum_front = 0;
        for (int seed = 0; seed < seeds; seed++) {
            nas_strategy *s = NULL;
            const nas_strategy_opts so = {.seed = (uint64_t)seed, .budget = 1000,
                                          .params = "population=50"};
            CHECK(nas_strategy_new(d.ctx, "nsga2", d.space, &so, &s) == NAS_OK, "%s",
                  nas_errmsg(d.ctx));
            CHECK(s != NULL && nas_strategy_set_cost(s, nas_cost_latency_cb, cm) == NAS_OK,
                  "set cost");
            nas_trial *trials = NULL;
            int64_t n = 0;
            const nas_search_opts o = {.queries = 1000};
            CHECK(s != NULL && nas_search_run(d.ctx, d.space, s, d.eval, NULL, 0, &o, &trials,
                                              &n) == NAS_OK && n == 1000,
                  "search: %s", nas_errmsg(d.ctx));
            static double tl[1000], tv[1000];
            for (int64_t i = 0; i < n; i++) {
                nas_cost c;
                nas_eval_result r;
                nas_cost_eval(cm, &trials[i].arch, NAS_COST_LATENCY, &c);
                nas_evaluator_eval(d.eval, &trials[i].arch, &r); /* its own value, not a cached
                                                                     isomorph's */
                tl[i] = c.latency_ms;
                tv[i] = r.reward;
            }
            const double hv = nas_pareto_hypervolume2(d.ctx, tl, tv, n, fr.ref_cost_space,
                                                      fr.ref_val_space) / fr.hv_space;
            const double hvf = nas_pareto_hypervolume2(d.ctx, tl, tv, n, fr.ref_cost_front,
                                                       fr.ref_val_front) / fr.hv_front;
            worst = fmin(worst, hv);
            sum += hv;
            sum_front += hvf;
            nas_trials_free(d.ctx, trials, n);
            nas_strategy_free(s);
        }
        printf("  nsga2 %-9s 1000 evals, %d seeds: HV ratio mean %.4f min %.4f (ref: worst cell); "
               "mean %.4f (ref: nadir of the exact front, %lld points)\n", devices[dv], seeds,
               sum / seeds, worst, sum_front / seeds, (long long)k);
        CHECK(worst >= 0.98, "%s: hypervolume ratio %.4f below 0.98", devices[dv], worst);
        nas_cost_model_free(cm);
    }
    /* without a cost, nsga2 says what it needs */
    nas_strategy *s = NULL;
    nas_arch a;
    CHECK(nas_strategy_new(d.ctx, "nsga2", d.space, NULL, &s) == NAS_OK &&
              nas_strategy_ask(s, &a) == NAS_ERR_STATE, "nsga2 without a cost");
    nas_strategy_free(s);
    CHECK(nas_strategy_new(d.ctx, "re", d.space, NULL, &s) == NAS_OK &&
              nas_strategy_set_cost(s, nas_cost_latency_cb, NULL) == NAS_ERR_UNSUPPORTED,
          "re has one objective");
    nas_strategy_free(s);
    nb201_close(&d);
}

/* ------------------------------------------------------------------ HELP Table 4 */

typedef struct help_pick {
    const char *device;
    int64_t index;       /* official NB201 index */
    double latency_ms;   /* REFERENCE_NUMBERS.md "our latency" */
    double test;         /* CIFAR-100 test accuracy */
} help_pick;

static const help_pick picks[] = {
    {"titan_rtx_256", 248, 17.77, 69.69}, {"titan_rtx_256", 11000, 18.92, 71.52},
    {"titan_rtx_256", 10603, 24.23, 71.76}, {"gold_6226", 4791, 8.03, 67.27},
    {"gold_6226", 10188, 10.68, 70.16},   {"gold_6226", 3456, 14.32, 72.11},
    {"pixel2", 248, 13, 69.69},           {"pixel2", 10603, 19, 71.76},
    {"pixel2", 6111, 25, 73.22},          {"eyeriss", 11000, 3.89, 71.52},
    {"eyeriss", 10603, 5.12, 71.76},      {"eyeriss", 9930, 9.05, 73.51},
    {"fpga", 10188, 3.83, 70.16},         {"fpga", 10603, 4.68, 71.76},
    {"fpga", 9930, 7.42, 73.51},
};

typedef struct help_device {
    const char *device;
    double limits[3];
} help_device;

static const help_device help_devices[] = {
    {"titan_rtx_256", {18, 21, 25}}, {"gold_6226", {8, 11, 14}}, {"pixel2", {14, 18, 22}},
    {"eyeriss", {5, 7, 9}},          {"fpga", {4, 5, 6}},
};

/* Run `strategy` (its default parameters) under a latency limit through the constrained wrapper;
 * the best trial's arch and reward, *repeats the trials answered from the cache (a repeated
 * isomorphism class), *rejected the infeasible proposals turned away before any query. */
static nas_status constrained_run(nb201_data *d, nas_cost_model *cm, const char *strategy,
                                  uint64_t seed, double limit, int64_t queries, nas_arch *best,
                                  double *reward, int *all_feasible, int64_t *repeats,
                                  int64_t *rejected) {
    nas_strategy *inner = NULL, *s = NULL;
    const nas_strategy_opts so = {.seed = seed, .budget = queries};
    nas_status st = nas_strategy_new(d->ctx, strategy, d->space, &so, &inner);
    const nas_constraint_opts co = {.budget = {.max_latency_ms = limit}};
    if (st == NAS_OK) {
        st = nas_strategy_constrain(inner, cm, &co, &s);
    }
    nas_trial *trials = NULL;
    int64_t n = 0;
    const nas_search_opts o = {.queries = queries};
    if (st == NAS_OK) {
        st = nas_search_run(d->ctx, d->space, s, d->eval, NULL, 0, &o, &trials, &n);
    }
    *all_feasible = 1;
    *repeats = 0;
    *rejected = s != NULL ? nas_strategy_rejected(s) : 0;
    for (int64_t i = 0; st == NAS_OK && i < n; i++) {
        nas_cost c;
        nas_cost_eval(cm, &trials[i].arch, NAS_COST_LATENCY, &c);
        *all_feasible &= c.latency_ms <= limit;
        *repeats += trials[i].cached;
    }
    if (st == NAS_OK && n != queries && strcmp(strategy, "grid") != 0) {
        st = nas_fail(d->ctx, NAS_ERR_STATE, "%s: %lld trials of %lld queries", strategy,
                      (long long)n, (long long)queries);
    }
    const int64_t b = st == NAS_OK ? nas_trials_best(trials, n) : -1;
    if (b >= 0) {
        *best = trials[b].arch;
        *reward = trials[b].reward;
    }
    nas_trials_free(d->ctx, trials, n);
    nas_strategy_free(s);
    return st;
}

static void test_help_table4(void) {
    nb201_data d;
    if (!nb201_open(&d)) {
        nb201_close(&d);
        return;
    }
    static double lat[N_CELLS];
    const int re_seeds = 20;
    int re_hits_total = 0, re_near_total = 0, re_raw_total = 0, re_runs_total = 0;
    int rows_majority = 0;
    for (size_t dv = 0; dv < sizeof(help_devices) / sizeof(help_devices[0]); dv++) {
        const help_device *hd = &help_devices[dv];
        nas_cost_model *cm = latencies(&d, hd->device, lat);
        if (cm == NULL) {
            continue;
        }
        /* the published picks: our table gives their latency and test accuracy */
        for (size_t p = 0; p < sizeof(picks) / sizeof(picks[0]); p++) {
            if (strcmp(picks[p].device, hd->device) != 0) {
                continue;
            }
            int ops[6];
            nas_nb201_table_ops(d.table, picks[p].index, ops);
            int64_t e = 0; /* enumeration index: nb201 choices are the op codes */
            for (int k = 0; k < 6; k++) {
                e = e * 5 + ops[k];
            }
            CHECK(fabs(lat[e] - picks[p].latency_ms) < 0.006 &&
                      fabs(d.test[e] - picks[p].test) < 0.006,
                  "%s index %lld: latency %.3f test %.2f vs published %.2f / %.2f", hd->device,
                  (long long)picks[p].index, lat[e], d.test[e], picks[p].latency_ms,
                  picks[p].test);
        }
        for (int li = 0; li < 3; li++) {
            const double L = hd->limits[li];
            /* exact optima by enumeration */
            int64_t best_val = -1, best_rep = -1, best_test = -1;
            for (int64_t i = 0; i < N_CELLS; i++) {
                if (!(lat[i] <= L)) {
                    continue;
                }
                nas_arch a, canon;
                nas_space_enumerate(d.space, i, &a);
                nas_space_canonical(d.space, &a, &canon);
                const int rep = memcmp(a.choice, canon.choice, sizeof(int32_t) * 6) == 0;
                if (best_val < 0 || d.val[i] > d.val[best_val]) {
                    best_val = i;
                }
                if (rep && (best_rep < 0 || d.val[i] > d.val[best_rep])) {
                    best_rep = i;
                }
                if (best_test < 0 || d.test[i] > d.test[best_test]) {
                    best_test = i;
                }
            }
            /* grid under the constraint: exactly the best feasible class representative */
            nas_arch g;
            double g_reward = NAN;
            int feasible = 0;
            int64_t repeats = 0, rejected = 0;
            CHECK(constrained_run(&d, cm, "grid", 0, L, N_CELLS, &g, &g_reward, &feasible,
                                  &repeats, &rejected) == NAS_OK, "grid: %s", nas_errmsg(d.ctx));
            nas_arch want;
            nas_space_enumerate(d.space, best_rep, &want);
            CHECK(feasible && memcmp(g.choice, want.choice, sizeof(int32_t) * 6) == 0,
                  "%s <= %g: grid best %.2f, enumeration %.2f", hd->device, L, g_reward,
                  d.val[best_rep]);
            /* the feasible test optimum beats every feasible HELP pick */
            for (size_t p = 0; p < sizeof(picks) / sizeof(picks[0]); p++) {
                if (strcmp(picks[p].device, hd->device) == 0 && picks[p].latency_ms <= L) {
                    CHECK(d.test[best_test] >= picks[p].test, "%s <= %g: optimum %.2f < HELP %.2f",
                          hd->device, L, d.test[best_test], picks[p].test);
                }
            }
            /* re, 300 queries (its defaults): how often it returns grid's optimum, the best
             * feasible class (each class is the canonical member grid proposes; an isomorph
             * whose separate training run measured higher is no other architecture) */
            int hits = 0, near = 0, raw_hits = 0;
            int64_t all_repeats = 0, all_rejected = 0;
            for (int seed = 0; seed < re_seeds; seed++) {
                nas_arch b;
                double rw = NAN;
                CHECK(constrained_run(&d, cm, "re", (uint64_t)seed, L, 300, &b, &rw, &feasible,
                                      &repeats, &rejected) == NAS_OK && feasible,
                      "re: %s", nas_errmsg(d.ctx));
                hits += rw >= d.val[best_rep] - 1e-6;
                near += rw >= d.val[best_rep] - 0.5;
                raw_hits += rw >= d.val[best_val] - 1e-6;
                all_repeats += repeats;
                all_rejected += rejected;
            }
            CHECK(all_repeats == 0, "%s <= %g: re spent %lld queries on repeats", hd->device, L,
                  (long long)all_repeats);
            CHECK(all_rejected > 0, "%s <= %g: no proposal was turned away", hd->device, L);
            re_hits_total += hits;
            re_near_total += near;
            re_raw_total += raw_hits;
            re_runs_total += re_seeds;
            rows_majority += 2 * hits > re_seeds;
            printf("  %-13s <= %4.1f ms: best feasible class %.2f (grid %.2f; best raw cell "
                   "%.2f), test optimum %.2f; re 300q reached it %2d/%d, within 0.5 %2d/%d "
                   "(%lld infeasible proposals turned away)\n", hd->device, L, d.val[best_rep],
                   g_reward, d.val[best_val], d.test[best_test], hits, re_seeds, near, re_seeds,
                   (long long)all_rejected);
        }
        nas_cost_model_free(cm);
    }
    /* Measured over 100 seeds (src/strategies/re.c): 62% of runs reach the optimum, the rows
     * 24-100% (rugged rows need ~600 queries for a majority); 20 seeds here. The checks: a
     * majority of all runs reach it, and most runs end within 0.5 points of it. */
    printf("  re 300 queries: feasible optimum on %d of %d runs (a majority on %d of 15 rows), "
           "within 0.5 points on %d; the best raw cell (a luckier isomorph) on %d\n",
           re_hits_total, re_runs_total, rows_majority, re_near_total, re_raw_total);
    CHECK(2 * re_hits_total > re_runs_total, "re reached the optimum on %d of %d runs",
          re_hits_total, re_runs_total);
    CHECK(4 * re_near_total > 3 * re_runs_total, "re within 0.5 points of the optimum on %d of %d",
          re_near_total, re_runs_total);
    nb201_close(&d);
}

/* ------------------------------------------------------------------ the wrapper's tells */

/* A strategy that proposes cells in enumeration order and records what it is told. */
typedef struct recorder {
    int64_t next, n_told;
    nas_arch told[64];
    double reward[64];
} recorder;

static nas_status rec_init(nas_strategy *s) {
    s->impl = calloc(1, sizeof(recorder));
    return NAS_OK;
}

static nas_status rec_ask(nas_strategy *s, nas_arch *out) {
    recorder *r = s->impl;
    return nas_space_enumerate(s->space, (r->next++ * 797) % N_CELLS, out);
}

static nas_status rec_tell(nas_strategy *s, const nas_arch *a, double reward) {
    recorder *r = s->impl;
    if (r->n_told < 64) {
        r->told[r->n_told] = *a;
        r->reward[r->n_told++] = reward;
    }
    return NAS_OK;
}

static void rec_free(nas_strategy *s) {
    free(s->impl);
}

static const nas_strategy_vt rec_vt = {"recorder", "", rec_init, rec_ask, rec_tell, rec_free,
                                       NULL};

static void test_constrained_tells(void) {
    nb201_data d;
    if (!nb201_open(&d)) {
        nb201_close(&d);
        return;
    }
    nas_cost_model *cm = NULL;
    CHECK(nas_cost_model_new(d.ctx, d.space, NULL, "table:fpga", &cm) == NAS_OK, "%s",
          nas_errmsg(d.ctx));
    for (int silent = 0; cm != NULL && silent < 2; silent++) {
        /* the wrapper takes the inner strategy over and frees it */
        nas_strategy *inner = nas_calloc(d.ctx, 1, sizeof(nas_strategy)), *s = NULL;
        *inner = (nas_strategy){.ctx = d.ctx, .space = d.space, .vt = &rec_vt};
        rec_init(inner);
        const double L = 4.0, T = 3.0;
        const nas_constraint_opts co = {.budget = {.max_latency_ms = L}, .mnas = 1,
                                        .mnas_target_ms = T, .silent_rejects = silent};
        CHECK(nas_strategy_constrain(inner, cm, &co, &s) == NAS_OK, "wrap: %s", nas_errmsg(d.ctx));
        const recorder *r = inner->impl;
        int bad_feasible = 0, bad_reward = 0, bad_nan = 0;
        for (int q = 0; s != NULL && q < 10; q++) {
            nas_arch a;
            nas_cost c;
            const int64_t before = r->n_told;
            CHECK(nas_strategy_ask(s, &a) == NAS_OK, "ask");
            nas_cost_eval(cm, &a, NAS_COST_LATENCY, &c);
            bad_feasible += !(c.latency_ms <= L);
            for (int64_t k = before; k < r->n_told; k++) { /* rejects told during the ask */
                bad_nan += !isnan(r->reward[k]) || silent;
            }
            nas_strategy_tell(s, &a, 70.0);
            const double want = 70.0 * pow(c.latency_ms / T, -0.07);
            bad_reward += fabs(r->reward[r->n_told - 1] - want) > 1e-9 * want;
        }
        CHECK(bad_feasible == 0 && bad_reward == 0 && bad_nan == 0,
              "silent=%d: %d infeasible asks, %d wrong MnasNet rewards, %d wrong reject tells",
              silent, bad_feasible, bad_reward, bad_nan);
        CHECK(nas_strategy_rejected(s) > 0, "some proposals were infeasible (%lld)",
              (long long)nas_strategy_rejected(s));
        nas_strategy_free(s);
    }
    nas_cost_model_free(cm);
    nb201_close(&d);
}

int main(void) {
    nas_set_threads(2);
    RUN_TEST(test_pareto_vs_naive);
    RUN_TEST(test_latency_table_index);
    RUN_TEST(test_budget_check);
    RUN_TEST(test_cost_counts_vs_build);
    RUN_TEST(test_nsga2_front);
    RUN_TEST(test_help_table4);
    RUN_TEST(test_constrained_tells);
    return check_report("hardware_search");
}
