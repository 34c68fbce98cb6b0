/* re.c - regularized (aging) evolution, Real et al. 2019. The first `population` asks are random;
 * after that each ask runs a tournament: `sample` distinct members drawn uniformly, the parent is
 * the best of them, the child is the parent with one decision mutated. Each tell appends the
 * child to the population and, past `population` members, removes the oldest (aging).
 * With dedupe=1 (default) every proposal is the canonical form of its isomorphism class (the
 * member grid search proposes) and a class already proposed is never proposed again (the child
 * is mutated again, with a new tournament every few tries): no query is spent on a repeat (the
 * search driver would answer it from its cache), and the best a search can reach is exactly the
 * architecture grid search returns, not a luckier-measured isomorph of it. dedupe=0 is the
 * textbook algorithm on raw choices. A proposal turned away unevaluated (infeasible under a
 * budget, src/strategies/constrained.c) is not aged into the population and never proposed
 * again, so the population holds only evaluated, feasible members.
 * Defaults (population=20, sample=10) were measured on NB201 tables (CIFAR-100 validation, 100
 * seeds): under the HELP Table 4 latency limits at 300 queries they reach the exact feasible
 * optimum in 62% of runs (10/3: 38%, 50/10: 59%, 100/25: 60%; tests/test_hardware_search.c), and
 * unconstrained at 150 queries (CIFAR-10, nascent benchmark) they give 94.35 mean test accuracy
 * (10/3: 94.24). Real et al. used 100 / 25 over 20,000 queries: the smaller population suits the
 * budgets of hundreds of queries a user runs here. */
#include "strategies_int.h"

typedef struct re_member {
    nas_arch arch;
    double score;
} re_member;

typedef struct re_state {
    int64_t population, sample;
    int dedupe;
    re_member *ring; /* population + 1 slots, oldest at head */
    int64_t head, count;
    int64_t *pick;   /* scratch for the tournament, population entries */
    int64_t proposed; /* asks not turned away: the random phase lasts `population` of them */
    nas_archmap seen; /* canonical hashes of every proposed or told architecture */
    nas_fast_rng fast;  /* tournament draws (and mutations where flat) */
    int flat;           /* every decision always matters: mutate here with the fast generator */
    int n_choices[NAS_ARCH_MAX_DECISIONS];
    int n_dec;
} re_state;

#define RE_TRIES 48
#define RE_SAMPLE_TRIES 64
#define RE_POPULATION 20
#define RE_SAMPLE 10

static nas_status re_init(nas_strategy *s) {
    static const char *const known[] = {"population", "sample", "dedupe", NULL};
    nas_status st = nas_strategy_params_check(s, known);
    int64_t population = RE_POPULATION, sample = RE_SAMPLE, dedupe = 1;
    if (st == NAS_OK) {
        st = nas_strategy_param_int(s, "population", 1, 1000000, &population);
    }
    if (st == NAS_OK) {
        st = nas_strategy_param_int(s, "sample", 1, 1000000, &sample);
    }
    if (st == NAS_OK) {
        st = nas_strategy_param_int(s, "dedupe", 0, 1, &dedupe);
    }
    if (st != NAS_OK) {
        return st;
    }
    if (sample > population) {
        return nas_fail(s->ctx, NAS_ERR_ARG, "strategy re: sample=%lld is larger than "
                        "population=%lld", (long long)sample, (long long)population);
    }
    re_state *r = nas_calloc(s->ctx, 1, sizeof(*r));
    if (r == NULL) {
        return NAS_ERR_NOMEM;
    }
    s->impl = r;
    r->population = population;
    r->sample = sample;
    r->dedupe = (int)dedupe;
    r->fast.state = nas_rng_u64(&s->rng);
    /* Spaces enumerate exactly when every decision matters in every architecture; then a
     * mutation is "one decision to another choice", drawn here without Philox's cost. */
    nas_arch probe;
    r->flat = nas_space_size(s->space) > 0 && nas_space_enumerate(s->space, 0, &probe) == NAS_OK;
    nas_clear_error(s->ctx);
    r->n_dec = nas_space_n_decisions(s->space);
    for (int d = 0; d < r->n_dec; d++) {
        r->n_choices[d] = nas_space_n_choices(s->space, d);
        r->flat &= r->n_choices[d] > 1;
    }
    r->ring = nas_malloc(s->ctx, (size_t)(population + 1) * sizeof(re_member));
    r->pick = nas_malloc(s->ctx, (size_t)(population + 1) * sizeof(int64_t));
    if (r->ring == NULL || r->pick == NULL) {
        return NAS_ERR_NOMEM;
    }
    return nas_archmap_init(&r->seen, s->ctx, s->budget > 0 ? s->budget : 256);
}

/* A uniform architecture (the fast generator on flat spaces, as nas_space_sample draws). */
static void sample(nas_strategy *s, re_state *r, nas_arch *out) {
    if (!r->flat) {
        nas_space_sample(s->space, &s->rng, out);
        return;
    }
    out->n = r->n_dec;
    for (int d = 0; d < r->n_dec; d++) {
        out->choice[d] = (int32_t)nas_fast_below(&r->fast, r->n_choices[d]);
    }
}

/* The canonical form of a into out when its class is new (*fresh = 1; recorded as seen). */
static nas_status propose(nas_strategy *s, re_state *r, const nas_arch *a, nas_arch *out,
                          int *fresh) {
    nas_space_canonical(s->space, a, out);
    return nas_archmap_put(&r->seen, nas_space_hash(s->space, out), NAN, fresh);
}

/* An architecture of a class not proposed before: random draws, then (small spaces nearly
 * used up) a scan of the enumeration; NAS_ERR_INFEASIBLE when every class has been proposed. */
