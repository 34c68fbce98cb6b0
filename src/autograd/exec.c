/* exec.c - the executor: places a recorded graph's tensors in its arena (memory planning), runs
 * forward, and runs reverse-mode autodiff.
 *
 * Planning. With gradients on, every activation is kept for backward, so forward buffers are
 * placed one after another; the gradients follow, each buffer live only while the backward
 * needs it (from its first writer down to its last reader) and its memory reused by later
 * gradients outside that span (first fit): the region shrinks to the peak of live gradients
 * (a batch-64 NB201 snip: 1.09 -> 0.66 GB of arena), and a new gradient mostly lands on
 * memory still in cache. Inputs' gradients and those nas_graph_retain_grad keeps stay whole.
 * Only the gradients that no op stores into first are zeroed (nas_grad_first: for most of a
 * network the first writer overwrites), a reused one when the backward reaches it; a sum's
 * source that only the sum reads has the sum's gradient as its own (the sum's backward would
 * copy it). With gradients off (inference), a buffer is released once its last reader has run
 * and the next buffer takes the lowest gap that fits (first fit), which is what keeps inference
 * memory near the peak of live activations. Either way the arena is one block that only grows,
 * so a steady-state training step never calls the allocator. */
#include "ops/layout_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define ALIGN_BYTES 64

static size_t align_up(size_t x) {
    return (x + ALIGN_BYTES - 1) & ~(size_t)(ALIGN_BYTES - 1);
}

/* The node whose buffer an alias node views (follows chains of views). */
static nas_node *storage_root(nas_node *n) {
    while (nas_op_get(n->op)->alias) {
        n = n->src[0];
    }
    return n;
}

static int owns_buffer(const nas_node *n) {
    return n->op != NAS_OP_INPUT && n->op != NAS_OP_PARAM && n->op != NAS_OP_LABELS &&
           !nas_op_get(n->op)->alias;
}

static size_t data_bytes(const nas_node *n) {
    return align_up((size_t)n->numel * sizeof(float)) + align_up(n->aux_bytes);
}

/* requires_grad, last_use and readers for every node. */
static void mark_nodes(nas_graph *g) {
    for (int64_t i = 0; i < g->n_nodes; i++) {
        nas_graph_node(g, i)->readers = 0;
    }
    for (int64_t i = 0; i < g->n_nodes; i++) {
        nas_node *n = nas_graph_node(g, i);
        n->last_use = i;
        if (n->op == NAS_OP_PARAM) {
            n->requires_grad = g->grad_enabled && g->param_grads &&
                               (n->params->entries[n->pid].flags & NAS_PARAM_BUFFER) == 0;
        } else if (n->op == NAS_OP_INPUT) {
            n->requires_grad = n->requires_grad && g->grad_enabled;
        } else if (n->op != NAS_OP_LABELS) {
            n->requires_grad = 0;
            for (int s = 0; s < n->n_src; s++) {
                n->requires_grad |= n->src[s]->requires_grad;
            }
            n->requires_grad &= (uint8_t)g->grad_enabled;
        }
        for (int s = 0; s < n->n_src; s++) {
            nas_node *root = storage_root(n->src[s]);
            root->last_use = nas_max_i64(root->last_use, i);
            n->src[s]->readers++;
        }
    }
    /* Outputs nobody reads stay live to the end. */
    for (int64_t i = 0; i < g->n_nodes; i++) {
        nas_node *n = nas_graph_node(g, i);
        if (n->last_use == i) {
            storage_root(n)->last_use = g->n_nodes;
        }
    }
}

/* A block of the arena in use, sorted by begin; `until` is the last step it is live at. */
typedef struct live_block {
    size_t begin, end;
    int64_t until;
} live_block;

/* Drop the blocks no longer live at `step`; returns the bytes released. */
static size_t release_blocks(live_block *blocks, int64_t *n_live, int64_t step) {
    int64_t kept = 0;
    size_t released = 0;
    for (int64_t b = 0; b < *n_live; b++) {
        if (blocks[b].until >= step) {
            blocks[kept++] = blocks[b];
        } else {
            released += blocks[b].end - blocks[b].begin;
        }
    }
    *n_live = kept;
    return released;
}

