/* conv_dnnl.c - the oneDNN (2.6, C API) fast path of conv2d and the context's primitive cache.
 *
 * Layouts. Our tensors are NCHW; oneDNN's AVX2 kernels are ~4x faster on blocked layouts
 * (nChw8c activations, OIhw8i8o-style weights), so every primitive is created with
 * format_tag_any and paired with reorders from/to our plain layouts. Outputs that accumulate
 * (dx, dw) are written blocked into scratch and reordered back with a sum post-op, so "+=" costs
 * nothing extra. In training the forward's blocked copy of x is kept in the node's aux space
 * (sized by the planner) and reused by the weight gradient. Where the planner has put x or y
 * itself in the primitive's blocked layout (n->block, ops/layout.c) that side has no reorder at
 * all: the primitive reads and writes the node's buffers directly. Where the conv is the only
 * first writer of dx (nas_grad_first), the data pass stores dx instead of adding to it. Convs
 * that conv_wino.c suits (3x3, 16-64 channels, both sides blocked by 16) run our Winograd
 * kernels on those buffers instead of primitives (wino_runs).
 *
 * Cache. A primitive set (descriptor, primitive, its reorders, memory objects with no data)
 * is created once per (pass, shape, arguments, thread count, flags) and kept in an open-addressing
 * hash table owned by the context (ctx->backend, freed by ctx->backend_free). A hit is a hash of
 * 18 integers plus a probe. Buffers are never allocated per call: blocked temporaries and the
 * user-mode scratchpads are carved from the graph's scratch block (grown once), and memory
 * objects get their data pointers set before each execution. */
#include "conv_int.h"

#include <dnnl.h>
#include <stdlib.h>

enum conv_pass { PASS_FWD_INFER = 0, PASS_FWD_TRAIN, PASS_BWD_DATA, PASS_BWD_WEIGHTS };

#define KEY_LEN 18
/* Flags (the key's last slot): which side is already in the primitive's layout, whether
 * the data pass may overwrite dx (the conv writes it first) instead of adding to it, and whether
 * the training passes may use Winograd (see winograd_suits). */
enum { NATIVE_X = 1, NATIVE_Y = 2, OVERWRITE_DX = 4, WINOGRAD = 8 };
/* Entries; past this the cache is flushed (NAS-RL spaces make many shapes). */
#define CACHE_MAX 4096
#define ALIGN 64

typedef struct conv_key {
    int64_t v[KEY_LEN];
} conv_key;

/* One tensor of a primitive: its plain (our) layout and the one the primitive wants. */
typedef struct conv_port {
    int reorder;         /* the primitive's layout differs from the plain one */
    int temp;            /* the primitive's buffer lives in scratch (reorder, or an add after) */
    size_t bytes;        /* bytes of the primitive's layout */
    size_t offset;       /* of its buffer in the entry's scratch */
    dnnl_primitive_t rp; /* plain -> prim (inputs) or prim -> plain, "+=" for gradients */
    dnnl_memory_t plain, prim;
} conv_port;

typedef struct conv_entry {
    conv_key key;
    dnnl_primitive_desc_t pd;
    dnnl_primitive_t prim;
    dnnl_memory_t scratch_mem;  /* the primitive's scratchpad */
    dnnl_memory_t rscratch_mem; /* the reorders' scratchpad (shared, at one offset) */
    dnnl_memory_t bias;         /* bias / diff_bias, plain [O], or NULL */
    size_t scratch_bytes, rscratch_bytes, rscratch_offset, bias_offset;
    size_t total; /* scratch bytes one execution needs */
    conv_port io[3];
    /* fwd: src, weights, dst; bwd data: diff_src, weights, diff_dst;
     * bwd weights: src, diff_weights, diff_dst */
} conv_entry;

typedef struct conv_cache {
    nas_conv_backend mode;
    int winograd;     /* Winograd allowed where it suits (NAS_CONV_WINOGRAD=0 turns it off) */
    int engine_state; /* 0 not tried, 1 ready, -1 failed */
    dnnl_engine_t eng;
    dnnl_stream_t strm;
    conv_entry **slots;
    int64_t cap, count;
} conv_cache;

static size_t align_up(size_t x) {
    return (x + ALIGN - 1) & ~(size_t)(ALIGN - 1);
}

/* ---- the cache object owned by the context */

static void entry_free(nas_ctx *ctx, conv_entry *e) {
    if (e == NULL) {
        return;
    }
    for (int i = 0; i < 3; i++) {
        conv_port *p = &e->io[i];
        if (p->rp != NULL) {
            dnnl_primitive_destroy(p->rp);
        }
        if (p->plain != NULL) {
            dnnl_memory_destroy(p->plain);
        }
        if (p->prim != NULL) {
            dnnl_memory_destroy(p->prim);
        }
    }
    if (e->scratch_mem != NULL) {
        dnnl_memory_destroy(e->scratch_mem);
    }
    if (e->rscratch_mem != NULL) {
        dnnl_memory_destroy(e->rscratch_mem);
    }
    if (e->bias != NULL) {
        dnnl_memory_destroy(e->bias);
    }
    if (e->prim != NULL) {
        dnnl_primitive_destroy(e->prim);
    }
    if (e->pd != NULL) {
        dnnl_primitive_desc_destroy(e->pd);
    }
    nas_free(ctx, e, sizeof(*e));
}

static void cache_clear(nas_ctx *ctx, conv_cache *c) {
    for (int64_t i = 0; i < c->cap; i++) {
        entry_free(ctx, c->slots[i]);
        c->slots[i] = NULL;
    }
    c->count = 0;
}

static void cache_free(nas_ctx *ctx, void *backend) {
    conv_cache *c = backend;
    if (c == NULL) {
        return;
    }
    cache_clear(ctx, c);
    nas_free(ctx, c->slots, (size_t)c->cap * sizeof(conv_entry *));
    if (c->strm != NULL) {
        dnnl_stream_destroy(c->strm);
    }
    if (c->eng != NULL) {
        dnnl_engine_destroy(c->eng);
    }
    nas_free(ctx, c, sizeof(*c));
}

static int winograd_from_env(void) {
    const char *s = getenv("NAS_CONV_WINOGRAD");
    return s == NULL || strcmp(s, "0") != 0;
}

