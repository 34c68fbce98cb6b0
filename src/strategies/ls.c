/* ls.c - local search with best improvement and random restarts (White et al. 2021, "Local
 * search is state of the art for NAS benchmarks"). After `init` random architectures the best
 * becomes the current one; all its neighbours (single-decision changes, nas_space_neighbours)
 * are evaluated in random order, skipping those already known; the search moves to the best
 * neighbour if it beats the current architecture, otherwise it restarts from a new random one. */
#include "strategies_int.h"

typedef struct ls_state {
    int64_t init;
    nas_archmap hist;       /* hash -> reward (NAN while pending) */
    nas_arch current;
    double current_score;
    int have_current;
    nas_arch *nbrs;         /* the current architecture's neighbours, shuffled */
    uint64_t *nbr_hash;
    int64_t n_nbrs, cap_nbrs, next;
    int64_t pending;        /* neighbours asked, not told */
    int restart_pending;    /* a restart architecture was asked and awaits its result */
    uint64_t restart_hash;
    nas_arch restart_arch;
    nas_arch best;          /* best told so far (starts the walk after the random phase) */
    double best_score;
    int have_best;
} ls_state;

static nas_status ls_init(nas_strategy *s) {
    static const char *const known[] = {"init", NULL};
    nas_status st = nas_strategy_params_check(s, known);
    int64_t init = 10;
    if (st == NAS_OK) {
        st = nas_strategy_param_int(s, "init", 1, 1000000, &init);
    }
    if (st != NAS_OK) {
        return st;
    }
    ls_state *l = nas_calloc(s->ctx, 1, sizeof(*l));
    if (l == NULL) {
        return NAS_ERR_NOMEM;
    }
    s->impl = l;
    l->init = init;
    l->best_score = -INFINITY;
    return nas_archmap_init(&l->hist, s->ctx, s->budget > 0 ? s->budget : 256);
}

/* Make `a` (score known) the current architecture and list its neighbours in random order. */
static nas_status set_current(nas_strategy *s, ls_state *l, const nas_arch *a, double score) {
    l->current = *a;
    l->current_score = score;
    l->have_current = 1;
    const int64_t n = nas_space_neighbours(s->space, a, NULL, 0);
    if (n > l->cap_nbrs) {
        nas_free(s->ctx, l->nbrs, (size_t)l->cap_nbrs * sizeof(nas_arch));
        nas_free(s->ctx, l->nbr_hash, (size_t)l->cap_nbrs * sizeof(uint64_t));
        l->nbrs = nas_malloc(s->ctx, (size_t)n * sizeof(nas_arch));
        l->nbr_hash = nas_malloc(s->ctx, (size_t)n * sizeof(uint64_t));
        l->cap_nbrs = n;
        if (l->nbrs == NULL || l->nbr_hash == NULL) {
            return NAS_ERR_NOMEM; /* ls_free releases whichever exists */
        }
    }
    l->n_nbrs = nas_space_neighbours(s->space, a, l->nbrs, n);
    for (int64_t i = l->n_nbrs - 1; i > 0; i--) {
        const int64_t j = nas_rng_below(&s->rng, i + 1);
        const nas_arch t = l->nbrs[i];
        l->nbrs[i] = l->nbrs[j];
        l->nbrs[j] = t;
    }
    for (int64_t i = 0; i < l->n_nbrs; i++) {
        l->nbr_hash[i] = nas_space_hash(s->space, &l->nbrs[i]);
    }
    l->next = 0;
    l->pending = 0;
    return NAS_OK;
}

static nas_status restart(nas_strategy *s, ls_state *l, nas_arch *out) {
    const nas_status st = nas_strategy_sample_unseen(s, &l->hist, out);
    if (st == NAS_OK) {
        l->have_current = 0;
        l->restart_pending = 1;
        l->restart_arch = *out;
        l->restart_hash = nas_space_hash(s->space, out);
    }
    return st;
}

static nas_status ls_ask(nas_strategy *s, nas_arch *out) {
    ls_state *l = s->impl;
    if (s->n_asked < l->init || (!l->have_current && !l->have_best)) {
        return nas_strategy_sample_unseen(s, &l->hist, out);
    }
    if (!l->have_current) {
        if (l->restart_pending) { /* still waiting for the restart point: explore meanwhile */
            return nas_strategy_sample_unseen(s, &l->hist, out);
        }
        const nas_status st = set_current(s, l, &l->best, l->best_score);
        if (st != NAS_OK) {
            return st;
        }
    }
    for (;;) {
        while (l->next < l->n_nbrs) {
            const int64_t i = l->next++;
            int added = 0;
            const nas_status st = nas_archmap_put(&l->hist, l->nbr_hash[i], NAN, &added);
            if (st != NAS_OK) {
                return st;
            }
            if (added) {
                l->pending++;
                *out = l->nbrs[i];
                return NAS_OK;
            }
        }
        if (l->pending > 0) { /* results outstanding (asynchronous use): explore meanwhile */
            return nas_strategy_sample_unseen(s, &l->hist, out);
        }
        /* Every neighbour is known: move to the best one if it improves, else restart. */
        int64_t best = -1;
        double best_score = l->current_score;
        for (int64_t i = 0; i < l->n_nbrs; i++) {
            const double *v = nas_archmap_find(&l->hist, l->nbr_hash[i]);
            const double sc = v != NULL ? nas_strategy_score(*v) : -(double)INFINITY;
            if (sc > best_score) {
                best = i;
                best_score = sc;
            }
        }
        if (best < 0) {
            return restart(s, l, out);
        }
        const nas_arch next = l->nbrs[best];
        const nas_status st = set_current(s, l, &next, best_score);
        if (st != NAS_OK) {
            return st;
        }
    }
}

static nas_status ls_tell(nas_strategy *s, const nas_arch *a, double reward) {
    ls_state *l = s->impl;
    const uint64_t h = nas_space_hash(s->space, a);
    double *v = nas_archmap_find(&l->hist, h);
    if (v == NULL) {
        const nas_status st = nas_archmap_put(&l->hist, h, reward, NULL);
        if (st != NAS_OK) {
            return st;
        }
    } else {
        *v = reward;
    }
    const double score = nas_strategy_score(reward);
    if (!l->have_best || score > l->best_score) {
        l->best = *a;
        l->best_score = score;
        l->have_best = 1;
    }
    if (l->restart_pending && h == l->restart_hash) {
        l->restart_pending = 0;
        return set_current(s, l, &l->restart_arch, score);
    }
    if (l->have_current) {
        for (int64_t i = 0; i < l->next; i++) {
            if (l->nbr_hash[i] == h) {
                l->pending--;
                break;
            }
        }
    }
    return NAS_OK;
}

static void ls_free(nas_strategy *s) {
    ls_state *l = s->impl;
    if (l == NULL) {
        return;
    }
    nas_free(s->ctx, l->nbrs, (size_t)l->cap_nbrs * sizeof(nas_arch));
    nas_free(s->ctx, l->nbr_hash, (size_t)l->cap_nbrs * sizeof(uint64_t));
    nas_archmap_deinit(&l->hist);
    nas_free(s->ctx, l, sizeof(*l));
}

const nas_strategy_vt nas_strategy_ls_vt = {
    .name = "ls",
    .summary = "local search, best improvement over neighbours, random restarts (init=10)",
    .init = ls_init,
    .ask = ls_ask,
    .tell = ls_tell,
    .free = ls_free,
};
