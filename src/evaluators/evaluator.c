/* evaluator.c - the evaluator registry and the public wrappers: a spec "KIND:ARGS" picks the
 * kind by its prefix; the kind parses ARGS. Also the training evaluator `train:DATASET[:test]`,
 * a thin wrapper of the trainer (nas_train_model). */
#include "evaluators_int.h"

#include <math.h>
#include <stdlib.h>

static const nas_evaluator_vt *find_kind(const char *spec, size_t klen) {
    const nas_evaluator_vt *kinds[] = {&nas_evaluator_table_vt, &nas_evaluator_train_vt,
                                       &nas_evaluator_proxy_vt};
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        if (strlen(kinds[i]->kind) == klen &&
            strncmp(kinds[i]->kind, spec, klen) == 0) {
            return kinds[i];
        }
    }
    return NULL;
}

nas_status nas_evaluator_open(nas_ctx *ctx, const char *spec, const nas_space *space,
                              const nas_eval_opts *opts, nas_evaluator **out) {
    NAS_CHECK_ARG(ctx, spec != NULL && space != NULL && out != NULL);
    *out = NULL;
    const char *colon = strchr(spec, ':');
    const size_t klen = colon != NULL ? (size_t)(colon - spec) : strlen(spec);
    const nas_evaluator_vt *vt = find_kind(spec, klen);
    if (vt == NULL) {
        return nas_fail(ctx, NAS_ERR_ARG, "unknown evaluator '%s' (known: table:DATASET[:EPOCHS], "
                        "train:DATASET[:test], proxy:NAME[:DATASET])", spec);
    }
    nas_evaluator *e = nas_calloc(ctx, 1, sizeof(*e));
    if (e == NULL) {
        return NAS_ERR_NOMEM;
    }
    e->ctx = ctx;
    e->space = space;
    e->vt = vt;
    if (opts != NULL) {
        e->opts = *opts;
    }
    e->spec = nas_strdup(ctx, spec);
    if (e->spec == NULL) {
        nas_free(ctx, e, sizeof(*e));
        return NAS_ERR_NOMEM;
    }
    const nas_status st = vt->open(e, colon != NULL ? colon + 1 : "", opts);
    if (st != NAS_OK) {
        nas_evaluator_free(e);
        return st;
    }
    *out = e;
    return NAS_OK;
}

void nas_evaluator_free(nas_evaluator *e) {
    if (e == NULL) {
        return;
    }
    nas_ctx *ctx = e->ctx;
    e->vt->free(e);
    nas_free(ctx, e->spec, strlen(e->spec) + 1);
    nas_free(ctx, e, sizeof(*e));
}

const char *nas_evaluator_spec(const nas_evaluator *e) {
    return e == NULL ? "" : e->spec;
}

nas_status nas_evaluator_eval_ctx(nas_evaluator *e, nas_ctx *ctx, const nas_arch *a,
                                  nas_eval_result *out) {
    if (e == NULL || ctx == NULL || a == NULL || out == NULL) {
        return ctx != NULL ? nas_fail(ctx, NAS_ERR_ARG, "evaluator_eval: NULL argument")
                           : NAS_ERR_ARG;
    }
    if (a->n != nas_space_n_decisions(e->space)) {
        return nas_fail(ctx, NAS_ERR_ARG, "evaluator %s: architecture has %d decisions, space %s "
                        "has %d", e->spec, (int)a->n, nas_space_name(e->space),
                        nas_space_n_decisions(e->space));
    }
    out->reward = NAN;
    out->test = NAN;
    out->params = NAN;
    out->macs = NAN;
    out->cost_s = 0.0;
    return e->vt->eval(e, ctx, a, out);
}

nas_status nas_evaluator_build_opts(const nas_evaluator *e, nas_build_opts *out) {
    if (e == NULL || out == NULL) {
        return NAS_ERR_ARG;
    }
    if (e->vt->build_opts == NULL) {
        memset(out, 0, sizeof(*out));
        return nas_fail(e->ctx, NAS_ERR_UNSUPPORTED, "evaluator %s builds no networks", e->spec);
    }
    *out = *e->vt->build_opts(e);
    return NAS_OK;
}

nas_status nas_evaluator_eval(nas_evaluator *e, const nas_arch *a, nas_eval_result *out) {
    return nas_evaluator_eval_ctx(e, e != NULL ? e->ctx : NULL, a, out);
}

/* ------------------------------------------------------------------ train:DATASET[:test] */

/* Real training at the fidelity of nas_eval_opts (epochs, data fraction, resolution, channel
 * multiplier, cells, batch): the architecture's network is built for the dataset's input shape
 * (resampled once at open when a resolution is asked for) and trained with the trainer's
 * defaults (SGD Nesterov, cosine, seeded split with 10% held out). The reward is the held-out
 * validation accuracy after the last epoch. The test set is evaluated only with ":test" (it
 * costs about as much as the training of a low-fidelity trial). */
