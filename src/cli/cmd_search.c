/* cmd_search.c - `nascent search`: run a search (strategy x evaluator over a space), keep every
 * trial in an SQLite store (resumable after a kill), print the best architecture, and write an
 * HTML/SVG report and best.json.
 *   nascent search --space S --strategy NAME --evaluator E [--queries N] [--seed S]
 *                  [--store FILE] [--resume] [--out DIR] [--json] [--params K=V,...]
 *                  [--epochs N] [--data-fraction F] [--resolution R] [--channels-mult F]
 *                  [--cells N] [--batch N] [--data PATH] [--threads N] [--quiet]
 *                  [--max-params N] [--max-macs N] [--max-memory BYTES] [--max-latency-ms T]
 *                  [--latency-source measured|lut:FILE|predictor:FILE|table:COLUMN]
 *                  [--objective mnas[:T[:w]]]   (budgets and objectives: src/hardware/cost.c,
 *                  src/strategies/constrained.c; --strategy nsga2 minimises latency or params)
 * Each trial's costs are stored with it (nas_search_run_costs): latency from --latency-source,
 * and params, MACs and activation memory unless the evaluator is the table (building every
 * network would cost more than the table search). When budgets made no cost model, the one made
 * here counts the networks as the evaluator builds them (nas_evaluator_build_opts); a budget's
 * cost model counts the space's default networks, as the budget is stated for those. The result and report carry the estimator
 * diagnostics (nas_search_diagnostics). */
#include "cli_int.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out) {
    fprintf(out,
        "usage: nascent search --space S --strategy NAME --evaluator E [--queries N] [--seed S]\n"
        "                      [--store FILE] [--resume] [--out DIR] [--json] [--params K=V,...]\n"
        "                      [--epochs N] [--data-fraction F] [--resolution R]\n"
        "                      [--channels-mult F] [--cells N] [--batch N] [--data PATH]\n"
        "                      [--threads N] [--quiet]\n"
        "                      [--max-params N] [--max-macs N] [--max-memory BYTES]\n"
        "                      [--max-latency-ms T] [--latency-source SRC]\n"
        "                      [--objective mnas[:T[:w]]]\n"
        "                      [--final-top K [--final-epochs E] [--final-data-fraction F]]\n"
        "  --space      nb201, darts, mbnet, nasrl or a JSON space file\n"
        "  --strategy   grid, random, re, ls, reinforce, bo, pnas (default re)\n"
        "  --evaluator  table:cifar10|cifar100|imagenet16[:200|12], train:DATASET[:test],\n"
        "               proxy:NAME[:DATASET] (a zero-cost proxy: synflow, snip, grad_norm,\n"
        "               grasp, fisher, jacob_cov, nwot, params, macs) (default table:cifar10)\n"
        "               The report's diagnostics rank the reward against the ground truth\n"
        "               (the NB201 table's 200-epoch test accuracy on nb201).\n"
        "  --queries    number of trials (default 100)\n"
        "  --store      SQLite file keeping every trial; --resume continues its study\n"
        "  --out        directory for report.html and best.json\n"
        "  --params     strategy settings, e.g. population=20,sample=5 (see below)\n"
        "  --epochs .. --cells: the training evaluator's fidelity (as nascent train)\n"
        "  --max-*      budgets: no returned architecture exceeds them; an impossible budget\n"
        "               is an error before the search starts\n"
        "  --latency-source  measured | lut:FILE | predictor:FILE | table:COLUMN (a device\n"
        "               column of data/nb201_latency/nb201_latency_ms.csv, e.g. table:gold_6226)\n"
        "  --objective  mnas[:T[:w]]: reward ACC * (LAT/T)^w (w = -0.07, T = --max-latency-ms)\n"
        "  --final-top  retrain the K best distinct architectures with the train evaluator at\n"
        "               E epochs (default 5) on fraction F (default 1) of the data: their\n"
        "               accuracy (test with train:D:test) is the diagnostics' ground truth\n"
        "  nsga2        returns the Pareto front of validation accuracy against latency (with a\n"
        "               latency source) or params\n"
        "strategies:\n");
    for (int i = 0; nas_strategy_name_at(i) != NULL; i++) {
        fprintf(out, "  %-10s %s\n", nas_strategy_name_at(i), nas_strategy_summary_at(i));
    }
}

