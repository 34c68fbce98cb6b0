/* strategies_int.h - internals of the strategies module: the vtable every strategy fills in, the
 * strategy object they share, a hash set / map of architectures (dedupe, remembered rewards) and
 * the "key=value,..." parameter parser. Strategies only ask and tell: none ever calls an
 * evaluator, so each works with every evaluator and the driver (src/store/search.c) can replay a
 * stored search into a fresh strategy to resume it exactly. */
#ifndef NAS_STRATEGIES_INT_H
#define NAS_STRATEGIES_INT_H

#include "core/core_int.h"

#include <math.h>

typedef struct nas_strategy_vt {
    const char *name;
    const char *summary;
    /* Parse the parameters (nas_strategy_param_*), allocate s->impl. */
    nas_status (*init)(nas_strategy *s);
    /* Propose one architecture; NAS_ERR_INFEASIBLE when nothing is left to propose. */
    nas_status (*ask)(nas_strategy *s, nas_arch *out);
    /* A result for an architecture asked before; reward is NAN for a failed evaluation. */
    nas_status (*tell)(nas_strategy *s, const nas_arch *a, double reward);
    void (*free)(nas_strategy *s); /* frees s->impl; called even after a failed init */
    /* Optional: a proposal turned away unevaluated (infeasible under a budget, checked before
     * any query). Strategies that keep a population (re) leave it out of it; those that must
     * close a pending proposal (ls, bo) can leave this NULL: the wrapper then tells NAN. */
    nas_status (*reject)(nas_strategy *s, const nas_arch *a);
} nas_strategy_vt;

struct nas_strategy {
    nas_ctx *ctx;
    const nas_space *space;
    const nas_strategy_vt *vt;
    uint64_t seed;
    int64_t budget;     /* expected queries (a hint), 0 if unknown */
    char *params;       /* owned copy of the "key=value,..." text, or NULL */
    nas_rng rng;        /* the strategy's one random stream */
    int64_t n_asked, n_told;
    void *impl;
};

extern const nas_strategy_vt nas_strategy_grid_vt, nas_strategy_random_vt, nas_strategy_re_vt,
    nas_strategy_ls_vt, nas_strategy_reinforce_vt, nas_strategy_bo_vt, nas_strategy_pnas_vt;

/* Parameters from s->params. Each returns NAS_OK and leaves *out at its default when the key is
 * absent, NAS_ERR_ARG naming the key when the value does not parse or lies outside [lo, hi]. */
nas_status nas_strategy_param_int(nas_strategy *s, const char *key, int64_t lo, int64_t hi,
                                  int64_t *out);
nas_status nas_strategy_param_double(nas_strategy *s, const char *key, double lo, double hi,
                                     double *out);
/* The value text of key into buf (NAS_OK, unchanged buf when absent). */
nas_status nas_strategy_param_str(nas_strategy *s, const char *key, char *buf, size_t size);
/* NAS_ERR_ARG naming the first key of s->params that is not in the NULL-terminated list. */
nas_status nas_strategy_params_check(nas_strategy *s, const char *const *known);

/* A fast generator for a strategy's own draws in hot loops (tournaments): splitmix64 seeded
 * from the strategy's Philox stream, so it is as reproducible and costs a few cycles a draw
 * (Philox with rejection costs ~50 ns, which dominates a table-benchmark query). */
typedef struct nas_fast_rng {
    uint64_t state;
} nas_fast_rng;

static inline uint64_t nas_fast_u64(nas_fast_rng *r) {
    uint64_t z = (r->state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in [0, n), n > 0: Lemire's multiply-shift; the bias is below n / 2^64, far under
 * anything a search could notice. */
static inline int64_t nas_fast_below(nas_fast_rng *r, int64_t n) {
    return (int64_t)(((unsigned __int128)nas_fast_u64(r) * (uint64_t)n) >> 64);
}

/* The reward strategies compare: a failed evaluation (NAN) ranks below everything. */
static inline double nas_strategy_score(double reward) {
    return isnan(reward) ? -(double)INFINITY : reward;
}

/* Open-addressing map from an architecture hash to a double (the reward, or NAN while pending).
 * Keys are nas_space_hash values (canonical), so isomorphic architectures share an entry. */
typedef struct nas_archmap {
    nas_ctx *ctx;
    uint64_t *keys; /* 0 = empty slot (a real hash 0 is stored as 1) */
    double *vals;
    int64_t cap, n;
} nas_archmap;

nas_status nas_archmap_init(nas_archmap *m, nas_ctx *ctx, int64_t expected);
void nas_archmap_deinit(nas_archmap *m);
/* Pointer to the value of key, or NULL when absent. */
double *nas_archmap_find(const nas_archmap *m, uint64_t key);
/* Insert key (value v) if absent; *added says whether it was new. */
nas_status nas_archmap_put(nas_archmap *m, uint64_t key, double v, int *added);

/* Draw an architecture whose hash is not in `seen` (tries sampling, then a scan of the
 * enumeration from a random start when the space is small). Records it in `seen` with value NAN.
 * NAS_ERR_INFEASIBLE when every architecture has been seen. */
nas_status nas_strategy_sample_unseen(nas_strategy *s, nas_archmap *seen, nas_arch *out);

/* Run the next statement in a one-thread team: the predictor's tensors are tiny, so the engine's
 * parallel loops inside would cost more in fork/join than they save (and under load much more);
 * nested regions inside it stay serial. This also makes predictions independent of the thread
 * count, so resumed searches replay exactly on any machine. */
#ifdef _OPENMP
#define NAS_OMP_SERIAL _Pragma("omp parallel num_threads(1)")
#else
#define NAS_OMP_SERIAL
#endif

/* Multi-layer perceptron ensemble on the space's feature vectors, trained with the engine
 * (src/strategies/mlp.c): the predictor of `bo` and `pnas`. */
typedef struct nas_mlp_ensemble nas_mlp_ensemble;

typedef struct nas_mlp_config {
    int members;   /* ensemble size */
    int hidden;    /* units per hidden layer */
    int layers;    /* hidden layers */
    int epochs;    /* full-batch Adam steps per fit */
    float lr;
    float weight_decay;
} nas_mlp_config;

nas_status nas_mlp_ensemble_new(nas_ctx *ctx, int64_t n_features, const nas_mlp_config *cfg,
                                nas_mlp_ensemble **out);
void nas_mlp_ensemble_free(nas_mlp_ensemble *e);
/* Fit every member from fresh weights (seeded by seed and the member number) on x [n, F], y [n]. */
nas_status nas_mlp_ensemble_fit(nas_mlp_ensemble *e, const float *x, const float *y, int64_t n,
                                uint64_t seed);
/* Mean and standard deviation over members of the predictions for x [n, F]. */
nas_status nas_mlp_ensemble_predict(nas_mlp_ensemble *e, const float *x, int64_t n, float *mean,
                                    float *std);

#endif
