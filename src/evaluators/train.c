/* train.c - training from scratch: the epoch loop, evaluation, checkpoints, resume and divergence
 * handling behind `nascent train` and the train:DATASET evaluator.
 *
 * A step is: zero the gradients, forward, check the loss is finite, backward, (clip), optimiser
 * step at the schedule's lr for the global step. Graphs are built once per batch shape (the full
 * batch and the epoch's last, partial one) and rerun, the loader's buffers are allocated once, so
 * a steady-state step makes no allocation.
 *
 * Reproducibility and resume: everything random is a pure function of the seed and the epoch
 * (initialisation, split, order and augmentation in the loader, dropout through the graph
 * seed), the learning rate a function of the global step, and the checkpoint written after every
 * epoch holds the parameters (BN statistics included), the optimiser state and its step count.
 * So a run resumed from the checkpoint of epoch e repeats exactly what the uninterrupted run did
 * from epoch e + 1 on: the final weights are bitwise equal with the same thread count. */
#include "evaluators/train_int.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

void nas_train_config_default(nas_train_config *c) {
    memset(c, 0, sizeof(*c));
    c->epochs = 1;
    c->batch = 128;
    c->optimizer = NAS_OPTIM_SGD;
    c->lr = 0.1f;
    c->momentum = 0.9f;
    c->nesterov = 1;
    c->weight_decay = 5e-4f;
    c->schedule = NAS_SCHED_COSINE;
    c->valid_fraction = 0.1;
    c->data_fraction = 1.0;
    c->augment = -1;
    c->prefetch = 1;
    c->eval_batch = 256;
    c->init_params = 1;
}

/* ------------------------------------------------------------------- graphs per batch shape */

nas_status nas_train_graph_build(nas_ctx *ctx, nas_model *m, nas_train_graph *tg, int64_t b,
                                 int64_t cap, int training, float label_smoothing) {
    if (tg->g == NULL) {
        tg->g = nas_graph_new(ctx);
        if (tg->g == NULL) {
            return nas_fail(ctx, NAS_ERR_NOMEM, "train: out of memory for a graph");
        }
    } else {
        nas_graph_reset(tg->g);
    }
    if (tg->cap < cap) {
        nas_free(ctx, tg->labels, (size_t)tg->cap * sizeof(int32_t));
        tg->cap = 0;
        tg->labels = nas_calloc(ctx, (size_t)cap, sizeof(int32_t));
        if (tg->labels == NULL) {
            return nas_fail(ctx, NAS_ERR_NOMEM, "train: out of memory for labels");
        }
        tg->cap = cap;
    }
    nas_graph *g = tg->g;
    nas_graph_set_training(g, training);
    nas_graph_set_grad_enabled(g, training);
    nas_graph_set_blocked_layouts(g, 1); /* only the loss and the logits are read */
    const nas_model_shape s = nas_model_get_shape(m);
    const int64_t xs[4] = {b, s.in_c, s.in_h, s.in_w};
    tg->x = nas_input(g, 4, xs, NULL);
    tg->logits = nas_model_forward(m, g, tg->x);
    nas_tensor *y = nas_labels(g, b, tg->labels);
    tg->loss = nas_softmax_cross_entropy(g, tg->logits, y, label_smoothing);
    nas_tensor *aux = training ? nas_model_aux_logits(m, g) : NULL;
    if (aux != NULL) { /* auxiliary head (DARTS): loss += 0.4 CE(aux), as its train.py */
        nas_tensor *aux_loss = nas_softmax_cross_entropy(g, aux, y, label_smoothing);
        tg->loss = nas_add(g, tg->loss, nas_scale(g, aux_loss, NAS_AUX_LOSS_WEIGHT));
    }
    tg->b = 0;
    nas_status st = nas_graph_status(g);
    if (st != NAS_OK) {
        char why[NAS_ERRMSG_MAX / 2];
        snprintf(why, sizeof(why), "%s", nas_errmsg(ctx));
        return nas_fail(ctx, st == NAS_ERR_NOMEM ? st : NAS_ERR_SHAPE,
                        "the architecture cannot be built for %dx%dx%d inputs: %s", s.in_c, s.in_h,
                        s.in_w, why);
    }
    if (nas_tensor_ndim(tg->logits) != 2 || nas_tensor_dim(tg->logits, 0) != b ||
        nas_tensor_dim(tg->logits, 1) != s.classes) {
        return nas_fail(ctx, NAS_ERR_SHAPE, "the model's output is not [%lld, %d] logits",
                        (long long)b, s.classes);
    }
    tg->b = b;
    return NAS_OK;
}

