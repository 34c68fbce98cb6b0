/* proxies_int.h - internals of the zero-cost proxies (src/evaluators/proxies*.c): the reusable
 * workspace and the shared "pass" every data-driven proxy reads. Nothing here is public API.
 *
 * The driver (proxies.c) records the model once per architecture into one training-mode graph
 * whose input asks for a gradient, runs the passes the requested proxies need in an order that
 * lets them share work (forward -> nwot; backward of the loss -> grad_norm, snip, fisher and the
 * gradient grasp starts from; backward of sum(logits) -> jacob_cov; perturbed passes -> grasp),
 * and records the model a second time at batch 1 for synflow's double-precision pass and the
 * MAC count. Graphs and buffers are kept in the workspace and reused, so scoring many
 * architectures allocates only when one needs more memory than any before it. */
#ifndef NAS_PROXIES_INT_H
#define NAS_PROXIES_INT_H

#include "ops/ops_int.h"

/* A buffer that only grows. */
typedef struct nas_proxy_buf {
    void *p;
    size_t bytes;
} nas_proxy_buf;

/* Make b at least `bytes` long (contents are not kept); NULL on allocation failure. */
void *nas_proxy_buf_reserve(nas_ctx *ctx, nas_proxy_buf *b, size_t bytes);
void nas_proxy_buf_release(nas_ctx *ctx, nas_proxy_buf *b);

struct nas_proxies {
    nas_ctx *ctx;
    nas_graph *g;  /* batch-B training graph */
    nas_graph *g1; /* batch-1 recording for synflow and MACs (never run in float) */
    nas_proxy_buf x;        /* the minibatch (copied: the graph's input buffer) */
    nas_proxy_buf labels;
    nas_proxy_buf snapshot; /* the parameter block, restored after scoring */
    nas_proxy_buf weights;  /* per-parameter flag: a conv / linear weight */
    nas_proxy_buf grad0;    /* grasp: the gradient at the unperturbed weights */
    nas_proxy_buf work[4];  /* per-proxy scratch */
    nas_proxy_buf dbl;      /* synflow: values and gradients in double */
};

/* What the data-driven proxies read after the driver's passes. */
typedef struct nas_proxy_pass {
    nas_model *m;
    nas_params *p;
    nas_graph *g;
    nas_tensor *x;      /* input [B, C, H, W], with a gradient */
    nas_tensor *logits; /* [B, classes] */
    nas_tensor *loss;   /* mean cross-entropy, [1] */
    int64_t batch;
    const unsigned char *is_weight; /* [n params]: 1 for conv / linear weights */
} nas_proxy_pass;

/* The weight parameter a conv2d / linear node reads (through a slice), or -1. */
nas_param_id nas_proxy_weight_of(const nas_node *n);

/* Scores. Each reads the state its driver pass left (see the top of this file). */
/* After backward(loss): parameter gradients. */
double nas_proxy_grad_norm(const nas_proxy_pass *ps);
double nas_proxy_snip(const nas_proxy_pass *ps);
/* After backward(loss): activations and their gradients of every conv / linear node. */
nas_status nas_proxy_fisher(nas_proxies *pr, const nas_proxy_pass *ps, double *out);
/* After forward: the inputs of every ReLU. */
nas_status nas_proxy_nwot(nas_proxies *pr, const nas_proxy_pass *ps, double *out);
/* Runs its own backward of sum(logits) on the forward already done. */
nas_status nas_proxy_jacob_cov(nas_proxies *pr, const nas_proxy_pass *ps, double *out);
/* Needs the gradient of the loss in the parameter grad block; runs perturbed passes. */
nas_status nas_proxy_grasp(nas_proxies *pr, const nas_proxy_pass *ps, double *out);
/* On the batch-1 recording g1 of the model. */
nas_status nas_proxy_synflow(nas_proxies *pr, nas_params *p, nas_graph *g1, double *out);

#endif
