/* diagnostics.c - estimator diagnostics of a search (Ning et al., NeurIPS 2021): how well the
 * reward the strategy saw (a proxy score, a shortened or low-fidelity training, a table's
 * validation column) ranks the study's architectures against a ground truth. The ground truth
 * comes from the published NAS-Bench-201 table where the space maps onto it (the 200-epoch test
 * accuracy on the evaluator's dataset), else from the test accuracy the evaluator recorded.
 * Repeated architectures count once (their first, evaluated trial); failed trials are dropped
 * by the statistics (n_dropped). The figures are nas_stats_correlate's. */
#include "core/core_int.h"

#include <math.h>

static const double k_fracs[NAS_DIAG_N_K] = {0.05, 0.10, 0.20, 0.50};

/* Split "KIND:A:B" into kind, first and second argument ("" where absent). */
static void split_spec(const char *spec, char *kind, char *a1, char *a2, size_t size) {
    char *out[3] = {kind, a1, a2};
    const char *p = spec;
    for (int k = 0; k < 3; k++) {
        const char *colon = p != NULL ? strchr(p, ':') : NULL;
        size_t len = p == NULL ? 0 : colon != NULL ? (size_t)(colon - p) : strlen(p);
        len = len < size ? len : size - 1;
        if (p != NULL) {
            memcpy(out[k], p, len);
        }
        out[k][len] = '\0';
        p = colon != NULL ? colon + 1 : NULL;
    }
}

/* The NB201 dataset whose column is the evaluator's ground truth; *cross = 1 when the search
 * is on another dataset and cifar10 stands in. A proxy without a dataset scores the networks of
 * the space's default CIFAR-10 shape, so cifar10 is its own ground truth. */
static const char *truth_dataset(const char *kind, const char *a1, const char *a2, int *cross) {
    const char *ds = strcmp(kind, "proxy") == 0 ? a2 : a1;
    *cross = 0;
    if (strcmp(kind, "proxy") == 0 && ds[0] == '\0') {
        return "cifar10"; /* synthetic data in the space's default (CIFAR-10) input shape */
    }
    if (strcmp(ds, "cifar10") == 0 || strcmp(ds, "cifar100") == 0) {
        return ds;
    }
    if (strcmp(ds, "imagenet16") == 0 || strcmp(ds, "ImageNet16-120") == 0) {
        return "imagenet16";
    }
    *cross = 1;
    return "cifar10";
}

/* truth[i] = the table's test accuracy of trial i's architecture; 0 when no table maps. */
static int table_truth(nas_ctx *ctx, const nas_space *space, const char *dataset,
                       const char *table_path, const nas_trial *trials, int64_t n, double *truth) {
    char spec[64];
    snprintf(spec, sizeof(spec), "table:%s", dataset);
    nas_eval_opts o;
    memset(&o, 0, sizeof(o));
    o.data_path = table_path;
    nas_evaluator *e = NULL;
    if (nas_evaluator_open(ctx, spec, space, &o, &e) != NAS_OK) {
        nas_clear_error(ctx); /* not an NB201 space, or no table: no ground truth from it */
        return 0;
    }
    for (int64_t i = 0; i < n; i++) {
        nas_eval_result r;
        truth[i] = nas_evaluator_eval_ctx(e, ctx, &trials[i].arch, &r) == NAS_OK ? r.test
                                                                               : (double)NAN;
        nas_clear_error(ctx);
    }
    nas_evaluator_free(e);
    return 1;
}

static int any_test(const nas_trial *trials, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        if (trials[i].state == NAS_TRIAL_COMPLETE && isfinite(trials[i].test)) {
            return 1;
        }
    }
    return 0;
}

/* Label the comparison in out (which source `how` was picked). */
static void describe(nas_diagnostics *out, const char *spec, const char *kind, const char *a2,
                     const char *ds, int how, int cross) {
    snprintf(out->estimator, sizeof(out->estimator), "%s", spec);
    if (how == 2) {
        snprintf(out->truth, sizeof(out->truth), "test accuracy recorded by the evaluator");
        snprintf(out->note, sizeof(out->note), "no published table for this search: the reward "
                 "(validation accuracy) against the same run's test accuracy");
        return;
    }
    snprintf(out->truth, sizeof(out->truth), "NB201 %s test accuracy (200 epochs)", ds);
    if (strcmp(kind, "table") == 0 && !cross) {
        snprintf(out->note, sizeof(out->note), "%s", strcmp(a2, "12") == 0
                 ? "the table's 12-epoch validation accuracy (low fidelity) against its "
                   "200-epoch test accuracy"
                 : "the search is the table itself: its validation column against its test "
                   "column of the same published runs");
    } else if (cross) {
        snprintf(out->note, sizeof(out->note), "the search's data is not an NB201 dataset: "
                 "NB201 cifar10 stands in as the reference (a transfer check, not the search's "
                 "own ground truth)");
    } else {
        snprintf(out->note, sizeof(out->note), "the published NB201 test accuracy of each "
                 "evaluated architecture");
    }
}

