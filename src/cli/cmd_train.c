/* cmd_train.c - `nascent train`: train one architecture (a space's canonical text or a standard
 * net) on a dataset with a fidelity budget. The library does the work (nas_train_model) and
 * writes DIR/metrics.jsonl, DIR/checkpoint.bin and DIR/result.json; this file parses options,
 * shows progress (a bar on a terminal, plain lines otherwise, JSON lines with --json) and maps
 * errors to exit codes (2 bad input, 3 diverged, 1 other failures). */
#include "cli_int.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

static void usage(FILE *out) {
    fprintf(out,
            "usage: nascent train (--space S --arch TEXT | --net fmnist-cnn|mobilenet-v2)\n"
            "                     --dataset fashion-mnist|mnist|cifar10|cifar100 --out DIR "
            "[options]\n\n"
            "  --data-dir D          dataset directory (default: the dataset's usual place)\n"
            "  --epochs E            training epochs (1)\n"
            "  --batch B             minibatch size (128)\n"
            "  --optimizer O         sgd | adam | adamw (sgd)\n"
            "  --lr X                base learning rate (0.1)\n"
            "  --momentum X          SGD momentum (0.9)\n"
            "  --nesterov 0|1        Nesterov momentum (1)\n"
            "  --schedule S          cosine | step | constant (cosine)\n"
            "  --min-lr X            cosine floor (0)\n"
            "  --warmup-epochs N     linear warm-up (0)\n"
            "  --weight-decay X      L2 (decoupled for adamw) (5e-4)\n"
            "  --label-smoothing X   (0)\n"
            "  --grad-clip X         max gradient norm, 0 = off (0)\n"
            "  --channels-mult X     channel multiplier of the built network (1)\n"
            "  --cells N             cells per stage / layers override (space default)\n"
            "  --aux                 darts: train with the auxiliary head (loss + 0.4 CE(aux))\n"
            "  --data-fraction X     fraction of the training split used (1)\n"
            "  --valid-fraction X    held out of the training files for validation (0.1)\n"
            "  --resolution R        resample images to R x R (native)\n"
            "  --augment 0|1         random crop (pad 4) + flip (dataset default: CIFAR on)\n"
            "  --no-prefetch         assemble batches on the training thread\n"
            "  --test-every-epoch    also measure test accuracy after every epoch\n"
            "  --eval-batch B        evaluation batch (256)\n"
            "  --seed S              seed of initialisation, split, order, augmentation (0)\n"
            "  --threads T           threads (0 = all cores)\n"
            "  --out DIR             output directory (created)\n"
            "  --resume              continue from DIR/checkpoint.bin\n"
            "  --json                machine-readable progress and result on stdout\n\n"
            "Writes DIR/metrics.jsonl (one line per epoch), DIR/checkpoint.bin (after every "
            "epoch)\nand DIR/result.json. Exit codes: 0 ok, 1 failure, 2 bad input, 3 training "
            "diverged.\n");
}

typedef struct train_opts {
    nas_train_config cfg;
    nas_model_desc desc;
    const char *dataset, *data_dir;
    int threads, json, tty;
    double last_draw;
    char arch_text[8192]; /* --arch default resolved to the architecture's own text */
} train_opts;

static int parse_double(const char *flag, const char *s, double lo, double hi, double *out) {
    char *end = NULL;
    errno = 0;
    const double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !(v >= lo && v <= hi)) {
        fprintf(stderr, "nascent train: %s expects a number in [%g, %g], got '%s'\n", flag, lo, hi,
                s);
        return 0;
    }
    *out = v;
    return 1;
}

static int parse_int(const char *flag, const char *s, long lo, long hi, long *out) {
    char *end = NULL;
    errno = 0;
    const long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) {
        fprintf(stderr, "nascent train: %s expects an integer in [%ld, %ld], got '%s'\n", flag, lo,
                hi, s);
        return 0;
    }
    *out = v;
    return 1;
}

/* One option with a value; returns 0 on a bad value (message printed), 1 if used, -1 if the
 * flag is not one of these. */
