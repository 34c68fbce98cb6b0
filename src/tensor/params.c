/* params.c - parameter blocks: every parameter, gradient and buffer of a model in one flat block
 * each, so optimisers are one loop and weight sharing is just two graphs naming the same entry. */
#include "tensor_int.h"

#include <math.h>

nas_params *nas_params_new(nas_ctx *ctx) {
    nas_params *p = nas_calloc(ctx, 1, sizeof(nas_params));
    if (p != NULL) {
        p->ctx = ctx;
    }
    return p;
}

void nas_params_free(nas_params *p) {
    if (p == NULL) {
        return;
    }
    nas_ctx *ctx = p->ctx;
    for (int64_t i = 0; i < p->n_entries; i++) {
        nas_free(ctx, p->entries[i].name, strlen(p->entries[i].name) + 1);
    }
    nas_free(ctx, p->entries, (size_t)p->cap_entries * sizeof(nas_param_entry));
    nas_keep_spare(ctx, p->data, (size_t)p->cap_total * sizeof(float));
    nas_keep_spare(ctx, p->grad, (size_t)p->cap_total * sizeof(float));
    nas_free(ctx, p, sizeof(nas_params));
}

/* A new block of new_b bytes holding the old one's old_b bytes, the rest zero; the old block is
 * freed (NULL when out of memory, the old block kept). The blocks of a model freed earlier are
 * reused (nas_keep_spare: a network of millions of parameters is built anew for every
 * architecture scored, and fresh pages cost a fault each); a fresh block gets huge pages asked
 * for before its first touch. */
static float *grown_copy(nas_ctx *ctx, float *old, size_t old_b, char *p, size_t new_b) {
    if (p == NULL) {
        p = nas_malloc(ctx, new_b);
        if (p == NULL) {
            return NULL;
        }
        nas_mem_advise_large(p, new_b);
    }
    if (old != NULL) {
        memcpy(p, old, old_b);
    }
    memset(p + old_b, 0, new_b - old_b);
    nas_free(ctx, old, old_b);
    return (float *)p;
}

static nas_status grow_block(nas_params *p, int64_t need) {
    if (need <= p->cap_total) {
        return NAS_OK;
    }
    int64_t cap = p->cap_total < 4096 ? 4096 : p->cap_total;
    while (cap < need) {
        cap *= 2;
    }
    size_t new_b = (size_t)cap * sizeof(float), got_data = 0, got_grad = 0;
    /* a kept pair of equal blocks (a model built before) is taken whole: no growth after it */
    char *spare_data = nas_take_spare(p->ctx, new_b, &got_data);
    char *spare_grad = spare_data != NULL ? nas_take_spare(p->ctx, new_b, &got_grad) : NULL;
    if (spare_grad != NULL && got_grad == got_data) {
        new_b = got_data;
        cap = (int64_t)(new_b / sizeof(float));
    } else {
        nas_keep_spare(p->ctx, spare_data, got_data);
        nas_keep_spare(p->ctx, spare_grad, got_grad);
        spare_data = spare_grad = NULL;
    }
    const size_t old_b = (size_t)p->cap_total * sizeof(float);
    float *data = grown_copy(p->ctx, p->data, old_b, spare_data, new_b);
    float *grad = data != NULL ? grown_copy(p->ctx, p->grad, old_b, spare_grad, new_b) : NULL;
    if (grad == NULL) {
        /* data (grown) stays: capacity is only raised once both are */
        if (data != NULL) {
            p->data = data;
        }
        return NAS_ERR_NOMEM;
    }
    p->data = data;
    p->grad = grad;
    p->cap_total = cap;
    return NAS_OK;
}

nas_status nas_params_add(nas_params *p, const char *name, int ndim, const int64_t *shape,
                          nas_init init, int flags, int64_t fan_in_hint, nas_param_id *id) {
    NAS_CHECK_ARG(p->ctx, name != NULL && shape != NULL && id != NULL);
    NAS_CHECK_ARG(p->ctx, ndim >= 1 && ndim <= NAS_MAX_DIMS);
    int64_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] <= 0) {
            return nas_fail(p->ctx, NAS_ERR_SHAPE, "params_add: %s has dimension %d of size %lld",
                            name, i, (long long)shape[i]);
        }
        numel *= shape[i];
    }
    if (p->n_entries == p->cap_entries) {
        const int64_t cap = p->cap_entries == 0 ? 64 : 2 * p->cap_entries;
        nas_param_entry *e =
            nas_realloc(p->ctx, p->entries, (size_t)p->cap_entries * sizeof(nas_param_entry),
                        (size_t)cap * sizeof(nas_param_entry));
        if (e == NULL) {
            return NAS_ERR_NOMEM;
        }
        p->entries = e;
        p->cap_entries = cap;
    }
    const int64_t offset = (p->total + 15) & ~(int64_t)15; /* 64-byte aligned entries */
    if (grow_block(p, offset + numel) != NAS_OK) {
        return NAS_ERR_NOMEM;
    }
    nas_param_entry *e = &p->entries[p->n_entries];
    memset(e, 0, sizeof(*e));
    e->name = nas_strdup(p->ctx, name);
    if (e->name == NULL) {
        return NAS_ERR_NOMEM;
    }
    e->ndim = ndim;
    for (int i = 0; i < NAS_MAX_DIMS; i++) {
        e->shape[i] = i < ndim ? shape[i] : 1;
    }
    e->numel = numel;
    e->offset = offset;
    e->init = init;
    e->flags = flags;
    e->fan_in_hint = fan_in_hint;
    p->total = offset + numel;
    *id = p->n_entries++;
    return NAS_OK;
}

