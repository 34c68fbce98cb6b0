/* pnas.c - progressive search (PNAS, Liu et al. 2018) for spaces whose decisions describe a cell
 * block by block: the decisions are split, in order, into `stages` groups (blocks). Stage 1
 * evaluates up to `beam` architectures that differ only in the first block (the other decisions
 * at the space's default). Each later stage expands the `beam` best architectures of the
 * previous stage by every combination of the next block's choices (at most `expand` per parent,
 * drawn at random beyond that), ranks the expansions with the MLP-ensemble predictor (mlp.c)
 * trained on everything evaluated so far, and evaluates the `beam` best. Once the cell is
 * complete, the search continues with predictor-ranked mutations of the best architectures. */
#include "strategies_int.h"

#include <stdlib.h>

typedef struct pnas_told {
    nas_arch arch;
    double reward;
    int stage;
} pnas_told;

typedef struct pnas_state {
    int64_t beam, expand, stages;
    int bounds[NAS_ARCH_MAX_DECISIONS + 1]; /* block b is decisions [bounds[b], bounds[b+1]) */
    nas_arch base;                         /* the default architecture */
    nas_mlp_config mlp;
    nas_mlp_ensemble *ens;
    int64_t n_feat;
    nas_archmap seen;   /* canonical hash -> reward (NAN while pending) */
    nas_archmap tag;    /* canonical hash -> the stage that proposed it */
    pnas_told *told;
    int64_t n_told, cap_told;
    nas_arch *queue;
    int64_t q_head, q_len;
    int64_t stage;      /* the next stage to build */
    int64_t pending;    /* asked from the queue, not yet told */
    nas_arch *cand;
    int64_t n_cand, cap_cand;
    float *feat, *y, *mu;
    int64_t cap_feat;
} pnas_state;

static nas_status pnas_init(nas_strategy *s) {
    static const char *const known[] = {"beam", "expand", "stages", "epochs", NULL};
    nas_status st = nas_strategy_params_check(s, known);
    const int n_dec = nas_space_n_decisions(s->space);
    int64_t beam = 10, expand = 100, stages = n_dec < 3 ? n_dec : 3, epochs = 100;
    if (st == NAS_OK) st = nas_strategy_param_int(s, "beam", 1, 100000, &beam);
    if (st == NAS_OK) st = nas_strategy_param_int(s, "expand", 1, 1000000, &expand);
    if (st == NAS_OK) st = nas_strategy_param_int(s, "stages", 1, n_dec, &stages);
    if (st == NAS_OK) st = nas_strategy_param_int(s, "epochs", 1, 100000, &epochs);
    if (st != NAS_OK) {
        return st;
    }
    pnas_state *p = nas_calloc(s->ctx, 1, sizeof(*p));
    if (p == NULL) {
        return NAS_ERR_NOMEM;
    }
    s->impl = p;
    p->beam = beam;
    p->expand = expand;
    p->stages = stages;
    for (int b = 0; b <= stages; b++) {
        p->bounds[b] = (int)((int64_t)b * n_dec / stages);
    }
    st = nas_space_decode(s->ctx, s->space, "default", &p->base);
    p->mlp = (nas_mlp_config){5, 32, 2, (int)epochs, 0.01f, 0.0f};
    p->n_feat = nas_space_n_features(s->space);
    p->queue = nas_malloc(s->ctx, (size_t)beam * sizeof(nas_arch));
    if (st == NAS_OK && p->queue == NULL) {
        st = NAS_ERR_NOMEM;
    }
    if (st == NAS_OK) st = nas_mlp_ensemble_new(s->ctx, p->n_feat, &p->mlp, &p->ens);
    if (st == NAS_OK) st = nas_archmap_init(&p->seen, s->ctx, 256);
    if (st == NAS_OK) st = nas_archmap_init(&p->tag, s->ctx, 256);
    return st;
}

static nas_status add_candidate(nas_strategy *s, pnas_state *p, nas_archmap *local,
                                const nas_arch *a) {
    const uint64_t h = nas_space_hash(s->space, a);
    if (nas_archmap_find(&p->seen, h) != NULL) {
        return NAS_OK;
    }
    int added = 0;
    nas_status st = nas_archmap_put(local, h, 0.0, &added);
    if (st != NAS_OK || !added) {
        return st;
    }
    if (p->n_cand == p->cap_cand) {
        const int64_t cap = p->cap_cand ? 2 * p->cap_cand : 256;
        nas_arch *c = nas_realloc(s->ctx, p->cand, (size_t)p->cap_cand * sizeof(nas_arch),
                                  (size_t)cap * sizeof(nas_arch));
        if (c == NULL) {
            return NAS_ERR_NOMEM;
        }
        p->cand = c;
        p->cap_cand = cap;
    }
    p->cand[p->n_cand++] = *a;
    return NAS_OK;
}

