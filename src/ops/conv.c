/* conv.c - the conv2d op: builder (shape checks), descriptor, and dispatch between the fast
 * paths (sgemm for 1x1: conv_gemm.c; AVX2 depthwise: conv_dw.c; AVX2 direct for stride-1 convs
 * with few input channels: conv_direct.c; oneDNN for the rest: conv_dnnl.c, which hands the
 * 3x3 convs with 16-64 channels inside blocked regions to our AVX-512 Winograd, conv_wino.c) and
 * the naive twin (conv_naive.c), the fallback when oneDNN rejects a case.
 * NAS_CONV_BACKEND=naive|dnnl (or nas_conv_set_backend) forces one path; NAS_CONV_WINOGRAD=0 keeps
 * every pass off Winograd, ours and oneDNN's (conv_dnnl.c and conv_wino.c say where they run).
 * x [N, C, H, W], w [O, C/groups, KH, KW], bias [O] or NULL -> y [N, O, OH, OW] with
 * OH = (H + 2 ph - dh (KH - 1) - 1) / sh + 1 (same for W). Backward accumulates into the grads
 * of x, w and bias that are not NULL, except dx where this conv writes it first (stored:
 * nas_grad_first). */
#include "conv_int.h"

#include <stdio.h>

static int positive_or_one(int v) {
    return v == 0 ? 1 : v;
}

/* Check args and the shapes; on success fill geometry fields that do not need the output. */
static int conv_check(nas_graph *g, const nas_node *x, const nas_node *w, const nas_node *bias,
                      const nas_conv_args *a, int64_t *oh, int64_t *ow) {
    char xs[64], ws[64], bs[64];
    nas_shape_str(x, xs, sizeof xs);
    nas_shape_str(w, ws, sizeof ws);
    if (a->stride_h < 0 || a->stride_w < 0 || a->dilation_h < 0 || a->dilation_w < 0 ||
        a->groups < 0 || a->pad_h < 0 || a->pad_w < 0) {
        nas_graph_fail(
            g, NAS_ERR_ARG,
            "conv2d: negative argument (stride %d,%d pad %d,%d dilation %d,%d groups %d)",
            a->stride_h, a->stride_w, a->pad_h, a->pad_w, a->dilation_h, a->dilation_w, a->groups);
        return 0;
    }
    if (x->ndim != 4 || w->ndim != 4) {
        nas_graph_fail(
            g, NAS_ERR_SHAPE,
            "conv2d: input %s and weight %s must be 4-d ([N, C, H, W], [O, C/groups, KH, "
            "KW])",
            xs, ws);
        return 0;
    }
    const int64_t groups = positive_or_one(a->groups);
    if (x->shape[1] % groups != 0 || w->shape[0] % groups != 0) {
        nas_graph_fail(g, NAS_ERR_SHAPE,
                       "conv2d: %d groups do not divide the %lld input channels of %s and the %lld "
                       "output channels of weight %s",
                       (int)groups, (long long)x->shape[1], xs, (long long)w->shape[0], ws);
        return 0;
    }
    if (w->shape[1] * groups != x->shape[1]) {
        nas_graph_fail(g, NAS_ERR_SHAPE,
                       "conv2d: input %s has %lld channels but weight %s with %d groups expects "
                       "%lld",
                       xs, (long long)x->shape[1], ws, (int)groups,
                       (long long)(w->shape[1] * groups));
        return 0;
    }
    const int64_t dh = positive_or_one(a->dilation_h), dw = positive_or_one(a->dilation_w);
    const int64_t eh = dh * (w->shape[2] - 1) + 1, ew = dw * (w->shape[3] - 1) + 1;
    const int64_t ph = x->shape[2] + 2 * (int64_t)a->pad_h,
                  pw = x->shape[3] + 2 * (int64_t)a->pad_w;
    if (eh > ph || ew > pw) {
        nas_graph_fail(
            g, NAS_ERR_SHAPE,
            "conv2d: kernel %s (dilated extent %lldx%lld) is bigger than input %s padded "
            "to %lldx%lld",
            ws, (long long)eh, (long long)ew, xs, (long long)ph, (long long)pw);
        return 0;
    }
    if (bias != NULL && (bias->ndim != 1 || bias->shape[0] != w->shape[0])) {
        nas_graph_fail(g, NAS_ERR_SHAPE, "conv2d: bias %s does not fit weight %s (want [%lld])",
                       nas_shape_str(bias, bs, sizeof bs), ws, (long long)w->shape[0]);
        return 0;
    }
    *oh = (ph - eh) / positive_or_one(a->stride_h) + 1;
    *ow = (pw - ew) / positive_or_one(a->stride_w) + 1;
    return 1;
}