void nas_train_graph_free(nas_ctx *ctx, nas_train_graph *tg) {
    nas_graph_free(tg->g);
    nas_free(ctx, tg->labels, tg->labels ? (size_t)tg->cap * sizeof(int32_t) : 0);
    memset(tg, 0, sizeof(*tg));
}

nas_status nas_train_graph_run(nas_train_graph *tg, const float *x, const int32_t *y, int64_t b,
                               double *loss, int64_t *correct) {
    memcpy(tg->labels, y, (size_t)b * sizeof(int32_t));
    nas_tensor_set_data(tg->x, (float *)x); /* read only: inputs get no gradient here */
    nas_status st = nas_graph_forward(tg->g);
    if (st != NAS_OK) {
        return st;
    }
    *loss = nas_tensor_data(tg->loss)[0];
    const float *z = nas_tensor_data(tg->logits);
    const int64_t k = nas_tensor_dim(tg->logits, 1);
    int64_t hits = 0;
    for (int64_t i = 0; i < b; i++) {
        int64_t best = 0;
        for (int64_t j = 1; j < k; j++) {
            best = z[i * k + j] > z[i * k + best] ? j : best;
        }
        hits += best == y[i];
    }
    *correct = hits;
    return NAS_OK;
}

/* ---------------------------------------------------------------------------- evaluation */

/* Evaluation graphs: the full eval batch and one for a final partial batch (rebuilt into the
 * same graph when the partial size changes). */
typedef struct evaluator {
    nas_train_graph full, tail;
    int batch;
} evaluator;

static void evaluator_free(nas_ctx *ctx, evaluator *e) {
    nas_train_graph_free(ctx, &e->full);
    nas_train_graph_free(ctx, &e->tail);
}

static nas_status evaluate_loader(nas_ctx *ctx, nas_model *m, evaluator *e, nas_loader *l,
                                  double *accuracy, double *loss) {
    nas_loader_start_epoch(l, 0);
    const float *x;
    const int32_t *y;
    int64_t b, seen = 0, hits = 0;
    double loss_sum = 0.0;
    while ((b = nas_loader_next(l, &x, &y)) > 0) {
        nas_train_graph *tg = b == e->batch ? &e->full : &e->tail;
        if (tg->b != b) {
            nas_status st = nas_train_graph_build(ctx, m, tg, b, e->batch, 0, 0.0f);
            if (st != NAS_OK) {
                return st;
            }
        }
        double l_b;
        int64_t c_b;
        nas_status st = nas_train_graph_run(tg, x, y, b, &l_b, &c_b);
        if (st != NAS_OK) {
            return st;
        }
        loss_sum += l_b * (double)b;
        hits += c_b;
        seen += b;
    }
    *accuracy = 100.0 * (double)hits / (double)seen;
    if (loss != NULL) {
        *loss = loss_sum / (double)seen;
    }
    return NAS_OK;
}

static nas_status eval_loader_new(const nas_dataset *d, const int64_t *idx, int64_t n, int batch,
                                  int prefetch, nas_loader **out) {
    nas_data_opts o;
    nas_data_opts_default(d, &o);
    o.prefetch = prefetch;
    return nas_loader_new(d, idx, n, batch, &o, out);
}

nas_status nas_model_evaluate(nas_ctx *ctx, nas_model *m, const nas_dataset *d,
                              const int64_t *idx, int64_t n, int batch, double *accuracy,
                              double *loss) {
    NAS_CHECK_ARG(ctx, m != NULL && d != NULL && accuracy != NULL && batch > 0);
    const nas_model_shape ms = nas_model_get_shape(m), ds = nas_dataset_shape(d);
    if (ms.in_c != ds.in_c || ms.in_h != ds.in_h || ms.in_w != ds.in_w ||
        ms.classes < ds.classes) {
        return nas_fail(ctx, NAS_ERR_SHAPE,
                        "the model takes %dx%dx%d inputs and %d classes, the data are %dx%dx%d with "
                        "%d classes",
                        ms.in_c, ms.in_h, ms.in_w, ms.classes, ds.in_c, ds.in_h, ds.in_w,
                        ds.classes);
    }
    nas_loader *l = NULL;
    nas_status st = eval_loader_new(d, idx, n, batch, 1, &l);
    if (st != NAS_OK) {
        return st;
    }
    evaluator e = {.batch = batch};
    st = evaluate_loader(ctx, m, &e, l, accuracy, loss);
    evaluator_free(ctx, &e);
    nas_loader_free(l);
    return st;
}