typedef struct search_args {
    const char *space, *strategy, *evaluator, *store, *out, *params;
    const char *latency_source, *objective;
    nas_budget budget;
    int64_t queries;
    uint64_t seed;
    int resume, json, quiet, threads;
    nas_eval_opts eval;
    int64_t final_top;  /* > 0: retrain the top architectures as the diagnostics' ground truth */
    int final_epochs;
    double final_fraction;
} search_args;

static int parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out) {
    char *end = NULL;
    const long long v = strtoll(s, &end, 10);
    if (end == s || *end != '\0' || v < lo || v > hi) {
        return 0;
    }
    *out = v;
    return 1;
}

static int parse_f64(const char *s, double lo, double hi, double *out) {
    char *end = NULL;
    const double v = strtod(s, &end);
    if (end == s || *end != '\0' || !(v >= lo && v <= hi)) {
        return 0;
    }
    *out = v;
    return 1;
}

/* Returns 0 to go on, else the exit code (help printed: -1 means exit 0). */
static int parse_args(int argc, char **argv, search_args *a) {
    memset(a, 0, sizeof(*a));
    a->strategy = "re";
    a->evaluator = "table:cifar10";
    a->queries = 100;
    a->params = "";
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int64_t iv = 0;
        double dv = 0.0;
        int bad = 0, takes = 1;
        if (strcmp(o, "--help") == 0 || strcmp(o, "-h") == 0) {
            usage(stdout);
            return -1;
        } else if (strcmp(o, "--resume") == 0) {
            a->resume = 1, takes = 0;
        } else if (strcmp(o, "--json") == 0) {
            a->json = 1, takes = 0;
        } else if (strcmp(o, "--quiet") == 0) {
            a->quiet = 1, takes = 0;
        } else if (v == NULL) {
            fprintf(stderr, "nascent search: %s needs a value (or is unknown; see --help)\n", o);
            return 2;
        } else if (strcmp(o, "--space") == 0) {
            a->space = v;
        } else if (strcmp(o, "--strategy") == 0) {
            a->strategy = v;
        } else if (strcmp(o, "--evaluator") == 0) {
            a->evaluator = v;
        } else if (strcmp(o, "--store") == 0) {
            a->store = v;
        } else if (strcmp(o, "--out") == 0) {
            a->out = v;
        } else if (strcmp(o, "--params") == 0) {
            a->params = v;
        } else if (strcmp(o, "--latency-source") == 0) {
            a->latency_source = v;
        } else if (strcmp(o, "--objective") == 0) {
            a->objective = v;
        } else if (strcmp(o, "--max-params") == 0) {
            bad = !parse_f64(v, 1e-300, 1e300, &a->budget.max_params);
        } else if (strcmp(o, "--max-macs") == 0) {
            bad = !parse_f64(v, 1e-300, 1e300, &a->budget.max_macs);
        } else if (strcmp(o, "--max-memory") == 0) {
            bad = !parse_f64(v, 1e-300, 1e300, &a->budget.max_memory);
        } else if (strcmp(o, "--max-latency-ms") == 0) {
            bad = !parse_f64(v, 1e-300, 1e300, &a->budget.max_latency_ms);
        } else if (strcmp(o, "--final-top") == 0) {
            bad = !parse_i64(v, 1, 100000, &a->final_top);
        } else if (strcmp(o, "--final-epochs") == 0) {
            bad = !parse_i64(v, 1, 100000, &iv);
            a->final_epochs = (int)iv;
        } else if (strcmp(o, "--final-data-fraction") == 0) {
            bad = !parse_f64(v, 1e-6, 1.0, &a->final_fraction);
        } else if (strcmp(o, "--data") == 0) {
            a->eval.data_path = v;
        } else if (strcmp(o, "--queries") == 0) {
            bad = !parse_i64(v, 1, 100000000, &a->queries);
        } else if (strcmp(o, "--seed") == 0) {
            bad = !parse_i64(v, 0, INT64_MAX, &iv);
            a->seed = (uint64_t)iv;
        } else if (strcmp(o, "--threads") == 0) {
            bad = !parse_i64(v, 0, 1024, &iv);
            a->threads = (int)iv;
        } else if (strcmp(o, "--epochs") == 0) {
            bad = !parse_i64(v, 1, 100000, &iv);
            a->eval.epochs = (int)iv;
        } else if (strcmp(o, "--resolution") == 0) {
            bad = !parse_i64(v, 1, 4096, &iv);
            a->eval.resolution = (int)iv;
        } else if (strcmp(o, "--cells") == 0) {
            bad = !parse_i64(v, 1, 1000, &iv);
            a->eval.cells = (int)iv;
        } else if (strcmp(o, "--batch") == 0) {
            bad = !parse_i64(v, 1, 100000, &iv);
            a->eval.batch_size = (int)iv;
        } else if (strcmp(o, "--data-fraction") == 0) {
            bad = !parse_f64(v, 1e-6, 1.0, &dv);
            a->eval.data_fraction = dv;
        } else if (strcmp(o, "--channels-mult") == 0) {
            bad = !parse_f64(v, 1e-3, 100.0, &dv);
            a->eval.channels_mult = dv;
        } else {
            fprintf(stderr, "nascent search: unknown option %s (see --help)\n", o);
            return 2;
        }
        if (bad) {
            fprintf(stderr, "nascent search: bad value '%s' for %s\n", v, o);
            return 2;
        }
        i += takes;
    }
    if (a->space == NULL) {
        fprintf(stderr, "nascent search: --space is required (see --help)\n");
        return 2;
    }
    if (a->resume && a->store == NULL) {
        fprintf(stderr, "nascent search: --resume needs --store FILE\n");
        return 2;
    }
    if (a->budget.max_latency_ms > 0 && a->latency_source == NULL) {
        fprintf(stderr, "nascent search: --max-latency-ms needs --latency-source (measured, "
                "lut:FILE, predictor:FILE or table:COLUMN)\n");
        return 2;
    }
    if (a->final_top > 0 && strncmp(a->evaluator, "train:", 6) != 0) {
        fprintf(stderr, "nascent search: --final-top retrains with the train evaluator; the "
                "evaluator is %s\n", a->evaluator);
        return 2;
    }
    a->final_epochs = a->final_epochs > 0 ? a->final_epochs : 5;
    a->final_fraction = a->final_fraction > 0.0 ? a->final_fraction : 1.0;
    a->eval.seed = a->seed;
    return 0;
}