/* The implementation a conv uses under the context's backend setting. */
typedef enum conv_path { PATH_NAIVE, PATH_GEMM, PATH_DW, PATH_DIRECT, PATH_DNNL } conv_path;

static conv_path conv_choose(nas_ctx *ctx, const nas_conv_geom *c) {
    switch (nas_conv_get_backend(ctx)) {
        case NAS_CONV_NAIVE:
            return PATH_NAIVE;
        case NAS_CONV_DNNL:
            return PATH_DNNL;
        case NAS_CONV_AUTO:
            break;
    }
    if (nas_conv_is_pointwise(c)) {
        return PATH_GEMM;
    }
    if (nas_conv_dw_preferred(c)) {
        return PATH_DW;
    }
    if (nas_conv_direct_preferred(c)) {
        return PATH_DIRECT;
    }
    return PATH_DNNL;
}

/* The path of conv node n: oneDNN wherever the planner put a side of it in a blocked layout
 * (only oneDNN reads those), else the context's choice. */
static conv_path node_path(nas_ctx *ctx, const nas_node *n, const nas_conv_geom *c) {
    if (n->block != 0 || n->src[0]->block != 0) {
        return PATH_DNNL;
    }
    return conv_choose(ctx, c);
}

int nas_conv_uses_dnnl(nas_graph *g, const nas_node *n) {
    const nas_conv_geom c = nas_conv_geom_of(n);
    return n->op == NAS_OP_CONV2D && node_path(g->ctx, n, &c) == PATH_DNNL;
}

nas_tensor *nas_conv2d(nas_graph *g, nas_tensor *x, nas_tensor *w, nas_tensor *bias,
                       const nas_conv_args *args) {
    nas_tensor *src[3] = {x, w, bias};
    if (!nas_ops_sources_ok(g, 2, src)) {
        return NULL;
    }
    static const nas_conv_args defaults = {0};
    const nas_conv_args *a = args != NULL ? args : &defaults;
    int64_t oh, ow;
    if (!conv_check(g, x, w, bias, a, &oh, &ow)) {
        return NULL;
    }
    nas_node *n = nas_graph_append(g, NAS_OP_CONV2D, bias != NULL ? 3 : 2, src);
    if (n == NULL) {
        return NULL;
    }
    const int64_t shape[4] = {x->shape[0], w->shape[0], oh, ow};
    nas_node_set_shape(n, 4, shape);
    n->iparam[NAS_CONV_IP_SH] = positive_or_one(a->stride_h);
    n->iparam[NAS_CONV_IP_SW] = positive_or_one(a->stride_w);
    n->iparam[NAS_CONV_IP_PH] = a->pad_h;
    n->iparam[NAS_CONV_IP_PW] = a->pad_w;
    n->iparam[NAS_CONV_IP_DH] = positive_or_one(a->dilation_h);
    n->iparam[NAS_CONV_IP_DW] = positive_or_one(a->dilation_w);
    n->iparam[NAS_CONV_IP_GROUPS] = positive_or_one(a->groups);
    return n; /* aux (oneDNN's blocked copy of x) is sized by the planner, ops/layout.c */
}

