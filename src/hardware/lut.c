/* lut.c - per-layer latency lookup tables (ProxylessNAS / FBNet / OFA style). A layer's key is
 * its node signature (op, input shapes, integer arguments), so equal keys do equal work. Building
 * times every layer inside whole sampled networks (so caches are as warm or cold as in real
 * inference), takes each layer's median over repeats and averages the medians per key; a
 * sampled network whose layers the LUT already has is skipped untimed, so large spaces get
 * their rare layers covered in bounded time. Stored as
 * JSON: {"format": "nascent-lut-1", "space", "batch", "threads", "entries": {key: ms}}. */
#include "hardware_int.h"

#include <jansson.h>
#include <stdio.h>

#define KEY_MAX 512

typedef struct lut_entry {
    char *key; /* NULL = empty slot */
    double sum_ms;
    int64_t count;
} lut_entry;

struct nas_lut {
    nas_ctx *ctx;
    lut_entry *slots;
    int64_t cap, used;
    int batch, threads;
    char space[128];
};

static uint64_t fnv1a(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) {
        h = (h ^ (uint8_t)*s) * 1099511628211ull;
    }
    return h;
}

static lut_entry *find_slot(const nas_lut *lut, const char *key) {
    for (uint64_t i = fnv1a(key) & (uint64_t)(lut->cap - 1);; i = (i + 1) & (uint64_t)(lut->cap - 1)) {
        lut_entry *e = &lut->slots[i];
        if (e->key == NULL || strcmp(e->key, key) == 0) {
            return e;
        }
    }
}

static nas_status grow(nas_lut *lut) {
    const int64_t old_cap = lut->cap, cap = old_cap == 0 ? 256 : 2 * old_cap;
    lut_entry *old = lut->slots;
    lut->slots = nas_calloc(lut->ctx, (size_t)cap, sizeof(lut_entry));
    if (lut->slots == NULL) {
        lut->slots = old;
        return NAS_ERR_NOMEM;
    }
    lut->cap = cap;
    for (int64_t i = 0; i < old_cap; i++) {
        if (old[i].key != NULL) {
            *find_slot(lut, old[i].key) = old[i];
        }
    }
    nas_free(lut->ctx, old, (size_t)old_cap * sizeof(lut_entry));
    return NAS_OK;
}

/* Add one measurement of `key`; *is_new tells whether the key was unseen. */
static nas_status lut_add(nas_lut *lut, const char *key, double ms, int *is_new) {
    if (2 * (lut->used + 1) > lut->cap && grow(lut) != NAS_OK) {
        return nas_fail(lut->ctx, NAS_ERR_NOMEM, "lut: out of memory");
    }
    lut_entry *e = find_slot(lut, key);
    *is_new = e->key == NULL;
    if (e->key == NULL) {
        e->key = nas_strdup(lut->ctx, key);
        if (e->key == NULL) {
            return NAS_ERR_NOMEM;
        }
        lut->used++;
    }
    e->sum_ms += ms;
    e->count++;
    return NAS_OK;
}

static nas_lut *lut_new(nas_ctx *ctx, int batch) {
    nas_lut *lut = nas_calloc(ctx, 1, sizeof(nas_lut));
    if (lut != NULL) {
        lut->ctx = ctx;
        lut->batch = batch;
        lut->threads = nas_get_threads();
        if (grow(lut) != NAS_OK) {
            nas_free(ctx, lut, sizeof(nas_lut));
            return NULL;
        }
    }
    return lut;
}

void nas_lut_free(nas_lut *lut) {
    if (lut == NULL) {
        return;
    }
    for (int64_t i = 0; i < lut->cap; i++) {
        if (lut->slots[i].key != NULL) {
            nas_free(lut->ctx, lut->slots[i].key, strlen(lut->slots[i].key) + 1);
        }
    }
    nas_free(lut->ctx, lut->slots, (size_t)lut->cap * sizeof(lut_entry));
    nas_free(lut->ctx, lut, sizeof(nas_lut));
}

int64_t nas_lut_size(const nas_lut *lut) {
    return lut->used;
}

int nas_lut_batch(const nas_lut *lut) {
    return lut->batch;
}

/* Layers that do work: not leaves, not views. */
static int is_layer(const nas_graph *g, int64_t i) {
    const nas_op_desc *d = nas_op_get(nas_graph_node(g, i)->op);
    return d->forward != NULL && !d->alias;
}

/* Record model m's inference graph at the LUT batch into g (input data from x). */
static nas_status record(nas_graph *g, nas_model *m, int batch, float *x) {
    const nas_model_shape ms = nas_model_get_shape(m);
    const int64_t shape[4] = {batch, ms.in_c, ms.in_h, ms.in_w};
    nas_graph_reset(g);
    nas_graph_set_training(g, 0);
    nas_graph_set_grad_enabled(g, 0);
    nas_model_forward(m, g, nas_input(g, 4, shape, x));
    return nas_graph_status(g);
}

