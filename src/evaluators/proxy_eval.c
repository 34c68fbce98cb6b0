/* proxy_eval.c - the zero-cost proxy evaluator `proxy:NAME[:DATASET]` for nascent search: the
 * reward of an architecture is one proxy's score of its freshly initialised network (seeded by
 * the search seed), so a search ranks by the proxy and its report's diagnostics say how well the
 * proxy ranked against the ground truth. Proxies that read data (all but synflow, params, macs)
 * use one minibatch of opts->batch_size (default 64) examples: a seeded normal-noise batch with
 * random labels in the network's default input shape, or the first shuffled batch of DATASET
 * (fashion-mnist, mnist, cifar10, cifar100 from opts->data_path), the network then built for
 * the dataset's shape. Scores go through one reusable nas_proxies workspace, behind a mutex so
 * threads may share the evaluator. */
#include "evaluators_int.h"

#include <math.h>
#include <pthread.h>

#define DEFAULT_BATCH 64

typedef struct proxy_eval {
    nas_proxy proxy;
    nas_proxies *work;
    pthread_mutex_t lock;
    int lock_ready;
    nas_build_opts build;
    uint64_t seed;
    int64_t batch;
    float *x; /* batch x per floats, for the shape in `have` */
    int32_t *y;
    int64_t per;
    nas_model_shape have;
} proxy_eval;

static void free_batch(nas_ctx *ctx, proxy_eval *p) {
    nas_free(ctx, p->x, p->x != NULL ? (size_t)(p->batch * p->per) * sizeof(float) : 0);
    nas_free(ctx, p->y, p->y != NULL ? (size_t)p->batch * sizeof(int32_t) : 0);
    p->x = NULL;
    p->y = NULL;
}

static nas_status alloc_batch(nas_ctx *ctx, proxy_eval *p, nas_model_shape sh) {
    free_batch(ctx, p);
    p->per = (int64_t)sh.in_c * sh.in_h * sh.in_w;
    p->x = nas_malloc(ctx, (size_t)(p->batch * p->per) * sizeof(float));
    p->y = nas_malloc(ctx, (size_t)p->batch * sizeof(int32_t));
    if (p->x == NULL || p->y == NULL) {
        free_batch(ctx, p);
        return NAS_ERR_NOMEM;
    }
    p->have = sh;
    return NAS_OK;
}

/* Seeded noise and labels for shape sh (made again only when the shape changes). */
static nas_status synthetic_batch(nas_ctx *ctx, proxy_eval *p, nas_model_shape sh) {
    if (p->x != NULL && p->have.in_c == sh.in_c && p->have.in_h == sh.in_h &&
        p->have.in_w == sh.in_w && p->have.classes == sh.classes) {
        return NAS_OK;
    }
    const nas_status st = alloc_batch(ctx, p, sh);
    if (st != NAS_OK) {
        return st;
    }
    nas_rng rx = nas_rng_make(p->seed, 1001), ry = nas_rng_make(p->seed, 1002);
    nas_rng_fill_normal(&rx, p->x, p->batch * p->per, 0.0f, 1.0f);
    for (int64_t i = 0; i < p->batch; i++) {
        p->y[i] = (int32_t)nas_rng_below(&ry, sh.classes);
    }
    return NAS_OK;
}

/* The first shuffled batch of dataset `name`; the network is built for its shape. */
static nas_status dataset_batch(nas_evaluator *e, proxy_eval *p, const char *name,
                                const char *dir) {
    nas_dataset *d = NULL;
    nas_loader *l = NULL;
    nas_status st = nas_dataset_open(e->ctx, name, dir, 0, &d);
    if (st == NAS_OK) {
        nas_data_opts o;
        nas_data_opts_default(d, &o);
        o.shuffle = 1;
        o.prefetch = 0;
        o.seed = p->seed;
        st = nas_loader_new(d, NULL, 0, (int)p->batch, &o, &l);
    }
    if (st == NAS_OK) {
        p->build.shape = nas_dataset_shape(d);
        st = alloc_batch(e->ctx, p, p->build.shape);
    }
    if (st == NAS_OK) {
        const float *x = NULL;
        const int32_t *y = NULL;
        nas_loader_start_epoch(l, 0);
        if (nas_loader_next(l, &x, &y) < p->batch) {
            st = nas_fail(e->ctx, NAS_ERR_ARG, "evaluator %s: dataset %s has fewer than %lld "
                          "examples for the minibatch", e->spec, name, (long long)p->batch);
        } else {
            memcpy(p->x, x, (size_t)(p->batch * p->per) * sizeof(float));
            memcpy(p->y, y, (size_t)p->batch * sizeof(int32_t));
        }
    }
    nas_loader_free(l);
    nas_dataset_free(d);
    return st;
}