static nas_status conv_forward_one(nas_graph *g, nas_node *n) {
    n->iparam[NAS_CONV_IP_AUX_SRC] = 0;
    const nas_conv_geom c = nas_conv_geom_of(n);
    const float *x = n->src[0]->data, *w = n->src[1]->data;
    const float *b = n->n_src == 3 ? n->src[2]->data : NULL;
    switch (node_path(g->ctx, n, &c)) {
        case PATH_GEMM:
            nas_conv_gemm_forward(&c, x, w, b, n->data);
            return NAS_OK;
        case PATH_DW: {
            float *scratch = nas_graph_scratch(g, nas_conv_dw_scratch_bytes(&c));
            if (scratch == NULL) {
                return NAS_ERR_NOMEM;
            }
            nas_conv_dw_forward(&c, x, w, b, n->data, scratch);
            return NAS_OK;
        }
        case PATH_DIRECT: {
            float *scratch = nas_graph_scratch(g, nas_conv_direct_scratch_bytes(&c, 0));
            if (scratch == NULL) {
                return NAS_ERR_NOMEM;
            }
            nas_conv_direct_forward(&c, x, w, b, n->data, scratch);
            return NAS_OK;
        }
        case PATH_DNNL: {
            const nas_status st = nas_conv_dnnl_forward(g, n);
            if (st != NAS_ERR_UNSUPPORTED) {
                return st;
            }
            if (n->block != 0 || n->src[0]->block != 0) { /* the planner saw it supported */
                return nas_fail(g->ctx, NAS_ERR_BACKEND,
                                "conv2d (node %lld): oneDNN rejected a blocked-layout case",
                                (long long)n->index);
            }
            break;
        }
        case PATH_NAIVE:
            break;
    }
    nas_conv_naive_forward(&c, x, w, b, n->data);
    return NAS_OK;
}

/* dx for kernels that add into it: cleared first where this conv writes it first (the executor
 * has not zeroed it, nas_grad_first; oneDNN's data pass stores it instead). */
static float *dx_to_add(const nas_node *n) {
    float *dx = n->src[0]->grad;
    if (dx != NULL && nas_grad_first(n, 0)) {
        memset(dx, 0, (size_t)n->src[0]->numel * sizeof(float));
    }
    return dx;
}

/* The naive backward of the parts not yet done (bit 0: dx, bit 1: dw and db). */
static void conv_backward_naive(const nas_conv_geom *c, nas_node *n, unsigned done) {
    const nas_node *x = n->src[0], *w = n->src[1];
    float *db = n->n_src == 3 ? n->src[2]->grad : NULL;
    if (x->grad != NULL && !(done & 1u)) {
        nas_conv_naive_backward_data(c, n->grad, w->data, dx_to_add(n));
    }
    if (done & 2u) {
        return;
    }
    if (w->grad != NULL) {
        nas_conv_naive_backward_weights(c, x->data, n->grad, w->grad, db);
    } else if (db != NULL) {
        nas_conv_bias_grad(c, n->grad, db);
    }
}

static void conv_backward_one(nas_graph *g, nas_node *n) {
    const nas_conv_geom c = nas_conv_geom_of(n);
    unsigned done = 0;
    switch (node_path(g->ctx, n, &c)) {
        case PATH_GEMM: {
            const nas_node *x = n->src[0], *w = n->src[1];
            if (x->grad != NULL) {
                nas_conv_gemm_backward_data(&c, n->grad, w->data, dx_to_add(n));
            }
            nas_conv_gemm_backward_weights(&c, x->data, n->grad, w->grad,
                                           n->n_src == 3 ? n->src[2]->grad : NULL);
            return;
        }
        case PATH_DW: {
            float *scratch = nas_graph_scratch(g, nas_conv_dw_scratch_bytes(&c));
            if (scratch == NULL) {
                break; /* no memory for the padded planes: the naive kernels need none */
            }
            const nas_node *x = n->src[0], *w = n->src[1];
            if (x->grad != NULL) {
                nas_conv_dw_backward_data(&c, n->grad, w->data, dx_to_add(n), scratch);
            }
            nas_conv_dw_backward_weights(&c, x->data, n->grad, w->grad,
                                         n->n_src == 3 ? n->src[2]->grad : NULL, scratch);
            return;
        }
        case PATH_DIRECT: {
            float *scratch = nas_graph_scratch(g, nas_conv_direct_scratch_bytes(&c, 1));
            if (scratch == NULL) {
                break; /* the naive kernels need no scratch */
            }
            const nas_node *x = n->src[0], *w = n->src[1];
            float *db = n->n_src == 3 ? n->src[2]->grad : NULL;
            if (x->grad != NULL) {
                nas_conv_direct_backward_data(&c, n->grad, w->data, dx_to_add(n), scratch);
            }
            if (w->grad != NULL || db != NULL) {
                nas_conv_direct_backward_weights(&c, x->data, n->grad, w->grad, db, scratch);
            }
            return;
        }
        case PATH_DNNL:
            /* backward has no status to return: whatever oneDNN could not do (an unsupported
             * case, no memory for scratch) the naive kernels do */
            if (nas_conv_dnnl_backward(g, n, &done) == NAS_OK) {
                return;
            }
            /* a blocked node's forward made its backward's primitives and scratch, so only an
             * internal oneDNN failure gets here, and the naive kernels cannot read its layout */
            NAS_ASSERT(n->block == 0 && n->src[0]->block == 0);
            break;
        case PATH_NAIVE:
            break;
    }
    conv_backward_naive(&c, n, done);
}

