/* proxies.c - the zero-cost proxy registry and driver: names, the reusable workspace, and the
 * passes that the proxies share (see proxies_int.h for the order). Each proxy's definition lives
 * in its own file, proxy_<name>.c; params and macs are counted here.
 *
 *   params  trainable parameters (conv, linear, BN affine; not running statistics), the count
 *           nas_model_n_params gives. Higher = predicted better (a bigger network).
 *   macs    multiply-accumulates of conv and linear ops for one example, from the batch-1
 *           recording. Higher = predicted better.
 *
 * The model's parameter block is copied before scoring and copied back after it: training-mode
 * passes update the batch-norm running statistics and grasp perturbs weights. */
#include "proxies_int.h"

#include <math.h>

static const char *const proxy_names[NAS_PROXY_COUNT] = {
    "grad_norm", "snip", "grasp", "fisher", "synflow", "jacob_cov", "nwot", "params", "macs"};

const char *nas_proxy_name(nas_proxy p) {
    return (unsigned)p < NAS_PROXY_COUNT ? proxy_names[p] : "?";
}

int nas_proxy_from_name(const char *name) {
    for (int i = 0; i < NAS_PROXY_COUNT; i++) {
        if (name != NULL && strcmp(name, proxy_names[i]) == 0) {
            return i;
        }
    }
    return -1;
}

int nas_proxy_needs_data(nas_proxy p) {
    return p != NAS_PROXY_SYNFLOW && p != NAS_PROXY_PARAMS && p != NAS_PROXY_MACS &&
           (unsigned)p < NAS_PROXY_COUNT;
}

void *nas_proxy_buf_reserve(nas_ctx *ctx, nas_proxy_buf *b, size_t bytes) {
    if (bytes <= b->bytes && b->p != NULL) {
        return b->p;
    }
    nas_free(ctx, b->p, b->bytes);
    b->bytes = 0;
    b->p = nas_malloc(ctx, bytes > 0 ? bytes : 1);
    if (b->p != NULL) {
        b->bytes = bytes > 0 ? bytes : 1;
    }
    return b->p;
}

void nas_proxy_buf_release(nas_ctx *ctx, nas_proxy_buf *b) {
    nas_free(ctx, b->p, b->bytes);
    b->p = NULL;
    b->bytes = 0;
}

nas_status nas_proxies_new(nas_ctx *ctx, nas_proxies **out) {
    NAS_CHECK_ARG(ctx, out != NULL);
    *out = NULL;
    nas_proxies *pr = nas_calloc(ctx, 1, sizeof(*pr));
    if (pr == NULL) {
        return NAS_ERR_NOMEM;
    }
    pr->ctx = ctx;
    pr->g = nas_graph_new(ctx);
    pr->g1 = pr->g != NULL ? nas_graph_new(ctx) : NULL;
    if (pr->g1 == NULL) {
        nas_proxies_free(pr);
        return NAS_ERR_NOMEM;
    }
    *out = pr;
    return NAS_OK;
}

void nas_proxies_free(nas_proxies *pr) {
    if (pr == NULL) {
        return;
    }
    nas_ctx *ctx = pr->ctx;
    nas_graph_free(pr->g);
    nas_graph_free(pr->g1);
    nas_proxy_buf *bufs[] = {&pr->x, &pr->labels, &pr->snapshot, &pr->weights, &pr->grad0, &pr->dbl,
                             &pr->work[0], &pr->work[1], &pr->work[2], &pr->work[3]};
    for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++) {
        nas_proxy_buf_release(ctx, bufs[i]);
    }
    nas_free(ctx, pr, sizeof(*pr));
}

nas_param_id nas_proxy_weight_of(const nas_node *n) {
    if ((n->op != NAS_OP_CONV2D && n->op != NAS_OP_LINEAR) || n->n_src < 2) {
        return -1;
    }
    const nas_node *w = n->src[1];
    if (w->op == NAS_OP_PARAM_SLICE) {
        w = w->src[0];
    }
    return w->op == NAS_OP_PARAM ? w->pid : -1;
}

/* Mark the conv / linear weights the graph uses (each once, however often it is read). */
static nas_status mark_weights(nas_proxies *pr, nas_params *p, const nas_graph *g,
                               unsigned char **out) {
    const int64_t np = nas_params_count(p);
    unsigned char *w = nas_proxy_buf_reserve(pr->ctx, &pr->weights, (size_t)(np > 0 ? np : 1));
    if (w == NULL) {
        return NAS_ERR_NOMEM;
    }
    memset(w, 0, (size_t)(np > 0 ? np : 1));
    for (int64_t i = 0; i < g->n_nodes; i++) {
        const nas_param_id id = nas_proxy_weight_of(nas_graph_node(g, i));
        if (id >= 0 && id < np) {
            w[id] = 1;
        }
    }
    *out = w;
    return NAS_OK;
}