static int parse_valued(train_opts *o, const char *flag, const char *v) {
    nas_train_config *c = &o->cfg;
    double d;
    long n;
    if (strcmp(flag, "--space") == 0) {
        o->desc.space = v;
    } else if (strcmp(flag, "--arch") == 0) {
        o->desc.arch = v;
    } else if (strcmp(flag, "--net") == 0) {
        o->desc.net = v;
    } else if (strcmp(flag, "--dataset") == 0) {
        o->dataset = v;
    } else if (strcmp(flag, "--data-dir") == 0) {
        o->data_dir = v;
    } else if (strcmp(flag, "--out") == 0) {
        c->out_dir = v;
    } else if (strcmp(flag, "--optimizer") == 0) {
        if (strcmp(v, "sgd") == 0) {
            c->optimizer = NAS_OPTIM_SGD;
        } else if (strcmp(v, "adam") == 0) {
            c->optimizer = NAS_OPTIM_ADAM;
        } else if (strcmp(v, "adamw") == 0) {
            c->optimizer = NAS_OPTIM_ADAMW;
        } else {
            fprintf(stderr, "nascent train: --optimizer is sgd, adam or adamw, not '%s'\n", v);
            return 0;
        }
    } else if (strcmp(flag, "--schedule") == 0) {
        if (strcmp(v, "cosine") == 0) {
            c->schedule = NAS_SCHED_COSINE;
        } else if (strcmp(v, "step") == 0) {
            c->schedule = NAS_SCHED_STEP;
        } else if (strcmp(v, "constant") == 0) {
            c->schedule = NAS_SCHED_CONSTANT;
        } else {
            fprintf(stderr, "nascent train: --schedule is cosine, step or constant, not '%s'\n",
                    v);
            return 0;
        }
    } else if (strcmp(flag, "--epochs") == 0) {
        if (!parse_int(flag, v, 1, 100000, &n)) return 0;
        c->epochs = (int)n;
    } else if (strcmp(flag, "--batch") == 0) {
        if (!parse_int(flag, v, 1, 65536, &n)) return 0;
        c->batch = (int)n;
    } else if (strcmp(flag, "--eval-batch") == 0) {
        if (!parse_int(flag, v, 1, 65536, &n)) return 0;
        c->eval_batch = (int)n;
    } else if (strcmp(flag, "--lr") == 0) {
        if (!parse_double(flag, v, 0, 1e30, &d)) return 0;
        c->lr = (float)d;
    } else if (strcmp(flag, "--min-lr") == 0) {
        if (!parse_double(flag, v, 0, 1e6, &d)) return 0;
        c->min_lr = (float)d;
    } else if (strcmp(flag, "--momentum") == 0) {
        if (!parse_double(flag, v, 0, 1, &d)) return 0;
        c->momentum = (float)d;
    } else if (strcmp(flag, "--nesterov") == 0) {
        if (!parse_int(flag, v, 0, 1, &n)) return 0;
        c->nesterov = (int)n;
    } else if (strcmp(flag, "--weight-decay") == 0) {
        if (!parse_double(flag, v, 0, 1e3, &d)) return 0;
        c->weight_decay = (float)d;
    } else if (strcmp(flag, "--label-smoothing") == 0) {
        if (!parse_double(flag, v, 0, 0.999, &d)) return 0;
        c->label_smoothing = (float)d;
    } else if (strcmp(flag, "--grad-clip") == 0) {
        if (!parse_double(flag, v, 0, 1e9, &d)) return 0;
        c->grad_clip = d;
    } else if (strcmp(flag, "--warmup-epochs") == 0) {
        if (!parse_int(flag, v, 0, 100000, &n)) return 0;
        c->warmup_epochs = (int)n;
    } else if (strcmp(flag, "--channels-mult") == 0) {
        if (!parse_double(flag, v, 0.01, 64, &d)) return 0;
        o->desc.channels_mult = d;
    } else if (strcmp(flag, "--cells") == 0) {
        if (!parse_int(flag, v, 1, 1000, &n)) return 0;
        o->desc.cells = (int)n;
    } else if (strcmp(flag, "--data-fraction") == 0) {
        if (!parse_double(flag, v, 1e-9, 1, &d)) return 0;
        c->data_fraction = d;
    } else if (strcmp(flag, "--valid-fraction") == 0) {
        if (!parse_double(flag, v, 0, 0.99, &d)) return 0;
        c->valid_fraction = d;
    } else if (strcmp(flag, "--resolution") == 0) {
        if (!parse_int(flag, v, 1, 1024, &n)) return 0;
        c->resolution = (int)n;
    } else if (strcmp(flag, "--augment") == 0) {
        if (!parse_int(flag, v, 0, 1, &n)) return 0;
        c->augment = (int)n;
    } else if (strcmp(flag, "--seed") == 0) {
        if (!parse_int(flag, v, 0, 2147483647L, &n)) return 0;
        c->seed = (uint64_t)n;
    } else if (strcmp(flag, "--threads") == 0) {
        if (!parse_int(flag, v, 0, 1024, &n)) return 0;
        o->threads = (int)n;
    } else {
        return -1;
    }
    return 1;
}

