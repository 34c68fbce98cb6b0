/* bo.c - predictor-based search in the style of BANANAS (White et al. 2021): after `init` random
 * architectures, each round fits an ensemble of MLPs (mlp.c) on the features of every
 * architecture told so far, generates `candidates` unseen architectures by mutating the `parents`
 * best ones (one or two decisions changed), scores them with the acquisition function and queues
 * the `batch` best for the next asks:
 *   acq=its  independent Thompson sampling: a draw from N(mean, std) of the ensemble per candidate
 *   acq=ucb  mean + beta * std
 * Rewards of failed evaluations are left out of the fit. */
#include "strategies_int.h"

#include <stdlib.h>

typedef struct bo_told {
    nas_arch arch;
    double reward;
} bo_told;

typedef struct bo_state {
    int64_t init, batch, candidates, parents;
    int ucb;
    double beta;
    nas_mlp_config mlp;
    nas_mlp_ensemble *ens;
    int64_t n_feat;
    nas_archmap seen;      /* canonical hash -> reward (NAN while pending) */
    bo_told *told;         /* successful results, in tell order */
    int64_t n_told, cap_told;
    nas_arch *queue;       /* proposals of the current round */
    int64_t q_head, q_len;
    int64_t rounds;
    /* round scratch */
    nas_arch *cand;
    float *feat, *y, *mu, *sd;
    double *acq;
    int64_t *order;
    int64_t cap_feat;
} bo_state;

static nas_status bo_init(nas_strategy *s) {
    static const char *const known[] = {"init", "batch", "candidates", "parents", "acq", "beta",
                                        "members", "hidden", "layers", "epochs", "lr", NULL};
    nas_status st = nas_strategy_params_check(s, known);
    int64_t init = 10, batch = 10, candidates = 100, parents = 10, members = 5, hidden = 32,
            layers = 2, epochs = 100;
    double beta = 1.0, lr = 0.01;
    char acq[16] = "its";
    if (st == NAS_OK) st = nas_strategy_param_int(s, "init", 1, 100000, &init);
    if (st == NAS_OK) st = nas_strategy_param_int(s, "batch", 1, 100000, &batch);
    if (st == NAS_OK) st = nas_strategy_param_int(s, "candidates", 1, 1000000, &candidates);
    if (st == NAS_OK) st = nas_strategy_param_int(s, "parents", 1, 100000, &parents);
    if (st == NAS_OK) st = nas_strategy_param_int(s, "members", 1, 64, &members);
    if (st == NAS_OK) st = nas_strategy_param_int(s, "hidden", 1, 4096, &hidden);
    if (st == NAS_OK) st = nas_strategy_param_int(s, "layers", 1, 4, &layers);
    if (st == NAS_OK) st = nas_strategy_param_int(s, "epochs", 1, 100000, &epochs);
    if (st == NAS_OK) st = nas_strategy_param_double(s, "beta", 0.0, 1000.0, &beta);
    if (st == NAS_OK) st = nas_strategy_param_double(s, "lr", 1e-8, 10.0, &lr);
    if (st == NAS_OK) st = nas_strategy_param_str(s, "acq", acq, sizeof(acq));
    if (st != NAS_OK) {
        return st;
    }
    if (strcmp(acq, "its") != 0 && strcmp(acq, "ucb") != 0) {
        return nas_fail(s->ctx, NAS_ERR_ARG, "strategy bo: acq=%s is not its or ucb", acq);
    }
    bo_state *b = nas_calloc(s->ctx, 1, sizeof(*b));
    if (b == NULL) {
        return NAS_ERR_NOMEM;
    }
    s->impl = b;
    b->init = init;
    b->batch = batch;
    b->candidates = candidates;
    b->parents = parents;
    b->ucb = strcmp(acq, "ucb") == 0;
    b->beta = beta;
    b->mlp = (nas_mlp_config){(int)members, (int)hidden, (int)layers, (int)epochs, (float)lr,
                              0.0f};
    b->n_feat = nas_space_n_features(s->space);
    b->queue = nas_malloc(s->ctx, (size_t)batch * sizeof(nas_arch));
    b->cand = nas_malloc(s->ctx, (size_t)candidates * sizeof(nas_arch));
    b->mu = nas_malloc(s->ctx, (size_t)candidates * sizeof(float));
    b->sd = nas_malloc(s->ctx, (size_t)candidates * sizeof(float));
    b->acq = nas_malloc(s->ctx, (size_t)candidates * sizeof(double));
    b->order = nas_malloc(s->ctx, (size_t)candidates * sizeof(int64_t));
    if (!b->queue || !b->cand || !b->mu || !b->sd || !b->acq || !b->order) {
        return NAS_ERR_NOMEM;
    }
    st = nas_mlp_ensemble_new(s->ctx, b->n_feat, &b->mlp, &b->ens);
    if (st == NAS_OK) {
        st = nas_archmap_init(&b->seen, s->ctx, s->budget > 0 ? s->budget : 256);
    }
    return st;
}

