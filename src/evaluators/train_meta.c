/* train_meta.c - the trainer's JSON: per-epoch metrics lines, the fingerprint of the settings a
 * resume must share with its checkpoint, the model description stored for `nascent eval`, atomic
 * text files (result.json), and reading a checkpoint's metadata without its parameters. */
#include "evaluators/train_int.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

json_t *nas_train_json_num(double v) {
    return isfinite(v) ? json_real(v) : json_null();
}

double nas_train_json_get(const json_t *obj, const char *key) {
    const json_t *v = json_object_get(obj, key);
    return json_is_number(v) ? json_number_value(v) : (double)NAN;
}

json_t *nas_train_metrics_json(const nas_epoch_metrics *m) {
    json_t *j = json_object();
    json_object_set_new(j, "epoch", json_integer(m->epoch));
    json_object_set_new(j, "train_loss", nas_train_json_num(m->train_loss));
    json_object_set_new(j, "train_accuracy", nas_train_json_num(m->train_accuracy));
    json_object_set_new(j, "valid_loss", nas_train_json_num(m->valid_loss));
    json_object_set_new(j, "valid_accuracy", nas_train_json_num(m->valid_accuracy));
    if (isfinite(m->test_accuracy)) {
        json_object_set_new(j, "test_accuracy", json_real(m->test_accuracy));
    }
    json_object_set_new(j, "lr", nas_train_json_num(m->lr));
    json_object_set_new(j, "seconds", nas_train_json_num(m->seconds));
    json_object_set_new(j, "eval_seconds", nas_train_json_num(m->eval_seconds));
    json_object_set_new(j, "images_per_s", nas_train_json_num(m->images_per_s));
    return j;
}

void nas_train_metrics_from_json(const json_t *j, nas_epoch_metrics *m) {
    const json_t *e = json_object_get(j, "epoch");
    m->epoch = json_is_integer(e) ? (int)json_integer_value(e) : 0;
    m->train_loss = nas_train_json_get(j, "train_loss");
    m->train_accuracy = nas_train_json_get(j, "train_accuracy");
    m->valid_loss = nas_train_json_get(j, "valid_loss");
    m->valid_accuracy = nas_train_json_get(j, "valid_accuracy");
    m->test_accuracy = nas_train_json_get(j, "test_accuracy");
    m->lr = nas_train_json_get(j, "lr");
    m->seconds = nas_train_json_get(j, "seconds");
    m->eval_seconds = nas_train_json_get(j, "eval_seconds");
    m->images_per_s = nas_train_json_get(j, "images_per_s");
}

static const char *optim_name(nas_optim_kind k) {
    return k == NAS_OPTIM_SGD ? "sgd" : k == NAS_OPTIM_ADAM ? "adam" : "adamw";
}

static const char *sched_name(nas_sched_kind k) {
    return k == NAS_SCHED_CONSTANT ? "constant" : k == NAS_SCHED_COSINE ? "cosine" : "step";
}

json_t *nas_train_fingerprint(const nas_train_config *c, const nas_dataset *train) {
    json_t *j = json_object();
    json_object_set_new(j, "dataset", json_string(nas_dataset_name(train)));
    json_object_set_new(j, "n_examples", json_integer(nas_dataset_size(train)));
    json_object_set_new(j, "epochs", json_integer(c->epochs));
    json_object_set_new(j, "batch", json_integer(c->batch));
    json_object_set_new(j, "optimizer", json_string(optim_name(c->optimizer)));
    json_object_set_new(j, "lr", json_real(c->lr));
    json_object_set_new(j, "momentum", json_real(c->momentum));
    json_object_set_new(j, "nesterov", json_integer(c->nesterov));
    json_object_set_new(j, "weight_decay", json_real(c->weight_decay));
    json_object_set_new(j, "schedule", json_string(sched_name(c->schedule)));
    json_object_set_new(j, "min_lr", json_real(c->min_lr));
    json_object_set_new(j, "warmup_epochs", json_integer(c->warmup_epochs));
    json_object_set_new(j, "label_smoothing", json_real(c->label_smoothing));
    json_object_set_new(j, "grad_clip", json_real(c->grad_clip));
    json_object_set_new(j, "valid_fraction", json_real(c->valid_fraction));
    json_object_set_new(j, "data_fraction", json_real(c->data_fraction));
    json_object_set_new(j, "resolution", json_integer(c->resolution));
    json_object_set_new(j, "augment", json_integer(c->augment));
    json_object_set_new(j, "seed", json_integer((json_int_t)c->seed));
    return j;
}

json_t *nas_train_desc_json(const nas_model_desc *d) {
    if (d == NULL) {
        return json_null();
    }
    json_t *j = json_object();
    if (d->net != NULL) {
        json_object_set_new(j, "net", json_string(d->net));
    }
    if (d->space != NULL) {
        json_object_set_new(j, "space", json_string(d->space));
    }
    if (d->arch != NULL) {
        json_object_set_new(j, "arch", json_string(d->arch));
    }
    json_object_set_new(j, "channels_mult", json_real(d->channels_mult));
    json_object_set_new(j, "cells", json_integer(d->cells));
    json_object_set_new(j, "aux_head", json_integer(d->aux_head));
    return j;
}