static nas_conv_backend mode_from_env(void) {
    const char *s = getenv("NAS_CONV_BACKEND");
    if (s == NULL) {
        return NAS_CONV_AUTO;
    }
    if (strcmp(s, "naive") == 0) {
        return NAS_CONV_NAIVE;
    }
    if (strcmp(s, "dnnl") == 0) {
        return NAS_CONV_DNNL;
    }
    return NAS_CONV_AUTO;
}

/* The context's cache, created on first use; NULL only when out of memory. */
static conv_cache *cache_of(nas_ctx *ctx) {
    if (ctx->backend != NULL) {
        return ctx->backend;
    }
    conv_cache *c = nas_calloc(ctx, 1, sizeof(conv_cache));
    if (c == NULL) {
        return NULL;
    }
    c->mode = mode_from_env();
    c->winograd = winograd_from_env();
    ctx->backend = c;
    ctx->backend_free = cache_free;
    return c;
}

void nas_conv_set_backend(nas_ctx *ctx, nas_conv_backend b) {
    conv_cache *c = cache_of(ctx);
    if (c != NULL) {
        c->mode = b;
    }
}

void nas_conv_set_winograd(nas_ctx *ctx, int on) {
    conv_cache *c = cache_of(ctx);
    if (c != NULL) {
        c->winograd = on != 0;
    }
}

nas_conv_backend nas_conv_get_backend(nas_ctx *ctx) {
    conv_cache *c = cache_of(ctx);
    return c != NULL ? c->mode : NAS_CONV_NAIVE;
}

int64_t nas_conv_dnnl_cache_size(nas_ctx *ctx) {
    conv_cache *c = cache_of(ctx);
    return c != NULL ? c->count : 0;
}

static int engine_ready(conv_cache *c) {
    if (c->engine_state == 0) {
        c->engine_state = -1;
        if (dnnl_engine_create(&c->eng, dnnl_cpu, 0) == dnnl_success) {
            if (dnnl_stream_create(&c->strm, c->eng, dnnl_stream_default_flags) == dnnl_success) {
                c->engine_state = 1;
            }
        }
    }
    return c->engine_state == 1;
}

/* ---- keys and lookup */

/* Winograd F(4x4, 3x3) (oneDNN's AVX-512 kernels; none on AVX2, where the direct kernels are
 * used) does a 3x3 stride-1 convolution in ~1/4 of the multiplies at the price of transforms that
 * cost memory traffic, and rounds a little differently. Measured on a 2-core AVX-512 machine
 * (bench/RESULTS.md), ms per pass direct -> Winograd at batch 64: 64 channels 8x8: forward 0.62 ->
 * 0.36, data 0.62 -> 0.35, weights 0.67 -> 0.54; 32 channels 16x16: 0.69 -> 0.53, 0.64 -> 0.50,
 * 0.68 -> 0.70; 16 channels 32x32: 0.89 -> 1.31, 0.69 -> 1.20, 0.73 -> 1.18. Forward + both
 * backward passes at 64 channels 8x8: batch 1 0.06 -> 0.13, batch 8 0.27 -> 0.30, batch 16
 * 0.53-0.58 -> 0.38-0.41. Outputs that 4x4 tiles do not cover exactly lose (batch 128, 32
 * channels 14x14: forward 1.16 -> 1.67, data 1.24 -> 1.38, weights 1.12 -> 1.96). So the training
 * passes with >= 32 channels in and out (>= 64 for the weight gradient), outputs a multiple of 4
 * high and wide and a batch of 16 or more; inference keeps oneDNN's NHWC direct kernels. The
 * choice depends on the shape (and whether the machine has AVX-512) alone, so scores stay
 * reproducible. Passes of one conv may mix the two algorithms (oneDNN takes either hint). Inside
 * blocked regions the 16- to 64-channel convs run our own Winograd instead (wino_runs). */
static int winograd_suits(const conv_cache *c, int pass, const nas_conv_geom *g) {
    const int64_t min_channels = pass == PASS_BWD_WEIGHTS ? 64 : 32;
    return c->winograd && pass != PASS_FWD_INFER && g->groups == 1 && g->KH == 3 && g->KW == 3 &&
           g->sh == 1 && g->sw == 1 && g->dh == 1 && g->dw == 1 && g->C >= min_channels &&
           g->O >= min_channels && g->OH % 4 == 0 && g->OW % 4 == 0 && g->N >= 16;
}

static conv_key key_make(int pass, const nas_conv_geom *g, int has_bias, int flags) {
    conv_key k = {{pass, g->N, g->C, g->H, g->W, g->O, g->KH, g->KW, g->sh, g->sw, g->ph, g->pw,
                   g->dh, g->dw, g->groups, has_bias, nas_max_threads(), flags}};
    return k;
}

static uint64_t key_hash(const conv_key *k) {
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < KEY_LEN; i++) {
        h ^= (uint64_t)k->v[i];
        h *= 1099511628211ull;
        h ^= h >> 29;
    }
    return h;
}

static int key_equal(const conv_key *a, const conv_key *b) {
    return memcmp(a->v, b->v, sizeof(a->v)) == 0;
}

static nas_status cache_grow(nas_ctx *ctx, conv_cache *c) {
    const int64_t cap = c->cap == 0 ? 64 : c->cap * 2;
    conv_entry **slots = nas_calloc(ctx, (size_t)cap, sizeof(conv_entry *));
    if (slots == NULL) {
        return NAS_ERR_NOMEM;
    }
    for (int64_t i = 0; i < c->cap; i++) {
        conv_entry *e = c->slots[i];
        if (e != NULL) {
            int64_t s = (int64_t)(key_hash(&e->key) & (uint64_t)(cap - 1));
            while (slots[s] != NULL) {
                s = (s + 1) & (cap - 1);
            }
            slots[s] = e;
        }
    }
    nas_free(ctx, c->slots, (size_t)c->cap * sizeof(conv_entry *));
    c->slots = slots;
    c->cap = cap;
    return NAS_OK;
}

/* ---- building an entry */

#define DNNL_TRY(call)                                                                             \
    do {                                                                                           \
        const dnnl_status_t s_ = (call);                                                           \
        if (s_ != dnnl_success) {                                                                  \
            return s_;                                                                             \
        }                                                                                          \
    } while (0)