/* First fit: the lowest offset where `size` bytes fit between the live blocks; the new block
 * joins them (room for one more is the caller's), live until step `until`. */
static size_t place_first_fit(live_block *blocks, int64_t *n_live, size_t size, int64_t until) {
    size_t at = 0;
    int64_t pos = 0;
    for (; pos < *n_live; pos++) {
        if (blocks[pos].begin >= at + size) {
            break;
        }
        at = blocks[pos].end > at ? blocks[pos].end : at;
    }
    for (int64_t b = *n_live; b > pos; b--) {
        blocks[b] = blocks[b - 1];
    }
    blocks[pos] = (live_block){at, at + size, until};
    (*n_live)++;
    return at;
}

/* First-fit placement with release after last use. `blocks` has room for n_nodes entries.
 * Returns the high-water mark; *live_peak gets the largest sum of live bytes. */
static size_t place_inference(nas_graph *g, live_block *blocks, size_t *offsets,
                              size_t *live_peak) {
    int64_t n_live = 0;
    size_t high = 0, live = 0;
    *live_peak = 0;
    for (int64_t i = 0; i < g->n_nodes; i++) {
        nas_node *n = nas_graph_node(g, i);
        live -= release_blocks(blocks, &n_live, i); /* last reader ran before node i */
        if (!owns_buffer(n)) {
            continue;
        }
        const size_t size = data_bytes(n);
        const size_t at = place_first_fit(blocks, &n_live, size, n->last_use);
        offsets[i] = at;
        live += size;
        high = at + size > high ? at + size : high;
        *live_peak = live > *live_peak ? live : *live_peak;
    }
    return high;
}

static nas_status ensure_arena(nas_graph *g, size_t bytes) {
    if (bytes <= g->arena_cap) {
        return NAS_OK;
    }
    nas_free(g->ctx, g->arena, g->arena_cap);
    g->arena_cap = 0;
    g->arena = nas_malloc(g->ctx, bytes);
    if (g->arena == NULL) {
        return NAS_ERR_NOMEM;
    }
    nas_mem_advise_large(g->arena, bytes);
    g->arena_cap = bytes;
    return NAS_OK;
}

/* Point views and parameter leaves at their storage (cheap; done before every forward because
 * inputs and parameter blocks may move between runs). */
static void bind_views(nas_graph *g) {
    for (int64_t i = 0; i < g->n_nodes; i++) {
        nas_node *n = nas_graph_node(g, i);
        if (n->op == NAS_OP_PARAM) {
            const nas_param_entry *e = &n->params->entries[n->pid];
            n->data = n->params->data + e->offset;
            n->grad = n->requires_grad ? n->params->grad + e->offset : NULL;
        } else if (nas_op_get(n->op)->alias) {
            n->data = n->src[0]->data + n->alias_offset;
            n->grad = n->src[0]->grad != NULL ? n->src[0]->grad + n->alias_offset : NULL;
        }
    }
}

/* Whether a node's gradient lives in the graph's gradient region (parameters' live in their
 * block, views' in their root's). */
static int owns_grad(const nas_node *n) {
    return n->requires_grad && n->op != NAS_OP_PARAM && !nas_op_get(n->op)->alias;
}

/* Set grad_host where a node's gradient can be its sum reader's: the sum reads it once and is its
 * only reader, in the same layout; not for inputs (the caller reads their gradients) nor views. */
static void find_grad_hosts(nas_graph *g) {
    for (int64_t i = 0; i < g->n_nodes; i++) {
        nas_graph_node(g, i)->grad_host = NULL;
    }
    for (int64_t i = 0; i < g->n_nodes; i++) {
        nas_node *s = nas_graph_node(g, i);
        if ((s->op != NAS_OP_SUM && s->op != NAS_OP_ADD) || !s->requires_grad) {
            continue;
        }
        for (int k = 0; k < s->n_src; k++) {
            nas_node *x = s->src[k];
            if (x->readers == 1 && owns_grad(x) && x->op != NAS_OP_INPUT &&
                x->block == s->block) {
                x->grad_host = s;
            }
        }
    }
}

