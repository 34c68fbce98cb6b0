/* cmd_eval.c - `nascent eval --checkpoint F --dataset D --split test|valid|train`: rebuild the
 * model a training checkpoint describes (its metadata holds the model, the input shape and the
 * split settings), load its parameters and print the accuracy on a split. */
#include "cli_int.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

static void usage(FILE *out) {
    fprintf(out,
            "usage: nascent eval --checkpoint F [--dataset D] [--data-dir DIR]\n"
            "                    [--split test|valid|train] [--batch B] [--threads T] [--json]\n\n"
            "Prints the accuracy of the checkpoint's model on a split (test by default). The\n"
            "dataset defaults to the one it was trained on; valid/train are the training run's\n"
            "seeded split of the training files.\n");
}

typedef struct eval_opts {
    const char *checkpoint, *dataset, *data_dir, *split;
    int batch, threads, json;
} eval_opts;

static int parse_args(int argc, char **argv, eval_opts *o) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return -1;
        }
        if (strcmp(a, "--json") == 0) {
            o->json = 1;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "nascent eval: %s needs a value (see nascent eval --help)\n", a);
            return 2;
        }
        const char *v = argv[++i];
        char *end = NULL;
        if (strcmp(a, "--checkpoint") == 0) {
            o->checkpoint = v;
        } else if (strcmp(a, "--dataset") == 0) {
            o->dataset = v;
        } else if (strcmp(a, "--data-dir") == 0) {
            o->data_dir = v;
        } else if (strcmp(a, "--split") == 0) {
            o->split = v;
        } else if (strcmp(a, "--batch") == 0 || strcmp(a, "--threads") == 0) {
            errno = 0;
            const long n = strtol(v, &end, 10);
            const long lo = a[2] == 'b' ? 1 : 0;
            if (errno != 0 || *end != '\0' || end == v || n < lo || n > 65536) {
                fprintf(stderr, "nascent eval: %s expects an integer, got '%s'\n", a, v);
                return 2;
            }
            *(a[2] == 'b' ? &o->batch : &o->threads) = (int)n;
        } else {
            fprintf(stderr, "nascent eval: unknown option '%s' (see nascent eval --help)\n", a);
            return 2;
        }
    }
    if (o->checkpoint == NULL) {
        fprintf(stderr, "nascent eval: --checkpoint is required\n");
        return 2;
    }
    if (strcmp(o->split, "test") != 0 && strcmp(o->split, "valid") != 0 &&
        strcmp(o->split, "train") != 0) {
        fprintf(stderr, "nascent eval: --split is test, valid or train, not '%s'\n", o->split);
        return 2;
    }
    return 0;
}

static int code_of(nas_status st) {
    return st == NAS_ERR_NOMEM || st == NAS_ERR_BACKEND ? 1 : 2;
}