/* Record the batch-B training graph: input (with a gradient), logits, loss; run forward. */
static nas_status record_train(nas_proxies *pr, nas_model *m, const float *x,
                               const int32_t *labels, int64_t batch, uint32_t mask,
                               nas_proxy_pass *ps) {
    nas_ctx *ctx = pr->ctx;
    const nas_model_shape sh = nas_model_get_shape(m);
    const int64_t per = (int64_t)sh.in_c * sh.in_h * sh.in_w;
    float *xb = nas_proxy_buf_reserve(ctx, &pr->x, (size_t)(batch * per) * sizeof(float));
    int32_t *yb = nas_proxy_buf_reserve(ctx, &pr->labels, (size_t)batch * sizeof(int32_t));
    if (xb == NULL || yb == NULL) {
        return NAS_ERR_NOMEM;
    }
    memcpy(xb, x, (size_t)(batch * per) * sizeof(float));
    for (int64_t i = 0; i < batch; i++) {
        if (labels[i] < 0 || labels[i] >= sh.classes) {
            return nas_fail(ctx, NAS_ERR_ARG, "proxies: label %d of example %lld is outside [0, %d)",
                            labels[i], (long long)i, sh.classes);
        }
        yb[i] = labels[i];
    }
    nas_graph *g = pr->g;
    nas_graph_reset(g);
    nas_graph_set_training(g, 1);
    nas_graph_set_grad_enabled(g, 1);
    /* jacob_cov, fisher and nwot read input and activation gradients only: without the weight
     * gradients a conv's backward is one pass (data) instead of two (data and weights) */
    const uint32_t param_users =
        (1u << NAS_PROXY_GRAD_NORM) | (1u << NAS_PROXY_SNIP) | (1u << NAS_PROXY_GRASP);
    const int param_grads = (mask & param_users) != 0;
    nas_graph_set_param_grads(g, param_grads);
    /* the proxies read weights, inputs, ReLU outputs (nwot: per example, in any order) and conv
     * outputs (fisher: layout-aware) */
    nas_graph_set_blocked_layouts(g, 1);
    const int64_t shape[4] = {batch, sh.in_c, sh.in_h, sh.in_w};
    ps->m = m;
    ps->p = nas_model_params(m);
    ps->g = g;
    ps->batch = batch;
    /* dL/dx: jacob_cov's Jacobian, or (no parameter gradients) what makes the activations'
     * gradients flow; snip and grad_norm alone skip the stem conv's data pass */
    ps->x = (mask & (1u << NAS_PROXY_JACOB_COV)) || !param_grads
                ? nas_input_grad(g, 4, shape, xb)
                : nas_input(g, 4, shape, xb);
    ps->logits = nas_model_forward(m, g, ps->x);
    ps->loss = nas_softmax_cross_entropy(g, ps->logits, nas_labels(g, batch, yb), 0.0f);
    nas_status st = nas_graph_status(g);
    if (st != NAS_OK) {
        return nas_fail(ctx, st, "proxies: recording the network failed: %s", nas_errmsg(ctx));
    }
    if (mask & (1u << NAS_PROXY_FISHER)) { /* it reads the conv and linear outputs' gradients */
        for (int64_t i = 0; i < g->n_nodes; i++) {
            nas_node *n = nas_graph_node(g, i);
            if (nas_proxy_weight_of(n) >= 0) {
                nas_graph_retain_grad(g, n);
            }
        }
    }
    return nas_graph_forward(g);
}

