/* cost.c - what an architecture costs (params, MACs, activation memory, latency from one source)
 * and budgets on those costs: the feasibility test strategies use and the up-front check that a
 * budget is possible at all, so an impossible search fails before any work starts (SPEC 6).
 * Costs that need the network (params, MACs, memory, measured or LUT latency) are memoised per
 * architecture because building a network dominates; table lookups go through an index built
 * once from the table's rows. */
#include "hardware_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define DEFAULT_LATENCY_TABLE "data/nb201_latency/nb201_latency_ms.csv"
#define MEASURE_REPEATS 10
#define MEASURE_WARMUP 2
#define CHECK_SAMPLES 32
#define ENUM_LIMIT 2000000
#define DESCENT_EVALS 300

typedef enum lat_kind { LAT_NONE = 0, LAT_MEASURED, LAT_LUT, LAT_PREDICTOR, LAT_TABLE } lat_kind;

/* Open-addressing map from a 64-bit architecture key to a slot index (key 0 = empty). */
typedef struct key_map {
    uint64_t *keys;
    int64_t *vals;
    int64_t cap, n;
} key_map;

typedef struct memo_entry {
    nas_cost cost;
    unsigned have; /* nas_cost_what bits computed */
} memo_entry;

struct nas_cost_model {
    nas_ctx *ctx;
    const nas_space *space;
    nas_build_opts opts;
    lat_kind kind;
    char source[1024];
    nas_lut *lut;
    nas_latpred *pred;
    float *feat;        /* predictor input, n_features */
    int64_t n_feat;
    key_map table_index; /* arch key -> row of table_ms */
    double *table_ms;
    int64_t table_rows;
    key_map memo_index;  /* arch key -> entry of memo */
    memo_entry *memo;
    int64_t memo_n, memo_cap;
};

/* ------------------------------------------------------------------ key map */

static uint64_t arch_key(const nas_arch *a) {
    uint64_t h = 0x243F6A8885A308D3ull ^ (uint64_t)a->n;
    for (int d = 0; d < a->n; d++) {
        h = (h ^ (uint32_t)a->choice[d]) * 0x9E3779B97F4A7C15ull;
        h ^= h >> 29;
    }
    return h == 0 ? 1 : h;
}

static void map_free(nas_ctx *ctx, key_map *m) {
    nas_free(ctx, m->keys, (size_t)m->cap * sizeof(uint64_t));
    nas_free(ctx, m->vals, (size_t)m->cap * sizeof(int64_t));
    memset(m, 0, sizeof(*m));
}

static int64_t map_slot(const key_map *m, uint64_t key) {
    const uint64_t mask = (uint64_t)m->cap - 1;
    uint64_t i = (key * 0x9E3779B97F4A7C15ull) >> 17 & mask;
    while (m->keys[i] != 0 && m->keys[i] != key) {
        i = (i + 1) & mask;
    }
    return (int64_t)i;
}

static int64_t map_get(const key_map *m, uint64_t key) {
    if (m->cap == 0) {
        return -1;
    }
    const int64_t i = map_slot(m, key);
    return m->keys[i] == key ? m->vals[i] : -1;
}

static nas_status map_put(nas_ctx *ctx, key_map *m, uint64_t key, int64_t val) {
    if (2 * (m->n + 1) > m->cap) {
        key_map bigger = {0};
        bigger.cap = m->cap == 0 ? 1024 : 2 * m->cap;
        bigger.keys = nas_calloc(ctx, (size_t)bigger.cap, sizeof(uint64_t));
        bigger.vals = nas_calloc(ctx, (size_t)bigger.cap, sizeof(int64_t));
        if (bigger.keys == NULL || bigger.vals == NULL) {
            map_free(ctx, &bigger);
            return NAS_ERR_NOMEM;
        }
        for (int64_t i = 0; i < m->cap; i++) {
            if (m->keys[i] != 0) {
                const int64_t j = map_slot(&bigger, m->keys[i]);
                bigger.keys[j] = m->keys[i];
                bigger.vals[j] = m->vals[i];
            }
        }
        bigger.n = m->n;
        map_free(ctx, m);
        *m = bigger;
    }
    const int64_t i = map_slot(m, key);
    if (m->keys[i] == 0) {
        m->n++;
    }
    m->keys[i] = key;
    m->vals[i] = val;
    return NAS_OK;
}