/* Every combination of block b's choices on top of `parent` (at most p->expand, at random
 * beyond that). */
static nas_status expand_block(nas_strategy *s, pnas_state *p, nas_archmap *local,
                               const nas_arch *parent, int b) {
    const int lo = p->bounds[b], hi = p->bounds[b + 1];
    double combos = 1.0;
    for (int d = lo; d < hi; d++) {
        combos *= nas_space_n_choices(s->space, d);
    }
    nas_status st = NAS_OK;
    if (combos <= (double)p->expand) {
        for (int64_t i = 0; st == NAS_OK && i < (int64_t)combos; i++) {
            nas_arch a = *parent;
            int64_t rest = i;
            for (int d = lo; d < hi; d++) {
                const int k = nas_space_n_choices(s->space, d);
                a.choice[d] = (int32_t)(rest % k);
                rest /= k;
            }
            st = add_candidate(s, p, local, &a);
        }
        return st;
    }
    for (int64_t i = 0; st == NAS_OK && i < p->expand; i++) {
        nas_arch a = *parent;
        for (int d = lo; d < hi; d++) {
            a.choice[d] = (int32_t)nas_rng_below(&s->rng, nas_space_n_choices(s->space, d));
        }
        st = add_candidate(s, p, local, &a);
    }
    return st;
}

static int cmp_told_desc(const void *x, const void *y) {
    const pnas_told *a = x, *c = y;
    return a->reward > c->reward ? -1 : a->reward < c->reward;
}

static nas_status grow_feat(nas_strategy *s, pnas_state *p, int64_t n) {
    if (n <= p->cap_feat) {
        return NAS_OK;
    }
    nas_free(s->ctx, p->feat, (size_t)(p->cap_feat * p->n_feat) * sizeof(float));
    nas_free(s->ctx, p->y, (size_t)p->cap_feat * sizeof(float));
    nas_free(s->ctx, p->mu, (size_t)p->cap_feat * sizeof(float));
    p->cap_feat = n > 2 * p->cap_feat ? n : 2 * p->cap_feat;
    p->feat = nas_malloc(s->ctx, (size_t)(p->cap_feat * p->n_feat) * sizeof(float));
    p->y = nas_malloc(s->ctx, (size_t)p->cap_feat * sizeof(float));
    p->mu = nas_malloc(s->ctx, (size_t)p->cap_feat * sizeof(float));
    return p->feat && p->y && p->mu ? NAS_OK : NAS_ERR_NOMEM;
}

/* Rank the candidates with the predictor (random order before any result) and queue the
 * `beam` best. */
static nas_status queue_best(nas_strategy *s, pnas_state *p) {
    const int64_t m = p->n_cand;
    nas_status st = grow_feat(s, p, nas_max_i64(m, p->n_told));
    if (st == NAS_OK && p->n_told >= 2) {
        for (int64_t i = 0; i < p->n_told; i++) {
            nas_space_features(s->space, &p->told[i].arch, p->feat + i * p->n_feat);
            p->y[i] = (float)p->told[i].reward;
        }
        st = nas_mlp_ensemble_fit(p->ens, p->feat, p->y, p->n_told,
                                  s->seed * 7919u + (uint64_t)p->stage);
        for (int64_t i = 0; st == NAS_OK && i < m; i++) {
            nas_space_features(s->space, &p->cand[i], p->feat + i * p->n_feat);
        }
        if (st == NAS_OK && m > 0) {
            st = nas_mlp_ensemble_predict(p->ens, p->feat, m, p->mu, NULL);
        }
    } else if (st == NAS_OK) {
        for (int64_t i = 0; i < m; i++) {
            p->mu[i] = (float)nas_rng_uniform(&s->rng);
        }
    }
    if (st != NAS_OK) {
        return st;
    }
    const int64_t k = nas_min_i64(p->beam, m);
    for (int64_t i = 0; i < k; i++) { /* selection of the k best */
        int64_t best = i;
        for (int64_t j = i + 1; j < m; j++) {
            best = p->mu[j] > p->mu[best] ? j : best;
        }
        const nas_arch ta = p->cand[i];
        const float tm = p->mu[i];
        p->cand[i] = p->cand[best];
        p->mu[i] = p->mu[best];
        p->cand[best] = ta;
        p->mu[best] = tm;
        p->queue[i] = p->cand[i];
    }
    p->q_head = 0;
    p->q_len = k;
    return NAS_OK;
}