/* Everything besides space/strategy/evaluator/seed that changes the result: a resumed study
 * must match it. */
static void study_config(const search_args *a, char *buf, size_t size) {
    snprintf(buf, size, "params=%s;epochs=%d;data_fraction=%g;resolution=%d;channels_mult=%g;"
             "cells=%d;batch=%d;data=%s", a->params, a->eval.epochs, a->eval.data_fraction,
             a->eval.resolution, a->eval.channels_mult, a->eval.cells, a->eval.batch_size,
             a->eval.data_path != NULL ? a->eval.data_path : "");
    const nas_budget *b = &a->budget;
    if (nas_budget_what(b) != 0 || a->objective != NULL || a->latency_source != NULL) {
        const size_t len = strlen(buf);
        snprintf(buf + len, size - len, ";max_params=%g;max_macs=%g;max_memory=%g;"
                 "max_latency_ms=%g;latency=%s;objective=%s", b->max_params, b->max_macs,
                 b->max_memory, b->max_latency_ms,
                 a->latency_source != NULL ? a->latency_source : "",
                 a->objective != NULL ? a->objective : "");
    }
}

static json_t *num_or_null(double v);

/* ------------------------------------------------------------ budgets and objectives */

/* "mnas[:T[:w]]" into co; 0 on a malformed text. */
static int parse_objective(const char *text, const nas_budget *b, nas_constraint_opts *co) {
    if (strncmp(text, "mnas", 4) != 0 || (text[4] != '\0' && text[4] != ':')) {
        return 0;
    }
    co->mnas = 1;
    co->mnas_target_ms = b->max_latency_ms;
    co->mnas_w = -0.07;
    if (text[4] == ':') {
        char *end = NULL;
        co->mnas_target_ms = strtod(text + 5, &end);
        if (end == text + 5 || !(co->mnas_target_ms > 0)) {
            return 0;
        }
        if (*end == ':') {
            const char *w = end + 1;
            co->mnas_w = strtod(w, &end);
            if (end == w || !isfinite(co->mnas_w)) {
                return 0;
            }
        }
        if (*end != '\0') {
            return 0;
        }
    }
    return 1;
}

static double cost_params_cb(void *cm, const nas_arch *a) {
    nas_cost c;
    return nas_cost_eval(cm, a, NAS_COST_PARAMS, &c) == NAS_OK ? c.params : (double)NAN;
}

/* The cost model, the up-front budget check, nsga2's cost and the constrained wrapper around
 * *strategy (which it replaces). *cm stays NULL when nothing needs costs. */