/* ------------------------------------------------------------------ latency sources */

static int readable(const char *path) {
    return access(path, R_OK) == 0;
}

/* The default latency table: $NAS_LATENCY_TABLE, then relative to the working directory, then
 * to the program's directory (bin/, build/<variant>/tests/). */
static int default_table(char *out, size_t size) {
    static const char *const up[] = {"", "../", "../../", "../../../"};
    const char *env = getenv("NAS_LATENCY_TABLE");
    if (env != NULL && env[0] != '\0') {
        snprintf(out, size, "%s", env);
        return 1;
    }
    if (readable(DEFAULT_LATENCY_TABLE)) {
        snprintf(out, size, "%s", DEFAULT_LATENCY_TABLE);
        return 1;
    }
    char exe[1024];
    const ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0) {
        return 0;
    }
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash == NULL) {
        return 0;
    }
    *slash = '\0';
    for (size_t i = 1; i < sizeof(up) / sizeof(up[0]); i++) {
        snprintf(out, size, "%s/%s%s", exe, up[i], DEFAULT_LATENCY_TABLE);
        if (readable(out)) {
            return 1;
        }
    }
    return 0;
}

/* "table:COLUMN[:FILE]": read the column and index its rows by architecture. */
static nas_status open_table(nas_cost_model *cm, const char *spec) {
    char column[256], path[4096];
    const char *colon = strchr(spec, ':');
    const size_t clen = colon != NULL ? (size_t)(colon - spec) : strlen(spec);
    if (clen == 0 || clen >= sizeof(column)) {
        return nas_fail(cm->ctx, NAS_ERR_ARG, "latency source 'table:%s': expected "
                        "table:COLUMN[:FILE], e.g. table:gold_6226", spec);
    }
    memcpy(column, spec, clen);
    column[clen] = '\0';
    if (colon != NULL && colon[1] != '\0') {
        snprintf(path, sizeof(path), "%s", colon + 1);
    } else if (!default_table(path, sizeof(path))) {
        return nas_fail(cm->ctx, NAS_ERR_IO, "latency source 'table:%s': %s not found (run from "
                        "the repository or set NAS_LATENCY_TABLE)", spec, DEFAULT_LATENCY_TABLE);
    }
    nas_device_table *t = NULL;
    nas_status st = nas_device_table_load(cm->ctx, path, "arch_str", column, &t);
    if (st != NAS_OK) {
        return st;
    }
    cm->table_rows = nas_device_table_rows(t);
    cm->table_ms = nas_malloc(cm->ctx, (size_t)(cm->table_rows > 0 ? cm->table_rows : 1) *
                                           sizeof(double));
    st = cm->table_ms == NULL ? NAS_ERR_NOMEM : NAS_OK;
    for (int64_t i = 0; st == NAS_OK && i < cm->table_rows; i++) {
        nas_arch a;
        st = nas_space_decode(cm->ctx, cm->space, nas_device_table_arch(t, i), &a);
        if (st != NAS_OK) {
            st = nas_fail(cm->ctx, st, "%s:%lld: architecture does not decode in space %s: %s",
                          path, (long long)i + 2, nas_space_name(cm->space), nas_errmsg(cm->ctx));
            break;
        }
        cm->table_ms[i] = nas_device_table_ms(t, i);
        st = map_put(cm->ctx, &cm->table_index, arch_key(&a), i);
    }
    nas_device_table_free(t);
    return st;
}

