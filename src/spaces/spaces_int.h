/* spaces_int.h - internals of the search-space module: the per-space vtable, the nas_space
 * object every space fills (its decision list), and "netlists", the small data-driven network
 * description from which the darts, mbnet, nasrl and JSON spaces build their models.
 *
 * A space is an ordered list of decisions, each with a finite list of named choices; an
 * architecture (nas_arch) is one choice index per decision. The generic code in space.c does
 * sampling, mutation, neighbours, enumeration, hashing and features from that list alone; a
 * space's vtable adds its text format, its canonical form and its network. */
#ifndef NAS_SPACES_INT_H
#define NAS_SPACES_INT_H

#include "nn/nn_int.h"

typedef struct nas_space_decision {
    char *name;      /* owned */
    int n_choices;
    char **choices;  /* n_choices owned names */
    int default_choice;
} nas_space_decision;

typedef struct nas_snet nas_snet;

typedef struct nas_space_vt {
    const char *kind; /* "nb201", "darts", "mbnet", "nasrl", "json" */
    /* Canonical text of a (valid) architecture into buf; NAS_ERR_ARG if it does not fit. */
    nas_status (*encode)(const nas_space *s, const nas_arch *a, char *buf, size_t size);
    /* Parse text ("default" is handled by space.c). Errors name the offset of the bad token. */
    nas_status (*decode)(nas_ctx *ctx, const nas_space *s, const char *text, nas_arch *out);
    /* Merge isomorphic / equivalent architectures; NULL = identity. */
    void (*canonical)(const nas_space *s, const nas_arch *a, nas_arch *out);
    /* Does decision d influence the network of a? NULL = every decision always matters. */
    int (*active)(const nas_space *s, const nas_arch *a, int d);
    /* Describe the network of a as a netlist (counting or real, see nas_snet) and its input
     * shape and classes (defaults filled in). Errors go to net->status. */
    void (*describe)(const nas_space *s, const nas_arch *a, const nas_build_opts *opts,
                     nas_snet *net, nas_model_shape *shape);
    /* Build the model; NULL = from describe (parameters initialised with seed 0, as the
     * standard nets). nb201 builds through nas_net_nb201 instead. */
    nas_status (*build)(nas_ctx *ctx, const nas_space *s, const nas_arch *a,
                        const nas_build_opts *opts, nas_model **out);
    /* Size when not the product of the choice counts (mbnet: inactive layers); NULL = product. */
    double (*log10_size)(const nas_space *s);
    void (*free_impl)(nas_ctx *ctx, void *impl);
} nas_space_vt;

struct nas_space {
    nas_ctx *ctx;
    const nas_space_vt *vt;
    char *name; /* the registry name or the JSON file's path; owned */
    int n_dec;
    nas_space_decision dec[NAS_ARCH_MAX_DECISIONS];
    void *impl; /* the space's own data, freed by vt->free_impl */
};

/* Opening functions of the built-in spaces (registry in space.c). Each fills s->dec and s->impl
 * and sets s->vt. */
nas_status nas_spaces_open_nb201(nas_space *s);
nas_status nas_spaces_open_darts(nas_space *s);
nas_status nas_spaces_open_mbnet(nas_space *s);
nas_status nas_spaces_open_mbnet32(nas_space *s);
nas_status nas_spaces_open_nasrl(nas_space *s);
nas_status nas_spaces_open_json(nas_space *s, const char *path);
/* The same from JSON text in memory; `file` names it in messages (fuzzing, tests). */
nas_status nas_spaces_open_json_text(nas_space *s, const char *text, const char *file);
/* A whole space from JSON text (the fuzz harness's entry). */
nas_status nas_spaces_open_json_string(nas_ctx *ctx, const char *text, nas_space **out);

/* Append a decision (names copied). */
nas_status nas_spaces_add_decision(nas_space *s, const char *name, int n_choices,
                                   const char *const *choices, int default_choice);
