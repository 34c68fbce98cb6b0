/* random.c - random search: uniform samples of the space, never the same canonical architecture
 * twice (Li & Talwalkar 2019 show it is a strong baseline). */
#include "strategies_int.h"

typedef struct random_state {
    nas_archmap seen;
} random_state;

static nas_status random_init(nas_strategy *s) {
    static const char *const known[] = {NULL};
    nas_status st = nas_strategy_params_check(s, known);
    if (st != NAS_OK) {
        return st;
    }
    random_state *r = nas_calloc(s->ctx, 1, sizeof(*r));
    if (r == NULL) {
        return NAS_ERR_NOMEM;
    }
    s->impl = r;
    return nas_archmap_init(&r->seen, s->ctx, s->budget > 0 ? s->budget : 256);
}

static nas_status random_ask(nas_strategy *s, nas_arch *out) {
    random_state *r = s->impl;
    return nas_strategy_sample_unseen(s, &r->seen, out);
}

static nas_status random_tell(nas_strategy *s, const nas_arch *a, double reward) {
    (void)s;
    (void)a;
    (void)reward;
    return NAS_OK;
}

static void random_free(nas_strategy *s) {
    random_state *r = s->impl;
    if (r != NULL) {
        nas_archmap_deinit(&r->seen);
        nas_free(s->ctx, r, sizeof(*r));
    }
}

const nas_strategy_vt nas_strategy_random_vt = {
    .name = "random",
    .summary = "uniform samples without repeats (canonical form)",
    .init = random_init,
    .ask = random_ask,
    .tell = random_tell,
    .free = random_free,
};
