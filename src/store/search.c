/* search.c - the search loop that passes architectures and results between a strategy and an
 * evaluator (strategies never evaluate) and writes each finished trial to the store.
 *
 * Resume: strategies are deterministic given their seed and the sequence of asks and tells, so
 * the trials in the store are the strategy's state. A resumed search replays them into a fresh
 * strategy (ask, check the proposal is the stored one, tell the stored result) and continues;
 * with a seed the final result equals an uninterrupted run's, and no finished trial is repeated
 * or lost. */
#include "core/core_int.h"

#include <math.h>
#include <sys/time.h>

static double unix_now(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + 1e-6 * (double)tv.tv_usec;
}

int64_t nas_trials_best(const nas_trial *trials, int64_t n) {
    int64_t best = -1;
    for (int64_t i = 0; i < n; i++) {
        if (trials[i].state == NAS_TRIAL_COMPLETE && !isnan(trials[i].reward) &&
            (best < 0 || trials[i].reward > trials[best].reward)) {
            best = i;
        }
    }
    return best;
}

static nas_status grow(nas_ctx *ctx, nas_trial **trials, int64_t *cap, int64_t need) {
    if (need <= *cap) {
        return NAS_OK;
    }
    int64_t ncap = nas_max_i64(*cap, 1);
    while (ncap < need) {
        ncap *= 2;
    }
    nas_trial *t = nas_realloc(ctx, *trials, (size_t)nas_max_i64(*cap, 1) * sizeof(nas_trial),
                               (size_t)ncap * sizeof(nas_trial));
    if (t == NULL) {
        return NAS_ERR_NOMEM;
    }
    *trials = t;
    *cap = ncap;
    return NAS_OK;
}

/* Index of an earlier trial of the same canonical architecture, or -1 (linear: studies are
 * hundreds of trials, each costing far more than this scan). */
static int64_t find_repeat(const nas_trial *trials, int64_t n, uint64_t hash) {
    for (int64_t i = 0; i < n; i++) {
        if (trials[i].hash == hash) {
            return i;
        }
    }
    return -1;
}

/* Replay stored trials into the strategy. */
static nas_status replay(nas_ctx *ctx, const nas_space *space, nas_strategy *strategy,
                         const nas_trial *trials, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        nas_arch a;
        nas_status st = nas_strategy_ask(strategy, &a);
        if (st != NAS_OK) {
            return st;
        }
        if (nas_space_hash(space, &a) != trials[i].hash) {
            char want[512], got[512];
            nas_space_encode(space, &trials[i].arch, want, sizeof(want));
            nas_space_encode(space, &a, got, sizeof(got));
            return nas_fail(ctx, NAS_ERR_MISMATCH, "resume: at trial %lld the strategy proposes %s "
                            "but the store has %s (was the study run with other settings or "
                            "another version?)", (long long)i, got, want);
        }
        const double r = trials[i].state == NAS_TRIAL_COMPLETE ? trials[i].reward : (double)NAN;
        st = nas_strategy_tell(strategy, &trials[i].arch, r);
        if (st != NAS_OK) {
            return st;
        }
    }
    return NAS_OK;
}

/* The costs `what` of a complete trial from cm: memory and latency, params and MACs only where
 * the evaluator gave none (its own count is of the network it really evaluated). A cost that
 * cannot be computed (a table without the row, a space that cannot build) stays NAN. */
static void add_costs(nas_ctx *ctx, nas_cost_model *cm, unsigned what, nas_trial *t) {
    if (cm == NULL || what == 0 || t->state != NAS_TRIAL_COMPLETE) {
        return;
    }
    const unsigned want = what & ((isnan(t->params) ? NAS_COST_PARAMS : 0u) |
                                  (isnan(t->macs) ? NAS_COST_MACS : 0u) | NAS_COST_MEMORY |
                                  NAS_COST_LATENCY);
    for (unsigned bit = 1; bit <= NAS_COST_LATENCY; bit <<= 1) {
        nas_cost c;
        if ((want & bit) == 0) {
            continue;
        }
        /* One cost at a time, so a missing latency row does not lose the others. */
        if (nas_cost_eval(cm, &t->arch, bit, &c) != NAS_OK) {
            nas_clear_error(ctx);
            continue;
        }
        t->params = bit == NAS_COST_PARAMS ? c.params : t->params;
        t->macs = bit == NAS_COST_MACS ? c.macs : t->macs;
        t->memory = bit == NAS_COST_MEMORY ? c.memory : t->memory;
        t->latency_ms = bit == NAS_COST_LATENCY ? c.latency_ms : t->latency_ms;
    }
}