/* Run the data-driven proxies of mask on the recorded graph (see proxies_int.h for the order). */
static nas_status run_data_proxies(nas_proxies *pr, nas_proxy_pass *ps, uint32_t mask,
                                   double *scores) {
    nas_status st = NAS_OK;
    if (mask & (1u << NAS_PROXY_NWOT)) {
        st = nas_proxy_nwot(pr, ps, &scores[NAS_PROXY_NWOT]);
    }
    const uint32_t loss_users = (1u << NAS_PROXY_GRAD_NORM) | (1u << NAS_PROXY_SNIP) |
                                (1u << NAS_PROXY_FISHER) | (1u << NAS_PROXY_GRASP);
    if (st == NAS_OK && (mask & loss_users)) {
        nas_params_zero_grad(ps->p);
        st = nas_graph_backward(ps->g, ps->loss);
        if (st == NAS_OK && (mask & (1u << NAS_PROXY_GRAD_NORM))) {
            scores[NAS_PROXY_GRAD_NORM] = nas_proxy_grad_norm(ps);
        }
        if (st == NAS_OK && (mask & (1u << NAS_PROXY_SNIP))) {
            scores[NAS_PROXY_SNIP] = nas_proxy_snip(ps);
        }
        if (st == NAS_OK && (mask & (1u << NAS_PROXY_FISHER))) {
            st = nas_proxy_fisher(pr, ps, &scores[NAS_PROXY_FISHER]);
        }
        if (st == NAS_OK && (mask & (1u << NAS_PROXY_GRASP))) {
            /* keep the loss gradient: jacob_cov's backward below overwrites the grad block */
            const size_t bytes = (size_t)nas_params_total(ps->p) * sizeof(float);
            float *g0 = nas_proxy_buf_reserve(pr->ctx, &pr->grad0, bytes);
            if (g0 == NULL) {
                return NAS_ERR_NOMEM;
            }
            memcpy(g0, nas_params_grad(ps->p), bytes);
        }
    }
    if (st == NAS_OK && (mask & (1u << NAS_PROXY_JACOB_COV))) {
        st = nas_proxy_jacob_cov(pr, ps, &scores[NAS_PROXY_JACOB_COV]);
    }
    if (st == NAS_OK && (mask & (1u << NAS_PROXY_GRASP))) {
        st = nas_proxy_grasp(pr, ps, &scores[NAS_PROXY_GRASP]);
    }
    return st;
}

nas_status nas_proxies_score(nas_proxies *pr, nas_model *m, const float *x,
                             const int32_t *labels, int64_t batch, uint32_t mask,
                             double scores[NAS_PROXY_COUNT]) {
    NAS_CHECK_ARG(pr->ctx, m != NULL && scores != NULL);
    nas_ctx *ctx = pr->ctx;
    if (mask & ~NAS_PROXY_ALL) {
        return nas_fail(ctx, NAS_ERR_ARG, "proxies: unknown proxy bits 0x%x", mask & ~NAS_PROXY_ALL);
    }
    int needs_data = 0;
    for (int i = 0; i < NAS_PROXY_COUNT; i++) {
        needs_data |= (mask & (1u << i)) && nas_proxy_needs_data((nas_proxy)i);
    }
    if (needs_data && (x == NULL || labels == NULL || batch < 2)) {
        return nas_fail(ctx, NAS_ERR_ARG, "proxies: the data-driven proxies need a minibatch of at "
                        "least 2 examples with labels (got %lld%s)", (long long)batch,
                        x == NULL || labels == NULL ? ", no data" : "");
    }
    nas_params *p = nas_model_params(m);
    const size_t pbytes = (size_t)nas_params_total(p) * sizeof(float);
    float *snap = nas_proxy_buf_reserve(ctx, &pr->snapshot, pbytes);
    if (snap == NULL) {
        return NAS_ERR_NOMEM;
    }
    memcpy(snap, nas_params_data(p), pbytes);
    nas_status st = NAS_OK;
    if (needs_data) {
        nas_proxy_pass ps;
        memset(&ps, 0, sizeof ps);
        st = record_train(pr, m, x, labels, batch, mask, &ps);
        unsigned char *w = NULL;
        if (st == NAS_OK) {
            st = mark_weights(pr, p, pr->g, &w);
        }
        if (st == NAS_OK) {
            ps.is_weight = w;
            st = run_data_proxies(pr, &ps, mask, scores);
        }
        memcpy(nas_params_data(p), snap, pbytes);
    }
    const uint32_t g1_users = (1u << NAS_PROXY_SYNFLOW) | (1u << NAS_PROXY_MACS);
    if (st == NAS_OK && (mask & g1_users)) {
        const nas_model_shape sh = nas_model_get_shape(m);
        const int64_t shape[4] = {1, sh.in_c, sh.in_h, sh.in_w};
        nas_graph *g1 = pr->g1;
        nas_graph_reset(g1);
        nas_graph_set_training(g1, 0);
        nas_model_forward(m, g1, nas_input(g1, 4, shape, NULL));
        st = nas_graph_status(g1);
        if (st != NAS_OK) {
            st = nas_fail(ctx, st, "proxies: recording the network failed: %s", nas_errmsg(ctx));
        }
        if (st == NAS_OK && (mask & (1u << NAS_PROXY_MACS))) {
            scores[NAS_PROXY_MACS] = (double)nas_graph_macs(g1);
        }
        if (st == NAS_OK && (mask & (1u << NAS_PROXY_SYNFLOW))) {
            st = nas_proxy_synflow(pr, p, g1, &scores[NAS_PROXY_SYNFLOW]);
        }
    }
    if (st == NAS_OK && (mask & (1u << NAS_PROXY_PARAMS))) {
        scores[NAS_PROXY_PARAMS] = (double)nas_model_n_params(m);
    }
    nas_params_zero_grad(p);
    return st;
}
