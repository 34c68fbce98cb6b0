/* layout.c - the planner's choice of blocked layouts (nas_graph_set_blocked_layouts), and the
 * conv nodes' aux space that depends on it.
 *
 * oneDNN's convolutions compute on channel-blocked tensors (nChw16c with AVX-512, nChw8c with
 * AVX2). Fed plain NCHW tensors, every convolution reorders its input, output and their
 * gradients (a full read and write each, ~15% of an NB201 training step). Where blocked layouts
 * are on, whole regions of the graph are kept blocked instead, so that the convolutions inside
 * them read and write the tensors directly:
 *   - a conv2d (one group, no bias) writes its output blocked when oneDNN wants it so in every
 *     pass; it reads a blocked input directly when oneDNN wants that layout for its input;
 *   - element-wise ops (activations, add, sum, zero) are blocked when all their inputs are, and
 *     so are batch_norm and avg_pool (which have blocked kernels) when their input is;
 *   - global_avg_pool reads a blocked input and writes plain [N, C].
 * A blocked node must have readers, all of which read that layout: a blocked reader of the same
 * block size, a conv wanting it as input, or global_avg_pool. Anything else (views, other ops,
 * proxies reading activations, the graph's outputs) forces it back to plain, which may undo its
 * neighbours in turn; demotions are final, so the planning reaches a fixed point. Values are
 * those of the plain graph up to float rounding (tests/test_layout.c). */
#include "conv_int.h"
#include "layout_int.h"

#include <stdlib.h>

enum { UNDECIDED = -1 };

static int is_elementwise(int op) {
    switch (op) {
        case NAS_OP_RELU:
        case NAS_OP_RELU6:
        case NAS_OP_HSWISH:
        case NAS_OP_HSIGMOID:
        case NAS_OP_SIGMOID:
        case NAS_OP_SWISH:
        case NAS_OP_TANH:
        case NAS_OP_ADD:
        case NAS_OP_SUM:
        case NAS_OP_ZERO: return 1;
        default: return 0;
    }
}

/* Ops whose layout follows their inputs': element-wise ones (every source) and those with
 * blocked kernels for their first source (relu_frozen: its mask leaf was taken in the layout
 * its input has). */
static int follows_inputs(const nas_node *n) {
    return n->ndim == 4 && (is_elementwise(n->op) || n->op == NAS_OP_BATCH_NORM ||
                            n->op == NAS_OP_AVG_POOL || n->op == NAS_OP_RELU_FROZEN);
}

/* Sources whose layout a following node shares: all for element-wise ops, else the first. */
static int layout_sources(const nas_node *n) {
    return is_elementwise(n->op) ? n->n_src : 1;
}

/* A conv that may run blocked: oneDNN computes it (one group, no bias: the bias gradient
 * without a weight gradient has no blocked kernel). */
static int conv_may_block(const nas_node *n) {
    return n->op == NAS_OP_CONV2D && n->n_src == 2 && n->iparam[NAS_CONV_IP_GROUPS] == 1;
}

/* Per node: blk, the planned block (UNDECIDED / 0 / B); xblk, for a conv the block its input
 * may be read in (asked of oneDNN once); readers; plain, demoted for good. */
typedef struct plan_state {
    int64_t *blk, *xblk, *readers;
    uint8_t *plain;
} plan_state;

/* Whether reader r takes source `slot` in block size b (r's own block already planned). */
static int accepts(const nas_node *r, int slot, int64_t b, const plan_state *ps) {
    if (conv_may_block(r) && slot == 0) {
        return ps->xblk[r->index] == b;
    }
    if (r->op == NAS_OP_GLOBAL_AVG_POOL) {
        return 1;
    }
    return follows_inputs(r) && slot < layout_sources(r) && ps->blk[r->index] == b;
}