/* ------------------------------------------------------------------------------ the trainer */

typedef struct trainer {
    nas_ctx *ctx;
    nas_model *m;
    nas_params *P;
    const nas_train_config *cfg;
    const nas_dataset *train, *test; /* resampled copies when cfg->resolution asks */
    nas_dataset *train_owned, *test_owned;
    nas_index_list train_idx, valid_idx;
    nas_loader *loader, *valid_loader, *test_loader;
    nas_train_graph full, tail;
    evaluator eval;
    nas_optim *opt;
    nas_sched sched;
    int64_t steps_per_epoch, total_steps, step; /* global step = optimiser steps done */
    nas_epoch_metrics *hist; /* [epochs] */
    int epochs_done;
    double seconds_before; /* wall and train time of earlier runs (resume) */
    double train_seconds_before;
    double t_start;
    double train_seconds;  /* this run */
    char ckpt_path[4096], metrics_path[4096], result_path[4096];
} trainer;

static void trainer_free(trainer *t) {
    nas_ctx *ctx = t->ctx;
    nas_loader_free(t->loader);
    nas_loader_free(t->valid_loader);
    nas_loader_free(t->test_loader);
    nas_train_graph_free(ctx, &t->full);
    nas_train_graph_free(ctx, &t->tail);
    evaluator_free(ctx, &t->eval);
    nas_optim_free(t->opt);
    nas_index_list_free(ctx, &t->train_idx);
    nas_index_list_free(ctx, &t->valid_idx);
    nas_dataset_free(t->train_owned);
    nas_dataset_free(t->test_owned);
    if (t->hist != NULL) {
        nas_free(ctx, t->hist, (size_t)t->cfg->epochs * sizeof(nas_epoch_metrics));
    }
}

static nas_status check_config(nas_ctx *ctx, const nas_train_config *c) {
    if (c->epochs < 1 || c->epochs > 100000) {
        return nas_fail(ctx, NAS_ERR_ARG, "train: epochs %d is outside 1..100000", c->epochs);
    }
    if (c->batch < 1 || c->eval_batch < 1) {
        return nas_fail(ctx, NAS_ERR_ARG, "train: batch %d / eval batch %d must be positive",
                        c->batch, c->eval_batch);
    }
    if (!(c->lr >= 0.0f) || !isfinite(c->lr) || !(c->min_lr >= 0.0f)) {
        return nas_fail(ctx, NAS_ERR_ARG, "train: bad learning rate %g (min %g)", (double)c->lr,
                        (double)c->min_lr);
    }
    if (!(c->label_smoothing >= 0.0f && c->label_smoothing < 1.0f)) {
        return nas_fail(ctx, NAS_ERR_ARG, "train: label smoothing %g is outside [0, 1)",
                        (double)c->label_smoothing);
    }
    if (c->resume && c->out_dir == NULL) {
        return nas_fail(ctx, NAS_ERR_ARG, "train: resume needs an output directory");
    }
    return NAS_OK;
}

/* Resample the datasets when a resolution is asked for; check the model fits the data. */
static nas_status prepare_data(trainer *t, const nas_dataset *train, const nas_dataset *test) {
    const nas_train_config *c = t->cfg;
    t->train = train;
    t->test = test;
    const nas_model_shape ds = nas_dataset_shape(train);
    if (c->resolution > 0 && (c->resolution != ds.in_h || c->resolution != ds.in_w)) {
        nas_status st = nas_dataset_resize(train, c->resolution, &t->train_owned);
        if (st == NAS_OK && test != NULL) {
            st = nas_dataset_resize(test, c->resolution, &t->test_owned);
        }
        if (st != NAS_OK) {
            return st;
        }
        t->train = t->train_owned;
        t->test = test != NULL ? t->test_owned : NULL;
    }
    const nas_model_shape ms = nas_model_get_shape(t->m), s = nas_dataset_shape(t->train);
    if (ms.in_c != s.in_c || ms.in_h != s.in_h || ms.in_w != s.in_w || ms.classes < s.classes) {
        return nas_fail(t->ctx, NAS_ERR_SHAPE,
                        "the model takes %dx%dx%d inputs and %d classes, the data are %dx%dx%d with "
                        "%d classes (build the model for the dataset and resolution)",
                        ms.in_c, ms.in_h, ms.in_w, ms.classes, s.in_c, s.in_h, s.in_w, s.classes);
    }
    if (t->test != NULL) {
        const nas_model_shape ts = nas_dataset_shape(t->test);
        if (ts.in_c != s.in_c || ts.in_h != s.in_h || ts.in_w != s.in_w) {
            return nas_fail(t->ctx, NAS_ERR_SHAPE, "the test images (%dx%dx%d) differ from the "
                            "training images (%dx%dx%d)", ts.in_c, ts.in_h, ts.in_w, s.in_c,
                            s.in_h, s.in_w);
        }
    }
    return NAS_OK;
}

