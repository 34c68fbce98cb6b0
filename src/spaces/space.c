/* space.c - the search-space interface: the name registry, and everything that works from a
 * space's decision list alone (size, uniform sampling, mutation, neighbours, enumeration,
 * features, the stable hash). Text formats, canonical forms and networks come from each space's
 * vtable (nb201.c, darts.c, mbnet.c, nasrl.c, user.c). */
#include "spaces_int.h"

#include <math.h>
#include <stdio.h>

typedef struct space_entry {
    const char *name;
    nas_status (*open)(nas_space *s);
} space_entry;

static const space_entry registry[] = {
    {"nb201", nas_spaces_open_nb201},
    {"darts", nas_spaces_open_darts},
    {"mbnet", nas_spaces_open_mbnet},
    {"mbnet32", nas_spaces_open_mbnet32},
    {"nasrl", nas_spaces_open_nasrl},
};

nas_status nas_space_open(nas_ctx *ctx, const char *name_or_path, nas_space **out) {
    NAS_CHECK_ARG(ctx, name_or_path != NULL && out != NULL);
    *out = NULL;
    nas_space *s = nas_calloc(ctx, 1, sizeof(nas_space));
    if (s == NULL) {
        return NAS_ERR_NOMEM;
    }
    s->ctx = ctx;
    s->name = nas_strdup(ctx, name_or_path);
    if (s->name == NULL) {
        nas_space_free(s);
        return NAS_ERR_NOMEM;
    }
    nas_status st = NAS_ERR_ARG;
    int found = 0;
    for (size_t i = 0; i < sizeof(registry) / sizeof(registry[0]); i++) {
        if (strcmp(name_or_path, registry[i].name) == 0) {
            st = registry[i].open(s);
            found = 1;
        }
    }
    if (!found) {
        const size_t len = strlen(name_or_path);
        if (len > 5 && strcmp(name_or_path + len - 5, ".json") == 0) {
            st = nas_spaces_open_json(s, name_or_path);
        } else {
            st = nas_fail(ctx, NAS_ERR_ARG,
                          "unknown space '%s' (expected nb201, darts, mbnet, mbnet32, nasrl or the path of a "
                          ".json space file)",
                          name_or_path);
        }
    }
    if (st != NAS_OK) {
        nas_space_free(s);
        return st;
    }
    *out = s;
    return NAS_OK;
}

nas_status nas_spaces_open_json_string(nas_ctx *ctx, const char *text, nas_space **out) {
    *out = NULL;
    nas_space *s = nas_calloc(ctx, 1, sizeof(nas_space));
    if (s == NULL) {
        return NAS_ERR_NOMEM;
    }
    s->ctx = ctx;
    s->name = nas_strdup(ctx, "(text)");
    nas_status st = s->name != NULL ? nas_spaces_open_json_text(s, text, s->name) : NAS_ERR_NOMEM;
    if (st != NAS_OK) {
        nas_space_free(s);
        return st;
    }
    *out = s;
    return NAS_OK;
}

void nas_space_free(nas_space *s) {
    if (s == NULL) {
        return;
    }
    nas_ctx *ctx = s->ctx;
    if (s->vt != NULL && s->vt->free_impl != NULL) {
        s->vt->free_impl(ctx, s->impl);
    }
    for (int d = 0; d < s->n_dec; d++) {
        nas_space_decision *dec = &s->dec[d];
        for (int c = 0; c < dec->n_choices; c++) {
            nas_free(ctx, dec->choices[c], strlen(dec->choices[c]) + 1);
        }
        nas_free(ctx, dec->choices, (size_t)dec->n_choices * sizeof(char *));
        nas_free(ctx, dec->name, strlen(dec->name) + 1);
    }
    if (s->name != NULL) {
        nas_free(ctx, s->name, strlen(s->name) + 1);
    }
    nas_free(ctx, s, sizeof(nas_space));
}