/* Time every layer of one model: `repeats` timed runs after 2 warm-ups; per-layer medians go
 * into the LUT. *new_keys counts keys seen for the first time. */
static nas_status measure_model(nas_lut *lut, nas_graph *g, nas_model *m, float *x, int repeats,
                                int64_t *new_keys) {
    nas_ctx *ctx = lut->ctx;
    nas_status st = record(g, m, lut->batch, x);
    const int64_t n = nas_graph_n_nodes(g);
    double *t = st == NAS_OK ? nas_malloc(ctx, (size_t)(n * (repeats + 1)) * sizeof(double)) : NULL;
    if (st == NAS_OK && t == NULL) {
        st = NAS_ERR_NOMEM;
    }
    for (int r = 0; st == NAS_OK && r < repeats + 2; r++) {
        st = nas_graph_forward_timed(g, t + (r < 2 ? 0 : (int64_t)(r - 2)) * n);
    }
    double *col = t != NULL ? t + (int64_t)repeats * n : NULL; /* scratch row */
    char key[KEY_MAX];
    for (int64_t i = 0; st == NAS_OK && i < n; i++) {
        if (!is_layer(g, i)) {
            continue;
        }
        for (int r = 0; r < repeats; r++) {
            col[r] = t[(int64_t)r * n + i];
        }
        nas_graph_node_signature(g, i, key, sizeof key);
        int is_new = 0;
        st = lut_add(lut, key, nas_hw_median(col, repeats) * 1e3, &is_new);
        *new_keys += is_new;
    }
    nas_free(ctx, t, t != NULL ? (size_t)(n * (repeats + 1)) * sizeof(double) : 0);
    return st;
}

/* Layers of m (recorded into g, no data) that the LUT has no entry for. */
static nas_status count_unknown(const nas_lut *lut, nas_graph *g, nas_model *m, int64_t *n) {
    *n = 0;
    const nas_status st = record(g, m, lut->batch, NULL);
    char key[KEY_MAX];
    for (int64_t i = 0; st == NAS_OK && i < nas_graph_n_nodes(g); i++) {
        if (is_layer(g, i)) {
            nas_graph_node_signature(g, i, key, sizeof key);
            *n += find_slot(lut, key)->key == NULL;
        }
    }
    return st;
}

static size_t input_numel(const nas_build_opts *opts, int batch) {
    const nas_model_shape s = opts != NULL ? opts->shape : (nas_model_shape){0, 0, 0, 0};
    const size_t c = s.in_c > 0 ? (size_t)s.in_c : 3, h = s.in_h > 0 ? (size_t)s.in_h : 224;
    const size_t w = s.in_w > 0 ? (size_t)s.in_w : 224;
    return (size_t)batch * c * h * w; /* an upper bound when the space picks its own size */
}

nas_status nas_lut_build(nas_ctx *ctx, const nas_space *space, const nas_build_opts *opts,
                         int batch, int max_archs, int patience, int repeats, uint64_t seed,
                         nas_lut **out) {
    NAS_CHECK_ARG(ctx, space != NULL && out != NULL && batch >= 1 && max_archs >= 1 && repeats >= 1);
    *out = NULL;
    nas_lut *lut = lut_new(ctx, batch);
    nas_graph *g = nas_graph_new(ctx);
    const size_t numel = input_numel(opts, batch);
    float *x = nas_calloc(ctx, numel, sizeof(float));
    nas_status st = (lut == NULL || g == NULL || x == NULL) ? NAS_ERR_NOMEM : NAS_OK;
    if (lut != NULL) {
        snprintf(lut->space, sizeof lut->space, "%s", nas_space_name(space));
    }
    nas_rng r = nas_rng_make(seed, 0x107);
    /* Only samples that bring a layer the LUT lacks are timed (the rest cost a graph
     * recording), so rare layers (large spaces: mbnet) get covered in bounded time. */
    nas_build_opts o = opts != NULL ? *opts : (nas_build_opts){.no_init = 1};
    o.no_init = 1; /* weights are initialised only for the architectures timed */
    int quiet = 0;
    const int64_t max_draws = (int64_t)max_archs * (patience > 10 ? patience : 10);
    int64_t draws = 0;
    for (int a = 0; st == NAS_OK && a < max_archs && quiet < patience && draws < max_draws;
         draws++) {
        nas_arch arch;
        nas_space_sample(space, &r, &arch);
        nas_model *m = NULL;
        st = nas_space_build(ctx, space, &arch, &o, &m);
        int64_t unknown = 0;
        if (st == NAS_OK) {
            st = count_unknown(lut, g, m, &unknown);
        }
        if (st == NAS_OK && unknown > 0) {
            nas_params_init(nas_model_params(m), seed + (uint64_t)a);
            int64_t fresh = 0;
            st = measure_model(lut, g, m, x, repeats, &fresh);
            a++;
        }
        quiet = unknown > 0 ? 0 : quiet + 1;
        nas_model_free(m);
    }
    nas_free(ctx, x, numel * sizeof(float));
    nas_graph_free(g);
    if (st != NAS_OK) {
        nas_lut_free(lut);
        return st;
    }
    *out = lut;
    return NAS_OK;
}

