/* model.c - a network with its parameters: what training, proxies, latency and export take. */
#include "nn_int.h"

struct nas_model {
    nas_ctx *ctx;
    const nas_model_vt *vt;
    void *impl;
    nas_params *params;
    nas_model_shape shape;
};

nas_status nas_model_new(nas_ctx *ctx, const nas_model_vt *vt, void *impl, nas_params *params,
                         nas_model_shape shape, nas_model **out) {
    *out = NULL;
    nas_model *m = nas_calloc(ctx, 1, sizeof(nas_model));
    if (m == NULL) {
        vt->free(ctx, impl);
        nas_params_free(params);
        return NAS_ERR_NOMEM;
    }
    m->ctx = ctx;
    m->vt = vt;
    m->impl = impl;
    m->params = params;
    m->shape = shape;
    *out = m;
    return NAS_OK;
}

void nas_model_free(nas_model *m) {
    if (m == NULL) {
        return;
    }
    m->vt->free(m->ctx, m->impl);
    nas_params_free(m->params);
    nas_free(m->ctx, m, sizeof(nas_model));
}

nas_tensor *nas_model_forward(nas_model *m, nas_graph *g, nas_tensor *x) {
    return m->vt->forward(m->impl, g, m->params, x);
}

nas_params *nas_model_params(const nas_model *m) {
    return m->params;
}

nas_model_shape nas_model_get_shape(const nas_model *m) {
    return m->shape;
}

const char *nas_model_kind(const nas_model *m) {
    return m->vt->kind;
}

void *nas_model_impl(const nas_model *m) {
    return m->impl;
}

nas_tensor *nas_model_aux_logits(const nas_model *m, const nas_graph *g) {
    return m->vt->aux_logits != NULL ? m->vt->aux_logits(m->impl, g) : NULL;
}

int64_t nas_model_n_params(const nas_model *m) {
    return nas_params_numel(m->params, NAS_PARAM_BUFFER, 0);
}

nas_status nas_model_count(nas_model *m, int64_t *macs, size_t *activation_bytes_peak) {
    nas_graph *g = nas_graph_new(m->ctx);
    if (g == NULL) {
        return NAS_ERR_NOMEM;
    }
    const int64_t shape[4] = {1, m->shape.in_c, m->shape.in_h, m->shape.in_w};
    nas_tensor *x = nas_input(g, 4, shape, NULL);
    nas_model_forward(m, g, x);
    nas_status st = nas_graph_status(g);
    if (st == NAS_OK) {
        if (macs != NULL) {
            *macs = nas_graph_macs(g);
        }
        if (activation_bytes_peak != NULL) {
            /* the input counts too: it is live until its last reader */
            *activation_bytes_peak =
                nas_graph_activation_peak(g) + (size_t)nas_tensor_numel(x) * sizeof(float);
        }
    }
    nas_graph_free(g);
    return st;
}