static nas_status apply_budgets(nas_ctx *ctx, const search_args *a, const nas_space *space,
                                nas_strategy **strategy, nas_cost_model **cm) {
    nas_constraint_opts co = {.budget = a->budget};
    const int nsga2 = strcmp(a->strategy, "nsga2") == 0;
    if (a->objective != NULL && !parse_objective(a->objective, &a->budget, &co)) {
        return nas_fail(ctx, NAS_ERR_ARG, "--objective: expected mnas[:T[:w]] with T > 0 ms "
                        "(T defaults to --max-latency-ms), got '%s'", a->objective);
    }
    if (nas_budget_what(&a->budget) == 0 && !co.mnas && !nsga2 && a->latency_source == NULL) {
        return NAS_OK;
    }
    nas_status st = nas_cost_model_new(ctx, space, NULL, a->latency_source, cm);
    if (st == NAS_OK) {
        st = nas_budget_check(*cm, &a->budget, a->seed, NULL);
    }
    if (st == NAS_OK && nsga2) {
        st = a->latency_source != NULL ? nas_strategy_set_cost(*strategy, nas_cost_latency_cb, *cm)
                                       : nas_strategy_set_cost(*strategy, cost_params_cb, *cm);
    }
    if (st == NAS_OK && (nas_budget_what(&a->budget) != 0 || co.mnas)) {
        st = nas_strategy_constrain(*strategy, *cm, &co, strategy);
        if (st != NAS_OK) {
            *strategy = NULL; /* freed by nas_strategy_constrain */
        }
    }
    return st;
}

/* nsga2: the Pareto front of validation accuracy against its cost, from the trials. */
static void print_front(const search_args *a, const nas_space *space, nas_cost_model *cm,
                        const nas_trial *trials, int64_t n) {
    nas_ctx *ctx = nas_ctx_new();
    double *cost = ctx ? nas_malloc(ctx, (size_t)(n > 0 ? n : 1) * sizeof(double)) : NULL;
    double *val = ctx ? nas_malloc(ctx, (size_t)(n > 0 ? n : 1) * sizeof(double)) : NULL;
    int64_t *idx = ctx ? nas_malloc(ctx, (size_t)(n > 0 ? n : 1) * sizeof(int64_t)) : NULL;
    const int lat = a->latency_source != NULL;
    if (cost != NULL && val != NULL && idx != NULL) {
        for (int64_t i = 0; i < n; i++) {
            cost[i] = lat ? nas_cost_latency_cb(cm, &trials[i].arch)
                          : cost_params_cb(cm, &trials[i].arch);
            val[i] = trials[i].state == NAS_TRIAL_COMPLETE ? trials[i].reward : (double)NAN;
        }
        const int64_t k = nas_pareto_front2(ctx, cost, val, n, idx);
        json_t *front = json_array();
        for (int64_t s = 0; s < k; s++) {
            char text[NAS_ARCH_TEXT_MAX] = "";
            nas_space_encode(space, &trials[idx[s]].arch, text, sizeof(text));
            if (a->json) {
                json_t *o = json_object();
                json_object_set_new(o, "arch", json_string(text));
                json_object_set_new(o, "valid", num_or_null(val[idx[s]]));
                json_object_set_new(o, "test", num_or_null(trials[idx[s]].test));
                json_object_set_new(o, lat ? "latency_ms" : "params", num_or_null(cost[idx[s]]));
                json_array_append_new(front, o);
            } else {
                printf("  pareto %2lld: valid %7.3f  %s %10.4g  %s\n", (long long)s + 1,
                       val[idx[s]], lat ? "latency_ms" : "params", cost[idx[s]], text);
            }
        }
        if (a->json) {
            char *sj = json_dumps(front, JSON_REAL_PRECISION(10));
            printf("{\"pareto_front\": %s}\n", sj != NULL ? sj : "[]");
            free(sj);
        }
        json_decref(front);
    }
    if (ctx != NULL) {
        nas_free(ctx, cost, cost ? (size_t)(n > 0 ? n : 1) * sizeof(double) : 0);
        nas_free(ctx, val, val ? (size_t)(n > 0 ? n : 1) * sizeof(double) : 0);
        nas_free(ctx, idx, idx ? (size_t)(n > 0 ? n : 1) * sizeof(int64_t) : 0);
    }
    nas_ctx_free(ctx);
}