/* The node whose buffer holds x's gradient: a hosted gradient is its host's (chains end at a
 * node with no host). */
static nas_node *grad_owner(nas_node *x) {
    while (x->grad_host != NULL) {
        x = x->grad_host;
    }
    return x;
}

/* A gradient buffer's span in the backward, which runs from the highest node index down: it is
 * claimed at step `claim` (its owner's highest reader writes it first) and last read at step
 * `release` (the lowest node sharing it runs its backward, or a conv group's leader reads its
 * members' output gradients for their weight gradients). */
typedef struct grad_span {
    int64_t claim, release, owner;
} grad_span;

static int later_claim_first(const void *a, const void *b) {
    const grad_span *x = a, *y = b;
    return x->claim != y->claim ? (x->claim < y->claim ? 1 : -1)
                                : (x->owner < y->owner ? 1 : (x->owner > y->owner ? -1 : 0));
}

/* Spans of the gradient buffers into `spans` (one per owner, in index order; a claim of
 * INT64_MAX for buffers kept whole: inputs', retained ones, those read through views, whose
 * readers write through the view). Returns the count. */
static int64_t find_grad_spans(nas_graph *g, grad_span *spans, int64_t *span_of) {
    int64_t count = 0;
    for (int64_t i = 0; i < g->n_nodes; i++) {
        nas_node *n = nas_graph_node(g, i);
        span_of[i] = -1;
        if (owns_grad(n) && n->grad_host == NULL) {
            span_of[i] = count;
            spans[count++] = (grad_span){.claim = -1, .release = i, .owner = i};
        }
    }
    for (int64_t i = 0; i < g->n_nodes; i++) {
        nas_node *n = nas_graph_node(g, i);
        const int view = nas_op_get(n->op)->alias;
        for (int k = 0; k < n->n_src; k++) {
            nas_node *x = view ? storage_root(n->src[k]) : n->src[k];
            if (!owns_grad(x) || x->grad_host == n) { /* a host writes no hosted gradient */
                continue;
            }
            grad_span *sp = &spans[span_of[grad_owner(x)->index]];
            sp->claim = view ? INT64_MAX : (sp->claim > i ? sp->claim : i);
        }
        if (owns_grad(n)) {
            grad_span *sp = &spans[span_of[grad_owner(n)->index]];
            int64_t low = n->group_leader != NULL ? n->group_leader->index : i;
            sp->release = low < sp->release ? low : sp->release;
            if (n->op == NAS_OP_INPUT || n->retain_grad) {
                sp->claim = INT64_MAX;
            }
        }
    }
    for (int64_t s = 0; s < count; s++) {
        if (spans[s].claim == -1) { /* nothing reads it: the backward's start seeds it */
            spans[s].claim = g->n_nodes;
        }
    }
    return count;
}

/* Gradient buffers with reuse (see grad_span): buffers kept whole first, then the rest in the
 * order the backward claims them, each released once its span has passed; placed first fit
 * from offset 0 of the gradient region into offsets[owner]. Returns the region's size. Steps
 * are negated node indices, so the backward's order is increasing as place_first_fit expects. */
static size_t place_gradients(nas_graph *g, grad_span *spans, int64_t count, live_block *blocks,
                              size_t *offsets) {
    qsort(spans, (size_t)count, sizeof(*spans), later_claim_first);
    int64_t n_live = 0;
    size_t high = 0;
    for (int64_t s = 0; s < count; s++) {
        const grad_span *sp = &spans[s];
        nas_node *n = nas_graph_node(g, sp->owner);
        const int whole = sp->claim == INT64_MAX;
        if (!whole) {
            release_blocks(blocks, &n_live, -sp->claim);
        }
        const size_t size = align_up((size_t)n->numel * sizeof(float));
        const size_t at = place_first_fit(blocks, &n_live, size, whole ? INT64_MAX : -sp->release);
        offsets[sp->owner] = at;
        n->grad_claim = whole ? -1 : sp->claim;
        high = at + size > high ? at + size : high;
    }
    return high;
}

