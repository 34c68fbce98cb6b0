/* graph.c - recording graphs: nodes in stable chunks, sticky builder errors, arenas kept across
 * resets so a graph can be rebuilt for every sampled architecture without allocating. */
#include "tensor_int.h"

#include <stdio.h>
#include <stdlib.h>

nas_graph *nas_graph_new(nas_ctx *ctx) {
    if (ctx == NULL) {
        return NULL;
    }
    nas_graph *g = nas_calloc(ctx, 1, sizeof(nas_graph));
    if (g == NULL) {
        return NULL;
    }
    g->ctx = ctx;
    g->grad_enabled = 1;
    g->param_grads = 1;
    return g;
}

void nas_graph_free(nas_graph *g) {
    if (g == NULL) {
        return;
    }
    nas_ctx *ctx = g->ctx;
    for (int64_t i = 0; i < g->n_chunks; i++) {
        nas_free(ctx, g->chunks[i], NAS_NODE_CHUNK * sizeof(nas_node));
    }
    nas_free(ctx, g->chunks, (size_t)g->n_chunks * sizeof(nas_node *));
    nas_free(ctx, g->arena, g->arena_cap);
    nas_free(ctx, g->scratch, g->scratch_cap);
    nas_free(ctx, g, sizeof(nas_graph));
}

void nas_graph_reset(nas_graph *g) {
    g->n_nodes = 0;
    g->status = NAS_OK;
    g->planned = 0;
}

nas_status nas_graph_status(const nas_graph *g) {
    return g->status;
}

nas_ctx *nas_graph_ctx(const nas_graph *g) {
    return g->ctx;
}

void nas_graph_set_training(nas_graph *g, int training) {
    g->training = training != 0;
}

int nas_graph_training(const nas_graph *g) {
    return g->training;
}

void nas_graph_set_grad_enabled(nas_graph *g, int enabled) {
    if ((enabled != 0) != g->grad_enabled) {
        g->grad_enabled = enabled != 0;
        g->planned = 0;
    }
}

void nas_graph_set_param_grads(nas_graph *g, int enabled) {
    if ((enabled != 0) != g->param_grads) {
        g->param_grads = enabled != 0;
        g->planned = 0;
    }
}

void nas_graph_set_blocked_layouts(nas_graph *g, int enabled) {
    if ((enabled != 0) != g->blocked_layouts) {
        g->blocked_layouts = enabled != 0;
        g->planned = 0;
    }
}

void nas_graph_set_seed(nas_graph *g, uint64_t seed) {
    g->seed = seed;
    g->step = 0;
}

int64_t nas_graph_n_nodes(const nas_graph *g) {
    return g->n_nodes;
}

nas_node *nas_graph_fail(nas_graph *g, nas_status st, const char *fmt, ...) {
    if (g->status == NAS_OK) {
        va_list ap;
        va_start(ap, fmt);
        nas_vfail(g->ctx, st, fmt, ap);
        va_end(ap);
        g->status = st;
    }
    return NULL;
}

nas_node *nas_graph_append(nas_graph *g, int op, int n_src, nas_node *const *src) {
    if (g->n_nodes == g->n_chunks * NAS_NODE_CHUNK) {
        nas_node **chunks = nas_realloc(g->ctx, g->chunks, (size_t)g->n_chunks * sizeof(nas_node *),
                                        (size_t)(g->n_chunks + 1) * sizeof(nas_node *));
        if (chunks == NULL) {
            return nas_graph_fail(g, NAS_ERR_NOMEM, "graph: out of memory for nodes");
        }
        g->chunks = chunks;
        g->chunks[g->n_chunks] = nas_malloc(g->ctx, NAS_NODE_CHUNK * sizeof(nas_node));
        if (g->chunks[g->n_chunks] == NULL) {
            return nas_graph_fail(g, NAS_ERR_NOMEM, "graph: out of memory for nodes");
        }
        g->n_chunks++;
    }
    nas_node *n = nas_graph_node(g, g->n_nodes);
    memset(n, 0, sizeof(*n));
    n->first_writer = -1;
    n->op = op;
    n->index = g->n_nodes++;
    n->n_src = n_src;
    for (int i = 0; i < n_src; i++) {
        n->src[i] = src[i];
    }
    g->planned = 0;
    return n;
}

void *nas_graph_scratch(nas_graph *g, size_t bytes) {
    if (bytes > g->scratch_cap) {
        nas_free(g->ctx, g->scratch, g->scratch_cap);
        g->scratch_cap = 0;
        g->scratch = nas_malloc(g->ctx, bytes);
        if (g->scratch == NULL) {
            return NULL;
        }
        nas_mem_advise_large(g->scratch, bytes);
        g->scratch_cap = bytes;
    }
    return g->scratch;
}

size_t nas_graph_arena_bytes(const nas_graph *g) {
    return g->arena_cap + g->scratch_cap;
}

int nas_tensor_ndim(const nas_tensor *t) {
    return t->ndim;
}

int64_t nas_tensor_dim(const nas_tensor *t, int i) {
    return i >= 0 && i < t->ndim ? t->shape[i] : 1;
}

int64_t nas_tensor_numel(const nas_tensor *t) {
    return t->numel;
}

float *nas_tensor_data(const nas_tensor *t) {
    return t->data;
}

float *nas_tensor_grad(const nas_tensor *t) {
    return t->grad_claim < 0 ? t->grad : NULL; /* a reused buffer holds others' gradients */
}

void nas_tensor_set_data(nas_tensor *t, float *data) {
    t->data = data;
}