/* fan_in = in_channels * kernel taps (dims 1..), fan_out = out_channels * taps, as PyTorch's
 * _calculate_fan_in_and_fan_out for weights of 2 or more dimensions. */
static void fans(const nas_param_entry *e, double *fan_in, double *fan_out) {
    double taps = 1.0;
    for (int i = 2; i < e->ndim; i++) {
        taps *= (double)e->shape[i];
    }
    *fan_in = e->ndim >= 2 ? (double)e->shape[1] * taps : (double)e->shape[0];
    *fan_out = (double)e->shape[0] * taps;
}

static void init_entry(nas_params *p, int64_t i, uint64_t seed) {
    const nas_param_entry *e = &p->entries[i];
    float *x = p->data + e->offset;
    nas_rng r = nas_rng_make(seed, (uint64_t)i + 1);
    double fan_in, fan_out;
    fans(e, &fan_in, &fan_out);
    switch (e->init) {
        case NAS_INIT_ZEROS:
            memset(x, 0, (size_t)e->numel * sizeof(float));
            break;
        case NAS_INIT_ONES:
            for (int64_t k = 0; k < e->numel; k++) {
                x[k] = 1.0f;
            }
            break;
        case NAS_INIT_KAIMING_NORMAL_FAN_OUT:
            nas_rng_fill_normal(&r, x, e->numel, 0.0f, (float)sqrt(2.0 / fan_out));
            break;
        case NAS_INIT_KAIMING_NORMAL_FAN_IN:
            nas_rng_fill_normal(&r, x, e->numel, 0.0f, (float)sqrt(2.0 / fan_in));
            break;
        case NAS_INIT_TORCH_DEFAULT: {
            /* kaiming_uniform(a = sqrt(5)): bound = sqrt(6 / ((1 + 5) fan_in)) = 1/sqrt(fan_in) */
            const float b = (float)(1.0 / sqrt(fan_in));
            nas_rng_fill_uniform(&r, x, e->numel, -b, b);
            break;
        }
        case NAS_INIT_TORCH_BIAS: {
            const double f = e->fan_in_hint > 0 ? (double)e->fan_in_hint : 1.0;
            const float b = (float)(1.0 / sqrt(f));
            nas_rng_fill_uniform(&r, x, e->numel, -b, b);
            break;
        }
        case NAS_INIT_NORMAL_001:
            nas_rng_fill_normal(&r, x, e->numel, 0.0f, 0.01f);
            break;
    }
}

/* Every entry draws from its own stream, so the order (and the thread) filling it changes no
 * value: large entries fill in parallel one after another, the many small ones (below the size
 * where one fill goes parallel: a network's first stages, its biases and norms) in parallel with
 * each other. */
void nas_params_init(nas_params *p, uint64_t seed) {
    const int64_t n = p->n_entries;
    int64_t small = 0;
    for (int64_t i = 0; i < n; i++) {
        if (p->entries[i].numel >= NAS_PAR_MIN) {
            init_entry(p, i, seed);
        } else {
            small += p->entries[i].numel;
        }
    }
    NAS_OMP_FOR_DYNAMIC_IF(small >= NAS_PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        if (p->entries[i].numel < NAS_PAR_MIN) {
            init_entry(p, i, seed);
        }
    }
}

int64_t nas_params_count(const nas_params *p) {
    return p->n_entries;
}

int64_t nas_params_numel(const nas_params *p, int flags_mask, int flags_value) {
    int64_t n = 0;
    for (int64_t i = 0; i < p->n_entries; i++) {
        if ((p->entries[i].flags & flags_mask) == flags_value) {
            n += p->entries[i].numel;
        }
    }
    return n;
}

int64_t nas_params_total(const nas_params *p) {
    return p->total;
}

float *nas_params_data(const nas_params *p) {
    return p->data;
}

float *nas_params_grad(const nas_params *p) {
    return p->grad;
}

void nas_params_zero_grad(nas_params *p) {
    memset(p->grad, 0, (size_t)p->total * sizeof(float));
}

const char *nas_param_name(const nas_params *p, nas_param_id id) {
    NAS_ASSERT(id >= 0 && id < p->n_entries);
    return p->entries[id].name;
}

int nas_param_flags(const nas_params *p, nas_param_id id) {
    NAS_ASSERT(id >= 0 && id < p->n_entries);
    return p->entries[id].flags;
}

int nas_param_ndim(const nas_params *p, nas_param_id id) {
    NAS_ASSERT(id >= 0 && id < p->n_entries);
    return p->entries[id].ndim;
}

int64_t nas_param_dim(const nas_params *p, nas_param_id id, int i) {
    NAS_ASSERT(id >= 0 && id < p->n_entries);
    return i >= 0 && i < NAS_MAX_DIMS ? p->entries[id].shape[i] : 1;
}

int64_t nas_param_numel(const nas_params *p, nas_param_id id) {
    NAS_ASSERT(id >= 0 && id < p->n_entries);
    return p->entries[id].numel;
}

int64_t nas_param_offset(const nas_params *p, nas_param_id id) {
    NAS_ASSERT(id >= 0 && id < p->n_entries);
    return p->entries[id].offset;
}

nas_param_id nas_params_find(const nas_params *p, const char *name) {
    for (int64_t i = 0; i < p->n_entries; i++) {
        if (strcmp(p->entries[i].name, name) == 0) {
            return i;
        }
    }
    return -1;
}