typedef struct progress {
    const nas_space *space;
    int64_t queries;
    int quiet;
} progress;

static void on_trial(void *user, const nas_trial *t, const nas_trial *best) {
    const progress *p = user;
    if (p->quiet) {
        return;
    }
    char text[NAS_ARCH_TEXT_MAX];
    if (nas_space_encode(p->space, &t->arch, text, sizeof(text)) != NAS_OK) {
        snprintf(text, sizeof(text), "?");
    }
    if (strlen(text) > 120) {
        strcpy(text + 117, "...");
    }
    if (t->state == NAS_TRIAL_COMPLETE) {
        fprintf(stderr, "[%5lld/%lld] valid %7.3f  best %7.3f  %6.2fs%s  %s\n",
                (long long)t->number + 1, (long long)p->queries, t->reward,
                best != NULL ? best->reward : (double)NAN, t->eval_s, t->cached ? " (repeat)" : "", text);
    } else {
        fprintf(stderr, "[%5lld/%lld] FAILED: %s  %s\n", (long long)t->number + 1,
                (long long)p->queries, t->error, text);
    }
}

/* Params and MACs for the report where the evaluator gave none: from the built network
 * (nas_space_build + nas_model_count), once per distinct architecture, for the COST_TRIALS best
 * trials (building every network of a long search would take longer than a table search);
 * skipped where the space cannot build. */
#define COST_TRIALS 20

static void fill_costs(nas_ctx *ctx, const nas_space *space, nas_trial *trials, int64_t n) {
    int64_t built = 0;
    while (built < COST_TRIALS) {
        int64_t pick = -1; /* best complete trial not yet costed */
        for (int64_t i = 0; i < n; i++) {
            const nas_trial *t = &trials[i];
            if (t->state == NAS_TRIAL_COMPLETE && isnan(t->macs) &&
                (pick < 0 || t->reward > trials[pick].reward)) {
                pick = i;
            }
        }
        if (pick < 0) {
            break;
        }
        nas_model *m = NULL;
        int64_t macs = 0;
        size_t peak = 0;
        double v_macs = -1.0, v_params = NAN; /* -1: tried and failed (leaves the loop's set) */
        if (nas_space_build(ctx, space, &trials[pick].arch, NULL, &m) == NAS_OK &&
            nas_model_count(m, &macs, &peak) == NAS_OK) {
            v_macs = (double)macs;
            v_params = (double)nas_model_n_params(m);
        }
        nas_model_free(m);
        nas_clear_error(ctx);
        built++;
        for (int64_t i = 0; i < n; i++) { /* every repeat of the same architecture */
            if (trials[i].hash == trials[pick].hash && isnan(trials[i].macs)) {
                trials[i].macs = v_macs;
                trials[i].params = isnan(trials[i].params) ? v_params : trials[i].params;
            }
        }
    }
    for (int64_t i = 0; i < n; i++) {
        trials[i].macs = trials[i].macs < 0.0 ? (double)NAN : trials[i].macs;
    }
}

static json_t *num_or_null(double v) {
    return isfinite(v) ? json_real(v) : json_null();
}

/* The library's JSON form of the diagnostics (the one best.json carries). */
static json_t *diagnostics_json(const nas_diagnostics *d) {
    char buf[8192];
    const size_t n = nas_diagnostics_json(d, buf, sizeof buf);
    json_t *o = n > 0 && n < sizeof buf ? json_loadb(buf, n, 0, NULL) : NULL;
    return o != NULL ? o : json_null();
}

/* One line a user reads: "estimator proxy:synflow vs NB201 cifar10 test ...: Spearman ...". */
static void print_diagnostics(const nas_diagnostics *d) {
    if (!d->have) {
        printf("  diagnostics: %s\n", d->note);
        return;
    }
    printf("  estimator %s vs %s: Spearman %.3f, Kendall %.3f", d->estimator, d->truth,
           d->stats.spearman_rho, d->stats.kendall_tau);
    for (int i = 0; i < d->stats.n_k; i++) {
        printf(", top-%.0f%% precision %.2f", 100.0 * d->stats.at[i].k_frac,
               d->stats.at[i].precision_top);
    }
    printf(" (%lld architectures)\n    %s\n", (long long)d->stats.n, d->note);
}