typedef struct conv_mds {
    dnnl_memory_desc_t src, wei, dst, bias;       /* plain */
    dnnl_memory_desc_t src_any, wei_any, dst_any; /* format_tag_any */
    dnnl_dims_t strides, dilates, pad_l, pad_r;
} conv_mds;

static dnnl_status_t mds_make(const nas_conv_geom *g, conv_mds *m) {
    const dnnl_dims_t src = {g->N, g->C, g->H, g->W}, dst = {g->N, g->O, g->OH, g->OW};
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&m->src, 4, src, dnnl_f32, dnnl_nchw));
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&m->dst, 4, dst, dnnl_f32, dnnl_nchw));
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&m->src_any, 4, src, dnnl_f32, dnnl_format_tag_any));
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&m->dst_any, 4, dst, dnnl_f32, dnnl_format_tag_any));
    if (g->groups == 1) {
        const dnnl_dims_t w = {g->O, g->C, g->KH, g->KW};
        DNNL_TRY(dnnl_memory_desc_init_by_tag(&m->wei, 4, w, dnnl_f32, dnnl_oihw));
        DNNL_TRY(dnnl_memory_desc_init_by_tag(&m->wei_any, 4, w, dnnl_f32, dnnl_format_tag_any));
    } else {
        /* [O, C/G, KH, KW] in memory is exactly goihw with dims [G, O/G, C/G, KH, KW] */
        const dnnl_dims_t w = {g->groups, g->O / g->groups, g->C / g->groups, g->KH, g->KW};
        DNNL_TRY(dnnl_memory_desc_init_by_tag(&m->wei, 5, w, dnnl_f32, dnnl_goihw));
        DNNL_TRY(dnnl_memory_desc_init_by_tag(&m->wei_any, 5, w, dnnl_f32, dnnl_format_tag_any));
    }
    const dnnl_dims_t b = {g->O};
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&m->bias, 1, b, dnnl_f32, dnnl_x));
    m->strides[0] = g->sh;
    m->strides[1] = g->sw;
    m->dilates[0] = g->dh - 1;
    m->dilates[1] = g->dw - 1;
    m->pad_l[0] = g->ph;
    m->pad_l[1] = g->pw;
    /* the right padding the output size actually uses (<= the left one) */
    m->pad_r[0] = (g->OH - 1) * g->sh + g->dh * (g->KH - 1) + 1 - g->H - g->ph;
    m->pad_r[1] = (g->OW - 1) * g->sw + g->dw * (g->KW - 1) + 1 - g->W - g->pw;
    return dnnl_success;
}

static dnnl_status_t attr_make(dnnl_primitive_attr_t *attr, int sum) {
    DNNL_TRY(dnnl_primitive_attr_create(attr));
    dnnl_status_t s = dnnl_primitive_attr_set_scratchpad_mode(*attr, dnnl_scratchpad_mode_user);
    if (s == dnnl_success && sum) {
        dnnl_post_ops_t po;
        s = dnnl_post_ops_create(&po);
        if (s == dnnl_success) {
            s = dnnl_post_ops_append_sum(po, 1.0f);
            if (s == dnnl_success) {
                s = dnnl_primitive_attr_set_post_ops(*attr, po);
            }
            dnnl_post_ops_destroy(po);
        }
    }
    if (s != dnnl_success) {
        dnnl_primitive_attr_destroy(*attr);
    }
    return s;
}

static size_t pd_scratch_bytes(const_dnnl_primitive_desc_t pd) {
    const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    return md != NULL ? dnnl_memory_desc_get_size(md) : 0;
}

/* Set up a port: `plain` is our layout, `q` the primitive's query; is_output: the primitive
 * writes it; accumulate: the plain tensor gets "+=" (gradients); native: our tensor is already
 * in the primitive's layout (a blocked node). *rscratch grows to the largest reorder
 * scratchpad. */
static dnnl_status_t port_make(conv_cache *c, conv_entry *e, conv_port *p,
                               const dnnl_memory_desc_t *plain, dnnl_query_t q, int is_output,
                               int accumulate, int native) {
    const dnnl_memory_desc_t *prim = dnnl_primitive_desc_query_md(e->pd, q, 0);
    if (prim == NULL) {
        return dnnl_runtime_error;
    }
    if (native) {
        plain = prim;
    }
    p->reorder = !dnnl_memory_desc_equal(prim, plain);
    p->temp = p->reorder || (is_output && accumulate);
    p->bytes = dnnl_memory_desc_get_size(prim);
    DNNL_TRY(dnnl_memory_create(&p->plain, plain, c->eng, DNNL_MEMORY_NONE));
    DNNL_TRY(dnnl_memory_create(&p->prim, prim, c->eng, DNNL_MEMORY_NONE));
    if (!p->reorder) {
        return dnnl_success;
    }
    dnnl_primitive_attr_t attr;
    DNNL_TRY(attr_make(&attr, is_output && accumulate));
    dnnl_primitive_desc_t rpd;
    dnnl_status_t s =
        is_output ? dnnl_reorder_primitive_desc_create(&rpd, prim, c->eng, plain, c->eng, attr)
                  : dnnl_reorder_primitive_desc_create(&rpd, plain, c->eng, prim, c->eng, attr);
    dnnl_primitive_attr_destroy(attr);
    if (s != dnnl_success) {
        return s;
    }
    const size_t rs = pd_scratch_bytes(rpd);
    e->rscratch_bytes = rs > e->rscratch_bytes ? rs : e->rscratch_bytes;
    s = dnnl_primitive_create(&p->rp, rpd);
    dnnl_primitive_desc_destroy(rpd);
    return s;
}

