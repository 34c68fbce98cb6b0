/* strategy.c - the strategy registry and the public ask/tell wrappers, the "key=value,..."
 * parameter parser, and the architecture hash map strategies use to avoid repeats. */
#include "strategies_int.h"

#include <errno.h>
#include <stdlib.h>

extern const nas_strategy_vt nas_strategy_nsga2_vt; /* nsga2.c (hardware-aware search) */
static const nas_strategy_vt *const registry[] = {
    &nas_strategy_grid_vt,      &nas_strategy_random_vt, &nas_strategy_re_vt,
    &nas_strategy_ls_vt,        &nas_strategy_reinforce_vt, &nas_strategy_bo_vt,
    &nas_strategy_pnas_vt,      &nas_strategy_nsga2_vt,
};
static const int n_registry = (int)(sizeof(registry) / sizeof(registry[0]));

int nas_strategy_count(void) {
    return n_registry;
}

const char *nas_strategy_name_at(int i) {
    return i >= 0 && i < n_registry ? registry[i]->name : NULL;
}

const char *nas_strategy_summary_at(int i) {
    return i >= 0 && i < n_registry ? registry[i]->summary : NULL;
}

nas_status nas_strategy_new(nas_ctx *ctx, const char *name, const nas_space *space,
                            const nas_strategy_opts *opts, nas_strategy **out) {
    NAS_CHECK_ARG(ctx, name != NULL && space != NULL && out != NULL);
    *out = NULL;
    const nas_strategy_vt *vt = NULL;
    for (int i = 0; i < n_registry; i++) {
        if (strcmp(registry[i]->name, name) == 0) {
            vt = registry[i];
        }
    }
    if (vt == NULL) {
        char list[256] = "";
        for (int i = 0; i < n_registry; i++) {
            strncat(list, i ? ", " : "", sizeof(list) - strlen(list) - 1);
            strncat(list, registry[i]->name, sizeof(list) - strlen(list) - 1);
        }
        return nas_fail(ctx, NAS_ERR_ARG, "unknown strategy '%s' (known: %s)", name, list);
    }
    nas_strategy *s = nas_calloc(ctx, 1, sizeof(*s));
    if (s == NULL) {
        return NAS_ERR_NOMEM;
    }
    s->ctx = ctx;
    s->space = space;
    s->vt = vt;
    if (opts != NULL) {
        s->seed = opts->seed;
        s->budget = opts->budget;
        if (opts->params != NULL && opts->params[0] != '\0') {
            s->params = nas_strdup(ctx, opts->params);
            if (s->params == NULL) {
                nas_free(ctx, s, sizeof(*s));
                return NAS_ERR_NOMEM;
            }
        }
    }
    /* Stream 0x5e4c is the strategy's; evaluators and trainers use other streams. */
    s->rng = nas_rng_make(s->seed, 0x5e4c);
    const nas_status st = vt->init(s);
    if (st != NAS_OK) {
        nas_strategy_free(s);
        return st;
    }
    *out = s;
    return NAS_OK;
}

void nas_strategy_free(nas_strategy *s) {
    if (s == NULL) {
        return;
    }
    nas_ctx *ctx = s->ctx;
    s->vt->free(s);
    if (s->params != NULL) {
        nas_free(ctx, s->params, strlen(s->params) + 1);
    }
    nas_free(ctx, s, sizeof(*s));
}

const char *nas_strategy_name(const nas_strategy *s) {
    return s == NULL ? "" : s->vt->name;
}

nas_status nas_strategy_ask(nas_strategy *s, nas_arch *out) {
    if (s == NULL || out == NULL) {
        return NAS_ERR_ARG;
    }
    const nas_status st = s->vt->ask(s, out);
    if (st == NAS_OK) {
        s->n_asked++;
    }
    return st;
}

nas_status nas_strategy_tell(nas_strategy *s, const nas_arch *a, double reward) {
    if (s == NULL || a == NULL) {
        return NAS_ERR_ARG;
    }
    NAS_CHECK_ARG(s->ctx, a->n == nas_space_n_decisions(s->space));
    const nas_status st = s->vt->tell(s, a, reward);
    if (st == NAS_OK) {
        s->n_told++;
    }
    return st;
}

/* ------------------------------------------------------------------ parameters */