/* Evaluate (or reuse) one proposal into t. */
static void evaluate(nas_ctx *ctx, nas_evaluator *eval, const nas_trial *trials, int64_t n,
                     nas_trial *t) {
    const int64_t rep = find_repeat(trials, n, t->hash);
    if (rep >= 0) {
        const nas_arch a = t->arch;
        const int64_t number = t->number;
        *t = trials[rep];
        t->arch = a;
        t->number = number;
        t->cached = 1;
        t->eval_s = 0.0;
        t->finished_at = unix_now();
        return;
    }
    nas_eval_result r;
    const double t0 = nas_now();
    const nas_status st = nas_evaluator_eval_ctx(eval, ctx, &t->arch, &r);
    t->eval_s = nas_now() - t0;
    t->finished_at = unix_now();
    t->cached = 0;
    if (st == NAS_OK) {
        t->state = NAS_TRIAL_COMPLETE;
        t->reward = r.reward;
        t->test = r.test;
        t->params = r.params;
        t->macs = r.macs;
        t->memory = t->latency_ms = NAN;
        t->error[0] = '\0';
    } else {
        t->state = NAS_TRIAL_FAILED;
        t->reward = t->test = t->params = t->macs = t->memory = t->latency_ms = NAN;
        snprintf(t->error, sizeof(t->error), "%s: %s", nas_status_name(st), nas_errmsg(ctx));
        nas_clear_error(ctx);
    }
}

nas_status nas_search_run(nas_ctx *ctx, const nas_space *space, nas_strategy *strategy,
                          nas_evaluator *eval, nas_store *store, int64_t study,
                          const nas_search_opts *opts, nas_trial **trials_out, int64_t *n_out) {
    return nas_search_run_costs(ctx, space, strategy, eval, store, study, opts, NULL, 0,
                                trials_out, n_out);
}

nas_status nas_search_run_costs(nas_ctx *ctx, const nas_space *space, nas_strategy *strategy,
                                nas_evaluator *eval, nas_store *store, int64_t study,
                                const nas_search_opts *opts, nas_cost_model *cm, unsigned what,
                                nas_trial **trials_out, int64_t *n_out) {
    NAS_CHECK_ARG(ctx, space != NULL && strategy != NULL && eval != NULL && opts != NULL &&
                           trials_out != NULL && n_out != NULL && opts->queries >= 0);
    *trials_out = NULL;
    *n_out = 0;
    nas_trial *trials = NULL;
    int64_t n = 0, cap = 0;
    nas_status st = NAS_OK;
    if (store != NULL && opts->resume) {
        st = nas_store_trials(store, study, &trials, &n);
        cap = nas_max_i64(n, 1);
        if (st == NAS_OK) {
            st = replay(ctx, space, strategy, trials, n);
        }
    }
    int64_t best = nas_trials_best(trials, n);
    while (st == NAS_OK && n < opts->queries) {
        st = grow(ctx, &trials, &cap, n + 1);
        if (st != NAS_OK) {
            break;
        }
        nas_trial *t = &trials[n];
        memset(t, 0, sizeof(*t));
        t->number = n;
        st = nas_strategy_ask(strategy, &t->arch);
        if (st == NAS_ERR_INFEASIBLE) { /* nothing left to propose: the search is complete */
            nas_clear_error(ctx);
            st = NAS_OK;
            break;
        }
        if (st != NAS_OK) {
            break;
        }
        t->hash = nas_space_hash(space, &t->arch);
        evaluate(ctx, eval, trials, n, t);
        if (!t->cached) {
            add_costs(ctx, cm, what, t);
        }
        if (store != NULL) {
            char text[NAS_ARCH_TEXT_MAX];
            st = nas_space_encode(space, &t->arch, text, sizeof(text));
            if (st == NAS_OK) {
                st = nas_store_trial_add(store, study, t, text);
            }
            if (st != NAS_OK) {
                break;
            }
        }
        st = nas_strategy_tell(strategy, &t->arch,
                               t->state == NAS_TRIAL_COMPLETE ? t->reward : (double)NAN);
        n++;
        if (t->state == NAS_TRIAL_COMPLETE &&
            (best < 0 || t->reward > trials[best].reward)) {
            best = n - 1;
        }
        if (opts->on_trial != NULL) {
            opts->on_trial(opts->user, t, best >= 0 ? &trials[best] : NULL);
        }
    }
    if (st != NAS_OK) {
        nas_trials_free(ctx, trials, cap);
        return st;
    }
    if (trials == NULL) {
        trials = nas_calloc(ctx, 1, sizeof(nas_trial));
        if (trials == NULL) {
            return NAS_ERR_NOMEM;
        }
        cap = 1;
    }
    if (cap != nas_max_i64(n, 1)) {
        nas_trial *nt = nas_realloc(ctx, trials, (size_t)cap * sizeof(nas_trial),
                                    (size_t)nas_max_i64(n, 1) * sizeof(nas_trial));
        if (nt == NULL) {
            nas_trials_free(ctx, trials, cap);
            return NAS_ERR_NOMEM;
        }
        trials = nt;
    }
    *trials_out = trials;
    *n_out = n;
    return NAS_OK;
}