void nas_graph_retain_grad(nas_graph *g, nas_tensor *t) {
    nas_node *root = storage_root(t);
    if (!t->retain_grad || !root->retain_grad) {
        t->retain_grad = root->retain_grad = 1;
        g->planned = 0;
    }
}

static nas_status plan(nas_graph *g) {
    mark_nodes(g);
    /* which nodes are blocked decides the conv nodes' aux sizes: before any placement */
    const nas_status layout_st = nas_layout_plan(g);
    if (layout_st != NAS_OK) {
        return layout_st;
    }
    nas_ops_plan_fusions(g); /* needs the layouts */
    const int64_t nn = g->n_nodes;
    size_t *offsets = nas_graph_scratch(g, (size_t)nn * (2 * sizeof(size_t) + sizeof(live_block) +
                                                         sizeof(grad_span) + sizeof(int64_t)));
    if (offsets == NULL) {
        return NAS_ERR_NOMEM;
    }
    size_t *grad_offsets = offsets + nn;
    live_block *blocks = (live_block *)(grad_offsets + nn);
    grad_span *spans = (grad_span *)(blocks + nn);
    int64_t *span_of = (int64_t *)(spans + nn);
    size_t total = 0;
    find_grad_hosts(g);
    for (int64_t i = 0; i < nn; i++) { /* placement sets the reused buffers' claims */
        nas_graph_node(g, i)->grad_claim = -1;
    }
    if (g->grad_enabled) {
        for (int64_t i = 0; i < nn; i++) {
            nas_node *n = nas_graph_node(g, i);
            if (owns_buffer(n)) {
                offsets[i] = total;
                total += data_bytes(n);
            }
        }
        g->grad_begin = total;
        const int64_t count = find_grad_spans(g, spans, span_of);
        total += place_gradients(g, spans, count, blocks, grad_offsets);
        g->grad_end = total;
    } else {
        size_t live_peak;
        total = place_inference(g, blocks, offsets, &live_peak);
        g->grad_begin = g->grad_end = total;
    }
    if (ensure_arena(g, total) != NAS_OK) {
        return nas_fail(g->ctx, NAS_ERR_NOMEM, "graph: out of memory for a %zu-byte arena", total);
    }
    for (int64_t i = 0; i < nn; i++) {
        nas_node *n = nas_graph_node(g, i);
        if (owns_buffer(n)) {
            n->data = (float *)(g->arena + offsets[i]);
            n->aux = n->aux_bytes ? g->arena + offsets[i] + align_up((size_t)n->numel * sizeof(float))
                                  : NULL;
        }
        if (n->op == NAS_OP_INPUT || owns_buffer(n)) {
            n->grad = NULL;
            if (n->requires_grad && n->grad_host == NULL) {
                n->grad = (float *)(g->arena + g->grad_begin + grad_offsets[i]);
            }
        }
    }
    /* hosts come later in the graph and may have hosts themselves: last first */
    for (int64_t i = g->n_nodes - 1; i >= 0; i--) {
        nas_node *n = nas_graph_node(g, i);
        if (n->grad_host != NULL) {
            n->grad = n->grad_host->grad;
            n->grad_claim = n->grad_host->grad_claim;
        }
    }
    /* a view's grad_claim stays -1: reading its root through it keeps the root's buffer whole */
    g->planned = 1;
    return NAS_OK;
}

/* Forward, optionally timing every node (seconds written to node_seconds[i], 0 for leaves). */
static nas_status forward_impl(nas_graph *g, double *node_seconds) {
    if (g->status != NAS_OK) {
        return nas_fail(g->ctx, g->status, "graph has a build error: %s", nas_errmsg(g->ctx));
    }
    if (!g->planned) {
        const nas_status st = plan(g);
        if (st != NAS_OK) {
            return st;
        }
    }
    bind_views(g);
    for (int64_t i = 0; i < g->n_nodes; i++) {
        nas_node *n = nas_graph_node(g, i);
        if (n->op == NAS_OP_INPUT && n->data == NULL) {
            return nas_fail(g->ctx, NAS_ERR_STATE, "forward: input node %lld has no data",
                            (long long)i);
        }
        const nas_op_desc *d = nas_op_get(n->op);
        const double t0 = node_seconds != NULL ? nas_now() : 0.0;
        if (d->forward != NULL && !d->alias && n->group_leader == NULL) {
            const nas_status st = d->forward(g, n);
            if (st != NAS_OK) {
                return st;
            }
        }
        if (node_seconds != NULL) {
            node_seconds[i] = nas_now() - t0;
        }
    }
    g->step++;
    return NAS_OK;
}

