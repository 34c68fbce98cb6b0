/* evaluator.c - the evaluator registry and the public wrappers: a spec "KIND:ARGS" picks the
 * kind by its prefix; the kind parses ARGS. */
#include "evaluators_int.h"

#include <math.h>
#include <stdlib.h>

static const nas_evaluator_vt *find_kind(const char *spec, size_t klen) {
    const nas_evaluator_vt *kinds[] = {&nas_evaluator_table_vt, &nas_evaluator_train_vt,
                                       &nas_evaluator_proxy_vt};
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        if (kinds[i] != NULL && strlen(kinds[i]->kind) == klen &&
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
        return nas_fail(ctx, NAS_ERR_ARG, "unknown evaluator '%s' (known: table:DATASET[:EPOCHS]%s%s)",
                        spec, &nas_evaluator_train_vt != NULL ? ", train:DATASET" : "",
                        &nas_evaluator_proxy_vt != NULL ? ", proxy:NAME" : "");
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

nas_status nas_evaluator_eval(nas_evaluator *e, const nas_arch *a, nas_eval_result *out) {
    return nas_evaluator_eval_ctx(e, e != NULL ? e->ctx : NULL, a, out);
}