static nas_status open_source(nas_cost_model *cm, const char *src) {
    if (strcmp(src, "measured") == 0) {
        cm->kind = LAT_MEASURED;
        return NAS_OK;
    }
    if (strncmp(src, "lut:", 4) == 0) {
        cm->kind = LAT_LUT;
        return nas_lut_load(cm->ctx, src + 4, &cm->lut);
    }
    if (strncmp(src, "predictor:", 10) == 0) {
        cm->kind = LAT_PREDICTOR;
        nas_status st = nas_latpred_load(cm->ctx, src + 10, &cm->pred);
        cm->n_feat = nas_space_n_features(cm->space);
        if (st == NAS_OK && nas_latpred_n_features(cm->pred) != cm->n_feat) {
            st = nas_fail(cm->ctx, NAS_ERR_ARG, "%s expects %lld features; space %s has %lld",
                          src + 10, (long long)nas_latpred_n_features(cm->pred),
                          nas_space_name(cm->space), (long long)cm->n_feat);
        }
        if (st == NAS_OK) {
            cm->feat = nas_malloc(cm->ctx, (size_t)cm->n_feat * sizeof(float));
            st = cm->feat == NULL ? NAS_ERR_NOMEM : NAS_OK;
        }
        return st;
    }
    if (strncmp(src, "table:", 6) == 0) {
        cm->kind = LAT_TABLE;
        return open_table(cm, src + 6);
    }
    return nas_fail(cm->ctx, NAS_ERR_ARG, "unknown latency source '%s' (expected measured, "
                    "lut:FILE, predictor:FILE or table:COLUMN[:FILE])", src);
}

nas_status nas_cost_model_new(nas_ctx *ctx, const nas_space *space, const nas_build_opts *opts,
                              const char *latency_source, nas_cost_model **out) {
    NAS_CHECK_ARG(ctx, space != NULL && out != NULL);
    *out = NULL;
    nas_cost_model *cm = nas_calloc(ctx, 1, sizeof(*cm));
    if (cm == NULL) {
        return NAS_ERR_NOMEM;
    }
    cm->ctx = ctx;
    cm->space = space;
    if (opts != NULL) {
        cm->opts = *opts;
    }
    nas_status st = NAS_OK;
    if (latency_source != NULL && latency_source[0] != '\0') {
        if (strlen(latency_source) >= sizeof(cm->source)) {
            st = nas_fail(ctx, NAS_ERR_ARG, "latency source is too long");
        } else {
            snprintf(cm->source, sizeof(cm->source), "%s", latency_source);
            st = open_source(cm, latency_source);
        }
    }
    if (st != NAS_OK) {
        nas_cost_model_free(cm);
        return st;
    }
    *out = cm;
    return NAS_OK;
}

void nas_cost_model_free(nas_cost_model *cm) {
    if (cm == NULL) {
        return;
    }
    nas_ctx *ctx = cm->ctx;
    nas_lut_free(cm->lut);
    nas_latpred_free(cm->pred);
    nas_free(ctx, cm->feat, (size_t)cm->n_feat * sizeof(float));
    map_free(ctx, &cm->table_index);
    nas_free(ctx, cm->table_ms, (size_t)(cm->table_rows > 0 ? cm->table_rows : 1) * sizeof(double));
    map_free(ctx, &cm->memo_index);
    nas_free(ctx, cm->memo, (size_t)cm->memo_cap * sizeof(memo_entry));
    nas_free(ctx, cm, sizeof(*cm));
}

const char *nas_cost_model_latency_source(const nas_cost_model *cm) {
    return cm->source;
}

/* ------------------------------------------------------------------ evaluation */

/* Which bits need the network built. */
static unsigned needs_model(const nas_cost_model *cm, unsigned what) {
    unsigned m = what & (NAS_COST_PARAMS | NAS_COST_MACS | NAS_COST_MEMORY);
    if ((what & NAS_COST_LATENCY) && (cm->kind == LAT_MEASURED || cm->kind == LAT_LUT)) {
        m |= NAS_COST_LATENCY;
    }
    return m;
}

static nas_status memo_entry_of(nas_cost_model *cm, uint64_t key, memo_entry **out) {
    const int64_t i = map_get(&cm->memo_index, key);
    if (i >= 0) {
        *out = &cm->memo[i];
        return NAS_OK;
    }
    if (cm->memo_n == cm->memo_cap) {
        const int64_t cap = cm->memo_cap == 0 ? 256 : 2 * cm->memo_cap;
        memo_entry *m = nas_realloc(cm->ctx, cm->memo, (size_t)cm->memo_cap * sizeof(memo_entry),
                                    (size_t)cap * sizeof(memo_entry));
        if (m == NULL) {
            return NAS_ERR_NOMEM;
        }
        cm->memo = m;
        cm->memo_cap = cap;
    }
    const nas_status st = map_put(cm->ctx, &cm->memo_index, key, cm->memo_n);
    if (st != NAS_OK) {
        return st;
    }
    memo_entry *e = &cm->memo[cm->memo_n++];
    e->cost = (nas_cost){NAN, NAN, NAN, NAN};
    e->have = 0;
    *out = e;
    return NAS_OK;
}