typedef struct train_eval {
    nas_dataset *train, *test;
    nas_model_shape shape;
    nas_train_config cfg;
    nas_build_opts build;
} train_eval;

static nas_status train_open(nas_evaluator *e, const char *args, const nas_eval_opts *opts) {
    train_eval *t = nas_calloc(e->ctx, 1, sizeof(*t));
    if (t == NULL) {
        return NAS_ERR_NOMEM;
    }
    e->impl = t;
    char name[64];
    const char *colon = strchr(args, ':');
    const size_t len = colon != NULL ? (size_t)(colon - args) : strlen(args);
    int with_test = 0;
    if (colon != NULL) {
        if (strcmp(colon + 1, "test") != 0) {
            return nas_fail(e->ctx, NAS_ERR_ARG, "evaluator %s: expected train:DATASET or "
                            "train:DATASET:test", e->spec);
        }
        with_test = 1;
    }
    if (len == 0 || len >= sizeof(name)) {
        return nas_fail(e->ctx, NAS_ERR_ARG, "evaluator %s: expected train:DATASET (fashion-mnist, "
                        "mnist, cifar10, cifar100)", e->spec);
    }
    memcpy(name, args, len);
    name[len] = '\0';
    if (strcmp(name, "fmnist") == 0) {
        snprintf(name, sizeof(name), "fashion-mnist");
    }
    const char *dir = opts != NULL ? opts->data_path : NULL;
    nas_status st = nas_dataset_open(e->ctx, name, dir, 0, &t->train);
    if (st == NAS_OK && with_test) {
        st = nas_dataset_open(e->ctx, name, dir, 1, &t->test);
    }
    const int r = opts != NULL ? opts->resolution : 0;
    if (st == NAS_OK && r > 0) { /* resample once here, not in every trial */
        nas_dataset *small = NULL;
        st = nas_dataset_resize(t->train, r, &small);
        nas_dataset_free(t->train);
        t->train = small;
        if (st == NAS_OK && t->test != NULL) {
            st = nas_dataset_resize(t->test, r, &small);
            nas_dataset_free(t->test);
            t->test = small;
        }
    }
    if (st != NAS_OK) {
        return st;
    }
    t->shape = nas_dataset_shape(t->train);
    nas_train_config_default(&t->cfg);
    t->cfg.prefetch = 0; /* trials are short; a prefetch thread per trial costs more */
    if (opts != NULL) {
        t->cfg.seed = opts->seed;
        t->cfg.epochs = opts->epochs > 0 ? opts->epochs : 1;
        t->cfg.data_fraction = opts->data_fraction > 0.0 ? opts->data_fraction : 1.0;
        t->cfg.batch = opts->batch_size > 0 ? opts->batch_size : t->cfg.batch;
        t->build.channels_mult = opts->channels_mult;
        t->build.cells = opts->cells;
    }
    t->build.shape = t->shape;
    return NAS_OK;
}

static nas_status train_eval_arch(nas_evaluator *e, nas_ctx *ctx, const nas_arch *a,
                                  nas_eval_result *out) {
    train_eval *t = e->impl;
    nas_model *m = NULL;
    const double t0 = nas_now();
    nas_status st = nas_space_build(ctx, e->space, a, &t->build, &m);
    int64_t macs = 0;
    size_t peak = 0;
    if (st == NAS_OK) {
        st = nas_model_count(m, &macs, &peak);
    }
    nas_train_result res;
    memset(&res, 0, sizeof(res));
    if (st == NAS_OK) {
        st = nas_train_model(ctx, m, t->train, t->test, &t->cfg, &res);
    }
    if (st == NAS_OK) {
        out->reward = res.valid_accuracy;
        out->test = t->test != NULL ? res.test_accuracy : (double)NAN;
        out->params = (double)nas_model_n_params(m);
        out->macs = (double)macs;
    }
    out->cost_s = nas_now() - t0;
    nas_model_free(m);
    return st;
}

static void train_free(nas_evaluator *e) {
    train_eval *t = e->impl;
    if (t != NULL) {
        nas_dataset_free(t->train);
        nas_dataset_free(t->test);
        nas_free(e->ctx, t, sizeof(*t));
    }
}

static const nas_build_opts *train_build_opts(const nas_evaluator *e) {
    const train_eval *t = e->impl;
    return &t->build;
}

const nas_evaluator_vt nas_evaluator_train_vt = {
    .kind = "train",
    .summary = "real training at the given fidelity: train:DATASET[:test]",
    .open = train_open,
    .eval = train_eval_arch,
    .free = train_free,
    .build_opts = train_build_opts,
};
