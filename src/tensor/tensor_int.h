/* tensor_int.h - graph nodes and parameter blocks: the data structures the ops, the autograd
 * executor and the network builders share. A tensor is the output of one node. */
#ifndef NAS_TENSOR_INT_H
#define NAS_TENSOR_INT_H

#include "core/core_int.h"

#define NAS_NODE_IPARAMS 16
#define NAS_NODE_FPARAMS 8
#define NAS_NODE_CHUNK   256 /* nodes per chunk: pointers to nodes stay valid while building */

typedef struct nas_node {
    int op;         /* enum nas_op_kind */
    int ndim;       /* 1..4 */
    int64_t shape[NAS_MAX_DIMS];
    int64_t numel;
    int n_src;
    struct nas_node *src[NAS_MAX_SRC];
    int32_t iparam[NAS_NODE_IPARAMS]; /* op arguments (stride, padding, ...) */
    float fparam[NAS_NODE_FPARAMS];   /* op arguments (momentum, eps, p, ...) */
    int64_t index;                     /* position in the graph */

    /* Memory: placed by the planner, except leaves whose data the caller or a nas_params owns. */
    float *data;
    float *grad;       /* NULL when no gradient flows here */
    void *aux;         /* op scratch kept from forward to backward (BN statistics, masks) */
    size_t aux_bytes;  /* set by the op's infer function */
    int64_t last_use;  /* index of the last node reading this one (liveness planning) */
    int32_t readers;   /* how many (node, source slot) pairs read this one (set by the planner) */
    /* The node (index) and source slot whose backward writes this gradient first in the
     * backward running now, -1 when none may store into it (set per backward call, see
     * nas_grad_first in ops/ops_int.h). */
    int64_t first_writer;
    int32_t first_slot;
    /* A sum (or add) that is this node's only reader and whose gradient this node's gradient
     * simply is: the sum's backward would copy it unchanged (set by the planner; NULL if none). */
    struct nas_node *grad_host;
    /* Nodes whose forward one op call computes together (set by the planner: convs reading one
     * x, ops/conv.c nas_conv_plan_groups). group_next links a group's members in index order
     * from its first, the leader, whose op runs all their forwards (the executor skips the
     * others', which have group_leader set); each runs its own backward, where the op may share
     * work too. NULL when not grouped. */
    struct nas_node *group_next;
    struct nas_node *group_leader;
    /* The reader whose forward computes this node's value in passing, so this node's own forward
     * does not write it (set by the planner: batch norms and their sum folded into the ReLU
     * after them, ops/fuse.c). NULL when not folded. */
    struct nas_node *folded_into;
    /* Gradient placement (autograd/exec.c): with gradients on, a gradient buffer is live only
     * from the backward step that first writes it (grad_claim, the index of its highest reader)
     * to the one that last reads it, and its memory serves other gradients outside that span;
     * -1 where the buffer is the node's alone (inputs, retained gradients, gradients of hosted or
     * viewed nodes follow their owner). zero_pending: a claimed buffer to zero when the backward
     * reaches its first writer (set per backward call). */
    int64_t grad_claim;
    uint8_t retain_grad; /* the gradient stays readable after backward (nas_tensor_retain_grad) */
    uint8_t zero_pending;
    uint8_t requires_grad;
    uint8_t alias;     /* data (and grad) are views into src[0] at element offset alias_offset */
    /* 0: data and grad are plain (NCHW); B: both are in oneDNN's channel-blocked nChw{B}c
     * layout, [N, C / B, H, W, B] (set by the planner, ops/layout.c, where blocked layouts are
     * on; only nodes whose every reader knows the layout) */
    uint8_t block;
    int64_t alias_offset;

    /* Leaves. */
    nas_params *params; /* parameter leaves and slices */
    nas_param_id pid;
    const int32_t *labels;
} nas_node;

struct nas_graph {
    nas_ctx *ctx;
    nas_node **chunks; /* chunks of NAS_NODE_CHUNK nodes; kept across resets */
    int64_t n_chunks;
    int64_t n_nodes;
    nas_status status; /* the first builder error (sticky) */
    int training;
    int grad_enabled;
    int param_grads; /* 0: parameters get no gradient (input gradients only; see nascent.h) */
    int blocked_layouts; /* the planner may keep nodes in blocked layouts (see nascent.h) */
    uint64_t seed;
    uint64_t step; /* forward passes since the seed was set (dropout streams) */

    /* Arena for activations, gradients and op scratch: one block, grown only when a bigger graph
     * needs it, so steady-state steps never allocate. */
    char *arena;
    size_t arena_cap;
    int planned;          /* the current recording has been placed in the arena */
    size_t grad_begin;    /* byte offsets of the gradient region (buffers reused, exec.c) */
    size_t grad_end;
    int64_t backward_top; /* the node the running backward started from (a grouped op leaves
                             out members above it: their backward does not run) */
    void *scratch;        /* per-op temporary space (e.g. conv backend scratchpad) */
    size_t scratch_cap;
};

static inline nas_node *nas_graph_node(const nas_graph *g, int64_t i) {
    return &g->chunks[i / NAS_NODE_CHUNK][i % NAS_NODE_CHUNK];
}

/* Append a node for `op` with the given sources (all non-NULL, checked by the caller) and return
 * it with its parameters zeroed; NULL on allocation failure (status recorded). */
nas_node *nas_graph_append(nas_graph *g, int op, int n_src, nas_node *const *src);
/* Record a builder failure (first one wins) and return NULL. */
nas_node *nas_graph_fail(nas_graph *g, nas_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Scratch of at least `bytes`, valid until the next call; NULL on allocation failure. Grows only
 * when needed so steady-state steps do not allocate. */
void *nas_graph_scratch(nas_graph *g, size_t bytes);

static inline void nas_node_set_shape(nas_node *n, int ndim, const int64_t *shape) {
    n->ndim = ndim;
    n->numel = 1;
    for (int i = 0; i < NAS_MAX_DIMS; i++) {
        n->shape[i] = i < ndim ? shape[i] : 1;
        if (i < ndim) {
            n->numel *= shape[i];
        }
    }
}

/* Parameters: one block of floats for values, one for gradients, entries carve them. */
typedef struct nas_param_entry {
    char *name;
    int ndim;
    int64_t shape[NAS_MAX_DIMS];
    int64_t numel;
    int64_t offset; /* into data/grad, in floats, 16-float aligned */
    nas_init init;
    int flags;
    int64_t fan_in_hint;
} nas_param_entry;

struct nas_params {
    nas_ctx *ctx;
    nas_param_entry *entries;
    int64_t n_entries, cap_entries;
    float *data, *grad;
    int64_t total, cap_total; /* floats used / allocated */
};

#endif