/* Fill the network-derived costs in `want`. Params and MACs alone come from the network's
 * description (nas_space_count: no weights allocated, the same counts a build gives); memory and
 * latency build the network, initialising its weights only to time it. */
static nas_status model_costs(nas_cost_model *cm, const nas_arch *a, unsigned want, nas_cost *c) {
    if ((want & ~(NAS_COST_PARAMS | NAS_COST_MACS)) == 0) {
        int64_t params = 0, macs = 0;
        const nas_status st = nas_space_count(cm->ctx, cm->space, a, &cm->opts, &params, &macs);
        if (st == NAS_OK && (want & NAS_COST_PARAMS)) {
            c->params = (double)params;
        }
        if (st == NAS_OK && (want & NAS_COST_MACS)) {
            c->macs = (double)macs;
        }
        return st;
    }
    nas_build_opts o = cm->opts;
    o.no_init = !((want & NAS_COST_LATENCY) && cm->kind == LAT_MEASURED);
    nas_model *m = NULL;
    nas_status st = nas_space_build(cm->ctx, cm->space, a, &o, &m);
    if (st != NAS_OK) {
        return st;
    }
    if (want & NAS_COST_PARAMS) {
        c->params = (double)nas_model_n_params(m);
    }
    if (want & (NAS_COST_MACS | NAS_COST_MEMORY)) {
        int64_t macs = 0;
        size_t peak = 0;
        st = nas_model_count(m, &macs, &peak);
        c->macs = (double)macs;
        c->memory = (double)peak;
    }
    if (st == NAS_OK && (want & NAS_COST_LATENCY) && cm->kind == LAT_LUT) {
        st = nas_lut_estimate(cm->lut, m, &c->latency_ms);
    } else if (st == NAS_OK && (want & NAS_COST_LATENCY)) {
        nas_latency_result r;
        st = nas_latency_measure(cm->ctx, m, 1, MEASURE_REPEATS, MEASURE_WARMUP, &r);
        c->latency_ms = r.median_ms;
    }
    nas_model_free(m);
    return st;
}

static nas_status table_latency(nas_cost_model *cm, const nas_arch *a, double *ms) {
    const int64_t row = map_get(&cm->table_index, arch_key(a));
    if (row < 0) {
        char text[NAS_ARCH_TEXT_MAX] = "?";
        nas_space_encode(cm->space, a, text, sizeof(text));
        return nas_fail(cm->ctx, NAS_ERR_ARG, "latency source %s has no row for %s", cm->source,
                        text);
    }
    *ms = cm->table_ms[row];
    return NAS_OK;
}

nas_status nas_cost_eval(nas_cost_model *cm, const nas_arch *a, unsigned what, nas_cost *out) {
    NAS_CHECK_ARG(cm->ctx, a != NULL && out != NULL);
    *out = (nas_cost){NAN, NAN, NAN, NAN};
    if ((what & NAS_COST_LATENCY) && cm->kind == LAT_NONE) {
        return nas_fail(cm->ctx, NAS_ERR_STATE, "latency asked of a cost model without a latency "
                        "source (give measured, lut:FILE, predictor:FILE or table:COLUMN)");
    }
    nas_status st = NAS_OK;
    if ((what & NAS_COST_LATENCY) && cm->kind == LAT_TABLE) {
        st = table_latency(cm, a, &out->latency_ms);
    } else if ((what & NAS_COST_LATENCY) && cm->kind == LAT_PREDICTOR) {
        nas_space_features(cm->space, a, cm->feat);
        st = nas_latpred_predict(cm->pred, cm->feat, &out->latency_ms);
    }
    const unsigned want = needs_model(cm, what);
    if (st != NAS_OK || want == 0) {
        return st;
    }
    memo_entry *e = NULL;
    st = memo_entry_of(cm, arch_key(a), &e);
    if (st == NAS_OK && (e->have & want) != want) {
        st = model_costs(cm, a, want & ~e->have, &e->cost);
        if (st == NAS_OK) {
            e->have |= want;
        }
    }
    if (st == NAS_OK) {
        out->params = (want & NAS_COST_PARAMS) ? e->cost.params : (double)NAN;
        out->macs = (want & NAS_COST_MACS) ? e->cost.macs : (double)NAN;
        out->memory = (want & NAS_COST_MEMORY) ? e->cost.memory : (double)NAN;
        if (want & NAS_COST_LATENCY) {
            out->latency_ms = e->cost.latency_ms;
        }
    }
    return st;
}

