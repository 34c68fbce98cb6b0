/* constrained.c - budgets and the MnasNet objective for any strategy (SPEC 4, 6). The wrapper is
 * itself a strategy: its ask re-asks the inner strategy until a proposal meets the budget,
 * telling the inner strategy about each infeasible one without evaluating it (its reject hook,
 * else a failed result, NAN), so infeasible architectures never reach the evaluator or the
 * store and cost no query. With the MnasNet objective
 * (Tan et al. 2019) the inner strategy is told ACC * (LAT / T)^w instead of the accuracy ACC.
 * Costs come from a nas_cost_model (memoised), so a re-proposed architecture costs nothing. */
#include "strategies_int.h"

/* Defined in nsga2.c; not in strategies_int.h (owned by the search module). */
extern const nas_strategy_vt nas_strategy_nsga2_vt;

#define DEFAULT_MAX_REJECTS 100000

typedef struct constrained_state {
    nas_strategy *inner;
    nas_cost_model *cm;
    nas_constraint_opts o;
    unsigned what;     /* costs the budget limits */
    int64_t rejected;  /* infeasible proposals so far */
} constrained_state;

static nas_status constrained_init(nas_strategy *s) {
    (void)s;
    return NAS_OK; /* state is attached by nas_strategy_constrain */
}

/* Tell the inner strategy that its proposal a was turned away: through its reject hook where
 * it has one (evolution keeps its population to evaluated members), else as a failed result. */
static nas_status reject(constrained_state *c, const nas_arch *a) {
    if (c->o.silent_rejects) {
        return NAS_OK;
    }
    if (c->inner->vt->reject != NULL) {
        return c->inner->vt->reject(c->inner, a);
    }
    return nas_strategy_tell(c->inner, a, NAN);
}

static nas_status constrained_ask(nas_strategy *s, nas_arch *out) {
    constrained_state *c = s->impl;
    for (int64_t tries = 0; tries < c->o.max_rejects; tries++) {
        nas_status st = nas_strategy_ask(c->inner, out);
        if (st != NAS_OK || c->what == 0) {
            return st;
        }
        nas_cost cost;
        st = nas_cost_eval(c->cm, out, c->what, &cost);
        if (st != NAS_OK) {
            return st;
        }
        if (nas_budget_feasible(&c->o.budget, &cost)) {
            return NAS_OK;
        }
        c->rejected++;
        st = reject(c, out);
        if (st != NAS_OK) {
            return st;
        }
    }
    return nas_fail(s->ctx, NAS_ERR_INFEASIBLE, "strategy %s under a budget: %lld proposals in a "
                    "row were infeasible", nas_strategy_name(c->inner),
                    (long long)c->o.max_rejects);
}

static nas_status constrained_tell(nas_strategy *s, const nas_arch *a, double reward) {
    constrained_state *c = s->impl;
    if (c->o.mnas && !isnan(reward)) {
        nas_cost cost;
        const nas_status st = nas_cost_eval(c->cm, a, NAS_COST_LATENCY, &cost);
        if (st != NAS_OK) {
            return st;
        }
        reward *= pow(cost.latency_ms / c->o.mnas_target_ms, c->o.mnas_w);
    }
    return nas_strategy_tell(c->inner, a, reward);
}

static void constrained_free(nas_strategy *s) {
    constrained_state *c = s->impl;
    if (c != NULL) {
        nas_strategy_free(c->inner);
        nas_free(s->ctx, c, sizeof(*c));
    }
}

static const nas_strategy_vt constrained_vt = {
    .name = "constrained",
    .summary = "any strategy under a budget, optionally with the MnasNet reward",
    .init = constrained_init,
    .ask = constrained_ask,
    .tell = constrained_tell,
    .free = constrained_free,
};

nas_status nas_strategy_constrain(nas_strategy *inner, nas_cost_model *cm,
                                  const nas_constraint_opts *opts, nas_strategy **out) {
    if (inner == NULL || out == NULL) {
        nas_strategy_free(inner);
        return NAS_ERR_ARG;
    }
    nas_ctx *ctx = inner->ctx;
    *out = NULL;
    nas_constraint_opts o = {0};
    if (opts != NULL) {
        o = *opts;
    }
    o.max_rejects = o.max_rejects > 0 ? o.max_rejects : DEFAULT_MAX_REJECTS;
    o.mnas_w = o.mnas_w != 0.0 ? o.mnas_w : -0.07;
    o.mnas_target_ms = o.mnas_target_ms > 0 ? o.mnas_target_ms : o.budget.max_latency_ms;
    nas_status st = NAS_OK;
    const unsigned what = nas_budget_what(&o.budget);
    if ((what != 0 || o.mnas) && cm == NULL) {
        st = nas_fail(ctx, NAS_ERR_ARG, "a budget or the MnasNet objective needs a cost model");
    } else if (o.mnas && !(o.mnas_target_ms > 0)) {
        st = nas_fail(ctx, NAS_ERR_ARG, "the MnasNet objective needs a target latency T > 0 ms "
                      "(mnas:T or --max-latency-ms)");
    } else if (o.mnas && nas_cost_model_latency_source(cm)[0] == '\0') {
        st = nas_fail(ctx, NAS_ERR_ARG, "the MnasNet objective needs a latency source");
    }
    nas_strategy *s = st == NAS_OK ? nas_calloc(ctx, 1, sizeof(*s)) : NULL;
    constrained_state *c = s != NULL ? nas_calloc(ctx, 1, sizeof(*c)) : NULL;
    if (st == NAS_OK && c == NULL) {
        st = NAS_ERR_NOMEM;
    }
    if (st != NAS_OK) {
        nas_free(ctx, s, s != NULL ? sizeof(*s) : 0);
        nas_strategy_free(inner);
        return st;
    }
    c->inner = inner;
    c->cm = cm;
    c->o = o;
    c->what = what;
    *s = (nas_strategy){.ctx = ctx, .space = inner->space, .vt = &constrained_vt,
                        .seed = inner->seed, .budget = inner->budget, .rng = inner->rng,
                        .impl = c};
    *out = s;
    return NAS_OK;
}

int64_t nas_strategy_rejected(const nas_strategy *s) {
    return s != NULL && s->vt == &constrained_vt ? ((const constrained_state *)s->impl)->rejected
                                                 : 0;
}

/* In nsga2.c. */
nas_status nas_nsga2_set_cost(nas_strategy *s, double (*cost)(void *user, const nas_arch *a),
                              void *user);

nas_status nas_strategy_set_cost(nas_strategy *s, double (*cost)(void *user, const nas_arch *a),
                                 void *user) {
    if (s == NULL || cost == NULL) {
        return NAS_ERR_ARG;
    }
    if (s->vt == &constrained_vt) {
        return nas_strategy_set_cost(((constrained_state *)s->impl)->inner, cost, user);
    }
    if (s->vt == &nas_strategy_nsga2_vt) {
        return nas_nsga2_set_cost(s, cost, user);
    }
    return nas_fail(s->ctx, NAS_ERR_UNSUPPORTED, "strategy %s has one objective (a cost is for "
                    "nsga2)", s->vt->name);
}
