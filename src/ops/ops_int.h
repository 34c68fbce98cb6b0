/* ops_int.h - the op descriptor table. Each op is a builder (public, in the family's file: checks
 * shapes, appends a node) plus a descriptor: forward and backward kernels over the node's placed
 * buffers, and its multiply-accumulate count. Backward kernels ACCUMULATE (+=) into the grads of
 * their sources and must skip a source whose grad is NULL (no gradient flows there); they may
 * STORE instead where nas_grad_first says they write a source's gradient first. */
#ifndef NAS_OPS_INT_H
#define NAS_OPS_INT_H

#include "tensor/tensor_int.h"

enum nas_op_kind {
#define NAS_OP(UP, low) NAS_OP_##UP,
#include "ops.def"
#undef NAS_OP
    NAS_OP_COUNT
};

typedef struct nas_op_desc {
    const char *name;
    /* Compute n->data (and n->aux) from the sources. NULL for leaves. */
    nas_status (*forward)(nas_graph *g, nas_node *n);
    /* Accumulate into src[i]->grad from n->grad. NULL when no gradient flows. */
    void (*backward)(nas_graph *g, nas_node *n);
    /* Multiply-accumulates of the op for the whole batch (conv and linear; NULL = 0). */
    int64_t (*macs)(const nas_node *n);
    /* 1: the output is a view of src[0] at n->alias_offset (no copy; identity, reshape). */
    int alias;
    /* Bit s set: where the backward writes source slot s's gradient first (nas_grad_first) it
     * STORES it whole, on every path, so the executor need not zero that gradient before. */
    unsigned stores_first;
} nas_op_desc;

#define NAS_OP(UP, low) extern const nas_op_desc nas_op_##low;
#include "ops.def"
#undef NAS_OP

/* The descriptor of an op kind (asserts the range). */
const nas_op_desc *nas_op_get(int op);

/* Work the planner merges across nodes (ops/fuse.c), once layouts are set: convs reading one x
 * run as a group (nas_node.group_next, group_leader), batch norms and their sum fold into the
 * ReLU after them (folded_into). Sets or clears those links on every node. */
void nas_ops_plan_fusions(nas_graph *g);
/* The forward of a ReLU whose source the planner folded into it (src[0]->folded_into). */
nas_status nas_relu_forward_folded(nas_graph *g, nas_node *r);

/* A batch_norm node's aux: rows of C floats, written by its forward. SCALE and SHIFT (gamma
 * invstd and beta, the apply's y = (x - mean) scale + shift) are set on the blocked path. */
enum { NAS_BN_AUX_MEAN = 0, NAS_BN_AUX_INVSTD, NAS_BN_AUX_SCALE, NAS_BN_AUX_SHIFT, NAS_BN_AUX_ROWS };

/* Whether grouped node m's backward belongs to the backward running now (nodes above the one it
 * started from do not run). */
static inline int nas_group_member_runs_backward(const nas_graph *g, const nas_node *m) {
    return m->index <= g->backward_top && m->requires_grad && m->grad != NULL;
}

/* 1 when n's backward is the first to write the gradient of its source slot s in the backward
 * running now (its highest-index reader that runs backward, lowest slot first): it may store into
 * that gradient instead of adding to it, saving a read, and, where its op is `stores_first`, the
 * executor has not zeroed it. Never for parameters (their gradients add up across backward
 * calls) nor for a gradient that views, or is viewed by, another node's (autograd/exec.c). */
static inline int nas_grad_first(const nas_node *n, int s) {
    const nas_node *x = n->src[s];
    return x->first_writer == n->index && x->first_slot == s;
}

/* Shared builder helpers. */
/* Check a builder's source tensors are non-NULL and the graph has no error yet. */
int nas_ops_sources_ok(nas_graph *g, int n, nas_node *const *src);
/* Append a node whose output has the shape of `like`. */
nas_node *nas_ops_append_like(nas_graph *g, int op, int n_src, nas_node *const *src,
                              const nas_node *like);
/* Format a shape as "[2, 3, 4, 5]" into buf (for error messages); returns buf. */
const char *nas_shape_str(const nas_node *t, char *buf, size_t size);
int nas_same_shape(const nas_node *a, const nas_node *b);
/* Turn a relu node into relu_frozen with the 0/1 mask leaf `mask` (taken in the input's current
 * layout), and back (basic.c). */
void nas_relu_freeze(nas_node *relu, nas_node *mask);
void nas_relu_thaw(nas_node *frozen);
/* A view of part of x: `numel` elements from element `offset` with the given shape (ops with
 * two outputs, e.g. the LSTM cell). Defined in basic.c. */
nas_tensor *nas_view_part(nas_graph *g, nas_tensor *x, int64_t offset, int ndim,
                          const int64_t *shape);

#endif