static void print_result(const search_args *a, const nas_space *space, const nas_trial *trials,
                         int64_t n, int64_t study, const nas_diagnostics *diag) {
    const int64_t b = nas_trials_best(trials, n);
    char text[NAS_ARCH_TEXT_MAX] = "";
    if (b >= 0 && nas_space_encode(space, &trials[b].arch, text, sizeof(text)) != NAS_OK) {
        text[0] = '\0';
    }
    int64_t failed = 0;
    for (int64_t i = 0; i < n; i++) {
        failed += trials[i].state != NAS_TRIAL_COMPLETE;
    }
    if (a->json) {
        json_t *o = json_object();
        json_object_set_new(o, "best_arch", b >= 0 ? json_string(text) : json_null());
        json_object_set_new(o, "best_valid", num_or_null(b >= 0 ? trials[b].reward : (double)NAN));
        json_object_set_new(o, "best_test", num_or_null(b >= 0 ? trials[b].test : (double)NAN));
        json_object_set_new(o, "best_params", num_or_null(b >= 0 ? trials[b].params : (double)NAN));
        json_object_set_new(o, "best_macs", num_or_null(b >= 0 ? trials[b].macs : (double)NAN));
        json_object_set_new(o, "best_memory",
                            num_or_null(b >= 0 ? trials[b].memory : (double)NAN));
        json_object_set_new(o, "best_latency_ms",
                            num_or_null(b >= 0 ? trials[b].latency_ms : (double)NAN));
        json_object_set_new(o, "diagnostics", diagnostics_json(diag));
        json_object_set_new(o, "best_trial", json_integer(b));
        json_object_set_new(o, "queries", json_integer(n));
        json_object_set_new(o, "failed", json_integer(failed));
        json_object_set_new(o, "space", json_string(a->space));
        json_object_set_new(o, "strategy", json_string(a->strategy));
        json_object_set_new(o, "evaluator", json_string(a->evaluator));
        json_object_set_new(o, "seed", json_integer((json_int_t)a->seed));
        json_object_set_new(o, "store", a->store ? json_string(a->store) : json_null());
        json_object_set_new(o, "study", a->store ? json_integer(study) : json_null());
        json_object_set_new(o, "out", a->out ? json_string(a->out) : json_null());
        char *s = json_dumps(o, JSON_REAL_PRECISION(10));
        printf("%s\n", s != NULL ? s : "{}");
        free(s);
        json_decref(o);
        return;
    }
    if (b < 0) {
        printf("no successful trial in %lld queries (%lld failed)\n", (long long)n,
               (long long)failed);
        return;
    }
    printf("best architecture: %s\n", text);
    printf("  %s %.4g  test %.3f  params %.0f  (trial %lld of %lld, %lld failed)\n",
           strncmp(a->evaluator, "proxy", 5) == 0 ? "score" : "validation", trials[b].reward,
           trials[b].test, trials[b].params, (long long)b + 1, (long long)n,
           (long long)failed);
    print_diagnostics(diag);
}

/* Which costs to store with each trial, creating the cost model when budgets did not: all of
 * them for training and proxy evaluators (a network build is small next to the evaluation),
 * only the latency (when a source is given) for the table. */
static unsigned trial_costs(nas_ctx *ctx, const search_args *a, const nas_space *space,
                            const nas_evaluator *eval, nas_cost_model **cm) {
    const int table = strncmp(a->evaluator, "table", 5) == 0;
    const unsigned lat = a->latency_source != NULL ? (unsigned)NAS_COST_LATENCY : 0u;
    if (table && lat == 0) {
        return 0;
    }
    /* Costs of the networks the evaluator really builds (its input shape, width, depth). */
    nas_build_opts bo;
    const int have_bo = nas_evaluator_build_opts(eval, &bo) == NAS_OK;
    nas_clear_error(ctx);
    if (*cm == NULL &&
        nas_cost_model_new(ctx, space, have_bo ? &bo : NULL, a->latency_source, cm) != NAS_OK) {
        nas_clear_error(ctx); /* no costs stored; the search itself does not need them */
        *cm = NULL;
        return 0;
    }
    return table ? lat : (unsigned)(NAS_COST_PARAMS | NAS_COST_MACS | NAS_COST_MEMORY) | lat;
}

/* Final training: the diagnostics' ground truth for the top architectures. */
typedef struct final_truth {
    double *truth; /* n values, NAN except the retrained architectures */
    size_t bytes;
    char label[160], note[256];
} final_truth;

/* Retrain the final_top best distinct architectures with the search's train evaluator at the
 * final fidelity; their accuracy (test when the evaluator records it) goes to every trial of
 * the same architecture. Results are stored with the study (when there is a store) and read back
 * by a rerun or resume instead of retraining. */
