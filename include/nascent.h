/* nascent.h - the one public header of libnascent, neural architecture search in C.
 *
 * Sections, bottom layer first (each builds only on the ones above it):
 *   core      context, errors, allocator hook, counter-based RNG, threads
 *   tensor    graphs of lazily recorded ops, tensors as graph nodes, parameters
 *   ops       the op builders (conv2d, batch norm, activations, pooling, losses, ...)
 *   autograd  forward, backward, memory planning
 *   nn        initialisation, optimisers, schedules, weight files
 *   data, spaces, strategies, evaluators, hardware, store: added by their modules
 *
 * Conventions: functions that can fail return nas_status (NAS_OK = 0, negative on error) and
 * leave a message in nas_errmsg(ctx). Objects made by *_new are freed by the matching *_free;
 * *_free(NULL) is a no-op. Counts are int64_t, byte sizes size_t. Tensors are NCHW float32. */
#ifndef NASCENT_H
#define NASCENT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define NAS_VERSION_MAJOR  0
#define NAS_VERSION_MINOR  1
#define NAS_VERSION_PATCH  0
#define NAS_VERSION_STRING "0.1.0"

#if defined(__GNUC__)
#define NAS_API __attribute__((visibility("default")))
#else
#define NAS_API
#endif

/* ===================================================================== core */

typedef enum nas_status {
    NAS_OK = 0,
    NAS_ERR_ARG = -1,         /* a bad argument from the caller */
    NAS_ERR_NOMEM = -2,       /* the allocator returned NULL */
    NAS_ERR_IO = -3,          /* a file could not be read or written */
    NAS_ERR_FORMAT = -4,      /* malformed input text or a corrupt file */
    NAS_ERR_SHAPE = -5,       /* tensor shapes do not fit the op */
    NAS_ERR_NUMERIC = -6,     /* NaN or infinity where a finite number is needed */
    NAS_ERR_UNSUPPORTED = -7, /* valid, but not implemented for this case */
    NAS_ERR_INFEASIBLE = -8,  /* a budget or constraint nothing satisfies */
    NAS_ERR_STATE = -9,       /* the call does not fit the object's state */
    NAS_ERR_BACKEND = -10,    /* a library underneath (oneDNN, SQLite, ...) failed */
    NAS_ERR_MISMATCH = -11    /* stored results this version or these settings do not
                                 reproduce (a resumed study's strategy proposes otherwise) */
} nas_status;

/* The context owns the last error message and the allocator. One context per thread of use. */
typedef struct nas_ctx nas_ctx;

/* Allocator hook, Lua style: new_size == 0 frees ptr and returns NULL; otherwise it behaves like
 * realloc(ptr, new_size). old_size is the size ptr was allocated with (0 when ptr is NULL).
 * Memory returned must be aligned to 64 bytes when new_size >= 64. */
typedef void *(*nas_alloc_fn)(void *user, void *ptr, size_t old_size, size_t new_size);

/* A new context with the default (aligned malloc) allocator; NULL only if that fails. */
NAS_API nas_ctx *nas_ctx_new(void);
/* A new context whose allocations all go through `fn` (tests use this to count calls and to
 * inject failures). */
