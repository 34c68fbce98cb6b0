/* evaluate.c - how good a latency estimate is: a LUT against latency measured here, and a
 * learned predictor against held-out architectures of a device table or measured here. Both report the rank
 * correlation (what a search needs: which architecture is faster) and the mean absolute
 * percentage error (what a budget needs: is it under T ms). */
#include "hardware_int.h"

#include <math.h>

static nas_status summarise(nas_ctx *ctx, const double *est, const double *truth, int64_t n,
                            nas_latency_error *out) {
    double mape = 0.0;
    for (int64_t i = 0; i < n; i++) {
        mape += fabs(est[i] - truth[i]) / truth[i] / (double)n;
    }
    out->mape = 100.0 * mape;
    out->n_test = n;
    nas_status st = nas_stats_spearman(ctx, est, truth, n, &out->spearman);
    if (st == NAS_OK) {
        st = nas_stats_kendall(ctx, est, truth, n, &out->kendall);
    }
    return st;
}

nas_status nas_lut_evaluate(nas_lut *lut, nas_ctx *ctx, const nas_space *space,
                            const nas_build_opts *opts, int n_archs, int repeats, uint64_t seed,
                            nas_latency_error *out) {
    NAS_CHECK_ARG(ctx, lut != NULL && space != NULL && out != NULL && n_archs >= 2);
    memset(out, 0, sizeof(*out));
    double *est = nas_malloc(ctx, (size_t)n_archs * sizeof(double));
    double *meas = nas_malloc(ctx, (size_t)n_archs * sizeof(double));
    nas_status st = est == NULL || meas == NULL ? NAS_ERR_NOMEM : NAS_OK;
    nas_rng r = nas_rng_make(seed, 0xe7a1);
    int64_t draws = 0;
    nas_build_opts o = opts != NULL ? *opts : (nas_build_opts){.no_init = 1};
    o.no_init = 1; /* weights are initialised only for the architectures timed */
    for (int i = 0; st == NAS_OK && i < n_archs; draws++) {
        nas_arch a;
        nas_space_sample(space, &r, &a);
        nas_model *m = NULL;
        st = nas_space_build(ctx, space, &a, &o, &m);
        if (st == NAS_OK) { /* the estimate needs no weights */
            st = nas_lut_estimate(lut, m, &est[i]);
        }
        if (st == NAS_OK) {
            nas_params_init(nas_model_params(m), seed + (uint64_t)draws);
        }
        if (st == NAS_ERR_STATE && draws < 100 * (int64_t)n_archs) {
            /* a layer this LUT never measured: skip the architecture (cheap: nothing was
             * initialised or run), count it */
            out->n_uncovered++;
            nas_clear_error(ctx);
            nas_model_free(m);
            st = NAS_OK;
            continue;
        }
        nas_latency_result lr;
        if (st == NAS_OK) {
            st = nas_latency_measure(ctx, m, nas_lut_batch(lut), repeats, 2, &lr);
            meas[i++] = lr.median_ms;
        }
        nas_model_free(m);
    }
    if (st == NAS_OK) {
        st = summarise(ctx, est, meas, n_archs, out);
    }
    nas_free(ctx, est, (size_t)n_archs * sizeof(double));
    nas_free(ctx, meas, (size_t)n_archs * sizeof(double));
    return st;
}

/* Features of every table row (decoded in `space`), n x d. */
static nas_status table_features(nas_ctx *ctx, const nas_space *space, const nas_device_table *t,
                                 float *X, int64_t d) {
    for (int64_t i = 0; i < nas_device_table_rows(t); i++) {
        nas_arch a;
        const nas_status st = nas_space_decode(ctx, space, nas_device_table_arch(t, i), &a);
        if (st != NAS_OK) {
            return nas_fail(ctx, st, "device table row %lld: %s", (long long)i + 2, nas_errmsg(ctx));
        }
        nas_space_features(space, &a, X + i * d);
    }
    return NAS_OK;
}

nas_status nas_latpred_evaluate_table(nas_ctx *ctx, const nas_space *space,
                                      const nas_device_table *t, nas_latpred_kind kind,
                                      int64_t n_train, uint64_t seed, nas_latpred **fitted,
                                      nas_latency_error *out) {
    NAS_CHECK_ARG(ctx, space != NULL && t != NULL && out != NULL);
    const int64_t n = nas_device_table_rows(t), d = nas_space_n_features(space);
    if (n_train < 2 || n_train >= n) {
        return nas_fail(ctx, NAS_ERR_ARG, "latpred: %lld training rows of a %lld-row table",
                        (long long)n_train, (long long)n);
    }
    memset(out, 0, sizeof(*out));
    int64_t *order = nas_malloc(ctx, (size_t)n * sizeof(int64_t));
    float *X = nas_malloc(ctx, (size_t)(n * d) * sizeof(float));
    float *Xtr = nas_malloc(ctx, (size_t)(n_train * d) * sizeof(float));
    double *y = nas_malloc(ctx, (size_t)n * sizeof(double));
    double *est = nas_malloc(ctx, (size_t)n * sizeof(double));
    nas_status st = order && X && Xtr && y && est ? NAS_OK : NAS_ERR_NOMEM;
    if (st == NAS_OK) {
        st = table_features(ctx, space, t, X, d);
    }
    nas_latpred *p = NULL;
    if (st == NAS_OK) {
        nas_rng r = nas_rng_make(seed, 0x5a1e);
        for (int64_t i = 0; i < n; i++) {
            order[i] = i;
        }
        nas_rng_shuffle(&r, order, n);
        for (int64_t i = 0; i < n; i++) { /* y in shuffled order: train rows first */
            y[i] = nas_device_table_ms(t, order[i]);
        }
        for (int64_t i = 0; i < n_train; i++) {
            memcpy(Xtr + i * d, X + order[i] * d, (size_t)d * sizeof(float));
        }
        st = nas_latpred_fit(ctx, kind, Xtr, y, n_train, d, seed, &p);
    }
    for (int64_t i = n_train; st == NAS_OK && i < n; i++) {
        st = nas_latpred_predict(p, X + order[i] * d, &est[i]);
    }
    if (st == NAS_OK) {
        st = summarise(ctx, est + n_train, y + n_train, n - n_train, out);
        out->n_train = n_train;
    }
    if (st == NAS_OK && fitted != NULL) {
        *fitted = p;
    } else {
        nas_latpred_free(p);
    }
    nas_free(ctx, order, (size_t)n * sizeof(int64_t));
    nas_free(ctx, X, (size_t)(n * d) * sizeof(float));
    nas_free(ctx, Xtr, (size_t)(n_train * d) * sizeof(float));
    nas_free(ctx, y, (size_t)n * sizeof(double));
    nas_free(ctx, est, (size_t)n * sizeof(double));
    return st;
}