nas_status nas_spaces_add_decision(nas_space *s, const char *name, int n_choices,
                                   const char *const *choices, int default_choice) {
    if (s->n_dec >= NAS_ARCH_MAX_DECISIONS) {
        return nas_fail(s->ctx, NAS_ERR_UNSUPPORTED, "space %s: more than %d decisions", s->name,
                        NAS_ARCH_MAX_DECISIONS);
    }
    NAS_ASSERT(n_choices >= 1 && default_choice >= 0 && default_choice < n_choices);
    nas_space_decision *dec = &s->dec[s->n_dec];
    memset(dec, 0, sizeof(*dec));
    dec->name = nas_strdup(s->ctx, name);
    dec->choices = nas_calloc(s->ctx, (size_t)n_choices, sizeof(char *));
    if (dec->name == NULL || dec->choices == NULL) {
        if (dec->name != NULL) {
            nas_free(s->ctx, dec->name, strlen(dec->name) + 1);
        }
        nas_free(s->ctx, dec->choices, dec->choices ? (size_t)n_choices * sizeof(char *) : 0);
        return NAS_ERR_NOMEM;
    }
    dec->n_choices = n_choices;
    dec->default_choice = default_choice;
    s->n_dec++; /* from here on space_free releases it, partly filled or not */
    for (int c = 0; c < n_choices; c++) {
        dec->choices[c] = nas_strdup(s->ctx, choices[c]);
        if (dec->choices[c] == NULL) {
            for (int k = c; k < n_choices; k++) {
                dec->choices[k] = NULL;
            }
            dec->n_choices = c; /* free only what exists */
            return NAS_ERR_NOMEM;
        }
    }
    return NAS_OK;
}

int nas_spaces_find_choice(const nas_space *s, int d, const char *text, size_t len) {
    const nas_space_decision *dec = &s->dec[d];
    for (int c = 0; c < dec->n_choices; c++) {
        if (strlen(dec->choices[c]) == len && memcmp(dec->choices[c], text, len) == 0) {
            return c;
        }
    }
    return -1;
}

const char *nas_spaces_choice_list(const nas_space *s, int d, char *buf, size_t size) {
    size_t pos = 0;
    buf[0] = '\0';
    for (int c = 0; c < s->dec[d].n_choices && pos + 1 < size; c++) {
        int k = snprintf(buf + pos, size - pos, "%s%s", c ? ", " : "", s->dec[d].choices[c]);
        if (k < 0) {
            break;
        }
        pos += (size_t)k;
    }
    return buf;
}

nas_status nas_spaces_append(nas_ctx *ctx, char *buf, size_t size, size_t *pos, const char *fmt,
                             ...) {
    va_list ap;
    va_start(ap, fmt);
    const int k = *pos < size ? vsnprintf(buf + *pos, size - *pos, fmt, ap) : -1;
    va_end(ap);
    if (k < 0 || *pos + (size_t)k >= size) {
        return nas_fail(ctx, NAS_ERR_ARG, "architecture text longer than the %zu-byte buffer",
                        size);
    }
    *pos += (size_t)k;
    return NAS_OK;
}

int nas_spaces_make_divisible(double v, int divisor) {
    int nv = (int)(v + divisor / 2.0) / divisor * divisor;
    if (nv < divisor) {
        nv = divisor;
    }
    if (nv < 0.9 * v) {
        nv += divisor;
    }
    return nv;
}

/* ------------------------------------------------------------------------------- queries */

const char *nas_space_name(const nas_space *s) {
    return s->name;
}

int nas_space_n_decisions(const nas_space *s) {
    return s->n_dec;
}

int nas_space_n_choices(const nas_space *s, int decision) {
    return decision >= 0 && decision < s->n_dec ? s->dec[decision].n_choices : 0;
}

const char *nas_space_decision_name(const nas_space *s, int decision) {
    return decision >= 0 && decision < s->n_dec ? s->dec[decision].name : NULL;
}

const char *nas_space_choice_name(const nas_space *s, int decision, int choice) {
    if (decision < 0 || decision >= s->n_dec || choice < 0 ||
        choice >= s->dec[decision].n_choices) {
        return NULL;
    }
    return s->dec[decision].choices[choice];
}