/* Returns 0 to go on, else the exit code. */
static int parse_args(int argc, char **argv, train_opts *o) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return -1;
        } else if (strcmp(a, "--resume") == 0) {
            o->cfg.resume = 1;
        } else if (strcmp(a, "--json") == 0) {
            o->json = 1;
        } else if (strcmp(a, "--no-prefetch") == 0) {
            o->cfg.prefetch = 0;
        } else if (strcmp(a, "--aux") == 0) {
            o->desc.aux_head = 1;
        } else if (strcmp(a, "--test-every-epoch") == 0) {
            o->cfg.test_every_epoch = 1;
        } else if (strncmp(a, "--", 2) == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "nascent train: %s needs a value (see nascent train --help)\n", a);
                return 2;
            }
            const int r = parse_valued(o, a, argv[i + 1]);
            if (r == 0) {
                return 2;
            }
            if (r < 0) {
                fprintf(stderr, "nascent train: unknown option '%s' (see nascent train --help)\n",
                        a);
                return 2;
            }
            i++;
        } else {
            fprintf(stderr, "nascent train: unexpected argument '%s'\n", a);
            return 2;
        }
    }
    if (o->dataset == NULL || o->cfg.out_dir == NULL) {
        fprintf(stderr, "nascent train: --dataset and --out are required (see nascent train "
                        "--help)\n");
        return 2;
    }
    const int by_net = o->desc.net != NULL, by_arch = o->desc.space != NULL || o->desc.arch != NULL;
    if (by_net == by_arch || (by_arch && (o->desc.space == NULL || o->desc.arch == NULL))) {
        fprintf(stderr, "nascent train: give either --net NAME or both --space S and --arch TEXT\n");
        return 2;
    }
    return 0;
}

static void fmt_time(char *buf, size_t n, double s) {
    if (!isfinite(s) || s < 0) {
        snprintf(buf, n, "?");
        return;
    }
    const long t = (long)(s + 0.5);
    if (t >= 3600) {
        snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    } else {
        snprintf(buf, n, "%ld:%02ld", t / 60, t % 60);
    }
}

static json_t *num_or_null(double v) {
    return isfinite(v) ? json_real(v) : json_null();
}

static void print_json_line(json_t *j) {
    char *s = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(8));
    if (s != NULL) {
        printf("%s\n", s);
        free(s);
    }
    fflush(stdout);
    json_decref(j);
}

