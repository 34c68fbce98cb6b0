/* evaluators_int.h - internals of the evaluators module: the vtable every evaluator kind fills
 * in and the registry that maps a spec "KIND:ARGS" to it (evaluator.c lists the kinds). */
#ifndef NAS_EVALUATORS_INT_H
#define NAS_EVALUATORS_INT_H

#include "core/core_int.h"

typedef struct nas_evaluator_vt {
    const char *kind; /* the spec prefix: "table", "train", ... */
    const char *summary;
    /* Parse args (the spec after "KIND:", "" if none) and set e->impl. */
    nas_status (*open)(nas_evaluator *e, const char *args, const nas_eval_opts *opts);
    /* Evaluate a; errors go to ctx (the caller's, so threads can share one evaluator). */
    nas_status (*eval)(nas_evaluator *e, nas_ctx *ctx, const nas_arch *a, nas_eval_result *out);
    void (*free)(nas_evaluator *e); /* frees e->impl; called even after a failed open */
    /* The options it builds networks with; NULL for kinds that build none (the table). */
    const nas_build_opts *(*build_opts)(const nas_evaluator *e);
} nas_evaluator_vt;

struct nas_evaluator {
    nas_ctx *ctx;
    const nas_space *space;
    const nas_evaluator_vt *vt;
    char *spec; /* owned copy */
    nas_eval_opts opts;
    void *impl;
};

extern const nas_evaluator_vt nas_evaluator_table_vt; /* table_nb201.c */
extern const nas_evaluator_vt nas_evaluator_train_vt; /* evaluator.c, on nas_train_model */
extern const nas_evaluator_vt nas_evaluator_proxy_vt; /* proxy_eval.c, zero-cost proxies */

/* NB201 op names in the table's op-code order (nas_nb201_op). */
extern const char *const nas_nb201_op_names[5];

#endif