/* The primitive descriptor of one pass with algorithm `algo` into *pd. */
static dnnl_status_t pd_create(conv_cache *c, int pass, conv_mds *m, int has_bias,
                               dnnl_alg_kind_t algo, const_dnnl_primitive_desc_t hint,
                               dnnl_primitive_desc_t *pd) {
    dnnl_convolution_desc_t cd;
    const dnnl_memory_desc_t *bias = has_bias ? &m->bias : NULL;
    if (pass == PASS_FWD_INFER || pass == PASS_FWD_TRAIN) {
        DNNL_TRY(dnnl_dilated_convolution_forward_desc_init(
            &cd, pass == PASS_FWD_TRAIN ? dnnl_forward_training : dnnl_forward_inference, algo,
            &m->src_any, &m->wei_any, bias, &m->dst_any, m->strides, m->dilates, m->pad_l,
            m->pad_r));
    } else if (pass == PASS_BWD_DATA) {
        DNNL_TRY(dnnl_dilated_convolution_backward_data_desc_init(
            &cd, algo, &m->src_any, &m->wei_any, &m->dst_any, m->strides, m->dilates, m->pad_l,
            m->pad_r));
    } else {
        DNNL_TRY(dnnl_dilated_convolution_backward_weights_desc_init(
            &cd, algo, &m->src_any, &m->wei_any, bias, &m->dst_any, m->strides, m->dilates,
            m->pad_l, m->pad_r));
    }
    dnnl_primitive_attr_t attr;
    DNNL_TRY(attr_make(&attr, 0));
    const dnnl_status_t s = dnnl_primitive_desc_create(pd, &cd, attr, c->eng, hint);
    dnnl_primitive_attr_destroy(attr);
    if (s != dnnl_success) {
        *pd = NULL;
    }
    return s;
}

static dnnl_status_t entry_build(conv_cache *c, conv_entry *e, int pass, const nas_conv_geom *g,
                                 int has_bias, int flags, const_dnnl_primitive_desc_t hint) {
    const int nx = (flags & NATIVE_X) != 0, ny = (flags & NATIVE_Y) != 0;
    conv_mds m;
    DNNL_TRY(mds_make(g, &m));
    dnnl_status_t s = dnnl_unimplemented;
    if (flags & WINOGRAD) { /* unimplemented without AVX-512: the direct kernels then */
        s = pd_create(c, pass, &m, has_bias, dnnl_convolution_winograd, hint, &e->pd);
    }
    if (s == dnnl_unimplemented) {
        s = pd_create(c, pass, &m, has_bias, dnnl_convolution_direct, hint, &e->pd);
    }
    if (s != dnnl_success) {
        return s;
    }
    DNNL_TRY(dnnl_primitive_create(&e->prim, e->pd));
    if (pass == PASS_FWD_INFER || pass == PASS_FWD_TRAIN) {
        DNNL_TRY(port_make(c, e, &e->io[0], &m.src, dnnl_query_src_md, 0, 0, nx));
        DNNL_TRY(port_make(c, e, &e->io[1], &m.wei, dnnl_query_weights_md, 0, 0, 0));
        DNNL_TRY(port_make(c, e, &e->io[2], &m.dst, dnnl_query_dst_md, 1, 0, ny));
    } else if (pass == PASS_BWD_DATA) {
        DNNL_TRY(port_make(c, e, &e->io[0], &m.src, dnnl_query_diff_src_md, 1,
                           (flags & OVERWRITE_DX) == 0, nx));
        DNNL_TRY(port_make(c, e, &e->io[1], &m.wei, dnnl_query_weights_md, 0, 0, 0));
        DNNL_TRY(port_make(c, e, &e->io[2], &m.dst, dnnl_query_diff_dst_md, 0, 0, ny));
    } else {
        DNNL_TRY(port_make(c, e, &e->io[0], &m.src, dnnl_query_src_md, 0, 0, nx));
        DNNL_TRY(port_make(c, e, &e->io[1], &m.wei, dnnl_query_diff_weights_md, 1, 1, 0));
        DNNL_TRY(port_make(c, e, &e->io[2], &m.dst, dnnl_query_diff_dst_md, 0, 0, ny));
    }
    if (has_bias && pass != PASS_BWD_DATA) {
        DNNL_TRY(dnnl_memory_create(&e->bias, &m.bias, c->eng, DNNL_MEMORY_NONE));
    }
    /* scratch plan: [primitive scratchpad][reorder scratchpad][temporaries...][diff_bias] */
    e->scratch_bytes = pd_scratch_bytes(e->pd);
    size_t at = align_up(e->scratch_bytes);
    e->rscratch_offset = at;
    at += align_up(e->rscratch_bytes);
    for (int i = 0; i < 3; i++) {
        e->io[i].offset = at;
        at += e->io[i].temp ? align_up(e->io[i].bytes) : 0;
    }
    e->bias_offset = at;
    at += pass == PASS_BWD_WEIGHTS && has_bias ? align_up((size_t)g->O * sizeof(float)) : 0;
    e->total = at;
    if (e->scratch_bytes > 0) {
        const dnnl_memory_desc_t *md =
            dnnl_primitive_desc_query_md(e->pd, dnnl_query_scratchpad_md, 0);
        DNNL_TRY(dnnl_memory_create(&e->scratch_mem, md, c->eng, DNNL_MEMORY_NONE));
    }
    if (e->rscratch_bytes > 0) {
        const dnnl_dims_t d = {(dnnl_dim_t)e->rscratch_bytes};
        dnnl_memory_desc_t md;
        DNNL_TRY(dnnl_memory_desc_init_by_tag(&md, 1, d, dnnl_u8, dnnl_x));
        DNNL_TRY(dnnl_memory_create(&e->rscratch_mem, &md, c->eng, DNNL_MEMORY_NONE));
    }
    return dnnl_success;
}

/* The cached entry for (pass, geometry, flags); created on a miss. NULL with *st set when
 * oneDNN has no implementation (NAS_ERR_UNSUPPORTED) or something failed. */