static int on_progress(void *user, const nas_train_progress *p) {
    train_opts *o = user;
    if (p->event == NAS_TRAIN_STEP) {
        if (!o->tty || o->json) {
            return 0;
        }
        const double now = nas_now();
        if (now - o->last_draw < 0.1 && p->step != p->steps) {
            return 0;
        }
        o->last_draw = now;
        char eta[32];
        fmt_time(eta, sizeof(eta), p->eta_s);
        const int width = 24, fill = (int)(width * p->step / (p->steps > 0 ? p->steps : 1));
        char bar[32];
        for (int i = 0; i < width; i++) {
            bar[i] = i < fill ? '#' : '.';
        }
        bar[width] = '\0';
        printf("\repoch %d/%d [%s] %lld/%lld loss %.4f acc %.2f%% %.0f img/s ETA %s   ", p->epoch,
               p->epochs, bar, (long long)p->step, (long long)p->steps, p->loss, p->accuracy,
               p->images_per_s, eta);
        fflush(stdout);
        return 0;
    }
    const nas_epoch_metrics *m = p->metrics;
    if (o->json) {
        json_t *j = json_object();
        json_object_set_new(j, "event", json_string("epoch"));
        json_object_set_new(j, "epoch", json_integer(m->epoch));
        json_object_set_new(j, "epochs", json_integer(p->epochs));
        json_object_set_new(j, "train_loss", num_or_null(m->train_loss));
        json_object_set_new(j, "train_accuracy", num_or_null(m->train_accuracy));
        json_object_set_new(j, "valid_accuracy", num_or_null(m->valid_accuracy));
        json_object_set_new(j, "test_accuracy", num_or_null(m->test_accuracy));
        json_object_set_new(j, "seconds", num_or_null(m->seconds));
        json_object_set_new(j, "images_per_s", num_or_null(m->images_per_s));
        json_object_set_new(j, "eta_s", num_or_null(p->eta_s));
        print_json_line(j);
        return 0;
    }
    char eta[32], valid[48] = "", test[48] = "";
    fmt_time(eta, sizeof(eta), p->eta_s);
    if (isfinite(m->valid_accuracy)) {
        snprintf(valid, sizeof(valid), "  valid acc %.2f%%", m->valid_accuracy);
    }
    if (isfinite(m->test_accuracy)) {
        snprintf(test, sizeof(test), "  test acc %.2f%%", m->test_accuracy);
    }
    printf("%sepoch %d/%d  train loss %.4f  train acc %.2f%%%s%s  %.2f s (%.0f img/s)  ETA %s%s\n",
           o->tty ? "\r" : "", m->epoch, p->epochs, m->train_loss, m->train_accuracy, valid, test,
           m->seconds, m->images_per_s, eta, o->tty ? "          " : "");
    fflush(stdout);
    return 0;
}

static int exit_code(nas_status st) {
    switch (st) {
        case NAS_ERR_NUMERIC:
            return 3;
        case NAS_ERR_ARG:
        case NAS_ERR_FORMAT:
        case NAS_ERR_SHAPE:
        case NAS_ERR_IO:
        case NAS_ERR_STATE:
            return 2;
        default:
            return 1;
    }
}

static int fail(nas_ctx *ctx, nas_status st, const char *what) {
    fprintf(stderr, "nascent train: %s%s%s\n", what, what[0] ? ": " : "", nas_errmsg(ctx));
    return exit_code(st);
}

static void print_result(const train_opts *o, const nas_train_result *r) {
    if (o->json) {
        json_t *j = json_object();
        json_object_set_new(j, "event", json_string("result"));
        json_object_set_new(j, "test_accuracy", num_or_null(r->test_accuracy));
        json_object_set_new(j, "valid_accuracy", num_or_null(r->valid_accuracy));
        json_object_set_new(j, "train_accuracy", num_or_null(r->train_accuracy));
        json_object_set_new(j, "epochs", json_integer(r->epochs_done));
        json_object_set_new(j, "seconds", json_real(r->seconds));
        json_object_set_new(j, "train_seconds", json_real(r->train_seconds));
        json_object_set_new(j, "params", json_integer(r->params));
        json_object_set_new(j, "out", json_string(o->cfg.out_dir));
        print_json_line(j);
        return;
    }
    char valid[48] = "";
    if (isfinite(r->valid_accuracy)) {
        snprintf(valid, sizeof(valid), ", valid %.2f%%", r->valid_accuracy);
    }
    printf("test accuracy %.2f%%%s; %d epoch%s, %.1f s (training %.1f s), %lld params; results "
           "in %s\n",
           r->test_accuracy, valid, r->epochs_done, r->epochs_done == 1 ? "" : "s", r->seconds,
           r->train_seconds, (long long)r->params, o->cfg.out_dir);
}