static nas_status make_loaders(trainer *t) {
    const nas_train_config *c = t->cfg;
    nas_status st = nas_dataset_split(t->ctx, nas_dataset_size(t->train), c->valid_fraction,
                                      c->data_fraction, c->seed, &t->train_idx, &t->valid_idx);
    if (st != NAS_OK) {
        return st;
    }
    nas_data_opts o;
    nas_data_opts_default(t->train, &o);
    const int augment = c->augment < 0 ? nas_dataset_augment_default(t->train) : c->augment;
    o.pad_crop = augment ? 4 : 0;
    o.flip = augment;
    o.shuffle = 1;
    o.prefetch = c->prefetch;
    o.seed = c->seed;
    /* a final batch of one example would make batch norm's statistics degenerate */
    o.drop_last = t->train_idx.n > c->batch && t->train_idx.n % c->batch == 1;
    st = nas_loader_new(t->train, t->train_idx.idx, t->train_idx.n, c->batch, &o, &t->loader);
    if (st == NAS_OK && t->valid_idx.n > 0) {
        st = eval_loader_new(t->train, t->valid_idx.idx, t->valid_idx.n, c->eval_batch,
                             c->prefetch, &t->valid_loader);
    }
    if (st == NAS_OK && t->test != NULL) {
        st = eval_loader_new(t->test, NULL, 0, c->eval_batch, c->prefetch, &t->test_loader);
    }
    t->eval.batch = c->eval_batch;
    t->steps_per_epoch = st == NAS_OK ? nas_loader_batches(t->loader) : 0;
    t->total_steps = t->steps_per_epoch * c->epochs;
    return st;
}

static nas_status make_optim(trainer *t) {
    const nas_train_config *c = t->cfg;
    nas_optim_config oc;
    memset(&oc, 0, sizeof(oc));
    oc.kind = c->optimizer;
    oc.momentum = c->optimizer == NAS_OPTIM_SGD ? c->momentum : 0.0f;
    oc.nesterov = c->optimizer == NAS_OPTIM_SGD && c->momentum > 0.0f ? c->nesterov : 0;
    oc.weight_decay = c->weight_decay;
    oc.flags_mask = NAS_PARAM_BUFFER | NAS_PARAM_ARCH;
    oc.flags_value = 0;
    nas_status st = nas_optim_new(t->P, &oc, &t->opt);
    if (st != NAS_OK) {
        return st;
    }
    memset(&t->sched, 0, sizeof(t->sched));
    t->sched.kind = c->schedule;
    t->sched.base_lr = c->lr;
    t->sched.min_lr = c->min_lr;
    t->sched.total_steps = t->total_steps;
    t->sched.step_size = t->total_steps / 3 > 0 ? t->total_steps / 3 : 1;
    t->sched.gamma = 0.1f;
    t->sched.warmup_steps = (int64_t)c->warmup_epochs * t->steps_per_epoch;
    return NAS_OK;
}

/* ------------------------------------------------------------------- checkpoints and files */

static char *meta_text(trainer *t) {
    json_t *j = json_object();
    json_object_set_new(j, "format", json_string("nascent-train"));
    json_object_set_new(j, "version", json_integer(1));
    json_object_set_new(j, "model", nas_train_desc_json(t->cfg->desc));
    const nas_model_shape s = nas_model_get_shape(t->m);
    json_object_set_new(j, "shape", json_pack("[iiii]", s.in_c, s.in_h, s.in_w, s.classes));
    json_object_set_new(j, "config", nas_train_fingerprint(t->cfg, t->train_owned ? t->train_owned
                                                                                   : t->train));
    json_object_set_new(j, "epoch", json_integer(t->epochs_done));
    json_object_set_new(j, "steps", json_integer(t->step));
    json_object_set_new(j, "optim_steps", json_integer(nas_optim_steps(t->opt)));
    json_object_set_new(j, "seconds", json_real(t->seconds_before + nas_now() - t->t_start));
    json_object_set_new(j, "train_seconds", json_real(t->train_seconds_before + t->train_seconds));
    json_t *hist = json_array();
    for (int e = 0; e < t->epochs_done; e++) {
        json_array_append_new(hist, nas_train_metrics_json(&t->hist[e]));
    }
    json_object_set_new(j, "metrics", hist);
    char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return text;
}