nas_status nas_graph_forward(nas_graph *g) {
    return forward_impl(g, NULL);
}

nas_status nas_graph_forward_timed(nas_graph *g, double *node_seconds) {
    return forward_impl(g, node_seconds);
}

size_t nas_graph_node_signature(const nas_graph *g, int64_t i, char *buf, size_t size) {
    const nas_node *n = nas_graph_node(g, i);
    int len = snprintf(buf, size, "%s", nas_op_get(n->op)->name);
    for (int s = 0; s < n->n_src && len >= 0 && (size_t)len < size; s++) {
        const nas_node *x = n->src[s];
        len += snprintf(buf + len, size - (size_t)len, s == 0 ? "|" : ",");
        for (int d = 0; d < x->ndim && (size_t)len < size; d++) {
            len += snprintf(buf + len, size - (size_t)len, d ? "x%lld" : "%lld", (long long)x->shape[d]);
        }
    }
    len += snprintf(buf + len, size > (size_t)len ? size - (size_t)len : 0, "|");
    for (int k = 0; k < NAS_NODE_IPARAMS && (size_t)len < size; k++) {
        len += snprintf(buf + len, size - (size_t)len, k ? ",%d" : "%d", (int)n->iparam[k]);
    }
    return (size_t)len;
}

/* Zero the claimed buffers node n's backward writes first (or, none writing it, reads). */
static void zero_claimed(nas_node *n) {
    if (n->zero_pending && n->first_writer < 0) {
        memset(n->grad, 0, (size_t)n->numel * sizeof(float));
        n->zero_pending = 0;
    }
    for (int s = 0; s < n->n_src; s++) {
        nas_node *x = n->src[s];
        if (x->zero_pending && x->first_writer == n->index && x->first_slot == s) {
            memset(x->grad, 0, (size_t)x->numel * sizeof(float));
            x->zero_pending = 0;
        }
    }
}

static int backward_runs(const nas_node *n) {
    const nas_op_desc *d = nas_op_get(n->op);
    return n->requires_grad && n->grad != NULL && d->backward != NULL && !d->alias;
}

static nas_status run_backward(nas_graph *g, nas_node *from) {
    g->backward_top = from->index;
    for (int64_t i = from->index; i >= 0; i--) {
        nas_node *n = nas_graph_node(g, i);
        zero_claimed(n);
        if (backward_runs(n)) {
            nas_op_get(n->op)->backward(g, n);
        }
    }
    return NAS_OK;
}

/* Set every node's first_writer for a backward from t (see nas_grad_first): readers run from t
 * down, so a gradient's first writer is its highest-index reader that runs backward. A gradient
 * read through a view (an alias node) gets none: the view's readers write into it in an order
 * its own reader list does not show. Parameters (accumulated across calls) get none. */
static void assign_first_writers(nas_graph *g, const nas_node *t) {
    for (int64_t i = 0; i < g->n_nodes; i++) {
        nas_graph_node(g, i)->first_writer = -1;
    }
    for (int64_t i = t->index; i >= 0; i--) {
        nas_node *n = nas_graph_node(g, i);
        const nas_op_desc *d = nas_op_get(n->op);
        const int runs = backward_runs(n);
        for (int s = 0; s < n->n_src; s++) {
            nas_node *x = n->src[s];
            if (d->alias) {
                x->first_writer = -2; /* for good: later (lower) readers must add */
            } else if (runs && x->first_writer == -1 && x->grad != NULL && owns_grad(x)) {
                x->first_writer = i;
                x->first_slot = s;
            }
        }
    }
}