double nas_space_log10_size(const nas_space *s) {
    if (s->vt->log10_size != NULL) {
        return s->vt->log10_size(s);
    }
    double l = 0.0;
    for (int d = 0; d < s->n_dec; d++) {
        l += log10((double)s->dec[d].n_choices);
    }
    return l;
}

/* Product of the choice counts, -1 on overflow. */
static int64_t product_size(const nas_space *s) {
    int64_t n = 1;
    for (int d = 0; d < s->n_dec; d++) {
        if (n > INT64_MAX / s->dec[d].n_choices) {
            return -1;
        }
        n *= s->dec[d].n_choices;
    }
    return n;
}

int64_t nas_space_size(const nas_space *s) {
    if (s->vt->log10_size != NULL) {
        const double l = s->vt->log10_size(s);
        return l < 18.0 ? (int64_t)llround(pow(10.0, l)) : -1;
    }
    return product_size(s);
}

static int is_active(const nas_space *s, const nas_arch *a, int d) {
    return s->vt->active == NULL || s->vt->active(s, a, d);
}

/* -------------------------------------------------------------------- sampling and moves */

void nas_space_sample(const nas_space *s, nas_rng *r, nas_arch *out) {
    memset(out, 0, sizeof(*out));
    out->n = s->n_dec;
    for (int d = 0; d < s->n_dec; d++) {
        out->choice[d] = (int32_t)nas_rng_below(r, s->dec[d].n_choices);
    }
}

/* Decisions that matter in a and have another choice to move to. */
static int movable(const nas_space *s, const nas_arch *a, int *idx) {
    int n = 0;
    for (int d = 0; d < s->n_dec; d++) {
        if (s->dec[d].n_choices > 1 && is_active(s, a, d)) {
            idx[n++] = d;
        }
    }
    return n;
}

void nas_space_mutate(const nas_space *s, nas_rng *r, const nas_arch *in, nas_arch *out) {
    int idx[NAS_ARCH_MAX_DECISIONS];
    *out = *in;
    const int n = movable(s, in, idx);
    if (n == 0) {
        return;
    }
    const int d = idx[nas_rng_below(r, n)];
    const int k = (int)nas_rng_below(r, s->dec[d].n_choices - 1);
    out->choice[d] = k >= in->choice[d] ? k + 1 : k;
}

int64_t nas_space_neighbours(const nas_space *s, const nas_arch *a, nas_arch *out, int64_t max) {
    int idx[NAS_ARCH_MAX_DECISIONS];
    const int n = movable(s, a, idx);
    int64_t count = 0;
    for (int i = 0; i < n; i++) {
        const int d = idx[i];
        for (int c = 0; c < s->dec[d].n_choices; c++) {
            if (c == a->choice[d]) {
                continue;
            }
            if (count < max && out != NULL) {
                out[count] = *a;
                out[count].choice[d] = c;
            }
            count++;
        }
    }
    return count;
}

nas_status nas_space_enumerate(const nas_space *s, int64_t index, nas_arch *out) {
    if (s->vt->log10_size != NULL) {
        return nas_fail(s->ctx, NAS_ERR_UNSUPPORTED,
                        "space %s: enumeration is only for spaces whose every decision matters",
                        s->name);
    }
    const int64_t size = product_size(s); /* -1: over INT64_MAX, so every index >= 0 exists */
    if (index < 0 || (size >= 0 && index >= size)) {
        return nas_fail(s->ctx, NAS_ERR_ARG, "space %s: index %lld outside 0..%lld", s->name,
                        (long long)index, (long long)(size >= 0 ? size - 1 : INT64_MAX));
    }
    memset(out, 0, sizeof(*out));
    out->n = s->n_dec;
    /* mixed radix, the last decision varying fastest */
    for (int d = s->n_dec - 1; d >= 0; d--) {
        out->choice[d] = (int32_t)(index % s->dec[d].n_choices);
        index /= s->dec[d].n_choices;
    }
    return NAS_OK;
}

/* ----------------------------------------------------------------------- text and hash */