static conv_entry *entry_get(nas_ctx *ctx, conv_cache *c, int pass, const nas_conv_geom *g,
                             int has_bias, int flags, nas_status *st) {
    flags = (flags & ~WINOGRAD) | (winograd_suits(c, pass, g) ? WINOGRAD : 0);
    const conv_key k = key_make(pass, g, has_bias, flags);
    const uint64_t h = key_hash(&k);
    if (c->cap > 0) {
        for (int64_t s = (int64_t)(h & (uint64_t)(c->cap - 1));; s = (s + 1) & (c->cap - 1)) {
            conv_entry *e = c->slots[s];
            if (e == NULL) {
                break;
            }
            if (key_equal(&e->key, &k)) {
                return e;
            }
        }
    }
    /* miss: backward passes need the training forward as a hint */
    const_dnnl_primitive_desc_t hint = NULL;
    if (pass == PASS_BWD_DATA || pass == PASS_BWD_WEIGHTS) {
        conv_entry *f =
            entry_get(ctx, c, PASS_FWD_TRAIN, g, has_bias, flags & (NATIVE_X | NATIVE_Y), st);
        if (f == NULL) {
            return NULL;
        }
        hint = f->pd;
    }
    if ((c->count + 1) * 2 > c->cap && cache_grow(ctx, c) != NAS_OK) {
        *st = nas_fail(ctx, NAS_ERR_NOMEM, "conv2d: out of memory for the primitive cache");
        return NULL;
    }
    conv_entry *e = nas_calloc(ctx, 1, sizeof(conv_entry));
    if (e == NULL) {
        *st = NAS_ERR_NOMEM;
        return NULL;
    }
    e->key = k;
    const dnnl_status_t ds = entry_build(c, e, pass, g, has_bias, flags, hint);
    if (ds != dnnl_success) {
        entry_free(ctx, e);
        if (ds == dnnl_unimplemented) {
            *st = NAS_ERR_UNSUPPORTED;
        } else {
            *st = nas_fail(ctx, NAS_ERR_BACKEND,
                           "conv2d: oneDNN failed (status %d) for x [%lld, "
                           "%lld, %lld, %lld] -> %lld channels, kernel %lldx%lld",
                           (int)ds, (long long)g->N, (long long)g->C, (long long)g->H,
                           (long long)g->W, (long long)g->O, (long long)g->KH, (long long)g->KW);
        }
        return NULL;
    }
    int64_t s = (int64_t)(h & (uint64_t)(c->cap - 1));
    while (c->slots[s] != NULL) {
        s = (s + 1) & (c->cap - 1);
    }
    c->slots[s] = e;
    c->count++;
    return e;
}

/* ---- execution */

static dnnl_status_t set_handle(dnnl_memory_t m, void *p) {
    return dnnl_memory_set_data_handle(m, p);
}

static dnnl_status_t exec_reorder(conv_cache *c, conv_entry *e, dnnl_primitive_t rp,
                                  dnnl_memory_t from, dnnl_memory_t to) {
    dnnl_exec_arg_t a[3] = {
        {DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}, {DNNL_ARG_SCRATCHPAD, e->rscratch_mem}};
    return dnnl_primitive_execute(rp, c->strm, e->rscratch_mem != NULL ? 3 : 2, a);
}

/* Point an input port at `plain` data and give the primitive its layout: reorder into scratch
 * (or into `keep`, a caller buffer such as aux, when not NULL). Returns the memory to pass. */
static dnnl_status_t port_in(conv_cache *c, conv_entry *e, conv_port *p, char *base,
                             const float *plain, void *keep, dnnl_memory_t *out) {
    if (!p->reorder) {
        DNNL_TRY(set_handle(p->plain, (void *)plain));
        *out = p->plain;
        return dnnl_success;
    }
    DNNL_TRY(set_handle(p->plain, (void *)plain));
    DNNL_TRY(set_handle(p->prim, keep != NULL ? keep : base + p->offset));
    DNNL_TRY(exec_reorder(c, e, p->rp, p->plain, p->prim));
    *out = p->prim;
    return dnnl_success;
}

/* An input port whose primitive-layout data is already at `ready` (no reorder). */
static dnnl_status_t port_ready(conv_port *p, void *ready, dnnl_memory_t *out) {
    DNNL_TRY(set_handle(p->prim, ready));
    *out = p->prim;
    return dnnl_success;
}

/* Output port before execution: the memory the primitive writes. */
static dnnl_status_t port_out(conv_port *p, char *base, float *plain, dnnl_memory_t *out) {
    DNNL_TRY(set_handle(p->plain, plain));
    if (!p->temp) {
        *out = p->plain;
        return dnnl_success;
    }
    DNNL_TRY(set_handle(p->prim, base + p->offset));
    *out = p->prim;
    return dnnl_success;
}

/* Output port after execution: move (or add) the result to the plain tensor. */
static dnnl_status_t port_finish(conv_cache *c, conv_entry *e, conv_port *p, char *base,
                                 float *plain, int64_t numel) {
    if (p->reorder) {
        return exec_reorder(c, e, p->rp, p->prim, p->plain);
    }
    if (p->temp) { /* same layout, accumulate */
        const float *t = (const float *)(base + p->offset);
        NAS_OMP_FOR
        for (int64_t i = 0; i < numel; i++) {
            plain[i] += t[i];
        }
    }
    return dnnl_success;
}

static dnnl_status_t exec_conv(conv_cache *c, conv_entry *e, char *base, dnnl_exec_arg_t *a,
                               int na) {
    if (e->scratch_mem != NULL) {
        DNNL_TRY(set_handle(e->scratch_mem, base));
        a[na++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, e->scratch_mem};
    }
    if (e->rscratch_mem != NULL) {
        DNNL_TRY(set_handle(e->rscratch_mem, base + e->rscratch_offset));
    }
    return dnnl_primitive_execute(e->prim, c->strm, na, a);
}

static nas_status backend_error(nas_ctx *ctx, const char *what, dnnl_status_t s) {
    return nas_fail(ctx, NAS_ERR_BACKEND, "conv2d: oneDNN %s failed (status %d)", what, (int)s);
}

/* Ready the cache and engine; NULL with *st when the fast path cannot run. */
static conv_cache *ready_cache(nas_ctx *ctx, nas_status *st) {
    conv_cache *c = cache_of(ctx);
    if (c == NULL) {
        *st = NAS_ERR_NOMEM;
        return NULL;
    }
    if (c->mode == NAS_CONV_NAIVE || !engine_ready(c)) {
        *st = NAS_ERR_UNSUPPORTED;
        return NULL;
    }
    return c;
}

/* Which sides of conv node n are in the primitive's layout already (NATIVE_X, NATIVE_Y). */
static int native_of(const nas_node *n) {
    return (n->src[0]->block != 0 ? NATIVE_X : 0) | (n->block != 0 ? NATIVE_Y : 0);
}

/* Our Winograd (conv_wino.c) runs every pass of the 3x3 convs with 16 to 64 channels whose two
 * sides the planner put in the 16-channel blocked layout. Off with the rest of Winograd
 * (NAS_CONV_WINOGRAD=0). */