/* The figures over distinct architectures (repeats are cached trials); est and tru are
 * scratch arrays of n entries. */
static nas_status correlate(nas_ctx *ctx, const nas_trial *trials, int64_t n, const double *tr,
                            double *est, double *tru, nas_diagnostics *out) {
    int64_t m = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!trials[i].cached) {
            est[m] = trials[i].state == NAS_TRIAL_COMPLETE ? trials[i].reward : (double)NAN;
            tru[m++] = tr[i];
        }
    }
    return nas_stats_correlate(ctx, est, tru, m, NAS_DIAG_N_K, k_fracs, &out->stats);
}

nas_status nas_diagnostics_from(nas_ctx *ctx, const char *estimator, const char *truth_label,
                                const char *note, const nas_trial *trials, int64_t n,
                                const double *truth, nas_diagnostics *out) {
    NAS_CHECK_ARG(ctx, estimator != NULL && truth_label != NULL && out != NULL &&
                           ((trials != NULL && truth != NULL) || n == 0));
    memset(out, 0, sizeof(*out));
    out->have = 1;
    snprintf(out->estimator, sizeof(out->estimator), "%s", estimator);
    snprintf(out->truth, sizeof(out->truth), "%s", truth_label);
    snprintf(out->note, sizeof(out->note), "%s", note != NULL ? note : "");
    const size_t cap = (size_t)nas_max_i64(n, 1);
    double *est = nas_malloc(ctx, cap * sizeof(double));
    double *tru = nas_malloc(ctx, cap * sizeof(double));
    nas_status st = est != NULL && tru != NULL ? NAS_OK : NAS_ERR_NOMEM;
    if (st == NAS_OK) {
        st = correlate(ctx, trials, n, truth, est, tru, out);
    }
    nas_free(ctx, est, cap * sizeof(double));
    nas_free(ctx, tru, cap * sizeof(double));
    return st;
}

nas_status nas_search_diagnostics(nas_ctx *ctx, const nas_space *space,
                                  const char *evaluator_spec, const nas_eval_opts *eval_opts,
                                  const nas_trial *trials, int64_t n, double *truth,
                                  nas_diagnostics *out) {
    NAS_CHECK_ARG(ctx, space != NULL && evaluator_spec != NULL && out != NULL &&
                           (trials != NULL || n == 0));
    memset(out, 0, sizeof(*out));
    const size_t cap = (size_t)nas_max_i64(n, 1);
    double *tr = nas_malloc(ctx, cap * sizeof(double));
    double *est = nas_malloc(ctx, cap * sizeof(double));
    double *tru = nas_malloc(ctx, cap * sizeof(double));
    nas_status st = tr != NULL && est != NULL && tru != NULL ? NAS_OK : NAS_ERR_NOMEM;
    char kind[64], a1[64], a2[64];
    split_spec(evaluator_spec, kind, a1, a2, sizeof(kind));
    int cross = 0, how = 0; /* 1: the table, 2: recorded test accuracy */
    const char *ds = truth_dataset(kind, a1, a2, &cross);
    const char *table_path =
        strcmp(kind, "table") == 0 && eval_opts != NULL ? eval_opts->data_path : NULL;
    if (st == NAS_OK) {
        if (!cross && table_truth(ctx, space, ds, table_path, trials, n, tr)) {
            how = 1;
        } else if (any_test(trials, n)) {
            how = 2;
            for (int64_t i = 0; i < n; i++) {
                tr[i] = trials[i].test;
            }
        } else if (cross && table_truth(ctx, space, ds, table_path, trials, n, tr)) {
            how = 1;
        }
    }
    if (st == NAS_OK && how == 0) {
        snprintf(out->estimator, sizeof(out->estimator), "%s", evaluator_spec);
        snprintf(out->note, sizeof(out->note), "no ground truth known: the space has no "
                 "published table and the evaluator recorded no test accuracy");
    }
    if (st == NAS_OK && how != 0) {
        out->have = 1;
        describe(out, evaluator_spec, kind, a2, ds, how, cross);
        st = correlate(ctx, trials, n, tr, est, tru, out);
    }
    if (st == NAS_OK && truth != NULL) {
        for (int64_t i = 0; i < n; i++) {
            truth[i] = how != 0 ? tr[i] : (double)NAN;
        }
    }
    nas_free(ctx, tr, cap * sizeof(double));
    nas_free(ctx, est, cap * sizeof(double));
    nas_free(ctx, tru, cap * sizeof(double));
    return st;
}