static nas_status check_arch(nas_ctx *ctx, const nas_space *s, const nas_arch *a) {
    if (a->n != s->n_dec) {
        return nas_fail(ctx, NAS_ERR_ARG, "space %s: architecture has %d decisions, expected %d",
                        s->name, (int)a->n, s->n_dec);
    }
    for (int d = 0; d < s->n_dec; d++) {
        if (a->choice[d] < 0 || a->choice[d] >= s->dec[d].n_choices) {
            return nas_fail(ctx, NAS_ERR_ARG, "space %s: decision %s has choice %d of %d", s->name,
                            s->dec[d].name, (int)a->choice[d], s->dec[d].n_choices);
        }
    }
    return NAS_OK;
}

nas_status nas_space_encode(const nas_space *s, const nas_arch *a, char *buf, size_t size) {
    NAS_CHECK_ARG(s->ctx, a != NULL && buf != NULL && size > 0);
    nas_status st = check_arch(s->ctx, s, a);
    if (st != NAS_OK) {
        return st;
    }
    return s->vt->encode(s, a, buf, size);
}

static void default_arch(const nas_space *s, nas_arch *out) {
    memset(out, 0, sizeof(*out));
    out->n = s->n_dec;
    for (int d = 0; d < s->n_dec; d++) {
        out->choice[d] = s->dec[d].default_choice;
    }
}

nas_status nas_space_decode(nas_ctx *ctx, const nas_space *s, const char *text, nas_arch *out) {
    NAS_CHECK_ARG(ctx, s != NULL && text != NULL && out != NULL);
    if (strcmp(text, "default") == 0) {
        default_arch(s, out);
        return NAS_OK;
    }
    memset(out, 0, sizeof(*out));
    out->n = s->n_dec;
    nas_status st = s->vt->decode(ctx, s, text, out);
    if (st == NAS_OK) {
        st = check_arch(ctx, s, out);
    }
    return st;
}

void nas_space_canonical(const nas_space *s, const nas_arch *a, nas_arch *out) {
    if (s->vt->canonical != NULL) {
        s->vt->canonical(s, a, out);
        return;
    }
    *out = *a;
}

/* splitmix64 finaliser: a fixed, portable mixing function (the hash must not change). */
static uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

uint64_t nas_space_hash(const nas_space *s, const nas_arch *a) {
    nas_arch c;
    nas_space_canonical(s, a, &c);
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a of the space kind, so spaces do not collide */
    for (const char *p = s->vt->kind; *p; p++) {
        h = (h ^ (uint8_t)*p) * 0x100000001b3ULL;
    }
    h = mix64(h ^ (uint64_t)c.n);
    for (int d = 0; d < c.n; d++) {
        h = mix64(h ^ ((uint64_t)(uint32_t)c.choice[d] + ((uint64_t)d << 32)));
    }
    return h;
}

/* Validate a and the options; fill defaults into *o. */
static nas_status build_args(nas_ctx *ctx, const nas_space *s, const nas_arch *a,
                             const nas_build_opts *opts, nas_build_opts *o) {
    nas_status st = check_arch(ctx, s, a);
    if (st != NAS_OK) {
        return st;
    }
    memset(o, 0, sizeof(*o));
    if (opts != NULL) {
        *o = *opts;
    }
    if (o->channels_mult <= 0.0) {
        o->channels_mult = 1.0;
    }
    if (o->cells < 0 || o->shape.in_c < 0 || o->shape.in_h < 0 || o->shape.in_w < 0 ||
        o->shape.classes < 0 || o->channels_mult > 64.0) {
        return nas_fail(ctx, NAS_ERR_ARG, "space %s: bad build option (negative size or "
                        "channels_mult over 64)", s->name);
    }
    return NAS_OK;
}

nas_status nas_space_build(nas_ctx *ctx, const nas_space *s, const nas_arch *a,
                           const nas_build_opts *opts, nas_model **out) {
    NAS_CHECK_ARG(ctx, s != NULL && a != NULL && out != NULL);
    *out = NULL;
    nas_build_opts o;
    nas_status st = build_args(ctx, s, a, opts, &o);
    if (st != NAS_OK) {
        return st;
    }
    if (s->vt->build != NULL) {
        return s->vt->build(ctx, s, a, &o, out);
    }
    nas_snet net;
    nas_model_shape shape;
    memset(&shape, 0, sizeof(shape));
    if ((st = nas_snet_init(&net, ctx, s->vt->kind)) != NAS_OK) {
        return st;
    }
    s->vt->describe(s, a, &o, &net, &shape);
    if (net.status == NAS_OK && !o.no_init) {
        nas_params_init(net.params, 0);
    }
    return nas_snet_model(&net, shape, out);
}