static nas_status sample_new(nas_strategy *s, re_state *r, nas_arch *out) {
    for (int t = 0; t < RE_SAMPLE_TRIES; t++) {
        nas_arch a;
        sample(s, r, &a);
        int fresh = 0;
        const nas_status st = propose(s, r, &a, out, &fresh);
        if (st != NAS_OK || fresh) {
            return st;
        }
    }
    nas_arch a;
    const nas_status st = nas_strategy_sample_unseen(s, &r->seen, &a);
    if (st == NAS_OK) {
        nas_space_canonical(s->space, &a, out); /* same class, already recorded */
    }
    return st;
}

/* Best of `sample` distinct members drawn uniformly (rejection of repeats when the sample is
 * small against the population, else a partial Fisher-Yates shuffle). */
static const re_member *tournament(re_state *r) {
    const int64_t m = r->count, k = r->sample < m ? r->sample : m;
    const re_member *best = NULL;
    for (int64_t i = 0; i < k; i++) {
        int64_t pick;
        if (4 * k <= m) {
            int fresh;
            do {
                pick = nas_fast_below(&r->fast, m);
                fresh = 1;
                for (int64_t j = 0; j < i; j++) {
                    fresh &= r->pick[j] != pick;
                }
            } while (!fresh);
            r->pick[i] = pick;
        } else {
            if (i == 0) {
                for (int64_t j = 0; j < m; j++) {
                    r->pick[j] = j;
                }
            }
            const int64_t j = i + nas_fast_below(&r->fast, m - i);
            pick = r->pick[j];
            r->pick[j] = r->pick[i];
            r->pick[i] = pick;
        }
        int64_t slot = r->head + pick;
        slot -= slot > r->population ? r->population + 1 : 0;
        const re_member *c = &r->ring[slot];
        if (best == NULL || c->score > best->score) {
            best = c;
        }
    }
    return best;
}

/* One decision changed to another choice (uniform), as nas_space_mutate does on flat spaces. */
static void mutate(nas_strategy *s, re_state *r, const nas_arch *in, nas_arch *out) {
    if (!r->flat) {
        nas_space_mutate(s->space, &s->rng, in, out);
        return;
    }
    out->n = in->n;
    memcpy(out->choice, in->choice, (size_t)in->n * sizeof(int32_t));
    const int d = (int)nas_fast_below(&r->fast, r->n_dec);
    const int c = (int)nas_fast_below(&r->fast, r->n_choices[d] - 1);
    out->choice[d] = c >= in->choice[d] ? c + 1 : c;
}

static nas_status re_propose(nas_strategy *s, re_state *r, nas_arch *out) {
    if (r->proposed < r->population || r->count == 0) {
        if (!r->dedupe) {
            sample(s, r, out);
            return NAS_OK;
        }
        return sample_new(s, r, out);
    }
    const re_member *parent = tournament(r);
    if (!r->dedupe) {
        mutate(s, r, &parent->arch, out);
        return NAS_OK;
    }
    for (int t = 0; t < RE_TRIES; t++) {
        if (t > 0 && t % 8 == 0) {
            parent = tournament(r); /* this parent's neighbourhood is used up */
        }
        nas_arch child;
        mutate(s, r, &parent->arch, &child);
        int fresh = 0;
        const nas_status st = propose(s, r, &child, out, &fresh);
        if (st != NAS_OK || fresh) {
            return st;
        }
    }
    return sample_new(s, r, out);
}

static nas_status re_ask(nas_strategy *s, nas_arch *out) {
    re_state *r = s->impl;
    const nas_status st = re_propose(s, r, out);
    r->proposed += st == NAS_OK;
    return st;
}

/* Turned away unevaluated: it stays seen (never proposed again) and out of the population. */
static nas_status re_reject(nas_strategy *s, const nas_arch *a) {
    re_state *r = s->impl;
    (void)a;
    r->proposed -= r->proposed > 0;
    return NAS_OK;
}

static nas_status re_tell(nas_strategy *s, const nas_arch *a, double reward) {
    re_state *r = s->impl;
    const int64_t slots = r->population + 1;
    int64_t slot = r->head + r->count; /* no modulo: this runs millions of times */
    slot -= slot >= slots ? slots : 0;
    re_member *m = &r->ring[slot];
    m->arch.n = a->n; /* copy only the used choices: nas_arch is large */
    memcpy(m->arch.choice, a->choice, (size_t)a->n * sizeof(int32_t));
    m->score = nas_strategy_score(reward);
    r->count++;
    if (r->count > r->population) { /* aging: the oldest member dies, whatever its score */
        r->head = r->head + 1 == slots ? 0 : r->head + 1;
        r->count--;
    }
    if (r->dedupe) { /* a told architecture counts as seen even if it was not asked here */
        return nas_archmap_put(&r->seen, nas_space_hash(s->space, a), reward, NULL);
    }
    return NAS_OK;
}

static void re_free(nas_strategy *s) {
    re_state *r = s->impl;
    if (r == NULL) {
        return;
    }
    nas_free(s->ctx, r->ring, r->ring ? (size_t)(r->population + 1) * sizeof(re_member) : 0);
    nas_free(s->ctx, r->pick, r->pick ? (size_t)(r->population + 1) * sizeof(int64_t) : 0);
    nas_archmap_deinit(&r->seen);
    nas_free(s->ctx, r, sizeof(*r));
}

const nas_strategy_vt nas_strategy_re_vt = {
    .name = "re",
    .summary = "regularized evolution (population=20, sample=10, dedupe=1)",
    .init = re_init,
    .ask = re_ask,
    .tell = re_tell,
    .free = re_free,
    .reject = re_reject,
};