double nas_cost_latency_cb(void *cost_model, const nas_arch *a) {
    nas_cost c;
    const nas_status st = nas_cost_eval(cost_model, a, NAS_COST_LATENCY, &c);
    return st == NAS_OK ? c.latency_ms : (double)NAN;
}

/* ------------------------------------------------------------------ budgets */

unsigned nas_budget_what(const nas_budget *b) {
    return (b->max_params > 0 ? NAS_COST_PARAMS : 0u) | (b->max_macs > 0 ? NAS_COST_MACS : 0u) |
           (b->max_memory > 0 ? NAS_COST_MEMORY : 0u) |
           (b->max_latency_ms > 0 ? NAS_COST_LATENCY : 0u);
}

/* The limits and costs as arrays in nas_cost_what bit order. */
static void limits_of(const nas_budget *b, double lim[4]) {
    lim[0] = b->max_params;
    lim[1] = b->max_macs;
    lim[2] = b->max_memory;
    lim[3] = b->max_latency_ms;
}

static void costs_of(const nas_cost *c, double v[4]) {
    v[0] = c->params;
    v[1] = c->macs;
    v[2] = c->memory;
    v[3] = c->latency_ms;
}

double nas_budget_excess(const nas_budget *b, const nas_cost *c) {
    double lim[4], v[4], excess = 0.0;
    limits_of(b, lim);
    costs_of(c, v);
    for (int k = 0; k < 4; k++) {
        if (lim[k] > 0) {
            excess += isnan(v[k]) ? (double)INFINITY : fmax(0.0, v[k] / lim[k] - 1.0);
        }
    }
    return excess;
}

int nas_budget_feasible(const nas_budget *b, const nas_cost *c) {
    double lim[4], v[4];
    limits_of(b, lim);
    costs_of(c, v);
    for (int k = 0; k < 4; k++) {
        if (lim[k] > 0 && !(v[k] <= lim[k])) {
            return 0;
        }
    }
    return 1;
}

/* The check's record: the smallest value of each limited cost seen, for the message. */
typedef struct check_state {
    nas_cost_model *cm;
    const nas_budget *b;
    unsigned what;
    double least[4];
    int found;
    nas_arch witness;
} check_state;

/* Cost of a, recorded; *excess receives its excess. */
static nas_status check_one(check_state *cs, const nas_arch *a, double *excess) {
    nas_cost c;
    const nas_status st = nas_cost_eval(cs->cm, a, cs->what, &c);
    if (st != NAS_OK) {
        return st;
    }
    double v[4];
    costs_of(&c, v);
    for (int k = 0; k < 4; k++) {
        if (!isnan(v[k]) && !(v[k] >= cs->least[k])) {
            cs->least[k] = v[k];
        }
    }
    *excess = nas_budget_excess(cs->b, &c);
    if (!cs->found && nas_budget_feasible(cs->b, &c)) {
        cs->found = 1;
        cs->witness = *a;
    }
    return NAS_OK;
}

/* Cheap: every limited cost is a lookup (no network to build). */
static int cheap(const nas_cost_model *cm, unsigned what) {
    return what == NAS_COST_LATENCY && (cm->kind == LAT_TABLE || cm->kind == LAT_PREDICTOR);
}

static nas_status check_enumerate(check_state *cs, int64_t size) {
    for (int64_t i = 0; i < size && !cs->found; i++) {
        nas_arch a;
        double ex;
        nas_status st = nas_space_enumerate(cs->cm->space, i, &a);
        if (st == NAS_OK) {
            st = check_one(cs, &a, &ex);
        }
        if (st != NAS_OK) {
            return st;
        }
    }
    return NAS_OK;
}