static nas_status next_stage(nas_strategy *s, pnas_state *p) {
    nas_archmap local;
    nas_status st = nas_archmap_init(&local, s->ctx, 256);
    p->n_cand = 0;
    if (p->n_told > 1) {
        qsort(p->told, (size_t)p->n_told, sizeof(pnas_told), cmp_told_desc);
    }
    if (st == NAS_OK && p->stage == 0) {
        st = expand_block(s, p, &local, &p->base, 0);
    } else if (st == NAS_OK && p->stage < p->stages) {
        int64_t parents = 0; /* the beam best of the previous stage */
        for (int64_t i = 0; st == NAS_OK && i < p->n_told && parents < p->beam; i++) {
            if (p->told[i].stage == p->stage - 1) {
                st = expand_block(s, p, &local, &p->told[i].arch, (int)p->stage);
                parents++;
            }
        }
    } else if (st == NAS_OK) {
        /* The cell is complete: mutations (1 or 2 decisions) of the beam best overall. */
        const int64_t parents = nas_min_i64(p->beam, p->n_told);
        for (int64_t t = 0; st == NAS_OK && parents > 0 && t < 10 * p->expand; t++) {
            nas_arch a;
            nas_space_mutate(s->space, &s->rng, &p->told[t % parents].arch, &a);
            if (nas_rng_below(&s->rng, 2) == 1) {
                const nas_arch once = a;
                nas_space_mutate(s->space, &s->rng, &once, &a);
            }
            st = add_candidate(s, p, &local, &a);
            if (p->n_cand >= p->expand) {
                break;
            }
        }
    }
    if (local.ctx != NULL) {
        nas_archmap_deinit(&local);
    }
    if (st == NAS_OK) {
        st = queue_best(s, p);
    }
    p->stage++;
    return st;
}

static nas_status pnas_ask(nas_strategy *s, nas_arch *out) {
    pnas_state *p = s->impl;
    /* A stage's batch must be told before the next stage can rank its expansions. */
    for (int tries = 0; p->q_head == p->q_len && p->pending == 0 && tries < 4; tries++) {
        const nas_status st = next_stage(s, p);
        if (st != NAS_OK) {
            return st;
        }
    }
    while (p->q_head < p->q_len) {
        *out = p->queue[p->q_head++];
        const uint64_t h = nas_space_hash(s->space, out);
        int added = 0;
        nas_status st = nas_archmap_put(&p->seen, h, NAN, &added);
        if (st == NAS_OK && added) {
            st = nas_archmap_put(&p->tag, h, (double)(p->stage - 1), NULL);
            p->pending++;
            return st;
        }
        if (st != NAS_OK) {
            return st;
        }
    }
    return nas_strategy_sample_unseen(s, &p->seen, out); /* waiting for results, or stuck */
}

static nas_status pnas_tell(nas_strategy *s, const nas_arch *a, double reward) {
    pnas_state *p = s->impl;
    const uint64_t h = nas_space_hash(s->space, a);
    const double *tag = nas_archmap_find(&p->tag, h);
    const int stage = tag != NULL ? (int)*tag : -1;
    if (tag != NULL) {
        p->pending--;
    }
    nas_status st = nas_archmap_put(&p->seen, h, reward, NULL);
    double *v = nas_archmap_find(&p->seen, h);
    if (v != NULL) {
        *v = reward;
    }
    if (st != NAS_OK || isnan(reward)) {
        return st;
    }
    if (p->n_told == p->cap_told) {
        const int64_t cap = p->cap_told ? 2 * p->cap_told : 64;
        pnas_told *t = nas_realloc(s->ctx, p->told, (size_t)p->cap_told * sizeof(pnas_told),
                                   (size_t)cap * sizeof(pnas_told));
        if (t == NULL) {
            return NAS_ERR_NOMEM;
        }
        p->told = t;
        p->cap_told = cap;
    }
    p->told[p->n_told++] = (pnas_told){*a, reward, stage};
    return NAS_OK;
}

static void pnas_free(nas_strategy *s) {
    pnas_state *p = s->impl;
    if (p == NULL) {
        return;
    }
    nas_ctx *ctx = s->ctx;
    nas_mlp_ensemble_free(p->ens);
    nas_archmap_deinit(&p->seen);
    nas_archmap_deinit(&p->tag);
    nas_free(ctx, p->told, (size_t)p->cap_told * sizeof(pnas_told));
    nas_free(ctx, p->queue, (size_t)p->beam * sizeof(nas_arch));
    nas_free(ctx, p->cand, (size_t)p->cap_cand * sizeof(nas_arch));
    nas_free(ctx, p->feat, (size_t)(p->cap_feat * p->n_feat) * sizeof(float));
    nas_free(ctx, p->y, (size_t)p->cap_feat * sizeof(float));
    nas_free(ctx, p->mu, (size_t)p->cap_feat * sizeof(float));
    nas_free(ctx, p, sizeof(*p));
}

const nas_strategy_vt nas_strategy_pnas_vt = {
    .name = "pnas",
    .summary = "progressive search: grow the cell block by block, predictor keeps the top "
               "(beam=10, stages=3, expand=100, epochs=100)",
    .init = pnas_init,
    .ask = pnas_ask,
    .tell = pnas_tell,
    .free = pnas_free,
};
