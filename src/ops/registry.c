/* registry.c - the descriptor table, generated from ops.def so names and kinds cannot drift. */
#include "ops_int.h"

#include <stdio.h>

static const nas_op_desc *const op_table[NAS_OP_COUNT] = {
#define NAS_OP(UP, low) [NAS_OP_##UP] = &nas_op_##low,
#include "ops.def"
#undef NAS_OP
};

const nas_op_desc *nas_op_get(int op) {
    NAS_ASSERT(op >= 0 && op < NAS_OP_COUNT);
    return op_table[op];
}

const char *nas_tensor_op_name(const nas_tensor *t) {
    return nas_op_get(t->op)->name;
}

int nas_ops_sources_ok(nas_graph *g, int n, nas_node *const *src) {
    if (g == NULL || g->status != NAS_OK) {
        return 0;
    }
    for (int i = 0; i < n; i++) {
        if (src[i] == NULL) {
            nas_graph_fail(g, NAS_ERR_ARG, "op source %d is NULL (an earlier builder failed?)", i);
            return 0;
        }
    }
    return 1;
}

nas_node *nas_ops_append_like(nas_graph *g, int op, int n_src, nas_node *const *src,
                              const nas_node *like) {
    nas_node *n = nas_graph_append(g, op, n_src, src);
    if (n != NULL) {
        nas_node_set_shape(n, like->ndim, like->shape);
    }
    return n;
}

const char *nas_shape_str(const nas_node *t, char *buf, size_t size) {
    int len = snprintf(buf, size, "[");
    for (int i = 0; i < t->ndim && len > 0 && (size_t)len < size; i++) {
        len += snprintf(buf + len, size - (size_t)len, i ? ", %lld" : "%lld", (long long)t->shape[i]);
    }
    if (len > 0 && (size_t)len < size) {
        snprintf(buf + len, size - (size_t)len, "]");
    }
    return buf;
}

int nas_same_shape(const nas_node *a, const nas_node *b) {
    if (a->ndim != b->ndim) {
        return 0;
    }
    for (int i = 0; i < a->ndim; i++) {
        if (a->shape[i] != b->shape[i]) {
            return 0;
        }
    }
    return 1;
}