static nas_status save_checkpoint(trainer *t) {
    char *meta = meta_text(t);
    if (meta == NULL) {
        return nas_fail(t->ctx, NAS_ERR_NOMEM, "train: cannot format the checkpoint metadata");
    }
    int64_t n = 0;
    const float *state = nas_optim_state(t->opt, &n);
    const char *names[1] = {"optim"};
    const float *extra[1] = {state};
    const int64_t lens[1] = {n};
    nas_status st = nas_checkpoint_save(t->P, t->ckpt_path, meta, n > 0 ? 1 : 0, names, extra,
                                        lens);
    free(meta);
    return st;
}

static nas_status append_metrics(trainer *t, const nas_epoch_metrics *m, int truncate) {
    FILE *f = fopen(t->metrics_path, truncate ? "w" : "a");
    if (f == NULL) {
        return nas_fail(t->ctx, NAS_ERR_IO, "cannot write '%s': %s", t->metrics_path,
                        strerror(errno));
    }
    if (m != NULL) {
        json_t *j = nas_train_metrics_json(m);
        char *line = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(8));
        json_decref(j);
        if (line != NULL) {
            fprintf(f, "%s\n", line);
            free(line);
        }
    }
    if (fclose(f) != 0) {
        return nas_fail(t->ctx, NAS_ERR_IO, "cannot write '%s'", t->metrics_path);
    }
    return NAS_OK;
}

/* Continue from the checkpoint: parameters, optimiser state and counters; the settings that
 * change the result must be the checkpoint's. */
static nas_status resume(trainer *t) {
    nas_ctx *ctx = t->ctx;
    struct stat sb;
    if (stat(t->ckpt_path, &sb) != 0) {
        return append_metrics(t, NULL, 1); /* nothing to resume: a fresh run */
    }
    int64_t n = 0;
    float *state = nas_optim_state(t->opt, &n);
    const char *names[1] = {"optim"};
    float *extra[1] = {state};
    const int64_t lens[1] = {n};
    char *meta = NULL;
    nas_status st = nas_checkpoint_load(t->P, t->ckpt_path, n > 0 ? 1 : 0, names, extra, lens,
                                        &meta);
    if (st != NAS_OK) {
        return st;
    }
    json_error_t jerr;
    json_t *j = json_loads(meta, 0, &jerr);
    nas_free(ctx, meta, strlen(meta) + 1);
    if (j == NULL) {
        return nas_fail(ctx, NAS_ERR_FORMAT, "'%s': bad metadata: %s (column %d)", t->ckpt_path,
                        jerr.text, jerr.column);
    }
    json_t *want = nas_train_fingerprint(t->cfg, t->train_owned ? t->train_owned : t->train);
    json_t *desc = nas_train_desc_json(t->cfg->desc);
    const int same = json_equal(json_object_get(j, "config"), want) &&
                     (t->cfg->desc == NULL || json_equal(json_object_get(j, "model"), desc));
    json_decref(want);
    json_decref(desc);
    const json_t *hist = json_object_get(j, "metrics");
    const int64_t epoch = json_integer_value(json_object_get(j, "epoch"));
    if (!same) {
        json_decref(j);
        return nas_fail(ctx, NAS_ERR_STATE,
                        "cannot resume from '%s': it was written with other settings (model, "
                        "dataset, epochs, batch, optimiser, lr, schedule, fractions, seed must "
                        "match); use another --out directory or drop --resume",
                        t->ckpt_path);
    }
    if (epoch < 1 || epoch > t->cfg->epochs || !json_is_array(hist) ||
        (int64_t)json_array_size(hist) != epoch) {
        json_decref(j);
        return nas_fail(ctx, NAS_ERR_FORMAT, "'%s': metadata has an inconsistent epoch count",
                        t->ckpt_path);
    }
    for (int64_t e = 0; e < epoch; e++) {
        nas_train_metrics_from_json(json_array_get(hist, (size_t)e), &t->hist[e]);
    }
    t->epochs_done = (int)epoch;
    t->step = json_integer_value(json_object_get(j, "steps"));
    nas_optim_set_steps(t->opt, json_integer_value(json_object_get(j, "optim_steps")));
    t->seconds_before = nas_train_json_get(j, "seconds");
    t->train_seconds_before = nas_train_json_get(j, "train_seconds");
    json_decref(j);
    /* metrics.jsonl again from the checkpoint: lines of a killed later epoch disappear */
    st = append_metrics(t, NULL, 1);
    for (int e = 0; st == NAS_OK && e < t->epochs_done; e++) {
        st = append_metrics(t, &t->hist[e], 0);
    }
    return st;
}

