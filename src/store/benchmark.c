/* benchmark.c - many seeded searches of one strategy without a store (the `nascent benchmark`
 * loop): for each seed a fresh strategy asks and is told `queries` times; the incumbent (best
 * reward so far) is recorded at each checkpoint with its test accuracy. Seeds run in parallel,
 * one context per thread; each run depends only on its seed, so results do not depend on the
 * thread count. */
#include "core/core_int.h"

#include <math.h>

/* One seeded run; writes test/valid of the incumbent at each checkpoint. */
static nas_status one_run(nas_ctx *ctx, const nas_space *space, const char *strategy,
                          nas_evaluator *eval, const nas_bench_opts *o, uint64_t seed,
                          double *test, double *valid) {
    nas_strategy *s = NULL;
    const nas_strategy_opts so = {seed, o->queries, o->params};
    nas_status st = nas_strategy_new(ctx, strategy, space, &so, &s);
    double best = -INFINITY, best_test = NAN;
    int next_cp = 0;
    for (int64_t q = 0; st == NAS_OK && q < o->queries; q++) {
        nas_arch a;
        st = nas_strategy_ask(s, &a);
        if (st == NAS_ERR_INFEASIBLE) { /* space exhausted: the incumbent stays */
            nas_clear_error(ctx);
            st = NAS_OK;
            break;
        }
        if (st != NAS_OK) {
            break;
        }
        nas_eval_result r;
        double reward = NAN;
        if (nas_evaluator_eval_ctx(eval, ctx, &a, &r) == NAS_OK) {
            reward = r.reward;
            if (reward > best) {
                best = reward;
                best_test = r.test;
            }
        } else {
            nas_clear_error(ctx);
        }
        st = nas_strategy_tell(s, &a, reward);
        while (next_cp < o->n_checkpoints && o->checkpoints[next_cp] == q + 1) {
            test[next_cp] = best_test;
            valid[next_cp] = isfinite(best) ? best : (double)NAN;
            next_cp++;
        }
    }
    for (; next_cp < o->n_checkpoints; next_cp++) {
        test[next_cp] = best_test;
        valid[next_cp] = isfinite(best) ? best : (double)NAN;
    }
    nas_strategy_free(s);
    return st;
}

nas_status nas_benchmark_run(nas_ctx *ctx, const nas_space *space, const char *strategy,
                             nas_evaluator *eval, const nas_bench_opts *o, double *test,
                             double *valid, double *seconds) {
    NAS_CHECK_ARG(ctx, space != NULL && strategy != NULL && eval != NULL && o != NULL &&
                           test != NULL && valid != NULL && o->seeds > 0 && o->queries > 0 &&
                           o->n_checkpoints > 0 && o->checkpoints != NULL);
    /* Check the name and parameters once, here, so the error is the caller's. */
    nas_strategy *probe = NULL;
    const nas_strategy_opts so = {o->first_seed, o->queries, o->params};
    nas_status st = nas_strategy_new(ctx, strategy, space, &so, &probe);
    nas_strategy_free(probe);
    if (st != NAS_OK) {
        return st;
    }
    const int64_t seeds = o->seeds, ncp = o->n_checkpoints;
    /* Per-seed status and message slots: no locking, and the reported error is the lowest
     * failing seed's whatever the thread count. */
    nas_status *status = nas_calloc(ctx, (size_t)seeds, sizeof(nas_status));
    char *msgs = nas_calloc(ctx, (size_t)seeds, 256);
    if (status == NULL || msgs == NULL) {
        nas_free(ctx, status, (size_t)seeds * sizeof(nas_status));
        nas_free(ctx, msgs, (size_t)seeds * 256);
        return NAS_ERR_NOMEM;
    }
    const double t0 = nas_now();
    NAS_OMP_PARALLEL
    {
        /* Seeds dealt round-robin: runs of one strategy cost about the same. */
        nas_ctx *tctx = nas_ctx_new();
        const int tid = nas_thread_id(), nth = nas_thread_count();
        for (int64_t i = tid; i < seeds; i += nth) {
            status[i] = tctx != NULL ? one_run(tctx, space, strategy, eval, o,
                                               o->first_seed + (uint64_t)i, test + i * ncp,
                                               valid + i * ncp)
                                     : NAS_ERR_NOMEM;
            if (status[i] != NAS_OK && tctx != NULL) {
                snprintf(msgs + i * 256, 256, "%s", nas_errmsg(tctx));
            }
        }
        nas_ctx_free(tctx);
    }
    if (seconds != NULL) {
        *seconds = nas_now() - t0;
    }
    st = NAS_OK;
    for (int64_t i = 0; i < seeds && st == NAS_OK; i++) {
        if (status[i] != NAS_OK) {
            st = nas_fail(ctx, status[i], "benchmark %s, seed %llu: %s", strategy,
                          (unsigned long long)(o->first_seed + (uint64_t)i), msgs + i * 256);
        }
    }
    nas_free(ctx, status, (size_t)seeds * sizeof(nas_status));
    nas_free(ctx, msgs, (size_t)seeds * 256);
    return st;
}
