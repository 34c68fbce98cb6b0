/* train_int.h - internals of the trainer shared by its files: train.c (the epoch loop and
 * evaluation), train_meta.c (checkpoint metadata, metrics and result JSON, resume checks) and
 * train_model.c (building a model from a nas_model_desc). */
#ifndef NAS_TRAIN_INT_H
#define NAS_TRAIN_INT_H

#include "core/core_int.h"

#include <jansson.h>

/* One graph per batch shape: built once, run every step (its arena is reused). */
typedef struct nas_train_graph {
    nas_graph *g;
    nas_tensor *x, *logits, *loss;
    int32_t *labels; /* [cap] labels the loss reads; the caller copies a batch's labels in */
    int64_t cap;     /* labels capacity */
    int64_t b;       /* batch size this graph is built for; 0 = not built */
} nas_train_graph;

/* Build (or rebuild into the same graph) for batch b: training mode with gradients, or
 * evaluation mode without. The labels buffer has room for cap >= b labels. */
nas_status nas_train_graph_build(nas_ctx *ctx, nas_model *m, nas_train_graph *tg, int64_t b,
                                 int64_t cap, int training, float label_smoothing);
void nas_train_graph_free(nas_ctx *ctx, nas_train_graph *tg);
/* Forward one batch; *loss gets the batch-mean loss, *correct the argmax hits. */
nas_status nas_train_graph_run(nas_train_graph *tg, const float *x, const int32_t *y, int64_t b,
                               double *loss, int64_t *correct);

/* JSON helpers (jansson): a double or null when not finite. */
json_t *nas_train_json_num(double v);
double nas_train_json_get(const json_t *obj, const char *key);

json_t *nas_train_metrics_json(const nas_epoch_metrics *m);
void nas_train_metrics_from_json(const json_t *j, nas_epoch_metrics *m);
/* The settings a resume must share with the checkpoint (everything that changes the result). */
json_t *nas_train_fingerprint(const nas_train_config *cfg, const nas_dataset *train);
json_t *nas_train_desc_json(const nas_model_desc *d);

/* Write text to path atomically (temporary file, fsync, rename). */
nas_status nas_train_write_atomic(nas_ctx *ctx, const char *path, const char *text);

#endif