/* Seeded samples, then a descent from the least excessive: move to the first single-decision
 * change that lowers the excess, until none does (first improvement needs far fewer network
 * builds than best improvement in spaces with many decisions). */
static nas_status check_search(check_state *cs, uint64_t seed) {
    const nas_space *space = cs->cm->space;
    nas_rng r = nas_rng_make(seed, 0xb0d9);
    nas_arch best;
    double best_ex = INFINITY;
    for (int i = 0; i < CHECK_SAMPLES && !cs->found; i++) {
        nas_arch a;
        double ex;
        nas_space_sample(space, &r, &a);
        const nas_status st = check_one(cs, &a, &ex);
        if (st != NAS_OK) {
            return st;
        }
        if (i == 0 || ex < best_ex) {
            best = a;
            best_ex = ex;
        }
    }
    const int64_t max_nb = 4096;
    nas_arch *nb = cs->found ? NULL : nas_malloc(cs->cm->ctx, (size_t)max_nb * sizeof(nas_arch));
    if (!cs->found && nb == NULL) {
        return NAS_ERR_NOMEM;
    }
    int evals = 0, improved = 1;
    nas_status st = NAS_OK;
    while (st == NAS_OK && !cs->found && improved && evals < DESCENT_EVALS) {
        improved = 0;
        int64_t k = nas_space_neighbours(space, &best, nb, max_nb);
        k = k < max_nb ? k : max_nb;
        for (int64_t i = 0; i < k && !cs->found && evals < DESCENT_EVALS; i++, evals++) {
            double ex;
            st = check_one(cs, &nb[i], &ex);
            if (st != NAS_OK) {
                break;
            }
            if (ex < best_ex) {
                best = nb[i];
                best_ex = ex;
                improved = 1;
                break;
            }
        }
    }
    nas_free(cs->cm->ctx, nb, nb != NULL ? (size_t)max_nb * sizeof(nas_arch) : 0);
    return st;
}

nas_status nas_budget_check(nas_cost_model *cm, const nas_budget *b, uint64_t seed,
                            nas_arch *witness) {
    NAS_CHECK_ARG(cm->ctx, b != NULL);
    check_state cs = {.cm = cm, .b = b, .what = nas_budget_what(b)};
    for (int k = 0; k < 4; k++) {
        cs.least[k] = INFINITY;
    }
    if (cs.what == 0) {
        if (witness != NULL) {
            nas_rng r = nas_rng_make(seed, 0xb0d9);
            nas_space_sample(cm->space, &r, witness);
        }
        return NAS_OK;
    }
    if ((cs.what & NAS_COST_LATENCY) && cm->kind == LAT_NONE) {
        return nas_fail(cm->ctx, NAS_ERR_ARG, "a latency budget needs a latency source "
                        "(measured, lut:FILE, predictor:FILE or table:COLUMN)");
    }
    const int64_t size = nas_space_size(cm->space);
    nas_arch probe;
    const int enumerable = size > 0 && size <= ENUM_LIMIT &&
                           nas_space_enumerate(cm->space, 0, &probe) == NAS_OK;
    nas_clear_error(cm->ctx);
    const int exact = enumerable && cheap(cm, cs.what);
    const nas_status st = exact ? check_enumerate(&cs, size) : check_search(&cs, seed);
    if (st != NAS_OK) {
        return st;
    }
    if (cs.found) {
        if (witness != NULL) {
            *witness = cs.witness;
        }
        return NAS_OK;
    }
    static const char *const names[4] = {"params", "MACs", "memory (bytes)", "latency (ms)"};
    double lim[4];
    limits_of(b, lim);
    char msg[512] = "";
    size_t pos = 0;
    for (int k = 0; k < 4; k++) {
        if (lim[k] > 0 && pos < sizeof(msg)) {
            pos += (size_t)snprintf(msg + pos, sizeof(msg) - pos, "%s%s <= %g (smallest found %g)",
                                    pos ? ", " : "", names[k], lim[k], cs.least[k]);
        }
    }
    return nas_fail(cm->ctx, NAS_ERR_INFEASIBLE, "budget impossible in space %s: no architecture "
                    "has %s%s", nas_space_name(cm->space), msg,
                    exact ? " (all architectures checked)" : " (searched by sampling and descent)");
}