/* Choice index of `text` in decision d (exact match), -1 if none. */
int nas_spaces_find_choice(const nas_space *s, int d, const char *text, size_t len);
/* Format the list of choice names of decision d ("a, b, c") into buf, for error messages. */
const char *nas_spaces_choice_list(const nas_space *s, int d, char *buf, size_t size);
/* Append printf text to buf at *pos; returns NAS_ERR_ARG (with a message) once it overflows. */
nas_status nas_spaces_append(nas_ctx *ctx, char *buf, size_t size, size_t *pos, const char *fmt,
                             ...) __attribute__((format(printf, 5, 6)));

/* nb201 internals shared with tests: the 6 ops of an arch in NB201 edge order, and the
 * xautodl `to_unique_str(consider_zero=True)` string (the rule behind NB201's 6,466). */
void nas_spaces_nb201_ops(const nas_arch *a, nas_nb201_op ops[6]);
void nas_spaces_nb201_xautodl_str(const nas_arch *a, char *buf, size_t size);

/* ------------------------------------------------------------------------------ netlists */

/* A netlist is a network as a list of nodes in topological order; every node names its inputs by
 * index and has one output of shape [C, H, W] per example (H = W = 1 and flat after flatten).
 * Builders declare parameters at once (shapes only: counting works without any forward pass) and
 * the model's forward pass walks the list recording ops. Errors are sticky, as in graphs: a
 * builder that fails returns -1 and every later builder given -1 returns -1. */
typedef enum nas_snode_kind {
    NAS_SN_INPUT = 0,
    NAS_SN_CONV,
    NAS_SN_BN,
    NAS_SN_ACT,
    NAS_SN_MAX_POOL,
    NAS_SN_AVG_POOL,
    NAS_SN_GAP,      /* global average pool to [C, 1, 1] (4-d) */
    NAS_SN_FLATTEN,  /* [C, 1, 1] -> [C] */
    NAS_SN_SUM,
    NAS_SN_CONCAT,
    NAS_SN_MUL,      /* x * gate, gate [C, 1, 1] */
    NAS_SN_ZERO,
    NAS_SN_SHUFFLE,
    NAS_SN_PAD_CHANNELS,
    NAS_SN_DROPOUT,
    NAS_SN_LINEAR,
    NAS_SN_ATTENTION, /* multi-head self-attention over the spatial positions, with residual */
    NAS_SN_CROP,      /* spatial window with zero fill (nas_crop) */
    NAS_SN_COUNT
} nas_snode_kind;

#define NAS_SN_MAX_IN 16

typedef struct nas_snode {
    nas_snode_kind kind;
    int n_in;
    int in[NAS_SN_MAX_IN];
    int c, h, w, flat;   /* output shape of one example */
    nas_conv_block conv;
    nas_bn_block bn;
    nas_linear_block lin;
    nas_linear_block q, kp, v; /* attention: q, k, v projections (lin is the output one) */
    nas_act act;
    int k, stride, pad, count_pad, groups;
    int heads;     /* attention */
    int top, left; /* crop */
    int aux;       /* 1: part of the auxiliary branch (recorded in training mode only) */
    float p;
} nas_snode;

struct nas_snet {
    nas_ctx *ctx;
    nas_params *params; /* owned until the model takes it */
    nas_snode *nodes;
    int n, cap;
    nas_status status;
    const char *kind;   /* the model kind reported by nas_model_kind */
    /* Count-only netlists declare no parameters (params is NULL): builders only add up the
     * trainable parameters and the conv/linear multiply-accumulates for one example, so
     * counting thousands of networks costs no memory traffic. */
    int count_only;
    int64_t n_params, macs;
    /* The auxiliary branch being built (nas_snet_aux_begin/end) and its output (-1: none). */
    int in_aux, aux_out;
    int64_t macs_before_aux;
};

nas_status nas_snet_init(nas_snet *net, nas_ctx *ctx, const char *kind);
void nas_snet_init_count(nas_snet *net, nas_ctx *ctx);
/* Free what the netlist owns (for failure paths before nas_snet_model). */
void nas_snet_deinit(nas_snet *net);
/* Wrap the netlist as a model whose output is the last node (must be flat [classes]). Takes the
 * netlist's memory and parameters whatever the result. */