static nas_status final_train(nas_ctx *ctx, const search_args *a, const nas_space *space,
                              nas_store *store, int64_t study, const nas_trial *trials, int64_t n,
                              final_truth *ft) {
    nas_eval_opts o = a->eval;
    o.epochs = a->final_epochs;
    o.data_fraction = a->final_fraction;
    nas_evaluator *e = NULL;
    nas_status st = nas_evaluator_open(ctx, a->evaluator, space, &o, &e);
    ft->bytes = (size_t)(n > 0 ? n : 1) * sizeof(double);
    ft->truth = st == NAS_OK ? nas_malloc(ctx, ft->bytes) : NULL;
    if (st == NAS_OK && ft->truth == NULL) {
        st = NAS_ERR_NOMEM;
    }
    for (int64_t i = 0; st == NAS_OK && i < n; i++) {
        ft->truth[i] = NAN;
    }
    /* the key of a stored result: everything final training changes from the study's config */
    char fidelity[96];
    snprintf(fidelity, sizeof(fidelity), "epochs=%d;data_fraction=%g", a->final_epochs,
             a->final_fraction);
    int64_t done = 0, used_test = 0;
    while (st == NAS_OK && done < a->final_top) {
        int64_t pick = -1; /* best complete, evaluated trial without a final value yet */
        for (int64_t i = 0; i < n; i++) {
            if (trials[i].state == NAS_TRIAL_COMPLETE && !trials[i].cached &&
                isnan(ft->truth[i]) && (pick < 0 || trials[i].reward > trials[pick].reward)) {
                pick = i;
            }
        }
        if (pick < 0) {
            break;
        }
        double valid = NAN, test = NAN;
        int stored = 0;
        if (store != NULL) {
            st = nas_store_final_get(store, study, trials[pick].hash, fidelity, &valid, &test,
                                     &stored);
        }
        if (st == NAS_OK && !stored) {
            nas_eval_result r;
            if (nas_evaluator_eval_ctx(e, ctx, &trials[pick].arch, &r) == NAS_OK) {
                valid = r.reward;
                test = r.test;
                if (store != NULL) {
                    st = nas_store_final_put(store, study, trials[pick].hash, fidelity, valid,
                                             test);
                }
            } else if (!a->quiet && !a->json) {
                fprintf(stderr, "nascent search: final training of trial %lld failed: %s\n",
                        (long long)pick + 1, nas_errmsg(ctx));
            }
            if (st == NAS_OK) {
                nas_clear_error(ctx);
            }
        }
        /* a failed retraining: ranked last (-inf), and not picked again */
        const double v = isfinite(test) ? test : (isfinite(valid) ? valid : -(double)INFINITY);
        used_test += isfinite(test);
        for (int64_t i = 0; i < n; i++) { /* -inf marks a failure until the loop ends */
            ft->truth[i] = trials[i].hash == trials[pick].hash ? v : ft->truth[i];
        }
        done++;
        if (!a->quiet && !a->json) {
            fprintf(stderr, "[final %lld/%lld] trial %lld: %.3f%s\n", (long long)done,
                    (long long)a->final_top, (long long)pick + 1, v,
                    stored ? " (stored)" : "");
        }
    }
    for (int64_t i = 0; ft->truth != NULL && i < n; i++) {
        ft->truth[i] = isfinite(ft->truth[i]) ? ft->truth[i] : (double)NAN;
    }
    nas_evaluator_free(e);
    snprintf(ft->label, sizeof(ft->label), "final training %s accuracy (%d epochs, data "
             "fraction %g)", used_test > 0 ? "test" : "validation", a->final_epochs,
             a->final_fraction);
    snprintf(ft->note, sizeof(ft->note), "the %lld best architectures by the search's reward "
             "retrained; the others have no ground truth", (long long)done);
    return st;
}