nas_status nas_space_count(nas_ctx *ctx, const nas_space *s, const nas_arch *a,
                           const nas_build_opts *opts, int64_t *params, int64_t *macs) {
    NAS_CHECK_ARG(ctx, s != NULL && a != NULL);
    nas_build_opts o;
    nas_status st = build_args(ctx, s, a, opts, &o);
    if (st != NAS_OK) {
        return st;
    }
    nas_snet net;
    nas_model_shape shape;
    memset(&shape, 0, sizeof(shape));
    nas_snet_init_count(&net, ctx);
    s->vt->describe(s, a, &o, &net, &shape);
    st = net.status;
    if (st == NAS_OK && params != NULL) {
        *params = net.n_params;
    }
    if (st == NAS_OK && macs != NULL) {
        *macs = net.macs;
    }
    nas_snet_deinit(&net);
    return st;
}

int64_t nas_space_n_features(const nas_space *s) {
    int64_t n = 0;
    for (int d = 0; d < s->n_dec; d++) {
        n += s->dec[d].n_choices;
    }
    return n;
}

void nas_space_features(const nas_space *s, const nas_arch *a, float *out) {
    int64_t k = 0;
    for (int d = 0; d < s->n_dec; d++) {
        const int active = is_active(s, a, d);
        for (int c = 0; c < s->dec[d].n_choices; c++) {
            out[k++] = active && a->choice[d] == c ? 1.0f : 0.0f;
        }
    }
}

static const char *dag_op_name(const nas_snode *n) {
    static const char *const kinds[NAS_SN_COUNT] = {
        "input", "conv", "bn", "act", "max_pool", "avg_pool", "global_avg_pool", "flatten",
        "sum", "concat", "mul", "zero", "channel_shuffle", "pad_channels", "dropout", "linear",
        "attention", "crop"};
    static const char *const acts[] = {"identity", "relu", "relu6", "hswish", "hsigmoid",
                                       "sigmoid", "swish", "tanh"};
    if (n->kind == NAS_SN_ACT && (int)n->act >= 0 && (int)n->act < 8) {
        return acts[n->act];
    }
    return kinds[n->kind];
}

int64_t nas_space_dag(nas_ctx *ctx, const nas_space *s, const nas_arch *a,
                      const nas_build_opts *opts, nas_dag_node *out, int64_t max) {
    if (ctx == NULL || s == NULL || a == NULL) {
        return -1;
    }
    nas_build_opts o;
    if (build_args(ctx, s, a, opts, &o) != NAS_OK) {
        return -1;
    }
    nas_snet net;
    nas_model_shape shape;
    memset(&shape, 0, sizeof(shape));
    nas_snet_init_count(&net, ctx);
    s->vt->describe(s, a, &o, &net, &shape);
    if (net.status != NAS_OK) {
        nas_snet_deinit(&net);
        return -1;
    }
    for (int i = 0; i < net.n && i < max && out != NULL; i++) {
        const nas_snode *n = &net.nodes[i];
        nas_dag_node *d = &out[i];
        memset(d, 0, sizeof(*d));
        d->op = dag_op_name(n);
        d->n_in = n->n_in;
        memcpy(d->in, n->in, (size_t)n->n_in * sizeof(int));
        d->c = n->c;
        d->h = n->h;
        d->w = n->w;
        if (n->kind == NAS_SN_CONV) {
            d->kernel = n->k;
            d->stride = n->stride;
            d->groups = n->groups;
        } else if (n->kind == NAS_SN_MAX_POOL || n->kind == NAS_SN_AVG_POOL) {
            d->kernel = n->k;
            d->stride = n->stride;
        }
    }
    const int64_t count = net.n;
    nas_snet_deinit(&net);
    return count;
}