nas_status nas_snet_model(nas_snet *net, nas_model_shape shape, nas_model **out);

int nas_snet_input(nas_snet *net, int c, int h, int w);
/* pad -1 = same padding dilation * (k - 1) / 2. */
int nas_snet_conv(nas_snet *net, int x, int cout, int k, int stride, int pad, int dilation,
                  int groups, int bias, const char *name);
/* A kh x kw conv (no bias, same padding (k - 1) / 2 per side). */
int nas_snet_conv_rect(nas_snet *net, int x, int cout, int kh, int kw, int stride,
                       const char *name);
int nas_snet_bn(nas_snet *net, int x, int affine, const char *name);
int nas_snet_act(nas_snet *net, int x, nas_act act);
int nas_snet_max_pool(nas_snet *net, int x, int k, int stride, int pad);
int nas_snet_avg_pool(nas_snet *net, int x, int k, int stride, int pad, int count_pad);
int nas_snet_gap(nas_snet *net, int x);
int nas_snet_flatten(nas_snet *net, int x);
int nas_snet_sum(nas_snet *net, int n, const int *xs);
int nas_snet_add(nas_snet *net, int a, int b);
int nas_snet_concat(nas_snet *net, int n, const int *xs);
int nas_snet_mul(nas_snet *net, int x, int gate);
int nas_snet_zero(nas_snet *net, int x, int stride, int cout);
int nas_snet_shuffle(nas_snet *net, int x, int groups);
int nas_snet_pad_channels(nas_snet *net, int x, int cout);
int nas_snet_dropout(nas_snet *net, int x, float p);
int nas_snet_linear(nas_snet *net, int x, int out, const char *name);
/* Multi-head self-attention over the H*W positions of x [C, H, W] with a residual, as
 *   t = x viewed as tokens [N, HW, C];  y = x + (MultiheadAttention(t, t, t) viewed as [N, C, H, W])
 * with torch.nn.MultiheadAttention(C, heads, batch_first=True) semantics: q, k, v and output
 * projections C -> C with bias, heads of C / heads channels, softmax(q k^T / sqrt(C / heads)) v,
 * no dropout, no normalisation. Parameters NAME.{q,k,v,out}_proj.{weight,bias}. Counted MACs:
 * the four projections (4 HW C^2) and both attention products q k^T and attn v (2 (HW)^2 C). */
int nas_snet_attention(nas_snet *net, int x, int heads, const char *name);
/* Spatial window [C, h, w] of x at (top, left), zero outside x (nas_crop). */
int nas_snet_crop(nas_snet *net, int x, int top, int left, int h, int w);
/* Nodes appended between begin and end form an auxiliary branch (DARTS's auxiliary tower):
 * nothing outside it may read them, they are recorded only into graphs in training mode, their
 * parameters count and their MACs do not (MACs are the inference cost of one image). `logits`
 * (flat [classes]) is the branch's output, what nas_model_aux_logits returns. */
void nas_snet_aux_begin(nas_snet *net);
void nas_snet_aux_end(nas_snet *net, int logits);
/* conv (no bias) + BN (+ activation unless NAS_ACT_NONE): the usual unit. */
int nas_snet_conv_bn(nas_snet *net, int x, int cout, int k, int stride, int groups, nas_act act,
                     const char *name);
/* Squeeze-excite: gap, 1x1 conv to mid (bias) + relu, 1x1 conv back (bias) + gate act, x*gate. */
int nas_snet_se(nas_snet *net, int x, int mid, nas_act gate, const char *name);

static inline const nas_snode *nas_snet_node(const nas_snet *net, int i) {
    return &net->nodes[i];
}

/* make_divisible(v, 8) of the MobileNet / OFA code: round to the nearest multiple of divisor,
 * never below min (= divisor) and never more than 10% below v. */
int nas_spaces_make_divisible(double v, int divisor);

#endif