int cmd_search(int argc, char **argv) {
    search_args a;
    const int rc = parse_args(argc, argv, &a);
    if (rc != 0) {
        return rc < 0 ? 0 : rc;
    }
    if (a.threads > 0) {
        nas_set_threads(a.threads);
    }
    nas_ctx *ctx = nas_ctx_new();
    if (ctx == NULL) {
        fprintf(stderr, "nascent search: out of memory\n");
        return 1;
    }
    nas_space *space = NULL;
    nas_strategy *strategy = NULL;
    nas_evaluator *eval = NULL;
    nas_store *store = NULL;
    nas_cost_model *cm = NULL;
    nas_trial *trials = NULL;
    int64_t n = 0, study = 0;
    int exit_code = 2; /* bad input until the search itself starts */
    char config[1024];
    study_config(&a, config, sizeof(config));
    nas_study_info info = {a.space, a.strategy, a.evaluator, a.seed, config};
    nas_strategy_opts sopts = {a.seed, a.queries, a.params};
    nas_status st = nas_space_open(ctx, a.space, &space);
    if (st == NAS_OK) {
        st = nas_strategy_new(ctx, a.strategy, space, &sopts, &strategy);
    }
    if (st == NAS_OK) { /* before any work: an impossible budget is an error here */
        st = apply_budgets(ctx, &a, space, &strategy, &cm);
    }
    if (st == NAS_OK) {
        st = nas_evaluator_open(ctx, a.evaluator, space, &a.eval, &eval);
    }
    if (st == NAS_OK && a.store != NULL) {
        exit_code = 1;
        st = nas_store_open(ctx, a.store, &store);
        if (st == NAS_OK && a.resume) {
            st = nas_store_study_find(store, &info, &study);
            if (st == NAS_ERR_STATE) { /* killed before the study existed: start afresh */
                if (!a.quiet) {
                    fprintf(stderr, "nascent search: no matching study in %s; starting a new "
                            "one\n", a.store);
                }
                nas_clear_error(ctx);
                st = nas_store_study_new(store, &info, &study);
            }
        } else if (st == NAS_OK) {
            st = nas_store_study_new(store, &info, &study);
        }
    }
    if (st == NAS_OK) {
        exit_code = 1;
        progress p = {space, a.queries, a.quiet || a.json};
        nas_search_opts so = {a.queries, a.resume, on_trial, &p};
        const unsigned what = trial_costs(ctx, &a, space, eval, &cm);
        st = nas_search_run_costs(ctx, space, strategy, eval, store, study, &so, cm, what,
                                  &trials, &n);
    }
    if (st == NAS_OK && a.out != NULL) {
        fill_costs(ctx, space, trials, n);
    }
    final_truth ft = {NULL, 0, "", ""};
    if (st == NAS_OK && a.final_top > 0) {
        st = final_train(ctx, &a, space, store, study, trials, n, &ft);
    }
    if (st == NAS_OK && a.out != NULL) {
        const nas_report_opts ro = {.eval_opts = &a.eval, .latency_source = a.latency_source,
                                    .truth = ft.truth, .truth_label = ft.label,
                                    .truth_note = ft.note};
        st = nas_report_write_opts(ctx, space, &info, trials, n, a.out, &ro);
    }
    nas_diagnostics diag;
    memset(&diag, 0, sizeof(diag));
    if (st == NAS_OK && ft.truth != NULL) {
        st = nas_diagnostics_from(ctx, a.evaluator, ft.label, ft.note, trials, n, ft.truth, &diag);
    } else if (st == NAS_OK) {
        st = nas_search_diagnostics(ctx, space, a.evaluator, &a.eval, trials, n, NULL, &diag);
    }
    if (st != NAS_OK) {
        fprintf(stderr, "nascent search: %s\n", nas_errmsg(ctx));
        if (st == NAS_ERR_MISMATCH) { /* a script can set the old store aside and start anew */
            exit_code = 4;
        }
    } else {
        print_result(&a, space, trials, n, study, &diag);
        if (strcmp(a.strategy, "nsga2") == 0 && cm != NULL) {
            print_front(&a, space, cm, trials, n);
        }
        if (cm != NULL && nas_budget_what(&a.budget) != 0 && !a.json && !a.quiet) {
            printf("  %lld infeasible proposals turned away before evaluation\n",
                   (long long)nas_strategy_rejected(strategy));
        }
        if (a.out != NULL && !a.json) {
            printf("report: %s/report.html  best: %s/best.json\n", a.out, a.out);
        }
        exit_code = 0;
    }
    if (ft.truth != NULL) {
        nas_free(ctx, ft.truth, ft.bytes);
    }
    nas_trials_free(ctx, trials, n);
    nas_store_close(store);
    nas_evaluator_free(eval);
    nas_strategy_free(strategy);
    nas_cost_model_free(cm);
    nas_space_free(space);
    nas_ctx_free(ctx);
    return exit_code;
}