static int wino_runs(const conv_cache *c, const nas_node *n, const nas_conv_geom *g) {
    return c->winograd && n->block == 16 && n->src[0]->block == 16 &&
           nas_conv_wino_suits(g, n->n_src == 3);
}

/* What a backward of node n runs: the data and weight passes it needs (NULL when that gradient
 * is not wanted; the planner has placed the grads before any forward), the forward entry whose
 * blocked x it reuses, and the scratch it takes: one block [bwd data][bwd weights]. */
typedef struct backward_plan {
    conv_entry *data, *weights, *fwd;
    size_t scratch;
} backward_plan;

static nas_status backward_entries(nas_graph *g, conv_cache *c, const nas_node *n, int overwrite_dx,
                                   backward_plan *bp) {
    const nas_node *x = n->src[0], *w = n->src[1];
    const int has_bias = n->n_src == 3, native = native_of(n);
    const nas_conv_geom geom = nas_conv_geom_of(n);
    nas_status st = NAS_OK;
    memset(bp, 0, sizeof(*bp));
    if (x->grad != NULL) {
        /* a dx this conv writes first is written directly: no scratch copy, no "+=" pass */
        const int flags = native | (overwrite_dx ? OVERWRITE_DX : 0);
        bp->data = entry_get(g->ctx, c, PASS_BWD_DATA, &geom, has_bias, flags, &st);
        if (bp->data == NULL) {
            return st;
        }
    }
    if (w->grad != NULL) {
        bp->weights = entry_get(g->ctx, c, PASS_BWD_WEIGHTS, &geom, has_bias, native, &st);
        if (bp->weights == NULL) {
            return st;
        }
        if (n->iparam[NAS_CONV_IP_AUX_SRC]) {
            bp->fwd = entry_get(g->ctx, c, PASS_FWD_TRAIN, &geom, has_bias, native, &st);
            if (bp->fwd == NULL) {
                return st;
            }
        }
    }
    bp->scratch = (bp->data != NULL ? align_up(bp->data->total) : 0) +
                  (bp->weights != NULL ? bp->weights->total : 0);
    return NAS_OK;
}

size_t nas_conv_dnnl_aux_bytes(nas_graph *g, const nas_conv_geom *geom, int has_bias) {
    nas_status st = NAS_OK;
    conv_cache *c = ready_cache(g->ctx, &st);
    if (c == NULL) {
        return 0;
    }
    const conv_entry *e = entry_get(g->ctx, c, PASS_FWD_TRAIN, geom, has_bias, 0, &st);
    if (e == NULL) {
        nas_clear_error(g->ctx); /* forward meets the same case and reports it */
        return 0;
    }
    return e->io[0].reorder ? e->io[0].bytes : 0;
}

nas_status nas_conv_dnnl_forward(nas_graph *g, nas_node *n) {
    nas_status st = NAS_OK;
    conv_cache *c = ready_cache(g->ctx, &st);
    if (c == NULL) {
        return st;
    }
    const nas_conv_geom geom = nas_conv_geom_of(n);
    if (wino_runs(c, n, &geom)) {
        /* the same scratch serves its backward, which so cannot fail */
        float *scratch = nas_graph_scratch(g, nas_conv_wino_scratch_bytes(&geom, 1));
        if (scratch == NULL) {
            return NAS_ERR_NOMEM;
        }
        const float *w = n->src[1]->data;
        nas_conv_wino_forward(&geom, n->src[0]->data, &w, &n->data, 1, scratch);
        return NAS_OK;
    }
    const int has_bias = n->n_src == 3;
    const int pass = g->grad_enabled ? PASS_FWD_TRAIN : PASS_FWD_INFER;
    const int native = native_of(n);
    if (c->count >= CACHE_MAX) {
        /* flushed only here, so entries a backward looked up stay valid through it */
        cache_clear(g->ctx, c);
    }
    conv_entry *e = entry_get(g->ctx, c, pass, &geom, has_bias, native, &st);
    if (e == NULL) {
        return st;
    }
    /* a blocked node's backward must not fail (the naive kernels cannot read its layout):
     * its entries and scratch are made now, where an error can still be returned */
    size_t need = e->total;
    if (native != 0 && pass == PASS_FWD_TRAIN) {
        /* whether this conv will write dx first is known only when a backward starts: both */
        for (int overwrite_dx = 0; overwrite_dx < 2; overwrite_dx++) {
            backward_plan bp;
            st = backward_entries(g, c, n, overwrite_dx, &bp);
            if (st != NAS_OK) {
                return st;
            }
            need = bp.scratch > need ? bp.scratch : need;
        }
    }
    char *base = nas_graph_scratch(g, need);
    if (base == NULL) {
        return NAS_ERR_NOMEM;
    }
    /* training keeps the blocked x in aux for the weight gradient */
    void *keep = NULL;
    if (pass == PASS_FWD_TRAIN && e->io[0].reorder && n->aux != NULL &&
        n->aux_bytes >= e->io[0].bytes) {
        keep = n->aux;
    }
    dnnl_exec_arg_t a[6];
    dnnl_memory_t src = NULL, wei = NULL, dst = NULL;
    dnnl_status_t s = port_in(c, e, &e->io[0], base, n->src[0]->data, keep, &src);
    if (s == dnnl_success) {
        s = port_in(c, e, &e->io[1], base, n->src[1]->data, NULL, &wei);
    }
    if (s == dnnl_success) {
        s = port_out(&e->io[2], base, n->data, &dst);
    }
    int na = 0;
    a[na++] = (dnnl_exec_arg_t){DNNL_ARG_SRC, src};
    a[na++] = (dnnl_exec_arg_t){DNNL_ARG_WEIGHTS, wei};
    a[na++] = (dnnl_exec_arg_t){DNNL_ARG_DST, dst};
    if (s == dnnl_success && has_bias) {
        s = set_handle(e->bias, n->src[2]->data);
        a[na++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, e->bias};
    }
    if (s == dnnl_success) {
        s = exec_conv(c, e, base, a, na);
    }
    if (s == dnnl_success) {
        s = port_finish(c, e, &e->io[2], base, n->data, n->numel);
    }
    if (s != dnnl_success) {
        return backend_error(g->ctx, "forward", s);
    }
    n->iparam[NAS_CONV_IP_AUX_SRC] = keep != NULL;
    return NAS_OK;
}