NAS_API nas_ctx *nas_ctx_new_with_allocator(nas_alloc_fn fn, void *user);
NAS_API void nas_ctx_free(nas_ctx *ctx);
/* The message of the last failure on ctx ("" if none). Valid until the next failing call. */
NAS_API const char *nas_errmsg(const nas_ctx *ctx);
/* Short name of a status code, e.g. "NAS_ERR_SHAPE". */
NAS_API const char *nas_status_name(nas_status st);
/* Record a failure: sets the message and returns `code` (for `return nas_fail(...)`). */
NAS_API nas_status nas_fail(nas_ctx *ctx, nas_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Clear the last error. */
NAS_API void nas_clear_error(nas_ctx *ctx);

/* Memory through the context's allocator. nas_malloc returns NULL (and sets the error) on failure;
 * nas_free(ctx, NULL, 0) is a no-op. The size must be the one allocated. */
NAS_API void *nas_malloc(nas_ctx *ctx, size_t size);
NAS_API void *nas_calloc(nas_ctx *ctx, size_t count, size_t size);
NAS_API void *nas_realloc(nas_ctx *ctx, void *ptr, size_t old_size, size_t new_size);
NAS_API void nas_free(nas_ctx *ctx, void *ptr, size_t size);
NAS_API char *nas_strdup(nas_ctx *ctx, const char *s); /* free with nas_free(ctx, p, strlen+1) */

/* Number of threads OpenMP regions use (0 = all cores). Also pins OpenBLAS to one thread so its
 * pool does not fight OpenMP's. */
NAS_API void nas_set_threads(int n);
NAS_API int nas_get_threads(void);

/* Counter-based random numbers (Philox4x32-10): draw i of stream s under seed k is a pure function
 * of (k, s, i), so fills are reproducible whatever the thread count. */
typedef struct nas_rng {
    uint64_t seed;    /* the key */
    uint64_t stream;  /* which independent sequence */
    uint64_t counter; /* next draw; advanced by every call */
} nas_rng;

NAS_API nas_rng nas_rng_make(uint64_t seed, uint64_t stream);
NAS_API uint32_t nas_rng_u32(nas_rng *r);
NAS_API uint64_t nas_rng_u64(nas_rng *r);
NAS_API double nas_rng_uniform(nas_rng *r);             /* [0, 1) */
NAS_API double nas_rng_normal(nas_rng *r);              /* N(0, 1) */
NAS_API int64_t nas_rng_below(nas_rng *r, int64_t n);   /* uniform in [0, n), n > 0 */
/* Fill out[0..n) with U(lo, hi) / N(mean, std); element i uses counter r->counter + i, then the
 * counter advances by n. Parallel inside, identical for every thread count. */
NAS_API void nas_rng_fill_uniform(nas_rng *r, float *out, int64_t n, float lo, float hi);
NAS_API void nas_rng_fill_normal(nas_rng *r, float *out, int64_t n, float mean, float std);
/* Fisher-Yates shuffle of idx[0..n). */
NAS_API void nas_rng_shuffle(nas_rng *r, int64_t *idx, int64_t n);

/* Always-on invariant check for broken internal invariants (never for bad input: that returns an
 * error). The handler is hookable so tests can catch it; the default prints and aborts. */
typedef void (*nas_abort_fn)(const char *file, int line, const char *msg);
NAS_API void nas_set_abort_handler(nas_abort_fn fn);
NAS_API void nas_abort(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
#define NAS_ASSERT(cond)                                                                           \
    do {                                                                                           \
        if (!(cond))                                                                               \
            nas_abort(__FILE__, __LINE__, "assertion failed: %s", #cond);                          \
    } while (0)

/* Monotonic wall clock in seconds (for progress and benchmarks, never for test assertions). */
NAS_API double nas_now(void);

/* ================================================================ tensor */

#define NAS_MAX_DIMS 4
#define NAS_MAX_SRC  16

typedef struct nas_graph nas_graph;   /* a recorded computation; owns its nodes and arenas */
typedef struct nas_node nas_tensor;   /* a tensor is the output of one graph node */
typedef struct nas_params nas_params; /* a flat block of parameters, their gradients, buffers */
typedef int64_t nas_param_id;         /* index of one parameter in a nas_params */

/* A graph records ops lazily: builders only check shapes and append a node. nas_graph_forward
 * then places every tensor in an arena reused across steps and runs the kernels. Reset a graph
 * to record a new architecture: its memory stays and is reused, so rebuilding per step is cheap
 * and a steady-state step calls the allocator zero times.
 * Errors are sticky: a builder that fails returns NULL, records the message in ctx and in the
 * graph, and every later builder given NULL returns NULL; check once with nas_graph_status. */
NAS_API nas_graph *nas_graph_new(nas_ctx *ctx);
NAS_API void nas_graph_free(nas_graph *g);
NAS_API void nas_graph_reset(nas_graph *g);
NAS_API nas_status nas_graph_status(const nas_graph *g);
NAS_API nas_ctx *nas_graph_ctx(const nas_graph *g);
/* Training mode: batch norm uses batch statistics (and updates running ones), dropout is on. */
NAS_API void nas_graph_set_training(nas_graph *g, int training);
NAS_API int nas_graph_training(const nas_graph *g);
/* Gradients on (the default) keeps every activation for backward; off lets the planner reuse
 * activation memory once its last reader has run (inference, latency, counting). */
NAS_API void nas_graph_set_grad_enabled(nas_graph *g, int enabled);
/* Parameter gradients on (the default) or off: off, backward computes only the gradients that
 * reach inputs made with nas_input_grad (and the activations between), skipping every weight
 * gradient (a conv's backward-weights pass); the parameter grad block is left untouched. For
 * estimators that read dL/dx or dL/d(activation) only (jacob_cov, fisher). */
NAS_API void nas_graph_set_param_grads(nas_graph *g, int enabled);
/* Blocked layouts on or off (the default): on, the planner may keep regions of convolutions and
 * the batch norms, element-wise ops, sums and average pools between them in oneDNN's
 * channel-blocked layout (nChw8c / nChw16c), so the convolutions read and write them with no
 * layout conversion. Values and gradients are those of the plain graph up to float rounding, but
 * the data of those intermediate tensors is then not NCHW, and with gradients on a batch norm (or
 * a sum of them) read only by a ReLU is folded into it and not written at all: turn it on only
 * where nothing reads intermediate activations through nas_tensor_data (training, the
 * proxies). Inputs, parameters,
 * the graph's outputs and every node read by an op without blocked kernels stay plain
 * (NAS_BLOCKED_LAYOUTS=0 in the environment turns it off everywhere). */
NAS_API void nas_graph_set_blocked_layouts(nas_graph *g, int enabled);
/* Seed for the graph's random ops (dropout); advanced every forward. */
NAS_API void nas_graph_set_seed(nas_graph *g, uint64_t seed);
NAS_API int64_t nas_graph_n_nodes(const nas_graph *g);

/* Tensor queries. data is valid after nas_graph_forward (or at once for inputs/params). */
NAS_API int nas_tensor_ndim(const nas_tensor *t);
NAS_API int64_t nas_tensor_dim(const nas_tensor *t, int i);
NAS_API int64_t nas_tensor_numel(const nas_tensor *t);
NAS_API float *nas_tensor_data(const nas_tensor *t);
/* A gradient after backward: an input's (nas_input_grad), a parameter's, or an intermediate
 * tensor's the caller asked to keep with nas_graph_retain_grad; NULL otherwise (no gradient
 * flows, or the buffer served later gradients once this tensor's backward had run). */
NAS_API float *nas_tensor_grad(const nas_tensor *t);
/* Keep t's gradient readable after backward (as PyTorch's retain_grad); replans the graph. */
NAS_API void nas_graph_retain_grad(nas_graph *g, nas_tensor *t);
NAS_API const char *nas_tensor_op_name(const nas_tensor *t);

/* Leaves. An input's data is the caller's buffer (not copied; it must live through forward and
 * backward); it may be NULL at build time and set with nas_tensor_set_data before forward.
 * requires_grad asks for a gradient (e.g. proxies that need dL/dx). */
NAS_API nas_tensor *nas_input(nas_graph *g, int ndim, const int64_t *shape, float *data);
NAS_API nas_tensor *nas_input_grad(nas_graph *g, int ndim, const int64_t *shape, float *data);
NAS_API void nas_tensor_set_data(nas_tensor *t, float *data);
/* Integer class labels for a loss: the caller's buffer of N int32 in [0, classes). */
NAS_API nas_tensor *nas_labels(nas_graph *g, int64_t n, const int32_t *labels);

/* Parameters live outside graphs so many graphs (supernet paths) share them. Adding may move the
 * block, so add all parameters before building graphs that use them. */
typedef enum nas_init {
    NAS_INIT_ZEROS = 0,
    NAS_INIT_ONES,
    NAS_INIT_KAIMING_NORMAL_FAN_OUT, /* N(0, 2/fan_out): torchvision ResNet convs */
    NAS_INIT_KAIMING_NORMAL_FAN_IN,  /* N(0, 2/fan_in) */
    NAS_INIT_TORCH_DEFAULT,          /* PyTorch Conv/Linear default: U(-1/sqrt(fan_in), +) */
    NAS_INIT_TORCH_BIAS,             /* PyTorch bias default, fan_in from `fan_in_hint` */
    NAS_INIT_NORMAL_001              /* N(0, 0.01^2) */
} nas_init;

enum nas_param_flags {
    NAS_PARAM_TRAINABLE = 0,   /* a weight: has a gradient, the optimiser updates it */
    NAS_PARAM_BUFFER = 1,      /* state such as BN running stats: no gradient, no update */
    NAS_PARAM_NO_DECAY = 2,    /* trainable but exempt from weight decay */
    NAS_PARAM_ARCH = 4         /* an architecture weight (DARTS alpha): its own optimiser */
};

NAS_API nas_params *nas_params_new(nas_ctx *ctx);
NAS_API void nas_params_free(nas_params *p);
/* Add a parameter of the given shape; name is copied. fan_in_hint is used by TORCH_BIAS only.
 * On success *id is its index. */
NAS_API nas_status nas_params_add(nas_params *p, const char *name, int ndim, const int64_t *shape,
                                  nas_init init, int flags, int64_t fan_in_hint, nas_param_id *id);
/* (Re)initialise every parameter from `seed`: parameter i uses RNG stream i, so the values do
 * not depend on thread count or on parameters added later. Buffers: running mean 0, var 1. */
NAS_API void nas_params_init(nas_params *p, uint64_t seed);
NAS_API int64_t nas_params_count(const nas_params *p);        /* number of parameters */
NAS_API int64_t nas_params_numel(const nas_params *p, int flags_mask, int flags_value);
NAS_API int64_t nas_params_total(const nas_params *p);         /* floats in the block */
NAS_API float *nas_params_data(const nas_params *p);           /* the flat block */
NAS_API float *nas_params_grad(const nas_params *p);           /* same layout */
NAS_API void nas_params_zero_grad(nas_params *p);
NAS_API const char *nas_param_name(const nas_params *p, nas_param_id id);
NAS_API int nas_param_flags(const nas_params *p, nas_param_id id);
NAS_API int nas_param_ndim(const nas_params *p, nas_param_id id);
NAS_API int64_t nas_param_dim(const nas_params *p, nas_param_id id, int i);
NAS_API int64_t nas_param_numel(const nas_params *p, nas_param_id id);
NAS_API int64_t nas_param_offset(const nas_params *p, nas_param_id id); /* into data/grad */
NAS_API nas_param_id nas_params_find(const nas_params *p, const char *name); /* -1 if absent */

/* Use a parameter in a graph: a leaf whose data and gradient are the block's (shared). */
NAS_API nas_tensor *nas_param(nas_graph *g, nas_params *p, nas_param_id id);
/* A slice of a 4-d weight [O, I, K, K] (or 2-d [O, I], or 1-d [O]): the first `out` rows, the
 * first `in` columns and the centre k x k taps (elastic width and kernel size, OFA). Gradients
 * accumulate into the shared full tensor. Pass the full sizes to take everything. */
NAS_API nas_tensor *nas_param_slice(nas_graph *g, nas_params *p, nas_param_id id, int64_t out,
                                    int64_t in, int64_t k);

/* =================================================================== ops */
/* Builders record one op and return its output (NULL on error, see nas_graph above).
 * Shapes: x is [N, C, H, W]; weights [O, C/groups, KH, KW]; linear x [N, F], w [O, F]. */

typedef struct nas_conv_args {
    int stride_h, stride_w; /* 0 means 1 */
    int pad_h, pad_w;
    int dilation_h, dilation_w; /* 0 means 1 */
    int groups;                 /* 0 means 1 */
} nas_conv_args;

NAS_API nas_tensor *nas_conv2d(nas_graph *g, nas_tensor *x, nas_tensor *w, nas_tensor *bias,
                               const nas_conv_args *args);
/* conv2d (stride 1, one group, no dilation, kernels up to 7x7, 0 <= pad < kernel) + bias + ReLU
 * + 2x2 stride-2 max pool as one op: y [N, O, OH / 2, OW / 2] with the values and gradients of
 * max_pool(relu(conv2d(x, w, bias)), 2, 2, 0), without storing the full-size activations. */
NAS_API nas_tensor *nas_conv2d_relu_maxpool(nas_graph *g, nas_tensor *x, nas_tensor *w,
                                            nas_tensor *bias, int pad_h, int pad_w);
NAS_API nas_tensor *nas_linear(nas_graph *g, nas_tensor *x, nas_tensor *w, nas_tensor *bias);

/* Batch norm over N, H, W per channel of x [N, C, H, W] (or [N, C]). gamma/beta may be NULL
 * (affine off). running_mean/var are buffers (nas_param of a NAS_PARAM_BUFFER) or both NULL (then
 * eval mode uses batch statistics too). Training mode normalises with batch statistics (biased
 * variance) and updates the running ones: r = (1 - momentum) r + momentum batch (unbiased
 * variance), as PyTorch. momentum < 0 makes the update a cumulative average instead, like
 * PyTorch's momentum=None: the forward numbered k (0, 1, ...) since nas_graph_set_seed (which
 * restarts the graph's step count) does r = r + (batch - r) / (k + 1), so after K training
 * forwards r is the mean of the K batch statistics whatever r held before. That is BN
 * recalibration for a sampled subnetwork: nas_graph_set_seed, then K training-mode forwards
 * (gradients off) of graphs recorded with momentum -1. */
NAS_API nas_tensor *nas_batch_norm(nas_graph *g, nas_tensor *x, nas_tensor *gamma,
                                   nas_tensor *beta, nas_tensor *running_mean,
                                   nas_tensor *running_var, float momentum, float eps);

NAS_API nas_tensor *nas_relu(nas_graph *g, nas_tensor *x);
NAS_API nas_tensor *nas_relu6(nas_graph *g, nas_tensor *x);
NAS_API nas_tensor *nas_hswish(nas_graph *g, nas_tensor *x);
NAS_API nas_tensor *nas_hsigmoid(nas_graph *g, nas_tensor *x);
NAS_API nas_tensor *nas_sigmoid(nas_graph *g, nas_tensor *x);
NAS_API nas_tensor *nas_swish(nas_graph *g, nas_tensor *x);
NAS_API nas_tensor *nas_tanh(nas_graph *g, nas_tensor *x);

/* Pooling over H, W of [N, C, H, W]: output size floor((H + 2 pad - k) / stride) + 1 (PyTorch's
 * default), 0 <= pad <= k / 2. Max: padding never wins; the first of equal values gets the
 * gradient. avg: count_pad = 1 divides by k*k always, 0 by the taps inside the input (PyTorch's
 * count_include_pad=False). */
NAS_API nas_tensor *nas_max_pool(nas_graph *g, nas_tensor *x, int k, int stride, int pad);
NAS_API nas_tensor *nas_avg_pool(nas_graph *g, nas_tensor *x, int k, int stride, int pad,
                                 int count_pad);
NAS_API nas_tensor *nas_global_avg_pool(nas_graph *g, nas_tensor *x); /* [N,C,H,W] -> [N,C] */

NAS_API nas_tensor *nas_add(nas_graph *g, nas_tensor *a, nas_tensor *b);
/* y = sum_i xs[i], n >= 1 (a cell node summing its incoming edges). */
NAS_API nas_tensor *nas_sum(nas_graph *g, int n, nas_tensor *const *xs);
/* y = sum_i w[i] * xs[i], w a [n] tensor (DARTS mixed op: w = softmax(alpha)); gradients flow to
 * every xs[i] and to w. */
NAS_API nas_tensor *nas_weighted_sum(nas_graph *g, int n, nas_tensor *const *xs, nas_tensor *w);
NAS_API nas_tensor *nas_concat(nas_graph *g, int n, nas_tensor *const *xs); /* along C */
/* a * b where b broadcasts: b is [N, C] or [N, C, 1, 1] against a [N, C, H, W] (squeeze-excite),
 * or b has a's shape. */
NAS_API nas_tensor *nas_mul(nas_graph *g, nas_tensor *a, nas_tensor *b);
NAS_API nas_tensor *nas_scale(nas_graph *g, nas_tensor *x, float s);
/* ShuffleNet: output channel j * groups + i is input channel i * (C / groups) + j. */
NAS_API nas_tensor *nas_channel_shuffle(nas_graph *g, nas_tensor *x, int groups);
/* Zeros shaped like x, or [N, C, ceil(H / s), ceil(W / s)] for stride s > 1 (DARTS's Zero:
 * x[:, :, ::s, ::s].mul(0)). No gradient flows through it. */
NAS_API nas_tensor *nas_zero(nas_graph *g, nas_tensor *x, int stride);
NAS_API nas_tensor *nas_identity(nas_graph *g, nas_tensor *x);
/* Zero-pad channels to c_out (NAS-RL skip inputs). */
NAS_API nas_tensor *nas_pad_channels(nas_graph *g, nas_tensor *x, int64_t c_out);
NAS_API nas_tensor *nas_reshape(nas_graph *g, nas_tensor *x, int ndim, const int64_t *shape);
/* Inverted dropout, 0 <= p < 1: in training y = x m / (1 - p) with m ~ Bernoulli(1 - p) drawn by
 * Philox from (graph seed, forward step, node index), so the same seed gives the same masks for
 * any thread count; identity when not training. */
NAS_API nas_tensor *nas_dropout(nas_graph *g, nas_tensor *x, float p);
/* Softmax over the last dimension of a [N, K] (or [K]) tensor. */
NAS_API nas_tensor *nas_softmax(nas_graph *g, nas_tensor *x);
/* Mean over the batch of the cross-entropy of softmax(logits [N, K]) and labels, with label
 * smoothing eps: target = (1 - eps) one_hot + eps / K. Output is a [1] tensor. */
NAS_API nas_tensor *nas_softmax_cross_entropy(nas_graph *g, nas_tensor *logits, nas_tensor *labels,
                                              float label_smoothing);
/* Distillation: mean over the batch of KL(softmax(teacher/T) || softmax(student/T)) * T^2.
 * The teacher gets no gradient. Output [1]. */
NAS_API nas_tensor *nas_kl_div(nas_graph *g, nas_tensor *student_logits,
                               nas_tensor *teacher_logits, float temperature);
/* Sum / mean of all elements, output [1]. */
NAS_API nas_tensor *nas_sum_all(nas_graph *g, nas_tensor *x);
NAS_API nas_tensor *nas_mean_all(nas_graph *g, nas_tensor *x);

/* LSTM cell (for the RL controller): x [N, I], h and c [N, H], w_ih [4H, I], w_hh [4H, H],
 * b [4H] (may be NULL; PyTorch's b_ih + b_hh); gate order i, f, g, o as PyTorch. Returns h';
 * *c_out (if c_out is not NULL) receives c'. Both are views of one [2, N, H] node. */
NAS_API nas_tensor *nas_lstm_cell(nas_graph *g, nas_tensor *x, nas_tensor *h, nas_tensor *c,
                                  nas_tensor *w_ih, nas_tensor *w_hh, nas_tensor *b,
                                  nas_tensor **c_out);

/* ============================================================== autograd */

/* Run every recorded op (placing tensors in the graph's arena on the first run after a build).
 * Inputs and parameters may change between runs of the same graph. */
NAS_API nas_status nas_graph_forward(nas_graph *g);
/* Reverse-mode autodiff from a scalar `loss` ([1] tensor): dloss/dloss = 1. Gradients of
 * parameters accumulate (+=) into their nas_params grad block; call nas_params_zero_grad first.
 * Fails with NAS_ERR_NUMERIC (message names the op) if the loss is NaN or infinite. */
NAS_API nas_status nas_graph_backward(nas_graph *g, nas_tensor *loss);
/* Backward from a seed gradient of any output tensor (seed has numel(t) floats). */
NAS_API nas_status nas_graph_backward_from(nas_graph *g, nas_tensor *t, const float *seed);
/* Forward that also writes each node's wall time in seconds to node_seconds[i] (n_nodes
 * entries; 0 for leaves and views). For latency lookup tables. */
NAS_API nas_status nas_graph_forward_timed(nas_graph *g, double *node_seconds);
/* A text key of node i (op, source shapes, integer arguments): nodes with equal keys do the same
 * work. Writes at most size bytes (NUL-terminated); returns the key's length. */
NAS_API size_t nas_graph_node_signature(const nas_graph *g, int64_t i, char *buf, size_t size);
/* Multiply-accumulates of conv, linear and matmul ops for the recorded graph (per batch given). */
NAS_API int64_t nas_graph_macs(const nas_graph *g);
/* Peak bytes of activations of an inference pass with liveness-based reuse (planned, not run). */
NAS_API size_t nas_graph_activation_peak(nas_graph *g);
/* Bytes held by the graph's arenas now. */
NAS_API size_t nas_graph_arena_bytes(const nas_graph *g);

/* ==================================================================== nn */

/* A model: a network whose parameters it owns and whose forward pass it records into any graph.
 * The network builders (standard nets here, search spaces' nets in spaces) create one. */
typedef struct nas_model nas_model;

typedef struct nas_model_vt {
    const char *kind; /* e.g. "nb201", "fmnist-cnn" */
    /* Record the forward pass of input x [N, C, H, W] into g, reading parameters from p.
     * Returns the logits [N, classes] (NULL on error, recorded in the graph). */
    nas_tensor *(*forward)(void *impl, nas_graph *g, nas_params *p, nas_tensor *x);
    void (*free)(nas_ctx *ctx, void *impl); /* frees impl */
    /* Optional (NULL: none): the auxiliary logits [N, classes] that the latest forward recorded
     * into g, NULL when it recorded none (see nas_model_aux_logits). */
    nas_tensor *(*aux_logits)(void *impl, const nas_graph *g);
} nas_model_vt;

typedef struct nas_model_shape {
    int in_c, in_h, in_w; /* input shape of one example */
    int classes;
} nas_model_shape;

/* Wrap `impl` (taken over: freed by vt->free even on failure) and `params` (taken over). */
NAS_API nas_status nas_model_new(nas_ctx *ctx, const nas_model_vt *vt, void *impl,
                                 nas_params *params, nas_model_shape shape, nas_model **out);
NAS_API void nas_model_free(nas_model *m);
NAS_API nas_tensor *nas_model_forward(nas_model *m, nas_graph *g, nas_tensor *x);
NAS_API nas_params *nas_model_params(const nas_model *m);
NAS_API nas_model_shape nas_model_get_shape(const nas_model *m);
NAS_API const char *nas_model_kind(const nas_model *m);
NAS_API void *nas_model_impl(const nas_model *m);
/* Trainable parameter count (weights and BN affine; not running statistics). */
NAS_API int64_t nas_model_n_params(const nas_model *m);
/* Multiply-accumulates and planned inference activation peak for one example. */
NAS_API nas_status nas_model_count(nas_model *m, int64_t *macs, size_t *activation_bytes_peak);
/* Auxiliary logits [N, classes] of a model with an auxiliary head (the DARTS evaluation
 * network built with nas_build_opts.aux_head): the tensor that the latest nas_model_forward of m
 * recorded into g. The head is recorded only into graphs in training mode (as the DARTS code),
 * so this is NULL in evaluation mode, for models without such a head, and when the latest
 * forward of m went into another graph. Training adds NAS_AUX_LOSS_WEIGHT times its
 * cross-entropy to the loss (DARTS's --auxiliary_weight default). */
NAS_API nas_tensor *nas_model_aux_logits(const nas_model *m, const nas_graph *g);
#define NAS_AUX_LOSS_WEIGHT 0.4f

/* Optimisers over the parameters of a nas_params whose flags match (flags & mask) == value
 * (e.g. mask NAS_PARAM_BUFFER | NAS_PARAM_ARCH, value 0: the network weights). Update rules are
 * PyTorch's torch.optim ones exactly (SGD with momentum/dampening 0/Nesterov and L2 weight decay
 * added to the gradient; Adam with L2; AdamW with decoupled decay lr * wd * w). Parameters
 * flagged NAS_PARAM_NO_DECAY get no weight decay. State (momentum, moments) is one flat block. */
typedef enum nas_optim_kind { NAS_OPTIM_SGD = 0, NAS_OPTIM_ADAM, NAS_OPTIM_ADAMW } nas_optim_kind;

typedef struct nas_optim_config {
    nas_optim_kind kind;
    float momentum;     /* SGD */
    int nesterov;       /* SGD */
    float weight_decay;
    float beta1, beta2; /* Adam(W); 0 means the defaults 0.9, 0.999 */
    float eps;          /* Adam(W); 0 means 1e-8 */
    int flags_mask, flags_value;
} nas_optim_config;

typedef struct nas_optim nas_optim;

/* An optimiser over the entries of p matching the config's flags (buffers never), listed now:
 * make it after adding every parameter (a later step fails with NAS_ERR_STATE otherwise). Bad
 * hyper-parameters (negative decay, Nesterov without momentum, betas outside [0, 1)) are
 * NAS_ERR_ARG. p must outlive the optimiser. */
NAS_API nas_status nas_optim_new(nas_params *p, const nas_optim_config *cfg, nas_optim **out);
NAS_API void nas_optim_free(nas_optim *o);
/* One update with learning rate lr (finite, >= 0) from the gradients in the block. Makes no
 * allocation. Every matching entry is updated, also one whose gradient is zero (momentum and
 * decay still act), as torch.optim after zero_grad(set_to_none=False), 1.13's default. Hyper-parameters are used as float32 values exactly as given (pass torch the same
 * float32-rounded numbers to compare bit for bit). */
NAS_API nas_status nas_optim_step(nas_optim *o, float lr);
/* The state block (for checkpoints): floats and their count (*n = 0 and possibly NULL for SGD
 * without momentum). Layout: the updated entries in block order, packed; SGD with momentum holds
 * the momentum buffers, Adam(W) exp_avg for all then exp_avg_sq for all. To resume, copy a saved
 * state into this block and call nas_optim_set_steps with the saved step count. */
NAS_API float *nas_optim_state(const nas_optim *o, int64_t *n);
/* Completed steps (Adam's bias correction uses steps + 1; SGD's first step copies d_p). */
NAS_API int64_t nas_optim_steps(const nas_optim *o);
NAS_API void nas_optim_set_steps(nas_optim *o, int64_t steps);
/* Zero the state and the step count (as a fresh torch.optim optimiser). */
NAS_API void nas_optim_reset(nas_optim *o);
/* Number of parameter floats the optimiser updates. */
NAS_API int64_t nas_optim_n_updated(const nas_optim *o);

/* Learning-rate schedules: the lr of the (0-based) step `step`, i.e. what PyTorch's scheduler
 * gives after `step` calls of scheduler.step(). CONSTANT: base_lr. COSINE: CosineAnnealingLR
 * (T_max = total_steps, eta_min = min_lr), held at min_lr from step total_steps on. STEP: StepLR
 * (base_lr * gamma^floor(step / step_size)). warmup_steps W > 1 multiplies the schedule's value
 * by (step + 1) / W for step < W (torch: LinearLR(start_factor = 1/W, total_iters = W - 1)
 * chained with the schedule; the first step uses lr/W, step W - 1 the full value). */
typedef enum nas_sched_kind { NAS_SCHED_CONSTANT = 0, NAS_SCHED_COSINE, NAS_SCHED_STEP } nas_sched_kind;

typedef struct nas_sched {
    nas_sched_kind kind;
    float base_lr;
    float min_lr;          /* cosine floor (eta_min) */
    int64_t total_steps;   /* cosine period */
    int64_t step_size;     /* STEP: multiply by gamma every step_size steps */
    float gamma;
    int64_t warmup_steps;  /* linear warm-up from 0 to the schedule's value */
} nas_sched;

NAS_API float nas_sched_lr(const nas_sched *s, int64_t step);

/* torch.nn.utils.clip_grad_norm_ (L2): over the gradients of the entries matching the flags
 * (never buffers), norm = global L2 norm (accumulated in double, deterministic for any thread
 * count); if max_norm / (norm + 1e-6) < 1 every such gradient is scaled by it. Returns the norm
 * before clipping (check it with isfinite: a NaN norm scales the gradients to NaN, as torch).
 * Makes no allocation. */
NAS_API double nas_clip_grad_norm(nas_params *p, int flags_mask, int flags_value, double max_norm);

/* Weight files: a documented binary format with a header, the parameter names and shapes, the
 * values and a checksum (see src/nn/weights.c). Saving writes every entry (weights, buffers,
 * architecture weights) atomically (temporary file, fsync, rename); NAS_ERR_IO names the path.
 * Loading checks everything before copying, so on failure p is unchanged:
 *   NAS_ERR_IO      the file cannot be opened or read;
 *   NAS_ERR_FORMAT  a foreign file ("not a nascent weight file"), another version, a truncated
 *                   file (the message names the file and the byte offset where the data ran
 *                   out), a checksum mismatch, a malformed table, or a parameter of p missing
 *                   from the file / a parameter in the file that p lacks (named);
 *   NAS_ERR_SHAPE   a parameter whose shape differs (named, with both shapes).
 * Parameters are matched by name, so their order may differ. nas_weights_load also reads
 * checkpoints (ignoring their extras and metadata). */
NAS_API nas_status nas_weights_save(const nas_params *p, const char *path);
NAS_API nas_status nas_weights_load(nas_params *p, const char *path);

/* Training checkpoints: the same file format holding the parameters plus n_extra named float
 * arrays (extra_names[i] 1..4096 bytes, extra[i] with extra_len[i] floats; e.g. the optimiser
 * state from nas_optim_state) plus a metadata string (e.g. JSON with epoch, step, seed, RNG
 * counters; NULL means ""). Atomic as nas_weights_save. */
NAS_API nas_status nas_checkpoint_save(const nas_params *p, const char *path, const char *meta,
                                       int n_extra, const char *const *extra_names,
                                       const float *const *extra, const int64_t *extra_len);
/* Load a checkpoint into p and into the caller's arrays extra[i] (extra_len[i] floats each):
 * every requested extra must be in the file with that length (else NAS_ERR_FORMAT / NAS_ERR_SHAPE
 * naming it); extras in the file that are not requested are ignored. If meta is not NULL, on
 * NAS_OK *meta is a new NUL-terminated copy of the metadata ("" if none) that the caller frees
 * with nas_free(ctx, *meta, strlen(*meta) + 1), ctx being p's context; on failure *meta is NULL
 * and nothing (p, extras) has been written. Errors as nas_weights_load. */
NAS_API nas_status nas_checkpoint_load(nas_params *p, const char *path, int n_extra,
                                       const char *const *extra_names, float *const *extra,
                                       const int64_t *extra_len, char **meta);

/* Standard networks (src/nn/nets.c). NB201's network for a cell given as 6 op names in NB201 edge
 * order (1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2), C channels, N cells per stage. */
typedef enum nas_nb201_op {
    NAS_NB201_NONE = 0,
    NAS_NB201_SKIP,
    NAS_NB201_CONV1,
    NAS_NB201_CONV3,
    NAS_NB201_POOL3
} nas_nb201_op;

NAS_API nas_status nas_net_nb201(nas_ctx *ctx, const nas_nb201_op ops[6], int C, int N,
                                 nas_model_shape shape, nas_model **out);
/* conv3x3 1->16 + ReLU + maxpool2, conv3x3 16->32 + ReLU + maxpool2, linear 1568->10. */
NAS_API nas_status nas_net_fmnist_cnn(nas_ctx *ctx, nas_model_shape shape, nas_model **out);
/* MobileNetV2 for 32x32 (stem stride 1, stage-2 stride 1), width multiplier. */
NAS_API nas_status nas_net_mobilenet_v2(nas_ctx *ctx, double width, nas_model_shape shape,
                                        nas_model **out);

/* ================================================================ spaces */

/* An architecture is one choice per decision of its space: a small value type, so strategies
 * copy, compare and store it freely. */
#define NAS_ARCH_MAX_DECISIONS 160
#define NAS_ARCH_TEXT_MAX 4096

typedef struct nas_arch {
    int32_t n;                                 /* number of decisions */
    int32_t choice[NAS_ARCH_MAX_DECISIONS];    /* choice index per decision */
} nas_arch;

typedef struct nas_space nas_space;

/* Options for building an architecture's network (low fidelity knobs included). */
typedef struct nas_build_opts {
    nas_model_shape shape;  /* input and classes; zeros mean the space's default (CIFAR-10) */
    double channels_mult;   /* 0 means 1 */
    int cells;              /* cells per stage / layers override; 0 means the space's default */
    int aux_head;           /* DARTS evaluation network auxiliary head (its logits:
                               nas_model_aux_logits; params counted, MACs not) */
    int search_net;         /* DARTS: the 8-cell C=16 search network instead of 20/36 */
    int no_init;            /* leave the weights zero (counting, export of shapes); nb201's
                               nas_net_nb201 initialises regardless */
} nas_build_opts;

/* Open a space by name ("nb201", "darts", "mbnet", "mbnet32", "nasrl") or by the path of a JSON
 * file (a name ending in .json). Text formats: nb201 `|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`;
 * darts `Genotype(normal=[('sep_conv_3x3', 0), ...], normal_concat=[2, 3, 4, 5], reduce=[...],
 * reduce_concat=[2, 3, 4, 5])`; mbnet JSON `{"ks": [...], "e": [...], "d": [...], "wid": w,
 * "image_size": r}`; nasrl `3x3/36/1,5x3/48/2+0,...`; JSON spaces `name=choice,...`. */
NAS_API nas_status nas_space_open(nas_ctx *ctx, const char *name_or_path, nas_space **out);
NAS_API void nas_space_free(nas_space *s);
NAS_API const char *nas_space_name(const nas_space *s);
NAS_API int nas_space_n_decisions(const nas_space *s);
NAS_API int nas_space_n_choices(const nas_space *s, int decision);
NAS_API const char *nas_space_decision_name(const nas_space *s, int decision);
NAS_API const char *nas_space_choice_name(const nas_space *s, int decision, int choice);
/* Number of architectures; -1 when over INT64_MAX (then see log10). */
NAS_API int64_t nas_space_size(const nas_space *s);
NAS_API double nas_space_log10_size(const nas_space *s);
NAS_API void nas_space_sample(const nas_space *s, nas_rng *r, nas_arch *out);
/* Change exactly one decision that matters to another valid choice. */
NAS_API void nas_space_mutate(const nas_space *s, nas_rng *r, const nas_arch *in, nas_arch *out);
/* All single-decision changes; writes at most max into out, returns how many there are. */
NAS_API int64_t nas_space_neighbours(const nas_space *s, const nas_arch *a, nas_arch *out,
                                     int64_t max);
/* The index-th architecture in enumeration order (0 <= index < size). */
NAS_API nas_status nas_space_enumerate(const nas_space *s, int64_t index, nas_arch *out);
NAS_API nas_status nas_space_encode(const nas_space *s, const nas_arch *a, char *buf, size_t size);
/* Parse text; errors point at the offending token. "default" gives the default architecture. */
NAS_API nas_status nas_space_decode(nas_ctx *ctx, const nas_space *s, const char *text,
                                    nas_arch *out);
/* Canonical form: isomorphic architectures (same function) map to one. */
NAS_API void nas_space_canonical(const nas_space *s, const nas_arch *a, nas_arch *out);
/* Stable 64-bit hash of the canonical form (same across runs and machines). */
NAS_API uint64_t nas_space_hash(const nas_space *s, const nas_arch *a);
/* Build the network of a (parameters initialised with seed 0). "nb201" builds through
 * nas_net_nb201; the other spaces through src/spaces/netlist.c. */
NAS_API nas_status nas_space_build(nas_ctx *ctx, const nas_space *s, const nas_arch *a,
                                   const nas_build_opts *opts, nas_model **out);
/* Trainable parameters and multiply-accumulates (conv, linear and attention products, one
 * example, inference: an auxiliary head's parameters count, its MACs do not) of the network
 * nas_space_build would make, from its construction alone: no weights are allocated, so this
 * is cheap enough to count every architecture of a space (params and macs may be NULL). For
 * the activation peak, build and use nas_model_count. */
NAS_API nas_status nas_space_count(nas_ctx *ctx, const nas_space *s, const nas_arch *a,
                                   const nas_build_opts *opts, int64_t *params, int64_t *macs);
/* A DAG view for graph predictors: the network's nodes in topological order (bounded by max),
 * each with an op name and up to NAS_DAG_MAX_IN inputs; returns the node count (-1 on error). */
#define NAS_DAG_MAX_IN 16
typedef struct nas_dag_node {
    const char *op;             /* "input", "conv", "bn", "relu", "sum", "concat", ... (static) */
    int n_in;
    int in[NAS_DAG_MAX_IN];
    int c, h, w;                /* output shape of one example */
    int kernel, stride, groups; /* conv and pool nodes; 0 elsewhere */
} nas_dag_node;
NAS_API int64_t nas_space_dag(nas_ctx *ctx, const nas_space *s, const nas_arch *a,
                              const nas_build_opts *opts, nas_dag_node *out, int64_t max);
/* Feature vector for predictors (one-hot of each decision's choice); returns its length. */
NAS_API int64_t nas_space_n_features(const nas_space *s);
NAS_API void nas_space_features(const nas_space *s, const nas_arch *a, float *out);

/* ============================================================== hardware */

/* Latency of a model's inference in nascent's engine on this machine (threads as set by
 * nas_set_threads): `warmup` untimed runs, then the median and spread of `repeats` runs. */
typedef struct nas_latency_result {
    double median_ms, p10_ms, p90_ms, min_ms;
    int repeats, batch;
    size_t peak_bytes; /* activations arena + input: the memory inference holds */
} nas_latency_result;

NAS_API nas_status nas_latency_measure(nas_ctx *ctx, nas_model *m, int batch, int repeats,
                                       int warmup, nas_latency_result *out);

/* Per-layer latency lookup table: the median time of every distinct layer (op, input shapes,
 * arguments; see nas_graph_node_signature) met in networks of a space, measured once per device.
 * The LUT estimate of an architecture is the sum of its layers' entries. */
typedef struct nas_lut nas_lut;

/* Sample architectures of `space` (seeded) and time the layers of those that bring a layer the
 * LUT lacks (the others are only recorded, not run), up to max_archs timed architectures;
 * stops early once `patience` consecutive samples bring no new layer (at most
 * max_archs * max(patience, 10) samples in all). */
NAS_API nas_status nas_lut_build(nas_ctx *ctx, const nas_space *space, const nas_build_opts *opts,
                                 int batch, int max_archs, int patience, int repeats,
                                 uint64_t seed, nas_lut **out);
NAS_API nas_status nas_lut_save(const nas_lut *lut, const char *path); /* JSON */
NAS_API nas_status nas_lut_load(nas_ctx *ctx, const char *path, nas_lut **out);
NAS_API void nas_lut_free(nas_lut *lut);
NAS_API int64_t nas_lut_size(const nas_lut *lut);
NAS_API int nas_lut_batch(const nas_lut *lut);
/* Sum of the model's layers at the LUT's batch; NAS_ERR_STATE naming the layer if one is
 * missing (rebuild the LUT for this space and input). */
NAS_API nas_status nas_lut_estimate(nas_lut *lut, nas_model *m, double *ms);

/* Learned latency predictors on feature vectors (nas_space_features): LINEAR is ridge
 * regression (a layer-wise additive model), MLP two hidden ReLU layers. Both fit log latency;
 * X is n x d row-major, y in milliseconds (> 0). */
typedef enum nas_latpred_kind { NAS_LATPRED_LINEAR = 0, NAS_LATPRED_MLP } nas_latpred_kind;
typedef struct nas_latpred nas_latpred;

NAS_API nas_status nas_latpred_fit(nas_ctx *ctx, nas_latpred_kind kind, const float *X,
                                   const double *y, int64_t n, int64_t d, uint64_t seed,
                                   nas_latpred **out);
NAS_API nas_status nas_latpred_predict(nas_latpred *p, const float *x, double *ms);
NAS_API int64_t nas_latpred_n_features(const nas_latpred *p);
NAS_API nas_status nas_latpred_save(const nas_latpred *p, const char *path); /* JSON */
NAS_API nas_status nas_latpred_load(nas_ctx *ctx, const char *path, nas_latpred **out);
NAS_API void nas_latpred_free(nas_latpred *p);

/* A device-latency table: one column of a CSV whose rows are architectures (e.g.
 * data/nb201_latency/nb201_latency_ms.csv: arch_str and 27 device columns, in ms). */
typedef struct nas_device_table nas_device_table;

NAS_API nas_status nas_device_table_load(nas_ctx *ctx, const char *path, const char *arch_column,
                                         const char *device_column, nas_device_table **out);
NAS_API void nas_device_table_free(nas_device_table *t);
NAS_API int64_t nas_device_table_rows(const nas_device_table *t);
NAS_API const char *nas_device_table_arch(const nas_device_table *t, int64_t i);
NAS_API double nas_device_table_ms(const nas_device_table *t, int64_t i);

/* Error of a latency estimate against the truth on held-out architectures. */
typedef struct nas_latency_error {
    double spearman, kendall; /* rank agreement */
    double mape;              /* mean absolute percentage error, in percent */
    int64_t n_train, n_test;
    int64_t n_uncovered;      /* LUT: sampled architectures skipped for a layer it lacks */
} nas_latency_error;

/* LUT estimate vs latency measured here (median of `repeats`) on n_archs sampled architectures.
 * Architectures with a layer the LUT lacks are skipped (counted in n_uncovered; at most
 * 100 * n_archs draws, then NAS_ERR_STATE naming the layer). */
NAS_API nas_status nas_lut_evaluate(nas_lut *lut, nas_ctx *ctx, const nas_space *space,
                                    const nas_build_opts *opts, int n_archs, int repeats,
                                    uint64_t seed, nas_latency_error *out);
/* Fit a predictor on n_train random rows of a device table (architectures decoded in `space`)
 * and score it on all other rows. *fitted (if not NULL) receives the predictor. */
NAS_API nas_status nas_latpred_evaluate_table(nas_ctx *ctx, const nas_space *space,
                                              const nas_device_table *t, nas_latpred_kind kind,
                                              int64_t n_train, uint64_t seed,
                                              nas_latpred **fitted, nas_latency_error *out);

/* Fit a predictor on the latency measured here (batch 1, median of `repeats`, weights
 * initialised) of n_train distinct sampled architectures of `space` built with opts, and score
 * it on n_test further distinct ones. *fitted (if not NULL) receives the predictor. */
NAS_API nas_status nas_latpred_evaluate_measured(nas_ctx *ctx, const nas_space *space,
                                                 const nas_build_opts *opts,
                                                 nas_latpred_kind kind, int64_t n_train,
                                                 int64_t n_test, int repeats, uint64_t seed,
                                                 nas_latpred **fitted, nas_latency_error *out);

/* Costs of an architecture and budgets on them (src/hardware/cost.c). A cost model computes
 * params (trainable), MACs and activation peak memory (bytes, batch 1) of the network
 * nas_space_build makes, and its latency from one source:
 *   "measured"          median of 10 timed batch-1 runs here (nas_latency_measure);
 *   "lut:FILE"          a per-layer lookup table (nas_lut_load; batch as built);
 *   "predictor:FILE"    a learned predictor on the space's features (nas_latpred_load);
 *   "table:COLUMN[:FILE]" a device column of a latency table looked up by the architecture
 *                       (default FILE: data/nb201_latency/nb201_latency_ms.csv, or
 *                       $NAS_LATENCY_TABLE; rows are decoded once into an O(1) index).
 * Costs are memoised per architecture (raw choices), so asking twice is free. Not thread-safe. */
typedef struct nas_cost {
    double params;     /* trainable parameters */
    double macs;       /* multiply-accumulates per example */
    double memory;     /* bytes: planned activation peak of batch-1 inference, input included */
    double latency_ms; /* from the model's latency source */
} nas_cost;

enum nas_cost_what {
    NAS_COST_PARAMS = 1,
    NAS_COST_MACS = 2,
    NAS_COST_MEMORY = 4,
    NAS_COST_LATENCY = 8,
    NAS_COST_ALL = 15
};

typedef struct nas_cost_model nas_cost_model;

/* latency_source NULL or "": no latency (asking for it is NAS_ERR_STATE). A bad source, a
 * missing file or column, or a table row that does not decode in `space` is an error naming it.
 * opts (may be NULL) are the build options of the networks whose costs are counted. */
NAS_API nas_status nas_cost_model_new(nas_ctx *ctx, const nas_space *space,
                                      const nas_build_opts *opts, const char *latency_source,
                                      nas_cost_model **out);
NAS_API void nas_cost_model_free(nas_cost_model *cm);
NAS_API const char *nas_cost_model_latency_source(const nas_cost_model *cm); /* "" if none */
/* The costs selected by `what` (nas_cost_what bits) of a; the others are NAN. A table source
 * without a row for a is NAS_ERR_ARG naming the architecture. */
NAS_API nas_status nas_cost_eval(nas_cost_model *cm, const nas_arch *a, unsigned what,
                                 nas_cost *out);
/* Latency alone (for nas_strategy_opts.cost): NAN when it cannot be computed. */
NAS_API double nas_cost_latency_cb(void *cost_model, const nas_arch *a);

/* A budget: each limit > 0 is a maximum; 0 (or less) means no limit. */
typedef struct nas_budget {
    double max_params, max_macs, max_memory, max_latency_ms;
} nas_budget;

NAS_API unsigned nas_budget_what(const nas_budget *b);  /* nas_cost_what bits it limits */
/* 1 when every limit is met (a NAN cost fails its limit). */
NAS_API int nas_budget_feasible(const nas_budget *b, const nas_cost *c);
/* How far c is outside the budget: sum over limits of max(0, cost / limit - 1); 0 = feasible. */
NAS_API double nas_budget_excess(const nas_budget *b, const nas_cost *c);
/* Is the budget possible at all, before any search starts? Small spaces whose limited costs are
 * cheap (table or predictor latency) are enumerated exactly; otherwise 32 seeded samples and a
 * first-improvement descent on the excess over single-decision changes (at most 300 cost
 * evaluations: each builds a network, ~0.1-0.3 s in mbnet) look for a feasible architecture;
 * that finds the minimum of costs that add up over decisions (params, MACs of cell spaces) but
 * is a heuristic elsewhere. NAS_OK with *witness (may be NULL)
 * feasible, or NAS_ERR_INFEASIBLE with a message giving each limit and the smallest value
 * found. */
NAS_API nas_status nas_budget_check(nas_cost_model *cm, const nas_budget *b, uint64_t seed,
                                    nas_arch *witness);

/* Pareto utilities (src/hardware/pareto.c). Objectives are all minimised: obj is n x m
 * row-major (negate a value to maximise); a NAN objective counts as +infinity. */
/* Non-dominated sorting (Deb et al. 2002): rank[i] = 0 for the first front, 1 for the next...
 * Returns the number of fronts (negative on allocation failure, error in ctx). */
NAS_API int nas_pareto_rank(nas_ctx *ctx, const double *obj, int64_t n, int m, int *rank);
/* Crowding distance of each point within its front (rank as above); boundary points +inf. */
NAS_API nas_status nas_pareto_crowding(nas_ctx *ctx, const double *obj, int64_t n, int m,
                                       const int *rank, double *dist);
/* Two objectives, cost (minimise) and value (maximise): the indices of the non-dominated
 * points, by ascending cost, into idx (n entries of room); returns their count. Among equal
 * points the first index is kept. */
NAS_API int64_t nas_pareto_front2(nas_ctx *ctx, const double *cost, const double *value,
                                  int64_t n, int64_t *idx);
/* The area dominated by the points and bounded by the reference point (ref_cost above every
 * cost that counts, ref_value below every value that counts): the 2-D hypervolume. Points with
 * cost >= ref_cost or value <= ref_value (or NAN) add nothing. */
NAS_API double nas_pareto_hypervolume2(nas_ctx *ctx, const double *cost, const double *value,
                                       int64_t n, double ref_cost, double ref_value);

/* =================================================== proxies and diagnostics */

/* Estimator diagnostics (src/evaluators/stats.c): how well an estimate `est` ranks items against
 * the ground truth `truth` (higher = better in both). Pairs where either value is NaN or infinite
 * are dropped. Kendall tau is tau-b and Spearman rho uses average ranks for ties, as
 * scipy.stats.kendalltau / spearmanr. A result is NaN when fewer than 2 pairs remain or one side
 * is constant. */
NAS_API nas_status nas_stats_kendall(nas_ctx *ctx, const double *a, const double *b, int64_t n,
                                     double *tau);
NAS_API nas_status nas_stats_spearman(nas_ctx *ctx, const double *a, const double *b, int64_t n,
                                      double *rho);
NAS_API nas_status nas_stats_pearson(nas_ctx *ctx, const double *a, const double *b, int64_t n,
                                     double *r);

/* Figures at K% (Ning et al. NeurIPS 2021), k = max(1, round(k_frac * n)) items; ties are broken
 * by the lower index first. */
typedef struct nas_stats_at_k {
    double k_frac;           /* K as a fraction in (0, 1] */
    int64_t k;               /* items in the top (bottom) K% */
    double precision_top;    /* |est top-k  and  true top-k| / k */
    double precision_bottom; /* |est bottom-k  and  true bottom-k| / k */
    double best_rank;        /* best true rank among est's top-k, as a fraction: 0 = the best */
    double worst_rank;       /* worst true rank among est's top-k, 1 = the worst */
} nas_stats_at_k;

NAS_API nas_status nas_stats_at_k_compute(nas_ctx *ctx, const double *est, const double *truth,
                                          int64_t n, double k_frac, nas_stats_at_k *out);

#define NAS_STATS_MAX_K 8

/* Everything at once: tau, rho, r and the K% figures for each of k_fracs[0..n_k). */
typedef struct nas_stats_report {
    int64_t n;         /* pairs used */
    int64_t n_dropped; /* pairs with a NaN or infinite value */
    double kendall_tau, spearman_rho, pearson_r;
    int n_k;
    nas_stats_at_k at[NAS_STATS_MAX_K];
} nas_stats_report;

NAS_API nas_status nas_stats_correlate(nas_ctx *ctx, const double *est, const double *truth,
                                       int64_t n, int n_k, const double *k_fracs,
                                       nas_stats_report *out);

/* Zero-cost proxies (src/evaluators/proxies*.c): scores of an architecture at initialisation from
 * one minibatch; higher = predicted better for every one. Definitions and the layers each sums
 * over follow SamsungLabs/zero-cost-nas (see each proxy_*.c): grad_norm, snip, grasp, fisher and
 * jacob_cov run the network in training mode (batch statistics) on the minibatch with the mean
 * cross-entropy loss; nwot reads the ReLU codes of that forward pass; synflow runs a batch-1
 * all-ones input through |weights| with batch norm bypassed, in double precision; params counts
 * trainable parameters and macs the multiply-accumulates of one example. */
typedef enum nas_proxy {
    NAS_PROXY_GRAD_NORM = 0,
    NAS_PROXY_SNIP,
    NAS_PROXY_GRASP,
    NAS_PROXY_FISHER,
    NAS_PROXY_SYNFLOW,
    NAS_PROXY_JACOB_COV,
    NAS_PROXY_NWOT,
    NAS_PROXY_PARAMS,
    NAS_PROXY_MACS,
    NAS_PROXY_COUNT
} nas_proxy;

#define NAS_PROXY_ALL ((1u << NAS_PROXY_COUNT) - 1u)

NAS_API const char *nas_proxy_name(nas_proxy p);          /* "grad_norm", ... */
NAS_API int nas_proxy_from_name(const char *name);        /* a nas_proxy, or -1 if unknown */
NAS_API int nas_proxy_needs_data(nas_proxy p);            /* 1 if it reads the minibatch */

/* A workspace reused across architectures (graphs and buffers only grow). */
typedef struct nas_proxies nas_proxies;

NAS_API nas_status nas_proxies_new(nas_ctx *ctx, nas_proxies **out);
NAS_API void nas_proxies_free(nas_proxies *pr);
/* Score model m with the proxies whose bit (1u << p) is set in mask, writing scores[p] for those
 * (others untouched). x is [batch, in_c, in_h, in_w] of the model's shape and labels [batch] in
 * [0, classes); both may be NULL when no proxy in mask needs data. The model's parameters are
 * used as they are (initialise them first) and are left unchanged (batch-norm running statistics
 * included). A proxy that is undefined for the network (e.g. an op synflow's double pass does not
 * support) fails with a message naming it. */
NAS_API nas_status nas_proxies_score(nas_proxies *pr, nas_model *m, const float *x,
                                     const int32_t *labels, int64_t batch, uint32_t mask,
                                     double scores[NAS_PROXY_COUNT]);

/* ================================================================== data */

/* A dataset in memory: n images of C x H x W bytes and their integer labels. Images stay uint8;
 * loaders normalise them to float batches. */
typedef struct nas_dataset nas_dataset;

/* IDX files (MNIST, Fashion-MNIST), each gzip-compressed or plain: images [n, h, w] unsigned
 * bytes and labels [n], each label < classes. A truncated, corrupt or mislabelled file is
 * NAS_ERR_FORMAT naming the file and the byte offset (in the decompressed data). */
NAS_API nas_status nas_dataset_load_idx(nas_ctx *ctx, const char *images_path,
                                        const char *labels_path, int classes, nas_dataset **out);
/* CIFAR binary files, concatenated in the given order; classes 10 (1 label byte per record) or
 * 100 (coarse and fine label bytes; the fine label is used). Errors as for IDX. */
NAS_API nas_status nas_dataset_load_cifar(nas_ctx *ctx, const char *const *paths, int n_paths,
                                          int classes, nas_dataset **out);
/* A named dataset ("fashion-mnist", "mnist", "cifar10", "cifar100") from `dir` (NULL: its
 * default directory): the training files (test = 0) or the test files (test = 1). CIFAR
 * directories may hold the files directly or the unpacked cifar-10-batches-bin /
 * cifar-100-binary folder. Sets the dataset's usual normalisation and augmentation defaults. */
NAS_API nas_status nas_dataset_open(nas_ctx *ctx, const char *name, const char *dir, int test,
                                    nas_dataset **out);
NAS_API const char *nas_dataset_default_dir(const char *name); /* NULL if unknown */
NAS_API void nas_dataset_free(nas_dataset *d);
NAS_API int64_t nas_dataset_size(const nas_dataset *d);
NAS_API nas_model_shape nas_dataset_shape(const nas_dataset *d); /* in_c, in_h, in_w, classes */
NAS_API const char *nas_dataset_name(const nas_dataset *d);      /* "" when loaded by path */
NAS_API const uint8_t *nas_dataset_image(const nas_dataset *d, int64_t i);
NAS_API int32_t nas_dataset_label(const nas_dataset *d, int64_t i);
/* The default normalisation (of pixel / 255) per channel, and whether crop+flip is usual. */
NAS_API void nas_dataset_normalisation(const nas_dataset *d, float mean[4], float std[4]);
NAS_API int nas_dataset_augment_default(const nas_dataset *d);
/* A copy resampled to r x r (area averaging when shrinking, bilinear when growing): the input
 * resolution fidelity knob. */
NAS_API nas_status nas_dataset_resize(const nas_dataset *d, int r, nas_dataset **out);

/* A list of example indices; free with nas_index_list_free. */
typedef struct nas_index_list {
    int64_t *idx;
    int64_t n;
} nas_index_list;

/* Seeded split of [0, n): round(valid_fraction * n) examples for validation, and of the rest a
 * round(data_fraction * rest) subset for training (a smaller fraction is a subset of a larger one
 * under the same seed). Both lists ascending. */
NAS_API nas_status nas_dataset_split(nas_ctx *ctx, int64_t n, double valid_fraction,
                                     double data_fraction, uint64_t seed, nas_index_list *train,
                                     nas_index_list *valid);
NAS_API void nas_index_list_free(nas_ctx *ctx, nas_index_list *l);

/* How a loader turns examples into batches. */
typedef struct nas_data_opts {
    float mean[4], std[4]; /* x = (pixel / 255 - mean[c]) / std[c] */
    int pad_crop;          /* random crop after zero padding by this many pixels; 0 = off */
    int flip;              /* random horizontal flip */
    int shuffle;           /* a new order every epoch */
    int drop_last;         /* leave out a final partial batch */
    int prefetch;          /* assemble the next batch on a background thread */
    uint64_t seed;         /* order and augmentation are pure functions of (seed, epoch) */
} nas_data_opts;

/* Defaults: the dataset's normalisation, no augmentation, no shuffle, prefetch on. */
NAS_API void nas_data_opts_default(const nas_dataset *d, nas_data_opts *o);

typedef struct nas_loader nas_loader;

/* Batches of `batch` examples of d at indices idx[0..n) (copied; idx NULL means all of d). The
 * dataset must outlive the loader. */
NAS_API nas_status nas_loader_new(const nas_dataset *d, const int64_t *idx, int64_t n, int batch,
                                  const nas_data_opts *opts, nas_loader **out);
NAS_API void nas_loader_free(nas_loader *l);
NAS_API int64_t nas_loader_batches(const nas_loader *l); /* per epoch */
NAS_API int64_t nas_loader_size(const nas_loader *l);    /* examples per epoch (before drop) */
/* Begin epoch `epoch` (any order of epochs is allowed; each is reproducible on its own). */
NAS_API void nas_loader_start_epoch(nas_loader *l, int64_t epoch);
/* The next batch of the epoch: *x [b, C, H, W] floats and *y [b] labels, valid until the next
 * call. Returns b, or 0 at the end of the epoch. Never allocates. */
NAS_API int64_t nas_loader_next(nas_loader *l, const float **x, const int32_t **y);

/* ============================================================== training */
/* Training from scratch with a fidelity budget (src/evaluators/train*.c): the ground-truth
 * evaluator and the inner loop of low-fidelity methods. The library never prints: progress goes
 * to a callback; with out_dir set it writes out_dir/metrics.jsonl (one JSON object per epoch),
 * out_dir/checkpoint.bin after every epoch (atomic) and out_dir/result.json at the end. */

/* How to build a model, stored in checkpoints so `nascent eval` can rebuild it: a standard net
 * by name ("fmnist-cnn", "mobilenet-v2") or a space's architecture in canonical text, with the
 * low-fidelity knobs of nas_build_opts. */
typedef struct nas_model_desc {
    const char *net;      /* NULL when space/arch are used */
    const char *space;    /* space name or JSON path */
    const char *arch;     /* canonical text */
    double channels_mult; /* 0 means 1 */
    int cells;            /* 0 means the space's default */
    int aux_head;         /* DARTS evaluation network: train with its auxiliary head */
} nas_model_desc;

/* Build the model of `desc` for inputs and classes `shape` (parameters initialised from seed 0;
 * the trainer re-initialises them from its seed). An architecture that cannot be built for the
 * input shape is NAS_ERR_SHAPE (or the space's error) with a message naming the input shape. */
NAS_API nas_status nas_model_build_desc(nas_ctx *ctx, const nas_model_desc *desc,
                                        nas_model_shape shape, nas_model **out);

typedef struct nas_epoch_metrics {
    int epoch;             /* 1-based */
    double train_loss;     /* mean over the epoch's training examples */
    double train_accuracy; /* percent, on the (augmented) training batches in training mode */
    double valid_loss;     /* NaN without a validation split */
    double valid_accuracy; /* percent; NaN without a validation split */
    double test_accuracy;  /* percent; NaN unless test_every_epoch (and a test set) */
    double lr;             /* learning rate of the epoch's last step */
    double seconds;        /* training time of the epoch (evaluation excluded) */
    double eval_seconds;   /* evaluation time after the epoch */
    double images_per_s;   /* training throughput */
} nas_epoch_metrics;

typedef enum nas_train_event {
    NAS_TRAIN_STEP = 0,  /* after a training step */
    NAS_TRAIN_EPOCH_END  /* after an epoch's evaluation, checkpoint and metrics line */
} nas_train_event;

typedef struct nas_train_progress {
    nas_train_event event;
    int epoch, epochs;     /* epoch is 1-based */
    int64_t step, steps;   /* step within the epoch (1-based) and steps per epoch */
    double loss;           /* mean training loss of the epoch so far */
    double accuracy;       /* training accuracy of the epoch so far, percent */
    double images_per_s;   /* of this epoch so far */
    double eta_s;          /* estimated seconds to the end of the run */
    const nas_epoch_metrics *metrics; /* at NAS_TRAIN_EPOCH_END, else NULL */
} nas_train_progress;

/* Return nonzero to stop: nas_train_model then returns NAS_ERR_STATE ("stopped") and the
 * checkpoint of the last finished epoch stays. */
typedef int (*nas_train_progress_fn)(void *user, const nas_train_progress *p);

typedef struct nas_train_config {
    int epochs;            /* 1 */
    int batch;             /* 128 */
    nas_optim_kind optimizer; /* SGD */
    float lr;              /* 0.1 */
    float momentum;        /* 0.9 (SGD) */
    int nesterov;          /* 1 (SGD) */
    float weight_decay;    /* 5e-4 */
    nas_sched_kind schedule; /* COSINE to min_lr over all steps; STEP: x0.1 every third of them */
    float min_lr;          /* 0 */
    int warmup_epochs;     /* 0 */
    float label_smoothing; /* 0 */
    double grad_clip;      /* max global gradient norm; 0 = off */
    double valid_fraction; /* held out of the training set, seeded: 0.1 */
    double data_fraction;  /* of the rest used for training: 1 */
    int resolution;        /* resample images to r x r; 0 = native (the model must match) */
    int augment;           /* -1 the dataset's default (CIFAR: crop pad 4 + flip), 0 off, 1 on */
    int prefetch;          /* background batch assembly: 1 */
    int eval_batch;        /* 256 */
    int test_every_epoch;  /* also measure test accuracy after every epoch: 0 */
    uint64_t seed;         /* initialisation, split, order, augmentation: 0 */
    int init_params;       /* 1: initialise the model's parameters from seed first */
    const char *out_dir;   /* NULL: no files */
    int resume;            /* continue from out_dir/checkpoint.bin if it exists */
    const nas_model_desc *desc; /* stored in the checkpoint (for eval); may be NULL */
    nas_train_progress_fn progress;
    void *progress_user;
} nas_train_config;

NAS_API void nas_train_config_default(nas_train_config *cfg);

typedef struct nas_train_result {
    int epochs_done;
    int resumed_from;      /* epochs read from the checkpoint; 0 for a fresh run */
    int64_t steps;         /* optimiser steps in all */
    double train_loss, train_accuracy; /* last epoch */
    double valid_accuracy; /* percent, last epoch; NaN without a validation split */
    double test_accuracy;  /* percent after the last epoch; NaN without a test set */
    double seconds;        /* wall time of training and evaluation, earlier runs included */
    double train_seconds;  /* training steps only */
    int64_t params;        /* trainable parameters */
    int64_t n_train, n_valid;
} nas_train_result;

/* Train m (its parameters in place) on `train` (the training files; the validation split is
 * taken from it) and evaluate on `test` (may be NULL). res may be NULL. A steady-state step makes
 * no allocation. Errors: NAS_ERR_NUMERIC when the loss becomes NaN or infinite (the message
 * gives epoch and step; the checkpoint of the last finished epoch is kept), NAS_ERR_SHAPE when
 * the model does not fit the data, NAS_ERR_STATE when a resume does not match the checkpoint or
 * the callback stopped the run, NAS_ERR_IO/FORMAT for files. */
NAS_API nas_status nas_train_model(nas_ctx *ctx, nas_model *m, const nas_dataset *train,
                                   const nas_dataset *test, const nas_train_config *cfg,
                                   nas_train_result *res);

/* Accuracy (percent) and mean loss of m in evaluation mode on d at idx[0..n) (idx NULL: all of
 * d), normalised with d's defaults, in batches of `batch`. loss may be NULL. */
NAS_API nas_status nas_model_evaluate(nas_ctx *ctx, nas_model *m, const nas_dataset *d,
                                      const int64_t *idx, int64_t n, int batch, double *accuracy,
                                      double *loss);

/* The metadata JSON text of a training checkpoint (what nas_train_model stored: model
 * description, input shape, dataset, seed, split, epoch, metrics), without loading parameters.
 * *meta is freed by the caller with nas_free(ctx, *meta, strlen(*meta) + 1). */
NAS_API nas_status nas_train_checkpoint_meta(nas_ctx *ctx, const char *path, char **meta);

/* ============================================================ strategies */
/* A search strategy proposes architectures (ask) and is told their rewards (tell); it never
 * evaluates anything itself, so every strategy works with every evaluator. Strategies are
 * deterministic functions of (seed, parameters, the sequence of asks and tells): a search resumes
 * exactly by replaying its stored trials into a fresh strategy (nas_search_run does this).
 * Names: grid, random, re, ls, reinforce, bo, pnas (nas_strategy_name_at lists them). */
typedef struct nas_strategy nas_strategy;

typedef struct nas_strategy_opts {
    uint64_t seed;
    int64_t budget;     /* expected number of queries (a hint for schedules); 0 if unknown */
    const char *params; /* "key=value,key=value" strategy settings (e.g. "population=20"), or NULL */
} nas_strategy_opts;

NAS_API int nas_strategy_count(void);
NAS_API const char *nas_strategy_name_at(int i);     /* NULL past the end */
NAS_API const char *nas_strategy_summary_at(int i);  /* one line with its parameters */
/* A new strategy over `space` (which must outlive it). Unknown names and parameters are
 * NAS_ERR_ARG with a message naming them. */
NAS_API nas_status nas_strategy_new(nas_ctx *ctx, const char *name, const nas_space *space,
                                    const nas_strategy_opts *opts, nas_strategy **out);
NAS_API void nas_strategy_free(nas_strategy *s);
NAS_API const char *nas_strategy_name(const nas_strategy *s);
/* Propose the next architecture into *out. NAS_ERR_INFEASIBLE when the strategy has nothing left
 * (grid finished, every architecture of a small space seen). Several asks may precede the tells. */
NAS_API nas_status nas_strategy_ask(nas_strategy *s, nas_arch *out);
/* The reward (higher is better, e.g. validation accuracy in %) of an architecture returned by an
 * earlier ask; NAN marks a failed evaluation. */
NAS_API nas_status nas_strategy_tell(nas_strategy *s, const nas_arch *a, double reward);

/* ============================================================ evaluators */
/* An evaluator scores an architecture. Specs: "table:DATASET[:EPOCHS]" (NAS-Bench-201 lookups:
 * cifar10, cifar100, imagenet16; epochs 200 or 12; see data/nasbench201/README.md for the
 * columns), "train:DATASET[:test]" (real training with nas_train_model at the fidelity of
 * nas_eval_opts on fashion-mnist, mnist, cifar10 or cifar100; ":test" also measures the test
 * set) and "proxy:NAME[:DATASET]" (a zero-cost proxy's score of the network initialised with
 * the seed; data proxies read a seeded noise minibatch of batch_size (64) or DATASET's first
 * shuffled batch; src/evaluators/proxy_eval.c). The reward is a validation accuracy; the test accuracy is recorded but strategies never
 * see it. */
typedef struct nas_evaluator nas_evaluator;

typedef struct nas_eval_opts {
    uint64_t seed;
    /* Fidelity of training evaluators; 0 means the evaluator's default. */
    int epochs;
    double data_fraction;
    int resolution;
    double channels_mult;
    int cells;
    int batch_size;
    const char *data_path; /* a dataset directory or table file; NULL: the built-in default */
} nas_eval_opts;

typedef struct nas_eval_result {
    double reward;  /* validation accuracy, % (what the strategy is told) */
    double test;    /* test accuracy, % (recorded only); NAN if unknown */
    double params;  /* trainable parameters; NAN if unknown */
    double macs;    /* multiply-accumulates per example; NAN if unknown */
    double cost_s;  /* seconds the evaluation took (or its simulated training time) */
} nas_eval_result;

NAS_API nas_status nas_evaluator_open(nas_ctx *ctx, const char *spec, const nas_space *space,
                                      const nas_eval_opts *opts, nas_evaluator **out);
NAS_API void nas_evaluator_free(nas_evaluator *e);
NAS_API const char *nas_evaluator_spec(const nas_evaluator *e);
/* The build options (input shape, channel multiplier, cells) of the networks the evaluator
 * builds, e.g. to count their costs; NAS_ERR_UNSUPPORTED for the table (it builds none). */
NAS_API nas_status nas_evaluator_build_opts(const nas_evaluator *e, nas_build_opts *out);
/* Evaluate one architecture. A failure (e.g. training diverged) returns its status with the
 * message in nas_errmsg(ctx); the search records it as a failed trial. Table lookups are
 * thread-safe (one evaluator may be shared by threads, each with its own ctx via _eval_ctx). */
NAS_API nas_status nas_evaluator_eval(nas_evaluator *e, const nas_arch *a, nas_eval_result *out);
NAS_API nas_status nas_evaluator_eval_ctx(nas_evaluator *e, nas_ctx *ctx, const nas_arch *a,
                                          nas_eval_result *out);

/* The NAS-Bench-201 table: 15,625 cells x published columns (accuracies in %, params in
 * millions), indexed by the official NB201 index. Loaded from the compact binary file made at
 * build time (build/data/nb201.bin) or from the CSV (data/nasbench201/nb201_accuracy.csv). */
typedef struct nas_nb201_table nas_nb201_table;

#define NAS_NB201_CELLS 15625

/* path NULL: $NAS_NB201_TABLE, else the build's binary table, else the CSV, looked up relative
 * to the working directory and to the running program. */
NAS_API nas_status nas_nb201_table_load(nas_ctx *ctx, const char *path, nas_nb201_table **out);
NAS_API void nas_nb201_table_free(nas_nb201_table *t);
NAS_API nas_status nas_nb201_table_save(nas_ctx *ctx, const nas_nb201_table *t, const char *path);
NAS_API int nas_nb201_table_n_columns(const nas_nb201_table *t);
NAS_API const char *nas_nb201_table_column_name(const nas_nb201_table *t, int column);
NAS_API int nas_nb201_table_column(const nas_nb201_table *t, const char *name); /* -1 if absent */
/* The column's 15,625 values, by official index. */
NAS_API const float *nas_nb201_table_values(const nas_nb201_table *t, int column);
/* Official index of the cell with ops[6] in NB201 edge order (nas_nb201_op codes). */
NAS_API int64_t nas_nb201_table_index(const nas_nb201_table *t, const int ops[6]);
NAS_API void nas_nb201_table_ops(const nas_nb201_table *t, int64_t index, int ops[6]);

/* ================================================================= store */
/* Studies and their trials in an SQLite file (WAL mode, busy timeout, so several processes can
 * share one file). A trial is written in one transaction when it finishes. */
typedef struct nas_store nas_store;

typedef struct nas_study_info {
    const char *space, *strategy, *evaluator;
    uint64_t seed;
    const char *config; /* strategy parameters and fidelity, as text; "" if none */
} nas_study_info;

typedef enum nas_trial_state { NAS_TRIAL_COMPLETE = 0, NAS_TRIAL_FAILED = 1 } nas_trial_state;

typedef struct nas_trial {
    int64_t number;       /* 0-based position in its study */
    nas_arch arch;
    uint64_t hash;        /* nas_space_hash */
    int state;            /* nas_trial_state */
    int cached;           /* 1: a repeat of an earlier trial, its result reused */
    double reward, test, params, macs;
    double eval_s;        /* seconds the evaluation took */
    double finished_at;   /* Unix time */
    double memory;        /* bytes of batch-1 activation peak (nas_cost); NAN if not computed */
    double latency_ms;    /* from the search's latency source (nas_cost); NAN if none */
    char error[256];      /* why it failed */
} nas_trial;

NAS_API nas_status nas_store_open(nas_ctx *ctx, const char *path, nas_store **out);
NAS_API void nas_store_close(nas_store *st);
NAS_API nas_status nas_store_study_new(nas_store *st, const nas_study_info *info, int64_t *id);
/* The most recent study with the same space, strategy, evaluator, seed and config
 * (NAS_ERR_STATE if none). */
NAS_API nas_status nas_store_study_find(nas_store *st, const nas_study_info *info, int64_t *id);
/* Append a finished trial (number must be the study's next): one transaction. The text is the
 * architecture's canonical text. */
NAS_API nas_status nas_store_trial_add(nas_store *st, int64_t study, const nas_trial *t,
                                       const char *arch_text);
/* Every trial of a study in order; *out is freed with nas_trials_free(ctx, *out, *n). */
NAS_API nas_status nas_store_trials(nas_store *st, int64_t study, nas_trial **out, int64_t *n);
NAS_API void nas_trials_free(nas_ctx *ctx, nas_trial *trials, int64_t n);
/* Final training of a study's best architectures (the diagnostics' ground truth of `search
 * --final-top`), keyed by the architecture's hash and a text naming the final fidelity, so a
 * rerun or resume reads them back instead of retraining. A value not measured is NAN (NULL in
 * the file). get sets *found to 0 (values NAN) when the store has none. */
NAS_API nas_status nas_store_final_put(nas_store *st, int64_t study, uint64_t hash,
                                       const char *fidelity, double valid, double test);
NAS_API nas_status nas_store_final_get(nas_store *st, int64_t study, uint64_t hash,
                                       const char *fidelity, double *valid, double *test,
                                       int *found);

/* The search loop: ask the strategy, evaluate, tell, store, until `queries` trials exist. With
 * resume, the study's stored trials are first replayed into the (fresh) strategy, checking that
 * it proposes the same architectures, so the search continues exactly where it stopped (if it
 * does not - a study of another version or other settings - NAS_ERR_MISMATCH, nothing stored). A
 * repeat of an architecture already evaluated in the study reuses its result (cached = 1). */
typedef struct nas_search_opts {
    int64_t queries;
    int resume;
    /* Called after each new trial (progress output); may be NULL. */
    void (*on_trial)(void *user, const nas_trial *t, const nas_trial *best);
    void *user;
} nas_search_opts;

/* store may be NULL (nothing saved, no resume). *trials (freed with nas_trials_free)
 * receives every trial of the study, *n their count. */
NAS_API nas_status nas_search_run(nas_ctx *ctx, const nas_space *space, nas_strategy *strategy,
                                  nas_evaluator *eval, nas_store *store, int64_t study,
                                  const nas_search_opts *opts, nas_trial **trials, int64_t *n);
/* As nas_search_run, and each newly evaluated complete trial also gets the costs selected by
 * `what` (nas_cost_what bits) from cost model cm (may be NULL: none): memory and latency_ms, and
 * params and MACs where the evaluator gave none. A cost that cannot be computed stays NAN (the
 * trial is kept). The costs are stored with the trial. */
NAS_API nas_status nas_search_run_costs(nas_ctx *ctx, const nas_space *space,
                                        nas_strategy *strategy, nas_evaluator *eval,
                                        nas_store *store, int64_t study,
                                        const nas_search_opts *opts, nas_cost_model *cm,
                                        unsigned what, nas_trial **trials, int64_t *n);
/* Index of the best complete trial (highest reward; first on ties), -1 if none. */
NAS_API int64_t nas_trials_best(const nas_trial *trials, int64_t n);

/* Estimator diagnostics of a search (src/store/diagnostics.c): how well the search's reward
 * ranks its distinct architectures (repeats excluded) against a ground truth. The ground truth:
 * for a space the NAS-Bench-201 table maps (nb201), the table's 200-epoch test accuracy on the
 * evaluator's dataset (cifar10, cifar100, imagenet16; cifar10 for proxies and other datasets,
 * with a note that it is another dataset); for the table evaluator itself this compares the
 * table's validation column (the reward) with its test column. Elsewhere, the test accuracy the
 * evaluator recorded (train:DATASET:test). have = 0 when none is known (note says why). */
#define NAS_DIAG_N_K 4 /* K = 5%, 10%, 20%, 50% */

typedef struct nas_diagnostics {
    int have;
    char estimator[160]; /* what the reward is, e.g. "proxy:synflow" */
    char truth[160];     /* e.g. "NB201 cifar10 test accuracy (200 epochs)" */
    char note[256];
    nas_stats_report stats; /* est = reward, truth = ground truth, over distinct architectures */
} nas_diagnostics;

/* truth (n entries, may be NULL) receives each trial's ground truth (NAN where unknown).
 * eval_opts (may be NULL) are the search's evaluator options (the table file of a table
 * evaluator). Only allocation failures are errors; a missing table means have = 0. */
NAS_API nas_status nas_search_diagnostics(nas_ctx *ctx, const nas_space *space,
                                          const char *evaluator_spec,
                                          const nas_eval_opts *eval_opts,
                                          const nas_trial *trials, int64_t n, double *truth,
                                          nas_diagnostics *out);
/* The same figures against a ground truth the caller has (truth: n values, NAN where unknown),
 * e.g. final training of the top architectures; labels are copied into out. */
NAS_API nas_status nas_diagnostics_from(nas_ctx *ctx, const char *estimator,
                                        const char *truth_label, const char *note,
                                        const nas_trial *trials, int64_t n, const double *truth,
                                        nas_diagnostics *out);
/* The diagnostics as one compact JSON object (estimator, truth, note, n, kendall_tau,
 * spearman_rho, pearson_r, at_k: [...]), the form report.html's best.json and `nascent search
 * --json` carry. Writes at most size bytes, NUL-terminated when size > 0; returns the length the
 * whole text needs (as snprintf), 0 when it cannot be formed. */
NAS_API size_t nas_diagnostics_json(const nas_diagnostics *d, char *buf, size_t size);

/* Many seeded searches of one strategy, no store (nascent benchmark): seeds first_seed ..
 * first_seed + seeds - 1, each `queries` trials; at each checkpoint (ascending query counts) the
 * incumbent's (best reward so far) test accuracy and reward go to test[seed * n_checkpoints + k]
 * and valid[...]. Runs in parallel over seeds; results do not depend on the thread count.
 * *seconds (may be NULL) gets the wall time. */
typedef struct nas_bench_opts {
    int64_t queries, seeds;
    uint64_t first_seed;
    const char *params;        /* strategy parameters, or NULL */
    int n_checkpoints;
    const int64_t *checkpoints;
} nas_bench_opts;

NAS_API nas_status nas_benchmark_run(nas_ctx *ctx, const nas_space *space, const char *strategy,
                                     nas_evaluator *eval, const nas_bench_opts *opts,
                                     double *test, double *valid, double *seconds);

/* Write DIR/report.html (SVG plots: best-so-far against queries, Pareto fronts of accuracy
 * against params and MACs, score histogram, decision rules of the top trials) and DIR/best.json.
 * Creates DIR if needed. */
NAS_API nas_status nas_report_write(nas_ctx *ctx, const nas_space *space,
                                    const nas_study_info *info, const nas_trial *trials,
                                    int64_t n, const char *dir);
/* nas_report_write is this with opts NULL. The report also gets the estimator diagnostics (nas_search_diagnostics:
 * a table, a scatter plot of reward against ground truth, and "diagnostics" in best.json), the
 * Pareto front of reward against latency (trials' latency_ms, labelled with latency_source) or
 * MACs with the non-dominated trials highlighted ("pareto_front" in best.json), and
 * DIR/trials.csv (every trial with its costs and ground truth). opts may be NULL. */
typedef struct nas_report_opts {
    const nas_eval_opts *eval_opts; /* the search's evaluator options, or NULL */
    const char *latency_source;     /* what trials' latency_ms come from, or NULL */
    /* A ground truth from the caller (e.g. final training of the top architectures): n values,
     * NAN where unknown, named by truth_label (note: how it was made). NULL: the automatic one
     * of nas_search_diagnostics. */
    const double *truth;
    const char *truth_label, *truth_note;
} nas_report_opts;

NAS_API nas_status nas_report_write_opts(nas_ctx *ctx, const nas_space *space,
                                         const nas_study_info *info, const nas_trial *trials,
                                         int64_t n, const char *dir,
                                         const nas_report_opts *opts);

/* ================================================== hardware-aware search */
/* Budgets and objectives for any strategy (src/strategies/constrained.c, src/strategies/nsga2.c;
 * costs and budgets in the hardware section). */
typedef struct nas_constraint_opts {
    nas_budget budget;      /* limits no returned architecture may exceed */
    int mnas;               /* 1: tell the inner strategy ACC * (LAT / T)^w (MnasNet) */
    double mnas_target_ms;  /* T; 0: the budget's max_latency_ms */
    double mnas_w;          /* w; 0: -0.07 */
    int64_t max_rejects;    /* infeasible proposals in a row before NAS_ERR_INFEASIBLE; 0: 1e5 */
    int silent_rejects;     /* 1: tell inner nothing about infeasible proposals; 0: the inner
                             * strategy's own handling (re keeps them out of its population,
                             * never re-proposing them), else a failed result (NAN) */
} nas_constraint_opts;

/* A strategy that asks `inner` (taken over: freed with the wrapper, also on failure) until its
 * proposal meets the budget, telling inner of each infeasible one (never evaluated: it costs no
 * query; see silent_rejects), and
 * passes tells on (MnasNet-transformed when asked). cm (not owned) must outlive it; it may be
 * NULL when there is neither a budget nor the MnasNet objective. Check the budget first with
 * nas_budget_check so an impossible one fails before the search. */
NAS_API nas_status nas_strategy_constrain(nas_strategy *inner, nas_cost_model *cm,
                                          const nas_constraint_opts *opts, nas_strategy **out);
/* Infeasible proposals a constrained strategy has turned away (0 for other strategies). */
NAS_API int64_t nas_strategy_rejected(const nas_strategy *s);
/* The cost a multi-objective strategy (nsga2) minimises next to the reward, e.g.
 * nas_cost_latency_cb with a cost model; call before the first ask (a constrained wrapper passes
 * it to its inner strategy). NAS_ERR_UNSUPPORTED for single-objective strategies. A NAN cost
 * counts as +infinity. */
NAS_API nas_status nas_strategy_set_cost(nas_strategy *s,
                                         double (*cost)(void *user, const nas_arch *a),
                                         void *user);

/* ============================================== layout and attention ops (src/ops/matmul.c,
 * crop.c) */

/* Batched matrix product: a [..., M, K] (trans_a: stored [..., K, M]) and b [..., K, N]
 * (trans_b: stored [..., N, K]) give y [..., M, N] = alpha op(a) op(b) for every index of the
 * leading dims, which must be equal (2..4 dims, no broadcasting). Counted in the MACs. */
NAS_API nas_tensor *nas_matmul(nas_graph *g, nas_tensor *a, nas_tensor *b, int trans_a,
                               int trans_b, float alpha);
/* Axis permutation (torch.permute, copied): y.shape[i] = x.shape[perm[i]], perm[0..ndim). */
NAS_API nas_tensor *nas_permute(nas_graph *g, nas_tensor *x, const int *perm);
/* Spatial window of x [N, C, H, W]: y [N, C, h, w], y[n, c, i, j] = x[n, c, top + i, left + j],
 * zero where that falls outside x (a crop, a shift or a zero pad). */
NAS_API nas_tensor *nas_crop(nas_graph *g, nas_tensor *x, int top, int left, int h, int w);

#ifdef __cplusplus
}
#endif
#endif /* NASCENT_H */