/* Feature rows for n architectures into b->feat (grown as needed). */
static nas_status features(nas_strategy *s, bo_state *b, const nas_arch *const *archs,
                           int64_t n) {
    if (n > b->cap_feat) {
        nas_free(s->ctx, b->feat, (size_t)(b->cap_feat * b->n_feat) * sizeof(float));
        nas_free(s->ctx, b->y, (size_t)b->cap_feat * sizeof(float));
        const int64_t cap = n > 2 * b->cap_feat ? n : 2 * b->cap_feat;
        b->feat = nas_malloc(s->ctx, (size_t)(cap * b->n_feat) * sizeof(float));
        b->y = nas_malloc(s->ctx, (size_t)cap * sizeof(float));
        b->cap_feat = cap;
        if (b->feat == NULL || b->y == NULL) {
            return NAS_ERR_NOMEM;
        }
    }
    for (int64_t i = 0; i < n; i++) {
        nas_space_features(s->space, archs[i], b->feat + i * b->n_feat);
    }
    return NAS_OK;
}

static int cmp_told_desc(const void *x, const void *y) {
    const bo_told *a = x, *c = y;
    return a->reward > c->reward ? -1 : a->reward < c->reward;
}

/* One round: fit, generate candidates, fill the queue. */
static nas_status bo_round(nas_strategy *s, bo_state *b) {
    const int64_t n = b->n_told;
    const nas_arch **rows = nas_malloc(s->ctx, (size_t)nas_max_i64(n, b->candidates) *
                                                   sizeof(nas_arch *));
    if (rows == NULL) {
        return NAS_ERR_NOMEM;
    }
    /* Sorted best first: parents are the head; the fit does not care about the order. */
    qsort(b->told, (size_t)n, sizeof(bo_told), cmp_told_desc);
    for (int64_t i = 0; i < n; i++) {
        rows[i] = &b->told[i].arch;
    }
    nas_status st = features(s, b, rows, n);
    for (int64_t i = 0; st == NAS_OK && i < n; i++) {
        b->y[i] = (float)b->told[i].reward;
    }
    if (st == NAS_OK) {
        st = nas_mlp_ensemble_fit(b->ens, b->feat, b->y, n, s->seed * 7919u + (uint64_t)b->rounds);
    }
    /* Candidates: mutations (1 or 2 decisions) of the best told architectures, unseen, distinct. */
    nas_archmap local;
    int64_t m = 0;
    if (st == NAS_OK) {
        st = nas_archmap_init(&local, s->ctx, b->candidates);
    }
    const int64_t parents = nas_min_i64(b->parents, n);
    for (int64_t t = 0; st == NAS_OK && m < b->candidates && t < 8 * b->candidates; t++) {
        nas_arch *c = &b->cand[m];
        nas_space_mutate(s->space, &s->rng, &b->told[t % parents].arch, c);
        if (nas_rng_below(&s->rng, 2) == 1) {
            const nas_arch once = *c;
            nas_space_mutate(s->space, &s->rng, &once, c);
        }
        const uint64_t h = nas_space_hash(s->space, c);
        int added = 0;
        if (nas_archmap_find(&b->seen, h) == NULL) {
            st = nas_archmap_put(&local, h, 0.0, &added);
        }
        m += added;
    }
    if (st == NAS_OK && m < b->batch) { /* the neighbourhood is used up: add random ones */
        for (int64_t t = 0; st == NAS_OK && m < b->candidates && t < 4 * b->candidates; t++) {
            nas_arch *c = &b->cand[m];
            nas_space_sample(s->space, &s->rng, c);
            const uint64_t h = nas_space_hash(s->space, c);
            int added = 0;
            if (nas_archmap_find(&b->seen, h) == NULL) {
                st = nas_archmap_put(&local, h, 0.0, &added);
            }
            m += added;
        }
    }
    if (local.ctx != NULL) {
        nas_archmap_deinit(&local);
    }
    if (st == NAS_OK && m > 0) {
        for (int64_t i = 0; i < m; i++) {
            rows[i] = &b->cand[i];
        }
        st = features(s, b, rows, m);
        if (st == NAS_OK) {
            st = nas_mlp_ensemble_predict(b->ens, b->feat, m, b->mu, b->sd);
        }
    }
    nas_free(s->ctx, rows, (size_t)nas_max_i64(n, b->candidates) * sizeof(nas_arch *));
    if (st != NAS_OK) {
        return st;
    }
    for (int64_t i = 0; i < m; i++) {
        const double z = b->ucb ? b->beta : nas_rng_normal(&s->rng);
        b->acq[i] = (double)b->mu[i] + z * (double)b->sd[i];
        b->order[i] = i;
    }
    /* Top `batch` by acquisition (selection: batch is small). */
    const int64_t k = nas_min_i64(b->batch, m);
    for (int64_t i = 0; i < k; i++) {
        int64_t best = i;
        for (int64_t j = i + 1; j < m; j++) {
            if (b->acq[b->order[j]] > b->acq[b->order[best]]) {
                best = j;
            }
        }
        const int64_t t = b->order[i];
        b->order[i] = b->order[best];
        b->order[best] = t;
        b->queue[i] = b->cand[b->order[i]];
    }
    b->q_head = 0;
    b->q_len = k;
    b->rounds++;
    return NAS_OK;
}