static nas_status proxy_open(nas_evaluator *e, const char *args, const nas_eval_opts *opts) {
    proxy_eval *p = nas_calloc(e->ctx, 1, sizeof(*p));
    if (p == NULL) {
        return NAS_ERR_NOMEM;
    }
    e->impl = p;
    char name[64];
    const char *colon = strchr(args, ':');
    const size_t len = colon != NULL ? (size_t)(colon - args) : strlen(args);
    if (len == 0 || len >= sizeof(name)) {
        return nas_fail(e->ctx, NAS_ERR_ARG, "evaluator %s: expected proxy:NAME[:DATASET] with "
                        "NAME a proxy (synflow, snip, grad_norm, grasp, fisher, jacob_cov, nwot, "
                        "params, macs)", e->spec);
    }
    memcpy(name, args, len);
    name[len] = '\0';
    const int proxy = nas_proxy_from_name(name);
    if (proxy < 0) {
        return nas_fail(e->ctx, NAS_ERR_ARG, "evaluator %s: unknown proxy '%s' (synflow, snip, "
                        "grad_norm, grasp, fisher, jacob_cov, nwot, params, macs)", e->spec, name);
    }
    p->proxy = (nas_proxy)proxy;
    p->seed = opts != NULL ? opts->seed : 0;
    p->batch = opts != NULL && opts->batch_size > 1 ? opts->batch_size : DEFAULT_BATCH;
    if (opts != NULL) {
        p->build.channels_mult = opts->channels_mult;
        p->build.cells = opts->cells;
    }
    if (pthread_mutex_init(&p->lock, NULL) != 0) {
        return nas_fail(e->ctx, NAS_ERR_BACKEND, "evaluator %s: cannot create a mutex", e->spec);
    }
    p->lock_ready = 1;
    nas_status st = nas_proxies_new(e->ctx, &p->work);
    if (st == NAS_OK && colon != NULL && nas_proxy_needs_data(p->proxy)) {
        const char *ds = strcmp(colon + 1, "fmnist") == 0 ? "fashion-mnist" : colon + 1;
        st = dataset_batch(e, p, ds, opts != NULL ? opts->data_path : NULL);
    }
    return st;
}

static nas_status proxy_eval_arch(nas_evaluator *e, nas_ctx *ctx, const nas_arch *a,
                                  nas_eval_result *out) {
    proxy_eval *p = e->impl;
    nas_model *m = NULL;
    const double t0 = nas_now();
    nas_status st = nas_space_build(ctx, e->space, a, &p->build, &m);
    if (st != NAS_OK) {
        return st;
    }
    nas_params_init(nas_model_params(m), p->seed);
    double scores[NAS_PROXY_COUNT];
    pthread_mutex_lock(&p->lock);
    if (nas_proxy_needs_data(p->proxy)) {
        st = synthetic_batch(ctx, p, nas_model_get_shape(m));
    }
    if (st == NAS_OK) {
        const int data = nas_proxy_needs_data(p->proxy);
        st = nas_proxies_score(p->work, m, data ? p->x : NULL, data ? p->y : NULL,
                               data ? p->batch : 0, 1u << p->proxy, scores);
        if (st != NAS_OK && ctx != e->ctx) { /* the workspace reports to the evaluator's ctx */
            st = nas_fail(ctx, st, "%s", nas_errmsg(e->ctx));
            nas_clear_error(e->ctx);
        }
    }
    pthread_mutex_unlock(&p->lock);
    if (st == NAS_OK) {
        out->reward = scores[p->proxy];
        out->params = (double)nas_model_n_params(m);
        if (!isfinite(out->reward)) {
            st = nas_fail(ctx, NAS_ERR_NUMERIC, "evaluator %s: the proxy score is %g", e->spec,
                          out->reward);
        }
    }
    out->cost_s = nas_now() - t0;
    nas_model_free(m);
    return st;
}

static void proxy_free(nas_evaluator *e) {
    proxy_eval *p = e->impl;
    if (p != NULL) {
        free_batch(e->ctx, p);
        nas_proxies_free(p->work);
        if (p->lock_ready) {
            pthread_mutex_destroy(&p->lock);
        }
        nas_free(e->ctx, p, sizeof(*p));
    }
}

static const nas_build_opts *proxy_build_opts(const nas_evaluator *e) {
    const proxy_eval *p = e->impl;
    return &p->build;
}

const nas_evaluator_vt nas_evaluator_proxy_vt = {
    .kind = "proxy",
    .summary = "a zero-cost proxy's score at initialisation: proxy:NAME[:DATASET]",
    .open = proxy_open,
    .eval = proxy_eval_arch,
    .free = proxy_free,
    .build_opts = proxy_build_opts,
};