nas_status nas_train_write_atomic(nas_ctx *ctx, const char *path, const char *text) {
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid());
    const int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        return nas_fail(ctx, NAS_ERR_IO, "cannot write '%s': %s", tmp, strerror(errno));
    }
    const size_t n = strlen(text);
    size_t done = 0;
    while (done < n) {
        const ssize_t w = write(fd, text + done, n - done);
        if (w <= 0) {
            const int e = errno;
            close(fd);
            unlink(tmp);
            return nas_fail(ctx, NAS_ERR_IO, "cannot write '%s': %s", tmp, strerror(e));
        }
        done += (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0 || rename(tmp, path) != 0) {
        const int e = errno;
        unlink(tmp);
        return nas_fail(ctx, NAS_ERR_IO, "cannot replace '%s': %s", path, strerror(e));
    }
    return NAS_OK;
}

/* ---------------------------------------------------------- checkpoint metadata, read alone */

static uint64_t le64(const unsigned char *b) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) {
        v = v << 8 | b[i];
    }
    return v;
}

static uint32_t le32(const unsigned char *b) {
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

/* Skip `n` bytes, failing with the offset where the file ended. */
static nas_status skip(nas_ctx *ctx, FILE *f, const char *path, uint64_t n, uint64_t *at) {
    if (fseeko(f, (off_t)(*at + n), SEEK_SET) != 0) {
        return nas_fail(ctx, NAS_ERR_FORMAT, "'%s': truncated at byte offset %llu", path,
                        (unsigned long long)*at);
    }
    *at += n;
    return NAS_OK;
}

static nas_status read_exact(nas_ctx *ctx, FILE *f, const char *path, void *buf, size_t n,
                             uint64_t *at) {
    if (fread(buf, 1, n, f) != n) {
        return nas_fail(ctx, NAS_ERR_FORMAT, "'%s': truncated at byte offset %llu", path,
                        (unsigned long long)*at);
    }
    *at += n;
    return NAS_OK;
}

/* The layout is src/nn/weights.c's (version 1): a 64-byte header with the table counts and the
 * metadata length, the parameter and extra tables, then the metadata. The parameters are then
 * checked (with the CRC) by nas_checkpoint_load when a run resumes or eval loads them. */
nas_status nas_train_checkpoint_meta(nas_ctx *ctx, const char *path, char **meta) {
    NAS_CHECK_ARG(ctx, path != NULL && meta != NULL);
    *meta = NULL;
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return nas_fail(ctx, NAS_ERR_IO, "cannot open checkpoint '%s': %s", path, strerror(errno));
    }
    static const unsigned char magic[8] = {0x89, 'N', 'A', 'S', '\r', '\n', 0x1a, '\n'};
    unsigned char h[64];
    uint64_t at = 0;
    nas_status st = read_exact(ctx, f, path, h, sizeof(h), &at);
    if (st == NAS_OK && memcmp(h, magic, 8) != 0) {
        st = nas_fail(ctx, NAS_ERR_FORMAT, "'%s' is not a nascent checkpoint (byte offset 0)",
                      path);
    }
    const uint64_t n_params = le64(h + 24), n_extra = le64(h + 40), meta_bytes = le64(h + 48);
    if (st == NAS_OK && (le32(h + 8) != 1 || meta_bytes > ((uint64_t)1 << 30))) {
        st = nas_fail(ctx, NAS_ERR_FORMAT, "'%s': unsupported checkpoint version or header", path);
    }
    for (uint64_t i = 0; st == NAS_OK && i < n_params + n_extra; i++) {
        unsigned char b[4];
        st = read_exact(ctx, f, path, b, 4, &at);
        if (st == NAS_OK) {
            st = skip(ctx, f, path, le32(b), &at);
        }
        if (st == NAS_OK && i < n_params) {
            st = read_exact(ctx, f, path, b, 4, &at);
            if (st == NAS_OK && (le32(b) < 1 || le32(b) > 4)) {
                st = nas_fail(ctx, NAS_ERR_FORMAT, "'%s': bad parameter table at byte offset %llu",
                              path, (unsigned long long)(at - 4));
            }
            if (st == NAS_OK) {
                st = skip(ctx, f, path, 8ull * le32(b), &at);
            }
        } else if (st == NAS_OK) {
            st = skip(ctx, f, path, 8, &at);
        }
    }
    char *text = NULL;
    if (st == NAS_OK) {
        text = nas_malloc(ctx, (size_t)meta_bytes + 1);
        st = text == NULL ? NAS_ERR_NOMEM : read_exact(ctx, f, path, text, (size_t)meta_bytes, &at);
    }
    fclose(f);
    if (st != NAS_OK) {
        nas_free(ctx, text, text ? (size_t)meta_bytes + 1 : 0);
        return st;
    }
    text[meta_bytes] = '\0';
    if (strlen(text) != meta_bytes) {
        nas_free(ctx, text, (size_t)meta_bytes + 1);
        return nas_fail(ctx, NAS_ERR_FORMAT, "'%s': metadata holds a NUL byte", path);
    }
    *meta = text;
    return NAS_OK;
}
