/* grid.c - grid search: every architecture in the space's enumeration order, skipping those
 * whose canonical form was already proposed (isomorphic duplicates). Exhausted at the end. */
#include "strategies_int.h"

typedef struct grid_state {
    int64_t next, size;
    nas_archmap seen;
} grid_state;

static nas_status grid_init(nas_strategy *s) {
    static const char *const known[] = {NULL};
    nas_status st = nas_strategy_params_check(s, known);
    if (st != NAS_OK) {
        return st;
    }
    const int64_t size = nas_space_size(s->space);
    if (size < 0) {
        return nas_fail(s->ctx, NAS_ERR_UNSUPPORTED, "strategy grid: space %s has 10^%.1f "
                        "architectures, too many to enumerate", nas_space_name(s->space),
                        nas_space_log10_size(s->space));
    }
    grid_state *g = nas_calloc(s->ctx, 1, sizeof(*g));
    if (g == NULL) {
        return NAS_ERR_NOMEM;
    }
    s->impl = g;
    g->size = size;
    return nas_archmap_init(&g->seen, s->ctx, 1024);
}

static nas_status grid_ask(nas_strategy *s, nas_arch *out) {
    grid_state *g = s->impl;
    while (g->next < g->size) {
        nas_status st = nas_space_enumerate(s->space, g->next++, out);
        if (st != NAS_OK) {
            return st;
        }
        int added = 0;
        st = nas_archmap_put(&g->seen, nas_space_hash(s->space, out), NAN, &added);
        if (st != NAS_OK || added) {
            return st;
        }
    }
    return nas_fail(s->ctx, NAS_ERR_INFEASIBLE, "strategy grid: all %lld architectures proposed",
                    (long long)g->size);
}

static nas_status grid_tell(nas_strategy *s, const nas_arch *a, double reward) {
    (void)s;
    (void)a;
    (void)reward;
    return NAS_OK;
}

static void grid_free(nas_strategy *s) {
    grid_state *g = s->impl;
    if (g != NULL) {
        nas_archmap_deinit(&g->seen);
        nas_free(s->ctx, g, sizeof(*g));
    }
}

const nas_strategy_vt nas_strategy_grid_vt = {
    .name = "grid",
    .summary = "every architecture in enumeration order, canonical duplicates skipped",
    .init = grid_init,
    .ask = grid_ask,
    .tell = grid_tell,
    .free = grid_free,
};
