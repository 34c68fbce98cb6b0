/* nsga2.c - NSGA-II (Deb, Pratap, Agarwal, Meyarivan 2002) as an ask/tell strategy with two
 * objectives: the reward (maximised) and a cost (minimised, e.g. latency) from the callback set
 * with nas_strategy_set_cost. The first `population` asks are distinct random architectures;
 * after that each ask breeds a child of the current parents: two binary tournaments (lower
 * non-domination rank wins, then larger crowding distance), uniform per-decision crossover with
 * probability `crossover` (in spaces where every decision always matters, so any mix is valid),
 * then one mutation with probability `mutation`. Every `population` tells form a generation:
 * parents and children together are sorted into fronts and the best `population` by (rank,
 * crowding) become the parents (elitism). Children already proposed are re-bred (dedupe).
 * The Pareto front of a search is read from its trials (nas_pareto_front2). */
#include "strategies_int.h"

/* Defined in nsga2.c; not in strategies_int.h (owned by the search module). */
extern const nas_strategy_vt nas_strategy_nsga2_vt;

#define NSGA_TRIES 48

typedef struct nsga_member {
    nas_arch arch;
    double reward, cost;
    int rank;
    double crowd;
} nsga_member;

typedef struct nsga_state {
    int64_t population;
    double crossover, mutation;
    double (*cost)(void *user, const nas_arch *a);
    void *cost_user;
    nsga_member *parents, *pool; /* population entries each */
    int64_t n_parents, n_pool;
    nsga_member *all;            /* 2 * population: selection scratch */
    double *obj, *dist;          /* 2 * population * 2, 2 * population */
    int *rank;
    int64_t *order;
    nas_archmap seen;
    nas_fast_rng fast;
    int flat;
} nsga_state;

static nas_status nsga_init(nas_strategy *s) {
    static const char *const known[] = {"population", "crossover", "mutation", NULL};
    nas_status st = nas_strategy_params_check(s, known);
    int64_t population = 50;
    double crossover = 0.9, mutation = 1.0;
    if (st == NAS_OK) {
        st = nas_strategy_param_int(s, "population", 2, 100000, &population);
    }
    if (st == NAS_OK) {
        st = nas_strategy_param_double(s, "crossover", 0.0, 1.0, &crossover);
    }
    if (st == NAS_OK) {
        st = nas_strategy_param_double(s, "mutation", 0.0, 1.0, &mutation);
    }
    if (st != NAS_OK) {
        return st;
    }
    nsga_state *g = nas_calloc(s->ctx, 1, sizeof(*g));
    if (g == NULL) {
        return NAS_ERR_NOMEM;
    }
    s->impl = g;
    g->population = population;
    g->crossover = crossover;
    g->mutation = mutation;
    g->fast.state = nas_rng_u64(&s->rng);
    nas_arch probe;
    g->flat = nas_space_size(s->space) > 0 && nas_space_enumerate(s->space, 0, &probe) == NAS_OK;
    nas_clear_error(s->ctx);
    const size_t p = (size_t)population;
    g->parents = nas_malloc(s->ctx, p * sizeof(nsga_member));
    g->pool = nas_malloc(s->ctx, p * sizeof(nsga_member));
    g->all = nas_malloc(s->ctx, 2 * p * sizeof(nsga_member));
    g->obj = nas_malloc(s->ctx, 4 * p * sizeof(double));
    g->dist = nas_malloc(s->ctx, 2 * p * sizeof(double));
    g->rank = nas_malloc(s->ctx, 2 * p * sizeof(int));
    g->order = nas_malloc(s->ctx, 2 * p * sizeof(int64_t));
    if (!g->parents || !g->pool || !g->all || !g->obj || !g->dist || !g->rank || !g->order) {
        return NAS_ERR_NOMEM;
    }
    return nas_archmap_init(&g->seen, s->ctx, s->budget > 0 ? s->budget : 1024);
}

static void nsga_free(nas_strategy *s) {
    nsga_state *g = s->impl;
    if (g == NULL) {
        return;
    }
    const size_t p = (size_t)g->population;
    nas_free(s->ctx, g->parents, g->parents ? p * sizeof(nsga_member) : 0);
    nas_free(s->ctx, g->pool, g->pool ? p * sizeof(nsga_member) : 0);
    nas_free(s->ctx, g->all, g->all ? 2 * p * sizeof(nsga_member) : 0);
    nas_free(s->ctx, g->obj, g->obj ? 4 * p * sizeof(double) : 0);
    nas_free(s->ctx, g->dist, g->dist ? 2 * p * sizeof(double) : 0);
    nas_free(s->ctx, g->rank, g->rank ? 2 * p * sizeof(int) : 0);
    nas_free(s->ctx, g->order, g->order ? 2 * p * sizeof(int64_t) : 0);
    nas_archmap_deinit(&g->seen);
    nas_free(s->ctx, g, sizeof(*g));
}

/* A cheap key of the raw choices: two cells that differ only by isomorphism are different
 * points of a cost/accuracy table, so NSGA-II keeps them apart. */
static uint64_t raw_key(const nas_arch *a) {
    uint64_t h = 0x243F6A8885A308D3ull ^ (uint64_t)a->n;
    for (int d = 0; d < a->n; d++) {
        h = (h ^ (uint32_t)a->choice[d]) * 0x9E3779B97F4A7C15ull;
        h ^= h >> 29;
    }
    return h;
}