/* Find key in "k=v,k=v": pointer to its value and the value's length, or NULL. */
static const char *find_param(const char *params, const char *key, size_t *len) {
    const size_t klen = strlen(key);
    for (const char *p = params; p != NULL && *p != '\0';) {
        const char *end = strchr(p, ',');
        const size_t item = end != NULL ? (size_t)(end - p) : strlen(p);
        if (item > klen && strncmp(p, key, klen) == 0 && p[klen] == '=') {
            *len = item - klen - 1;
            return p + klen + 1;
        }
        p = end != NULL ? end + 1 : NULL;
    }
    return NULL;
}

nas_status nas_strategy_param_str(nas_strategy *s, const char *key, char *buf, size_t size) {
    size_t len = 0;
    const char *v = find_param(s->params, key, &len);
    if (v == NULL) {
        return NAS_OK;
    }
    if (len + 1 > size) {
        return nas_fail(s->ctx, NAS_ERR_ARG, "strategy %s: value of '%s' is too long",
                        s->vt->name, key);
    }
    memcpy(buf, v, len);
    buf[len] = '\0';
    return NAS_OK;
}

nas_status nas_strategy_param_double(nas_strategy *s, const char *key, double lo, double hi,
                                     double *out) {
    char buf[64] = "";
    const nas_status st = nas_strategy_param_str(s, key, buf, sizeof(buf));
    if (st != NAS_OK || buf[0] == '\0') {
        return st;
    }
    char *end = NULL;
    errno = 0;
    const double v = strtod(buf, &end);
    if (errno != 0 || end == buf || *end != '\0' || !(v >= lo && v <= hi)) {
        return nas_fail(s->ctx, NAS_ERR_ARG, "strategy %s: parameter %s=%s must be a number in "
                        "[%g, %g]", s->vt->name, key, buf, lo, hi);
    }
    *out = v;
    return NAS_OK;
}

nas_status nas_strategy_param_int(nas_strategy *s, const char *key, int64_t lo, int64_t hi,
                                  int64_t *out) {
    char buf[64] = "";
    const nas_status st = nas_strategy_param_str(s, key, buf, sizeof(buf));
    if (st != NAS_OK || buf[0] == '\0') {
        return st;
    }
    char *end = NULL;
    errno = 0;
    const long long v = strtoll(buf, &end, 10);
    if (errno != 0 || end == buf || *end != '\0' || v < lo || v > hi) {
        return nas_fail(s->ctx, NAS_ERR_ARG, "strategy %s: parameter %s=%s must be an integer in "
                        "[%lld, %lld]", s->vt->name, key, buf, (long long)lo, (long long)hi);
    }
    *out = v;
    return NAS_OK;
}

nas_status nas_strategy_params_check(nas_strategy *s, const char *const *known) {
    for (const char *p = s->params; p != NULL && *p != '\0';) {
        const char *end = strchr(p, ',');
        const char *eq = strchr(p, '=');
        const size_t item = end != NULL ? (size_t)(end - p) : strlen(p);
        if (eq == NULL || (end != NULL && eq > end)) {
            return nas_fail(s->ctx, NAS_ERR_ARG, "strategy %s: parameter '%.*s' is not key=value",
                            s->vt->name, (int)item, p);
        }
        const size_t klen = (size_t)(eq - p);
        int ok = 0;
        for (int i = 0; known[i] != NULL; i++) {
            ok |= strlen(known[i]) == klen && strncmp(known[i], p, klen) == 0;
        }
        if (!ok) {
            char list[256] = "";
            for (int i = 0; known[i] != NULL; i++) {
                strncat(list, i ? ", " : "", sizeof(list) - strlen(list) - 1);
                strncat(list, known[i], sizeof(list) - strlen(list) - 1);
            }
            return nas_fail(s->ctx, NAS_ERR_ARG, "strategy %s: unknown parameter '%.*s' (known: %s)",
                            s->vt->name, (int)klen, p, list[0] ? list : "none");
        }
        p = end != NULL ? end + 1 : NULL;
    }
    return NAS_OK;
}

/* ------------------------------------------------------------------ architecture map */

static uint64_t slot_key(uint64_t key) {
    return key == 0 ? 1 : key;
}

nas_status nas_archmap_init(nas_archmap *m, nas_ctx *ctx, int64_t expected) {
    memset(m, 0, sizeof(*m));
    m->ctx = ctx;
    int64_t cap = 64;
    while (cap < 2 * expected) {
        cap *= 2;
    }
    m->keys = nas_calloc(ctx, (size_t)cap, sizeof(uint64_t));
    m->vals = nas_calloc(ctx, (size_t)cap, sizeof(double));
    if (m->keys == NULL || m->vals == NULL) {
        nas_archmap_deinit(m);
        return NAS_ERR_NOMEM;
    }
    m->cap = cap;
    return NAS_OK;
}