/* Zero the gradients no backward stores into first: the rest are overwritten before anything
 * reads them (for a batch-64 NB201 snip that is most of the gradients). A buffer kept whole, or
 * claimed above the backward's start t (nothing above t runs), is zeroed now; a reused buffer
 * only once the backward has claimed it: zero_pending, done by run_backward before its first
 * writer runs (or, where none runs, before its owner's own backward). A hosted gradient is its
 * host's buffer, zeroed (or not) as the host's. */
static void zero_unstored(nas_graph *g, const nas_node *t) {
    const int64_t n_nodes = g->n_nodes;
    NAS_OMP_FOR_DYNAMIC_IF(n_nodes > 64)
    for (int64_t i = 0; i < n_nodes; i++) {
        nas_node *n = nas_graph_node(g, i);
        n->zero_pending = 0;
        if (!owns_grad(n) || n->grad == NULL || n->grad_host != NULL) {
            continue;
        }
        const unsigned slots =
            n->first_writer >= 0 ? nas_op_get(nas_graph_node(g, n->first_writer)->op)->stores_first
                                 : 0u;
        const int stored = (slots >> n->first_slot) & 1u;
        if (stored) {
            continue;
        }
        if (n->grad_claim < 0 || n->grad_claim > t->index) {
            memset(n->grad, 0, (size_t)n->numel * sizeof(float));
        } else {
            n->zero_pending = 1;
        }
    }
}

static nas_status backward_prepare(nas_graph *g, nas_node *t) {
    if (!g->planned || t == NULL) {
        return nas_fail(g->ctx, NAS_ERR_STATE, "backward: run forward first");
    }
    if (!g->grad_enabled) {
        return nas_fail(g->ctx, NAS_ERR_STATE, "backward: gradients are disabled on this graph");
    }
    if (!t->requires_grad || t->grad == NULL) {
        return nas_fail(g->ctx, NAS_ERR_STATE,
                        "backward: the %s output does not depend on any parameter or input "
                        "that needs a gradient", nas_op_get(t->op)->name);
    }
    assign_first_writers(g, t);
    zero_unstored(g, t);
    return NAS_OK;
}

nas_status nas_graph_backward(nas_graph *g, nas_tensor *loss) {
    if (loss == NULL || loss->numel != 1) {
        return nas_fail(g->ctx, NAS_ERR_ARG, "backward: the loss must be a tensor of one element");
    }
    nas_status st = backward_prepare(g, loss);
    if (st != NAS_OK) {
        return st;
    }
    if (!isfinite(loss->data[0])) {
        return nas_fail(g->ctx, NAS_ERR_NUMERIC, "backward: the loss (%s) is %g",
                        nas_op_get(loss->op)->name, (double)loss->data[0]);
    }
    loss->grad[0] = 1.0f;
    return run_backward(g, loss);
}

nas_status nas_graph_backward_from(nas_graph *g, nas_tensor *t, const float *seed) {
    if (t == NULL || seed == NULL) {
        return nas_fail(g->ctx, NAS_ERR_ARG, "backward_from: NULL tensor or seed");
    }
    nas_status st = backward_prepare(g, t);
    if (st != NAS_OK) {
        return st;
    }
    memcpy(t->grad, seed, (size_t)t->numel * sizeof(float));
    return run_backward(g, t);
}

int64_t nas_graph_macs(const nas_graph *g) {
    int64_t macs = 0;
    for (int64_t i = 0; i < g->n_nodes; i++) {
        const nas_node *n = nas_graph_node(g, i);
        const nas_op_desc *d = nas_op_get(n->op);
        if (d->macs != NULL) {
            macs += d->macs(n);
        }
    }
    return macs;
}

size_t nas_graph_activation_peak(nas_graph *g) {
    if (g->status != NAS_OK || g->n_nodes == 0) {
        return 0;
    }
    const int saved = g->grad_enabled;
    g->grad_enabled = 0;
    mark_nodes(g);
    size_t peak = 0;
    size_t *offsets = nas_graph_scratch(g, (size_t)g->n_nodes * (sizeof(size_t) + sizeof(live_block)));
    if (offsets != NULL) {
        place_inference(g, (live_block *)(offsets + g->n_nodes), offsets, &peak);
    }
    g->grad_enabled = saved;
    g->planned = 0;
    return peak;
}