/* Binary tournament: lower rank, then larger crowding distance, wins. */
static const nsga_member *tournament(nsga_state *g) {
    const nsga_member *a = &g->parents[nas_fast_below(&g->fast, g->n_parents)];
    const nsga_member *b = &g->parents[nas_fast_below(&g->fast, g->n_parents)];
    if (a->rank != b->rank) {
        return a->rank < b->rank ? a : b;
    }
    return b->crowd > a->crowd ? b : a;
}

static void breed(nas_strategy *s, nsga_state *g, nas_arch *out) {
    const nsga_member *p1 = tournament(g), *p2 = tournament(g);
    nas_arch child = p1->arch;
    if (g->flat && (double)(nas_fast_u64(&g->fast) >> 11) * 0x1.0p-53 < g->crossover) {
        for (int d = 0; d < child.n; d++) {
            if (nas_fast_u64(&g->fast) & 1u) {
                child.choice[d] = p2->arch.choice[d];
            }
        }
    }
    if ((double)(nas_fast_u64(&g->fast) >> 11) * 0x1.0p-53 < g->mutation) {
        nas_space_mutate(s->space, &s->rng, &child, out);
    } else {
        *out = child;
    }
}

static nas_status nsga_ask(nas_strategy *s, nas_arch *out) {
    nsga_state *g = s->impl;
    if (g->cost == NULL) {
        return nas_fail(s->ctx, NAS_ERR_STATE, "strategy nsga2 needs a cost to minimise "
                        "(nas_strategy_set_cost; nascent search: --latency-source or "
                        "--objective)");
    }
    /* children of the parents (random ones before the first generation), re-drawn while
     * already proposed; random ones after NSGA_TRIES repeats, a repeat only when those fail too */
    for (int t = 0; t < 2 * NSGA_TRIES; t++) {
        if (g->n_parents > 0 && t < NSGA_TRIES) {
            breed(s, g, out);
        } else {
            nas_space_sample(s->space, &s->rng, out);
        }
        int added = 0;
        const nas_status st = nas_archmap_put(&g->seen, raw_key(out), NAN, &added);
        if (st != NAS_OK || added) {
            return st;
        }
    }
    return NAS_OK;
}

/* Environmental selection: parents + pool sorted by (rank, -crowding); the best population. */
static nas_status select_next(nas_strategy *s, nsga_state *g) {
    const int64_t n = g->n_parents + g->n_pool;
    memcpy(g->all, g->parents, (size_t)g->n_parents * sizeof(nsga_member));
    memcpy(g->all + g->n_parents, g->pool, (size_t)g->n_pool * sizeof(nsga_member));
    for (int64_t i = 0; i < n; i++) {
        g->obj[2 * i] = -nas_strategy_score(g->all[i].reward);
        g->obj[2 * i + 1] = g->all[i].cost;
    }
    if (nas_pareto_rank(s->ctx, g->obj, n, 2, g->rank) < 0) {
        return NAS_ERR_NOMEM;
    }
    nas_status st = nas_pareto_crowding(s->ctx, g->obj, n, 2, g->rank, g->dist);
    if (st != NAS_OK) {
        return st;
    }
    for (int64_t i = 0; i < n; i++) {
        g->all[i].rank = g->rank[i];
        g->all[i].crowd = g->dist[i];
        g->order[i] = i;
    }
    /* insertion sort by (rank, -crowd, index): n is two populations */
    for (int64_t i = 1; i < n; i++) {
        const int64_t k = g->order[i];
        int64_t j = i;
        while (j > 0) {
            const nsga_member *a = &g->all[g->order[j - 1]], *b = &g->all[k];
            const int after = a->rank > b->rank || (a->rank == b->rank && a->crowd < b->crowd);
            if (!after) {
                break;
            }
            g->order[j] = g->order[j - 1];
            j--;
        }
        g->order[j] = k;
    }
    g->n_parents = n < g->population ? n : g->population;
    for (int64_t i = 0; i < g->n_parents; i++) {
        g->parents[i] = g->all[g->order[i]];
    }
    g->n_pool = 0;
    return NAS_OK;
}

static nas_status nsga_tell(nas_strategy *s, const nas_arch *a, double reward) {
    nsga_state *g = s->impl;
    if (g->cost == NULL) {
        return nas_fail(s->ctx, NAS_ERR_STATE, "strategy nsga2 needs a cost to minimise");
    }
    nsga_member *m = &g->pool[g->n_pool++];
    m->arch = *a;
    m->reward = reward;
    const double c = g->cost(g->cost_user, a);
    m->cost = isnan(c) ? (double)INFINITY : c;
    m->rank = 0;
    m->crowd = 0.0;
    int added;
    nas_status st = nas_archmap_put(&g->seen, raw_key(a), reward, &added);
    if (st == NAS_OK && g->n_pool == g->population) {
        st = select_next(s, g);
    }
    return st;
}

const nas_strategy_vt nas_strategy_nsga2_vt = {
    .name = "nsga2",
    .summary = "NSGA-II on (reward, cost): population=50, crossover=0.9, mutation=1.0",
    .init = nsga_init,
    .ask = nsga_ask,
    .tell = nsga_tell,
    .free = nsga_free,
};

/* Called by nas_strategy_set_cost (constrained.c), which checks the strategy is nsga2. */
nas_status nas_nsga2_set_cost(nas_strategy *s, double (*cost)(void *user, const nas_arch *a),
                              void *user);
nas_status nas_nsga2_set_cost(nas_strategy *s, double (*cost)(void *user, const nas_arch *a),
                              void *user) {
    nsga_state *g = s->impl;
    g->cost = cost;
    g->cost_user = user;
    return NAS_OK;
}
