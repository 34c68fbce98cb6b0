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
    NAS_ERR_BACKEND = -10     /* a library underneath (oneDNN, SQLite, ...) failed */
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
/* Seed for the graph's random ops (dropout); advanced every forward. */
NAS_API void nas_graph_set_seed(nas_graph *g, uint64_t seed);
NAS_API int64_t nas_graph_n_nodes(const nas_graph *g);

/* Tensor queries. data is valid after nas_graph_forward (or at once for inputs/params). */
NAS_API int nas_tensor_ndim(const nas_tensor *t);
NAS_API int64_t nas_tensor_dim(const nas_tensor *t, int i);
NAS_API int64_t nas_tensor_numel(const nas_tensor *t);
NAS_API float *nas_tensor_data(const nas_tensor *t);
NAS_API float *nas_tensor_grad(const nas_tensor *t); /* NULL where no gradient flows */
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
NAS_API nas_tensor *nas_linear(nas_graph *g, nas_tensor *x, nas_tensor *w, nas_tensor *bias);

/* Batch norm over N, H, W per channel. gamma/beta may be NULL (affine off). running_mean/var are
 * buffers (nas_param of a NAS_PARAM_BUFFER) or NULL (then eval mode uses batch statistics).
 * Training mode normalises with batch statistics and updates running ones:
 * r = (1 - momentum) r + momentum batch (unbiased variance), as PyTorch. momentum < 0 means a
 * cumulative average over the steps since nas_bn_reset_count (BN recalibration for a sampled
 * subnetwork, supernets). */
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

/* Pooling over H, W. avg: count_pad = 1 divides by k*k always, 0 by the taps inside the input. */
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
NAS_API nas_tensor *nas_channel_shuffle(nas_graph *g, nas_tensor *x, int groups);
NAS_API nas_tensor *nas_zero(nas_graph *g, nas_tensor *x, int stride); /* zeros, spatial / stride */
NAS_API nas_tensor *nas_identity(nas_graph *g, nas_tensor *x);
/* Zero-pad channels to c_out (NAS-RL skip inputs). */
NAS_API nas_tensor *nas_pad_channels(nas_graph *g, nas_tensor *x, int64_t c_out);
NAS_API nas_tensor *nas_reshape(nas_graph *g, nas_tensor *x, int ndim, const int64_t *shape);
NAS_API nas_tensor *nas_dropout(nas_graph *g, nas_tensor *x, float p); /* inverted dropout */
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
 * b [4H] (may be NULL); gate order i, f, g, o as PyTorch. Returns h'; *c_out receives c'. */
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
/* Multiply-accumulates of conv and linear ops for the recorded graph (per batch given). */
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

NAS_API nas_status nas_optim_new(nas_params *p, const nas_optim_config *cfg, nas_optim **out);
NAS_API void nas_optim_free(nas_optim *o);
/* One update with learning rate lr from the gradients in the block. */
NAS_API nas_status nas_optim_step(nas_optim *o, float lr);
/* The state block (for checkpoints): floats and their count. */
NAS_API float *nas_optim_state(const nas_optim *o, int64_t *n);
NAS_API int64_t nas_optim_steps(const nas_optim *o);
NAS_API void nas_optim_set_steps(nas_optim *o, int64_t steps);

/* Learning-rate schedules: lr at a step (0-based) of total_steps. */
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

/* Scale gradients so their global L2 norm is at most max_norm; returns the norm before. */
NAS_API double nas_clip_grad_norm(nas_params *p, int flags_mask, int flags_value, double max_norm);

/* Weight files: a documented binary format with a header, the parameter names and shapes, the
 * values and a checksum (see src/nn/weights.c). Loading checks names, shapes and the checksum:
 * a truncated or foreign file is NAS_ERR_FORMAT naming the file and the byte offset. */
NAS_API nas_status nas_weights_save(const nas_params *p, const char *path);
NAS_API nas_status nas_weights_load(nas_params *p, const char *path);

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
    int aux_head;           /* DARTS evaluation network auxiliary head */
    int search_net;         /* DARTS: the 8-cell C=16 search network instead of 20/36 */
} nas_build_opts;

/* Open a space by name ("nb201", "darts", "mbnet", "nasrl") or by the path of a JSON file. */
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
NAS_API nas_status nas_space_build(nas_ctx *ctx, const nas_space *s, const nas_arch *a,
                                   const nas_build_opts *opts, nas_model **out);
/* Feature vector for predictors (one-hot of each decision's choice); returns its length. */
NAS_API int64_t nas_space_n_features(const nas_space *s);
NAS_API void nas_space_features(const nas_space *s, const nas_arch *a, float *out);

#ifdef __cplusplus
}
#endif
#endif /* NASCENT_H */