/* `--arch default` names the space's default architecture: record its own text (in result.json
 * and the checkpoint) so the run says what it trained. */
static nas_status resolve_default_arch(nas_ctx *ctx, train_opts *o) {
    if (o->desc.arch == NULL || strcmp(o->desc.arch, "default") != 0) {
        return NAS_OK;
    }
    nas_space *s = NULL;
    nas_arch a;
    nas_status st = nas_space_open(ctx, o->desc.space, &s);
    if (st == NAS_OK) {
        st = nas_space_decode(ctx, s, "default", &a);
    }
    if (st == NAS_OK) {
        st = nas_space_encode(s, &a, o->arch_text, sizeof o->arch_text);
    }
    nas_space_free(s);
    if (st == NAS_OK) {
        o->desc.arch = o->arch_text;
    }
    return st;
}

int cmd_train(int argc, char **argv) {
    train_opts o;
    memset(&o, 0, sizeof(o));
    nas_train_config_default(&o.cfg);
    const int pr = parse_args(argc, argv, &o);
    if (pr != 0) {
        return pr < 0 ? 0 : pr;
    }
    o.tty = isatty(STDOUT_FILENO);
    nas_set_threads(o.threads);
    nas_ctx *ctx = nas_ctx_new();
    if (ctx == NULL) {
        fprintf(stderr, "nascent train: out of memory\n");
        return 1;
    }
    nas_dataset *train = NULL, *test = NULL;
    nas_model *m = NULL;
    int rc = 0;
    nas_status st = resolve_default_arch(ctx, &o);
    if (st == NAS_OK) {
        st = nas_dataset_open(ctx, o.dataset, o.data_dir, 0, &train);
    }
    if (st == NAS_OK) {
        st = nas_dataset_open(ctx, o.dataset, o.data_dir, 1, &test);
    }
    if (st != NAS_OK) {
        rc = fail(ctx, st, "");
        goto done;
    }
    nas_model_shape shape = nas_dataset_shape(train);
    if (o.cfg.resolution > 0) {
        shape.in_h = shape.in_w = o.cfg.resolution;
    }
    st = nas_model_build_desc(ctx, &o.desc, shape, &m);
    if (st != NAS_OK) {
        rc = fail(ctx, st, "cannot build the model");
        goto done;
    }
    o.cfg.desc = &o.desc;
    o.cfg.progress = on_progress;
    o.cfg.progress_user = &o;
    if (!o.json) {
        printf("training %s on %s (%lld training files, %lld test): %lld params, %d epoch%s, "
               "batch %d, %d thread%s\n",
               o.desc.net != NULL ? o.desc.net : o.desc.arch, o.dataset,
               (long long)nas_dataset_size(train), (long long)nas_dataset_size(test),
               (long long)nas_model_n_params(m), o.cfg.epochs, o.cfg.epochs == 1 ? "" : "s",
               o.cfg.batch, nas_get_threads(), nas_get_threads() == 1 ? "" : "s");
        fflush(stdout);
    }
    nas_train_result r;
    st = nas_train_model(ctx, m, train, test, &o.cfg, &r);
    if (o.tty && !o.json && st != NAS_OK) {
        printf("\n");
    }
    if (st != NAS_OK) {
        rc = fail(ctx, st, "");
        goto done;
    }
    if (r.resumed_from > 0 && !o.json) {
        printf("(resumed after epoch %d)\n", r.resumed_from);
    }
    print_result(&o, &r);
done:
    nas_model_free(m);
    nas_dataset_free(train);
    nas_dataset_free(test);
    nas_ctx_free(ctx);
    return rc;
}