static nas_status write_result(trainer *t, const nas_train_result *r) {
    json_t *j = json_object();
    json_object_set_new(j, "test_accuracy", nas_train_json_num(r->test_accuracy));
    json_object_set_new(j, "valid_accuracy", nas_train_json_num(r->valid_accuracy));
    json_object_set_new(j, "train_accuracy", nas_train_json_num(r->train_accuracy));
    json_object_set_new(j, "train_loss", nas_train_json_num(r->train_loss));
    json_object_set_new(j, "epochs", json_integer(r->epochs_done));
    json_object_set_new(j, "seconds", json_real(r->seconds));
    json_object_set_new(j, "train_seconds", json_real(r->train_seconds));
    json_object_set_new(j, "params", json_integer(r->params));
    json_object_set_new(j, "steps", json_integer(r->steps));
    json_object_set_new(j, "n_train", json_integer(r->n_train));
    json_object_set_new(j, "n_valid", json_integer(r->n_valid));
    json_object_set_new(j, "resumed_from", json_integer(r->resumed_from));
    json_object_set_new(j, "model", nas_train_desc_json(t->cfg->desc));
    json_object_set_new(j, "config", nas_train_fingerprint(t->cfg, t->train));
    json_t *hist = json_array();
    for (int e = 0; e < t->epochs_done; e++) {
        json_array_append_new(hist, nas_train_metrics_json(&t->hist[e]));
    }
    json_object_set_new(j, "metrics", hist);
    char *text = json_dumps(j, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
    json_decref(j);
    if (text == NULL) {
        return nas_fail(t->ctx, NAS_ERR_NOMEM, "train: cannot format result.json");
    }
    const size_t len = strlen(text);
    char *with_nl = malloc(len + 2);
    nas_status st = NAS_ERR_NOMEM;
    if (with_nl != NULL) {
        memcpy(with_nl, text, len);
        with_nl[len] = '\n';
        with_nl[len + 1] = '\0';
        st = nas_train_write_atomic(t->ctx, t->result_path, with_nl);
        free(with_nl);
    }
    free(text);
    return st;
}

/* ---------------------------------------------------------------------------- the loop */

static int report(trainer *t, nas_train_progress *p) {
    return t->cfg->progress != NULL && t->cfg->progress(t->cfg->progress_user, p) != 0;
}

static nas_status diverged(trainer *t, int epoch, int64_t step, double loss, float lr) {
    const char *what = isnan(loss) ? "NaN" : "infinite";
    if (t->cfg->out_dir != NULL && t->epochs_done > 0) {
        return nas_fail(t->ctx, NAS_ERR_NUMERIC,
                        "training diverged: the loss became %s at epoch %d step %lld (lr %g); "
                        "the checkpoint of epoch %d is kept in %s (try a lower --lr)",
                        what, epoch, (long long)step, (double)lr, t->epochs_done, t->ckpt_path);
    }
    return nas_fail(t->ctx, NAS_ERR_NUMERIC,
                    "training diverged: the loss became %s at epoch %d step %lld (lr %g); try a "
                    "lower --lr",
                    what, epoch, (long long)step, (double)lr);
}

/* One training step on batch (x, y) of b examples. */
static nas_status train_step(trainer *t, int epoch, int64_t k, const float *x, const int32_t *y,
                             int64_t b, double *loss, int64_t *correct, float *lr_out) {
    nas_ctx *ctx = t->ctx;
    const nas_train_config *c = t->cfg;
    nas_train_graph *tg = b == c->batch ? &t->full : &t->tail;
    if (tg->b != b) {
        nas_status st = nas_train_graph_build(ctx, t->m, tg, b, c->batch, 1, c->label_smoothing);
        if (st != NAS_OK) {
            return st;
        }
        nas_graph_set_seed(tg->g, c->seed * 0x9E3779B97F4A7C15ULL + (uint64_t)epoch);
    }
    const float lr = nas_sched_lr(&t->sched, t->step);
    *lr_out = lr;
    nas_params_zero_grad(t->P);
    nas_status st = nas_train_graph_run(tg, x, y, b, loss, correct);
    if (st != NAS_OK) {
        return st;
    }
    if (!isfinite(*loss)) {
        return diverged(t, epoch, k + 1, *loss, lr);
    }
    st = nas_graph_backward(tg->g, tg->loss);
    if (st != NAS_OK) {
        return st;
    }
    if (c->grad_clip > 0.0) {
        const double norm = nas_clip_grad_norm(t->P, NAS_PARAM_BUFFER | NAS_PARAM_ARCH, 0,
                                               c->grad_clip);
        if (!isfinite(norm)) {
            return diverged(t, epoch, k + 1, norm, lr);
        }
    }
    st = nas_optim_step(t->opt, lr);
    t->step++;
    return st;
}

static nas_status run_epoch(trainer *t, int epoch, nas_epoch_metrics *m) {
    const nas_train_config *c = t->cfg;
    /* dropout streams: a function of (seed, epoch) so a resumed run matches */
    const uint64_t gseed = c->seed * 0x9E3779B97F4A7C15ULL + (uint64_t)epoch;
    if (t->full.g != NULL) {
        nas_graph_set_seed(t->full.g, gseed);
    }
    if (t->tail.g != NULL) {
        nas_graph_set_seed(t->tail.g, gseed);
    }
    nas_loader_start_epoch(t->loader, epoch - 1);
    const double t0 = nas_now();
    double loss_sum = 0.0;
    int64_t hits = 0, seen = 0, k = 0, b;
    const float *x;
    const int32_t *y;
    float lr = c->lr;
    while ((b = nas_loader_next(t->loader, &x, &y)) > 0) {
        double loss;
        int64_t correct;
        nas_status st = train_step(t, epoch, k, x, y, b, &loss, &correct, &lr);
        if (st != NAS_OK) {
            return st;
        }
        loss_sum += loss * (double)b;
        hits += correct;
        seen += b;
        k++;
        if (c->progress != NULL) {
            const double dt = nas_now() - t0;
            const double per_step = dt / (double)k;
            const double steps_left = (double)(t->total_steps - t->step);
            nas_train_progress p = {.event = NAS_TRAIN_STEP,
                                    .epoch = epoch,
                                    .epochs = c->epochs,
                                    .step = k,
                                    .steps = t->steps_per_epoch,
                                    .loss = loss_sum / (double)seen,
                                    .accuracy = 100.0 * (double)hits / (double)seen,
                                    .images_per_s = dt > 0 ? (double)seen / dt : 0.0,
                                    .eta_s = per_step * steps_left};
            if (report(t, &p)) {
                return nas_fail(t->ctx, NAS_ERR_STATE, "training stopped at epoch %d step %lld",
                                epoch, (long long)k);
            }
        }
    }
    m->epoch = epoch;
    m->seconds = nas_now() - t0;
    m->train_loss = loss_sum / (double)seen;
    m->train_accuracy = 100.0 * (double)hits / (double)seen;
    m->images_per_s = m->seconds > 0 ? (double)seen / m->seconds : 0.0;
    m->lr = lr;
    t->train_seconds += m->seconds;
    return NAS_OK;
}

static nas_status evaluate_epoch(trainer *t, nas_epoch_metrics *m, int with_test) {
    const double t0 = nas_now();
    m->valid_accuracy = m->valid_loss = m->test_accuracy = NAN;
    nas_status st = NAS_OK;
    if (t->valid_loader != NULL) {
        st = evaluate_loader(t->ctx, t->m, &t->eval, t->valid_loader, &m->valid_accuracy,
                             &m->valid_loss);
    }
    if (st == NAS_OK && with_test && t->test_loader != NULL) {
        st = evaluate_loader(t->ctx, t->m, &t->eval, t->test_loader, &m->test_accuracy, NULL);
    }
    m->eval_seconds = nas_now() - t0;
    return st;
}

static nas_status make_paths(trainer *t) {
    const char *dir = t->cfg->out_dir;
    if (dir == NULL) {
        return NAS_OK;
    }
    if (strlen(dir) > 4000) {
        return nas_fail(t->ctx, NAS_ERR_ARG, "train: output directory path too long");
    }
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        return nas_fail(t->ctx, NAS_ERR_IO, "cannot create '%s': %s", dir, strerror(errno));
    }
    snprintf(t->ckpt_path, sizeof(t->ckpt_path), "%s/checkpoint.bin", dir);
    snprintf(t->metrics_path, sizeof(t->metrics_path), "%s/metrics.jsonl", dir);
    snprintf(t->result_path, sizeof(t->result_path), "%s/result.json", dir);
    return NAS_OK;
}