/* dx += conv_backward_data(dy, w). `dy_ready`: dy already in this primitive's layout or NULL. */
static dnnl_status_t run_bwd_data(conv_cache *c, conv_entry *e, char *base, nas_node *n,
                                  void *dy_ready) {
    nas_node *x = n->src[0], *w = n->src[1];
    dnnl_memory_t dx, wei, dy;
    DNNL_TRY(port_out(&e->io[0], base, x->grad, &dx));
    DNNL_TRY(port_in(c, e, &e->io[1], base, w->data, NULL, &wei));
    if (dy_ready != NULL) {
        DNNL_TRY(port_ready(&e->io[2], dy_ready, &dy));
    } else {
        DNNL_TRY(port_in(c, e, &e->io[2], base, n->grad, NULL, &dy));
    }
    dnnl_exec_arg_t a[4] = {
        {DNNL_ARG_DIFF_SRC, dx}, {DNNL_ARG_WEIGHTS, wei}, {DNNL_ARG_DIFF_DST, dy}};
    DNNL_TRY(exec_conv(c, e, base, a, 3));
    return port_finish(c, e, &e->io[0], base, x->grad, x->numel);
}

/* dw += conv_backward_weights(x, dy), db += sum dy. */
static dnnl_status_t run_bwd_weights(conv_cache *c, conv_entry *e, char *base, nas_node *n,
                                     void *x_ready, void *dy_ready) {
    nas_node *x = n->src[0], *w = n->src[1];
    const int has_bias = n->n_src == 3;
    dnnl_memory_t src, dw, dy;
    if (x_ready != NULL) {
        DNNL_TRY(port_ready(&e->io[0], x_ready, &src));
    } else {
        DNNL_TRY(port_in(c, e, &e->io[0], base, x->data, NULL, &src));
    }
    DNNL_TRY(port_out(&e->io[1], base, w->grad, &dw));
    if (dy_ready != NULL) {
        DNNL_TRY(port_ready(&e->io[2], dy_ready, &dy));
    } else {
        DNNL_TRY(port_in(c, e, &e->io[2], base, n->grad, NULL, &dy));
    }
    dnnl_exec_arg_t a[5] = {
        {DNNL_ARG_SRC, src}, {DNNL_ARG_DIFF_WEIGHTS, dw}, {DNNL_ARG_DIFF_DST, dy}};
    int na = 3;
    float *db = has_bias ? (float *)(base + e->bias_offset) : NULL;
    if (has_bias) {
        DNNL_TRY(set_handle(e->bias, db));
        a[na++] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_BIAS, e->bias};
    }
    DNNL_TRY(exec_conv(c, e, base, a, na));
    DNNL_TRY(port_finish(c, e, &e->io[1], base, w->grad, w->numel));
    if (has_bias && n->src[2]->grad != NULL) {
        float *g = n->src[2]->grad;
        for (int64_t o = 0; o < w->shape[0]; o++) {
            g[o] += db[o];
        }
    }
    return dnnl_success;
}

int nas_conv_dnnl_wino_node(nas_graph *g, const nas_node *n) {
    nas_status st = NAS_OK;
    const conv_cache *c = ready_cache(g->ctx, &st);
    const nas_conv_geom geom = nas_conv_geom_of(n);
    return c != NULL && wino_runs(c, n, &geom);
}

nas_status nas_conv_dnnl_group_forward(nas_graph *g, nas_node *leader) {
    if (!nas_conv_dnnl_wino_node(g, leader)) {
        return NAS_ERR_UNSUPPORTED;
    }
    const float *w[NAS_CONV_GROUP_MAX];
    float *y[NAS_CONV_GROUP_MAX];
    int members = 0;
    for (nas_node *m = leader; m != NULL; m = m->group_next) {
        m->iparam[NAS_CONV_IP_AUX_SRC] = 0; /* as conv_forward sets it: no blocked x kept */
        w[members] = m->src[1]->data;
        y[members++] = m->data;
    }
    /* the same scratch serves every backward of the group, which so cannot fail */
    const nas_conv_geom geom = nas_conv_geom_of(leader);
    float *scratch = nas_graph_scratch(g, nas_conv_wino_scratch_bytes(&geom, members));
    if (scratch == NULL) {
        return NAS_ERR_NOMEM;
    }
    nas_conv_wino_forward(&geom, leader->src[0]->data, w, y, members, scratch);
    return NAS_OK;
}

/* Why the data gradients are not shared too: each member's dy is in cache right after its
 * readers' backward made it, and cold by the leader's turn (NB201, snip: the leader's combined
 * data pass made the backward slower than three separate ones). */
nas_status nas_conv_dnnl_group_backward(nas_graph *g, nas_node *n) {
    if (!nas_conv_dnnl_wino_node(g, n)) {
        return NAS_ERR_UNSUPPORTED;
    }
    const nas_conv_geom geom = nas_conv_geom_of(n);
    nas_node *leader = n->group_leader != NULL ? n->group_leader : n;
    int members = 0;
    for (nas_node *m = leader; m != NULL; m = m->group_next) {
        members++;
    }
    /* the size the group's forward took: cannot fail */
    float *scratch = nas_graph_scratch(g, nas_conv_wino_scratch_bytes(&geom, members));
    if (scratch == NULL) {
        return NAS_ERR_NOMEM;
    }
    nas_node *x = n->src[0];
    if (x->grad != NULL) {
        nas_conv_wino_backward_data(&geom, n->grad, n->src[1]->data, x->grad,
                                    !nas_grad_first(n, 0), scratch);
    }
    if (n != leader || n->src[1]->grad == NULL) { /* members agree on it (the planner) */
        return NAS_OK;
    }
    const float *dy[NAS_CONV_GROUP_MAX];
    float *dw[NAS_CONV_GROUP_MAX];
    members = 0;
    for (nas_node *m = leader; m != NULL; m = m->group_next) {
        if (m == leader || nas_group_member_runs_backward(g, m)) {
            dy[members] = m->grad;
            dw[members++] = m->src[1]->grad;
        }
    }
    nas_conv_wino_backward_weights(&geom, x->data, dy, dw, members, scratch);
    return NAS_OK;
}