/* The block of a following node from its sources (0 unless all agree on one block). */
static int64_t from_sources(const nas_node *n, const int64_t *blk) {
    int64_t b = UNDECIDED;
    for (int s = 0; s < layout_sources(n); s++) {
        const int64_t sb = blk[n->src[s]->index];
        if (sb <= 0 || (b != UNDECIDED && sb != b)) {
            return 0;
        }
        b = sb;
    }
    return b == UNDECIDED ? 0 : b;
}

/* One round: blocks from sources (forward), then every blocked node a reader or the lack of
 * readers rejects is demoted for good. Returns the number of demotions. */
static int64_t plan_round(const nas_graph *g, plan_state *ps) {
    int64_t *blk = ps->blk, *readers = ps->readers;
    uint8_t *plain = ps->plain;
    for (int64_t i = 0; i < g->n_nodes; i++) {
        const nas_node *n = nas_graph_node(g, i);
        if (!plain[i] && follows_inputs(n)) {
            blk[i] = from_sources(n, blk);
        }
        readers[i] = 0;
    }
    int64_t demoted = 0;
    for (int64_t i = 0; i < g->n_nodes; i++) {
        const nas_node *r = nas_graph_node(g, i);
        for (int slot = 0; slot < r->n_src; slot++) {
            const int64_t s = r->src[slot]->index;
            readers[s]++;
            if (blk[s] > 0 && !accepts(r, slot, blk[s], ps)) {
                blk[s] = 0;
                plain[s] = 1;
                demoted++;
            }
        }
    }
    for (int64_t i = 0; i < g->n_nodes; i++) {
        if (blk[i] > 0 && readers[i] == 0) { /* an output: its reader is the caller */
            blk[i] = 0;
            plain[i] = 1;
            demoted++;
        }
    }
    return demoted;
}

static void choose_blocks(nas_graph *g, plan_state *ps) {
    for (int64_t i = 0; i < g->n_nodes; i++) {
        const nas_node *n = nas_graph_node(g, i);
        const int conv = conv_may_block(n);
        ps->blk[i] = conv ? nas_conv_dnnl_block(g, n, 1) : 0;
        ps->xblk[i] = conv ? nas_conv_dnnl_block(g, n, 0) : 0;
        ps->plain[i] = !conv && !follows_inputs(n);
    }
    while (plan_round(g, ps) > 0) {
    }
    for (int64_t i = 0; i < g->n_nodes; i++) {
        nas_graph_node(g, i)->block = (uint8_t)(ps->blk[i] > 0 ? ps->blk[i] : 0);
    }
}

/* NAS_BLOCKED_LAYOUTS=0 in the environment turns blocked layouts off everywhere: A/B timings
 * and a way around a suspected layout problem without rebuilding. */
static int disabled_by_env(void) {
    const char *v = getenv("NAS_BLOCKED_LAYOUTS");
    return v != NULL && strcmp(v, "0") == 0;
}

nas_status nas_layout_plan(nas_graph *g) {
    for (int64_t i = 0; i < g->n_nodes; i++) {
        nas_graph_node(g, i)->block = 0;
    }
    if (g->blocked_layouts && !disabled_by_env()) {
        const size_t n = (size_t)g->n_nodes;
        int64_t *mem = nas_graph_scratch(g, n * (3 * sizeof(int64_t) + 1));
        if (mem == NULL) {
            return NAS_ERR_NOMEM;
        }
        plan_state ps = {mem, mem + n, mem + 2 * n, (uint8_t *)(mem + 3 * n)};
        choose_blocks(g, &ps);
    }
    /* a conv whose input is plain keeps oneDNN's blocked copy of it for the weight gradient */
    for (int64_t i = 0; i < g->n_nodes; i++) {
        nas_node *n = nas_graph_node(g, i);
        if (n->op == NAS_OP_CONV2D && nas_conv_uses_dnnl(g, n)) {
            const nas_conv_geom c = nas_conv_geom_of(n);
            n->aux_bytes = g->grad_enabled && n->src[0]->block == 0
                               ? nas_conv_dnnl_aux_bytes(g, &c, n->n_src == 3)
                               : 0;
        }
    }
    return NAS_OK;
}