static nas_status setup(trainer *t, const nas_dataset *train, const nas_dataset *test) {
    const nas_train_config *c = t->cfg;
    nas_status st = check_config(t->ctx, c);
    if (st == NAS_OK) {
        st = make_paths(t);
    }
    if (st == NAS_OK) {
        st = prepare_data(t, train, test);
    }
    if (st == NAS_OK) {
        st = make_loaders(t);
    }
    if (st == NAS_OK && c->init_params) {
        nas_params_init(t->P, c->seed);
    }
    if (st == NAS_OK) {
        st = make_optim(t);
    }
    if (st == NAS_OK) {
        t->hist = nas_calloc(t->ctx, (size_t)c->epochs, sizeof(nas_epoch_metrics));
        st = t->hist == NULL ? NAS_ERR_NOMEM : NAS_OK;
    }
    /* build the training graph now: an unbuildable architecture fails before any file is made */
    if (st == NAS_OK) {
        st = nas_train_graph_build(t->ctx, t->m, &t->full, c->batch, c->batch, 1,
                                   c->label_smoothing);
    }
    if (st == NAS_OK && c->resume) {
        st = resume(t);
    } else if (st == NAS_OK && c->out_dir != NULL) {
        st = append_metrics(t, NULL, 1);
    }
    return st;
}