nas_status nas_lut_estimate(nas_lut *lut, nas_model *m, double *ms) {
    nas_ctx *ctx = lut->ctx;
    NAS_CHECK_ARG(ctx, m != NULL && ms != NULL);
    nas_graph *g = nas_graph_new(ctx);
    if (g == NULL) {
        return NAS_ERR_NOMEM;
    }
    nas_status st = record(g, m, lut->batch, NULL);
    double sum = 0.0;
    char key[KEY_MAX];
    for (int64_t i = 0; st == NAS_OK && i < nas_graph_n_nodes(g); i++) {
        if (!is_layer(g, i)) {
            continue;
        }
        nas_graph_node_signature(g, i, key, sizeof key);
        const lut_entry *e = find_slot(lut, key);
        if (e->key == NULL) {
            st = nas_fail(ctx, NAS_ERR_STATE,
                          "lut: no entry for layer '%s' (build the LUT for this space and input)", key);
            break;
        }
        sum += e->sum_ms / (double)e->count;
    }
    nas_graph_free(g);
    *ms = sum;
    return st;
}

nas_status nas_lut_save(const nas_lut *lut, const char *path) {
    json_t *root = json_object(), *entries = json_object();
    json_object_set_new(root, "format", json_string("nascent-lut-1"));
    json_object_set_new(root, "space", json_string(lut->space));
    json_object_set_new(root, "batch", json_integer(lut->batch));
    json_object_set_new(root, "threads", json_integer(lut->threads));
    for (int64_t i = 0; i < lut->cap; i++) {
        const lut_entry *e = &lut->slots[i];
        if (e->key != NULL) {
            json_object_set_new(entries, e->key, json_real(e->sum_ms / (double)e->count));
        }
    }
    json_object_set_new(root, "entries", entries);
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    const int rc = json_dump_file(root, tmp, JSON_INDENT(1) | JSON_SORT_KEYS);
    json_decref(root);
    if (rc != 0 || rename(tmp, path) != 0) {
        remove(tmp);
        return nas_fail(lut->ctx, NAS_ERR_IO, "lut: cannot write %s", path);
    }
    return NAS_OK;
}

nas_status nas_lut_load(nas_ctx *ctx, const char *path, nas_lut **out) {
    NAS_CHECK_ARG(ctx, path != NULL && out != NULL);
    *out = NULL;
    json_error_t err;
    json_t *root = json_load_file(path, 0, &err);
    if (root == NULL) {
        return nas_fail(ctx, NAS_ERR_FORMAT, "%s:%d: %s", path, err.line, err.text);
    }
    const json_t *fmt = json_object_get(root, "format"), *entries = json_object_get(root, "entries");
    const json_t *batch = json_object_get(root, "batch");
    nas_status st = NAS_OK;
    if (!json_is_string(fmt) || strcmp(json_string_value(fmt), "nascent-lut-1") != 0) {
        st = nas_fail(ctx, NAS_ERR_FORMAT, "%s: not a nascent LUT (\"format\" is not nascent-lut-1)", path);
    } else if (!json_is_integer(batch) || json_integer_value(batch) < 1 || !json_is_object(entries)) {
        st = nas_fail(ctx, NAS_ERR_FORMAT, "%s: \"batch\" or \"entries\" missing or malformed", path);
    }
    nas_lut *lut = st == NAS_OK ? lut_new(ctx, (int)json_integer_value(batch)) : NULL;
    if (st == NAS_OK && lut == NULL) {
        st = NAS_ERR_NOMEM;
    }
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)entries, key, value) {
        if (st != NAS_OK) {
            break;
        }
        if (!json_is_number(value) || json_number_value(value) < 0) {
            st = nas_fail(ctx, NAS_ERR_FORMAT, "%s: entry \"%s\" is not a non-negative number", path, key);
            break;
        }
        int is_new;
        st = lut_add(lut, key, json_number_value(value), &is_new);
    }
    if (st == NAS_OK) {
        const json_t *space = json_object_get(root, "space");
        snprintf(lut->space, sizeof lut->space, "%s", json_is_string(space) ? json_string_value(space) : "");
        *out = lut;
    } else {
        nas_lut_free(lut);
    }
    json_decref(root);
    return st;
}