void nas_archmap_deinit(nas_archmap *m) {
    if (m->ctx == NULL) {
        return;
    }
    nas_free(m->ctx, m->keys, (size_t)m->cap * sizeof(uint64_t));
    nas_free(m->ctx, m->vals, (size_t)m->cap * sizeof(double));
    m->keys = NULL;
    m->vals = NULL;
    m->cap = m->n = 0;
}

double *nas_archmap_find(const nas_archmap *m, uint64_t key) {
    key = slot_key(key);
    const uint64_t mask = (uint64_t)m->cap - 1;
    for (uint64_t i = (key * 0x9E3779B97F4A7C15ull) >> 7 & mask;; i = (i + 1) & mask) {
        if (m->keys[i] == key) {
            return &m->vals[i];
        }
        if (m->keys[i] == 0) {
            return NULL;
        }
    }
}

static void put_slot(uint64_t *keys, double *vals, int64_t cap, uint64_t key, double v) {
    const uint64_t mask = (uint64_t)cap - 1;
    uint64_t i = (key * 0x9E3779B97F4A7C15ull) >> 7 & mask;
    while (keys[i] != 0) {
        i = (i + 1) & mask;
    }
    keys[i] = key;
    vals[i] = v;
}

nas_status nas_archmap_put(nas_archmap *m, uint64_t key, double v, int *added) {
    if (nas_archmap_find(m, key) != NULL) {
        if (added != NULL) {
            *added = 0;
        }
        return NAS_OK;
    }
    if (2 * (m->n + 1) > m->cap) { /* keep the load under 1/2 */
        const int64_t cap = m->cap * 2;
        uint64_t *keys = nas_calloc(m->ctx, (size_t)cap, sizeof(uint64_t));
        double *vals = nas_calloc(m->ctx, (size_t)cap, sizeof(double));
        if (keys == NULL || vals == NULL) {
            nas_free(m->ctx, keys, keys ? (size_t)cap * sizeof(uint64_t) : 0);
            nas_free(m->ctx, vals, vals ? (size_t)cap * sizeof(double) : 0);
            return NAS_ERR_NOMEM;
        }
        for (int64_t i = 0; i < m->cap; i++) {
            if (m->keys[i] != 0) {
                put_slot(keys, vals, cap, m->keys[i], m->vals[i]);
            }
        }
        nas_free(m->ctx, m->keys, (size_t)m->cap * sizeof(uint64_t));
        nas_free(m->ctx, m->vals, (size_t)m->cap * sizeof(double));
        m->keys = keys;
        m->vals = vals;
        m->cap = cap;
    }
    put_slot(m->keys, m->vals, m->cap, slot_key(key), v);
    m->n++;
    if (added != NULL) {
        *added = 1;
    }
    return NAS_OK;
}

/* ------------------------------------------------------------------ sampling without repeats */

/* Sampling finds an unseen architecture quickly while the space is mostly unexplored; past that
 * (small spaces nearly exhausted) a scan of the enumeration from a random start is certain. */
#define SAMPLE_TRIES 64
#define SCAN_LIMIT 2000000

nas_status nas_strategy_sample_unseen(nas_strategy *s, nas_archmap *seen, nas_arch *out) {
    for (int t = 0; t < SAMPLE_TRIES; t++) {
        nas_space_sample(s->space, &s->rng, out);
        int added = 0;
        const nas_status st = nas_archmap_put(seen, nas_space_hash(s->space, out), NAN, &added);
        if (st != NAS_OK || added) {
            return st;
        }
    }
    const int64_t size = nas_space_size(s->space);
    if (size < 0 || size > SCAN_LIMIT) {
        return NAS_OK; /* a huge space: a repeat after 64 misses is as good as it gets */
    }
    const int64_t start = nas_rng_below(&s->rng, size);
    for (int64_t k = 0; k < size; k++) {
        nas_status st = nas_space_enumerate(s->space, (start + k) % size, out);
        if (st != NAS_OK) {
            return st;
        }
        int added = 0;
        st = nas_archmap_put(seen, nas_space_hash(s->space, out), NAN, &added);
        if (st != NAS_OK || added) {
            return st;
        }
    }
    return nas_fail(s->ctx, NAS_ERR_INFEASIBLE, "strategy %s: every architecture of space %s has "
                    "been proposed", s->vt->name, nas_space_name(s->space));
}