nas_status nas_train_model(nas_ctx *ctx, nas_model *m, const nas_dataset *train,
                           const nas_dataset *test, const nas_train_config *cfg,
                           nas_train_result *res) {
    NAS_CHECK_ARG(ctx, m != NULL && train != NULL && cfg != NULL);
    trainer t;
    memset(&t, 0, sizeof(t));
    t.ctx = ctx;
    t.m = m;
    t.P = nas_model_params(m);
    t.cfg = cfg;
    t.t_start = nas_now();
    nas_status st = setup(&t, train, test);
    const int resumed_from = t.epochs_done;
    while (st == NAS_OK && t.epochs_done < cfg->epochs) {
        const int epoch = t.epochs_done + 1;
        nas_epoch_metrics *mt = &t.hist[epoch - 1];
        st = run_epoch(&t, epoch, mt);
        if (st == NAS_OK) {
            st = evaluate_epoch(&t, mt, cfg->test_every_epoch);
        }
        if (st != NAS_OK) {
            break;
        }
        t.epochs_done = epoch;
        if (cfg->out_dir != NULL) {
            st = save_checkpoint(&t);
            if (st == NAS_OK) {
                st = append_metrics(&t, mt, 0);
            }
        }
        const double per_epoch = (nas_now() - t.t_start) / (double)(epoch - resumed_from);
        nas_train_progress p = {.event = NAS_TRAIN_EPOCH_END,
                                .epoch = epoch,
                                .epochs = cfg->epochs,
                                .step = t.steps_per_epoch,
                                .steps = t.steps_per_epoch,
                                .loss = mt->train_loss,
                                .accuracy = mt->train_accuracy,
                                .images_per_s = mt->images_per_s,
                                .eta_s = per_epoch * (double)(cfg->epochs - epoch),
                                .metrics = mt};
        if (st == NAS_OK && report(&t, &p)) {
            st = nas_fail(ctx, NAS_ERR_STATE, "training stopped after epoch %d", epoch);
        }
    }
    nas_train_result r;
    memset(&r, 0, sizeof(r));
    r.test_accuracy = r.valid_accuracy = r.train_loss = r.train_accuracy = NAN;
    if (st == NAS_OK) {
        const nas_epoch_metrics *last = &t.hist[cfg->epochs - 1];
        r.test_accuracy = last->test_accuracy;
        if (t.test_loader != NULL && !isfinite(r.test_accuracy)) {
            st = evaluate_loader(ctx, m, &t.eval, t.test_loader, &r.test_accuracy, NULL);
        }
        r.epochs_done = t.epochs_done;
        r.resumed_from = resumed_from;
        r.steps = t.step;
        r.train_loss = last->train_loss;
        r.train_accuracy = last->train_accuracy;
        r.valid_accuracy = last->valid_accuracy;
        r.seconds = t.seconds_before + nas_now() - t.t_start;
        r.train_seconds = t.train_seconds_before + t.train_seconds;
        r.params = nas_model_n_params(m);
        r.n_train = t.train_idx.n;
        r.n_valid = t.valid_idx.n;
    }
    if (st == NAS_OK && cfg->out_dir != NULL) {
        st = write_result(&t, &r);
    }
    if (res != NULL) {
        *res = r;
    }
    trainer_free(&t);
    return st;
}