static nas_status bo_ask(nas_strategy *s, nas_arch *out) {
    bo_state *b = s->impl;
    if (b->q_head == b->q_len && s->n_asked >= b->init && b->n_told >= 2) {
        const nas_status st = bo_round(s, b);
        if (st != NAS_OK) {
            return st;
        }
    }
    while (b->q_head < b->q_len) {
        *out = b->queue[b->q_head++];
        int added = 0;
        const nas_status st = nas_archmap_put(&b->seen, nas_space_hash(s->space, out), NAN, &added);
        if (st != NAS_OK || added) {
            return st;
        }
    }
    return nas_strategy_sample_unseen(s, &b->seen, out);
}

static nas_status bo_tell(nas_strategy *s, const nas_arch *a, double reward) {
    bo_state *b = s->impl;
    nas_status st = nas_archmap_put(&b->seen, nas_space_hash(s->space, a), reward, NULL);
    if (st != NAS_OK || isnan(reward)) {
        return st;
    }
    if (b->n_told == b->cap_told) {
        const int64_t cap = b->cap_told ? 2 * b->cap_told : 64;
        bo_told *t = nas_realloc(s->ctx, b->told, (size_t)b->cap_told * sizeof(bo_told),
                                 (size_t)cap * sizeof(bo_told));
        if (t == NULL) {
            return NAS_ERR_NOMEM;
        }
        b->told = t;
        b->cap_told = cap;
    }
    b->told[b->n_told].arch = *a;
    b->told[b->n_told].reward = reward;
    b->n_told++;
    return NAS_OK;
}

static void bo_free(nas_strategy *s) {
    bo_state *b = s->impl;
    if (b == NULL) {
        return;
    }
    nas_ctx *ctx = s->ctx;
    nas_mlp_ensemble_free(b->ens);
    nas_archmap_deinit(&b->seen);
    nas_free(ctx, b->told, (size_t)b->cap_told * sizeof(bo_told));
    nas_free(ctx, b->queue, (size_t)b->batch * sizeof(nas_arch));
    nas_free(ctx, b->cand, (size_t)b->candidates * sizeof(nas_arch));
    nas_free(ctx, b->mu, (size_t)b->candidates * sizeof(float));
    nas_free(ctx, b->sd, (size_t)b->candidates * sizeof(float));
    nas_free(ctx, b->acq, (size_t)b->candidates * sizeof(double));
    nas_free(ctx, b->order, (size_t)b->candidates * sizeof(int64_t));
    nas_free(ctx, b->feat, (size_t)(b->cap_feat * b->n_feat) * sizeof(float));
    nas_free(ctx, b->y, (size_t)b->cap_feat * sizeof(float));
    nas_free(ctx, b, sizeof(*b));
}

const nas_strategy_vt nas_strategy_bo_vt = {
    .name = "bo",
    .summary = "BANANAS-style predictor search: MLP ensemble, mutations of the best, "
               "acq=its|ucb (init=10, batch=10, candidates=100, members=5, epochs=100)",
    .init = bo_init,
    .ask = bo_ask,
    .tell = bo_tell,
    .free = bo_free,
};
