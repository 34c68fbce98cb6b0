/* re.c - regularized (aging) evolution, Real et al. 2019. The first `population` asks are random;
 * after that each ask runs a tournament: `sample` distinct members drawn uniformly, the parent is
 * the best of them, the child is the parent with one decision mutated. Each tell appends the
 * child to the population and, past `population` members, removes the oldest (aging).
 * With dedupe=1 (default) a child already proposed (the same choices) is mutated again (a new
 * tournament every few tries), so no query is spent on a repeat; dedupe=0 is the textbook
 * algorithm. Repeats are keyed on the raw choices, not the canonical form: RE is the strategy
 * benchmarks run millions of times, and the canonical hash would be most of its cost. */
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
    nas_archmap seen;
    nas_fast_rng fast;  /* tournament draws (and mutations where flat) */
    int flat;           /* every decision always matters: mutate here with the fast generator */
    int n_choices[NAS_ARCH_MAX_DECISIONS];
    int n_dec;
} re_state;

#define RE_TRIES 48

static nas_status re_init(nas_strategy *s) {
    static const char *const known[] = {"population", "sample", "dedupe", NULL};
    nas_status st = nas_strategy_params_check(s, known);
    int64_t population = 10, sample = 3, dedupe = 1;
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

/* A cheap key of the raw choices (splitmix-style mixing). */
static uint64_t raw_key(const nas_arch *a) {
    uint64_t h = 0x243F6A8885A308D3ull ^ (uint64_t)a->n;
    for (int d = 0; d < a->n; d++) {
        h = (h ^ (uint32_t)a->choice[d]) * 0x9E3779B97F4A7C15ull;
        h ^= h >> 29;
    }
    return h;
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

/* Draw an architecture of unseen raw key (a repeat only when 64 draws found nothing new). */
static nas_status sample_new(nas_strategy *s, re_state *r, nas_arch *out) {
    for (int t = 0; t < 64; t++) {
        sample(s, r, out);
        int added = 0;
        const nas_status st = nas_archmap_put(&r->seen, raw_key(out), NAN, &added);
        if (st != NAS_OK || added) {
            return st;
        }
    }
    sample(s, r, out); /* nearly everything seen: allow a repeat */
    return NAS_OK;
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

static nas_status re_ask(nas_strategy *s, nas_arch *out) {
    re_state *r = s->impl;
    if (s->n_asked < r->population || r->count == 0) {
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
        mutate(s, r, &parent->arch, out);
        int added = 0;
        const nas_status st = nas_archmap_put(&r->seen, raw_key(out), NAN, &added);
        if (st != NAS_OK || added) {
            return st;
        }
    }
    return sample_new(s, r, out);
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
        return nas_archmap_put(&r->seen, raw_key(a), reward, NULL);
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
    .summary = "regularized evolution (population=10, sample=3, dedupe=1)",
    .init = re_init,
    .ask = re_ask,
    .tell = re_tell,
    .free = re_free,
};