/* Median latency here of n distinct sampled architectures (distinct by nas_space_hash, so no
 * test architecture is also a training one); their features go to X (n x d). */
static nas_status measure_samples(nas_ctx *ctx, const nas_space *space, const nas_build_opts *opts,
                                  int64_t n, int repeats, uint64_t seed, float *X, double *ms) {
    const int64_t d = nas_space_n_features(space);
    uint64_t *seen = nas_malloc(ctx, (size_t)n * sizeof(uint64_t));
    if (seen == NULL) {
        return NAS_ERR_NOMEM;
    }
    nas_rng r = nas_rng_make(seed, 0x3ea5);
    nas_build_opts o = opts != NULL ? *opts : (nas_build_opts){0};
    o.no_init = 1;
    nas_status st = NAS_OK;
    int64_t have = 0, draws = 0;
    while (st == NAS_OK && have < n) {
        if (++draws > 100 * n) {
            st = nas_fail(ctx, NAS_ERR_ARG, "latpred: the space has fewer than %lld distinct "
                          "architectures", (long long)n);
            break;
        }
        nas_arch a;
        nas_space_sample(space, &r, &a);
        const uint64_t h = nas_space_hash(space, &a);
        int dup = 0;
        for (int64_t i = 0; i < have && !dup; i++) {
            dup = seen[i] == h;
        }
        if (dup) {
            continue;
        }
        nas_model *m = NULL;
        st = nas_space_build(ctx, space, &a, &o, &m);
        nas_latency_result lr;
        if (st == NAS_OK) {
            nas_params_init(nas_model_params(m), seed + (uint64_t)have);
            st = nas_latency_measure(ctx, m, 1, repeats, 2, &lr);
        }
        nas_model_free(m);
        if (st == NAS_OK) {
            nas_space_features(space, &a, X + have * d);
            ms[have] = lr.median_ms;
            seen[have++] = h;
        }
    }
    nas_free(ctx, seen, (size_t)n * sizeof(uint64_t));
    return st;
}

nas_status nas_latpred_evaluate_measured(nas_ctx *ctx, const nas_space *space,
                                         const nas_build_opts *opts, nas_latpred_kind kind,
                                         int64_t n_train, int64_t n_test, int repeats,
                                         uint64_t seed, nas_latpred **fitted,
                                         nas_latency_error *out) {
    NAS_CHECK_ARG(ctx, space != NULL && out != NULL && repeats >= 1);
    if (n_train < 2 || n_test < 2) {
        return nas_fail(ctx, NAS_ERR_ARG, "latpred: %lld training and %lld test architectures "
                        "(need >= 2 of each)", (long long)n_train, (long long)n_test);
    }
    memset(out, 0, sizeof(*out));
    const int64_t n = n_train + n_test, d = nas_space_n_features(space);
    if (nas_space_log10_size(space) < 18.0 && nas_space_size(space) < n) {
        return nas_fail(ctx, NAS_ERR_ARG, "latpred: %lld architectures asked, the space has "
                        "%lld distinct ones", (long long)n, (long long)nas_space_size(space));
    }
    float *X = nas_malloc(ctx, (size_t)(n * d) * sizeof(float));
    double *y = nas_malloc(ctx, (size_t)n * sizeof(double));
    double *est = nas_malloc(ctx, (size_t)n_test * sizeof(double));
    nas_status st = X && y && est ? NAS_OK : NAS_ERR_NOMEM;
    if (st == NAS_OK) {
        st = measure_samples(ctx, space, opts, n, repeats, seed, X, y);
    }
    nas_latpred *p = NULL;
    if (st == NAS_OK) { /* the samples are random draws: the first n_train train */
        st = nas_latpred_fit(ctx, kind, X, y, n_train, d, seed, &p);
    }
    for (int64_t i = 0; st == NAS_OK && i < n_test; i++) {
        st = nas_latpred_predict(p, X + (n_train + i) * d, &est[i]);
    }
    if (st == NAS_OK) {
        st = summarise(ctx, est, y + n_train, n_test, out);
        out->n_train = n_train;
    }
    if (st == NAS_OK && fitted != NULL) {
        *fitted = p;
    } else {
        nas_latpred_free(p);
    }
    nas_free(ctx, X, (size_t)(n * d) * sizeof(float));
    nas_free(ctx, y, (size_t)n * sizeof(double));
    nas_free(ctx, est, (size_t)n_test * sizeof(double));
    return st;
}