static const char *str_of(const json_t *o, const char *k) {
    const json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static double num_of(const json_t *o, const char *k, double dflt) {
    const json_t *v = json_object_get(o, k);
    return json_is_number(v) ? json_number_value(v) : dflt;
}

int cmd_eval(int argc, char **argv) {
    eval_opts o = {.split = "test", .batch = 256};
    const int pr = parse_args(argc, argv, &o);
    if (pr != 0) {
        return pr < 0 ? 0 : pr;
    }
    nas_set_threads(o.threads);
    nas_ctx *ctx = nas_ctx_new();
    if (ctx == NULL) {
        return 1;
    }
    char *meta = NULL;
    json_t *j = NULL;
    nas_dataset *data = NULL, *resized = NULL;
    nas_model *m = NULL;
    nas_index_list tr = {0}, va = {0};
    int rc = 0;
    nas_status st = nas_train_checkpoint_meta(ctx, o.checkpoint, &meta);
    if (st != NAS_OK) {
        fprintf(stderr, "nascent eval: %s\n", nas_errmsg(ctx));
        rc = code_of(st);
        goto done;
    }
    json_error_t jerr;
    j = json_loads(meta, 0, &jerr);
    const json_t *model = json_object_get(j, "model"), *shape = json_object_get(j, "shape");
    const json_t *cfg = json_object_get(j, "config");
    if (j == NULL || !json_is_object(model) || !json_is_array(shape) || json_array_size(shape) != 4 ||
        !json_is_object(cfg)) {
        fprintf(stderr, "nascent eval: '%s' is not a training checkpoint with a model description "
                        "(written by nascent train)\n", o.checkpoint);
        rc = 2;
        goto done;
    }
    const nas_model_desc desc = {.net = str_of(model, "net"),
                                 .space = str_of(model, "space"),
                                 .arch = str_of(model, "arch"),
                                 .channels_mult = num_of(model, "channels_mult", 0),
                                 .cells = (int)num_of(model, "cells", 0),
                                 .aux_head = (int)num_of(model, "aux_head", 0)};
    const nas_model_shape ms = {(int)json_integer_value(json_array_get(shape, 0)),
                                (int)json_integer_value(json_array_get(shape, 1)),
                                (int)json_integer_value(json_array_get(shape, 2)),
                                (int)json_integer_value(json_array_get(shape, 3))};
    if (o.dataset == NULL) {
        o.dataset = str_of(cfg, "dataset");
    }
    if (o.dataset == NULL || o.dataset[0] == '\0') {
        fprintf(stderr, "nascent eval: give --dataset (the checkpoint does not name one)\n");
        rc = 2;
        goto done;
    }
    st = nas_model_build_desc(ctx, &desc, ms, &m);
    if (st == NAS_OK) {
        st = nas_checkpoint_load(nas_model_params(m), o.checkpoint, 0, NULL, NULL, NULL, NULL);
    }
    if (st == NAS_OK) {
        st = nas_dataset_open(ctx, o.dataset, o.data_dir, strcmp(o.split, "test") == 0, &data);
    }
    const nas_dataset *d = data;
    if (st == NAS_OK && (nas_dataset_shape(data).in_h != ms.in_h ||
                         nas_dataset_shape(data).in_w != ms.in_w)) {
        st = nas_dataset_resize(data, ms.in_h, &resized); /* trained at another resolution */
        d = resized;
    }
    const int64_t *idx = NULL;
    int64_t n = 0;
    if (st == NAS_OK && strcmp(o.split, "test") != 0) {
        st = nas_dataset_split(ctx, nas_dataset_size(d), num_of(cfg, "valid_fraction", 0),
                               num_of(cfg, "data_fraction", 1),
                               (uint64_t)json_integer_value(json_object_get(cfg, "seed")), &tr,
                               &va);
        const nas_index_list *l = strcmp(o.split, "valid") == 0 ? &va : &tr;
        if (st == NAS_OK && l->n == 0) {
            fprintf(stderr, "nascent eval: the run had no validation split\n");
            rc = 2;
            goto done;
        }
        idx = l->idx;
        n = l->n;
    }
    double acc = NAN, loss = NAN;
    if (st == NAS_OK) {
        st = nas_model_evaluate(ctx, m, d, idx, n, o.batch, &acc, &loss);
    }
    if (st != NAS_OK) {
        fprintf(stderr, "nascent eval: %s\n", nas_errmsg(ctx));
        rc = code_of(st);
        goto done;
    }
    const int64_t count = idx != NULL ? n : nas_dataset_size(d);
    if (o.json) {
        json_t *out = json_pack("{s:s, s:s, s:f, s:f, s:I}", "split", o.split, "dataset",
                                o.dataset, "accuracy", acc, "loss", loss, "examples",
                                (json_int_t)count);
        char *s = json_dumps(out, JSON_COMPACT | JSON_REAL_PRECISION(8));
        printf("%s\n", s);
        free(s);
        json_decref(out);
    } else {
        printf("%s accuracy %.2f%% (loss %.4f) on %lld %s examples\n", o.split, acc, loss,
               (long long)count, o.dataset);
    }
done:
    nas_index_list_free(ctx, &tr);
    nas_index_list_free(ctx, &va);
    nas_model_free(m);
    nas_dataset_free(resized);
    nas_dataset_free(data);
    json_decref(j);
    if (meta != NULL) {
        nas_free(ctx, meta, strlen(meta) + 1);
    }
    nas_ctx_free(ctx);
    return rc;
}