/* ---- groups: convs reading one x whose passes run together (nas_conv_plan_groups) */

static int same_geometry(const nas_node *a, const nas_node *b) {
    const nas_conv_geom p = nas_conv_geom_of(a), q = nas_conv_geom_of(b);
    return memcmp(&p, &q, sizeof p) == 0; /* int64_t fields only: no padding */
}

/* Whether conv n can join the group led by `leader` (both run our Winograd). The leader computes
 * n's output at its own place in the forward, so n's weight must be ready by then: a parameter
 * (bound before every forward) or an earlier node. Members agree on which gradients they need,
 * so one weight pass serves all. */
static int can_join(const nas_node *leader, const nas_node *n, int members) {
    const nas_node *w = n->src[1];
    const nas_conv_geom c = nas_conv_geom_of(n);
    return n->src[0] == leader->src[0] && same_geometry(leader, n) &&
           (w->op == NAS_OP_PARAM || w->index < leader->index) &&
           w->requires_grad == leader->src[1]->requires_grad &&
           n->requires_grad == leader->requires_grad && members < NAS_CONV_GROUP_MAX &&
           nas_conv_wino_group_fits(&c, members + 1);
}

void nas_conv_plan_groups(nas_graph *g) {
    for (int64_t i = 0; i < g->n_nodes; i++) {
        nas_node *n = nas_graph_node(g, i);
        n->group_next = n->group_leader = NULL;
    }
    /* Only with gradients on, where every buffer has its own place (autograd/exec.c): inference
     * reuses a released buffer, and a member's output, written at its leader's place, could
     * land on one still live. */
    if (!g->grad_enabled) {
        return;
    }
    for (int64_t i = 0; i < g->n_nodes; i++) {
        nas_node *n = nas_graph_node(g, i);
        if (n->op != NAS_OP_CONV2D || !nas_conv_dnnl_wino_node(g, n)) {
            continue;
        }
        /* the first earlier conv of the same x that leads a group n fits in */
        for (int64_t j = n->src[0]->index + 1; j < i; j++) {
            nas_node *leader = nas_graph_node(g, j);
            if (leader->op != NAS_OP_CONV2D || leader->group_leader != NULL ||
                leader->src[0] != n->src[0] || !nas_conv_dnnl_wino_node(g, leader)) {
                continue;
            }
            int members = 1;
            nas_node *last = leader;
            for (; last->group_next != NULL; last = last->group_next) {
                members++;
            }
            if (can_join(leader, n, members)) {
                last->group_next = n;
                n->group_leader = leader;
                break;
            }
        }
    }
}

static nas_status conv_forward(nas_graph *g, nas_node *n) {
    if (n->group_next == NULL) {
        return conv_forward_one(g, n);
    }
    nas_status st = nas_conv_dnnl_group_forward(g, n);
    if (st != NAS_ERR_UNSUPPORTED) {
        return st;
    }
    for (nas_node *m = n; m != NULL && st == NAS_OK; m = m->group_next) { /* one by one */
        st = conv_forward_one(g, m);
    }
    return st;
}

static void conv_backward(nas_graph *g, nas_node *n) {
    if ((n->group_next == NULL && n->group_leader == NULL) ||
        nas_conv_dnnl_group_backward(g, n) != NAS_OK) {
        conv_backward_one(g, n);
    }
}

static int64_t conv_macs(const nas_node *n) {
    const nas_node *w = n->src[1];
    return n->shape[0] * n->shape[1] * n->shape[2] * n->shape[3] * w->shape[1] * w->shape[2] *
           w->shape[3];
}

const nas_op_desc nas_op_conv2d = {.name = "conv2d",
                                   .forward = conv_forward,
                                   .backward = conv_backward,
                                   .macs = conv_macs,
                                   .stores_first = 1u};