/* Both gradients of a conv our Winograd runs (no bias: nas_conv_wino_suits). dx is stored where
 * this conv writes it first, else added to. */
static nas_status wino_backward(nas_graph *g, nas_node *n, const nas_conv_geom *geom,
                                unsigned *done) {
    float *scratch = nas_graph_scratch(g, nas_conv_wino_scratch_bytes(geom, 1));
    if (scratch == NULL) {
        return NAS_ERR_NOMEM;
    }
    nas_node *x = n->src[0], *w = n->src[1];
    const float *dy = n->grad;
    if (x->grad != NULL) {
        nas_conv_wino_backward_data(geom, dy, w->data, x->grad, !nas_grad_first(n, 0), scratch);
    }
    if (w->grad != NULL) {
        nas_conv_wino_backward_weights(geom, x->data, &dy, &w->grad, 1, scratch);
    }
    *done = 3u;
    return NAS_OK;
}

nas_status nas_conv_dnnl_backward(nas_graph *g, nas_node *n, unsigned *done) {
    *done = 0;
    nas_status st = NAS_OK;
    conv_cache *c = ready_cache(g->ctx, &st);
    if (c == NULL) {
        return st;
    }
    const nas_conv_geom geom = nas_conv_geom_of(n);
    if (wino_runs(c, n, &geom)) {
        return wino_backward(g, n, &geom, done);
    }
    const int has_bias = n->n_src == 3;
    backward_plan bp;
    st = backward_entries(g, c, n, nas_grad_first(n, 0), &bp);
    if (st != NAS_OK) {
        return st;
    }
    conv_entry *bd = bp.data, *bw = bp.weights;
    const conv_entry *fw = bp.fwd;
    const size_t bd_total = bd != NULL ? align_up(bd->total) : 0;
    char *base = nas_graph_scratch(g, bp.scratch);
    if (base == NULL) {
        return NAS_ERR_NOMEM;
    }
    dnnl_status_t s = dnnl_success;
    if (bd != NULL) {
        s = run_bwd_data(c, bd, base, n, NULL);
        if (s != dnnl_success) {
            return backend_error(g->ctx, "backward data", s);
        }
        *done |= 1u;
    }
    if (bw != NULL) {
        /* reuse what is already blocked: dy from the data pass, x from the forward */
        void *dy_ready = NULL, *x_ready = NULL;
        const dnnl_memory_desc_t *bw_dy =
            dnnl_primitive_desc_query_md(bw->pd, dnnl_query_diff_dst_md, 0);
        if (bd != NULL && bd->io[2].reorder &&
            dnnl_memory_desc_equal(
                bw_dy, dnnl_primitive_desc_query_md(bd->pd, dnnl_query_diff_dst_md, 0))) {
            dy_ready = base + bd->io[2].offset;
        }
        if (fw != NULL) {
            const dnnl_memory_desc_t *bw_x =
                dnnl_primitive_desc_query_md(bw->pd, dnnl_query_src_md, 0);
            if (dnnl_memory_desc_equal(
                    bw_x, dnnl_primitive_desc_query_md(fw->pd, dnnl_query_src_md, 0))) {
                x_ready = n->aux;
            }
        }
        s = run_bwd_weights(c, bw, base + bd_total, n, x_ready, dy_ready);
        if (s != dnnl_success) {
            return backend_error(g->ctx, "backward weights", s);
        }
        *done |= 2u;
    } else if (has_bias && n->src[2]->grad != NULL) {
        nas_conv_bias_grad(&geom, n->grad, n->src[2]->grad);
        *done |= 2u;
    }
    return NAS_OK;
}

/* ---- blocked layouts (the planner's questions) */

/* The block size when md is nChw8c or nChw16c over exactly `dims` (channels a multiple of the
 * block: no padding), else 0. */
static int64_t block_of(const dnnl_memory_desc_t *md, const dnnl_dims_t dims) {
    static const struct {
        dnnl_format_tag_t tag;
        int64_t block;
    } blocked[2] = {{dnnl_nChw16c, 16}, {dnnl_nChw8c, 8}};
    for (int i = 0; i < 2; i++) {
        dnnl_memory_desc_t want;
        if (dims[1] % blocked[i].block == 0 &&
            dnnl_memory_desc_init_by_tag(&want, 4, dims, dnnl_f32, blocked[i].tag) == dnnl_success &&
            dnnl_memory_desc_equal(md, &want)) {
            return blocked[i].block;
        }
    }
    return 0;
}

int64_t nas_conv_dnnl_block(nas_graph *g, const nas_node *n, int y_side) {
    nas_status st = NAS_OK;
    conv_cache *c = ready_cache(g->ctx, &st);
    if (c == NULL) {
        return 0;
    }
    const nas_conv_geom geom = nas_conv_geom_of(n);
    const int has_bias = n->n_src == 3;
    const dnnl_dims_t dims = {geom.N, y_side ? geom.O : geom.C, y_side ? geom.OH : geom.H,
                              y_side ? geom.OW : geom.W};
    /* every pass the node runs must see that side in the same blocked layout */
    const int passes[3] = {g->grad_enabled ? PASS_FWD_TRAIN : PASS_FWD_INFER, PASS_BWD_DATA,
                           PASS_BWD_WEIGHTS};
    const dnnl_query_t x_query[3] = {dnnl_query_src_md, dnnl_query_diff_src_md, dnnl_query_src_md};
    const dnnl_query_t y_query[3] = {dnnl_query_dst_md, dnnl_query_diff_dst_md,
                                     dnnl_query_diff_dst_md};
    int64_t block = -1;
    for (int i = 0; i < (g->grad_enabled ? 3 : 1); i++) {
        const conv_entry *e = entry_get(g->ctx, c, passes[i], &geom, has_bias, 0, &st);
        if (e == NULL) {
            nas_clear_error(g->ctx); /* the forward meets the same case and reports it */
            return 0;
        }
        const dnnl_memory_desc_t *md =
            dnnl_primitive_desc_query_md(e->pd, y_side ? y_query[i] : x_query[i], 0);
        const int64_t b = md != NULL ? block_of(md, dims) : 0;
        if (b == 0 || (block >= 0 && b != block)) {
            return 0;
        }
        block = b;
    }
    return block;
}
